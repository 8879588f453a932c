"""Pipelined adder tree plus framed accumulator (docs/architecture.md section 4.4)."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import ceil_log2, check_range

__all__ = ["AccumulationTree", "tree_input_layout", "tree_result_layout"]


def tree_input_layout(lanes: int, in_width: int) -> data.StructLayout:
    """One beat into the tree: ``lanes`` signed terms and the framing of the output they belong to.

    ``first`` starts a new sum (the accumulator is cleared), ``last`` ends it (the sum is emitted).
    A beat may be both first and last.
    """
    return data.StructLayout({
        "terms": data.ArrayLayout(signed(in_width), lanes),
        "first": 1,
        "last":  1,
    })


def tree_result_layout(acc_width: int) -> data.StructLayout:
    """One framed sum: its value, wrapped to ``acc_width`` bits, and whether any partial sum of
    the frame left the ``acc_width`` range (the value is then meaningless: a sticky error flag,
    so that a layer the host failed to refuse cannot silently produce wrong numbers)."""
    return data.StructLayout({
        "value":    signed(acc_width),
        "overflow": 1,
    })


class AccumulationTree(wiring.Component):
    """``lanes``-to-1 pipelined adder tree followed by an accumulator with first/last framing.

    Parameters
    ----------
    lanes : int
        Terms per input beat, 1..64.
    in_width : int
        Width of each signed term, 2..64 (exact products: ``2 * data_width``).
    acc_width : int
        Width of the signed accumulator, ``in_width + ceil(log2(lanes))`` (the tree's exact output
        width) .. 128.
    stages : int or None
        Pipeline registers inside the adder tree, 0..``ceil(log2(lanes))``, spread evenly over the
        adder levels (register after the deepest level first). ``None``: one after every level.

    Ports
    -----
    i : In(stream.Signature(tree_input_layout(lanes, in_width)))
        Beats of terms. ``first``/``last`` frame the beats that sum to one result.
    o : Out(stream.Signature(tree_result_layout(acc_width)))
        One beat per frame, carrying the exact sum of all terms of the frame (wrapped, and flagged,
        on overflow).

    Latency and throughput
    ----------------------
    A frame's result is valid ``latency = stages + 1`` cycles after its last beat is accepted.
    One beat is accepted every cycle while ``o`` is not back-pressured. The whole pipeline stalls
    while a result waits on ``o`` (``i.ready = ~o.valid | o.ready``), so ``i.ready`` depends
    combinationally on ``o.ready``, which the stream rules allow.
    """

    def __init__(self, *, lanes: int, in_width: int, acc_width: int, stages: int | None = None):
        self._lanes = check_range("lanes", lanes, 1, 64)
        self._in_width = check_range("in_width", in_width, 2, 64)
        self._depth = ceil_log2(lanes)
        self._acc_width = check_range("acc_width", acc_width, in_width + self._depth, 128)
        if stages is None:
            stages = self._depth
        self._stages = check_range("stages", stages, 0, self._depth)
        super().__init__({
            "i": In(stream.Signature(tree_input_layout(lanes, in_width))),
            "o": Out(stream.Signature(tree_result_layout(acc_width))),
        })

    @classmethod
    def from_config(cls, config):
        """The tree of a core configuration: exact products in, ``acc_width`` accumulator out."""
        return cls(lanes=config.lanes, in_width=config.product_width,
                   acc_width=config.acc_width, stages=config.tree_stages)

    lanes = property(lambda self: self._lanes)
    in_width = property(lambda self: self._in_width)
    acc_width = property(lambda self: self._acc_width)
    stages = property(lambda self: self._stages)
    depth = property(lambda self: self._depth, doc="Adder levels: ``ceil(log2(lanes))``.")

    @staticmethod
    def latency_for(stages: int) -> int:
        """The :attr:`latency` of a tree with ``stages`` pipeline registers, without building
        one (an unelaborated component would be reported as unused)."""
        return stages + 1

    @property
    def latency(self) -> int:
        """Cycles from accepting a frame's last beat to its result being valid on ``o``."""
        return self.latency_for(self._stages)

    @property
    def registered_levels(self) -> frozenset:
        """Adder levels (1..depth) followed by a pipeline register.

        Spread evenly so that no register stage covers many more adder levels than another;
        the deepest level is always registered when ``stages > 0``.
        """
        return frozenset(-(-(j + 1) * self._depth // self._stages) for j in range(self._stages))

    def elaborate(self, platform):
        m = Module()

        # Whole-pipeline stall: every stage moves only when the result register can be written.
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]

        terms = [self.i.payload.terms[n] for n in range(self._lanes)]
        valid, first, last = self.i.valid, self.i.payload.first, self.i.payload.last
        width = self._in_width
        for level in range(1, self._depth + 1):
            width += 1
            sums = []
            for k in range(0, len(terms), 2):
                node = Signal(signed(width), name=f"level{level}_sum{k // 2}")
                pair = terms[k:k + 2]
                m.d.comb += node.eq(pair[0] + pair[1] if len(pair) == 2 else pair[0])
                sums.append(node)
            terms = sums
            if level in self.registered_levels:
                regs = [Signal(signed(width), name=f"stage{level}_sum{k}", reset_less=True)
                        for k in range(len(terms))]
                stage_valid = Signal(name=f"stage{level}_valid")
                stage_first = Signal(name=f"stage{level}_first", reset_less=True)
                stage_last = Signal(name=f"stage{level}_last", reset_less=True)
                with m.If(advance):
                    m.d.sync += [reg.eq(term) for reg, term in zip(regs, terms)]
                    m.d.sync += [
                        stage_valid.eq(valid),
                        stage_first.eq(first),
                        stage_last.eq(last),
                    ]
                terms, valid, first, last = regs, stage_valid, stage_first, stage_last
        (tree_sum,) = terms

        # The accumulator register doubles as the result register: after a `last` beat it holds
        # the frame's sum until `o` accepts it, and the stall keeps the next frame from starting.
        acc = Signal(signed(self._acc_width))
        acc_overflow = Signal()
        acc_next = Signal(signed(self._acc_width + 1))
        overflow_next = Signal()
        m.d.comb += [
            acc_next.eq(Mux(first, 0, acc) + tree_sum),
            # acc_next fits acc_width bits exactly when its two top bits agree.
            overflow_next.eq((~first & acc_overflow) |
                             (acc_next[-1] != acc_next[-2])),
            self.o.payload.value.eq(acc),
            self.o.payload.overflow.eq(acc_overflow),
        ]
        with m.If(advance):
            m.d.sync += self.o.valid.eq(valid & last)
            with m.If(valid):
                m.d.sync += [
                    acc.eq(acc_next),
                    acc_overflow.eq(overflow_next),
                ]
        return m
