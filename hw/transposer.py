"""The block transposer: the on-chip corner turn of ``vec x vec`` blocks of memory words.

A word of the core's tensor layout holds ``vec`` channels of one pixel; backward-weight's
operands need words of ``vec`` pixels of one channel (docs/architecture.md section 8.3, the
design of backward-weight on chip). Fed ``vec`` words of consecutive pixels, the transposer gives
``vec`` words of consecutive channels. The core does not instantiate it yet: the window gather
(section 8.3) is its first user.
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.hdl import Assert
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import check_range

__all__ = ["BlockTransposer", "transposer_word_layout"]


def transposer_word_layout(vec: int, width: int) -> data.ArrayLayout:
    """One word in or out of the transposer: ``vec`` signed elements of ``width`` bits, element
    0 in the least significant bits."""
    return data.ArrayLayout(signed(width), vec)


class BlockTransposer(wiring.Component):
    """Transposes every block of ``vec`` consecutive words: input words ``in[0] .. in[vec-1]``
    of a block become its ``vec`` output words ``out[e][i] = in[i][e]`` (output word ``e`` is
    element ``e`` of every input word of the block, input word ``i``'s in position ``i``).

    Parameters
    ----------
    vec : int
        Words per block and elements per word, 1..64.
    width : int
        Bits of one signed element, 1..64.

    Ports
    -----
    i : In(stream.Signature(transposer_word_layout(vec, width)))
        The input words. Blocks are back to back and unframed: words ``k * vec .. k * vec +
        vec - 1`` since reset are block ``k`` (a producer that stops mid-block leaves the block
        open; the transposer holds it until its remaining words come).
    o : Out(stream.Signature(transposer_word_layout(vec, width)))
        The transposed blocks' words, ``vec`` per block, in block order.

    Operation
    ---------
    One ``vec x vec`` array of elements ``R[r][c]`` holds both the block being written and
    the block being read, which take it in opposite directions, alternating per block:

    - a block written *by rows* (input word ``k`` into row ``k``: ``R[k][e] = in[k][e]``) is
      read *by columns* (output word ``e`` is column ``e``: ``out[e][i] = R[i][e]``);
    - the block after it is written *by columns* (input word ``k`` into column ``k``:
      ``R[e][k] = in[k][e]``) and read *by rows* (``out[e][i] = R[e][i]``); and so on.

    So the block being written fills its slots (rows or columns) in the order in which the
    block being read frees the same slots: input word ``k`` may go into slot ``k`` once the
    reader has sent slot ``k``, or in the cycle it sends it (the read sees the array before the
    clock edge, the write lands at it). The whole state beyond the array is two counters
    (``wr``, ``rd``: words of the block being written and being read), the write direction
    (``mode``) and ``full`` (a complete block is being read, in the other direction); a
    write never overtakes the read (``wr <= rd`` while ``full``: ``Assert``-ed).

    Storage is ``vec * vec * width`` flip-flops, one block, plus ``2 * ceil(log2(vec)) + 2``
    of control. No ping-pong (two arrays, twice the flip-flops): one array already takes a word
    and sends a word in every cycle, since the next block's word ``k`` needs exactly the slot
    the current block's word ``k`` leaves. Words go into and out of the array by index (a
    write enable per element from the one-hot ``wr``, a ``2 * vec``-to-1 multiplexer per output
    element), not by shifting it (every element would then choose among hold, two shifts and
    two loads, at each of the ``vec * vec * width`` flip-flops, instead of hold or one of two
    loads; the read multiplexers are only ``vec * width``, and shifting would also need a
    write position that depends on how far the writer lags the reader).

    Latency and throughput
    ----------------------
    ``latency = 1``: a block's first word is valid on ``o`` in the cycle after its last word is
    taken, once the previous block has left (always, when ``o`` is never stalled: the last
    word can only be taken as the previous block's last word leaves). ``o.valid`` is a
    register and ``o.payload`` a multiplexer on registers.

    One word in and one word out per cycle, with no bubble between blocks. Unstalled, ``N``
    blocks offered back to back from cycle 0 are taken in cycles ``0 .. N * vec - 1`` and
    leave in cycles ``vec .. (N + 1) * vec - 1``: ``N * vec + vec - 1 + latency`` cycles in
    all, each word leaving ``vec - 1 + latency`` cycles after it came (a block's first output
    word holds an element of its last input word).

    ``i.ready`` depends combinationally on ``o.ready`` (the next block's word goes into the
    slot being sent in the same cycle), which the stream rules allow; it does not depend on
    ``i.valid``, and ``o.valid`` depends on no input. The array holds one block: with ``o``
    stalled, ``i`` takes ``vec`` words (the rest of the block) and then waits; after that each
    word sent frees one slot. No input idling or output backpressure loses, duplicates or
    reorders a word.
    """

    def __init__(self, vec: int, width: int):
        self._vec = check_range("vec", vec, 1, 64)
        self._width = check_range("width", width, 1, 64)
        layout = transposer_word_layout(vec, width)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    vec = property(lambda self: self._vec)
    width = property(lambda self: self._width)

    @property
    def latency(self) -> int:
        """Cycles from a block's last input word taken to its first output word valid (the
        previous block gone, ``o`` not stalled)."""
        return 1

    @property
    def storage_bits(self) -> int:
        """Flip-flops of the array: one block, ``vec * vec * width``."""
        return self._vec * self._vec * self._width

    def elaborate(self, platform):
        m = Module()
        vec, width = self._vec, self._width
        # element[r][c] is R[r][c]. One signal per element, not one array signal: Amaranth
        # checks each assignment against every bit of the signal it drives, and follows every
        # bit of a signal a dynamic index reads, which made a single vec x vec array signal
        # take minutes to generate at vec 32. Reset-less: a slot is read only once written.
        element = [[Signal(signed(width), name=f"r{r}c{c}", reset_less=True)
                    for c in range(vec)] for r in range(vec)]
        mode = Signal()              # 0: the block being written goes in by rows, 1: by columns
        # Counters of at least one bit (they stay 0 for vec 1): Verilog has no 0-bit vector.
        wr = Signal(range(max(2, vec)))      # words of the block being written taken so far
        rd = Signal(range(max(2, vec)))      # words of the block being read sent so far
        full = Signal()              # a complete block is being read (in the direction ~mode)

        take, send = Signal(), Signal()
        wr_last, rd_last = Signal(), Signal()
        m.d.comb += [
            self.o.valid.eq(full),
            send.eq(full & self.o.ready),
            # Slot wr is free once the block being read has sent it, or sends it now.
            self.i.ready.eq(~full | (wr < rd) | ((wr == rd) & self.o.ready)),
            take.eq(self.i.valid & self.i.ready),
            wr_last.eq(wr == vec - 1),
            rd_last.eq(rd == vec - 1),
        ]

        # --- write: input word wr into row wr (mode 0) or column wr (mode 1) -----------------
        slot = [Signal(name=f"slot{k}") for k in range(vec)]     # slot[k]: word k taken now
        for k in range(vec):
            m.d.comb += slot[k].eq(take & (wr == k))
        for r in range(vec):
            for c in range(vec):
                with m.If(Mux(mode, slot[c], slot[r])):
                    m.d.sync += element[r][c].eq(Mux(mode, self.i.payload[r],
                                                     self.i.payload[c]))
        with m.If(take):
            m.d.sync += wr.eq(Mux(wr_last, 0, wr + 1))
            with m.If(wr_last):
                m.d.sync += mode.eq(~mode)

        # --- read: column rd of a block written by rows (now mode 1), else row rd -------------
        out = [Signal(signed(width), name=f"out{i}") for i in range(vec)]
        with m.Switch(rd):
            for k in range(vec):
                with m.Case(k):
                    m.d.comb += [out[i].eq(Mux(mode, element[i][k], element[k][i]))
                                 for i in range(vec)]
        m.d.comb += self.o.payload.eq(Cat(out))
        with m.If(send):
            m.d.sync += rd.eq(Mux(rd_last, 0, rd + 1))
        # A block written completely is read next; it can only complete as the block being
        # read sends its last word (its last slot is the one freed last).
        m.d.sync += full.eq((take & wr_last) | (full & ~(send & rd_last)))

        # Checked at the clock edge, on settled values.
        m.d.sync += [
            Assert((wr < vec) & (rd < vec), "a word counter left [0, vec)"),
            Assert(full | (rd == 0), "the read counter moved with no block to read"),
            Assert(~full | (wr <= rd), "the block being written overtook the block being read"),
            Assert(~(take & wr_last & full) | (send & rd_last),
                   "a block was completed while the previous one still had words to send"),
        ]
        return m
