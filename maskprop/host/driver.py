"""Host driver of the tile array: a conv layer's pass in, the array's input streams out, and its
output beats back into the pass's tensor.

The host lowers the pass to a masked GEMM aligned to the array's chunks
(:mod:`maskprop.sim.lowering`), loads ``Y`` into the tiles' buffers, and sends each row of ``X``
once per block of ``col_block`` output columns, with that block's output mask. Only chunks
with a structural element are sent, each with its chunk index, and a row without one is not
sent at all: padding taps, dilation holes and padded channels cost nothing in either mode. In
dense mode a chunk's mask is its structure (every element the shape leaves possibly nonzero is
multiplied), in sparse mode its nonzero map (docs/architecture.md section 2). Everything the array's configuration cannot hold is refused here,
with the parameter to change, before any simulation: :func:`check_pass` decides every refusal
that depends only on the layer's shape and the configuration, before any tensor exists.
"""

import math
from dataclasses import dataclass

import numpy as np

from maskprop.base.config import Config, ceil_log2
from maskprop.sim.cycle_model import (IssuedChunks, PassEstimate, array_cycles,
                                      candidate_lowerings, estimate_lowerings,
                                      mode_estimates, wanted_outputs)
from maskprop.sim.layer import pass_label
from maskprop.sim.lowering import LoweredGemm, chunk_count, mask_words, pad_to_chunks

__all__ = ["SIM_ELEMENT_LIMIT", "GemmShape", "gemm_shapes", "check_pass",
           "check_tensor_elements", "ArrayPass", "mode_passes", "ChunkStream", "chunk_stream"]


#: Most elements one RTL run handles: in each of the layer's tensors (``A``, ``W``, ``dZ``) and in
#: the operand stream the testbench builds (every X chunk once per block of output columns, plus
#: every Y chunk). The testbench holds that stream as Python lists and the simulator clocks
#: through it beat by beat, so a run beyond this is hours of simulation and gigabytes of memory.
SIM_ELEMENT_LIMIT = 1 << 22


@dataclass(frozen=True)
class GemmShape:
    """Shape of a pass's lowered GEMM: ``X (rows, reduction) @ Y (reduction, cols)``.

    ``orientation`` is backward-weight's broadcast operand (``"dz"`` or ``"a"``, see
    :func:`maskprop.sim.lowering.lower_backward_weight`), ``""`` for the other passes.
    """
    rows: int
    reduction: int
    cols: int
    orientation: str = ""

    def chunks(self, config: Config) -> int:
        """Chunks of ``vec`` elements one row's reduction takes (at least one)."""
        return chunk_count(self.reduction, config.vec)

    def stream_elements(self, config: Config) -> int:
        """Elements the testbench sends: each X row once per block of ``col_block`` columns,
        and each Y column once, all padded to whole chunks."""
        blocks = -(-self.cols // config.col_block)
        return (self.rows * blocks + self.cols) * self.chunks(config) * config.vec


def gemm_shapes(layer, pass_name: str, vec: int = 1) -> tuple:
    """The :class:`GemmShape` of each way the host can lower ``pass_name`` of ``layer`` aligned
    to chunks of ``vec``, from the shape alone (the dimensions :mod:`maskprop.sim.lowering`
    produces). Backward-weight has two (``"dz"`` and ``"a"``); each mode runs in its faster
    one, which depends on the tensors."""
    layer.reduction(pass_name)                      # refuses an unknown pass
    n, c, h, w = layer.input_shape
    k, taps = layer.out_channels, layer.kernel * layer.kernel

    def aligned(length):
        return -(-length // vec) * vec
    if pass_name == "forward":
        return (GemmShape(n * layer.out_height * layer.out_width, taps * aligned(c), k),)
    if pass_name == "backward_data":
        return (GemmShape(n * h * w, taps * aligned(k), c),)
    pixels = aligned(n * layer.out_height * layer.out_width)
    return (GemmShape(k, pixels, taps * c, "dz"), GemmShape(taps * c, pixels, k, "a"))


_OPERAND = {"dz": "dZ", "a": "A"}


def _where(layer, pass_name: str) -> str:
    return f"{layer.label} {pass_label(pass_name)}"


def _check_chunks(where: str, reduction: int, config: Config) -> None:
    chunks = chunk_count(reduction, config.vec)
    if chunks > config.max_chunks:
        raise ValueError(
            f"{where}: the reduction of {reduction} elements needs {chunks} chunks of "
            f"{config.vec}, but max_chunks is {config.max_chunks}; raise max_chunks to "
            f"{1 << (chunks - 1).bit_length()} or more")


def _check_cols(where: str, cols: int, config: Config) -> None:
    if cols > config.max_cols:
        raise ValueError(f"{where}: {cols} output columns, but max_cols is "
                         f"{config.max_cols}; raise max_cols to {cols} or more")


def _y_words_needed(cols: int, chunks: int) -> int:
    """Y buffer words a pass takes: its columns at the stride of its chunks."""
    return cols << Config.y_chunk_shift(chunks)


def _check_y_words(where: str, cols: int, chunks: int, config: Config) -> None:
    """Refuse a pass whose columns, each at the column stride of its ``chunks`` (a power of
    two), do not fit the Y buffer (its row buffer and column limits checked before)."""
    needed = _y_words_needed(cols, chunks)
    if needed > config.y_words:
        raise ValueError(
            f"{where}: {cols} output columns of {chunks} chunks take {needed} words of the Y "
            f"buffer (a column stride of {1 << Config.y_chunk_shift(chunks)}), but y_words is "
            f"{config.y_words}; raise y_words to {1 << ceil_log2(needed)} or more")


def check_tensor_elements(layer, pass_name: str,
                          element_limit: int = SIM_ELEMENT_LIMIT) -> None:
    """Refuse (``ValueError``) a layer with a tensor of more than ``element_limit`` elements:
    too large for one RTL simulation, on any block."""
    for name, shape in (("A", layer.input_shape), ("W", layer.weight_shape),
                        ("dZ", layer.output_shape)):
        elements = math.prod(shape)
        if elements > element_limit:
            raise ValueError(f"{_where(layer, pass_name)}: {name} {'x'.join(map(str, shape))} "
                             f"has {elements:,} elements; one RTL run takes at most "
                             f"{element_limit:,} per tensor: use a smaller layer")


def check_pass(layer, pass_name: str, config: Config, *,
               element_limit: int = SIM_ELEMENT_LIMIT) -> None:
    """Refuse (``ValueError`` naming what to change), from ``layer``'s shape and ``config``
    alone, a pass the tile array cannot run: a reduction longer than the row buffer
    (``max_chunks``), more output columns than the array addresses (``max_cols``) or than the
    Y buffer holds at the pass's column stride (``y_words``, :meth:`Config.y_fits`), sums the
    accumulator cannot hold (``acc_width``), or tensors or an operand stream of more than
    ``element_limit`` elements.

    Call it before making tensors or lowering: the lowered operands of a big layer are many
    times its tensors (im2col repeats every input pixel ``R * R`` times). For backward-weight
    the orientation is chosen later from the densities, so it is refused here only when neither
    orientation fits; :meth:`ArrayPass.prepare` refuses the chosen one if it does not, and the
    element limit keeps that lowering small.
    """
    where = _where(layer, pass_name)
    shapes = gemm_shapes(layer, pass_name, config.vec)
    _check_chunks(where, shapes[0].reduction, config)      # one reduction for every orientation
    chunks = shapes[0].chunks(config)
    fitting = [s for s in shapes if config.y_fits(s.cols, chunks)]
    if not fitting:
        if len(shapes) == 1:
            _check_cols(where, shapes[0].cols, config)
            _check_y_words(where, shapes[0].cols, chunks, config)
        options = " or ".join(f"{s.cols} output columns broadcasting {_OPERAND[s.orientation]}"
                              for s in shapes)
        fewest = min(s.cols for s in shapes)
        if fewest > config.max_cols:
            raise ValueError(f"{where}: {options}, but max_cols is {config.max_cols}; raise "
                             f"max_cols to {fewest} or more")
        needed = _y_words_needed(fewest, chunks)
        raise ValueError(f"{where}: {options}, of {chunks} chunks each, but y_words is "
                         f"{config.y_words}; raise y_words to {1 << ceil_log2(needed)} or more")
    layer.check_accumulation(config, passes=(pass_name,))
    check_tensor_elements(layer, pass_name, element_limit)
    # The data picks backward-weight's orientation later: bound every one that may run.
    streamed = max(s.stream_elements(config) for s in fitting)
    if streamed > element_limit:
        raise ValueError(f"{where}: the lowered pass streams {streamed:,} elements to the tile "
                         f"array; one RTL run takes at most {element_limit:,}: use a smaller "
                         f"layer")


@dataclass
class ArrayPass:
    """One pass prepared for the tile array of ``config``.

    ``x``: ``(M, Q, vec)`` int64 broadcast-operand chunks, ``x_masks`` ``(M, Q)`` their nonzero
    masks and ``structure_masks`` ``(M, Q)`` their structural masks (a chunk is sent only if
    its structural mask is not 0); ``y``: ``(J, Q, vec)`` the columns' chunks; ``omask``:
    ``(M, J)`` wanted outputs.
    """
    gemm: LoweredGemm
    config: Config
    x: np.ndarray
    x_masks: np.ndarray
    structure_masks: np.ndarray
    y: np.ndarray
    omask: np.ndarray

    @classmethod
    def prepare(cls, gemm: LoweredGemm, config: Config, *,
                check_fit: bool = True) -> "ArrayPass":
        """Check that ``config`` can run ``gemm`` (lowered with ``vec=config.vec``;
        ``ValueError`` naming what to change). ``check_fit=False`` leaves out the buffer
        limits (``max_chunks``, ``max_cols``, ``y_words``): for the whole of a pass the core
        runs split, each command of which fits (:func:`maskprop.host.split.plan_pass`)."""
        where = _where(gemm.layer, gemm.pass_name)
        if gemm.vec != config.vec:
            raise ValueError(f"{where}: lowered for chunks of vec={gemm.vec}, but the array's "
                             f"vec is {config.vec}; lower it with vec={config.vec}")
        rows, reduction = gemm.X.shape
        cols = gemm.Y.shape[1]
        if check_fit:
            _check_chunks(where, reduction, config)
            _check_cols(where, cols, config)
            _check_y_words(where, cols, chunk_count(reduction, config.vec), config)
        gemm.layer.check_accumulation(config, passes=(gemm.pass_name,))
        for name, operand in (("X", gemm.X), ("Y", gemm.Y)):
            if operand.size and (operand.min() < config.data_min or
                                 operand.max() > config.data_max):
                raise ValueError(f"{where}: {name} holds values outside the signed "
                                 f"{config.data_width}-bit range of data_width")
        omask = (np.ones((rows, cols), dtype=bool) if gemm.omask is None
                 else np.asarray(gemm.omask, dtype=bool))
        x = pad_to_chunks(np.asarray(gemm.X, dtype=np.int64), config.vec)
        y = pad_to_chunks(np.asarray(gemm.Y.T, dtype=np.int64), config.vec)
        structure = pad_to_chunks(gemm.structure, config.vec).masks
        return cls(gemm, config, x.values, x.masks, structure, y.values, omask)

    @classmethod
    def lower(cls, layer, pass_name: str, config: Config, *, A, W, dZ,
              output_mask: bool = True, x_operand: str = "dz",
              check_fit: bool = True) -> "ArrayPass":
        """:meth:`prepare` of the pass lowered for ``config`` (``x_operand``: backward-weight's
        orientation)."""
        from maskprop.sim.lowering import lower_pass
        return cls.prepare(lower_pass(layer, pass_name, A=A, W=W, dZ=dZ, output_mask=output_mask,
                                      x_operand=x_operand, vec=config.vec), config,
                           check_fit=check_fit)

    @property
    def rows(self) -> int:
        return self.x.shape[0]

    @property
    def cols(self) -> int:
        return self.y.shape[0]

    @property
    def chunks(self) -> int:
        return self.x.shape[1]

    @property
    def chunk_shift(self) -> int:
        """The tile array's ``chunk_shift`` for this pass: log2 of the Y buffer's column
        stride, which the loads' addresses use."""
        return self.config.y_chunk_shift(self.chunks)

    def drive(self, dense: bool) -> dict:
        """The tile array's other inputs, held for the whole run: ``dense``, ``clear`` (low),
        ``chunk_shift`` and ``y_half`` (0: the Y buffer from address 0)."""
        return {"dense": int(dense), "clear": 0, "chunk_shift": self.chunk_shift, "y_half": 0}

    @property
    def live(self) -> np.ndarray:
        """``(M, Q)``: the chunks that are sent (those with a structural element)."""
        return self.structure_masks != 0

    @property
    def live_rows(self) -> np.ndarray:
        """``(M,)``: the rows that are sent (those with a live chunk); the others are 0."""
        return self.live.any(axis=1)

    def blocks(self):
        """``(col_base, width)`` of each block of output columns."""
        block = self.config.col_block
        return [(base, min(block, self.cols - base)) for base in range(0, self.cols, block)]

    def wanted(self, dense: bool) -> np.ndarray:
        """``(M, J)`` outputs the array computes: all in dense mode, else the mask."""
        return np.ones_like(self.omask) if dense else self.omask

    def masks(self, dense: bool) -> np.ndarray:
        """``(M, Q)`` the mask each chunk is sent with: its structure (dense) or nonzeros."""
        return self.structure_masks if dense else self.x_masks

    # --- the array's input streams ---------------------------------------------------------

    def load_payloads(self):
        """Y chunk ``k`` of column ``j`` at address ``(j << chunk_shift) | k``: the stride
        the array reads with (:attr:`chunk_shift`, which the bench must drive)."""
        shift = self.chunk_shift
        for j in range(self.cols):
            for k in range(self.chunks):
                yield {"addr": j << shift | k, "y": self.y[j, k].tolist()}

    def row_payloads(self):
        for m in np.flatnonzero(self.live_rows):
            for base, width in self.blocks():
                omask = int(sum(1 << p for p in range(width) if self.omask[m, base + p]))
                yield {"omask": omask, "col_valid": (1 << width) - 1, "col_base": base}

    def x_payloads(self, dense: bool):
        masks, live = self.masks(dense), self.live
        for m in np.flatnonzero(self.live_rows):
            chunks = np.flatnonzero(live[m])
            row = [{"x": self.x[m, k].tolist(), "mask": int(masks[m, k]), "index": int(k),
                    "last": int(k == chunks[-1])} for k in chunks]
            for _ in self.blocks():
                yield from row

    def inputs(self, dense: bool) -> dict:
        return {"load": list(self.load_payloads()), "rows": list(self.row_payloads()),
                "x": list(self.x_payloads(dense))}

    # --- what comes out --------------------------------------------------------------------

    def exact(self) -> np.ndarray:
        """``X @ Y`` (every output, exact)."""
        return self.gemm.X.astype(np.int64) @ self.gemm.Y.astype(np.int64)

    def groups(self, dense: bool):
        """``(m, [columns])`` of every column group, in the order the array issues them."""
        tiles, wanted = self.config.tiles, self.wanted(dense)
        for m in np.flatnonzero(self.live_rows):
            for base, width in self.blocks():
                columns = [base + p for p in range(width) if wanted[m, base + p]]
                if not columns:
                    yield m, []
                for g in range(0, len(columns), tiles):
                    yield m, columns[g:g + tiles]

    def expected_results(self, dense: bool):
        """The array's output payloads, beat by beat (an unused slot reads 0, column 0)."""
        exact, tiles = self.exact(), self.config.tiles
        for m, columns in self.groups(dense):
            padded = columns + [None] * (tiles - len(columns))
            yield {"value": [0 if j is None else int(exact[m, j]) for j in padded],
                   "overflow": 0,
                   "column": [0 if j is None else j for j in padded],
                   "valid": (1 << len(columns)) - 1}

    def assemble(self, results, dense: bool) -> np.ndarray:
        """The pass's tensor from the array's output beats (views with ``value``, ``column``,
        ``valid``). Outputs the array did not compute (masked, or of rows without a structural
        element) are 0, so with the mask applied the result is directly the next layer's
        sparse input."""
        out = np.zeros((self.rows, self.cols), dtype=np.int64)
        beats = iter(results)
        for m, columns in self.groups(dense):
            beat = next(beats)
            for t in range(len(columns)):
                if not beat.valid >> t & 1:
                    raise ValueError(f"row {m}: slot {t} came back invalid")
                out[m, beat.column[t]] = beat.value[t]
        return self.gemm.to_tensor(out)

    def golden(self, dense: bool) -> np.ndarray:
        """The golden tensor: the masked GEMM (sparse) or the full one (dense)."""
        return self.gemm.to_tensor(np.where(self.wanted(dense), self.exact(), 0))

    def issued(self, dense: bool, *, zero_skipping: bool = True) -> IssuedChunks:
        """What the decoder gets in that mode (for the cycle model); ``zero_skipping=False``:
        the dense-only array's sequencer (dense mode)."""
        return IssuedChunks.of(self.gemm, self.config, dense=dense,
                               zero_skipping=zero_skipping)

    def model_cycles(self, dense: bool, *, zero_skipping: bool = True) -> int:
        """The cycle model's count for this pass (the array's ``cycles - stalls``); on the
        dense-only array with ``zero_skipping=False`` (``dense`` must then be True)."""
        if not (zero_skipping or dense):
            raise ValueError("the dense-only array runs dense mode only")
        return array_cycles(self.issued(dense, zero_skipping=zero_skipping),
                            wanted_outputs(self.gemm, dense=dense), self.config)

    def estimate(self) -> PassEstimate:
        """The cycle model's dense and sparse cycles of this pass (both in this lowering), its
        dense and nonzero MACs, and so its speedup, ideal and efficiency
        (:mod:`maskprop.base.metrics`)."""
        return estimate_lowerings([self.gemm], self.config)


def mode_passes(layer, pass_name: str, config: Config, *, A, W, dZ,
                output_mask: bool = True) -> dict:
    """``{"dense": ArrayPass, "sparse": ArrayPass}``: the pass prepared for each mode in the
    lowering the cycle model's estimates run it in (backward-weight's orientation; the other
    passes have one lowering): :func:`~maskprop.sim.cycle_model.mode_estimates`, sparse mode
    in its fastest, dense mode in the fair baseline's fastest, so a comparison's dense run is
    the baseline's lowering on this array."""
    gemms = candidate_lowerings(layer, pass_name, A=A, W=W, dZ=dZ, config=config,
                                output_mask=output_mask)
    dense, sparse = mode_estimates(gemms, config)
    return {"dense": ArrayPass.prepare(dense.gemm, config),
            "sparse": ArrayPass.prepare(sparse.gemm, config)}


# The one-tile engine's input: GEMM outputs as framed streams of chunk pairs. Output ``(m, j)``
# of ``Out = X @ Y`` is one frame; chunk ``k`` pairs ``X[m, k*vec:(k+1)*vec]`` with
# ``Y[k*vec:(k+1)*vec, j]`` (zero-padded at the end, docs/architecture.md section 3.1).
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
    x = pad_to_chunks(X[outputs[:, 0]], vec).values
    y = pad_to_chunks(Y[:, outputs[:, 1]].T, vec).values
    expected = (x * y).sum(axis=(1, 2))
    return ChunkStream(x, y, expected, outputs)
