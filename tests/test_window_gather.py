# amaranth: UnusedElaboratable=no
# (the parameter tests construct window gathers that are refused or never elaborated)
"""WindowGather in Amaranth's simulator against ``lower_backward_weight``: every output word
(data, structural mask, row, chunk, last) equal, in order, to the ``"a"`` orientation's ``X``
and ``structure`` (nothing missing, surplus or reordered), under random backpressure on ``o``;
one word per cycle unstalled, with the exact cycle of ``last``; the ``"dz"`` orientation
(kernel 1 on ``dZ``); parameter validation; Verilog generation and lint."""

import random

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import memory, wiring
from amaranth.sim import Simulator

from maskprop.base.config import Config
from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.hw.window_gather import (PIPELINE_CYCLES, SETUP_CYCLES, WindowGather,
                                       gather_cycles)
from maskprop.sim.layer import ConvLayer
from maskprop.sim.lowering import lower_backward_weight
from maskprop.tb.stimulus import gather_command, scratchpad_words, seed_from_env

ADDR_WIDTH = 10
DIM_WIDTH = 8


def config(vec: int, data_width: int) -> Config:
    return Config(vec=vec, lanes=1, tiles=1, col_block=4, data_width=data_width)


def expected_sequence(X, structure, vec: int, channels: int, taps: int) -> list:
    """``(data, smask, row, chunk, last)`` of every word in the documented order: tap ``(r,
    t)``, channel block, chunk, channel within the block (channels ``< C`` only)."""
    q_n = X.shape[1] // vec
    cb_n = -(-channels // vec)
    seq = []
    for rt in range(taps):
        for cb in range(cb_n):
            for q in range(q_n):
                for e in range(vec):
                    ch = cb * vec + e
                    if ch >= channels:
                        continue
                    row = rt * channels + ch
                    data = tuple(int(v) for v in X[row, q * vec:(q + 1) * vec])
                    smask = sum(1 << i for i in range(vec) if structure[row, q * vec + i])
                    seq.append((data, smask, row, q))
    return [item + (index == len(seq) - 1,) for index, item in enumerate(seq)]


def decode(raw: int, dut: WindowGather) -> tuple:
    vec, dwidth, iw = dut.config.vec, dut.config.data_width, dut.index_width
    data = []
    for i in range(vec):
        value = (raw >> (i * dwidth)) & ((1 << dwidth) - 1)
        data.append(value - (1 << dwidth) if value >> (dwidth - 1) else value)
    raw >>= vec * dwidth
    smask = raw & ((1 << vec) - 1)
    raw >>= vec
    row = raw & ((1 << iw) - 1)
    raw >>= iw
    chunk = raw & ((1 << iw) - 1)
    raw >>= iw
    return tuple(data), smask, row, chunk, bool(raw & 1)


def run(dut: WindowGather, words: list, command: dict, expected: list, *, backpressure: float,
        seed: int, repeats: int = 1, drain: int = 64):
    """Simulate ``command`` ``repeats`` times, each issued as soon as ``command.ready`` is high
    again, with ``o.ready`` low at random in ``backpressure`` of the cycles. Every word is
    checked against ``expected`` (repeated) as it arrives; after the last, ``drain`` cycles
    with ``o.ready`` high must bring no more. Returns the words, the cycle of each counted
    from its command's handshake (cycle 0), and the first cycle with ``busy`` low after the
    first command."""
    m = Module()
    m.submodules.dut = dut
    # A memory of 2**ADDR_WIDTH words (the port's address width), the tensor at its start.
    depth = 1 << dut.addr_width
    mem = memory.Memory(shape=dut.read.data.shape(), depth=depth,
                        init=words + [0] * (depth - len(words)))
    m.submodules.mem = mem
    wiring.connect(m, mem.read_port(), dut.read)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    rng = random.Random(seed)
    outputs, cycles = [], []
    state = {}
    total = repeats * len(expected)

    async def bench(ctx):
        for name, value in command.items():
            ctx.set(getattr(dut.command.payload, name), value)
        for repeat in range(repeats):
            while not ctx.get(dut.command.ready):
                ctx.set(dut.o.ready, 1)
                assert not ctx.get(dut.o.valid), "a word after last"
                await ctx.tick()
            ctx.set(dut.command.valid, 1)
            ctx.set(dut.o.ready, 1)
            assert not ctx.get(dut.o.valid), "a word after last"
            await ctx.tick()
            ctx.set(dut.command.valid, 0)
            cycle = 1
            done = False
            while not done:
                ready = rng.random() >= backpressure
                ctx.set(dut.o.ready, ready)
                valid = ctx.get(dut.o.valid)
                if valid and ready:
                    word = decode(ctx.get(dut.o.payload.as_value()), dut)
                    index = len(outputs)
                    assert index < total, f"surplus word {word} at cycle {cycle}"
                    want = expected[index % len(expected)]
                    assert word == want, (
                        f"word {index} at cycle {cycle}: got {word}, expected {want}")
                    outputs.append(word)
                    cycles.append(cycle)
                    done = word[4]
                await ctx.tick()
                cycle += 1
                assert cycle < 200000, "no progress"
            if repeat == 0:
                while ctx.get(dut.busy):
                    await ctx.tick()
                    cycle += 1
                state["busy_end"] = cycle
        for _ in range(drain):
            ctx.set(dut.o.ready, 1)
            assert not ctx.get(dut.o.valid), "a word after last"
            await ctx.tick()
        assert not ctx.get(dut.busy)

    sim.add_testbench(bench)
    sim.run()
    assert len(outputs) == total, f"{total - len(outputs)} words missing"
    return outputs, cycles, state.get("busy_end")


def random_layer(rng: random.Random, vec: int) -> ConvLayer:
    while True:
        kernel = rng.choice([1, 2, 3])
        stride = rng.choice([1, 2, 3])
        padding = rng.randint(0, 2)
        channels = rng.choice([c for c in range(1, 2 * vec + 3) if c % vec])
        layer = ConvLayer(batch=rng.randint(1, 2), in_channels=channels,
                          height=rng.randint(max(1, kernel - 2 * padding), 7),
                          width=rng.randint(max(1, kernel - 2 * padding), 7),
                          out_channels=3, kernel=kernel, stride=stride, padding=padding)
        pixels = layer.batch * layer.out_height * layer.out_width
        if pixels % vec:
            return layer


def check_layer(layer: ConvLayer, vec: int, data_width: int, seed: int, backpressure: float,
                x_operand: str = "a", repeats: int = 1):
    nprng = np.random.default_rng(seed)
    low, high = -(1 << (data_width - 1)), (1 << (data_width - 1)) - 1
    A = nprng.integers(low, high + 1, size=layer.input_shape)
    A[nprng.random(A.shape) < 0.2] = 0
    dZ = nprng.integers(low, high + 1, size=layer.output_shape)
    lowered = lower_backward_weight(layer, dZ, A, x_operand, vec=vec)
    if x_operand == "a":
        tensor, gather_layer = A, layer
        channels, taps = layer.in_channels, layer.kernel ** 2
    else:   # dZ^T: kernel 1, stride 1, no padding on dZ (N, K, Ho, Wo)
        tensor = dZ
        gather_layer = ConvLayer(batch=layer.batch, in_channels=layer.out_channels,
                                 height=layer.out_height, width=layer.out_width,
                                 out_channels=1, kernel=1)
        channels, taps = layer.out_channels, 1
    base = seed % 5
    dut = WindowGather(config(vec, data_width), addr_width=ADDR_WIDTH, dim_width=DIM_WIDTH)
    expected = expected_sequence(lowered.X, lowered.structure, vec, channels, taps)
    outputs, cycles, busy_end = run(dut, scratchpad_words(tensor, vec, data_width, base),
                                    gather_command(gather_layer, base), expected,
                                    backpressure=backpressure, seed=seed, repeats=repeats)
    return gather_layer, outputs, cycles, busy_end


@pytest.mark.parametrize("vec, data_width, index", [
    (4, 8, 0), (4, 8, 1), (4, 16, 2), (4, 16, 3), (4, 8, 4), (4, 16, 5),
    (16, 8, 6), (16, 16, 7),
])
def test_random_layers_with_backpressure(vec, data_width, index):
    seed = seed_from_env(default=100 * vec + data_width + index)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    layer = random_layer(random.Random(seed), vec)
    print(layer)
    # Twice, the second command issued as soon as the first is drained (every register the
    # walk uses is reloaded).
    check_layer(layer, vec, data_width, seed, backpressure=0.4, repeats=2)


@pytest.mark.parametrize("kernel, stride, padding", [
    (1, 1, 0), (2, 1, 1), (3, 1, 1), (3, 2, 2), (3, 3, 0), (2, 3, 2), (1, 2, 1),
])
def test_kernel_stride_padding_grid(kernel, stride, padding):
    seed = seed_from_env(default=10 * kernel + 3 * stride + padding)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    layer = ConvLayer(batch=2, in_channels=5, height=5, width=4, out_channels=2, kernel=kernel,
                      stride=stride, padding=padding)
    check_layer(layer, 4, 8, seed, backpressure=0.3)


@pytest.mark.parametrize("vec, channels", [(4, 6), (4, 8), (16, 5)])
def test_full_throughput(vec, channels):
    """No backpressure: the reader takes one word per cycle from cycle ``SETUP_CYCLES + 1``;
    every block's ``vec`` words leave in consecutive cycles, the emitted words in the cycles
    of their channel: word ``e`` of block ``b`` in cycle ``SETUP_CYCLES + PIPELINE_CYCLES +
    vec * (b + 1) + e`` (the handshake in cycle 0), ``last`` in cycle ``gather_cycles`` =
    ``21 + R*R*Cb*Q*vec + tail``, ``tail = C - 1 - (Cb - 1)*vec``; ``busy`` low from cycle
    ``21 + R*R*Cb*Q*vec + vec``."""
    seed = seed_from_env(default=vec + channels)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    layer = ConvLayer(batch=2, in_channels=channels, height=5, width=5, out_channels=2,
                      kernel=3, stride=2, padding=1)
    _, outputs, cycles, busy_end = check_layer(layer, vec, 8, seed, backpressure=0.0)
    pixels = layer.batch * layer.out_height * layer.out_width
    assert pixels % vec
    cb_n, q_n = -(-channels // vec), -(-pixels // vec)
    # Word (rt, cb, q, e) leaves in cycle SETUP_CYCLES + 2 + vec * (block index) + e.
    block = 0
    k = 0
    for rt in range(9):
        for cb in range(cb_n):
            for q in range(q_n):
                for e in range(vec):
                    if cb * vec + e < channels:
                        assert cycles[k] == (SETUP_CYCLES + PIPELINE_CYCLES +
                                         vec * (block + 1) + e), (k, cycles[k])
                        k += 1
                block += 1
    assert k == len(outputs)
    assert cycles[-1] == gather_cycles(vec, 3, channels, pixels)
    assert cycles[-1] == 21 + 9 * cb_n * q_n * vec + channels - 1 - (cb_n - 1) * vec
    tail = channels - 1 - (cb_n - 1) * vec
    assert busy_end == cycles[-1] + (vec - 1 - tail) + 1


@pytest.mark.parametrize("vec, data_width", [(4, 8), (16, 16)])
def test_dz_orientation(vec, data_width):
    """Kernel 1, stride 1, no padding on ``dZ`` gives the ``"dz"`` orientation's ``X = dZ^T``."""
    seed = seed_from_env(default=77 + vec)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    layer = ConvLayer(batch=2, in_channels=3, height=6, width=5, out_channels=vec + 3,
                      kernel=3, stride=2, padding=1)
    check_layer(layer, vec, data_width, seed, backpressure=0.3, x_operand="dz")


@pytest.mark.parametrize("kwargs, message", [
    ({"addr_width": 0}, "addr_width must be in"),
    ({"addr_width": 65}, "addr_width must be in"),
    ({"dim_width": 1}, "dim_width must be in"),
    ({"dim_width": 25}, "dim_width must be in"),
    ({"dim_width": 8.0}, "dim_width must be an integer"),
])
def test_parameter_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WindowGather(config(4, 8), **kwargs)


def test_config_must_be_a_config():
    with pytest.raises(ValueError, match="config must be a Config"):
        WindowGather({"vec": 4})


@pytest.mark.parametrize("vec, data_width", [(4, 8), (16, 16), (3, 5)])
def test_verilog(vec, data_width):
    text = generate_verilog(WindowGather(config(vec, data_width), addr_width=16, dim_width=10),
                            "window_gather")
    assert "module window_gather" in text


@pytest.mark.sim
@pytest.mark.parametrize("vec, data_width", [(4, 8), (16, 16)])
def test_verilator_lint_clean(vec, data_width):
    lint_verilog(generate_verilog(WindowGather(config(vec, data_width), addr_width=16,
                                               dim_width=10), "window_gather"),
                 "window_gather")
