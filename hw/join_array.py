"""The join array: join tiles fed by a dealer from a ring of ``X`` rows and the ``Y`` banks, their
results collected in the pass's order (docs/architecture.md section 4.8)."""

import dataclasses

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Assert
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import JoinSettings, ceil_log2, check_join_lanes, check_range

from maskprop.hw.join_lane import JoinLaneParameters
from maskprop.hw.join_tile import JoinTile
from maskprop.hw.layouts import chunk_layout
from maskprop.hw.rank_compaction import RankRegister
from maskprop.hw.skid_buffer import SkidBuffer

__all__ = ["JoinArray"]


class JoinArray(wiring.Component):
    """``Out[m, j] = sum_i X[m, i] * Y[i, j]`` for the wanted ``(m, j)`` only, every product
    whose two operands are nonzero issued once and no other, on ``tiles``
    :class:`~maskprop.hw.join_tile.JoinTile`\\ s of ``lanes`` lanes each.

    A chunk is ``vec = lanes * window`` elements of the reduction; lane ``s`` of every tile
    serves segment ``s`` of every chunk (elements ``s, s + lanes, ...``) after the chunk is
    **rotated** by its index (chunk ``k``'s element ``p`` moves to ``(p + k % lanes) % vec``,
    so a channel whose zeros are correlated across pixels is spread over the lanes; the products
    are unchanged). The chunks are held in per-segment banks, written as they arrive: a data
    bank per operand and segment (a chunk's ``window`` elements a word) and a mask bank (the
    segment masks of ``group`` chunks a word, written a chunk at a time through the write
    port's granularity; the row's last chunk clears the rest of its word, so the walk of a row
    whose chunk count is not a multiple of ``group`` finds no products past its end). Every
    bank has a read port per tile: the tiles walk their outputs at their own pace.

    - ``Y`` (all ``max_columns`` columns) is loaded on ``y`` before the pass.
    - ``X`` rows enter on ``x`` into a **ring** of ``ring`` rows; a row's slot is taken again
      only when the row's last output has been collected, so tiles may drift apart by up to
      ``ring`` rows.
    - The **dealer** takes, for each row in the ring, its wanted columns on ``rows`` (its
      ``omask``) and deals them to the tiles in **steps** of up to ``tiles`` outputs, the
      lowest wanted columns left in the row (rank compaction, :class:`~maskprop.hw.
      rank_compaction.RankRegister`), one step a cycle in which every tile it deals to can
      take its output: rank ``j`` of the ``p``-th row with a wanted output goes to tile ``(p +
      j) % tiles``, each row starting one tile further (a column whose outputs cost more is
      not always on the same tile; ``cycle_model.dealt_outputs``), through the tile's
      **stage**, a register the tile takes the output from (free when empty or taken from in
      the same cycle). A row without a wanted column costs the dealer one cycle and frees its
      slot.
    - The **collector** takes a step's results at once, in one beat on ``o``, when every tile
      of the step offers its result (each tile's results come in its own order, so the tiles
      of the next step hold its results at their heads: the next step starts on its row's
      first tile, and every result's tag says how many its step has), each tile's through a
      :class:`~maskprop.hw.skid_buffer.SkidBuffer`, so that a tile's join stalls on a
      register rather than on the step's other tiles. ``o`` is the pass's wanted outputs, row
      by row, columns ascending, ``tiles`` or fewer a beat.

    Parameters
    ----------
    tiles : int
        Join tiles, 1..16.
    lanes, queue :
        Each tile's (:class:`~maskprop.hw.join_tile.JoinTile`): lanes (selection segments)
        1..16; outputs in a tile at once 1..64.
    window, group, data_width, acc_width :
        The lanes' (:class:`~maskprop.hw.join_lane.JoinLane`): elements of a chunk's segment;
        chunk segments per mask word (the look-ahead); the operands' and the sums' widths.
    ring : int
        ``X`` rows held at once, 1..16.
    max_columns : int
        Columns of ``Y`` (outputs per row), 1..256.
    max_chunks : int
        Chunks of the reduction, 1..4096: a row or column of at most ``max_chunks * vec``
        elements.

    Ports
    -----
    y : In(stream.Signature(y_layout))
        Chunk ``chunk`` of column ``column`` of ``Y`` (``data``, its ``vec`` elements; ``mask``,
        its nonzero elements), ``last`` on the column's final chunk. Always ready. Every chunk
        of every column a pass reads is loaded (in any order, the final one with ``last``)
        before the pass's first row; nothing orders loads against a running pass.
    x : In(stream.Signature(x_layout))
        The chunks of one ``X`` row after another, every chunk ``0 .. n - 1`` of the reduction
        in order (``data``, ``mask``), ``last`` on the row's final one; ``n`` may differ from row
        to row, at most ``max_chunks``. Ready while the row's slot of the ring is free.
    rows : In(stream.Signature(rows_layout))
        One beat per row of ``x``, in the same order: ``omask``, the row's wanted columns
        (below the columns ``Y`` holds for the pass). Taken once the row is in the ring and the
        dealer has dealt the previous row.
    o : Out(stream.Signature(result_layout))
        One beat per deal step, in the pass's order: slot ``j`` (bit ``j`` of ``valid``, the
        lowest slots used) holds the step's rank ``j``: ``value[j]`` (the exact sum of the
        products whose operands are both nonzero, wrapped to ``acc_width``), bit ``j`` of
        ``overflow`` (a lane's running sum or the total left the range,
        :func:`~maskprop.sim.blocks.join_array_sums`) and ``column[j]``; unused slots read 0.
        ``last`` on the row's final beat.

    Timing
    ------
    No fixed latency: each output costs each lane of its tile its words' ``max(1, products)``
    cycles (:class:`~maskprop.hw.join_lane.JoinLane`), the lanes and the tiles decoupled by
    the tiles' queues and the ring. :func:`~maskprop.sim.cycle_model.join_array_schedule`
    gives every handshake of ``x``, ``rows`` and ``o`` exactly when the inputs are never idle
    and ``o`` never back-pressured: an ``x`` beat a cycle while the ring has room, a row taken
    the cycle after its last chunk is written at the earliest, its first step dealt the cycle
    after into the tiles' stages, taken by each tile the cycle after at the earliest, the
    tiles' own recurrence (:class:`~maskprop.sim.cycle_model.JoinTileTimeline`, a join
    stalling while its result waits and its skid holds an earlier one), a
    step's results collected in the cycle the last of them is offered or the cycle after the
    previous step's, whichever is later. Throughput: up to ``tiles * lanes`` products a
    cycle, one deal step (up to ``tiles`` outputs of a row) dealt and collected a cycle, one
    ``x`` chunk written a cycle.
    """

    def __init__(self, *, tiles: int, lanes: int, window: int, group: int, queue: int,
                 ring: int, max_columns: int, max_chunks: int, data_width: int,
                 acc_width: int):
        self._tiles = check_range("tiles", tiles, 1, 16)
        self._ring = check_range("ring", ring, 1, 16)
        self._max_columns = check_range("max_columns", max_columns, 1, 256)
        self._max_chunks = check_range("max_chunks", max_chunks, 1, 4096)
        check_range("lanes", lanes, 1, 16)
        check_range("queue", queue, 1, 64)
        # The lane checks its own parameters; its word count and addresses follow from them.
        lane = JoinLaneParameters(window=window, group=group, data_width=data_width,
                                  acc_width=acc_width, word_addr_width=1, max_words=1)
        max_words = -(-max_chunks // group)
        self._word_bits = ceil_log2(max_words)
        self._slot_bits = max(1, ceil_log2(ring))
        self._column_bits = max(1, ceil_log2(max_columns))
        # Each output's column, its row's slot, and its deal step's size and whether that is
        # the row's final step.
        self._tag = data.StructLayout({"column": unsigned(self._column_bits),
                                       "slot": unsigned(self._slot_bits), "last": 1,
                                       "count": unsigned(ceil_log2(tiles + 1))})
        # The lanes address a word of a ring slot's row or of a Y column alike: the row (or
        # column) above the word's index within it.
        self._lane = dataclasses.replace(
            lane, max_words=max_words,
            word_addr_width=self._word_bits + max(self._slot_bits, self._column_bits))
        self._tile = dict(lanes=lanes, queue=queue, tag=self._tag,
                          **dataclasses.asdict(self._lane))
        self._lanes, self._queue = lanes, queue
        super().__init__({
            "y": In(stream.Signature(self.y_layout)),
            "x": In(stream.Signature(self.x_layout)),
            "rows": In(stream.Signature(self.rows_layout)),
            "o": Out(stream.Signature(self.result_layout)),
        })

    @classmethod
    def from_config(cls, config, *, group: int = JoinSettings.group,
                    queue: int = JoinSettings.queue, ring: int = JoinSettings.ring):
        """The join array with the multipliers, operands and buffers of the tile array of
        ``config`` (a :class:`~maskprop.base.config.Config`): its tiles, a lane per selection
        segment (``lanes`` must equal ``vec / select_window``), ``max_cols`` columns and
        ``max_chunks`` chunks; the look-ahead, queue and ring of
        :class:`~maskprop.base.config.JoinSettings` unless given."""
        check_join_lanes(config)
        selection = config.selection
        return cls(tiles=config.tiles, lanes=selection.segments, window=selection.window,
                   group=group, queue=queue, ring=ring, max_columns=config.max_cols,
                   max_chunks=config.max_chunks, data_width=config.data_width,
                   acc_width=config.acc_width)

    tiles = property(lambda self: self._tiles)
    lanes = property(lambda self: self._lanes)
    queue = property(lambda self: self._queue)
    ring = property(lambda self: self._ring)
    max_columns = property(lambda self: self._max_columns)
    max_chunks = property(lambda self: self._max_chunks)
    lane = property(lambda self: self._lane, doc="The lanes' :class:`JoinLaneParameters`.")
    vec = property(lambda self: self._lanes * self._lane.window, doc="Elements of a chunk.")
    acc_width = property(lambda self: self._lane.acc_width)

    @property
    def x_layout(self) -> data.StructLayout:
        return data.StructLayout({"data": chunk_layout(self.vec, self._lane.data_width),
                                  "mask": unsigned(self.vec), "last": 1})

    @property
    def y_layout(self) -> data.StructLayout:
        return data.StructLayout({"column": unsigned(self._column_bits),
                                  "chunk": unsigned(max(1, ceil_log2(self._max_chunks))),
                                  **{name: field.shape for name, field in self.x_layout}})

    @property
    def rows_layout(self) -> data.StructLayout:
        return data.StructLayout({"omask": unsigned(self._max_columns)})

    @property
    def result_layout(self) -> data.StructLayout:
        tiles = self._tiles
        return data.StructLayout({
            "value": data.ArrayLayout(signed(self.acc_width), tiles),
            "overflow": unsigned(tiles),
            "column": data.ArrayLayout(unsigned(self._column_bits), tiles),
            "valid": unsigned(tiles),
            "last": 1,
        })

    def elaborate(self, platform):
        m = Module()
        tiles, lanes, ring = self._tiles, self._lanes, self._ring
        group, window = self._lane.group, self._lane.window
        word_bits, group_bits = self._word_bits, ceil_log2(group)

        join_tiles = [JoinTile(**self._tile) for _ in range(tiles)]
        for t, tile in enumerate(join_tiles):
            m.submodules[f"tile{t}"] = tile

        # --- The banks: per segment and operand a mask bank and a data bank, a read port per
        # tile. X: ring slot above word; Y: column above word.
        writes = {}
        for operand, rows in (("x", ring), ("y", self._max_columns)):
            for s in range(lanes):
                mask_bank = memory.Memory(shape=unsigned(group * window),
                                          depth=rows << word_bits, init=[])
                data_bank = memory.Memory(shape=chunk_layout(window, self._lane.data_width),
                                          depth=rows << (word_bits + group_bits), init=[])
                m.submodules[f"{operand}_mask{s}"] = mask_bank
                m.submodules[f"{operand}_data{s}"] = data_bank
                writes[operand, s] = (mask_bank.write_port(granularity=window),
                                      data_bank.write_port())
                for tile in join_tiles:
                    _connect_read(m, mask_bank.read_port(), getattr(tile, f"{operand}_mask")[s])
                    _connect_read(m, data_bank.read_port(), getattr(tile, f"{operand}_data")[s])

        # --- Y: written at its column, always ready.
        m.d.comb += self.y.ready.eq(1)
        self._write_chunk(m, writes, "y", self.y.payload.column, self.y.payload.chunk,
                          self.y.payload, self.y.valid)
        m.d.sync += Assert(~self.y.valid | (self.y.payload.chunk < self._max_chunks),
                           "a Y chunk past max_chunks")

        # --- X: the ring. ``full[slot]``: the slot holds a row not yet collected;
        # ``pending[slot]``: a row written and not yet taken by the dealer.
        full = Signal(ring)
        pending = Signal(ring)
        last_words = [Signal(range(max(2, 1 << word_bits)), name=f"slot{s}_last_word")
                      for s in range(ring)]
        write_slot = Signal(self._slot_bits)
        write_chunk = Signal(range(self._max_chunks + 1))
        m.d.comb += self.x.ready.eq(~full.bit_select(write_slot, 1))
        x_taken = self.x.valid & self.x.ready
        self._write_chunk(m, writes, "x", write_slot, write_chunk, self.x.payload, x_taken)
        x_row_end = x_taken & self.x.payload.last
        with m.If(x_taken):
            m.d.sync += write_chunk.eq(write_chunk + 1)
            with m.If(self.x.payload.last):
                m.d.sync += [write_chunk.eq(0), write_slot.eq(_next(write_slot, ring))]
                for s in _cases(m, write_slot, ring):
                    m.d.sync += last_words[s].eq(write_chunk >> group_bits)
        m.d.sync += Assert(~x_taken | (write_chunk < self._max_chunks),
                           "an X row of more than max_chunks chunks")

        # --- The dealer: the held row's wanted columns, ``tiles`` lowest at a time (a step);
        # rank ``j`` of a step goes to tile ``(first + j) % tiles``, ``first`` going one tile
        # further with every row that wants an output. Tile ``t`` takes the held rank
        # ``target[t] = (t - first) % tiles`` (a register: a compare with the rank registers,
        # no rotation after the select), into its ``stage``: a register between the dealer
        # and the tile, so the rank select ends in flip-flops, not in the tile's queues.
        tile_bits = max(1, ceil_log2(tiles))
        held = Signal()
        held_slot = Signal(self._slot_bits)
        held_last_word = Signal.like(last_words[0])
        next_slot = Signal(self._slot_bits)
        next_first = Signal(tile_bits)       # the next row's first tile
        target = [Signal(tile_bits, name=f"deal_target{t}", init=t) for t in range(tiles)]
        columns = RankRegister(m, self.rows.payload.omask, self._max_columns,
                               name="deal", counts_name="deal_rank")
        final = columns.last_step(tiles)
        count = Signal(range(tiles + 1))     # the step's outputs
        m.d.comb += count.eq(Mux(final, columns.total, tiles))
        stages = [Signal(join_tiles[0].output_layout, name=f"stage{t}") for t in range(tiles)]
        staged = [Signal(name=f"stage{t}_valid") for t in range(tiles)]
        wanted, stage_free = [], []
        for t, tile in enumerate(join_tiles):
            # The held row has ``total`` wanted columns left, ranks 0 .. total - 1.
            wanted.append(columns.total > target[t])
            stage_free.append(~staged[t] | tile.i.ready)
            m.d.comb += [tile.i.valid.eq(staged[t]), tile.i.payload.eq(stages[t])]
        deal = Signal()
        m.d.comb += deal.eq(held & Cat(~want | free
                                       for want, free in zip(wanted, stage_free)).all())
        for t, tile in enumerate(join_tiles):
            column, _ = columns.select(m, target[t], f"deal_select{t}")
            with m.If(deal & wanted[t]):
                m.d.sync += [
                    staged[t].eq(1),
                    stages[t].x_word.eq(held_slot << word_bits),
                    stages[t].y_word.eq(column << word_bits),
                    stages[t].last_word.eq(held_last_word),
                    stages[t].tag.column.eq(column),
                    stages[t].tag.slot.eq(held_slot),
                    stages[t].tag.last.eq(final),
                    stages[t].tag.count.eq(count),
                ]
            with m.Elif(tile.i.ready):
                m.d.sync += staged[t].eq(0)
        with m.If(deal):
            m.d.sync += columns.step(tiles)
            with m.If(final):
                m.d.sync += held.eq(0)
        m.d.comb += self.rows.ready.eq((~held | (deal & final))
                                       & pending.bit_select(next_slot, 1))
        rows_taken = self.rows.valid & self.rows.ready
        empty_row = Signal()
        m.d.comb += empty_row.eq(rows_taken & (self.rows.payload.omask == 0))
        with m.If(rows_taken):
            m.d.sync += next_slot.eq(_next(next_slot, ring))
            with m.If(~empty_row):
                # After the step: a load in the cycle of the previous row's final step wins.
                m.d.sync += [columns.load(), held.eq(1), held_slot.eq(next_slot),
                             next_first.eq(_next(next_first, tiles))]
                for p in _cases(m, next_first, tiles):
                    m.d.sync += [target[t].eq((t - p) % tiles) for t in range(tiles)]
                for s in _cases(m, next_slot, ring):
                    m.d.sync += held_last_word.eq(last_words[s])

        # --- The collector: a deal step's results at once, in rank order, once all are
        # offered; the next step's rank 0 is on tile ``collect_first`` (each row's steps start
        # on the row's first tile), and its tag says how many results the step has.
        # Each tile's results come through a skid buffer: the tile's join stalls on the skid's
        # register, not on the collector's decision over every tile of the step (whose fan-out
        # into each join's registers was the array's critical path once the stages were in).
        results = []
        for t, tile in enumerate(join_tiles):
            m.submodules[f"tile{t}_skid"] = skid = SkidBuffer(tile.result_layout)
            wiring.connect(m, tile.o, skid.i)
            results.append(skid.o)
        collect_first = Signal(tile_bits)
        head = Signal(self._tag)                 # the tag of the next step's rank 0
        for p in _cases(m, collect_first, tiles):
            m.d.comb += head.eq(results[p].payload.tag)
        in_step = [Signal(name=f"collect_in_step{j}") for j in range(tiles)]
        offered = [Signal(name=f"collect_offered{j}") for j in range(tiles)]
        for j in range(tiles):
            m.d.comb += in_step[j].eq(head.count > j)
            for p in _cases(m, collect_first, tiles):
                result = results[(p + j) % tiles]
                m.d.comb += offered[j].eq(result.valid)
                with m.If(in_step[j]):
                    m.d.comb += [self.o.payload.value[j].eq(result.payload.value),
                                 self.o.payload.overflow[j].eq(result.payload.overflow),
                                 self.o.payload.column[j].eq(result.payload.tag.column)]
        m.d.comb += [
            self.o.valid.eq(offered[0] & Cat(~want | has
                                             for want, has in zip(in_step, offered)).all()),
            self.o.payload.valid.eq(Cat(in_step)),
            self.o.payload.last.eq(head.last),
        ]
        for t, result in enumerate(results):
            for p in _cases(m, collect_first, tiles):
                m.d.comb += result.ready.eq(self.o.ready & self.o.valid
                                            & in_step[(t - p) % tiles])
        collected = self.o.valid & self.o.ready
        with m.If(collected & head.last):
            m.d.sync += collect_first.eq(_next(collect_first, tiles))

        # A slot is filled by its row's last chunk and freed by its row's last result, or by
        # the dealer when the row wants none.
        filled = Mux(x_row_end, Const(1, ring) << write_slot, 0)
        freed_by_dealer = Mux(empty_row, Const(1, ring) << next_slot, 0)
        freed = Mux(collected & head.last, Const(1, ring) << head.slot, 0)
        m.d.sync += full.eq((full | filled) & ~freed_by_dealer & ~freed)
        m.d.sync += pending.eq((pending | filled)
                               & ~Mux(rows_taken, Const(1, ring) << next_slot, 0))
        m.d.sync += Assert(~(collected & head.last) | full.bit_select(head.slot, 1),
                           "a row's last result frees a slot that holds no row")
        return m

    def _write_chunk(self, m, writes, operand: str, row, chunk, beat, enable):
        """Write ``beat`` (``data``, ``mask``, ``last``), chunk ``chunk`` of row ``row`` of
        ``operand``, rotated by ``chunk % lanes``, into each segment's banks: data at word
        ``(row, chunk)``, the segment mask into its chunk's place of mask word ``(row, chunk //
        group)``; on ``last``, zeros into that word's later places."""
        lanes, window, group = self._lanes, self._lane.window, self._lane.group
        vec, group_bits = self.vec, ceil_log2(group)
        chunk_bits = self._word_bits + group_bits
        rotation = chunk[:ceil_log2(lanes)] if lanes & (lanes - 1) == 0 else chunk % lanes
        place = Signal(max(1, group_bits), name=f"{operand}_place")
        m.d.comb += place.eq(chunk[:group_bits])

        def rotated(elements):
            # Element p of the rotated chunk is element (p - r) % vec of the chunk.
            out = []
            for p in range(vec):
                element = elements[p]
                for r in range(1, lanes):
                    element = Mux(rotation == r, elements[(p - r) % vec], element)
                out.append(element)
            return out

        def places(c):
            # Place c of the mask word is written: the chunk's own, and on the row's last
            # chunk every later one (with zeros).
            here = place == c
            return here | (beat.last & (place < c)) if c else here

        data_rotated = rotated([beat.data[p] for p in range(vec)])
        mask_rotated = rotated([beat.mask[p] for p in range(vec)])
        for s in range(lanes):
            mask_port, data_port = writes[operand, s]
            segment_mask = Cat(mask_rotated[s + q * lanes] for q in range(window))
            m.d.comb += [
                # Shifts rather than Cat: the chunk's field may be narrower than its place.
                data_port.addr.eq((row << chunk_bits) | chunk[:chunk_bits]),
                data_port.en.eq(enable),
                mask_port.addr.eq((row << self._word_bits) | chunk[group_bits:chunk_bits]),
                mask_port.en.eq(Cat(enable & places(c) for c in range(group))),
                mask_port.data.eq(Cat(Mux(place == c, segment_mask, 0)
                                      for c in range(group))),
            ]
            m.d.comb += [data_port.data[q].eq(data_rotated[s + q * lanes])
                         for q in range(window)]


def _cases(m, index, count: int):
    """Each value ``0 .. count - 1`` of ``index``, the loop's body under its ``m.Case`` (no
    ``Switch`` for a single value: ``index`` is then zero bits wide)."""
    if count == 1:
        yield 0
        return
    with m.Switch(index):
        for value in range(count):
            with m.Case(value):
                yield value


def _connect_read(m, port, lane_port):
    """A memory's read port to a lane's (whose address may be wider than the memory's)."""
    m.d.comb += [port.addr.eq(lane_port.addr), port.en.eq(lane_port.en),
                 lane_port.data.eq(port.data)]


def _next(value, count: int):
    """``(value + 1) % count`` for a counter below ``count``."""
    if count & (count - 1) == 0:
        return (value + 1)[:max(1, ceil_log2(count))] if count > 1 else Const(0, 1)
    return Mux(value == count - 1, 0, value + 1)
