"""cocotb testbench: AccumulationTree RTL against :func:`maskprop.sim.blocks.accumulate_frames`.

Driver (StreamSource) -> DUT -> monitor (StreamSink) -> scoreboard (comparison with the reference
model), in three traffic patterns: back-to-back single-beat frames (latency and throughput exact),
random frames streaming, and random frames with random idle cycles and backpressure. In every
pattern each handshake must fall in the cycle the handshake reference
(:mod:`maskprop.tb.handshake_model`) predicts from the traffic the source and sink drove.
"""

from types import SimpleNamespace

import cocotb

from maskprop.hw.accumulation_tree import tree_input_layout, tree_result_layout
from maskprop.sim.blocks import FrameResult, accumulate_frames
from maskprop.tb.handshake_model import check_timing, tree_model
from maskprop.tb.harness import params, record, start
from maskprop.tb.stimulus import random_frames
from maskprop.tb.streams import StreamSink, StreamSource


async def check_traffic(dut, make_beats, *, idle=0.0, backpressure=0.0) -> dict:
    """Send ``make_beats(rng)`` through the DUT, compare every result with the reference and
    return the measured cycles and latencies."""
    p = params()
    counter, rng, seed = await start(dut)
    beats = make_beats(rng)
    source = StreamSource(dut, "i", tree_input_layout(p["lanes"], p["in_width"]), counter, rng,
                          idle=idle)
    sink = StreamSink(dut, "o", tree_result_layout(p["acc_width"]), counter, rng,
                      backpressure=backpressure)
    expected = accumulate_frames(beats, p["acc_width"])
    payloads = [{"terms": terms, "first": first, "last": last} for terms, first, last in beats]
    cocotb.start_soon(source.send(payloads))
    received = await sink.receive(len(expected), timeout_cycles=20 * len(beats) + 100)
    for index, (want, raw) in enumerate(zip(expected, received)):
        have = FrameResult(raw.value, bool(raw.overflow))
        assert have == want, f"frame {index}: RTL {have} != reference {want} (seed {seed})"
    cycles = counter.cycle + 1
    check_timing(SimpleNamespace(offered={"i": source.trace(cycles)}, o_ready=sink.trace(cycles),
                                 port_cycles={"i": source.handshakes},
                                 out_cycles=sink.handshakes),
                 tree_model(p["stages"]), {"i": payloads})
    last_beats = [cycle for cycle, (_, _, last) in zip(source.handshakes, beats) if last]
    latencies = [out - last_in for out, last_in in zip(sink.handshakes, last_beats)]
    input_span = source.handshakes[-1] - source.handshakes[0] + 1
    return dict(seed=seed, beats=len(beats), frames=len(expected),
                cycles=sink.handshakes[-1] - source.handshakes[0] + 1,
                input_span=input_span, throughput=len(beats) / input_span,
                min_latency=min(latencies), max_latency=max(latencies),
                overflows=sum(r.overflow for r in expected))


def random_beats(rng):
    p = params()
    return random_frames(rng, lanes=p["lanes"], width=p["in_width"], frames=p.get("frames", 200))


@cocotb.test()
async def back_to_back_latency_and_throughput(dut):
    """Single-beat frames with no idle and no backpressure: one beat accepted every cycle and
    every result exactly ``latency`` cycles after its beat."""
    lanes = params()["lanes"]
    result = await check_traffic(
        dut, lambda rng: [([(-1) ** n * n] * lanes, True, True) for n in range(64)])
    assert result["input_span"] == result["beats"], f"not one beat per cycle: {result}"
    assert result["min_latency"] == result["max_latency"] == params()["latency"], result
    record("back_to_back", **result)


@cocotb.test()
async def random_frames_streaming(dut):
    """Random multi-beat frames with extremes, no idle and no backpressure: the exact latency
    and one beat per cycle hold for frames of any length."""
    result = await check_traffic(dut, random_beats)
    assert result["input_span"] == result["beats"], f"not one beat per cycle: {result}"
    assert result["min_latency"] == result["max_latency"] == params()["latency"], result
    record("random_streaming", **result)


@cocotb.test()
async def random_frames_idle_and_backpressure(dut):
    """Random frames, 30 % idle cycles on the input, 40 % backpressure on the output."""
    result = await check_traffic(dut, random_beats, idle=0.3, backpressure=0.4)
    assert result["min_latency"] >= params()["latency"], result
    record("random_idle_backpressure", **result)
