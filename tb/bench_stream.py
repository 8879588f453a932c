"""cocotb bench for any block with input streams and one output stream ``o``.

Driver (random idle cycles on every input) -> DUT -> monitor (random backpressure on ``o``),
both :class:`~maskprop.tb.drivers.StreamBench` -> :class:`~maskprop.tb.scoreboard.Scoreboard`
(every beat bit-exact and in order as it arrives, with deadlines where given, then a drain window
in which nothing may come out). Stimulus and expected beats come from the file named by the
``stimulus`` parameter, already packed to the ports' bits by
:func:`maskprop.tb.runner.run_stream_bench`. The bench reports every handshake's cycle, the
received beats, the ``read`` ports and, cycle by cycle, the traffic it drove and the watched
ports, for the timing and counter checks (:mod:`maskprop.tb.timing_reference`); the report is
written whether or not the scoreboard passed.
"""

import json

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from maskprop.tb.drivers import StreamBench
from maskprop.tb.harness import params, record, start
from maskprop.tb.scoreboard import DRAIN_CYCLES, Scoreboard


async def check_inputs_driven(dut, names):
    """Every input of the top level holds 0s and 1s once the bench drives it (checked in the
    cycle before the first beat): a floating input reads 0 on Verilator but x/z on Icarus, and
    must fail on both."""
    await ReadOnly()
    floating = [f"{name}={getattr(dut, name).value}" for name in names
                if not getattr(dut, name).value.is_resolvable]
    assert not floating, f"inputs not driven (x/z): {', '.join(floating)}"


def bits(trace) -> str:
    return "".join(str(int(value)) for value in trace)


@cocotb.test()
async def stream_matches_model(dut):
    with open(params()["stimulus"]) as file:
        stimulus = json.load(file)
    for port, value in stimulus.get("drive", {}).items():
        getattr(dut, port).value = value
    rng, seed = await start(dut)
    bench = StreamBench(dut, dut.clk, rng, phases=stimulus["phases"],
                        inputs={port: [int(b) for b in payloads]
                                for port, payloads in stimulus["inputs"].items()},
                        idle=stimulus["idle"], backpressure=stimulus["backpressure"],
                        pulses=stimulus.get("pulses"), watch=stimulus.get("watch", ()))
    scoreboard = Scoreboard([int(b) for b in stimulus["expected"]], seed=seed,
                            deadlines=stimulus.get("deadlines"))
    bench.hold_idle()
    await check_inputs_driven(dut, stimulus["inputs_driven"])
    await RisingEdge(dut.clk)
    try:
        await bench.run(scoreboard, timeout_cycles=stimulus["timeout_cycles"])
        await bench.drain(scoreboard, stimulus.get("drain_cycles", DRAIN_CYCLES))
        scoreboard.finish()
    finally:
        # Reported also when the scoreboard failed: the runner's caller sees what came out.
        read = {port: getattr(dut, port).value for port in stimulus.get("read", [])}
        run = bench.record
        record("stream", seed=seed, out_cycles=run.out_cycles, in_cycles=run.port_cycles,
               received=[str(beat) for beat in run.outputs],
               counters={port: int(value) for port, value in read.items()
                         if value.is_resolvable},
               offered={port: bits(trace) for port, trace in run.offered.items()},
               o_ready=bits(run.o_ready),
               pulsed={port: bits(trace) for port, trace in run.pulsed.items()},
               watched={name: [str(value) for value in trace]
                        for name, trace in run.watched.items()})
    unresolved = [f"{port}={value}" for port, value in read.items() if not value.is_resolvable]
    assert not unresolved, f"read port(s) with x or z bits after the run: {', '.join(unresolved)}"
