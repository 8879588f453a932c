"""Data movement, counted events and energy of one layer pass on MaskpropCore.

The cycle model (:mod:`maskprop.sim.cycle_model`) counts compute cycles with the operands in
place. This module adds what it takes to get them there and back, and what the work costs in
energy, from the core's dataflow (docs/architecture.md section 8) and the cycle model's chunk
lists:

- **DRAM traffic** (:func:`pass_traffic`): the bytes of every tensor the core reads or writes
  for a pass (given a core, as the commands :func:`maskprop.host.split.plan_pass` splits it
  into, each loading its X band and its weights unless it keeps the command before's), in its
  memory layout (:mod:`maskprop.host.memory_layout`: channel-last, channels
  padded to a multiple of ``vec``, elements in 8/16/32-bit containers). Forward reads ``A``
  into the X scratchpad and ``W`` into the Y buffer and writes ``Z``; backward-data reads
  ``dZ`` and the transposed weights ``Wt`` and writes ``dA``, and in sparse mode with the output
  mask also reads ``A`` once, to derive ``A != 0`` on chip (:attr:`PassTraffic.mask_bitmap_bytes`
  is what a 1-bit-per-element bitmap would take instead). Backward-weight: each core command
  (:func:`command_traffic`, what the core model uses) reads its ``A`` band and its ``dZ``
  band (its output-channel group's words) into the X scratchpad once each and writes its
  ``dW`` in the core's layout (a row per broadcast row), or, a part of a split reduction, reads
  and writes the 64-bit partial sums (``"dW sums"``).
- **Events** (:func:`pass_events`): MACs issued, X scratchpad, row buffer and Y buffer
  accesses, outputs, counted from :class:`~maskprop.sim.cycle_model.IssuedChunks` the way the
  tile array (``hw/tile_array.py``) and the core's address generator move chunks; each count is
  a function below whose docstring says exactly what it counts.
- **Energy** (:func:`pass_energy`): events times :data:`HOROWITZ_45NM`, a per-event table of
  published 45 nm numbers with the scaling rules stated on :class:`EnergyTable`.
- **Memory-bound cycles** (:func:`memory_cycles`): ``ceil(bytes / bandwidth)`` at a stated
  bandwidth in bytes per cycle, and the two ways compute and memory compose
  (:func:`overlapped_cycles`, :func:`serial_cycles`).

:data:`ASSUMPTIONS` lists what these numbers assume; ``maskprop eval`` writes it with them.
"""

import math
import numbers
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from maskprop.base.config import Config, CoreConfig, ceil_log2
from maskprop.host.memory_layout import channel_words, word_bytes
from maskprop.host.split import plan_pass, whole_pass
from maskprop.sim.cycle_model import IssuedChunks, wanted_outputs
from maskprop.sim.layer import ConvLayer, check_pass_name
from maskprop.sim.lowering import chunk_count

__all__ = ["ASSUMPTIONS", "TENSORS", "tensor_words", "TensorTraffic", "PassTraffic",
           "pass_traffic", "summed_traffic", "command_traffic", "mask_bitmap_bytes", "live_chunks", "kept_chunks", "block_wanted",
           "issued_macs", "array_chunks", "x_scratchpad_reads", "row_buffer_writes",
           "row_buffer_reads", "y_buffer_reads", "outputs_computed", "PassEvents",
           "pass_events", "EnergyTable", "HOROWITZ_45NM", "BufferSizes", "buffer_sizes",
           "Energy", "pass_energy", "memory_cycles", "overlapped_cycles", "serial_cycles",
           "ModeCost", "mode_cost"]

#: What the traffic, event and energy counts assume (written with them by ``maskprop eval``).
ASSUMPTIONS = (
    "Forward and backward-data run on the evaluation's core (CORE_DEFAULT's X scratchpad, Y "
    "buffer and max_cols on the evaluated tile array) as the commands the host splits them "
    "into (maskprop.host.split.plan_pass): each command reads its X band (with the halo rows "
    "its windows share with the next band) unless it keeps the one before's, and its "
    "columns' weights unless it keeps those, so a split pass reads more than its tensors; "
    "'commands' is how many. Each SRAM is sized to hold what the pass loads, at most the "
    "core's buffer.",
    "Backward-weight runs on the evaluation's core too, in the orientation each mode is "
    "fastest in among those the core runs: output-channel groups and parts of its reduction "
    "(images or row bands of at most row_block_chunks chunks of pixels), each command reading "
    "its A and dZ bands and, after the first part, the 64-bit partial sums of the parts "
    "before, and writing them raw (all but the last part) or dW; the Y buffer is filled by "
    "the window gather from the X scratchpad, not from DRAM.",
    "Sparse backward-data reads A once to derive its output mask (A != 0) on chip, as the core "
    "does; mask_bitmap_bytes is what a 1-bit-per-element bitmap would read instead (not "
    "built).",
    "Memory cycles = ceil(DRAM bytes read and written / bandwidth), reads and writes sharing "
    "the bandwidth; 'overlapped' = max(compute, memory) per pass (full overlap), 'serial' = "
    "compute + memory per pass (no overlap); the core lies between: it streams the input and "
    "the results during the run and prefetches the next command's weights where its groups "
    "fit half the Y buffer, and waits for the other weight loads, each command's check and "
    "backward-weight's bands (scripts/bench_prefetch.py measures how much).",
    "Energy = counted events x a per-event energy (45 nm, Horowitz ISSCC 2014) with the "
    "scaling rules of maskprop.sim.data_movement.EnergyTable; each SRAM sized as above "
    "(rounded up to a power of two bytes); idle lanes and disabled tiles cost nothing; "
    "control, the output mask FIFO, requantization and leakage are not counted.",
)

#: The tensors a pass moves, and their words in the core's layout (NCHW names; ``Wt`` is the
#: backward-data copy of the weights, transposed with flipped taps).
TENSORS = ("A", "W", "Wt", "dZ", "Z", "dA", "dW")


def tensor_words(layer: ConvLayer, tensor: str, vec: int) -> int:
    """Memory words (one chunk of ``vec`` channels of one pixel each) of ``tensor`` of
    ``layer`` in the core's layout: ``A``, ``dA`` ``N*H*W*ceil(C/vec)``; ``dZ``, ``Z``
    ``N*Ho*Wo*ceil(K/vec)``; ``W``, ``dW`` ``K*R*R*ceil(C/vec)``; ``Wt`` ``C*R*R*ceil(K/vec)``."""
    n, c, h, w = layer.input_shape
    k, taps = layer.out_channels, layer.kernel * layer.kernel
    sizes = {"A": n * h * w * channel_words(c, vec), "W": k * taps * channel_words(c, vec),
             "Wt": c * taps * channel_words(k, vec),
             "dZ": n * layer.out_height * layer.out_width * channel_words(k, vec)}
    sizes.update(dA=sizes["A"], Z=sizes["dZ"], dW=sizes["W"])
    if tensor not in sizes:
        raise ValueError(f"tensor must be one of {', '.join(TENSORS)}, not {tensor!r}")
    return sizes[tensor]


# --- DRAM traffic -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorTraffic:
    """One tensor crossing the memory port: ``direction`` ``"read"`` or ``"write"``, ``role``
    what the core does with it (``"X scratchpad"``, ``"Y buffer"``, ``"output mask"``,
    ``"output"``), its ``words`` and ``bytes`` in the core's layout."""
    tensor: str
    role: str
    direction: str
    words: int
    bytes: int


@dataclass(frozen=True)
class PassTraffic:
    """The DRAM traffic of one pass in one mode (:func:`pass_traffic`), in ``commands`` core
    commands (each tensor's words summed over them)."""
    pass_name: str
    dense: bool
    tensors: tuple
    mask_bitmap_bytes: int
    commands: int = 1

    def words(self, role: str) -> int:
        """Words of the tensors the core uses as ``role`` (``"X scratchpad"``, ...)."""
        return sum(t.words for t in self.tensors if t.role == role)

    @property
    def read_bytes(self) -> int:
        return sum(t.bytes for t in self.tensors if t.direction == "read")

    @property
    def written_bytes(self) -> int:
        return sum(t.bytes for t in self.tensors if t.direction == "write")

    @property
    def total_bytes(self) -> int:
        return self.read_bytes + self.written_bytes

    @property
    def mask_bytes(self) -> int:
        """Bytes read for the output mask (``A`` as words), 0 when no mask is read."""
        return sum(t.bytes for t in self.tensors if t.role == "output mask")

    @property
    def total_bytes_with_bitmap(self) -> int:
        """:attr:`total_bytes` with the output mask read as a bitmap instead of ``A``."""
        return self.total_bytes - self.mask_bytes + self.mask_bitmap_bytes

    def by_tensor(self) -> dict:
        """``{(tensor, direction): bytes}``."""
        return {(t.tensor, t.direction): t.bytes for t in self.tensors}


def mask_bitmap_bytes(layer: ConvLayer, vec: int) -> int:
    """Bytes of backward-data's output mask ``A != 0`` as a bitmap: one bit per element of
    ``A``'s channel-padded layout (``vec`` bits per memory word), in whole bytes."""
    return _bitmap_bytes(tensor_words(layer, "A", vec), vec)


def _bitmap_bytes(words: int, vec: int) -> int:
    return -(-words * vec // 8)


def pass_traffic(layer: ConvLayer, pass_name: str, config: Config, *, dense: bool,
                 output_mask: bool = True, core: CoreConfig | None = None,
                 operand: str = "a") -> PassTraffic:
    """The bytes each tensor of ``pass_name`` of ``layer`` moves between DRAM and the core of
    ``config`` (its ``vec`` and ``data_width`` fix the layout), in dense or sparse mode (see the
    module's docstring; ``output_mask``: sparse backward-data computes only where ``A != 0``,
    and reads ``A`` for it; ``operand``: backward-weight's broadcast operand). With ``core``
    (on an array of ``config``'s ``vec`` and ``data_width``), the sum over the commands
    ``plan_pass`` splits the pass into (``ValueError`` if it cannot; backward-weight's parts
    read and write their partial sums); without, the pass in one command, every tensor read
    once and the result written once."""
    pass_name = check_pass_name(pass_name)
    if core is None:
        commands = [whole_pass(layer, pass_name, operand)]
    else:
        if (core.array.vec, core.array.data_width) != (config.vec, config.data_width):
            raise ValueError("the core's array must have the layout's vec and data_width")
        commands = plan_pass(layer, pass_name, core, operand=operand)
    return summed_traffic([command_traffic(layer, command, config, dense=dense,
                                           output_mask=output_mask)
                           for command in commands])


def summed_traffic(traffics) -> PassTraffic:
    """The commands ``traffics`` (of one pass and mode, from :func:`command_traffic`) as one
    :class:`PassTraffic`: each tensor's words and bytes summed, in the first command's order."""
    first, words, size = traffics[0], {}, {}
    for traffic in traffics:
        for t in traffic.tensors:
            key = (t.tensor, t.role, t.direction)
            words[key] = words.get(key, 0) + t.words
            size[key] = size.get(key, 0) + t.bytes
    return PassTraffic(first.pass_name, first.dense,
                       tuple(TensorTraffic(*key, words[key], size[key]) for key in words),
                       sum(t.mask_bitmap_bytes for t in traffics), len(traffics))


def command_traffic(layer: ConvLayer, command, config: Config, *, dense: bool,
                    output_mask: bool = True) -> PassTraffic:
    """The words and bytes one core command (:class:`maskprop.host.split.CoreCommand`) moves.
    Forward and backward-data: its X band (all images and rows its windows read), its
    columns' weights (none if it keeps those of the command before), the output words of its
    pixels and columns and, in sparse backward-data with ``output_mask``, the ``A`` words of
    those for the output mask (and what those would be as a bitmap). Backward-weight (its
    ``operand``): the ``A`` band and then the ``dZ`` band, both read once into the X scratchpad
    (role ``"X scratchpad"``; the window gather fills the Y buffer from there, so nothing is
    read as ``"Y buffer"``), and ``dW`` written once in the core's layout (role ``"output"``):
    a row per broadcast row (``"a"``: ``R*R*C`` rows, ``"dz"``: ``K``) of ``ceil(cols /
    vec)`` words (of its output-channel group's columns); a part of a split reduction reads
    the partial sums of the parts before (``psum_in``) and writes its sums raw instead of
    ``dW`` (``psum_out``), 64 bits each (tensor ``"dW sums"``, role ``"partial sums"``)."""
    vec, size = config.vec, word_bytes(config.vec, config.data_width)
    if command.pass_name == "backward_weight":
        a_words, dz_words = command.weight_bands(layer, vec)
        rows, cols = command.weight_shape(layer)
        out_words = rows * channel_words(cols, vec)
        sum_words = command.sum_words(layer, config.tiles, size) if command.psum_in or command.psum_out else 0
        tensors = (TensorTraffic("A", "X scratchpad", "read", a_words, a_words * size),
                   TensorTraffic("dZ", "X scratchpad", "read", dz_words, dz_words * size))
        if command.psum_in:
            tensors += (TensorTraffic("dW sums", "partial sums", "read", sum_words,
                                      sum_words * size),)
        tensors += ((TensorTraffic("dW sums", "partial sums", "write", sum_words,
                                   sum_words * size),) if command.psum_out else
                    (TensorTraffic("dW", "output", "write", out_words, out_words * size),))
        return PassTraffic(command.pass_name, dense, tensors, 0)
    forward = command.pass_name == "forward"
    # The Y buffer's words: the command's weights and those it prefetches for the next.
    x_words = command.x_words(layer, vec)
    y_words = command.y_words(layer, vec) + command.prefetch_words(layer, vec)
    out_words = command.pixels(layer) * channel_words(len(command.columns), vec)

    def moved(tensor, role, direction, words):
        return TensorTraffic(tensor, role, direction, words, words * size)

    bitmap = 0
    if forward:
        tensors = (moved("A", "X scratchpad", "read", x_words),
                   moved("W", "Y buffer", "read", y_words),
                   moved("Z", "output", "write", out_words))
    else:
        tensors = (moved("dZ", "X scratchpad", "read", x_words),
                   moved("Wt", "Y buffer", "read", y_words))
        if output_mask and not dense:
            tensors += (moved("A", "output mask", "read", out_words),)
            bitmap = _bitmap_bytes(out_words, vec)
        tensors += (moved("dA", "output", "write", out_words),)
    return PassTraffic(command.pass_name, dense, tensors, bitmap)


# --- events from the chunk lists ----------------------------------------------------------------
#
# For one pass in one mode, ``issued`` is the cycle model's IssuedChunks (per chunk: the set mask
# bits the decoder gets, and whether the chunk is sent at all) and ``wanted`` the (M, J) outputs
# the array computes (all of them in dense mode). A row is sent once per block of ``col_block``
# columns; within a (row, block) the wanted columns go in groups of ``tiles``, ascending: the
# first group takes the row's live chunks from the X stream, the others replay the chunks kept
# in the row buffer (hw/tile_array.py, docs/architecture.md section 4.6).

def live_chunks(issued: IssuedChunks) -> np.ndarray:
    """``(M,)``: the chunks of each row that are sent (those with a structural element); the
    first group of every (row, block) passes them all."""
    return issued.live.sum(axis=-1).astype(np.int64)


def kept_chunks(issued: IssuedChunks) -> np.ndarray:
    """``(M,)``: the row-buffer entries of each row, which every further group replays: its
    live chunks with a set mask bit (all its live chunks in dense mode, where a chunk's mask is
    its structure), and its last chunk if none has one (it carries ``last``); 0 for a row that
    is not sent."""
    with_bits = (issued.live & (issued.counts > 0)).sum(axis=-1).astype(np.int64)
    return np.where(issued.live_rows, np.maximum(1, with_bits), 0)


def block_wanted(wanted: np.ndarray, col_block: int, live_rows: np.ndarray) -> np.ndarray:
    """``(M, blocks)``: the wanted columns of each row in each block of ``col_block`` columns,
    0 for a row that is not sent."""
    wanted = np.asarray(wanted, dtype=bool)
    rows, cols = wanted.shape
    blocks = -(-cols // col_block)
    padded = np.zeros((rows, blocks * col_block), dtype=bool)
    padded[:, :cols] = wanted
    per_block = padded.reshape(rows, blocks, col_block).sum(axis=-1, dtype=np.int64)
    return np.where(np.asarray(live_rows)[:, None], per_block, 0)


def _set_bits(issued: IssuedChunks) -> np.ndarray:
    """``(M,)``: the set mask bits of each sent row's live chunks."""
    return np.where(issued.live, issued.counts, 0).sum(axis=-1, dtype=np.int64)


# The formulas, on the per-row terms above (shared by the functions below and pass_events).

def _macs(bits, per_block) -> int:
    return int((bits * per_block.sum(axis=-1, dtype=np.int64)).sum(dtype=np.int64))


def _replays(kept, per_block, tiles) -> int:
    # max(1, ceil(e / tiles)) groups per block; a row not sent has kept 0.
    replays = (np.maximum(1, -(-per_block // tiles)) - 1).sum(axis=-1, dtype=np.int64)
    return int((replays * kept).sum(dtype=np.int64))


def _y_reads(live, kept, per_block, tiles) -> int:
    first = np.minimum(per_block, tiles)
    first_reads = (first.sum(axis=-1, dtype=np.int64) * live).sum(dtype=np.int64)
    replay_reads = ((per_block - first).sum(axis=-1, dtype=np.int64) * kept).sum(dtype=np.int64)
    return int(first_reads + replay_reads)


def issued_macs(issued: IssuedChunks, wanted: np.ndarray) -> int:
    """MACs issued, the tile array's ``macs`` counter (valid lanes of every decoder beat times
    the tiles enabled in its group): each set mask bit of a sent row's chunks, once for every
    wanted output of that row. A group passes the row's chunks with a set bit (the first group
    all live chunks, the replays the kept ones: the same set bits), its enabled tiles are its
    wanted columns, and a block with no wanted column enables none. So this is
    ``sum over sent rows m of (set bits of row m) x (wanted outputs of row m)``: the elements
    issued times the wanted outputs they serve (zeros of ``Y`` are multiplied too)."""
    wanted = np.asarray(wanted, dtype=bool)
    return _macs(_set_bits(issued), block_wanted(wanted, wanted.shape[1], issued.live_rows))


def x_scratchpad_reads(issued: IssuedChunks, cols: int, config: Config) -> int:
    """X scratchpad reads: one per chunk the address generator sends, i.e. every live chunk of
    every sent row, once per block of ``col_block`` output columns (``cols`` columns in all).
    On the tile array alone these are the ``x`` stream's beats."""
    blocks = -(-cols // config.col_block)
    return int(live_chunks(issued).sum()) * blocks


def row_buffer_writes(issued: IssuedChunks, cols: int, config: Config) -> int:
    """Row-buffer writes: the first group of every (sent row, block) stores the row's kept
    chunks (:func:`kept_chunks`), whether or not a replay follows."""
    blocks = -(-cols // config.col_block)
    return int(kept_chunks(issued).sum()) * blocks


def row_buffer_reads(issued: IssuedChunks, wanted: np.ndarray, config: Config) -> int:
    """Row-buffer reads: every group after the first of a (row, block) replays the row's kept
    chunks, one read each: ``sum over sent rows and blocks of (groups - 1) x kept``, with
    ``groups = max(1, ceil(wanted in the block / tiles))`` (the cycle model's
    :func:`~maskprop.sim.cycle_model.column_groups`)."""
    return _replays(kept_chunks(issued),
                    block_wanted(wanted, config.col_block, issued.live_rows), config.tiles)


def array_chunks(issued: IssuedChunks, wanted: np.ndarray, config: Config) -> int:
    """Chunks issued to the decoder, the tile array's ``chunks`` counter: the first groups'
    (:func:`x_scratchpad_reads`) plus the replays' (:func:`row_buffer_reads`)."""
    return (x_scratchpad_reads(issued, np.shape(wanted)[1], config)
            + row_buffer_reads(issued, wanted, config))


def y_buffer_reads(issued: IssuedChunks, wanted: np.ndarray, config: Config) -> int:
    """Y-buffer reads of enabled tiles: each chunk issued to the decoder is read from the Y
    buffer once by every tile enabled in its group (tile ``t`` reads the Y chunk of its column).
    Per (sent row, block) with ``e`` wanted columns: the first group enables ``min(e, tiles)``
    tiles for the row's live chunks, the replays enable the other ``e - min(e, tiles)`` for
    its kept chunks. (The RTL enables every tile's read port on each issued chunk; disabled
    tiles' reads are not counted: gating them is a one-term change of ``y_read.en``.)"""
    return _y_reads(live_chunks(issued), kept_chunks(issued),
                    block_wanted(wanted, config.col_block, issued.live_rows), config.tiles)


def outputs_computed(issued: IssuedChunks, wanted: np.ndarray) -> int:
    """Outputs the array computes and delivers, its ``outputs`` counter: the wanted outputs of
    the sent rows."""
    wanted = np.asarray(wanted, dtype=bool)
    return int(wanted[issued.live_rows].sum(dtype=np.int64))


@dataclass(frozen=True)
class PassEvents:
    """The events of one pass in one mode (each as its function above counts it), and the
    words that fill the buffers: ``x_fill_words`` (the X scratchpad: the pass's broadcast input
    tensor as it comes from memory), ``y_fill_words`` (the Y buffer: every chunk of every
    column of ``Y``, as ``TileArray.load`` writes it), ``output_words`` (written to memory).
    :func:`mode_cost` replaces the fills by the words every command of a split pass loads."""
    macs: int
    chunks: int
    x_reads: int
    row_buffer_writes: int
    row_buffer_reads: int
    y_reads: int
    outputs: int
    x_fill_words: int
    y_fill_words: int
    output_words: int
    chunks_per_row: int


def _x_source(gemm) -> str:
    """The tensor the broadcast operand ``X`` of ``gemm`` comes from."""
    if gemm.pass_name == "forward":
        return "A"
    if gemm.pass_name == "backward_data":
        return "dZ"
    return "dZ" if gemm.orientation == "dz" else "A"


_OUTPUT = {"forward": "Z", "backward_data": "dA", "backward_weight": "dW"}


def pass_events(gemm, config: Config, *, dense: bool,
                issued: IssuedChunks | None = None) -> PassEvents:
    """The events of the lowered pass ``gemm`` (aligned to ``config.vec``) on the tile array
    of ``config`` in one mode; ``issued``: its :class:`IssuedChunks` in that mode, if the
    caller has it already."""
    if gemm.vec != config.vec:
        raise ValueError(f"the pass is lowered for vec={gemm.vec}, the array has vec="
                         f"{config.vec}")
    if issued is None:
        issued = IssuedChunks.of(gemm, config, dense=dense)
    wanted = wanted_outputs(gemm, dense=dense)
    reduction, cols = gemm.Y.shape
    chunks = chunk_count(reduction, config.vec)
    # Each per-row term once; the functions above compute the same from scratch.
    live, kept = live_chunks(issued), kept_chunks(issued)
    per_block = block_wanted(wanted, config.col_block, issued.live_rows)
    blocks = per_block.shape[1]
    x_reads = int(live.sum()) * blocks
    replays = _replays(kept, per_block, config.tiles)
    layer = gemm.layer
    return PassEvents(
        macs=_macs(_set_bits(issued), per_block), chunks=x_reads + replays, x_reads=x_reads,
        row_buffer_writes=int(kept.sum()) * blocks, row_buffer_reads=replays,
        y_reads=_y_reads(live, kept, per_block, config.tiles),
        outputs=int(per_block.sum(dtype=np.int64)),
        x_fill_words=tensor_words(layer, _x_source(gemm), config.vec),
        y_fill_words=cols * chunks,
        output_words=tensor_words(layer, _OUTPUT[gemm.pass_name], config.vec),
        chunks_per_row=chunks)


# --- energy -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnergyTable:
    """Energy per event in picojoules, from one published table, with the rules that scale it
    to this design's widths and buffer sizes.

    ``int_add_pj``, ``int_mult_pj``: ``((bits, pJ), ...)`` integer add and multiply;
    ``sram_read_64bit_pj``: ``((bytes, pJ), ...)`` a 64-bit read of an SRAM (cache) of that
    size; ``dram_64bit_pj``: a 64-bit DRAM access; ``dram_range_pj``: the published range it
    was taken from. Rules (:meth:`multiply_pj`, :meth:`add_pj`, :meth:`sram_pj`,
    :meth:`dram_byte_pj`):

    - a multiply scales with the square of its width (an array multiplier's partial-product
      bits), from the smallest published width: ``0.2 pJ x (bits / 8)**2`` (16 bits: 0.8 pJ;
      the rule gives 3.2 pJ at 32 bits against the published 3.1);
    - an add scales linearly with its width, from the largest published width:
      ``0.1 pJ x bits / 32`` (48 bits: 0.15 pJ; 8 bits: 0.025 against the published 0.03);
    - an SRAM access of ``word_bits`` costs ``word_bits / 64`` 64-bit reads (linear in the bits
      read); by size, the 64-bit read energy follows the power law between neighbouring
      published points (interpolated in log-log), extended beyond the smallest and largest
      with the nearest segment's exponent (the published points grow as about the square root
      of the size); a write costs what a read does (the table gives one number per access);
    - DRAM energy is per byte: ``dram_64bit_pj / 8``.
    """
    source: str
    int_add_pj: tuple
    int_mult_pj: tuple
    sram_read_64bit_pj: tuple
    dram_64bit_pj: float
    dram_range_pj: tuple

    def multiply_pj(self, bits: int) -> float:
        base_bits, base = min(self.int_mult_pj)
        return base * (bits / base_bits) ** 2

    def add_pj(self, bits: int) -> float:
        base_bits, base = max(self.int_add_pj)
        return base * bits / base_bits

    def mac_pj(self, config: Config) -> float:
        """One MAC issued: a ``data_width`` multiply and one ``acc_width`` add (the adder tree's
        ``lanes - 1`` adds and the accumulator's one per beat are one add per product, counted
        at the accumulator's width, the widest of them)."""
        return self.multiply_pj(config.data_width) + self.add_pj(config.acc_width)

    def sram_64bit_pj(self, size_bytes: int) -> float:
        """A 64-bit read of an SRAM of ``size_bytes`` (see the rules above)."""
        points = sorted(self.sram_read_64bit_pj)
        if size_bytes <= 0:
            raise ValueError(f"an SRAM has a positive size, not {size_bytes}")
        index = next((i for i, (size, _) in enumerate(points[1:]) if size_bytes <= size),
                     len(points) - 2)
        (s0, e0), (s1, e1) = points[index], points[index + 1]
        exponent = math.log(e1 / e0) / math.log(s1 / s0)
        return e0 * (size_bytes / s0) ** exponent

    def sram_pj(self, size_bytes: int, word_bits: int) -> float:
        """One access of ``word_bits`` to an SRAM of ``size_bytes``."""
        return self.sram_64bit_pj(size_bytes) * word_bits / 64

    def dram_byte_pj(self) -> float:
        return self.dram_64bit_pj / 8

    def as_dict(self) -> dict:
        return {"source": self.source,
                "int_add_pj": {str(b): e for b, e in self.int_add_pj},
                "int_mult_pj": {str(b): e for b, e in self.int_mult_pj},
                "sram_read_64bit_pj": {str(s): e for s, e in self.sram_read_64bit_pj},
                "dram_64bit_pj": self.dram_64bit_pj,
                "dram_range_pj": list(self.dram_range_pj)}


#: M. Horowitz, "1.1 Computing's energy problem (and what we can do about it)", IEEE ISSCC 2014,
#: Digest of Technical Papers, pp. 10-14, doi:10.1109/ISSCC.2014.6757323: the table "rough
#: energy costs for various operations", 45 nm, 0.9 V. Integer add 8 bit 0.03 pJ, 32 bit
#: 0.1 pJ; integer multiply 8 bit 0.2 pJ, 32 bit 3.1 pJ; cache (64-bit) 8 KB 10 pJ, 32 KB
#: 20 pJ, 1 MB 100 pJ; DRAM 1.3-2.6 nJ (per 64-bit access). KB and MB are taken as 1024 and
#: 1024**2 bytes. DRAM: the low end of the published range, 1.3 nJ (the 640 pJ per 32-bit
#: access that later work quotes from this table); the high end doubles DRAM's share.
HOROWITZ_45NM = EnergyTable(
    source="M. Horowitz, \"Computing's energy problem (and what we can do about it)\", "
           "IEEE ISSCC 2014, pp. 10-14, doi:10.1109/ISSCC.2014.6757323 (45 nm, 0.9 V)",
    int_add_pj=((8, 0.03), (32, 0.1)),
    int_mult_pj=((8, 0.2), (32, 3.1)),
    sram_read_64bit_pj=((8 << 10, 10.0), (32 << 10, 20.0), (1 << 20, 100.0)),
    dram_64bit_pj=1300.0,
    dram_range_pj=(1300.0, 2600.0),
)


def _power_of_two(size: int) -> int:
    return 1 << ceil_log2(max(1, size))


@dataclass(frozen=True)
class BufferSizes:
    """The on-chip memories of a pass, sized to hold it (rounded up to a power of two bytes; at
    most the core's, for a pass split into commands):
    ``x_bytes`` the X scratchpad, ``y_bytes`` the Y buffer (one copy; every tile reads it),
    ``row_bytes`` the row buffer; ``word_bits`` of the scratchpad and Y buffer words (one
    chunk) and ``row_bits`` of a row-buffer entry (a chunk, its mask and its index)."""
    x_bytes: int
    y_bytes: int
    row_bytes: int
    word_bits: int
    row_bits: int


def buffer_sizes(events: PassEvents, config: Config,
                 core: CoreConfig | None = None) -> BufferSizes:
    """The buffers that hold the pass ``events`` counts (see :class:`BufferSizes`), each at
    most ``core``'s X scratchpad and Y buffer, if given."""
    word_bits = config.vec * config.data_width
    row_bits = config.vec * (config.data_width + 1) + max(1, ceil_log2(config.max_chunks))
    x_words, y_words = events.x_fill_words, events.y_fill_words
    if core is not None:
        x_words, y_words = min(x_words, core.x_words), min(y_words, core.array.y_words)
    return BufferSizes(x_bytes=_power_of_two(x_words * word_bits // 8),
                       y_bytes=_power_of_two(y_words * word_bits // 8),
                       row_bytes=_power_of_two(-(-events.chunks_per_row * row_bits // 8)),
                       word_bits=word_bits, row_bits=row_bits)


@dataclass(frozen=True)
class Energy:
    """Energy of one pass in one mode, in picojoules: ``compute`` (the MACs issued), the SRAMs
    (``x_buffer`` the X scratchpad's fill and reads, ``row_buffer`` its writes and replay
    reads, ``y_buffer`` the Y buffer's fill and reads) and ``dram`` (every byte moved)."""
    compute: float
    x_buffer: float
    row_buffer: float
    y_buffer: float
    dram: float

    @property
    def sram(self) -> float:
        return self.x_buffer + self.row_buffer + self.y_buffer

    @property
    def total(self) -> float:
        return self.compute + self.sram + self.dram


def pass_energy(events: PassEvents, traffic: PassTraffic, config: Config,
                table: EnergyTable = HOROWITZ_45NM, core: CoreConfig | None = None) -> Energy:
    """``events`` and ``traffic`` times ``table``'s energies: every MAC issued; the X
    scratchpad's fill and reads, the row buffer's writes and reads, the Y buffer's fill and
    reads, each at the energy of an access of its word to a memory of its size
    (:func:`buffer_sizes`, at most ``core``'s); every DRAM byte read or written."""
    sizes = buffer_sizes(events, config, core)
    x = table.sram_pj(sizes.x_bytes, sizes.word_bits)
    y = table.sram_pj(sizes.y_bytes, sizes.word_bits)
    row = table.sram_pj(sizes.row_bytes, sizes.row_bits)
    return Energy(compute=events.macs * table.mac_pj(config),
                  x_buffer=(events.x_fill_words + events.x_reads) * x,
                  row_buffer=(events.row_buffer_writes + events.row_buffer_reads) * row,
                  y_buffer=(events.y_fill_words + events.y_reads) * y,
                  dram=traffic.total_bytes * table.dram_byte_pj())


# --- memory-bound cycles ------------------------------------------------------------------------

def memory_cycles(nbytes: int, bandwidth) -> int:
    """Cycles to move ``nbytes`` at ``bandwidth`` bytes per cycle (reads and writes sharing
    it): ``ceil(nbytes / bandwidth)``, exactly (a float bandwidth is taken as the decimal it
    prints as: 3.2 is 16/5)."""
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, numbers.Real) or \
            not math.isfinite(bandwidth) or bandwidth <= 0:
        raise ValueError(f"bandwidth must be a positive number of bytes per cycle, not "
                         f"{bandwidth!r}")
    bandwidth = Fraction(str(float(bandwidth))) if isinstance(bandwidth, float) else \
        Fraction(bandwidth)
    return math.ceil(Fraction(int(nbytes)) / bandwidth)


def overlapped_cycles(compute: int, memory: int) -> int:
    """A pass whose data movement overlaps its compute entirely: the slower of the two (the
    core overlaps most of it, :data:`ASSUMPTIONS`)."""
    return max(compute, memory)


def serial_cycles(compute: int, memory: int) -> int:
    """A pass that moves its data, then computes (no overlap): the sum. The core is between
    the two (:data:`ASSUMPTIONS`)."""
    return compute + memory


# --- one pass in one mode, all together ---------------------------------------------------------

@dataclass(frozen=True)
class ModeCost:
    """One pass in one mode: its compute ``cycles`` (the cycle model's), DRAM ``traffic``,
    ``events``, ``energy``, and ``memory`` cycles at ``bandwidth`` bytes per cycle."""
    cycles: int
    traffic: PassTraffic
    events: PassEvents
    energy: Energy
    bandwidth: float
    memory: int

    @property
    def overlapped(self) -> int:
        return overlapped_cycles(self.cycles, self.memory)

    @property
    def serial(self) -> int:
        return serial_cycles(self.cycles, self.memory)


def mode_cost(gemm, config: Config, *, dense: bool, cycles: int, bandwidth,
              table: EnergyTable = HOROWITZ_45NM,
              issued: IssuedChunks | None = None, core: CoreConfig | None = None) -> ModeCost:
    """:class:`ModeCost` of the lowered pass ``gemm`` in one mode, whose compute cycles the
    caller has (``cycles``; ``issued``: its chunks in that mode, if at hand). Sparse
    backward-data reads ``A`` for its output mask when ``gemm`` has one. With ``core``, the
    pass runs as the commands it is split into (:func:`pass_traffic`; backward-weight in
    ``gemm``'s orientation): the X scratchpad is filled with what each command loads, and so is
    the Y buffer but for backward-weight, whose window gather fills it from the scratchpad (the
    lowering's ``Y`` words)."""
    events = pass_events(gemm, config, dense=dense, issued=issued)
    weight = gemm.pass_name == "backward_weight"
    traffic = pass_traffic(gemm.layer, gemm.pass_name, config, dense=dense,
                           output_mask=gemm.omask is not None, core=core,
                           operand=gemm.orientation if weight else "a")
    events = replace(events, x_fill_words=traffic.words("X scratchpad"))
    if not weight:
        events = replace(events, y_fill_words=traffic.words("Y buffer"))
    return ModeCost(int(cycles), traffic, events,
                    pass_energy(events, traffic, config, table, core),
                    bandwidth, memory_cycles(traffic.total_bytes, bandwidth))
