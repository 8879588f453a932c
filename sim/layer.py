"""Shape of one convolution layer and the per-pass quantities derived from it.

Conventions (docs/architecture.md section 1): tensors are NCHW, weights are ``(K, C, R, R)`` with a
square ``R x R`` kernel, one stride and one padding for both spatial axes, groups = 1.

The three passes of a training step and their reductions:

=============== ========================= ==================
pass            output element            reduction length
=============== ========================= ==================
forward         ``Z[n,k,y,x]``            ``C * R * R``
backward_data   ``dA[n,c,h,w]``           ``K * R * R``
backward_weight ``dW[k,c,r,t]``           ``N * Ho * Wo``
=============== ========================= ==================

The reduction length is the worst-case number of products summed into one accumulator: it is what
decides whether ``acc_width`` bits can overflow. (Backward-data sums over the stride-dilated ``dZ``,
so at most ``K * ceil(R/s)**2`` of its ``K * R * R`` terms are structurally nonzero; the check uses
the full ``K * R * R`` because that is the reduction the hardware walks.)
"""

from dataclasses import dataclass

import numpy as np

from maskprop.base.config import Config, check_range

__all__ = ["ConvLayer", "PASSES", "PASS_ALIASES", "pass_label", "MAX_EXTENT", "MAX_KERNEL",
           "check_shape", "check_pass_name"]

#: The three passes of a training step, in the order the tables above list them.
PASSES = ("forward", "backward_data", "backward_weight")
#: What the command line accepts for each pass: the name, its label and the short form.
PASS_ALIASES = {"fwd": "forward", "forward": "forward", "bwd-data": "backward_data",
                "backward-data": "backward_data", "backward_data": "backward_data",
                "bwd-weight": "backward_weight", "backward-weight": "backward_weight",
                "backward_weight": "backward_weight"}


def pass_label(pass_name: str) -> str:
    """How reports and tables write a pass: ``"backward_data"`` -> ``"backward-data"``."""
    return pass_name.replace("_", "-")

#: Upper bound accepted for batch, channels, height and width (a sanity bound, not a hardware one).
MAX_EXTENT = 1 << 16
#: Upper bound accepted for kernel size, stride and padding.
MAX_KERNEL = 1 << 8


def check_shape(name: str, array: np.ndarray, expected: tuple) -> None:
    """Raise ``ValueError`` unless ``array.shape == expected``."""
    if tuple(array.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, not {tuple(array.shape)}")


@dataclass(frozen=True)
class ConvLayer:
    """A 2-D convolution layer (groups = 1, square kernel, same stride/padding on both axes).

    Parameters
    ----------
    batch, in_channels, height, width : int
        ``N, C, H, W`` of the input activation, each in ``[1, MAX_EXTENT]``.
    out_channels : int
        ``K``, in ``[1, MAX_EXTENT]``.
    kernel : int
        ``R`` (the kernel is ``R x R``), in ``[1, MAX_KERNEL]``; odd and even sizes are both fine.
    stride : int
        ``s`` in ``[1, MAX_KERNEL]``.
    padding : int
        ``p`` zeros on every side, in ``[0, MAX_KERNEL]``. Padding may exceed ``R - 1`` (outputs
        that see only padding are then 0), as in PyTorch.
    name : str
        Optional label used in error messages and reports.

    The layer is refused when ``H + 2p < R`` or ``W + 2p < R`` (no output pixel).
    """

    batch: int
    in_channels: int
    height: int
    width: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    name: str = ""

    def __post_init__(self):
        for field in ("batch", "in_channels", "height", "width", "out_channels"):
            check_range(field, getattr(self, field), 1, MAX_EXTENT)
        check_range("kernel", self.kernel, 1, MAX_KERNEL)
        check_range("stride", self.stride, 1, MAX_KERNEL)
        check_range("padding", self.padding, 0, MAX_KERNEL)
        for axis, size in (("height", self.height), ("width", self.width)):
            if size + 2 * self.padding < self.kernel:
                raise ValueError(
                    f"{self.label}: kernel {self.kernel} does not fit the padded {axis} "
                    f"{size} + 2*{self.padding}; need {axis} + 2*padding >= kernel"
                )

    @property
    def label(self) -> str:
        """``name`` if set, else a description of the shape (for messages)."""
        if self.name:
            return f"layer {self.name!r}"
        return (f"layer N{self.batch} C{self.in_channels} {self.height}x{self.width} "
                f"K{self.out_channels} R{self.kernel} s{self.stride} p{self.padding}")

    # --- shapes -----------------------------------------------------------------------------

    @property
    def out_height(self) -> int:
        """``Ho = floor((H + 2p - R) / s) + 1``."""
        return (self.height + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        """``Wo = floor((W + 2p - R) / s) + 1``."""
        return (self.width + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def input_shape(self) -> tuple:
        """``(N, C, H, W)``: shape of ``A`` and ``dA``."""
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def weight_shape(self) -> tuple:
        """``(K, C, R, R)``: shape of ``W`` and ``dW``."""
        return (self.out_channels, self.in_channels, self.kernel, self.kernel)

    @property
    def output_shape(self) -> tuple:
        """``(N, K, Ho, Wo)``: shape of ``Z`` and ``dZ``."""
        return (self.batch, self.out_channels, self.out_height, self.out_width)

    # --- work -------------------------------------------------------------------------------

    @property
    def forward_reduction(self) -> int:
        """Products per forward output: ``C * R * R``."""
        return self.in_channels * self.kernel * self.kernel

    @property
    def backward_data_reduction(self) -> int:
        """Products per backward-data output: ``K * R * R`` (over the dilated ``dZ``)."""
        return self.out_channels * self.kernel * self.kernel

    @property
    def backward_weight_reduction(self) -> int:
        """Products per weight-gradient output: ``N * Ho * Wo``."""
        return self.batch * self.out_height * self.out_width

    def reduction(self, pass_name: str) -> int:
        """Reduction length of ``pass_name`` (one of :data:`PASSES`)."""
        return getattr(self, f"{check_pass_name(pass_name)}_reduction")

    @property
    def dense_macs(self) -> int:
        """Dense multiply-accumulates of one pass: ``N * K * Ho * Wo * C * R * R``.

        The same count for all three passes: each pass performs every (output pixel, weight tap)
        product once, padding taps included. This is the baseline that speedups are measured
        against (docs/architecture.md section 6).
        """
        n, k, ho, wo = self.output_shape
        return n * k * ho * wo * self.forward_reduction

    def check_accumulation(self, config: Config, passes=PASSES) -> None:
        """Raise ``ValueError`` if a pass in ``passes`` could overflow ``config.acc_width``.

        Worst case: every product is ``data_min**2``; a reduction of ``n`` products is safe iff
        ``n <= config.max_reduction()``. The message names the pass, its reduction length, the
        limit and what to change.
        """
        limit = config.max_reduction()
        for pass_name in passes:
            n = self.reduction(pass_name)
            if n <= limit:
                continue
            # Smallest acc_width a with n * data_min**2 <= 2**(a-1) - 1.
            needed = (n * config.data_min * config.data_min).bit_length() + 1
            raise ValueError(
                f"{self.label}: the {pass_name} reduction sums {n} products "
                f"({_REDUCTION_FORMULA[pass_name]}), but config.max_reduction() = {limit} for "
                f"data_width={config.data_width}, acc_width={config.acc_width}: the accumulator "
                f"could overflow. Raise acc_width to at least {needed} (max 64), lower "
                f"data_width, or {_REDUCTION_REMEDY[pass_name]}."
            )


_REDUCTION_FORMULA = {
    "forward": "in_channels * kernel * kernel",
    "backward_data": "out_channels * kernel * kernel",
    "backward_weight": "batch * out_height * out_width",
}
_REDUCTION_REMEDY = {
    "forward": "split the input channels into groups accumulated separately",
    "backward_data": "split the output channels into groups accumulated separately",
    "backward_weight": "use a smaller batch or accumulate the weight gradient over spatial tiles",
}


def check_pass_name(pass_name: str) -> str:
    """``pass_name`` if it is one of :data:`PASSES`, else ``ValueError`` listing them."""
    if pass_name not in PASSES:
        raise ValueError(f"pass must be one of {', '.join(PASSES)}, not {pass_name!r}")
    return pass_name
