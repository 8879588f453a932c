"""What a conv pass's results must be, by the direct convolution of :mod:`maskprop.sim.golden`.

The benches' scoreboards compare the hardware's beats with the lowered GEMM's products
(``X @ Y``); a lowering mistake would be in both. These functions give the same results from the
golden model's direct convolution (a loop over kernel taps, no lowering), with the output mask
applied as the hardware applies it, so tile-array and engine results are also held to it:
:func:`direct_conv` is the pass's tensor, :func:`in_gemm_order` lays it out as the GEMM's
``(rows, cols)`` outputs (the inverse of the lowering's ``to_tensor``), for results that come
out per GEMM output (the engine's).
"""

import numpy as np

from maskprop.sim import golden

__all__ = ["direct_conv", "in_gemm_order"]


def direct_conv(gemm, A, W, dZ, *, dense: bool, config=None) -> np.ndarray:
    """The tensor of ``gemm``'s pass (a :class:`~maskprop.sim.lowering.LoweredGemm` of a layer
    with tensors ``A``, ``W``, ``dZ``) by direct convolution, as the hardware computes it:
    in sparse mode outputs outside the pass's output mask (backward-data lowered with ``A``'s
    mask) are 0; dense mode computes every output. ``config`` (default ``Config()``) bounds the
    operands and the accumulation, as in the golden model."""
    layer = gemm.layer
    stride, padding = layer.stride, layer.padding
    if gemm.pass_name == "forward":
        return golden.conv_forward_fixed(A, W, stride, padding, config=config)
    if gemm.pass_name == "backward_data":
        masked = gemm.omask is not None and not dense
        return golden.conv_backward_data_fixed(dZ, W, (layer.height, layer.width), stride,
                                               padding, omask=A if masked else None,
                                               config=config)
    if gemm.pass_name == "backward_weight":
        return golden.conv_backward_weight_fixed(dZ, A, layer.kernel, stride, padding,
                                                 config=config)
    raise ValueError(f"unknown pass {gemm.pass_name!r}")


def in_gemm_order(gemm, tensor: np.ndarray) -> np.ndarray:
    """``tensor`` (the pass's output tensor) as the GEMM's ``(rows, cols)`` outputs: element
    ``[m, j]`` is the tensor element that ``gemm.to_tensor`` puts output ``(m, j)`` at."""
    rows, cols = gemm.X.shape[0], gemm.Y.shape[1]
    position = np.asarray(gemm.to_tensor(np.arange(rows * cols).reshape(rows, cols)))
    if position.size != rows * cols or tensor.size != rows * cols:
        raise ValueError(f"{gemm.pass_name}: the tensor has {tensor.size} elements, the GEMM "
                         f"{rows} x {cols} outputs")
    out = np.empty(rows * cols, dtype=np.asarray(tensor).dtype)
    out[position.ravel()] = np.asarray(tensor).ravel()
    return out.reshape(rows, cols)
