# amaranth: UnusedElaboratable=no
"""AddressGenerator in Amaranth's simulator: for random and hand-picked conv layers and both
passes, its ``rows`` and ``chunks`` streams equal the host driver's lists (``ArrayPass`` on
all-ones tensors: ``live``, ``live_rows``, ``structure_masks``, ``blocks()``) with the
addresses of the channel-last layout, under random backpressure on both streams; unstalled,
``done`` comes in the cycle ``walk_cycles`` states. Row bands (``maskprop.host.split``: a
band's own top and bottom padding) emit the whole layer's beats of their rows. Plus refused
commands, parameter checks and Verilog generation."""

import dataclasses
import random
import subprocess
from typing import NamedTuple

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module, Shape
from amaranth.sim import Simulator

from maskprop.base.config import Config
from maskprop.flow.verilog import generate_verilog
from maskprop.host.driver import ArrayPass
from maskprop.host.split import RowBand, row_band
from maskprop.hw.address_generator import (ERROR_CYCLES, SETUP_CYCLES, AddressGenerator,
                                           WalkError, reciprocal, walk_cycles)
from maskprop.hw.core_registers import Pass
from maskprop.sim.layer import ConvLayer
from maskprop.tb.stimulus import seed_from_env

PASS_KIND = {"forward": Pass.FORWARD, "backward_data": Pass.BACKWARD_DATA}

# Small arrays: col_block 4 gives several column blocks; vec 4 and 3 leave channel tails (3 is
# not a power of two: ceil(C / vec) by the reciprocal); vec 1 has no tail at all.
CONFIGS = {
    "vec4": Config(vec=4, lanes=1, tiles=1, col_block=4, max_chunks=256, max_cols=16),
    "vec3": Config(vec=3, lanes=1, tiles=1, col_block=2, max_chunks=256, max_cols=16),
    "vec1": Config(vec=1, lanes=1, tiles=1, col_block=8, max_chunks=512, max_cols=16),
}

# Hand-picked shapes: rows without a live chunk (backward-data of the pixels a stride-2 1x1 conv
# never read; forward outputs whose window is all padding), padding beyond R - 1 (backward-data
# pre-steps), 1x1, stride larger than the kernel, non-square images.
LAYERS = [
    ConvLayer(batch=1, in_channels=5, height=5, width=4, out_channels=6, kernel=3, stride=1,
              padding=1, name="3x3-s1"),
    ConvLayer(batch=1, in_channels=3, height=6, width=7, out_channels=9, kernel=3, stride=2,
              padding=1, name="3x3-s2"),
    ConvLayer(batch=2, in_channels=6, height=5, width=5, out_channels=3, kernel=1, stride=2,
              padding=0, name="1x1-s2"),
    ConvLayer(batch=1, in_channels=2, height=3, width=3, out_channels=5, kernel=3, stride=1,
              padding=3, name="3x3-p3"),
    ConvLayer(batch=1, in_channels=3, height=3, width=2, out_channels=2, kernel=1, stride=1,
              padding=2, name="1x1-p2"),
    ConvLayer(batch=1, in_channels=1, height=6, width=5, out_channels=1, kernel=7, stride=2,
              padding=3, name="7x7-s2"),
    ConvLayer(batch=1, in_channels=4, height=7, width=6, out_channels=4, kernel=5, stride=3,
              padding=2, name="5x5-s3"),
    ConvLayer(batch=1, in_channels=9, height=4, width=4, out_channels=7, kernel=2, stride=3,
              padding=0, name="2x2-s3"),
]


def seeded(default: int) -> int:
    seed = seed_from_env(default=default)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    return seed


def random_layer(rng: random.Random, index: int) -> ConvLayer:
    kernel = rng.choice([1, 3, 5, 7])
    padding = rng.randint(0, 3)
    stride = rng.randint(1, 3)
    low = max(1, kernel - 2 * padding)

    def extent():
        return rng.randint(low, low + 3)
    return ConvLayer(batch=rng.randint(1, 2), in_channels=rng.randint(1, 7), height=extent(),
                     width=extent(), out_channels=rng.randint(1, 7), kernel=kernel,
                     stride=stride, padding=padding, name=f"random{index}")


def reference(layer: ConvLayer, pass_name: str, config: Config, base: int,
              addr_width: int = 16):
    """The host's lists for the pass: ``(rows, chunks, live chunks per GEMM row, blocks)``,
    rows and chunks as the tuples the generator's beats are compared as."""
    array_pass = ArrayPass.lower(layer, pass_name, config, A=np.ones(layer.input_shape),
                                 W=np.ones(layer.weight_shape), dZ=np.ones(layer.output_shape))
    live, masks = array_pass.live, array_pass.structure_masks
    blocks = len(array_pass.blocks())
    n, c, h, w = layer.input_shape
    k, ho, wo = layer.out_channels, layer.out_height, layer.out_width
    R, s, p = layer.kernel, layer.stride, layer.padding
    vec = config.vec
    forward = pass_name == "forward"
    out_h, out_w = (ho, wo) if forward else (h, w)
    words = -(-(c if forward else k) // vec)
    assert array_pass.rows == n * out_h * out_w
    assert array_pass.chunks == R * R * words
    rows, chunks = [], []
    for m in range(array_pass.rows):
        image, rest = divmod(m, out_h * out_w)
        y, x = divmod(rest, out_w)
        row_chunks = []
        for q in np.flatnonzero(live[m]):
            r, t, word = np.unravel_index(q, (R, R, words))
            if forward:
                hh, ww = s * y + r - p, s * x + t - p
                assert 0 <= hh < h and 0 <= ww < w
                addr = ((image * h + hh) * w + ww) * words + word
            else:
                u, v = y + r - (R - 1 - p), x + t - (R - 1 - p)
                assert u % s == 0 and v % s == 0
                assert 0 <= u // s < ho and 0 <= v // s < wo
                addr = ((image * ho + u // s) * wo + v // s) * words + word
            row_chunks.append(((base + int(addr)) % (1 << addr_width), int(q),
                               int(masks[m, q]), 0))
        if row_chunks:
            row_chunks[-1] = row_chunks[-1][:3] + (1,)
        assert bool(row_chunks) == bool(array_pass.live_rows[m])
        for b in range(blocks):
            last = m == array_pass.rows - 1 and b == blocks - 1
            rows.append((m, image, y, x, b, int(bool(row_chunks)), int(last)))
            chunks.extend(row_chunks)
    return rows, chunks, live.sum(axis=1), blocks


def command(layer: ConvLayer, pass_name: str, config: Config, base: int = 0, **changes) -> dict:
    """The command of a whole layer's pass; ``changes`` override fields (``pad_top`` and
    ``pad_bottom`` follow a changed ``padding`` unless given: the layer's own rows)."""
    fields = dict(pass_kind=PASS_KIND[pass_name], n=layer.batch, c=layer.in_channels,
                  h=layer.height, w=layer.width, k=layer.out_channels, kernel=layer.kernel,
                  stride=layer.stride, padding=layer.padding, out_h=layer.out_height,
                  out_w=layer.out_width,
                  blocks=-(-(layer.out_channels if pass_name == "forward" else
                             layer.in_channels) // config.col_block),
                  base=base)
    fields.update(changes)
    fields.setdefault("pad_top", fields["padding"])
    fields.setdefault("pad_bottom", fields["padding"])
    return fields


class Run(NamedTuple):
    """One command as the bench saw it: the beats taken (tuples of their fields), the cycles
    (counted from the command's handshake) in which each was taken, the cycle of ``done`` and
    ``error``."""
    rows: list
    chunks: list
    row_cycles: list
    chunk_cycles: list
    done: int
    error: WalkError


def run_commands(dut: AddressGenerator, jobs, seed: int, max_cycles: int = 100_000) -> list:
    """Send each job's command (``(fields, ready_probability)``) once the previous one is done,
    with both output streams ready with that probability in every cycle; a :class:`Run` per
    job. A job that takes ``max_cycles`` hung (per job: a long list of jobs is no hang)."""
    rng = random.Random(seed)
    cmd_layout = dut.command.payload.shape()
    results = []
    top = Module()
    top.submodules.dut = dut
    top.domains.sync = ClockDomain()
    sim = Simulator(top)
    sim.add_clock(1e-8)
    watched = (dut.command.ready, dut.rows.valid, dut.rows.payload.as_value(), dut.chunks.valid,
               dut.chunks.payload.as_value(), dut.done, dut.error, dut.busy)

    async def bench(ctx):
        cycle = 0
        for fields, ready in jobs:
            first = cycle
            ctx.set(dut.command.payload, cmd_layout.const(fields))
            ctx.set(dut.command.valid, 1)
            run, start = Run([], [], [], [], None, None), None
            r_ready = k_ready = None
            while True:
                assert cycle - first < max_cycles, "the address generator hung"
                # Readies are driven only when they change: setting a port costs a settle.
                r_next, k_next = rng.random() < ready, rng.random() < ready
                if r_next != r_ready:
                    ctx.set(dut.rows.ready, r_next)
                    r_ready = r_next
                if k_next != k_ready:
                    ctx.set(dut.chunks.ready, k_next)
                    k_ready = k_next
                (_, _, c_ready, r_valid, row, k_valid, chunk, done, error,
                 busy) = await ctx.tick().sample(*watched)
                if start is None:
                    assert not done and not r_valid and not k_valid
                    if c_ready:
                        assert not busy
                        start = cycle
                        ctx.set(dut.command.valid, 0)
                else:
                    assert busy != done, "busy and done together, or neither"
                    if r_valid and r_ready:
                        run.rows.append(row)
                        run.row_cycles.append(cycle - start)
                    if k_valid and k_ready:
                        run.chunks.append(chunk)
                        run.chunk_cycles.append(cycle - start)
                    if done:
                        assert not r_valid and not k_valid
                        results.append(run._replace(done=cycle - start, error=error))
                        cycle += 1
                        break
                cycle += 1

    sim.add_testbench(bench)
    sim.run()

    def unpacker(layout, names):
        slices = [(layout[name].offset, (1 << Shape.cast(layout[name].shape).width) - 1)
                  for name in names]
        return lambda bits: tuple(bits >> offset & mask for offset, mask in slices)
    row = unpacker(dut.rows.payload.shape(), ("m", "n", "y", "x", "block", "live", "last"))
    chunk = unpacker(dut.chunks.payload.shape(), ("addr", "index", "smask", "last"))
    return [run._replace(rows=[row(bits) for bits in run.rows],
                         chunks=[chunk(bits) for bits in run.chunks]) for run in results]


def schedule(per_row, blocks: int, pre_steps: int):
    """The unstalled cycles of every row beat and chunk (the address generator's docstring):
    row beat ``j`` costs ``max(1, L_j)`` cycles from ``S_0 = SETUP_CYCLES + 3 + pre_steps``;
    its chunks are taken in cycles ``S_j .. S_j + L_j - 1``, its rows beat in ``S_{j-1}``
    (row 0: ``S_0 - 1``)."""
    costs = [int(n) for n in per_row for _ in range(blocks)]
    starts = (np.concatenate(([0], np.cumsum([max(1, n) for n in costs]))) + SETUP_CYCLES + 3 +
              pre_steps)
    rows = [int(starts[0]) - 1] + [int(s) for s in starts[:len(costs) - 1]]
    chunks = [int(s) + i for s, n in zip(starts, costs) for i in range(n)]
    return rows, chunks


class Case(NamedTuple):
    """A legal command and what the walker must do with it: the beats (as :func:`reference`
    gives them), the live chunks of each GEMM row, the column blocks and the pre-steps; run
    unstalled and with both streams ready with probability ``ready``."""
    what: str
    fields: dict
    rows: list
    chunks: list
    per_row: list
    blocks: int
    pre_steps: int
    ready: float


def pre_steps(pass_name: str, kernel: int, padding: int, pad_top: int) -> int:
    """Backward-data's pre-steps: each axis steps to its first tap of output 0, rows from
    ``pad_top``, columns from ``padding``, together (the walker's docstring)."""
    if pass_name == "forward":
        return 0
    return max(0, max(pad_top, padding) + 1 - kernel)


def check_passes(config: Config, layers, seed: int, **widths):
    """Both passes of every layer, each run twice (:func:`check_cases`)."""
    rng = random.Random(seed)
    # 10 address bits: a random base makes some addresses wrap, as they may.
    widths = dict(dict(addr_width=10, dim_width=8, kernel_width=4, stride_width=3,
                       padding_width=3), **widths)
    cases = []
    for layer in layers:
        for pass_name in PASS_KIND:
            base = rng.randrange(1 << widths["addr_width"])
            rows, chunks, per_row, blocks = reference(layer, pass_name, config, base,
                                                      widths["addr_width"])
            pre = pre_steps(pass_name, layer.kernel, layer.padding, layer.padding)
            cases.append(Case(f"{layer.label} {pass_name}", command(layer, pass_name, config,
                                                                     base),
                              rows, chunks, per_row, blocks, pre, rng.choice([0.5, 0.8])))
    check_cases(config, cases, seed, widths)


def check_cases(config: Config, cases, seed: int, widths: dict):
    """Every case run twice: unstalled (every beat in the cycle :func:`schedule` gives,
    ``done`` in the cycle ``walk_cycles`` gives) and with random backpressure on both streams
    (the same beats, later)."""
    jobs, expected = [], []
    for case in cases:
        for ready in (1.0, case.ready):
            jobs.append((case.fields, ready))
            expected.append((f"{case.what} ready={ready}", ready, case.rows, case.chunks,
                             walk_cycles(case.per_row, case.blocks, case.pre_steps),
                             schedule(case.per_row, case.blocks, case.pre_steps)))
    dut = AddressGenerator(config, **widths)
    for (what, ready, rows, chunks, cycles, (row_cycles, chunk_cycles)), run in zip(
            expected, run_commands(dut, jobs, seed)):
        assert run.error == WalkError.NONE, what
        assert run.rows == rows, what
        assert run.chunks == chunks, what
        if ready == 1.0:
            assert run.done == cycles, f"{what}: done in cycle {run.done}, not {cycles}"
            assert run.row_cycles == row_cycles, what
            assert run.chunk_cycles == chunk_cycles, what
        else:
            assert run.done >= cycles, what
        check_coupling(run, rows, what)


def check_coupling(run: Run, rows, what: str):
    """How far the streams drift apart (the docstring's promise): row ``j + 1``'s chunks come
    after row ``j``'s beat, and row ``j + 2``'s beat after row ``j``'s chunks."""
    groups, group = [], []
    for chunk, cycle in zip(run.chunks, run.chunk_cycles):
        group.append(cycle)
        if chunk[3]:                                # the row's last chunk
            groups.append(group)
            group = []
    per_beat = [groups.pop(0) if row[5] else [] for row in rows]
    assert not groups and not group, what
    for j, cycles in enumerate(per_beat):
        if j + 1 < len(per_beat) and per_beat[j + 1]:
            assert min(per_beat[j + 1]) > run.row_cycles[j], what
        if j + 2 < len(per_beat) and cycles:
            assert run.row_cycles[j + 2] > max(cycles), what


def test_hand_picked_layers():
    check_passes(CONFIGS["vec4"], LAYERS, seeded(1))


@pytest.mark.parametrize("name, hand_picked", [("vec4", ()), ("vec3", (1, 4, 6)),
                                                ("vec1", (2, 3, 4))])
def test_random_layers(name, hand_picked):
    """Random layers (and with the other chunk widths, a few hand-picked ones)."""
    seed = seeded(100 + list(CONFIGS).index(name))
    rng = random.Random(seed)
    layers = [LAYERS[i] for i in hand_picked] + [random_layer(rng, i) for i in range(6)]
    check_passes(CONFIGS[name], layers, seed)


def test_default_widths():
    """The widths the core uses (16-bit dimensions, 8-bit geometry, 24-bit addresses)."""
    check_passes(CONFIGS["vec4"], [LAYERS[2], LAYERS[4]], seeded(7), addr_width=24,
                 dim_width=16, kernel_width=8, stride_width=8, padding_width=8)


# --- row bands (maskprop.host.split): asymmetric row padding ---------------------------------

# The band tests' widths: pad_top reaches R + s - 2 = 8 in backward-data (R 7, stride 3).
BAND_WIDTHS = dict(addr_width=10, dim_width=8, kernel_width=4, stride_width=3, padding_width=4)


def band_case(layer: ConvLayer, pass_name: str, config: Config, band: RowBand, base: int,
              ready: float, addr_width: int) -> Case:
    """The command of ``band`` (one image: ``n`` 1) and what it must emit: the whole layer's
    row beats of result rows ``band.out_start .. band.out_stop - 1`` with their chunks
    unchanged (index, smask, last), renumbered from the band's first row (``m``, ``y``,
    ``last``), and the chunks' addresses moved by the ``in_start`` rows of the broadcast input
    the band's scratchpad does not hold."""
    forward = pass_name == "forward"
    rows, chunks, per_row, blocks = reference(layer, pass_name, config, 0, addr_width=32)
    out_w = layer.out_width if forward else layer.width
    words = -(-(layer.in_channels if forward else layer.out_channels) // config.vec)
    row_words = (layer.width if forward else layer.out_width) * words
    shift = band.in_start * row_words
    band_rows, band_chunks, band_per_row = [], [], []
    cursor = 0                                   # reference's chunks run in row-beat order
    for m, image, y, x, b, live, _ in rows:
        count = int(per_row[m]) if live else 0
        row_chunks, cursor = chunks[cursor:cursor + count], cursor + count
        if not band.out_start <= y < band.out_stop:
            continue
        if b == 0:
            band_per_row.append(per_row[m])
        last = y == band.out_stop - 1 and x == out_w - 1 and b == blocks - 1
        band_rows.append((m - band.out_start * out_w, image, y - band.out_start, x, b, live,
                          int(last)))
        band_chunks.extend(((base + addr - shift) % (1 << addr_width), index, smask, end)
                           for addr, index, smask, end in row_chunks)
    assert cursor == len(chunks)
    fields = command(layer, pass_name, config, base, pad_top=band.pad_top,
                     pad_bottom=band.pad_bottom,
                     **({"h": band.in_rows, "out_h": band.out_rows} if forward else
                        {"h": band.out_rows, "out_h": band.in_rows}))
    pre = pre_steps(pass_name, layer.kernel, layer.padding, band.pad_top)
    return Case(f"{layer.label} {pass_name} {band}", fields, band_rows, band_chunks,
                band_per_row, blocks, pre, ready)


def bands_of(layer: ConvLayer, pass_name: str, spans) -> list:
    """The bands of ``spans`` (``(start, stop)`` pairs) that :func:`row_band` makes: it refuses
    only forward bands whose first row sees nothing but bottom padding (the splitter gives
    those rows to the band before) or whose every window lies in the top padding (``R <= p``:
    they read no input row, so no command describes them; the splitter gives those rows to the
    band after)."""
    bands = []
    for start, stop in spans:
        try:
            bands.append(row_band(layer, pass_name, start, stop))
        except ValueError as error:
            assert pass_name == "forward", error
            if "only top padding" in str(error):
                assert (stop - 1) * layer.stride + layer.kernel <= layer.padding, error
            else:
                assert "only bottom padding" in str(error), error
    return bands


def result_rows(layer: ConvLayer, pass_name: str) -> int:
    return layer.out_height if pass_name == "forward" else layer.height


def check_bands(config: Config, layers, spans, seed: int):
    """Every band ``spans(rng, layer, pass_name)`` gives, of both passes of every layer (at
    batch 1), against the whole layer's lists (:func:`band_case`, :func:`check_cases`)."""
    rng = random.Random(seed)
    cases = []
    for layer in layers:
        layer = dataclasses.replace(layer, batch=1)
        for pass_name in PASS_KIND:
            for band in bands_of(layer, pass_name, spans(rng, layer, pass_name)):
                cases.append(band_case(layer, pass_name, config, band,
                                       rng.randrange(1 << BAND_WIDTHS["addr_width"]),
                                       rng.choice([0.5, 0.8]), BAND_WIDTHS["addr_width"]))
    check_cases(config, cases, seed, BAND_WIDTHS)
    return cases


def test_bands_of_hand_picked_layers():
    """Every one-row band and the top and bottom halves of the hand-picked layers; they hold
    what the bands are there for: top padding beyond R - 1 whose pre-steps outnumber the
    columns', the reverse, top and bottom padding unequal, and dead rows."""
    def spans(rng, layer, pass_name):
        rows = result_rows(layer, pass_name)
        half = max(1, rows // 2)
        return [(i, i + 1) for i in range(rows)] + [(0, half), (half, rows)] * (half < rows)
    cases = check_bands(CONFIGS["vec4"], LAYERS, spans, seeded(11))
    backward = [case for case in cases if case.fields["pass_kind"] == Pass.BACKWARD_DATA]
    row_pre = [case.fields["pad_top"] + 1 - case.fields["kernel"] for case in backward]
    col_pre = [case.fields["padding"] + 1 - case.fields["kernel"] for case in backward]
    assert any(r > max(0, c) for r, c in zip(row_pre, col_pre))
    assert any(c > max(0, r) for r, c in zip(row_pre, col_pre))
    assert any(case.fields["pad_top"] != case.fields["pad_bottom"] for case in cases)
    for pass_kind in PASS_KIND.values():
        assert any(not row[5] for case in cases if case.fields["pass_kind"] == pass_kind
                   for row in case.rows)


def random_band_layer(rng: random.Random, index: int) -> ConvLayer:
    """Kernels 1..7, strides 1..3, padding 0..R, one image, several rows to split."""
    kernel = rng.randint(1, 7)
    padding = rng.randint(0, kernel)
    low = max(1, kernel - 2 * padding)
    return ConvLayer(batch=1, in_channels=rng.randint(1, 9), height=rng.randint(low, low + 10),
                     width=rng.randint(low, low + 4), out_channels=rng.randint(1, 9),
                     kernel=kernel, stride=rng.randint(1, 3), padding=padding,
                     name=f"band{index}")


def random_spans(rng: random.Random, layer: ConvLayer, pass_name: str) -> list:
    """A random partition of the result rows into bands (as the splitter makes) and two random
    bands, any rows."""
    rows = result_rows(layer, pass_name)
    cuts = sorted(rng.sample(range(1, rows), min(rows - 1, rng.randint(0, 3))))
    edges = [0, *cuts, rows]
    spans = list(zip(edges, edges[1:]))
    for _ in range(2):
        start = rng.randrange(rows)
        spans.append((start, rng.randint(start + 1, rows)))
    return spans


@pytest.mark.parametrize("name", CONFIGS)
def test_bands_of_random_layers(name):
    """Random layers, each pass split into random row bands: every band's walk is the whole
    layer's, restricted to its rows, beat by beat, cycle by cycle unstalled."""
    seed = seeded(200 + list(CONFIGS).index(name))
    rng = random.Random(seed)
    check_bands(CONFIGS[name], [random_band_layer(rng, i) for i in range(8)], random_spans,
                seed)


def test_reference_covers_the_cases():
    """The hand-picked layers hold what they are there for: dead rows in both passes, padding
    beyond R - 1, channel tails, several column blocks."""
    config = CONFIGS["vec4"]
    dead = {"forward": False, "backward_data": False}
    for layer in LAYERS:
        for pass_name in PASS_KIND:
            rows, _, _, blocks = reference(layer, pass_name, config, 0)
            dead[pass_name] |= any(not live for *_, live, _ in rows)
    assert all(dead.values())
    assert any(layer.padding > layer.kernel - 1 for layer in LAYERS)
    assert any(layer.in_channels % 4 and layer.out_channels % 4 for layer in LAYERS)
    assert max(reference(layer, "forward", config, 0)[3] for layer in LAYERS) > 1


def test_refused_commands():
    """Illegal commands: no beat, ``done`` in cycle ERROR_CYCLES with the reason, and a legal
    command after them runs normally (the error is cleared)."""
    config = CONFIGS["vec4"]
    layer = LAYERS[0]
    big = ConvLayer(batch=1, in_channels=16 * 4 + 1, height=7, width=7, out_channels=4,
                    kernel=3, stride=1, padding=1)                # 9 * 17 chunks > 128
    cases = [
        (command(layer, "forward", config, pass_kind=Pass.BACKWARD_WEIGHT), WalkError.BAD_PASS),
        (command(layer, "forward", config, n=0), WalkError.ZERO_DIM),
        (command(layer, "backward_data", config, k=0), WalkError.ZERO_DIM),
        (command(layer, "forward", config, stride=0), WalkError.ZERO_DIM),
        (command(layer, "forward", config, blocks=0), WalkError.ZERO_DIM),
        (command(layer, "forward", config, kernel=7, padding=0), WalkError.NO_OUTPUT),
        (command(layer, "forward", config, out_h=layer.out_height + 1), WalkError.OUTPUT_SIZE),
        (command(layer, "backward_data", config, out_w=layer.out_width - 1),
         WalkError.OUTPUT_SIZE),
        (command(big, "forward", config), WalkError.REDUCTION),
    ]
    small = Config(vec=4, lanes=1, tiles=1, col_block=4, max_chunks=128, max_cols=16)
    jobs = [(fields, 0.5) for fields, _ in cases] + [(command(layer, "forward", small), 1.0)]
    dut = AddressGenerator(small, addr_width=16, dim_width=8, kernel_width=4, stride_width=3,
                           padding_width=3)
    runs = run_commands(dut, jobs, seed=0)
    for (fields, reason), run in zip(cases, runs):
        assert (run.rows, run.chunks, run.done, run.error) == ([], [], ERROR_CYCLES,
                                                               reason), fields
    rows, chunks, per_row, blocks = reference(layer, "forward", small, 0)
    assert (runs[-1].rows, runs[-1].chunks, runs[-1].done, runs[-1].error) == (
        rows, chunks, walk_cycles(per_row, blocks), WalkError.NONE)


def test_checks_use_the_rows_own_padding():
    """The checks take the rows' padding from ``pad_top + pad_bottom`` and the columns' from
    ``2 * padding``: each refusal below is one the other axis' padding would not explain, and
    the legal command after them is one symmetric row padding ``padding`` would refuse."""
    config = CONFIGS["vec4"]
    layer = LAYERS[0]                                   # 3x3, stride 1, padding 1, 5 x 4
    def forward(**changes):
        return command(layer, "forward", config, **changes)
    cases = [
        # Rows 1 + 0 + 1 < 3, though 1 + 2*padding = 3 would do.
        (forward(h=1, pad_top=0, pad_bottom=1, out_h=1), WalkError.NO_OUTPUT),
        # Columns 4 + 2*1 < 7, though the rows' padding would give 4 + 3 + 3.
        (forward(kernel=7, pad_top=3, pad_bottom=3, out_h=5, out_w=1), WalkError.NO_OUTPUT),
        # out_h of symmetric padding (5): with 1 + 0 rows of padding it is 4.
        (forward(pad_top=1, pad_bottom=0), WalkError.OUTPUT_SIZE),
        (forward(pad_top=0, pad_bottom=1, out_h=4), WalkError.NONE),
        # Backward-data: h and out_h are dA's and dZ's rows, the same relation.
        (command(layer, "backward_data", config, pad_top=0, pad_bottom=1),
         WalkError.OUTPUT_SIZE),
        (command(layer, "backward_data", config, pad_top=2, pad_bottom=0, out_h=4),
         WalkError.OUTPUT_SIZE),
        (command(layer, "backward_data", config, pad_top=2, pad_bottom=0), WalkError.NONE),
        # The columns keep padding 1: out_w 4, whatever the rows' padding.
        (forward(pad_top=2, pad_bottom=2, out_h=7, out_w=6), WalkError.OUTPUT_SIZE),
        (forward(pad_top=2, pad_bottom=2, out_h=7), WalkError.NONE),
    ]
    # Legal only with asymmetric rows: one input row, two rows of top padding, no column
    # padding: one output pixel, which reads the row with kernel row 2 only.
    only_band = forward(h=1, w=3, padding=0, pad_top=2, pad_bottom=0, out_h=1, out_w=1)
    jobs = [(fields, 0.5) for fields, _ in cases] + [(only_band, 1.0)]
    dut = AddressGenerator(config, addr_width=16, dim_width=8, kernel_width=4,
                           stride_width=3, padding_width=3)
    runs = run_commands(dut, jobs, seed=seeded(3))
    for (fields, reason), run in zip(cases, runs):
        assert run.error == reason, fields
        if reason != WalkError.NONE:
            assert (run.rows, run.chunks, run.done) == ([], [], ERROR_CYCLES), fields
        else:
            assert len(run.rows) == fields["out_h"] * fields["out_w"] * fields["blocks"]
    blocks, words = only_band["blocks"], 2                # C = 5: 2 words a pixel
    assert runs[-1].error == WalkError.NONE
    assert runs[-1].rows == [(0, 0, 0, 0, b, 1, int(b == blocks - 1)) for b in range(blocks)]
    chunks = [(t * words + word, (2 * 3 + t) * words + word, 0b1111 if word == 0 else 0b0001,
               int(t == 2 and word == 1)) for t in range(3) for word in range(words)]
    assert runs[-1].chunks == chunks * blocks
    assert runs[-1].done == walk_cycles([len(chunks)], blocks)


@pytest.mark.parametrize("divisor", range(1, 65))
def test_reciprocal_is_exact(divisor):
    magic, shift = reciprocal(divisor, 17)
    x = np.arange(1 << 17, dtype=np.int64)
    assert np.array_equal((x * magic) >> shift, x // divisor)


@pytest.mark.parametrize("name, value", [
    ("addr_width", 0), ("addr_width", 65), ("dim_width", 1), ("dim_width", 33),
    ("kernel_width", 0), ("kernel_width", 9), ("stride_width", 0), ("stride_width", 9),
    ("padding_width", 0), ("padding_width", 9),
])
def test_parameters_are_checked(name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be in \["):
        AddressGenerator(Config(), **{name: value})


def test_config_is_checked():
    with pytest.raises(ValueError, match="config must be a Config"):
        AddressGenerator(16)


def test_layouts_follow_the_parameters():
    dut = AddressGenerator(Config(vec=8, col_block=32, max_chunks=64), addr_width=20,
                           dim_width=16, kernel_width=4, stride_width=3, padding_width=5)
    def width(port, field):
        return Shape.cast(port.payload.shape()[field].shape).width
    assert width(dut.command, "kernel") == 4
    assert width(dut.command, "stride") == 3
    assert width(dut.command, "padding") == 5
    assert width(dut.command, "pad_top") == width(dut.command, "pad_bottom") == 5
    assert width(dut.command, "base") == 20
    assert width(dut.command, "blocks") == 12               # ceil(65535 / 32) = 2048 blocks
    assert width(dut.rows, "block") == 12
    assert width(dut.chunks, "addr") == 20
    assert width(dut.chunks, "index") == 6                  # the tile array's index
    assert width(dut.chunks, "smask") == 8
    generate_verilog(dut, "address_generator")              # elaborated: no unused warning


def test_generates_verilog():
    text = generate_verilog(AddressGenerator(Config()), "address_generator")
    assert "module address_generator" in text
    for port in ("command__valid", "rows__payload", "chunks__payload", "done", "error"):
        assert port in text


LINTED = {
    "default": (Config(), {}),
    "narrowest": (Config(vec=3, lanes=1, tiles=1, col_block=2, max_chunks=1, max_cols=4),
                  dict(addr_width=1, dim_width=2, kernel_width=1, stride_width=1,
                       padding_width=1)),
    "widest": (Config(vec=64, lanes=1, tiles=1, col_block=64, max_chunks=4096, max_cols=4),
               dict(addr_width=64, dim_width=32)),
}


@pytest.mark.sim
@pytest.mark.parametrize("name", LINTED)
def test_verilator_lint_clean(name, tmp_path):
    """``verilator --lint-only -Wall`` with the repository's waivers, at the default and at
    the extreme widths."""
    from maskprop.flow.toolchain import verilator_executable
    from maskprop.flow.verilog import write_verilog
    from maskprop.tb.runner import WAIVERS
    config, widths = LINTED[name]
    source = write_verilog(AddressGenerator(config, **widths), "address_generator",
                           tmp_path / "address_generator.v")
    lint = subprocess.run([str(verilator_executable()), "--lint-only", "-Wall", str(WAIVERS),
                           str(source)], capture_output=True, text=True)
    assert lint.returncode == 0 and "%Warning" not in lint.stderr, lint.stderr
