# amaranth: UnusedElaboratable=no
# (the parameter tests construct blocks that are refused)
"""ZeroSkipIndexDecoder and DenseIndexSequencer in Amaranth's simulator.

Exhaustive for every mask of every vec <= 8 (indices, framing and cycle counts); random framed
sequences with idle cycles and backpressure; the dense sequencer against its definition.
"""

import random

import numpy as np
import pytest

from maskprop.hw.index_decoder import DenseIndexSequencer, ZeroSkipIndexDecoder, chunk_cycles
from maskprop.sim.blocks import IndexBeat, decode_chunks
from maskprop.tb.amaranth_sim import run_stream
from maskprop.tb.stimulus import seed_from_env


def beats_of(run):
    return [IndexBeat(tuple(beat.index[j] for j in range(len(beat.index))
                            if beat.lane_valid >> j & 1),
                      bool(beat.first), bool(beat.last))
            for beat in run.outputs]


def decode(dut, chunks, **traffic):
    expected = decode_chunks(chunks, dut.lanes)
    payloads = [{"mask": mask, "first": first, "last": last} for mask, first, last in chunks]
    run = run_stream(dut, payloads, outputs=len(expected), **traffic)
    return run, expected


def lane_validity_is_compact(run):
    """Valid lanes are always the lowest ones (the tree and counters rely on it)."""
    return all((beat.lane_valid + 1) & beat.lane_valid == 0 for beat in run.outputs)


@pytest.mark.parametrize("vec, lanes", [(v, l) for v in range(1, 9) for l in range(1, v + 1)
                                        if l in (1, 2, 3, v) or v <= 4])
def test_every_mask(vec, lanes):
    """Every mask of a vec-bit chunk, each its own frame, streamed back to back: exactly the
    reference's beats, and exactly ``chunk_cycles`` cycles per chunk."""
    dut = ZeroSkipIndexDecoder(vec=vec, lanes=lanes)
    chunks = [(mask, True, True) for mask in range(1 << vec)]
    run, expected = decode(dut, chunks)
    assert beats_of(run) == expected
    assert lane_validity_is_compact(run)
    # Streaming, chunk k is accepted in cycle sum(costs[:k]).
    costs = [chunk_cycles(bin(m).count("1"), lanes) for m, _, _ in chunks]
    assert run.in_cycles == np.concatenate(([0], np.cumsum(costs)[:-1])).tolist()


@pytest.mark.parametrize("vec, lanes", [(8, 3), (8, 8), (5, 2), (16, 4), (32, 4), (64, 16)])
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["streaming", "idle+bp"])
def test_random_frames(vec, lanes, traffic):
    """Multi-chunk frames with densities from 0 to 1, all-zero chunks at frame starts and ends."""
    seed = seed_from_env(default=vec * 1000 + lanes)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    chunks = []
    for _ in range(150):
        length = rng.randint(1, 4)
        for k in range(length):
            density = rng.choice((0.0, 0.05, 0.3, 0.5, 0.9, 1.0))
            mask = sum(1 << p for p in range(vec) if rng.random() < density)
            chunks.append((mask, k == 0, k == length - 1))
    dut = ZeroSkipIndexDecoder(vec=vec, lanes=lanes)
    run, expected = decode(dut, chunks, idle=traffic[0], backpressure=traffic[1], seed=seed)
    assert beats_of(run) == expected
    if traffic == (0.0, 0.0):
        # Unstalled, the chunks are consumed at exactly chunk_cycles each.
        costs = [chunk_cycles(bin(m).count("1"), lanes) for m, _, _ in chunks]
        assert run.in_cycles == np.concatenate(([0], np.cumsum(costs)[:-1])).tolist()


def test_and_of_two_masks():
    dut = ZeroSkipIndexDecoder(vec=8, lanes=2, masks=2)
    rng = random.Random(7)
    pairs = [(rng.randrange(256), rng.randrange(256)) for _ in range(100)]
    chunks = [(a & b, True, True) for a, b in pairs]
    expected = decode_chunks(chunks, 2)
    run = run_stream(dut, [{"mask": a, "mask_b": b, "first": 1, "last": 1} for a, b in pairs],
                     outputs=len(expected))
    assert beats_of(run) == expected


@pytest.mark.parametrize("vec, lanes", [(16, 4), (16, 5), (7, 7), (3, 1), (1, 1)])
def test_dense_sequencer(vec, lanes):
    """Every chunk, whatever its mask, gives indices 0..vec-1 in ceil(vec/lanes) beats."""
    dut = DenseIndexSequencer(vec=vec, lanes=lanes)
    chunks = [(0, True, False), (5, False, True), ((1 << vec) - 1, True, True)]
    payloads = [{"mask": mask, "first": first, "last": last} for mask, first, last in chunks]
    dense = [((1 << vec) - 1, first, last) for _, first, last in chunks]
    expected = decode_chunks(dense, lanes)
    run = run_stream(dut, payloads, outputs=len(expected), idle=0.2, backpressure=0.3, seed=1)
    assert beats_of(run) == expected


@pytest.mark.parametrize("params, message", [
    (dict(vec=0, lanes=1), r"vec must be in \[1, 64\]"),
    (dict(vec=65, lanes=1), r"vec must be in \[1, 64\]"),
    (dict(vec=16, lanes=17), r"lanes must be in \[1, 16\]"),
    (dict(vec=16, lanes=4, masks=3), r"masks must be in \[1, 2\]"),
])
def test_rejects_illegal_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        ZeroSkipIndexDecoder(**params)
