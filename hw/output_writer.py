"""The output writer: the tile array's results requantized and packed into the core's tensor
layout, as a stream of memory words (docs/architecture.md sections 3.2 and 4.6).

The array computes a pass's GEMM ``Out[m, j]`` row by row, each row once per block of
``col_block`` columns, the wanted columns of a block in ascending groups of ``tiles``. So over a
pass every output column arrives in address order: the words of a row (``ceil(J / vec)`` of
them, ``vec`` channels each) are filled left to right, block after block, and rows follow each
other. The writer therefore needs no row buffer: it assembles one block at a time and feeds it
through a lane gearbox (blocks of ``col_block`` values in, words of ``vec`` values out) whose
words go to consecutive addresses.
"""

from functools import reduce
from operator import or_

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Assert
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import Config, ceil_log2, check_range, container_bits

from maskprop.hw.tile_array import array_result_layout

__all__ = ["OutputWriter", "CONTAINERS", "writer_row_layout", "output_word_layout"]

#: The container widths an element can take in memory.
CONTAINERS = (8, 16, 32)


def writer_row_layout(config: Config) -> data.StructLayout:
    """One row of the GEMM over one block of ``col_block`` columns, in the pass's order (every
    row, dead or live, once per block):

    - ``live``: the row was sent to the tile array; a dead row has no results and its outputs
      are written as 0;
    - ``wanted``: the block's columns the array computes (bit ``p`` = column
      ``col_base + p``): ``omask & col_valid`` of the array's ``rows`` beat, or ``col_valid`` in
      dense mode. Ignored for a dead row;
    - ``first``: the pass's first row block: its first word goes to ``base``.
    """
    return data.StructLayout({"live": 1, "wanted": config.col_block, "first": 1})


def output_word_layout(config: Config, container: int, addr_width: int) -> data.StructLayout:
    """One memory word: ``vec`` signed elements in containers of ``container`` bits (sign
    extended, element 0 in the least significant bits) at word address ``addr``."""
    return data.StructLayout({
        "addr": addr_width,
        "data": data.ArrayLayout(signed(container), config.vec),
    })


def _requantize(m: Module, acc, shift, data_width: int, name: str):
    """``maskprop.sim.golden.requantize`` of one accumulator, combinational: the arithmetic
    right shift by ``shift`` with round-half-up, then saturation to ``data_width`` bits. Returns
    the value and whether it saturated.

    One barrel shifter: ``2 * acc >> shift`` is ``acc >> (shift - 1)`` (``2 * acc`` for shift
    0), whose bit 0 is the rounding bit and whose other bits are ``acc >> shift``, sign-filled
    however far the shift goes (as NumPy's int64 shift of the sign-extended sum)."""
    width = len(acc)
    halved = Signal(signed(width + 1), name=f"{name}_halved")
    rounded = Signal(signed(width + 1), name=f"{name}_rounded")
    high = Signal(name=f"{name}_high")
    low = Signal(name=f"{name}_low")
    value = Signal(signed(data_width), name=f"{name}_value")
    data_max, data_min = (1 << (data_width - 1)) - 1, -(1 << (data_width - 1))
    m.d.comb += [
        halved.eq(Cat(Const(0, 1), acc).as_signed() >> shift),
        # (acc >> shift) + round bit: it could leave acc's range only for the largest acc and
        # shift 0, where the round bit is 0; one more bit anyway.
        rounded.eq((halved >> 1) + halved[0]),
        high.eq(rounded > data_max),
        low.eq(rounded < data_min),
        value.eq(Mux(high, data_max, Mux(low, data_min, rounded))),
    ]
    return value, high | low


class OutputWriter(wiring.Component):
    """The tile array's results of a pass, requantized, with zeros where no output was computed,
    as memory words of the core's tensor layout: output row ``m`` (a pixel) is
    ``Jb = ceil(cols / vec)`` words at word addresses ``base + m * Jb + jb``, word ``jb``
    holding columns (channels) ``jb * vec ..`` in containers, padding columns 0.

    Parameters
    ----------
    config : Config
        ``vec``, ``tiles``, ``col_block``, ``data_width``, ``acc_width``, ``max_cols``.
    container : int or None
        Bits of one element's container in memory, 8, 16 or 32 and at least ``data_width``;
        ``None`` (the default) takes the smallest that holds ``data_width``
        (``maskprop.base.config.container_bits``, the layout of
        ``maskprop.host.memory_layout``).
    addr_width : int
        Bits of a word address, 1..64 (default 32). Addresses wrap.
    value_width : int or None
        Bits of the signed values on ``results``, ``acc_width``..64; ``None`` (the default)
        is ``acc_width``, the tile array's. The core's are 64: partial sums added
        (``hw/partial_sums.py``).

    Ports
    -----
    rows : In(stream.Signature(writer_row_layout(config)))
        One beat per GEMM row and block of ``col_block`` columns in the pass's order (rows
        ascending, each row's blocks ascending), dead rows included: ``live``, ``wanted``,
        ``first``. A beat is taken (``ready``) when its block is complete, i.e. with the block's
        last result beat, or at once for a dead row: it describes the block being assembled.
        So a producer must not offer one beat to the array and to the writer and wait for
        both to take it in the same cycle: that deadlocks, as the writer takes it only after
        the array's results. The writer's rows need their own FIFO (dead rows go to the writer
        only anyway): one entry avoids the deadlock, ``TileArray.FIFO_DEPTH + 2`` entries cover
        every row block the array can hold, so that the array never waits for the writer.
    results : In(stream.Signature(array_result_layout(config, value_width)))
        The tile array's ``o`` (or the same beats with wider values): for each live row
        block, its
        ``max(1, ceil(popcount(wanted) / tiles))`` column groups.
    o : Out(stream.Signature(output_word_layout(config, container, addr_width)))
        The pass's words, in address order, at most one per cycle.
    cols : In(range(max_cols + 1))
        The pass's output columns ``J``, 1..max_cols.
    shift : In(6)
        Requantization shift, 0..63.
    base : In(addr_width)
        Word address of the pass's output row 0.
    clear : In(1)
        Zero ``overflow`` and ``saturated`` (a flag event in the same cycle is lost).
    overflow : Out(1)
        Sticky: some valid slot of a result beat had its accumulator ``overflow`` flag set (a
        sum that wrapped; the word written for it is wrong).
    saturated : Out(1)
        Sticky: some computed output was clipped to the ``data_width`` range by
        requantization (reported apart from ``overflow``: saturation is an expected, bounded
        error of a too-small ``shift``; an overflow is a wrong sum).
    busy : Out(1)
        A result beat, a block or a word not yet taken by ``o`` is held. After a pass's last
        rows beat has been taken, ``busy`` low means all its words have been taken.

    ``cols``, ``shift`` and ``base`` are per-pass settings: hold them from before the pass's
    first rows beat until ``busy`` falls after its last. The writer has no notion of a pass
    otherwise: ``first`` reloads the address, and ``clear`` the flags.

    Raw sums are not written: every output is requantized (``shift = 0`` with ``data_width``
    containers only saturates). A pass whose raw ``acc_width`` sums are wanted (debugging)
    reads the array's ``o``; an on-chip raw mode would change the words per row and the
    packing, for no pass of the training loop.

    Operation
    ---------
    - **Requantize** (one registered stage, ``tiles`` shifters): a result beat is taken when the
      stage is empty or its beat moves on; each value becomes ``requantize(acc, shift,
      data_width)`` (``maskprop.sim.golden.requantize`` bit for bit), with its column and valid
      bit; the flags are collected here.
    - **Assemble** one block in a register of ``col_block`` values: the current rows beat
      (read while it is offered) says which columns the block wants; each held result beat's
      valid slots are written at ``column - col_base`` (the writer counts ``col_base`` from
      ``cols``), and the block is complete when every wanted column has arrived: with the one
      (empty) beat of a block with none wanted, or at once for a dead row. So completion needs
      no count of groups from outside and no flag from the array. Unwanted columns stay 0.
    - **Gearbox**: a register of ``vec - 1 + col_block`` values holding ``have`` of them, the
      row's next values in column order. It offers its first ``vec`` values as a word while it
      holds a whole one, or the rest of a row (zero-padded) once the row's last block is in.
      A complete block enters when, after this cycle's word leaves, fewer than ``vec`` values
      remain and no row end is pending, shifted in behind them (a ``log2(vec)``-level barrel
      shifter), so that each row starts on a word boundary. The word's address counts up from
      ``base``, reloaded when a ``first`` block enters.

    Latency and throughput
    ----------------------
    ``latency = 3``: unstalled, a block's first word is offered 3 cycles after its last
    result beat is taken (2 after the rows beat of a dead row). ``o`` is driven from registers;
    ``ready`` goes back combinationally (``o.ready`` to the gearbox, the block, then
    ``results.ready`` and ``rows.ready``), as in every block of the design.
    One result beat per cycle and one word per cycle. A result beat waits only while a complete
    block waits for the gearbox, and then the gearbox offers a word in every cycle (it still
    holds a whole word, or a row's end): unless its inputs idle, the writer takes a beat or
    sends a word in every cycle, output-bound only when blocks give more words than result
    beats. When ``vec`` is a multiple of ``col_block`` (a block never more than fills the word
    it starts), the writer never stalls the array while ``o`` is ready. Buffering: the
    requantized beat, one block (assembling, or complete and waiting) and the gearbox's
    ``vec - 1 + col_block`` values; no row buffer, whatever ``max_cols``.
    Backpressure on ``o`` holds the gearbox, then the block, then ``results`` and ``rows``;
    nothing is lost or duplicated.
    """

    latency = 3

    def __init__(self, config: Config, *, container: int | None = None, addr_width: int = 32,
                 value_width: int | None = None):
        if not isinstance(config, Config):
            raise ValueError(f"config must be a maskprop Config, not {config!r}")
        if container is None:
            container = container_bits(config.data_width)
        elif container not in CONTAINERS or isinstance(container, bool):
            raise ValueError(f"container must be one of {', '.join(map(str, CONTAINERS))}, "
                             f"not {container!r}")
        elif container < config.data_width:
            raise ValueError(f"container must be one of {', '.join(map(str, CONTAINERS))} "
                             f"and hold data_width {config.data_width}, not {container}")
        check_range("addr_width", addr_width, 1, 64)
        if value_width is None:
            value_width = config.acc_width
        check_range("value_width", value_width, config.acc_width, 64)
        self._config, self._container, self._addr_width = config, container, addr_width
        self._value_width = value_width
        super().__init__({
            "rows": In(stream.Signature(writer_row_layout(config))),
            "results": In(stream.Signature(array_result_layout(config, value_width))),
            "o": Out(stream.Signature(output_word_layout(config, container, addr_width))),
            "cols": In(range(config.max_cols + 1)),
            "shift": In(6),
            "base": In(addr_width),
            "clear": In(1),
            "overflow": Out(1),
            "saturated": Out(1),
            "busy": Out(1),
        })

    config = property(lambda self: self._config)
    container = property(lambda self: self._container)
    addr_width = property(lambda self: self._addr_width)
    value_width = property(lambda self: self._value_width)

    def elaborate(self, platform):
        m = Module()
        c = self._config
        tiles, block, vec, dw = c.tiles, c.col_block, c.vec, c.data_width
        column_width = len(self.results.payload.column[0])
        slots = vec - 1 + block                     # the gearbox's values

        # --- requantize: one registered stage ------------------------------------------------
        beat_layout = data.StructLayout({
            "value": data.ArrayLayout(signed(dw), tiles),
            "column": data.ArrayLayout(unsigned(column_width), tiles),
            "valid": tiles,
        })
        held = Signal(beat_layout)
        held_valid = Signal()
        take_beat = Signal()                        # the assembly takes the held beat
        result = self.results.payload
        m.d.comb += self.results.ready.eq(~held_valid | take_beat)
        accept = self.results.valid & self.results.ready
        saturated = Signal(tiles)
        with m.If(accept):
            m.d.sync += [held.column.eq(result.column), held.valid.eq(result.valid)]
            for t in range(tiles):
                value, clipped = _requantize(m, result.value[t], self.shift, dw, f"requant{t}")
                m.d.comb += saturated[t].eq(clipped)
                m.d.sync += held.value[t].eq(value)
        with m.If(accept):
            m.d.sync += held_valid.eq(1)
        with m.Elif(take_beat):
            m.d.sync += held_valid.eq(0)
        with m.If(accept & ((result.overflow & result.valid) != 0)):
            m.d.sync += self.overflow.eq(1)
        with m.If(accept & ((saturated & result.valid) != 0)):
            m.d.sync += self.saturated.eq(1)
        with m.If(self.clear):
            m.d.sync += [self.overflow.eq(0), self.saturated.eq(0)]

        # --- assemble one block ------------------------------------------------------------------
        lanes = Signal(data.ArrayLayout(signed(dw), block))
        filled = Signal(block)                      # columns of the block arrived so far
        pending = Signal()                          # `lanes` holds a complete block
        pending_width = Signal(range(block + 1))
        pending_last = Signal()                     # ... the last of its row
        pending_first = Signal()                    # ... the first of the pass
        col_base = Signal(range(c.max_cols + 1))
        block_end = Signal(range(c.max_cols + block + 1))
        last_block = Signal()
        width = Signal(range(block + 1))
        move = Signal()                             # the complete block enters the gearbox
        block_free = Signal()
        row = self.rows.payload
        m.d.comb += [
            block_end.eq(col_base + block),
            last_block.eq(block_end >= self.cols),
            width.eq(Mux(last_block, self.cols - col_base, block)),
            block_free.eq(~pending | move),
            take_beat.eq(block_free & self.rows.valid & row.live & held_valid),
        ]
        # Slot t's value goes to position p when it is column col_base + p.
        hits = [Signal(block, name=f"hits{t}") for t in range(tiles)]
        arrived = Signal(block)
        for t in range(tiles):
            for p in range(block):
                m.d.comb += hits[t][p].eq(take_beat & held.valid[t] &
                                          (held.column[t] == col_base + p))
        m.d.comb += arrived.eq(reduce(or_, hits))
        scatter = Signal(data.ArrayLayout(signed(dw), block))
        for p in range(block):
            m.d.comb += scatter[p].eq(reduce(or_, [Mux(hits[t][p], held.value[t], 0)
                                                   for t in range(tiles)]))
        complete = Signal()
        m.d.comb += [
            complete.eq(block_free & self.rows.valid &
                        (~row.live | (take_beat & ((filled | arrived) == row.wanted)))),
            self.rows.ready.eq(complete),
        ]
        m.d.sync += [
            lanes.eq(Mux(move, 0, lanes.as_value()) | scatter.as_value()),
            filled.eq(Mux(complete, 0, filled | arrived)),
            pending.eq(complete | (pending & ~move)),
        ]
        with m.If(complete):
            m.d.sync += [
                pending_width.eq(width),
                pending_last.eq(last_block),
                pending_first.eq(row.first),
                col_base.eq(Mux(last_block, 0, block_end)),
            ]
        # Checked at the clock edge, on settled values: the results belong to the block the
        # rows beat describes.
        slot_outside = Cat(take_beat & held.valid[t] & (hits[t] == 0) for t in range(tiles))
        m.d.sync += [
            Assert(~self.rows.valid | ((self.cols != 0) & (col_base < self.cols)),
                   "cols must be in [1, max_cols] and held during a pass"),
            Assert(~self.rows.valid | ~row.live | ((row.wanted >> width) == 0),
                   "a rows beat wants a column beyond the pass's cols"),
            Assert(~self.rows.valid | ~row.first | (col_base == 0),
                   "first on a rows beat that is not the first block of a row"),
            Assert(slot_outside == 0, "a result column is outside the current row block"),
            Assert((arrived & ~row.wanted) == 0, "a result column the rows beat does not want"),
            Assert((arrived & filled) == 0, "a result column arrived twice"),
        ]

        # --- gearbox: blocks in, words out ------------------------------------------------------
        buf = Signal(data.ArrayLayout(signed(dw), slots))
        have = Signal(range(slots + 1))             # values held; those above are 0
        flush = Signal()                            # they end a row: send the rest as a word
        addr = Signal(self._addr_width)
        emit = Signal()
        have_after = Signal(range(slots + 1))       # after this cycle's word
        buf_after = Signal(data.ArrayLayout(signed(dw), slots))
        flush_after = Signal()
        m.d.comb += [
            self.o.valid.eq((have >= vec) | flush),
            emit.eq(self.o.valid & self.o.ready),
            have_after.eq(Mux(emit, Mux(have >= vec, have - vec, 0), have)),
            buf_after.eq(Mux(emit, buf.as_value()[vec * dw:], buf.as_value())),
            flush_after.eq(flush & (have_after != 0)),
            move.eq(pending & (have_after < vec) & ~flush_after),
            self.o.payload.addr.eq(addr),
        ]
        for e in range(vec):
            m.d.comb += self.o.payload.data[e].eq(buf[e])
        # The block shifted in behind the `have_after` (< vec) values still held.
        inserted = Cat(lanes.as_value(), Const(0, (slots - block) * dw))
        for k in range(ceil_log2(vec)):
            stage = Signal(slots * dw, name=f"insert_l{k}")
            m.d.comb += stage.eq(Mux(have_after[k], inserted << ((1 << k) * dw), inserted))
            inserted = stage
        m.d.sync += [
            buf.eq(buf_after.as_value() | Mux(move, inserted, 0)),
            have.eq(have_after + Mux(move, pending_width, 0)),
            flush.eq(Mux(move, pending_last, flush_after)),
        ]
        with m.If(emit):
            m.d.sync += addr.eq(addr + 1)
        with m.If(move & pending_first):
            m.d.sync += addr.eq(self.base)

        m.d.comb += self.busy.eq(held_valid | pending | (filled != 0) | (have != 0))
        return m
