"""MaskpropCore: the tile array with its own control, memory port, scratchpad and address
generation, so that a layer pass runs by itself, memory to memory (docs/architecture.md
section 8)."""

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import Assert
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from maskprop.base.config import CoreConfig, ceil_log2
from maskprop.hw.address_generator import AddressGenerator, WalkError
from maskprop.hw.axi import AXI4LiteSignature, AXI4Signature
from maskprop.hw.axi_dma import AxiDma
from maskprop.hw.core_registers import (COUNTERS, ErrorCode, Mode, Operand, Pass,
                                         core_register_map)
from maskprop.hw.layouts import word_elements
from maskprop.hw.output_writer import OutputWriter
from maskprop.hw.partial_sums import SUM_WIDTH, PartialSums
from maskprop.hw.registers import RegisterFile
from maskprop.hw.row_block_buffer import RowBlockBuffer
from maskprop.hw.skid_buffer import SkidBuffer
from maskprop.hw.tile_array import TileArray, chunk_shift_shape
from maskprop.hw.window_gather import WindowGather

__all__ = ["MaskpropCore"]

# Widths of the layer registers (hw/core_registers.py): dimensions 16 bits, kernel, stride and
# padding 8 bits.
_DIM, _GEOMETRY = 16, 8
# Quotients of the command check (output height and width, column blocks) have at most this
# many bits: (65535 + 2 * 255) / 1 + 1 < 2**17.
_QUOTIENT = 18
# The command check's sizes (tensor words, rows, ...) in bits: N*H*W*ceil(C/vec) < 2**62.
_PRODUCT = 64
# The command check's size products (the list in MaskpropCore.elaborate): ten for every pass,
# and one more for backward-weight (its result's values, for the partial sums).
_PRODUCTS = 10
_WEIGHT_PRODUCTS = _PRODUCTS + 1


class _Divider:
    """Restoring division of a ``_QUOTIENT``-bit dividend by a divisor of up to 8 bits, one
    quotient bit per cycle: load, then ``_QUOTIENT`` steps. Adds its logic to ``m``; the
    quotient is valid once ``steps_left`` is 0."""

    def __init__(self, m: Module, name: str):
        self.dividend = Signal(_QUOTIENT, name=f"{name}_dividend")
        self.divisor = Signal(_GEOMETRY, name=f"{name}_divisor")
        self.quotient = Signal(_QUOTIENT, name=f"{name}_quotient")
        self.remainder = Signal(_GEOMETRY + 1, name=f"{name}_remainder")
        self._m, self._name = m, name

    def load(self, dividend, divisor):
        return [self.dividend.eq(dividend), self.divisor.eq(divisor), self.quotient.eq(0),
                self.remainder.eq(0)]

    def step(self, bit):
        """One step for dividend bit ``bit`` (a Value: the bits go from the top down)."""
        m, name = self._m, self._name
        shifted = Signal(_GEOMETRY + 2, name=f"{name}_shifted")
        m.d.comb += shifted.eq(Cat(self.dividend.bit_select(bit, 1), self.remainder))
        fits = shifted >= self.divisor
        return [self.remainder.eq(Mux(fits, shifted - self.divisor, shifted)),
                self.quotient.eq(self.quotient | (fits << bit))]


class _Multiplier:
    """Shift-and-add multiplication, one multiplier bit per cycle, for the command check's
    sizes: a DSP block per product (Yosys maps every ``*`` to one or more) would spend a score
    of them on arithmetic done once per command. Products must fit in ``_PRODUCT`` bits, and a
    multiplier in ``_QUOTIENT`` bits; ``load``, then ``_QUOTIENT`` steps."""

    def __init__(self):
        self.multiplicand = Signal(_PRODUCT)
        self.multiplier = Signal(_QUOTIENT)
        self.product = Signal(_PRODUCT)

    def load(self, multiplicand, multiplier):
        return [self.multiplicand.eq(multiplicand), self.multiplier.eq(multiplier),
                self.product.eq(0)]

    def step(self):
        return [self.product.eq(self.product + Mux(self.multiplier[0], self.multiplicand, 0)),
                self.multiplicand.eq(self.multiplicand << 1),
                self.multiplier.eq(self.multiplier >> 1)]


class MaskpropCore(wiring.Component):
    """The accelerator core: a :class:`~maskprop.hw.tile_array.TileArray` that runs a conv
    layer's pass by itself, from tensors in memory to the requantized result in memory.

    Parameters
    ----------
    core : CoreConfig
        The tile array's configuration, the X scratchpad's size and the memory port's
        parameters. ``ValueError`` if the buffers are too large to generate.

    Ports
    -----
    csr : In(AXI4LiteSignature(addr_width=..., data_width=32))
        The control and status registers of ``hw/core_registers.py`` (docs/registers.md).
    mem : Out(AXI4Signature(addr_width=core.addr_width, data_width=core.bus_width, id_width=1))
        The memory port: tensors in the layout of ``maskprop.host.memory_layout`` (one word =
        one chunk of ``vec`` channels of one pixel).
    irq : Out(1)
        ``STATUS.done | STATUS.error``: a level, cleared by clearing both.

    Operation
    ---------
    ``CONTROL.start`` latches the command (PASS, the layer, REQUANT, OUT_PITCH and the base
    addresses) and checks it: an illegal command sets ``STATUS.error`` with its ``error_code``
    and the core stays idle (a start while busy reports BUSY and the running pass goes on). A legal one:

    1. **load** (one DMA read stream, in order): the weights' columns into the tile array's Y
       buffer, then the pass's broadcast input tensor (``A`` for forward, ``dZ`` for
       backward-data) into the X scratchpad, streaming in while the run (2) starts as soon as
       the weights are in: a chunk is fetched once its word is written; in sparse
       backward-data with ``output_mask``, ``A`` then follows, consumed row by row for the
       output mask (``A != 0``, derived on chip).
       ``PASS.keep_input`` and ``keep_weights`` skip the X and the Y load: the buffer holds
       them from the last command that finished, which the core checks (the input's base
       and words; the weights' pass, ``W_BASE``, columns and reduction), else NOT_HELD.
       ``PASS.prefetch`` (forward, backward-data) double-buffers the weights: once its own X
       and Y words are in, the command also reads the next command's weights (at
       ``NEXT_W_BASE``, as many columns) into the other half of the Y buffer
       (``TileArray.y_half``) while its run reads its own half, and is done once both its
       result is written and they are in; the next command keeps them. Both must then fit
       half the Y buffer. A load fills the buffer from address 0 (half 0) and empties half 1;
       a command that keeps weights runs from the half that holds them;
    2. **run**: the address generator walks the windows (docs/architecture.md section 2): for
       every output row and column block it sends the row's chunks that have a structural
       element (padding taps and dilation holes are never issued, in either mode), fetched from
       the scratchpad with their mask (dense mode: the structural mask; sparse: the nonzeros);
       the output writer requantizes the array's results and the DMA writes them, one word per
       chunk of output channels, rows in order, 0 wherever an output was not computed;
    3. **done** once the last write is acknowledged and a prefetch's last word is in
       (``STATUS.done``; a bus error response instead sets ``error_code`` BUS_ERROR).

    A command is a layer as the core sees it: the rows have their own padding (``pad_top``,
    ``pad_bottom``; a row band of a split pass), the columns the layer's, and the output (and
    the mask's ``A``) has ``OUT_PITCH`` words per pixel in memory, of which the command writes
    its ``ceil(cols / vec)`` (an output-channel group of a split pass: a 2-D DMA transfer,
    one row per pixel). The weights go into the Y buffer at a column stride of
    ``2**ceil(log2(chunks))`` words. The host splits what the buffers cannot hold into such
    commands (``maskprop.host.split``, docs/architecture.md section 8.1).

    **Backward-weight** (docs/architecture.md section 8.3) reduces over output pixels: the
    command reads its ``A`` band and its ``dZ`` band into the X scratchpad (two DMA reads, ``dZ``
    behind ``A``), and once both are in, the :class:`~maskprop.hw.window_gather.WindowGather`
    reads them twice from there: first the Y operand into the Y buffer (``PASS.bw_operand`` A:
    ``dZ``, column ``k``; DZ: ``im2col(A)``, column ``(r, t, c)``; chunk ``q`` of ``vec``
    output pixels at ``(column << y_shift) | q``), then the broadcast operand X into the
    :class:`~maskprop.hw.row_block_buffer.RowBlockBuffer`, which sends each row once per
    column block with its chunks that have a structural element (every output wanted: a
    weight gradient has no output mask). The result has a row per X row (A: ``(r, t, c)``;
    DZ: ``k``) of ``ceil(cols / vec)`` words (broadcasting A, a group of output channels:
    its words of each ``dZ`` pixel are read and of each result row written ``OUT_PITCH``
    apart). A command reduces over at most ``vec * row_block_chunks`` output pixels (else
    SHAPE_TOO_LARGE); a longer reduction is split by the host into parts chained by
    **partial sums** (:class:`~maskprop.hw.partial_sums.PartialSums`, between the result skid
    and the writer): ``PASS.psum_in`` reads the parts before's 64-bit sums at ``PSUM_BASE``
    behind ``dZ`` and adds them (every row then sent, one without a structural chunk as an
    empty one, so its sums pass through), ``PASS.psum_out`` writes the sums raw to
    ``OUT_BASE`` instead of through the writer. It keeps nothing (``keep_weights`` or
    ``keep_input``: NOT_HELD), and nothing is held after it.

    Performance counters: the tile array's and the DMA's 32-bit counters (read through 64-bit
    registers whose high words are 0) and ``cycles_busy`` (64 bits).
    """

    def __new__(cls, core: CoreConfig):
        core.check_generatable()
        return super().__new__(cls, core, src_loc_at=1)

    def __init__(self, core: CoreConfig):
        self._core = core
        self._map = core_register_map(core.array, mem_data_width=core.bus_width,
                                      mem_addr_width=core.addr_width)
        super().__init__({
            "csr": In(AXI4LiteSignature(addr_width=self._map.addr_width, data_width=32)),
            "mem": Out(AXI4Signature(addr_width=core.addr_width, data_width=core.bus_width,
                                     id_width=1)),
            "irq": Out(1),
        })

    core = property(lambda self: self._core)
    register_map = property(lambda self: self._map)

    @property
    def generator_key(self):
        """Everything the generated Verilog depends on (it caches by this)."""
        return (type(self).__qualname__, self._core)


    #: The most words one DMA command moves (an output tensor or an input stream of A).
    MAX_TRANSFER = 1 << 24
    #: Cycles from the first busy cycle to the first read command: one CHECK cycle; DIVIDE's
    #: steps and the cycle that finds its step counter at 0; per product a SIZE_LOAD cycle, the
    #: multiplier's steps and a store cycle; one LIMITS cycle.
    CHECK_CYCLES = 1 + (_QUOTIENT + 1) + _PRODUCTS * (1 + _QUOTIENT + 1) + 1
    #: Backward-weight's: one more product (its result's values), and the column blocks
    #: divided once more (WEIGHT_BLOCKS) after the products (its columns R*R*C are one).
    WEIGHT_CHECK_CYCLES = CHECK_CYCLES + (1 + _QUOTIENT + 1) + _QUOTIENT + 1
    #: Output-mask pixels buffered between the A stream and the rows (one entry per pixel).
    MASK_FIFO_DEPTH = 4
    #: Row beats between the address generator and the writer: the row blocks the tile array
    #: holds in flight, and two.
    WRITER_ROW_FIFO_DEPTH = TileArray.FIFO_DEPTH + 2

    def elaborate(self, platform):
        m = Module()
        core, c = self._core, self._core.array
        vec, container = c.vec, core.container_bits
        x_addr_width = ceil_log2(core.x_words)

        # --- blocks ---------------------------------------------------------------------------
        m.submodules.regs = regs = RegisterFile(self._map)
        wiring.connect(m, wiring.flipped(self.csr), regs.bus)
        fields = regs.fields
        m.submodules.dma = dma = AxiDma(
            addr_width=core.addr_width, data_width=core.bus_width, max_burst=core.max_burst,
            max_outstanding=core.max_outstanding, max_beats_per_command=self.MAX_TRANSFER)
        wiring.connect(m, dma.bus, wiring.flipped(self.mem))
        m.submodules.array = array = TileArray(c)
        m.submodules.walker = walker = AddressGenerator(c, addr_width=x_addr_width)
        m.submodules.writer = writer = OutputWriter(
            c, value_width=SUM_WIDTH if core.partial_sums else None)
        max_blocks = -(-c.max_cols // c.col_block)
        m.submodules.gather = gather = WindowGather(c, addr_width=x_addr_width, dim_width=_DIM)
        m.submodules.row_blocks = row_blocks = RowBlockBuffer(
            c, max_chunks=core.row_block_chunks, index_width=gather.index_width,
            max_blocks=max_blocks)
        m.submodules.x_pad = x_pad = memory.Memory(shape=core.bus_width, depth=core.x_words,
                                                   init=[])
        x_write, x_read = x_pad.write_port(), x_pad.read_port()

        # --- the command, latched at start --------------------------------------------------
        command = Signal(data.StructLayout({
            "pass_kind": Pass, "dense": 1, "output_mask": 1, "keep_weights": 1, "keep_input": 1,
            "bw_operand": Operand, "psum_in": 1, "psum_out": 1,
            "n": _DIM, "c": _DIM, "h": _DIM,
            "w": _DIM, "k": _DIM, "kernel": _GEOMETRY, "stride": _GEOMETRY,
            "padding": _GEOMETRY, "pad_top": _GEOMETRY, "pad_bottom": _GEOMETRY,
            "out_pitch": _DIM, "shift": 6, "a_base": core.addr_width,
            "w_base": core.addr_width, "dz_base": core.addr_width, "out_base": core.addr_width,
            "psum_base": core.addr_width, "prefetch": 1, "next_w_base": core.addr_width,
        }))
        backward, weight_grad = Signal(), Signal()   # backward-data; backward-weight
        x_is_dz = Signal()                           # backward-weight with X = dZ^T
        # Forward: C and K; backward-data: K and C; backward-weight: the channels of A's words
        # (C) and the result's columns (K for X = A, R*R*C for X = dZ).
        reduced, cols = Signal(_DIM), Signal(_DIM)
        wants_mask = Signal()                        # read A for the output mask (A != 0)
        m.d.comb += [
            backward.eq(command.pass_kind == Pass.BACKWARD_DATA),
            weight_grad.eq(command.pass_kind == Pass.BACKWARD_WEIGHT),
            x_is_dz.eq(weight_grad & (command.bw_operand == Operand.DZ)),
            reduced.eq(Mux(backward, command.k, command.c)),
            wants_mask.eq(backward & command.output_mask & ~command.dense),
        ]

        # --- sizes, computed step by step while the command is checked ------------------------
        dividers = {name: _Divider(m, name) for name in ("out_h", "out_w", "blocks")}
        out_h, out_w, blocks = (dividers[name].quotient for name in ("out_h", "out_w", "blocks"))
        vec_shift = ceil_log2(vec)
        reduced_words, col_words, k_words = Signal(_DIM), Signal(_DIM), Signal(_DIM)
        taps = Signal(2 * _GEOMETRY)
        partial_x, partial_rows = Signal(_PRODUCT), Signal(_PRODUCT)
        x_words, rows, chunks, y_words, out_words, reduction = (
            Signal(_PRODUCT, name=name) for name in ("x_words", "rows", "chunks", "y_words",
                                                     "out_words", "reduction"))
        # Backward-weight: reduction is R*R*C, rows the output pixels P (the reduction) and
        # y_words the dZ band's words (the Y buffer is filled by the window gather); chunks
        # becomes ceil(P / vec) once the products are done.
        gemm_rows = Signal(_PRODUCT)                 # backward-weight: the result's rows
        # Backward-weight's partial sums (PASS.psum_in reads them, psum_out writes them): a
        # result beat's in sum_words_per_beat words, ceil(cols / tiles) beats per result row.
        row_sum_words, sum_words = Signal(_QUOTIENT), Signal(_PRODUCT)
        if core.partial_sums:                        # tiles and beat_words: powers of two
            m.d.comb += row_sum_words.eq(((cols + c.tiles - 1) >> ceil_log2(c.tiles))
                                         << exact_log2(core.sum_words_per_beat))
        m.d.comb += [
            cols.eq(Mux(backward, command.c,
                        Mux(x_is_dz, reduction[:_DIM], command.k))),
            col_words.eq((cols + vec - 1) >> vec_shift),
            k_words.eq((command.k + vec - 1) >> vec_shift),
            gemm_rows.eq(Mux(x_is_dz, command.k, reduction)),
        ]
        # The Y buffer's column stride, log2: ceil(log2(chunks)), set once the sizes are known.
        y_shift = Signal(chunk_shift_shape(c))
        stride_log2 = Signal.like(y_shift)
        for b in range(ceil_log2(c.max_chunks)):        # the highest set bit of chunks - 1
            with m.If((chunks - 1)[b]):
                m.d.comb += stride_log2.eq(b + 1)
        # Words from one output pixel to the next in memory (OUT_PITCH; 0: contiguous).
        pitch_words = Signal(_DIM)
        m.d.comb += pitch_words.eq(Mux(command.out_pitch == 0, col_words, command.out_pitch))
        step = Signal(range(_QUOTIENT + 1))
        bit = Signal(range(_QUOTIENT))           # the dividend bit of this division step
        m.d.comb += bit.eq(step - 1)

        # --- errors: the first since STATUS.error was cleared is kept -------------------------
        raise_error = Signal()
        raised = Signal(ErrorCode)
        error_code = Signal(ErrorCode)
        m.d.comb += [fields.error_set.eq(raise_error), fields.error_code.eq(error_code)]
        with m.If(raise_error & ~fields.error):
            m.d.sync += error_code.eq(raised)

        def fail(code):
            m.d.comb += [raise_error.eq(1), raised.eq(code)]

        # --- what the buffers hold: the last command that finished loaded it ---------------
        # Each half of the Y buffer: (pass, W_BASE, columns, chunks); the X scratchpad: (its
        # base, words). A command that keeps weights or input must match them (else NOT_HELD).
        # A command runs from half `run_half` (the upper half only where it keeps weights a
        # prefetch put there); a load writes from address 0, a prefetch the other half.
        weights = Signal(data.StructLayout({"pass_kind": Pass, "w_base": core.addr_width,
                                            "cols": _DIM, "chunks": _PRODUCT}))
        prefetched = Signal.like(weights)            # what PASS.prefetch loads
        inputs = Signal(data.StructLayout({"base": core.addr_width, "words": _PRODUCT}))
        held_weights = [Signal.like(weights, name=f"held_weights{h}") for h in (0, 1)]
        y_valid = [Signal(name=f"y_valid{h}") for h in (0, 1)]
        held_inputs, x_valid = Signal.like(inputs), Signal()
        weights_match = [Signal(name=f"weights_match{h}") for h in (0, 1)]
        run_half, keep_half = Signal(), Signal()
        x_base = Signal(core.addr_width)
        m.d.comb += [weights.pass_kind.eq(command.pass_kind), weights.w_base.eq(command.w_base),
                     weights.cols.eq(cols), weights.chunks.eq(chunks),
                     prefetched.eq(weights), prefetched.w_base.eq(command.next_w_base),
                     x_base.eq(Mux(backward, command.dz_base, command.a_base)),
                     inputs.base.eq(x_base), inputs.words.eq(x_words),
                     *(weights_match[h].eq(y_valid[h] & (held_weights[h].as_value() ==
                                                         weights.as_value())) for h in (0, 1)),
                     keep_half.eq(command.keep_weights & ~weights_match[0]),
                     array.y_half.eq(run_half)]
        # Backward-weight keeps nothing: its Y buffer and scratchpad hold its operands
        # gathered and loaded, which no other command reuses (it leaves both invalid).
        keeps_stale = Signal()
        m.d.comb += keeps_stale.eq(
            (weight_grad & (command.keep_weights | command.keep_input)) |
            (command.keep_weights & ~(weights_match[0] | weights_match[1])) |
            (command.keep_input & ~(x_valid & (held_inputs.as_value() == inputs.as_value()))))

        # --- the DMA's read stream: Y buffer, then X scratchpad, then A ------------------------
        # The run starts once the weights are in; the X words stream in behind them while the
        # walk reads those already written (`x_count`: the fetch waits for a word not yet in).
        read_index = Signal(64)
        x_count = Signal(_PRODUCT)           # X words written so far
        # X and Y words this command reads: 0 for what it keeps.
        x_loaded, y_loaded = Signal(_PRODUCT), Signal(_PRODUCT)
        # The scratchpad's words: the input tensor; backward-weight's A band, then its dZ band.
        x_total = Signal(_PRODUCT)
        y_chunk = Signal(range(max(2, c.max_chunks)))
        y_column = Signal(range(max(2, c.max_cols)))
        loading_x, loading_y = Signal(), Signal()
        # PASS.prefetch: the next command's weights, the last read of this one, into the other
        # half of the Y buffer, offered once the X and Y loads are in (the DMA's command queue
        # then has room: at most the A read is in it); `prefetch_start`, `prefetch_end`: the
        # prefetch's words in the read stream.
        prefetch_start, prefetch_end = (Signal(_PRODUCT, name=name) for name in (
            "prefetch_start", "prefetch_end"))
        prefetching, prefetch_pending, prefetch_done = Signal(), Signal(), Signal()
        word = dma.read_data.payload.data
        elements = word_elements(word, vec, container, c.data_width)
        m.d.comb += [
            x_total.eq(x_words + Mux(weight_grad, y_words, 0)),
            x_loaded.eq(Mux(command.keep_input, 0, x_total)),
            y_loaded.eq(Mux(command.keep_weights | weight_grad, 0, y_words)),
            loading_y.eq(read_index < y_loaded),
            loading_x.eq(~loading_y & (read_index < y_loaded + x_loaded)),
            prefetching.eq(command.prefetch & (read_index >= prefetch_start)),
            prefetch_done.eq(~command.prefetch |
                             (~prefetch_pending & (read_index == prefetch_end))),
            x_write.addr.eq(x_count),
            x_write.data.eq(word),
            x_write.en.eq(dma.read_data.valid & loading_x),
            array.chunk_shift.eq(y_shift),
            # A word goes to the command's own half (a loading command runs from half 0), a
            # prefetched one to the other.
            array.load.payload.half.eq(run_half ^ prefetching),
        ]
        # Backward-weight: the window gather reads the scratchpad twice, first the Y operand
        # into the Y buffer (`gathering_y`), then X into the row-block buffer.
        gathering_y = Signal()
        gathered = gather.o.payload
        with m.If(weight_grad):
            m.d.comb += [
                array.load.valid.eq(gather.o.valid & gathering_y),
                # Column `row` (its k or (r, t, c)), chunk q: the gather's word.
                array.load.payload.addr.eq((gathered.row << y_shift) | gathered.chunk),
                array.load.payload.y.eq(gathered.data),
                row_blocks.i.valid.eq(gather.o.valid & ~gathering_y),
                row_blocks.i.payload.eq(gathered),
                gather.o.ready.eq(gathering_y | row_blocks.i.ready),
            ]
        with m.Else():
            m.d.comb += [
                array.load.valid.eq(dma.read_data.valid & (loading_y | prefetching)),
                # Column j's chunks at j << y_shift (the tile array's runtime column stride).
                array.load.payload.addr.eq((y_column << y_shift) | y_chunk),
                *(array.load.payload.y[e].eq(elements[e]) for e in range(vec)),
            ]
        # A command with partial sums writes every row's sums, so every row is sent.
        m.d.comb += [row_blocks.chunks.eq(chunks), row_blocks.blocks.eq(blocks),
                     row_blocks.dense.eq(command.dense),
                     row_blocks.keep_empty.eq(command.psum_in | command.psum_out)]
        # After the loads: A words for the output mask, or backward-weight's partial sums.
        a_word = Signal(dma.read_data.payload.shape())     # an A word for the output mask
        a_valid, a_ready = Signal(), Signal()
        sums_valid, sums_ready = Signal(), Signal()
        sums_start = Signal()                # the command is accepted: empty the sum buffers
        m.d.comb += [
            a_word.eq(dma.read_data.payload),
            a_valid.eq(dma.read_data.valid & ~loading_x & ~loading_y & ~weight_grad &
                       ~prefetching),
            sums_valid.eq(dma.read_data.valid & ~loading_x & ~loading_y & weight_grad),
            dma.read_data.ready.eq(loading_x | loading_y | prefetching |
                                   Mux(weight_grad, sums_ready, a_ready)),
        ]
        with m.If(dma.read_data.valid & dma.read_data.ready):
            m.d.sync += read_index.eq(read_index + 1)
            with m.If(loading_x):
                m.d.sync += x_count.eq(x_count + 1)
            with m.If(loading_y | prefetching):
                # The column counter wraps after the last column: the prefetch starts at 0.
                m.d.sync += y_chunk.eq(y_chunk + 1)
                with m.If(y_chunk == chunks - 1):
                    m.d.sync += [y_chunk.eq(0),
                                 y_column.eq(Mux(y_column == cols - 1, 0, y_column + 1))]

        # --- output mask: one beat per output pixel, the nonzero bits of its A words ----------
        mask_bits = -(-c.max_cols // c.col_block) * c.col_block
        mask_words = -(-mask_bits // vec)
        m.submodules.masks = masks = fifo.SyncFIFOBuffered(width=mask_bits,
                                                           depth=self.MASK_FIFO_DEPTH)
        assembling = Signal(mask_words * vec)
        a_index = Signal(_DIM)
        nonzero = Cat(element != 0 for element in word_elements(a_word.data, vec, container,
                                                             c.data_width))
        completed = Signal(mask_words * vec)
        m.d.comb += [
            completed.eq(assembling),
            completed.word_select(a_index, vec).eq(nonzero),
            a_ready.eq(masks.w_rdy),
            masks.w_en.eq(a_valid & (a_index == col_words - 1)),
            masks.w_data.eq(completed),
        ]
        with m.If(a_valid & a_ready):
            m.d.sync += [assembling.eq(completed), a_index.eq(a_index + 1)]
            with m.If(a_index == col_words - 1):
                m.d.sync += [assembling.eq(0), a_index.eq(0)]

        # --- rows: each walker row beat to the array (if live) and to the writer -------------
        # The rows come from the address generator, or for backward-weight from the row-block
        # buffer (each X row once per column block, every output wanted).
        row_valid, row_live, row_block, row_ready = Signal(), Signal(), Signal(_DIM), Signal()
        with m.If(weight_grad):
            m.d.comb += [row_valid.eq(row_blocks.rows.valid),
                         row_live.eq(row_blocks.rows.payload.live),
                         row_block.eq(row_blocks.rows.payload.block),
                         row_blocks.rows.ready.eq(row_ready)]
        with m.Else():
            m.d.comb += [row_valid.eq(walker.rows.valid),
                         row_live.eq(walker.rows.payload.live),
                         row_block.eq(walker.rows.payload.block),
                         walker.rows.ready.eq(row_ready)]
        col_base = Signal(_DIM)
        col_valid = Signal(c.col_block)
        omask = Signal(c.col_block)
        wanted = Signal(c.col_block)
        m.d.comb += [
            col_base.eq(row_block * c.col_block),
            col_valid.eq(Cat(col_base + p < cols for p in range(c.col_block))),
            omask.eq(Mux(wants_mask, masks.r_data.word_select(row_block, c.col_block), ~0)),
            wanted.eq(Mux(command.dense, col_valid, omask & col_valid)),
        ]
        # The writer takes a rows beat only once its block's results are in: it gets the beats
        # through a FIFO deep enough for the row blocks the array holds in flight.
        writer_row_layout = writer.rows.payload.shape()
        m.submodules.writer_rows = writer_rows = fifo.SyncFIFOBuffered(
            width=writer_row_layout.size, depth=self.WRITER_ROW_FIFO_DEPTH)
        writer_row = Signal(writer_row_layout)
        last_block = Signal()
        first_row = Signal()                 # the pass's first row beat is still to come
        m.d.comb += last_block.eq(row_block == blocks - 1)
        mask_ready = ~wants_mask | masks.r_rdy
        array_ready = ~row_live | array.rows.ready
        m.d.comb += [
            row_ready.eq(writer_rows.w_rdy & array_ready & mask_ready),
            array.rows.valid.eq(row_valid & row_live & writer_rows.w_rdy & mask_ready),
            array.rows.payload.omask.eq(omask),
            array.rows.payload.col_valid.eq(col_valid),
            array.rows.payload.col_base.eq(col_base),
            writer_rows.w_en.eq(row_valid & array_ready & mask_ready),
            writer_row.live.eq(row_live),
            writer_row.wanted.eq(wanted),
            writer_row.first.eq(first_row),
            writer_rows.w_data.eq(writer_row),
            masks.r_en.eq(row_valid & row_ready & last_block & wants_mask),
            # Raw partial sums (psum_out) bypass the writer: its row beats are dropped.
            writer.rows.valid.eq(writer_rows.r_rdy & ~command.psum_out),
            writer.rows.payload.eq(writer_rows.r_data),
            writer_rows.r_en.eq(writer.rows.ready | command.psum_out),
        ]
        with m.If(row_valid & row_ready):
            m.d.sync += first_row.eq(0)

        # --- chunks: the walker's addresses read from the scratchpad, with their masks --------
        # Two stages: the scratchpad's registered read (`fetched`), then a two-entry FIFO
        # holding chunks with their masks (`staged`). The FIFO keeps the block RAM's
        # clock-to-out, the mask and the route to the tile array's row buffer out of one cycle,
        # and its registered `w_rdy` cuts the combinational ready chain from the tile array's
        # stall back into the address generator (both were the core's critical path,
        # docs/fpga.md). A chunk written is readable the next cycle, as from a register, and
        # both stages pass a chunk per cycle.
        # A chunk whose word is not in the scratchpad yet waits (the X load streams in while the
        # walk runs): written in an earlier cycle, it is read like any other.
        chunk = walker.chunks.payload
        fetched = Signal()                   # the read port holds a chunk
        fetched_chunk = Signal(chunk.shape())
        x_layout = array.x.payload.shape()
        m.submodules.staged = staged = fifo.SyncFIFO(width=x_layout.size, depth=2)
        advance, word_in = Signal(), Signal()
        m.d.comb += [
            advance.eq(~fetched | staged.w_rdy),
            word_in.eq(command.keep_input | (chunk.addr < x_count)),
            walker.chunks.ready.eq(advance & word_in),
            gather.read.data.eq(x_read.data),
        ]
        # The scratchpad's read port: the fetch, or backward-weight's window gather.
        with m.If(weight_grad):
            m.d.comb += [x_read.addr.eq(gather.read.addr), x_read.en.eq(gather.read.en)]
        with m.Else():
            m.d.comb += [x_read.addr.eq(chunk.addr), x_read.en.eq(advance)]
        with m.If(advance):
            m.d.sync += [fetched.eq(walker.chunks.valid & word_in), fetched_chunk.eq(chunk)]
        x_elements = word_elements(x_read.data, vec, container, c.data_width)
        data_mask = Cat(element != 0 for element in x_elements)
        beat = Signal(x_layout)
        m.d.comb += [
            *(beat.x[e].eq(x_elements[e]) for e in range(vec)),
            beat.mask.eq(Mux(command.dense, fetched_chunk.smask,
                             fetched_chunk.smask & data_mask)),
            beat.index.eq(fetched_chunk.index),
            beat.last.eq(fetched_chunk.last),
            staged.w_en.eq(fetched),
            staged.w_data.eq(beat),
            array.x.valid.eq(Mux(weight_grad, row_blocks.x.valid, staged.r_rdy)),
            array.x.payload.eq(Mux(weight_grad, row_blocks.x.payload, staged.r_data)),
            staged.r_en.eq(array.x.ready & ~weight_grad),
            row_blocks.x.ready.eq(array.x.ready & weight_grad),
            array.dense.eq(command.dense),
        ]

        # The command check refuses everything the walker would (its error codes are a subset
        # of the core's): a refused walk would send no beat and leave the write waiting.
        m.d.sync += Assert(~walker.done | (walker.error == WalkError.NONE),
                           "the address generator refused a command the core accepted")

        # --- results: requantized by the writer, written by the DMA ---------------------------
        # A skid buffer between the tile array and the writer: its registered `ready` keeps
        # the writer's backpressure (its gearbox and requantize register) out of the tile
        # array's stall, fetch and row-buffer write in one cycle (the critical path before,
        # docs/fpga.md); the array hands over a result whenever the skid is empty.
        m.submodules.result_skid = result_skid = SkidBuffer(array.o.payload.shape())
        wiring.connect(m, array.o, result_skid.i)
        m.submodules.write_skid = write_skid = SkidBuffer(dma.write_data.payload.shape())
        wiring.connect(m, write_skid.o, dma.write_data)
        # Backward-weight's partial sums (hw/partial_sums.py) between the skid and the writer:
        # added to the results (psum_in), and the sums written raw instead of requantized
        # (psum_out); otherwise the results pass through unchanged, in the same cycle.
        if core.partial_sums:
            m.submodules.partial_sums = partial_sums = PartialSums(c, bus_width=core.bus_width)
            wiring.connect(m, result_skid.o, partial_sums.results)
            wiring.connect(m, partial_sums.o, writer.results)
            m.d.comb += [
                partial_sums.add.eq(weight_grad & command.psum_in),
                partial_sums.keep.eq(weight_grad & command.psum_out),
                partial_sums.start.eq(sums_start),
                partial_sums.sums.valid.eq(sums_valid),
                partial_sums.sums.payload.eq(dma.read_data.payload.data),
                sums_ready.eq(partial_sums.sums.ready),
            ]
            raw = partial_sums.raw
        else:
            wiring.connect(m, result_skid.o, writer.results)
            raw = None
        m.d.comb += [
            writer.cols.eq(cols),
            writer.shift.eq(command.shift),
            writer.base.eq(0),
        ]
        # The skid buffer's registered ready cuts the ready chain from the memory port's write
        # side into the writer and the tile array's stall (docs/fpga.md).
        writer_words = [write_skid.i.valid.eq(writer.o.valid),
                        write_skid.i.payload.data.eq(writer.o.payload.data),
                        writer.o.ready.eq(write_skid.i.ready)]
        if raw is None:
            m.d.comb += writer_words
        else:
            with m.If(command.psum_out):
                m.d.comb += [write_skid.i.valid.eq(raw.valid),
                             write_skid.i.payload.data.eq(raw.payload),
                             raw.ready.eq(write_skid.i.ready)]
            with m.Else():
                m.d.comb += writer_words
        m.d.comb += [
            write_skid.i.payload.strb.eq(~0),
            dma.write_done.ready.eq(1),
        ]

        # --- control ----------------------------------------------------------------------
        busy = Signal()
        out_height = Signal(_QUOTIENT)       # output pixels of the conv (forward's rows)
        out_width = Signal(_QUOTIENT)
        x_height, x_width = Signal(_QUOTIENT), Signal(_QUOTIENT)     # the X tensor's pixels
        row_height, row_width = Signal(_QUOTIENT), Signal(_QUOTIENT)  # the GEMM rows' pixels
        m.d.comb += [
            out_height.eq(out_h + 1),
            out_width.eq(out_w + 1),
            x_height.eq(Mux(backward, out_height, command.h)),
            x_width.eq(Mux(backward, out_width, command.w)),
            row_height.eq(Mux(backward, command.h, out_height)),
            row_width.eq(Mux(backward, command.w, out_width)),
        ]
        multiply = _Multiplier()
        # (result, multiplicand, multiplier), in order: each product's operands are command
        # fields, quotients or results of products before it; multipliers have at most
        # _QUOTIENT bits. Ten products of 1 + _QUOTIENT + 1 cycles each: about 200 cycles per
        # command, against a pass of thousands.
        products = [
            (taps, command.kernel, command.kernel),
            (partial_x, command.n, x_height),
            (partial_rows, command.n, row_height),
            (chunks, taps, reduced_words),
            (reduction, taps, reduced),
            (partial_x, partial_x, x_width),
            (rows, partial_rows, row_width),
            (x_words, partial_x, reduced_words),
            (y_words, Mux(weight_grad, rows, chunks), Mux(weight_grad, k_words, cols)),
            (out_words, Mux(weight_grad, gemm_rows, rows), col_words),
            (sum_words, gemm_rows, row_sum_words),          # backward-weight only
        ]
        assert len(products) == _WEIGHT_PRODUCTS
        product_index = Signal(range(len(products)))
        bases = (command.a_base, command.w_base, command.dz_base, command.out_base,
                 command.psum_base)
        alignment = core.bus_bytes - 1
        read_cmd, write_cmd = dma.read_cmd, dma.write_cmd
        with m.FSM(name="control") as control:
            with m.State("IDLE"):
                with m.If(fields.start):
                    m.d.sync += [
                        command.pass_kind.eq(fields.pass_kind),
                        command.dense.eq(fields.mode == Mode.DENSE),
                        command.output_mask.eq(fields.output_mask),
                        command.keep_weights.eq(fields.keep_weights),
                        command.keep_input.eq(fields.keep_input),
                        command.bw_operand.eq(fields.bw_operand),
                        command.psum_in.eq(fields.psum_in),
                        command.psum_out.eq(fields.psum_out),
                        command.n.eq(fields.layer_n), command.c.eq(fields.layer_c),
                        command.h.eq(fields.layer_h), command.w.eq(fields.layer_w),
                        command.k.eq(fields.layer_k), command.kernel.eq(fields.kernel),
                        command.stride.eq(fields.stride), command.padding.eq(fields.padding),
                        command.pad_top.eq(fields.pad_top),
                        command.pad_bottom.eq(fields.pad_bottom),
                        command.out_pitch.eq(fields.out_pitch),
                        command.shift.eq(fields.shift), command.a_base.eq(fields.a_base),
                        command.w_base.eq(fields.w_base), command.dz_base.eq(fields.dz_base),
                        command.out_base.eq(fields.out_base),
                        command.psum_base.eq(fields.psum_base),
                        command.prefetch.eq(fields.prefetch),
                        command.next_w_base.eq(fields.next_w_base),
                    ]
                    m.next = "CHECK"
            with m.State("CHECK"):
                dims = (command.n, command.c, command.h, command.w, command.k, command.kernel,
                        command.stride)
                padded_h = command.h + command.pad_top + command.pad_bottom
                padded_w = command.w + 2 * command.padding
                # Partial sums are backward-weight's, and need a bus of 64 bits or more.
                psums = command.psum_in | command.psum_out
                # A prefetch needs the Y buffer's halves, and is forward's or backward-data's.
                with m.If((command.pass_kind.as_value() == 3) |
                          (psums & (~weight_grad if core.partial_sums else 1)) |
                          (command.prefetch & (weight_grad if c.y_halves else 1))):
                    fail(ErrorCode.BAD_PASS)
                    m.next = "IDLE"
                with m.Elif(Cat(dim == 0 for dim in dims).any() |
                            (padded_h < command.kernel) | (padded_w < command.kernel)):
                    fail(ErrorCode.ZERO_DIM)
                    m.next = "IDLE"
                with m.Elif(Cat((base & alignment) != 0 for base in bases).any() |
                            (command.prefetch & ((command.next_w_base & alignment) != 0))):
                    fail(ErrorCode.UNALIGNED)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [
                        *dividers["out_h"].load(padded_h - command.kernel, command.stride),
                        *dividers["out_w"].load(padded_w - command.kernel, command.stride),
                        *dividers["blocks"].load(cols + c.col_block - 1, c.col_block),
                        step.eq(_QUOTIENT),
                    ]
                    m.next = "DIVIDE"
            with m.State("DIVIDE"):
                with m.If(step != 0):
                    for divider in dividers.values():
                        m.d.sync += divider.step(bit)
                    m.d.sync += step.eq(step - 1)
                with m.Else():
                    m.d.sync += [
                        reduced_words.eq((reduced + vec - 1) >> vec_shift),
                        product_index.eq(0),
                    ]
                    m.next = "SIZE_LOAD"
            with m.State("SIZE_LOAD"):
                with m.Switch(product_index):
                    for index, (_, multiplicand, multiplier) in enumerate(products):
                        with m.Case(index):
                            m.d.sync += multiply.load(multiplicand, multiplier)
                m.d.sync += step.eq(_QUOTIENT)
                m.next = "SIZE_STEP"
            with m.State("SIZE_STEP"):
                with m.If(step != 0):
                    m.d.sync += [*multiply.step(), step.eq(step - 1)]
                with m.Else():
                    with m.Switch(product_index):
                        for index, (result, _, _) in enumerate(products):
                            with m.Case(index):
                                m.d.sync += result.eq(multiply.product)
                    m.d.sync += product_index.eq(product_index + 1)
                    with m.If(product_index == Mux(weight_grad, _WEIGHT_PRODUCTS - 1,
                                                   _PRODUCTS - 1)):
                        # Backward-weight's columns (R*R*C for X = dZ) are a product: its
                        # column blocks are divided now, and its chunks are the pixels'.
                        with m.If(weight_grad):
                            m.d.sync += [
                                *dividers["blocks"].load(cols + c.col_block - 1, c.col_block),
                                chunks.eq((rows + vec - 1) >> vec_shift),
                                step.eq(_QUOTIENT),
                            ]
                            m.next = "WEIGHT_BLOCKS"
                        with m.Else():
                            m.next = "LIMITS"
                    with m.Else():
                        m.next = "SIZE_LOAD"
            with m.State("WEIGHT_BLOCKS"):
                with m.If(step != 0):
                    m.d.sync += [*dividers["blocks"].step(bit), step.eq(step - 1)]
                with m.Else():
                    m.next = "LIMITS"
            with m.State("LIMITS"):
                with m.If((x_total > core.x_words) | (chunks > c.max_chunks) |
                          (out_height >> _DIM != 0) | (out_width >> _DIM != 0) |
                          (cols > c.max_cols) | ((cols << stride_log2) > c.y_words) |
                          (Mux(weight_grad, rows, reduction) > c.max_reduction()) |
                          (weight_grad & ((chunks > core.row_block_chunks) |
                                     (x_is_dz & (reduction > c.max_cols)))) |
                          (y_words > self.MAX_TRANSFER) | (out_words > self.MAX_TRANSFER) |
                          (weight_grad & (command.psum_in | command.psum_out) &
                           (sum_words > self.MAX_TRANSFER)) |
                          (command.prefetch & ((cols << stride_log2) > c.y_words // 2))):
                    fail(ErrorCode.SHAPE_TOO_LARGE)
                    m.next = "IDLE"
                with m.Elif(pitch_words < col_words):
                    fail(ErrorCode.BAD_PITCH)
                    m.next = "IDLE"
                with m.Elif(keeps_stale):
                    fail(ErrorCode.NOT_HELD)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [read_index.eq(0), x_count.eq(0), y_chunk.eq(0), y_column.eq(0),
                                 a_index.eq(0), assembling.eq(0), y_shift.eq(stride_log2)]
                    m.d.comb += sums_start.eq(1)
                    start = y_loaded + x_loaded + Mux(wants_mask, out_words, 0)
                    m.d.sync += [run_half.eq(keep_half),
                                 prefetch_start.eq(start), prefetch_end.eq(start + y_words),
                                 prefetch_pending.eq(command.prefetch)]
                    # A load overwrites its buffer: it holds nothing until the command is done
                    # (a load may fill both halves), a prefetch the half it loads.
                    with m.If(~command.keep_weights):
                        m.d.sync += [y_valid[0].eq(0), y_valid[1].eq(0)]
                    with m.If(command.prefetch):
                        with m.If(keep_half):
                            m.d.sync += y_valid[0].eq(0)
                        with m.Else():
                            m.d.sync += y_valid[1].eq(0)
                    with m.If(~command.keep_input):
                        m.d.sync += x_valid.eq(0)
                    m.next = "READ_Y"
            def transfer(port, addr, beats, then, *, strided=False):
                """Offer one DMA command; go to state ``then`` once it is taken. ``strided``:
                a row of ``col_words`` words per output pixel, ``pitch_words`` apart (the
                output, and A for the output mask), one row when that is contiguous (the
                bursts then run across pixels); else one contiguous row."""
                row_beats = (Mux(strided & (pitch_words != col_words), col_words, beats)
                             if strided is not False else beats)
                m.d.comb += [port.valid.eq(1), port.payload.addr.eq(addr),
                             port.payload.beats.eq(beats),
                             port.payload.row_beats.eq(row_beats),
                             port.payload.pitch.eq(pitch_words << exact_log2(core.bus_bytes))]
                with m.If(port.ready):
                    m.next = then
            with m.State("READ_Y"):
                with m.If(command.keep_weights | weight_grad):     # backward-weight: gathered
                    m.next = "READ_X"
                with m.Else():
                    transfer(read_cmd, command.w_base, y_words, "READ_X")
            with m.State("READ_X"):
                with m.If(command.keep_input):       # one cycle, as a transfer taken at once
                    m.next = "READ_DZ"
                with m.Else():
                    transfer(read_cmd, x_base, x_words, "READ_DZ")
            with m.State("READ_DZ"):             # backward-weight: dZ behind A
                with m.If(weight_grad):
                    # With A broadcast, a group of output channels: its words of each pixel,
                    # OUT_PITCH apart (the result's rows have the same pitch).
                    transfer(read_cmd, command.dz_base, y_words, "READ_A", strided=~x_is_dz)
                with m.Else():
                    m.next = "READ_A"
            with m.State("READ_A"):
                with m.If(wants_mask):
                    transfer(read_cmd, command.a_base, out_words, "LOADING", strided=True)
                with m.Elif(weight_grad & command.psum_in):    # behind dZ, read in the run
                    transfer(read_cmd, command.psum_base, sum_words, "LOADING")
                with m.Else():
                    m.next = "LOADING"
            with m.State("LOADING"):
                # Backward-weight's gathers read the whole scratchpad: they wait for its load.
                with m.If(read_index == Mux(weight_grad, x_loaded, y_loaded)):
                    m.next = "WRITE"
            with m.State("WRITE"):
                with m.If(weight_grad):
                    # Raw partial sums (psum_out) are one contiguous transfer.
                    transfer(write_cmd, command.out_base,
                             Mux(command.psum_out, sum_words, out_words), "GATHER_Y",
                             strided=~command.psum_out)
                with m.Else():
                    transfer(write_cmd, command.out_base, out_words, "WALK", strided=True)
                m.d.sync += first_row.eq(1)
            # Backward-weight: the Y operand gathered into the Y buffer, then X into the
            # row-block buffer, whose rows run on the tile array.
            gather_a, gather_dz = (Signal(gather.command_layout, name=name)
                                   for name in ("gather_a", "gather_dz"))
            m.d.comb += [
                gather_a.n.eq(command.n), gather_a.c.eq(command.c), gather_a.h.eq(command.h),
                gather_a.w.eq(command.w), gather_a.kernel.eq(command.kernel),
                gather_a.stride.eq(command.stride), gather_a.padding.eq(command.padding),
                gather_a.pad_top.eq(command.pad_top),
                gather_a.pad_bottom.eq(command.pad_bottom),
                gather_a.out_h.eq(out_height), gather_a.out_w.eq(out_width),
                gather_a.base.eq(0),
                gather_dz.n.eq(command.n), gather_dz.c.eq(command.k),
                gather_dz.h.eq(out_height), gather_dz.w.eq(out_width),
                gather_dz.kernel.eq(1), gather_dz.stride.eq(1),
                gather_dz.out_h.eq(out_height), gather_dz.out_w.eq(out_width),
                gather_dz.base.eq(x_words),
            ]
            with m.State("GATHER_Y"):
                m.d.comb += [gather.command.valid.eq(1),
                             gather.command.payload.eq(Mux(x_is_dz, gather_a, gather_dz))]
                with m.If(gather.command.ready):
                    m.d.sync += gathering_y.eq(1)
                    m.next = "LOAD_Y"
            with m.State("LOAD_Y"):
                with m.If(gather.o.valid & gather.o.ready & gathered.last):
                    m.d.sync += gathering_y.eq(0)
                    m.next = "GATHER_X"
            with m.State("GATHER_X"):
                m.d.comb += [gather.command.valid.eq(1),
                             gather.command.payload.eq(Mux(x_is_dz, gather_dz, gather_a))]
                with m.If(gather.command.ready):
                    m.next = "RUN"
            with m.State("WALK"):
                walk = walker.command.payload
                m.d.comb += [
                    walker.command.valid.eq(1),
                    walk.pass_kind.eq(command.pass_kind),
                    walk.n.eq(command.n), walk.c.eq(command.c), walk.h.eq(command.h),
                    walk.w.eq(command.w), walk.k.eq(command.k), walk.kernel.eq(command.kernel),
                    walk.stride.eq(command.stride), walk.padding.eq(command.padding),
                    walk.pad_top.eq(command.pad_top), walk.pad_bottom.eq(command.pad_bottom),
                    walk.out_h.eq(out_height), walk.out_w.eq(out_width),
                    walk.blocks.eq(blocks), walk.base.eq(0),
                ]
                with m.If(walker.command.ready):
                    m.next = "RUN"
            def bus_error():
                fail(ErrorCode.BUS_ERROR)
                m.d.sync += [y_valid[0].eq(0), y_valid[1].eq(0), x_valid.eq(0)]
                m.next = "IDLE"

            def finish():
                """Done: the buffers hold what this command loaded, and prefetched."""
                m.d.comb += fields.done_set.eq(1)
                m.d.sync += [x_valid.eq(~weight_grad), held_inputs.eq(inputs)]
                for h in (0, 1):
                    with m.If(run_half == h):
                        m.d.sync += [y_valid[h].eq(~weight_grad), held_weights[h].eq(weights)]
                    with m.Elif(command.prefetch):
                        m.d.sync += [y_valid[h].eq(1), held_weights[h].eq(prefetched)]
                m.next = "IDLE"
            with m.State("RUN"):
                with m.If(dma.write_done.valid):
                    with m.If(dma.write_done.payload.error | dma.error.read | dma.error.write):
                        bus_error()
                    with m.Elif(prefetch_done):
                        finish()
                    with m.Else():
                        m.next = "PREFETCH"
            with m.State("PREFETCH"):            # the result is written; the weights come
                with m.If(dma.error.read):
                    bus_error()
                with m.Elif(prefetch_done):
                    finish()
        # The prefetch's read command, once the command's own read commands are taken and its
        # X and Y words are in (the DMA's command queue then has room for it).
        with m.If(prefetch_pending & ~loading_y & ~loading_x &
                  Cat(control.ongoing(state) for state in ("LOADING", "WRITE", "WALK", "RUN",
                                                           "PREFETCH")).any()):
            m.d.comb += [read_cmd.valid.eq(1), read_cmd.payload.addr.eq(command.next_w_base),
                         read_cmd.payload.beats.eq(y_words),
                         read_cmd.payload.row_beats.eq(y_words)]
            with m.If(read_cmd.ready):
                m.d.sync += prefetch_pending.eq(0)
        with m.If(~control.ongoing("IDLE") & fields.start):
            fail(ErrorCode.BUSY)
        m.d.comb += [busy.eq(~control.ongoing("IDLE")), fields.busy.eq(busy),
                     self.irq.eq(fields.done | fields.error)]

        # --- performance counters -----------------------------------------------------------
        clear = fields.clear_counters
        m.d.comb += [array.clear.eq(clear), dma.clear.eq(clear), writer.clear.eq(clear)]
        cycles_busy = Signal(64)
        m.d.sync += cycles_busy.eq(Mux(clear, 0, cycles_busy + busy))
        counted = {
            "cycles_busy": cycles_busy,
            "compute_cycles": array.counters.cycles - array.counters.stalls,
            "stall_cycles": array.counters.stalls,
            "macs": array.counters.macs,
            "chunks": array.counters.chunks,
            "outputs": array.counters.outputs,
            "bytes_read": dma.counters.bytes_read,
            "bytes_written": dma.counters.bytes_written,
        }
        assert set(counted) == {name for name, _ in COUNTERS}
        for name, value in counted.items():
            m.d.comb += getattr(fields, name).eq(value)
        return m
