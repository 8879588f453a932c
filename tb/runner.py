"""Build generated Verilog and run a cocotb bench on it (``cocotb_tools.runner``):
:func:`run_testbench` for any bench module, :func:`run_stream_bench` for the stream bench
(:mod:`maskprop.tb.bench_stream`) in model terms (payloads and expected beats as the layouts'
dicts; packing, unpacking and the record handled here).

The testbench learns what it is testing from two environment variables: ``MASKPROP_TB_PARAMS``,
the JSON of the block's parameters (Verilog from Amaranth has no parameters to read), and
``MASKPROP_TB_REPORT``, where it writes a JSON summary (cycles, latency, throughput) that the
CLI and the tests read back.

Builds are cached by content: the simulator's build of a Verilog text (with the same simulator,
options, waiver file and ``fast`` choice) is made once, under ``$MASKPROP_BUILD_CACHE`` (default
``build-cache`` in maskprop's cache directory, ``~/.cache/maskprop``, whatever the current
directory or a command's ``--out`` is), and shared by every run and every pytest worker (a file
lock keeps two workers from building the same design at once). Each run keeps its own directory
for its stimulus, log, results and report.

A *fast* build (``fast=True``, Verilator only; Icarus ignores it) is for benches that touch
nothing but the top level's ports (``tb/bench_core_fast.py``): cocotb's runner builds with
``--public-flat-rw``, every signal writable over VPI, so Verilator must assume any of them may
change at any time and re-evaluates nearly all logic on every evaluation (the core's fast bench
took about 9x the CPU time per cycle). A fast build turns that off
(``--no-public-flat-rw``), makes only the top level's ports public (a control file of
``public_flat_rw`` lines, one per port: what cocotb needs to drive and sample them) and compiles
the model ``-O2`` instead of Verilator's ``-Os``. Everything inside the top level is then out of
cocotb's reach; the protocol-checking benches keep the default, full visibility.
"""

import fcntl
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cocotb
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import VerilatorControlFile, get_runner

from maskprop.flow.toolchain import activate_simulator, build_cache
from maskprop.flow.verilog import generate_verilog
from maskprop.tb.payloads import packer
from maskprop.tb.scoreboard import DRAIN_CYCLES
from maskprop.tb.stimulus import seed_from_env
from maskprop.tb.traffic import BenchRecord

__all__ = ["TestbenchRun", "run_testbench", "run_stream_bench", "top_level_inputs", "WAIVERS",
           "build_simulation", "simulation_build_dir", "simulator_source",
           "verilator_build_args", "top_level_ports", "public_ports_control"]

#: Verilator lint waivers (package data of ``maskprop.tb``, ``tb/verilator_waivers.vlt``).
WAIVERS = Path(resources.files("maskprop.tb") / "verilator_waivers.vlt")
# Amaranth emits no `timescale; the testbenches clock at 10 ns.
TIMESCALE = ("1ns", "1ps")
# --assert: the RTL's Amaranth ``Assert``\ s (its invariants) are SystemVerilog immediate
# assertions, which Verilator compiles only when asked; a failing one stops the simulation.
VERILATOR_ARGS = ["-Wall", "--assert", "--x-assign", "unique", "--x-initial", "unique"]
#: What a fast build adds (module docstring). ``-CFLAGS`` lands after Verilator's ``-Os`` on the
#: compiler's command line (``verilated.mk``), so ``-O2`` is the one that applies.
FAST_VERILATOR_ARGS = ["--no-public-flat-rw", "-CFLAGS", "-O2"]


@dataclass
class TestbenchRun:
    simulator: str
    toplevel: str
    build_dir: Path          # where this run's stimulus, logs, results and report are
    tests: int
    failures: int
    seconds: float
    seed: int
    report: dict = field(default_factory=dict)

    log: Path | None = None  # the simulator's log of this run

    @property
    def passed(self) -> bool:
        return self.tests > 0 and self.failures == 0


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def verilator_build_args(fast: bool = False) -> list[str]:
    """The options this runner gives Verilator (cocotb's runner adds ``--vpi --public-flat-rw``
    before them, which ``fast`` switches off)."""
    return VERILATOR_ARGS + (FAST_VERILATOR_ARGS if fast else [])


def top_level_ports(verilog: str, toplevel: str) -> list[str]:
    """The port names of module ``toplevel`` in ``verilog``, as its header lists them."""
    header = re.search(rf"^module\s+{re.escape(toplevel)}\s*\(([^;]*)\)\s*;", verilog,
                       re.MULTILINE)
    if header is None:
        raise ValueError(f"no module {toplevel} in the Verilog")
    return [name.strip() for name in header.group(1).split(",")]


def public_ports_control(verilog: str, toplevel: str) -> str:
    """A Verilator control file that makes each port of ``toplevel`` public (read and write
    over VPI), and nothing else."""
    lines = [f'public_flat_rw -module "{toplevel}" -var "{port}"'
             for port in top_level_ports(verilog, toplevel)]
    return "\n".join(["`verilator_config", *lines]) + "\n"


def simulator_source(verilog: str, sim: str) -> str:
    """The Verilog text ``sim`` builds from ``verilog``: the same on Verilator; on Icarus, two
    changes that make it simulate the text the way its authors and Verilator do.

    - **Combinational blocks at time zero.** Yosys' Verilog starts every ``always @*`` block
      with a read of a register declared ``= 0``, so that the block runs once at time zero even
      if nothing it reads ever changes. Icarus may run that declaration's assignment before the
      block waits on it, and the block then never runs until an input changes: a decode of an
      FSM's idle state (a ready that is 1 from reset) stays x, and a handshake on it is never
      seen. Assigning the register at ``#0`` instead, once every process is waiting, runs them
      all.
    - **Fatal assertions.** A failing immediate assertion only prints an error on Icarus and
      the simulation goes on (as if the check had passed); ``$fatal`` stops it, as a failing
      assertion stops Verilator (``--assert``). Only a condition that is definitely false
      does: before the bench drives the inputs and through reset, conditions read x, which
      Verilator (two-state) never sees; those still print Icarus' error line.
    """
    if sim != "icarus":
        return verilog
    verilog = re.sub(r"^(\s*)reg (\\\$auto\$verilog_backend\S*)\s+= 0;$",
                     r"\1reg \2 ;\n\1initial #0 \2 = 1'b0;", verilog, flags=re.MULTILINE)
    return re.sub(r"^(\s*)assert \((.*)\);$",
                  r"\1assert (\2) else if ((\2) === 1'b0) $fatal(1);", verilog,
                  flags=re.MULTILINE)


def _fast_applies(sim: str, fast: bool) -> bool:
    """Only Verilator has a fast build; on Icarus the build is the same either way."""
    return fast and sim == "verilator"


def simulation_build_dir(verilog: str, toplevel: str, *, sim: str, waves: bool = False,
                         fast: bool = False) -> Path:
    """Where :func:`build_simulation` keeps the build of ``verilog`` with these options: its
    cache key is everything the build depends on, including where cocotb is installed (a
    Verilator executable loads cocotb's VPI library from there: a build made by another
    virtual environment, since removed, would fail to start)."""
    fast = _fast_applies(sim, fast)
    verilog = simulator_source(verilog, sim)
    options = [sim, toplevel, str(waves), cocotb.__version__, str(Path(cocotb.__file__).parent),
               *verilator_build_args(fast), *TIMESCALE, WAIVERS.read_text()]
    key = hashlib.sha256("\0".join([verilog, *options]).encode()).hexdigest()[:16]
    return build_cache() / f"{toplevel}-{sim}-{key}"


def build_simulation(verilog: str, toplevel: str, *, sim: str | None = None,
                     waves: bool = False, fast: bool = False) -> Path:
    """The simulator build of ``verilog`` (module ``toplevel``), made once and then reused;
    ``fast``: a fast build (module docstring; ignored on Icarus). Returns its directory."""
    sim = activate_simulator(sim)
    fast = _fast_applies(sim, fast)
    build_dir = simulation_build_dir(verilog, toplevel, sim=sim, waves=waves, fast=fast)
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = build_dir / ".built"
        if not done.exists():
            build_dir.mkdir(parents=True, exist_ok=True)
            source = build_dir / f"{toplevel}.v"
            source.write_text(simulator_source(verilog, sim))
            sources, build_args = [source], []
            if sim == "verilator":
                sources.append(VerilatorControlFile(WAIVERS))
                if fast:
                    control = build_dir / "public_ports.vlt"
                    control.write_text(public_ports_control(verilog, toplevel))
                    sources.append(VerilatorControlFile(control))
                build_args = verilator_build_args(fast)
            get_runner(sim).build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                                  build_args=build_args, waves=waves, always=True,
                                  timescale=TIMESCALE, log_file=build_dir / "build.log")
            done.touch()
    return build_dir


def run_testbench(component, toplevel: str, test_module: str, *, params: dict,
                  sim: str | None = None, build_dir, testcase=None, seed: int | None = None,
                  waves: bool | None = None, run_name: str = "",
                  fast: bool = False) -> TestbenchRun:
    """Generate ``component`` as module ``toplevel``, build it (or reuse its build) and run
    ``test_module`` on it, with ``build_dir`` as this run's directory.

    ``seed`` (default: ``MASKPROP_SEED``, else a fresh random one) seeds every random choice of
    the testbench; it is returned, so that a failing run can be repeated exactly.

    ``waves`` (default: ``WAVES=1`` in the environment) records a VCD (Verilator) or an FST
    (Icarus) in the run directory. ``run_name`` keeps several runs' files apart in one directory.
    ``fast``: a fast build (module docstring), for benches that touch only top-level ports.
    """
    sim = activate_simulator(sim)
    seed = seed_from_env() if seed is None else seed
    waves = _env_flag("WAVES") if waves is None else waves
    run_dir = Path(build_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    verilog = generate_verilog(component, toplevel)
    (run_dir / f"{toplevel}.v").write_text(verilog)
    sim_build = build_simulation(verilog, toplevel, sim=sim, waves=waves, fast=fast)

    suffix = f"-{run_name}" if run_name else ""
    report_path = run_dir / f"report{suffix}.json"
    results = run_dir / f"results{suffix}.xml"
    report_path.unlink(missing_ok=True)
    results.unlink(missing_ok=True)
    try:
        get_runner(sim).test(
            test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
            build_dir=sim_build, test_dir=run_dir, results_xml=str(results),
            testcase=testcase, seed=seed, waves=waves, timescale=TIMESCALE,
            extra_env={"MASKPROP_SEED": str(seed), "MASKPROP_TB_PARAMS": json.dumps(params),
                       "MASKPROP_TB_REPORT": str(report_path),
                       # cocotb builds a pytest Config for its assertion rewriting, which would
                       # load every installed pytest plugin (xdist, hypothesis...) into each
                       # simulator process: a fifth of a second each, and none is used there.
                       "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
            log_file=run_dir / f"sim{suffix}.log",
        )
    except SystemExit:
        # Under pytest the runner exits on failing testcases; the results file says which.
        pass
    except RuntimeError:
        # The simulator exited with an error status before cocotb could write its results: a
        # failing RTL assertion (fatal on both simulators, see simulator_source) or a crash.
        # The run failed; its log says why.
        results.unlink(missing_ok=True)
    tests, failures = get_results(results) if results.exists() else (1, 1)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return TestbenchRun(sim, toplevel, run_dir, tests, failures,
                        time.monotonic() - started, seed, report, run_dir / f"sim{suffix}.log")


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


def run_stream_bench(component, toplevel: str, inputs, expected, *, build_dir,
                     idle: float = 0.0, backpressure: float = 0.0, drive=None, read=(),
                     sim=None, seed=None, timeout_cycles=None, waves=None,
                     run_name="", phases=None, pulses=None, watch=(), deadlines=None,
                     drain_cycles: int = DRAIN_CYCLES, fast: bool = False) -> BenchRecord:
    """Stream ``inputs`` through ``component`` as generated Verilog; the bench's scoreboard
    compares every output beat with ``expected`` (bit-exact, in order; ``deadlines``: the cycle
    by which each beat is due, where a timing contract gives one) and then holds ``o.ready``
    high for ``drain_cycles`` idle cycles in which nothing may come out.

    ``inputs`` is a list of payloads for port ``i``, or a dict ``{port: payloads}`` for blocks
    with several input streams, fed in ``phases`` (a list of lists of ports; default: all
    ports at once). Each phase starts when the previous one has sent everything.

    ``drive`` sets other input ports (e.g. ``{"dense": 1}``) for the whole run; ``read`` names
    output ports (e.g. ``counters``) whose value after the run is reported. ``pulses``
    (``{port: cycles}``, e.g. ``{"clear": [40]}``) drives a one-bit input 1 in those cycles of
    the run and 0 in all others; ``watch`` names ports reported in every cycle. ``run_name``:
    see :func:`run_testbench`. ``fast``: a fast build (the module's docstring; the bench
    touches only top-level ports). The record's ``passed`` says whether the scoreboard passed;
    it holds the beats received up to the first failure.
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
    packed = {port: [str(bits) for bits in map(packer(layout(port)), payloads)]
              for port, payloads in inputs.items()}
    out_layout = layout("o")
    expected = list(map(packer(out_layout), expected))
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    stimulus = build_dir / (f"stimulus-{run_name}.json" if run_name else "stimulus.json")
    if timeout_cycles is None:
        timeout_cycles = 64 * (sum(map(len, packed.values())) + len(expected)) + 1000
    stimulus.write_text(json.dumps({
        "inputs": packed, "phases": phases, "expected": [str(bits) for bits in expected],
        "idle": idle, "backpressure": backpressure, "drive": drive,
        "read": list(read), "timeout_cycles": timeout_cycles, "inputs_driven": checked_inputs,
        "pulses": pulses, "watch": list(watch), "drain_cycles": drain_cycles,
        "deadlines": None if deadlines is None else [int(cycle) for cycle in deadlines],
    }))
    run = run_testbench(component, toplevel, "maskprop.tb.bench_stream",
                        params={"stimulus": str(stimulus)}, sim=sim, build_dir=build_dir,
                        seed=seed, waves=waves, run_name=run_name, fast=fast)
    report = run.report.get("stream", {})

    def trace(bits):
        return [bit == "1" for bit in bits]
    return BenchRecord(
        outputs=[out_layout.from_bits(int(bits)) for bits in report.get("received", [])],
        port_cycles=report.get("in_cycles", {}), out_cycles=report.get("out_cycles", []),
        cycles=len(report.get("o_ready", "")), read=report.get("counters", {}), run=run,
        offered={port: trace(bits) for port, bits in report.get("offered", {}).items()},
        o_ready=trace(report.get("o_ready", "")),
        pulsed={port: trace(bits) for port, bits in report.get("pulsed", {}).items()},
        watched={name: [int(value) for value in values]
                 for name, values in report.get("watched", {}).items()})
