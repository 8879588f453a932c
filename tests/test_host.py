"""Host driver refusals: a layer the configuration cannot run is refused before simulation, and
what the shape decides is refused before any tensor exists."""

import numpy as np
import pytest
from conv_strategies import GOLDEN_SETTINGS, conv_layers, seeds
from hypothesis import given, settings
from hypothesis import strategies as st

from maskprop.base.config import Config
from maskprop.host.driver import ArrayPass, check_pass, gemm_shapes, mode_passes
from maskprop.sim.layer import PASSES, ConvLayer
from maskprop.sim.lowering import lower_backward_weight, lower_pass


def tensors(layer):
    return (np.ones(layer.input_shape, dtype=np.int64), np.ones(layer.weight_shape, np.int64),
            np.ones(layer.output_shape, dtype=np.int64))


def test_refuses_a_reduction_longer_than_the_row_buffer():
    layer = ConvLayer(1, 64, 4, 4, 8, 3, 1, 1, "wide")          # 576-element reduction
    A, W, dZ = tensors(layer)
    with pytest.raises(ValueError, match=r"needs 36 chunks of 16, but max_chunks is 32; "
                                         r"raise max_chunks to 64"):
        ArrayPass.lower(layer, "forward", Config(max_chunks=32), A=A, W=W, dZ=dZ)


def test_refuses_more_columns_than_the_y_buffer():
    layer = ConvLayer(1, 4, 4, 4, 300, 1, 1, 0, "many")
    A, W, dZ = tensors(layer)
    with pytest.raises(ValueError, match=r"300 output columns, but max_cols is 128"):
        ArrayPass.lower(layer, "forward", Config(), A=A, W=W, dZ=dZ)


def test_refuses_more_columns_than_the_y_buffer_holds_at_the_pass_stride():
    """A Y buffer smaller than max_cols x max_chunks: 9 chunks per column take a stride of 16,
    so 256 words hold 16 columns, and 17 are refused naming y_words, from the shape and from
    the lowered operands alike; the loads use that stride."""
    config = Config(max_chunks=64, max_cols=128, y_words=256)
    fits = ConvLayer(1, 16, 4, 4, 16, 3, 1, 1, "fits")          # 144-element reduction
    check_pass(fits, "forward", config)
    A, W, dZ = tensors(fits)
    array_pass = ArrayPass.lower(fits, "forward", config, A=A, W=W, dZ=dZ)
    assert (array_pass.chunks, array_pass.chunk_shift) == (9, 4)
    addresses = [load["addr"] for load in array_pass.load_payloads()]
    assert addresses == [j << 4 | k for j in range(16) for k in range(9)]
    assert max(addresses) == 15 * 16 + 8 < config.y_words
    assert array_pass.drive(True) == {"dense": 1, "clear": 0, "chunk_shift": 4,
                                          "y_half": 0}
    wide = ConvLayer(1, 16, 4, 4, 17, 3, 1, 1, "wide")
    message = (r"17 output columns of 9 chunks take 272 words of the Y buffer \(a column "
               r"stride of 16\), but y_words is 256; raise y_words to 512 or more")
    with pytest.raises(ValueError, match=message):
        check_pass(wide, "forward", config)
    A, W, dZ = tensors(wide)
    with pytest.raises(ValueError, match=message):
        ArrayPass.lower(wide, "forward", config, A=A, W=W, dZ=dZ)
    # Backward-weight: refused only when neither orientation fits (columns 144 or 8, of one
    # chunk of 16 pixels: a stride of 1).
    bw = ConvLayer(1, 16, 4, 4, 8, 3, 1, 1, "bw")
    check_pass(bw, "backward_weight", Config(max_chunks=8, max_cols=144, y_words=8))
    with pytest.raises(ValueError, match=r"144 output columns broadcasting dZ or 8 output "
                                         r"columns broadcasting A, of 1 chunks each, but "
                                         r"y_words is 4; raise y_words to 8 or more"):
        check_pass(bw, "backward_weight", Config(max_chunks=4, max_cols=144, y_words=4))


def test_refuses_a_reduction_the_accumulator_cannot_hold():
    layer = ConvLayer(1, 16, 4, 4, 4, 3, 1, 1, "deep")           # 144 products
    A, W, dZ = tensors(layer)
    with pytest.raises(ValueError, match="forward"):
        ArrayPass.lower(layer, "forward", Config(data_width=16, acc_width=38), A=A, W=W, dZ=dZ)


def test_refuses_operands_outside_data_width():
    layer = ConvLayer(1, 2, 3, 3, 2, 1, 1, 0, "big")
    A, W, dZ = tensors(layer)
    with pytest.raises(ValueError, match="data_width"):
        ArrayPass.lower(layer, "forward", Config(data_width=8, acc_width=24), A=A * 300, W=W, dZ=dZ)


# --- shape-only checks: refused before any tensor exists ---------------------------------------

@given(layer=conv_layers(max_channels=6, max_hw=7), seed=seeds, vec=st.sampled_from([1, 4, 16]))
@settings(GOLDEN_SETTINGS, max_examples=60)
def test_gemm_shapes_are_the_lowerings_shapes(layer, seed, vec):
    """gemm_shapes predicts, from the shape alone, the operands lower_pass builds (aligned to
    chunks of ``vec``); for backward-weight both orientations."""
    rng = np.random.default_rng(seed)
    A = rng.integers(-2, 3, layer.input_shape)
    W = rng.integers(-2, 3, layer.weight_shape)
    dZ = rng.integers(-2, 3, layer.output_shape)
    for pass_name in PASSES:
        predicted = {s.orientation: s for s in gemm_shapes(layer, pass_name, vec)}
        if pass_name == "backward_weight":
            gemms = [lower_backward_weight(layer, dZ, A, x_operand=o, vec=vec)
                     for o in ("dz", "a")]
        else:
            gemms = [lower_pass(layer, pass_name, A=A, W=W, dZ=dZ, vec=vec)]
        assert sorted(predicted) == sorted(g.orientation for g in gemms)
        for gemm in gemms:
            shape = predicted[gemm.orientation]
            assert gemm.X.shape == (shape.rows, shape.reduction)
            assert gemm.Y.shape == (shape.reduction, shape.cols)


@given(layer=conv_layers(max_channels=6, max_hw=7), seed=seeds,
       max_chunks=st.sampled_from([1, 2, 4]), max_cols=st.integers(1, 40),
       y_halvings=st.integers(0, 6))
@settings(GOLDEN_SETTINGS, max_examples=80)
def test_check_pass_refuses_what_prepare_refuses(layer, seed, max_chunks, max_cols, y_halvings):
    """The shape-only check and the check on the lowered operands agree: for forward and
    backward-data exactly, for backward-weight on the orientation lowered ("dz"; check_pass
    refuses the pass only when neither orientation fits); with the full Y buffer or a smaller
    one (``y_halvings``: the largest power of two below the full size, halved)."""
    full = max_chunks * max_cols
    y_words = None if y_halvings == 0 else max(
        max_chunks, (1 << (full.bit_length() - 1)) >> (y_halvings - 1))
    config = Config(vec=4, lanes=2, max_chunks=max_chunks, max_cols=max_cols, y_words=y_words)
    rng = np.random.default_rng(seed)
    A = rng.integers(0, 3, layer.input_shape)
    W = rng.integers(-2, 3, layer.weight_shape)
    dZ = rng.integers(-2, 3, layer.output_shape)
    for pass_name in PASSES:
        try:
            check_pass(layer, pass_name, config)
            shape_refusal = None
        except ValueError as error:
            shape_refusal = str(error)
        try:
            ArrayPass.lower(layer, pass_name, config, A=A, W=W, dZ=dZ)
            lowered_refusal = None
        except ValueError as error:
            lowered_refusal = str(error)
        if pass_name != "backward_weight":
            assert shape_refusal == lowered_refusal
        elif shape_refusal is not None:
            assert lowered_refusal is not None
        elif lowered_refusal is not None:           # only the orientation not lowered fits
            assert "output columns" in lowered_refusal


def test_check_pass_refuses_the_issue_layer_from_its_shape():
    """64x512x56x56 -> 512, 3x3: its im2col alone would be 7 GB; refused from the shape."""
    layer = ConvLayer(64, 512, 56, 56, 512, 3, 1, 1, "big")
    with pytest.raises(ValueError, match=r"needs 288 chunks of 16, but max_chunks is 64"):
        check_pass(layer, "forward", Config())
    with pytest.raises(ValueError, match=r"A 64x512x56x56 has 102,760,448 elements; one RTL "
                                         r"run takes at most 4,194,304 per tensor"):
        check_pass(layer, "forward", Config(max_chunks=512, max_cols=512))


def test_check_pass_refuses_a_long_operand_stream():
    """Small tensors, but every X row is sent once per block of 32 columns: 4096 rows x 2
    blocks x 36 chunks of 16, plus 64 columns of Y, is 4,755,456 elements."""
    layer = ConvLayer(1, 64, 64, 64, 64, 3, 1, 1, "long")
    with pytest.raises(ValueError, match=r"the lowered pass streams 4,755,456 elements to the "
                                         r"tile array; one RTL run takes at most 4,194,304"):
        check_pass(layer, "forward", Config())
    check_pass(layer, "forward", Config(col_block=64))      # one block: 2,396,160 elements


def test_check_pass_backward_weight_needs_one_orientation_that_fits():
    layer = ConvLayer(1, 16, 4, 4, 8, 3, 1, 1, "bw")      # columns: 144 (dZ) or 8 (A)
    check_pass(layer, "backward_weight", Config(max_cols=8))
    with pytest.raises(ValueError, match=r"144 output columns broadcasting dZ or 8 output "
                                         r"columns broadcasting A, but max_cols is 7; raise "
                                         r"max_cols to 8 or more"):
        check_pass(layer, "backward_weight", Config(max_cols=7))


def test_check_pass_refuses_big_tensors_and_accumulation_from_the_shape():
    # Stride 256 keeps the lowered GEMM small while A has 2**24 elements.
    layer = ConvLayer(1, 1, 4096, 4096, 1, 1, 256, 0, "sparse")
    with pytest.raises(ValueError, match=r"A 1x1x4096x4096 has 16,777,216 elements; one RTL "
                                         r"run takes at most 4,194,304 per tensor"):
        check_pass(layer, "forward", Config())
    deep = ConvLayer(1, 16, 4, 4, 4, 3, 1, 1, "deep")             # 144 products
    with pytest.raises(ValueError, match="forward reduction sums 144 products"):
        check_pass(deep, "forward", Config(data_width=16, acc_width=38))


def test_no_work_has_no_ideal_speedup():
    """All-zero activations: nothing to compute, so no ideal speedup (not dense slots / 1)."""
    layer = ConvLayer(1, 2, 3, 3, 2, 1, 1, 0, "zero")
    A, W, dZ = tensors(layer)
    idle = ArrayPass.lower(layer, "forward", Config(), A=0 * A, W=W, dZ=dZ)
    assert idle.estimate().nonzero_macs == 0
    assert idle.estimate().ideal is None and idle.estimate().efficiency is None
    working = ArrayPass.lower(layer, "forward", Config(), A=A, W=W, dZ=dZ)
    estimate = working.estimate()
    # 9 output pixels x 2 columns, each 2 nonzero products; dense mode: 9 rows, each one chunk
    # whose 2 real channels (of 16) take 1 cycle, on 4 lanes x 4 tiles.
    assert (estimate.nonzero_macs, estimate.dense_cycles, estimate.dense_slots) == \
        (36, 9, 9 * 16)
    assert estimate.ideal == 4.0


def test_prepare_refuses_a_lowering_for_another_vec():
    layer = ConvLayer(1, 2, 3, 3, 2, 1, 1, 0, "vec")
    A, W, dZ = tensors(layer)
    with pytest.raises(ValueError, match=r"lowered for chunks of vec=1, but the array's vec is "
                                         r"16; lower it with vec=16"):
        ArrayPass.prepare(lower_pass(layer, "forward", A=A, W=W, dZ=dZ), Config())


def test_each_mode_runs_backward_weight_in_its_faster_orientation():
    """A 3x3 layer with padding 2 on a 2x2 image: most of im2col(A) is padding taps. Dense
    mode skips them only when A is the broadcast operand ("a"); with a dZ that is all zeros
    but one pixel, sparse mode is fastest broadcasting dZ ("dz")."""
    layer = ConvLayer(1, 16, 2, 2, 16, 3, 1, 2, "padded")
    A = np.ones(layer.input_shape, np.int64)
    W = np.ones(layer.weight_shape, np.int64)
    dZ = np.zeros(layer.output_shape, np.int64)
    dZ[0, 0, 0, 0] = 1
    config = Config(max_cols=256)
    modes = mode_passes(layer, "backward_weight", config, A=A, W=W, dZ=dZ)
    assert (modes["dense"].gemm.orientation, modes["sparse"].gemm.orientation) == ("a", "dz")
    for mode, chosen in modes.items():
        dense = mode == "dense"
        # Dense mode runs in the lowering the fair baseline (the full window) is fastest in.
        judged_on = config.full_window if dense else config
        for orientation in ("dz", "a"):
            other = ArrayPass.lower(layer, "backward_weight", judged_on, A=A, W=W, dZ=dZ,
                                    x_operand=orientation)
            assert other.model_cycles(dense) >= ArrayPass.prepare(
                chosen.gemm, judged_on).model_cycles(dense)
