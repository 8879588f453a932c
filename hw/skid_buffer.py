"""A skid buffer: a stream stage whose ``ready`` towards the producer is a register, so that a
long combinational ``ready`` chain can be cut between two blocks without adding latency."""

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Passes a stream of ``shape`` payloads through, with ``i.ready`` from a flip-flop.

    Parameters
    ----------
    shape : ShapeLike
        The payload's shape.

    Ports
    -----
    i : In(stream.Signature(shape))
        From the producer. ``i.ready`` is registered: it depends on no input in the same cycle.
    o : Out(stream.Signature(shape))
        To the consumer.

    Latency and throughput
    ----------------------
    ``latency = 0``: while the skid register is empty, ``o`` is ``i`` (combinationally, valid
    and payload). When ``o`` stalls with a beat offered, ``i`` is still ready in that cycle
    (its ``ready`` is last cycle's), and the beat it delivers waits in the skid register,
    which ``o`` offers first once it is ready again; ``i.ready`` is low while it is full. One
    beat per cycle; as seen at ``o``, the beats and the cycles they are taken in are those of
    a direct connection; the producer may be one beat ahead.
    """

    latency = 0

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal.like(self.i.payload)
        m.d.comb += [
            self.i.ready.eq(~skid_valid),
            self.o.valid.eq(skid_valid | self.i.valid),
            self.o.payload.eq(Mux(skid_valid, skid, self.i.payload)),
        ]
        with m.If(skid_valid):
            with m.If(self.o.ready):
                m.d.sync += skid_valid.eq(0)
        with m.Elif(self.i.valid & ~self.o.ready):
            m.d.sync += [skid_valid.eq(1), skid.eq(self.i.payload)]
        return m
