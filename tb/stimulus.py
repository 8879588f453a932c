"""Random stimulus shared by the Amaranth-simulator tests and the cocotb testbenches."""

import os
import random

__all__ = ["seed_from_env", "random_signed", "random_frames", "random_chunks",
           "random_index_beats", "random_gemm_operands", "random_conv_tensors"]


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


def random_chunks(rng: random.Random, vec: int, count: int):
    """At least ``count`` decoder chunks ``(mask, first, last)`` in frames of 1..4 chunks, with
    densities from all-zero to all-one (all-zero chunks at frame starts and ends included)."""
    chunks = []
    while len(chunks) < count:
        length = rng.randint(1, 4)
        for k in range(length):
            density = rng.choice((0.0, 0.02, 0.1, 0.3, 0.5, 0.9, 1.0))
            mask = sum(1 << p for p in range(vec) if rng.random() < density)
            chunks.append((mask, k == 0, k == length - 1))
    return chunks


def random_index_beats(rng: random.Random, *, vec: int, lanes: int, data_width: int, count: int):
    """``count`` random PE input beats (payload dicts of ``index_beat_layout`` with operand
    chunks) and the PE's expected output payloads (:func:`maskprop.sim.blocks.pe_terms`)."""
    from maskprop.sim.blocks import pe_terms

    inputs, expected = [], []
    for _ in range(count):
        x = [random_signed(rng, data_width) for _ in range(vec)]
        y = [random_signed(rng, data_width) for _ in range(vec)]
        valid = rng.randint(0, lanes)
        indices = sorted(rng.sample(range(vec), valid))
        first, last = rng.random() < 0.5, rng.random() < 0.5
        inputs.append({"index": indices + [rng.randrange(vec)] * (lanes - valid),
                       "lane_valid": (1 << valid) - 1, "first": first, "last": last,
                       "side": {"x": x, "y": y}})
        expected.append({"terms": pe_terms(x, y, indices) + [0] * (lanes - valid),
                         "first": first, "last": last})
    return inputs, expected


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


def random_conv_tensors(rng, layer, density: float, *, data_max: int = 2000):
    """``A`` (a ReLU output: >= 0), ``W`` and ``dZ`` of a :class:`~maskprop.sim.layer.ConvLayer`,
    integers in ``[-data_max, data_max]``, ``A`` and ``dZ`` nonzero with probability
    ``density``. ``rng`` is a ``numpy.random.Generator``."""
    import numpy as np

    def sparse(shape):
        return np.where(rng.random(shape) < density,
                        rng.integers(-data_max, data_max + 1, size=shape), 0)
    return (np.abs(sparse(layer.input_shape)),
            rng.integers(-data_max, data_max + 1, size=layer.weight_shape),
            sparse(layer.output_shape))
