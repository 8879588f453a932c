"""SkidBuffer: every beat through in order under random idle and backpressure; ``i.ready``
registered (a stall at ``o`` is not seen at ``i`` in the same cycle); no added latency and no
bubble: a consumer ready in every cycle of a stream that is always offered takes a beat in
every cycle, and a beat offered to an empty buffer is at ``o`` in the same cycle."""

import random

import pytest
from amaranth import ClockDomain, Module
from amaranth.lib import data
from amaranth.sim import Simulator

from maskprop.hw.skid_buffer import SkidBuffer
from maskprop.tb.amaranth_bench import run_streams
from maskprop.tb.stimulus import seed_from_env

LAYOUT = data.StructLayout({"value": 12, "last": 1})


@pytest.mark.parametrize("idle, backpressure", [(0.0, 0.0), (0.3, 0.5), (0.0, 0.7)])
def test_every_beat_in_order(idle, backpressure):
    seed = seed_from_env(default=21)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    beats = [{"value": rng.randrange(1 << 12), "last": rng.randrange(2)} for _ in range(300)]
    record = run_streams(SkidBuffer(LAYOUT), {"i": beats}, beats, idle=idle,
                         backpressure=backpressure, seed=seed)
    assert len(record.outputs) == len(beats)


def test_ready_is_registered_and_nothing_is_delayed():
    seed = seed_from_env(default=22)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    dut = SkidBuffer(LAYOUT)
    top = Module()
    top.submodules.dut = dut
    top.domains.sync = ClockDomain()
    taken, offered_to_empty = [], 0

    async def bench(ctx):
        nonlocal offered_to_empty
        ctx.set(dut.i.valid, 1)
        sent = 0
        for cycle in range(400):
            ctx.set(dut.i.payload, {"value": sent, "last": 0})
            ready_before = ctx.get(dut.i.ready)
            consumer_ready = rng.random() < 0.6
            ctx.set(dut.o.ready, consumer_ready)
            # Registered: what the consumer does in this cycle does not change i.ready now.
            assert ctx.get(dut.i.ready) == ready_before, cycle
            # The stream is always offered, so o always has a beat: no bubble.
            assert ctx.get(dut.o.valid), cycle
            if ready_before:                 # empty skid register: o is i, same cycle
                offered_to_empty += 1
                assert ctx.get(dut.o.payload.value) == sent, cycle
            if consumer_ready:
                taken.append(ctx.get(dut.o.payload.value))
            if ready_before:
                sent += 1
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert taken == list(range(len(taken))) and len(taken) > 200
    assert 0 < offered_to_empty < 400        # both states of the skid register were seen
