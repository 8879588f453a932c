# amaranth: UnusedElaboratable=no
# (the parameter tests construct blocks that are refused)
"""ZeroSkipIndexDecoder, PrefixIndexSequencer and DenseIndexSequencer in Amaranth's simulator.

Exhaustive for every mask of every vec <= 8 (indices, framing and cycle counts), with every
restricted selection window; random framed sequences with idle cycles and backpressure; the
prefix sequencer as the decoder on each mask's prefix closure; the dense sequencer against its
definition.
"""

import random

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.hw.index_decoder import (DenseIndexSequencer, PrefixIndexSequencer,
                                       ZeroSkipIndexDecoder, chunk_cycles, prefix_closure)
from maskprop.sim.blocks import IndexBeat, decode_chunks, index_beat_payload
from maskprop.tb.amaranth_bench import run_stream
from maskprop.tb.stimulus import dense_sequencer_beats, seed_from_env


def beats_of(run):
    return [IndexBeat(tuple(beat.index[j] if beat.lane_valid >> j & 1 else None
                            for j in range(len(beat.index))),
                      bool(beat.first), bool(beat.last))
            for beat in run.outputs]


def decode(dut, chunks, **traffic):
    """``chunks`` through the decoder, its beats checked by the bench's scoreboard against the
    reference's (:func:`~maskprop.sim.blocks.decode_chunks`: each segment's valid lanes its
    lowest ones, invalid lanes reading 0); the prefix sequencer's against the reference's on
    each mask's prefix closure."""
    decoded = chunks
    if isinstance(dut, PrefixIndexSequencer):
        decoded = [(prefix_closure(mask), first, last) for mask, first, last in chunks]
    expected = decode_chunks(decoded, dut.lanes, vec=dut.vec, window=dut.window)
    payloads = [{"mask": mask, "first": first, "last": last} for mask, first, last in chunks]
    run = run_stream(dut, payloads, [index_beat_payload(b, vec=dut.vec, window=dut.window)
                                     for b in expected], **traffic)
    return run


def random_frames(rng, frames: int, mask) -> list:
    """``frames`` frames of 1 to 4 chunks ``(mask(), first, last)``."""
    chunks = []
    for _ in range(frames):
        length = rng.randint(1, 4)
        chunks += [(mask(), k == 0, k == length - 1) for k in range(length)]
    return chunks


def windows(vec, lanes):
    """The restricted selection windows of ``vec`` and ``lanes`` (the full one excluded)."""
    return Config(vec=vec, lanes=lanes).select_windows()[:-1]


EVERY_MASK = ([(v, l, None) for v in range(1, 9) for l in range(1, v + 1)
               if l in (1, 2, 3, v) or v <= 4] +
              [(v, l, w) for v in range(2, 9) for l in range(1, v + 1) for w in windows(v, l)])


@pytest.mark.parametrize("vec, lanes, window", EVERY_MASK)
def test_every_mask(vec, lanes, window):
    """Every mask of a vec-bit chunk, each its own frame, streamed back to back: exactly the
    reference's beats, and exactly ``chunk_cycles`` cycles per chunk."""
    dut = ZeroSkipIndexDecoder(vec=vec, lanes=lanes, window=window)
    chunks = [(mask, True, True) for mask in range(1 << vec)]
    run = decode(dut, chunks)
    # Streaming, chunk k is accepted in cycle sum(costs[:k]).
    costs = [chunk_cycles(m, vec, lanes, window) for m, _, _ in chunks]
    assert run.in_cycles == np.concatenate(([0], np.cumsum(costs)[:-1])).tolist()
    # The windowed lanes index their own segment only (what lets the PE select among fewer).
    for beat in beats_of(run):
        for j, index in enumerate(beat.indices):
            if index is not None:
                assert index % dut.selection.segments == dut.selection.lane_segment(j)


def test_window_costs_the_busiest_segment():
    """vec 8, lanes 4: with the full window a chunk of 4 set bits is one beat wherever they
    are. With windows of 4 (segments of the even and the odd positions, two lanes each) bits
    0-3 are one beat (a prefix spreads over the segments), bits 0, 2, 4 two; with windows of
    2 (positions s and s + 4, one lane each) bits 0, 1 are one beat, bits 0 and 4 two."""
    assert chunk_cycles(0b1111, 8, 4) == 1
    assert chunk_cycles(0b1111, 8, 4, 4) == 1
    assert chunk_cycles(0b10101, 8, 4, 4) == 2
    assert chunk_cycles(0b11, 8, 4, 2) == 1
    assert chunk_cycles(0b10001, 8, 4, 2) == 2
    assert chunk_cycles(0, 8, 4, 2) == 1


@pytest.mark.parametrize("vec, lanes, window", [(8, 3, None), (8, 8, None), (5, 2, None),
                                                (16, 4, None), (32, 4, None), (64, 16, None),
                                                (16, 4, 4), (16, 4, 8), (64, 16, 16),
                                                (12, 6, 4)])
@pytest.mark.parametrize("traffic", [(0.0, 0.0), (0.3, 0.4)], ids=["streaming", "idle+bp"])
def test_random_frames(vec, lanes, window, traffic):
    """Multi-chunk frames with densities from 0 to 1, all-zero chunks at frame starts and ends."""
    seed = seed_from_env(default=vec * 1000 + lanes + 100 * (window or 0))
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)

    def mask():
        density = rng.choice((0.0, 0.05, 0.3, 0.5, 0.9, 1.0))
        return sum(1 << p for p in range(vec) if rng.random() < density)
    chunks = random_frames(rng, 150, mask)
    dut = ZeroSkipIndexDecoder(vec=vec, lanes=lanes, window=window)
    run = decode(dut, chunks, idle=traffic[0], backpressure=traffic[1], seed=seed)
    if traffic == (0.0, 0.0):
        # Unstalled, the chunks are consumed at exactly chunk_cycles each.
        costs = [chunk_cycles(m, vec, lanes, window) for m, _, _ in chunks]
        assert run.in_cycles == np.concatenate(([0], np.cumsum(costs)[:-1])).tolist()


@pytest.mark.parametrize("vec, lanes, window", [(v, l, w) for v in (1, 3, 4, 6, 8)
                                                for l in range(1, v + 1)
                                                for w in [None, *windows(v, l)]])
def test_prefix_sequencer_every_mask(vec, lanes, window):
    """Every mask, each its own frame, back to back: the decoder's beats and cycles on the
    mask's prefix closure (a structure mask is its own closure)."""
    dut = PrefixIndexSequencer(vec=vec, lanes=lanes, window=window)
    chunks = [(mask, True, True) for mask in range(1 << vec)]
    run = decode(dut, chunks)
    costs = [chunk_cycles(prefix_closure(m), vec, lanes, window) for m, _, _ in chunks]
    assert run.in_cycles == np.concatenate(([0], np.cumsum(costs)[:-1])).tolist()
    assert costs[-1] == -(-vec // lanes)


@pytest.mark.parametrize("vec, lanes, window", [(16, 4, None), (16, 4, 4), (16, 4, 8),
                                                (12, 6, 4), (16, 16, None), (8, 3, None)])
def test_prefix_sequencer_random_frames(vec, lanes, window):
    """Multi-chunk frames of prefix and scattered masks, with idle input and backpressure;
    ``masks=2`` takes the prefix of the AND."""
    seed = seed_from_env(default=vec * 100 + lanes + (window or 0))
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)

    def mask():
        kind = rng.choice(("prefix", "scattered", "zero"))
        if kind == "prefix":
            return (1 << rng.randint(1, vec)) - 1
        return 0 if kind == "zero" else rng.randrange(1 << vec)
    chunks = random_frames(rng, 120, mask)
    decode(PrefixIndexSequencer(vec=vec, lanes=lanes, window=window), chunks, idle=0.3,
           backpressure=0.4, seed=seed)
    pairs = [(mask, rng.randrange(1 << vec), first, last) for mask, first, last in chunks]
    expected = decode_chunks([(prefix_closure(a & b), first, last) for a, b, first, last in pairs],
                             lanes, vec=vec, window=window)
    run_stream(PrefixIndexSequencer(vec=vec, lanes=lanes, masks=2, window=window),
               [{"mask": a, "mask_b": b, "first": first, "last": last}
                for a, b, first, last in pairs],
               [index_beat_payload(b, vec=vec, window=window) for b in expected],
               idle=0.2, backpressure=0.3, seed=seed)


def test_and_of_two_masks():
    dut = ZeroSkipIndexDecoder(vec=8, lanes=2, masks=2)
    rng = random.Random(7)
    pairs = [(rng.randrange(256), rng.randrange(256)) for _ in range(100)]
    chunks = [(a & b, True, True) for a, b in pairs]
    expected = decode_chunks(chunks, 2)
    run_stream(dut, [{"mask": a, "mask_b": b, "first": 1, "last": 1} for a, b in pairs],
               [index_beat_payload(b) for b in expected], idle=0.2, backpressure=0.3, seed=7)


@pytest.mark.parametrize("vec, lanes, window", [(16, 4, None), (16, 5, None), (7, 7, None),
                                                (3, 1, None), (1, 1, None), (16, 4, 4),
                                                (16, 4, 8), (12, 6, 4)])
def test_dense_sequencer(vec, lanes, window):
    """Every chunk, whatever its mask, gives indices 0..vec-1 in ceil(vec/lanes) beats (with
    a window, each lane within its segment)."""
    dut = DenseIndexSequencer(vec=vec, lanes=lanes, window=window)
    chunks = [(0, True, False), (5, False, True), ((1 << vec) - 1, True, True)]
    payloads = [{"mask": mask, "first": first, "last": last} for mask, first, last in chunks]
    run = run_stream(dut, payloads, dense_sequencer_beats(chunks, vec=vec, lanes=lanes,
                                                          window=window),
                     idle=0.2, backpressure=0.3, seed=1)
    # And by its definition, independently of the decoder's reference: indices 0..vec-1,
    # each in its lane's segment.
    beats = beats_of(run)
    assert len(beats) == 3 * -(-vec // lanes)
    assert sorted(i for beat in beats for i in beat.indices if i is not None) == \
        sorted(list(range(vec)) * 3)
    for beat in beats:
        for j, index in enumerate(beat.indices):
            assert (index is None or
                    index % dut.selection.segments == dut.selection.lane_segment(j))


@pytest.mark.parametrize("params, message", [
    (dict(vec=0, lanes=1), r"vec must be in \[1, 64\]"),
    (dict(vec=65, lanes=1), r"vec must be in \[1, 64\]"),
    (dict(vec=16, lanes=17), r"lanes must be in \[1, 16\]"),
    (dict(vec=16, lanes=4, masks=3), r"masks must be in \[1, 2\]"),
    (dict(vec=16, lanes=4, window=2), r"select_window must be one of \[4, 8, 16\]"),
    (dict(vec=16, lanes=3, window=8), r"select_window must be one of \[16\]"),
])
def test_rejects_illegal_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        ZeroSkipIndexDecoder(**params)
