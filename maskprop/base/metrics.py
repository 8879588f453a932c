"""The measures of a dense-vs-sparse comparison, defined once for the cycle model, the network
evaluation and the runs on the generated Verilog.

- dense cycles, sparse cycles: the same pass on the same hardware in dense mode (every element
  issued) and in sparse mode (zeros skipped, only the wanted outputs);
- dense slots: the multiplier slots dense mode occupies, every multiplier in every dense cycle
  (chunk padding and idle lanes or tiles included): ``dense cycles * multipliers``;
- nonzero MACs: the products sparse mode must do, both operands nonzero, wanted outputs only;
- speedup = dense cycles / sparse cycles; ideal = dense slots / nonzero MACs, the speedup of a
  sparse mode that wasted no multiplier slot; efficiency = speedup / ideal (achieved over ideal,
  at most 1).

Where there is no work (no nonzero product, or no sparse cycle), ideal and efficiency (and a
speedup over zero cycles) are ``None``: the ideal is unbounded, and any number would mislead.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["NO_WORK", "Speedups", "Totals", "totals", "multiplier_slots", "nonzero_products",
           "format_speedup", "format_ratio"]

#: What tables and CSV files say where a measure is ``None`` (nothing to speed up).
NO_WORK = "no work"


class Speedups:
    """Speedup, ideal and efficiency of anything with integer ``dense_cycles``,
    ``sparse_cycles``, ``dense_slots`` and ``nonzero_macs`` (see the module's docstring)."""

    @property
    def speedup(self) -> float | None:
        return self.dense_cycles / self.sparse_cycles if self.sparse_cycles else None

    @property
    def ideal(self) -> float | None:
        return self.dense_slots / self.nonzero_macs if self.nonzero_macs else None

    @property
    def efficiency(self) -> float | None:
        speedup, ideal = self.speedup, self.ideal
        return None if speedup is None or ideal is None else speedup / ideal


@dataclass(frozen=True)
class Totals(Speedups):
    """The four integer terms summed over several passes: the speedup of running them all."""
    dense_cycles: int
    sparse_cycles: int
    dense_slots: int
    nonzero_macs: int


def totals(records) -> Totals:
    """The sums of ``records``' terms (each a :class:`Speedups`). Summing the integer terms, not
    averaging the ratios, weights each pass by its work."""
    records = list(records)
    return Totals(*(sum(int(getattr(r, name)) for r in records)
                    for name in ("dense_cycles", "sparse_cycles", "dense_slots", "nonzero_macs")))


def multiplier_slots(dense_cycles: int, multipliers: int) -> int:
    """The dense slots: every one of ``multipliers`` (lanes times tiles) in every dense cycle."""
    return int(dense_cycles) * int(multipliers)


#: float64 holds every integer below 2**53 exactly (float32 only below 2**24).
_EXACT_FLOAT64 = 1 << 53


def nonzero_products(x_nonzero, y_nonzero, wanted=None) -> int:
    """Products with both operands nonzero over the outputs ``wanted`` (default: all) of
    ``X (M, I) @ Y (I, J)``: the nonzero MACs, exactly, as a Python integer.

    The matmul runs in float64 (BLAS; numpy's int64 matmul is several times slower): every
    per-output count is at most the reduction ``I``, an integer below ``2**53`` and so exact
    (longer reductions are refused), and the per-output counts are summed in int64.
    """
    x = np.asarray(x_nonzero) != 0
    y = np.asarray(y_nonzero) != 0
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[0]:
        raise ValueError(f"x_nonzero and y_nonzero must be (M, I) and (I, J), not {x.shape} "
                         f"and {y.shape}")
    if x.shape[1] >= _EXACT_FLOAT64:
        raise ValueError(f"reduction {x.shape[1]:,} is too long to count exactly in float64")
    pairs = x.astype(np.float64) @ y.astype(np.float64)
    if wanted is not None:
        pairs = pairs[np.asarray(wanted, dtype=bool)]
    return int(pairs.astype(np.int64).sum())


def format_speedup(value: float | None) -> str:
    """A speedup or ideal for a table: ``2.05x``, or :data:`NO_WORK` for ``None``."""
    return NO_WORK if value is None else f"{value:.2f}x"


def format_ratio(value: float | None) -> str:
    """An efficiency (achieved/ideal) for a table: ``0.41``, or :data:`NO_WORK` for ``None``."""
    return NO_WORK if value is None else f"{value:.2f}"
