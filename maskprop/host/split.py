"""Splitting a layer pass that the core's buffers cannot hold into a list of core commands
(docs/architecture.md section 8, "Splitting a pass").

The host splits, not the core's sequencer: what to split, and where, depends on the whole
tensor sizes and on the buffers, and costs a few integer operations per command against the
thousands of cycles each command runs; the core's command check stays one small state machine.

A pass is split three ways, each along a dimension whose parts are independent, so no part
ever holds a partial sum:

- **output-channel groups** (the GEMM's columns: forward ``K``, backward-data ``C``): a group
  is a whole number of memory words (``vec`` channels) unless it is the last, so its output
  (and the backward-data output mask) is a strided 2-D transfer of ``OUT_PITCH`` words per
  pixel; each group reads only its own weights;
- **row bands** of one image (the GEMM's rows are output pixels): a band reads the rows of the
  input tensor its windows touch, with its own top and bottom padding (``PAD_TOP``,
  ``PAD_BOTTOM``; the left and right padding stay the layer's);
- **images** of the batch: several whole images per command when they fit.

The reduction is never split: a pass whose reduction has more chunks than the row buffer
(``max_chunks``) is refused. ``max_chunks`` 512 holds every reduction of the five evaluated
networks (3x3x512 is 288 chunks). Backward-weight, whose reduction runs over the output
pixels of the whole batch, runs as one command so far: its reduction must fit the row-block
buffer (``row_block_chunks`` chunks of ``vec`` pixels), its result columns the Y buffer and
its ``A`` and ``dZ`` the scratchpad (docs/architecture.md section 8.3: the reduction split
with partial sums is the next step).

A command keeps what the one before loaded when it needs the same (``PASS.keep_input``: the
same images and band; ``PASS.keep_weights``: the same output-channel group), so the order of
the commands decides what is read again: groups outer reads each group's weights once and the
input once per group, parts (images and bands) outer the input once and the weights once per
part; :func:`plan_pass` takes the order that reads fewer words. What remains is still read
more than once, and the bands' halo rows are read twice
(:func:`maskprop.sim.data_movement.command_traffic`, :func:`maskprop.sim.core_model.job_cycles`),
which is why bands and groups are made as large as the buffers allow.
"""

from dataclasses import dataclass

from maskprop.base.config import CoreConfig
from maskprop.host.memory_layout import channel_words
from maskprop.sim.layer import ConvLayer, check_pass_name, pass_label

__all__ = ["RowBand", "row_band", "whole_band", "whole_pass", "CoreCommand", "plan_pass",
           "BASES", "MAX_PADDING", "OPERANDS", "weight_result_shape"]

#: The tensors' base addresses a command takes (the core's A_BASE, W_BASE, DZ_BASE, OUT_BASE).
BASES = ("a", "w", "dz", "out")
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
    ``dZ`` computed from rows of ``A``): the rows of ``dZ`` its reduction runs over."""
    pass_name: str
    images: range
    band: RowBand
    columns: range
    keep_input: bool = False
    keep_weights: bool = False
    operand: str = ""

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
            return {"a": ((n0 * H + band.in_start) * W) * cw_in, "w": 0,
                    "dz": ((n0 * Ho + band.out_start) * Wo) * cw_out, "out": 0,
                    "out_pitch": 0}
        if self.pass_name == "forward":
            return {"a": ((n0 * H + band.in_start) * W) * cw_in,
                    "w": c0 * taps * cw_in,
                    "dz": 0,
                    "out": (n0 * Ho + band.out_start) * Wo * cw_out + c0 // vec,
                    "out_pitch": cw_out}
        pixel = (n0 * H + band.out_start) * W * cw_in + c0 // vec
        return {"a": pixel, "w": c0 * taps * cw_out,
                "dz": ((n0 * Ho + band.in_start) * Wo) * cw_out,
                "out": pixel, "out_pitch": cw_in}

    def bases(self, layer: ConvLayer, bases: dict, vec: int, word_bytes: int) -> dict:
        """The byte addresses of this command's parts of the tensors whose bases (``a``, ``w``,
        ``dz``, ``out``) are ``bases`` (0 for one not named), with chunks of ``vec`` in words
        of ``word_bytes``."""
        offsets = self.offsets(layer, vec)
        return {name: bases.get(name, 0) + offsets[name] * word_bytes for name in BASES}

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
                * channel_words(layer.out_channels, vec))

    def y_words(self, layer: ConvLayer, vec: int) -> int:
        """Words this command reads into the Y buffer: its columns' weights, none if it keeps
        them."""
        if self.keep_weights or self.pass_name == "backward_weight":
            return 0
        reduced = layer.in_channels if self.pass_name == "forward" else layer.out_channels
        return len(self.columns) * layer.kernel * layer.kernel * channel_words(reduced, vec)

    def pixels(self, layer: ConvLayer) -> int:
        """Output pixels this command computes (GEMM rows; backward-weight: the output
        pixels its reduction runs over)."""
        width = layer.width if self.pass_name == "backward_data" else layer.out_width
        return len(self.images) * self.band.out_rows * width

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


def _group_width(cols: int, chunks: int, core: CoreConfig, where: str) -> int:
    """The widest output-channel group: all ``cols`` if they fit the Y buffer, else the most
    whole words (``vec`` columns) that do, preferring whole column blocks."""
    config = core.array
    if config.y_fits(cols, chunks):
        return cols
    vec, block = config.vec, config.col_block
    widest = max((g for g in range(vec, cols, vec) if config.y_fits(g, chunks)), default=0)
    if not widest:
        raise ValueError(f"{where}: not even {vec} output columns (one memory word) of "
                         f"{chunks} chunks fit the Y buffer (y_words = {config.y_words}, "
                         f"max_cols = {config.max_cols}); raise y_words")
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


def _weight_pass(layer: ConvLayer, core: CoreConfig, operand: str, where: str) -> CoreCommand:
    """Backward-weight as one command; ``ValueError`` naming the parameter for one that does
    not fit (the core does not split its reduction yet)."""
    _, cols = weight_result_shape(layer, operand)
    config, vec = core.array, core.array.vec
    command = whole_pass(layer, "backward_weight", operand)
    chunks = -(-command.pixels(layer) // vec)
    if chunks > core.row_block_chunks:
        raise ValueError(f"{where}: the reduction over {command.pixels(layer):,} output pixels "
                         f"takes {chunks} chunks, but the row-block buffer holds "
                         f"row_block_chunks = {core.row_block_chunks}; the core does not "
                         f"split backward-weight's reduction yet: raise row_block_chunks")
    layer.check_accumulation(config, passes=("backward_weight",))
    if layer.padding > MAX_PADDING:
        raise ValueError(f"{where}: padding {layer.padding} is beyond the core's 8-bit "
                         f"padding registers (at most {MAX_PADDING})")
    if not config.y_fits(cols, chunks):
        raise ValueError(f"{where}: {cols} result columns of {chunks} chunks do not fit the Y "
                         f"buffer (y_words = {config.y_words}, max_cols = {config.max_cols}); "
                         f"raise y_words or max_cols")
    if command.x_words(layer, vec) > core.x_words:
        raise ValueError(f"{where}: A and dZ take {command.x_words(layer, vec):,} words, more "
                         f"than the X scratchpad's x_words = {core.x_words:,}; raise x_words")
    return command


def plan_pass(layer: ConvLayer, pass_name: str, core: CoreConfig, *,
              operand: str = "a") -> list[CoreCommand]:
    """The commands that run ``pass_name`` of ``layer`` on ``core``: one if the pass fits,
    else output-channel groups as wide as the Y buffer allows, each over row bands (or groups
    of whole images) as large as the X scratchpad allows. ``ValueError`` naming the parameter
    to change for a pass that cannot be split to fit: a reduction longer than the row buffer
    (``max_chunks``), an accumulator too narrow (``acc_width``), one row band larger than the
    scratchpad (``x_words``) or padding beyond the registers.

    Backward-weight (broadcast operand ``operand``) runs as one command so far: its reduction
    over output pixels must fit the row-block buffer (``row_block_chunks``) and its operands
    the scratchpad."""
    pass_name = check_pass_name(pass_name)
    where = f"{layer.label} {pass_label(pass_name)}"
    if pass_name == "backward_weight":
        return [_weight_pass(layer, core, operand, where)]
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
        start = 0
        while start < rows:
            # The smallest band from `start` that reads a row (forward rows whose windows are
            # all top padding go with the first that is not), then as many rows as fit.
            stop = start + 1
            while _band(layer, pass_name, start, stop) is None:
                stop += 1
            band = _band(layer, pass_name, start, stop)
            if band.in_rows * row_words > core.x_words:
                rows_read = f"{band.in_rows} input row{'s' if band.in_rows > 1 else ''}"
                raise ValueError(f"{where}: one row of its result reads {rows_read} of "
                                 f"{row_words:,} words, more than the X scratchpad's "
                                 f"x_words = {core.x_words:,}; raise x_words")
            while stop < rows and (
                    _band(layer, pass_name, start, stop + 1).in_rows * row_words
                    <= core.x_words):
                stop += 1
            # A band cannot start on rows that see only bottom padding: the last takes them.
            if forward and stop < rows and stop * layer.stride - layer.padding >= layer.height:
                stop = rows
            bands.append(row_band(layer, pass_name, start, stop))
            start = stop
    for band in bands:
        if max(band.pad_top, band.pad_bottom) > MAX_PADDING:
            raise ValueError(f"{where}: a row band needs padding {band.pad_top} / "
                             f"{band.pad_bottom}, beyond the core's 8-bit padding registers")
    groups = [range(c0, min(cols, c0 + group)) for c0 in range(0, cols, group)]
    parts = [(range(n0, min(layer.batch, n0 + images_per_command)), band)
             for n0 in range(0, layer.batch, images_per_command) for band in bands]
    # Groups outer: each group's weights are loaded once and kept, the input once per group;
    # parts outer: each part's input loaded once and kept, the weights once per part. The
    # order that reads fewer words (groups outer on a tie; the same with one group or part).
    orders = [[(columns, part) for columns in groups for part in parts],
              [(columns, part) for part in parts for columns in groups]]
    return min((_commands(pass_name, order) for order in orders),
               key=lambda commands: sum(c.x_words(layer, vec) + c.y_words(layer, vec)
                                        for c in commands))


def _commands(pass_name: str, order) -> list[CoreCommand]:
    """The commands of ``order`` (``(columns, (images, band))``), each keeping the input of the
    one before when it has the same images and band, its weights when the same columns."""
    commands = []
    for columns, (images, band) in order:
        last = commands[-1] if commands else None
        commands.append(CoreCommand(
            pass_name, images, band, columns,
            keep_input=last is not None and (last.images, last.band) == (images, band),
            keep_weights=last is not None and last.columns == columns))
    return commands
