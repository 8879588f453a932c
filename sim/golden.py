"""Bit-exact NumPy golden model of one convolution layer's training step.

Conventions (docs/architecture.md sections 1 and 3):

- activations ``A``/``dA``: ``(N, C, H, W)``; outputs ``Z``/``dZ``: ``(N, K, Ho, Wo)``;
  weights ``W``/``dW``: ``(K, C, R, R)``; stride ``s`` and padding ``p`` on both spatial axes;

      forward         Z[n,k,y,x]  = sum_{c,r,t} W[k,c,r,t] * A[n,c, s*y+r-p, s*x+t-p]
      backward-data   dA[n,c,h,w] = sum_{k,r,t} W[k,c,r,t] * dZ[n,k,(h+p-r)/s,(w+p-t)/s]  (exact /)
      backward-weight dW[k,c,r,t] = sum_{n,y,x} dZ[n,k,y,x] * A[n,c, s*y+r-p, s*x+t-p]

- float functions (``conv_forward``, ...) compute in float64;
- fixed-point functions (``conv_forward_fixed``, ...) take int arrays holding signed
  ``config.data_width`` values, form exact products and exact int64 sums, refuse (before
  computing) a layer whose reduction could overflow ``config.acc_width``, and return either the raw
  accumulators (``shift=None``) or ``requantize(acc, shift, data_width)``.

The convolutions here are *direct*: a loop over the ``R*R`` kernel taps, each a strided slice of the
zero-padded input contracted over channels. The GEMM lowering in :mod:`maskprop.sim.lowering` is a
second, independent implementation (explicit index arithmetic + matrix product); the tests require
the two to agree exactly.

Masks. Skipping zero *operands* never changes a sum, so forward with ``A``'s zeros skipped and
backward-weight with ``A``'s or ``dZ``'s zeros skipped are numerically the plain dense functions
below: there is nothing to model. Skipping *outputs* does change the result: backward-data with an
output mask (``omask = A != 0``, the nonzero map of the layer's input activation) returns exactly 0
where the mask is 0. That is correct for training because the previous ReLU multiplies those
gradients by 0 anyway (:func:`relu_backward`).
"""

from dataclasses import dataclass

import numpy as np

from maskprop.base.config import DEFAULT, Config, check_range

from maskprop.sim.layer import ConvLayer, check_shape

__all__ = [
    "conv_forward", "conv_backward_data", "conv_backward_weight",
    "conv_forward_fixed", "conv_backward_data_fixed", "conv_backward_weight_fixed",
    "requantize", "to_fixed",
    "nonzero_mask", "relu", "relu_backward",
    "batchnorm_forward", "batchnorm_backward",
    "TrainStep", "conv_train_step",
]


# --- layer / operand plumbing ---------------------------------------------------------------

def _layer(input_shape, weight_shape, stride, padding) -> ConvLayer:
    """The ConvLayer that ``(N,C,H,W)`` and ``(K,C,R,R)`` describe; ValueError if inconsistent."""
    if weight_shape[2] != weight_shape[3]:
        raise ValueError(f"weights must be (K, C, R, R) with a square kernel, "
                         f"not shape {tuple(weight_shape)}")
    n, c, h, w = input_shape
    k, wc, r, _ = weight_shape
    if wc != c:
        raise ValueError(f"weights have {wc} input channels but the activation has {c}")
    return ConvLayer(batch=n, in_channels=c, height=h, width=w, out_channels=k, kernel=r,
                     stride=stride, padding=padding)


def _input_hw(input_hw) -> tuple:
    if len(input_hw) != 2:
        raise ValueError(f"input_hw must be (H, W), not {input_hw!r}")
    # Accept NumPy integers (e.g. from an array's shape arithmetic); ConvLayer checks the rest.
    return tuple(int(v) if isinstance(v, np.integer) else v for v in input_hw)


def _check_4d(name: str, x: np.ndarray) -> np.ndarray:
    if x.ndim != 4:
        raise ValueError(f"{name} must be a 4-D NCHW (or KCRR) array, not shape {x.shape}")
    return x


def _as_float(name: str, x) -> np.ndarray:
    """``x`` as a 4-D float64 array."""
    x = _check_4d(name, np.asarray(x))
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must be a real numeric array, not dtype {x.dtype}")
    return x.astype(np.float64)


def _as_fixed(name: str, x, data_width: int) -> np.ndarray:
    """``x`` as 4-D int64 after checking it holds signed ``data_width`` integer values."""
    x = _check_4d(name, np.asarray(x))
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array (signed {data_width}-bit values), "
                         f"not dtype {x.dtype}; see to_fixed() for float data")
    low, high = -(1 << (data_width - 1)), (1 << (data_width - 1)) - 1
    if x.size and (x.min() < low or x.max() > high):
        raise ValueError(f"{name} values must be in [{low}, {high}] (signed {data_width}-bit), "
                         f"found [{x.min()}, {x.max()}]")
    return x.astype(np.int64)


def _output_mask(omask, shape) -> np.ndarray | None:
    """``omask`` as a bool array of ``shape`` (nonzero = computed), or None for 'all ones'."""
    if omask is None:
        return None
    omask = np.asarray(omask)
    check_shape("omask", omask, shape)
    return omask != 0


def _taps(layer: ConvLayer, r: int, t: int) -> tuple:
    """Slices of the padded input that kernel tap ``(r, t)`` reads for every output pixel.

    Output row ``y`` reads padded row ``s*y + r``, ``y = 0..Ho-1``. The last row ``r + s*(Ho-1)``
    is at most ``H + 2p - 1`` by the definition of ``Ho``, so the slices never run off the end.
    """
    s = layer.stride
    return (slice(r, r + s * (layer.out_height - 1) + 1, s),
            slice(t, t + s * (layer.out_width - 1) + 1, s))


def _pad(x: np.ndarray, p: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))


# --- the direct-convolution core, shared by float64 and int64 ---------------------------------
#
# Each core function works in the dtype of its (already validated) operands: float64 for the float
# model, int64 for the fixed-point one, where every product and partial sum is exact as long as
# ConvLayer.check_accumulation passed (|partial sum| <= sum |products| <= 2**(acc_width-1) - 1).

def _forward_core(layer: ConvLayer, A: np.ndarray, W: np.ndarray) -> np.ndarray:
    Ap = _pad(A, layer.padding)
    Z = np.zeros(layer.output_shape, dtype=np.result_type(A, W))
    for r in range(layer.kernel):
        for t in range(layer.kernel):
            rows, cols = _taps(layer, r, t)
            Z += np.einsum("nchw,kc->nkhw", Ap[:, :, rows, cols], W[:, :, r, t])
    return Z


def _backward_data_core(layer: ConvLayer, dZ: np.ndarray, W: np.ndarray) -> np.ndarray:
    # Scatter each tap's contribution back to the padded input positions it was read from, then
    # crop the padding. Padded rows that no tap reads (when (H + 2p - R) % s != 0, the bottom/right
    # rows past the last window) simply receive nothing, which is the exact gradient.
    p = layer.padding
    n, c, h, w = layer.input_shape
    dAp = np.zeros((n, c, h + 2 * p, w + 2 * p), dtype=np.result_type(dZ, W))
    for r in range(layer.kernel):
        for t in range(layer.kernel):
            rows, cols = _taps(layer, r, t)
            dAp[:, :, rows, cols] += np.einsum("nkyx,kc->ncyx", dZ, W[:, :, r, t])
    return dAp[:, :, p:p + h, p:p + w]


def _backward_weight_core(layer: ConvLayer, dZ: np.ndarray, A: np.ndarray) -> np.ndarray:
    Ap = _pad(A, layer.padding)
    dW = np.zeros(layer.weight_shape, dtype=np.result_type(dZ, A))
    for r in range(layer.kernel):
        for t in range(layer.kernel):
            rows, cols = _taps(layer, r, t)
            dW[:, :, r, t] = np.einsum("nkyx,ncyx->kc", dZ, Ap[:, :, rows, cols])
    return dW


# --- float64 model ----------------------------------------------------------------------------

def conv_forward(A, W, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Float64 forward convolution: ``A (N,C,H,W)``, ``W (K,C,R,R)`` -> ``Z (N,K,Ho,Wo)``."""
    A, W = _as_float("A", A), _as_float("W", W)
    return _forward_core(_layer(A.shape, W.shape, stride, padding), A, W)


def conv_backward_data(dZ, W, input_hw, stride: int = 1, padding: int = 0,
                       omask=None) -> np.ndarray:
    """Float64 gradient of the input: ``dZ (N,K,Ho,Wo)``, ``W (K,C,R,R)`` -> ``dA (N,C,H,W)``.

    ``input_hw = (H, W)`` is needed because several input sizes give the same ``(Ho, Wo)``.
    ``omask`` (optional, shape ``(N,C,H,W)``, nonzero = compute) is the output mask, normally
    ``nonzero_mask(A)``: masked-out outputs are exactly 0.
    """
    dZ, W = _as_float("dZ", dZ), _as_float("W", W)
    layer = _layer((dZ.shape[0], W.shape[1], *_input_hw(input_hw)), W.shape, stride, padding)
    check_shape("dZ", dZ, layer.output_shape)
    mask = _output_mask(omask, layer.input_shape)
    dA = _backward_data_core(layer, dZ, W)
    return dA if mask is None else np.where(mask, dA, 0.0)


def conv_backward_weight(dZ, A, kernel: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Float64 gradient of the weights: ``dZ (N,K,Ho,Wo)``, ``A (N,C,H,W)`` -> ``dW (K,C,R,R)``."""
    dZ, A = _as_float("dZ", dZ), _as_float("A", A)
    layer = _layer(A.shape, (dZ.shape[1], A.shape[1], kernel, kernel), stride, padding)
    check_shape("dZ", dZ, layer.output_shape)
    return _backward_weight_core(layer, dZ, A)


# --- fixed-point model ------------------------------------------------------------------------

def requantize(acc, shift: int, data_width: int) -> np.ndarray:
    """Re-quantize accumulators: arithmetic right shift with round-half-up, then saturate.

    ``result = clip(floor((acc + 2**(shift-1)) / 2**shift), -2**(dw-1), 2**(dw-1) - 1)`` for
    ``shift > 0``; ``shift = 0`` only saturates. Ties round towards +infinity
    (3/2 -> 2, -3/2 -> -1).

    ``acc`` is an integer array (any shape) of values that fit int64; the result is int64 of the
    same shape. The rounding is computed as ``(acc >> shift) + bit (shift-1) of acc``, which equals
    the formula above but cannot overflow int64 even for ``acc`` near ``2**63``.
    """
    check_range("shift", shift, 0, 63)
    check_range("data_width", data_width, 2, 32)
    acc = np.asarray(acc)
    if acc.dtype == np.bool_ or not np.issubdtype(acc.dtype, np.integer):
        raise ValueError(f"acc must be an integer array, not dtype {acc.dtype}")
    acc = acc.astype(np.int64)
    if shift > 0:
        acc = (acc >> shift) + ((acc >> (shift - 1)) & 1)
    return np.clip(acc, -(1 << (data_width - 1)), (1 << (data_width - 1)) - 1)


def to_fixed(x, frac_bits: int, data_width: int) -> np.ndarray:
    """Quantize float data to signed ``data_width`` integers with ``frac_bits`` fractional bits.

    Round half up (as :func:`requantize`), then saturate. A convenience for tests and examples.
    """
    check_range("frac_bits", frac_bits, 0, 62)
    check_range("data_width", data_width, 2, 32)
    q = np.floor(np.asarray(x, dtype=np.float64) * (1 << frac_bits) + 0.5)
    return np.clip(q, -(1 << (data_width - 1)), (1 << (data_width - 1)) - 1).astype(np.int64)


def _fixed_config(config: Config | None, shift) -> Config:
    """The config to use (default :data:`DEFAULT`), after checking ``shift`` up front so that a bad
    argument fails before any work is done."""
    if shift is not None:
        check_range("shift", shift, 0, 63)
    return config or DEFAULT


def _finish(acc: np.ndarray, shift, config: Config) -> np.ndarray:
    return acc if shift is None else requantize(acc, shift, config.data_width)


def conv_forward_fixed(A, W, stride: int = 1, padding: int = 0, *,
                       config: Config | None = None, shift: int | None = None) -> np.ndarray:
    """Bit-exact forward pass: integer ``A (N,C,H,W)``, ``W (K,C,R,R)`` -> ``(N,K,Ho,Wo)`` int64.

    Returns the exact accumulators if ``shift`` is None, else ``requantize(acc, shift,
    config.data_width)``. Raises ``ValueError`` for operands outside the signed ``data_width`` range
    and, before computing anything, if the reduction ``C*R*R`` could overflow ``acc_width``.
    """
    config = _fixed_config(config, shift)
    A = _as_fixed("A", A, config.data_width)
    W = _as_fixed("W", W, config.data_width)
    layer = _layer(A.shape, W.shape, stride, padding)
    layer.check_accumulation(config, passes=("forward",))
    return _finish(_forward_core(layer, A, W), shift, config)


def conv_backward_data_fixed(dZ, W, input_hw, stride: int = 1, padding: int = 0, omask=None, *,
                             config: Config | None = None,
                             shift: int | None = None) -> np.ndarray:
    """Bit-exact backward-data pass -> ``dA (N,C,H,W)`` int64; see :func:`conv_backward_data`.

    Masked-out outputs (``omask == 0``) are exactly 0, raw or requantized. The overflow check is
    on the reduction ``K*R*R``.
    """
    config = _fixed_config(config, shift)
    dZ = _as_fixed("dZ", dZ, config.data_width)
    W = _as_fixed("W", W, config.data_width)
    layer = _layer((dZ.shape[0], W.shape[1], *_input_hw(input_hw)), W.shape, stride, padding)
    check_shape("dZ", dZ, layer.output_shape)
    mask = _output_mask(omask, layer.input_shape)
    layer.check_accumulation(config, passes=("backward_data",))
    acc = _backward_data_core(layer, dZ, W)
    if mask is not None:
        acc = np.where(mask, acc, 0)  # requantize(0) == 0, so masking before it is exact
    return _finish(acc, shift, config)


def conv_backward_weight_fixed(dZ, A, kernel: int, stride: int = 1, padding: int = 0, *,
                               config: Config | None = None,
                               shift: int | None = None) -> np.ndarray:
    """Bit-exact backward-weight pass -> ``dW (K,C,R,R)`` int64; see :func:`conv_backward_weight`.

    The overflow check is on the reduction ``N*Ho*Wo``.
    """
    config = _fixed_config(config, shift)
    dZ = _as_fixed("dZ", dZ, config.data_width)
    A = _as_fixed("A", A, config.data_width)
    layer = _layer(A.shape, (dZ.shape[1], A.shape[1], kernel, kernel), stride, padding)
    check_shape("dZ", dZ, layer.output_shape)
    layer.check_accumulation(config, passes=("backward_weight",))
    return _finish(_backward_weight_core(layer, dZ, A), shift, config)


# --- masks, ReLU, BatchNorm -------------------------------------------------------------------

def nonzero_mask(x) -> np.ndarray:
    """``x != 0`` as a bool array of the same shape (the chunk-mask bits of section 3)."""
    return np.asarray(x) != 0


def relu(x) -> np.ndarray:
    """``max(x, 0)``, same dtype (int or float)."""
    x = np.asarray(x)
    return np.where(x > 0, x, np.zeros((), dtype=x.dtype))


def relu_backward(dA_out, pre_activation) -> np.ndarray:
    """Gradient through a ReLU: ``dA_out * (pre_activation > 0)``, exactly 0 where masked.

    Without BatchNorm, ``pre_activation`` is the conv output ``Z`` and this *is* the layer's ``dZ``
    (sparse: zero wherever ``Z <= 0``). With BatchNorm between conv and ReLU, this is the gradient
    of the BatchNorm output; :func:`batchnorm_backward` then turns it into a dense ``dZ``.
    """
    dA_out, pre_activation = np.asarray(dA_out), np.asarray(pre_activation)
    check_shape("dA_out", dA_out, pre_activation.shape)
    return np.where(pre_activation > 0, dA_out, np.zeros((), dtype=dA_out.dtype))


def batchnorm_forward(Z, eps: float = 1e-5) -> np.ndarray:
    """Training-mode BatchNorm without affine parameters, float64, per channel over (N, H, W).

    ``Y = (Z - mean) / sqrt(var + eps)`` with the biased batch variance (as PyTorch in training).
    The affine scale and shift are left out: they do not change where gradients are zero.
    """
    Z = _as_float("Z", Z)
    mean = Z.mean(axis=(0, 2, 3), keepdims=True)
    var = Z.var(axis=(0, 2, 3), keepdims=True)
    return (Z - mean) / np.sqrt(var + eps)


def batchnorm_backward(dY, Z, eps: float = 1e-5) -> np.ndarray:
    """Gradient of :func:`batchnorm_forward` w.r.t. its input ``Z``; ``dY``, ``Z``: (N,C,H,W).

    ``dZ = (dY - mean(dY) - Yhat * mean(dY * Yhat)) / sqrt(var + eps)`` (means per channel over
    N, H, W). Because of the two mean terms ``dZ`` is dense even when ``dY`` is sparse: this is
    why gradient input sparsity does not survive BatchNorm (docs/architecture.md section 1).
    """
    dY, Z = _as_float("dY", dY), _as_float("Z", Z)
    check_shape("dY", dY, Z.shape)
    axes = (0, 2, 3)
    inv_std = 1.0 / np.sqrt(Z.var(axis=axes, keepdims=True) + eps)
    Yhat = (Z - Z.mean(axis=axes, keepdims=True)) * inv_std
    return inv_std * (dY - dY.mean(axis=axes, keepdims=True)
                      - Yhat * (dY * Yhat).mean(axis=axes, keepdims=True))


# --- one training step of a conv block -------------------------------------------------------

@dataclass(frozen=True, eq=False)
class TrainStep:
    """Tensors of one training step of ``conv -> [BatchNorm] -> ReLU`` (float64).

    ``Z`` conv output, ``pre_activation`` the ReLU input (``Z`` or ``BN(Z)``), ``A_out`` the block
    output, ``dZ`` the gradient at the conv output (sparse without BatchNorm, dense with it),
    ``dA`` the output-masked input gradient (0 where the block input ``A`` is 0), ``dW``.
    """

    Z: np.ndarray
    pre_activation: np.ndarray
    A_out: np.ndarray
    dZ: np.ndarray
    dA: np.ndarray
    dW: np.ndarray


def conv_train_step(A, W, dA_out, stride: int = 1, padding: int = 0, *,
                    batchnorm: bool = False, eps: float = 1e-5) -> TrainStep:
    """Forward and backward of ``A -> conv(W) -> [BatchNorm] -> ReLU -> A_out``, float64.

    ``A (N,C,H,W)`` is the block input (itself a ReLU output, hence sparse), ``dA_out
    (N,K,Ho,Wo)`` the gradient arriving at ``A_out``. ``dA`` is computed with the output mask
    ``A != 0``, which is what the previous layer's ``relu_backward`` would leave of it anyway.
    """
    A = _as_float("A", A)
    Z = conv_forward(A, W, stride, padding)
    pre = batchnorm_forward(Z, eps) if batchnorm else Z
    d_pre = relu_backward(_as_float("dA_out", dA_out), pre)
    dZ = batchnorm_backward(d_pre, Z, eps) if batchnorm else d_pre
    dA = conv_backward_data(dZ, W, A.shape[2:], stride, padding, omask=nonzero_mask(A))
    dW = conv_backward_weight(dZ, A, np.shape(W)[2], stride, padding)
    return TrainStep(Z=Z, pre_activation=pre, A_out=relu(pre), dZ=dZ, dA=dA, dW=dW)
