"""Generic cocotb testbench for a block with input streams and one output stream ``o``.

Drivers (StreamSource, random idle cycles) -> DUT -> monitor (StreamSink, random backpressure)
-> scoreboard (bit-exact comparison with the expected beats the model computed). Stimulus and
expectations come from the file named by the ``stimulus`` parameter, already packed to the
ports' bits by :mod:`maskprop.tb.stream_bench`. Input ports are fed in phases (e.g. a buffer
load, then the streams that use it); the ports of one phase run concurrently. The testbench
reports every handshake's cycle, the received beats and any counter ports back for the timing
and counter checks.
"""

import json

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from maskprop.tb.harness import params, record, start
from maskprop.tb.streams import StreamSink, StreamSource


@cocotb.test()
async def stream_matches_model(dut):
    p = params()
    with open(p["stimulus"]) as file:
        stimulus = json.load(file)
    for port, value in stimulus.get("drive", {}).items():
        getattr(dut, port).value = value
    counter, rng, seed = await start(dut)
    sources = {port: StreamSource(dut, port, None, counter, rng, idle=stimulus["idle"])
               for phase in stimulus["phases"] for port in phase}
    sink = StreamSink(dut, "o", None, counter, rng, backpressure=stimulus["backpressure"])
    expected = [int(bits) for bits in stimulus["expected"]]
    receiving = cocotb.start_soon(sink.receive(len(expected),
                                               timeout_cycles=stimulus["timeout_cycles"]))
    for phase in stimulus["phases"]:
        sending = [cocotb.start_soon(sources[port].send(int(b) for b in stimulus["inputs"][port]))
                   for port in phase]
        for task in sending:
            await task
    received = await receiving
    # The pipeline must drain: nothing more may come out.
    dut.o__ready.value = 1
    for _ in range(stimulus.get("drain_cycles", 16)):
        await ReadOnly()
        assert not dut.o__valid.value, f"more than {len(expected)} output beats (seed {seed})"
        await RisingEdge(dut.clk)
    counters = {port: int(getattr(dut, port).value) for port in stimulus.get("read", [])}
    record("stream", seed=seed, out_cycles=sink.handshakes,
           in_cycles={port: source.handshakes for port, source in sources.items()},
           received=[str(bits) for bits in received], counters=counters)
    for index, (want, have) in enumerate(zip(expected, received)):
        assert have == want, f"output beat {index}: RTL {have:#x} != model {want:#x} (seed {seed})"
