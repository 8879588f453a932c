"""scripts/bench_packing.py, the design study of issue 11's packing and both-operand skipping:
each scheme's cycles on GEMMs small enough to count by hand."""

from types import SimpleNamespace

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.sim.cycle_model import mode_cycles

# Window 4 at vec 16, lanes 4: four segments of one lane each (segment s: positions s, s + 4, ...).
CONFIG = Config(vec=16, lanes=4, tiles=4, col_block=8)


@pytest.fixture(scope="module")
def study(script):
    return script("bench_packing")


def gemm(X, Y, omask=None, vec=16):
    """What the schemes read of a lowered pass: every element structural."""
    X, Y = np.asarray(X), np.asarray(Y)
    return SimpleNamespace(X=X, Y=Y, structure=np.ones(X.shape, dtype=bool), vec=vec,
                           omask=omask)


def test_rotation_spreads_one_channel_over_the_lanes(study):
    """Row 0 has one nonzero, at position 0, in each of its 4 chunks: all in segment 0, so the
    row schemes without rotation take 4 cycles per group and with it (chunk k rotated by k) 1,
    as the full crossbar packing 4 nonzeros into 4 lanes does. Today each chunk costs a cycle."""
    X = np.zeros((1, 64), dtype=int)
    X[0, ::16] = 1
    Y = np.ones((64, 1), dtype=int)
    cycles = study.scheme_cycles(gemm(X, Y), CONFIG)
    assert cycles["today"] == mode_cycles(gemm(X, Y), CONFIG, dense=False) == 4
    assert (cycles["row, window"], cycles["row, rotated"], cycles["row, crossbar"]) == (4, 1, 1)
    # One output, one tile: the output schemes pack its 4 products the same way.
    assert cycles["output, rotated, dealt"] == cycles["output, crossbar, dealt"] == 1
    assert cycles["output, rotated, queue bound"] == 1       # ceil(1 / 4 tiles)
    # Reading a chunk pair a cycle, the output takes its 4 chunks' cycles.
    assert cycles["output, rotated, dealt, a chunk a cycle"] == 4


def test_output_schemes_skip_both_operands_and_deal_the_outputs(study):
    """Two rows with 8 nonzeros each in one chunk (positions 0..7: two per segment), and five
    columns of Y of which column j has its first 2 * j elements nonzero: output (m, j) has a
    product at each position below min(8, 2j), and its busiest segment sets its cycles."""
    X = np.zeros((2, 16), dtype=int)
    X[:, :8] = 1
    Y = np.zeros((16, 5), dtype=int)
    for j in range(5):
        Y[:2 * j, j] = 1
    cycles = study.scheme_cycles(gemm(X, Y), CONFIG)
    # Products of column j in segment s: positions s and s + 4 below 2j.
    cost = [max(1, max(sum(p < 2 * j for p in (s, s + 4)) for s in range(4)))
            for j in range(5)]
    assert cost == [1, 1, 1, 2, 2]
    # Dealt: row 0's outputs to tiles 0..3, 0; row 1's one tile further: 1..3, 0, 1.
    per_tile = [0] * 4
    for m in range(2):
        for j in range(5):
            per_tile[(j + m) % 4] += cost[j]
    assert cycles["output, rotated, dealt"] == max(per_tile) == 5
    assert cycles["output, rotated, queue bound"] == -(-2 * sum(cost) // 4) == 4
    # A barrier every row: each row's busiest tile.
    rows = []
    for m in range(2):
        row = [0] * 4
        for j in range(5):
            row[(j + m) % 4] += cost[j]
        rows.append(max(row))
    assert cycles["output, rotated, barrier 1"] == sum(rows) == 6
    # Lanes decoupled: each tile's segments sum their products over the tile's outputs.
    per_lane = np.zeros((4, 4), dtype=int)
    for m in range(2):
        for j in range(5):
            for s in range(4):
                per_lane[(j + m) % 4, s] += sum(p < 2 * j for p in (s, s + 4))
    assert cycles["output, rotated, lanes decoupled"] == per_lane.max() == 4
    # The shared decoder skips X's zeros only: 8 nonzeros per group, 2 groups per row
    # (5 columns on 4 tiles), two per segment: 2 cycles a group.
    assert cycles["row, window"] == 2 * 2 * 2
    assert cycles["row, crossbar"] == 2 * 2 * 2


def test_rows_with_no_wanted_output_cost_nothing_in_the_new_schemes(study):
    X = np.ones((2, 16), dtype=int)
    Y = np.ones((16, 4), dtype=int)
    omask = np.array([[True] * 4, [False] * 4])
    cycles = study.scheme_cycles(gemm(X, Y, omask), CONFIG)
    assert cycles["today"] == 4 + 4          # the masked row still takes its chunk's cycles
    assert cycles["row, rotated"] == 4
    assert cycles["output, rotated, dealt"] == 4      # 4 outputs of 4 cycles, one per tile
