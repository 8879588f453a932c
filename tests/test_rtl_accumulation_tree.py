"""AccumulationTree as generated Verilog, under cocotb (Verilator by default, ``SIM=icarus``)."""

import pytest

from maskprop.base.config import Config
from maskprop.hw.accumulation_tree import AccumulationTree
from maskprop.tb.runner import run_testbench

pytestmark = pytest.mark.sim

TEST_MODULE = "maskprop.tb.bench_accumulation_tree"

CONFIGS = {
    "default": dict(lanes=4, in_width=32, acc_width=48),
    "one-lane": dict(lanes=1, in_width=8, acc_width=10),
    "odd-lanes-one-stage": dict(lanes=5, in_width=16, acc_width=20, stages=1),
    "combinational-tree": dict(lanes=8, in_width=32, acc_width=48, stages=0),
    # 16 x 8-bit terms into a 13-bit accumulator: the extreme frames overflow, exercising the flag.
    "narrow-accumulator": dict(lanes=16, in_width=8, acc_width=13),
    "wide": dict(lanes=16, in_width=64, acc_width=72, stages=2),
}


def run_tree(dut, tmp_path, sim=None, **extra):
    params = dict(lanes=dut.lanes, in_width=dut.in_width, acc_width=dut.acc_width,
                  stages=dut.stages, latency=dut.latency, **extra)
    run = run_testbench(dut, "accumulation_tree", TEST_MODULE, params=params, sim=sim,
                        build_dir=tmp_path / "build")
    print(f"seed={run.seed} (rerun with MASKPROP_SEED={run.seed}); logs in {run.build_dir}")
    return run


@pytest.mark.parametrize("name", CONFIGS)
def test_tree_matches_reference(name, tmp_path):
    dut = AccumulationTree(**CONFIGS[name])
    run = run_tree(dut, tmp_path)
    assert (run.tests, run.failures) == (3, 0), f"see {run.build_dir}/sim.log"
    assert run.report["back_to_back"]["throughput"] == 1.0
    assert run.report["random_streaming"]["min_latency"] == dut.latency
    if name == "narrow-accumulator":
        assert run.report["random_streaming"]["overflows"] > 0


def test_tree_on_icarus(tmp_path):
    """Both simulators stay selectable: the default configuration also passes on Icarus."""
    run = run_tree(AccumulationTree.from_config(Config()), tmp_path, sim="icarus")
    assert (run.simulator, run.tests, run.failures) == ("icarus", 3, 0)


class TreeMissingAStage(AccumulationTree):
    """A deliberately wrong tree: one pipeline register dropped, latency still claimed."""

    @property
    def registered_levels(self):
        return frozenset(sorted(super().registered_levels)[1:])


def test_testbench_catches_a_dropped_pipeline_stage(tmp_path):
    """The testbench must fail a tree whose latency is not what it claims: its results come a
    cycle early (on time for the scoreboard's deadlines), which the handshake reference notices
    in the two unstalled tests."""
    dut = TreeMissingAStage(lanes=4, in_width=32, acc_width=48, stages=2)
    run = run_tree(dut, tmp_path)
    assert run.tests == 3 and run.failures >= 2, "a wrong latency went unnoticed"
    log = run.log.read_text()
    # Back to back: the first result in cycle latency - 1 = 2, where the reference says 3.
    assert "output o: beat 0 of 63 moved in cycle 2, the handshake reference says cycle 3" \
        in log, log[-3000:]
    assert log.count("output o: beat 0 of ") >= 2, log[-3000:]
