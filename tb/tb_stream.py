"""Generic cocotb testbench for a block with one input and one output stream.

Driver (StreamSource, random idle cycles) -> DUT -> monitor (StreamSink, random backpressure)
-> scoreboard (bit-exact comparison with the expected beats the model computed). Stimulus and
expectations come from the file named by the ``stimulus`` parameter, already packed to the
port's bits by :mod:`maskprop.tb.stream_bench`; the testbench reports every handshake's cycle,
the received beats and any counter ports back for the timing and counter checks.
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
    source = StreamSource(dut, "i", None, counter, rng, idle=stimulus["idle"])
    sink = StreamSink(dut, "o", None, counter, rng, backpressure=stimulus["backpressure"])
    expected = [int(bits) for bits in stimulus["expected"]]
    cocotb.start_soon(source.send(int(bits) for bits in stimulus["inputs"]))
    received = await sink.receive(len(expected), timeout_cycles=stimulus["timeout_cycles"])
    # The pipeline must drain: nothing more may come out.
    dut.o__ready.value = 1
    for _ in range(stimulus.get("drain_cycles", 16)):
        await ReadOnly()
        assert not dut.o__valid.value, f"more than {len(expected)} output beats (seed {seed})"
        await RisingEdge(dut.clk)
    counters = {port: int(getattr(dut, port).value) for port in stimulus.get("read", [])}
    record("stream", seed=seed, in_cycles=source.handshakes, out_cycles=sink.handshakes,
           received=[str(bits) for bits in received], counters=counters)
    for index, (want, have) in enumerate(zip(expected, received)):
        assert have == want, f"output beat {index}: RTL {have:#x} != model {want:#x} (seed {seed})"
