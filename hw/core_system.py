"""CoreSystem: the accelerator core with its memory on chip - a :class:`MaskpropCore` whose AXI4
manager port is served by an Amaranth :class:`~maskprop.hw.axi_ram.AxiRam`. The top level of
the fast simulation benchmark (``tb/bench_core_fast.py``, ``scripts/bench_sim_speed.py``) and
the one a board build uses (the RAM in block RAM, the backdoor for the host link)."""

from amaranth import Cat, ClockDomain, ClockSignal, DomainRenamer, Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from maskprop.base.config import CORE_DEFAULT, CoreConfig, GENERATABLE_BUFFER_BITS
from maskprop.hw.axi import AXI4LiteSignature
from maskprop.hw.axi_ram import AxiRam, HostPortSignature
from maskprop.hw.core import MaskpropCore
from maskprop.hw.core_registers import core_register_map

__all__ = ["CoreSystem"]


class CoreSystem(wiring.Component):
    """A :class:`~maskprop.hw.core.MaskpropCore` with ``memory_words`` words of on-chip memory
    (an :class:`~maskprop.hw.axi_ram.AxiRam`, one chunk per word) on its memory port.

    Parameters
    ----------
    core : CoreConfig
        The core (its tile array, X scratchpad and memory port). The RAM has the memory port's
        width (``core.bus_width``) and address width, and one ID bit.
    memory_words : int
        Words of memory, from byte address 0: 2 up to what ``core.addr_width`` addresses
        (``2**addr_width / bus_bytes``) and what is left of the generation limit after the
        core's own buffers: Amaranth writes an initial value for every memory bit into the
        Verilog, so the X scratchpad, the tile array's buffers and this RAM together may hold
        at most ``GENERATABLE_BUFFER_BITS`` (2**22) bits (``maskprop.base.config``). With
        :data:`~maskprop.base.config.CORE_DEFAULT` that is 2446 words; the default 2048
        (64 KiB) holds every pass of the digits CNN with its tensors at 4 KiB pages
        (:class:`~maskprop.host.core_driver.CoreJob`, at most 1664 words).
    host_port : bool
        Expose the RAM's backdoor ``host`` (testbenches and the board's host link fill memory
        and read results back through it without AXI bursts). It shares the RAM's one read
        port and one write port with the core's bus (:class:`~maskprop.hw.axi_ram.AxiRam`).

    ``ValueError`` naming the parameter and its range for anything else; the core's own
    checks (``MaskpropCore``) apply too.

    Ports
    -----
    csr : In(AXI4LiteSignature(addr_width=register_map.addr_width, data_width=32))
        The core's control and status registers (``hw/core_registers.py``,
        docs/registers.md), as on :class:`~maskprop.hw.core.MaskpropCore`.
    irq : Out(1)
        The core's interrupt: ``STATUS.done | STATUS.error``, a level.
    host : In(HostPortSignature(addr_width=word_addr_width, data_width=core.bus_width)), only
    with ``host_port``
        The RAM's backdoor (:class:`~maskprop.hw.axi_ram.HostPortSignature`): word addresses
        (byte address / ``core.bus_bytes``), one word written or read per cycle, pipelined;
        words are the memory's bytes little-endian, as the AXI bus carries them. A request
        reaches the RAM one cycle after it is on the port, so a read's word is on ``rdata``
        :attr:`host_read_latency` = 2 cycles after its address (and stays until the next
        read). A host write or read takes the RAM's write or read port for that cycle (the
        core's W or next R beat waits); do not write memory the core is using while it runs.

    Registered inputs
    -----------------
    No input reaches the core or the RAM combinationally: ``rst`` goes through one register
    (which also holds the system in reset from power-up until the first clock edge without
    ``rst``), so the core and the RAM leave reset one cycle after ``rst`` falls; each AXI4-Lite
    channel goes through a two-entry queue (one cycle each way, full throughput), which takes
    requests from the first cycle after ``rst`` and passes them on once the core is out of
    reset; the backdoor's request goes through one register stage. For timing closure on a
    board, and for simulation speed: Verilator evaluates the logic an input feeds on every
    evaluation of the model (twice per clock cycle under cocotb), and without these registers
    that is most of the core's next-state logic (the reset enters every register's next-state
    expression). Measured on the default core, Verilator 5.048 with only the ports public: 1.7
    times as many cycles per CPU second with them. (With every signal public, as cocotb's
    runner builds by default, Verilator treats every signal as an input and it makes no
    difference.)

    Bytes beyond ``memory_words`` words answer the core's bursts with DECERR, which the core
    reports as ``STATUS.error`` with ``BUS_ERROR``.
    """

    def __init__(self, core: CoreConfig = CORE_DEFAULT, *, memory_words: int = 2048,
                 host_port: bool = False):
        if not isinstance(core, CoreConfig):
            raise ValueError(f"core must be a CoreConfig, not {core!r}")
        try:
            core.check_generatable()
        except ValueError as error:
            raise ValueError(f"core: {error}") from None
        core_bits = core.buffer_bits
        addressable = 1 << (core.addr_width - exact_log2(core.bus_bytes))
        room = (GENERATABLE_BUFFER_BITS - core_bits) // core.bus_width
        limit = min(addressable, room)
        if limit < 2:
            raise ValueError(f"memory_words: the core's buffers leave room for {max(room, 0)} "
                             f"words of {core.bus_width} bits under the generation limit of "
                             f"{GENERATABLE_BUFFER_BITS:,} bits; a RAM needs at least 2: lower "
                             f"x_words, max_cols or max_chunks")
        if isinstance(memory_words, bool) or not isinstance(memory_words, int) \
                or not 2 <= memory_words <= limit:
            why = (f"{addressable} words are what addr_width = {core.addr_width} addresses"
                   if limit == addressable else
                   f"the core's buffers ({core_bits:,} bits) leave {room} words of "
                   f"{core.bus_width} bits under the generation limit of "
                   f"{GENERATABLE_BUFFER_BITS:,} (2**22) bits")
            raise ValueError(f"memory_words must be an integer in [2, {limit}] ({why}), not "
                             f"{memory_words!r}")
        if not isinstance(host_port, bool):
            raise ValueError(f"host_port must be True or False, not {host_port!r}")
        self._core, self._memory_words, self._host_port = core, memory_words, host_port
        self._map = core_register_map(core.array, mem_data_width=core.bus_width,
                                      mem_addr_width=core.addr_width)
        members = {
            "csr": In(AXI4LiteSignature(addr_width=self._map.addr_width, data_width=32)),
            "irq": Out(1),
        }
        if host_port:
            members["host"] = In(HostPortSignature(addr_width=self.word_addr_width,
                                                   data_width=core.bus_width))
        super().__init__(members)

    #: Cycles from a backdoor read's address to its word on ``host.rdata``.
    host_read_latency = 2

    core = property(lambda self: self._core)
    memory_words = property(lambda self: self._memory_words)
    host_port = property(lambda self: self._host_port)
    register_map = property(lambda self: self._map,
                            doc="The core's register map (what ``csr`` serves).")
    memory_bytes = property(lambda self: self._memory_words * self._core.bus_bytes,
                            doc="Bytes of memory, from address 0.")
    word_addr_width = property(lambda self: max(1, (self._memory_words - 1).bit_length()),
                               doc="Bits of a word address (the ``host`` port's ``addr``).")

    @property
    def generator_key(self):
        """Everything the generated Verilog depends on (it caches by this)."""
        return (type(self).__qualname__, self._core, self._memory_words, self._host_port)

    #: AXI4-Lite channels: (valid, ready, payload members, True if the manager drives it).
    _CHANNELS = (("awvalid", "awready", ("awaddr", "awprot"), True),
                 ("wvalid", "wready", ("wdata", "wstrb"), True),
                 ("bvalid", "bready", ("bresp",), False),
                 ("arvalid", "arready", ("araddr", "arprot"), True),
                 ("rvalid", "rready", ("rdata", "rresp"), False))

    def elaborate(self, platform):
        m = Module()
        core = self._core
        # Every input is registered before it reaches the core or the RAM. The reset: one
        # register (1 from power-up until the first clock edge without rst), the reset of the
        # "system" domain that the core and the RAM run in. The input stages run in the
        # ports' domain: they take requests from the first cycle after rst, and keep them
        # from the core until its reset is over.
        m.domains.system = system = ClockDomain("system", local=True)
        reset = Signal(init=1)
        m.d.sync += reset.eq(0)
        m.d.comb += [system.clk.eq(ClockSignal("sync")), system.rst.eq(reset)]
        to_system = DomainRenamer("system")

        # Built here, not in __init__: a component that is never elaborated (a cached
        # generation, see maskprop.flow.verilog) must not leave unused submodules behind.
        m.submodules.core = maskprop_core = to_system(MaskpropCore(core))
        m.submodules.ram = ram = to_system(AxiRam(
            addr_width=core.addr_width, data_width=core.bus_width, id_width=1,
            depth=self._memory_words, host_port=self._host_port))
        assert ram.word_addr_width == self.word_addr_width
        assert maskprop_core.register_map.addr_width == self._map.addr_width
        wiring.connect(m, maskprop_core.mem, ram.bus)
        m.d.comb += self.irq.eq(maskprop_core.irq)

        # CSR: a two-entry queue per AXI4-Lite channel, so that both directions are registered
        # (one cycle each way, full throughput); no handshake on the core's side while the
        # core is in reset.
        running = ~reset
        for valid, ready, members, from_manager in self._CHANNELS:
            outer, inner = self.csr, maskprop_core.csr
            source, sink = (outer, inner) if from_manager else (inner, outer)
            source_on, sink_on = (1, running) if from_manager else (running, 1)
            payload = Cat(getattr(source, name) for name in members)
            queue = fifo.SyncFIFO(width=len(payload), depth=2)
            m.submodules[f"csr_{valid[:-5]}"] = queue
            m.d.comb += [
                queue.w_en.eq(getattr(source, valid) & source_on),
                queue.w_data.eq(payload),
                getattr(source, ready).eq(queue.w_rdy & source_on),
                getattr(sink, valid).eq(queue.r_rdy & sink_on),
                Cat(getattr(sink, name) for name in members).eq(queue.r_data),
                queue.r_en.eq(getattr(sink, ready) & sink_on),
            ]

        # Backdoor: the request registered (it reaches the RAM one cycle later; the memory
        # itself has no reset).
        if self._host_port:
            for name in ("en", "we", "addr", "wdata"):
                held = Signal.like(getattr(self.host, name), name=f"host_{name}",
                                   reset_less=name in ("addr", "wdata"))
                m.d.sync += held.eq(getattr(self.host, name))
                m.d.comb += getattr(ram.host, name).eq(held)
            m.d.comb += self.host.rdata.eq(ram.host.rdata)
        return m
