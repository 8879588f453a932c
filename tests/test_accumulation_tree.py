# amaranth: UnusedElaboratable=no
# (the parameter tests construct blocks that are refused or never simulated)
"""AccumulationTree in Amaranth's simulator: fast unit tests against the block reference."""

import random
import zlib

import pytest
from amaranth.hdl import Fragment

from maskprop.base.config import Config
from maskprop.hw.accumulation_tree import AccumulationTree
from maskprop.sim.blocks import FrameResult, accumulate_frames
from maskprop.tb.amaranth_bench import run_stream
from maskprop.tb.stimulus import random_frames, seed_from_env


def run(dut, beats, *, idle=0.0, backpressure=0.0, seed=0, deadlines=None):
    """``beats`` through the tree, every result checked by the bench's scoreboard against the
    block reference (:func:`~maskprop.sim.blocks.accumulate_frames`); returns the results and
    the stream run (handshake cycles)."""
    payloads = [{"terms": terms, "first": first, "last": last} for terms, first, last in beats]
    expected = [{"value": r.value, "overflow": r.overflow}
                for r in accumulate_frames(beats, dut.acc_width)]
    run = run_stream(dut, payloads, expected, idle=idle, backpressure=backpressure, seed=seed,
                     deadlines=deadlines)
    return [FrameResult(r.value, bool(r.overflow)) for r in run.outputs], run


CONFIGS = [
    dict(lanes=1, in_width=8, acc_width=12),
    dict(lanes=3, in_width=8, acc_width=11, stages=1),
    dict(lanes=4, in_width=32, acc_width=48),
    dict(lanes=4, in_width=32, acc_width=48, stages=0),
    dict(lanes=5, in_width=16, acc_width=19, stages=3),
    dict(lanes=8, in_width=32, acc_width=48, stages=2),
]


@pytest.mark.parametrize("params", CONFIGS, ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()))
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["streaming", "idle+backpressure"])
def test_matches_reference(params, traffic):
    seed = seed_from_env(default=zlib.crc32(repr((sorted(params.items()), traffic)).encode()))
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    dut = AccumulationTree(**params)
    beats = random_frames(rng, lanes=dut.lanes, width=dut.in_width, frames=60)
    # The bench's scoreboard holds every result to the reference, in order, none missing or
    # extra.
    run(dut, beats, idle=traffic[0], backpressure=traffic[1], seed=seed)


def test_narrow_accumulator_flags_overflow():
    # 2 lanes of 8-bit terms into a 9-bit accumulator, range [-256, 255].
    dut = AccumulationTree(lanes=2, in_width=8, acc_width=9)
    beats = [([-128, -128], True, False), ([-128, -128], False, True),   # -512: overflow
             ([100, 27], True, True),                                     # 127: fresh frame, clean
             ([-128, -128], True, False), ([-1, 0], False, False),        # -257: overflow ...
             ([127, 127], False, True)]                                   # ... sticky to the end
    seed = seed_from_env(default=9)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    results, _ = run(dut, beats, idle=0.3, backpressure=0.4, seed=seed)
    # The scoreboard held the results to the reference; the reference itself, by hand:
    assert [(r.value, r.overflow) for r in results] == [(0, True), (127, False), (-3, True)]


@pytest.mark.parametrize("stages", [0, 1, 2, 3])
def test_latency_and_throughput(stages):
    """Single-beat frames back to back: one accepted per cycle, each out `latency` cycles later."""
    dut = AccumulationTree(lanes=8, in_width=16, acc_width=24, stages=stages)
    assert dut.latency == stages + 1
    beats = [([n] * 8, True, True) for n in range(20)]
    # Beat n is taken in cycle n and its result is due exactly `latency` cycles later.
    results, run_ = run(dut, beats, deadlines=[n + dut.latency for n in range(20)])
    assert run_.in_cycles == list(range(20)), "not one beat per cycle"
    assert [o - i for i, o in zip(run_.in_cycles, run_.out_cycles)] == [dut.latency] * 20
    assert [r.value for r in results] == [8 * n for n in range(20)]


def test_from_config():
    config = Config(lanes=8, data_width=16, acc_width=40, vec=16)
    dut = AccumulationTree.from_config(config)
    assert (dut.lanes, dut.in_width, dut.acc_width, dut.stages) == (8, 32, 40, 3)
    Fragment.get(dut, None)  # elaborates


@pytest.mark.parametrize("params, message", [
    (dict(lanes=0, in_width=8, acc_width=16), r"lanes must be in \[1, 64\]"),
    (dict(lanes=65, in_width=8, acc_width=16), r"lanes must be in \[1, 64\]"),
    (dict(lanes=4, in_width=1, acc_width=16), r"in_width must be in \[2, 64\]"),
    (dict(lanes=4, in_width=8, acc_width=9), r"acc_width must be in \[10, 128\]"),
    (dict(lanes=4, in_width=8, acc_width=16, stages=3), r"stages must be in \[0, 2\]"),
    (dict(lanes=4, in_width=8, acc_width="16"), r"acc_width must be an integer"),
])
def test_rejects_illegal_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        AccumulationTree(**params)
