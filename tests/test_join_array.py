# amaranth: UnusedElaboratable=no
# (the parameter tests construct arrays that are refused)
"""JoinArray in Amaranth's simulator: whole passes (Y loaded, then X rows and their wanted
columns) with every result bit-exact (value, overflow, column, row end) with
:func:`~maskprop.sim.blocks.join_array_sums`, in order, nothing missing or surplus, under random
idle cycles on the inputs and backpressure on ``o``; unstalled, every ``x``, ``rows`` and ``o``
handshake in exactly the cycle of :func:`~maskprop.sim.cycle_model.join_array_schedule`, with
tiles drifting apart as far as the ring lets them; parameter validation; Verilog lint."""

import random
from types import SimpleNamespace

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.hw.join_array import JoinArray
from maskprop.sim.cycle_model import decoupled_tile_cycles, join_array_cycles, join_word_costs
from maskprop.tb.amaranth_bench import run_streams
from maskprop.tb.join_banks import ArrayPass
from maskprop.tb.stimulus import seed_from_env

ARRAYS = {
    # Non-power-of-two tiles, lanes and columns; the row's last word partly used.
    "tiles3-lanes2": dict(tiles=3, lanes=2, window=2, group=2, queue=2, ring=2,
                          max_columns=7, max_chunks=5, data_width=6, acc_width=14),
    # Four lanes of four with a look-ahead of four chunks, a deeper ring.
    "tiles2-lanes4": dict(tiles=2, lanes=4, window=4, group=4, queue=4, ring=3,
                          max_columns=6, max_chunks=6, data_width=8, acc_width=20),
    # Three lanes (the rotation by a modulo), queue 1, a ring of one row, narrow sums.
    "tiles4-lanes3": dict(tiles=4, lanes=3, window=1, group=1, queue=1, ring=1,
                          max_columns=9, max_chunks=4, data_width=5, acc_width=10),
    # One tile of one lane: every chunk a word, the degenerate dealer and collector.
    "tiles1-lanes1": dict(tiles=1, lanes=1, window=3, group=2, queue=3, ring=2,
                          max_columns=3, max_chunks=3, data_width=4, acc_width=8),
}


def run(array: JoinArray, passes: ArrayPass, **traffic):
    """The pass through the array (Y loaded first), every result checked by the bench's
    scoreboard; returns the run and the model's schedule."""
    return (run_streams(array, passes.streams(array), passes.results(array),
                        phases=[["y"], ["x", "rows"]], **traffic),
            passes.schedule(array))


def phase_cycles(record, schedule):
    """The run's ``x``, ``rows`` and ``o`` handshake cycles from the first ``x`` beat on."""
    start = record.port_cycles["x"][0]
    return tuple([c - start for c in cycles] for cycles in
                 (record.port_cycles["x"], record.port_cycles["rows"], record.out_cycles))


@pytest.mark.parametrize("name", ARRAYS)
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["streaming", "idle+bp"])
def test_random_passes(name, traffic):
    """Results bit-exact, overflow included (narrow sums overflow in lanes and in the join);
    unstalled, every handshake in the model's cycle."""
    params = ARRAYS[name]
    seed = seed_from_env(default=sum(params.values()) * 7 + int(traffic[0] * 10))
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    array = JoinArray(**params)
    passes = ArrayPass.random(rng, array, rows=12)
    record, schedule = run(array, passes, idle=traffic[0], backpressure=traffic[1], seed=seed)
    if traffic == (0.0, 0.0):
        assert phase_cycles(record, schedule) == tuple(schedule)


def test_tiles_drift_apart_within_the_ring():
    """Rows whose one wanted output is busy on alternate tiles: with a ring of four rows the
    tiles overlap their rows, with a ring of one each row waits for the last; exact in both."""
    rng = np.random.default_rng(3)
    rows, chunks, vec = 16, 4, 4
    x = rng.integers(-8, 8, (rows, chunks * vec))
    y = rng.integers(-8, 8, (chunks * vec, 2))
    x_mask = np.ones_like(x, dtype=bool)
    y_mask = np.ones_like(y, dtype=bool)
    y_mask[:, 1] = False                        # column 1 has no product: one cycle a word
    wanted = np.zeros((rows, 2), dtype=bool)
    wanted[0::2, 0] = True                      # even rows: the busy column (tile 0 ...)
    wanted[1::2, 1] = True                      # odd rows: the idle one (... tile 1)
    ends = {}
    for ring in (1, 4):
        array = JoinArray(tiles=2, lanes=2, window=2, group=2, queue=4, ring=ring,
                          max_columns=2, max_chunks=chunks, data_width=5, acc_width=16)
        passes = ArrayPass(x, y, x_mask, y_mask, wanted)
        record, schedule = run(array, passes)
        assert phase_cycles(record, schedule) == tuple(schedule)
        ends[ring] = schedule[2][-1]
    assert ends[4] < ends[1]


def test_a_row_without_wanted_outputs_costs_the_dealer_one_cycle():
    """Rows wanting nothing are taken a cycle apart once written and free their slots: the pass
    ends with the results of the rows that want some, nothing for the others."""
    rng = np.random.default_rng(4)
    x = rng.integers(-4, 4, (6, 8))
    y = rng.integers(-4, 4, (8, 3))
    wanted = np.zeros((6, 3), dtype=bool)
    wanted[5, 2] = True
    array = JoinArray(tiles=2, lanes=2, window=2, group=1, queue=2, ring=2, max_columns=3,
                      max_chunks=2, data_width=4, acc_width=12)
    passes = ArrayPass(x, y, x != 0, y != 0, wanted)
    record, schedule = run(array, passes)
    x_cycles, rows_cycles, out_cycles = phase_cycles(record, schedule)
    assert (x_cycles, rows_cycles, out_cycles) == tuple(schedule)
    assert len(out_cycles) == 1
    # Row r's chunks are written in cycles 2r, 2r + 1; it is dealt the cycle after.
    assert rows_cycles[:5] == [2 * r + 2 for r in range(5)]


def test_join_array_cycles_approach_the_unbounded_queue():
    """The whole array's exact cycles (``join_array_cycles``) are at least the bound of
    unbounded queues (``decoupled_tile_cycles``), fall as the queue and the ring deepen, and
    come within pipeline fill of the bound with deep ones (the first row's four chunks, its
    deal, a lane's latency, the join's, the collector's: 17 cycles, and the tiles' uneven
    last outputs)."""
    rng = np.random.default_rng(5)
    X = rng.random((12, 64)) < 0.3
    Y = rng.random((64, 10)) < 0.6
    omask = rng.random((12, 10)) < 0.7
    config = Config(vec=16, lanes=4, tiles=3, col_block=4)
    gemm = SimpleNamespace(X=X, Y=Y, omask=omask)
    bound = decoupled_tile_cycles(join_word_costs(gemm, config, 2), omask, config.tiles)
    exact = {(queue, ring): join_array_cycles(gemm, config, group=2, queue=queue, ring=ring)
             for queue, ring in ((1, 1), (4, 2), (16, 8))}
    assert bound < exact[16, 8] <= exact[4, 2] <= exact[1, 1]
    assert exact[16, 8] <= bound + 24


@pytest.mark.parametrize("params, message", [
    (dict(tiles=0), "tiles must be in \\[1, 16\\]"),
    (dict(ring=17), "ring must be in \\[1, 16\\]"),
    (dict(max_columns=0), "max_columns must be in \\[1, 256\\]"),
    (dict(max_chunks=4097), "max_chunks must be in \\[1, 4096\\]"),
    (dict(lanes=17), "lanes must be in \\[1, 16\\]"),
    (dict(queue=0), "queue must be in \\[1, 64\\]"),
    (dict(window=0), "window must be in \\[1, 16\\]"),
    (dict(group=3), "group must be a power of two"),
    (dict(acc_width=3), "acc_width must be in \\[12, 128\\]"),
])
def test_parameters_checked(params, message):
    with pytest.raises(ValueError, match=message):
        JoinArray(**{**ARRAYS["tiles3-lanes2"], **params})


@pytest.mark.sim
@pytest.mark.parametrize("name", ARRAYS)
def test_verilog_lints(name):
    """The array generates Verilog that ``verilator --lint-only -Wall`` accepts."""
    lint_verilog(generate_verilog(JoinArray(**ARRAYS[name]), "join_array"), "join_array")
