"""cocotb drivers for Amaranth ``stream`` ports, with random idle cycles and backpressure.

Amaranth flattens a stream port ``i`` into ``i__valid``, ``i__ready`` and ``i__payload``; the
payload is the packed bits of its ``data.Layout``. Every driver here works one clock cycle at a
time in the same order: drive after the rising edge, sample the settled handshake in ``ReadOnly``
(which is what the coming edge will see), then wait for the edge. Handshakes are therefore recorded
with the index of the cycle in which they happen, identically on Verilator and Icarus.
"""

import random

from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["CycleCounter", "StreamSource", "StreamSink"]


class CycleCounter:
    """Counts rising edges of ``clock`` once :meth:`run` is started (``cocotb.start_soon``).

    Drivers read :attr:`cycle` in ``ReadOnly``, after every coroutine woken by the edge has run,
    so all of them see the same cycle index whatever order the scheduler woke them in.
    """

    def __init__(self, clock):
        self.clock = clock
        self.cycle = 0

    async def run(self):
        while True:
            await RisingEdge(self.clock)
            self.cycle += 1


class _StreamPort:
    """``layout``: the payload's ``data.Layout`` (payloads are dicts/views), or ``None`` for
    payloads that are already packed integers."""

    def __init__(self, dut, name: str, layout, counter: CycleCounter, rng: random.Random):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.layout = layout
        self.counter = counter
        self.rng = rng
        self.handshakes: list[int] = []   # cycle index of every transfer
        self.driven: dict[int, int] = {}  # cycle -> the valid (source) or ready (sink) driven

    def trace(self, cycles: int) -> list[bool]:
        """What this port drove in each of cycles ``0 .. cycles - 1`` (0 when it was not
        running), for the handshake reference (:mod:`maskprop.tb.handshake_model`)."""
        return [bool(self.driven.get(t, 0)) for t in range(cycles)]

    def pack(self, payload) -> int:
        return int(payload) if self.layout is None else self.layout.const(payload).as_bits()

    def unpack(self, bits: int):
        return bits if self.layout is None else self.layout.from_bits(bits)


class StreamSource(_StreamPort):
    """Sends payloads (dicts for ``layout.const``) into a stream, idling with probability ``idle``
    before each beat is offered. ``valid`` never drops while a beat waits for ``ready``."""

    def __init__(self, dut, name, layout, counter, rng, *, idle: float = 0.0):
        super().__init__(dut, name, layout, counter, rng)
        self.idle = idle
        self.valid.value = 0

    async def send(self, payloads):
        pending = [self.pack(p) for p in payloads]
        offering = False
        while pending:
            if not offering and self.rng.random() >= self.idle:
                offering = True
                self.payload.value = pending[0]
            self.valid.value = int(offering)
            await ReadOnly()
            self.driven[self.counter.cycle] = int(offering)
            if offering and self.ready.value:
                self.handshakes.append(self.counter.cycle)
                pending.pop(0)
                offering = False
            await RisingEdge(self.counter.clock)
        self.valid.value = 0


class StreamSink(_StreamPort):
    """Receives ``count`` payloads (as ``data.Const`` views of ``layout``), holding ``ready`` low
    with probability ``backpressure`` in each cycle."""

    def __init__(self, dut, name, layout, counter, rng, *, backpressure: float = 0.0):
        super().__init__(dut, name, layout, counter, rng)
        self.backpressure = backpressure
        self.ready.value = 0
        self.received = []

    async def receive(self, count: int, *, timeout_cycles: int):
        deadline = self.counter.cycle + timeout_cycles
        while len(self.received) < count:
            if self.counter.cycle > deadline:
                raise TimeoutError(f"{len(self.received)} of {count} beats received "
                                   f"after {timeout_cycles} cycles")
            take = self.rng.random() >= self.backpressure
            self.ready.value = int(take)
            await ReadOnly()
            self.driven[self.counter.cycle] = int(take)
            if take and self.valid.value:
                self.handshakes.append(self.counter.cycle)
                self.received.append(self.unpack(int(self.payload.value)))
            await RisingEdge(self.counter.clock)
        self.ready.value = 0
        return self.received


class StreamBench:
    """Drives several input streams and takes the output stream ``o`` from one coroutine.

    The same protocol as :class:`StreamSource`/:class:`StreamSink` (drive after the edge,
    sample in ``ReadOnly``), but one wake-up per cycle for all ports instead of one per port:
    long runs (tens of thousands of cycles) are several times faster. Payloads are packed
    integers. Ports are fed in ``phases``; a phase starts when the previous one has sent all.
    """

    def __init__(self, dut, clock, rng, *, inputs: dict, phases, idle=0.0, backpressure=0.0,
                 pulses=None, watch=()):
        self.dut, self.clock, self.rng = dut, clock, rng
        self.inputs = {port: list(payloads) for port, payloads in inputs.items()}
        self.phases = [list(phase) for phase in phases]
        self.idle, self.backpressure = idle, backpressure
        # ``pulses``: one-bit inputs driven 1 in the listed cycles, 0 otherwise (e.g. clear).
        self.pulses = {port: set(cycles) for port, cycles in (pulses or {}).items()}
        self.watch = list(watch)                      # ports sampled in every cycle
        self.port_cycles = {port: [] for port in inputs}
        self.out_cycles: list[int] = []
        self.received: list[int] = []
        # Per cycle, for the timing reference (maskprop.tb.handshake_model): what was driven
        # and what was seen.
        self.offered = {port: [] for port in inputs}  # each input's valid
        self.o_ready: list[int] = []
        self.pulsed = {port: [] for port in self.pulses}
        self.watched = {name: [] for name in self.watch}

    def _port(self, name, signal):
        return getattr(self.dut, f"{name}__{signal}")

    def hold_idle(self):
        """Drive every input stream idle and the output not ready. Payloads too get a value: a
        four-state simulator would otherwise carry x from an idle payload into registers that
        load without a handshake."""
        for port in self.inputs:
            self._port(port, "valid").value = 0
            self._port(port, "payload").value = 0
        self._port("o", "ready").value = 0

    async def run(self, outputs: int, *, timeout_cycles: int) -> list[int]:
        pending = {port: list(payloads) for port, payloads in self.inputs.items()}
        offering = {port: False for port in pending}
        phases = list(self.phases)
        self.hold_idle()
        o_valid, o_ready, o_payload = (self._port("o", s) for s in ("valid", "ready", "payload"))
        cycle = 0
        while len(self.received) < outputs or any(pending.values()):
            if cycle > timeout_cycles:
                raise TimeoutError(f"{len(self.received)} of {outputs} output beats after "
                                   f"{timeout_cycles} cycles")
            while phases and not any(pending[port] for port in phases[0]):
                phases.pop(0)
            active = phases[0] if phases else []
            for port in active:
                if pending[port] and not offering[port] and self.rng.random() >= self.idle:
                    offering[port] = True
                    self._port(port, "payload").value = pending[port][0]
            for port in pending:     # a port whose last beat went out must drop valid now
                self._port(port, "valid").value = int(offering[port])
            take = self.rng.random() >= self.backpressure
            o_ready.value = int(take)
            for port, cycles in self.pulses.items():
                getattr(self.dut, port).value = int(cycle in cycles)
                self.pulsed[port].append(int(cycle in cycles))
            for port in pending:
                self.offered[port].append(int(offering[port]))
            self.o_ready.append(int(take))
            await ReadOnly()
            for name in self.watch:
                self.watched[name].append(int(getattr(self.dut, name).value))
            for port in active:
                if offering[port] and self._port(port, "ready").value:
                    self.port_cycles[port].append(cycle)
                    pending[port].pop(0)
                    offering[port] = False
            if take and o_valid.value:
                self.out_cycles.append(cycle)
                self.received.append(int(o_payload.value))
            await RisingEdge(self.clock)
            cycle += 1
        for port in pending:
            self._port(port, "valid").value = 0
        for port in self.pulses:
            getattr(self.dut, port).value = 0
        o_ready.value = 0
        return self.received
