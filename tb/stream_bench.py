"""Run :mod:`maskprop.tb.tb_stream` on a block from pytest or the CLI, in model terms.

The caller gives payloads as dicts (or values) of the block's stream layouts and the model's
expected output payloads; packing, unpacking and the report are handled here.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from maskprop.tb.runner import TestbenchRun, run_testbench

__all__ = ["StreamBenchResult", "run_stream_bench", "top_level_inputs"]


def top_level_inputs(component, toplevel: str, *, streams, drive) -> list[str]:
    """The Verilog names of every input of ``component``'s top level, after checking that the
    bench drives each of them: every input stream is fed (``streams``), every other input port
    is held at a value (``drive``), and the output stream's ``ready`` is the monitor's.

    An undriven input is ``z``/``x`` on a four-state simulator (Icarus) while Verilator reads it
    as 0, so a forgotten port passes on one simulator and breaks on the other; refuse it here,
    before anything is built, naming the ports.
    """
    from amaranth.lib.wiring import In

    names, undriven, unknown = [], [], set(streams) | set(drive)
    for port, member in component.signature.members.items():
        unknown.discard(port)
        if member.is_signature:
            if member.flow == In:
                names += [f"{port}__valid", f"{port}__payload"]
                if port not in streams:
                    undriven.append(port)
            else:
                names.append(f"{port}__ready")
        elif member.flow == In:
            names.append(port)
            if port not in drive:
                undriven.append(port)
    if undriven:
        raise ValueError(f"{toplevel}: input port(s) {', '.join(undriven)} not driven by the "
                         f"bench; give each input stream payloads (an empty list is fine) and "
                         f"every other input a value in drive=")
    if unknown:
        raise ValueError(f"{toplevel} has no input port(s) {', '.join(sorted(unknown))}")
    return names


@dataclass
class StreamBenchResult:
    run: TestbenchRun
    outputs: list          # received payloads, as Const views of the output layout
    port_cycles: dict      # input port -> cycle of each of its handshakes
    out_cycles: list       # cycle of every output handshake
    counters: dict         # port name -> int, for the ports asked for with ``read``
    # Per cycle, for the handshake reference (maskprop.tb.handshake_model):
    offered: dict = field(default_factory=dict)    # input port -> its valid in each cycle
    o_ready: list = field(default_factory=list)    # o.ready in each cycle
    pulsed: dict = field(default_factory=dict)     # pulsed input -> its value in each cycle
    watched: dict = field(default_factory=dict)    # watched port -> its value in each cycle

    @property
    def read(self) -> dict:
        """The ``read`` ports' values after the run (as :class:`StreamRun` names them)."""
        return self.counters

    @property
    def in_cycles(self) -> list:
        """Handshake cycles of the input port ``i`` (single-input blocks)."""
        return self.port_cycles.get("i", [])

    @property
    def passed(self) -> bool:
        return self.run.passed


def run_stream_bench(component, toplevel: str, inputs, expected, *, build_dir,
                     idle: float = 0.0, backpressure: float = 0.0, drive=None, read=(),
                     sim=None, seed=None, timeout_cycles=None, waves=None,
                     run_name="", phases=None, pulses=None, watch=()) -> StreamBenchResult:
    """Stream ``inputs`` through ``component`` as generated Verilog; compare with ``expected``.

    ``inputs`` is a list of payloads for port ``i``, or a dict ``{port: payloads}`` for blocks
    with several input streams, fed in ``phases`` (a list of lists of ports; default: all
    ports at once). Each phase starts when the previous one has sent everything.

    ``drive`` sets other input ports (e.g. ``{"dense": 1}``) for the whole run; ``read`` names
    output ports (e.g. ``counters``) whose value after the run is reported. ``pulses``
    (``{port: cycles}``, e.g. ``{"clear": [40]}``) drives a one-bit input 1 in those cycles of
    the run and 0 in all others; ``watch`` names ports reported in every cycle. ``run_name``:
    see :func:`maskprop.tb.runner.run_testbench`.
    """
    members = component.signature.members

    def layout(port):
        return members[port].signature.members["payload"].shape
    if not isinstance(inputs, dict):
        inputs = {"i": inputs}
    pulses = {port: sorted(cycles) for port, cycles in (pulses or {}).items()}
    drive = {**dict(drive or {}), **{port: 0 for port in pulses}}   # 0 between the pulses
    checked_inputs = top_level_inputs(component, toplevel, streams=inputs, drive=drive)
    phases = phases or [list(inputs)]
    packed = {port: [str(layout(port).const(p).as_bits()) for p in payloads]
              for port, payloads in inputs.items()}
    out_layout = layout("o")
    expected = [out_layout.const(p).as_bits() for p in expected]
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    stimulus = build_dir / (f"stimulus-{run_name}.json" if run_name else "stimulus.json")
    if timeout_cycles is None:
        timeout_cycles = 64 * (sum(map(len, packed.values())) + len(expected)) + 1000
    stimulus.write_text(json.dumps({
        "inputs": packed, "phases": phases, "expected": [str(bits) for bits in expected],
        "idle": idle, "backpressure": backpressure, "drive": drive,
        "read": list(read), "timeout_cycles": timeout_cycles, "inputs_driven": checked_inputs,
        "pulses": pulses, "watch": list(watch),
    }))
    run = run_testbench(component, toplevel, "maskprop.tb.tb_stream",
                        params={"stimulus": str(stimulus)}, sim=sim, build_dir=build_dir,
                        seed=seed, waves=waves, run_name=run_name)
    report = run.report.get("stream", {})

    def trace(bits):
        return [bit == "1" for bit in bits]
    return StreamBenchResult(
        run,
        [out_layout.from_bits(int(bits)) for bits in report.get("received", [])],
        report.get("in_cycles", {}), report.get("out_cycles", []),
        report.get("counters", {}),
        offered={port: trace(bits) for port, bits in report.get("offered", {}).items()},
        o_ready=trace(report.get("o_ready", "")),
        pulsed={port: trace(bits) for port, bits in report.get("pulsed", {}).items()},
        watched={name: [int(value) for value in values]
                 for name, values in report.get("watched", {}).items()})
