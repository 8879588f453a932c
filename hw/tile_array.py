"""The tile array: one decoder and one broadcast X chunk, ``tiles`` PE + tree columns, and the
sequencer that compacts each row's output mask (docs/architecture.md section 4.6)."""

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Assert
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import Config, ceil_log2

from maskprop.hw.accumulation_tree import AccumulationTree
from maskprop.hw.counters import accumulate, event_counter, registered_event
from maskprop.hw.index_decoder import PrefixIndexSequencer, ZeroSkipIndexDecoder
from maskprop.hw.layouts import chunk_layout
from maskprop.hw.rank_compaction import RankRegister
from maskprop.hw.sparse_pe import SparseGradPE

__all__ = ["TileArray", "ARRAY_COUNTERS", "array_counter_layout", "load_layout", "row_layout",
           "x_chunk_layout", "array_result_layout", "chunk_shift_shape"]

ARRAY_COUNTERS = ("cycles", "stalls", "beats", "macs", "chunks", "chunks_skipped", "groups",
                  "rows", "outputs", "outputs_skipped")


def array_counter_layout() -> data.StructLayout:
    """Performance counters of the tile array (count from ``clear``, wrap at 2**32, one cycle
    behind their events):

    - ``cycles``: cycles in which the decoder held a chunk; ``stalls``: of those, cycles in
      which its beat could not advance (output backpressure). ``cycles - stalls`` is what the
      cycle model predicts;
    - ``beats``: index beats; ``macs``: useful multiplies (valid lanes x enabled tiles);
    - ``chunks``, ``chunks_skipped`` (all-zero X chunks), ``groups`` (column groups), ``rows``;
    - ``outputs``: enabled outputs delivered; ``outputs_skipped``: disabled outputs (mask bit
      clear), which cost no cycle.
    """
    return data.StructLayout({name: 32 for name in ARRAY_COUNTERS})


def _column_width(config: Config) -> int:
    return max(1, ceil_log2(config.max_cols))


def _memory_depth(words: int) -> int:
    """Depth of a buffer that must hold ``words`` words: at least 2. A one-word Amaranth memory
    has zero-width addresses, which the Verilog backend declares as ``[-1:0]`` wires (rejected
    by ``verilator -Wall``, ASCRANGE); a spare word (only when max_chunks == 1, or max_cols ==
    max_chunks == 1) keeps the address one bit wide, as the ports that drive it already are."""
    return max(2, words)


def _y_address_width(config: Config) -> int:
    return max(1, ceil_log2(config.y_words))


def load_layout(config: Config) -> data.StructLayout:
    """One Y chunk written into every tile's Y buffer, at ``(column << chunk_shift) | chunk``
    (``chunk_shift`` the pass's, :func:`~maskprop.base.config.y_chunk_shift`), in the upper
    half with ``half`` (a Y buffer with halves, :attr:`Config.y_halves`; else ignored)."""
    return data.StructLayout({
        "addr": _y_address_width(config),
        "half": 1,
        "y": chunk_layout(config.vec, config.data_width),
    })


def chunk_shift_shape(config: Config) -> range:
    """Shape of :class:`TileArray`'s ``chunk_shift`` input: log2 of the Y buffer's column
    stride, ``0..log2(max_chunks)`` (at least one bit: a zero-width top-level port would be
    declared ``[-1:0]`` in Verilog, which ``verilator -Wall`` rejects)."""
    return range(max(2, ceil_log2(config.max_chunks) + 1))


def row_layout(config: Config) -> data.StructLayout:
    """One row of the GEMM over one block of ``col_block`` columns starting at ``col_base``:
    ``col_valid`` marks the block's real columns, ``omask`` those whose output is wanted."""
    return data.StructLayout({
        "omask": config.col_block,
        "col_valid": config.col_block,
        "col_base": _column_width(config),
    })


def _chunk_index_width(config: Config) -> int:
    return max(1, ceil_log2(config.max_chunks))


def x_chunk_layout(config: Config) -> data.StructLayout:
    """One chunk of the broadcast operand: its values, the mask of the elements to issue (the
    nonzeros in sparse mode, the structurally possible ones in dense mode), its position along
    the reduction (``index``, which addresses the Y chunks it pairs with) and whether it is the
    row's last chunk sent."""
    return data.StructLayout({
        "x": chunk_layout(config.vec, config.data_width),
        "mask": config.vec,
        "index": _chunk_index_width(config),
        "last": 1,
    })


def array_result_layout(config: Config, value_width: int | None = None) -> data.StructLayout:
    """One column group's results: tile ``t`` computed column ``column[t]`` when ``valid[t]``
    (an invalid slot reads value 0, column 0). The values are ``acc_width`` bits, or
    ``value_width`` (the core's results with partial sums added, ``hw/partial_sums.py``)."""
    return data.StructLayout({
        "value": data.ArrayLayout(signed(value_width or config.acc_width), config.tiles),
        "overflow": config.tiles,
        "column": data.ArrayLayout(unsigned(_column_width(config)), config.tiles),
        "valid": config.tiles,
    })


class TileArray(wiring.Component):
    """``tiles`` sparse dot-product columns sharing one decoder and one broadcast X chunk, with
    output-mask compaction: ``Out[m, j] = sum_i X[m, i] * Y[i, j]`` only where ``omask[m, j]``.

    Parameters
    ----------
    config : Config
        ``vec``, ``lanes``, ``tiles``, ``data_width``, ``acc_width``, ``tree_stages``,
        ``col_block``, ``max_chunks``, ``max_cols``, ``y_words``, ``select_window``.
        ``ValueError`` if its buffers are too large to generate
        (:meth:`Config.check_generatable`).
    zero_skipping : bool
        ``False`` builds the dense-only array, the sparsity-agnostic design of the same
        multipliers and buffers (the iso-resource baseline): a
        :class:`~maskprop.hw.index_decoder.PrefixIndexSequencer` instead of the decoder, so a
        chunk sends every element below its highest set mask bit (on a structure mask, the
        structure), and it always runs dense mode (``dense`` is not read).

    Ports
    -----
    load : In(stream.Signature(load_layout(config)))
        Y chunks, written into the Y buffer (``y_words`` words, one copy read by every tile)
        before a pass: Y chunk ``k`` of column ``j`` at ``(j << chunk_shift) | k``, in the
        upper half with ``half`` (see ``y_half``; a load may fill one half while a pass runs
        from the other). The writer must use the stride the pass runs with (``chunk_shift``).
    chunk_shift : In(chunk_shift_shape(config), init=ceil_log2(max_chunks))
        log2 of the Y buffer's column stride for the pass, ``y_chunk_shift(chunks)`` for a pass
        of ``chunks`` chunks per column (:mod:`maskprop.base.config`): tile ``t`` reads Y at
        ``(column << chunk_shift) | index``, truncated to the buffer's address. A pass fits
        when ``cols << chunk_shift <= y_words`` (:meth:`Config.y_fits`); a simulation
        ``Assert`` stops a read whose column lies beyond the buffer or whose chunk index
        reaches into the next column. Hold it for the whole pass, loads included. The init
        value, with ``y_words = max_cols * max_chunks``, is the fixed stride ``max_chunks``,
        which a writer that never drives the port (the core) uses.
    y_half : In(1)
        With a Y buffer of a power of two words (:attr:`Config.y_halves`), read its upper half
        (the top address bit set; 0: the whole buffer from address 0, as without it): a pass
        that fits half the buffer (``cols << chunk_shift <= y_words / 2``) runs from either
        half while the other is loaded (the core's weight prefetch). Hold it for the pass.
    rows : In(stream.Signature(row_layout(config)))
        One beat per row and block of columns: which columns exist and which are wanted.
    x : In(stream.Signature(x_chunk_layout(config)))
        For each ``rows`` beat, the row's X chunks that have work (at least one, any subset of
        the reduction's chunks in any order, each with its ``index``; ``last`` on the final
        one). The host (or an address generator) never sends a chunk without a structural
        element: padding taps, dilation holes and padded channels cost nothing.
    o : Out(stream.Signature(array_result_layout(config)))
        One beat per column group (an all-disabled row still yields one beat, with no valid
        slot).
    dense : In(1)
        Compute every existing column (the output mask is ignored) and keep every chunk for the
        replays. The elements issued are those of the X masks in both modes: the dense
        baseline is the host sending structural masks (docs/architecture.md section 2).
    clear : In(1)
        Zero the counters.
    counters : Out(array_counter_layout())

    Operation
    ---------
    A row's wanted columns are compacted (prefix popcount over ``omask & col_valid``) and issued
    in groups of up to ``tiles``, ascending; tile ``t`` of a group owns one column and reads that
    column's Y chunk ``index`` through its own read port. For each group the row's X chunks are
    sent through the decoder (it issues the set bits of each chunk's mask): the first group
    takes them from ``x`` and keeps those with a set bit in the row buffer, later groups replay
    only those. A disabled output
    costs no cycle; a row with no wanted column costs one group (its X chunks still have to be
    taken from the stream).

    Timing
    ------
    Unstalled, a row (of one column block) with ``e`` wanted columns takes
    ``g = max(1, ceil(e / tiles))`` groups: the first costs
    ``sum_k max(1, b_k)`` decoder cycles over the chunks sent, each further one
    ``max(1, sum_k b_k)`` (chunks without a set bit are not replayed), where ``b_k`` is chunk
    ``k``'s beats: ``ceil(n_k / lanes)`` for ``n_k`` set mask bits, or with a selection window
    (``Config.select_window``) its busiest segment's (``chunk_cycles``). No bubbles between
    groups and rows.
    A group's results come ``latency`` cycles after its last chunk's last decoder cycle.
    """

    FIFO_DEPTH = 16   # groups in flight between issue and result; more than the pipeline holds

    def __new__(cls, config: Config, *, zero_skipping: bool = True):
        # Buffers too large to generate (Amaranth writes an initial value for every bit of them,
        # see Config.check_generatable) are refused up front, for every generation and
        # simulation path. In __new__ rather than __init__: an array refused in __init__ would
        # already exist, never elaborated, and Amaranth would warn that it was never used.
        config.check_generatable()
        return super().__new__(cls, config, src_loc_at=1)

    def __init__(self, config: Config, *, zero_skipping: bool = True):
        self._config = config
        self._zero_skipping = bool(zero_skipping)
        super().__init__({
            "load": In(stream.Signature(load_layout(config))),
            "chunk_shift": In(chunk_shift_shape(config), init=ceil_log2(config.max_chunks)),
            "y_half": In(1),
            "rows": In(stream.Signature(row_layout(config))),
            "x": In(stream.Signature(x_chunk_layout(config))),
            "o": Out(stream.Signature(array_result_layout(config))),
            "dense": In(1),
            "clear": In(1),
            "counters": Out(array_counter_layout()),
        })

    config = property(lambda self: self._config)
    zero_skipping = property(lambda self: self._zero_skipping)

    @property
    def generator_key(self):
        """Everything the generated Verilog depends on (it caches by this)."""
        return (type(self).__qualname__, self._config, self._zero_skipping)

    @property
    def latency(self) -> int:
        """Cycles from a group's last decoder cycle to its results (counted like the engine's,
        ``SparseDotEngine.latency``): decoder, PE, then every tile's tree in parallel."""
        return (ZeroSkipIndexDecoder.latency + SparseGradPE.latency +
                AccumulationTree.latency_for(self._config.tree_stages))

    def elaborate(self, platform):
        m = Module()
        c = self._config
        tiles, block = c.tiles, c.col_block
        chunk_bits = _chunk_index_width(c)
        column_width = _column_width(c)

        # --- datapath blocks -------------------------------------------------------------------
        side = data.StructLayout({"x": chunk_layout(c.vec, c.data_width), "tiles_on": tiles})
        source = ZeroSkipIndexDecoder if self._zero_skipping else PrefixIndexSequencer
        m.submodules.decoder = decoder = source.from_config(c, side=side)
        # The dense-only array always runs dense mode: its `dense` input is not read.
        dense = self.dense if self._zero_skipping else Const(1, 1)
        # One Y buffer with a read port per tile (on an FPGA, one copy per port).
        m.submodules.y_buffer = y_buffer = memory.Memory(
            shape=chunk_layout(c.vec, c.data_width), depth=_memory_depth(c.y_words), init=[])
        y_write = y_buffer.write_port()

        def in_half(address, half):
            """``address`` in the upper half when ``half``: the top address bit, an OR."""
            if not c.y_halves:
                return address
            return address | (half << (_y_address_width(c) - 1))
        m.d.comb += [
            y_write.addr.eq(in_half(self.load.payload.addr, self.load.payload.half)),
            y_write.data.eq(self.load.payload.y),
            y_write.en.eq(self.load.valid),
        ]
        pes, trees, y_reads = [], [], []
        for t in range(tiles):
            y_reads.append(y_buffer.read_port())
            m.submodules[f"pe{t}"] = pe = SparseGradPE.from_config(c)
            m.submodules[f"tree{t}"] = tree = AccumulationTree.from_config(c)
            wiring.connect(m, pe.o, tree.i)
            pes.append(pe)
            trees.append(tree)
        m.d.comb += self.load.ready.eq(1)

        # The row buffer keeps only the chunks a replay has to send: those with a set mask bit
        # (with their chunk index, for the Y address), so that all-zero chunks - dead pixels -
        # cost nothing after the first group.
        stored_layout = data.StructLayout({
            "x": chunk_layout(c.vec, c.data_width), "mask": c.vec, "index": chunk_bits})
        x_buffer = memory.Memory(shape=stored_layout, depth=_memory_depth(c.max_chunks), init=[])
        m.submodules.x_buffer = x_buffer
        x_write = x_buffer.write_port()
        x_replay = x_buffer.read_port(domain="comb")

        group_layout = data.StructLayout({
            "column": data.ArrayLayout(unsigned(column_width), tiles), "valid": tiles})
        m.submodules.groups = groups = fifo.SyncFIFOBuffered(
            width=group_layout.size, depth=self.FIFO_DEPTH)

        # --- row register: the row's wanted columns, each with its rank ----------------------
        wanted = Signal(block)
        m.d.comb += wanted.eq(Mux(dense, self.rows.payload.col_valid,
                                  self.rows.payload.omask & self.rows.payload.col_valid))
        row_held = Signal()
        row_columns = RankRegister(m, wanted, block, name="row", counts_name="col_rank")
        row_base = Signal(column_width, reset_less=True)
        first_group = Signal(reset_less=True)       # X comes from `x`, not from the row buffer
        chunk = Signal(chunk_bits + 1)              # chunk (first group) or entry (replays)
        stored = Signal(chunk_bits + 1)             # entries of the row buffer

        # The group: tile t takes the wanted column of rank t.
        group = Signal(group_layout)
        tiles_on = Signal(tiles)
        for t in range(tiles):
            offset, selected = row_columns.select(m, t, f"column_select{t}")
            m.d.comb += [
                tiles_on[t].eq(selected),
                group.valid[t].eq(tiles_on[t]),
                group.column[t].eq(Mux(tiles_on[t], row_base + offset, 0)),
            ]

        # --- chunk issue into the decoder ---------------------------------------------------
        streamed = Signal(stored_layout)
        current = Signal(stored_layout)
        chunk_index = Signal(chunk_bits)            # position of the current chunk in the row
        last_chunk = Signal()
        group_can_start = Signal()
        keep = Signal()                             # store the streamed chunk for the replays
        m.d.comb += [
            streamed.x.eq(self.x.payload.x),
            streamed.mask.eq(self.x.payload.mask),
            streamed.index.eq(self.x.payload.index),
            x_replay.addr.eq(chunk),
            current.eq(Mux(first_group, streamed, x_replay.data)),
            chunk_index.eq(current.index),
            last_chunk.eq(Mux(first_group, self.x.payload.last, chunk == stored - 1)),
            # A row of all-zero chunks still keeps its last one, to carry the frame's `last`.
            keep.eq(dense | (self.x.payload.mask != 0) | (last_chunk & (stored == 0))),
            group_can_start.eq((chunk != 0) | groups.w_rdy),
            decoder.i.valid.eq(row_held & (~first_group | self.x.valid) & group_can_start),
            decoder.i.payload.mask.eq(current.mask),
            decoder.i.payload.first.eq(chunk == 0),
            decoder.i.payload.last.eq(last_chunk),
            decoder.i.payload.side.x.eq(current.x),
            decoder.i.payload.side.tiles_on.eq(tiles_on),
            self.x.ready.eq(row_held & first_group & group_can_start & decoder.i.ready),
        ]
        issue = Signal()
        row_done = Signal()
        # A row has at most `col_block` wanted columns, so with tiles == col_block its first group
        # is its last.
        last_group = row_columns.last_step(tiles)
        m.d.comb += [
            issue.eq(decoder.i.valid & decoder.i.ready),
            row_done.eq(issue & last_chunk & last_group),
            self.rows.ready.eq(~row_held | row_done),
            groups.w_en.eq(issue & (chunk == 0)),
            groups.w_data.eq(group),
            x_write.addr.eq(stored),
            x_write.data.eq(streamed),
            x_write.en.eq(issue & first_group & keep),
        ]
        # Y chunks are read as the chunk enters the decoder, so they arrive with it. A tile
        # without a column in this group does not read (its PE multiplies nothing: the stale
        # chunk it holds is never used), which saves a buffer read per idle tile and chunk.
        # The column stride is the pass's (a power of two, so the address is an OR, no adder):
        # a Y buffer smaller than max_cols x max_chunks still holds all columns of a short
        # reduction, or a few of a long one.
        # A pass in the upper half (y_half) must fit it.
        limit = Mux(self.y_half, c.y_words // 2, c.y_words) if c.y_halves else c.y_words
        for t, y_read in enumerate(y_reads):
            column_base = Signal(column_width + (1 << len(self.chunk_shift)) - 1,
                                 name=f"y_column_base{t}")
            m.d.comb += [
                column_base.eq(group.column[t] << self.chunk_shift),
                y_read.addr.eq(in_half(column_base | chunk_index, self.y_half)),
                y_read.en.eq(issue & tiles_on[t]),
            ]
            # Checked at the clock edge, on settled values, as the row buffer's bound below.
            m.d.sync += Assert(
                ~y_read.en | ((column_base < limit) &
                              ((chunk_index >> self.chunk_shift) == 0)),
                f"tile {t} read Y beyond its column: column << chunk_shift must be below "
                f"y_words and the chunk index below 1 << chunk_shift")

        with m.If(issue & first_group & keep):
            m.d.sync += stored.eq(stored + 1)
        # Checked at the clock edge, on settled values (a comb check could see a glitch).
        m.d.sync += Assert(~x_write.en | (stored < c.max_chunks),
                           "a row sent more chunks than the row buffer holds (max_chunks)")
        with m.If(issue):
            m.d.sync += chunk.eq(chunk + 1)
            with m.If(last_chunk):
                # The group is done: drop its columns, the next group's ranks start at 0.
                m.d.sync += [
                    chunk.eq(0),
                    first_group.eq(0),
                    row_columns.step(tiles),
                ]
                with m.If(row_done):
                    m.d.sync += row_held.eq(0)
        with m.If(self.rows.valid & self.rows.ready):
            m.d.sync += [
                row_held.eq(1),
                row_columns.load(),
                row_base.eq(self.rows.payload.col_base),
                first_group.eq(1),
                chunk.eq(0),
                stored.eq(0),
            ]

        # --- decoder beats to every tile's PE -------------------------------------------------
        beat = decoder.o.payload
        for t, (pe, y_read) in enumerate(zip(pes, y_reads)):
            m.d.comb += [
                pe.i.valid.eq(decoder.o.valid),
                pe.i.payload.index.eq(beat.index),
                # A disabled tile multiplies nothing: its result is exactly 0.
                pe.i.payload.lane_valid.eq(Mux(beat.side.tiles_on[t], beat.lane_valid, 0)),
                pe.i.payload.first.eq(beat.first),
                pe.i.payload.last.eq(beat.last),
                pe.i.payload.side.x.eq(beat.side.x),
                pe.i.payload.side.y.eq(y_read.data),
            ]
        # All columns run in lockstep (same beats, same stalls), so one ready speaks for all, and
        # tile 0's result valid for every tile's (below). Checked in simulation:
        for t in range(1, tiles):
            m.d.comb += [
                Assert(pes[t].i.ready == pes[0].i.ready,
                       f"tile {t}'s PE is out of lockstep with tile 0's (i.ready)"),
                Assert(trees[t].o.valid == trees[0].o.valid,
                       f"tile {t}'s tree is out of lockstep with tile 0's (o.valid)"),
            ]
        m.d.comb += decoder.o.ready.eq(pes[0].i.ready)

        # --- results ---------------------------------------------------------------------------
        finished = Signal(group_layout)
        m.d.comb += [
            finished.eq(groups.r_data),
            self.o.valid.eq(trees[0].o.valid),
            groups.r_en.eq(self.o.valid & self.o.ready),
            self.o.payload.column.eq(finished.column),
            self.o.payload.valid.eq(finished.valid),
        ]
        for t, tree in enumerate(trees):
            m.d.comb += [
                tree.o.ready.eq(self.o.ready),
                self.o.payload.value[t].eq(tree.o.payload.value),
                self.o.payload.overflow[t].eq(tree.o.payload.overflow),
            ]

        # --- performance counters (registered events, hw/counters.py, as in the engine) -----
        beat_taken = decoder.o.valid & decoder.o.ready
        lanes_issued = Signal(range(c.lanes + 1))
        tiles_issued = Signal(range(tiles + 1))
        delivered = Signal(range(tiles + 1))
        skipped = Signal(range(block + 1))
        m.d.comb += [
            lanes_issued.eq(sum(beat.lane_valid[j] for j in range(c.lanes))),
            tiles_issued.eq(sum(beat.side.tiles_on[t] for t in range(tiles))),
            delivered.eq(sum(finished.valid[t] for t in range(tiles))),
            skipped.eq(sum(self.rows.payload.col_valid[p] & ~wanted[p] for p in range(block))),
        ]
        increments = {
            "cycles": decoder.busy,
            "stalls": decoder.o.valid & ~decoder.o.ready,
            "beats": beat_taken,
            "macs": None,               # lanes x tiles, multiplied after the event registers
            "chunks": issue,
            "chunks_skipped": issue & (decoder.i.payload.mask == 0),
            "groups": issue & (chunk == 0),
            "rows": self.rows.valid & self.rows.ready,
            "outputs": Mux(self.o.valid & self.o.ready, delivered, 0),
            "outputs_skipped": Mux(self.rows.valid & self.rows.ready, skipped, 0),
        }
        lanes_event = registered_event(m, Mux(beat_taken, lanes_issued, 0), self.clear,
                                       name="macs_lanes", shape=lanes_issued.shape())
        tiles_event = registered_event(m, tiles_issued, self.clear,
                                       name="macs_tiles", shape=tiles_issued.shape())
        for name, increment in increments.items():
            counter = getattr(self.counters, name)
            if increment is None:
                accumulate(m, counter, lanes_event * tiles_event, self.clear)
            else:
                event_counter(m, counter, increment, self.clear, name=name)
        return m
