# amaranth: UnusedElaboratable=no
# (the parameter tests construct tiles that are refused)
"""JoinTile in Amaranth's simulator, each lane's four banks as real memories: every result
bit-exact (value, overflow, tag) with :func:`~maskprop.sim.blocks.join_tile_sums`, in order,
nothing missing or surplus, under random idle cycles on ``i`` and backpressure on ``o``;
unstalled, every output accepted and every result offered in exactly the cycle of the closed
form (:func:`~maskprop.sim.cycle_model.join_tile_schedule`), with lanes drifting apart as far
as the queue lets them; parameter validation; Verilog lint."""

import random
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth import unsigned

from maskprop.base.config import Config
from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.hw.join_tile import JoinTile
from maskprop.sim.blocks import join_tile_sums
from maskprop.sim.cycle_model import join_tile_schedule, join_word_costs
from maskprop.tb.amaranth_bench import run_stream
from maskprop.tb.join_banks import Banks, WithBanks
from maskprop.tb.stimulus import seed_from_env

TAG_BITS = 8


def tile_banks(rng, tile: JoinTile) -> list:
    return [Banks.random(rng, tile.lane) for _ in range(tile.lanes)]


def run(tile: JoinTile, banks: list, outputs: list, **traffic):
    """``outputs`` through the tile, every result checked by the bench's scoreboard; returns
    the run and the closed form's schedule."""
    sums = join_tile_sums([[b.output(o) for b in banks] for o in outputs], tile.acc_width)
    expected = [{"value": s.value, "overflow": s.overflow, "tag": o["tag"]}
                for s, o in zip(sums, outputs)]
    schedule = join_tile_schedule([[b.word_costs(o) for o in outputs] for b in banks],
                                  tile.queue)
    return run_stream(WithBanks(tile, banks), outputs, expected, **traffic), schedule


def random_outputs(rng, tile: JoinTile, count: int) -> list:
    words = 1 << tile.lane.word_addr_width
    return [{"x_word": rng.randrange(words), "y_word": rng.randrange(words),
             "last_word": rng.randrange(tile.lane.max_words), "tag": k % (1 << TAG_BITS)}
            for k in range(count)]


TILES = {
    "lanes4-queue4": dict(lanes=4, queue=4, window=4, group=4, data_width=8, acc_width=18,
                          word_addr_width=4, max_words=5),
    "lanes4-queue1": dict(lanes=4, queue=1, window=4, group=2, data_width=8, acc_width=18,
                          word_addr_width=4, max_words=5),
    "lanes3-queue8": dict(lanes=3, queue=8, window=3, group=2, data_width=5, acc_width=10,
                          word_addr_width=3, max_words=6),
    "lanes1-queue2": dict(lanes=1, queue=2, window=2, group=1, data_width=4, acc_width=8,
                          word_addr_width=2, max_words=1),
    "lanes2-queue3": dict(lanes=2, queue=3, window=8, group=8, data_width=16, acc_width=40,
                          word_addr_width=3, max_words=2),
}


def make(params) -> JoinTile:
    return JoinTile(tag=unsigned(TAG_BITS), **params)


@pytest.mark.parametrize("params", TILES.values(), ids=TILES.keys())
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["streaming", "idle+bp"])
def test_random_outputs(params, traffic):
    """Results bit-exact, overflow and tag included (narrow accumulators overflow in lanes and
    in the join); unstalled, every handshake in the closed form's cycle."""
    seed = seed_from_env(default=sum(params.values()) * 11 + len(traffic))
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    tile = make(params)
    record, (accepted, offered) = run(tile, tile_banks(rng, tile), random_outputs(rng, tile, 150),
                                      idle=traffic[0], backpressure=traffic[1], seed=seed)
    if traffic == (0.0, 0.0):
        assert record.in_cycles == accepted
        assert record.out_cycles == offered


def test_lanes_drift_apart():
    """Two lanes whose products alternate (lane 0 busy on even outputs, lane 1 on odd ones):
    with a queue of 4 each lane costs only its own products, about half of what lanes in
    lockstep (a queue of 1) cost; exact cycles unstalled in both."""
    words = 16
    full, empty = 0xFF, 0x00
    data = [[1] * 4 for _ in range(words * 2)]
    busy = [Banks(4, 2, [full] * 8 + [empty] * 8, [full] * words, data, data),
            Banks(4, 2, [empty] * 8 + [full] * 8, [full] * words, data, data)]
    outputs = [{"x_word": 0 if k % 2 == 0 else 8, "y_word": 0, "last_word": 3, "tag": k}
               for k in range(40)]
    ends = {}
    for queue in (1, 4):
        tile = make(dict(lanes=2, queue=queue, window=4, group=2, data_width=8, acc_width=18,
                         word_addr_width=4, max_words=4))
        record, (accepted, offered) = run(tile, busy, outputs)
        assert record.in_cycles == accepted and record.out_cycles == offered
        assert [int(r.value) for r in record.outputs] == [32] * len(outputs)
        ends[queue] = offered[-1]
    busiest_lane = 20 * 4 * 8 + 20 * 4          # 20 busy outputs (4 words of 8) + 20 idle ones
    lockstep = 40 * 4 * 8
    assert ends[4] < busiest_lane + 20 < lockstep <= ends[1]


@pytest.mark.parametrize("params, message", [
    (dict(lanes=0), "lanes must be in \\[1, 16\\]"),
    (dict(lanes=17), "lanes must be in \\[1, 16\\]"),
    (dict(queue=0), "queue must be in \\[1, 64\\]"),
    (dict(queue=65), "queue must be in \\[1, 64\\]"),
    (dict(group=3), "group must be a power of two"),
    (dict(acc_width=3), "acc_width must be in \\[16, 128\\]"),
])
def test_parameters_checked(params, message):
    with pytest.raises(ValueError, match=message):
        make({**TILES["lanes4-queue4"], **params})


@pytest.mark.sim
@pytest.mark.parametrize("name", ["lanes4-queue4", "lanes3-queue8", "lanes1-queue2"])
def test_verilog_lints(name):
    """The tile generates Verilog that ``verilator --lint-only -Wall`` accepts (one lane with
    one-word outputs and no chunk bits; three lanes with the index table)."""
    lint_verilog(generate_verilog(make(TILES[name]), "join_tile"), "join_tile")


# --- The join array's model (sim/cycle_model.py) -----------------------------------------------

def brute_force_word_costs(X, Y, vec: int, window: int, group: int) -> np.ndarray:
    """Each lane's cost of each word of each output, counted element by element: chunk ``k``
    rotated by ``k`` (position ``p`` moves to ``(p + k) % vec``), lane ``s`` taking the rotated
    positions ``s, s + segments, ...``, a word of ``group`` chunks costing ``max(1, n)``."""
    segments = vec // window
    chunks = X.shape[1] // vec
    words = -(-chunks // group)
    costs = np.zeros((segments, X.shape[0], Y.shape[1], words), dtype=np.int64)
    for s in range(segments):
        for m in range(X.shape[0]):
            for j in range(Y.shape[1]):
                for w in range(words):
                    n = 0
                    for k in range(w * group, min(chunks, (w + 1) * group)):
                        for p in range(vec):
                            lane = (p + k) % vec % segments
                            if lane == s and X[m, k * vec + p] and Y[k * vec + p, j]:
                                n += 1
                    costs[s, m, j, w] = max(1, n)
    return costs


@pytest.mark.parametrize("vec, window, group", [(8, 4, 2), (16, 4, 4), (6, 3, 1), (8, 8, 4)])
def test_join_word_costs_count_each_lanes_products(vec, window, group):
    seed = seed_from_env(default=vec * 100 + window * 10 + group)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = np.random.default_rng(seed)
    chunks = 5
    X = rng.random((6, chunks * vec)) < 0.4
    Y = rng.random((chunks * vec, 7)) < 0.5
    config = Config(vec=vec, lanes=vec // window, tiles=2, col_block=4, select_window=window)
    gemm = SimpleNamespace(X=X, Y=Y, omask=None)
    expected = brute_force_word_costs(X, Y, vec, window, group)
    assert np.array_equal(join_word_costs(gemm, config, group, words=True), expected)
    assert np.array_equal(join_word_costs(gemm, config, group), expected.sum(axis=-1))


def test_a_lanes_overflow_is_flagged_even_when_the_total_fits():
    """Lane 0's running sum leaves the 8-bit range (3 x 64 = 192, wrapped to -64) and lane 1
    adds -56: the total of the wrapped partial sums, -120, fits, but the result is flagged."""
    tile = make(dict(lanes=2, queue=2, window=4, group=1, data_width=4, acc_width=8,
                     word_addr_width=1, max_words=1))
    big = [[-8, -8, -8, 0]] * 2
    banks = [Banks(4, 1, [0b0111] * 2, [0b0111] * 2, big, big),
             Banks(4, 1, [0b0001] * 2, [0b0001] * 2, [[7, 0, 0, 0]] * 2, [[-8, 0, 0, 0]] * 2)]
    record, _ = run(tile, banks, [{"x_word": 0, "y_word": 1, "last_word": 0, "tag": 5}])
    (result,) = record.outputs
    assert (int(result.value), int(result.overflow), int(result.tag)) == (-120, 1, 5)
