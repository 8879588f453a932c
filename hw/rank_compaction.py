"""Rank compaction, shared by the index decoder (a chunk's nonzero elements into lanes) and the
tile array (a row's wanted columns into tiles) - docs/architecture.md sections 4.1 and 4.6.

The set bits of a mask are sent ``step`` at a time, lowest first. Every set bit gets its *rank*,
the number of set bits below it, from a parallel prefix popcount; the ranks are registered with
the mask and count down by ``step`` after every send, so that output ``j`` always takes the bit
whose held rank is ``j``: a constant compare and a one-hot-to-binary OR, no priority encoder and
no adder on the select path.

These are helpers that add logic to the caller's :class:`~amaranth.hdl.Module` (not components):
the registers and nets keep the names the caller gives them, and no pipeline stage is added.
"""

from amaranth import Cat, Const, Module, Mux, Signal, unsigned

from maskprop.base.config import ceil_log2

__all__ = ["prefix_counts", "RankRegister", "LowestBitRegister"]


def prefix_counts(m: Module, bits: list, width: int, name: str) -> list:
    """Exclusive prefix popcounts: element ``p`` is the number of set bits below ``p``.

    Kogge-Stone parallel prefix: ``ceil(log2(n))`` adder levels instead of an ``n``-long chain,
    so the critical path grows with ``log2(n)``, not with ``n``. Combinational; the nodes are
    named ``{name}_l{level}_{p}``.
    """
    sums = [b.as_unsigned() for b in bits]
    distance, level = 1, 0
    while distance < len(sums):
        next_sums = []
        for p, value in enumerate(sums):
            node = Signal(unsigned(width), name=f"{name}_l{level}_{p}")
            m.d.comb += node.eq(value + sums[p - distance] if p >= distance else value)
            next_sums.append(node)
        sums, distance, level = next_sums, distance * 2, level + 1
    return [Const(0, width)] + sums[:-1]


class RankRegister:
    """A held ``n``-bit mask with the rank of each set bit, sent ``step`` set bits at a time.

    Construction adds the prefix popcount of ``bits`` (combinational, :func:`prefix_counts`,
    nodes ``{counts_name}_l*``) to ``m``. The caller puts the statements of :meth:`load` and
    :meth:`step` into ``m.d.sync`` under its own conditions (a ``load`` written after a ``step``
    wins in a cycle that has both) and reads :meth:`select` and :meth:`last_step`.

    Registers (``reset_less``; valid only while the caller marks the register as holding):
    ``mask`` (``{name}_mask``: the set bits not yet sent), ``rank[p]`` (``{name}_rank{p}``),
    ``total`` (``{name}_total``: unsent set bits). ``rank_width = ceil_log2(n + 1)``.

    Timing: :meth:`load` and :meth:`step` take effect in the next cycle; :meth:`select` and
    :meth:`last_step` are combinational from the registers. No other state.
    """

    def __init__(self, m: Module, bits, n: int, *, name: str, counts_name: str):
        self.n = n
        self.rank_width = ceil_log2(n + 1)
        self._bits = bits
        self._counts = prefix_counts(m, list(bits) + [Const(0, 1)], self.rank_width,
                                     counts_name)
        self.mask = Signal(n, name=f"{name}_mask", reset_less=True)
        self.rank = [Signal(self.rank_width, name=f"{name}_rank{p}", reset_less=True)
                     for p in range(n)]
        self.total = Signal(self.rank_width, name=f"{name}_total", reset_less=True)

    def load(self) -> list:
        """Statements that take ``bits`` with the ranks of its set bits and their popcount."""
        return [
            self.mask.eq(self._bits),
            [rank.eq(count) for rank, count in zip(self.rank, self._counts[:self.n])],
            self.total.eq(self._counts[self.n]),
        ]

    def step(self, step: int, *, saturate: bool = False) -> list:
        """Statements that drop the ``step`` lowest set bits (ranks ``0 .. step - 1``): the
        ranks and the total count down by ``step``. They wrap below zero for bits already
        sent; those are masked off. ``saturate``: the total stops at 0 (for a register that
        is stepped after its last bit, so that :meth:`last_step` stays true)."""
        return [
            [rank.eq(rank - step) for rank in self.rank],
            self.mask.eq(self.mask & ~Cat(rank < step for rank in self.rank)),
            self.total.eq(self._after_step(step) if saturate else self.total - step),
        ]

    def _after_step(self, step: int):
        # A register of n <= step bits is empty after any step: the constant, rather than a
        # compare that is always false (verilator -Wall's CMPCONST).
        if step >= self.n:
            return 0
        return Mux(self.total > step, self.total - step, 0)

    def last_step(self, step: int):
        """Whether the next :meth:`step` sends the last set bit (``total <= step``).

        The register holds at most ``n`` set bits, so with ``step >= n`` this is the constant
        1, folded here rather than left to the netlist: for ``n = step = 2**k - 1`` it would
        compare the counter with its own maximum value, an always-true comparison that
        ``verilator -Wall`` rejects (CMPCONST)."""
        return Const(1, 1) if step >= self.n else self.total <= step

    def select(self, m: Module, j, name: str):
        """Output ``j``: ``(position, valid)`` of the held set bit of rank ``j`` (a constant, or
        a register when the caller's outputs take ranks that change).

        Adds the one-hot select ``name`` (``n`` bits, zero if no such bit) to ``m`` and returns
        its binary position (``max(1, ceil_log2(n))`` bits, 0 when invalid) and ``valid``
        (the select is not zero). Combinational."""
        select = Signal(self.n, name=name)       # one-hot (or zero)
        m.d.comb += select.eq(Cat(self.mask[p] & (self.rank[p] == j) for p in range(self.n)))
        return _one_hot_position(select, self.n), select.any()


def _one_hot_position(select, n: int):
    """The binary position of the set bit of the one-hot (or zero) ``select`` of ``n`` bits:
    the OR of the positions whose bit is set, ``max(1, ceil_log2(n))`` bits, 0 when zero."""
    position = Const(0, max(1, ceil_log2(n)))
    for p in range(1, n):
        position = position | Mux(select[p], p, 0)
    return position


class LowestBitRegister:
    """A held ``n``-bit mask sent one set bit at a time, lowest first: :class:`RankRegister`
    for ``step = 1``, without the ranks.

    With one output a cycle the rank compare is a find-first-set, which the mask does by
    itself: the lowest set bit is ``mask & -mask`` and stepping clears it (``mask & (mask -
    1)``), one carry chain instead of a prefix popcount and a rank register per bit (a 16-bit
    single-lane decoder in 462 ECP5 LUT4s with ranks; the join array's lanes, one product a
    cycle, decode 16 bits each). Same use as :class:`RankRegister`: the caller puts
    :meth:`load` and :meth:`step` into ``m.d.sync``; registers ``mask`` (``{name}_mask``), the
    mask without its lowest set bit (``{name}_rest``) and the flags :meth:`last_step` and
    :meth:`empty` read (``{name}_single``, ``{name}_empty``), ``reset_less``.
    """

    def __init__(self, m: Module, bits, n: int, *, name: str):
        self.n = n
        self._bits = bits
        self.mask = Signal(n, name=f"{name}_mask", reset_less=True)
        # The mask without its lowest set bit, and whether that leaves at most one set bit or
        # none: registered with the mask, computed from the next mask, so that neither the
        # select nor the caller's ready logic runs through a carry chain.
        self._rest = Signal(n, name=f"{name}_rest", reset_less=True)
        self._single = Signal(name=f"{name}_single", reset_less=True)
        self._empty = Signal(name=f"{name}_empty", reset_less=True)

    def _take(self, mask) -> list:
        rest = mask & (mask - 1)
        return [self.mask.eq(mask), self._rest.eq(rest), self._single.eq(rest == 0),
                self._empty.eq(mask == 0)]

    def load(self) -> list:
        """Statements that take ``bits``."""
        return self._take(self._bits)

    def step(self) -> list:
        """Statements that drop the lowest set bit."""
        return self._take(self._rest)

    def last_step(self):
        """Whether the next :meth:`step` sends the last set bit (or there is none)."""
        return self._single

    def empty(self):
        """Whether no set bit is left."""
        return self._empty

    def select(self, m: Module, name: str):
        """``(position, valid)`` of the lowest held set bit; adds its one-hot select ``name``
        to ``m`` (it took fewer ECP5 LUT4s than a priority encoder on the mask in the 16-bit
        decoder, 206 against 234). Combinational."""
        select = Signal(self.n, name=name)
        m.d.comb += select.eq(self.mask & ~self._rest)
        return _one_hot_position(select, self.n), select.any()
