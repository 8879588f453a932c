"""BoardTop: what a board carries (docs/host_link.md) - the core with its memory on chip
(:class:`~maskprop.hw.core_system.CoreSystem`) and the host link over a UART
(:class:`~maskprop.hw.uart.UartRx`, :class:`~maskprop.hw.uart.UartTx`,
:class:`~maskprop.hw.host_link.HostLink`). The simulated board of :mod:`maskprop.device` is
this module's Verilog on Verilator; a board build puts it behind the board's clock and pins."""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import CORE_DEFAULT, CoreConfig, check_range
from maskprop.hw.core_system import CoreSystem
from maskprop.hw.host_link import HostLink
from maskprop.hw.uart import UartRx, UartTx

__all__ = ["BoardTop"]


def _checked(component):
    """``component``, built for its parameter checks and properties and never elaborated (a
    cached generation of the top level elaborates nothing, and Amaranth would warn about
    submodules built in ``__init__``)."""
    component._MustUse__used = True
    return component


class BoardTop(wiring.Component):
    """The core, its memory and the host link.

    Parameters
    ----------
    core : CoreConfig
        The core (:class:`~maskprop.hw.core_system.CoreSystem`'s checks apply).
    memory_words : int
        Words of on-chip memory (CoreSystem's range).
    divisor : int
        The UART's clock cycles per bit (:class:`~maskprop.hw.uart.UartRx`'s range): the
        board's clock over the baud rate.
    max_payload : int
        The link's request buffer in bytes (:class:`~maskprop.hw.host_link.HostLink`'s range).
    timeout_characters : int
        Character times (``10 * divisor`` cycles each) without a byte after which the link
        abandons a frame, 2 .. 100,000.

    ``ValueError`` naming the parameter and its range for anything else.

    Ports
    -----
    rx : In(1)
        The UART's receive line (from the host), idle high.
    tx : Out(1)
        The UART's transmit line (to the host), idle high.
    irq : Out(1)
        The core's interrupt (``STATUS.done | STATUS.error``), for an LED.
    link_idle : Out(1)
        The link waits for a request (for an LED; the simulated board runs its clock only
        while the link is busy or a byte is on its way).

    Latency and throughput: the UART's (``10 * divisor`` cycles a byte each way) and the
    link's; the core's as :class:`~maskprop.hw.core.MaskpropCore` documents.
    """

    def __init__(self, core: CoreConfig = CORE_DEFAULT, *, memory_words: int = 2048,
                 divisor: int = 8, max_payload: int = 1024, timeout_characters: int = 1000):
        self._system = dict(core=core, memory_words=memory_words)
        # Built for their checks and properties only; elaborate() builds the ones it uses.
        system = _checked(CoreSystem(core, memory_words=memory_words, host_port=True))
        _checked(UartRx(divisor))
        self._divisor = divisor
        check_range("timeout_characters", timeout_characters, 2, 100_000)
        register_map = system.register_map
        start = register_map.field("start")
        self._link = dict(
            csr_addr_width=register_map.addr_width, word_bytes=core.bus_bytes,
            memory_words=memory_words, max_payload=max_payload,
            timeout=timeout_characters * 10 * divisor,
            run_start=(register_map.register_of("start").offset, 1 << start.lsb),
            run_status=register_map.register_of("busy").offset,
            mem_read_latency=system.host_read_latency)
        self._info = _checked(HostLink(**self._link)).info
        self._register_map = register_map
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "irq": Out(1),
                          "link_idle": Out(1)})

    divisor = property(lambda self: self._divisor)
    info = property(lambda self: self._info, doc="What the link's INFO answers.")
    register_map = property(lambda self: self._register_map)
    core = property(lambda self: self._system["core"])
    link_parameters = property(lambda self: dict(self._link))

    @property
    def generator_key(self):
        """Everything the generated Verilog depends on (it caches by this)."""
        return (type(self).__qualname__, self._system["core"], self._system["memory_words"],
                self._divisor, tuple(sorted(self._link.items())))

    def elaborate(self, platform):
        m = Module()
        m.submodules.system = system = CoreSystem(**self._system, host_port=True)
        m.submodules.link = link = HostLink(**self._link)
        m.submodules.uart_rx = uart_rx = UartRx(self._divisor)
        m.submodules.uart_tx = uart_tx = UartTx(self._divisor)
        wiring.connect(m, uart_rx.o, link.i)
        wiring.connect(m, link.o, uart_tx.i)
        wiring.connect(m, link.csr, system.csr)
        wiring.connect(m, link.mem, system.host)
        m.d.comb += [
            uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx),
            link.irq.eq(system.irq), self.irq.eq(system.irq), self.link_idle.eq(link.idle),
        ]
        return m
