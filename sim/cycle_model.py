"""Cycle model: predicts the RTL's cycle counts exactly from masks and the configuration.

Unit costs come from the hardware's own contract (:func:`maskprop.hw.index_decoder.chunk_cycles`
is the decoder's; it is restated here in vectorized form and tests hold the two together).
"""

import numpy as np

__all__ = ["chunk_costs", "engine_cycles", "stream_schedule"]


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


def row_chunk_cycles(x_nonzero: np.ndarray, lanes: int, *, dense: bool = False) -> np.ndarray:
    """Decoder cycles of each row's chunks, summed: ``(M, chunks, vec)`` nonzero map of the
    broadcast operand -> ``(M,)``."""
    rows, chunks, vec = x_nonzero.shape
    if dense:
        return np.full(rows, chunks * -(-vec // lanes), dtype=np.int64)
    per_chunk = np.maximum(1, -(-np.count_nonzero(x_nonzero, axis=-1) // lanes))
    return per_chunk.sum(axis=-1)


def column_groups(wanted: np.ndarray, tiles: int, col_block: int) -> np.ndarray:
    """Column groups per row of the tile array: for every block of ``col_block`` columns,
    ``max(1, ceil(wanted / tiles))`` (a row block with nothing wanted still takes one group to
    consume its X chunks). ``(M, J)`` -> ``(M,)``."""
    rows, cols = wanted.shape
    blocks = -(-cols // col_block)
    padded = np.zeros((rows, blocks * col_block), dtype=bool)
    padded[:, :cols] = wanted
    per_block = padded.reshape(rows, blocks, col_block).sum(axis=-1)
    return np.maximum(1, -(-per_block // tiles)).sum(axis=-1)


def array_cycles(x_nonzero: np.ndarray, wanted: np.ndarray, config, *,
                 dense: bool = False) -> int:
    """Cycles of a pass on :class:`maskprop.hw.tile_array.TileArray` (its ``cycles - stalls``
    counter): every column group of a row replays the row's X chunks through the decoder.

    ``x_nonzero``: ``(M, chunks, vec)`` nonzero map of X; ``wanted``: ``(M, J)`` outputs to
    compute (all of them in dense mode).
    """
    per_row = row_chunk_cycles(x_nonzero, config.lanes, dense=dense)
    return int((per_row * column_groups(wanted, config.tiles, config.col_block)).sum())
