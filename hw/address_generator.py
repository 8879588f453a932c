"""The address generator: walks a conv pass's windows over channel-last tensors and produces the
tile array's row and chunk lists on chip (docs/architecture.md sections 2, 3.1, 4.6 and 8).

It replaces what the host driver computes today (``maskprop.host.driver.ArrayPass``: ``live``,
``live_rows``, ``structure_masks``, ``blocks()``): for every GEMM row and column block, whether
the row has a structural element, and the row's chunks that have one, each with its scratchpad
word address, its position ``index`` along the reduction and its structural mask.

The rows' padding is given as ``pad_top`` and ``pad_bottom``, apart from the columns'
``padding``: a row band of a split pass (``maskprop.host.split.row_band``) is walked as a layer
of the band's rows with its own top and bottom padding, and its windows are then exactly the
whole layer's windows of those rows.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import Config, ceil_log2, check_range
from maskprop.hw.core_registers import Pass

__all__ = ["AddressGenerator", "WalkError", "reciprocal", "walk_cycles", "SETUP_CYCLES",
           "ERROR_CYCLES"]

#: Cycles of a command's setup (one to register the command's fields, 16 for the 14 products
#: through one pipelined multiplier, one to derive the step constants), besides backward-data's
#: pre-steps: with the handshake in cycle 0, the walk starts in cycle ``SETUP_CYCLES + 1``.
SETUP_CYCLES = 18
#: The cycle of ``done`` after an illegal command's handshake (in cycle 0): the setup runs in
#: full, the checks are made at its end.
ERROR_CYCLES = SETUP_CYCLES + 1


class _State(enum.Enum, shape=3):
    IDLE = 0
    SETUP = 1
    MULTIPLY = 2
    FINISH = 3
    PRESTEP = 4
    RUN = 5


class WalkError(enum.Enum, shape=3):
    """Why the address generator refused a command (``error``; sticky until the next command).

    The core's ``ErrorCode`` (hw/core_registers.py) has no code for ``OUTPUT_SIZE``: a wrong
    ``out_h``/``out_w`` is the core's own bug, not the user's."""
    NONE = 0
    BAD_PASS = 1      # pass_kind is not walked here (backward-weight: the window gather's)
    ZERO_DIM = 2      # n, c, h, w, k, kernel, stride, out_h, out_w or blocks is 0
    NO_OUTPUT = 3     # the kernel is larger than the padded image: h + pt + pb < R or w + 2p < R
    OUTPUT_SIZE = 4   # out_h != (h + pt + pb - R) // stride + 1, out_w != (w + 2p - R) // s + 1
    REDUCTION = 5     # R * R * ceil(c / vec) (forward) or R * R * ceil(k / vec) > max_chunks


def reciprocal(divisor: int, bits: int) -> tuple:
    """``(magic, shift)`` with ``(x * magic) >> shift == x // divisor`` for every
    ``0 <= x < 2**bits`` (Granlund and Montgomery, "Division by invariant integers using
    multiplication", 1994, theorem 4.2: ``magic = ceil(2**(bits + l) / divisor)`` with
    ``l = ceil(log2 divisor)``). A power of two gives ``(1, log2 divisor)``: a shift."""
    check_range("divisor", divisor, 1, 1 << 16)
    l = ceil_log2(divisor)
    if divisor == 1 << l:
        return 1, l
    shift = bits + l
    return -(-(1 << shift) // divisor), shift


def walk_cycles(chunks_per_row, blocks: int, pre_steps: int = 0) -> int:
    """The cycle in which ``done`` is high after a legal command's handshake in cycle 0, with
    neither output stream back-pressured: ``SETUP_CYCLES + 3 + pre_steps + blocks * sum_m
    max(1, L_m)``, ``L_m`` the live chunks of GEMM row ``m`` (0 for a dead row; the host's
    ``ArrayPass.live.sum(axis=1)``). ``pre_steps`` is ``max(0, max(pad_top, padding) + 1 - R)``
    for backward-data (``max(0, p + 1 - R)`` for a whole layer), 0 for forward."""
    return SETUP_CYCLES + pre_steps + 3 + blocks * sum(max(1, int(n)) for n in chunks_per_row)


class _Axis:
    """One spatial axis of the walk: the first live kernel tap of the current output row (or
    column) and what it adds to the address and to ``index``, kept incrementally.

    Registers: ``k`` (the first live tap; beyond ``R - 1`` when there is none), ``pos`` (the
    tensor row/column it reads, beyond ``size - 1`` when there is none), ``aoff`` (forward
    ``(s*o - p) * A``, unclamped, :meth:`offset` clamps it; backward-data ``pos * A``), ``qoff``
    (``k * Q``), with ``A`` the axis' word stride and ``Q`` its index stride. ``step()`` moves to
    the next output coordinate ``o``; ``reset()`` reloads the values of ``o = 0``.

    Both offsets are kept modulo ``2**addr_width`` and ``max_chunks``: wherever the axis is live
    their true values are below those (the tensor fits the scratchpad, the reduction the row
    buffer), so the modular sums are exact there, and the sign the forward clamp needs comes
    from ``k`` (``k > 0`` exactly when the window starts in the padding), not from ``aoff``.

    Forward: the window starts at ``s*o - p``; ``k = max(0, p - s*o)``, ``pos = max(0, s*o - p)``.
    Each step: ``k -= s`` while ``k >= s``, else ``k = 0`` and ``pos += s - k``.

    Backward-data: with ``e = o - (R-1-p)`` the dilated position of tap 0, the first live tap is
    the smallest ``k >= 0`` with ``e + k >= 0`` and ``(e + k) % s == 0``, and ``pos`` its
    ``(e + k) / s``. Each step ``e += 1``: ``k -= 1`` while ``k >= 1``, else ``k = s - 1`` and
    ``pos += 1``: the residue of ``e`` modulo ``s`` as a down-counter, no divider.
    """

    def __init__(self, name, kbits, posbits, abits, qbits):
        self.k = Signal(kbits, name=f"{name}_k")
        self.pos = Signal(posbits, name=f"{name}_pos")
        self.aoff = Signal(abits, name=f"{name}_aoff")
        self.qoff = Signal(qbits, name=f"{name}_qoff")
        # The values of output coordinate 0 (reloaded by reset()): each axis has its own, as the
        # rows' padding (a row band's top padding) may differ from the columns'.
        self.init_k = Signal(kbits, name=f"{name}_init_k")
        self.init_pos = Signal(posbits, name=f"{name}_init_pos")
        self.init_aoff = Signal(abits, name=f"{name}_init_aoff")
        self.init_qoff = Signal(qbits, name=f"{name}_init_qoff")
        # Per-command step constants (see step()).
        self.adec = Signal(abits, name=f"{name}_adec")
        self.awrap = Signal(abits, name=f"{name}_awrap")
        self.qdec = Signal(qbits, name=f"{name}_qdec")
        self.qwrap = Signal(qbits, name=f"{name}_qwrap")
        self.size_m1 = Signal(posbits, name=f"{name}_size_m1")

    def next_state(self, fwd, stride, kdec, kwrap):
        """The values after one step: ``(k, pos, aoff, qoff)``."""
        dec = self.k >= kdec
        return (Mux(dec, self.k - kdec, kwrap),
                Mux(dec, self.pos, self.pos + Mux(fwd, stride - self.k, 1)),
                self.aoff + Mux(dec, self.adec, self.awrap),
                Mux(dec, self.qoff - self.qdec, self.qwrap))

    def step(self, fwd, stride, kdec, kwrap):
        k, pos, aoff, qoff = self.next_state(fwd, stride, kdec, kwrap)
        return [self.k.eq(k), self.pos.eq(pos), self.aoff.eq(aoff), self.qoff.eq(qoff)]

    def reset(self):
        return [self.k.eq(self.init_k), self.pos.eq(self.init_pos), self.aoff.eq(self.init_aoff),
                self.qoff.eq(self.init_qoff)]

    def live(self, kernel):
        return (self.k <= kernel - 1) & (self.pos <= self.size_m1)

    def offset(self, fwd):
        """The word offset of the first live tap: forward, 0 while the window starts in the
        padding (``k > 0``)."""
        return Mux(fwd & (self.k != 0), 0, self.aoff)


class AddressGenerator(wiring.Component):
    """Walks the windows of a conv pass and produces, for every GEMM row and column block, the
    row's live chunks (those with a structural element): the lists ``ArrayPass`` builds on the
    host (docs/architecture.md section 2), for the forward and backward-data passes.

    Memory layout (the core's scratchpad, ``maskprop.host.memory_layout``): channel-last,
    channels padded to a multiple of ``vec``, one word per chunk of ``vec`` channels of one
    pixel. Forward reads ``A`` as ``[N][H][W][Cb]`` (``Cb = ceil(C / vec)``), word
    ``base + ((n*H + h)*W + w)*Cb + cb``; backward-data reads ``dZ`` as ``[N][Ho][Wo][Kb]``
    (``Kb = ceil(K / vec)``), word ``base + ((n*Ho + y)*Wo + x)*Kb + kb``.

    Parameters
    ----------
    config : Config
        ``vec`` (chunk width, ``smask``), ``max_chunks`` (``index`` width, the reduction limit),
        ``col_block`` (the width of ``blocks``).
    addr_width : int
        Scratchpad word address bits, 1..64. Addresses (and ``m``) are the layout's formulas
        modulo ``2**addr_width``; the core checks that the tensor fits its scratchpad.
    dim_width : int
        Bits of ``n, c, h, w, k, out_h, out_w`` (and of the row coordinates), 2..32.
    kernel_width, stride_width, padding_width : int
        Bits of ``kernel`` (R), ``stride`` and of ``padding``, ``pad_top`` and ``pad_bottom``,
        1..8 each (8, the core's CONV register fields, by default).

    Ports
    -----
    command : In(stream.Signature(command_layout))
        One beat per pass, taken only while idle (``ready = ~busy``): ``pass_kind``
        (``Pass.FORWARD`` or ``Pass.BACKWARD_DATA``), the layer ``n, c, h, w, k, kernel, stride,
        padding, pad_top, pad_bottom`` (``padding`` pads the columns on both sides, ``pad_top``
        and ``pad_bottom`` the rows above and below: the layer's ``padding`` all three for a
        whole layer, a row band's own for a band), its output size ``out_h, out_w``
        (``(h + pad_top + pad_bottom - kernel) // stride + 1`` and ``(w + 2*padding - kernel) //
        stride + 1``: passed in, the core's command checker computes it; checked here with
        multiplications, no divider; backward-data passes the forward layer's, so ``h`` and
        ``out_h`` are the ``dA`` and ``dZ`` rows), ``blocks`` (column blocks of ``col_block``
        output columns: every row is sent once per block) and ``base`` (word address of the
        tensor read: ``A`` forward, ``dZ`` backward-data).
    rows : Out(stream.Signature(row_layout))
        One beat per GEMM row and column block, rows in order, blocks inner (the host's
        order): ``m`` (the GEMM row), its pixel ``n, y, x`` (forward: the output pixel
        ``(n, y, x)``, ``m = (n*Ho + y)*Wo + x``; backward-data: the input pixel ``(n, h, w)``,
        ``m = (n*H + h)*W + w``), ``block``, ``live`` (the row has at least one structural
        chunk; a dead row has no chunks, its outputs are 0) and ``last`` (the pass's final
        beat).
    chunks : Out(stream.Signature(chunk_layout))
        For each live ``rows`` beat, its live chunks by ascending ``index``: ``addr`` (scratchpad
        word), ``index`` (forward ``(r*R + t)*Cb + cb``; backward-data ``(r'*R + t')*Kb + kb``,
        flipped taps), ``smask`` (the structural mask: all ones, but only the ``C % vec`` (or
        ``K % vec``) low bits on a pixel's last word when that is not 0) and ``last`` (the
        row's final chunk). The two streams are loosely coupled: a row's beat and its chunks
        may be taken in either order, and a row's beat is offered while the row before it
        still sends its chunks (one row ahead, no further); the walker moves on to the next
        row only once the current row's beat is taken.
    busy : Out(1)
        A command is being set up or walked (from the cycle after its handshake to the cycle
        before ``done``).
    done : Out(1)
        One-cycle pulse when a command is finished: every beat taken, or refused.
    error : Out(WalkError)
        Why the last command was refused (``NONE`` if it was not), valid from its ``done`` until
        the next command's handshake. A refused command sends no beat.

    Timing
    ------
    With a command's handshake in cycle 0: ``SETUP_CYCLES`` = 18 setup cycles (the command's
    fields registered, 14 products through one pipelined multiplier, the step constants);
    backward-data then takes ``pre_steps = max(0, max(pad_top, padding) + 1 - R)`` more to find
    the first live tap of output row and column 0 (see below; ``max(0, p + 1 - R)`` when the
    three paddings are the layer's ``p``). Then one cycle per live chunk and one per dead row
    beat: a row beat costs ``max(1, L)`` cycles, ``L`` its live chunks, and dead kernel taps
    cost nothing (only the rectangle of live taps is walked). Unstalled, ``done`` is high in cycle
    :func:`walk_cycles` ``= SETUP_CYCLES + 3 + pre_steps + blocks * sum_m max(1, L_m)``. Beat by
    beat: with row beats ``j`` in stream order (``blocks`` per GEMM row),
    ``S_0 = SETUP_CYCLES + 3 + pre_steps`` and ``S_{j+1} = S_j + max(1, L_j)``, row ``j``'s
    chunks are taken in cycles ``S_j .. S_j + L_j - 1`` (no bubble across rows and blocks) and
    its rows beat in cycle ``S_{j-1}`` (row 0's in ``S_0 - 1``). With backpressure each beat
    waits for its own stream's ready only. A refused command: ``done`` in cycle
    ``ERROR_CYCLES`` = 19 (the checks are made at the end of the setup).

    Design
    ------
    No divider, and no multiplier on the per-cycle path. A command's setup computes, one product
    per cycle through a single multiplier with registered operands and product (a product's
    operands may be earlier products): ``ceil(C / vec)`` (a multiplication by a constant
    reciprocal, :func:`reciprocal`; a shift when ``vec`` is a power of two), the word strides
    (a tensor row ``W*Cb``, an image ``H*W*Cb``; backward-data ``Wo*Kb``, ``Ho*Wo*Kb``), the
    index stride of a kernel row ``R*Cb``, their multiples by ``stride`` and by the first tap of
    output 0 (the rows' and the columns' own), and the checks' ``out_h * stride``, ``R*R*Cb``,
    ``(Cb - 1) * vec`` (the tail). The walk then only adds and compares:

    - the row sequencer steps ``(n, y, x, block)`` and keeps, per spatial axis (:class:`_Axis`),
      the first live tap, the tensor position it reads and its address and index offsets,
      updated by additions as ``y`` or ``x`` advance: forward clamps the window at the image
      border, backward-data keeps the position's residue modulo ``stride`` as a down-counter
      (the live taps of the dilated ``dZ`` are every ``stride``-th);
    - the chunk walker runs over the live taps only: ``cb`` inner, then the taps of a kernel
      row (``t``, step 1 forward, ``stride`` backward-data: the words stay contiguous, so the
      address just counts up), then the kernel rows; a run ends when the next tap would leave
      the kernel or the tensor.

    A third walk (backward-weight) adds its own setup constants and, since its reduction runs
    over pixels, its own chunk walker; ``pass_kind`` already carries ``Pass.BACKWARD_WEIGHT``
    (refused today: ``BAD_PASS``).
    """

    def __init__(self, config: Config, *, addr_width: int = 24, dim_width: int = 16,
                 kernel_width: int = 8, stride_width: int = 8, padding_width: int = 8):
        if not isinstance(config, Config):
            raise ValueError(f"config must be a Config, not {config!r}")
        self._config = config
        self._addr_width = check_range("addr_width", addr_width, 1, 64)
        self._dim_width = check_range("dim_width", dim_width, 2, 32)
        self._kernel_width = check_range("kernel_width", kernel_width, 1, 8)
        self._stride_width = check_range("stride_width", stride_width, 1, 8)
        self._padding_width = check_range("padding_width", padding_width, 1, 8)
        super().__init__({
            "command": In(stream.Signature(self.command_layout)),
            "rows": Out(stream.Signature(self.row_layout)),
            "chunks": Out(stream.Signature(self.chunk_layout)),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(WalkError),
        })

    config = property(lambda self: self._config)
    addr_width = property(lambda self: self._addr_width)
    dim_width = property(lambda self: self._dim_width)
    kernel_width = property(lambda self: self._kernel_width)
    stride_width = property(lambda self: self._stride_width)
    padding_width = property(lambda self: self._padding_width)

    @property
    def parameters(self) -> dict:
        """The keyword arguments besides ``config`` (``AddressGenerator(config,
        **gen.parameters)`` builds the same block)."""
        return dict(addr_width=self._addr_width, dim_width=self._dim_width,
                    kernel_width=self._kernel_width, stride_width=self._stride_width,
                    padding_width=self._padding_width)

    @property
    def generator_key(self):
        """Everything the generated Verilog depends on (it caches by this)."""
        return (type(self).__qualname__, self._config, tuple(sorted(self.parameters.items())))

    @property
    def block_width(self) -> int:
        """Bits of ``blocks`` and ``block``: enough for ``ceil((2**dim_width - 1) / col_block)``."""
        most = -(-((1 << self._dim_width) - 1) // self._config.col_block)
        return max(1, ceil_log2(most + 1))

    @property
    def index_width(self) -> int:
        """Bits of ``index``: the tile array's (``x_chunk_layout``)."""
        return max(1, ceil_log2(self._config.max_chunks))

    @property
    def command_layout(self) -> data.StructLayout:
        dim = self._dim_width
        return data.StructLayout({
            "pass_kind": Pass,
            "n": dim, "c": dim, "h": dim, "w": dim, "k": dim,
            "kernel": self._kernel_width, "stride": self._stride_width,
            "padding": self._padding_width,
            "pad_top": self._padding_width, "pad_bottom": self._padding_width,
            "out_h": dim, "out_w": dim,
            "blocks": self.block_width,
            "base": self._addr_width,
        })

    @property
    def row_layout(self) -> data.StructLayout:
        dim = self._dim_width
        return data.StructLayout({
            "m": self._addr_width, "n": dim, "y": dim, "x": dim,
            "block": self.block_width, "live": 1, "last": 1,
        })

    @property
    def chunk_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "addr": self._addr_width, "index": self.index_width, "smask": self._config.vec,
            "last": 1,
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config
        vec = c.vec
        aw, dw = self._addr_width, self._dim_width
        kw, sw, pw = self._kernel_width, self._stride_width, self._padding_width
        small = max(kw, sw, pw)
        kbits = small + 1                         # first taps, kernel counters
        posbits = max(dw, small) + 2              # tensor positions
        qbits = self.index_width                  # indices, modulo max_chunks

        cmd = Signal(self.command_layout)
        fwd = Signal()
        err = Signal(WalkError)
        m.d.comb += [self.error.eq(err)]

        # --- per-command constants (setup) --------------------------------------------------
        kernel, stride, padding = cmd.kernel, cmd.stride, cmd.padding   # padding: columns
        pad_top, pad_bottom = cmd.pad_top, cmd.pad_bottom                # the rows' padding
        size_row, size_col = Signal(dw), Signal(dw)   # the tensor read: H, W or Ho, Wo
        channels = Signal(dw)                     # the reduced channels: C or K
        cpp = Signal(dw)                          # chunks per pixel: Cb or Kb
        cpp_m1 = Signal(dw)
        tail_vec = Signal(dw + 7)                 # (cpp - 1) * vec
        tail_mask = Signal(vec)                   # smask of a pixel's last word
        q_row = Signal(kw + dw)                   # R * cpp, full width (for the check)
        a_row = Signal(aw)                        # words per tensor row: W*Cb or Wo*Kb
        image = Signal(aw)                        # words per image
        # Per axis: its leading padding (forward) or the first tap of output 0 (backward-data).
        row_factor, col_factor = Signal(kbits), Signal(kbits)
        s_cpp, f_cpp = Signal(max(aw, qbits)), Signal(max(aw, qbits))
        s_arow, f_arow = Signal(aw), Signal(aw)
        s_qrow, f_qrow = Signal(qbits), Signal(qbits)
        reduction = Signal(2 * kw + dw)           # R * R * cpp
        out_h_s, out_w_s = Signal(dw + sw), Signal(dw + sw)
        kdec, kwrap = Signal(kbits), Signal(kbits)
        kstep = Signal(kbits)                     # tap step inside a window: 1 or stride
        klim = Signal(signed(kbits + 2))          # a run ends on a tap k >= kernel - kstep
        qtap_skip = Signal(qbits)                 # index step from a tap's last word to the next
        qrow_step = Signal(qbits)                 # index step from one kernel row to the next
        # Backward-data's pre-steps left, per axis (rows: pad_top, columns: padding).
        row_pre, col_pre = Signal(pw + 1), Signal(pw + 1)
        out_rows_m1, out_cols_m1 = Signal(dw), Signal(dw)
        row_axis = _Axis("row", kbits, posbits, aw, qbits)
        col_axis = _Axis("col", kbits, posbits, aw, qbits)
        # Backward-data: the dilated position of tap 0 at output coordinate 0, columns (e0) and
        # rows (e0_top: a row band's top padding replaces the layer's).
        e0 = Signal(signed(max(kw, pw) + 2))
        e0_top = Signal(signed(max(kw, pw) + 2))
        m.d.comb += [e0.eq(padding + 1 - kernel), e0_top.eq(pad_top + 1 - kernel)]

        # The products, through one multiplier with registered operands and product, one per
        # cycle: (destination, operand a, operand b). A product is written two cycles after its
        # operands are, so each one's operands come from products at least three steps earlier.
        magic, shift = reciprocal(vec, dw + 1)   # ceil(channels / vec) = (channels+vec-1) // vec
        products = [
            (cpp, channels + (vec - 1), magic),
            (out_h_s, cmd.out_h, stride),
            (out_w_s, cmd.out_w, stride),
            (a_row, size_col, cpp),
            (q_row, kernel, cpp),
            (s_cpp, stride, cpp),
            (f_cpp, col_factor, cpp),
            (image, size_row, a_row),
            (s_arow, stride, a_row),
            (f_arow, row_factor, a_row),
            (reduction, kernel, q_row),
            (s_qrow, stride, q_row),
            (f_qrow, row_factor, q_row),
            (tail_vec, cpp - 1, vec),
        ]
        mul_a = Signal(dw + 1)
        mul_b = Signal(max(aw, kw + dw, magic.bit_length(), sw, vec.bit_length()))
        product = Signal(len(mul_a) + len(mul_b))
        mul_step = Signal(range(len(products) + 2))
        m.d.sync += product.eq(mul_a * mul_b)

        # --- errors (decided in FINISH, from registers) ---------------------------------------
        def output_size_ok(size, pads, out_s):
            span = size + pads                             # the padded extent
            return (out_s - stride + kernel <= span) & (span < out_s + kernel)

        early_error = Signal(WalkError)           # what needs no product
        final_error = Signal(WalkError)
        zero = ((cmd.n == 0) | (cmd.c == 0) | (cmd.h == 0) | (cmd.w == 0) | (cmd.k == 0) |
                (kernel == 0) | (stride == 0) | (cmd.out_h == 0) | (cmd.out_w == 0) |
                (cmd.blocks == 0))
        no_output = (cmd.h + pad_top + pad_bottom < kernel) | (cmd.w + 2 * padding < kernel)
        with m.If((cmd.pass_kind != Pass.FORWARD) & (cmd.pass_kind != Pass.BACKWARD_DATA)):
            m.d.comb += early_error.eq(WalkError.BAD_PASS)
        with m.Elif(zero):
            m.d.comb += early_error.eq(WalkError.ZERO_DIM)
        with m.Elif(no_output):
            m.d.comb += early_error.eq(WalkError.NO_OUTPUT)
        setup_error = Signal(WalkError)
        # Registered every cycle: their products are written at least two cycles before FINISH.
        size_bad, reduction_big = Signal(), Signal()
        m.d.sync += [
            size_bad.eq(~output_size_ok(cmd.h, pad_top + pad_bottom, out_h_s) |
                        ~output_size_ok(cmd.w, 2 * padding, out_w_s)),
            reduction_big.eq(reduction > c.max_chunks),
        ]
        with m.If(setup_error != WalkError.NONE):
            m.d.comb += final_error.eq(setup_error)
        with m.Elif(size_bad):
            m.d.comb += final_error.eq(WalkError.OUTPUT_SIZE)
        with m.Elif(reduction_big):
            m.d.comb += final_error.eq(WalkError.REDUCTION)

        # --- the row sequencer ------------------------------------------------------------------
        n_i, oy, ox = Signal(dw), Signal(dw), Signal(dw)
        block = Signal(self.block_width)
        row_index = Signal(aw)
        img = Signal(aw)                          # first word of the current image
        seq_more = Signal()                       # descriptors left to produce
        running = Signal()

        desc_layout = data.StructLayout({
            "row": self.row_layout,
            "addr": aw, "q": qbits,
            "kr": kbits, "posr": posbits, "kt": kbits, "post": posbits,
        })
        seq_desc = Signal(desc_layout)
        last_block = block == cmd.blocks - 1
        last_x = ox == out_cols_m1
        last_y = oy == out_rows_m1
        last_n = n_i == cmd.n - 1

        m.d.comb += [
            seq_desc.row.m.eq(row_index),
            seq_desc.row.n.eq(n_i),
            seq_desc.row.y.eq(oy),
            seq_desc.row.x.eq(ox),
            seq_desc.row.block.eq(block),
            seq_desc.row.live.eq(row_axis.live(kernel) & col_axis.live(kernel)),
            seq_desc.row.last.eq(last_block & last_x & last_y & last_n),
            seq_desc.addr.eq(img + row_axis.offset(fwd) + col_axis.offset(fwd)),
            seq_desc.q.eq(row_axis.qoff + col_axis.qoff),
            seq_desc.kr.eq(row_axis.k),
            seq_desc.posr.eq(row_axis.pos),
            seq_desc.kt.eq(col_axis.k),
            seq_desc.post.eq(col_axis.pos),
        ]

        # --- the pending row: its rows beat and its walk --------------------------------------
        pend = Signal(desc_layout)
        pend_valid, pend_sent, pend_taken = Signal(), Signal(), Signal()

        # --- the chunk walker -----------------------------------------------------------------
        active = Signal()
        cb = Signal(dw)
        kt, post, kr, posr = Signal(kbits), Signal(posbits), Signal(kbits), Signal(posbits)
        kt0, post0 = Signal(kbits), Signal(posbits)
        addr, addr_r = Signal(aw), Signal(aw)
        q, q_r = Signal(qbits), Signal(qbits)
        cb_end = cb == cpp_m1
        t_end = (kt >= klim) | (post == col_axis.size_m1)
        r_end = (kr >= klim) | (posr == row_axis.size_m1)
        chunk_last = cb_end & t_end & r_end
        m.d.comb += [
            self.chunks.valid.eq(active),
            self.chunks.payload.addr.eq(addr),
            self.chunks.payload.index.eq(q),
            self.chunks.payload.smask.eq(Mux(cb_end, tail_mask, Const((1 << vec) - 1, vec))),
            self.chunks.payload.last.eq(chunk_last),
            self.rows.valid.eq(pend_valid & ~pend_sent),
            self.rows.payload.eq(pend.row),
        ]
        chunk_fire = self.chunks.valid & self.chunks.ready
        walker_free = ~active | (chunk_fire & chunk_last)
        take = pend_valid & ~pend_taken & walker_free
        rows_fire = self.rows.valid & self.rows.ready
        row_done = pend_sent | rows_fire
        walk_done = pend_taken | take
        pend_free = ~pend_valid | (row_done & walk_done)
        seq_load = running & seq_more & pend_free
        finished = running & ~seq_more & ~pend_valid & walker_free

        with m.If(chunk_fire):
            with m.If(~cb_end):
                m.d.sync += [cb.eq(cb + 1), addr.eq(addr + 1), q.eq(q + 1)]
            with m.Elif(~t_end):
                # The next tap of this kernel row: the next pixel, so the next word.
                m.d.sync += [cb.eq(0), addr.eq(addr + 1), q.eq(q + qtap_skip),
                             kt.eq(kt + kstep), post.eq(post + 1)]
            with m.Elif(~r_end):
                m.d.sync += [cb.eq(0), kt.eq(kt0), post.eq(post0),
                             kr.eq(kr + kstep), posr.eq(posr + 1),
                             addr_r.eq(addr_r + a_row), addr.eq(addr_r + a_row),
                             q_r.eq(q_r + qrow_step), q.eq(q_r + qrow_step)]
            with m.Else():
                m.d.sync += active.eq(0)
        with m.If(take):
            m.d.sync += [
                active.eq(pend.row.live),
                cb.eq(0),
                kt.eq(pend.kt), post.eq(pend.post), kt0.eq(pend.kt), post0.eq(pend.post),
                kr.eq(pend.kr), posr.eq(pend.posr),
                addr.eq(pend.addr), addr_r.eq(pend.addr),
                q.eq(pend.q), q_r.eq(pend.q),
            ]

        with m.If(rows_fire):
            m.d.sync += pend_sent.eq(1)
        with m.If(take):
            m.d.sync += pend_taken.eq(1)
        with m.If(pend_valid & row_done & walk_done):
            m.d.sync += pend_valid.eq(0)
        with m.If(seq_load):
            m.d.sync += [pend_valid.eq(1), pend.eq(seq_desc), pend_sent.eq(0),
                         pend_taken.eq(0)]
            with m.If(~last_block):
                m.d.sync += block.eq(block + 1)
            with m.Else():
                m.d.sync += [block.eq(0), row_index.eq(row_index + 1)]
                with m.If(~last_x):
                    m.d.sync += [ox.eq(ox + 1), *col_axis.step(fwd, stride, kdec, kwrap)]
                with m.Else():
                    m.d.sync += [ox.eq(0), *col_axis.reset()]
                    with m.If(~last_y):
                        m.d.sync += [oy.eq(oy + 1), *row_axis.step(fwd, stride, kdec, kwrap)]
                    with m.Else():
                        m.d.sync += [oy.eq(0), *row_axis.reset(),
                                     n_i.eq(n_i + 1), img.eq(img + image)]
                        with m.If(last_n):
                            m.d.sync += seq_more.eq(0)

        # --- control ----------------------------------------------------------------------------
        m.d.sync += self.done.eq(0)
        state = Signal(_State)
        with m.Switch(state):
            with m.Case(_State.IDLE):
                m.d.comb += self.command.ready.eq(1)
                with m.If(self.command.valid):
                    m.d.sync += [cmd.eq(self.command.payload), err.eq(WalkError.NONE),
                                 fwd.eq(self.command.payload.pass_kind == Pass.FORWARD)]
                    m.d.sync += state.eq(_State.SETUP)
            with m.Case(_State.SETUP):
                # What the command gives without a product; the first taps of output 0.
                m.d.sync += [
                    size_row.eq(Mux(fwd, cmd.h, cmd.out_h)),
                    size_col.eq(Mux(fwd, cmd.w, cmd.out_w)),
                    channels.eq(Mux(fwd, cmd.c, cmd.k)),
                    row_axis.size_m1.eq(Mux(fwd, cmd.h, cmd.out_h) - 1),
                    col_axis.size_m1.eq(Mux(fwd, cmd.w, cmd.out_w) - 1),
                    out_rows_m1.eq(Mux(fwd, cmd.out_h, cmd.h) - 1),
                    out_cols_m1.eq(Mux(fwd, cmd.out_w, cmd.w) - 1),
                    setup_error.eq(early_error),
                    kdec.eq(Mux(fwd, stride, 1)),
                    kwrap.eq(Mux(fwd, 0, stride - 1)),
                    kstep.eq(Mux(fwd, 1, stride)),
                    klim.eq(kernel - Mux(fwd, 1, stride)),
                    row_pre.eq(Mux(~fwd & (e0_top > 0), e0_top, 0)),
                    col_pre.eq(Mux(~fwd & (e0 > 0), e0, 0)),
                    # Forward: k = p at output 0. Backward-data: R - 1 - p, or 0 before the
                    # pre-steps when p > R - 1. The offsets of output 0 are k times the strides
                    # (forward: minus p times the word strides). p is pad_top on rows.
                    col_axis.init_k.eq(Mux(fwd, padding, Mux(e0 > 0, 0, kernel - 1 - padding))),
                    col_factor.eq(Mux(fwd, padding, Mux(e0 > 0, 0, kernel - 1 - padding))),
                    row_axis.init_k.eq(Mux(fwd, pad_top, Mux(e0_top > 0, 0,
                                                             kernel - 1 - pad_top))),
                    row_factor.eq(Mux(fwd, pad_top, Mux(e0_top > 0, 0, kernel - 1 - pad_top))),
                    row_axis.init_pos.eq(0), col_axis.init_pos.eq(0),
                    mul_step.eq(0),
                ]
                m.d.sync += state.eq(_State.MULTIPLY)
            with m.Case(_State.MULTIPLY):
                with m.Switch(mul_step):
                    for index, (_, a, b) in enumerate(products):
                        with m.Case(index):
                            m.d.sync += [mul_a.eq(a), mul_b.eq(b)]
                with m.Switch(mul_step):
                    for index, (destination, _, _) in enumerate(products):
                        with m.Case(index + 2):
                            value = product >> shift if destination is cpp else product
                            m.d.sync += destination.eq(value)
                m.d.sync += mul_step.eq(mul_step + 1)
                with m.If(mul_step == len(products) + 1):
                    m.d.sync += state.eq(_State.FINISH)
            with m.Case(_State.FINISH):
                # The step constants from the products; start the walk (or refuse).
                tail = Signal(range(vec + 1))
                m.d.comb += tail.eq(channels - tail_vec)
                with m.If(final_error != WalkError.NONE):
                    m.d.sync += [err.eq(final_error), self.done.eq(1), state.eq(_State.IDLE)]
                with m.Elif((row_pre != 0) | (col_pre != 0)):
                    m.d.sync += state.eq(_State.PRESTEP)
                with m.Else():
                    m.d.sync += state.eq(_State.RUN)
                col_init_aoff = Mux(fwd, -f_cpp, 0)
                row_init_aoff = Mux(fwd, -f_arow, 0)
                m.d.sync += [
                    cpp_m1.eq(cpp - 1),
                    tail_mask.eq(Cat(e < tail for e in range(vec))),
                    qtap_skip.eq(Mux(fwd, 1, s_cpp - cpp + 1)),
                    qrow_step.eq(Mux(fwd, q_row, s_qrow)),
                    col_axis.adec.eq(Mux(fwd, s_cpp, 0)),
                    col_axis.awrap.eq(Mux(fwd, s_cpp, cpp)),
                    col_axis.qdec.eq(Mux(fwd, s_cpp, cpp)),
                    col_axis.qwrap.eq(Mux(fwd, 0, s_cpp - cpp)),
                    col_axis.init_aoff.eq(col_init_aoff),
                    col_axis.init_qoff.eq(f_cpp),
                    row_axis.adec.eq(Mux(fwd, s_arow, 0)),
                    row_axis.awrap.eq(Mux(fwd, s_arow, a_row)),
                    row_axis.qdec.eq(Mux(fwd, s_qrow, q_row)),
                    row_axis.qwrap.eq(Mux(fwd, 0, s_qrow - q_row)),
                    row_axis.init_aoff.eq(row_init_aoff),
                    row_axis.init_qoff.eq(f_qrow),
                    # The trackers at output row and column 0.
                    row_axis.k.eq(row_axis.init_k), row_axis.pos.eq(row_axis.init_pos),
                    row_axis.aoff.eq(row_init_aoff), row_axis.qoff.eq(f_qrow),
                    col_axis.k.eq(col_axis.init_k), col_axis.pos.eq(col_axis.init_pos),
                    col_axis.aoff.eq(col_init_aoff), col_axis.qoff.eq(f_cpp),
                    # The sequencer and the walker.
                    n_i.eq(0), oy.eq(0), ox.eq(0), block.eq(0), row_index.eq(0),
                    img.eq(cmd.base), seq_more.eq(1),
                    pend_valid.eq(0), active.eq(0),
                ]
            with m.Case(_State.PRESTEP):
                # Backward-data with padding > R - 1: tap 0 of output 0 sits at dilated position
                # e0 = p + 1 - R > 0 (rows: pad_top + 1 - R). An axis' tracker starts at e = 0
                # (first live tap 0, position 0) and steps e0 times, one per cycle: the residue
                # of e0 modulo the stride without a divider. What it reaches is the state of
                # output coordinate 0. The axes step together, each its own count: the phase
                # lasts max(row_pre, col_pre) cycles.
                for axis, left in ((row_axis, row_pre), (col_axis, col_pre)):
                    k_next, pos_next, aoff_next, qoff_next = axis.next_state(fwd, stride, kdec,
                                                                            kwrap)
                    with m.If(left != 0):
                        m.d.sync += [*axis.step(fwd, stride, kdec, kwrap),
                                     axis.init_k.eq(k_next), axis.init_pos.eq(pos_next),
                                     axis.init_aoff.eq(aoff_next), axis.init_qoff.eq(qoff_next),
                                     left.eq(left - 1)]
                with m.If((row_pre <= 1) & (col_pre <= 1)):
                    m.d.sync += state.eq(_State.RUN)
            with m.Default():                  # RUN (and the unused encodings)
                m.d.comb += running.eq(1)
                with m.If(finished):
                    m.d.sync += self.done.eq(1)
                    m.d.sync += state.eq(_State.IDLE)
        m.d.comb += self.busy.eq(~self.command.ready)
        return m
