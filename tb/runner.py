"""Build generated Verilog and run a cocotb testbench on it (``cocotb_tools.runner``).

The testbench learns what it is testing from two environment variables: ``MASKPROP_TB_PARAMS``,
the JSON of the block's parameters (Verilog from Amaranth has no parameters to read), and
``MASKPROP_TB_REPORT``, where it writes a JSON summary (cycles, latency, throughput) that the
CLI and the tests read back.
"""

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import VerilatorControlFile, get_runner

from maskprop.tb.stimulus import seed_from_env
from maskprop.toolchain import activate_simulator
from maskprop.verilog import write_verilog

__all__ = ["TestbenchRun", "run_testbench", "WAIVERS", "default_build_dir"]

WAIVERS = Path(__file__).with_name("verilator_waivers.vlt")
# Amaranth emits no `timescale; the testbenches clock at 10 ns.
TIMESCALE = ("1ns", "1ps")
REPO_OUT = Path(os.environ.get("MASKPROP_OUT", "out"))


@dataclass
class TestbenchRun:
    simulator: str
    toplevel: str
    build_dir: Path
    tests: int
    failures: int
    seconds: float
    seed: int
    report: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.tests > 0 and self.failures == 0


def default_build_dir(toplevel: str, sim: str, params: dict) -> Path:
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    return REPO_OUT / "tb" / f"{toplevel}-{sim}-{digest}"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def run_testbench(component, toplevel: str, test_module: str, *, params: dict,
                  sim: str | None = None, build_dir=None, testcase=None, seed: int | None = None,
                  waves: bool | None = None, build: bool = True,
                  run_name: str = "") -> TestbenchRun:
    """Generate ``component`` as module ``toplevel``, build it and run ``test_module`` on it.

    ``seed`` (default: ``MASKPROP_SEED``, else a fresh random one) seeds every random choice of
    the testbench; it is returned, so that a failing run can be repeated exactly.

    ``waves`` (default: ``WAVES=1`` in the environment) records an FST (Verilator) or a
    simulator dump (Icarus) in the build directory.

    ``build=False`` runs the simulation already built in ``build_dir`` for the same component
    (several runs of one design); ``run_name`` keeps each run's report, results and log apart.
    """
    sim = activate_simulator(sim)
    seed = seed_from_env() if seed is None else seed
    waves = _env_flag("WAVES") if waves is None else waves
    build_dir = Path(build_dir or default_build_dir(toplevel, sim, params)).resolve()
    runner = get_runner(sim)
    started = time.monotonic()
    if build:
        source = write_verilog(component, toplevel, build_dir / f"{toplevel}.v")
        sources = [source]
        build_args = []
        if sim == "verilator":
            sources.append(VerilatorControlFile(WAIVERS))
            build_args += ["-Wall", "--x-assign", "unique", "--x-initial", "unique"]
        runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir,
                     build_args=build_args, waves=waves, always=True, timescale=TIMESCALE,
                     log_file=build_dir / "build.log")
    suffix = f"-{run_name}" if run_name else ""
    report_path = build_dir / f"report{suffix}.json"
    report_path.unlink(missing_ok=True)
    results = build_dir / f"results{suffix}.xml"
    results.unlink(missing_ok=True)
    try:
        runner.test(
            test_module=test_module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
            build_dir=build_dir, test_dir=build_dir, results_xml=str(results),
            testcase=testcase, seed=seed, waves=waves, timescale=TIMESCALE,
            extra_env={"MASKPROP_SEED": str(seed), "MASKPROP_TB_PARAMS": json.dumps(params),
                       "MASKPROP_TB_REPORT": str(report_path)},
            log_file=build_dir / f"sim{suffix}.log",
        )
    except SystemExit:
        # Under pytest the runner exits on failing testcases; the results file says which.
        pass
    tests, failures = get_results(results)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return TestbenchRun(sim, toplevel, build_dir, tests, failures,
                        time.monotonic() - started, seed, report)
