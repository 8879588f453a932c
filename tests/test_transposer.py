# amaranth: UnusedElaboratable=no
# (the parameter tests construct transposers that are refused; test_properties, one never
# elaborated)
"""BlockTransposer in Amaranth's simulator: random blocks under random input idling and output
backpressure, every output word equal to NumPy's transpose of its block, in order (nothing
missing, surplus or reordered, nothing more in a drain window); throughput (one word in and
out per cycle, no bubble between blocks) and latency exactly as documented; one block of
buffering, ``o.valid`` independent of ``o.ready``; parameter validation; Verilog and lint."""

import random

import numpy as np
import pytest
from amaranth import ClockDomain, Module
from amaranth.sim import Simulator

from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.hw.transposer import BlockTransposer
from maskprop.tb.amaranth_bench import run_streams
from maskprop.tb.stimulus import seed_from_env


def random_blocks(rng: np.random.Generator, vec: int, width: int, count: int) -> np.ndarray:
    """``count`` blocks ``(count, vec, vec)`` (block, input word, element) of signed
    ``width``-bit values, a quarter of them extremes (min, max, min + 1, max - 1, 0)."""
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    blocks = rng.integers(low, high + 1, size=(count, vec, vec))
    extremes = rng.random(blocks.shape) < 0.25
    blocks[extremes] = rng.choice([low, high, low + 1, high - 1, 0], size=int(extremes.sum()))
    return blocks


def words(array: np.ndarray) -> list:
    """The rows of ``(..., vec)`` as payloads of the word layout (lists of ints)."""
    return [[int(value) for value in word] for word in array.reshape(-1, array.shape[-1])]


def transposed(blocks: np.ndarray) -> list:
    """The expected output words: each block transposed (``out[e][i] = in[i][e]``)."""
    return words(blocks.transpose(0, 2, 1))


# (vec, width): the powers of two the core uses with 1-, 8- and 16-bit elements, vec 3 and 5
# (counters whose range is not a power of two), and the widest elements.
CONFIGS = [(1, 1), (1, 8), (1, 16), (2, 1), (2, 8), (2, 16), (3, 5), (4, 1), (4, 8), (4, 16),
           (5, 3), (16, 1), (16, 8), (16, 16), (2, 64)]
# (idle, backpressure): free flow, both sides random, a starved input, an output stalled so
# long that the array fills and the input waits.
TRAFFIC = [(0.0, 0.0), (0.3, 0.5), (0.8, 0.1), (0.1, 0.9)]


@pytest.mark.parametrize("traffic", TRAFFIC, ids=lambda t: f"idle{t[0]}-bp{t[1]}")
@pytest.mark.parametrize("vec, width", CONFIGS, ids=lambda v: str(v))
def test_every_word_transposed_in_order(vec, width, traffic):
    idle, backpressure = traffic
    seed = seed_from_env(default=1000 * vec + width)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    count = max(12, 256 // vec)                    # 12..256 blocks, 192..256 words
    blocks = random_blocks(np.random.default_rng(seed), vec, width, count)
    # run_streams' scoreboard: every word bit-exact and in order as it arrives, none missing
    # at the end, none in the drain window after the last.
    record = run_streams(BlockTransposer(vec, width), {"i": words(blocks)}, transposed(blocks),
                         idle=idle, backpressure=backpressure, seed=seed)
    assert len(record.outputs) == count * vec


def test_widest_block():
    """vec 64 (7-bit counters, 4096 elements), fewer blocks: the simulation is slower."""
    seed = seed_from_env(default=64)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    blocks = random_blocks(np.random.default_rng(seed), 64, 8, 3)
    record = run_streams(BlockTransposer(64, 8), {"i": words(blocks)}, transposed(blocks),
                         idle=0.2, backpressure=0.3, seed=seed, drain_cycles=2 * 64)
    assert len(record.outputs) == 3 * 64


@pytest.mark.parametrize("vec", [1, 2, 3, 4, 16])
def test_full_throughput_and_latency(vec):
    """No idling, no backpressure: word ``j`` is taken in cycle ``j`` and leaves in cycle
    ``j + vec - 1 + latency``, so ``N`` blocks take ``N * vec + vec - 1 + latency`` cycles:
    one word in and one out per cycle, no bubble between blocks; a block's first word is
    valid ``latency`` cycles after its last was taken."""
    seed = seed_from_env(default=7 + vec)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    dut = BlockTransposer(vec, 8)
    latency = dut.latency
    assert latency == 1
    n = 10
    blocks = random_blocks(np.random.default_rng(seed), vec, 8, n)
    due = [j + vec - 1 + latency for j in range(n * vec)]
    record = run_streams(dut, {"i": words(blocks)}, transposed(blocks), seed=seed,
                         deadlines=due)
    assert record.in_cycles == list(range(n * vec))
    assert record.out_cycles == due
    assert record.cycles == n * vec + vec - 1 + latency
    for b in range(n):
        assert record.out_cycles[b * vec] - record.in_cycles[b * vec + vec - 1] == latency


@pytest.mark.parametrize("vec", [1, 3, 4])
def test_latency_with_idle_input(vec):
    """Input idling, ``o`` always ready: every block's first word is valid exactly ``latency``
    cycles after its last input word, and its words leave in consecutive cycles."""
    seed = seed_from_env(default=30 + vec)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    dut = BlockTransposer(vec, 4)
    n = 40
    blocks = random_blocks(np.random.default_rng(seed), vec, 4, n)
    record = run_streams(dut, {"i": words(blocks)}, transposed(blocks), idle=0.6, seed=seed)
    for b in range(n):
        last_in = record.in_cycles[b * vec + vec - 1]
        assert record.out_cycles[b * vec:(b + 1) * vec] == [
            last_in + dut.latency + e for e in range(vec)], b


@pytest.mark.parametrize("vec", [1, 2, 4])
def test_holds_one_block_and_valid_ignores_ready(vec):
    """With ``o`` stalled the transposer takes one block and then refuses; its first word is
    offered, unchanged, until taken, whatever ``o.ready`` does in the same cycle; after that
    each word sent frees one slot for the next block (in the same cycle)."""
    seed = seed_from_env(default=50 + vec)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    blocks = random_blocks(np.random.default_rng(seed), vec, 8, 3)
    inputs, expected = words(blocks), transposed(blocks)
    dut = BlockTransposer(vec, 8)
    top = Module()
    top.submodules.dut = dut
    top.domains.sync = ClockDomain()
    taken, sent = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        # o stalled: exactly one block is taken, then i waits.
        for cycle in range(3 * vec + 4):
            ctx.set(dut.i.payload, inputs[len(taken)])
            if ctx.get(dut.i.ready):
                taken.append(cycle)
            assert ctx.get(dut.o.valid) == (cycle >= vec), cycle
            await ctx.tick()
        assert taken == list(range(vec))
        # o.valid and the offered word do not depend on o.ready in the same cycle.
        for _ in range(4):
            ctx.set(dut.o.ready, rng.randrange(2))
            assert ctx.get(dut.o.valid)
            assert [int(v) for v in ctx.get(dut.o.payload)] == expected[0]
        ctx.set(dut.o.ready, 0)
        # Now o takes a word in random cycles: i is ready exactly in those (one slot freed).
        cycle = 0
        while len(sent) < len(expected):
            ready = rng.random() < 0.5
            ctx.set(dut.o.ready, ready)
            more = len(taken) < len(inputs)
            ctx.set(dut.i.valid, more)
            if more:
                ctx.set(dut.i.payload, inputs[len(taken)])
                # The next block's word goes into the slot sent this cycle, and only then
                # while a whole block is held (the writer has caught up with the reader).
                assert ctx.get(dut.i.ready) == ready, cycle
                if ready:
                    taken.append(cycle)
            assert ctx.get(dut.o.valid), cycle     # a block is always held: no bubble
            if ready:
                sent.append([int(v) for v in ctx.get(dut.o.payload)])
            await ctx.tick()
            cycle += 1
        ctx.set(dut.o.ready, 1)
        for _ in range(2 * vec + 4):               # nothing more comes
            assert not ctx.get(dut.o.valid)
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert sent == expected


@pytest.mark.parametrize("kwargs, message", [
    (dict(vec=0, width=8), r"vec must be in \[1, 64\], not 0"),
    (dict(vec=65, width=8), r"vec must be in \[1, 64\], not 65"),
    (dict(vec=4, width=0), r"width must be in \[1, 64\], not 0"),
    (dict(vec=4, width=65), r"width must be in \[1, 64\], not 65"),
    (dict(vec=-1, width=8), r"vec must be in \[1, 64\], not -1"),
    (dict(vec=4.0, width=8), r"vec must be an integer in \[1, 64\], not 4.0"),
    (dict(vec=True, width=8), r"vec must be an integer in \[1, 64\], not True"),
    (dict(vec=4, width="8"), r"width must be an integer in \[1, 64\], not '8'"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BlockTransposer(**kwargs)


def test_properties():
    dut = BlockTransposer(16, 8)
    assert (dut.vec, dut.width, dut.latency, dut.storage_bits) == (16, 8, 1, 16 * 16 * 8)
    assert dut.i.payload.shape() == dut.o.payload.shape()
    assert len(dut.i.payload.as_value()) == 16 * 8


@pytest.mark.parametrize("vec, width", [(1, 1), (3, 5), (2, 64), (64, 1)])
def test_generates_verilog(vec, width):
    """``amaranth.back.verilog.convert`` (through the flow), without warnings (they are errors
    here), up to the widest block."""
    text = generate_verilog(BlockTransposer(vec, width), "block_transposer")
    assert "module block_transposer" in text
    for port in ("i__valid", "i__ready", "i__payload", "o__valid", "o__ready", "o__payload"):
        assert port in text


@pytest.mark.sim
@pytest.mark.parametrize("vec, width", [(1, 1), (3, 5), (16, 16)])
def test_verilator_lint_clean(vec, width):
    lint_verilog(generate_verilog(BlockTransposer(vec, width), "block_transposer"),
                 "block_transposer")
