"""Splitting a layer pass that the core's buffers cannot hold into a list of core commands
(docs/architecture.md section 8, "Splitting a pass").

The host splits, not the core's sequencer: what to split, and where, depends on the whole
tensor sizes and on the buffers, and costs a few integer operations per command against the
thousands of cycles each command runs; the core's command check stays one small state machine.

Forward and backward-data are split three ways, each along a dimension whose parts are
independent, so no part ever holds a partial sum:

- **output-channel groups** (the GEMM's columns: forward ``K``, backward-data ``C``): a group
  is a whole number of memory words (``vec`` channels) unless it is the last, so its output
  (and the backward-data output mask) is a strided 2-D transfer of ``OUT_PITCH`` words per
  pixel; each group reads only its own weights;
- **row bands** of one image (the GEMM's rows are output pixels): a band reads the rows of the
  input tensor its windows touch, with its own top and bottom padding (``PAD_TOP``,
  ``PAD_BOTTOM``; the left and right padding stay the layer's);
- **images** of the batch: several whole images per command when they fit.

Their reduction is never split: a pass whose reduction has more chunks than the row buffer
(``max_chunks``) is refused. ``max_chunks`` 512 holds every reduction of the five evaluated
networks (3x3x512 is 288 chunks).

Backward-weight's reduction runs over the output pixels of the whole batch, which no buffer
holds: it is split into **parts** of whole images, or of row bands of one image (forward's
bands: rows of ``dZ`` and the rows of ``A`` their windows read), each as large as the row-block
buffer (``row_block_chunks`` chunks of ``vec`` pixels), the Y buffer and the scratchpad (``A``
and ``dZ`` bands together) allow. Every part computes all of ``dW`` over its pixels; the parts
before the last write their sums raw (``PASS.psum_out``: 64-bit partial sums, to the
partial-sum buffer), the parts after the first add those of the parts before
(``PASS.psum_in``), and the last requantizes (docs/architecture.md section 8.3). The sums are
exact (64 bits), so the result is the golden model's whatever the split.

A command keeps what the one before loaded when it needs the same (``PASS.keep_input``: the
same images and band; ``PASS.keep_weights``: the same output-channel group), so the order of
the commands decides what is read again: groups outer reads each group's weights once and the
input once per group, parts (images and bands) outer the input once and the weights once per
part. With a Y buffer of two halves, a command prefetches the next one's group of weights into
the other half while it runs (``PASS.prefetch``) when its groups fit half the buffer;
:func:`plan_pass` weighs the orders and both group widths. What remains is still read
more than once, and the bands' halo rows are read twice
(:func:`maskprop.sim.data_movement.command_traffic`, :func:`maskprop.sim.core_model.job_cycles`),
which is why bands and groups are made as large as the buffers allow.
"""

import dataclasses
from dataclasses import dataclass

from maskprop.base.config import PARTIAL_SUM_BITS, CoreConfig, beat_sum_words
from maskprop.host.memory_layout import channel_words
from maskprop.sim.layer import ConvLayer, check_pass_name, pass_label

__all__ = ["RowBand", "row_band", "whole_band", "whole_pass", "CoreCommand", "plan_pass",
           "BASES", "MAX_PADDING", "OPERANDS", "weight_result_shape"]

#: The tensors' base addresses a command takes (the core's A_BASE, W_BASE, DZ_BASE, OUT_BASE,
#: PSUM_BASE): ``psum`` is backward-weight's partial-sum buffer (a split reduction).
BASES = ("a", "w", "dz", "out", "psum")
#: The core's padding registers are 8 bits wide.
MAX_PADDING = 255


@dataclass(frozen=True)
class RowBand:
    """Rows ``out_start..out_stop - 1`` of a pass's result (forward: ``Z``, backward-data:
    ``dA``) computed from rows ``in_start..in_stop - 1`` of its broadcast input (forward: ``A``,
    backward-data: ``dZ``), as a layer of ``in_stop - in_start`` rows with ``pad_top`` and
    ``pad_bottom`` rows of zero padding: the band's windows are exactly the whole layer's
    windows of those result rows."""
    out_start: int
    out_stop: int
    in_start: int
    in_stop: int
    pad_top: int
    pad_bottom: int

    @property
    def out_rows(self) -> int:
        return self.out_stop - self.out_start

    @property
    def in_rows(self) -> int:
        return self.in_stop - self.in_start


def row_band(layer: ConvLayer, pass_name: str, start: int, stop: int) -> RowBand:
    """The band of result rows ``start..stop - 1`` of ``pass_name`` of ``layer``.

    Forward: output row ``o`` reads input rows ``o*s - p .. o*s - p + R - 1``; the band reads
    those of its rows that exist, and the rest is its padding.

    Backward-data: ``dA`` row ``i`` reads ``dZ`` row ``(i + p - r) / s`` for each tap ``r``
    where that is a whole row of ``dZ``. The band starts at ``dZ`` row ``j0 = floor((start + p
    - R + 1) / s)`` (clamped to ``dZ``), so its top padding ``p + start - s*j0`` is at least
    ``R - 1`` away from any tap it reads and keeps the layer's stride phase; its bottom padding
    makes ``(rows + pad_top + pad_bottom - R) // s + 1`` exactly the ``dZ`` rows it reads.
    """
    pass_name = check_pass_name(pass_name)
    R, s, p = layer.kernel, layer.stride, layer.padding
    if pass_name == "forward":
        rows, source = layer.out_height, layer.height
    elif pass_name == "backward_data":
        rows, source = layer.height, layer.out_height
    else:
        raise ValueError(f"{layer.label}: backward-weight is not split into row bands")
    if not 0 <= start < stop <= rows:
        raise ValueError(f"a band of rows {start}..{stop - 1} is not within the {rows} rows of "
                         f"{layer.label} {pass_label(pass_name)}")
    if pass_name == "forward":
        first = start * s - p                       # the first window's top row (may be < 0)
        if first >= source:
            raise ValueError(f"{layer.label}: output row {start} sees only bottom padding; a "
                             f"band cannot start there")
        in_start = max(0, first)
        in_stop = min(source, (stop - 1) * s - p + R)
        if in_stop <= in_start:
            raise ValueError(f"{layer.label}: output rows {start}..{stop - 1} see only top "
                             f"padding; a band must read a row")
        pad_top = in_start - first
        pad_bottom = max(0, (stop - 1) * s - p + R - source)
    else:
        j0 = min(max(0, (start + p - R + 1) // s), source - 1)
        j1 = min(source, (stop - 1 + p) // s + 1)
        in_start, in_stop = j0, j1
        pad_top = p + start - s * j0
        pad_bottom = max(0, s * (j1 - 1) + R - stop - p)
    band = RowBand(start, stop, in_start, in_stop, pad_top, pad_bottom)
    # The band as a layer: its windows' count must be the band's (forward) or the dZ rows it
    # reads (backward-data); both follow from the formulas above.
    windows = (stop - start if pass_name == "forward" else in_stop - in_start)
    height = (in_stop - in_start if pass_name == "forward" else stop - start)
    assert (height + pad_top + pad_bottom - R) // s + 1 == windows, band
    return band


def whole_band(layer: ConvLayer, pass_name: str) -> RowBand:
    """All of an image, as the layer has it: its rows, also those no window reads (in a command
    of several images the next image's rows follow them in the scratchpad as in memory), and
    the layer's padding."""
    forward = check_pass_name(pass_name) == "forward"
    rows, source = ((layer.out_height, layer.height) if forward
                    else (layer.height, layer.out_height))
    return RowBand(0, rows, 0, source, layer.padding, layer.padding)


def whole_pass(layer: ConvLayer, pass_name: str, operand: str = "a") -> "CoreCommand":
    """The pass as one command: every image, row and output channel (``operand``:
    backward-weight's broadcast operand, ``"a"`` or ``"dz"``)."""
    cols = layer.in_channels if pass_name == "backward_data" else layer.out_channels
    band_pass = "backward_data" if pass_name == "backward_data" else "forward"
    return CoreCommand(pass_name, range(layer.batch), whole_band(layer, band_pass), range(cols),
                       operand=operand if pass_name == "backward_weight" else "")


@dataclass(frozen=True)
class CoreCommand:
    """One command of a split pass: images ``images`` (a ``range``), the rows of ``band`` and
    the output channels ``columns`` (a ``range``: forward ``K``, backward-data ``C``);
    ``keep_input``, ``keep_weights``: the X scratchpad holds its input band, the Y buffer its
    columns' weights, from the command before (the same images and band, the same group), so
    it does not load them.

    Backward-weight (``operand`` its broadcast operand, ``"a"`` or ``"dz"``) reads ``A`` and
    ``dZ`` into the scratchpad and computes all of ``dW``; its band is forward's (rows of
    ``dZ`` computed from rows of ``A``): the rows of ``dZ`` its reduction runs over, a part of
    the reduction when the pass is split; ``columns`` its result columns (``A`` broadcast: a
    group of output channels ``k``, whose ``dZ`` words it reads). ``psum_in``: add the partial
    sums of the parts before (read at the ``psum`` base plus ``psum_offset`` words, the
    group's); ``psum_out``: write the raw sums there instead of ``dW``.

    ``prefetch`` (forward and backward-data): the columns (a group as wide as ``columns``)
    whose weights this command loads into the Y buffer's other half while it runs
    (``PASS.prefetch``, at ``NEXT_W_BASE``), for the next command, which keeps them."""
    pass_name: str
    images: range
    band: RowBand
    columns: range
    keep_input: bool = False
    keep_weights: bool = False
    operand: str = ""
    psum_in: bool = False
    psum_out: bool = False
    psum_offset: int = 0
    prefetch: range | None = None

    def layer_fields(self, layer: ConvLayer) -> dict:
        """The shape registers of this command (``hw/core_registers.py``): the layer it runs,
        as the core sees it."""
        forward = self.pass_name != "backward_data"     # backward-weight reads A like forward
        return {
            "layer_n": len(self.images),
            "layer_c": layer.in_channels if forward else len(self.columns),
            "layer_h": self.band.in_rows if forward else self.band.out_rows,
            "layer_w": layer.width,
            "layer_k": len(self.columns) if forward else layer.out_channels,
            "kernel": layer.kernel, "stride": layer.stride, "padding": layer.padding,
            "pad_top": self.band.pad_top, "pad_bottom": self.band.pad_bottom,
        }

    def offsets(self, layer: ConvLayer, vec: int) -> dict:
        """Word offsets of this command's tensors from the pass's bases (``a``, ``w``, ``dz``,
        ``out``) and ``out_pitch``, the words per pixel of the output (and of ``A`` when
        backward-data reads it for the output mask)."""
        n0, band, c0 = self.images.start, self.band, self.columns.start
        cw_in, cw_out = channel_words(layer.in_channels, vec), channel_words(layer.out_channels,
                                                                             vec)
        taps = layer.kernel * layer.kernel
        H, W, Ho, Wo = layer.height, layer.width, layer.out_height, layer.out_width
        if self.pass_name == "backward_weight":
            # A broadcast: a group of output channels, its words of each dZ pixel and of
            # each result row (both cw_out words apart); dZ broadcast: all of them.
            grouped = self.operand == "a"
            return {"a": ((n0 * H + band.in_start) * W) * cw_in, "w": 0,
                    "dz": ((n0 * Ho + band.out_start) * Wo) * cw_out
                    + (c0 // vec if grouped else 0),
                    "out": c0 // vec if grouped else 0, "psum": self.psum_offset,
                    "next_w": 0, "out_pitch": cw_out if grouped else 0}
        # A weight row per output column (forward: k; backward-data: c) of taps * cw words.
        weight_row = taps * (cw_in if self.pass_name == "forward" else cw_out)
        next_w = self.prefetch.start * weight_row if self.prefetch else 0
        if self.pass_name == "forward":
            return {"a": ((n0 * H + band.in_start) * W) * cw_in,
                    "w": c0 * weight_row, "next_w": next_w,
                    "dz": 0,
                    "out": (n0 * Ho + band.out_start) * Wo * cw_out + c0 // vec, "psum": 0,
                    "out_pitch": cw_out}
        pixel = (n0 * H + band.out_start) * W * cw_in + c0 // vec
        return {"a": pixel, "w": c0 * weight_row, "next_w": next_w,
                "dz": ((n0 * Ho + band.in_start) * Wo) * cw_out,
                "out": pixel, "psum": 0, "out_pitch": cw_in}

    def bases(self, layer: ConvLayer, bases: dict, vec: int, word_bytes: int) -> dict:
        """The byte addresses of this command's parts of the tensors whose bases (``a``, ``w``,
        ``dz``, ``out``, ``psum``) are ``bases`` (0 for one not named), with chunks of ``vec``
        in words of ``word_bytes``: the register values, so ``out`` is the partial-sum buffer
        for a command that writes raw sums (``psum_out``), and ``next_w`` the prefetched
        weights' (``NEXT_W_BASE``)."""
        offsets = self.offsets(layer, vec)
        addresses = {name: bases.get(name, 0) + offsets[name] * word_bytes for name in BASES}
        addresses["next_w"] = bases.get("w", 0) + offsets["next_w"] * word_bytes
        if self.psum_out:
            addresses["out"] = addresses["psum"]
        return addresses

    def x_words(self, layer: ConvLayer, vec: int) -> int:
        """Words this command reads into the X scratchpad: every row of its band, of each of
        its images (none if it keeps them)."""
        if self.keep_input:
            return 0
        if self.pass_name == "backward_weight":
            return sum(self.weight_bands(layer, vec))
        forward = self.pass_name == "forward"
        reduced = layer.in_channels if forward else layer.out_channels
        width = layer.width if forward else layer.out_width
        return len(self.images) * self.band.in_rows * width * channel_words(reduced, vec)

    def weight_bands(self, layer: ConvLayer, vec: int) -> tuple[int, int]:
        """Backward-weight: the words of its ``A`` band and of its ``dZ`` band, which it reads
        into the scratchpad in that order."""
        images = len(self.images)
        return (images * self.band.in_rows * layer.width * channel_words(layer.in_channels, vec),
                images * self.band.out_rows * layer.out_width
                * channel_words(len(self.columns), vec))

    def y_words(self, layer: ConvLayer, vec: int) -> int:
        """Words this command loads into the Y buffer before its run: its columns' weights,
        none if it keeps them."""
        if self.keep_weights or self.pass_name == "backward_weight":
            return 0
        return self._weight_words(layer, vec, self.columns)

    def prefetch_words(self, layer: ConvLayer, vec: int) -> int:
        """Words of the next command's weights this command prefetches (``prefetch``)."""
        return self._weight_words(layer, vec, self.prefetch) if self.prefetch else 0

    def _weight_words(self, layer: ConvLayer, vec: int, columns: range) -> int:
        reduced = layer.in_channels if self.pass_name == "forward" else layer.out_channels
        return len(columns) * layer.kernel * layer.kernel * channel_words(reduced, vec)

    def pixels(self, layer: ConvLayer) -> int:
        """Output pixels this command computes (GEMM rows; backward-weight: the output
        pixels its reduction runs over)."""
        width = layer.width if self.pass_name == "backward_data" else layer.out_width
        return len(self.images) * self.band.out_rows * width

    def weight_shape(self, layer: ConvLayer) -> tuple[int, int]:
        """Backward-weight: this command's result as ``(rows, cols)``, its columns' part of
        :func:`weight_result_shape`."""
        rows, cols = weight_result_shape(layer, self.operand)
        return (rows, len(self.columns)) if self.operand == "a" else (rows, cols)

    def sum_words(self, layer: ConvLayer, tiles: int, word_bytes: int) -> int:
        """Backward-weight: words of this command's partial sums (read with ``psum_in``,
        written with ``psum_out``) on a core of ``tiles`` tiles and a bus of ``word_bytes``
        bytes (at least 8): each result beat's ``tiles`` values of :data:`PARTIAL_SUM_BITS`
        in whole words, ``ceil(cols / tiles)`` beats per result row (``hw/partial_sums.py``)."""
        rows, cols = self.weight_shape(layer)
        return rows * -(-cols // tiles) * beat_sum_words(tiles, word_bytes * 8)

    def reduction_pixels(self, layer: ConvLayer) -> range:
        """Backward-weight: the output pixels its reduction runs over, as indices of the whole
        pass's flattened ``(n, y, x)`` pixels (contiguous: whole images, or a band of one
        image's rows)."""
        first = (self.images.start * layer.out_height + self.band.out_start) * layer.out_width
        return range(first, first + self.pixels(layer))

    def gemm_rows(self, layer: ConvLayer) -> list:
        """The rows of the whole pass's GEMM (output pixels, image-major) this command
        computes, in the order the core computes them."""
        width = layer.out_width if self.pass_name == "forward" else layer.width
        height = layer.out_height if self.pass_name == "forward" else layer.height
        return [(n * height + row) * width + x for n in self.images
                for row in range(self.band.out_start, self.band.out_stop) for x in range(width)]


def _band(layer: ConvLayer, pass_name: str, start: int, stop: int) -> RowBand | None:
    """:func:`row_band`, or ``None`` for forward rows whose windows are all top padding."""
    try:
        return row_band(layer, pass_name, start, stop)
    except ValueError as error:
        if "only top padding" in str(error):
            return None
        raise


def _group_width(cols: int, chunks: int, core: CoreConfig, where: str, *,
                 half: bool = False) -> int:
    """The widest output-channel group: all ``cols`` if they fit the Y buffer (``half``: half
    of it; 0 if not even one word does), else the most whole words (``vec`` columns) that do,
    preferring whole column blocks."""
    config = core.array
    if config.y_fits(cols, chunks, half=half):
        return cols
    vec, block = config.vec, config.col_block
    widest = max((g for g in range(vec, cols, vec) if config.y_fits(g, chunks, half=half)),
                 default=0)
    if not widest and half:
        return 0
    if not widest:
        remedy = "max_cols" if config.max_cols < vec else "y_words"
        raise ValueError(f"{where}: not even {vec} output columns (one memory word) of "
                         f"{chunks} chunks fit the Y buffer (y_words = {config.y_words}, "
                         f"max_cols = {config.max_cols}); raise {remedy}")
    return widest // block * block if widest >= block else widest


#: Backward-weight's broadcast operands (``PASS.bw_operand``): ``"a"`` (``X = im2col(A)^T``,
#: the result's rows ``(r, t, c)``) and ``"dz"`` (``X = dZ^T``, rows ``k``).
OPERANDS = ("a", "dz")


def weight_result_shape(layer: ConvLayer, operand: str) -> tuple[int, int]:
    """Backward-weight's result on the core as ``(rows, cols)``: a row per broadcast row
    (``"a"``: ``R*R*C`` of ``K`` columns; ``"dz"``: ``K`` of ``R*R*C``)."""
    if operand not in OPERANDS:
        raise ValueError(f"operand must be one of {', '.join(OPERANDS)}, not {operand!r}")
    taps_c = layer.kernel * layer.kernel * layer.in_channels
    return (taps_c, layer.out_channels) if operand == "a" else (layer.out_channels, taps_c)


def _weight_commands(layer: ConvLayer, core: CoreConfig, operand: str,
                     where: str) -> list[CoreCommand]:
    """Backward-weight as one command if it fits, else output-channel groups (``A``
    broadcast: the result's columns are ``K``) and its reduction split into parts with partial
    sums (the module docstring), groups outer; ``ValueError`` naming the parameter to raise
    for a pass whose least command (one output row of one group) does not fit."""
    rows, cols = weight_result_shape(layer, operand)
    config, vec = core.array, core.array.vec
    if layer.padding > MAX_PADDING:
        raise ValueError(f"{where}: padding {layer.padding} is beyond the core's 8-bit "
                         f"padding registers (at most {MAX_PADDING})")
    whole = whole_band(layer, "forward")

    def misfit(command: CoreCommand) -> str | None:
        """Why ``command`` does not fit the core (None if it does)."""
        pixels = command.pixels(layer)
        chunks = -(-pixels // vec)
        what = ("the whole reduction" if command.images == range(layer.batch)
                and command.band == whole else "one output row")
        group = len(command.columns) if operand == "a" else cols
        if chunks > core.row_block_chunks:
            return (f"{where}: {what} over {pixels:,} output pixels takes {chunks} chunks, but "
                    f"the row-block buffer holds row_block_chunks = {core.row_block_chunks}; "
                    f"raise row_block_chunks")
        if not config.y_fits(group, chunks):
            return (f"{where}: {group} result columns of {chunks} chunks do not fit the Y "
                    f"buffer (y_words = {config.y_words}, max_cols = {config.max_cols}); raise "
                    f"y_words or max_cols")
        if command.x_words(layer, vec) > core.x_words:
            return (f"{where}: for {what}, A and dZ take {command.x_words(layer, vec):,} words, "
                    f"more than the X scratchpad's x_words = {core.x_words:,}; raise x_words")
        if pixels > config.max_reduction():
            return (f"{where}: {what} sums {pixels:,} products, more than acc_width = "
                    f"{config.acc_width} bits hold (max_reduction() = "
                    f"{config.max_reduction():,}); raise acc_width")
        return None

    def command(images: range, band: RowBand, columns: range) -> CoreCommand:
        return CoreCommand("backward_weight", images, band, columns, operand=operand)

    everything = command(range(layer.batch), whole, range(layer.out_channels))
    reason = misfit(everything)
    if reason is None:
        return [everything]
    if not core.partial_sums:
        raise ValueError(f"{reason}: the reduction cannot be split either, this core has no "
                         f"partial sums (they need a memory bus of 64 bits or more, it has "
                         f"{core.bus_width}; tiles a power of two and col_block a multiple of "
                         f"tiles)")
    pixels = layer.batch * layer.out_height * layer.out_width
    if pixels * config.data_min ** 2 >= 1 << (PARTIAL_SUM_BITS - 1):
        raise ValueError(f"{where}: the reduction sums {pixels:,} products, more than 64-bit "
                         f"partial sums hold at data_width = {config.data_width}")
    # Groups of output channels (A broadcast): as wide as the Y buffer holds at a part's most
    # chunks, whole words (and column blocks) of dW's rows.
    channels = layer.out_channels
    group = channels
    if operand == "a":
        group = _group_width(cols, min(core.row_block_chunks, -(-pixels // vec)), core, where)
    groups = [range(c0, min(channels, c0 + group)) for c0 in range(0, channels, group)]
    widest = groups[0]
    if misfit(command(range(1), whole, widest)) is None:
        # Whole images: as many per part as fit.
        per_part = max(n for n in range(1, layer.batch + 1)
                       if misfit(command(range(n), whole, widest)) is None)
        parts = [(range(n0, min(layer.batch, n0 + per_part)), whole)
                 for n0 in range(0, layer.batch, per_part)]
    else:
        bands = _row_bands(layer, "forward",
                           lambda band: misfit(command(range(1), band, widest)))
        parts = [(range(n, n + 1), band) for n in range(layer.batch) for band in bands]
    commands, offset = [], 0
    for columns in groups:
        for index, (images, band) in enumerate(parts):
            part = dataclasses.replace(command(images, band, columns), psum_in=index > 0,
                                       psum_out=index < len(parts) - 1, psum_offset=offset)
            commands.append(part)
        offset += part.sum_words(layer, config.tiles, core.bus_bytes)
    return commands


def _row_bands(layer: ConvLayer, pass_name: str, misfit) -> list[RowBand]:
    """The pass's result rows as bands of as many rows as fit: ``misfit(band)`` says why a band
    does not (``None`` if it does); ``ValueError`` with that for a band of one result row."""
    forward = pass_name == "forward"
    rows = layer.out_height if forward else layer.height
    bands, start = [], 0
    while start < rows:
        # The smallest band from `start` that reads a row (forward rows whose windows are all
        # top padding go with the first that is not), then as many rows as fit.
        stop = start + 1
        while _band(layer, pass_name, start, stop) is None:
            stop += 1
        reason = misfit(_band(layer, pass_name, start, stop))
        if reason is not None:
            raise ValueError(reason)
        while stop < rows and misfit(_band(layer, pass_name, start, stop + 1)) is None:
            stop += 1
        # A band cannot start on rows that see only bottom padding: the last takes them.
        if forward and stop < rows and stop * layer.stride - layer.padding >= layer.height:
            stop = rows
            reason = misfit(row_band(layer, pass_name, start, stop))
            if reason is not None:
                raise ValueError(reason)
        bands.append(row_band(layer, pass_name, start, stop))
        start = stop
    return bands


def plan_pass(layer: ConvLayer, pass_name: str, core: CoreConfig, *,
              operand: str = "a", prefetch: bool = True) -> list[CoreCommand]:
    """The commands that run ``pass_name`` of ``layer`` on ``core``: one if the pass fits,
    else output-channel groups as wide as the Y buffer allows, each over row bands (or groups
    of whole images) as large as the X scratchpad allows. ``ValueError`` naming the parameter
    to change for a pass that cannot be split to fit: a reduction longer than the row buffer
    (``max_chunks``), an accumulator too narrow (``acc_width``), one row band larger than the
    scratchpad (``x_words``) or padding beyond the registers.

    Backward-weight (broadcast operand ``operand``): one command if its reduction over output
    pixels fits the row-block buffer (``row_block_chunks``), the Y buffer and the scratchpad,
    else parts of whole images or of row bands with partial sums (the module docstring); a
    core whose bus is narrower than 64 bits cannot split it.

    ``prefetch=False``: the widest groups and no prefetch (the plan a core without the Y
    buffer's halves would run; what the prefetch saves is measured against it)."""
    pass_name = check_pass_name(pass_name)
    where = f"{layer.label} {pass_label(pass_name)}"
    if pass_name == "backward_weight":
        return _weight_commands(layer, core, operand, where)
    config, vec = core.array, core.array.vec
    forward = pass_name == "forward"
    reduced = layer.in_channels if forward else layer.out_channels
    cols = layer.out_channels if forward else layer.in_channels
    chunks = layer.kernel * layer.kernel * channel_words(reduced, vec)
    if chunks > config.max_chunks:
        raise ValueError(f"{where}: the reduction takes {chunks} chunks, but the row buffer "
                         f"holds max_chunks = {config.max_chunks}; the core does not split a "
                         f"reduction (no partial sums): raise max_chunks")
    layer.check_accumulation(config, passes=(pass_name,))
    if layer.padding > MAX_PADDING:
        raise ValueError(f"{where}: padding {layer.padding} is beyond the core's 8-bit "
                         f"padding registers (at most {MAX_PADDING})")
    group = _group_width(cols, chunks, core, where)
    half_group = _group_width(cols, chunks, core, where, half=True)

    # X words of one row of the broadcast input, and the result rows of one image.
    source_width = layer.width if forward else layer.out_width
    row_words = source_width * channel_words(reduced, vec)
    rows = layer.out_height if forward else layer.height
    source_rows = layer.height if forward else layer.out_height
    image_words = source_rows * row_words
    bands, images_per_command = [], 1
    if image_words <= core.x_words:
        bands = [whole_band(layer, pass_name)]
        images_per_command = min(layer.batch, core.x_words // image_words)
    else:
        def misfit(band: RowBand) -> str | None:
            if band.in_rows * row_words <= core.x_words:
                return None
            rows_read = f"{band.in_rows} input row{'s' if band.in_rows > 1 else ''}"
            return (f"{where}: one row of its result reads {rows_read} of {row_words:,} "
                    f"words, more than the X scratchpad's x_words = {core.x_words:,}; "
                    f"raise x_words")
        bands = _row_bands(layer, pass_name, misfit)
    for band in bands:
        if max(band.pad_top, band.pad_bottom) > MAX_PADDING:
            raise ValueError(f"{where}: a row band needs padding {band.pad_top} / "
                             f"{band.pad_bottom}, beyond the core's 8-bit padding registers")
    parts = [(range(n0, min(layer.batch, n0 + images_per_command)), band)
             for n0 in range(0, layer.batch, images_per_command) for band in bands]
    # Groups outer: each group's weights are loaded once and kept, the input once per group;
    # parts outer: each part's input loaded once and kept, the weights once per part. Groups
    # that fit half the Y buffer (the widest that do, where the widest overall do not) let a
    # command prefetch the next one's weights into the other half while it runs; in
    # backward-data only if they make no more column blocks: the tile array takes a row's X
    # chunks once per block and a block's first group streams every live chunk, so narrower
    # blocks cost compute where the output mask leaves few wanted columns per block, while
    # forward (every output wanted) replays the same chunks either way. The plan
    # with the least cost in memory-word cycles: the words read, plus those the core waits
    # for (a weight load before a run; the input streams in under it), plus each command's
    # check; groups outer, then full groups, on a tie.
    from maskprop.hw.core import MaskpropCore

    def column_groups(width: int) -> list:
        return [range(c0, min(cols, c0 + width)) for c0 in range(0, cols, width)]

    def blocks(width: int) -> int:
        return sum(-(-len(g) // config.col_block) for g in column_groups(width))

    widths = [group] + ([half_group] if prefetch and half_group and
                        (forward or blocks(half_group) == blocks(group)) else [])
    plans = []
    for width in dict.fromkeys(widths):
        groups = column_groups(width)
        halves = prefetch and all(config.y_fits(len(g), chunks, half=True) for g in groups)
        for order in ([(columns, part) for columns in groups for part in parts],
                      [(columns, part) for part in parts for columns in groups]):
            plans.append(_commands(pass_name, order, halves))
    return min(plans, key=lambda commands: sum(
        c.x_words(layer, vec) + 2 * c.y_words(layer, vec) + c.prefetch_words(layer, vec)
        + MaskpropCore.CHECK_CYCLES for c in commands))


def _commands(pass_name: str, order, halves: bool) -> list[CoreCommand]:
    """The commands of ``order`` (``(columns, (images, band))``), each keeping the input of the
    one before when it has the same images and band, and its weights when a half of the Y
    buffer holds them; with ``halves`` (every group fits half the Y buffer), a command
    prefetches the next one's weights into the other half unless a half holds them. Follows
    the core's rule for the halves (hw/core.py): a load fills half 0 and empties half 1, a
    kept group runs from the half that holds it (half 0 if both), a prefetch fills the other."""
    commands = []
    held = [None, None]                  # the columns whose weights each half holds
    for index, (columns, (images, band)) in enumerate(order):
        last = commands[-1] if commands else None
        keep_weights = columns in held
        run = held.index(columns) if keep_weights else 0
        if not keep_weights:
            held = [None, None]
        held[run] = columns
        following = order[index + 1][0] if index + 1 < len(order) else None
        prefetch = (following if halves and following is not None and following not in held
                    and len(following) == len(columns) else None)
        if prefetch is not None:
            held[1 - run] = prefetch
        commands.append(CoreCommand(
            pass_name, images, band, columns,
            keep_input=last is not None and (last.images, last.band) == (images, band),
            keep_weights=keep_weights, prefetch=prefetch))
    return commands
