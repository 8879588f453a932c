"""Each tile's overflow flag is its own: the tile array driven directly (the host driver refuses
any pass that could overflow) with rows in which exactly one column's sum leaves the accumulator,
at every tile position of the first group and of a replayed group, in Amaranth's simulator."""

import random

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.hw.tile_array import TileArray
from maskprop.sim.blocks import accumulate_frames
from maskprop.sim.lowering import mask_words
from maskprop.tb.amaranth_bench import run_streams
from maskprop.tb.stimulus import seed_from_env

# 8-bit operands into a 17-bit accumulator, the tree's own width: four products of
# (-128) * (-128) = 2**14 reach 2**16, one past the largest sum it holds.
CONFIG = Config(vec=8, lanes=2, tiles=3, data_width=8, acc_width=17, col_block=6, max_chunks=4,
                max_cols=6)
COLUMNS = 6                       # one block, two groups of three tiles
CHUNKS = 3                        # 24 reduction elements: four for each column


def overflow_pass():
    """``X (6, 24)``, ``Y (24, 6)``: column ``j`` is -128 on elements ``4j .. 4j+3`` and 1
    elsewhere; row ``r`` is -128 on elements ``4r .. 4r+3`` and 0 elsewhere. Row ``r``'s sum
    in column ``r`` is ``4 * 2**14`` (overflows), in every other column ``4 * -128``."""
    elements = CHUNKS * CONFIG.vec
    owner = np.arange(elements) // 4
    Y = np.where(owner[:, None] == np.arange(COLUMNS)[None, :], -128, 1)
    X = np.where(owner[None, :] == np.arange(COLUMNS)[:, None], -128, 0)
    return X, Y


def expected_results(X, Y):
    """Every group's beat, by the tree's reference: each tile accumulates its column's products
    in the beats the decoder makes of X's nonzeros (``lanes`` per beat, chunk by chunk)."""
    vec, lanes, tiles = CONFIG.vec, CONFIG.lanes, CONFIG.tiles
    beats = []
    for m in range(X.shape[0]):
        issued = []                                     # the elements of each decoder beat
        for k in range(CHUNKS):
            elements = (k * vec + np.flatnonzero(X[m, k * vec:(k + 1) * vec])).tolist()
            issued += [elements[b:b + lanes] for b in range(0, len(elements), lanes)]
        for group in range(0, COLUMNS, tiles):
            columns = list(range(group, group + tiles))
            results = [accumulate_frames([([int(X[m, i]) * int(Y[i, j]) for i in beat],
                                           n == 0, n == len(issued) - 1)
                                          for n, beat in enumerate(issued)],
                                         CONFIG.acc_width)[0]
                       for j in columns]
            beats.append({"value": [r.value for r in results],
                          "overflow": sum(r.overflow << t for t, r in enumerate(results)),
                          "column": columns, "valid": (1 << tiles) - 1})
    return beats


@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["streaming", "idle+bp"])
def test_each_tile_flags_only_its_own_overflow(traffic):
    seed = seed_from_env(default=8)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    X, Y = overflow_pass()
    expected = expected_results(X, Y)
    # Row r overflows exactly in tile r % 3 of group r // 3; no other tile anywhere.
    assert [beat["overflow"] for beat in expected] == [
        1 << (m % CONFIG.tiles) if group == m // CONFIG.tiles else 0
        for m in range(COLUMNS) for group in range(2)]
    rng = random.Random(seed)
    order = rng.sample(range(COLUMNS), COLUMNS)           # rows in random order
    x_chunks = X.reshape(COLUMNS, CHUNKS, CONFIG.vec)
    masks = mask_words(x_chunks)
    inputs = {
        "load": [{"addr": j * CONFIG.max_chunks + k,
                  "y": Y[k * CONFIG.vec:(k + 1) * CONFIG.vec, j].tolist()}
                 for j in range(COLUMNS) for k in range(CHUNKS)],
        "rows": [{"omask": (1 << COLUMNS) - 1, "col_valid": (1 << COLUMNS) - 1, "col_base": 0}
                 for _ in order],
        "x": [{"x": x_chunks[m, k].tolist(), "mask": int(masks[m, k]), "index": k,
               "last": int(k == CHUNKS - 1)} for m in order for k in range(CHUNKS)],
    }
    dut = TileArray(CONFIG)

    def setup(ctx):
        ctx.set(dut.dense, 0)
    # The rows went in shuffled: their results must come out in that order, each beat exact.
    run_streams(dut, inputs, [expected[2 * m + group] for m in order for group in range(2)],
                phases=[["load"], ["rows", "x"]], idle=traffic[0], backpressure=traffic[1],
                seed=seed, setup=setup, max_cycles=5000)
