# amaranth: UnusedElaboratable=no
# (LATENCY reads the latency of a TileArray that is never elaborated)
"""The tile array's Verilog under cocotb, driven by the host driver: every pass of random and
real conv layers, every beat bit-exact against the lowered GEMM (the bench's scoreboard) and the
assembled tensor equal to the golden model's direct convolution, in sparse and dense mode, with
random idle cycles and backpressure; the array's cycle counter equal to the cycle model in every
case, every handshake in the cycle the handshake reference predicts from the traffic, every
counter equal to the events it predicts, and, unstalled, every result in the cycle the cycle
model gives."""

import random
from dataclasses import replace

import numpy as np
import pytest

from maskprop.base.config import Config, ceil_log2
from maskprop.host.driver import ArrayPass, mode_passes
from maskprop.host.runs import compare_on_array, run_on_array
from maskprop.hw.tile_array import TileArray, array_counter_layout
from maskprop.sim.cycle_model import array_output_cycles
from maskprop.sim.layer import PASSES, ConvLayer
from maskprop.tb.conv_reference import direct_conv
from maskprop.tb.stimulus import random_conv_tensors, seed_from_env
from maskprop.tb.timing_reference import TileArrayModel, check_counters, check_timing
from maskprop.workloads.digits import load_fixture

pytestmark = pytest.mark.sim

# Small buffers keep the Verilator build short; every test shares this one build.
CONFIG = Config(vec=16, lanes=4, tiles=4, col_block=8, max_chunks=32, max_cols=160)
LATENCY = TileArray(CONFIG).latency
# The same with the full crossbar (each lane selects among all 16 elements; the default window
# is 4): a second build.
FULL_CROSSBAR = CONFIG.full_window


def prepare(layer, pass_name, tensors, config=CONFIG) -> dict:
    """Each mode's :class:`ArrayPass`, in the lowering fastest for it (as comparisons run)."""
    A, W, dZ = tensors
    return mode_passes(layer, pass_name, config, A=A, W=W, dZ=dZ)


def check(modes, tensors, tmp_path, *, traffic=(0.25, 0.35), seed=None, sim=None):
    """Both modes (``modes``: each one's ArrayPass of ``tensors`` ``(A, W, dZ)``, whose
    configuration the array is built with) on the Verilog."""
    config = modes["sparse"].config
    comparison = compare_on_array(modes, build_dir=tmp_path, idle=traffic[0],
                                  backpressure=traffic[1], seed=seed, sim=sim)
    print(f"{comparison.label}: dense {comparison.dense.cycles} (model "
          f"{comparison.dense.model}), sparse {comparison.sparse.cycles} (model "
          f"{comparison.sparse.model}), speedup {comparison.speedup:.2f}x of ideal "
          f"{comparison.ideal}; seeds {comparison.dense.seed}/{comparison.sparse.seed}")
    assert comparison.dense.exact and comparison.sparse.exact, "RTL differs from golden model"
    for mode, run in (("dense", comparison.dense), ("sparse", comparison.sparse)):
        assert np.array_equal(run.tensor, direct_conv(modes[mode].gemm, *tensors,
                                                      dense=run.dense)), \
            f"{mode} mode: RTL differs from the direct convolution"
    assert comparison.dense.cycles == comparison.dense.model
    assert comparison.sparse.cycles == comparison.sparse.model
    sparse = modes["sparse"]
    assert comparison.sparse.counters["outputs"] == \
        int((sparse.omask & sparse.live_rows[:, None]).sum())
    if comparison.ideal is None:       # no nonzero product: nothing but the framing to do
        assert sparse.estimate().nonzero_macs == 0 and comparison.sparse.counters["macs"] == 0
    else:
        assert comparison.speedup <= comparison.ideal
    for mode, run in (("dense", comparison.dense), ("sparse", comparison.sparse)):
        array_pass = modes[mode]
        inputs = array_pass.inputs(run.dense)
        prediction = check_timing(run.bench, TileArrayModel(config, dense=run.dense), inputs)
        check_counters(run.bench, prediction, array_counter_layout())
        if traffic == (0, 0):
            # Unstalled: Y loaded one chunk per cycle, the first row taken right after, and
            # every result exactly when the cycle model's timing contract says.
            loads = len(inputs["load"])
            assert run.bench.port_cycles["load"] == list(range(loads))
            assert run.bench.port_cycles["rows"][0] == loads
            outputs = array_output_cycles(array_pass.issued(run.dense),
                                          array_pass.wanted(run.dense), config, latency=LATENCY)
            assert run.bench.out_cycles == (loads + outputs).tolist()
    return comparison


def random_case(index):
    """Layer, pass and density of random case ``index`` (deterministic in MASKPROP_SEED)."""
    rng = np.random.default_rng(seed_from_env(default=2024) + index)
    kernel = int(rng.choice([1, 3]))
    layer = ConvLayer(batch=2, in_channels=int(rng.integers(1, 13)),
                      height=int(rng.integers(3, 7)), width=int(rng.integers(3, 7)),
                      out_channels=int(rng.integers(1, 13)), kernel=kernel,
                      stride=int(rng.choice([1, 2])), padding=int(rng.choice([0, 1])) if
                      kernel == 3 else 0, name=f"random{index}")
    return rng, layer, PASSES[index % 3], float(rng.choice([0.1, 0.3, 0.5, 0.7, 0.9]))


@pytest.mark.parametrize("index", range(21))
def test_random_layers(index, tmp_path):
    """21 random layer/pass/density cases: 42 runs whose cycles must equal the model's."""
    rng, layer, pass_name, density = random_case(index)
    print(f"case {index}: {layer}, {pass_name}, density {density} "
          f"(MASKPROP_SEED={seed_from_env(default=2024)})")
    tensors = random_conv_tensors(rng, layer, density)
    check(prepare(layer, pass_name, tensors), tensors, tmp_path)


@pytest.mark.parametrize("index", [0, 1, 2, 4, 5])
def test_full_crossbar(index, tmp_path):
    """Random cases on the array whose lanes select among all 16 elements (the others run
    the default window of 4, where the cycle model counts each chunk's busiest segment):
    bit-exact, and cycle-exact against the cycle model."""
    rng, layer, pass_name, density = random_case(index)
    print(f"case {index}: {layer}, {pass_name}, density {density} "
          f"(MASKPROP_SEED={seed_from_env(default=2024)})")
    tensors = random_conv_tensors(rng, layer, density)
    check(prepare(layer, pass_name, tensors, FULL_CROSSBAR), tensors, tmp_path)


REAL = [(variant, layer, pass_name) for variant in ("plain", "batchnorm")
        for layer in ("conv2", "conv3") for pass_name in PASSES]


@pytest.mark.parametrize("variant, layer, pass_name", REAL, ids=["-".join(r) for r in REAL])
def test_digits_cnn_real_masks(variant, layer, pass_name, tmp_path):
    """One training step's real tensors; with BatchNorm dZ is dense but output sparsity stays."""
    record = load_fixture()[variant][layer]
    tensors = (record.A, record.W, record.dZ)
    comparison = check(prepare(record.layer, pass_name, tensors), tensors, tmp_path,
                       traffic=(0.1, 0.1))
    if pass_name == "backward_data":
        assert comparison.sparse.counters["outputs_skipped"] > 0   # output sparsity at work
        # Against the shape-aware dense baseline (it skips the dilation holes of the strided
        # conv2 too): 1.35x from output sparsity alone with BatchNorm (dZ dense), more without.
        assert comparison.speedup > 1.3


DENSE_ONLY = {
    # A random case of each pass.
    **{f"random{index}": random_case(index) for index in (0, 1, 2)},
    # Three channels of 16: each chunk's structure a short prefix.
    "first-layer": (np.random.default_rng(5), ConvLayer(2, 3, 6, 6, 8, 3, 1, 1, "rgb"),
                    "forward", 0.5),
    # Backward-weight broadcasting im2col(A): the border taps leave holes inside chunks, which
    # the prefix sequencer sends (it multiplies zeros there; the decoder does not).
    "scattered-structure": (np.random.default_rng(6), ConvLayer(2, 16, 3, 3, 8, 3, 1, 1, "bw"),
                            "backward_weight", 0.5),
}


@pytest.mark.parametrize("name", DENSE_ONLY)
def test_dense_only_array(name, tmp_path):
    """The dense-only array (a prefix sequencer instead of the decoder, always dense):
    bit-exact, cycle-exact against the cycle model, every handshake and counter as the
    handshake reference predicts, with random idle cycles and backpressure. On a prefix
    structure it takes exactly the zero-skipping array's dense-mode cycles; on scattered
    structure more."""
    rng, layer, pass_name, density = DENSE_ONLY[name]
    seed = seed_from_env(default=31)
    print(f"{name}: {layer}, {pass_name}, density {density}, seed={seed} "
          f"(rerun with MASKPROP_SEED={seed})")
    tensors = random_conv_tensors(rng, layer, density)
    A, W, dZ = tensors
    x_operand = "a" if name == "scattered-structure" else "dz"
    array_pass = ArrayPass.lower(layer, pass_name, CONFIG, A=A, W=W, dZ=dZ,
                                 x_operand=x_operand)
    run = run_on_array(array_pass, dense=True, build_dir=tmp_path, seed=seed, idle=0.25,
                       backpressure=0.35, component=TileArray(CONFIG, zero_skipping=False))
    assert run.exact, "RTL differs from the golden model"
    assert np.array_equal(run.tensor, direct_conv(array_pass.gemm, *tensors, dense=True))
    assert run.cycles == run.model == array_pass.model_cycles(True, zero_skipping=False)
    prediction = check_timing(run.bench, TileArrayModel(CONFIG, dense=True, zero_skipping=False),
                              array_pass.inputs(True))
    check_counters(run.bench, prediction, array_counter_layout())
    decoder_dense = array_pass.model_cycles(True)
    if name == "scattered-structure":
        assert run.cycles > decoder_dense
    elif name == "first-layer":
        assert run.cycles == decoder_dense


def test_dense_only_array_refuses_sparse_mode(tmp_path):
    layer = ConvLayer(1, 4, 3, 3, 4, 1, 1, 0, "tiny")
    A, W, dZ = random_conv_tensors(np.random.default_rng(0), layer, 0.5)
    array_pass = ArrayPass.lower(layer, "forward", CONFIG, A=A, W=W, dZ=dZ)
    with pytest.raises(ValueError, match="dense mode only"):
        run_on_array(array_pass, dense=False, build_dir=tmp_path,
                     component=TileArray(CONFIG, zero_skipping=False))
    with pytest.raises(ValueError, match="dense mode only"):
        array_pass.model_cycles(False, zero_skipping=False)


CORNERS = {
    # all-zero activations: forward issues only empty chunks, backward-data computes nothing.
    "all-zero-activations": (ConvLayer(2, 5, 4, 4, 6, 3, 1, 1, "zeros"), 0.0),
    # all-one masks: sparse mode must equal dense mode's results.
    "all-one-masks": (ConvLayer(2, 4, 4, 4, 5, 3, 1, 1, "ones"), 1.0),
    "1x1": (ConvLayer(2, 7, 4, 4, 9, 1, 1, 0, "1x1"), 0.5),
    "single-output-channel": (ConvLayer(2, 6, 5, 5, 1, 3, 1, 1, "k1"), 0.5),
    # 17 and 19 channels: neither a multiple of vec (16) nor of tiles (4), nor of col_block (8).
    "odd-channel-counts": (ConvLayer(2, 17, 3, 3, 19, 3, 2, 1, "c17k19"), 0.4),
}


@pytest.mark.parametrize("name", CORNERS)
@pytest.mark.parametrize("pass_name", PASSES)
def test_corner_cases(name, pass_name, tmp_path):
    layer, density = CORNERS[name]
    rng = np.random.default_rng(seed_from_env(default=7))
    tensors = random_conv_tensors(rng, layer, density)
    comparison = check(prepare(layer, pass_name, tensors), tensors, tmp_path)
    if name == "all-one-masks":
        assert np.array_equal(comparison.sparse.tensor, comparison.dense.tensor)


# CONFIG's row buffer with a Y buffer of 512 words, not 160 x 32: 9 chunks per column (3x3 over
# 16 channels) take a stride of 16, so 32 columns fill it to its last word; 3 chunks (1x1 over
# 40 channels) a stride of 4.
SMALL_Y = replace(CONFIG, y_words=512)
SMALL_Y_PASSES = {
    "forward-9-chunks": (ConvLayer(1, 16, 5, 5, 32, 3, 1, 1, "c16k32"), "forward", 9, 32),
    "backward-data-9-chunks": (ConvLayer(1, 32, 5, 5, 16, 3, 2, 1, "s2"), "backward_data", 9,
                               32),
    "forward-3-chunks": (ConvLayer(2, 40, 3, 3, 100, 1, 1, 0, "1x1"), "forward", 3, 100),
}


@pytest.mark.parametrize("name", SMALL_Y_PASSES)
def test_y_buffer_smaller_than_every_column(name, tmp_path):
    """y_words below max_cols x max_chunks and passes whose chunks are not a power of two (the
    column stride rounded up, below max_chunks, driven on chunk_shift): both modes bit-exact and
    cycle-exact with random idle cycles and backpressure."""
    layer, pass_name, chunks, cols = SMALL_Y_PASSES[name]
    seed = seed_from_env(default=11)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    tensors = random_conv_tensors(np.random.default_rng(seed), layer, 0.4)
    modes = mode_passes(layer, pass_name, SMALL_Y, A=tensors[0], W=tensors[1], dZ=tensors[2])
    sparse = modes["sparse"]
    assert (sparse.chunks, sparse.cols) == (chunks, cols)
    assert sparse.chunk_shift < ceil_log2(SMALL_Y.max_chunks)
    assert cols << sparse.chunk_shift <= SMALL_Y.y_words < SMALL_Y.max_cols * SMALL_Y.max_chunks
    check(modes, tensors, tmp_path, seed=seed)


@pytest.mark.parametrize("index", [1, 2, 3])
def test_on_icarus(index, tmp_path):
    """One random case of each pass on the four-state simulator, where an undriven input reads
    x: bit-exact, cycle-exact and every counter resolvable, as on Verilator."""
    rng, layer, pass_name, density = random_case(index)
    tensors = random_conv_tensors(rng, layer, density)
    comparison = check(prepare(layer, pass_name, tensors), tensors, tmp_path, sim="icarus")
    assert comparison.sparse.simulator == comparison.dense.simulator == "icarus"


UNSTALLED = {
    "forward-3x3": (ConvLayer(2, 5, 5, 5, 9, 3, 1, 1, "c5k9"), "forward", 0.3),
    "backward-data-stride-2": (ConvLayer(2, 6, 5, 5, 7, 3, 2, 1, "s2"), "backward_data", 0.5),
    "backward-weight-1x1": (ConvLayer(2, 9, 4, 4, 6, 1, 1, 0, "1x1"), "backward_weight", 0.3),
    # All-zero activations into a 1x1 conv: every column group is one decoder cycle, the most
    # groups in flight at once.
    "one-cycle-groups": (ConvLayer(2, 12, 3, 3, 13, 1, 1, 0, "zeros"), "forward", 0.0),
}


@pytest.mark.parametrize("name", UNSTALLED)
def test_unstalled_timing(name, tmp_path):
    """No idle cycle, no backpressure: every result of both modes in the cycle model's cycle."""
    layer, pass_name, density = UNSTALLED[name]
    seed = seed_from_env(default=5)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    tensors = random_conv_tensors(np.random.default_rng(seed), layer, density)
    check(prepare(layer, pass_name, tensors), tensors, tmp_path, traffic=(0, 0))


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_counters_across_clears(dense, tmp_path):
    """``clear`` pulsed at random cycles of a backward-data pass (output mask, a last column
    block with columns that do not exist) with idle cycles and backpressure: in every cycle
    every counter holds exactly the events after the last clear, one cycle late."""
    seed = seed_from_env(default=77)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    layer = ConvLayer(2, 11, 4, 4, 6, 3, 1, 1, "c11k6")
    tensors = random_conv_tensors(np.random.default_rng(seed), layer, 0.4)
    array_pass = prepare(layer, "backward_data", tensors)["sparse"]
    inputs = array_pass.inputs(dense)
    loads = len(inputs["load"])
    clear = sorted(random.Random(seed).sample(range(loads, loads + array_pass.model_cycles(dense)),
                                              4))
    clear.append(clear[-1] + 1)                         # and a clear right after a clear
    run = run_on_array(array_pass, dense=dense, build_dir=tmp_path, seed=seed, idle=0.25,
                       backpressure=0.35, clear=clear, watch=["counters"])
    assert run.exact
    assert np.array_equal(run.tensor, direct_conv(array_pass.gemm, *tensors, dense=dense))
    assert run.bench.pulsed["clear"].count(True) == len(clear)
    prediction = check_timing(run.bench, TileArrayModel(CONFIG, dense=dense), inputs)
    check_counters(run.bench, prediction, array_counter_layout())
