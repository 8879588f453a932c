# amaranth: UnusedElaboratable=no
"""TileArray and its host driver in Amaranth's simulator: every pass of small conv layers,
bit-exact against the golden conv, cycles equal to the cycle model."""

import zlib

import numpy as np
import pytest

from maskprop.base.config import FPGA_SMALL
from maskprop.host.driver import ArrayPass
from maskprop.sim.lowering import lower_pass
from maskprop.hw.tile_array import TileArray
from maskprop.sim.layer import ConvLayer
from maskprop.tb.amaranth_bench import run_streams
from maskprop.tb.conv_reference import direct_conv
from maskprop.tb.stimulus import seed_from_env

# The layers' backward-weight has at most 9 x 3 = 27 columns in either orientation (whichever
# operand the host finds sparser for the seed at hand): within FPGA_SMALL's max_cols.


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
        ctx.set(dut.n_chunks, array_pass.chunks)
        ctx.set(dut.dense, dense)
    expected = list(array_pass.expected_results(dense))
    run = run_streams(dut, array_pass.inputs(), expected, phases=[["load"], ["rows", "x"]],
                      idle=idle, backpressure=backpressure, seed=seed, setup=setup,
                      read=("counters",))
    return dut, run


LAYERS = [
    ConvLayer(batch=2, in_channels=3, height=5, width=5, out_channels=7, kernel=3, stride=1,
              padding=1, name="3x3-s1"),
    ConvLayer(batch=2, in_channels=3, height=6, width=6, out_channels=5, kernel=3, stride=2,
              padding=1, name="3x3-s2"),
    ConvLayer(batch=2, in_channels=6, height=4, width=4, out_channels=4, kernel=1, stride=1,
              padding=0, name="1x1"),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
@pytest.mark.parametrize("pass_name", ["forward", "backward_data", "backward_weight"])
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_pass_matches_golden(layer, pass_name, dense):
    seed = seed_from_env(default=zlib.crc32(f"{layer.name}/{pass_name}".encode()) & 0xFFFF)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = np.random.default_rng(seed)
    A, W, dZ = random_layer_tensors(rng, layer, density=0.4)
    array_pass = ArrayPass.prepare(lower_pass(layer, pass_name, A=A, W=W, dZ=dZ), FPGA_SMALL)
    # The scoreboard holds every beat to the lowered GEMM's results; the tensor they assemble
    # into must moreover be the golden model's direct convolution.
    _, run = run_array(FPGA_SMALL, array_pass, dense=dense, idle=0.2, backpressure=0.3,
                       seed=seed)
    tensor = array_pass.assemble(run.outputs, dense)
    assert np.array_equal(tensor, direct_conv(array_pass.gemm, A, W, dZ, dense=dense))
    counters = run.read["counters"]
    assert counters.cycles - counters.stalls == array_pass.model_cycles(dense)
    assert counters.outputs == int(array_pass.wanted(dense).sum())
    assert counters.outputs + counters.outputs_skipped == array_pass.rows * array_pass.cols
    # Useful multiplies: every issued X element times the wanted outputs of its row.
    issued = (np.full(array_pass.rows, array_pass.chunks * FPGA_SMALL.vec) if dense
              else np.count_nonzero(array_pass.x, axis=(1, 2)))
    assert counters.macs == int((issued * array_pass.wanted(dense).sum(axis=1)).sum())

