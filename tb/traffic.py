"""The traffic a stream bench drives, and what it records, whatever the simulator.

One implementation of the schedule for both benches: the cocotb bench on generated Verilog
(:class:`maskprop.tb.drivers.StreamBench`) and the bench in Amaranth's simulator
(:func:`maskprop.tb.amaranth_bench.run_streams`). Each asks :meth:`TrafficSchedule.drive` what
to drive in a cycle, drives it, samples the settled handshakes just before the clock edge, and
hands them to :meth:`TrafficSchedule.sampled`. With the same seed both benches therefore drive
the same traffic, cycle for cycle.

The schedule: input ports are fed in ``phases`` (lists of ports; a phase starts when the
previous one has sent everything, e.g. a buffer load, then the streams that use it). In each
cycle a port of the current phase that has a beat to send and is not offering one offers its
next beat with probability ``1 - idle``; an offered beat stays valid, unchanged, until it is
taken. The output ``o`` is ready with probability ``1 - backpressure`` in each cycle. One-bit
inputs named in ``pulses`` are 1 in the listed cycles and 0 in all others (e.g. ``clear``).
"""

from collections import deque
from dataclasses import dataclass, field

__all__ = ["BenchRecord", "Drive", "TrafficSchedule"]


@dataclass
class BenchRecord:
    """Everything a stream bench run recorded, cycle 0 being the first cycle of traffic.

    The scoreboard has already compared the output beats with the expected ones when a record
    exists; the record is for the timing and counter checks (:mod:`maskprop.tb.timing_reference`)
    and for assembling results into tensors.
    """
    outputs: list = field(default_factory=list)       # payload of every output beat, in order
    port_cycles: dict = field(default_factory=dict)   # input port -> cycle of each handshake
    out_cycles: list = field(default_factory=list)    # cycle of every output handshake
    cycles: int = 0                                   # cycles until the last output was taken
    read: dict = field(default_factory=dict)          # the ``read`` ports' values at the end
    # Per cycle, for the timing reference: what the bench drove and what it saw.
    offered: dict = field(default_factory=dict)       # input port -> its valid in each cycle
    o_ready: list = field(default_factory=list)       # o.ready in each cycle
    pulsed: dict = field(default_factory=dict)        # pulsed input -> its value in each cycle
    watched: dict = field(default_factory=dict)       # watched port -> its value in each cycle
    run: object = None     # the cocotb run (a maskprop.tb.runner.TestbenchRun), else None

    @property
    def in_cycles(self) -> list:
        """Handshake cycles of the input port ``i`` (single-input blocks)."""
        return self.port_cycles.get("i", [])

    @property
    def counters(self) -> dict:
        """The ``read`` ports' values (the host reads its ``counters`` port through this)."""
        return self.read

    @property
    def passed(self) -> bool:
        """The cocotb run passed (a run in Amaranth's simulator that returns has passed: its
        scoreboard raises on the first wrong, surplus, missing or late beat)."""
        return self.run is None or self.run.passed


@dataclass
class Drive:
    """What to drive in one cycle: the payload of every port that starts offering a beat now,
    every input's ``valid``, ``o.ready`` and every pulsed input."""
    payloads: dict
    valid: dict
    o_ready: bool
    pulses: dict


class TrafficSchedule:
    """The phase, idle and backpressure schedule of one run (see the module docstring)."""

    def __init__(self, inputs: dict, rng, *, phases=None, idle: float = 0.0,
                 backpressure: float = 0.0, pulses=None, watch=()):
        # deques: a long run takes tens of thousands of beats from the front, one at a time.
        self.pending = {port: deque(payloads) for port, payloads in inputs.items()}
        self.offering = dict.fromkeys(self.pending, False)
        self.phases = [list(phase) for phase in (phases or [list(inputs)])]
        unknown = {port for phase in self.phases for port in phase} - set(self.pending)
        if unknown:
            raise ValueError(f"phases name ports without payloads: {', '.join(sorted(unknown))}")
        self.rng, self.idle, self.backpressure = rng, idle, backpressure
        self.pulses = {port: set(cycles) for port, cycles in (pulses or {}).items()}
        self.active: list = []
        self.cycle = 0
        self.o_ready = False
        self.record = BenchRecord(
            port_cycles={port: [] for port in inputs}, offered={port: [] for port in inputs},
            pulsed={port: [] for port in self.pulses}, watched={name: [] for name in watch})

    @property
    def sending(self) -> bool:
        """Some input beat has not been taken yet."""
        return any(self.pending.values())

    def drive(self) -> Drive:
        """Decide this cycle's traffic (and record it)."""
        while self.phases and not any(self.pending[port] for port in self.phases[0]):
            self.phases.pop(0)
        self.active = self.phases[0] if self.phases else []
        payloads = {}
        for port in self.active:
            if (self.pending[port] and not self.offering[port]
                    and self.rng.random() >= self.idle):
                self.offering[port] = True
                payloads[port] = self.pending[port][0]
        self.o_ready = self.rng.random() >= self.backpressure
        pulses = {port: self.cycle in cycles for port, cycles in self.pulses.items()}
        for port, value in self.offering.items():
            self.record.offered[port].append(value)
        self.record.o_ready.append(self.o_ready)
        for port, value in pulses.items():
            self.record.pulsed[port].append(value)
        return Drive(payloads, dict(self.offering), self.o_ready, pulses)

    def sampled(self, readies: dict, o_valid: bool, watched: dict | None = None) -> bool:
        """The handshakes of this cycle as sampled before the edge: ``readies[port]`` of every
        port in :attr:`active`, ``o.valid`` and the watched ports. Returns whether an output
        beat moved (the caller gives it to the scoreboard); advances to the next cycle."""
        for name, value in (watched or {}).items():
            self.record.watched[name].append(value)
        for port in self.active:
            if self.offering[port] and readies[port]:
                self.pending[port].popleft()
                self.offering[port] = False
                self.record.port_cycles[port].append(self.cycle)
        delivered = bool(self.o_ready and o_valid)
        if delivered:
            self.record.out_cycles.append(self.cycle)
        self.cycle += 1
        return delivered
