"""Reference functions for single hardware blocks, bit-exact with the RTL.

Each function states the block's arithmetic in plain Python integers, with none of the RTL's
structure (no pipeline, no tree): the testbenches compare the RTL's outputs against these.
"""

from dataclasses import dataclass

import numpy as np

from maskprop.base.config import Selection

__all__ = ["FrameResult", "accumulate_frames", "wrap_signed", "fits_signed", "join_lane_sums",
           "join_tile_sums", "segment_elements", "join_array_sums"]


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


def join_lane_sums(outputs, acc_width: int) -> list[FrameResult]:
    """Reference for :class:`maskprop.hw.join_lane.JoinLane`.

    ``outputs`` is an iterable of ``(x, y, x_mask, y_mask)``, four sequences of equal length:
    an output's segment elements of both operands, in the lane's walk order (chunk by chunk,
    element by element), and their masks. The products ``x * y`` where both masks are set are
    accumulated one at a time in that order, as :func:`accumulate_frames` does (so an overflow
    of any running sum is flagged); an output without one sums to 0.
    """
    beats = []
    for x, y, x_mask, y_mask in outputs:
        terms = [(int(a) * int(b),) for a, b, ma, mb in zip(x, y, x_mask, y_mask) if ma and mb]
        terms = terms or [(0,)]
        beats += [(term, k == 0, k == len(terms) - 1) for k, term in enumerate(terms)]
    return accumulate_frames(beats, acc_width)


def join_tile_sums(outputs, acc_width: int) -> list[FrameResult]:
    """Reference for :class:`maskprop.hw.join_tile.JoinTile`.

    ``outputs`` is an iterable of outputs, each a list of one ``(x, y, x_mask, y_mask)`` per
    lane (as :func:`join_lane_sums` takes them). Each lane's partial sum is
    :func:`join_lane_sums`'s; the result is their exact sum wrapped to ``acc_width``, with
    ``overflow`` set when a partial sum overflowed or the exact sum does not fit.
    """
    results = []
    for lanes in outputs:
        partials = join_lane_sums(lanes, acc_width)
        total = sum(p.value for p in partials)
        results.append(FrameResult(wrap_signed(total, acc_width),
                                   any(p.overflow for p in partials)
                                   or not fits_signed(total, acc_width)))
    return results


def segment_elements(elements, vec: int, segments: int, *, rotate: bool = True) -> list:
    """``(M, K)`` elements (values or masks) -> ``segments`` arrays ``(M, Q * vec / segments)``,
    ``Q = ceil(K / vec)`` chunks (the last one padded with zeros): each segment's positions of
    every chunk, chunk by chunk (segment ``s`` holds
    positions ``s, s + segments, ...``, as :class:`~maskprop.base.config.Selection` deals
    them); with ``rotate``, chunk ``k``'s element ``p`` moved to ``(p + k % segments) % vec``
    first (the join array's banks: a channel whose zeros are correlated across pixels is
    spread over the lanes)."""
    elements = np.asarray(elements)
    rows, length = elements.shape
    chunks = np.pad(elements, [(0, 0), (0, -length % vec)]).reshape(rows, -(-length // vec), vec)
    if rotate:
        chunks = np.stack([np.roll(chunks[:, k], k % segments, axis=-1)
                           for k in range(chunks.shape[1])], axis=1)
    return [chunks[:, :, s::segments].reshape(rows, -1) for s in range(segments)]


def join_array_sums(x, y, x_mask, y_mask, wanted, *, vec: int, lanes: int,
                    acc_width: int) -> list[FrameResult]:
    """Reference for :class:`maskprop.hw.join_array.JoinArray`: the wanted outputs ``(m, j)``
    (``wanted (M, J)`` booleans) of ``x (M, K) @ y (K, J)`` (in chunks of ``vec``),
    in the pass's order (row-major), each :func:`join_tile_sums`'s over its ``lanes`` lanes'
    walks: lane ``s`` walks segment ``s`` of every chunk of both operands after the chunk's
    rotation (:func:`segment_elements`), chunk by chunk, a product where both masks are
    set."""
    walks = [segment_elements(np.asarray(a), vec, lanes)
             for a in (x, np.asarray(y).T, x_mask, np.asarray(y_mask).T)]
    x_walk, y_walk, x_bits, y_bits = walks
    outputs = [[(x_walk[s][m].tolist(), y_walk[s][j].tolist(), x_bits[s][m].tolist(),
                 y_bits[s][j].tolist()) for s in range(lanes)]
               for m, j in zip(*np.nonzero(wanted))]
    return join_tile_sums(outputs, acc_width)


@dataclass(frozen=True)
class IndexBeat:
    """One output beat of the index decoder: the element index of every lane (``None`` for an
    invalid lane) and the framing."""
    indices: tuple
    first: bool
    last: bool


def set_bits(mask: int) -> list[int]:
    """Positions of the set bits of ``mask``, ascending."""
    return [p for p in range(mask.bit_length()) if mask >> p & 1]


def _selection(lanes: int, vec: int | None, window: int | None):
    """The decoder's :class:`~maskprop.base.config.Selection`; ``vec`` None: the full window."""
    return Selection(lanes if vec is None else vec, lanes, window)


def decode_chunks(chunks, lanes: int, *, vec: int | None = None,
                  window: int | None = None) -> list[IndexBeat]:
    """Reference for :class:`maskprop.hw.index_decoder.ZeroSkipIndexDecoder`.

    ``chunks`` is an iterable of ``(mask, first, last)``. Each chunk's set bits are sent
    ascending, ``lanes`` per beat; an all-zero chunk sends nothing unless it ends a frame, in
    which case one empty beat carries ``last``. ``first`` goes on a frame's first beat.
    With a selection ``window`` (chunks of ``vec`` elements), each segment
    (:class:`~maskprop.base.config.Selection`) sends its set bits ``lanes * window / vec`` per
    beat into its own lanes, and the chunk takes as many beats as its busiest segment.
    :attr:`IndexBeat.indices` has one entry per lane, ``None`` for an invalid one.
    """
    selection = _selection(lanes, vec, window)
    segment_lanes = selection.segment_lanes
    beats, pending_first = [], False
    for mask, first, last in chunks:
        bits = set_bits(mask)
        first = first or pending_first
        if not bits:
            if last:
                beats.append(IndexBeat((None,) * lanes, first, True))
                pending_first = False
            else:
                pending_first = first
            continue
        pending_first = False
        per_segment = selection.split(bits)
        count = max(-(-len(ours) // segment_lanes) for ours in per_segment)
        for g in range(count):
            lane_indices = []
            for ours in per_segment:
                sent = ours[g * segment_lanes:(g + 1) * segment_lanes]
                lane_indices += sent + [None] * (segment_lanes - len(sent))
            beats.append(IndexBeat(tuple(lane_indices), first and g == 0,
                                   last and g == count - 1))
    return beats


def index_beat_payload(beat: IndexBeat, *, vec: int | None = None,
                       window: int | None = None) -> dict:
    """The decoder's output payload for a reference beat. An invalid lane's index is its
    segment's first element, position ``s`` of segment ``s`` (0 with the full window): the
    decoder places a segment offset that is 0 when no bit is selected."""
    selection = _selection(len(beat.indices), vec, window)
    return {"index": [selection.lane_segment(j) if e is None else e
                      for j, e in enumerate(beat.indices)],
            "lane_valid": sum(1 << j for j, e in enumerate(beat.indices) if e is not None),
            "first": beat.first, "last": beat.last}


def pe_terms(x, y, indices) -> list[int]:
    """Reference for :class:`maskprop.hw.sparse_pe.SparseGradPE`: the products of the selected
    operand pairs: lane ``j``'s term is ``x[e] * y[e]`` for ``e = indices[j]``, 0 for an
    invalid lane (``None``)."""
    return [0 if e is None else int(x[e]) * int(y[e]) for e in indices]
