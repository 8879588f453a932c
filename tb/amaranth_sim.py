"""Driving a block's streams in Amaranth's own simulator (fast unit tests)."""

import random
from dataclasses import dataclass, field

from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

__all__ = ["StreamRun", "run_stream", "run_streams", "as_payload"]


@dataclass
class StreamRun:
    outputs: list                                     # o.payload of every accepted output beat
    port_cycles: dict = field(default_factory=dict)   # input port -> cycle of each handshake
    out_cycles: list = field(default_factory=list)    # cycle of every output handshake
    cycles: int = 0                                   # cycles until the last output was taken
    read: dict = field(default_factory=dict)          # values of the ``read`` ports at the end
    # Per cycle, for the timing reference (maskprop.tb.handshake_model): what the bench drove
    # and what it saw.
    offered: dict = field(default_factory=dict)       # input port -> its valid in each cycle
    o_ready: list = field(default_factory=list)       # o.ready in each cycle
    pulsed: dict = field(default_factory=dict)        # pulsed input -> its value in each cycle
    watched: dict = field(default_factory=dict)       # watched port -> its value in each cycle

    @property
    def in_cycles(self) -> list:
        return self.port_cycles.get("i", [])


def as_payload(value):
    """A sampled payload (a ``data.Const`` view, possibly nested) as the plain dicts, lists and
    ints that ``layout.const()`` takes: scoreboards compare it with expected payloads directly,
    and a mismatch prints as readable fields."""
    from amaranth.lib import data

    if not isinstance(value, data.Const):
        return int(value)
    layout = value.shape()
    if isinstance(layout, data.ArrayLayout):
        return [as_payload(value[index]) for index in range(layout.length)]
    return {name: as_payload(value[name]) for name, _ in layout}


def run_stream(dut, inputs, **kwargs) -> StreamRun:
    """:func:`run_streams` for a block with one input stream ``i``."""
    return run_streams(dut, {"i": inputs}, **kwargs)


def run_streams(dut, inputs: dict, *, outputs: int, phases=None, idle=0.0, backpressure=0.0,
                seed=0, max_cycles=500_000, setup=None, read=(), pulses=None,
                watch=()) -> StreamRun:
    """Send ``inputs[port]`` into each input stream and take ``outputs`` beats from ``dut.o``.

    Ports are fed in ``phases`` (lists of ports; default all at once), each phase starting when
    the previous one has sent everything. In each cycle an input beat is offered with
    probability ``1 - idle`` (once offered it stays until taken) and the output is ready with
    probability ``1 - backpressure``. ``setup(ctx)`` may drive other ports first; the ports
    named in ``read`` are sampled after the pipeline has drained.

    ``pulses`` (``{port: cycles}``, e.g. ``{"clear": [40]}``) drives a one-bit input 1 in the
    given cycles and 0 in all others; ``watch`` names ports sampled in every cycle.
    """
    rng = random.Random(seed)
    phases = [list(phase) for phase in (phases or [list(inputs)])]
    pulses = {port: set(cycles) for port, cycles in (pulses or {}).items()}
    run = StreamRun([], {port: [] for port in inputs}, offered={port: [] for port in inputs},
                    pulsed={port: [] for port in pulses}, watched={name: [] for name in watch})
    # The bench owns the clock: a block without registers (e.g. the dense sequencer with
    # lanes == vec) has no sync domain of its own, but its streams still move in cycles.
    top = Module()
    top.submodules.dut = dut
    top.domains.sync = ClockDomain()
    sim = Simulator(top)
    sim.add_clock(1e-8)

    async def bench(ctx):
        if setup is not None:
            setup(ctx)
        pending = {port: list(payloads) for port, payloads in inputs.items()}
        offering = {port: False for port in inputs}
        cycle = 0
        while len(run.outputs) < outputs or any(pending.values()):
            assert cycle < max_cycles, f"{type(dut).__name__} hung: {len(run.outputs)} of " \
                                       f"{outputs} outputs after {cycle} cycles"
            while phases and not any(pending[port] for port in phases[0]):
                phases.pop(0)
            active = phases[0] if phases else []
            for port in active:
                stream = getattr(dut, port)
                if pending[port] and not offering[port] and rng.random() >= idle:
                    offering[port] = True
                    ctx.set(stream.payload, pending[port][0])
                ctx.set(stream.valid, offering[port])
            take = rng.random() >= backpressure
            ctx.set(dut.o.ready, take)
            for port, cycles in pulses.items():
                ctx.set(getattr(dut, port), cycle in cycles)
                run.pulsed[port].append(cycle in cycles)
            for port in inputs:
                run.offered[port].append(offering[port])
            run.o_ready.append(take)
            readies = [getattr(dut, port).ready for port in active]
            watched = [getattr(dut, name) for name in watch]
            sampled = await ctx.tick().sample(dut.o.valid, dut.o.payload, *readies, *watched)
            o_valid, o_payload = sampled[2], sampled[3]
            ready, watched = sampled[4:4 + len(readies)], sampled[4 + len(readies):]
            for name, value in zip(watch, watched):
                run.watched[name].append(value)
            for port, port_ready in zip(active, ready):
                if offering[port] and port_ready:
                    pending[port].pop(0)
                    offering[port] = False
                    run.port_cycles[port].append(cycle)
                    if not pending[port]:
                        ctx.set(getattr(dut, port).valid, 0)
            if take and o_valid:
                run.outputs.append(o_payload)
                run.out_cycles.append(cycle)
            cycle += 1
        run.cycles = cycle
        for port in pulses:
            ctx.set(getattr(dut, port), 0)
        # Nothing more may come out once every expected output was taken.
        ctx.set(dut.o.ready, 1)
        for _ in range(16):
            _, _, o_valid = await ctx.tick().sample(dut.o.valid)
            assert not o_valid, f"{type(dut).__name__} produced more than {outputs} outputs"
        run.read = {name: ctx.get(getattr(dut, name)) for name in read}

    sim.add_testbench(bench)
    sim.run()
    return run
