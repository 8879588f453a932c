"""Decoder, PE and engine as generated Verilog under cocotb (Verilator; ``SIM=icarus`` works),
bit-exact against the reference models, streaming and with random idle cycles and backpressure,
every handshake in the cycle the handshake reference predicts from the traffic and every engine
counter equal to the events it predicts (also across clear pulses, in every cycle), plus
``verilator --lint-only -Wall`` of every generated block."""

import random
import subprocess

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.hw.accumulation_tree import AccumulationTree
from maskprop.hw.engine import SparseDotEngine, counter_layout
from maskprop.hw.index_decoder import ZeroSkipIndexDecoder, chunk_cycles
from maskprop.hw.sparse_pe import SparseGradPE
from maskprop.sim.blocks import decode_chunks, index_beat_payload
from maskprop.sim.cycle_model import chunk_costs, engine_cycles, stream_schedule
from maskprop.host.driver import chunk_stream
from maskprop.tb import timing_reference as reference
from maskprop.tb.runner import WAIVERS, run_stream_bench
from maskprop.tb.stimulus import (random_chunks, random_gemm_operands, random_index_beats,
                                  seed_from_env)
from maskprop.flow.toolchain import verilator_executable
from maskprop.flow.verilog import write_verilog
from test_rtl_accumulation_tree import CONFIGS as TREE_CONFIGS

pytestmark = pytest.mark.sim

TRAFFIC = {"streaming": (0.0, 0.0), "idle+backpressure": (0.3, 0.4)}


def seeded(default):
    seed = seed_from_env(default=default)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    return seed


def bench(dut, name, inputs, expected, tmp_path, traffic, seed, *, model, **kwargs):
    """Run a stream bench and check that its scoreboard passed (every beat of ``expected``,
    in order, nothing more in the drain window) and that every beat moved in the cycle the
    handshake reference ``model`` predicts from the recorded traffic."""
    idle, backpressure = TRAFFIC[traffic]
    result = run_stream_bench(dut, name, inputs, expected, build_dir=tmp_path / "build",
                              idle=idle, backpressure=backpressure, seed=seed, **kwargs)
    assert result.passed, f"see {result.run.log}"
    result.prediction = reference.check_timing(result, model, {"i": inputs})
    return result


@pytest.mark.parametrize("vec, lanes, window", [(16, 4, None), (32, 8, None), (64, 16, None),
                                                (64, 5, None), (16, 4, 4), (64, 16, 16)])
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_decoder(vec, lanes, window, traffic, tmp_path):
    seed = seeded(vec * 100 + lanes + 10000 * (window or 0))
    rng = random.Random(seed)
    chunks = random_chunks(rng, vec, 300)
    expected = [index_beat_payload(b, vec=vec, window=window)
                for b in decode_chunks(chunks, lanes, vec=vec, window=window)]
    dut = ZeroSkipIndexDecoder(vec=vec, lanes=lanes, window=window)
    result = bench(dut, "index_decoder", [{"mask": m, "first": f, "last": l}
                                          for m, f, l in chunks], expected, tmp_path, traffic,
                   seed, model=reference.decoder_model(dut))
    if traffic == "streaming":
        costs = [chunk_cycles(m, vec, lanes, window) for m, _, _ in chunks]
        assert result.in_cycles == np.concatenate(([0], np.cumsum(costs)[:-1])).tolist()


@pytest.mark.parametrize("vec, lanes, data_width, window", [(16, 4, 16, None), (8, 8, 8, None),
                                                            (32, 3, 32, None), (16, 4, 16, 4),
                                                            (12, 6, 8, 4)])
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_pe(vec, lanes, data_width, window, traffic, tmp_path):
    seed = seeded(vec + lanes + data_width + 1000 * (window or 0))
    inputs, expected = random_index_beats(random.Random(seed), vec=vec, lanes=lanes,
                                          data_width=data_width, count=400, window=window)
    dut = SparseGradPE(vec=vec, lanes=lanes, data_width=data_width, window=window)
    # Streaming, beat k goes in in cycle k and its result is due `latency` cycles later.
    result = bench(dut, "sparse_pe", inputs, expected, tmp_path, traffic, seed,
                   model=reference.pe_model(),
                   deadlines=[k + dut.latency for k in range(len(inputs))]
                   if traffic == "streaming" else None)
    if traffic == "streaming":
        assert result.in_cycles == list(range(len(inputs)))
        assert [o - i for i, o in zip(result.in_cycles, result.out_cycles)] == \
            [dut.latency] * len(inputs)


def run_engine(engine, stream, tmp_path, traffic, seed, *, dense=False, sim=None, clear=(),
               deadlines=None):
    """The engine on ``stream``, exact and on time (by ``deadlines`` too, where given); every
    counter field equal to the events the handshake reference predicts, after the run and,
    when ``clear`` is pulsed (in those cycles), in every cycle."""
    expected = [{"value": int(v), "overflow": 0} for v in stream.expected]
    model = reference.EngineModel(engine.config, dense=dense,
                                  zero_skipping=engine.zero_skipping)
    result = bench(engine, "sparse_dot_engine", list(stream.payloads()), expected, tmp_path,
                   traffic, seed, model=model, drive={"dense": int(dense), "clear": 0},
                   read=["counters"], sim=sim, pulses={"clear": clear},
                   watch=["counters"] if clear else (), deadlines=deadlines)
    reference.check_counters(result, result.prediction, counter_layout())
    return result, counter_layout().from_bits(result.counters["counters"])


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_engine_counters_across_clears(dense, tmp_path):
    """``clear`` pulsed at random cycles of a run with idle cycles and backpressure: in every
    cycle every counter holds exactly the events after the last clear, one cycle late."""
    config = Config()
    seed = seeded(41)
    rng = np.random.default_rng(seed)
    X, Y = random_gemm_operands(rng, config, rows=5, reduction=60, cols=4, density=0.3)
    stream = chunk_stream(X, Y, [(m, j) for m in range(5) for j in range(4)], config.vec)
    busy = engine_cycles(stream, config, dense=dense)
    clear = sorted(random.Random(seed).sample(range(2, busy), 4))
    clear.append(clear[-1] + 1)                         # and a clear right after a clear
    result, _ = run_engine(SparseDotEngine(config), stream, tmp_path, "idle+backpressure",
                           seed, dense=dense, clear=clear)
    assert result.pulsed["clear"].count(True) == len(clear)


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_engine_on_icarus(dense, tmp_path):
    """The four-state simulator sees every undriven input as x: the engine must run there too,
    exact, with every counter resolvable and equal to the cycle model."""
    config = Config()
    seed = seeded(31)
    rng = np.random.default_rng(seed)
    X, Y = random_gemm_operands(rng, config, rows=4, reduction=40, cols=4, density=0.3)
    stream = chunk_stream(X, Y, [(m, j) for m in range(4) for j in range(4)], config.vec)
    result, counters = run_engine(SparseDotEngine(config), stream, tmp_path,
                                  "idle+backpressure", seed, dense=dense, sim="icarus")
    assert result.run.simulator == "icarus"
    assert counters.cycles - counters.stalls == engine_cycles(stream, config, dense=dense)
    nonzero = (stream.x != 0) & (stream.y != 0)
    assert counters.macs == (stream.x.size if dense else int(nonzero.sum()))
    assert counters.outputs == stream.frames


@pytest.mark.parametrize("density", [0.0, 0.1, 0.4, 1.0])
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_engine_random(density, traffic, tmp_path):
    """Random GEMM outputs at densities 0..1 (all-zero and all-one chunks included): exact
    results; counters equal the cycle model and the nonzero-product count."""
    check_engine_random(Config(), density, traffic, tmp_path)


@pytest.mark.parametrize("window, density", [(16, 0.4), (8, 0.1), (8, 0.7)])
@pytest.mark.parametrize("traffic", TRAFFIC)
def test_engine_other_windows(window, density, traffic, tmp_path):
    """The same with the other selection windows (each lane selects among ``window``
    elements; 16 is the full crossbar): exact, and the cycles of each chunk's busiest segment,
    as the cycle model counts."""
    check_engine_random(Config(select_window=window), density, traffic, tmp_path)


def check_engine_random(config, density, traffic, tmp_path):
    seed = seeded(int(density * 10) + 7 + 100 * config.window)
    rng = np.random.default_rng(seed)
    X, Y = random_gemm_operands(rng, config, rows=8, reduction=70, cols=6, density=density)
    stream = chunk_stream(X, Y, [(m, j) for m in range(8) for j in range(6)], config.vec)
    engine = SparseDotEngine(config)
    costs = chunk_costs(stream.x, stream.y, config)
    accepted, results = stream_schedule(costs, stream.chunks_per_frame, engine.latency)
    # Streaming, every result is due in the cycle model's cycle.
    result, counters = run_engine(engine, stream, tmp_path, traffic, seed,
                                  deadlines=results.tolist() if traffic == "streaming" else None)
    nonzero = (stream.x != 0) & (stream.y != 0)
    assert counters.cycles - counters.stalls == engine_cycles(stream, config)
    assert counters.macs == int(nonzero.sum())
    assert counters.chunks == stream.x.shape[0] * stream.x.shape[1]
    assert counters.chunks_skipped == int((~nonzero.any(axis=-1)).sum())
    assert counters.outputs == stream.frames
    if traffic == "streaming":
        assert counters.stalls == 0
        assert result.in_cycles == accepted.tolist()
        assert result.out_cycles == results.tolist()


@pytest.mark.parametrize("zero_skipping", [True, False], ids=["dense-mode", "dense-only-engine"])
@pytest.mark.parametrize("window", [4, 16])
def test_engine_dense(zero_skipping, window, tmp_path):
    """The sparsity-agnostic baseline: the same RTL with ``dense`` set, and the engine built
    without a decoder, both exact and at ceil(vec/lanes) cycles per chunk (with the full
    crossbar and with a selection window of 4)."""
    config = Config(select_window=window)
    seed = seeded(11)
    rng = np.random.default_rng(seed)
    X, Y = random_gemm_operands(rng, config, rows=4, reduction=50, cols=4, density=0.3)
    stream = chunk_stream(X, Y, [(m, j) for m in range(4) for j in range(4)], config.vec)
    engine = SparseDotEngine(config, zero_skipping=zero_skipping)
    _, counters = run_engine(engine, stream, tmp_path, "idle+backpressure", seed, dense=True)
    assert counters.cycles - counters.stalls == engine_cycles(stream, config, dense=True)
    assert counters.macs == stream.x.size
    assert counters.chunks_skipped == 0


BLOCKS = {
    **{f"tree-{name}": (lambda params=params: AccumulationTree(**params))
       for name, params in TREE_CONFIGS.items()},
    "decoder": lambda: ZeroSkipIndexDecoder(vec=16, lanes=4, masks=2),
    "decoder-v64": lambda: ZeroSkipIndexDecoder(vec=64, lanes=16),
    "pe": lambda: SparseGradPE.from_config(Config()),
    "engine": lambda: SparseDotEngine(Config()),
    "engine-dense-only": lambda: SparseDotEngine(Config(), zero_skipping=False),
    "engine-v8-l3": lambda: SparseDotEngine(Config(vec=8, lanes=3, data_width=8, acc_width=24)),
    "decoder-window4": lambda: ZeroSkipIndexDecoder(vec=16, lanes=4, masks=2, window=4),
    "decoder-v12-window4": lambda: ZeroSkipIndexDecoder(vec=12, lanes=6, window=4),
    "engine-window8": lambda: SparseDotEngine(Config(select_window=8)),
    "engine-dense-only-window4": lambda: SparseDotEngine(Config(select_window=4),
                                                         zero_skipping=False),
}


@pytest.mark.parametrize("name", BLOCKS)
def test_verilator_lint_clean(name, tmp_path):
    """``verilator --lint-only -Wall``: nothing but the explained generator idioms."""
    source = write_verilog(BLOCKS[name](), "block", tmp_path / "block.v")
    lint = subprocess.run([str(verilator_executable()), "--lint-only", "-Wall", str(WAIVERS),
                           str(source)], capture_output=True, text=True)
    assert lint.returncode == 0 and "%Warning" not in lint.stderr, lint.stderr
