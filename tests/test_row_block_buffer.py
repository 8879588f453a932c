# amaranth: UnusedElaboratable=no
# (the parameter tests construct buffers that are refused or never elaborated)
"""RowBlockBuffer in Amaranth's simulator: fed backward-weight's ``X`` words in the window
gather's order (block of rows, chunk, row), every ``rows`` beat (live, last, block) and every
``x`` beat (data, mask, index, last) equal, in order, to the row-major chunk lists of
``lower_backward_weight``'s ``X`` and ``structure`` (dense and sparse), each row replayed once
per column block (``blocks`` 1, 2, 3), under random idle cycles on the input and random
backpressure on both outputs; a real WindowGather driving it; the exact cycles unstalled;
parameter validation; Verilog generation and lint."""

import random

import numpy as np
import pytest
from amaranth import Module, Shape, unsigned
from amaranth.lib import memory, wiring
from amaranth.sim import Simulator

from maskprop.base.config import Config
from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.hw.row_block_buffer import RowBlockBuffer, row_beat_layout
from maskprop.hw.window_gather import WindowGather, gather_word_layout
from maskprop.sim.layer import ConvLayer
from maskprop.sim.lowering import lower_backward_weight
from maskprop.tb.stimulus import gather_command, scratchpad_words, seed_from_env


def config(vec: int, data_width: int, max_chunks: int = 64) -> Config:
    return Config(vec=vec, lanes=1, tiles=1, col_block=4, data_width=data_width,
                  max_chunks=max_chunks)


def gather_words(rows: list, vec: int, sizes: list | None = None) -> list:
    """``rows[m][q] = (data, smask)``; the words ``(data, smask, row, chunk, last)`` in the
    gather's order: blocks of ``vec`` rows (the last one shorter; or of ``sizes`` rows),
    chunk, row."""
    words = []
    q_n = len(rows[0])
    if sizes is None:
        sizes = [min(vec, len(rows) - s) for s in range(0, len(rows), vec)]
    assert sum(sizes) == len(rows) and max(sizes) <= vec
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    for start, size in zip(starts, sizes):
        for q in range(q_n):
            for m in range(start, start + size):
                words.append((rows[m][q][0], rows[m][q][1], m, q))
    return [w + (k == len(words) - 1,) for k, w in enumerate(words)]


def expected_out(rows: list, dense: bool, blocks: int = 1, keep_empty: bool = False):
    """The ``rows`` beats ``(live, last, block)`` and the ``x`` beats ``(data, mask, index,
    last)``: each row ``blocks`` times in succession (block ``0 .. blocks-1``), ``last`` only
    on the final row's final block; with ``keep_empty`` a row without a structural chunk is
    live with its chunk 0 (mask 0) alone."""
    beats, chunks = [], []
    for m, row in enumerate(rows):
        sent = [q for q, (_, smask) in enumerate(row) if smask] or ([0] if keep_empty else [])
        for b in range(blocks):
            beats.append((bool(sent), m == len(rows) - 1 and b == blocks - 1, b))
            for k, q in enumerate(sent):
                data, smask = row[q]
                mask = smask if dense else smask & sum(1 << i for i, v in enumerate(data) if v)
                chunks.append((data, mask, q, k == len(sent) - 1))
    return beats, chunks


def lowered_rows(layer: ConvLayer, vec: int, data_width: int, seed: int, zeros: float):
    nprng = np.random.default_rng(seed)
    low, high = -(1 << (data_width - 1)), (1 << (data_width - 1)) - 1
    A = nprng.integers(low, high + 1, size=layer.input_shape)
    A[nprng.random(A.shape) < zeros] = 0
    dZ = nprng.integers(low, high + 1, size=layer.output_shape)
    lowered = lower_backward_weight(layer, dZ, A, "a", vec=vec)
    X, structure = lowered.X, lowered.structure
    q_n = X.shape[1] // vec
    rows = []
    for m in range(X.shape[0]):
        row = []
        for q in range(q_n):
            data = tuple(int(v) for v in X[m, q * vec:(q + 1) * vec])
            smask = sum(1 << i for i in range(vec) if structure[m, q * vec + i])
            row.append((data, smask))
        rows.append(row)
    return rows


def random_rows(rng: random.Random, m_n: int, q_n: int, vec: int, data_width: int,
                dead_rows: float = 0.15):
    """Random rows with many zeros, chunks with ``smask == 0`` and rows without any."""
    low, high = -(1 << (data_width - 1)), (1 << (data_width - 1)) - 1
    rows = []
    for _ in range(m_n):
        dead = rng.random() < dead_rows
        row = []
        for _ in range(q_n):
            smask = 0 if dead or rng.random() < 0.3 else rng.getrandbits(vec)
            if not dead and not smask and rng.random() < 0.5:
                smask = 1 << rng.randrange(vec)
            data = tuple(rng.randint(low, high) if (smask >> i) & 1 and rng.random() < 0.5
                         else 0 for i in range(vec))
            row.append((data, smask))
        rows.append(row)
    return rows


def decode_x(dut, raw: int) -> tuple:
    vec, dw = dut.config.vec, dut.config.data_width
    data = []
    for i in range(vec):
        v = (raw >> (i * dw)) & ((1 << dw) - 1)
        data.append(v - (1 << dw) if v >> (dw - 1) else v)
    raw >>= vec * dw
    mask = raw & ((1 << vec) - 1)
    raw >>= vec
    iw = len(dut.x.payload.index)
    index = raw & ((1 << iw) - 1)
    return tuple(data), mask, index, bool((raw >> iw) & 1)


def run(dut, words, q_n, dense, beats, chunks, *, seed, idle=0.0, backpressure=0.0,
        gather=None, repeats=1, blocks=1, takes=None, keep_empty=False):
    """Feed ``words`` (or run ``gather``'s command) ``repeats`` times with ``blocks`` column
    blocks; check every output beat as it arrives. Returns the cycles (from the first input
    cycle 0) of the rows and x beats; appends those of the words taken to ``takes`` if given
    (``words`` only)."""
    m = Module()
    m.submodules.dut = dut
    if gather is not None:
        gdut, mem_words, command = gather
        m.submodules.gather = gdut
        depth = 1 << gdut.addr_width
        mem = memory.Memory(shape=gdut.read.data.shape(), depth=depth,
                            init=mem_words + [0] * (depth - len(mem_words)))
        m.submodules.mem = mem
        wiring.connect(m, mem.read_port(), gdut.read)
        wiring.connect(m, gdut.o, dut.i)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    rng = random.Random(seed)
    got_rows, got_x, row_cycles, x_cycles = [], [], [], []
    total_rows, total_x = repeats * len(beats), repeats * len(chunks)

    async def feeder(ctx):
        ctx.set(dut.chunks, q_n)
        ctx.set(dut.dense, dense)
        ctx.set(dut.blocks, blocks)
        ctx.set(dut.keep_empty, keep_empty)
        if gather is not None:
            for name, value in command.items():
                ctx.set(getattr(gdut.command.payload, name), value)
            for _ in range(repeats):
                while not ctx.get(gdut.command.ready):
                    await ctx.tick()
                ctx.set(gdut.command.valid, 1)
                await ctx.tick()
                ctx.set(gdut.command.valid, 0)
                await ctx.tick()
            return
        cycle = 0
        for word in words * repeats:
            while rng.random() < idle:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
                cycle += 1
            data, smask, row, chunk, last = word
            for e in range(len(data)):
                ctx.set(dut.i.payload.data[e], data[e])
            ctx.set(dut.i.payload.smask, smask)
            ctx.set(dut.i.payload.row, row)
            ctx.set(dut.i.payload.chunk, chunk)
            ctx.set(dut.i.payload.last, last)
            ctx.set(dut.i.valid, 1)
            while True:                  # i.ready comes from registers only
                ready = ctx.get(dut.i.ready)
                await ctx.tick()
                cycle += 1
                if ready:
                    break
            if takes is not None:
                takes.append(cycle - 1)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        cycle = 0
        while len(got_rows) < total_rows or len(got_x) < total_x:
            rr = rng.random() >= backpressure
            xr = rng.random() >= backpressure
            ctx.set(dut.rows.ready, rr)
            ctx.set(dut.x.ready, xr)
            if ctx.get(dut.rows.valid) and rr:
                beat = (bool(ctx.get(dut.rows.payload.live)),
                        bool(ctx.get(dut.rows.payload.last)),
                        ctx.get(dut.rows.payload.block))
                k = len(got_rows)
                assert k < total_rows, f"surplus rows beat at cycle {cycle}"
                assert beat == beats[k % len(beats)], f"rows beat {k} cycle {cycle}: {beat}"
                got_rows.append(beat)
                row_cycles.append(cycle)
            if ctx.get(dut.x.valid) and xr:
                beat = decode_x(dut, ctx.get(dut.x.payload.as_value()))
                k = len(got_x)
                assert k < total_x, f"surplus x beat at cycle {cycle}"
                want = chunks[k % len(chunks)]
                assert beat == want, f"x beat {k} cycle {cycle}: got {beat}, expected {want}"
                got_x.append(beat)
                x_cycles.append(cycle)
            await ctx.tick()
            cycle += 1
            assert cycle < 100000, "no progress"
        ctx.set(dut.rows.ready, 1)
        ctx.set(dut.x.ready, 1)
        for _ in range(40):
            assert not ctx.get(dut.rows.valid) and not ctx.get(dut.x.valid), "surplus beat"
            await ctx.tick()

    sim.add_testbench(feeder, background=True)
    sim.add_testbench(sink)
    sim.run()
    return row_cycles, x_cycles


LAYERS = {
    # channels not a multiple of vec, pixels not a multiple of vec (2*3*3 = 18)
    "odd": ConvLayer(batch=2, in_channels=6, height=5, width=5, out_channels=2, kernel=3,
                     stride=2, padding=1),
    # padding 1 with out_w == vec: tap row r=0 has whole chunks of padding (smask == 0)
    "pad": ConvLayer(batch=1, in_channels=5, height=4, width=4, out_channels=2, kernel=3,
                     stride=1, padding=1),
    # one chunk per row (Q = 1)
    "q1": ConvLayer(batch=1, in_channels=7, height=2, width=2, out_channels=2, kernel=1),
}


# (blocks, max_blocks): without replay, and every row sent 2 or 3 times (max_blocks above
# blocks or equal to it).
BLOCKS = [(1, 1), (2, 4), (3, 4), (3, 3)]


def blocks_seed(default: int, blocks: int, max_blocks: int) -> int:
    """The test's seed: ``default`` as before column blocks when ``blocks == max_blocks == 1``
    (the env's ``MASKPROP_SEED`` in every case when set)."""
    return seed_from_env(default=default + 1000 * (blocks - 1) + 10000 * (max_blocks - 1))


@pytest.mark.parametrize("blocks, max_blocks", BLOCKS)
@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("dense", [True, False])
def test_lowered_with_idle_and_backpressure(name, dense, blocks, max_blocks):
    vec, dw = 4, 8
    seed = blocks_seed(sum(map(ord, name)) * 2 + dense, blocks, max_blocks)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rows = lowered_rows(LAYERS[name], vec, dw, seed, zeros=0.5)
    q_n = len(rows[0])
    beats, chunks = expected_out(rows, dense, blocks)
    if name == "pad":
        assert any(smask == 0 for row in rows for _, smask in row)
    dut = RowBlockBuffer(config(vec, dw), index_width=16, max_blocks=max_blocks)
    run(dut, gather_words(rows, vec), q_n, dense, beats, chunks, seed=seed, idle=0.3,
        backpressure=0.4, repeats=2, blocks=blocks)


@pytest.mark.parametrize("vec, m_n, q_n, max_chunks", [
    (4, 11, 5, 8), (4, 9, 1, 4), (3, 7, 3, 3), (1, 4, 3, 4), (8, 17, 2, 2),
])
@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("blocks, max_blocks", BLOCKS)
@pytest.mark.parametrize("keep_empty", [False, True], ids=["", "keep_empty"])
def test_random_rows(vec, m_n, q_n, max_chunks, dense, blocks, max_blocks, keep_empty):
    seed = blocks_seed(vec * 100 + m_n * 10 + q_n + dense, blocks, max_blocks)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    rows = random_rows(rng, m_n, q_n, vec, 6)
    beats, chunks = expected_out(rows, dense, blocks, keep_empty)
    dut = RowBlockBuffer(config(vec, 6, 8), max_chunks=max_chunks, index_width=8,
                         max_blocks=max_blocks)
    run(dut, gather_words(rows, vec), q_n, dense, beats, chunks, seed=seed, idle=0.3,
        backpressure=0.4, repeats=2, blocks=blocks, keep_empty=keep_empty)


@pytest.mark.parametrize("blocks, max_blocks", [(1, 1), (2, 4)])
def test_driven_by_window_gather(blocks, max_blocks):
    """A real WindowGather's ``o`` connected to ``i`` (same layout by field names); with 2
    column blocks the buffer's reader is the slower side and holds the gather back."""
    vec, dw = 4, 8
    seed = blocks_seed(5, blocks, max_blocks)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    layer = LAYERS["odd"]
    nprng = np.random.default_rng(seed)
    A = nprng.integers(-128, 128, size=layer.input_shape)
    A[nprng.random(A.shape) < 0.5] = 0
    dZ = nprng.integers(-128, 128, size=layer.output_shape)
    lowered = lower_backward_weight(layer, dZ, A, "a", vec=vec)
    rows = []
    for m in range(lowered.X.shape[0]):
        rows.append([(tuple(int(v) for v in lowered.X[m, q * vec:(q + 1) * vec]),
                      sum(1 << i for i in range(vec) if lowered.structure[m, q * vec + i]))
                     for q in range(lowered.X.shape[1] // vec)])
    beats, chunks = expected_out(rows, False, blocks)
    gdut = WindowGather(config(vec, dw), addr_width=10, dim_width=8)
    dut = RowBlockBuffer(config(vec, dw), index_width=gdut.index_width, max_blocks=max_blocks)
    assert gather_word_layout(dut.config, gdut.index_width) == gdut.word_layout
    run(dut, None, len(rows[0]), False, beats, chunks, seed=seed, backpressure=0.3,
        gather=(gdut, scratchpad_words(A, vec, dw, 3), gather_command(layer, 3)), repeats=2,
        blocks=blocks)


@pytest.mark.parametrize("sizes, dead", [([4, 4, 2], 0.15), ([4, 1, 4, 1, 3], 0.0)])
@pytest.mark.parametrize("blocks, max_blocks", [(1, 1), (1, 4), (2, 4), (3, 3)])
@pytest.mark.parametrize("keep_empty", [False, True], ids=["", "keep_empty"])
def test_throughput_unstalled(sizes, dead, blocks, max_blocks, keep_empty):
    """Input offered in every cycle from cycle 0, outputs always ready: the writer takes one
    word per cycle while its bank is free; a block completed in cycle ``t`` has its first
    ``rows`` (and ``x``) beat in ``t + 2``; each pass (a row for one of ``blocks`` column
    blocks, in succession) then costs ``max(1, lastq + 1)`` cycles, its sent chunks leaving one
    cycle after their reads, no bubble between passes, rows or blocks. A bank is writable in
    the cycle after the reader's last cycle on it (blocks 4, 1, 4: the third block waits for
    the first's rows; with ``blocks > 1`` the writer waits for the bank from the third block
    on). With ``keep_empty`` a row without a structural chunk sends its chunk 0 in its one
    cycle."""
    vec, q_n = 4, 3
    seed = blocks_seed(9, blocks, max_blocks)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    rows = random_rows(rng, sum(sizes), q_n, vec, 8, dead_rows=dead)
    beats, chunks = expected_out(rows, True, blocks, keep_empty)
    dut = RowBlockBuffer(config(vec, 8, 4), index_width=8, max_blocks=max_blocks)
    takes = []
    row_cycles, x_cycles = run(dut, gather_words(rows, vec, sizes), q_n, True, beats,
                               chunks, seed=seed, blocks=blocks, takes=takes,
                               keep_empty=keep_empty)
    # The model: writer cycles n*Q per block, taken back to back unless its bank is still
    # being read.
    write_end, read_free = [], []      # cycle of each block's last word; bank released
    reader = 0                         # first cycle the reader is free
    t = 0
    exp_rows, exp_x, exp_takes = [], [], []
    m0 = 0
    waited = False
    for b, n in enumerate(sizes):
        if b >= 2:
            waited |= read_free[b - 2] + 1 > t
            t = max(t, read_free[b - 2] + 1)   # the bank is writable the cycle after release
        exp_takes += range(t, t + n * q_n)
        t += n * q_n
        write_end.append(t - 1)
        s = max(reader, t - 1 + 1)
        for m in range(m0, m0 + n):
            sent = ([q for q, (_, smask) in enumerate(rows[m]) if smask]
                    or ([0] if keep_empty else []))
            lastq = sent[-1] if sent else 0
            for _ in range(blocks):
                exp_rows.append(s + 1)
                for q in sent:
                    exp_x.append(s + q + 1)
                s += lastq + 1 if sent else 1
        read_free.append(s - 1)
        reader = s
        m0 += n
    assert takes == exp_takes, (takes, exp_takes)
    assert row_cycles == exp_rows, (row_cycles, exp_rows)
    assert x_cycles == exp_x, (x_cycles, exp_x)
    if blocks > 1:
        assert waited, "the writer should wait for the bank"


@pytest.mark.parametrize("kwargs, message", [
    ({"max_chunks": 0}, "max_chunks must be in"),
    ({"max_chunks": 65}, "max_chunks must be in"),
    ({"max_chunks": 2.0}, "max_chunks must be an integer"),
    ({"index_width": 0}, "index_width must be in"),
    ({"max_blocks": 0}, r"max_blocks must be in \[1, 4096\]"),
    ({"max_blocks": 4097}, r"max_blocks must be in \[1, 4096\]"),
    ({"max_blocks": 2.0}, "max_blocks must be an integer"),
])
def test_parameter_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RowBlockBuffer(config(4, 8), **kwargs)


def test_config_must_be_a_config():
    with pytest.raises(ValueError, match="config must be a Config"):
        RowBlockBuffer({"vec": 4})


@pytest.mark.parametrize("max_blocks, bits", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3),
                                              (4096, 12)])
def test_block_field_and_port(max_blocks, bits):
    """``rows.block`` has ``max(1, ceil_log2(max_blocks))`` bits, ``blocks`` holds
    ``0 .. max_blocks``; the default is one block."""
    assert row_beat_layout(max_blocks).size == 2 + bits
    assert Shape.cast(row_beat_layout(max_blocks)["block"].shape) == unsigned(bits)
    assert row_beat_layout() == row_beat_layout(1)
    dut = RowBlockBuffer(config(4, 8), max_blocks=max_blocks)
    assert dut.max_blocks == max_blocks
    assert len(dut.rows.payload.block) == bits
    assert len(dut.blocks) == max_blocks.bit_length()
    assert RowBlockBuffer(config(4, 8)).max_blocks == 1


def test_blocks_zero_is_an_assertion_failure():
    """``blocks`` outside ``1..max_blocks`` at a pass's start fails the simulation's
    assertion."""
    rows = random_rows(random.Random(3), 2, 2, 4, 8, dead_rows=0.0)
    beats, chunks = expected_out(rows, True)
    dut = RowBlockBuffer(config(4, 8, 4), index_width=8, max_blocks=4)
    with pytest.raises(AssertionError, match="blocks out of 1..max_blocks"):
        run(dut, gather_words(rows, 4), 2, True, beats, chunks, seed=3, blocks=0)


@pytest.mark.parametrize("vec, data_width, max_chunks, max_blocks", [
    (4, 8, 16, 1), (16, 16, 8, 1), (3, 5, 1, 1), (4, 8, 16, 4), (3, 5, 1, 4096),
])
def test_verilog(vec, data_width, max_chunks, max_blocks):
    text = generate_verilog(RowBlockBuffer(config(vec, data_width, 16), max_chunks=max_chunks,
                                           max_blocks=max_blocks), "row_block_buffer")
    assert "module row_block_buffer" in text
    assert "blocks" in text


@pytest.mark.sim
@pytest.mark.parametrize("vec, data_width, max_chunks, max_blocks", [
    (4, 8, 16, 1), (16, 16, 8, 1), (4, 8, 16, 3), (4, 8, 4, 4), (3, 5, 2, 4096),
])
def test_verilator_lint_clean(vec, data_width, max_chunks, max_blocks):
    lint_verilog(generate_verilog(RowBlockBuffer(config(vec, data_width, 16),
                                                 max_chunks=max_chunks, max_blocks=max_blocks),
                                  "row_block_buffer"),
                 "row_block_buffer")
