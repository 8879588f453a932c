# amaranth: UnusedElaboratable=no
# (the parameter tests construct lanes that are refused)
"""JoinLane in Amaranth's simulator, its four banks as real memories: every partial sum
bit-exact (value and overflow) with :func:`~maskprop.sim.blocks.join_lane_sums`, in order, with
nothing missing or surplus, under random idle cycles on ``i`` and backpressure on ``o``;
unstalled, every output accepted and delivered in exactly the cycle the closed form
(:func:`~maskprop.sim.cycle_model.join_lane_cycles`, ``latency``) says; data behind clear mask
bits never read into a sum; words wrapping around the bank; parameter validation; Verilog lint."""

import random

import numpy as np
import pytest

from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.hw.join_lane import JoinLane
from maskprop.sim.blocks import join_lane_sums
from maskprop.tb.amaranth_bench import run_stream
from maskprop.tb.join_banks import Banks, WithBanks
from maskprop.tb.stimulus import seed_from_env


def random_outputs(rng, lane: JoinLane, count: int) -> list:
    """``count`` outputs at random words of both banks (wrapping past the end), of 1 to
    ``max_words`` words."""
    words = 1 << lane.word_addr_width
    return [{"x_word": rng.randrange(words), "y_word": rng.randrange(words),
             "last_word": rng.randrange(lane.max_words)} for _ in range(count)]


def run(lane: JoinLane, banks: Banks, outputs: list, **traffic):
    """``outputs`` through the lane, each partial sum checked by the bench's scoreboard against
    the reference; returns the run and the cycles of each output's words by the closed form."""
    walks = [banks.output(output) for output in outputs]
    expected = [{"value": s.value, "overflow": s.overflow}
                for s in join_lane_sums(walks, lane.acc_width)]
    word_costs = [banks.word_costs(output) for output in outputs]
    return run_stream(WithBanks(lane, [banks]), outputs, expected, **traffic), word_costs


def unstalled_cycles(word_costs: list, latency: int):
    """The closed form's handshake cycles of every output on ``i`` and ``o``: word ``j`` (of
    all outputs, in order) is read in cycle ``1`` (the first), ``2`` (the second) or ``3 +
    sum(costs[:j - 2])`` (when the decoder takes word ``j - 2``), an output is taken in the
    cycle its predecessor's last word is read, and its sum is offered ``latency - 1`` cycles
    after its words' costs have elapsed."""
    costs = [c for output in word_costs for c in output]
    starts = np.concatenate(([0], np.cumsum(costs)))
    read = [1, 2][:len(costs)] + [3 + int(starts[j - 2]) for j in range(2, len(costs))]
    last_words = np.cumsum([len(output) for output in word_costs]) - 1
    taken = [0] + [read[j] for j in last_words[:-1]]
    offered = (starts[last_words + 1] - 1 + latency).tolist()
    return taken, offered


LANES = {
    "window4-group4": dict(window=4, group=4, data_width=8, acc_width=20, word_addr_width=4,
                           max_words=6),
    "window3-group2": dict(window=3, group=2, data_width=5, acc_width=10, word_addr_width=3,
                           max_words=8),
    "window1-group1": dict(window=1, group=1, data_width=4, acc_width=8, word_addr_width=2,
                           max_words=4),
    "window16-group4": dict(window=16, group=4, data_width=6, acc_width=14, word_addr_width=3,
                            max_words=3),
    "window4-group1": dict(window=4, group=1, data_width=16, acc_width=40, word_addr_width=5,
                           max_words=1),
}


@pytest.mark.parametrize("params", LANES.values(), ids=LANES.keys())
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["streaming", "idle+bp"])
def test_random_outputs(params, traffic):
    """Partial sums bit-exact, overflow included (narrow accumulators overflow often); with no
    idle input and no backpressure, every output taken and offered in exactly the cycles of
    the closed form (:func:`unstalled_cycles`)."""
    seed = seed_from_env(default=sum(params.values()) * 7 + len(traffic))
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    lane = JoinLane(**params)
    outputs = random_outputs(rng, lane, 120)
    record, word_costs = run(lane, Banks.random(rng, lane.parameters), outputs, idle=traffic[0],
                             backpressure=traffic[1], seed=seed)
    if traffic == (0.0, 0.0):
        taken, offered = unstalled_cycles(word_costs, lane.latency)
        assert record.in_cycles == taken
        assert record.out_cycles == offered


def test_only_joined_products_counted():
    """Banks whose data is all nonzero and whose masks are disjoint halves: no product is
    issued (every word costs its one cycle) and every sum is exactly 0, so no element behind a
    clear mask bit reaches the accumulator; then one shared bit per word gives exactly that
    product."""
    lane = JoinLane(window=4, group=2, data_width=8, acc_width=20, word_addr_width=2,
                    max_words=4)
    words = 1 << lane.word_addr_width
    data = [[3, -5, 7, 11] for _ in range(words * lane.group)]
    banks = Banks(4, 2, [0x0F] * words, [0xF0] * words, data, data)
    outputs = [{"x_word": w, "y_word": 0, "last_word": 3} for w in range(words)]
    record, word_costs = run(lane, banks, outputs)
    assert [int(r.value) for r in record.outputs] == [0] * words
    assert word_costs == [[1] * 4] * words
    banks = Banks(4, 2, [0x1F] * words, [0x81] * words, data, data)  # both set: bit 0 only
    record, _ = run(lane, banks, outputs)
    assert [int(r.value) for r in record.outputs] == [4 * 3 * 3] * words


@pytest.mark.parametrize("params, message", [
    (dict(window=0), "window must be in \\[1, 16\\]"),
    (dict(window=17), "window must be in \\[1, 16\\]"),
    (dict(group=3), "group must be a power of two in \\[1, 16\\]"),
    (dict(window=8, group=16), "group must be in \\[1, 8\\]"),
    (dict(data_width=1), "data_width must be in \\[2, 32\\]"),
    (dict(acc_width=15), "acc_width must be in \\[16, 128\\]"),
    (dict(word_addr_width=25), "word_addr_width must be in \\[1, 24\\]"),
    (dict(max_words=17), "max_words must be in \\[1, 16\\]"),
    (dict(max_words=True), "max_words must be an integer"),
])
def test_parameters_checked(params, message):
    base = dict(window=4, group=4, data_width=8, acc_width=20, word_addr_width=4, max_words=6)
    with pytest.raises(ValueError, match=message):
        JoinLane(**{**base, **params})


@pytest.mark.sim
@pytest.mark.parametrize("name", ["window4-group4", "window3-group2", "window1-group1",
                                  "window4-group1"])
def test_verilog_lints(name):
    """The lane generates Verilog that ``verilator --lint-only -Wall`` accepts (no chunk or
    element bits at window 1, group 1; the index table at window 3; one-word outputs)."""
    lint_verilog(generate_verilog(JoinLane(**LANES[name]), "join_lane"), "join_lane")
