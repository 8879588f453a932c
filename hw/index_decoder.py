"""Zero-skipping index decoder, the prefix sequencer and the dense sequencer (docs/architecture.md
sections 4.1, 4.2)."""

import abc
from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import Selection, check_range

from maskprop.hw.layouts import index_beat_layout, index_position, mask_chunk_layout
from maskprop.hw.rank_compaction import LowestBitRegister, RankRegister

__all__ = ["ZeroSkipIndexDecoder", "PrefixIndexSequencer", "DenseIndexSequencer",
           "chunk_cycles", "prefix_closure", "segment_set_bits"]


def segment_set_bits(mask: int, selection: Selection) -> list:
    """Set bits of ``mask`` in each of a chunk's selection segments (segment ``s``: the
    positions of :meth:`Selection.positions`), lowest segment first."""
    return [sum(mask >> p & 1 for p in selection.positions(s))
            for s in range(selection.segments)]


def prefix_closure(mask: int) -> int:
    """``mask`` with every bit below its highest set bit set: the elements
    :class:`PrefixIndexSequencer` sends."""
    return (1 << mask.bit_length()) - 1


def chunk_cycles(mask: int, vec: int, lanes: int, window: int | None = None) -> int:
    """Cycles the decoder spends on a chunk whose nonzero elements are the set bits of ``mask``
    (unstalled): the beats its busiest selection segment needs, ``ceil(n_s / (lanes * window
    / vec))`` (``ceil(n / lanes)`` with the full window), and one for an all-zero chunk. The
    cycle model restates this in vectorized form (:meth:`Selection.beats`)."""
    selection = Selection(vec, lanes, window)
    return max(1, *(-(-n // selection.segment_lanes) for n in segment_set_bits(mask, selection)))


class _IndexSource(wiring.Component):
    """Common ports of the decoder and the dense sequencer (they are interchangeable)."""

    def __init__(self, *, vec: int, lanes: int, masks: int = 1, side=None,
                 window: int | None = None):
        self._selection = Selection(vec, lanes, window)     # validates all three
        self._vec, self._lanes = vec, lanes
        self._masks = check_range("masks", masks, 1, 2)
        self._side = side
        super().__init__({
            "i": In(stream.Signature(mask_chunk_layout(vec, masks, side))),
            "o": Out(stream.Signature(index_beat_layout(vec, lanes, side))),
            "busy": Out(1),
        })

    @classmethod
    def from_config(cls, config, *, masks: int = 1, side=None):
        """The block of a core configuration (its ``vec``, ``lanes`` and selection window)."""
        return cls(vec=config.vec, lanes=config.lanes, masks=masks, side=side,
                   window=config.window)

    vec = property(lambda self: self._vec)
    lanes = property(lambda self: self._lanes)
    masks = property(lambda self: self._masks)
    selection = property(lambda self: self._selection)
    window = property(lambda self: self._selection.window)


@dataclass(frozen=True)
class _HeldChunk:
    """What a chunk-register source's beat logic gives the shared framing: the statements that
    load an accepted chunk and step after each beat, whether the next beat is the chunk's final
    one, and whether the chunk has no element to send."""
    load: list
    step: list
    final: Value
    zero: Value


class _ChunkRegisterSource(_IndexSource, metaclass=abc.ABCMeta):
    """A source that registers each chunk and sends its beats from the register: the decoder
    and the prefix sequencer. They differ in which elements a chunk sends (:meth:`_hold`,
    which each defines); the framing is this class's, so both have the decoder's timing
    contract."""

    latency = 1
    """A chunk's first beat is offered one cycle after the chunk is accepted."""

    @abc.abstractmethod
    def _hold(self, m: Module) -> _HeldChunk:
        """Add the chunk register's element logic to ``m`` (loaded from ``self.i.payload``,
        driving ``self.o.payload.index`` and ``lane_valid``)."""

    def elaborate(self, platform):
        m = Module()
        held = Signal()                              # a chunk is in the register
        chunk = self._hold(m)
        held_first = Signal(reset_less=True)
        held_last = Signal(reset_less=True)
        held_side = Signal(self._side, reset_less=True) if self._side is not None else None
        pending_first = Signal()                     # `first` came with an all-zero, not-last chunk
        issued_beats = Signal()                      # a beat of the held chunk was already sent
        done = Signal()                              # the held chunk leaves in this cycle
        m.d.comb += [
            self.o.valid.eq(held & (~chunk.zero | held_last)),
            self.o.payload.first.eq((held_first & ~issued_beats) | pending_first),
            self.o.payload.last.eq(held_last & chunk.final),
            done.eq(held & ((chunk.zero & ~held_last) | (chunk.final & self.o.ready))),
            self.i.ready.eq(~held | done),
            self.busy.eq(held),
        ]
        if held_side is not None:
            m.d.comb += self.o.payload.side.eq(held_side)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [
                chunk.step,
                issued_beats.eq(1),
                pending_first.eq(0),
            ]
        with m.If(held & chunk.zero & ~held_last):
            m.d.sync += pending_first.eq(pending_first | held_first)
        with m.If(self.i.ready):
            m.d.sync += held.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += [
                    issued_beats.eq(0),
                    chunk.load,
                    held_first.eq(self.i.payload.first),
                    held_last.eq(self.i.payload.last),
                ]
                if held_side is not None:
                    m.d.sync += held_side.eq(self.i.payload.side)
        return m


class ZeroSkipIndexDecoder(_ChunkRegisterSource):
    """Emits the indices of a chunk's nonzero elements, up to ``lanes`` per cycle, ascending.

    Parameters
    ----------
    vec : int
        Elements per chunk, 1..64.
    lanes : int
        Indices per output beat, 1..vec.
    masks : int
        1, or 2 to decode the AND of two masks (skip an element when either operand is zero).
    side : Shape or Layout or None
        A payload carried unchanged from a chunk to every beat decoded from it (the PE's
        operand chunks), so that the indices and the data they select travel together.
    window : int or None
        Each lane's selection window (:attr:`Config.select_window`): ``None`` or ``vec``, any
        element; else the chunk's interleaved segments of ``window`` elements
        (:class:`~maskprop.base.config.Selection`: segment ``s`` holds positions ``s, s +
        segments, ...``) are decoded side by side, segment ``s`` into lanes ``s *
        segment_lanes ..``.

    Ports
    -----
    i : In(stream.Signature(mask_chunk_layout(vec, masks, side)))
        One chunk: mask(s), first/last framing of the output it contributes to, side payload.
    o : Out(stream.Signature(index_beat_layout(vec, lanes, side)))
        Beats of up to ``lanes`` ascending indices: each segment's set bits, lowest first,
        ``segment_lanes`` per beat into its own lanes (the lowest of them valid); with the full
        window, the chunk's set bits into the lowest lanes; an invalid lane's index is its
        segment's first element (0 with the full window). ``first`` is on the first beat of
        a frame, ``last`` on its last.
    busy : Out(1)
        A chunk is held (its cycles are the ones :func:`chunk_cycles` counts).

    Timing
    ------
    Two stages. The chunk register takes a chunk with the rank of each of its set bits; the beat
    stage sends them. ``latency = 1``: a chunk accepted in cycle ``t`` offers its first beat in
    cycle ``t + 1``. A chunk with ``n`` set bits takes exactly ``ceil(n / lanes)`` beats and
    cycles (with a window, as many as its busiest segment: ``max_s ceil(n_s /
    segment_lanes)``); an all-zero chunk takes one cycle and no beat, except that the last
    chunk of a frame always yields a beat, with no valid lanes if it is all zero, to carry
    ``last``. The next chunk is accepted in the cycle of the held chunk's final beat, so
    chunks follow without bubbles: unstalled, chunk ``k`` is accepted in cycle
    ``sum(costs[:k])`` and a chunk costs :func:`chunk_cycles` cycles. (An all-zero chunk costs
    one cycle, not zero: skipping it for free needs the mask of the chunk after it in the same
    cycle. Structurally zero chunks - padding and dilation - are never sent by the address
    generator, so they cost nothing.)

    Compaction is prefix-popcount based: every set bit's rank (the number of set bits below it
    in its segment) comes from a ``log2(window)``-level parallel prefix of the segment's mask,
    and in beat ``b`` the segment's lane ``i`` takes the bit of rank ``b * segment_lanes + i``;
    no serial priority encoder, and the only state carried from beat to beat is that count.
    A lane's index is one of ``window`` positions, so the PE's operand selection is
    ``window``-to-1.
    """

    def _hold(self, m: Module) -> _HeldChunk:
        # The chunk register: the accepted chunk, with the rank of every set bit (the number of
        # set bits below it in its segment) and the segment's popcount, from a parallel prefix
        # of the segment's mask.
        effective = Signal(self._vec)
        if self._masks == 2:
            m.d.comb += effective.eq(self.i.payload.mask & self.i.payload.mask_b)
        else:
            m.d.comb += effective.eq(self.i.payload.mask)
        if self._lanes == 1:
            # One index a beat: a find-first-set on the held mask (the same beats).
            held = LowestBitRegister(m, effective, self._vec, name="held")
            index, lane_valid = held.select(m, "select0")
            m.d.comb += [self.o.payload.index[0].eq(index),
                         self.o.payload.lane_valid[0].eq(lane_valid)]
            return _HeldChunk(load=held.load(), step=held.step(), final=held.last_step(),
                              zero=held.empty())
        selection = self._selection
        window, segments, segment_lanes = (selection.window, selection.segments,
                                           selection.segment_lanes)
        # One register per segment; with the full window the one keeps the unsuffixed names.
        suffix = (lambda s: "") if segments == 1 else (lambda s: str(s))
        held_segments = [RankRegister(m, effective[s::segments], window,
                                      name=f"held{suffix(s)}", counts_name=f"rank{suffix(s)}")
                         for s in range(segments)]
        # The beats: beat `b` sends each segment's set bits of rank b*segment_lanes .. The held
        # ranks count down by `segment_lanes` after every beat, so a segment's lane i always
        # takes its bit whose held rank is i: a constant compare, no adder on the select path
        # (hw/rank_compaction.py, shared with the tile array's column groups).
        for s, segment in enumerate(held_segments):
            for i in range(segment_lanes):
                j = s * segment_lanes + i
                index, lane_valid = segment.select(m, i, f"select{j}")
                m.d.comb += [
                    self.o.payload.index[j].eq(index_position(index, s, selection)),
                    self.o.payload.lane_valid[j].eq(lane_valid),
                ]
        # A segment holds at most `window` unsent bits, so with segment_lanes == window its
        # first beat is its final one. With several segments, a segment that is done waits
        # (its count saturates at 0) for the busiest.
        return _HeldChunk(
            load=[segment.load() for segment in held_segments],
            step=[segment.step(segment_lanes, saturate=segments > 1)
                  for segment in held_segments],
            final=Cat(segment.last_step(segment_lanes) for segment in held_segments).all(),
            zero=Cat(segment.total for segment in held_segments) == 0)


class PrefixIndexSequencer(_ChunkRegisterSource):
    """The dense-only array's index source: sends every element of a chunk below its highest
    set mask bit, set or not, with the decoder's ports and timing.

    A layer's structural elements are a prefix of each chunk (padded channels and pixels come
    last; docs/architecture.md section 4.1), so on a structure mask it sends exactly the
    structure, as the decoder does in dense mode, but without the decoder's rank compaction:
    a priority encoder finds the chunk's length ``n`` as it is accepted, and beat ``b`` sends
    in a segment's lane ``i`` the element at offset ``b * segment_lanes + i``, valid while its
    position is below ``n``. It is :class:`ZeroSkipIndexDecoder` given the mask with every
    bit below the highest set (the prefix closure, :func:`prefix_closure`): the same beats, the
    same framing, ``latency = 1``, ``max(1, ceil(n / lanes))`` cycles per chunk. Parameters
    and ports as the decoder's (``masks=2`` takes the prefix of the AND).
    """

    def _hold(self, m: Module) -> _HeldChunk:
        vec, lanes = self._vec, self._lanes
        selection = self._selection
        window, segment_lanes = selection.window, selection.segment_lanes
        mask = self.i.payload.mask
        if self._masks == 2:
            mask = mask & self.i.payload.mask_b
        length_in = Signal(range(vec + 1))
        for position in range(vec):                  # the highest set bit wins
            with m.If(mask[position]):
                m.d.comb += length_in.eq(position + 1)
        length = Signal(range(vec + 1), name="held_length", reset_less=True)
        beats = -(-vec // lanes)
        if beats > 1:
            beat = Signal(range(beats), name="held_beat", reset_less=True)
            step = [beat.eq(beat + 1)]
            load = [length.eq(length_in), beat.eq(0)]
        else:
            # One beat per chunk: no counter (a `range(1)` signal would be zero-width, which
            # the Verilog backend declares as `[-1:0]`).
            beat, step, load = Const(0, 1), [], [length.eq(length_in)]
        for j in range(lanes):
            segment, i = divmod(j, segment_lanes)
            offset = Signal(range(window + segment_lanes), name=f"offset{j}")
            valid = Signal(name=f"valid{j}")
            position = index_position(offset, segment, selection)
            m.d.comb += [
                offset.eq(beat * segment_lanes + i),
                valid.eq((offset < window) & (position < length)),
                self.o.payload.lane_valid[j].eq(valid),
                # An invalid lane reads its segment's first element, as the decoder's does.
                self.o.payload.index[j].eq(Mux(valid, position, segment)),
            ]
        # The next beat's lowest position is (beat + 1) * lanes (segment 0's next offset).
        return _HeldChunk(load=load, step=step, final=(beat + 1) * lanes >= length,
                          zero=length == 0)


class DenseIndexSequencer(_IndexSource):
    """The sparsity-agnostic counterpart of :class:`ZeroSkipIndexDecoder`, same ports: every
    chunk yields indices ``0..vec-1`` in ``ceil(vec / lanes)`` beats, whatever its mask (with a
    window, each segment's positions in order into its own lanes, as the decoder sends them).

    It builds the dense-only engine, whose area the zero-skipping one is compared with.
    Latency 0 (indices are combinational from the beat counter; the chunk on ``i`` is held by
    the stream protocol until its final beat); throughput one beat per cycle.
    """

    latency = 0

    def elaborate(self, platform):
        m = Module()
        vec, lanes = self._vec, self._lanes
        beats = -(-vec // lanes)
        final = Signal()
        if beats > 1:
            beat = Signal(range(beats))
            m.d.comb += final.eq(beat == beats - 1)
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += beat.eq(0)
                with m.If(~final):
                    m.d.sync += beat.eq(beat + 1)
        else:
            # lanes == vec: every chunk is one beat. No counter: a `range(1)` counter would be a
            # zero-width signal, which the Verilog backend declares as `[-1:0]` (Verilator's
            # ASCRANGE).
            beat = Const(0, 1)
            m.d.comb += final.eq(1)
        selection = self._selection
        window, segment_lanes = selection.window, selection.segment_lanes
        for j in range(lanes):
            # Lane j serves segment s = j // segment_lanes: its offset b * segment_lanes + i.
            segment, i = divmod(j, segment_lanes)
            offset = Signal(range(window + segment_lanes), name=f"offset{j}")
            m.d.comb += [
                offset.eq(beat * segment_lanes + i),
                self.o.payload.index[j].eq(index_position(offset, segment, selection)),
                self.o.payload.lane_valid[j].eq(offset < window),
            ]
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.o.payload.first.eq(self.i.payload.first & (beat == 0)),
            self.o.payload.last.eq(self.i.payload.last & final),
            self.i.ready.eq(self.o.ready & final),
            self.busy.eq(self.i.valid),
        ]
        if self._side is not None:
            m.d.comb += self.o.payload.side.eq(self.i.payload.side)
        return m
