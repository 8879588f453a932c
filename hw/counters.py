"""Performance counters with registered events, shared by the engine and the tile array
(docs/verification.md, "Performance counters", states their timing).

A counter adds its *event* every cycle. The event is the increment registered first: the
handshakes the increments come from sit at the end of the combinational ready chain, which must
not also run through 32-bit adders. So a counter lags its events by one cycle: in cycle ``t`` it
shows the events of cycles ``0 .. t - 2``. ``clear`` high in cycle ``c`` zeroes the counter and
the registered event (the event of ``c - 1``) and drops the event of ``c`` itself.

These are helpers that add logic to the caller's :class:`~amaranth.hdl.Module`.
"""

from amaranth import Module, Mux, Signal, Value

__all__ = ["registered_event", "accumulate", "event_counter"]


def registered_event(m: Module, increment, clear, *, name: str, shape=None) -> Signal:
    """The register ``{name}_event``: ``increment`` of the cycle before, 0 after a ``clear``.

    ``shape``: the register's shape, by default that of ``increment``."""
    event = Signal(Value.cast(increment).shape() if shape is None else shape,
                   name=f"{name}_event")
    m.d.sync += event.eq(Mux(clear, 0, increment))
    return event


def accumulate(m: Module, counter, event, clear):
    """``counter`` adds ``event`` every cycle (wrapping at its width); ``clear`` zeroes it."""
    m.d.sync += counter.eq(Mux(clear, 0, counter + event))


def event_counter(m: Module, counter, increment, clear, *, name: str, shape=None) -> Signal:
    """``counter`` counts ``increment`` through the event register ``{name}_event`` (see
    :func:`registered_event`), one cycle behind it. Returns the event register."""
    event = registered_event(m, increment, clear, name=name, shape=shape)
    accumulate(m, counter, event, clear)
    return event
