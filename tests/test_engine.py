# amaranth: UnusedElaboratable=no
"""SparseGradPE and SparseDotEngine in Amaranth's simulator, against the golden model."""

import random

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.hw.engine import SparseDotEngine
from maskprop.hw.index_decoder import chunk_cycles
from maskprop.sim.cycle_model import chunk_costs, engine_cycles, stream_schedule
from maskprop.host.driver import chunk_stream
from maskprop.tb.amaranth_sim import run_stream
from maskprop.tb.stimulus import random_gemm_operands, seed_from_env


def run_engine(engine, stream, *, dense=False, idle=0.0, backpressure=0.0, seed=0):
    def setup(ctx):
        ctx.set(engine.dense, dense)
    return run_stream(engine, list(stream.payloads()), outputs=stream.frames, idle=idle,
                      backpressure=backpressure, seed=seed, setup=setup)


@pytest.mark.parametrize("config", [Config(vec=16, lanes=4), Config(vec=8, lanes=3, tiles=1),
                                    Config(vec=4, lanes=4, data_width=8, acc_width=24)],
                         ids=["v16l4", "v8l3", "v4l4w8"])
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["streaming", "idle+bp"])
def test_engine_matches_golden(config, density, traffic):
    seed = seed_from_env(default=int(density * 100) + config.vec)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = np.random.default_rng(seed)
    X, Y = random_gemm_operands(rng, config, rows=6, reduction=37, cols=5, density=density)
    outputs = [(m, j) for m in range(6) for j in range(5)]
    stream = chunk_stream(X, Y, outputs, config.vec)
    assert np.array_equal(stream.expected, (X @ Y)[tuple(np.array(outputs).T)])
    engine = SparseDotEngine(config)
    run = run_engine(engine, stream, idle=traffic[0], backpressure=traffic[1], seed=seed)
    assert [r.value for r in run.outputs] == stream.expected.tolist()
    assert not any(r.overflow for r in run.outputs)
    if traffic == (0.0, 0.0):
        # Chunks are accepted, and results delivered, at exactly the cycle model's times.
        costs = chunk_costs(stream.x, stream.y, config.lanes)
        accepted, results = stream_schedule(costs, stream.chunks_per_frame, engine.latency)
        assert run.in_cycles == accepted.tolist()
        assert run.out_cycles == results.tolist()


@pytest.mark.parametrize("zero_skipping", [True, False], ids=["sparse-engine", "dense-only"])
def test_dense_mode(zero_skipping):
    """Dense mode (and the dense-only engine) spend ceil(vec/lanes) cycles on every chunk and
    still compute exactly."""
    config = Config(vec=16, lanes=4)
    rng = np.random.default_rng(3)
    X, Y = random_gemm_operands(rng, config, rows=3, reduction=40, cols=2, density=0.3)
    stream = chunk_stream(X, Y, [(m, j) for m in range(3) for j in range(2)], config.vec)
    engine = SparseDotEngine(config, zero_skipping=zero_skipping)
    run = run_engine(engine, stream, dense=zero_skipping)
    assert [r.value for r in run.outputs] == stream.expected.tolist()
    costs = chunk_costs(stream.x, stream.y, config.lanes, dense=True)
    _, results = stream_schedule(costs, stream.chunks_per_frame, engine.latency)
    assert run.out_cycles == results.tolist()
    assert results[-1] + 1 - engine.latency == engine_cycles(stream, config.lanes, dense=True)


def test_chunk_costs_agree_with_the_decoder_contract():
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, size=(50, 16)) * (rng.random((50, 16)) < 0.4)
    y = rng.integers(-2, 3, size=(50, 16))
    for lanes in (1, 3, 4, 16):
        costs = chunk_costs(x, y, lanes)
        expected = [chunk_cycles(int(np.count_nonzero((a != 0) & (b != 0))), lanes)
                    for a, b in zip(x, y)]
        assert costs.tolist() == expected
