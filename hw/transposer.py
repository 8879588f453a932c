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
from amaranth.lib.memory import Memory
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
    One block of storage holds both the block being written and the block being read, which
    take it in opposite directions, alternating per block, so the block being written fills
    its slots in the order in which the block being read frees the same slots: input word
    ``k`` may go into slot ``k`` once the reader has sent slot ``k``, or in the cycle it sends
    it (the read sees the storage before the clock edge, the write lands at it). The whole
    state beyond the storage is two counters (``wr``, ``rd``: words of the block being written
    and being read), the write direction (``mode``) and ``full`` (a complete block is being
    read, written in the other direction); a write never overtakes the read (``wr <= rd``
    while ``full``: ``Assert``-ed).

    The storage is ``vec`` skewed memory banks of ``vec`` elements, each with one write port
    and one asynchronous read port. Element ``e`` of input word ``k`` always goes into bank
    ``(k + e) mod vec``, so every word puts exactly one element into every bank (its write
    data is the input word rotated by ``wr``), and output word ``e`` takes element ``i`` from
    bank ``(i + e) mod vec`` (the read data rotated back by ``rd``). Only the addresses
    depend on the direction:

    - a block written in ``mode`` 0 puts element ``e`` of every word at address ``e`` (bank
      ``b`` writes address ``(b - wr) mod vec``) and is read at address ``rd`` in every bank:
      output word ``e`` frees address ``e`` in every bank, where the next block, written in
      ``mode`` 1, puts its word ``e``;
    - a block written in ``mode`` 1 puts word ``k`` at address ``k`` in every bank (every bank
      writes address ``wr``) and is read at address ``(b - rd) mod vec`` in bank ``b``: output
      word ``e`` frees bank ``b``'s address ``(b - e) mod vec``, where the next block, written
      in ``mode`` 0, puts its word ``e``.

    Why banks: as ``vec * vec * width`` flip-flops written by index and read through a
    ``2 * vec``-to-1 multiplexer per output element, one block took 6,395 LUT4 and 2,058
    flip-flops at vec 16, width 8 on ECP5 (13,451 LUT4 at width 16; Yosys ``synth_ecp5``,
    before placement). The banks map to LUT RAM instead (ECP5 ``TRELLIS_DPR16X4``: one per 16
    addresses and 4 bits of a bank, 32 at vec 16, width 8), plus two barrel rotators of
    ``ceil(log2(vec))`` stages of 2-to-1 multiplexers and a per-bank address multiplexer:
    2,771 LUT4 and 10 flip-flops at vec 16, width 8 (5,467 LUT4 at width 16), nearly all of
    them the rotators, which ABC maps into wide multiplexers for depth (1,119 LUT4 with
    ``synth_ecp5 -nowidelut``). On iCE40, which has no LUT RAM, Yosys makes flip-flops of the
    banks. No ping-pong (two blocks of storage): one already takes a word and sends a word in
    every cycle, since the next block's word ``k`` needs exactly the slots the current block's
    word ``k`` leaves.

    Latency and throughput
    ----------------------
    ``latency = 1``: a block's first word is valid on ``o`` in the cycle after its last word is
    taken, once the previous block has left (always, when ``o`` is never stalled: the last
    word can only be taken as the previous block's last word leaves). ``o.valid`` is a
    register and ``o.payload`` a rotator on the banks' asynchronous read data.

    One word in and one word out per cycle, with no bubble between blocks. Unstalled, ``N``
    blocks offered back to back from cycle 0 are taken in cycles ``0 .. N * vec - 1`` and
    leave in cycles ``vec .. (N + 1) * vec - 1``: ``N * vec + vec - 1 + latency`` cycles in
    all, each word leaving ``vec - 1 + latency`` cycles after it came (a block's first output
    word holds an element of its last input word).

    ``i.ready`` depends combinationally on ``o.ready`` (the next block's word goes into the
    slot being sent in the same cycle), which the stream rules allow; it does not depend on
    ``i.valid``, and ``o.valid`` depends on no input. The storage holds one block: with ``o``
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
        """Bits of storage (LUT RAM on ECP5): one block, ``vec * vec * width``."""
        return self._vec * self._vec * self._width

    def elaborate(self, platform):
        m = Module()
        vec, width = self._vec, self._width
        mode = Signal()              # block being written: 0 element e at address e, 1 word k at k
        # Counters of at least one bit (they stay 0 for vec 1): Verilog has no 0-bit vector.
        wr = Signal(range(max(2, vec)))      # words of the block being written taken so far
        rd = Signal(range(max(2, vec)))      # words of the block being read sent so far
        full = Signal()              # a complete block is being read (written in ~mode)

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

        def rotate(name, x, amount, step):
            """``y[j] = x[(j - step * amount) mod vec]``: ``ceil(log2(vec))`` stages, each a
            constant rotation by ``2 ** s mod vec`` or none (they compose mod ``vec``)."""
            for s in range(len(amount)):
                by = (step << s) % vec
                if by == 0:
                    continue
                y = [Signal(signed(width), name=f"{name}_s{s}_{j}") for j in range(vec)]
                m.d.comb += [y[j].eq(Mux(amount[s], x[(j - by) % vec], x[j]))
                             for j in range(vec)]
                x = y
            return x

        def back(b, counter):
            """``(b - counter) mod vec`` for the constant bank index ``b`` (the counter is
            below ``vec``: no comparison for the last bank, which Verilator calls constant)."""
            if b == vec - 1:
                return b - counter
            return Mux(counter <= b, b - counter, b + vec - counter)

        # Bank b holds element e of input word k at (k + e) mod vec: one element of every word.
        # The banks have no reset (zeros at configuration): an address is read once written.
        write_data = rotate("wdata", [self.i.payload[e] for e in range(vec)], wr, 1)
        read_data = []
        for b in range(vec):
            bank = Memory(shape=signed(width), depth=max(2, vec), init=[])
            m.submodules[f"bank{b}"] = bank
            write, read = bank.write_port(), bank.read_port(domain="comb")
            m.d.comb += [
                # --- write: word wr, element e at address e (mode 0) or wr (mode 1) ---------
                write.addr.eq(Mux(mode, wr, back(b, wr))),
                write.data.eq(write_data[b]),
                write.en.eq(take),
                # --- read: a block written in mode 0 (now mode 1) at rd, else at b - rd ------
                read.addr.eq(Mux(mode, rd, back(b, rd))),
            ]
            read_data.append(read.data)
        # Output word rd takes element i from bank (i + rd) mod vec.
        m.d.comb += self.o.payload.eq(Cat(rotate("rdata", read_data, rd, -1)))

        with m.If(take):
            m.d.sync += wr.eq(Mux(wr_last, 0, wr + 1))
            with m.If(wr_last):
                m.d.sync += mode.eq(~mode)
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
