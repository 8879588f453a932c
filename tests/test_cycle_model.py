"""The cycle model from masks alone agrees with the host driver's model (which the RTL tests hold
equal to the hardware's counters), and the network workloads have their published sizes."""

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.base.metrics import nonzero_products
from maskprop.host.driver import ArrayPass, mode_passes
from maskprop.sim.cycle_model import column_groups, pass_estimate
from maskprop.sim.layer import PASSES, ConvLayer
from maskprop.sim.lowering import ORIENTATIONS
from maskprop.workloads.digits import load_fixture
from maskprop.workloads.networks import resnet50

CONFIG = Config(vec=16, lanes=4, tiles=4, col_block=8, max_chunks=64, max_cols=256)


def _direct_dense_slots(array_pass, config) -> int:
    """Dense slots counted row by row: every lane of every tile in every cycle of every column
    group of every row that is sent, a chunk taking ``ceil(structural elements / lanes)``."""
    slots = 0
    for m in range(array_pass.rows):
        costs = [-(-bin(int(mask)).count("1") // config.lanes)
                 for mask in array_pass.structure_masks[m] if mask]
        if not costs:
            continue                                     # no structural element: not sent
        groups = sum(max(1, -(-width // config.tiles)) for _, width in array_pass.blocks())
        slots += groups * sum(costs)
    return slots * config.lanes * config.tiles


@pytest.mark.parametrize("variant", ["plain", "batchnorm"])
def test_mask_model_equals_host_model_on_real_layers(variant):
    for record in load_fixture()[variant].layers:
        for pass_name in PASSES:
            estimate = pass_estimate(record.layer, pass_name, record.A != 0, record.dZ != 0,
                                     CONFIG, w_nonzero=record.W != 0)
            modes = mode_passes(record.layer, pass_name, CONFIG, A=record.A, W=record.W,
                                dZ=record.dZ)
            assert estimate.sparse_cycles == modes["sparse"].model_cycles(dense=False)
            assert estimate.dense_cycles == modes["dense"].model_cycles(dense=True)
            # Each mode in its faster orientation: the other one is never faster.
            if pass_name == "backward_weight":
                for orientation in ORIENTATIONS:
                    other = ArrayPass.lower(record.layer, pass_name, CONFIG, A=record.A,
                                            W=record.W, dZ=record.dZ, x_operand=orientation)
                    assert other.model_cycles(dense=True) >= estimate.dense_cycles
                    assert other.model_cycles(dense=False) >= estimate.sparse_cycles
                assert (estimate.dense_orientation, estimate.sparse_orientation) == \
                    (modes["dense"].gemm.orientation, modes["sparse"].gemm.orientation)
            # The ideal speedup's two integer terms, exactly, against direct counts.
            assert estimate.dense_slots == _direct_dense_slots(modes["dense"], CONFIG)
            sparse = modes["sparse"]
            pairs = (sparse.gemm.X != 0).astype(np.int64) @ (sparse.gemm.Y != 0).astype(np.int64)
            assert estimate.nonzero_macs == int(pairs[sparse.omask].sum())


def test_column_groups():
    wanted = np.array([[1, 1, 1, 1, 1, 0, 0, 0, 0, 1],      # block of 8: 5 -> 2 groups; 1 -> 1
                       [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],      # nothing wanted: 1 + 1 groups
                       [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]],     # not sent (no live chunk): none
                      dtype=bool)
    assert column_groups(wanted, tiles=4, col_block=8).tolist() == [[2, 1], [1, 1], [2, 1]]
    assert column_groups(wanted, tiles=4, col_block=8,
                         live_rows=np.array([True, True, False])).tolist() == \
        [[2, 1], [1, 1], [0, 0]]


def test_all_zero_activations_cost_one_cycle_per_live_chunk_and_group():
    layer = ConvLayer(2, 20, 4, 4, 6, 3, 1, 1, "zeros")
    zeros = np.zeros(layer.input_shape, dtype=bool)
    estimate = pass_estimate(layer, "forward", zeros, np.ones(layer.output_shape, bool), CONFIG)
    # A 4x4 image with padding 1 has 4 corner pixels with 4 taps in range, 8 edge pixels with
    # 6 and 4 inner ones with 9: 100 taps, each two chunks (20 channels: 16 + 4), per image.
    rows, taps = 2 * 4 * 4, 2 * 100
    # Sparse mode spends one cycle on each (all-zero) live chunk the first time and one cycle
    # on the whole row when it replays it (only the last chunk is kept, to end the frame).
    # Dense mode issues the 16 + 4 real channels of a tap, ceil(16/4) + ceil(4/4) = 5 cycles,
    # in both groups (6 columns on 4 tiles); padding taps cost nothing in either mode.
    assert estimate.sparse_cycles == taps * 2 + rows
    assert estimate.dense_cycles == 2 * taps * 5
    assert estimate.nonzero_macs == 0


def test_dense_mode_skips_dilation_holes_and_rows_without_work():
    """Backward-data of a 1x1 stride-2 conv: only the 4 of 16 input pixels a forward window
    read get a gradient; the other 12 rows have no structural element and are not sent, in
    either mode. A sent row is one chunk of 5 real channels (of 16): 2 cycles on 4 lanes."""
    layer = ConvLayer(1, 3, 4, 4, 5, 1, 2, 0, "s2")
    ones = np.ones(layer.input_shape, bool)
    estimate = pass_estimate(layer, "backward_data", ones, np.ones(layer.output_shape, bool),
                             CONFIG)
    assert estimate.dense_cycles == estimate.sparse_cycles == 4 * 2
    assert estimate.nonzero_macs == 4 * 5 * 3
    # The same pass lowered without the structure (every element of the dilated windows a
    # candidate, as before) would have cost 16 rows x 1 chunk x 4 cycles in dense mode.
    assert estimate.dense_cycles < 16 * 4


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


def test_slot_breakdown_accounts_for_every_slot_of_the_sparse_pass():
    """Every multiplier slot of a sparse pass is one of the breakdown's causes: they add up to
    the cycle model's cycles times lanes times tiles, the productive ones are the nonzero MACs
    (so their share is achieved/ideal), none is negative; with a dense Y and every output
    wanted (forward, all-ones weights) no product meets a zero operand, and backward-weight
    with a sparse dZ has such products. Random layers, every pass and orientation."""
    from maskprop.sim.cycle_model import (candidate_lowerings, mode_cycles, slot_breakdown,
                                          wanted_outputs)
    from maskprop.tb.stimulus import random_conv_tensors, seed_from_env

    seed = seed_from_env(default=11)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = np.random.default_rng(seed)
    weight_zero_operands = 0
    for case in range(20):
        # Every other layer on the full crossbar (the default window of 4 elements per lane
        # leaves more lane fragments).
        config = Config(max_chunks=512, max_cols=128, select_window=16 if case % 2 else None)
        slots = config.lanes * config.tiles
        layer = ConvLayer(int(rng.integers(1, 3)), int(rng.integers(1, 40)),
                          int(rng.integers(3, 12)), int(rng.integers(3, 12)),
                          int(rng.integers(1, 40)), int(rng.integers(1, 4)),
                          int(rng.integers(1, 3)), int(rng.integers(0, 2)))
        A, W, dZ = random_conv_tensors(rng, layer, float(rng.uniform(0.1, 0.9)))
        W = np.ones_like(W)
        for pass_name in PASSES:
            for gemm in candidate_lowerings(layer, pass_name, A=A, W=W, dZ=dZ, config=config):
                breakdown = slot_breakdown(gemm, config)
                assert breakdown.total == mode_cycles(gemm, config, dense=False) * slots
                assert breakdown.productive == nonzero_products(
                    gemm.X != 0, gemm.Y != 0, wanted_outputs(gemm, dense=False))
                assert min(getattr(breakdown, cause) for cause in breakdown.CAUSES) >= 0
                if pass_name == "forward":
                    assert breakdown.zero_operand == 0, layer
                if pass_name == "backward_weight":
                    weight_zero_operands += breakdown.zero_operand
                shares = breakdown.shares()
                assert abs(sum(shares.values()) - 1) < 1e-12
    assert weight_zero_operands > 0


@pytest.mark.parametrize("vec, lanes", [(16, 4), (8, 8), (12, 6), (64, 16)])
def test_chunk_beats_restate_the_decoders_contract(vec, lanes):
    """The vectorized beats (:meth:`Selection.beats`, :func:`chunk_costs`) equal the decoder's
    own :func:`chunk_cycles` for random masks of every density, in every selection window; the
    full window is the unrestricted count, a window whose segments split another's never
    takes fewer beats than it, and a prefix of a chunk (a partial chunk: a layer's last
    channels, backward-weight's last pixels) takes the full window's beats in every window."""
    from maskprop.base.config import Selection
    from maskprop.hw.index_decoder import chunk_cycles
    from maskprop.sim.cycle_model import chunk_costs
    from maskprop.tb.stimulus import seed_from_env

    seed = seed_from_env(default=vec + lanes)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = np.random.default_rng(seed)
    nonzero = rng.random((400, vec)) < rng.choice([0.0, 0.1, 0.3, 0.6, 1.0], size=(400, 1))
    masks = [sum(1 << e for e in range(vec) if row[e]) for row in nonzero]
    prefixes = np.arange(vec)[None, :] < np.arange(vec + 1)[:, None]     # 0 .. vec elements
    windows = Config(vec=vec, lanes=lanes).select_windows()
    beats = {}
    for window in windows:
        selection = Selection(vec, lanes, window)
        beats[window] = selection.beats(nonzero)
        assert np.maximum(1, beats[window]).tolist() == [chunk_cycles(m, vec, lanes, window)
                                                         for m in masks]
        config = Config(vec=vec, lanes=lanes, select_window=window)
        assert chunk_costs(nonzero, np.ones_like(nonzero), config).tolist() == \
            np.maximum(1, beats[window]).tolist()
        assert selection.beats(prefixes).tolist() == [-(-n // lanes) for n in range(vec + 1)]
    for narrow in windows:
        for wide in windows:
            if wide % narrow == 0:
                assert (beats[narrow] >= beats[wide]).all()
    assert (Selection(vec, lanes).beats(nonzero) == -(-nonzero.sum(axis=-1) // lanes)).all()
