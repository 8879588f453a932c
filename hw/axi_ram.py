"""An AXI4 subordinate backed by on-chip memory: the fast memory of the simulation benchmarks
and of board builds (block RAM), with an optional word-wide backdoor for testbenches."""

from amaranth import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from maskprop.base.config import GENERATABLE_BUFFER_BITS, ceil_log2, check_range
from maskprop.hw.axi import (AXI4Signature, BURST_INCR, RESP_DECERR, RESP_OKAY, RESP_SLVERR)

__all__ = ["AxiRam", "HostPortSignature"]


class HostPortSignature(wiring.Signature):
    """The backdoor, a plain synchronous memory port of whole words, host's view: in a cycle
    with ``en``, word ``addr`` is written with ``wdata`` if ``we``, else read: ``rdata`` holds
    it from the next cycle until the next read."""

    def __init__(self, *, addr_width: int, data_width: int):
        super().__init__({
            "en": Out(1), "we": Out(1), "addr": Out(addr_width), "wdata": Out(data_width),
            "rdata": In(data_width),
        })


def _burst_state(addr_width: int, id_width: int) -> data.StructLayout:
    """What a read or write engine keeps of the burst it is serving."""
    return data.StructLayout({
        "addr": addr_width,     # byte address of the current beat
        "left": 8,              # beats after the current one
        "size": 3,
        "id": id_width,
        "bad": 1,               # not an INCR burst of at most the bus width: SLVERR
    })


class AxiRam(wiring.Component):
    """``depth`` words of ``data_width`` bits (``amaranth.lib.memory.Memory``) behind an AXI4
    subordinate port, serving a read burst and a write burst at the same time.

    Parameters
    ----------
    addr_width : int
        Byte address bits of the bus, 12..64.
    data_width : int
        Bus and word width in bits, a power of two 8..1024.
    id_width : int
        AXI ID bits, 1..16 (responses carry their request's ID; bursts are served in order).
    depth : int
        Words of memory, 2 .. ``2**(addr_width - log2(data_width / 8))``, and at most
        ``GENERATABLE_BUFFER_BITS`` (2**22) bits in all: Amaranth writes an initial value for
        every bit of a memory into the Verilog, so generation time grows with the size
        (``maskprop.base.config``).
    init : sequence of int
        Initial words (the rest are 0), e.g. a board build's preloaded tensors.
    host_port : bool
        Add the backdoor ``host`` (testbenches and the board's host link fill and read back
        memory through it, one word per cycle, without AXI bursts). It shares the memory's one
        write port and one read port with the bus, so on an FPGA the memory is one simple
        dual-port block RAM with or without it.

    Ports
    -----
    bus : In(AXI4Signature(addr_width, data_width, id_width))
        The subordinate port. Bytes ``[0, depth * data_width / 8)`` are memory, word ``k`` at
        byte address ``k * data_width / 8``. INCR bursts of any size up to the bus width
        (narrow ones too) and any byte strobes; a beat beyond the memory is answered DECERR
        (reads: that beat; writes: the burst's response, with the beats inside the memory
        written); a FIXED or WRAP burst, or one wider than the bus, is answered SLVERR and
        writes nothing, with every beat still transferred (no hang). ``*lock``, ``*cache``,
        ``*prot`` are ignored (an exclusive access gets OKAY, i.e. "not exclusive"). A burst
        that crosses a 4 KiB boundary (a protocol error of the manager) just goes on
        incrementing. Every AXI output comes from registers and FIFO levels (no combinational
        path from a bus input to a bus output).
    host : In(HostPortSignature(...)), only with ``host_port``
        ``addr`` is a word address. A host write takes the memory's write port in that cycle
        (W waits); a host read takes its read port (the next R beat's read waits; the word of
        an R beat already offered is kept in a register, so R never changes under a stalled
        beat). The host wins both: its accesses are never refused or delayed.

    Latency and throughput
    ----------------------
    Reads: a burst's first word is on R ``read_latency`` = 3 cycles after its AR handshake (the
    address queue, the burst register, the memory's registered read), then one word per cycle
    while ``rready`` is high; the next burst's first word follows the previous burst's last
    word without a bubble when its AR has arrived at least 2 cycles before that last word.
    Writes: W is taken from 2 cycles after the AW handshake, one word per cycle, bursts back to
    back; the response is offered the cycle after the last W beat. The address channels queue
    2 bursts each, so a manager that keeps them filled sees one word per cycle in both
    directions at once.
    """

    #: Cycles from an AR handshake to its first R beat, with R not back-pressured.
    read_latency = 3
    #: Cycles from an AW handshake to the first cycle a W beat of that burst is taken.
    write_accept_latency = 2
    #: Cycles from a burst's last W beat to its B response being offered.
    write_response_latency = 1

    def __init__(self, *, addr_width: int = 32, data_width: int = 64, id_width: int = 1,
                 depth: int = 1024, init=(), host_port: bool = False):
        self._signature = AXI4Signature(addr_width=addr_width, data_width=data_width,
                                        id_width=id_width)
        self._addr_width, self._data_width, self._id_width = addr_width, data_width, id_width
        word_bits = addr_width - exact_log2(data_width // 8)
        limit = min(1 << word_bits, GENERATABLE_BUFFER_BITS // data_width)
        self._depth = check_range("depth", depth, 2, limit)
        self._init = tuple(int(word) for word in init)
        if len(self._init) > depth:
            raise ValueError(f"init has {len(self._init)} words, more than depth ({depth})")
        self._host_port = bool(host_port)
        members = {"bus": In(self._signature)}
        if self._host_port:
            members["host"] = In(HostPortSignature(addr_width=self.word_addr_width,
                                                   data_width=data_width))
        super().__init__(members)

    addr_width = property(lambda self: self._addr_width)
    data_width = property(lambda self: self._data_width)
    id_width = property(lambda self: self._id_width)
    depth = property(lambda self: self._depth)
    host_port = property(lambda self: self._host_port)
    bytes_per_beat = property(lambda self: self._data_width // 8)
    size_bytes = property(lambda self: self._depth * self._data_width // 8,
                          doc="Bytes of memory, from address 0.")
    word_addr_width = property(lambda self: max(1, ceil_log2(self._depth)),
                               doc="Bits of a word address (the ``host`` port's ``addr``).")

    @property
    def parameters(self) -> dict:
        """The constructor's arguments (``AxiRam(**ram.parameters)`` builds the same RAM)."""
        return dict(addr_width=self._addr_width, data_width=self._data_width,
                    id_width=self._id_width, depth=self._depth, init=self._init,
                    host_port=self._host_port)

    @property
    def generator_key(self):
        """Everything the generated Verilog depends on (it caches by this)."""
        return (type(self).__qualname__, tuple(sorted(self.parameters.items())))

    def _beat(self, m, burst, name):
        """The current beat of ``burst``: (word address in memory, beyond the memory, the next
        beat's byte address). INCR: the first beat may be unaligned, later ones are aligned to
        the size."""
        shift = exact_log2(self.bytes_per_beat)
        step = Signal(unsigned(shift + 1), name=f"{name}_step")
        next_addr = Signal(self._addr_width, name=f"{name}_next_addr")
        outside = Signal(name=f"{name}_outside")
        m.d.comb += [
            step.eq(Const(1, shift + 1) << burst.size),
            next_addr.eq((burst.addr & ~(step - 1)) + step),
        ]
        if self._depth < 1 << (self._addr_width - shift):     # else every address is memory
            m.d.comb += outside.eq(burst.addr[shift:] >= self._depth)
        return burst.addr[shift:shift + self.word_addr_width], outside, next_addr

    def _take_address(self, m, burst, head):
        """Load the burst register ``burst`` from ``head``, an address queue's head."""
        m.d.sync += [
            burst.addr.eq(head.addr), burst.left.eq(head.len), burst.size.eq(head.size),
            burst.id.eq(head.id),
            burst.bad.eq(head.burst != BURST_INCR),
        ]
        if self.bytes_per_beat < 128:       # 128 bytes is the largest AxSIZE can say
            with m.If(head.size > exact_log2(self.bytes_per_beat)):
                m.d.sync += burst.bad.eq(1)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        mem = memory.Memory(shape=unsigned(self._data_width), depth=self._depth,
                            init=list(self._init))
        m.submodules.memory = mem
        write_port = mem.write_port(granularity=8)
        read_port = mem.read_port()
        state = _burst_state(self._addr_width, self._id_width)
        address = data.StructLayout({
            "addr": self._addr_width, "len": 8, "size": 3, "burst": 2, "id": self._id_width})

        # --- reads: AR queue -> burst register -> memory read -> R register -------------------
        ar_queue = fifo.SyncFIFO(width=address.size, depth=2)
        m.submodules.ar_queue = ar_queue
        ar_in = data.View(address, ar_queue.w_data)
        m.d.comb += [
            ar_in.addr.eq(bus.araddr), ar_in.len.eq(bus.arlen), ar_in.size.eq(bus.arsize),
            ar_in.burst.eq(bus.arburst), ar_in.id.eq(bus.arid),
            ar_queue.w_en.eq(bus.arvalid),
            bus.arready.eq(ar_queue.w_rdy),
        ]
        ar = data.View(address, ar_queue.r_data)
        rd = Signal(state)
        rd_active = Signal()
        rd_word, rd_outside, rd_next = self._beat(m, rd, "read")
        advance = ~bus.rvalid | bus.rready
        host_read = Signal()
        if self._host_port:
            m.d.comb += host_read.eq(self.host.en & ~self.host.we)
        issue = rd_active & advance & ~host_read
        m.d.comb += [
            read_port.addr.eq(rd_word),
            read_port.en.eq(issue | host_read),
        ]
        if self._host_port:
            with m.If(host_read):
                m.d.comb += read_port.addr.eq(self.host.addr)
        with m.If(issue):
            m.d.sync += [
                bus.rvalid.eq(1),
                bus.rid.eq(rd.id),
                bus.rlast.eq(rd.left == 0),
                bus.rresp.eq(Mux(rd.bad, RESP_SLVERR, Mux(rd_outside, RESP_DECERR, RESP_OKAY))),
                rd.addr.eq(rd_next),
                rd.left.eq(rd.left - 1),
            ]
            with m.If(rd.left == 0):
                m.d.sync += rd_active.eq(0)
        with m.Elif(bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        m.d.comb += bus.rdata.eq(read_port.data)
        if self._host_port:
            # A host read replaces the read port's word: an R beat still waiting for rready
            # keeps its word here until it is taken.
            r_kept = Signal(self._data_width)
            r_keep = Signal()
            with m.If(host_read & bus.rvalid & ~bus.rready & ~r_keep):
                m.d.sync += [r_kept.eq(read_port.data), r_keep.eq(1)]
            with m.If(issue):
                m.d.sync += r_keep.eq(0)
            with m.If(r_keep):
                m.d.comb += bus.rdata.eq(r_kept)
        take_ar = ar_queue.r_rdy & (~rd_active | (issue & (rd.left == 0)))
        m.d.comb += ar_queue.r_en.eq(take_ar)
        with m.If(take_ar):
            m.d.sync += rd_active.eq(1)
            self._take_address(m, rd, ar)

        # --- writes: AW queue -> burst register; W into memory; B queue -----------------------
        aw_queue = fifo.SyncFIFO(width=address.size, depth=2)
        b_layout = data.StructLayout({"id": self._id_width, "resp": 2})
        b_queue = fifo.SyncFIFO(width=b_layout.size, depth=2)
        m.submodules.aw_queue = aw_queue
        m.submodules.b_queue = b_queue
        aw_in = data.View(address, aw_queue.w_data)
        m.d.comb += [
            aw_in.addr.eq(bus.awaddr), aw_in.len.eq(bus.awlen), aw_in.size.eq(bus.awsize),
            aw_in.burst.eq(bus.awburst), aw_in.id.eq(bus.awid),
            aw_queue.w_en.eq(bus.awvalid),
            bus.awready.eq(aw_queue.w_rdy),
        ]
        aw = data.View(address, aw_queue.r_data)
        wr = Signal(state)
        wr_active = Signal()
        wr_decerr = Signal()                    # a beat of the burst so far was beyond memory
        wr_word, wr_outside, wr_next = self._beat(m, wr, "write")
        host_write = Signal()
        if self._host_port:
            m.d.comb += host_write.eq(self.host.en & self.host.we)
        last_beat = wr.left == 0
        m.d.comb += bus.wready.eq(wr_active & ~host_write & (~last_beat | b_queue.w_rdy))
        w_taken = bus.wvalid & bus.wready
        store = w_taken & ~wr.bad & ~wr_outside
        m.d.comb += [
            write_port.addr.eq(wr_word),
            write_port.data.eq(bus.wdata),
            write_port.en.eq(Mux(store, bus.wstrb, 0)),
        ]
        if self._host_port:
            with m.If(host_write):
                m.d.comb += [
                    write_port.addr.eq(self.host.addr),
                    write_port.data.eq(self.host.wdata),
                    write_port.en.eq(-1),
                ]
        b_out = data.View(b_layout, b_queue.w_data)
        m.d.comb += [
            b_queue.w_en.eq(w_taken & last_beat),
            b_out.id.eq(wr.id),
            b_out.resp.eq(Mux(wr.bad, RESP_SLVERR,
                              Mux(wr_decerr | wr_outside, RESP_DECERR, RESP_OKAY))),
        ]
        with m.If(w_taken):
            m.d.sync += [
                wr.addr.eq(wr_next),
                wr.left.eq(wr.left - 1),
                wr_decerr.eq(wr_decerr | wr_outside),
            ]
            with m.If(last_beat):
                m.d.sync += [wr_active.eq(0), wr_decerr.eq(0)]
        take_aw = aw_queue.r_rdy & (~wr_active | (w_taken & last_beat))
        m.d.comb += aw_queue.r_en.eq(take_aw)
        with m.If(take_aw):
            m.d.sync += wr_active.eq(1)
            self._take_address(m, wr, aw)
        b = data.View(b_layout, b_queue.r_data)
        m.d.comb += [
            bus.bvalid.eq(b_queue.r_rdy),
            bus.bid.eq(b.id),
            bus.bresp.eq(b.resp),
            b_queue.r_en.eq(bus.bready),
        ]

        # --- backdoor -------------------------------------------------------------------------
        if self._host_port:
            # The host's word is on the read port the cycle after its read; kept from then on,
            # since the bus's next read replaces it.
            host_word_now = Signal()
            host_kept = Signal(self._data_width)
            m.d.sync += host_word_now.eq(host_read)
            with m.If(host_word_now):
                m.d.sync += host_kept.eq(read_port.data)
            m.d.comb += self.host.rdata.eq(Mux(host_word_now, read_port.data, host_kept))
        return m
