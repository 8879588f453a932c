# amaranth: UnusedElaboratable=no
# (the reference tests read the latency of blocks they never simulate)
"""Throughput and timing of every block, cycle-exact, in Amaranth's simulator.

Every block streams random beats, unstalled and with random idle cycles and backpressure, and
every handshake on every port must happen in exactly the cycle the handshake reference
(:mod:`maskprop.tb.timing_reference`) derives from the traffic the bench drove. The scoreboards
only see values (and deadlines where a timing contract gives them), so a block that computes
correctly but stalls a cycle too often under traffic (a PE that keeps a bubble while its output
waits, a tree that stops when nothing is waiting) fails here and nowhere else. The tile array's unstalled passes must moreover deliver every group's
result in the cycle the cycle model gives (:func:`~maskprop.sim.cycle_model.array_output_cycles`),
so a pass cannot get slower without a test noticing, even when every counter stays equal. The
engine's and the array's handshakes under traffic are checked with their counters, in
``tests/test_counters.py``.
"""

import random
import zlib

import numpy as np
import pytest

from maskprop.base.config import FPGA_SMALL, Config
from maskprop.hw.accumulation_tree import AccumulationTree
from maskprop.hw.engine import SparseDotEngine
from maskprop.hw.index_decoder import DenseIndexSequencer, ZeroSkipIndexDecoder
from maskprop.hw.sparse_pe import SparseGradPE
from maskprop.hw.tile_array import TileArray
from maskprop.sim.blocks import accumulate_frames, decode_chunks, index_beat_payload
from maskprop.sim.cycle_model import array_output_cycles, chunk_costs, stream_schedule
from maskprop.host.driver import chunk_stream
from maskprop.tb import timing_reference as reference
from maskprop.tb.amaranth_bench import run_stream, run_streams
from maskprop.tb.stimulus import (SMALL_PASSES, dense_sequencer_beats, random_chunks,
                                  random_frames, random_gemm_operands, random_index_beats,
                                  seed_from_env, small_pass)

TRAFFIC = {"streaming": (0.0, 0.0), "idle+backpressure": (0.3, 0.4),
           "heavy-backpressure": (0.1, 0.8)}


def seeded(name: str) -> int:
    seed = seed_from_env(default=zlib.crc32(name.encode()) & 0xFFFF)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    return seed


def chunk_payloads(chunks, masks=1):
    return [{"mask": mask, **({"mask_b": mask} if masks == 2 else {}), "first": first,
             "last": last} for mask, first, last in chunks]


@pytest.mark.parametrize("vec, lanes, masks, window", [(16, 4, 1, None), (8, 3, 2, None),
                                                       (5, 5, 1, None), (16, 4, 1, 4),
                                                       (16, 4, 2, 8)])
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_decoder_handshakes(vec, lanes, masks, window, traffic):
    seed = seeded(f"decoder/{vec}/{lanes}/{window}/{traffic}")
    chunks = random_chunks(random.Random(seed), vec, 200)
    payloads = chunk_payloads(chunks, masks)
    expected = [index_beat_payload(beat, vec=vec, window=window)
                for beat in decode_chunks(chunks, lanes, vec=vec, window=window)]
    dut = ZeroSkipIndexDecoder(vec=vec, lanes=lanes, masks=masks, window=window)
    run = run_stream(dut, payloads, expected, idle=TRAFFIC[traffic][0],
                     backpressure=TRAFFIC[traffic][1], seed=seed,
                     max_cycles=20 * len(expected) + 1000)
    reference.check_timing(run, reference.decoder_model(dut), {"i": payloads})


@pytest.mark.parametrize("vec, lanes", [(16, 4), (8, 3)])
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_dense_sequencer_handshakes(vec, lanes, traffic):
    seed = seeded(f"sequencer/{vec}/{lanes}/{traffic}")
    chunks = random_chunks(random.Random(seed), vec, 100)
    payloads = chunk_payloads(chunks)
    expected = dense_sequencer_beats(chunks, vec=vec, lanes=lanes)
    dut = DenseIndexSequencer(vec=vec, lanes=lanes)
    run = run_stream(dut, payloads, expected, idle=TRAFFIC[traffic][0],
                     backpressure=TRAFFIC[traffic][1], seed=seed,
                     max_cycles=20 * len(expected) + 1000)
    reference.check_timing(run, reference.decoder_model(dut, dense_only=True),
                           {"i": payloads})


@pytest.mark.parametrize("lanes, window", [(3, None), (4, 2), (8, 1)])
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_pe_handshakes(lanes, window, traffic):
    """Whole-pipeline stall with bubble collapse: the PE takes a beat whenever its output
    register is empty, even while ``o`` is back-pressured (and with a selection window, each
    lane's product from its own segment)."""
    seed = seeded(f"pe/{lanes}/{window}/{traffic}")
    inputs, expected = random_index_beats(random.Random(seed), vec=8, lanes=lanes, data_width=8,
                                          count=300, window=window)
    run = run_stream(SparseGradPE(vec=8, lanes=lanes, data_width=8, window=window), inputs,
                     expected,
                     idle=TRAFFIC[traffic][0], backpressure=TRAFFIC[traffic][1], seed=seed,
                     max_cycles=20 * len(inputs) + 1000)
    reference.check_timing(run, reference.pe_model(), {"i": inputs})


@pytest.mark.parametrize("stages", [0, 1, 2])
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_tree_handshakes(stages, traffic):
    """Whole-pipeline stall: the tree's registers move whenever the result register is empty
    or being taken; a frame's non-last beats never occupy it."""
    seed = seeded(f"tree/{stages}/{traffic}")
    beats = random_frames(random.Random(seed), lanes=4, width=16, frames=80)
    payloads = [{"terms": terms, "first": first, "last": last} for terms, first, last in beats]
    expected = [{"value": r.value, "overflow": r.overflow} for r in accumulate_frames(beats, 20)]
    run = run_stream(AccumulationTree(lanes=4, in_width=16, acc_width=20, stages=stages),
                     payloads, expected, idle=TRAFFIC[traffic][0],
                     backpressure=TRAFFIC[traffic][1], seed=seed, max_cycles=20 * len(beats))
    reference.check_timing(run, reference.tree_model(stages), {"i": payloads})


# --- the tile array's unstalled timing against the cycle model ---------------------------------

@pytest.mark.parametrize("name", SMALL_PASSES)
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_array_unstalled_timing(name, dense):
    """Unstalled, the Y load takes one cycle per chunk, the first row is accepted right after
    it, and every group's result (so the pass's last cycle) comes exactly when the cycle
    model's contract says: no bubbles between groups and rows, ``latency`` after a group's
    last decoder cycle."""
    seed = seeded(f"unstalled/{name}")
    array_pass, _ = small_pass(name, seed)
    dut = TileArray(FPGA_SMALL)

    def setup(ctx):
        ctx.set(dut.dense, dense)
        ctx.set(dut.chunk_shift, array_pass.chunk_shift)
    expected = list(array_pass.expected_results(dense))
    inputs = array_pass.inputs(dense)
    loads = len(inputs["load"])
    outputs = array_output_cycles(array_pass.issued(dense), array_pass.wanted(dense),
                                  FPGA_SMALL, latency=dut.latency)
    # Every result is due in the cycle model's cycle: the scoreboard fails a late one on the
    # spot, and the cycles are compared exactly below.
    run = run_streams(dut, inputs, expected, phases=[["load"], ["rows", "x"]], setup=setup,
                      read=("counters",), max_cycles=10 * len(expected) + 10_000,
                      deadlines=(loads + outputs).tolist())
    assert run.port_cycles["load"] == list(range(loads))
    assert run.port_cycles["rows"][0] == loads
    assert run.out_cycles == (loads + outputs).tolist()
    assert run.cycles == loads + outputs[-1] + 1
    assert run.read["counters"].cycles == array_pass.model_cycles(dense)
    assert run.read["counters"].stalls == 0


# --- the reference agrees with the cycle model where both apply ---------------------------------

def unstalled_traffic(inputs, phases, cycles):
    """What an unstalled bench drives: each phase's ports valid from the cycle the previous
    phase's last beat went (``load`` is always ready: one beat per cycle) until the end."""
    start, valid = 0, {}
    for phase in phases:
        for port in phase:
            valid[port] = [start <= t for t in range(cycles)]
        start += max(len(inputs[port]) for port in phase)
    return reference.Traffic(valid, [True] * cycles)


@pytest.mark.parametrize("name", SMALL_PASSES)
def test_reference_unstalled_is_the_cycle_model(name):
    """The two timing statements, the handshake reference (any traffic) and the cycle model
    (unstalled), give the same cycle for every result of every unstalled pass."""
    array_pass, _ = small_pass(name, seeded(f"unstalled/{name}"))
    for dense in (False, True):
        inputs = array_pass.inputs(dense)
        outputs = array_output_cycles(array_pass.issued(dense), array_pass.wanted(dense),
                                      FPGA_SMALL, latency=TileArray(FPGA_SMALL).latency)
        loads = len(inputs["load"])
        traffic = unstalled_traffic(inputs, [["load"], ["rows", "x"]],
                                    loads + int(outputs[-1]) + 20)
        prediction = reference.predict(
            reference.TileArrayModel(FPGA_SMALL, dense=dense), traffic, inputs)
        assert prediction.out_cycles == (loads + outputs).tolist()
        assert sum(prediction.events["cycles"]) == array_pass.model_cycles(dense)


def test_reference_unstalled_engine_is_the_cycle_model():
    config = Config()
    rng = np.random.default_rng(seeded("unstalled/engine"))
    X, Y = random_gemm_operands(rng, config, rows=5, reduction=50, cols=4, density=0.3)
    stream = chunk_stream(X, Y, [(m, j) for m in range(5) for j in range(4)], config.vec)
    payloads = list(stream.payloads())
    accepted, results = stream_schedule(chunk_costs(stream.x, stream.y, config),
                                        stream.chunks_per_frame,
                                        SparseDotEngine(config).latency)
    cycles = int(results[-1]) + 10
    prediction = reference.predict(reference.EngineModel(config),
                                   reference.Traffic({"i": [True] * cycles}, [True] * cycles),
                                   {"i": payloads})
    assert prediction.port_cycles["i"] == accepted.tolist()
    assert prediction.out_cycles == results.tolist()
