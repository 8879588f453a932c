"""Build generated Verilog and run a cocotb testbench on it (``cocotb_tools.runner``).

The testbench learns what it is testing from two environment variables: ``MASKPROP_TB_PARAMS``,
the JSON of the block's parameters (Verilog from Amaranth has no parameters to read), and
``MASKPROP_TB_REPORT``, where it writes a JSON summary (cycles, latency, throughput) that the
CLI and the tests read back.

Builds are cached by content: the simulator's build of a Verilog text (with the same simulator,
options and waiver file) is made once, under ``$MASKPROP_BUILD_CACHE`` (default
``build-cache`` in maskprop's cache directory, ``~/.cache/maskprop``, whatever the current
directory or a command's ``--out`` is), and shared by every run and every pytest worker (a file lock keeps two
workers from building the same design at once). Each run keeps its own directory for its
stimulus, log, results and report.
"""

import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cocotb
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import VerilatorControlFile, get_runner

from maskprop.tb.stimulus import seed_from_env
from maskprop.flow.toolchain import activate_simulator, cache_dir
from maskprop.flow.verilog import generate_verilog

__all__ = ["TestbenchRun", "run_testbench", "WAIVERS", "build_cache"]

#: Verilator lint waivers (package data of ``maskprop.tb``, ``tb/verilator_waivers.vlt``).
WAIVERS = Path(resources.files("maskprop.tb") / "verilator_waivers.vlt")
# Amaranth emits no `timescale; the testbenches clock at 10 ns.
TIMESCALE = ("1ns", "1ps")
VERILATOR_ARGS = ["-Wall", "--x-assign", "unique", "--x-initial", "unique"]


def build_cache() -> Path:
    return Path(os.environ.get("MASKPROP_BUILD_CACHE", cache_dir() / "build-cache")).resolve()


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


def _build(verilog: str, toplevel: str, sim: str, waves: bool) -> Path:
    """The simulator build of ``verilog``, made once and then reused."""
    options = [sim, toplevel, str(waves), cocotb.__version__, *VERILATOR_ARGS, *TIMESCALE,
               WAIVERS.read_text()]
    key = hashlib.sha256("\0".join([verilog, *options]).encode()).hexdigest()[:16]
    build_dir = build_cache() / f"{toplevel}-{sim}-{key}"
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = build_dir / ".built"
        if not done.exists():
            build_dir.mkdir(parents=True, exist_ok=True)
            source = build_dir / f"{toplevel}.v"
            source.write_text(verilog)
            sources, build_args = [source], []
            if sim == "verilator":
                sources.append(VerilatorControlFile(WAIVERS))
                build_args = VERILATOR_ARGS
            get_runner(sim).build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                                  build_args=build_args, waves=waves, always=True,
                                  timescale=TIMESCALE, log_file=build_dir / "build.log")
            done.touch()
    return build_dir


def run_testbench(component, toplevel: str, test_module: str, *, params: dict,
                  sim: str | None = None, build_dir, testcase=None, seed: int | None = None,
                  waves: bool | None = None, run_name: str = "") -> TestbenchRun:
    """Generate ``component`` as module ``toplevel``, build it (or reuse its build) and run
    ``test_module`` on it, with ``build_dir`` as this run's directory.

    ``seed`` (default: ``MASKPROP_SEED``, else a fresh random one) seeds every random choice of
    the testbench; it is returned, so that a failing run can be repeated exactly.

    ``waves`` (default: ``WAVES=1`` in the environment) records a VCD (Verilator) or an FST
    (Icarus) in the run directory. ``run_name`` keeps several runs' files apart in one directory.
    """
    sim = activate_simulator(sim)
    seed = seed_from_env() if seed is None else seed
    waves = _env_flag("WAVES") if waves is None else waves
    run_dir = Path(build_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    verilog = generate_verilog(component, toplevel)
    (run_dir / f"{toplevel}.v").write_text(verilog)
    sim_build = _build(verilog, toplevel, sim, waves)

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
                       "MASKPROP_TB_REPORT": str(report_path)},
            log_file=run_dir / f"sim{suffix}.log",
        )
    except SystemExit:
        # Under pytest the runner exits on failing testcases; the results file says which.
        pass
    tests, failures = get_results(results)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return TestbenchRun(sim, toplevel, run_dir, tests, failures,
                        time.monotonic() - started, seed, report, run_dir / f"sim{suffix}.log")
