"""Driving a block's ``i``/``o`` streams in Amaranth's own simulator (fast unit tests)."""

import random
from dataclasses import dataclass, field

from amaranth.sim import Simulator

__all__ = ["StreamRun", "run_stream"]


@dataclass
class StreamRun:
    outputs: list                                   # o.payload of every accepted output beat
    in_cycles: list = field(default_factory=list)   # cycle of every input handshake
    out_cycles: list = field(default_factory=list)  # cycle of every output handshake
    cycles: int = 0                                 # cycles until the last output was taken


def run_stream(dut, inputs, *, outputs: int, idle=0.0, backpressure=0.0, seed=0,
               max_cycles=200_000, setup=None) -> StreamRun:
    """Send ``inputs`` (payload values for ``dut.i``) and take ``outputs`` beats from ``dut.o``.

    In each cycle the input is offered with probability ``1 - idle`` (a beat once offered stays
    offered until taken) and the output is ready with probability ``1 - backpressure``.
    ``setup(ctx)`` may drive other ports before the first cycle.
    """
    rng = random.Random(seed)
    run = StreamRun([])
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        if setup is not None:
            setup(ctx)
        pending = list(inputs)
        offering = False
        cycle = 0
        while len(run.outputs) < outputs:
            assert cycle < max_cycles, f"{type(dut).__name__} hung: {len(run.outputs)} of " \
                                       f"{outputs} outputs after {cycle} cycles"
            if pending and not offering and rng.random() >= idle:
                offering = True
                ctx.set(dut.i.payload, pending[0])
            take = rng.random() >= backpressure
            ctx.set(dut.i.valid, offering)
            ctx.set(dut.o.ready, take)
            _, _, i_ready, o_valid, o_payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload)
            if offering and i_ready:
                pending.pop(0)
                offering = False
                run.in_cycles.append(cycle)
            if take and o_valid:
                run.outputs.append(o_payload)
                run.out_cycles.append(cycle)
            cycle += 1
        run.cycles = cycle
        # Nothing more may come out once every expected output was taken.
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 0)
        for _ in range(8):
            _, _, o_valid = await ctx.tick().sample(dut.o.valid)
            assert not o_valid, f"{type(dut).__name__} produced more than {outputs} outputs"

    sim.add_testbench(bench)
    sim.run()
    return run
