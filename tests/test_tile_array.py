# amaranth: UnusedElaboratable=no
"""TileArray and its host driver in Amaranth's simulator: every pass of small conv layers,
bit-exact against the golden conv, cycles equal to the cycle model."""

import zlib

import numpy as np
import pytest

from dataclasses import replace

from maskprop.base.config import FPGA_SMALL
from maskprop.host.driver import ArrayPass
from maskprop.hw.tile_array import TileArray
from maskprop.tb.amaranth_bench import run_streams
from maskprop.tb.conv_reference import direct_conv
from maskprop.sim.layer import ConvLayer
from maskprop.tb.stimulus import seed_from_env, structural_layers

# The layers' backward-weight has at most 9 x 3 = 27 columns in either orientation: within
# FPGA_SMALL's max_cols.


def random_layer_tensors(rng, layer, density):
    """A, W, dZ of ``layer`` as 8-bit-range integers; A and dZ are ReLU-sparse."""
    def sparse(shape, d):
        return np.where(rng.random(shape) < d, rng.integers(-120, 121, size=shape), 0)
    A = np.abs(sparse(layer.input_shape, density))
    W = rng.integers(-120, 121, size=layer.weight_shape)
    dZ = sparse(layer.output_shape, density)
    return A, W, dZ


def run_array(config, array_pass, *, dense, idle=0.0, backpressure=0.0, seed=0):
    dut = TileArray(config)

    def setup(ctx):
        ctx.set(dut.dense, dense)
        ctx.set(dut.chunk_shift, array_pass.chunk_shift)
    expected = list(array_pass.expected_results(dense))
    run = run_streams(dut, array_pass.inputs(dense), expected, phases=[["load"], ["rows", "x"]],
                      idle=idle, backpressure=backpressure, seed=seed, setup=setup,
                      read=("counters",))
    return dut, run


LAYERS = structural_layers()


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
@pytest.mark.parametrize("pass_name", ["forward", "backward_data", "backward_weight"])
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_pass_matches_golden(layer, pass_name, dense):
    seed = seed_from_env(default=zlib.crc32(f"{layer.name}/{pass_name}".encode()) & 0xFFFF)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = np.random.default_rng(seed)
    A, W, dZ = random_layer_tensors(rng, layer, density=0.4)
    array_pass = ArrayPass.lower(layer, pass_name, FPGA_SMALL, A=A, W=W, dZ=dZ)
    # The scoreboard holds every beat to the lowered GEMM's results; the tensor they assemble
    # into must moreover be the golden model's direct convolution.
    _, run = run_array(FPGA_SMALL, array_pass, dense=dense, idle=0.2, backpressure=0.3,
                       seed=seed)
    tensor = array_pass.assemble(run.outputs, dense)
    assert np.array_equal(tensor, direct_conv(array_pass.gemm, A, W, dZ, dense=dense))
    counters = run.read["counters"]
    assert counters.cycles - counters.stalls == array_pass.model_cycles(dense)
    # Rows without a structural element are not sent (their outputs are 0 by the shape).
    sent = int(array_pass.live_rows.sum())
    wanted = array_pass.wanted(dense) & array_pass.live_rows[:, None]
    assert counters.outputs == int(wanted.sum())
    assert counters.outputs + counters.outputs_skipped == sent * array_pass.cols
    assert counters.rows == sent * len(array_pass.blocks())
    # Useful multiplies: every issued X element (set mask bit of a sent chunk) times the wanted
    # outputs of its row.
    issued = np.array([sum(bin(int(mask)).count("1") for mask in row)
                       for row in array_pass.masks(dense)])
    assert counters.macs == int((issued * wanted.sum(axis=1)).sum())



def test_a_row_longer_than_the_row_buffer_fails_in_simulation():
    """The host must not send more chunks in a row than max_chunks (the row buffer's depth):
    the array's assertion stops a simulation that does."""
    config = FPGA_SMALL
    chunk = {"x": [1] * config.vec, "mask": (1 << config.vec) - 1}
    row = [{**chunk, "index": k % config.max_chunks, "last": int(k == config.max_chunks)}
           for k in range(config.max_chunks + 1)]
    inputs = {"load": [], "rows": [{"omask": 1, "col_valid": 1, "col_base": 0}], "x": row}
    with pytest.raises(AssertionError, match="more chunks than the row buffer holds"):
        run_streams(TileArray(config), inputs, [], phases=[["load"], ["rows", "x"]],
                    max_cycles=1000)


# FPGA_SMALL with a row buffer of 32 chunks: a full Y buffer would hold 32 columns x 32 chunks,
# this quarter of it holds 16 columns of 9 chunks (a 3x3 kernel over 16 channels) exactly, each
# at a stride of 16, not max_chunks.
SMALL_Y = replace(FPGA_SMALL, max_chunks=32, y_words=256)
FULL_Y = ConvLayer(1, 16, 4, 4, 16, 3, 1, 1, "c16k16")


@pytest.mark.parametrize("pass_name", ["forward", "backward_data"])
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_a_y_buffer_smaller_than_every_column_of_the_longest_reduction(pass_name, dense):
    """``y_words`` below max_cols x max_chunks, a pass of 9 chunks per column (the stride
    rounded up to 16, below max_chunks) that fills the Y buffer to its last word: bit-exact
    against the golden conv and cycle-exact, with idle cycles and backpressure."""
    seed = seed_from_env(default=zlib.crc32(f"small-y/{pass_name}".encode()) & 0xFFFF)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    A, W, dZ = random_layer_tensors(np.random.default_rng(seed), FULL_Y, density=0.4)
    array_pass = ArrayPass.lower(FULL_Y, pass_name, SMALL_Y, A=A, W=W, dZ=dZ)
    assert (array_pass.chunks, array_pass.chunk_shift, array_pass.cols) == (9, 4, 16)
    assert SMALL_Y.y_words < SMALL_Y.max_cols * SMALL_Y.max_chunks
    assert max(load["addr"] for load in array_pass.load_payloads()) == 15 << 4 | 8
    _, run = run_array(SMALL_Y, array_pass, dense=dense, idle=0.2, backpressure=0.3, seed=seed)
    tensor = array_pass.assemble(run.outputs, dense)
    assert np.array_equal(tensor, direct_conv(array_pass.gemm, A, W, dZ, dense=dense))
    counters = run.read["counters"]
    assert counters.cycles - counters.stalls == array_pass.model_cycles(dense)


def one_chunk_row(config, *, col_base, index):
    chunk = {"x": [1] * config.vec, "mask": 1, "index": index, "last": 1}
    return {"load": [], "rows": [{"omask": 1, "col_valid": 1, "col_base": col_base}],
            "x": [chunk]}


@pytest.mark.parametrize("col_base, index, shift", [(16, 0, 4), (8, 0, 5), (0, 5, 2)],
                         ids=["column-beyond", "stride-too-long", "chunk-beyond-stride"])
def test_a_read_beyond_its_column_fails_in_simulation(col_base, index, shift):
    """A column whose stride puts it beyond the Y buffer, or a chunk index that reaches into
    the next column, is a host error: the array's assertion stops the simulation."""
    dut = TileArray(SMALL_Y)

    def setup(ctx):
        ctx.set(dut.chunk_shift, shift)
    with pytest.raises(AssertionError, match="read Y beyond its column"):
        run_streams(dut, one_chunk_row(SMALL_Y, col_base=col_base, index=index), [],
                    phases=[["load"], ["rows", "x"]], setup=setup, max_cycles=1000)


def test_the_last_column_at_its_stride_reads_without_failing():
    """Column 15 at a stride of 16, chunk 15: the Y buffer's last word, no assertion."""
    dut = TileArray(SMALL_Y)

    def setup(ctx):
        ctx.set(dut.chunk_shift, 4)
    expected = [{"value": [0] * SMALL_Y.tiles, "overflow": 0,
                 "column": [15] + [0] * (SMALL_Y.tiles - 1), "valid": 1}]
    run_streams(dut, one_chunk_row(SMALL_Y, col_base=15, index=15), expected,
                phases=[["load"], ["rows", "x"]], setup=setup, max_cycles=1000)
