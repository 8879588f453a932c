"""cocotb bench: AccumulationTree RTL against :func:`maskprop.sim.blocks.accumulate_frames`.

Driver -> DUT -> monitor (:class:`~maskprop.tb.drivers.StreamBench`) -> scoreboard
(:class:`~maskprop.tb.scoreboard.Scoreboard`: every result bit-exact and in order as it
arrives, then a drain window in which nothing may come out), in three traffic patterns:
back-to-back single-beat frames and random frames streaming, where every result has a deadline
(``latency`` cycles after its frame's last beat, so a late result fails the moment it is late),
and random frames with random idle cycles and backpressure. In every pattern each handshake must
fall in the cycle the handshake reference (:mod:`maskprop.tb.timing_reference`) predicts from the
traffic the bench drove.
"""

import cocotb
from cocotb.triggers import RisingEdge

from maskprop.hw.accumulation_tree import tree_input_layout, tree_result_layout
from maskprop.sim.blocks import accumulate_frames
from maskprop.tb.drivers import StreamBench
from maskprop.tb.harness import params, record, start
from maskprop.tb.payloads import packer
from maskprop.tb.scoreboard import DRAIN_CYCLES, Scoreboard
from maskprop.tb.stimulus import random_frames
from maskprop.tb.timing_reference import check_timing, tree_model


async def check_traffic(dut, make_beats, *, idle=0.0, backpressure=0.0, on_time=False) -> dict:
    """Send ``make_beats(rng)`` through the DUT with the scoreboard checking every result; with
    ``on_time`` (unstalled traffic) each result is due ``latency`` cycles after its frame's last
    beat. Returns the measured cycles and latencies."""
    p = params()
    rng, seed = await start(dut)
    beats = make_beats(rng)
    in_layout = tree_input_layout(p["lanes"], p["in_width"])
    out_layout = tree_result_layout(p["acc_width"])
    payloads = [{"terms": terms, "first": first, "last": last} for terms, first, last in beats]
    expected = [packer(out_layout)({"value": r.value, "overflow": r.overflow})
                for r in accumulate_frames(beats, p["acc_width"])]
    last_beats = [index for index, (_, _, last) in enumerate(beats) if last]
    deadlines = [index + p["latency"] for index in last_beats] if on_time else None
    scoreboard = Scoreboard(expected, seed=seed, deadlines=deadlines,
                            describe=lambda bits: out_layout.from_bits(bits))
    bench = StreamBench(dut, dut.clk, rng, inputs={"i": list(map(packer(in_layout), payloads))},
                        phases=[["i"]], idle=idle, backpressure=backpressure)
    bench.hold_idle()
    await RisingEdge(dut.clk)
    await bench.run(scoreboard, timeout_cycles=20 * len(beats) + 100)
    await bench.drain(scoreboard, DRAIN_CYCLES)
    scoreboard.finish()
    run = bench.record
    check_timing(run, tree_model(p["stages"]), {"i": payloads})
    in_cycles, out_cycles = run.port_cycles["i"], run.out_cycles
    latencies = [out - in_cycles[index] for out, index in zip(out_cycles, last_beats)]
    input_span = in_cycles[-1] - in_cycles[0] + 1
    return dict(seed=seed, beats=len(beats), frames=len(expected),
                cycles=out_cycles[-1] - in_cycles[0] + 1,
                input_span=input_span, throughput=len(beats) / input_span,
                min_latency=min(latencies), max_latency=max(latencies),
                overflows=sum(out_layout.from_bits(bits).overflow for bits in expected))


def random_beats(rng):
    p = params()
    return random_frames(rng, lanes=p["lanes"], width=p["in_width"], frames=p.get("frames", 200))


@cocotb.test()
async def back_to_back_latency_and_throughput(dut):
    """Single-beat frames with no idle and no backpressure: one beat accepted every cycle and
    every result exactly ``latency`` cycles after its beat."""
    lanes = params()["lanes"]
    result = await check_traffic(
        dut, lambda rng: [([(-1) ** n * n] * lanes, True, True) for n in range(64)],
        on_time=True)
    assert result["input_span"] == result["beats"], f"not one beat per cycle: {result}"
    assert result["min_latency"] == result["max_latency"] == params()["latency"], result
    record("back_to_back", **result)


@cocotb.test()
async def random_frames_streaming(dut):
    """Random multi-beat frames with extremes, no idle and no backpressure: the exact latency
    and one beat per cycle hold for frames of any length."""
    result = await check_traffic(dut, random_beats, on_time=True)
    assert result["input_span"] == result["beats"], f"not one beat per cycle: {result}"
    assert result["min_latency"] == result["max_latency"] == params()["latency"], result
    record("random_streaming", **result)


@cocotb.test()
async def random_frames_idle_and_backpressure(dut):
    """Random frames, 30 % idle cycles on the input, 40 % backpressure on the output."""
    result = await check_traffic(dut, random_beats, idle=0.3, backpressure=0.4)
    assert result["min_latency"] >= params()["latency"], result
    record("random_idle_backpressure", **result)
