"""Stream bench in Amaranth's own simulator (fast unit tests): the same traffic schedule
(:class:`~maskprop.tb.traffic.TrafficSchedule`) and the same scoreboard
(:class:`~maskprop.tb.scoreboard.Scoreboard`) as the cocotb bench on generated Verilog."""

import random

from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from maskprop.tb.payloads import as_payload, packer
from maskprop.tb.scoreboard import DRAIN_CYCLES, Scoreboard
from maskprop.tb.traffic import BenchRecord, TrafficSchedule

__all__ = ["run_stream", "run_streams"]


def _bits(value) -> int:
    """The packed bits of a sampled payload (a ``data.Const`` view or an int)."""
    return value.as_bits() if hasattr(value, "as_bits") else int(value)


def run_stream(dut, inputs, expected, **kwargs) -> BenchRecord:
    """:func:`run_streams` for a block with one input stream ``i``."""
    return run_streams(dut, {"i": inputs}, expected, **kwargs)


def run_streams(dut, inputs: dict, expected, *, phases=None, idle=0.0, backpressure=0.0,
                seed=0, max_cycles=500_000, setup=None, read=(), pulses=None, watch=(),
                deadlines=None, drain_cycles: int = DRAIN_CYCLES) -> BenchRecord:
    """Send ``inputs[port]`` into each input stream of ``dut`` and check what ``dut.o`` delivers
    against ``expected`` (payloads of ``o``'s layout) with the scoreboard: bit-exact and in
    order as each beat arrives, ``deadlines`` (the cycle by which each beat is due) where given,
    nothing missing after ``max_cycles`` and nothing more in a drain window of ``drain_cycles``
    idle cycles with ``o.ready`` high. Raises :class:`~maskprop.tb.scoreboard.ScoreboardError`
    on the first difference.

    Traffic: see :class:`~maskprop.tb.traffic.TrafficSchedule` (``phases``, ``idle``,
    ``backpressure``, ``pulses``; ``seed`` seeds it). ``setup(ctx)`` may drive other ports
    first; the ports named in ``watch`` are recorded in every cycle and those in ``read`` after
    the drain window. Returns the run's record (outputs as ``data.Const`` views).
    """
    shape = dut.o.payload.shape()
    pack = packer(shape)
    scoreboard = Scoreboard([pack(p) for p in expected], deadlines=deadlines, seed=seed,
                            name=f"{type(dut).__name__}.o",
                            describe=(lambda bits: as_payload(shape.from_bits(bits)))
                            if hasattr(shape, "from_bits") else None)
    schedule = TrafficSchedule(inputs, random.Random(seed), phases=phases, idle=idle,
                               backpressure=backpressure, pulses=pulses, watch=watch)
    record = schedule.record
    # The bench owns the clock: a block without registers (e.g. the dense sequencer with
    # lanes == vec) has no sync domain of its own, but its streams still move in cycles.
    top = Module()
    top.submodules.dut = dut
    top.domains.sync = ClockDomain()
    sim = Simulator(top)
    sim.add_clock(1e-8)

    def hold_idle(ctx):
        for port in inputs:
            ctx.set(getattr(dut, port).valid, 0)
        for port in schedule.pulses:
            ctx.set(getattr(dut, port), 0)

    async def bench(ctx):
        if setup is not None:
            setup(ctx)
        while not scoreboard.complete or schedule.sending:
            if schedule.cycle >= max_cycles:
                scoreboard.finish(schedule.cycle)
                raise AssertionError(f"{type(dut).__name__} hung: input beats not taken after "
                                     f"{schedule.cycle} cycles")
            drive = schedule.drive()
            for port, payload in drive.payloads.items():
                ctx.set(getattr(dut, port).payload, payload)
            for port, valid in drive.valid.items():
                ctx.set(getattr(dut, port).valid, valid)
            ctx.set(dut.o.ready, drive.o_ready)
            for port, value in drive.pulses.items():
                ctx.set(getattr(dut, port), value)
            readies = [getattr(dut, port).ready for port in schedule.active]
            watched = [getattr(dut, name) for name in watch]
            sampled = await ctx.tick().sample(dut.o.valid, dut.o.payload, *readies, *watched)
            o_valid, o_payload = sampled[2], sampled[3]
            ready = sampled[4:4 + len(readies)]
            cycle = schedule.cycle
            if schedule.sampled(dict(zip(schedule.active, ready)), o_valid,
                                dict(zip(watch, sampled[4 + len(readies):]))):
                record.outputs.append(o_payload)
                scoreboard.receive(_bits(o_payload), cycle)
            else:
                scoreboard.overdue(cycle)
        record.cycles = schedule.cycle
        # The drain window: inputs idle, o ready; nothing more may come out.
        hold_idle(ctx)
        ctx.set(dut.o.ready, 1)
        for drain_cycle in range(drain_cycles):
            _, _, o_valid, o_payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if o_valid:
                scoreboard.drained(_bits(o_payload), drain_cycle)
        scoreboard.finish()
        record.read = {name: ctx.get(getattr(dut, name)) for name in read}

    sim.add_testbench(bench)
    sim.run()
    return record
