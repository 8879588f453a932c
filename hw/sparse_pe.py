"""Sparse-gradient processing element: ``lanes`` multipliers fed by decoded indices."""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import Selection, check_range

from maskprop.hw.accumulation_tree import tree_input_layout
from maskprop.hw.layouts import chunk_pair_layout, index_beat_layout, index_offset

__all__ = ["SparseGradPE"]


class SparseGradPE(wiring.Component):
    """Multiplies the operand pairs that a beat of decoded indices selects.

    Parameters
    ----------
    vec : int
        Elements per chunk, 1..64.
    lanes : int
        Multipliers, 1..vec.
    data_width : int
        Width of the signed operands, 2..32; products are exact, ``2 * data_width`` bits.
    window : int or None
        Lane ``j`` selects among the ``window`` elements of its segment only (segment ``j //
        (lanes * window / vec)``, positions ``s, s + vec / window, ...``:
        :class:`~maskprop.base.config.Selection`, :attr:`Config.select_window`): a
        ``window``-to-1 selection per lane and operand instead of ``vec``-to-1. ``None``:
        ``vec``. The decoder of the same window never indexes outside a lane's segment.

    Ports
    -----
    i : In(stream.Signature(index_beat_layout(vec, lanes, chunk_pair_layout(vec, data_width))))
        A beat from the index decoder, carrying the ``x`` (broadcast) and ``y`` (this tile's)
        chunks as its side payload.
    o : Out(stream.Signature(tree_input_layout(lanes, 2 * data_width)))
        Lane ``j``'s term is ``x[index[j]] * y[index[j]]``, or 0 for an invalid lane; framing
        passes through. Feeds :class:`~maskprop.hw.accumulation_tree.AccumulationTree`.

    Timing
    ------
    Two registered stages (operand select, multiply), ``latency = 2``: a beat accepted in cycle
    ``t`` is offered on ``o`` in cycle ``t + 2``. One beat per cycle; the pipeline stalls as a
    whole while ``o`` is back-pressured. The select stage registers the multiplier inputs and
    the multiply stage its outputs, which maps onto registered DSP blocks.
    """

    latency = 2

    def __init__(self, *, vec: int, lanes: int, data_width: int, window: int | None = None):
        self._selection = Selection(vec, lanes, window)     # validates all three
        self._vec, self._lanes = vec, lanes
        self._data_width = check_range("data_width", data_width, 2, 32)
        super().__init__({
            "i": In(stream.Signature(index_beat_layout(vec, lanes,
                                                       chunk_pair_layout(vec, data_width)))),
            "o": Out(stream.Signature(tree_input_layout(lanes, 2 * data_width))),
        })

    @classmethod
    def from_config(cls, config):
        return cls(vec=config.vec, lanes=config.lanes, data_width=config.data_width,
                   window=config.window)

    vec = property(lambda self: self._vec)
    lanes = property(lambda self: self._lanes)
    data_width = property(lambda self: self._data_width)
    selection = property(lambda self: self._selection)
    window = property(lambda self: self._selection.window)

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]

        beat = self.i.payload
        x_sel = [Signal(signed(self._data_width), name=f"x{j}", reset_less=True)
                 for j in range(self._lanes)]
        y_sel = [Signal(signed(self._data_width), name=f"y{j}", reset_less=True)
                 for j in range(self._lanes)]
        operands_valid = Signal()
        operands_first = Signal(reset_less=True)
        operands_last = Signal(reset_less=True)
        selection, width = self._selection, self._data_width
        window = selection.window
        candidates, offsets = [], []
        for j in range(self._lanes):
            # Lane j's candidates: the `window` elements of its segment, selected by the index's
            # offset in it.
            segment = selection.lane_segment(j)
            positions = selection.positions(segment)
            offset = index_offset(m, beat.index[j], segment, selection, name=f"offset{j}")
            candidates.append(positions)
            offsets.append(offset)

        def select(chunk, positions, offset):
            # A word select (a shifter, which Yosys maps to a mux tree of log2(window) levels)
            # rather than a case over the candidates, which maps to more LUTs.
            elements = chunk.as_value()
            segment = Cat(elements[p * width:(p + 1) * width] for p in positions)
            if window == 1:                               # no offset bit: the element itself
                return segment.as_signed()
            return segment.word_select(offset, width).as_signed()

        with m.If(advance):
            for j, (positions, offset) in enumerate(zip(candidates, offsets)):
                lane_on = beat.lane_valid[j]
                # An invalid lane multiplies 0 * 0: its term is exactly 0 whatever the index.
                m.d.sync += [
                    x_sel[j].eq(Mux(lane_on, select(beat.side.x, positions, offset), 0)),
                    y_sel[j].eq(Mux(lane_on, select(beat.side.y, positions, offset), 0)),
                ]
            m.d.sync += [
                operands_valid.eq(self.i.valid),
                operands_first.eq(beat.first),
                operands_last.eq(beat.last),
            ]
            for j in range(self._lanes):
                m.d.sync += self.o.payload.terms[j].eq(x_sel[j] * y_sel[j])
            m.d.sync += [
                self.o.valid.eq(operands_valid),
                self.o.payload.first.eq(operands_first),
                self.o.payload.last.eq(operands_last),
            ]
        return m
