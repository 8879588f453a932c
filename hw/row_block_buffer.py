"""The row-block buffer: backward-weight's reorder memory between the window gather and the tile
array (docs/architecture.md section 8.3).

The :class:`~maskprop.hw.window_gather.WindowGather` gives a block of (at most ``vec``)
consecutive rows interleaved chunk by chunk (chunk ``q`` of every row of the block, then chunk
``q + 1``); the tile array takes a row's chunks one after the other, row after row. The buffer
holds one block while it sends it row by row (each row once per column block of the tile
array's output) and fills its other bank with the next block.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import Assert
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import Config, ceil_log2, check_range
from maskprop.hw.layouts import chunk_layout
from maskprop.hw.tile_array import x_chunk_layout
from maskprop.hw.window_gather import gather_word_layout

__all__ = ["RowBlockBuffer", "row_beat_layout"]


def row_beat_layout(max_blocks: int = 1) -> data.StructLayout:
    """One ``rows`` beat: ``live`` (the row has a chunk with a structural element, so it sends
    chunks on ``x``), ``last`` (the command's final row's final column block) and ``block``
    (the column block the beat is for, ``0 .. blocks - 1``; unsigned, ``max(1,
    ceil_log2(max_blocks))`` bits)."""
    return data.StructLayout({"live": 1, "last": 1,
                              "block": max(1, ceil_log2(max_blocks))})


class RowBlockBuffer(wiring.Component):
    """Double-buffered reorder memory: takes blocks of rows chunk-interleaved (the window
    gather's order) and sends them row after row, each row once per column block (``blocks``
    times in succession), each time its chunks in ascending order.

    Parameters
    ----------
    config : Config
        ``vec`` (elements per word, the most rows of a block), ``data_width`` and
        ``max_chunks`` (the default depth of a row).
    max_chunks : int or None
        Chunks a row can hold, ``1..config.max_chunks`` (``ValueError`` naming it and its range
        otherwise); default ``config.max_chunks``. The memory holds ``2 * vec * max_chunks``
        entries of ``vec * (data_width + 1)`` bits (two banks, entry ``bank * vec * max_chunks
        + row * max_chunks + q``).
    index_width : int
        Bits of the input's ``row`` and ``chunk`` fields, 1..128 (default 64, the window
        gather's at its default ``dim_width`` 16).
    max_blocks : int
        The most column blocks a row is sent for, 1..4096 (default 1; ``ValueError`` naming it
        and its range otherwise). The ``blocks`` port and the ``rows`` beat's ``block`` field
        are sized by it.

    Ports
    -----
    i : In(stream.Signature(gather_word_layout(config, index_width)))
        The gather's words (``wiring.connect`` to ``WindowGather.o`` of the same index width):
        for each block of ``n <= vec`` consecutive rows, for ``q = 0 .. Q-1``, for each row of
        the block, one word. Used fields: ``data``, ``smask``, ``chunk`` (only whether it is
        0) and ``last`` (the command's final word); ``row`` is ignored.
    chunks : In(range(max_chunks + 1))
        ``Q``, the chunks of every row, ``1..max_chunks``. Held during a command.
    dense : In(1)
        Dense mode: ``x.mask`` is the structural mask; sparse mode: the structural mask's
        nonzero elements. Held during a command.
    keep_empty : In(1)
        Send every row live: a row with no structural chunk (a tap that is padding at every
        pixel of the command) as its chunk 0 with an empty mask and ``last``, which the tile
        array turns into zero results. A command that adds partial sums needs every row's
        results, since such a row's sums come from the other parts of the reduction
        (docs/architecture.md section 8.3). Held during a command.
    blocks : In(range(max_blocks + 1))
        ``B``, the column blocks of the command (the tile array computes a row over one block
        of ``col_block`` output columns per ``rows`` beat), ``1..max_blocks``: every row is
        sent ``B`` times in succession. Held during a command (the reader uses it; an
        assertion in simulation checks the range; 0 would act as 1).
    rows : Out(stream.Signature(row_beat_layout(max_blocks)))
        One beat per row and column block, in row order and, within a row, block order ``0 ..
        B-1``: ``live`` (some chunk of the row has ``smask != 0``), ``block`` (the column
        block) and ``last`` (the command's final row's block ``B-1``: one per command).
    x : Out(stream.Signature(x_chunk_layout(config)))
        After each ``rows`` beat of a live row, the row's chunks with ``smask != 0`` in
        ascending ``q``: ``x`` the data, ``mask`` (``smask`` dense, ``smask & (data != 0)``
        sparse), ``index = q``, ``last`` on the row's final such chunk. So a live row's chunks
        are sent ``B`` times, once per block. Nothing for a row that is not live, unless
        ``keep_empty``: then its chunk 0 with mask 0 and ``last``, and its beat is ``live``.

    Operation
    ---------
    Writer. A block's size is not framed: its chunk-0 words come first, so the writer counts
    them; the block has ``vec`` rows when ``vec`` chunk-0 words came, else as many as came
    before the first word whose ``chunk`` is not 0 (or before ``last``). With ``Q = 1`` the
    chunk field stays 0: a block is then cut at ``vec`` rows or at ``last``, which may group
    the rows otherwise than the gather did but sends them in the same order (each row is one
    word). Word ``(r, q)`` is written at ``bank * vec * max_chunks + r * max_chunks + q`` (an
    incremental row address plus ``q``: adders only). A block is complete with its last
    row's chunk ``Q-1`` word, or with ``last``; the bank is then marked full (with its row
    count and whether it ends the command) and the writer goes on in the other bank, which it
    may write once the reader has released it (``i.ready`` is low while it is full). Beside the
    memory, per bank and row, flip-flops keep whether the row is live and its last chunk with
    ``smask != 0`` (``lastq``), updated as the words come (``q`` ascends).

    Reader. From a full bank, row by row and, for each row, column block by column block
    (``0 .. B-1``): a *pass* (a row for one block) starts in a cycle in which the ``rows``
    register is free (or being taken) and, when the row is live, the read stage can take a word;
    it loads the ``rows`` beat and (live) issues the read of chunk 0. The following cycles read
    chunks ``1 .. lastq`` one per cycle (as the read stage frees). A chunk read with ``smask
    == 0`` (only between chunk 0 and ``lastq``) costs its read cycle and is dropped at the
    read stage; chunks after ``lastq`` are never read. The pass's last read (or a non-live
    row's start) ends the pass; the next pass is the same row's next block or, after block
    ``B-1``, the next row's block 0. Every pass reads the row from memory again (the bank
    holds the block until its last pass). The block's last row's block ``B-1`` releases the
    bank in the same cycle. With ``B = 1`` a pass is a row and the reader is as without
    column blocks.

    Latency and throughput
    ----------------------
    Writer: ``i.ready = ~full[bank]`` (from registers; no dependence on ``i.valid`` or the
    outputs): a word is taken in every cycle its bank is not full, ``n * Q`` cycles for a
    block of ``n`` rows. A block whose last word is taken in cycle ``t`` is full from ``t + 1``.

    Reader: a pass starting in cycle ``s`` has its ``rows`` beat valid in ``s + 1`` (a
    register) and, when live, reads chunk ``q`` (``0 .. lastq``) in cycle ``s + q``, its ``x``
    beat valid in ``s + q + 1`` (the memory's registered read port, whose enable is low while
    ``x`` is stalled, so the data holds); a chunk with ``smask == 0`` leaves that cycle with
    ``x.valid`` low. Unstalled, a pass takes ``max(1, lastq + 1)`` cycles (1 when not live) and
    the next pass (the same row's next block, or the next row's block 0) starts in the cycle
    after its last one, so a row takes ``B * max(1, lastq + 1)`` cycles and a block of ``n``
    rows the sum of these, at most ``B * n * Q``. The next bank's first pass starts in the
    cycle after the previous bank's last pass, or in ``t + 1`` if that bank became full later:
    a block's first ``rows`` beat is valid ``2`` cycles after its last word was taken, at the
    earliest. The bank is released at the reader's last cycle on it (its last row's block
    ``B-1``'s last cycle) and may be written from the next cycle.

    So ``x`` sends one chunk per cycle, dropped ``smask == 0`` chunks and non-live passes
    costing one cycle each. With ``B = 1`` a block's reading takes at most ``n * Q`` cycles,
    the cycles its writing took, so a writer fed one word per cycle waits only when a block
    follows one with fewer rows (a bank still being read: e.g. blocks of 4, 1, 4 rows). With
    ``B > 1`` the reading of a block takes up to ``B * n * Q`` cycles (``B`` times the sum of
    its rows' ``max(1, lastq + 1)``), up to ``B`` times its writing: the writer, having filled
    the other bank, waits for the bank (``i.ready`` low) whenever the reading is the longer,
    and the reader sets the pace, one pass after the other without a bubble. Backpressure on
    ``rows`` or ``x`` stalls the reader (a pass starts only when the ``rows`` register is free
    or being taken, and a read issues only when the read stage is empty, dropped or being
    taken), and, with both banks full, the writer; no word is lost, duplicated or reordered.
    ``rows.valid`` and ``x.valid`` do not depend on the outputs' ``ready``.
    """

    def __init__(self, config: Config, *, max_chunks: int | None = None,
                 index_width: int = 64, max_blocks: int = 1):
        if not isinstance(config, Config):
            raise ValueError(f"config must be a Config, not {config!r}")
        self._config = config
        if max_chunks is None:
            max_chunks = config.max_chunks
        self._max_chunks = check_range("max_chunks", max_chunks, 1, config.max_chunks)
        self._index_width = check_range("index_width", index_width, 1, 128)
        self._max_blocks = check_range("max_blocks", max_blocks, 1, 4096)
        super().__init__({
            "i": In(stream.Signature(gather_word_layout(config, index_width))),
            "chunks": In(range(self._max_chunks + 1)),
            "dense": In(1),
            "keep_empty": In(1),
            "blocks": In(range(self._max_blocks + 1)),
            "rows": Out(stream.Signature(row_beat_layout(self._max_blocks))),
            "x": Out(stream.Signature(x_chunk_layout(config))),
        })

    config = property(lambda self: self._config)
    max_chunks = property(lambda self: self._max_chunks)
    index_width = property(lambda self: self._index_width)
    max_blocks = property(lambda self: self._max_blocks)

    @property
    def entry_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "data": chunk_layout(self._config.vec, self._config.data_width),
            "smask": self._config.vec,
        })

    @property
    def depth(self) -> int:
        """Entries of the memory: two banks of ``vec * max_chunks``."""
        return 2 * self._config.vec * self._max_chunks

    def elaborate(self, platform):
        m = Module()
        vec, maxq = self._config.vec, self._max_chunks
        bank_words = vec * maxq
        aw = max(1, ceil_log2(self.depth))
        rshape = range(max(2, vec))
        nshape = range(vec + 1)
        qshape = range(max(2, maxq))
        bshape = range(max(2, self._max_blocks))

        m.submodules.mem = mem = memory.Memory(shape=self.entry_layout, depth=self.depth, init=[])
        wp = mem.write_port()
        rp = mem.read_port()

        full = Signal(2)
        count = [Signal(nshape, name=f"count{b}") for b in range(2)]    # rows of a full bank
        final = Signal(2)                                                # ... ends the command
        live = [[Signal(name=f"live{b}_{r}") for r in range(vec)] for b in range(2)]
        lastq = [[Signal(qshape, name=f"lastq{b}_{r}") for r in range(vec)] for b in range(2)]

        # --- writer ------------------------------------------------------------------------
        wbank = Signal()
        wr = Signal(rshape)                  # row of the next word
        wq = Signal(qshape)                  # its chunk (once sized)
        sized = Signal()                     # the block's row count is known (in wn)
        wn = Signal(nshape)
        wrow_addr = Signal(aw)               # bank base + wr * max_chunks
        wbase = Mux(wbank, bank_words, 0)

        take = Signal()
        jump = Signal()                      # the first word of chunk 1: ends the sizing
        r_cur, q_cur = Signal(rshape), Signal(qshape)
        n_eff = Signal(nshape)
        row_end, block_done = Signal(), Signal()
        payload = self.i.payload
        m.d.comb += [
            self.i.ready.eq(~full.bit_select(wbank, 1)),
            take.eq(self.i.valid & self.i.ready),
            jump.eq(~sized & (payload.chunk != 0)),
            r_cur.eq(Mux(jump, 0, wr)),
            q_cur.eq(Mux(jump, 1, wq)),
            n_eff.eq(Mux(sized, wn, Mux(jump, wr, vec))),
            row_end.eq(r_cur == n_eff - 1),
            block_done.eq(payload.last | (row_end & (q_cur == self.chunks - 1))),
            wp.addr.eq(Mux(jump, wbase, wrow_addr) + q_cur),
            wp.data.data.eq(payload.data),
            wp.data.smask.eq(payload.smask),
            wp.en.eq(take),
        ]
        with m.If(take):
            for b in range(2):
                for r in range(vec):
                    with m.If((wbank == b) & (r_cur == r)):
                        with m.If(q_cur == 0):
                            m.d.sync += [live[b][r].eq(payload.smask != 0), lastq[b][r].eq(0)]
                        with m.Elif(payload.smask != 0):
                            m.d.sync += [live[b][r].eq(1), lastq[b][r].eq(q_cur)]
            with m.If(block_done):
                for b in range(2):
                    with m.If(wbank == b):
                        m.d.sync += [full[b].eq(1), count[b].eq(r_cur + 1),
                                     final[b].eq(payload.last)]
                m.d.sync += [wbank.eq(~wbank), wr.eq(0), wq.eq(0), sized.eq(0),
                             wrow_addr.eq(Mux(wbank, 0, bank_words))]
            with m.Elif(row_end):
                m.d.sync += [wr.eq(0), wq.eq(q_cur + 1), sized.eq(1), wn.eq(n_eff),
                             wrow_addr.eq(wbase)]
            with m.Else():
                m.d.sync += [wr.eq(r_cur + 1), wq.eq(q_cur), sized.eq(sized | jump),
                             wrow_addr.eq(Mux(jump, wbase, wrow_addr) + maxq)]
                with m.If(jump):
                    m.d.sync += wn.eq(n_eff)

        # --- reader ------------------------------------------------------------------------
        rbank = Signal()
        rr = Signal(rshape)
        rq = Signal(qshape)
        rblk = Signal(bshape)                # the column block of the current pass
        blk_last = Signal()                  # ... is the row's last (B - 1)
        in_row = Signal()                    # a pass is reading its chunks 1 .. lastq
        rrow_addr = Signal(aw)
        cur_live, cur_lastq, cur_count, cur_final = (
            Signal(), Signal(qshape), Signal(nshape), Signal())
        with m.Switch(rbank):
            for b in range(2):
                with m.Case(b):
                    m.d.comb += [cur_count.eq(count[b]), cur_final.eq(final[b])]
                    with m.Switch(rr):
                        for r in range(vec):
                            with m.Case(r):
                                m.d.comb += [cur_live.eq(live[b][r]),
                                             cur_lastq.eq(lastq[b][r])]

        # A pass reads chunks when its row is live or every row is sent (keep_empty: a row
        # without a structural chunk has lastq 0, so its pass reads chunk 0 alone).
        sends = Signal()
        m.d.comb += sends.eq(cur_live | self.keep_empty)
        rows_valid = Signal()
        rows_live, rows_last, rows_block = Signal(), Signal(), Signal(bshape)
        valid1, last1, q1 = Signal(), Signal(), Signal(qshape)
        # A chunk without a structural element is dropped, except a row's last read: a live
        # row's last chunk has one, so that is only a keep_empty row's chunk 0.
        sendable = valid1 & ((rp.data.smask != 0) | last1)
        stage_free = Signal()
        row_free = Signal()
        m.d.comb += [
            stage_free.eq(~sendable | self.x.ready),
            row_free.eq(~rows_valid | self.rows.ready),
        ]
        start = Signal()
        issue = Signal()
        pass_done = Signal()
        q_read = Mux(in_row, rq, 0)
        avail = full.bit_select(rbank, 1)
        m.d.comb += [
            blk_last.eq(rblk + 1 >= self.blocks),
            start.eq(~in_row & avail & row_free & (stage_free | ~sends)),
            issue.eq((start & sends) | (in_row & stage_free)),
            pass_done.eq((start & (~sends | (cur_lastq == 0))) |
                         (in_row & stage_free & (rq == cur_lastq))),
            rp.en.eq(issue),
            rp.addr.eq(rrow_addr + q_read),
        ]
        with m.If(start):
            m.d.sync += [rows_valid.eq(1), rows_live.eq(sends), rows_block.eq(rblk),
                         rows_last.eq(cur_final & (rr == cur_count - 1) & blk_last)]
        with m.Elif(self.rows.ready):
            m.d.sync += rows_valid.eq(0)
        with m.If(issue):
            m.d.sync += [valid1.eq(1), last1.eq(q_read == cur_lastq), q1.eq(q_read)]
        with m.Elif(stage_free):
            m.d.sync += valid1.eq(0)
        with m.If(pass_done):
            m.d.sync += [in_row.eq(0), rq.eq(0)]
            with m.If(~blk_last):
                m.d.sync += rblk.eq(rblk + 1)           # the same row for the next block
            with m.Elif(rr == cur_count - 1):
                m.d.sync += rblk.eq(0)
                for b in range(2):
                    with m.If(rbank == b):
                        m.d.sync += full[b].eq(0)
                m.d.sync += [rbank.eq(~rbank), rr.eq(0),
                             rrow_addr.eq(Mux(rbank, 0, bank_words))]
            with m.Else():
                m.d.sync += [rr.eq(rr + 1), rblk.eq(0), rrow_addr.eq(rrow_addr + maxq)]
        with m.Elif(issue):
            m.d.sync += [in_row.eq(1), rq.eq(q_read + 1)]

        data_now = rp.data.data
        nonzero = Cat(data_now[e] != 0 for e in range(vec))
        m.d.comb += [
            self.rows.valid.eq(rows_valid),
            self.rows.payload.live.eq(rows_live),
            self.rows.payload.last.eq(rows_last),
            self.rows.payload.block.eq(rows_block),
            self.x.valid.eq(sendable),
            self.x.payload.x.eq(data_now),
            self.x.payload.mask.eq(Mux(self.dense, rp.data.smask, rp.data.smask & nonzero)),
            self.x.payload.index.eq(q1),
            self.x.payload.last.eq(last1),
        ]
        blocks_ok = self.blocks != 0
        if (1 << len(self.blocks)) - 1 > self._max_blocks:    # else the bound is the width's
            blocks_ok &= self.blocks <= self._max_blocks
        m.d.sync += [
            Assert(~take | (r_cur < vec), "a block of more than vec rows"),
            Assert(~(take & full.bit_select(wbank, 1)), "a write into a full bank"),
            Assert(~start | blocks_ok, "blocks out of 1..max_blocks"),
        ]
        return m
