"""The cycle model from masks alone agrees with the host driver's model (which the RTL tests hold
equal to the hardware's counters), and the network workloads have their published sizes."""

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.base.metrics import nonzero_products
from maskprop.host.driver import ArrayPass
from maskprop.sim.cycle_model import array_cycles, column_groups, pass_estimate
from maskprop.sim.layer import PASSES, ConvLayer
from maskprop.sim.lowering import lower_pass
from maskprop.workloads.digits import load_fixture
from maskprop.workloads.networks import resnet50

CONFIG = Config(vec=16, lanes=4, tiles=4, col_block=8, max_chunks=64, max_cols=256)


@pytest.mark.parametrize("variant", ["plain", "batchnorm"])
def test_mask_model_equals_host_model_on_real_layers(variant):
    for record in load_fixture()[variant].layers:
        for pass_name in PASSES:
            estimate = pass_estimate(record.layer, pass_name, record.A != 0, record.dZ != 0,
                                     CONFIG, w_nonzero=record.W != 0)
            array_pass = ArrayPass.prepare(lower_pass(record.layer, pass_name, A=record.A,
                                                      W=record.W, dZ=record.dZ), CONFIG)
            assert estimate.sparse_cycles == array_pass.model_cycles(dense=False)
            assert estimate.dense_cycles == array_pass.model_cycles(dense=True)
            # The ideal speedup's two integer terms, exactly, against direct counts: every
            # lane of every tile in every chunk of every dense column group, and the nonzero
            # products of the wanted outputs in int64.
            groups = column_groups(np.ones_like(array_pass.omask), CONFIG.tiles,
                                   CONFIG.col_block)
            slots = int(groups.sum()) * array_pass.chunks * -(-CONFIG.vec // CONFIG.lanes) \
                * CONFIG.lanes * CONFIG.tiles
            assert estimate.dense_slots == slots
            pairs = ((array_pass.gemm.X != 0).astype(np.int64)
                     @ (array_pass.gemm.Y != 0).astype(np.int64))
            assert estimate.nonzero_macs == int(pairs[array_pass.omask].sum())


def test_column_groups():
    wanted = np.array([[1, 1, 1, 1, 1, 0, 0, 0, 0, 1],      # block of 8: 5 -> 2 groups; 1 -> 1
                       [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],     # nothing wanted: 1 + 1 groups
                      dtype=bool)
    assert column_groups(wanted, tiles=4, col_block=8).tolist() == [[2, 1], [1, 1]]


def test_all_zero_activations_cost_one_cycle_per_chunk_and_group():
    layer = ConvLayer(2, 20, 4, 4, 6, 3, 1, 1, "zeros")
    zeros = np.zeros(layer.input_shape, dtype=bool)
    estimate = pass_estimate(layer, "forward", zeros, np.ones(layer.output_shape, bool), CONFIG)
    rows, chunks = 2 * 4 * 4, -(-180 // 16)
    # Forward computes all 6 outputs of a row: two groups of <= 4 tiles either way. Sparse
    # mode spends one cycle on each (all-zero) chunk the first time and one cycle on the whole
    # row when it replays it (only the last chunk is kept, to end the frame); dense mode
    # ceil(16 / 4) on every chunk, every time.
    assert estimate.sparse_cycles == rows * (chunks + 1)
    assert estimate.dense_cycles == rows * 2 * chunks * 4
    assert estimate.nonzero_macs == 0


def test_array_cycles_dense_ignores_the_mask():
    x = np.zeros((3, 2, 16), dtype=bool)
    wanted = np.ones((3, 9), dtype=bool)
    assert array_cycles(x, wanted, CONFIG, dense=True) == 3 * 2 * 4 * (2 + 1)


def test_resnet50_shapes_and_macs():
    net = resnet50()
    assert len(net.layers) == 53
    # Published: 4.09 GMACs for ResNet-50 at 224x224 (torchvision's model card: 4.09 GFLOPS);
    # the conv layers alone, counted exactly (the 2048 x 1000 classifier adds 2,048,000).
    assert net.forward_macs() == 4_087_136_256
    assert net.layers[0].conv.output_shape == (1, 64, 112, 112)
    assert net.layers[-1].conv.output_shape == (1, 2048, 7, 7)
    assert not net.layers[0].relu_input and all(l.relu_input for l in net.layers[1:])
    assert all(layer.batchnorm for layer in net.layers)


def test_nonzero_products_are_exact_beyond_float32():
    """An output with 2**24 + 1 nonzero products: float32 (exact only below 2**24) rounds it to
    2**24; the count is an integer and must be exact."""
    n = (1 << 24) + 1
    x = np.ones((1, n), dtype=bool)
    y = np.ones((n, 1), dtype=bool)
    assert int((x.astype(np.float32) @ y.astype(np.float32))[0, 0]) != n   # what float32 gave
    assert nonzero_products(x, y) == n
    assert nonzero_products(x, y, wanted=np.zeros((1, 1), dtype=bool)) == 0
    # Small cases against a direct integer count.
    rng = np.random.default_rng(0)
    x, y = rng.random((7, 40)) < 0.5, rng.random((40, 9)) < 0.3
    wanted = rng.random((7, 9)) < 0.6
    direct = (x[:, :, None] & y[None, :, :]).sum(axis=1)
    assert nonzero_products(x, y, wanted) == int(direct[wanted].sum())
