"""Partial sums: backward-weight's reduction split over several core commands
(docs/architecture.md section 8.3, "Reduction split with partial sums").

A command reduces over a part of the output pixels only. The parts before the last send their
sums to memory raw, 64 bits each (``keep``), and every part after the first reads the sums of
the parts before back and adds them to its own (``add``); the last part's sums go on to the
:class:`~maskprop.hw.output_writer.OutputWriter`, which requantizes them. The block sits
between the tile array's results (after the result skid) and the writer: every value it passes
on is 64 bits wide, whatever ``acc_width``, so the sum of all parts is the golden model's int64
sum bit for bit.

Memory layout: **one result beat, one slot group**. Each result beat of the command (``tiles``
slots, valid or not) takes ``W = ceil(tiles / P)`` consecutive memory words of ``P`` 64-bit
values, slot ``t`` in value ``t % P`` of the beat's word ``t // P``; slots that are not valid
(and the values beyond ``tiles``) are written 0 and ignored when read. The alternative, the
valid values packed densely, wastes no memory on a row's last, partial beat, but needs barrel
shifters of 64-bit slots on both sides: 6,356 LUT4 for the defaults on ECP5 (measured), against
a few hundred here, where a beat's sums are a register of ``W`` words and nothing moves. The
core's results are whole beats but for each row's last (``col_block`` a multiple of ``tiles``),
so the waste is below one beat per row.
"""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import PARTIAL_SUM_BITS, Config, check_range
from maskprop.hw.tile_array import array_result_layout

__all__ = ["PartialSums", "SUM_WIDTH"]

#: Bits of one partial sum, in memory and on ``o`` (the host's ``PARTIAL_SUM_BITS``).
SUM_WIDTH = PARTIAL_SUM_BITS


class PartialSums(wiring.Component):
    """Adds the previous parts' partial sums to the tile array's results (``add``) and/or
    sends the sums to memory raw (``keep``); with neither, a combinational pass-through that
    widens the values to 64 bits.

    Parameters
    ----------
    config : Config
        ``tiles`` (slots per result beat), ``acc_width``, ``max_cols`` (the column field).
        ``ValueError`` if it is not a :class:`~maskprop.base.config.Config`.
    bus_width : int
        Bits of a memory word of ``sums`` and ``raw``: a multiple of 64 in 64..4096
        (``ValueError`` naming it and its range otherwise): ``P = bus_width // 64`` values per
        word, value ``i`` in bits ``64 * i .. 64 * i + 63`` (signed, two's complement).

    Ports
    -----
    results : In(stream.Signature(array_result_layout(config)))
        The tile array's result beats: ``tiles`` slots of ``value`` (signed ``acc_width``),
        ``overflow``, ``column`` and ``valid``.
    sums : In(stream.Signature(unsigned(bus_width)))
        With ``add``: the previous parts' partial sums of the command's result beats, in
        order, ``W`` words per beat (the module's layout). ``ready`` is low without ``add``
        and does not depend on ``sums.valid``.
    o : Out(stream.Signature(array_result_layout(config, SUM_WIDTH)))
        Without ``keep``: each result beat with each valid slot's value its accumulator
        sign-extended to 64 bits, plus (``add``) its partial sum, wrapping at 64 bits; an
        invalid slot's value 0; ``overflow``, ``column``, ``valid`` unchanged.
    raw : Out(stream.Signature(unsigned(bus_width)))
        With ``keep``: the values ``o`` would carry, ``W`` words per beat in the layout of
        ``sums`` (invalid slots 0).
    add : In(1)
        Add the partial sums of ``sums``. Held during a command.
    keep : In(1)
        Send the values to ``raw`` instead of ``o``. Held during a command.
    start : In(1)
        A pulse before a command: empties the sums register and the packer and clears
        ``overflow`` at the clock edge (a ``raw`` word not taken in that cycle is dropped).
        No result beat is taken in that cycle, in any mode, nor a ``sums`` word.
    overflow : Out(1)
        Sticky: in ``keep`` mode a valid slot with its ``overflow`` flag set was taken (its sum
        wrapped in the tile array: the partial sum written for it is wrong). Without ``keep``,
        ``o`` carries the flags. Cleared by ``start``.

    Operation
    ---------
    - **Pass-through** (neither ``add`` nor ``keep``): ``o`` is ``results`` with the values
      sign-extended (invalid slots 0), ``results.ready = o.ready`` (but in a ``start``
      cycle).
    - **Add**: a register of the ``W`` words of one beat's sums, filled one word per cycle;
      ``sums.ready`` while it is not full, or when its beat leaves in that cycle (then the
      next beat's first word takes its place). A beat goes when its ``W`` words are in (from
      the cycle after the last one came) and its destination takes it; its ``tiles`` 64-bit
      adders are combinational between ``results`` and ``o`` (or the packer).
    - **Keep**: the beat's values go into the packer, a register of ``W`` words, when it is
      empty or sends its last word in that cycle; ``raw`` offers the words in order, one per
      cycle (``valid`` from registers).

    Latency and throughput
    ----------------------
    ``latency = 0``: with ``add`` a beat leaves in the cycle it is taken, once its sums are in;
    ``raw_latency = 1``: with ``keep`` a beat taken in cycle ``t`` has its first word valid in
    ``t + 1``, its others one per cycle after. Unstalled, one beat per ``W`` cycles (one per
    cycle when ``P >= tiles``, the defaults): add mode loads one word per cycle, keep mode
    sends one. ``results.ready`` depends combinationally on ``o.ready`` (``raw.ready`` with
    ``keep``), not on ``results.valid``; ``sums.ready`` on ``o.ready`` (through the beat that
    leaves), not on ``sums.valid``; ``o.valid`` not on ``o.ready``. Nothing is lost,
    duplicated or reordered under any idling or backpressure.
    """

    def __init__(self, config: Config, *, bus_width: int):
        if not isinstance(config, Config):
            raise ValueError(f"config must be a Config, not {config!r}")
        check_range("bus_width", bus_width, SUM_WIDTH, 4096)
        if bus_width % SUM_WIDTH:
            raise ValueError(f"bus_width must be a multiple of {SUM_WIDTH} in "
                             f"[{SUM_WIDTH}, 4096], not {bus_width}")
        self._config, self._bus_width = config, bus_width
        super().__init__({
            "results": In(stream.Signature(array_result_layout(config))),
            "sums": In(stream.Signature(unsigned(bus_width))),
            "o": Out(stream.Signature(array_result_layout(config, SUM_WIDTH))),
            "raw": Out(stream.Signature(unsigned(bus_width))),
            "add": In(1),
            "keep": In(1),
            "start": In(1),
            "overflow": Out(1),
        })

    config = property(lambda self: self._config)
    bus_width = property(lambda self: self._bus_width)
    latency = 0
    raw_latency = 1

    @property
    def values_per_word(self) -> int:
        """``P``: 64-bit values per memory word."""
        return self._bus_width // SUM_WIDTH

    @property
    def words_per_beat(self) -> int:
        """``W = ceil(tiles / P)``: memory words of one result beat's sums."""
        return -(-self._config.tiles // self.values_per_word)

    def elaborate(self, platform):
        m = Module()
        tiles = self._config.tiles
        words = self.words_per_beat
        index_shape = range(max(2, words + 1))
        result = self.results.payload

        # --- add: one beat's sums, W words -----------------------------------------------------
        sums = [Signal(self._bus_width, name=f"sums{w}") for w in range(words)]
        loaded = Signal(index_shape)             # words of the next beat's sums in `sums`
        full = Signal()
        m.d.comb += full.eq(loaded == words)
        sum_slot = Cat(*sums)                    # slot t: bits 64t .. 64t + 63

        # --- the beat's values: acc (+ partial sum), 0 in invalid slots ----------------------
        values = [Signal(signed(SUM_WIDTH), name=f"value{t}") for t in range(tiles)]
        for t in range(tiles):
            partial = sum_slot[SUM_WIDTH * t:SUM_WIDTH * (t + 1)].as_signed()
            m.d.comb += values[t].eq(Mux(result.valid[t],
                                         result.value[t] + Mux(self.add, partial, 0), 0))

        # --- keep: the packer, W words sent one per cycle ------------------------------------
        packer = [Signal(self._bus_width, name=f"packer{w}") for w in range(words)]
        packed = Signal()                        # the packer holds a beat
        sending = Signal(index_shape)            # its word on `raw`
        last_word = Signal()
        m.d.comb += [
            last_word.eq(sending == words - 1),
            self.raw.valid.eq(packed),
            self.raw.payload.eq(Cat(packer).word_select(sending, self._bus_width)
                                if words > 1 else packer[0]),
        ]
        sent = self.raw.valid & self.raw.ready
        packer_free = ~packed | (sent & last_word)

        # --- the handshakes ------------------------------------------------------------------
        sums_in = Mux(self.add, full, 1)         # the beat's partial sums are in (or none)
        take = Signal()                          # a result beat is taken
        m.d.comb += [
            self.o.valid.eq(self.results.valid & ~self.keep & sums_in & ~self.start),
            self.o.payload.overflow.eq(result.overflow),
            self.o.payload.column.eq(result.column),
            self.o.payload.valid.eq(result.valid),
            self.results.ready.eq(~self.start & sums_in &
                                  Mux(self.keep, packer_free, self.o.ready)),
            take.eq(self.results.valid & self.results.ready),
            self.sums.ready.eq(self.add & ~self.start & (~full | take)),
        ]
        for t in range(tiles):
            m.d.comb += self.o.payload.value[t].eq(values[t])

        # A word goes into its place in the sums register: after the ones before it, or at
        # word 0 when the beat whose sums the register holds leaves in this cycle.
        load = self.sums.valid & self.sums.ready
        place = Mux(full, 0, loaded)
        for w in range(words):
            with m.If(load & (place == w)):
                m.d.sync += sums[w].eq(self.sums.payload)
        with m.If(load):
            m.d.sync += loaded.eq(place + 1)
        with m.Elif(take & self.add):
            m.d.sync += loaded.eq(0)

        with m.If(take & self.keep):
            # The slots beyond tiles are 0 (zero-extended).
            m.d.sync += [Cat(*packer).eq(Cat(*values)), packed.eq(1), sending.eq(0)]
            with m.If((result.overflow & result.valid) != 0):
                m.d.sync += self.overflow.eq(1)
        with m.Elif(sent):
            m.d.sync += sending.eq(sending + 1)
            with m.If(last_word):
                m.d.sync += packed.eq(0)

        with m.If(self.start):
            m.d.sync += [loaded.eq(0), packed.eq(0), sending.eq(0), self.overflow.eq(0)]
        return m
