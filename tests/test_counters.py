"""Every performance counter of the engine and of the tile array, exact in every cycle, in
Amaranth's simulator.

Each run streams with random idle cycles and backpressure (and, for the timing that backpressure
hides, unstalled) and pulses ``clear`` at random cycles in the middle of the run. The handshake
reference (:mod:`maskprop.tb.handshake_model`) predicts from the recorded traffic every
handshake - which must match the RTL's - and every counter event, by the counters' documented
definitions; every field of ``counters``, in every cycle and after the run, must then equal
what the documented counter timing makes of those events and of the clear pulses
(:func:`~maskprop.tb.handshake_model.counter_values`): an event of cycle ``t`` shows from cycle
``t + 2``, and a clear in cycle ``c`` leaves exactly the events of cycles ``c + 1`` onwards.
So a counter that counts offered instead of accepted beats, looks at the wrong chunk, lags by
another cycle or keeps an event across a clear fails, whatever the totals.
"""

import random
import zlib

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.host.driver import ArrayPass
from maskprop.sim.lowering import lower_pass
from maskprop.hw.engine import SparseDotEngine, counter_layout
from maskprop.hw.tile_array import TileArray, array_counter_layout
from maskprop.sim.cycle_model import engine_cycles
from maskprop.host.driver import chunk_stream
from maskprop.sim.layer import ConvLayer
from maskprop.tb import handshake_model as reference
from maskprop.tb.amaranth_sim import as_payload, run_stream, run_streams
from maskprop.tb.stimulus import random_conv_tensors, random_gemm_operands, seed_from_env

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
    assert values == [0, 0, 1, 2, 3, 0, 0, 1, 2, 3, 5]
    # After the run, the event of its last cycle has landed too: events of cycles 5..9.
    assert values[-1] == 5
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
    X, Y = random_gemm_operands(rng, config, rows=6, reduction=45, cols=5, density=0.3)
    stream = chunk_stream(X, Y, [(m, j) for m in range(6) for j in range(5)], config.vec)
    payloads = list(stream.payloads())
    engine = SparseDotEngine(config, **kind)
    busy = engine_cycles(stream, config.lanes, dense=dense)
    pulses = clear_pulses(random.Random(seed), 2, busy)

    def setup(ctx):
        ctx.set(engine.dense, dense)
    run = run_stream(engine, payloads, outputs=stream.frames, idle=TRAFFIC[traffic][0],
                     backpressure=TRAFFIC[traffic][1], seed=seed, setup=setup,
                     read=("counters",), watch=("counters",), pulses={"clear": pulses},
                     max_cycles=20 * busy + 1000)
    assert [r.value for r in run.outputs] == stream.expected.tolist()
    assert run.pulsed["clear"].count(True) == len(pulses)          # all inside the run
    prediction = reference.check_timing(run, reference.EngineModel(config, dense=dense, **kind),
                                        {"i": payloads})
    final = reference.check_counters(run, prediction, counter_layout())
    print(f"clear in cycles {pulses}; counters after the last: {final}")
    # Over the whole run (no clear), the counters are the cycle model and the stream's counts.
    totals = {name: sum(events) for name, events in prediction.events.items()}
    assert totals["cycles"] - totals["stalls"] == busy
    assert totals["chunks"] == len(payloads) and totals["outputs"] == stream.frames


SMALL = Config(vec=8, lanes=2, tiles=3, col_block=6, max_chunks=8, max_cols=48)

# Output columns 7 and 8 are not multiples of col_block (6): the last block of every row has
# columns that do not exist (col_valid), which neither count as outputs nor as skipped ones.
ARRAY_PASSES = {
    "forward": (ConvLayer(1, 4, 4, 4, 7, 3, 1, 1, "c4k7"), "forward", 0.3),
    "backward-data": (ConvLayer(1, 3, 4, 4, 7, 3, 2, 1, "s2k7"), "backward_data", 0.4),
    "backward-weight": (ConvLayer(2, 3, 3, 3, 8, 1, 1, 0, "1x1"), "backward_weight", 0.4),
}


def array_pass(name, seed):
    layer, pass_name, density = ARRAY_PASSES[name]
    A, W, dZ = random_conv_tensors(np.random.default_rng(seed), layer, density, data_max=100)
    return ArrayPass.prepare(lower_pass(layer, pass_name, A=A, W=W, dZ=dZ), SMALL)


@pytest.mark.parametrize("name", ARRAY_PASSES)
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_array_counters(name, dense, traffic):
    seed = seeded(f"array/{name}/{traffic}")
    passed = array_pass(name, seed)
    inputs = passed.inputs()
    dut = TileArray(SMALL)
    loads = len(inputs["load"])
    busy = passed.model_cycles(dense)
    pulses = clear_pulses(random.Random(seed), loads, loads + busy)

    def setup(ctx):
        ctx.set(dut.n_chunks, passed.chunks)
        ctx.set(dut.dense, dense)
    expected = list(passed.expected_results(dense))
    run = run_streams(dut, inputs, phases=[["load"], ["rows", "x"]], outputs=len(expected),
                      idle=TRAFFIC[traffic][0], backpressure=TRAFFIC[traffic][1], seed=seed,
                      setup=setup, read=("counters",), watch=("counters",),
                      pulses={"clear": pulses}, max_cycles=20 * (loads + busy) + 1000)
    assert [as_payload(beat) for beat in run.outputs] == expected
    assert run.pulsed["clear"].count(True) == len(pulses)          # all inside the run
    assert np.array_equal(passed.assemble(run.outputs, dense), passed.golden(dense))
    prediction = reference.check_timing(
        run, reference.TileArrayModel(SMALL, n_chunks=passed.chunks, dense=dense), inputs)
    final = reference.check_counters(run, prediction, array_counter_layout())
    print(f"clear in cycles {pulses}; counters after the last: {final}")
    # Over the whole run, the events add up to the pass's own counts.
    totals = {name: sum(events) for name, events in prediction.events.items()}
    wanted = passed.wanted(dense)
    assert totals["cycles"] - totals["stalls"] == busy
    assert totals["rows"] == len(inputs["rows"]) and totals["groups"] == len(expected)
    assert totals["outputs"] == int(wanted.sum())
    assert totals["outputs_skipped"] == wanted.size - int(wanted.sum())
