"""Cycle model: predicts the RTL's cycle counts exactly from masks and the configuration.

Unit costs come from the hardware's own contract (:func:`maskprop.hw.index_decoder.chunk_cycles`
is the decoder's; it is restated here in vectorized form and tests hold the two together).
"""

from dataclasses import dataclass

import numpy as np

from maskprop.base.metrics import Speedups, multiplier_slots, nonzero_products
from maskprop.sim.lowering import lower_pass, pad_to_chunks

__all__ = ["chunk_costs", "engine_cycles", "stream_schedule", "row_chunk_cycles", "column_groups",
           "array_cycles", "array_group_cycles", "array_output_cycles", "PassEstimate",
           "gemm_estimate", "pass_estimate"]


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


@dataclass(frozen=True)
class PassEstimate(Speedups):
    """Cycle-model result of one pass of one layer on the tile array (terms and ratios as in
    :mod:`maskprop.base.metrics`)."""
    layer: str
    pass_name: str
    dense_cycles: int
    sparse_cycles: int
    dense_slots: int
    nonzero_macs: int


def gemm_estimate(gemm, config) -> PassEstimate:
    """Cycles of a lowered pass (:class:`~maskprop.sim.lowering.LoweredGemm`) on the tile array
    of ``config``, dense and sparse, its dense slots and its nonzero MACs. Only the operands'
    nonzero patterns matter."""
    x_nonzero = pad_to_chunks(gemm.X != 0, config.vec).values
    everything = np.ones((gemm.X.shape[0], gemm.Y.shape[1]), dtype=bool)
    wanted = everything if gemm.omask is None else np.asarray(gemm.omask, dtype=bool)
    dense_cycles = array_cycles(x_nonzero, everything, config, dense=True)
    return PassEstimate(
        gemm.layer.name, gemm.pass_name, dense_cycles, array_cycles(x_nonzero, wanted, config),
        multiplier_slots(dense_cycles, config.lanes * config.tiles),
        nonzero_products(gemm.X != 0, gemm.Y != 0, wanted))


def pass_estimate(layer, pass_name: str, a_nonzero, dz_nonzero, config, *,
                  w_nonzero=None) -> PassEstimate:
    """:func:`gemm_estimate` of a layer's pass from masks alone.

    ``a_nonzero``: the layer's input activation's nonzero map ``(N, C, H, W)``; ``dz_nonzero``:
    the output gradient's ``(N, K, Ho, Wo)``; ``w_nonzero``: the weights' (default: dense).
    The pass is lowered by :func:`~maskprop.sim.lowering.lower_pass`, as the host driver lowers
    it, so the counts are the RTL's.
    """
    def pattern(nonzero):     # one byte per element: the lowered operands stay small
        return np.asarray(nonzero, dtype=bool).view(np.uint8)

    w = (np.ones(layer.weight_shape, dtype=np.uint8) if w_nonzero is None
         else pattern(w_nonzero))
    return gemm_estimate(lower_pass(layer, pass_name, A=pattern(a_nonzero), W=w,
                                    dZ=pattern(dz_nonzero)), config)
