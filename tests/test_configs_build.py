"""Every valid configuration builds: each block generated from configurations drawn across the
documented ranges passes ``verilator --lint-only -Wall`` (with only the waivers' generator
idioms), a sample of tile arrays computes random masked GEMMs bit-exactly in Amaranth's
simulator, and buffers too large to generate are refused up front, by name.

Hypothesis runs derandomized (the same examples every run, so a failure reproduces as it is)
and prints the failing configuration; the simulation also prints its NumPy seed.
"""

import re
import time
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from maskprop.base.config import (DEFAULT, EVALUATION, FPGA_SMALL, GENERATABLE_BUFFER_BITS, Config,
                                  ceil_log2, y_chunk_shift)
from maskprop.host.driver import ArrayPass
from maskprop.sim.lowering import lower_pass
from maskprop.hw.accumulation_tree import AccumulationTree
from maskprop.hw.engine import SparseDotEngine
from maskprop.hw.index_decoder import (DenseIndexSequencer, PrefixIndexSequencer,
                                       ZeroSkipIndexDecoder)
from maskprop.hw.sparse_pe import SparseGradPE
from maskprop.hw.tile_array import TileArray
from maskprop.sim.layer import ConvLayer
from maskprop.tb.amaranth_bench import run_streams
from maskprop.flow.verilog import generate_verilog, lint_verilog

# No shrinking: an example takes seconds (generation, lint, simulation), so shrinking a failure
# would take many minutes; the failing example is printed as drawn, and derandomized runs draw it
# again.
BUILD_SETTINGS = settings(deadline=None, derandomize=True, print_blob=True, max_examples=8,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])


def generation_terms(c: Config) -> dict:
    """Rough seconds (beyond about 4 s for any configuration) to generate and lint all eight
    blocks of ``c``, by what grows: the decoder with lanes x vec, the PEs with tiles x lanes x
    vec x data_width, the tile array's column compaction with tiles x col_block, and its
    buffers with their bits. Fitted to measurements on 2 shared cores, where the largest
    configurations take minutes (vec=lanes=64: about 70 s; tiles=col_block=64: 25-65 s;
    vec=lanes=tiles=64: 10 minutes)."""
    return {
        "decoder": 0.0025 * c.lanes * c.vec,
        "pes": 0.0003 * c.tiles * c.lanes * c.vec * c.data_width,
        "compaction": 0.0054 * c.tiles * c.col_block,
        "buffers": 5e-6 * c.buffer_bits,
    }


def shrunk(config: Config, **changes) -> Config:
    """``config`` with the given parameters changed, the others adjusted to stay valid."""
    values = {**config.as_dict(), **changes}
    values["vec"] = max(1, values["vec"])
    values["lanes"] = max(1, min(values["lanes"], values["vec"]))
    values["tiles"] = max(1, values["tiles"])
    values["col_block"] = max(values["tiles"], values["col_block"])
    values["data_width"] = max(2, values["data_width"])
    values["tree_stages"] = min(values["tree_stages"], ceil_log2(values["lanes"]))
    if values["select_window"] not in Config(vec=values["vec"],
                                             lanes=values["lanes"]).select_windows():
        values["select_window"] = None
    values["max_chunks"] = max(1, values["max_chunks"])
    values["max_cols"] = max(1, values["max_cols"])
    # The full Y buffer (max_cols x max_chunks) follows the new buffers; a smaller one stays
    # a power of two between max_chunks and max_cols x max_chunks.
    full = values["max_chunks"] * values["max_cols"]
    values["y_words"] = (None if config.y_words == config.max_cols * config.max_chunks else
                         max(values["max_chunks"],
                             min(config.y_words, 1 << (full.bit_length() - 1))))
    return Config(**values)


# How to make each term of generation_terms smaller.
SHRINK = {
    # Halving vec (lanes <= vec follows) keeps lanes == vec draws at lanes == vec.
    "decoder": lambda c: shrunk(c, vec=c.vec // 2),
    "pes": lambda c: shrunk(c, tiles=c.tiles // 2) if c.tiles > 1 else
    shrunk(c, data_width=c.data_width // 2),
    "compaction": lambda c: shrunk(c, tiles=c.tiles // 2, col_block=c.col_block // 2),
    "buffers": lambda c: shrunk(c, max_cols=c.max_cols // 2) if c.max_cols > 1 else
    shrunk(c, max_chunks=c.max_chunks // 2),
}


@st.composite
def configs(draw, *, max_vec=64, max_tiles=64, max_block=64, max_data_width=32,
            max_chunks=16, max_cols=64, budget=1.0):
    """A valid ``Config`` from the documented ranges (vec 1..64, lanes 1..vec, tiles 1..64,
    col_block tiles..64, data_width 2..32, acc_width tree_width..64, tree_stages
    0..ceil(log2 lanes), select_window any of vec's and lanes', max_chunks a power of two,
    max_cols, y_words the full Y buffer or a power of two within it), with small buffers and
    within a generation ``budget`` (seconds of :func:`generation_terms`): each parameter reaches both
    ends of its range, but the large ones not all at once."""
    vec = draw(st.integers(1, max_vec))
    lanes = draw(st.integers(1, vec))
    tiles = draw(st.integers(1, max_tiles))
    col_block = draw(st.integers(tiles, max_block))
    # tree_width = 2 * data_width + ceil(log2 lanes) must leave room for acc_width <= 64.
    data_width = draw(st.integers(2, min(max_data_width, (64 - ceil_log2(lanes)) // 2)))
    tree_width = 2 * data_width + ceil_log2(lanes)
    acc_width = draw(st.integers(tree_width, 64))
    tree_stages = draw(st.integers(0, ceil_log2(lanes)))
    window = draw(st.sampled_from([None, *Config(vec=vec, lanes=lanes).select_windows()]))
    chunks = draw(st.sampled_from([1 << k for k in range(max_chunks.bit_length())]))
    cols = draw(st.integers(1, max_cols))
    # The Y buffer: the full max_cols x max_chunks (0), or the largest power of two within it
    # halved 0..2 times, at least max_chunks (so that passes run at a column stride the Y
    # buffer's size, not max_chunks, bounds).
    halvings = draw(st.integers(0, 3))
    full = chunks * cols
    config = Config(vec=vec, lanes=lanes, tiles=tiles, col_block=col_block,
                    data_width=data_width, acc_width=acc_width, tree_stages=tree_stages,
                    max_chunks=chunks, max_cols=cols, select_window=window,
                    y_words=None if halvings == 0 else
                    max(chunks, (1 << (full.bit_length() - 1)) >> (halvings - 1)))
    # An expensive draw is shrunk rather than rejected (rejecting would starve hypothesis):
    # the largest term is halved until the configuration fits the budget.
    while sum(generation_terms(config).values()) > budget:
        terms = generation_terms(config)
        for term in sorted(terms, key=terms.get, reverse=True):
            smaller = SHRINK[term](config)
            if smaller != config:
                config = smaller
                break
    return config


# Every block, as ``Config -> component``; built only when it is generated, so that a failure in
# one does not leave the others unelaborated.
BLOCKS = {
    "tree": AccumulationTree.from_config,
    "decoder": lambda c: ZeroSkipIndexDecoder.from_config(c, masks=2),
    "dense_sequencer": lambda c: DenseIndexSequencer.from_config(c, masks=2),
    "prefix_sequencer": lambda c: PrefixIndexSequencer.from_config(c, masks=2),
    "pe": SparseGradPE.from_config,
    "engine": lambda c: SparseDotEngine(c, zero_skipping=True),
    "engine_dense_only": lambda c: SparseDotEngine(c, zero_skipping=False),
    "tile_array": TileArray,
}

# vec == lanes and tiles == col_block at 2**k - 1: the counters' compares were always true; at
# 1, also one-word buffers and a one-beat dense sequencer (zero-width signals).
EDGES = [
    Config(vec=1, lanes=1, tiles=1, col_block=1, data_width=2, acc_width=4, max_chunks=1,
           max_cols=1),
    Config(vec=3, lanes=3, tiles=3, col_block=3, data_width=8, acc_width=18, max_chunks=2,
           max_cols=5),
    Config(vec=7, lanes=7, tiles=7, col_block=7, data_width=5, acc_width=13, max_chunks=4,
           max_cols=9),
    # The widest operands and column blocks, the largest buffers of these tests, and the
    # accumulator exactly as wide as the products (data_width = 32 needs lanes = 1).
    Config(vec=2, lanes=1, tiles=1, col_block=64, data_width=32, acc_width=64, max_chunks=16,
           max_cols=64),
    # Selection windows of one element (a lane per element) and with a non-power-of-two
    # number of segments (a position is offset * 3 + segment, not a concatenation, and the PE
    # maps it back by a table).
    Config(vec=4, lanes=4, tiles=2, col_block=2, data_width=4, acc_width=12, max_chunks=2,
           max_cols=3, select_window=1),
    Config(vec=12, lanes=6, tiles=2, col_block=4, data_width=6, acc_width=18, max_chunks=4,
           max_cols=6, select_window=4),
]


def with_examples(configs_list):
    def decorate(test):
        for config in reversed(configs_list):
            test = example(config=config)(test)
        return test
    return decorate


@pytest.mark.sim
@BUILD_SETTINGS
@with_examples(EDGES)
@given(config=configs())
def test_every_block_lints(config):
    print(f"config: {config}")
    for name, build in BLOCKS.items():
        lint_verilog(generate_verilog(build(config), name), name)


@pytest.mark.sim
@pytest.mark.parametrize("config", [DEFAULT, FPGA_SMALL, EDGES[0], EDGES[-1]],
                         ids=["default", "fpga-small", "vec1", "vec12-window4"])
def test_dense_only_tile_array_lints(config):
    """The dense-only tile array (the prefix sequencer in the decoder's place) lints clean at
    the default, the FPGA preset and two edge configurations (every block is drawn across the
    ranges above; the dense-only array differs from the zero-skipping one only there)."""
    lint_verilog(generate_verilog(TileArray(config, zero_skipping=False), "tile_array"),
                 "tile_array")


def test_strategy_reaches_both_ends_of_every_range():
    """The budget shrinks draws but leaves the documented ranges reachable: to both ends, except
    that lanes and tiles stop short of 64 (at about 15). A configuration with either at
    64 takes 25-70 s to generate and lint, longer than this whole file may take."""
    seen, restricted = {}, []

    @settings(max_examples=1000, deadline=None, derandomize=True, database=None)
    @given(config=configs())
    def collect(config):
        assert sum(generation_terms(config).values()) <= 1.0
        restricted.append(config.window < config.vec)
        for name, value in config.as_dict().items():
            low, high = seen.get(name, (value, value))
            seen[name] = (min(low, value), max(high, value))
    collect()
    print(f"ranges drawn: {seen}")
    assert seen["vec"] == (1, 64) and seen["col_block"] == (1, 64)
    assert seen["acc_width"][1] == 64 and seen["tree_stages"] == (0, 4)
    assert seen["max_chunks"] == (1, 16) and seen["max_cols"] == (1, 64)
    # data_width = 32 needs lanes = 1 (acc_width <= 64); EDGES has it.
    assert seen["data_width"][0] == 2 and seen["data_width"][1] >= 24
    assert seen["lanes"][0] == 1 and seen["lanes"][1] >= 12
    assert seen["tiles"][0] == 1 and seen["tiles"][1] >= 10
    assert seen["select_window"][0] == 1 and any(restricted)


# --- a sample of them in simulation --------------------------------------------------------------

def random_masked_gemm(rng, config, rows, reduction, cols, density):
    """A masked GEMM the array runs: backward-data of a 1x1 conv, so ``X = dZ`` (rows x
    reduction, ReLU-sparse), ``Y = W^T`` (reduction x cols) and the output mask is where the
    layer's input activation ``A`` is nonzero. Values span the whole ``data_width`` range."""
    layer = ConvLayer(batch=1, in_channels=cols, height=1, width=rows, out_channels=reduction,
                      kernel=1)

    def values(shape):
        return rng.integers(config.data_min, config.data_max + 1, size=shape)
    dZ = np.where(rng.random(layer.output_shape) < density, values(layer.output_shape), 0)
    A = np.where(rng.random(layer.input_shape) < density, 1, 0)
    W = values(layer.weight_shape)
    return lower_pass(layer, "backward_data", A=A, W=W, dZ=dZ, vec=config.vec)


@st.composite
def gemm_cases(draw, config_strategy):
    config = draw(config_strategy)
    reduction = draw(st.integers(1, min(config.max_chunks * config.vec,
                                        config.max_reduction(), 40)))
    # As many columns as the Y buffer holds at the pass's stride (at least one: y_words >=
    # max_chunks).
    fit = config.y_words >> config.y_chunk_shift(-(-reduction // config.vec))
    return (config, reduction, draw(st.integers(1, 5)),
            draw(st.integers(1, min(config.max_cols, fit, 12))))


SIM_EDGES = [(config, min(config.max_chunks * config.vec, config.max_reduction()), 3,
              config.max_cols) for config in EDGES[:3]]


@settings(BUILD_SETTINGS, max_examples=20)
@given(case=gemm_cases(configs(max_vec=16, max_tiles=8, max_block=16, max_data_width=16,
                               max_chunks=8, max_cols=24, budget=1.0)),
       dense=st.booleans(), density=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
       seed=st.integers(0, 2**32 - 1))
@example(case=SIM_EDGES[0], dense=False, density=0.5, seed=1)
@example(case=SIM_EDGES[1], dense=False, density=0.5, seed=2)
@example(case=SIM_EDGES[2], dense=True, density=0.5, seed=3)
@example(case=SIM_EDGES[2], dense=False, density=0.3, seed=4)
def test_tile_array_matches_numpy(case, dense, density, seed):
    """The array's results (values, columns, valid slots) are exactly NumPy's masked product,
    with random idle input and output backpressure."""
    config, reduction, rows, cols = case
    print(f"config: {config}, GEMM {rows}x{reduction}x{cols}, density {density}, "
          f"dense={dense}, seed={seed}")
    rng = np.random.default_rng(seed)
    gemm = random_masked_gemm(rng, config, rows, reduction, cols, density)
    array_pass = ArrayPass.prepare(gemm, config)
    dut = TileArray(config)

    def setup(ctx):
        ctx.set(dut.dense, dense)
        ctx.set(dut.chunk_shift, array_pass.chunk_shift)
    expected = list(array_pass.expected_results(dense))
    inputs = array_pass.inputs(dense)
    # A hung array fails in seconds: with 20 % idle inputs and 30 % backpressure a pass takes
    # a few times its unstalled cycles, far below this bound.
    bound = 10 * (len(inputs["load"]) + array_pass.model_cycles(dense) + len(expected) + 50)
    run = run_streams(dut, inputs, expected, phases=[["load"], ["rows", "x"]], idle=0.2,
                      backpressure=0.3, seed=seed, setup=setup, max_cycles=bound)

    # The same results assembled into the output matrix, against NumPy's product of the
    # operands as the host lowered them (dense mode computes every output).
    wanted = np.ones((rows, cols), bool) if dense else gemm.omask
    reference = np.where(wanted, gemm.X.astype(np.int64) @ gemm.Y.astype(np.int64), 0)
    out = np.zeros((rows, cols), dtype=np.int64)
    for (m, columns), beat in zip(array_pass.groups(dense), run.outputs):
        assert beat.valid == (1 << len(columns)) - 1
        for t, column in enumerate(columns):
            assert beat.column[t] == column
            out[m, column] = beat.value[t]
    assert np.array_equal(out, reference)


# --- buffers too large to generate -----------------------------------------------------------

def test_evaluation_config_is_valid_but_not_generated():
    """Config keeps accepting the cycle model's buffers; generation refuses them, naming the
    parameters, the buffer sizes, the limit and what would fit. The preset's value and the
    message's wording are snapshots; beside them, the refusal itself (check_generatable and
    TileArray both raise) and ``for_evaluation`` on another configuration."""
    config = EVALUATION
    assert config == Config(max_chunks=4096, max_cols=65536) == DEFAULT.for_evaluation()
    assert Config(vec=8, lanes=2).for_evaluation() == Config(vec=8, lanes=2, max_chunks=4096,
                                                             max_cols=65536)
    with pytest.raises(ValueError) as refused:
        config.check_generatable()
    message = str(refused.value)
    assert message.startswith("max_cols x max_chunks = 65536 x 4096 is too large to generate")
    assert "268,435,456 words x 256 bits" in message
    assert "4,194,304 (2**22)" in message
    assert "the largest generatable is max_cols=2 at max_chunks=4096" in message
    with pytest.raises(ValueError, match=r"^max_cols x max_chunks = 65536 x 4096 is too large"):
        TileArray(config)


@pytest.mark.parametrize("overrides, fits", [
    (dict(max_cols=255), "max_cols=254 at max_chunks=64 or max_chunks=32 at max_cols=255"),
    # 4096 x 284-bit row buffer entries leave room for 2 columns of 4096 x 256 bits; 8 x
    # (1024 x 256 + 275) bits fit, 16 x (1024 x 256 + 276) do not.
    (dict(max_cols=1024, max_chunks=4096), "max_cols=2 at max_chunks=4096 or "
                                           "max_chunks=8 at max_cols=1024"),
    # Even max_chunks=1 leaves no room for 65536 columns of 1920 bits: fewer columns then.
    (dict(vec=64, lanes=4, data_width=30, acc_width=64, max_cols=65536, max_chunks=64),
     "max_cols=33 at max_chunks=64"),
    (dict(vec=64, lanes=4, data_width=30, acc_width=64, max_cols=1, max_chunks=4096),
     "max_chunks=1024 at max_cols=1"),
])
def test_refusal_names_what_fits(overrides, fits):
    config = Config(**overrides)
    with pytest.raises(ValueError, match=r"^max_cols x max_chunks = ") as refused:
        config.check_generatable()
    assert str(refused.value).endswith(f"the largest generatable is {fits}")
    assert config.buffer_bits > GENERATABLE_BUFFER_BITS
    # What the message proposes does fit, and one more column (or twice the chunks) does not.
    for proposal in fits.split(" or "):
        (name, value), (other, other_value) = (part.split("=") for part in
                                              proposal.split(" at "))
        fitting = Config(**{**config.as_dict(), name: int(value), other: int(other_value)})
        fitting.check_generatable()
        step = {"max_cols": int(value) + 1, "max_chunks": int(value) * 2}[name]
        if step <= {"max_cols": 65536, "max_chunks": 4096}[name]:
            with pytest.raises(ValueError):
                Config(**{**fitting.as_dict(), name: step}).check_generatable()


def test_y_words_refusal_names_a_smaller_y_buffer():
    """A Y buffer given explicitly does not follow max_cols: the refusal names y_words and the
    largest that fits at the same max_chunks, which does fit (and twice it does not)."""
    config = Config(max_chunks=512, max_cols=128, y_words=16384)
    with pytest.raises(ValueError, match=r"^y_words = 16,384 at max_chunks = 512 is too large "
                                         r"to generate: the Y buffer of 16,384 words") as refused:
        config.check_generatable()
    assert str(refused.value).endswith("the largest generatable is y_words=8192 at "
                                       "max_chunks=512")
    Config(max_chunks=512, max_cols=128, y_words=8192).check_generatable()


# --- the Y buffer's size (y_words) ---------------------------------------------------------------

def test_y_words_defaults_to_every_column_of_the_longest_reduction():
    """``None`` is max_cols x max_chunks (which need not be a power of two), equal to the same
    number given; a copy with other buffers derives it again, an explicit one is kept; the
    evaluation configuration holds every column of the longest reduction."""
    assert Config().y_words == 128 * 64 and Config() == Config(y_words=8192)
    assert hash(Config()) == hash(Config(y_words=8192))
    assert Config(max_cols=160, max_chunks=32).y_words == 5120
    assert replace(Config(), max_cols=32).y_words == 32 * 64
    assert Config(**{**Config().as_dict(), "max_chunks": 8}).y_words == 128 * 8
    assert replace(Config(y_words=1024), max_cols=32).y_words == 1024
    assert EVALUATION.y_words == 65536 * 4096
    assert Config(max_chunks=16, max_cols=8, y_words=64).for_evaluation() == EVALUATION


@pytest.mark.parametrize("y_words, why", [
    (32, r"y_words must be in \[64, 8192\], not 32"),            # below one longest column
    (16384, r"y_words must be in \[64, 8192\], not 16384"),      # beyond every column
    (96, r"y_words must be a power of two in \[64, 8192\]"),
    (4096.0, r"y_words must be an integer in \[64, 8192\]"),
    (True, r"y_words must be an integer"),
    ("4096", r"y_words must be an integer"),
])
def test_y_words_out_of_range_is_refused(y_words, why):
    with pytest.raises(ValueError, match=why):
        Config(y_words=y_words)


def test_y_words_range_ends_are_accepted():
    assert Config(y_words=64).y_words == 64 and Config(y_words=8192).y_words == 8192
    assert Config(max_cols=160, max_chunks=32, y_words=4096).y_words == 4096
    with pytest.raises(ValueError, match=r"y_words must be a power of two in \[32, 5120\] "
                                         r"\(max_chunks, max_cols \* max_chunks\) or "
                                         r"max_cols \* max_chunks, not 5000"):
        Config(max_cols=160, max_chunks=32, y_words=5000)


def test_y_chunk_shift_and_y_fits():
    """The column stride is the pass's chunks rounded up to a power of two (at least 1); a pass
    fits when its columns at that stride fit the Y buffer, its reduction the row buffer and its
    columns max_cols."""
    assert [y_chunk_shift(chunks) for chunks in (0, 1, 2, 3, 4, 5, 9, 288, 512, 513)] == \
        [0, 0, 1, 2, 2, 3, 4, 9, 9, 10]
    assert Config.y_chunk_shift is y_chunk_shift and Config().y_chunk_shift(3) == 2
    deep = Config(max_chunks=512, max_cols=128, y_words=8192)
    assert deep.y_fits(16, 288) and not deep.y_fits(17, 288)     # a stride of 512
    assert deep.y_fits(128, 64) and not deep.y_fits(128, 65)     # 64 -> 64, 65 -> 128
    assert deep.y_fits(128, 1) and not deep.y_fits(129, 1)       # max_cols
    assert not deep.y_fits(1, 513)                               # max_chunks
    full = Config(max_cols=160, max_chunks=32)                   # 5120, not a power of two
    assert full.y_fits(160, 32) and full.y_fits(160, 17) and not full.y_fits(161, 1)
    # Halves (the core's weight prefetch): half the words, and only a power-of-two buffer.
    assert deep.y_halves and not full.y_halves
    assert deep.y_fits(8, 288, half=True) and not deep.y_fits(9, 288, half=True)
    assert deep.y_fits(64, 64, half=True) and not deep.y_fits(65, 64, half=True)
    assert not full.y_fits(1, 1, half=True)
    assert Config(vec=1, lanes=1, tiles=1, col_block=1, max_chunks=1, max_cols=1).y_halves \
        is False                                                 # one word: no halves


def buffer_words_and_width(verilog: str, name: str) -> tuple[int, int]:
    match = re.search(rf"reg \[(\d+):0\] {name} \[(\d+):0\];", verilog)
    assert match, f"no memory {name} in the generated Verilog"
    return int(match[2]) + 1, int(match[1]) + 1


@pytest.mark.parametrize("config", [
    Config(vec=4, lanes=2, tiles=2, col_block=4, data_width=5, acc_width=12, max_chunks=8,
           max_cols=3),
    Config(vec=9, lanes=3, tiles=1, col_block=2, data_width=3, acc_width=10, max_chunks=2,
           max_cols=7),
    Config(vec=4, lanes=2, tiles=2, col_block=4, data_width=5, acc_width=12, max_chunks=8,
           max_cols=24, y_words=32),
], ids=str)
def test_buffer_bits_are_the_generated_buffers(config):
    """The bits check_generatable counts are those of the memories in the Verilog."""
    verilog = generate_verilog(TileArray(config), "tile_array")
    words, width = buffer_words_and_width(verilog, "y_buffer")
    assert (words, words * width) == (config.y_words, config.y_buffer_bits)
    words, width = buffer_words_and_width(verilog, "x_buffer")
    assert (words, words * width) == (config.max_chunks, config.row_buffer_bits)


def test_largest_generatable_array_generates():
    """Snapshot: the default configuration's limit is max_cols=254 (4,179,328 buffer bits).
    Beside it, independently: that configuration generates (in about 20 s) with exactly those
    buffers, and one column more is refused. Slow-ish, kept in the suite as the limit's
    evidence."""
    max_cols = Config().largest_generatable_max_cols(64)
    assert max_cols == 254
    config = Config(max_cols=max_cols)
    config.check_generatable()
    with pytest.raises(ValueError):
        Config(max_cols=max_cols + 1).check_generatable()
    started = time.monotonic()
    verilog = generate_verilog(TileArray(config), "tile_array")
    print(f"generated {config.buffer_bits:,} buffer bits in {time.monotonic() - started:.1f} s")
    assert buffer_words_and_width(verilog, "y_buffer") == (254 * 64, 256)


#: Block RAM of the ECP5 LFE5U-25F: 56 EBRs of 18 Kbit.
ECP5_25F_EBR_BITS = 56 * 18 * 1024


def test_presets():
    """Snapshot: the presets' values as documented (DEFAULT is ``Config()``; FPGA_SMALL the
    defaults with 32 columns x 16 chunks of Y buffer and col_block 8). Beside it, what they
    are for: both generate, and FPGA_SMALL's Y buffer, which synthesis copies once per tile,
    fits the LFE5U-25F's block RAM while the default one does not (docs/fpga.md)."""
    assert DEFAULT == Config()
    assert FPGA_SMALL == Config(col_block=8, max_chunks=16, max_cols=32)
    FPGA_SMALL.check_generatable()
    DEFAULT.check_generatable()
    assert FPGA_SMALL.y_buffer_bits * FPGA_SMALL.tiles <= ECP5_25F_EBR_BITS
    assert DEFAULT.y_buffer_bits * DEFAULT.tiles > ECP5_25F_EBR_BITS
