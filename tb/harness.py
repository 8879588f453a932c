"""What every maskprop cocotb testbench does: read its parameters, start clock and reset, seed its
random generator (printed), and write its measurements to the report file for the runner."""

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from maskprop.tb.stimulus import seed_from_env

__all__ = ["params", "start", "record"]


def params() -> dict:
    """The block parameters the runner generated the DUT with."""
    return json.loads(os.environ["MASKPROP_TB_PARAMS"])


async def start(dut, *, reset_cycles: int = 2) -> tuple[random.Random, int]:
    """Start a 100 MHz clock, reset the DUT, and return (rng, seed).

    The seed is ``MASKPROP_SEED`` (set by the runner), else cocotb's own ``RANDOM_SEED``; it is
    logged so that a failing run can be repeated with ``MASKPROP_SEED=<seed>``.
    """
    seed = seed_from_env(default=cocotb.RANDOM_SEED)
    dut._log.info("seed=%d (rerun with MASKPROP_SEED=%d)", seed, seed)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for _ in range(reset_cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    return random.Random(seed), seed


def record(test: str, **measurements):
    """Add one test's measurements to the JSON report the runner reads back."""
    path = os.environ.get("MASKPROP_TB_REPORT")
    if not path:
        return
    path = Path(path)
    report = json.loads(path.read_text()) if path.exists() else {}
    report[test] = measurements
    path.write_text(json.dumps(report, indent=2))
