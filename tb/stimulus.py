"""Random stimulus shared by the Amaranth-simulator tests and the cocotb testbenches."""

import os
import random

__all__ = ["seed_from_env", "random_signed", "random_frames"]


def seed_from_env(default: int | None = None) -> int:
    """The seed of a randomized test: ``MASKPROP_SEED`` if set, else ``default``, else a fresh one.

    Callers print it, so that any failure can be rerun with ``MASKPROP_SEED=<seed>``.
    """
    text = os.environ.get("MASKPROP_SEED")
    if text:
        return int(text)
    if default is not None:
        return default
    return random.SystemRandom().randrange(1 << 32)


def random_signed(rng: random.Random, width: int, extreme_probability: float = 0.25) -> int:
    """A signed ``width``-bit value; with ``extreme_probability`` one of min, max, -1, 0, 1."""
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if rng.random() < extreme_probability:
        return rng.choice((low, high, low + 1, -1, 0, 1))
    return rng.randint(low, high)


def random_frames(rng: random.Random, *, lanes: int, width: int, frames: int,
                  max_beats: int = 6, extreme_probability: float = 0.25):
    """Beats ``(terms, first, last)`` of ``frames`` frames of 1..max_beats beats each.

    Some frames are all-extreme (every term the most negative value) to drive the accumulator
    to its largest magnitudes.
    """
    beats = []
    for _ in range(frames):
        length = rng.randint(1, max_beats)
        all_min = rng.random() < 0.1
        for index in range(length):
            if all_min:
                terms = [-(1 << (width - 1))] * lanes
            else:
                terms = [random_signed(rng, width, extreme_probability) for _ in range(lanes)]
            beats.append((terms, index == 0, index == length - 1))
    return beats


def random_gemm_operands(rng, config, rows: int, reduction: int, cols: int, density: float):
    """Operands ``X (rows, reduction)`` and ``Y (reduction, cols)`` of ``config.data_width``
    signed values, 20 % of them extremes; ``X`` has nonzero ``density`` and ``Y`` twice that
    (capped at 1). ``rng`` is a ``numpy.random.Generator``."""
    import numpy as np

    def operand(shape, nonzero):
        values = rng.integers(config.data_min, config.data_max + 1, size=shape)
        extremes = rng.random(shape) < 0.2
        values[extremes] = rng.choice([config.data_min, config.data_max, -1, 1],
                                      size=int(extremes.sum()))
        return np.where(rng.random(shape) < nonzero, values, 0)
    return (operand((rows, reduction), density),
            operand((reduction, cols), min(1.0, 2 * density)))
