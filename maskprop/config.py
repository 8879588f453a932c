"""The one configuration object that drives the RTL, the golden model and the cycle model."""

from dataclasses import dataclass, asdict

__all__ = ["Config", "check_range", "ceil_log2"]


def ceil_log2(n: int) -> int:
    """Smallest ``k`` with ``2**k >= n`` (0 for n <= 1)."""
    return max(0, (int(n) - 1).bit_length())


def check_range(name: str, value, low: int, high: int) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming the parameter and its range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], not {value}")
    return value


@dataclass(frozen=True)
class Config:
    """Hardware configuration of a maskprop core.

    Parameters
    ----------
    vec : int
        Elements per chunk along the reduction dimension (ARCHITECTURE.md section 3), 1..64.
    lanes : int
        Multipliers per PE, i.e. nonzero indices issued per cycle, 1..vec.
    tiles : int
        PE + accumulation-tree columns sharing one decoder, 1..64.
    data_width : int
        Width of the signed operands, 2..32. Products are exact (``2 * data_width`` bits).
    acc_width : int
        Width of the signed accumulators, from the adder tree's output width
        (``2 * data_width + ceil(log2(lanes))``) to 64.
    tree_stages : int or None
        Register stages inside the adder tree, 0..ceil(log2(lanes)); ``None`` registers every level.
    col_block : int
        Output columns one row word of the tile array covers (its output mask is compacted
        ``tiles`` at a time), ``tiles``..64.
    max_chunks : int
        Chunks of one reduction the tile array's row buffer holds (reduction length
        ``<= max_chunks * vec``), a power of two in 1..4096.
    max_cols : int
        Columns the tile array's Y buffer holds (per tile), 1..65536.
    """

    vec: int = 16
    lanes: int = 4
    tiles: int = 4
    data_width: int = 16
    acc_width: int = 48
    tree_stages: int | None = None
    col_block: int = 32
    max_chunks: int = 64
    max_cols: int = 128

    def __post_init__(self):
        check_range("vec", self.vec, 1, 64)
        check_range("lanes", self.lanes, 1, self.vec)
        check_range("tiles", self.tiles, 1, 64)
        check_range("data_width", self.data_width, 2, 32)
        check_range("acc_width", self.acc_width, self.tree_width, 64)
        if self.tree_stages is None:
            object.__setattr__(self, "tree_stages", self.tree_depth)
        check_range("tree_stages", self.tree_stages, 0, self.tree_depth)
        check_range("col_block", self.col_block, self.tiles, 64)
        check_range("max_chunks", self.max_chunks, 1, 4096)
        if self.max_chunks & (self.max_chunks - 1):
            raise ValueError(f"max_chunks must be a power of two in [1, 4096], "
                             f"not {self.max_chunks}")
        check_range("max_cols", self.max_cols, 1, 65536)

    @property
    def product_width(self) -> int:
        """Width of an exact signed product of two operands."""
        return 2 * self.data_width

    @property
    def tree_depth(self) -> int:
        """Adder levels in a ``lanes``-to-1 tree."""
        return ceil_log2(self.lanes)

    @property
    def tree_width(self) -> int:
        """Width of the adder tree's exact sum of ``lanes`` products."""
        return self.product_width + self.tree_depth

    @property
    def data_min(self) -> int:
        return -(1 << (self.data_width - 1))

    @property
    def data_max(self) -> int:
        return (1 << (self.data_width - 1)) - 1

    def max_reduction(self) -> int:
        """Longest reduction whose worst-case sum cannot overflow ``acc_width`` bits.

        The largest product magnitude is ``data_min**2 = 2**(2*data_width - 2)``; ``n`` of them
        sum to at most ``n * 2**(2*data_width-2)``, which must not exceed ``2**(acc_width-1) - 1``.
        """
        return ((1 << (self.acc_width - 1)) - 1) // (self.data_min * self.data_min)

    def as_dict(self) -> dict:
        return asdict(self)
