"""Lowering of the three conv passes to masked sparse GEMMs (docs/architecture.md sections 2 and 3).

Every pass becomes

    Out[m, j] = sum_i X[m, i] * Y[i, j]     where omask[m, j], else Out[m, j] = 0

with ``X`` the sparse operand that the hardware broadcasts (its zeros are skipped) and ``Y`` the
per-column operand. Reductions are channel-last: the reduction index ``i`` runs over ``(r, t, c)``
(forward, channel fastest) or ``(r, t, k)`` (backward-data), so a chunk of ``vec`` consecutive
reduction elements is a run of channels of one kernel tap.

====================== ================== ================ ============ ====================
pass                   rows m             reduction i      cols j       omask
====================== ================== ================ ============ ====================
forward                (n, y, x)          (r, t, c)        k            all ones
backward_data          (n, h, w)          (r', t', k)      c            A[n,c,h,w] != 0
backward_weight "dz"   k                  (n, y, x)        (r, t, c)    all ones
backward_weight "a"    (r, t, c)          (n, y, x)        k            all ones
====================== ================== ================ ============ ====================

Backward-data runs over the stride-dilated ``dZ`` with flipped taps ``r' = R-1-r``: with
``D = dilate(dZ, s)``, ``X[(n,h,w), (r',t',k)] = D[n, k, h + r' - (R-1-p), w + t' - (R-1-p)]``
(zero out of range) and ``Y[(r',t',k), c] = W[k, c, R-1-r', R-1-t']``.

Chunk alignment (``vec``): the hardware cuts the reduction into chunks of ``vec`` elements
(section 3.1). With ``vec > 1`` every lowering aligns its reduction to them, as an address
generator reading channel-last tensors does: channels (``c`` forward, ``k`` backward-data) are
zero-padded to a multiple of ``vec`` so that a chunk is ``vec`` channels of one kernel tap, and
backward-weight's pixels are zero-padded to a multiple of ``vec``. ``vec=1`` (the default) is the
plain mathematical lowering. Padding changes no sum.

Structural zeros: :attr:`LoweredGemm.structure` marks the elements of ``X`` that are not zero by
the layer's shape alone - padding taps, dilation holes, padded channels and pixels are. A
sparsity-agnostic (dense) accelerator never multiplies by those; the tile array's dense mode
issues exactly the structure's elements and never a chunk without one (docs/architecture.md
section 2).

This module builds ``X`` by explicit index arithmetic and multiplies with a matrix product: an
implementation independent of the tap-loop convolutions in :mod:`maskprop.sim.golden`. On chip the
lowering is implicit (an address generator walks the windows); this explicit form states it.
"""

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from maskprop.base.config import check_range

from maskprop.sim.layer import ConvLayer, check_pass_name, check_shape

__all__ = [
    "im2col", "dilate", "masked_gemm", "LoweredGemm", "ORIENTATIONS",
    "lower_forward", "lower_backward_data", "lower_backward_weight", "lower_pass",
    "Chunks", "chunk_count", "pad_to_chunks", "mask_words", "density",
]


def _windows(T: np.ndarray, out_hw: tuple, kernel: int, step: int, offset: int) -> np.ndarray:
    """Channel-last sliding windows of ``T (N, C, H, W)`` -> ``(N, Ho, Wo, R, R, C)``.

    ``out[n, y, x, r, t, c] = T[n, c, step*y + r + offset, step*x + t + offset]``, or 0 where that
    index falls outside ``T`` (padding taps: never read, never stored). ``offset`` may be negative
    (padding) or positive (cropping).
    """
    n, c, h, w = T.shape
    out_h, out_w = out_hw
    taps = np.arange(kernel)
    rows = step * np.arange(out_h)[:, None] + taps[None, :] + offset    # (Ho, R)
    cols = step * np.arange(out_w)[:, None] + taps[None, :] + offset    # (Wo, R)
    row_ok = (rows >= 0) & (rows < h)
    col_ok = (cols >= 0) & (cols < w)
    # Gather with clipped indices, then zero the out-of-range taps.
    T_cl = T.transpose(0, 2, 3, 1)                                       # (N, H, W, C)
    win = T_cl[:, np.clip(rows, 0, h - 1)[:, None, :, None],
               np.clip(cols, 0, w - 1)[None, :, None, :], :]             # (N, Ho, Wo, R, R, C)
    valid = row_ok[:, None, :, None] & col_ok[None, :, None, :]          # (Ho, Wo, R, R)
    return np.where(valid[None, :, :, :, :, None], win, np.zeros((), dtype=T.dtype))


def im2col(A, kernel: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Explicit im2col of ``A (N, C, H, W)`` -> ``(N*Ho*Wo, R*R*C)``.

    Rows in ``(n, y, x)`` order, columns in ``(r, t, c)`` order (``c`` fastest):
    ``X[(n,y,x), (r,t,c)] = A[n, c, s*y + r - p, s*x + t - p]``, 0 for padding taps.
    Keeps the dtype of ``A``.
    """
    A = np.asarray(A)
    if A.ndim != 4:
        raise ValueError(f"A must be 4-D (N, C, H, W), not shape {A.shape}")
    n, c, h, w = A.shape
    layer = ConvLayer(batch=n, in_channels=c, height=h, width=w, out_channels=1, kernel=kernel,
                      stride=stride, padding=padding)
    win = _windows(A, (layer.out_height, layer.out_width), kernel, stride, -padding)
    return win.reshape(n * layer.out_height * layer.out_width, kernel * kernel * c)


def dilate(dZ, stride: int) -> np.ndarray:
    """Insert ``stride - 1`` zeros between neighbouring pixels of ``dZ (N, K, Ho, Wo)``.

    Returns ``(N, K, (Ho-1)*s + 1, (Wo-1)*s + 1)`` with ``D[..., s*y, s*x] = dZ[..., y, x]`` and
    structural zeros elsewhere (the zero-skipping hardware removes them for free).
    """
    check_range("stride", stride, 1, 1 << 16)
    dZ = np.asarray(dZ)
    if dZ.ndim != 4:
        raise ValueError(f"dZ must be 4-D (N, K, Ho, Wo), not shape {dZ.shape}")
    n, k, ho, wo = dZ.shape
    D = np.zeros((n, k, (ho - 1) * stride + 1, (wo - 1) * stride + 1), dtype=dZ.dtype)
    D[:, :, ::stride, ::stride] = dZ
    return D


def _gemm_dtype(*arrays) -> type:
    """int64 if every operand is an integer array (exact products and sums), else float64."""
    if all(np.issubdtype(a.dtype, np.integer) and a.dtype != np.bool_ for a in arrays):
        return np.int64
    return np.float64


def masked_gemm(X, Y, omask=None) -> np.ndarray:
    """``Out = X @ Y`` where ``omask`` is nonzero, exactly 0 elsewhere.

    ``X (M, I)``, ``Y (I, J)``, ``omask (M, J)`` or None (all ones). Integer operands give exact
    int64 results (no overflow for any layer that passed ``ConvLayer.check_accumulation``); any
    float operand gives float64. Masked-out outputs are computed here and then discarded, which is
    numerically the same as not computing them (the hardware spends no cycles on them).
    """
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[0]:
        raise ValueError(f"masked_gemm needs X (M, I) and Y (I, J), got {X.shape} and {Y.shape}")
    dtype = _gemm_dtype(X, Y)
    out = X.astype(dtype) @ Y.astype(dtype)
    if omask is None:
        return out
    omask = np.asarray(omask)
    check_shape("omask", omask, out.shape)
    return np.where(omask != 0, out, np.zeros((), dtype=dtype))


def density(x) -> float:
    """Fraction of nonzero elements of ``x`` (1.0 for an empty array)."""
    x = np.asarray(x)
    return np.count_nonzero(x) / x.size if x.size else 1.0


@dataclass(frozen=True, eq=False)
class LoweredGemm:
    """One pass of one layer as a masked GEMM.

    Attributes
    ----------
    pass_name : str
        ``"forward"``, ``"backward_data"`` or ``"backward_weight"``.
    layer : ConvLayer
    X : ndarray (M, I)
        Sparse broadcast operand, reduction along axis 1 (chunked by :func:`pad_to_chunks`;
        ``I`` is a multiple of ``vec``).
    Y : ndarray (I, J)
        Per-column operand.
    structure : ndarray (M, I) of bool
        Where ``X`` may be nonzero given the layer's shape alone (``X`` is 0 elsewhere): not a
        padding tap, a dilation hole, a padded channel or a padded pixel.
    vec : int
        The chunk size the reduction is aligned to (1: not aligned).
    omask : ndarray (M, J) of bool, or None
        Output mask (None = all ones).
    rows, reduction, cols : str
        The index tuples that ``m``, ``i`` and ``j`` enumerate, slowest first, e.g. ``"(n,y,x)"``.
    to_tensor : callable
        Maps the GEMM output ``Out (M, J)`` to the pass's tensor: ``Z (N,K,Ho,Wo)``,
        ``dA (N,C,H,W)`` or ``dW (K,C,R,R)``.
    """

    pass_name: str
    layer: ConvLayer
    X: np.ndarray
    Y: np.ndarray
    structure: np.ndarray
    vec: int
    omask: np.ndarray | None
    rows: str
    reduction: str
    cols: str
    to_tensor: Callable[[np.ndarray], np.ndarray]

    @property
    def orientation(self) -> str:
        """For backward-weight: ``"dz"`` (X = dZ^T) or ``"a"`` (X = im2col(A)^T); else ``""``."""
        if self.pass_name != "backward_weight":
            return ""
        return "dz" if self.rows == "(k)" else "a"

    def run(self) -> np.ndarray:
        """``masked_gemm(X, Y, omask)`` reshaped by :attr:`to_tensor`."""
        return self.to_tensor(masked_gemm(self.X, self.Y, self.omask))


def _operand(name: str, x, shape: tuple) -> np.ndarray:
    x = np.asarray(x)
    check_shape(name, x, shape)
    return x


def _pixels_last(T: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` -> ``(N*H*W, C)``: rows ``(n, h, w)``, one column per channel."""
    n, c, h, w = T.shape
    return T.transpose(0, 2, 3, 1).reshape(n * h * w, c)


def _aligned(length: int, vec: int) -> int:
    """``length`` rounded up to a multiple of ``vec``."""
    return -(-length // vec) * vec


def _pad_axis(T: np.ndarray, axis: int, length: int) -> np.ndarray:
    """``T`` zero-padded along ``axis`` to ``length``."""
    if T.shape[axis] == length:
        return T
    widths = [(0, 0)] * T.ndim
    widths[axis] = (0, length - T.shape[axis])
    return np.pad(T, widths)


def _channel_ones(shape: tuple, channels: int, padded: int) -> np.ndarray:
    """A one-image ``(1, padded, H, W)`` map, True on the ``channels`` real channels: windowed
    like the data, it gives the structure (where the data may be nonzero)."""
    ones = np.zeros((1, padded) + tuple(shape[2:]), dtype=bool)
    ones[:, :channels] = True
    return ones


def _per_image(structure: np.ndarray, images: int) -> np.ndarray:
    """One image's ``(rows, I)`` structure repeated for ``images`` images, rows image-major."""
    return np.tile(structure, (images, 1))


def _check_vec(vec: int) -> int:
    return check_range("vec", vec, 1, 64)


def lower_forward(layer: ConvLayer, A, W, *, vec: int = 1) -> LoweredGemm:
    """Forward pass: ``X = im2col(A) (N*Ho*Wo, R*R*Cp)``, ``Y = W (R*R*Cp, K)``, no mask, with
    ``Cp`` the channels padded to a multiple of ``vec``."""
    A = _operand("A", A, layer.input_shape)
    W = _operand("W", W, layer.weight_shape)
    n, k, ho, wo = layer.output_shape
    c, R = layer.in_channels, layer.kernel
    cp = _aligned(c, _check_vec(vec))
    structure = im2col(_channel_ones(layer.input_shape, c, cp), R, layer.stride, layer.padding)
    return LoweredGemm(
        pass_name="forward", layer=layer,
        X=im2col(_pad_axis(A, 1, cp), R, layer.stride, layer.padding),
        Y=_pad_axis(W, 1, cp).transpose(2, 3, 1, 0).reshape(-1, k),   # Y[(r,t,c), k] = W[k,c,r,t]
        structure=_per_image(structure, n), vec=vec,
        omask=None, rows="(n,y,x)", reduction="(r,t,c)", cols="(k)",
        to_tensor=lambda out: out.reshape(n, ho, wo, k).transpose(0, 3, 1, 2),
    )


def _backward_data_windows(layer: ConvLayer, dZ: np.ndarray) -> np.ndarray:
    """``(N, H, W, R, R, K')`` windows of the dilated ``dZ (N, K', Ho, Wo)`` with flipped taps."""
    n, c, h, w = layer.input_shape
    R, p = layer.kernel, layer.padding
    # Stride-1 correlation of the dilated dZ, padded by R-1-p (negative = cropped when p > R-1),
    # evaluated at exactly H x W positions: when (H + 2p - R) % s != 0 the windows past the
    # dilated dZ's end read only zeros, which is the exact gradient of the rows no window covered.
    return _windows(dilate(dZ, layer.stride), (h, w), R, 1, p - (R - 1))


def lower_backward_data(layer: ConvLayer, dZ, W, A_mask=None, *, vec: int = 1) -> LoweredGemm:
    """Backward-data pass over the dilated ``dZ`` with flipped taps.

    ``X (N*H*W, R*R*Kp)``: ``X[(n,h,w), (r',t',k)] = dilate(dZ)[n, k, h + r' - (R-1-p), ...]``;
    ``Y (R*R*Kp, C)``: ``Y[(r',t',k), c] = W[k, c, R-1-r', R-1-t']``, with ``Kp`` the output
    channels padded to a multiple of ``vec``. Dilation holes and out-of-range taps are
    structural zeros.
    ``A_mask`` (optional, ``(N,C,H,W)``; the activation ``A`` itself or its bool mask, nonzero =
    compute) becomes ``omask[(n,h,w), c] = A_mask[n,c,h,w] != 0`` (output sparsity).
    """
    dZ = _operand("dZ", dZ, layer.output_shape)
    W = _operand("W", W, layer.weight_shape)
    n, c, h, w = layer.input_shape
    k = layer.out_channels
    kp = _aligned(k, _check_vec(vec))
    win = _backward_data_windows(layer, _pad_axis(dZ, 1, kp))              # (N, H, W, R, R, Kp)
    structure = _backward_data_windows(layer, _channel_ones(layer.output_shape, k, kp))
    omask = None
    if A_mask is not None:
        omask = _pixels_last(_operand("A_mask", A_mask, layer.input_shape)) != 0
    return LoweredGemm(
        pass_name="backward_data", layer=layer,
        X=win.reshape(n * h * w, -1),
        # flipped taps, (r',t',k)
        Y=_pad_axis(W, 0, kp)[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(-1, c),
        structure=_per_image(structure.reshape(h * w, -1), n), vec=vec,
        omask=omask, rows="(n,h,w)", reduction="(r',t',k)", cols="(c)",
        to_tensor=lambda out: out.reshape(n, h, w, c).transpose(0, 3, 1, 2),
    )


#: Backward-weight's two operand orientations: which tensor is the broadcast (skipped) ``X``.
ORIENTATIONS = ("dz", "a")


def lower_backward_weight(layer: ConvLayer, dZ, A, x_operand: str = "dz", *,
                          vec: int = 1) -> LoweredGemm:
    """Backward-weight pass, reduction over output pixels ``(n, y, x)``, padded to a multiple of
    ``vec``.

    ``x_operand`` picks the broadcast (sparse, zero-skipped) operand ``X``:

    - ``"dz"``: ``X = dZ^T (K, N*Ho*Wo)``, ``Y = im2col(A) (N*Ho*Wo, R*R*C)``; rows ``k``,
      cols ``(r,t,c)``; only the padded pixels are structural zeros of ``X`` (``Y``'s padding
      taps are not skipped);
    - ``"a"``: ``X = im2col(A)^T (R*R*C, N*Ho*Wo)``, ``Y = dZ (N*Ho*Wo, K)``; rows ``(r,t,c)``,
      cols ``k``; padding taps are structural zeros of ``X``.

    Which one is faster depends on the data and the mode; the host and the cycle model run each
    mode in its faster one (:func:`maskprop.sim.cycle_model.fastest_lowering`).
    :attr:`LoweredGemm.orientation` reports it.
    """
    if x_operand not in ORIENTATIONS:
        raise ValueError(f"x_operand must be 'dz' or 'a', not {x_operand!r}")
    dZ = _operand("dZ", dZ, layer.output_shape)
    A = _operand("A", A, layer.input_shape)
    k, c, R, _ = layer.weight_shape
    pixels = layer.batch * layer.out_height * layer.out_width
    padded = _aligned(pixels, _check_vec(vec))
    dz_mat = _pad_axis(_pixels_last(dZ), 0, padded)                       # (Pp, K)
    cols = _pad_axis(im2col(A, R, layer.stride, layer.padding), 0, padded)  # (Pp, R*R*C)

    def to_dw(out_k_rtc):  # (K, R*R*C) -> (K, C, R, R)
        return out_k_rtc.reshape(k, R, R, c).transpose(0, 3, 1, 2)

    if x_operand == "dz":
        structure = np.zeros((k, padded), dtype=bool)
        structure[:, :pixels] = True
        return LoweredGemm(
            pass_name="backward_weight", layer=layer, X=dz_mat.T, Y=cols, structure=structure,
            vec=vec, omask=None, rows="(k)", reduction="(n,y,x)", cols="(r,t,c)",
            to_tensor=to_dw)
    taps = im2col(np.ones((1, c, layer.height, layer.width), dtype=bool), R, layer.stride,
                  layer.padding)                                        # (Ho*Wo, R*R*C)
    structure = _pad_axis(_per_image(taps, layer.batch), 0, padded).T
    return LoweredGemm(
        pass_name="backward_weight", layer=layer, X=cols.T, Y=dz_mat, structure=structure,
        vec=vec, omask=None, rows="(r,t,c)", reduction="(n,y,x)", cols="(k)",
        to_tensor=lambda out: to_dw(out.T))


def lower_pass(layer: ConvLayer, pass_name: str, *, A, W, dZ, output_mask: bool = True,
               x_operand: str = "dz", vec: int = 1) -> LoweredGemm:
    """A layer's pass as the masked GEMM the hardware runs: the one place that says which
    lowering serves which pass, for the host driver and the cycle model alike.

    ``output_mask`` (backward-data): compute only where the layer's input activation ``A`` is
    nonzero, the gradients the previous ReLU keeps. ``x_operand``: backward-weight's
    orientation (ignored by the other passes). ``vec``: the chunk size to align to.
    """
    if check_pass_name(pass_name) == "forward":
        return lower_forward(layer, A, W, vec=vec)
    if pass_name == "backward_data":
        return lower_backward_data(layer, dZ, W, A_mask=A if output_mask else None, vec=vec)
    return lower_backward_weight(layer, dZ, A, x_operand=x_operand, vec=vec)


class Chunks(NamedTuple):
    """A matrix cut into chunks along its reduction axis (docs/architecture.md section 3.1).

    ``values (rows, n_chunks, vec)``: the matrix zero-padded to ``n_chunks * vec`` columns;
    ``masks (rows, n_chunks)`` uint64: bit ``b`` set iff ``values[..., b] != 0`` (LSB = element 0).
    """

    values: np.ndarray
    masks: np.ndarray


def chunk_count(length: int, vec: int) -> int:
    """Chunks of ``vec`` elements a reduction of ``length`` takes: ``ceil(length / vec)``, and
    one for an empty reduction (a hardware frame is at least one chunk)."""
    return max(1, -(-length // vec))


def mask_words(chunks) -> np.ndarray:
    """The nonzero masks of ``(..., vec)`` chunks (``vec <= 64``) as uint64 words: bit ``e`` set
    iff element ``e`` is nonzero, LSB = element 0 (the ``mask`` the hardware's decoder reads)."""
    nonzero = np.asarray(chunks) != 0
    check_range("vec", nonzero.shape[-1], 1, 64)
    # Eight mask bits per byte, little-endian, widened to eight bytes: one uint64 per chunk,
    # without a 64-bit temporary per element (the cycle model chunks operands of 10**8 elements).
    packed = np.packbits(nonzero, axis=-1, bitorder="little")
    words = np.zeros(packed.shape[:-1] + (8,), dtype=np.uint8)
    words[..., :packed.shape[-1]] = packed
    return words.view("<u8")[..., 0].astype(np.uint64)


def pad_to_chunks(X, vec: int) -> Chunks:
    """Cut ``X (rows, I)`` along ``I`` into ``max(1, ceil(I / vec))`` chunks of ``vec`` elements.

    The reduction axis is the last one: pass ``X`` as is and ``Y.T`` for the per-column operand.
    The tail is zero-padded, so padding elements have mask bit 0 and are skipped. An empty
    reduction still takes one (all-zero) chunk: a frame of the hardware is at least one chunk.
    """
    check_range("vec", vec, 1, 64)
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (rows, reduction), not shape {X.shape}")
    rows, length = X.shape
    n_chunks = chunk_count(length, vec)
    values = np.zeros((rows, n_chunks * vec), dtype=X.dtype)
    values[:, :length] = X
    values = values.reshape(rows, n_chunks, vec)
    return Chunks(values=values, masks=mask_words(values))
