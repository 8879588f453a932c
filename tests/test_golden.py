"""Golden model: direct convs vs the GEMM lowering, fixed-point rules, masks, finite differences.

Property tests are hypothesis-driven (a failure prints the layer and the NumPy seed). Tests that
use NumPy randomness directly take their seed from ``MASKPROP_SEED`` (default below) and print it.
"""

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conv_strategies import (GOLDEN_SETTINGS, conv_layers, densities, seeds, sparse_fixed,
                             sparse_normal)
from maskprop.base.config import Config
from maskprop.sim.golden import (
    batchnorm_backward, batchnorm_forward, conv_backward_data, conv_backward_data_fixed,
    conv_backward_weight, conv_backward_weight_fixed, conv_forward, conv_forward_fixed,
    conv_train_step, nonzero_mask, relu, relu_backward, requantize, to_fixed)
from maskprop.sim.layer import PASSES, ConvLayer
from maskprop.sim.lowering import (
    dilate, im2col, lower_backward_data, lower_backward_weight, lower_forward, lower_pass,
    mask_words, masked_gemm, pad_to_chunks)

DEFAULT_SEED = 20240611


@pytest.fixture
def rng():
    seed = int(os.environ.get("MASKPROP_SEED", DEFAULT_SEED))
    print(f"MASKPROP_SEED={seed}")  # shown by pytest on failure
    return np.random.default_rng(seed)


def _operands(layer, seed, density):
    """Fixed-point A, W, dZ for ``layer``: A sparse with ``density``, W dense, dZ half sparse."""
    rng = np.random.default_rng(seed)
    return (sparse_fixed(rng, layer.input_shape, density),
            sparse_fixed(rng, layer.weight_shape, 1.0),
            sparse_fixed(rng, layer.output_shape, 0.5))


def _direct(layer, A, W, dZ, fixed, **kw):
    """The three direct passes (backward-data output-masked by A); ``kw`` goes to the fixed ones."""
    s, p = layer.stride, layer.padding
    if fixed:
        return (conv_forward_fixed(A, W, s, p, **kw),
                conv_backward_data_fixed(dZ, W, A.shape[2:], s, p, omask=A, **kw),
                conv_backward_weight_fixed(dZ, A, layer.kernel, s, p, **kw))
    return (conv_forward(A, W, s, p),
            conv_backward_data(dZ, W, A.shape[2:], s, p, omask=A),
            conv_backward_weight(dZ, A, layer.kernel, s, p))


# --- direct conv == lowered GEMM, exactly -------------------------------------------------------

VECS = st.sampled_from([1, 3, 4, 16])


def _lowerings(layer, A, W, dZ, vec):
    return {"forward": lower_forward(layer, A, W, vec=vec),
            "backward_data": lower_backward_data(layer, dZ, W, A_mask=A, vec=vec),
            "bw_dz": lower_backward_weight(layer, dZ, A, x_operand="dz", vec=vec),
            "bw_a": lower_backward_weight(layer, dZ, A, x_operand="a", vec=vec)}


@GOLDEN_SETTINGS
@given(layer=conv_layers(), seed=seeds, density=densities, shift=st.integers(0, 24), vec=VECS)
def test_lowering_matches_direct_fixed_point(layer, seed, density, shift, vec):
    A, W, dZ = _operands(layer, seed, density)
    Z, dA, dW = _direct(layer, A, W, dZ, fixed=True)
    assert Z.dtype == dA.dtype == dW.dtype == np.int64
    expected = {"forward": Z, "backward_data": dA, "bw_dz": dW, "bw_a": dW}
    for key, gemm in _lowerings(layer, A, W, dZ, vec).items():
        out = gemm.run()
        assert out.dtype == np.int64, key
        np.testing.assert_array_equal(out, expected[key], err_msg=key)
        # Aligned to whole chunks: a chunk never straddles two taps or runs past the pixels.
        assert gemm.X.shape[1] % vec == 0 and gemm.vec == vec, key
    # Requantized outputs: the RTL's other comparison point.
    for raw, quant in zip((Z, dA, dW), _direct(layer, A, W, dZ, fixed=True, shift=shift)):
        np.testing.assert_array_equal(quant, requantize(raw, shift, 16))


@GOLDEN_SETTINGS
@given(layer=conv_layers(), seed=seeds, density=densities, vec=VECS)
def test_structure_is_exactly_what_the_shape_leaves_nonzero(layer, seed, density, vec):
    """X is zero outside its structure, and the structure counts, row by row, exactly the taps
    (times channels) that the direct convolution of all-ones tensors sums: padding taps,
    dilation holes and padded channels or pixels are not in it."""
    A, W, dZ = _operands(layer, seed, density)
    ones = {name: np.ones(shape, np.int64) for name, shape in
            (("A", layer.input_shape), ("W", layer.weight_shape), ("dZ", layer.output_shape))}
    Z1, dA1, dW1 = _direct(layer, ones["A"], ones["W"], ones["dZ"], fixed=True)
    per_row = {"forward": Z1[:, 0].reshape(-1),                          # rows (n, y, x)
               "backward_data": dA1[:, 0].reshape(-1),                   # rows (n, h, w)
               "bw_dz": np.full(layer.out_channels, np.prod(layer.output_shape) //
                                layer.out_channels),                     # rows k: every pixel
               "bw_a": dW1[0].transpose(1, 2, 0).reshape(-1)}            # rows (r, t, c)
    for key, gemm in _lowerings(layer, A, W, dZ, vec).items():
        assert gemm.structure.shape == gemm.X.shape and gemm.structure.dtype == bool, key
        assert not np.any(gemm.X[~gemm.structure]), key
        np.testing.assert_array_equal(gemm.structure.sum(axis=1), per_row[key], err_msg=key)


@GOLDEN_SETTINGS
@given(layer=conv_layers(), seed=seeds, density=densities, vec=VECS)
def test_lowering_matches_direct_float(layer, seed, density, vec):
    # Dyadic operands (16-bit integers * 2**-8): every product and sum is exact in float64, so the
    # two summation orders must agree bit for bit, and agree with the integer model.
    A, W, dZ = _operands(layer, seed, density)
    scale = 2.0 ** -8
    Af, Wf, dZf = A * scale, W * scale, dZ * scale
    Z, dA, dW = _direct(layer, Af, Wf, dZf, fixed=False)
    assert Z.dtype == dA.dtype == dW.dtype == np.float64
    expected = {"forward": Z, "backward_data": dA, "bw_dz": dW, "bw_a": dW}
    for key, gemm in _lowerings(layer, Af, Wf, dZf, vec).items():
        np.testing.assert_array_equal(gemm.run(), expected[key], err_msg=key)
    for f, i in zip((Z, dA, dW), _direct(layer, A, W, dZ, fixed=True)):
        np.testing.assert_array_equal(f, i * scale * scale)


@GOLDEN_SETTINGS
@given(layer=conv_layers(), seed=seeds, density=densities)
def test_lowering_matches_direct_float_random(layer, seed, density):
    rng = np.random.default_rng(seed)
    A = sparse_normal(rng, layer.input_shape, density)
    W = sparse_normal(rng, layer.weight_shape, 1.0)
    dZ = sparse_normal(rng, layer.output_shape, 0.5)
    Z, dA, dW = _direct(layer, A, W, dZ, fixed=False)
    close = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lower_forward(layer, A, W).run(), Z, **close)
    np.testing.assert_allclose(lower_backward_data(layer, dZ, W, A_mask=A).run(), dA, **close)
    for orientation in ("dz", "a"):
        np.testing.assert_allclose(lower_backward_weight(layer, dZ, A, orientation).run(), dW,
                                   **close)


# --- masks ------------------------------------------------------------------------------------

@GOLDEN_SETTINGS
@given(layer=conv_layers(), seed=seeds, density=densities)
def test_output_mask_zeroes_exactly_the_masked_outputs(layer, seed, density):
    A, W, dZ = _operands(layer, seed, density)
    s, p, hw = layer.stride, layer.padding, A.shape[2:]
    keep = nonzero_mask(A)
    dense = conv_backward_data_fixed(dZ, W, hw, s, p)
    masked = conv_backward_data_fixed(dZ, W, hw, s, p, omask=keep)
    np.testing.assert_array_equal(masked[~keep], 0)
    np.testing.assert_array_equal(masked[keep], dense[keep])
    # A bool mask and the activation itself are the same mask; so is the lowered omask.
    np.testing.assert_array_equal(conv_backward_data_fixed(dZ, W, hw, s, p, omask=A), masked)
    gemm = lower_backward_data(layer, dZ, W, A_mask=keep)
    assert gemm.omask.shape == (layer.batch * layer.height * layer.width, layer.in_channels)
    np.testing.assert_array_equal(gemm.to_tensor(gemm.omask), keep)
    # Why the mask is legal: the previous layer's ReLU backward, with a pre-activation that is
    # positive exactly where A is nonzero, throws away exactly the outputs the mask skips.
    pre_prev = np.where(keep, 1, -1)
    np.testing.assert_array_equal(relu_backward(dense, pre_prev), masked)


def _zero_skipping_gemm(X, Y, vec, and_y_mask):
    """Reference for what the hardware does: walk each X chunk's set mask bits (optionally ANDed
    with the Y column's chunk mask) and accumulate only those products."""
    xc, yc = pad_to_chunks(X, vec), pad_to_chunks(Y.T, vec)
    out = np.zeros((X.shape[0], Y.shape[1]), dtype=np.int64)
    for m in range(X.shape[0]):
        for j in range(Y.shape[1]):
            for q in range(xc.masks.shape[1]):
                mask = int(xc.masks[m, q]) & (int(yc.masks[j, q]) if and_y_mask else -1)
                for b in (b for b in range(vec) if mask >> b & 1):
                    out[m, j] += xc.values[m, q, b] * yc.values[j, q, b]
    return out


@pytest.mark.parametrize("and_y_mask", [False, True])
def test_input_zero_skipping_changes_nothing(rng, and_y_mask):
    # Forward skips A's zeros, backward-weight skips A's and dZ's: the sums are unchanged.
    layer = ConvLayer(batch=2, in_channels=3, height=5, width=4, out_channels=2, kernel=3,
                      stride=2, padding=1)
    A = sparse_fixed(rng, layer.input_shape, 0.4)
    W = sparse_fixed(rng, layer.weight_shape, 0.8)
    dZ = sparse_fixed(rng, layer.output_shape, 0.5)
    for gemm, dense in ((lower_forward(layer, A, W), conv_forward_fixed(A, W, 2, 1)),
                        (lower_backward_weight(layer, dZ, A, "dz"),
                         conv_backward_weight_fixed(dZ, A, 3, 2, 1))):
        out = _zero_skipping_gemm(gemm.X, gemm.Y, vec=4, and_y_mask=and_y_mask)
        np.testing.assert_array_equal(gemm.to_tensor(out), dense)


def test_relu_and_relu_backward():
    x = np.array([-2, -1, 0, 1, 2])
    np.testing.assert_array_equal(relu(x), [0, 0, 0, 1, 2])
    assert relu(x).dtype == x.dtype
    np.testing.assert_array_equal(relu_backward(np.array([5, 5, 5, 5, 5]), x), [0, 0, 0, 5, 5])
    np.testing.assert_array_equal(nonzero_mask(np.array([0.0, -0.0, 1e-300])), [False, False, True])


@pytest.mark.parametrize("batchnorm", [False, True])
def test_train_step_batchnorm_vs_plain(rng, batchnorm):
    layer = ConvLayer(batch=2, in_channels=3, height=6, width=6, out_channels=4, kernel=3,
                      stride=1, padding=1)
    A = relu(rng.standard_normal(layer.input_shape))          # a ReLU output: about half zeros
    W = rng.standard_normal(layer.weight_shape)
    G = rng.standard_normal(layer.output_shape)               # gradient at the block output
    step = conv_train_step(A, W, G, 1, 1, batchnorm=batchnorm)
    np.testing.assert_array_equal(step.A_out, relu(step.pre_activation))
    if batchnorm:
        np.testing.assert_allclose(step.pre_activation, batchnorm_forward(step.Z))
        np.testing.assert_array_equal(
            step.dZ, batchnorm_backward(relu_backward(G, step.pre_activation), step.Z))
        # BatchNorm's mean terms make dZ dense although the ReLU mask zeroed part of its input.
        assert np.count_nonzero(relu_backward(G, step.pre_activation)) < G.size
        assert np.count_nonzero(step.dZ) == step.dZ.size
    else:
        np.testing.assert_array_equal(step.pre_activation, step.Z)
        np.testing.assert_array_equal(step.dZ, G * (step.Z > 0))
        np.testing.assert_array_equal(step.dZ[step.Z <= 0], 0)
    # Output sparsity survives BatchNorm: dA is zero wherever A is, in both cases.
    np.testing.assert_array_equal(step.dA[A == 0], 0)
    dA_dense = conv_backward_data(step.dZ, W, A.shape[2:], 1, 1)
    np.testing.assert_array_equal(step.dA, dA_dense * (A != 0))
    np.testing.assert_array_equal(step.dW, conv_backward_weight(step.dZ, A, 3, 1, 1))


# --- requantization ---------------------------------------------------------------------------

@pytest.mark.parametrize("acc, shift, expected", [
    (3, 1, 2), (-3, 1, -1),          # ties round up: 1.5 -> 2, -1.5 -> -1
    (1, 1, 1), (-1, 1, 0),           # 0.5 -> 1, -0.5 -> 0
    (5, 2, 1), (6, 2, 2), (-5, 2, -1), (-6, 2, -1), (-7, 2, -2),
    (0, 5, 0), (-1, 5, 0), (12345, 0, 12345), (-12345, 0, -12345),
    (32767, 0, 32767), (32768, 0, 32767), (1 << 40, 3, 32767),             # saturate high
    (-32768, 0, -32768), (-32769, 0, -32768), (-(1 << 40), 3, -32768),     # saturate low
    (2 * 32767 + 1, 1, 32767),       # 32767.5 rounds to 32768, then saturates
    (-2 * 32768 - 1, 1, -32768),     # -32768.5 rounds up to -32768: representable, no saturation
    (-2 * 32768 - 2, 1, -32768),     # -32769 saturates
    ((1 << 63) - 1, 62, 2), (-(1 << 63), 62, -2), ((1 << 63) - 1, 63, 1),  # no int64 overflow
])
def test_requantize_corner_cases(acc, shift, expected):
    assert requantize(np.int64(acc), shift, 16) == expected
    assert requantize(np.array([acc]), shift, 16).tolist() == [expected]


@GOLDEN_SETTINGS
@given(acc=st.integers(-(1 << 63), (1 << 63) - 1), shift=st.integers(0, 63),
       data_width=st.integers(2, 32))
def test_requantize_matches_python_integers(acc, shift, data_width):
    rounded = (acc + ((1 << shift) >> 1)) >> shift   # Python ints: unbounded, floor shift
    limit = 1 << (data_width - 1)
    assert requantize(np.int64(acc), shift, data_width) == min(max(rounded, -limit), limit - 1)


def test_to_fixed_rounds_half_up_and_saturates():
    np.testing.assert_array_equal(to_fixed(np.array([0.25, -0.25, 1.25, 1e9, -1e9]), 1, 8),
                                  [1, 0, 3, 127, -128])


# --- accumulator overflow check ---------------------------------------------------------------

def test_max_reduction_is_tight():
    # acc_width 34 holds 7 worst-case products (7 * 2**30 < 2**33) but not 8 (8 * 2**30 = 2**33).
    assert Config(acc_width=34).max_reduction() == 7
    layer = ConvLayer(batch=1, in_channels=7, height=1, width=1, out_channels=1, kernel=1)
    worst = np.full(layer.input_shape, -(1 << 15))
    Z = conv_forward_fixed(worst, np.full(layer.weight_shape, -(1 << 15)),
                           config=Config(acc_width=34))
    assert Z.item() == 7 << 30 < (1 << 33)


@pytest.mark.parametrize("pass_name, shape", [
    ("forward", dict(batch=1, in_channels=8, out_channels=1, height=1, width=1)),
    ("backward_data", dict(batch=1, in_channels=1, out_channels=8, height=1, width=1)),
    ("backward_weight", dict(batch=2, in_channels=1, out_channels=1, height=2, width=2)),
])
def test_overflow_check(pass_name, shape):
    layer = ConvLayer(kernel=1, **shape)
    assert layer.reduction(pass_name) == 8
    tiny = Config(acc_width=34)                       # max_reduction() == 7
    with pytest.raises(ValueError, match=rf"{pass_name} reduction sums 8 products.*"
                                         r"max_reduction\(\) = 7.*at least 35"):
        layer.check_accumulation(tiny)
    layer.check_accumulation(Config(acc_width=35))    # the suggested width suffices
    layer.check_accumulation(Config())
    layer.check_accumulation(tiny, passes=[p for p in PASSES if p != pass_name])
    # The fixed-point functions refuse before computing; the default config computes.
    A, W = np.ones(layer.input_shape, np.int64), np.ones(layer.weight_shape, np.int64)
    dZ = np.ones(layer.output_shape, np.int64)
    call = {"forward": lambda cfg: conv_forward_fixed(A, W, config=cfg),
            "backward_data": lambda cfg: conv_backward_data_fixed(dZ, W, A.shape[2:], config=cfg),
            "backward_weight": lambda cfg: conv_backward_weight_fixed(dZ, A, 1, config=cfg)}
    with pytest.raises(ValueError, match=pass_name):
        call[pass_name](tiny)
    assert (call[pass_name](Config()) == 8).all()


# --- validation -------------------------------------------------------------------------------

def test_layer_shapes_and_work():
    conv1 = ConvLayer(batch=1, in_channels=3, height=224, width=224, out_channels=64, kernel=7,
                      stride=2, padding=3, name="conv1")
    assert (conv1.out_height, conv1.out_width) == (112, 112)
    assert conv1.input_shape == (1, 3, 224, 224)
    assert conv1.weight_shape == (64, 3, 7, 7)
    assert conv1.output_shape == (1, 64, 112, 112)
    assert conv1.dense_macs == 118_013_952
    assert [conv1.reduction(p) for p in PASSES] == [3 * 49, 64 * 49, 112 * 112]
    # (H + 2p - R) % s != 0: floor
    assert ConvLayer(1, 1, 8, 7, 1, 3, stride=2, padding=0).output_shape == (1, 1, 3, 3)


@pytest.mark.parametrize("field, value", [
    ("batch", 0), ("in_channels", 0), ("height", 0), ("width", -1), ("out_channels", 0),
    ("kernel", 0), ("stride", 0), ("padding", -1), ("stride", 1.5), ("kernel", True),
    ("batch", 1 << 17),
])
def test_layer_rejects_out_of_range_parameters(field, value):
    params = dict(batch=1, in_channels=1, height=5, width=5, out_channels=1, kernel=3)
    params[field] = value
    with pytest.raises(ValueError, match=field):
        ConvLayer(**params)


def test_layer_rejects_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match="kernel 5 does not fit the padded width"):
        ConvLayer(batch=1, in_channels=1, height=5, width=2, out_channels=1, kernel=5, padding=1)
    ConvLayer(batch=1, in_channels=1, height=5, width=3, out_channels=1, kernel=5, padding=1)


def test_fixed_point_rejects_bad_operands():
    A, W = np.zeros((1, 2, 4, 4), np.int64), np.zeros((3, 2, 3, 3), np.int64)
    conv_forward_fixed(A, W)
    for bad, match in ((A + 32768, r"A values must be in \[-32768, 32767\]"),
                       (A - 32769, r"A values must be in \[-32768, 32767\]"),
                       (A.astype(np.float64), "A must be an integer array"),
                       (A.astype(bool), "A must be an integer array"),
                       (A[0], "A must be a 4-D")):
        with pytest.raises(ValueError, match=match):
            conv_forward_fixed(bad, W)
    with pytest.raises(ValueError, match="W values"):
        conv_forward_fixed(A, W + 8, config=Config(data_width=4, acc_width=12, lanes=1))
    with pytest.raises(ValueError, match="input channels"):
        conv_forward_fixed(A, W[:, :1])
    with pytest.raises(ValueError, match="square kernel"):
        conv_forward_fixed(A, W[:, :, :2])
    with pytest.raises(ValueError, match=r"dZ must have shape \(1, 3, 2, 2\)"):
        conv_backward_data_fixed(np.zeros((1, 3, 3, 3), np.int64), W, (4, 4))
    with pytest.raises(ValueError, match=r"omask must have shape \(1, 2, 4, 4\)"):
        conv_backward_data(np.zeros((1, 3, 2, 2)), W, (4, 4), omask=np.ones((1, 2, 4, 3)))
    with pytest.raises(ValueError, match="shift"):
        conv_forward_fixed(A, W, shift=-1)
    with pytest.raises(ValueError, match="data_width"):
        requantize(np.int64(0), 0, 33)
    with pytest.raises(ValueError, match="acc must be an integer"):
        requantize(np.float64(1.0), 1, 16)


# --- lowering building blocks -------------------------------------------------------------------

def test_im2col_follows_the_index_formula(rng):
    n, c, h, w, R, s, p = 2, 3, 5, 4, 3, 2, 2
    A = rng.integers(1, 100, size=(n, c, h, w))       # no zeros: a zero in X means padding
    X = im2col(A, R, s, p)
    layer = ConvLayer(n, c, h, w, 1, R, s, p)
    ho, wo = layer.out_height, layer.out_width
    assert X.shape == (n * ho * wo, R * R * c)
    for m in range(X.shape[0]):
        b, y, x = np.unravel_index(m, (n, ho, wo))
        for i in range(X.shape[1]):
            r, t, ch = np.unravel_index(i, (R, R, c))        # (r, t, c), c fastest
            hh, ww = s * y + r - p, s * x + t - p
            inside = 0 <= hh < h and 0 <= ww < w
            assert X[m, i] == (A[b, ch, hh, ww] if inside else 0)


def test_dilate():
    dZ = np.arange(1, 7).reshape(1, 1, 2, 3)
    np.testing.assert_array_equal(dilate(dZ, 1), dZ)
    np.testing.assert_array_equal(dilate(dZ, 2)[0, 0], [[1, 0, 2, 0, 3],
                                                       [0, 0, 0, 0, 0],
                                                       [4, 0, 5, 0, 6]])
    assert dilate(dZ, 3).shape == (1, 1, 4, 7)


def test_masked_gemm_exact_and_masked():
    big = np.array([[(1 << 31) - 1, -(1 << 31)], [3, 0]])
    Y = np.array([[(1 << 31) - 1, 1], [-(1 << 31), 2]])
    out = masked_gemm(big, Y)
    assert out.dtype == np.int64
    assert out[0, 0] == ((1 << 31) - 1) ** 2 + (1 << 62)  # exact, fits int64
    np.testing.assert_array_equal(masked_gemm(big, Y, np.array([[1, 0], [0, 1]])),
                                  [[out[0, 0], 0], [0, out[1, 1]]])
    assert masked_gemm(big.astype(np.float32), Y).dtype == np.float64
    with pytest.raises(ValueError, match="masked_gemm needs"):
        masked_gemm(big, Y[:1])
    with pytest.raises(ValueError, match="omask must have shape"):
        masked_gemm(big, Y, np.ones((2, 3)))


def test_pad_to_chunks():
    X = np.array([[1, 0, 2, 0, 0, -3], [0, 0, 0, 0, 0, 0]])
    chunks = pad_to_chunks(X, 4)
    np.testing.assert_array_equal(chunks.values, [[[1, 0, 2, 0], [0, -3, 0, 0]],
                                                  [[0, 0, 0, 0], [0, 0, 0, 0]]])
    np.testing.assert_array_equal(chunks.masks, [[0b0101, 0b0010], [0, 0]])
    one = pad_to_chunks(X, 1)
    assert one.values.shape == (2, 6, 1)
    np.testing.assert_array_equal(one.masks, X != 0)
    wide = pad_to_chunks(np.ones((1, 64), np.int64), 64)
    assert wide.masks.dtype == np.uint64 and int(wide.masks[0, 0]) == (1 << 64) - 1
    top = pad_to_chunks(np.eye(64, dtype=np.int64)[63:], 64)
    assert int(top.masks[0, 0]) == 1 << 63
    with pytest.raises(ValueError, match="vec"):
        pad_to_chunks(X, 65)
    # An empty reduction is one all-zero chunk: a hardware frame has at least one.
    empty = pad_to_chunks(np.zeros((3, 0), np.int64), 8)
    assert empty.values.shape == (3, 1, 8) and empty.masks.tolist() == [[0], [0], [0]]


def test_mask_words_match_a_bit_by_bit_sum():
    rng = np.random.default_rng(5)
    for vec in (1, 7, 8, 9, 16, 33, 63, 64):
        chunks = rng.integers(-1, 2, (4, 3, vec)) * (rng.random((4, 3, vec)) < 0.5)
        words = mask_words(chunks)
        assert words.dtype == np.uint64 and words.shape == (4, 3)
        assert words.tolist() == [[sum(1 << e for e in range(vec) if chunk[e] != 0)
                                   for chunk in row] for row in chunks]
    with pytest.raises(ValueError, match=r"vec must be in \[1, 64\], not 65"):
        mask_words(np.ones((1, 65)))


def test_lower_pass_dispatches_each_pass_to_its_lowering(rng):
    layer = ConvLayer(batch=1, in_channels=2, height=4, width=4, out_channels=3, kernel=3,
                      padding=1)
    A = sparse_fixed(rng, layer.input_shape, 0.5)
    W = sparse_fixed(rng, layer.weight_shape, 1.0)
    dZ = sparse_fixed(rng, layer.output_shape, 0.5)
    expected = {"forward": lower_forward(layer, A, W),
                "backward_data": lower_backward_data(layer, dZ, W, A_mask=A),
                "backward_weight": lower_backward_weight(layer, dZ, A, x_operand="dz")}
    for pass_name in PASSES:
        gemm = lower_pass(layer, pass_name, A=A, W=W, dZ=dZ)
        assert gemm.pass_name == pass_name
        np.testing.assert_array_equal(gemm.X, expected[pass_name].X)
        np.testing.assert_array_equal(gemm.Y, expected[pass_name].Y)
        np.testing.assert_array_equal(gemm.run(), expected[pass_name].run())
    assert lower_pass(layer, "backward_data", A=A, W=W, dZ=dZ, output_mask=False).omask is None
    gemm = lower_pass(layer, "backward_weight", A=A, W=W, dZ=dZ, x_operand="a", vec=4)
    assert (gemm.orientation, gemm.vec) == ("a", 4)
    with pytest.raises(ValueError, match="pass must be one of forward, backward_data, "
                                         "backward_weight, not 'sideways'"):
        lower_pass(layer, "sideways", A=A, W=W, dZ=dZ)


def test_backward_weight_orientations(rng):
    layer = ConvLayer(batch=1, in_channels=2, height=4, width=4, out_channels=3, kernel=3,
                      padding=1)
    A = sparse_fixed(rng, layer.input_shape, 1.0)
    dZ = sparse_fixed(rng, layer.output_shape, 0.5)
    gemm = lower_backward_weight(layer, dZ, A, "dz")
    assert (gemm.orientation, gemm.rows, gemm.cols) == ("dz", "(k)", "(r,t,c)")
    assert gemm.X.shape == (3, 16) and gemm.Y.shape == (16, 18)
    gemm = lower_backward_weight(layer, dZ, A, "a", vec=3)      # 16 pixels padded to 18
    assert (gemm.orientation, gemm.rows, gemm.cols) == ("a", "(r,t,c)", "(k)")
    assert gemm.X.shape == (18, 18) and gemm.Y.shape == (18, 3)
    assert not gemm.structure[:, 16:].any()
    for wrong in ("w", "auto"):
        with pytest.raises(ValueError, match="x_operand must be 'dz' or 'a'"):
            lower_backward_weight(layer, dZ, A, x_operand=wrong)
    with pytest.raises(ValueError, match=r"vec must be in \[1, 64\], not 0"):
        lower_forward(layer, A, sparse_fixed(rng, layer.weight_shape, 1.0), vec=0)


# --- finite differences (float64 central differences, always run) --------------------------------

FD_LAYERS = [
    ConvLayer(batch=2, in_channels=2, height=5, width=4, out_channels=3, kernel=3,
              stride=1, padding=1),
    ConvLayer(batch=1, in_channels=2, height=6, width=7, out_channels=2, kernel=3,
              stride=2, padding=0),               # (H + 2p - R) % s != 0 on both axes
    ConvLayer(batch=2, in_channels=1, height=4, width=5, out_channels=2, kernel=1,
              stride=3, padding=2),               # padding beyond kernel - 1
    ConvLayer(batch=1, in_channels=3, height=3, width=3, out_channels=2, kernel=5,
              stride=2, padding=2),
]


def _central_difference(loss, x, eps):
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        saved = x[idx]
        x[idx] = saved + eps
        up = loss()
        x[idx] = saved - eps
        down = loss()
        x[idx] = saved
        grad[idx] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("layer", FD_LAYERS, ids=lambda layer: layer.label)
def test_conv_gradients_match_finite_differences(rng, layer):
    A = rng.standard_normal(layer.input_shape)
    W = rng.standard_normal(layer.weight_shape)
    G = rng.standard_normal(layer.output_shape)
    s, p = layer.stride, layer.padding

    def loss():
        return np.sum(conv_forward(A, W, s, p) * G)

    # The loss is linear in each operand: central differences err only by rounding, ~1e-16 / eps.
    tol = dict(rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(conv_backward_data(G, W, A.shape[2:], s, p),
                               _central_difference(loss, A, 1e-3), **tol)
    np.testing.assert_allclose(conv_backward_weight(G, A, layer.kernel, s, p),
                               _central_difference(loss, W, 1e-3), **tol)


def test_batchnorm_backward_matches_finite_differences(rng):
    Z = rng.standard_normal((2, 3, 3, 2))
    G = rng.standard_normal(Z.shape)

    def loss():
        return np.sum(batchnorm_forward(Z) * G)

    # Nonlinear: truncation error O(eps**2) ~ 1e-10, rounding ~1e-16 / eps ~ 1e-11.
    np.testing.assert_allclose(batchnorm_backward(G, Z), _central_difference(loss, Z, 1e-5),
                               rtol=1e-6, atol=1e-7)
