"""Host side of the one-tile engine: GEMM outputs as framed streams of chunk pairs.

Output ``(m, j)`` of ``Out = X @ Y`` is one frame: the reduction ``i`` is cut into chunks of
``vec`` (zero-padded at the end, docs/architecture.md section 3.1), chunk ``k`` pairs
``X[m, k*vec:(k+1)*vec]`` with ``Y[k*vec:(k+1)*vec, j]``.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["ChunkStream", "chunk_stream", "mask_words"]


def mask_words(chunks: np.ndarray) -> np.ndarray:
    """Nonzero masks of ``(..., vec)`` chunks as integers (bit ``e`` = element ``e`` nonzero)."""
    bits = (chunks != 0).astype(np.uint64)
    weights = np.left_shift(np.uint64(1), np.arange(chunks.shape[-1], dtype=np.uint64))
    return (bits * weights).sum(axis=-1, dtype=np.uint64)


@dataclass
class ChunkStream:
    """The chunk pairs of a list of GEMM outputs.

    ``x``, ``y``: ``(frames, chunks, vec)`` int64 operand chunks; ``expected``: the exact
    ``(frames,)`` sums; ``outputs``: the ``(m, j)`` of each frame.
    """
    x: np.ndarray
    y: np.ndarray
    expected: np.ndarray
    outputs: np.ndarray

    @property
    def frames(self) -> int:
        return self.x.shape[0]

    @property
    def chunks_per_frame(self) -> int:
        return self.x.shape[1]

    def payloads(self):
        """Engine input payloads (dicts for ``engine_input_layout``), frame by frame."""
        x_masks, y_masks = mask_words(self.x), mask_words(self.y)
        last_chunk = self.chunks_per_frame - 1
        for f in range(self.frames):
            for k in range(self.chunks_per_frame):
                yield {"x": self.x[f, k].tolist(), "y": self.y[f, k].tolist(),
                       "x_mask": int(x_masks[f, k]), "y_mask": int(y_masks[f, k]),
                       "first": k == 0, "last": k == last_chunk}


def chunk_stream(X: np.ndarray, Y: np.ndarray, outputs, vec: int) -> ChunkStream:
    """Frames for the outputs ``outputs`` (``(n, 2)`` of ``(m, j)``) of ``X @ Y``."""
    X, Y = np.asarray(X, dtype=np.int64), np.asarray(Y, dtype=np.int64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[0]:
        raise ValueError(f"X {X.shape} and Y {Y.shape} are not a GEMM's operands")
    outputs = np.asarray(outputs, dtype=np.int64).reshape(-1, 2)
    reduction = X.shape[1]
    chunks = max(1, -(-reduction // vec))
    pad = chunks * vec - reduction
    x_rows = np.pad(X[outputs[:, 0]], ((0, 0), (0, pad)))
    y_cols = np.pad(Y[:, outputs[:, 1]].T, ((0, 0), (0, pad)))
    expected = (x_rows * y_cols).sum(axis=1)
    return ChunkStream(x_rows.reshape(-1, chunks, vec), y_cols.reshape(-1, chunks, vec),
                       expected, outputs)
