"""Stimulus shared by the Amaranth-simulator tests and the cocotb benches: random beats, operands
and conv tensors, and the table of small conv passes the tile-array tests run."""

import os
import random

from maskprop.base.config import Selection

__all__ = ["seed_from_env", "scratchpad_words", "gather_command", "random_signed",
           "random_frames", "random_chunks",
           "random_index_beats", "dense_sequencer_beats", "random_gemm_operands",
           "random_conv_tensors", "structural_layers", "SMALL_PASSES", "small_pass"]


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


def random_index_beats(rng: random.Random, *, vec: int, lanes: int, data_width: int, count: int,
                       window: int | None = None):
    """``count`` random PE input beats (payload dicts of ``index_beat_layout`` with operand
    chunks) and the PE's expected output payloads (:func:`maskprop.sim.blocks.pe_terms`): in
    each selection segment (:class:`~maskprop.base.config.Selection`; one of all ``vec``
    elements by default) a random number of its lanes, the lowest, valid with ascending
    positions of the segment, as the decoder sends them; an invalid lane's index is any
    element."""
    from maskprop.sim.blocks import pe_terms

    selection = Selection(vec, lanes, window)
    segment_lanes = selection.segment_lanes
    inputs, expected = [], []
    for _ in range(count):
        x = [random_signed(rng, data_width) for _ in range(vec)]
        y = [random_signed(rng, data_width) for _ in range(vec)]
        indices = []
        for s in range(selection.segments):
            valid = rng.randint(0, segment_lanes)
            indices += (sorted(rng.sample(selection.positions(s), valid)) +
                        [None] * (segment_lanes - valid))
        first, last = rng.random() < 0.5, rng.random() < 0.5
        inputs.append({"index": [rng.randrange(vec) if e is None else e for e in indices],
                       "lane_valid": sum(1 << j for j, e in enumerate(indices) if e is not None),
                       "first": first, "last": last, "side": {"x": x, "y": y}})
        expected.append({"terms": pe_terms(x, y, indices), "first": first, "last": last})
    return inputs, expected


def dense_sequencer_beats(chunks, *, vec: int, lanes: int, window: int | None = None) -> list:
    """The output payloads of :class:`~maskprop.hw.index_decoder.DenseIndexSequencer` for
    ``chunks`` ``(mask, first, last)``, bit for bit: ``ceil(vec / lanes)`` beats per chunk,
    whatever its mask; in beat ``b`` lane ``i`` of segment ``s``
    (:class:`~maskprop.base.config.Selection`: ``segment_lanes`` lanes each) carries offset
    ``k = b * segment_lanes + i`` of the segment, valid when it is below ``window``, at
    position ``s + k * segments``, cut to the index field's width (``max(1,
    ceil(log2(vec)))`` bits) for an invalid lane, as the block computes it."""
    selection = Selection(vec, lanes, window)
    segment_lanes, segments = selection.segment_lanes, selection.segments
    beats = -(-vec // lanes)
    field = (1 << max(1, (vec - 1).bit_length())) - 1
    payloads = []
    for _, first, last in chunks:
        for b in range(beats):
            offsets = [(selection.lane_segment(j), b * segment_lanes + j % segment_lanes)
                       for j in range(lanes)]
            payloads.append({"index": [(s + k * segments) & field for s, k in offsets],
                             "lane_valid": sum(1 << j for j, (_, k) in enumerate(offsets)
                                               if k < selection.window),
                             "first": bool(first) and b == 0,
                             "last": bool(last) and b == beats - 1})
    return payloads


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


def structural_layers() -> list:
    """Small conv layers, one for each structural case of the lowering: stride 1 and 2, 1x1,
    rows with no structural element (never sent: backward-data of the input pixels a stride-2
    1x1 conv never reads, forward outputs whose window is all padding, padding 3)."""
    from maskprop.sim.layer import ConvLayer

    return [
        ConvLayer(batch=2, in_channels=3, height=5, width=5, out_channels=7, kernel=3, stride=1,
                  padding=1, name="3x3-s1"),
        ConvLayer(batch=2, in_channels=3, height=6, width=6, out_channels=5, kernel=3, stride=2,
                  padding=1, name="3x3-s2"),
        ConvLayer(batch=2, in_channels=6, height=4, width=4, out_channels=4, kernel=1, stride=1,
                  padding=0, name="1x1"),
        ConvLayer(batch=2, in_channels=3, height=5, width=5, out_channels=4, kernel=1, stride=2,
                  padding=0, name="1x1-s2"),
        ConvLayer(batch=1, in_channels=2, height=3, width=3, out_channels=3, kernel=3, stride=1,
                  padding=3, name="3x3-p3"),
    ]


def _small_passes() -> dict:
    from maskprop.sim.layer import ConvLayer

    return {
        # A 3x3 forward pass: a chunk per tap (4 channels each), the padding taps of border
        # pixels not sent, first groups and replays of every length; 7 output columns, so the one column block (col_block 8) has a column that does not
        # exist (col_valid), which counts neither as an output nor as a skipped one.
        "forward-3x3": (ConvLayer(1, 4, 4, 4, 7, 3, 1, 1, "c4k7"), "forward", 0.3),
        # Backward-data with stride 2: the output mask at work, 1 to 4 chunks per row (the
        # dilation holes are not sent).
        "backward-data-3x3-s2": (ConvLayer(1, 4, 4, 4, 7, 3, 2, 1, "s2k7"), "backward_data",
                                 0.4),
        # Backward-weight of a 1x1 conv broadcasting A (orientation "a"): 9 columns, leaving a
        # last column block of one column; 18 pixels padded to 2 chunks.
        "backward-weight-1x1": (ConvLayer(2, 6, 3, 3, 9, 1, 1, 0, "1x1"), "backward_weight",
                                0.4),
        # All-zero activations through a 1x1 conv: every group is one decoder cycle, so more
        # groups are in flight at once than anywhere else (the group FIFO must hold them all).
        "one-cycle-groups": (ConvLayer(1, 8, 3, 3, 12, 1, 1, 0, "zeros"), "forward", 0.0),
    }


def __getattr__(name):
    """``SMALL_PASSES``, the small conv passes of the tile-array tests in Amaranth's simulator
    (counters, timing): name -> (layer, pass, density of ``A`` and ``dZ``), run on
    :data:`maskprop.base.config.FPGA_SMALL`. Built on first use (PEP 562), because the layers
    need NumPy and every cocotb simulation imports this module for :func:`seed_from_env`:
    importing NumPy there cost each simulator process about half a second."""
    if name == "SMALL_PASSES":
        globals()["SMALL_PASSES"] = passes = _small_passes()
        return passes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def small_pass(name: str, seed: int, config=None):
    """The :class:`~maskprop.host.driver.ArrayPass` of ``SMALL_PASSES[name]`` on ``config``
    (default :data:`~maskprop.base.config.FPGA_SMALL`), tensors drawn from ``seed``, and the
    tensors ``(A, W, dZ)`` (for the direct-convolution check)."""
    import numpy as np

    from maskprop.base.config import FPGA_SMALL
    from maskprop.host.driver import ArrayPass

    layer, pass_name, density = SMALL_PASSES[name]
    A, W, dZ = random_conv_tensors(np.random.default_rng(seed), layer, density, data_max=100)
    array_pass = ArrayPass.lower(layer, pass_name, config or FPGA_SMALL, A=A, W=W, dZ=dZ,
                                 x_operand="a")
    return array_pass, (A, W, dZ)


def scratchpad_words(tensor, vec: int, data_width: int, base: int) -> list:
    """The scratchpad image of ``tensor (N, C, H, W)``: ``base`` words of filler (nonzero, so a
    wrong address shows), then the tensor channel-last, ``ceil(C / vec)`` words per pixel, each
    element's two's complement in the low ``data_width`` bits of its container (the high bits
    filled with garbage, which a reader must ignore), channels beyond ``C`` garbage too."""
    from maskprop.base.config import container_bits

    n, c, h, w = tensor.shape
    cont = container_bits(data_width)
    cb_n = -(-c // vec)
    rng = random.Random(base * 7 + c)
    words = [rng.getrandbits(vec * cont) for _ in range(base)]
    for ni in range(n):
        for yy in range(h):
            for xx in range(w):
                for cb in range(cb_n):
                    word = 0
                    for e in range(vec):
                        ch = cb * vec + e
                        if ch < c:
                            value = int(tensor[ni, ch, yy, xx]) & ((1 << data_width) - 1)
                            value |= (rng.getrandbits(cont - data_width) << data_width
                                      if cont > data_width else 0)
                        else:
                            value = rng.getrandbits(cont)
                        word |= value << (e * cont)
                    words.append(word)
    return words


def gather_command(layer, base: int) -> dict:
    """The fields of a ``WindowGather`` command walking ``layer``'s input (a ``ConvLayer``,
    symmetric padding), its tensor at word ``base``."""
    return {"n": layer.batch, "c": layer.in_channels, "h": layer.height, "w": layer.width,
            "kernel": layer.kernel, "stride": layer.stride, "padding": layer.padding,
            "pad_top": layer.padding, "pad_bottom": layer.padding,
            "out_h": layer.out_height, "out_w": layer.out_width, "base": base}
