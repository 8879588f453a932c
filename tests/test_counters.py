"""Every performance counter of the engine and of the tile array, exact in every cycle, in
Amaranth's simulator.

Each run streams with random idle cycles and backpressure (and, for the timing that backpressure
hides, unstalled) and pulses ``clear`` at random cycles in the middle of the run. The handshake
reference (:mod:`maskprop.tb.timing_reference`) predicts from the recorded traffic every
handshake - which must match the RTL's - and every counter event, by the counters' documented
definitions; every field of ``counters``, in every cycle and after the run, must then equal
what the documented counter timing makes of those events and of the clear pulses
(:func:`~maskprop.tb.timing_reference.counter_values`): an event of cycle ``t`` shows from cycle
``t + 2``, and a clear in cycle ``c`` leaves exactly the events of cycles ``c + 1`` onwards.
So a counter that counts offered instead of accepted beats, looks at the wrong chunk, lags by
another cycle or keeps an event across a clear fails, whatever the totals.
"""

import random
import zlib

import numpy as np
import pytest

from maskprop.base.config import FPGA_SMALL, Config
from maskprop.hw.engine import SparseDotEngine, counter_layout
from maskprop.hw.tile_array import TileArray, array_counter_layout
from maskprop.sim.cycle_model import engine_cycles
from maskprop.host.driver import chunk_stream
from maskprop.tb import timing_reference as reference
from maskprop.tb.amaranth_bench import run_stream, run_streams
from maskprop.tb.conv_reference import direct_conv
from maskprop.tb.stimulus import SMALL_PASSES, random_gemm_operands, seed_from_env, small_pass

TRAFFIC = {"streaming": (0.0, 0.0), "idle+backpressure": (0.3, 0.4)}


def seeded(name: str) -> int:
    seed = seed_from_env(default=zlib.crc32(name.encode()) & 0xFFFF)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    return seed


def clear_pulses(rng: random.Random, start: int, stop: int) -> list[int]:
    """Cycles in which to pulse ``clear``: three random ones in ``[start, stop)`` and a pair of
    consecutive ones (a clear right after a clear)."""
    cycles = set(rng.sample(range(start, stop - 1), 3))
    pair = rng.randrange(start, stop - 1)
    return sorted(cycles | {pair, pair + 1})


def test_counter_timing_rule():
    """The documented timing, on one counter with an event in every cycle and a clear in cycle
    4: it reads the events up to t - 2 in cycle t, reads 0 in the two cycles after the clear,
    and then counts exactly the events of cycles 5 onwards."""
    values = reference.counter_values({"n": [1] * 10}, [t == 4 for t in range(10)])["n"]
    # After the run (the last value), the event of its last cycle has landed too: events of
    # cycles 5..9.
    assert values == [0, 0, 1, 2, 3, 0, 0, 1, 2, 3, 5]
    # Events only in the clear's own cycle and the one before it: both are dropped.
    values = reference.counter_values({"n": [0, 0, 0, 7, 9, 0, 0]},
                                      [t == 4 for t in range(7)])["n"]
    assert values == [0] * 8


ENGINES = {
    "sparse": (Config(), dict(zero_skipping=True), False),
    "dense-mode": (Config(), dict(zero_skipping=True), True),
    "dense-only": (Config(vec=8, lanes=3, tiles=1), dict(zero_skipping=False), True),
}


@pytest.mark.parametrize("mode", ENGINES)
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_engine_counters(mode, traffic):
    config, kind, dense = ENGINES[mode]
    seed = seeded(f"engine/{mode}/{traffic}")
    rng = np.random.default_rng(seed)
    X, Y = random_gemm_operands(rng, config, rows=12, reduction=45, cols=8, density=0.3)
    # A third of X's chunks all zero, so that the decoder often holds one while the PE is
    # stalled (a cycle `stalls` must not count: the decoder offers nothing then).
    for m in range(X.shape[0]):
        for k in range(0, X.shape[1], config.vec):
            if rng.random() < 1 / 3:
                X[m, k:k + config.vec] = 0
    stream = chunk_stream(X, Y, [(m, j) for m in range(12) for j in range(8)], config.vec)
    payloads = list(stream.payloads())
    engine = SparseDotEngine(config, **kind)
    busy = engine_cycles(stream, config, dense=dense)
    pulses = clear_pulses(random.Random(seed), 2, busy)

    def setup(ctx):
        ctx.set(engine.dense, dense)
    expected = [{"value": int(v), "overflow": 0} for v in stream.expected]
    run = run_stream(engine, payloads, expected, idle=TRAFFIC[traffic][0],
                     backpressure=TRAFFIC[traffic][1], seed=seed, setup=setup,
                     read=("counters",), watch=("counters",), pulses={"clear": pulses},
                     max_cycles=20 * busy + 1000)
    assert run.pulsed["clear"].count(True) == len(pulses)          # all inside the run
    prediction = reference.check_timing(run, reference.EngineModel(config, dense=dense, **kind),
                                        {"i": payloads})
    final = reference.check_counters(run, prediction, counter_layout())
    print(f"clear in cycles {pulses}; counters after the last: {final}")
    # Over the whole run (no clear), the counters are the cycle model and the stream's counts.
    totals = {name: sum(events) for name, events in prediction.events.items()}
    assert totals["cycles"] - totals["stalls"] == busy
    assert totals["chunks"] == len(payloads) and totals["outputs"] == stream.frames


@pytest.mark.parametrize("name", SMALL_PASSES)
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_array_counters(name, dense, traffic):
    seed = seeded(f"array/{name}/{traffic}")
    passed, tensors = small_pass(name, seed)
    inputs = passed.inputs(dense)
    dut = TileArray(FPGA_SMALL)
    loads = len(inputs["load"])
    busy = passed.model_cycles(dense)
    pulses = clear_pulses(random.Random(seed), loads, loads + busy)

    def setup(ctx):
        ctx.set(dut.dense, dense)
        ctx.set(dut.chunk_shift, passed.chunk_shift)
    expected = list(passed.expected_results(dense))
    run = run_streams(dut, inputs, expected, phases=[["load"], ["rows", "x"]],
                      idle=TRAFFIC[traffic][0], backpressure=TRAFFIC[traffic][1], seed=seed,
                      setup=setup, read=("counters",), watch=("counters",),
                      pulses={"clear": pulses}, max_cycles=20 * (loads + busy) + 1000)
    assert run.pulsed["clear"].count(True) == len(pulses)          # all inside the run
    assert np.array_equal(passed.assemble(run.outputs, dense),
                          direct_conv(passed.gemm, *tensors, dense=dense))
    prediction = reference.check_timing(
        run, reference.TileArrayModel(FPGA_SMALL, dense=dense), inputs)
    final = reference.check_counters(run, prediction, array_counter_layout())
    print(f"clear in cycles {pulses}; counters after the last: {final}")
    # Over the whole run, the events add up to the pass's own counts.
    totals = {name: sum(events) for name, events in prediction.events.items()}
    wanted = passed.wanted(dense)
    assert totals["cycles"] - totals["stalls"] == busy
    assert totals["rows"] == len(inputs["rows"]) and totals["groups"] == len(expected)
    assert totals["outputs"] == int(wanted.sum())
    assert totals["outputs_skipped"] == wanted.size - int(wanted.sum())
