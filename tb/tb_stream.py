"""Generic cocotb testbench for a block with input streams and one output stream ``o``.

Driver (random idle cycles on every input) -> DUT -> monitor (random backpressure on ``o``),
both in :class:`~maskprop.tb.streams.StreamBench` -> scoreboard (bit-exact comparison with the expected beats the model computed). Stimulus and
expectations come from the file named by the ``stimulus`` parameter, already packed to the
ports' bits by :mod:`maskprop.tb.stream_bench`. Input ports are fed in phases (e.g. a buffer
load, then the streams that use it); the ports of one phase run concurrently. The testbench
reports every handshake's cycle, the received beats and any counter ports back for the timing
and counter checks, and, cycle by cycle, the traffic it drove (every input's ``valid``, ``o``'s
``ready``, the pulsed inputs) and the watched ports, for the handshake reference
(:mod:`maskprop.tb.handshake_model`).
"""

import json

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from maskprop.tb.harness import params, record, start
from maskprop.tb.streams import StreamBench


async def check_inputs_driven(dut, names):
    """Every input of the top level holds 0s and 1s once the bench drives it (checked in the
    cycle before the first beat): a floating input reads 0 on Verilator but x/z on Icarus, and
    must fail on both."""
    await ReadOnly()
    floating = [f"{name}={getattr(dut, name).value}" for name in names
                if not getattr(dut, name).value.is_resolvable]
    assert not floating, f"inputs not driven (x/z): {', '.join(floating)}"


@cocotb.test()
async def stream_matches_model(dut):
    p = params()
    with open(p["stimulus"]) as file:
        stimulus = json.load(file)
    for port, value in stimulus.get("drive", {}).items():
        getattr(dut, port).value = value
    _, rng, seed = await start(dut)
    bench = StreamBench(dut, dut.clk, rng, phases=stimulus["phases"],
                        inputs={port: [int(b) for b in payloads]
                                for port, payloads in stimulus["inputs"].items()},
                        idle=stimulus["idle"], backpressure=stimulus["backpressure"],
                        pulses=stimulus.get("pulses"), watch=stimulus.get("watch", ()))
    expected = [int(bits) for bits in stimulus["expected"]]
    bench.hold_idle()
    await check_inputs_driven(dut, stimulus["inputs_driven"])
    await RisingEdge(dut.clk)
    received = await bench.run(len(expected), timeout_cycles=stimulus["timeout_cycles"])
    # The pipeline must drain: nothing more may come out.
    dut.o__ready.value = 1
    extra = []
    for cycle in range(stimulus.get("drain_cycles", 16)):
        await ReadOnly()
        if dut.o__valid.value:
            extra.append((cycle, int(dut.o__payload.value)))
        await RisingEdge(dut.clk)
    counters = {}
    for port in stimulus.get("read", []):
        value = getattr(dut, port).value
        assert value.is_resolvable, f"{port} reads {value} (x or z bits) after the run"
        counters[port] = int(value)
    record("stream", seed=seed, out_cycles=bench.out_cycles, in_cycles=bench.port_cycles,
           received=[str(bits) for bits in received], counters=counters,
           extra=[str(bits) for _, bits in extra],
           offered={port: "".join(map(str, trace)) for port, trace in bench.offered.items()},
           o_ready="".join(map(str, bench.o_ready)),
           pulsed={port: "".join(map(str, trace)) for port, trace in bench.pulsed.items()},
           watched={name: [str(value) for value in trace]
                    for name, trace in bench.watched.items()})
    assert not extra, f"{len(extra)} output beats more than the {len(expected)} expected " \
                      f"(seed {seed}), the first {extra[0][0]} cycles after the last"
    assert len(received) == len(expected), \
        f"{len(received)} output beats received, {len(expected)} expected (seed {seed})"
    for index, (want, have) in enumerate(zip(expected, received)):
        assert have == want, f"output beat {index}: RTL {have:#x} != model {want:#x} (seed {seed})"
