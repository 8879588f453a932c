# amaranth: UnusedElaboratable=no
"""SparseDotEngine in Amaranth's simulator, against the lowered GEMM and, on conv layers, against
the golden model's direct convolution."""

import zlib

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.hw.engine import SparseDotEngine
from maskprop.hw.index_decoder import chunk_cycles
from maskprop.sim.cycle_model import chunk_costs, engine_cycles, stream_schedule
from maskprop.host.driver import chunk_stream
from maskprop.sim.lowering import lower_pass
from maskprop.sim.layer import ConvLayer
from maskprop.tb.amaranth_bench import run_stream
from maskprop.tb.conv_reference import direct_conv, in_gemm_order
from maskprop.tb.stimulus import random_conv_tensors, random_gemm_operands, seed_from_env


def run_engine(engine, stream, *, dense=False, idle=0.0, backpressure=0.0, seed=0,
               deadlines=None):
    """The stream's frames through the engine; the bench's scoreboard checks every result
    against ``stream.expected`` (no overflow), in order, by ``deadlines`` where given."""
    def setup(ctx):
        ctx.set(engine.dense, dense)
    expected = [{"value": int(v), "overflow": 0} for v in stream.expected]
    return run_stream(engine, list(stream.payloads()), expected, idle=idle,
                      backpressure=backpressure, seed=seed, setup=setup, deadlines=deadlines)


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
    streaming = traffic == (0.0, 0.0)
    costs = chunk_costs(stream.x, stream.y, config)
    accepted, results = stream_schedule(costs, stream.chunks_per_frame, engine.latency)
    # Unstalled, every result is due in the cycle model's cycle (a late one fails on arrival).
    run = run_engine(engine, stream, idle=traffic[0], backpressure=traffic[1], seed=seed,
                     deadlines=results.tolist() if streaming else None)
    if streaming:
        # Chunks are accepted, and results delivered, at exactly the cycle model's times.
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
    costs = chunk_costs(stream.x, stream.y, config, dense=True)
    _, results = stream_schedule(costs, stream.chunks_per_frame, engine.latency)
    assert run.out_cycles == results.tolist()
    assert results[-1] + 1 - engine.latency == engine_cycles(stream, config, dense=True)


def test_chunk_costs_agree_with_the_decoder_contract():
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, size=(50, 16)) * (rng.random((50, 16)) < 0.4)
    y = rng.integers(-2, 3, size=(50, 16))
    for lanes in (1, 3, 4, 16):
        for window in Config(lanes=lanes).select_windows():
            config = Config(lanes=lanes, select_window=window)
            costs = chunk_costs(x, y, config)
            expected = [chunk_cycles(sum(1 << e for e in range(16) if a[e] and b[e]), 16, lanes,
                                     window) for a, b in zip(x, y)]
            assert costs.tolist() == expected


CONV_LAYERS = {
    "3x3-s1": ConvLayer(2, 3, 5, 5, 4, 3, 1, 1, "c3k4"),
    "3x3-s2-odd": ConvLayer(1, 5, 5, 5, 3, 3, 2, 1, "c5k3s2"),
    "1x1": ConvLayer(2, 6, 3, 3, 5, 1, 1, 0, "1x1"),
}


@pytest.mark.parametrize("name", CONV_LAYERS)
@pytest.mark.parametrize("pass_name", ["forward", "backward_data", "backward_weight"])
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_conv_pass_matches_direct_convolution(name, pass_name, dense):
    """Every output of a conv pass the engine computes (sparse mode: the output mask's; dense
    mode: all) equals the golden model's direct convolution, not only the lowered GEMM, under
    random idle cycles and backpressure."""
    config = Config(vec=8, lanes=3, tiles=1)
    layer = CONV_LAYERS[name]
    seed = seed_from_env(default=zlib.crc32(f"{name}/{pass_name}".encode()) & 0xFFFF)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    A, W, dZ = random_conv_tensors(np.random.default_rng(seed), layer, 0.4, data_max=100)
    gemm = lower_pass(layer, pass_name, A=A, W=W, dZ=dZ)
    rows, cols = gemm.X.shape[0], gemm.Y.shape[1]
    wanted = np.ones((rows, cols), bool) if dense or gemm.omask is None else gemm.omask
    outputs = [tuple(position) for position in np.argwhere(wanted)]
    stream = chunk_stream(gemm.X, gemm.Y, outputs, config.vec)
    run = run_engine(SparseDotEngine(config), stream, dense=dense, idle=0.3, backpressure=0.4,
                     seed=seed)
    reference = in_gemm_order(gemm, direct_conv(gemm, A, W, dZ, dense=dense))
    assert [r.value for r in run.outputs] == [int(reference[m, j]) for m, j in outputs]
    # Outputs the engine was not asked for are 0 in the golden tensor (the mask is the ReLU's).
    assert not reference[~wanted].any()
