"""Reference functions for single hardware blocks, bit-exact with the RTL.

Each function states the block's arithmetic in plain Python integers, with none of the RTL's
structure (no pipeline, no tree): the testbenches compare the RTL's outputs against these.
"""

from dataclasses import dataclass

__all__ = ["FrameResult", "accumulate_frames", "wrap_signed", "fits_signed"]


def fits_signed(value: int, width: int) -> bool:
    """Whether ``value`` is representable as a ``width``-bit two's-complement integer."""
    return -(1 << (width - 1)) <= value < (1 << (width - 1))


def wrap_signed(value: int, width: int) -> int:
    """``value`` reduced to ``width``-bit two's complement (what a register of that width holds)."""
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


@dataclass(frozen=True)
class FrameResult:
    """The AccumulationTree's output for one frame."""
    value: int
    overflow: bool


def accumulate_frames(beats, acc_width: int) -> list[FrameResult]:
    """Reference for :class:`maskprop.hw.accumulation_tree.AccumulationTree`.

    ``beats`` is an iterable of ``(terms, first, last)``. A ``first`` beat restarts the sum, a
    ``last`` beat emits it. The accumulator adds one beat's exact sum of terms per step and wraps
    to ``acc_width`` bits; ``overflow`` is set when any of the frame's per-beat running sums left
    the ``acc_width`` range. Before the first ``first``, the accumulator starts from 0 (reset).
    """
    results = []
    acc, overflow = 0, False
    for terms, first, last in beats:
        running = (0 if first else acc) + sum(int(t) for t in terms)
        overflow = (overflow and not first) or not fits_signed(running, acc_width)
        acc = wrap_signed(running, acc_width)
        if last:
            results.append(FrameResult(acc, overflow))
    return results


@dataclass(frozen=True)
class IndexBeat:
    """One output beat of the index decoder."""
    indices: tuple
    first: bool
    last: bool


def set_bits(mask: int) -> list[int]:
    """Positions of the set bits of ``mask``, ascending."""
    return [p for p in range(mask.bit_length()) if mask >> p & 1]


def decode_chunks(chunks, lanes: int) -> list[IndexBeat]:
    """Reference for :class:`maskprop.hw.index_decoder.ZeroSkipIndexDecoder`.

    ``chunks`` is an iterable of ``(mask, first, last)``. Each chunk's set bits are sent
    ascending, ``lanes`` per beat; an all-zero chunk sends nothing unless it ends a frame, in
    which case one empty beat carries ``last``. ``first`` goes on a frame's first beat.
    """
    beats, pending_first = [], False
    for mask, first, last in chunks:
        bits = set_bits(mask)
        first = first or pending_first
        if not bits:
            if last:
                beats.append(IndexBeat((), first, True))
                pending_first = False
            else:
                pending_first = first
            continue
        pending_first = False
        groups = [bits[k:k + lanes] for k in range(0, len(bits), lanes)]
        for g, group in enumerate(groups):
            beats.append(IndexBeat(tuple(group), first and g == 0,
                                   last and g == len(groups) - 1))
    return beats


def index_beat_payload(beat: IndexBeat, lanes: int) -> dict:
    """The decoder's output payload for a reference beat: valid lanes lowest, the index of an
    invalid lane is 0."""
    indices = list(beat.indices) + [0] * (lanes - len(beat.indices))
    return {"index": indices, "lane_valid": (1 << len(beat.indices)) - 1,
            "first": beat.first, "last": beat.last}


def pe_terms(x, y, indices) -> list[int]:
    """Reference for :class:`maskprop.hw.sparse_pe.SparseGradPE`: the products of the selected
    operand pairs (``indices`` of the valid lanes, in lane order)."""
    return [int(x[e]) * int(y[e]) for e in indices]
