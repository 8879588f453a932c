"""An asynchronous serial port, 8 data bits, no parity, one stop bit (8N1), LSB first: the
board's host link (``hw/host_link.py``) over the FTDI UART of the ULX3S and the iCEBreaker.

Both halves count a bit as ``divisor`` clock cycles (the clock frequency over the baud rate,
e.g. 25 MHz / 115,200 = 217); the receiver samples each bit once, in its middle, so it accepts
a sender whose bit time differs from its own by up to about ``1 / (2 * 10)`` of a bit over the
ten bits of a character (5 %, less the ``+-1`` cycle of the start edge's synchronisation).
"""

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import cdc, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import check_range

__all__ = ["UartRx", "UartTx", "MIN_DIVISOR", "MAX_DIVISOR"]

#: The shortest bit the receiver can sample in its middle after a two-register synchroniser.
MIN_DIVISOR = 4
#: 16-bit bit timer: 1 baud at 65 kHz, 115,200 baud up to 7.5 GHz.
MAX_DIVISOR = (1 << 16) - 1


class UartRx(wiring.Component):
    """The receiving half: characters from the line ``rx`` as a stream of bytes.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, :data:`MIN_DIVISOR` .. :data:`MAX_DIVISOR`.

    Ports
    -----
    rx : In(1)
        The line, idle high; asynchronous (two flip-flops synchronise it).
    o : Out(stream.Signature(8))
        Each character received with a valid stop bit. ``o.payload`` stays until taken.
    framing_error : Out(1)
        One cycle, for a character whose stop bit was low (a break or a wrong baud rate): the
        character is dropped, and the receiver waits for the line to go high before it looks
        for the next start bit.
    overrun : Out(1)
        One cycle, for a character that arrived while ``o`` still offered the one before: the
        new character is dropped.

    Latency and throughput
    ----------------------
    A character is on ``o`` from ``9 * divisor + divisor // 2 + 3`` cycles after the cycle its
    start bit began on ``rx`` (each bit sampled ``divisor // 2`` cycles into it, seen through
    the synchroniser's two cycles, the result registered), before its stop bit ends, so
    back-to-back characters at the sender's full rate are received; the consumer has a
    character time (``10 * divisor`` cycles) to take each one.
    """

    def __init__(self, divisor: int):
        self._divisor = check_range("divisor", divisor, MIN_DIVISOR, MAX_DIVISOR)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "framing_error": Out(1), "overrun": Out(1)})

    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.synchroniser = cdc.FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(self._divisor))
        bits = Signal(range(8))
        shift = Signal(8)
        tick = timer == 0
        with m.If(~tick):
            m.d.sync += timer.eq(timer - 1)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    # To the start bit's middle: the synchroniser shows the line two cycles
                    # late, and this state one more.
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(tick):
                    m.d.sync += [timer.eq(self._divisor - 1), bits.eq(0)]
                    # A start bit that is high again in its middle was a glitch.
                    with m.If(line):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(tick):
                    m.d.sync += [timer.eq(self._divisor - 1), shift.eq(Cat(shift[1:], line)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(tick):
                    with m.If(line):
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(shift)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """The sending half: each byte of the stream ``i`` as a character on the line ``tx``.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, :data:`MIN_DIVISOR` .. :data:`MAX_DIVISOR`.

    Ports
    -----
    i : In(stream.Signature(8))
        Bytes to send; taken when the line is free (``i.ready`` high while idle and in the
        last cycle of a stop bit).
    tx : Out(1)
        The line, from a register, high while idle.

    Latency and throughput
    ----------------------
    A byte taken in cycle ``t`` starts its start bit on ``tx`` in cycle ``t + 1``; a character
    takes ``10 * divisor`` cycles, and bytes offered back to back follow without a gap.
    """

    def __init__(self, divisor: int):
        self._divisor = check_range("divisor", divisor, MIN_DIVISOR, MAX_DIVISOR)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        timer = Signal(range(self._divisor))
        left = Signal(range(10))            # bits after the one on the line
        shift = Signal(9)                   # the data bits, then the stop bit
        last_cycle = busy & (timer == 0) & (left == 0)
        m.d.comb += self.i.ready.eq(~busy | last_cycle)
        with m.If(busy & (timer != 0)):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(busy & (left != 0)):
            m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift[1:]), left.eq(left - 1),
                         timer.eq(self._divisor - 1)]
        with m.Elif(last_cycle):
            m.d.sync += busy.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [busy.eq(1), self.tx.eq(0), shift.eq(Cat(self.i.payload, Const(1, 1))),
                         left.eq(9), timer.eq(self._divisor - 1)]
        return m
