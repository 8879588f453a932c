# amaranth: UnusedElaboratable=no
"""maskprop.sim.data_movement: DRAM bytes per tensor against the core's own sizes and memory
images, every event count against a direct loop over the host driver's streams (and the tile
array RTL's counters where it has them), the energy table against its published source, and the
bandwidth arithmetic."""

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from maskprop.base.config import FPGA_SMALL, Config, CoreConfig
from maskprop.host.core_driver import CoreJob, core_pass_shape, weight_gradient_matrix
from maskprop.host.driver import ArrayPass
from maskprop.host.memory_layout import backward_data_weights, channel_words, pack
from maskprop.host.split import plan_pass
from maskprop.sim import data_movement as dm
from maskprop.sim.cycle_model import IssuedChunks
from maskprop.sim.layer import ConvLayer
from maskprop.tb.stimulus import random_conv_tensors, structural_layers

LAYERS = [
    *structural_layers(),
    # More columns than a block and than the tiles: several blocks and replays.
    ConvLayer(batch=1, in_channels=12, height=4, width=4, out_channels=19, kernel=3, stride=1,
              padding=1, name="wide"),
]
#: FPGA_SMALL's array (blocks of 8 columns, 4 tiles) with buffers for every layer above.
SMALL = replace(FPGA_SMALL, max_chunks=32, max_cols=128)


def tensors(layer, seed=0, density=0.4):
    """``A``, ``W``, ``dZ``: ``A`` and ``dZ`` ReLU-sparse, ``W`` without zeros (the tile array
    does not skip zeros of ``Y``: with none, sparse mode's MACs are the nonzero products)."""
    A, W, dZ = random_conv_tensors(np.random.default_rng(seed), layer, density, data_max=100)
    return A, np.where(W == 0, 1, W), dZ


# --- DRAM traffic -------------------------------------------------------------------------------

def random_layers(count, seed):
    rng = np.random.default_rng(seed)
    layers = []
    for index in range(count):
        kernel = int(rng.choice([1, 3, 5]))
        size = int(rng.integers(kernel, 9))
        layers.append(ConvLayer(batch=int(rng.integers(1, 3)),
                                in_channels=int(rng.integers(1, 40)), height=size, width=size,
                                out_channels=int(rng.integers(1, 40)), kernel=kernel,
                                stride=int(rng.choice([1, 2, 3])),
                                padding=int(rng.integers(0, kernel)), name=f"r{index}"))
    return layers


@pytest.mark.parametrize("vec, lanes, data_width", [(16, 4, 16), (8, 4, 8), (4, 2, 12),
                                                    (16, 1, 24), (32, 4, 16)])
def test_bytes_per_tensor_are_the_cores_sizes_and_memory_images(vec, lanes, data_width):
    """Each tensor's words are core_pass_shape's (scratchpad, Y buffer, output) and its bytes
    the length of memory_layout.pack of that tensor (channels padded to vec, 8/16/32-bit
    containers); the core's own CoreJob places exactly these images in memory and reads the
    output's bytes, which tests/test_core.py holds the RTL's DMA counters to."""
    config = Config(vec=vec, lanes=lanes, data_width=data_width,
                    acc_width=64 if data_width > 16 else 48)
    core = CoreConfig(replace(config, max_chunks=4096, max_cols=4096), x_words=65536)
    for layer in random_layers(6, seed=vec * 100 + data_width):
        rng = np.random.default_rng(1)
        A, W, dZ = random_conv_tensors(rng, layer, 0.5, data_max=(1 << (data_width - 1)) - 1)
        for pass_name in ("forward", "backward_data"):
            shape = core_pass_shape(layer, pass_name, vec)
            for dense in (True, False):
                traffic = dm.pass_traffic(layer, pass_name, config, dense=dense)
                moved = traffic.by_tensor()
                words = {t.role: t.words for t in traffic.tensors}
                assert words["X scratchpad"] == shape.x_words
                assert words["Y buffer"] == shape.y_words
                assert words["output"] == shape.out_words
                job = CoreJob(layer, pass_name, core, A=A, W=W, dZ=dZ, dense=dense)
                images = dict(zip(("A", "W", "dZ"), job.memory().values()))
                if pass_name == "forward":
                    expected = {("A", "read"): len(pack(A, vec, data_width)),
                                ("W", "read"): len(pack(W, vec, data_width)),
                                ("Z", "write"): len(pack(dZ, vec, data_width))}
                    assert moved[("A", "read")] == len(images["A"])
                    assert moved[("W", "read")] == len(images["W"])
                else:
                    expected = {("dZ", "read"): len(pack(dZ, vec, data_width)),
                                ("Wt", "read"): len(pack(backward_data_weights(W), vec,
                                                         data_width)),
                                ("dA", "write"): len(pack(A, vec, data_width))}
                    assert moved[("dZ", "read")] == len(images["dZ"])
                    assert moved[("Wt", "read")] == len(images["W"])
                    if not dense:               # sparse with the output mask reads A
                        expected[("A", "read")] = len(images["A"])
                assert moved == expected, (layer, pass_name, dense)
                assert moved[next(k for k in moved if k[1] == "write")] == job.out_bytes
                assert traffic.read_bytes == sum(v for k, v in moved.items() if k[1] == "read")
                assert traffic.written_bytes == job.out_bytes
                assert traffic.total_bytes == traffic.read_bytes + traffic.written_bytes


def test_output_mask_traffic_and_its_bitmap():
    layer = LAYERS[0]
    config = Config()
    A, _, _ = tensors(layer)
    sparse = dm.pass_traffic(layer, "backward_data", config, dense=False)
    dense = dm.pass_traffic(layer, "backward_data", config, dense=True)
    unmasked = dm.pass_traffic(layer, "backward_data", config, dense=False, output_mask=False)
    image = len(pack(A, config.vec, config.data_width))
    assert sparse.mask_bytes == image and sparse.total_bytes - dense.total_bytes == image
    assert dense.mask_bytes == unmasked.mask_bytes == 0
    assert dense.mask_bitmap_bytes == unmasked.mask_bitmap_bytes == 0
    assert unmasked.total_bytes == dense.total_bytes
    # The bitmap: one bit per element of A's channel-padded layout, packed into bytes.
    n, c, h, w = layer.input_shape
    padded = np.zeros((n, h, w, -(-c // config.vec) * config.vec), dtype=bool)
    padded[..., :c] = A.transpose(0, 2, 3, 1) != 0
    assert sparse.mask_bitmap_bytes == len(np.packbits(padded)) == image // 16
    assert sparse.total_bytes_with_bitmap == dense.total_bytes + image // 16
    # Bitmaps are whole bytes: 3 one-channel pixels with vec 1 take one byte, not 3/8.
    tiny = ConvLayer(batch=1, in_channels=1, height=1, width=3, out_channels=1, kernel=1,
                     stride=1, padding=0)
    assert dm.mask_bitmap_bytes(tiny, 1) == 1


@pytest.mark.parametrize("operand", ["a", "dz"])
def test_backward_weight_traffic_in_one_command(operand):
    """Backward-weight in one command reads A and dZ once each and writes dW once, as the
    core lays it out (a row per broadcast row): the bytes of the memory images CoreJob
    places and of the result it reads back."""
    layer = LAYERS[1]
    config = Config(vec=8, lanes=4, data_width=8, acc_width=32)
    core = CoreConfig(replace(config, max_chunks=4096, max_cols=4096), x_words=65536)
    A, W, dZ = tensors(layer)
    job = CoreJob(layer, "backward_weight", core, A=A, W=W, dZ=dZ, dense=True, operand=operand)
    assert len(job.commands) == 1
    for dense in (True, False):
        for on in (None, core):
            traffic = dm.pass_traffic(layer, "backward_weight", config, dense=dense, core=on,
                                      operand=operand)
            assert traffic.by_tensor() == {
                ("A", "read"): len(pack(A, 8, 8)), ("dZ", "read"): len(pack(dZ, 8, 8)),
                ("dW", "write"): len(pack(weight_gradient_matrix(W, operand), 8, 8))}
            assert traffic.by_tensor()[("dW", "write")] == job.out_bytes
            assert traffic.words("X scratchpad") == core_pass_shape(
                layer, "backward_weight", 8, operand).x_words
            assert traffic.words("Y buffer") == 0 and traffic.commands == 1
            assert traffic.mask_bitmap_bytes == 0


#: A small core that splits backward-weight into output-channel groups and parts of its
#: reduction (tests/test_split.py's).
WEIGHT_CORE = CoreConfig(Config(vec=4, lanes=2, tiles=2, col_block=4, max_chunks=64,
                                max_cols=16, y_words=256, data_width=16), x_words=128,
                         row_block_chunks=4)


def test_backward_weight_traffic_on_a_core_is_its_commands():
    """Split on a core, backward-weight moves what its commands move: dZ once, per
    output-channel group every A row its windows read, dW once in the core's layout, and
    64-bit partial sums (each result beat's ``tiles`` of them in whole words) written by
    every part but the last and read by every part but the first; none in one part."""
    config, vec, size = WEIGHT_CORE.array, 4, 8
    beat = -(-config.tiles * 64 // (size * 8))
    assert beat == 2 and WEIGHT_CORE.bus_bytes == size
    checked = grouped = parted = 0
    for layer in [*LAYERS, *random_layers(30, seed=12)]:
        for operand in ("a", "dz"):
            try:
                commands = plan_pass(layer, "backward_weight", WEIGHT_CORE, operand=operand)
            except ValueError:
                continue
            groups = sorted({c.columns for c in commands}, key=lambda columns: columns.start)
            parts = len(commands) // len(groups)
            taps_c = layer.kernel ** 2 * layer.in_channels
            rows, cols = ((taps_c, layer.out_channels) if operand == "a"
                          else (layer.out_channels, taps_c))
            read_rows = {o * layer.stride - layer.padding + r for o in range(layer.out_height)
                         for r in range(layer.kernel)} & set(range(layer.height))
            a_words = (layer.batch * len(read_rows) * layer.width
                       * channel_words(layer.in_channels, vec))
            for dense in (True, False):
                traffic = dm.pass_traffic(layer, "backward_weight", config, dense=dense,
                                          core=WEIGHT_CORE, operand=operand)
                assert traffic == dm.summed_traffic([
                    dm.command_traffic(layer, c, config, dense=dense) for c in commands])
                assert traffic.commands == len(commands)
                moved = {(t.tensor, t.role, t.direction): t.words for t in traffic.tensors}
                assert all(t.bytes == t.words * size for t in traffic.tensors)
                assert moved.pop(("dZ", "X scratchpad", "read")) == dm.tensor_words(
                    layer, "dZ", vec)
                assert moved.pop(("A", "X scratchpad", "read")) >= len(groups) * a_words
                assert moved.pop(("dW", "output", "write")) == rows * channel_words(cols, vec)
                # A broadcast: each group's columns; dZ broadcast: all R*R*C of them.
                widths = [len(columns) for columns in groups] if operand == "a" else [cols]
                sums = (parts - 1) * sum(rows * -(-width // config.tiles) * beat
                                         for width in widths)
                assert moved == ({} if parts == 1 else {
                    ("dW sums", "partial sums", "read"): sums,
                    ("dW sums", "partial sums", "write"): sums})
            checked += 1
            grouped += len(groups) > 1
            parted += parts > 1
    assert checked > 20 and grouped > 3 and parted > 10


def test_tensor_words_refuses_an_unknown_tensor():
    with pytest.raises(ValueError, match="tensor must be one of A, W, Wt"):
        dm.tensor_words(LAYERS[0], "Y", 16)
    with pytest.raises(ValueError, match="pass must be one of"):
        dm.pass_traffic(LAYERS[0], "sideways", Config(), dense=True)


# --- events against direct loops ----------------------------------------------------------------

def loop_counts(array_pass: ArrayPass, dense: bool) -> dict:
    """Every event by walking the host driver's streams the way hw/tile_array.py does: each
    (sent row, block) takes the row's live chunks for its first group and stores the ones a
    replay needs; each further group replays the stored ones; each chunk a group passes is read
    from the Y buffer by each tile enabled in the group and issues its set mask bits on each."""
    config = array_pass.config
    masks, live = array_pass.masks(dense), array_pass.live
    wanted = array_pass.wanted(dense)
    counts = dict.fromkeys(("macs", "chunks", "x_reads", "row_buffer_writes",
                            "row_buffer_reads", "y_reads", "outputs"), 0)
    for m in range(array_pass.rows):
        sent = [k for k in range(array_pass.chunks) if live[m, k]]
        if not sent:
            continue
        bits = {k: bin(int(masks[m, k])).count("1") for k in sent}
        stored = []
        for k in sent:
            keep = dense or bits[k] > 0 or (k == sent[-1] and not stored)
            if keep:
                stored.append(k)
        for base, width in array_pass.blocks():
            columns = [j for j in range(base, base + width) if wanted[m, j]]
            groups = [columns[g:g + config.tiles]
                      for g in range(0, len(columns), config.tiles)] or [[]]
            for index, group in enumerate(groups):
                passed = sent if index == 0 else stored
                if index == 0:
                    counts["x_reads"] += len(sent)
                    counts["row_buffer_writes"] += len(stored)
                else:
                    counts["row_buffer_reads"] += len(stored)
                counts["chunks"] += len(passed)
                for k in passed:
                    counts["y_reads"] += len(group)
                    counts["macs"] += bits[k] * len(group)
                counts["outputs"] += len(group)
    return counts


def all_lowerings(layer, config, seed):
    A, W, dZ = tensors(layer, seed)
    for pass_name in ("forward", "backward_data", "backward_weight"):
        for orientation in (("dz", "a") if pass_name == "backward_weight" else ("dz",)):
            yield ArrayPass.lower(layer, pass_name, config, A=A, W=W, dZ=dZ,
                                  x_operand=orientation)


@pytest.mark.parametrize("config", [SMALL, Config(vec=8, lanes=3, tiles=3, col_block=5,
                                                  max_chunks=64, max_cols=128)],
                         ids=["small", "odd"])
@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
def test_event_counts_equal_direct_loops(layer, config):
    for index, array_pass in enumerate(all_lowerings(layer, config, seed=len(layer.name))):
        gemm = array_pass.gemm
        for dense in (True, False):
            events = dm.pass_events(gemm, config, dense=dense)
            expected = loop_counts(array_pass, dense)
            label = (layer.name, gemm.pass_name, gemm.orientation, dense)
            assert {key: getattr(events, key) for key in expected} == expected, label
            # The x stream the host sends the tile array: one beat per X scratchpad read.
            assert events.x_reads == len(list(array_pass.x_payloads(dense))), label
            # The Y buffer's fill is TileArray.load: every chunk of every column.
            assert events.y_fill_words == len(list(array_pass.load_payloads())), label
            assert events.chunks_per_row == array_pass.chunks, label
            # The functions the docstrings name, one by one, on the cycle model's chunks.
            issued = IssuedChunks.of(gemm, config, dense=dense)
            wanted = array_pass.wanted(dense)
            assert dm.issued_macs(issued, wanted) == events.macs
            assert dm.array_chunks(issued, wanted, config) == events.chunks
            assert dm.outputs_computed(issued, wanted) == events.outputs
            assert (dm.kept_chunks(issued) <= dm.live_chunks(issued)).all()
            # Without zeros of Y, sparse mode issues exactly the nonzero MACs of the metrics.
            if gemm.pass_name != "backward_weight" and not dense:
                assert events.macs == array_pass.estimate().nonzero_macs, label


def test_fills_and_outputs_are_the_tensors_words():
    layer, config = LAYERS[1], Config(vec=16)
    for array_pass in all_lowerings(layer, config, seed=3):
        gemm = array_pass.gemm
        events = dm.pass_events(gemm, config, dense=False)
        source = {"forward": "A", "backward_data": "dZ"}.get(
            gemm.pass_name, "dZ" if gemm.orientation == "dz" else "A")
        output = {"forward": "Z", "backward_data": "dA", "backward_weight": "dW"}[gemm.pass_name]
        assert events.x_fill_words == dm.tensor_words(layer, source, 16)
        assert events.output_words == dm.tensor_words(layer, output, 16)
        if gemm.pass_name != "backward_weight":
            shape = core_pass_shape(layer, gemm.pass_name, 16)
            assert (events.x_fill_words, events.y_fill_words, events.output_words) == \
                (shape.x_words, shape.y_words, shape.out_words)


def test_pass_events_refuses_another_vec():
    A, W, dZ = tensors(LAYERS[0])
    array_pass = ArrayPass.lower(LAYERS[0], "forward", FPGA_SMALL, A=A, W=W, dZ=dZ)
    with pytest.raises(ValueError, match="lowered for vec=16"):
        dm.pass_events(array_pass.gemm, Config(vec=8), dense=True)


@pytest.mark.parametrize("pass_name, dense", [("forward", False), ("backward_data", False),
                                              ("backward_data", True),
                                              ("backward_weight", True)])
def test_event_counts_equal_the_tile_arrays_counters(pass_name, dense):
    """The tile array RTL in Amaranth's simulator counts macs (valid lanes x enabled tiles),
    chunks (issued to the decoder, first groups and replays) and outputs: the functions here
    count the same from the cycle model's chunks."""
    from maskprop.hw.tile_array import TileArray
    from maskprop.tb.amaranth_bench import run_streams

    layer = LAYERS[5] if pass_name != "backward_weight" else LAYERS[1]
    config = SMALL
    A, W, dZ = tensors(layer, seed=7)
    array_pass = ArrayPass.lower(layer, pass_name, config, A=A, W=W, dZ=dZ)
    dut = TileArray(config)

    def setup(ctx):
        ctx.set(dut.dense, dense)
        ctx.set(dut.chunk_shift, array_pass.chunk_shift)
    run = run_streams(dut, array_pass.inputs(dense), list(array_pass.expected_results(dense)),
                      phases=[["load"], ["rows", "x"]], idle=0.1, backpressure=0.2, seed=3,
                      setup=setup, read=("counters",))
    counters = run.read["counters"]
    events = dm.pass_events(array_pass.gemm, config, dense=dense)
    assert (counters.macs, counters.chunks, counters.outputs) == \
        (events.macs, events.chunks, events.outputs)
    assert counters.groups > counters.rows          # replays happened
    assert counters.cycles - counters.stalls == array_pass.model_cycles(dense)


# --- energy -------------------------------------------------------------------------------------

def test_energy_table_is_the_published_one_with_its_source():
    table = dm.HOROWITZ_45NM
    assert "Horowitz" in table.source and "ISSCC 2014" in table.source
    assert "10.1109/ISSCC.2014.6757323" in table.source and "45 nm" in table.source
    # As published (45 nm, 0.9 V).
    assert dict(table.int_add_pj) == {8: 0.03, 32: 0.1}
    assert dict(table.int_mult_pj) == {8: 0.2, 32: 3.1}
    assert dict(table.sram_read_64bit_pj) == {8192: 10.0, 32768: 20.0, 1 << 20: 100.0}
    assert table.dram_range_pj == (1300.0, 2600.0)
    assert table.dram_64bit_pj in table.dram_range_pj
    # The module's docstring and assumptions cite it too.
    assert "Horowitz" in " ".join(dm.ASSUMPTIONS)
    assert table.as_dict()["source"] == table.source


def test_energy_scaling_rules():
    table = dm.HOROWITZ_45NM
    # Multiply: quadratic in width from 8 bits; add: linear from 32 bits.
    assert table.multiply_pj(8) == pytest.approx(0.2)
    assert table.multiply_pj(16) == pytest.approx(0.8)
    assert table.multiply_pj(32) == pytest.approx(3.2)     # published 3.1: within 4 %
    assert table.add_pj(32) == pytest.approx(0.1) and table.add_pj(48) == pytest.approx(0.15)
    assert table.mac_pj(Config()) == pytest.approx(0.8 + 0.15)
    # SRAM: the published points exactly, a power law between them, extended beyond.
    for size, energy in table.sram_read_64bit_pj:
        assert table.sram_64bit_pj(size) == pytest.approx(energy)
    assert table.sram_64bit_pj(16 << 10) == pytest.approx(10 * math.sqrt(2))
    assert table.sram_64bit_pj(2 << 10) == pytest.approx(5.0)      # 8 KB-32 KB exponent 1/2
    exponent = math.log(5) / math.log(32)
    assert table.sram_64bit_pj(4 << 20) == pytest.approx(100 * 4 ** exponent)
    sizes = [1 << k for k in range(8, 30)]
    energies = [table.sram_64bit_pj(s) for s in sizes]
    assert energies == sorted(energies)
    assert table.sram_pj(8192, 256) == pytest.approx(40.0)          # four 64-bit reads
    assert table.dram_byte_pj() == pytest.approx(1300 / 8)
    with pytest.raises(ValueError, match="positive size"):
        table.sram_64bit_pj(0)


def test_pass_energy_is_events_times_energies():
    layer, config = LAYERS[5], SMALL
    A, W, dZ = tensors(layer, seed=2)
    array_pass = ArrayPass.lower(layer, "backward_data", config, A=A, W=W, dZ=dZ)
    table = dm.HOROWITZ_45NM
    for dense in (True, False):
        events = dm.pass_events(array_pass.gemm, config, dense=dense)
        traffic = dm.pass_traffic(layer, "backward_data", config, dense=dense)
        energy = dm.pass_energy(events, traffic, config, table)
        sizes = dm.buffer_sizes(events, config)
        # The buffers hold the pass, in powers of two bytes.
        assert sizes.x_bytes >= events.x_fill_words * 32 > sizes.x_bytes // 2
        assert sizes.y_bytes >= events.y_fill_words * 32 > sizes.y_bytes // 2
        assert sizes.row_bytes * 8 >= array_pass.chunks * sizes.row_bits
        assert sizes.word_bits == 256                           # one chunk
        assert sizes.row_bits * config.max_chunks == config.row_buffer_bits
        assert energy.compute == pytest.approx(events.macs * 0.95)
        assert energy.x_buffer == pytest.approx(
            (events.x_fill_words + events.x_reads) * table.sram_pj(sizes.x_bytes, 256))
        assert energy.row_buffer == pytest.approx(
            (events.row_buffer_writes + events.row_buffer_reads)
            * table.sram_pj(sizes.row_bytes, sizes.row_bits))
        assert energy.y_buffer == pytest.approx(
            (events.y_fill_words + events.y_reads) * table.sram_pj(sizes.y_bytes, 256))
        assert energy.dram == pytest.approx(traffic.total_bytes * 162.5)
        assert energy.total == pytest.approx(energy.compute + energy.sram + energy.dram)
        assert energy.sram == pytest.approx(energy.x_buffer + energy.row_buffer +
                                            energy.y_buffer)
    # Another table (the published range's high end for DRAM) changes DRAM's part only.
    high = replace(table, dram_64bit_pj=2600.0)
    events = dm.pass_events(array_pass.gemm, config, dense=False)
    traffic = dm.pass_traffic(layer, "backward_data", config, dense=False)
    low, doubled = (dm.pass_energy(events, traffic, config, t) for t in (table, high))
    assert doubled.dram == 2 * low.dram and doubled.sram == low.sram


# --- bandwidth ----------------------------------------------------------------------------------

def test_memory_cycles_at_a_stated_bandwidth():
    assert dm.memory_cycles(0, 32) == 0
    assert dm.memory_cycles(32, 32) == 1 and dm.memory_cycles(33, 32) == 2
    assert dm.memory_cycles(100, 3.2) == 32             # 3.2 is 16/5, not its binary double
    assert dm.memory_cycles(10, Fraction(5, 2)) == 4
    assert dm.memory_cycles(10, np.int64(3)) == 4 and dm.memory_cycles(7, 0.5) == 14
    assert dm.memory_cycles(10 ** 18 + 1, 1) == 10 ** 18 + 1      # exact for large counts
    for bad in (0, -1, float("nan"), float("inf"), True, "32", None):
        with pytest.raises(ValueError, match="bandwidth must be a positive number"):
            dm.memory_cycles(1, bad)
    assert dm.overlapped_cycles(10, 7) == 10 and dm.overlapped_cycles(3, 7) == 7
    assert dm.serial_cycles(10, 7) == 17


def test_mode_cost_composes_cycles_bytes_and_energy():
    layer, config = LAYERS[0], FPGA_SMALL
    A, W, dZ = tensors(layer, seed=5)
    array_pass = ArrayPass.lower(layer, "backward_data", config, A=A, W=W, dZ=dZ)
    for bandwidth in (32, 1.5):
        cost = dm.mode_cost(array_pass.gemm, config, dense=False,
                            cycles=array_pass.model_cycles(False), bandwidth=bandwidth)
        assert cost.traffic.mask_bytes > 0                  # the gemm has its output mask
        assert cost.memory == math.ceil(Fraction(cost.traffic.total_bytes) /
                                        Fraction(str(bandwidth)))
        assert cost.overlapped == max(cost.cycles, cost.memory)
        assert cost.serial == cost.cycles + cost.memory
        assert cost.events == dm.pass_events(array_pass.gemm, config, dense=False)
