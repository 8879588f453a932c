"""Cycle model: predicts the RTL's cycle counts exactly from masks and the configuration.

Unit costs come from the hardware's own contract (:func:`maskprop.hw.index_decoder.chunk_cycles`
is the decoder's; it is restated here in vectorized form and tests hold the two together).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["chunk_costs", "engine_cycles", "stream_schedule", "row_chunk_cycles", "column_groups",
           "array_cycles", "array_group_cycles", "array_output_cycles", "Speedups",
           "PassEstimate", "nonzero_products", "pass_estimate"]


def chunk_costs(x_chunks: np.ndarray, y_chunks: np.ndarray, lanes: int, *,
                dense: bool = False) -> np.ndarray:
    """Cycles of each chunk pair (``(..., vec)`` arrays) on the engine's decoder, unstalled.

    Sparse mode issues only products with both operands nonzero, ``lanes`` per cycle, and an
    all-zero chunk costs one cycle: ``max(1, ceil(n / lanes))``. Dense mode issues every element:
    ``ceil(vec / lanes)``.
    """
    vec = x_chunks.shape[-1]
    if dense:
        return np.full(x_chunks.shape[:-1], -(-vec // lanes), dtype=np.int64)
    nonzero = np.count_nonzero((x_chunks != 0) & (y_chunks != 0), axis=-1)
    return np.maximum(1, -(-nonzero // lanes))


def engine_cycles(stream, lanes: int, *, dense: bool = False) -> int:
    """Input-busy cycles (the engine's ``cycles - stalls`` counter) for a :class:`ChunkStream`."""
    return int(chunk_costs(stream.x, stream.y, lanes, dense=dense).sum())


def stream_schedule(costs, chunks_per_frame: int, latency: int):
    """Unstalled timing of a chunk stream: the cycle each chunk is accepted and the cycle each
    frame's result is offered (see :class:`maskprop.hw.engine.SparseDotEngine`)."""
    ends = np.cumsum(np.asarray(costs).ravel())
    accepted = np.concatenate(([0], ends[:-1]))
    results = ends[chunks_per_frame - 1::chunks_per_frame] - 1 + latency
    return accepted, results


def row_chunk_cycles(x_nonzero: np.ndarray, lanes: int, *, dense: bool = False):
    """Decoder cycles of one pass of each row's chunks through the tile array, for the first
    column group (every chunk, an all-zero one costs a cycle) and for a replay (only the chunks
    with a nonzero, at least one cycle): ``(M, chunks, vec)`` nonzero map -> two ``(M,)``."""
    rows, chunks, vec = x_nonzero.shape
    if dense:
        full = np.full(rows, chunks * -(-vec // lanes), dtype=np.int64)
        return full, full
    beats = -(-np.count_nonzero(x_nonzero, axis=-1) // lanes)
    first = np.maximum(1, beats).sum(axis=-1)
    replay = np.maximum(1, beats.sum(axis=-1))
    return first, replay


def column_groups(wanted: np.ndarray, tiles: int, col_block: int) -> np.ndarray:
    """Column groups per row and block of the tile array: ``max(1, ceil(wanted / tiles))`` for
    every block of ``col_block`` columns (a block with nothing wanted still takes one group to
    consume its X chunks). ``(M, J)`` -> ``(M, blocks)``."""
    rows, cols = wanted.shape
    blocks = -(-cols // col_block)
    padded = np.zeros((rows, blocks * col_block), dtype=bool)
    padded[:, :cols] = wanted
    per_block = padded.reshape(rows, blocks, col_block).sum(axis=-1)
    return np.maximum(1, -(-per_block // tiles))


def array_cycles(x_nonzero: np.ndarray, wanted: np.ndarray, config, *,
                 dense: bool = False) -> int:
    """Cycles of a pass on :class:`maskprop.hw.tile_array.TileArray` (its ``cycles - stalls``
    counter): each row is sent once per block of columns, and each of the block's column groups
    passes the row's chunks through the decoder (the first all of them, the others the nonzero
    ones).

    ``x_nonzero``: ``(M, chunks, vec)`` nonzero map of X; ``wanted``: ``(M, J)`` outputs to
    compute (all of them in dense mode).
    """
    first, replay = row_chunk_cycles(x_nonzero, config.lanes, dense=dense)
    groups = column_groups(wanted, config.tiles, config.col_block)          # (M, blocks)
    return int((first[:, None] + (groups - 1) * replay[:, None]).sum())


def array_group_cycles(x_nonzero: np.ndarray, wanted: np.ndarray, config, *,
                       dense: bool = False) -> np.ndarray:
    """Decoder cycles of every column group of a pass on the tile array, in the order the array
    issues them (row by row, block by block, ascending columns): a row's first group passes
    all its chunks, the others replay the nonzero ones (see :func:`array_cycles`, their sum)."""
    first, replay = row_chunk_cycles(x_nonzero, config.lanes, dense=dense)
    groups = column_groups(wanted, config.tiles, config.col_block).ravel()     # (M * blocks,)
    blocks = groups.size // max(1, first.size)
    durations = np.repeat(np.repeat(replay, blocks), groups)
    starts = np.concatenate(([0], np.cumsum(groups)[:-1]))                  # each block's first
    durations[starts] = np.repeat(first, blocks)
    return durations


def array_output_cycles(x_nonzero: np.ndarray, wanted: np.ndarray, config, *, latency: int,
                        dense: bool = False) -> np.ndarray:
    """The cycle in which each column group's result is offered on an unstalled pass, counted
    from the cycle in which the array accepts the pass's first row (cycle 0).

    From :class:`~maskprop.hw.tile_array.TileArray`'s timing contract: the first chunk enters
    the decoder in the cycle after its row is accepted (the row register), groups and rows then
    follow without bubbles, each taking :func:`array_group_cycles`, and a group's result comes
    ``latency`` cycles after its last chunk's last decoder cycle - counted as for a one-cycle
    chunk: entered in ``t``, result in ``t + latency``. So group ``g``'s result is offered in
    ``1 + sum(durations[:g + 1]) - 1 + latency``; the last one ends the pass.
    """
    return np.cumsum(array_group_cycles(x_nonzero, wanted, config, dense=dense)) + latency


class Speedups:
    """Speedup, ideal and achieved/ideal of anything with ``dense_cycles``, ``sparse_cycles``,
    ``dense_macs`` (multiplier slots the dense mode occupies) and ``nonzero_macs`` (products with
    both operands nonzero, of the wanted outputs)."""

    @property
    def speedup(self) -> float:
        return self.dense_cycles / self.sparse_cycles

    @property
    def ideal(self) -> float:
        return self.dense_macs / max(1, self.nonzero_macs)

    @property
    def efficiency(self) -> float:
        return self.speedup / self.ideal


@dataclass
class PassEstimate(Speedups):
    """Cycle-model result of one pass of one layer on the tile array."""
    layer: str
    pass_name: str
    dense_cycles: int
    sparse_cycles: int
    dense_macs: int
    nonzero_macs: int


#: float64 holds every integer below 2**53 exactly (float32 only below 2**24).
_EXACT_FLOAT64 = 1 << 53


def nonzero_products(x_nonzero, y_nonzero, wanted=None) -> int:
    """Products with both operands nonzero over the outputs ``wanted`` of ``X (M, I) @ Y (I, J)``.

    The count, exactly, in integers. The matmul runs in float64 (BLAS; numpy's int64 matmul is
    several times slower): every per-output count is at most the reduction ``I``, so every
    partial sum is an integer below ``2**53`` and exact. Per-output counts are summed in int64.
    """
    x = np.asarray(x_nonzero) != 0
    y = np.asarray(y_nonzero) != 0
    if x.shape[1] >= _EXACT_FLOAT64:
        raise ValueError(f"reduction {x.shape[1]:,} is too long to count exactly in float64")
    pairs = x.astype(np.float64) @ y.astype(np.float64)
    if wanted is not None:
        pairs = pairs[np.asarray(wanted, dtype=bool)]
    return int(pairs.astype(np.int64).sum())


def pass_estimate(layer, pass_name: str, a_nonzero, dz_nonzero, config, *,
                  w_nonzero=None) -> PassEstimate:
    """Cycles of a layer's pass on the tile array, dense and sparse, from masks alone.

    ``a_nonzero``: the layer's input activation's nonzero map ``(N, C, H, W)``; ``dz_nonzero``:
    the output gradient's ``(N, K, Ho, Wo)``; ``w_nonzero``: the weights' (default: dense).
    The passes are lowered exactly as the host driver lowers them (backward-data masked by
    ``A != 0``, backward-weight with the sparser operand broadcast), so the counts are the RTL's.
    """
    from maskprop.sim.layer import PASSES
    from maskprop.sim.lowering import lower_backward_data, lower_backward_weight, lower_forward

    a = np.asarray(a_nonzero, dtype=bool).view(np.uint8)
    dz = np.asarray(dz_nonzero, dtype=bool).view(np.uint8)
    w = (np.ones(layer.weight_shape, dtype=np.uint8) if w_nonzero is None
         else np.asarray(w_nonzero, dtype=bool).view(np.uint8))
    if pass_name == "forward":
        gemm = lower_forward(layer, a, w)
    elif pass_name == "backward_data":
        gemm = lower_backward_data(layer, dz, w, A_mask=a)
    elif pass_name == "backward_weight":
        gemm = lower_backward_weight(layer, dz, a)
    else:
        raise ValueError(f"pass must be one of {', '.join(PASSES)}, not {pass_name!r}")
    rows, reduction = gemm.X.shape
    cols = gemm.Y.shape[1]
    vec, lanes = config.vec, config.lanes
    chunks = max(1, -(-reduction // vec))
    x = np.zeros((rows, chunks * vec), dtype=bool)
    x[:, :reduction] = gemm.X != 0
    x = x.reshape(rows, chunks, vec)
    everything = np.ones((rows, cols), dtype=bool)
    wanted = everything if gemm.omask is None else np.asarray(gemm.omask, dtype=bool)
    dense_groups = column_groups(everything, config.tiles, config.col_block)
    dense_cycles = array_cycles(x, everything, config, dense=True)
    sparse_cycles = array_cycles(x, wanted, config)
    # Nonzero products of each wanted output: X's nonzeros against Y's, per (row, column).
    nonzero_macs = nonzero_products(gemm.X != 0, gemm.Y != 0, wanted)
    dense_macs = int(dense_groups.sum()) * chunks * -(-vec // lanes) * lanes * config.tiles
    return PassEstimate(layer.name, pass_name, dense_cycles, sparse_cycles, dense_macs,
                        nonzero_macs)
