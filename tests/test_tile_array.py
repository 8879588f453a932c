# amaranth: UnusedElaboratable=no
"""TileArray and its host driver in Amaranth's simulator: every pass of small conv layers,
bit-exact against the golden conv, cycles equal to the cycle model."""

import zlib

import numpy as np
import pytest

from maskprop.base.config import FPGA_SMALL
from maskprop.host.driver import ArrayPass
from maskprop.hw.tile_array import TileArray
from maskprop.tb.amaranth_bench import run_streams
from maskprop.tb.conv_reference import direct_conv
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
