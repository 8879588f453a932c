"""cocotb driver and monitor of Amaranth ``stream`` ports: random idle cycles on every input,
random backpressure on the output ``o``, every output beat to a
:class:`~maskprop.tb.scoreboard.Scoreboard`.

Amaranth flattens a stream port ``i`` into ``i__valid``, ``i__ready`` and ``i__payload``; the
payload is the packed bits of its ``data.Layout``. The bench works one clock cycle at a time:
drive after the rising edge, sample the settled handshakes in ``ReadOnly`` (which is what the
coming edge will see), then wait for the edge. Handshakes are therefore recorded with the index of
the cycle in which they happen, identically on Verilator and Icarus.
"""

from cocotb.triggers import ReadOnly, RisingEdge

from maskprop.tb.traffic import TrafficSchedule

__all__ = ["StreamBench"]


class StreamBench:
    """Drives the input streams and monitors the output stream ``o``, from one coroutine: one
    wake-up per cycle for all ports, so that long runs (tens of thousands of cycles) stay fast.
    Payloads are packed integers. The traffic (phases, idle cycles, backpressure, pulses) is
    :class:`~maskprop.tb.traffic.TrafficSchedule`'s, the same as in Amaranth's simulator; every
    output beat goes to the scoreboard the moment it moves.
    """

    def __init__(self, dut, clock, rng, *, inputs: dict, phases, idle=0.0, backpressure=0.0,
                 pulses=None, watch=()):
        self.dut, self.clock = dut, clock
        self.ports = list(inputs)
        self.pulse_ports = list(pulses or {})
        self.watch = list(watch)
        self.schedule = TrafficSchedule(inputs, rng, phases=phases, idle=idle,
                                        backpressure=backpressure, pulses=pulses, watch=watch)
        # What each driven input holds: a signal is written only when its value changes, since
        # every write costs the simulator a scheduled event, every cycle, for every port.
        self._driven: dict = {}

    @property
    def record(self):
        """The run's :class:`~maskprop.tb.traffic.BenchRecord` (outputs as packed ints)."""
        return self.schedule.record

    def _port(self, name, signal):
        return getattr(self.dut, f"{name}__{signal}")

    def _drive(self, name: str, handle, value: int):
        """``handle`` (the input ``name``) := ``value``, written only if it changes."""
        if self._driven.get(name) != value:
            handle.value = value
            self._driven[name] = value

    def hold_idle(self):
        """Drive every input stream idle, every pulsed input 0 and the output not ready.
        Payloads too get a value: a four-state simulator would otherwise carry x from an idle
        payload into registers that load without a handshake."""
        for port in self.ports:
            self._port(port, "valid").value = 0
            self._port(port, "payload").value = 0
        for port in self.pulse_ports:
            getattr(self.dut, port).value = 0
        self._port("o", "ready").value = 0
        self._driven = {name: 0 for name in [f"{port}__valid" for port in self.ports]
                        + self.pulse_ports + ["o__ready"]}

    async def run(self, scoreboard, *, timeout_cycles: int):
        """Send every input beat and take beats from ``o`` until the scoreboard has all it
        expects; fail on the first wrong, surplus or late beat, or (at ``timeout_cycles``) on
        the missing ones."""
        schedule, record = self.schedule, self.schedule.record
        self.hold_idle()
        o_valid, o_ready, o_payload = (self._port("o", s) for s in ("valid", "ready", "payload"))
        valids = {port: self._port(port, "valid") for port in self.ports}
        readies_of = {port: self._port(port, "ready") for port in self.ports}
        pulsed = {port: getattr(self.dut, port) for port in self.pulse_ports}
        watched_of = {name: getattr(self.dut, name) for name in self.watch}
        while not scoreboard.complete or schedule.sending:
            if schedule.cycle > timeout_cycles:
                scoreboard.finish(schedule.cycle)
                raise TimeoutError(f"input beats not taken after {timeout_cycles} cycles: "
                                   f"{ {p: len(b) for p, b in schedule.pending.items() if b} }")
            drive = schedule.drive()
            for port, payload in drive.payloads.items():
                self._port(port, "payload").value = payload
            for port, valid in drive.valid.items():
                self._drive(f"{port}__valid", valids[port], int(valid))
            self._drive("o__ready", o_ready, int(drive.o_ready))
            for port, value in drive.pulses.items():
                self._drive(port, pulsed[port], int(value))
            await ReadOnly()
            watched = {name: int(handle.value) for name, handle in watched_of.items()}
            readies = {port: bool(readies_of[port].value) for port in schedule.active}
            cycle = schedule.cycle
            if schedule.sampled(readies, bool(o_valid.value), watched):
                beat = int(o_payload.value)
                record.outputs.append(beat)
                scoreboard.receive(beat, cycle)
            else:
                scoreboard.overdue(cycle)
            await RisingEdge(self.clock)
        record.cycles = schedule.cycle
        self.hold_idle()

    async def drain(self, scoreboard, cycles: int):
        """The drain window: every input idle, ``o.ready`` high for ``cycles`` cycles; any
        beat offered fails."""
        self.hold_idle()
        self._port("o", "ready").value = 1
        self._driven["o__ready"] = 1
        for cycle in range(cycles):
            await ReadOnly()
            if self._port("o", "valid").value:
                scoreboard.drained(int(self._port("o", "payload").value), cycle)
            await RisingEdge(self.clock)
        self._port("o", "ready").value = 0
        self._driven["o__ready"] = 0
