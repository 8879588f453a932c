"""Zero-skipping index decoder and its dense counterpart (ARCHITECTURE.md section 4)."""

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.config import ceil_log2, check_range

from .layouts import index_beat_layout, index_width, mask_chunk_layout

__all__ = ["ZeroSkipIndexDecoder", "DenseIndexSequencer", "chunk_cycles"]


def chunk_cycles(set_bits: int, lanes: int) -> int:
    """Cycles the decoder spends on a chunk with ``set_bits`` nonzero elements (unstalled):
    ``ceil(set_bits / lanes)``, and one for an all-zero chunk. The cycle model uses this."""
    return max(1, -(-set_bits // lanes))


def _prefix_counts(m: Module, bits: list, width: int, name: str) -> list:
    """Exclusive prefix popcounts: element ``p`` is the number of set bits below ``p``.

    Kogge-Stone parallel prefix: ``ceil(log2(n))`` adder levels instead of an ``n``-long chain,
    so the decoder's critical path grows with ``log2(vec)``, not with ``vec``.
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


class _IndexSource(wiring.Component):
    """Common ports of the decoder and the dense sequencer (they are interchangeable)."""

    def __init__(self, *, vec: int, lanes: int, masks: int = 1, side=None):
        self._vec = check_range("vec", vec, 1, 64)
        self._lanes = check_range("lanes", lanes, 1, vec)
        self._masks = check_range("masks", masks, 1, 2)
        self._side = side
        super().__init__({
            "i": In(stream.Signature(mask_chunk_layout(vec, masks, side))),
            "o": Out(stream.Signature(index_beat_layout(vec, lanes, side))),
        })

    vec = property(lambda self: self._vec)
    lanes = property(lambda self: self._lanes)
    masks = property(lambda self: self._masks)

    latency = 0
    """Combinational: a chunk's first beat is offered in the cycle the chunk is."""

    def _pass_through(self, m):
        if self._side is not None:
            m.d.comb += self.o.payload.side.eq(self.i.payload.side)


class ZeroSkipIndexDecoder(_IndexSource):
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

    Ports
    -----
    i : In(stream.Signature(mask_chunk_layout(vec, masks, side)))
        One chunk: mask(s), first/last framing of the output it contributes to, side payload.
    o : Out(stream.Signature(index_beat_layout(vec, lanes, side)))
        Beats of up to ``lanes`` ascending indices. ``first`` is on the first beat of a frame,
        ``last`` on its last.

    Timing
    ------
    Latency 0 (indices are computed combinationally from the chunk on ``i``, which the stream
    protocol holds stable until it is accepted; the PE registers them). A chunk with ``n`` set
    bits takes exactly ``ceil(n / lanes)`` beats and cycles; an all-zero chunk takes one cycle
    and no beat, except that the last chunk of a frame always yields a beat, with no valid
    lanes if it is all zero, to carry ``last``. The chunk is accepted in the cycle of its final
    beat, so consecutive chunks follow without bubbles: unstalled, a chunk costs
    :func:`chunk_cycles` cycles. (An all-zero chunk costs one cycle, not zero: skipping it for
    free needs the mask of the chunk after it in the same cycle. Structurally zero chunks -
    padding and dilation - are never sent by the address generator, so they cost nothing.)

    Compaction is prefix-popcount based: lane ``j`` takes the remaining set bit that has
    exactly ``j`` remaining set bits below it (``log2(vec)`` adder levels), not a serial
    priority encoder.
    """

    def elaborate(self, platform):
        m = Module()
        vec, lanes = self._vec, self._lanes
        count_width = ceil_log2(vec + 1)

        effective = Signal(vec)
        if self._masks == 2:
            m.d.comb += effective.eq(self.i.payload.mask & self.i.payload.mask_b)
        else:
            m.d.comb += effective.eq(self.i.payload.mask)

        issued = Signal(vec)             # bits of the current chunk already sent in earlier beats
        pending_first = Signal()         # `first` arrived on an all-zero, not-last chunk
        remaining = Signal(vec)
        m.d.comb += remaining.eq(effective & ~issued)

        below = _prefix_counts(m, list(remaining), count_width, "below")
        taken = Signal(vec)              # bits sent in this beat
        for j in range(lanes):
            select = Signal(vec, name=f"select{j}")  # one-hot (or zero): the element of lane j
            m.d.comb += select.eq(Cat(remaining[p] & (below[p] == j) for p in range(vec)))
            # One-hot to binary: OR of the positions whose select bit is set.
            index = Const(0, index_width(vec))
            for p in range(1, vec):
                index = index | Mux(select[p], p, 0)
            m.d.comb += [
                self.o.payload.index[j].eq(index),
                self.o.payload.lane_valid[j].eq(select.any()),
            ]
        m.d.comb += taken.eq(Cat(remaining[p] & (below[p] < lanes) for p in range(vec)))

        chunk_zero = Signal()
        final = Signal()                 # this beat sends the chunk's last set bit
        m.d.comb += [
            chunk_zero.eq(remaining == 0),
            final.eq((remaining & ~taken) == 0),
            self.o.valid.eq(self.i.valid & (~chunk_zero | self.i.payload.last)),
            self.o.payload.first.eq((self.i.payload.first & (issued == 0)) | pending_first),
            self.o.payload.last.eq(self.i.payload.last & final),
            self.i.ready.eq((chunk_zero & ~self.i.payload.last) | (final & self.o.ready)),
        ]
        self._pass_through(m)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [issued.eq(0), pending_first.eq(0)]
            with m.If(~final):
                m.d.sync += issued.eq(issued | taken)
        with m.If(self.i.valid & chunk_zero & ~self.i.payload.last):
            m.d.sync += pending_first.eq(pending_first | self.i.payload.first)
        return m


class DenseIndexSequencer(_IndexSource):
    """The sparsity-agnostic counterpart of :class:`ZeroSkipIndexDecoder`, same ports: every
    chunk yields indices ``0..vec-1`` in ``ceil(vec / lanes)`` beats, whatever its mask.

    It builds the dense-only engine, whose area the zero-skipping one is compared with.
    Latency 0; throughput one beat per cycle.
    """

    def elaborate(self, platform):
        m = Module()
        vec, lanes = self._vec, self._lanes
        beats = -(-vec // lanes)
        beat = Signal(range(beats))
        final = Signal()
        m.d.comb += final.eq(beat == beats - 1)
        for j in range(lanes):
            index = Signal(range(vec + lanes), name=f"index{j}")
            m.d.comb += [
                index.eq(beat * lanes + j),
                self.o.payload.index[j].eq(index),
                self.o.payload.lane_valid[j].eq(index < vec),
            ]
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.o.payload.first.eq(self.i.payload.first & (beat == 0)),
            self.o.payload.last.eq(self.i.payload.last & final),
            self.i.ready.eq(self.o.ready & final),
        ]
        self._pass_through(m)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += beat.eq(0)
            with m.If(~final):
                m.d.sync += beat.eq(beat + 1)
        return m
