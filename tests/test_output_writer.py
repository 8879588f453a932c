# amaranth: UnusedElaboratable=no
# (the parameter tests construct writers that are refused or never simulated)
"""OutputWriter in Amaranth's simulator: random passes (dead rows, fully masked rows and row
blocks, columns that are multiples of nothing, every shift) fed as the tile array emits them,
every word equal to NumPy's requantization packed in the core's layout, in order; throughput,
latency, flags, parameter validation and Verilog."""

import random
import zlib
from collections import deque
from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator

from maskprop.base.config import FPGA_SMALL, Config
from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.host.driver import ArrayPass
from maskprop.host.memory_layout import pack
from maskprop.hw.output_writer import OutputWriter
from maskprop.sim.golden import requantize
from maskprop.sim.layer import ConvLayer
from maskprop.tb.amaranth_bench import run_streams
from maskprop.tb.payloads import as_payload, packer
from maskprop.tb.scoreboard import DRAIN_CYCLES, Scoreboard
from maskprop.tb.stimulus import seed_from_env


# --- the reference: a pass's GEMM outputs, the array's beats, the words ------------------------

class WriterPass:
    """One pass as the writer sees it: exact sums ``acc`` (M, J), ``live`` rows (M,), ``wanted``
    outputs (M, J; the array computes these of the live rows), the per-pass settings, and
    optional accumulator ``overflow`` flags (M, J)."""

    def __init__(self, config, acc, live, wanted, *, shift, base, overflow=None):
        self.config, self.acc, self.live, self.wanted = config, acc, live, wanted
        self.shift, self.base = shift, base
        self.overflow = np.zeros_like(wanted) if overflow is None else overflow

    @property
    def rows(self):
        return self.acc.shape[0]

    @property
    def cols(self):
        return self.acc.shape[1]

    def blocks(self):
        block = self.config.col_block
        return [(base, min(block, self.cols - base)) for base in range(0, self.cols, block)]

    def row_beats(self, rng, *, first=True):
        """One beat per row and block; a dead row's ``wanted`` is garbage (it is ignored)."""
        beats = []
        for m in range(self.rows):
            for base, width in self.blocks():
                if self.live[m]:
                    wanted = sum(1 << p for p in range(width) if self.wanted[m, base + p])
                else:
                    wanted = rng.getrandbits(self.config.col_block)
                beats.append({"live": int(self.live[m]), "wanted": wanted,
                              "first": int(first and m == 0 and base == 0)})
        return beats

    def result_beats(self, rng):
        """The array's ``o`` beats for the live rows: the wanted columns of each block in
        ascending groups of ``tiles``, one empty beat for a block with none. Unused slots carry
        garbage (value, column, overflow): the writer must look at ``valid`` only."""
        c = self.config
        column_bits = max(1, (c.max_cols - 1).bit_length())
        beats = []
        for m in np.flatnonzero(self.live):
            for base, width in self.blocks():
                columns = [base + p for p in range(width) if self.wanted[m, base + p]]
                groups = [columns[g:g + c.tiles] for g in range(0, len(columns), c.tiles)]
                for group in groups or [[]]:
                    def slot(t, field):
                        if t < len(group):
                            return {"value": int(self.acc[m, group[t]]),
                                    "column": group[t],
                                    "overflow": int(self.overflow[m, group[t]])}[field]
                        return {"value": rng.getrandbits(c.acc_width),
                                "column": rng.getrandbits(column_bits),
                                "overflow": rng.getrandbits(1)}[field]
                    beats.append({
                        "value": [slot(t, "value") for t in range(c.tiles)],
                        "column": [slot(t, "column") for t in range(c.tiles)],
                        "overflow": sum(slot(t, "overflow") << t for t in range(c.tiles)),
                        "valid": (1 << len(group)) - 1,
                    })
        return beats

    @property
    def computed(self):
        return self.wanted & self.live[:, None]

    def words(self, addr_width):
        """The memory words, in address order: NumPy's requantization of the computed outputs,
        0 elsewhere and in the padding channels."""
        vec = self.config.vec
        out = np.where(self.computed, requantize(self.acc, self.shift, self.config.data_width), 0)
        per_row = -(-self.cols // vec)
        padded = np.zeros((self.rows, per_row * vec), dtype=np.int64)
        padded[:, :self.cols] = out
        return [{"addr": (self.base + m * per_row + w) % (1 << addr_width),
                 "data": padded[m, w * vec:(w + 1) * vec].tolist()}
                for m in range(self.rows) for w in range(per_row)]

    def saturates(self):
        """Some computed output clips (rounded with Python's unbounded integers)."""
        s, dw = self.shift, self.config.data_width
        for m, j in zip(*np.nonzero(self.computed)):
            a = int(self.acc[m, j])
            rounded = (a >> s) + ((a >> (s - 1)) & 1) if s else a
            if not -(1 << (dw - 1)) <= rounded < (1 << (dw - 1)):
                return True
        return False

    def overflows(self):
        return bool((self.overflow.astype(bool) & self.computed).any())


def interesting_sums(rng, shape, config, shift):
    """Accumulator values: uniform over the acc_width range, small ones, ties of the rounding
    (``k * 2**shift +- 2**(shift-1)``) and values either side of the saturation thresholds,
    clipped to the acc_width range."""
    py = random.Random(int(rng.integers(1 << 31)))
    aw, dw = config.acc_width, config.data_width
    acc_min, acc_max = -(1 << (aw - 1)), (1 << (aw - 1)) - 1
    half = 1 << shift >> 1
    top = (1 << (dw - 1)) << shift              # the first sum that rounds to data_max + 1

    def small():
        return py.randint(-(1 << dw), 1 << dw)
    candidates = [
        lambda: py.randint(acc_min, acc_max),
        lambda: py.randint(-2 * top, 2 * top),
        lambda: small() * (1 << shift) + half,
        lambda: small() * (1 << shift) - half,
        lambda: top - half + py.randint(-1, 1),
        lambda: -top - half + py.randint(-1, 1),
        lambda: py.choice([acc_min, acc_max, acc_min + 1, -1, 0, 1]),
    ]
    flat = [min(acc_max, max(acc_min, py.choice(candidates)()))
            for _ in range(int(np.prod(shape)))]
    return np.array(flat, dtype=np.int64).reshape(shape)


def random_pass(config, rng, *, rows, cols, shift, base, dead=0.2, masked_rows=0.15,
                masked_blocks=0.15, density=0.5, overflow=0.0):
    acc = interesting_sums(rng, (rows, cols), config, shift)
    live = rng.random(rows) >= dead
    wanted = rng.random((rows, cols)) < density
    wanted[rng.random(rows) < masked_rows] = False
    for base_col in range(0, cols, config.col_block):
        wanted[rng.random(rows) < masked_blocks, base_col:base_col + config.col_block] = False
    flags = rng.random((rows, cols)) < overflow
    return WriterPass(config, acc, live, wanted, shift=shift, base=base, overflow=flags)


def run_pass(dut, writer_pass, *, seed, idle=0.0, backpressure=0.0):
    """One pass through :func:`run_streams`: the scoreboard holds every word to the reference."""
    rng = random.Random(seed)

    def setup(ctx):
        ctx.set(dut.cols, writer_pass.cols)
        ctx.set(dut.shift, writer_pass.shift)
        ctx.set(dut.base, writer_pass.base)
    inputs = {"rows": writer_pass.row_beats(rng), "results": writer_pass.result_beats(rng)}
    words = writer_pass.words(dut.addr_width)
    # A hang fails fast: a few cycles per beat and word at the worst traffic of these tests.
    beats = len(inputs["rows"]) + len(inputs["results"]) + len(words)
    return run_streams(dut, inputs, words, idle=idle, backpressure=backpressure, seed=seed,
                       setup=setup, read=("overflow", "saturated", "busy"),
                       max_cycles=20 * beats + 100)


def announce(seed):
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")


# --- random passes -----------------------------------------------------------------------------

# (config, writer parameters, rows, cols): cols a multiple of none of vec, tiles, col_block.
CASES = {
    "vec4-block6": (Config(vec=4, lanes=2, tiles=2, data_width=8, acc_width=24, col_block=6,
                           max_chunks=4, max_cols=32), {}, 10, 23),
    "default-widths": (Config(vec=16, lanes=4, tiles=4, data_width=16, acc_width=48,
                              col_block=32, max_chunks=4, max_cols=64), {}, 8, 50),
    "vec3-dw5-acc64": (Config(vec=3, lanes=1, tiles=3, data_width=5, acc_width=64, col_block=7,
                              max_chunks=1, max_cols=40), {}, 10, 20),
    "vec1": (Config(vec=1, lanes=1, tiles=1, data_width=2, acc_width=4, col_block=1,
                    max_chunks=1, max_cols=8), {}, 6, 5),
    "vec8-block4-dw32": (Config(vec=8, lanes=1, tiles=4, data_width=32, acc_width=64,
                                col_block=4, max_chunks=1, max_cols=32), {}, 8, 19),
    "dw12-container32-addr6": (Config(vec=5, lanes=5, tiles=2, data_width=12, acc_width=30,
                                      col_block=9, max_chunks=1, max_cols=32),
                               {"container": 32, "addr_width": 6}, 8, 17),
}


@pytest.mark.parametrize("case", CASES)
def test_random_pass_matches_numpy(case):
    config, params, rows, cols = CASES[case]
    seed = seed_from_env(default=zlib.crc32(case.encode()) & 0xFFFF)
    announce(seed)
    rng = np.random.default_rng(seed)
    dut = OutputWriter(config, **params)
    shift = int(rng.integers(0, 64))
    # A base near the top of the address space: the addresses wrap.
    base = int(rng.integers(0, 1 << dut.addr_width)) if dut.addr_width < 8 else \
        int(rng.integers(0, 1 << 16))
    writer_pass = random_pass(config, rng, rows=rows, cols=cols, shift=shift, base=base,
                              overflow=0.02)
    print(f"shift={shift} base={base}")
    run = run_pass(dut, writer_pass, seed=seed, idle=0.3, backpressure=0.4)
    assert run.read["overflow"] == writer_pass.overflows()
    assert run.read["saturated"] == writer_pass.saturates()
    assert run.read["busy"] == 0


@pytest.mark.parametrize("shift", [0, 1, 4, 12, 23, 47, 63])
def test_shifts_saturation_and_ties(shift):
    """Chosen shifts with many ties and values at the saturation thresholds, the default
    accumulator width; a pass that saturates raises ``saturated`` (and only then)."""
    config = CASES["default-widths"][0]
    seed = seed_from_env(default=100 + shift)
    announce(seed)
    rng = np.random.default_rng(seed)
    writer_pass = random_pass(config, rng, rows=4, cols=40, shift=shift, base=7, dead=0.0,
                              masked_rows=0.0, masked_blocks=0.0, density=0.9)
    run = run_pass(OutputWriter(config), writer_pass, seed=seed, idle=0.1, backpressure=0.2)
    assert run.read["saturated"] == writer_pass.saturates()
    assert run.read["overflow"] == 0


def test_values_wider_than_the_accumulator():
    """``value_width`` 64, the core's (partial sums added to the tile array's 48-bit sums):
    values over the whole 64-bit range requantize as NumPy's int64 does."""
    config = CASES["default-widths"][0]
    seed = seed_from_env(default=64)
    announce(seed)
    rng = np.random.default_rng(seed)
    shift = int(rng.integers(0, 64))
    # The sums drawn for a 64-bit accumulator; the writer's config keeps acc_width 48.
    writer_pass = random_pass(replace(config, acc_width=64), rng, rows=6, cols=50,
                              shift=shift, base=3)
    assert (np.abs(writer_pass.acc) >= 1 << 47).any(), "no value beyond acc_width's range"
    run = run_pass(OutputWriter(config, value_width=64), writer_pass, seed=seed, idle=0.3,
                   backpressure=0.4)
    assert run.read["saturated"] == writer_pass.saturates()


def test_default_container_is_the_smallest_that_holds_data_width():
    widths = {dw: OutputWriter(Config(data_width=dw, lanes=1, acc_width=64)).container
              for dw in (2, 8, 9, 16, 17, 32)}
    assert widths == {2: 8, 8: 8, 9: 16, 16: 16, 17: 32, 32: 32}
    assert OutputWriter(Config(), container=32).o.payload.data.shape().elem_shape.width == 32


# --- a conv layer's pass as the host driver lowers it, against the memory layout ----------------

# Forward outputs whose window is all padding (padding 3) are rows the array never sees; 20
# output channels are more than one word of FPGA_SMALL's vec = 16, and more than two blocks of
# its col_block = 8 (max_chunks 32 holds backward-data's reduction of 9 taps x 32 channels).
LAYER_CONFIG = replace(FPGA_SMALL, max_chunks=32)
LAYER = ConvLayer(batch=1, in_channels=3, height=4, width=4, out_channels=20, kernel=3, stride=1,
                  padding=3, name="3x3-p3")


@pytest.mark.parametrize("pass_name", ["forward", "backward_data"])
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_a_lowered_pass_lands_in_the_memory_layout(pass_name, dense):
    """The tile array's beats of a lowered conv pass (``ArrayPass.expected_results``), dead rows
    included: the words, as bytes in address order, are ``memory_layout.pack`` of the
    requantized golden tensor (channel-last, channels padded, containers)."""
    seed = seed_from_env(default=zlib.crc32(f"{pass_name}/{dense}".encode()) & 0xFFFF)
    announce(seed)
    rng = np.random.default_rng(seed)

    def sparse(shape):
        return np.where(rng.random(shape) < 0.4, rng.integers(-120, 121, size=shape), 0)
    A, W, dZ = np.abs(sparse(LAYER.input_shape)), sparse(LAYER.weight_shape), \
        sparse(LAYER.output_shape)
    array_pass = ArrayPass.lower(LAYER, pass_name, LAYER_CONFIG, A=A, W=W, dZ=dZ)
    assert not array_pass.live_rows.all() or pass_name != "forward"
    shift, base = 5, 0
    writer_pass = WriterPass(LAYER_CONFIG, array_pass.exact(), array_pass.live_rows,
                             array_pass.wanted(dense), shift=shift, base=base)
    dut = OutputWriter(LAYER_CONFIG)

    def setup(ctx):
        ctx.set(dut.cols, array_pass.cols)
        ctx.set(dut.shift, shift)
        ctx.set(dut.base, base)
    inputs = {"rows": writer_pass.row_beats(random.Random(seed)),
              "results": list(array_pass.expected_results(dense))}
    run = run_streams(dut, inputs, writer_pass.words(dut.addr_width), idle=0.2,
                      backpressure=0.3, seed=seed, setup=setup)
    words = [as_payload(word) for word in run.outputs]
    assert [word["addr"] for word in words] == list(range(base, base + len(words)))
    image = np.array([word["data"] for word in words], dtype="<i2").tobytes()
    golden = array_pass.golden(dense)
    assert image == pack(requantize(golden, shift, LAYER_CONFIG.data_width), LAYER_CONFIG.vec,
                         LAYER_CONFIG.data_width)


# --- several passes through one writer: shifts 0..63, first, clear -----------------------------

def run_passes(dut, passes, *, seed, idle=0.0, backpressure=0.0, clear_between=False):
    """Run ``passes`` (:class:`WriterPass`) one after the other through one writer in one
    simulation, changing the settings between them (when ``busy`` is low and every beat is
    taken), each pass's first rows beat with ``first``. Every word is checked by the
    scoreboard; returns the flags read after each pass."""
    rng = random.Random(seed)
    pack = packer(dut.o.payload.shape())
    expected = [pack(w) for p in passes for w in p.words(dut.addr_width)]
    scoreboard = Scoreboard(expected, name="OutputWriter.o", seed=seed)
    rows_and_results = sum(len(p.row_beats(random.Random(0))) +
                           len(p.result_beats(random.Random(0))) for p in passes)
    max_cycles = 20 * (rows_and_results + len(expected)) + 100 * len(passes)
    flags = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        cycle = 0
        for p in passes:
            ctx.set(dut.cols, p.cols)
            ctx.set(dut.shift, p.shift)
            ctx.set(dut.base, p.base)
            if clear_between:
                ctx.set(dut.clear, 1)
                await ctx.tick()
                ctx.set(dut.clear, 0)
            queues = {"rows": deque(p.row_beats(rng)), "results": deque(p.result_beats(rng))}
            offering = dict.fromkeys(queues, False)
            while any(queues.values()) or ctx.get(dut.busy):
                assert cycle < max_cycles, "the writer hung"
                for port, queue in queues.items():
                    if queue and not offering[port] and rng.random() >= idle:
                        ctx.set(getattr(dut, port).payload, queue[0])
                        ctx.set(getattr(dut, port).valid, 1)
                        offering[port] = True
                ctx.set(dut.o.ready, rng.random() >= backpressure)
                _, _, rows_ready, results_ready, o_valid, o_ready, o_payload = \
                    await ctx.tick().sample(dut.rows.ready, dut.results.ready, dut.o.valid,
                                            dut.o.ready, dut.o.payload)
                for port, ready in (("rows", rows_ready), ("results", results_ready)):
                    if offering[port] and ready:
                        queues[port].popleft()
                        offering[port] = False
                        ctx.set(getattr(dut, port).valid, 0)
                if o_valid and o_ready:
                    scoreboard.receive(o_payload.as_bits(), cycle)
                cycle += 1
            flags.append((ctx.get(dut.overflow), ctx.get(dut.saturated)))
        ctx.set(dut.o.ready, 1)
        for drain_cycle in range(DRAIN_CYCLES):
            _, _, o_valid, o_payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if o_valid:
                scoreboard.drained(o_payload.as_bits(), drain_cycle)
        scoreboard.finish()

    sim.add_testbench(bench)
    sim.run()
    return flags


@pytest.mark.parametrize("acc_width", [64, 20])
def test_every_shift_in_one_run(acc_width):
    """Shifts 0..63, one pass each through the same writer (each restarting its addresses at its
    own ``base`` with ``first``), values with ties and either side of saturation; with a
    20-bit accumulator most shifts exceed the sum's width (the result is 0 or -1 rounded)."""
    config = Config(vec=4, lanes=2, tiles=4, data_width=8 if acc_width == 64 else 3,
                    acc_width=acc_width, col_block=4, max_chunks=1, max_cols=8)
    seed = seed_from_env(default=acc_width)
    announce(seed)
    rng = np.random.default_rng(seed)
    passes = [random_pass(config, rng, rows=3, cols=7, shift=shift, base=100 * shift,
                          dead=0.0, masked_rows=0.0, masked_blocks=0.0, density=0.9)
              for shift in range(64)]
    flags = run_passes(OutputWriter(config), passes, seed=seed, idle=0.1, backpressure=0.2,
                       clear_between=True)
    assert [f[1] for f in flags] == [p.saturates() for p in passes]
    assert any(p.saturates() for p in passes) and not all(p.saturates() for p in passes)


def test_flags_are_sticky_until_clear():
    """``overflow`` (a valid slot's accumulator flag; invalid slots' flags are ignored) and
    ``saturated`` stay set across passes until ``clear``."""
    config = CASES["vec4-block6"][0]
    seed = seed_from_env(default=31)
    announce(seed)
    rng = np.random.default_rng(seed)
    quiet = dict(dead=0.0, masked_rows=0.0, masked_blocks=0.0)
    flagged = random_pass(config, rng, rows=3, cols=10, shift=2, base=0, overflow=0.3, **quiet)
    flagged.acc[0, 0], flagged.wanted[0, 0] = 1 << 20, True       # saturates
    clean = random_pass(config, rng, rows=3, cols=10, shift=2, base=0, **quiet)
    clean.acc[:] = rng.integers(-200, 200, size=clean.acc.shape)
    assert flagged.overflows() and flagged.saturates()
    assert not clean.overflows() and not clean.saturates()
    flags = run_passes(OutputWriter(config), [clean, flagged, clean], seed=seed)
    assert flags == [(0, 0), (1, 1), (1, 1)]
    flags = run_passes(OutputWriter(config), [clean, flagged, clean], seed=seed,
                       clear_between=True)
    assert flags == [(0, 0), (1, 1), (0, 0)]


# --- throughput and latency ----------------------------------------------------------------------

def test_never_stalls_the_array_when_blocks_are_words():
    """``vec == col_block``: each block is at most one word, so with ``o`` always ready the
    writer takes a result beat in every cycle (the array is never stalled), across row ends and
    fully masked blocks."""
    config = Config(vec=8, lanes=2, tiles=2, data_width=8, acc_width=24, col_block=8,
                    max_chunks=1, max_cols=32)
    seed = seed_from_env(default=5)
    announce(seed)
    rng = np.random.default_rng(seed)
    writer_pass = random_pass(config, rng, rows=8, cols=29, shift=3, base=0, dead=0.0)
    run = run_pass(OutputWriter(config), writer_pass, seed=seed)
    beats = len(writer_pass.result_beats(random.Random(0)))
    assert run.port_cycles["results"] == list(range(beats))


@pytest.mark.parametrize("vec, col_block", [(4, 8), (3, 8)], ids=["aligned", "misaligned"])
def test_one_word_per_cycle_when_blocks_are_longer(vec, col_block):
    """``tiles == col_block``: every block is one result beat but more than one word, so the
    writer is output-bound: once the first word is out, ``o`` offers a word in every cycle
    (dead rows included) until the last."""
    config = Config(vec=vec, lanes=1, tiles=col_block, data_width=8, acc_width=24,
                    col_block=col_block, max_chunks=1, max_cols=32)
    seed = seed_from_env(default=6)
    announce(seed)
    rng = np.random.default_rng(seed)
    writer_pass = random_pass(config, rng, rows=8, cols=30, shift=3, base=0, dead=0.3)
    run = run_pass(OutputWriter(config), writer_pass, seed=seed)
    first = run.out_cycles[0]
    assert run.out_cycles == list(range(first, first + len(run.out_cycles)))


def test_latency():
    """A block's first word is offered ``latency`` cycles after its last result beat is taken;
    a dead row's, two cycles after its rows beat."""
    config = CASES["vec4-block6"][0]
    acc = np.arange(1, 5).reshape(1, 4) * 8
    for live in (True, False):
        writer_pass = WriterPass(config, acc, np.array([live]), np.ones((1, 4), dtype=bool),
                                 shift=3, base=0)
        run = run_pass(OutputWriter(config), writer_pass, seed=0)
        taken = run.port_cycles["results" if live else "rows"][-1]
        assert run.out_cycles == [taken + (OutputWriter.latency if live else 2)]


def test_a_result_outside_the_block_fails_in_simulation():
    """A result beat for a column the rows beat does not want stops the simulation."""
    config = CASES["vec4-block6"][0]
    writer_pass = WriterPass(config, np.ones((1, 4), dtype=np.int64), np.array([True]),
                             np.array([[True, False, True, True]]), shift=0, base=0)
    results = writer_pass.result_beats(random.Random(0))
    results[0]["column"][1] = 1                     # column 2 reported as column 1
    dut = OutputWriter(config)

    def setup(ctx):
        ctx.set(dut.cols, 4)
    with pytest.raises(AssertionError, match="does not want"):
        run_streams(dut, {"rows": writer_pass.row_beats(random.Random(0)), "results": results},
                    [], setup=setup, max_cycles=100)


# --- parameters and Verilog ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(container=4), r"container must be one of 8, 16, 32, not 4"),
    (dict(container=24), r"container must be one of 8, 16, 32, not 24"),
    (dict(container=True), r"container must be one of 8, 16, 32, not True"),
    (dict(container=8), r"container must be one of 8, 16, 32 and hold data_width 16, not 8"),
    (dict(addr_width=0), r"addr_width must be in \[1, 64\], not 0"),
    (dict(addr_width=65), r"addr_width must be in \[1, 64\], not 65"),
    (dict(addr_width=32.0), r"addr_width must be an integer in \[1, 64\]"),
    (dict(value_width=47), r"value_width must be in \[48, 64\], not 47"),
    (dict(value_width=65), r"value_width must be in \[48, 64\], not 65"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OutputWriter(Config(), **kwargs)


def test_config_is_checked():
    with pytest.raises(ValueError, match="config must be a maskprop Config"):
        OutputWriter({"vec": 16})


def test_generates_verilog():
    text = generate_verilog(OutputWriter(CASES["vec4-block6"][0]), "output_writer")
    assert "module output_writer" in text
    for port in ("rows__ready", "results__ready", "o__payload", "overflow", "saturated", "busy"):
        assert port in text


@pytest.mark.sim
@pytest.mark.parametrize("config", [Config(), CASES["vec1"][0], CASES["vec3-dw5-acc64"][0]],
                         ids=["default", "vec1", "vec3"])
def test_verilator_lint_clean(config):
    lint_verilog(generate_verilog(OutputWriter(config), "output_writer"), "output_writer")
