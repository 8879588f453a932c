"""The core's memory port: one AXI4 manager with independent read and write DMA engines that move
whole bus words between external memory and Amaranth streams (``hw/axi.py`` for the bus)."""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import Assert
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from maskprop.base.config import check_range
from maskprop.hw.axi import (AXI4Signature, BOUNDARY_BYTES, BURST_INCR, CACHE_NORMAL_BUFFERABLE,
                             MAX_BURST_BEATS, RESP_OKAY)
from maskprop.hw.counters import event_counter

__all__ = ["AxiDma", "DMA_COUNTERS", "dma_command_layout", "read_word_layout",
           "write_word_layout", "write_done_layout", "dma_flags_layout", "dma_counter_layout"]

DMA_COUNTERS = ("bytes_read", "bytes_written", "read_bursts", "write_bursts", "read_wait",
                "write_wait")


def dma_command_layout(addr_width: int, max_beats: int) -> data.StructLayout:
    """One transfer of ``beats`` (1..``max_beats``) whole bus words, as consecutive rows of
    ``row_beats`` words: row ``r`` starts at byte address ``addr + r * pitch``. ``beats`` must be
    a multiple of ``row_beats`` (1..``beats``) and ``pitch`` (bytes from one row's start to the
    next) a multiple of the word size. ``row_beats == beats`` is a contiguous transfer (one row;
    ``pitch`` is then ignored)."""
    return data.StructLayout({"addr": addr_width, "beats": range(max_beats + 1),
                              "row_beats": range(max_beats + 1), "pitch": addr_width})


def read_word_layout(data_width: int) -> data.StructLayout:
    """One word read, in address order; ``last`` marks the final word of its command."""
    return data.StructLayout({"data": data_width, "last": 1})


def write_word_layout(data_width: int) -> data.StructLayout:
    """One word to write; strobe bit ``k`` writes byte ``k`` (bits ``8k .. 8k + 7``)."""
    return data.StructLayout({"data": data_width, "strb": data_width // 8})


def write_done_layout() -> data.StructLayout:
    """One beat per write command, once every burst of it has its response: ``error`` if any of
    them was not OKAY."""
    return data.StructLayout({"error": 1})


def dma_flags_layout() -> data.StructLayout:
    """A read and a write flag (``busy``, ``error``)."""
    return data.StructLayout({"read": 1, "write": 1})


def dma_counter_layout() -> data.StructLayout:
    """Performance counters of the DMA (count from ``clear``, wrap at 2**32, one cycle behind
    their events, as every counter of ``hw/counters.py``):

    - ``bytes_read``, ``bytes_written``: bus bytes moved, a whole word per R or W beat (error
      responses included; the write strobes do not reduce the count);
    - ``read_bursts``, ``write_bursts``: AR and AW handshakes;
    - ``read_wait``: cycles in which a read burst was issued and not complete and no read word
      arrived (the memory's latency and stalls, as the read engine sees them);
    - ``write_wait``: cycles in which a write word was offered on W and not taken.
    """
    return data.StructLayout({name: 32 for name in DMA_COUNTERS})


def _burst_layout(addr_width: int, max_burst: int) -> data.StructLayout:
    return data.StructLayout({"addr": addr_width, "beats": range(max_burst + 1), "last": 1})


class _BurstSplitter(wiring.Component):
    """Cuts commands into INCR bursts of at most ``max_burst`` beats that do not cross a 4 KiB
    boundary or a row's end. ``o`` offers the current command's next burst (``last``: its final
    one) straight from the command registers; after a row's last burst the address jumps to the
    next row's start (a row-start register plus ``pitch``, no multiplier), in the same cycle, and
    the next command is taken in the cycle its predecessor's last burst leaves, so bursts follow
    each other without a bubble. A contiguous command (one row) is cut exactly as if it had no
    rows. A command of 0 beats is dropped. Outside the rules the hardware still terminates: a
    ``row_beats`` of 0 or above ``beats`` is one row, and a short final row (``beats`` not a
    multiple) is split as it is (simulation ``Assert``s it, naming the port ``name``).
    """

    def __init__(self, *, addr_width, bytes_per_beat, max_burst, max_beats, name="cmd"):
        self._addr_width, self._bytes = addr_width, bytes_per_beat
        self._max_burst, self._max_beats, self._name = max_burst, max_beats, name
        super().__init__({
            "i": In(stream.Signature(dma_command_layout(addr_width, max_beats))),
            "o": Out(stream.Signature(_burst_layout(addr_width, max_burst))),
        })

    def elaborate(self, platform):
        m = Module()
        shift = exact_log2(self._bytes)
        page_words = BOUNDARY_BYTES // self._bytes
        words = range(self._max_beats + 1)
        addr = Signal(self._addr_width)
        left = Signal(words)                 # words of the command not yet in a burst
        row_start = Signal(self._addr_width)
        row_left = Signal(words)             # words of the current row not yet in a burst
        row_beats = Signal(words)
        pitch = Signal(self._addr_width)
        to_boundary = Signal(range(page_words + 1))
        capped = Signal(range(self._max_burst + 1))
        beats = Signal(range(self._max_burst + 1))
        row_end = Signal()
        rest = Signal(words)
        next_row = Signal(self._addr_width)
        m.d.comb += [
            to_boundary.eq(page_words - addr[shift:12]),
            capped.eq(Mux(to_boundary < self._max_burst, to_boundary, self._max_burst)),
            # row_left <= left always, so a command of one row is cut as it was before rows.
            beats.eq(Mux(row_left < capped, row_left, capped)),
            row_end.eq(beats == row_left),
            # From registers only, to keep them off the path through ``beats``.
            rest.eq(left - row_left),
            next_row.eq(row_start + pitch),
            self.o.payload.addr.eq(addr),
            self.o.payload.beats.eq(beats),
            self.o.payload.last.eq(beats == left),
        ]
        sent = self.o.valid & self.o.ready
        finishing = sent & self.o.payload.last
        m.d.comb += self.i.ready.eq(~self.o.valid | finishing)
        with m.If(sent):
            m.d.sync += left.eq(left - beats)
            with m.If(row_end):
                m.d.sync += [
                    addr.eq(next_row), row_start.eq(next_row),
                    # A short final row (beats not a multiple of row_beats) is clamped.
                    row_left.eq(Mux(rest < row_beats, rest, row_beats)),
                ]
            with m.Else():
                m.d.sync += [addr.eq(addr + (beats << shift)), row_left.eq(row_left - beats)]
            with m.If(self.o.payload.last):
                m.d.sync += self.o.valid.eq(0)
        # beats a multiple of row_beats, checked row by row (a remainder needs a divider).
        with m.If(sent & row_end & ~self.o.payload.last):
            m.d.sync += Assert(rest >= row_beats,
                               f"{self._name}: beats not a multiple of row_beats")
        with m.If(self.i.valid & self.i.ready):
            command = self.i.payload
            # The low bits of a misaligned address or pitch are ignored (AxiDma asserts them 0).
            first = Cat(Const(0, shift), command.addr[shift:])
            one_row = (command.row_beats == 0) | (command.row_beats > command.beats)
            m.d.sync += [
                addr.eq(first), row_start.eq(first),
                left.eq(command.beats),
                row_left.eq(Mux(one_row, command.beats, command.row_beats)),
                row_beats.eq(command.row_beats),
                pitch.eq(Cat(Const(0, shift), command.pitch[shift:])),
                self.o.valid.eq(command.beats != 0),
            ]
        return m


class AxiDma(wiring.Component):
    """One AXI4 manager port with a read engine and a write engine that work independently:
    commands of whole bus words in, INCR bursts on the bus, words (and write completions) out.

    Parameters
    ----------
    addr_width : int
        Byte address bits of the bus, 12..64.
    data_width : int
        Bus width in bits, a power of two 8..1024; every beat moves one whole word
        (``AxSIZE = log2(data_width / 8)``).
    id_width : int
        AXI ID bits, 1..16. Every burst uses ID 0, so responses come back in order.
    max_burst : int
        Beats per burst at most, a power of two 1..256.
    max_outstanding : int
        Bursts in flight per direction at most, 1..16: a read burst from its issue until its
        last word arrives, a write burst from its issue until its write response.
    max_beats_per_command : int
        The largest ``beats`` of a command, 1..2**24.
    read_buffer : int or None
        Words of the read-data FIFO, ``max_burst``..65536 (default ``max_burst *
        max_outstanding``). A read burst is issued only when the FIFO has room for all of it
        besides every word already promised to it, so ``rready`` never has to drop and the
        bursts in flight are bounded by ``read_buffer / beats`` as well.
    command_depth : int
        Commands each engine queues before its command port back-pressures, 2..64.

    Ports
    -----
    bus : Out(AXI4Signature(addr_width, data_width, id_width))
        The manager port. ``*lock`` 0, ``*cache`` ``CACHE_NORMAL_BUFFERABLE``, ``*prot`` 0,
        ``*burst`` INCR, ID 0. Every AXI output is a register or depends on registers only (no
        combinational path from a bus input to a bus output, as AXI requires). AR and AW run
        ahead of the data.
    read_cmd : In(stream.Signature(dma_command_layout(addr_width, max_beats_per_command)))
        Read ``beats`` (1..``max_beats_per_command``) words as consecutive rows of
        ``row_beats`` words, row ``r`` starting at byte address ``addr + r * pitch``;
        ``row_beats == beats`` is a contiguous transfer (``pitch`` ignored). ``addr`` and
        ``pitch`` must be multiples of ``data_width / 8`` (the core aligns its addresses before
        issuing), ``row_beats`` in 1..``beats`` and ``beats`` a multiple of it. Simulation
        ``Assert``s all of it (the multiple when the splitter reaches the short row); the
        hardware ignores the low address and pitch bits, drops a command of 0 beats, moves one
        of ``row_beats`` 0 or above ``beats`` as one row, and ends a command that is not a whole
        number of rows with its short row. Bursts never span two rows.
    read_data : Out(stream.Signature(read_word_layout(data_width)))
        The words read, command after command, each command's row by row and each row in
        address order, ``last`` on each command's final word (not on each row's). A word
        answered with an error response still comes (its data is whatever the memory returned)
        and sets ``error.read``.
    write_cmd : In(stream.Signature(dma_command_layout(addr_width, max_beats_per_command)))
        Write ``beats`` words in rows from byte address ``addr`` (same rules as
        ``read_cmd``).
    write_data : In(stream.Signature(write_word_layout(data_width)))
        The words of the write commands, in command, row and address order, with byte
        strobes. A word is taken only once its burst has been issued (from the cycle its
        ``AWVALID`` rises).
    write_done : Out(stream.Signature(write_done_layout()))
        One beat per write command, in command order, once all of its bursts' write responses
        have arrived (the words are then in memory); ``error`` if any of them was not OKAY.
    error : Out(dma_flags_layout())
        Sticky: a read (``RRESP``) or write (``BRESP``) response other than OKAY was received.
        The engines carry on: every command still delivers all its words or its completion.
    busy : Out(dma_flags_layout())
        ``read``: a read command is queued, being split, or has words in flight or in the read
        FIFO. ``write``: a write command is queued, being split, has bursts awaiting their
        responses, or its completion waits on ``write_done``.
    clear : In(1)
        Zero the counters and the error flags (an error response in the same cycle still sets
        its flag).
    counters : Out(dma_counter_layout())

    Latency and throughput
    ----------------------
    Each direction moves one word per cycle when the bus does not back-pressure and bursts are
    long enough to cover the memory's latency with ``max_outstanding`` bursts in flight
    (``read_buffer`` words to cover it on the read side); bursts follow each other without a
    bubble, also across rows and commands (one burst per cycle per direction at most; short rows
    make short bursts, which cover less of the latency). A contiguous command's bursts and
    cycles do not depend on ``pitch``. On an idle engine ``ARVALID`` (``AWVALID``) rises 3
    cycles after the command's handshake (command queue, splitter, address register); a read
    word is offered on ``read_data`` 2 cycles after its R handshake (the read FIFO's
    registered output); a word taken from ``write_data`` is on W the next cycle;
    ``write_done`` is offered the cycle after the command's last write response.
    (``tests/test_axi_dma.py::test_latencies`` pins these.)
    """

    #: Cycles from a command's handshake to its first ``ARVALID``/``AWVALID`` (idle engine).
    address_latency = 3
    #: Cycles from an R handshake to the word on ``read_data``.
    read_data_latency = 2

    def __init__(self, *, addr_width: int = 32, data_width: int = 64, id_width: int = 1,
                 max_burst: int = 16, max_outstanding: int = 4,
                 max_beats_per_command: int = 4096, read_buffer: int | None = None,
                 command_depth: int = 2):
        self._addr_width = check_range("addr_width", addr_width, 12, 64)
        widths = tuple(8 << k for k in range(8))
        if data_width not in widths:
            raise ValueError(f"data_width must be one of {', '.join(map(str, widths))} bits, "
                             f"not {data_width!r}")
        self._data_width = data_width
        self._id_width = check_range("id_width", id_width, 1, 16)
        check_range("max_burst", max_burst, 1, MAX_BURST_BEATS)
        if max_burst & (max_burst - 1):
            raise ValueError(f"max_burst must be a power of two in [1, {MAX_BURST_BEATS}], "
                             f"not {max_burst}")
        self._max_burst = max_burst
        self._max_outstanding = check_range("max_outstanding", max_outstanding, 1, 16)
        self._max_beats = check_range("max_beats_per_command", max_beats_per_command, 1, 1 << 24)
        if read_buffer is None:
            read_buffer = max_burst * max_outstanding
        self._read_buffer = check_range("read_buffer", read_buffer, max_burst, 1 << 16)
        self._command_depth = check_range("command_depth", command_depth, 2, 64)
        command = dma_command_layout(addr_width, max_beats_per_command)
        super().__init__({
            "bus": Out(AXI4Signature(addr_width=addr_width, data_width=data_width,
                                     id_width=id_width)),
            "read_cmd": In(stream.Signature(command)),
            "read_data": Out(stream.Signature(read_word_layout(data_width))),
            "write_cmd": In(stream.Signature(command)),
            "write_data": In(stream.Signature(write_word_layout(data_width))),
            "write_done": Out(stream.Signature(write_done_layout())),
            "error": Out(dma_flags_layout()),
            "busy": Out(dma_flags_layout()),
            "clear": In(1),
            "counters": Out(dma_counter_layout()),
        })

    addr_width = property(lambda self: self._addr_width)
    data_width = property(lambda self: self._data_width)
    id_width = property(lambda self: self._id_width)
    max_burst = property(lambda self: self._max_burst)
    max_outstanding = property(lambda self: self._max_outstanding)
    max_beats_per_command = property(lambda self: self._max_beats)
    read_buffer = property(lambda self: self._read_buffer)
    command_depth = property(lambda self: self._command_depth)
    bytes_per_beat = property(lambda self: self._data_width // 8)

    @property
    def parameters(self) -> dict:
        """The constructor's arguments (``AxiDma(**dma.parameters)`` builds the same DMA)."""
        return dict(addr_width=self._addr_width, data_width=self._data_width,
                    id_width=self._id_width, max_burst=self._max_burst,
                    max_outstanding=self._max_outstanding,
                    max_beats_per_command=self._max_beats, read_buffer=self._read_buffer,
                    command_depth=self._command_depth)

    @property
    def generator_key(self):
        """Everything the generated Verilog depends on (it caches by this)."""
        return (type(self).__qualname__, tuple(sorted(self.parameters.items())))

    def _command_queue(self, m, port, name):
        """``port``'s commands through a FIFO into a burst splitter; returns both."""
        queue = fifo.SyncFIFO(width=port.payload.shape().size, depth=self._command_depth)
        splitter = _BurstSplitter(addr_width=self._addr_width, bytes_per_beat=self.bytes_per_beat,
                                  max_burst=self._max_burst, max_beats=self._max_beats,
                                  name=name)
        m.submodules[f"{name}_queue"] = queue
        m.submodules[f"{name}_splitter"] = splitter
        wiring.connect(m, wiring.flipped(port), queue.w_stream)
        wiring.connect(m, queue.r_stream, splitter.i)
        # Checked at the clock edge (sync): a combinational check would also see the
        # transient mix of new register values and old inputs right after the edge. That beats
        # is a multiple of row_beats the splitter checks, row by row.
        command, shift = port.payload, exact_log2(self.bytes_per_beat)
        with m.If(port.valid):
            m.d.sync += [
                Assert(command.addr[:shift] == 0, f"{name}: address not aligned to the bus width"),
                Assert((command.beats >= 1) & (command.beats <= self._max_beats),
                       f"{name}: beats out of [1, {self._max_beats}]"),
                Assert((command.row_beats >= 1) & (command.row_beats <= command.beats),
                       f"{name}: row_beats out of [1, beats]"),
                Assert((command.row_beats == command.beats) | (command.pitch[:shift] == 0),
                       f"{name}: pitch not a multiple of the bus width"),
            ]
        return queue, splitter

    def elaborate(self, platform):
        m = Module()
        bus, size = self.bus, exact_log2(self.bytes_per_beat)
        m.d.comb += [
            bus.arid.eq(0), bus.arsize.eq(size), bus.arburst.eq(BURST_INCR), bus.arlock.eq(0),
            bus.arcache.eq(CACHE_NORMAL_BUFFERABLE), bus.arprot.eq(0),
            bus.awid.eq(0), bus.awsize.eq(size), bus.awburst.eq(BURST_INCR), bus.awlock.eq(0),
            bus.awcache.eq(CACHE_NORMAL_BUFFERABLE), bus.awprot.eq(0),
        ]
        out_range = range(self._max_outstanding + 1)

        # --- read engine ----------------------------------------------------------------------
        # AR register <- splitter, gated by the in-flight bound and the read FIFO's room; the
        # reservation counts every word of an issued burst until it leaves the FIFO.
        read_queue, read_split = self._command_queue(m, self.read_cmd, "read_cmd")
        # Small FIFOs get at least 2 entries: a one-entry Amaranth memory has zero-width
        # addresses, which the Verilog backend declares as [-1:0] (see hw/tile_array.py).
        info_depth = max(2, self._max_outstanding)
        read_info = fifo.SyncFIFO(width=1, depth=info_depth)     # the burst ends a command
        # One spare entry: with at most read_buffer words in it, the buffered FIFO's write side
        # is never full (its output register refills a cycle after the memory part fills).
        read_fifo = fifo.SyncFIFOBuffered(width=read_word_layout(self._data_width).size,
                                          depth=max(3, self._read_buffer + 1))
        m.submodules.read_info = read_info
        m.submodules.read_fifo = read_fifo
        read_outstanding = Signal(out_range)
        reserved = Signal(range(self._read_buffer + 1))
        burst = read_split.o.payload
        ar_free = ~bus.arvalid | bus.arready
        read_room = Signal()
        m.d.comb += [
            read_room.eq((read_outstanding < self._max_outstanding) & read_info.w_rdy &
                         (reserved + burst.beats <= self._read_buffer)),
            read_split.o.ready.eq(ar_free & read_room),
        ]
        ar_issue = read_split.o.valid & read_split.o.ready
        with m.If(ar_issue):
            m.d.sync += [bus.arvalid.eq(1), bus.araddr.eq(burst.addr),
                         bus.arlen.eq(burst.beats - 1)]
        with m.Elif(bus.arready):
            m.d.sync += bus.arvalid.eq(0)
        m.d.comb += [read_info.w_en.eq(ar_issue), read_info.w_data.eq(burst.last)]

        r_taken = bus.rvalid & bus.rready
        r_burst_done = r_taken & bus.rlast
        word = data.View(read_word_layout(self._data_width), read_fifo.w_data)
        m.d.comb += [
            bus.rready.eq(read_fifo.w_rdy),
            read_fifo.w_en.eq(bus.rvalid),
            word.data.eq(bus.rdata),
            word.last.eq(bus.rlast & read_info.r_data[0]),
            read_info.r_en.eq(r_burst_done),
        ]
        wiring.connect(m, read_fifo.r_stream, wiring.flipped(self.read_data))
        word_out = self.read_data.valid & self.read_data.ready
        m.d.sync += [
            read_outstanding.eq(read_outstanding + ar_issue - r_burst_done),
            reserved.eq(reserved + Mux(ar_issue, burst.beats, 0) - word_out),
        ]
        with m.If(bus.rvalid):
            m.d.sync += [
                Assert(read_fifo.w_rdy, "read FIFO full: a read burst was issued without room"),
                Assert(read_info.r_rdy, "read data without an outstanding read burst"),
            ]

        # --- write engine ---------------------------------------------------------------------
        write_queue, write_split = self._command_queue(m, self.write_cmd, "write_cmd")
        w_info = fifo.SyncFIFO(width=exact_log2(self._max_burst) + 1,
                               depth=info_depth)                 # the burst's beats
        b_info = fifo.SyncFIFO(width=1, depth=info_depth)        # the burst ends a command
        done_fifo = fifo.SyncFIFO(width=write_done_layout().size, depth=info_depth)
        m.submodules.w_info = w_info
        m.submodules.b_info = b_info
        m.submodules.done_fifo = done_fifo
        write_outstanding = Signal(out_range)
        wburst = write_split.o.payload
        aw_free = ~bus.awvalid | bus.awready
        m.d.comb += write_split.o.ready.eq(
            aw_free & (write_outstanding < self._max_outstanding) & w_info.w_rdy & b_info.w_rdy)
        aw_issue = write_split.o.valid & write_split.o.ready
        with m.If(aw_issue):
            m.d.sync += [bus.awvalid.eq(1), bus.awaddr.eq(wburst.addr),
                         bus.awlen.eq(wburst.beats - 1)]
        with m.Elif(bus.awready):
            m.d.sync += bus.awvalid.eq(0)
        m.d.comb += [
            w_info.w_en.eq(aw_issue), w_info.w_data.eq(wburst.beats),
            b_info.w_en.eq(aw_issue), b_info.w_data.eq(wburst.last),
        ]

        # W register: loaded from write_data once the word's burst is issued.
        w_beat = Signal(range(max(2, self._max_burst)))
        w_free = ~bus.wvalid | bus.wready
        m.d.comb += self.write_data.ready.eq(w_free & w_info.r_rdy)
        w_load = self.write_data.valid & self.write_data.ready
        w_last = Signal()
        m.d.comb += [
            w_last.eq(w_beat == w_info.r_data - 1),
            w_info.r_en.eq(w_load & w_last),
        ]
        with m.If(w_load):
            m.d.sync += [
                bus.wvalid.eq(1),
                bus.wdata.eq(self.write_data.payload.data),
                bus.wstrb.eq(self.write_data.payload.strb),
                bus.wlast.eq(w_last),
                w_beat.eq(Mux(w_last, 0, w_beat + 1)),
            ]
        with m.Elif(bus.wready):
            m.d.sync += bus.wvalid.eq(0)

        # B: one response per burst; a command's completion after its last burst's response.
        command_error = Signal()
        b_error = bus.bresp != RESP_OKAY
        b_ends_command = b_info.r_data[0]
        m.d.comb += bus.bready.eq(b_info.r_rdy & (~b_ends_command | done_fifo.w_rdy))
        b_taken = bus.bvalid & bus.bready
        done = data.View(write_done_layout(), done_fifo.w_data)
        m.d.comb += [
            b_info.r_en.eq(b_taken),
            done_fifo.w_en.eq(b_taken & b_ends_command),
            done.error.eq(command_error | b_error),
        ]
        with m.If(b_taken):
            m.d.sync += command_error.eq(~b_ends_command & (command_error | b_error))
        with m.If(bus.bvalid):
            m.d.sync += Assert(b_info.r_rdy, "write response without an outstanding write burst")
        wiring.connect(m, done_fifo.r_stream, wiring.flipped(self.write_done))
        m.d.sync += write_outstanding.eq(write_outstanding + aw_issue - b_taken)

        # --- status, errors, counters ---------------------------------------------------------
        m.d.comb += [
            self.busy.read.eq(read_queue.r_rdy | read_split.o.valid | (reserved != 0)),
            self.busy.write.eq(write_queue.r_rdy | write_split.o.valid |
                               (write_outstanding != 0) | done_fifo.r_rdy),
        ]
        with m.If(self.clear):
            m.d.sync += [self.error.read.eq(0), self.error.write.eq(0)]
        with m.If(r_taken & (bus.rresp != RESP_OKAY)):
            m.d.sync += self.error.read.eq(1)
        with m.If(b_taken & b_error):
            m.d.sync += self.error.write.eq(1)

        word_bytes = self.bytes_per_beat
        w_taken = bus.wvalid & bus.wready
        increments = {
            "bytes_read": Mux(r_taken, word_bytes, 0),
            "bytes_written": Mux(w_taken, word_bytes, 0),
            "read_bursts": bus.arvalid & bus.arready,
            "write_bursts": bus.awvalid & bus.awready,
            "read_wait": (read_outstanding != 0) & ~r_taken,
            "write_wait": bus.wvalid & ~bus.wready,
        }
        for name, increment in increments.items():
            event_counter(m, getattr(self.counters, name), increment, self.clear, name=name)
        return m
