"""The window gather: backward-weight's operand generator for the ``"a"`` orientation.

It reads a channel-last tensor from the scratchpad, one word (``vec`` channels of one pixel) per
cycle, walks it through every kernel tap's window, corner-turns blocks of ``vec`` pixels with
the :class:`~maskprop.hw.transposer.BlockTransposer` and emits pixel-fast words: the rows of
``im2col(A)^T`` cut into chunks of ``vec`` output pixels, exactly
``maskprop.sim.lowering.lower_backward_weight(layer, dZ, A, "a", vec=vec)``'s ``X`` and
``structure``. With kernel 1, stride 1 and no padding on the ``dZ`` tensor it gives the ``"dz"``
orientation's ``X = dZ^T``. A standalone building block for now: the core does not instantiate
it yet.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Assert
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from maskprop.base.config import Config, check_range, container_bits
from maskprop.hw.address_generator import reciprocal
from maskprop.hw.layouts import chunk_layout, word_elements
from maskprop.hw.transposer import BlockTransposer

__all__ = ["WindowGather", "SETUP_CYCLES", "gather_cycles", "gather_word_layout"]

#: Setup cycles after the command's handshake (cycle 0): the 9 products through one
#: multiplier with registered operands, two cycles each (operands, then product), then one to
#: derive the start values; the first word is read in cycle ``SETUP_CYCLES + 1``.
SETUP_CYCLES = 19
#: Cycles from the read of a block's last word to its first output word (the memory's
#: registered read, then the transposer's latency).
PIPELINE_CYCLES = 2


class _State(enum.Enum, shape=2):
    IDLE = 0
    SETUP = 1
    RUN = 2
    DRAIN = 3


def gather_cycles(vec: int, kernel: int, channels: int, pixels: int) -> int:
    """The cycle in which the command's last word (``last``) leaves, the command's handshake
    in cycle 0 and ``o`` never stalled: ``SETUP_CYCLES + PIPELINE_CYCLES + vec * B + tail``,
    ``B = R * R * Cb * Q`` the blocks, ``Cb = ceil(C / vec)``, ``Q = ceil(P / vec)`` and
    ``tail = C - 1 - (Cb - 1) * vec`` the last channel's position in its block. Word ``e`` of
    block ``b`` (in the output order) leaves in cycle ``SETUP_CYCLES + PIPELINE_CYCLES + vec *
    (b + 1) + e``: block ``b``'s words are read in cycles ``SETUP_CYCLES + 1 + vec * b ..
    SETUP_CYCLES + vec * (b + 1)``."""
    cb = -(-channels // vec)
    q = -(-pixels // vec)
    tail = channels - 1 - (cb - 1) * vec
    return SETUP_CYCLES + PIPELINE_CYCLES + vec * kernel * kernel * cb * q + tail


def gather_word_layout(config: Config, index_width: int) -> data.StructLayout:
    """One word of the window gather's ``o`` stream (``WindowGather.word_layout``, whose
    ``index_width`` is ``3 * dim_width + 16``): ``data`` (``vec`` signed
    elements), ``smask`` (``vec`` bits), ``row``, ``chunk`` (``index_width`` bits each) and
    ``last``."""
    return data.StructLayout({
        "data": chunk_layout(config.vec, config.data_width),
        "smask": config.vec,
        "row": index_width,
        "chunk": index_width,
        "last": 1,
    })


class WindowGather(wiring.Component):
    """Reads a channel-last tensor window by window and emits backward-weight's pixel-fast
    ``X`` words (``im2col(A)^T`` in chunks of ``vec`` output pixels).

    Parameters
    ----------
    config : Config
        ``vec`` (elements per word) and ``data_width`` (bits of a signed element; in memory
        each element takes ``container_bits(data_width)`` bits, its value in the low bits).
    addr_width : int
        Bits of a scratchpad word address, 1..64.
    dim_width : int
        Bits of ``n``, ``c``, ``h``, ``w``, ``out_h`` and ``out_w``, 2..24. ``kernel``,
        ``stride`` and the paddings take 8 bits.

    Ports
    -----
    command : In(stream.Signature(command_layout))
        ``n, c, h, w`` (the tensor), ``kernel, stride, padding, pad_top, pad_bottom`` (the
        layer's window; ``padding`` on the columns, ``pad_top`` above the rows), ``out_h,
        out_w`` (the output size) and ``base`` (the tensor's first word). Taken only when idle
        (``ready`` is ``~busy``). The command must be legal: every dimension at least 1, the
        kernel fitting the padded tensor, ``out_h = (h + pad_top + pad_bottom - kernel) //
        stride + 1`` and ``out_w = (w + 2 * padding - kernel) // stride + 1``, the tensor inside
        the address space. The core checks these (as it passes ``out_h``/``out_w`` to the
        address generator); the window gather does not. ``pad_bottom`` only enters through
        ``out_h``.
    read : In(memory.ReadPort.Signature(addr_width=addr_width, shape=unsigned(vec * container)))
        Connects (``wiring.connect``) to a ``memory.Memory(...).read_port()`` of that address
        width: the memory's port is ``ReadPort.Signature`` itself (it takes ``en`` and ``addr``
        and gives ``data``), so its user holds the flipped signature, ``In``. A registered
        (synchronous) read port of the scratchpad: ``data`` is the word at the
        ``addr`` of the cycle before, when ``en`` was high, and holds while ``en`` is low. Word
        ``base + ((n*H + iy)*W + ix)*Cb + cb`` holds channels ``cb*vec .. cb*vec + vec - 1`` of
        pixel ``(n, iy, ix)``, ``Cb = ceil(C / vec)``; element ``e`` in bits ``e * container``
        upwards.
    o : Out(stream.Signature(word_layout))
        ``data`` (``vec`` signed elements, element ``i`` the value of output pixel ``q*vec + i``
        at the word's tap and channel, 0 for padding and for pixels beyond ``P``), ``smask``
        (bit ``i`` set iff that pixel exists and its tap is inside the tensor: the structure),
        ``row`` (the im2col column ``(r*R + t)*C + c``), ``chunk`` (``q``) and ``last`` (the
        command's final word). Order: tap ``r``, tap ``t``, channel block ``cb``, chunk ``q``,
        channel ``c = cb*vec + e`` (only ``c < C``), outermost first.
    busy : Out(1)
        A command is being set up, read or drained.

    Operation
    ---------
    Setup: the command is registered at its handshake, then one multiplier with registered
    operands forms, one product every two cycles (operands, then the product stored), ``Cb`` (``ceil(C / vec)`` by a reciprocal), ``W*Cb``, ``s*Cb``, ``p*Cb``,
    ``s*W*Cb``, ``H*W*Cb``, ``pad_top*W*Cb``, ``R*R`` and ``Cb*vec``; one more cycle derives
    the start values.

    The reader walks tap ``r``, tap ``t``, channel block ``cb``, then every output pixel ``(n,
    y, x)`` in row-major order and pads the last chunk with pixels beyond ``P`` up to a multiple
    of ``vec``. It keeps the position ``(iy, ix)`` and the word address incrementally: the next
    column adds ``s`` and ``s*Cb``, the next row ``s`` and ``s*W*Cb`` (from the row's first
    address), the next image ``H*W*Cb`` (from the image's first address); the next channel
    block adds 1 to the start address, the next ``t`` ``Cb``, the next ``r`` ``W*Cb`` (the start
    address ``base - (pad_top*W + p)*Cb + (r*W + t)*Cb + cb`` is kept modulo
    ``2**addr_width``: wherever the position is inside the tensor the modular address is the
    true one). An inside position is read from memory; a padding position or a pixel beyond
    ``P`` reads nothing and goes in as an all-zero word. The per-cycle path has adders and
    comparators only.

    The words go through one stage (the registered read; ``en`` is low while the stage is held,
    so the read data holds too) into the transposer, ``vec`` words of consecutive pixels per
    block; its output word ``e`` of a block is channel ``cb*vec + e`` of the block's ``vec``
    pixels. Each block's structural mask (one bit per pixel, built as its words are read) and
    whether it is its channel block's last chunk go into a 4-entry ``SyncFIFO`` beside it (the
    reader waits while it is full; unstalled it never is, as the cycle count shows). At the
    output, counters of ``e``, ``q``, ``cb`` and ``(r, t)`` give ``row``, ``chunk`` and
    ``last``; the words of channels ``>= C`` (``e`` beyond the last block's tail) are taken
    from the transposer and dropped.

    Latency and throughput
    ----------------------
    The reader reads (or inserts a zero word) in every cycle from cycle ``SETUP_CYCLES + 1 =
    20`` after the command's handshake (cycle 0) while ``o`` is not stalled: ``R*R*Cb*Q*vec``
    words in as many cycles, no bubble between blocks, chunks, channel blocks or taps. A
    block's first output word leaves ``PIPELINE_CYCLES = 2`` cycles after its last word was
    read (the memory's register, then the transposer's latency 1), the words of a block in
    consecutive cycles: one word per cycle out, where a dropped channel (``>= C``, only in the
    last channel block) takes a cycle with ``o.valid`` low. Unstalled, ``last`` is valid in
    cycle :func:`gather_cycles` ``= SETUP_CYCLES + PIPELINE_CYCLES + R*R*Cb*Q*vec + tail =
    21 + R*R*Cb*Q*vec + tail`` (``tail = C - 1 - (Cb - 1)*vec``), and ``busy`` is low (and
    ``command.ready`` high) from cycle ``21 + R*R*Cb*Q*vec + vec``, when the last block's
    dropped channels are gone. Backpressure on ``o`` stalls the transposer, then the read
    stage, then the reader; no word is lost, duplicated or reordered. ``o.valid`` does not
    depend on ``o.ready``.
    """

    def __init__(self, config: Config, *, addr_width: int = 24, dim_width: int = 16):
        if not isinstance(config, Config):
            raise ValueError(f"config must be a Config, not {config!r}")
        self._config = config
        self._addr_width = check_range("addr_width", addr_width, 1, 64)
        self._dim_width = check_range("dim_width", dim_width, 2, 24)
        self._container = container_bits(config.data_width)
        super().__init__({
            "command": In(stream.Signature(self.command_layout)),
            # In: the memory's read port has this signature (it takes en and addr, gives
            # data); the gather is its user, so it holds the flipped signature.
            "read": In(memory.ReadPort.Signature(
                addr_width=addr_width, shape=unsigned(config.vec * self._container))),
            "o": Out(stream.Signature(self.word_layout)),
            "busy": Out(1),
        })

    config = property(lambda self: self._config)
    addr_width = property(lambda self: self._addr_width)
    dim_width = property(lambda self: self._dim_width)
    container = property(lambda self: self._container)

    @property
    def command_layout(self) -> data.StructLayout:
        dw = self._dim_width
        return data.StructLayout({
            "n": dw, "c": dw, "h": dw, "w": dw,
            "kernel": 8, "stride": 8, "padding": 8, "pad_top": 8, "pad_bottom": 8,
            "out_h": dw, "out_w": dw, "base": self._addr_width,
        })

    @property
    def index_width(self) -> int:
        """Bits of ``row`` and ``chunk``: ``R*R*C < 2**(dim_width + 16)`` and ``Q <
        2**(3*dim_width)``."""
        return 3 * self._dim_width + 16

    @property
    def word_layout(self) -> data.StructLayout:
        return gather_word_layout(self._config, self.index_width)

    def elaborate(self, platform):
        m = Module()
        vec, dwidth, cont = self._config.vec, self._config.data_width, self._container
        aw, dw, iw = self._addr_width, self._dim_width, self.index_width
        vbits = max(1, (vec - 1).bit_length())

        m.submodules.transposer = tr = BlockTransposer(vec, dwidth)
        m.submodules.masks = fifo = SyncFIFO(width=vec + 1, depth=4)

        cmd = Signal(self.command_layout)
        state = Signal(_State)

        # --- setup: one multiplier, one product per cycle ----------------------------------------
        magic, shift = reciprocal(vec, dw + 1)
        cb_n = Signal(dw)                     # Cb
        w_cb, s_cb, p_cb = Signal(aw), Signal(aw), Signal(aw)
        sw_cb, hw_cb, pt_w_cb = Signal(aw), Signal(aw), Signal(aw)
        taps_n, cb_vec = Signal(16), Signal(dw + 7)
        step = Signal(range(2 * 9 + 1))     # 9 products
        # Registered operands (loaded in even steps) and the product stored in the odd step
        # after: the multiplier sits between registers, off every other path.
        mul_a = Signal(max(dw + 1, 8))
        mul_b = Signal(max(aw, dw, 8, magic.bit_length()))
        product = Signal(len(mul_a) + len(mul_b))
        m.d.comb += product.eq(mul_a * mul_b)
        products = [
            (cb_n, cmd.c + (vec - 1), magic),
            (w_cb, cmd.w, cb_n),
            (s_cb, cmd.stride, cb_n),
            (p_cb, cmd.padding, cb_n),
            (sw_cb, cmd.stride, w_cb),
            (hw_cb, cmd.h, w_cb),
            (pt_w_cb, cmd.pad_top, w_cb),
            (taps_n, cmd.kernel, cmd.kernel),
            (cb_vec, cb_n, vec),
        ]
        with m.Switch(step):
            for index, (_, a, b) in enumerate(products):
                with m.Case(2 * index):
                    m.d.sync += [mul_a.eq(a), mul_b.eq(b)]

        # --- the reader ------------------------------------------------------------------------
        kernel_m1 = Signal(8)
        r, t = Signal(8), Signal(8)
        cb = Signal(dw)
        n_i, y, x = Signal(dw), Signal(dw), Signal(dw)
        pw = dw + 10
        iy, ix = Signal(signed(pw)), Signal(signed(pw))          # the tap's position
        iy0, ix0 = Signal(signed(pw)), Signal(signed(pw))        # ... at output pixel (0, 0)
        addr, addr_row, addr_img = Signal(aw), Signal(aw), Signal(aw)
        start, start_t, start_r = Signal(aw), Signal(aw), Signal(aw)   # addresses of pixel 0
        i = Signal(vbits)                     # pixel within the chunk
        beyond = Signal()                     # past the last pixel: padding to the chunk's end
        mask_acc = Signal(vec)

        inside = (~beyond & (iy >= 0) & (iy < cmd.h) & (ix >= 0) & (ix < cmd.w))
        last_x = x == cmd.out_w - 1
        last_y = y == cmd.out_h - 1
        last_n = n_i == cmd.n - 1
        last_pixel = ~beyond & last_x & last_y & last_n
        chunk_end = i == vec - 1
        cb_last = cb == cb_n - 1
        t_last = t == kernel_m1
        r_last = r == kernel_m1

        valid1 = Signal()                     # the read stage holds a word
        zero1 = Signal()                      # ... which is a zero word (not read)
        running = Signal()
        m.d.comb += running.eq(state == _State.RUN)
        issue = Signal()
        m.d.comb += issue.eq(running & (~valid1 | tr.i.ready) & fifo.w_rdy)
        mask_next = Signal(vec)
        m.d.comb += mask_next.eq(mask_acc | Mux(inside, Const(1, vec) << i, 0))

        m.d.comb += [
            self.read.addr.eq(addr),
            self.read.en.eq(issue & inside),
            fifo.w_data.eq(Cat(mask_next, beyond | last_pixel)),
            fifo.w_en.eq(issue & chunk_end),
        ]
        for e, element in enumerate(word_elements(self.read.data, vec, cont, dwidth)):
            m.d.comb += tr.i.payload[e].eq(Mux(zero1, 0, element))
        m.d.comb += tr.i.valid.eq(valid1)
        with m.If(issue):
            m.d.sync += [valid1.eq(1), zero1.eq(~inside)]
        with m.Elif(tr.i.ready):
            m.d.sync += valid1.eq(0)

        def restart_pixels(new_start, new_iy0, new_ix0):
            return [x.eq(0), y.eq(0), n_i.eq(0), beyond.eq(0),
                    addr.eq(new_start), addr_row.eq(new_start), addr_img.eq(new_start),
                    iy.eq(new_iy0), ix.eq(new_ix0)]

        with m.If(issue):
            m.d.sync += [i.eq(Mux(chunk_end, 0, i + 1)),
                         mask_acc.eq(Mux(chunk_end, 0, mask_next))]
            with m.If(chunk_end & (beyond | last_pixel)):
                # The channel block's last chunk is complete: the next (r, t, cb).
                with m.If(~cb_last):
                    m.d.sync += [cb.eq(cb + 1), start.eq(start + 1),
                                 *restart_pixels(start + 1, iy0, ix0)]
                with m.Elif(~t_last):
                    m.d.sync += [cb.eq(0), t.eq(t + 1), start_t.eq(start_t + cb_n),
                                 start.eq(start_t + cb_n), ix0.eq(ix0 + 1),
                                 *restart_pixels(start_t + cb_n, iy0, ix0 + 1)]
                with m.Elif(~r_last):
                    m.d.sync += [cb.eq(0), t.eq(0), r.eq(r + 1),
                                 start_r.eq(start_r + w_cb), start_t.eq(start_r + w_cb),
                                 start.eq(start_r + w_cb),
                                 iy0.eq(iy0 + 1), ix0.eq(-cmd.padding),
                                 *restart_pixels(start_r + w_cb, iy0 + 1, -cmd.padding)]
                with m.Else():
                    m.d.sync += state.eq(_State.DRAIN)
            with m.Elif(last_pixel):
                m.d.sync += beyond.eq(1)
            with m.Elif(~beyond):
                with m.If(~last_x):
                    m.d.sync += [x.eq(x + 1), ix.eq(ix + cmd.stride), addr.eq(addr + s_cb)]
                with m.Elif(~last_y):
                    m.d.sync += [x.eq(0), y.eq(y + 1), ix.eq(ix0), iy.eq(iy + cmd.stride),
                                 addr_row.eq(addr_row + sw_cb), addr.eq(addr_row + sw_cb)]
                with m.Else():
                    m.d.sync += [x.eq(0), y.eq(0), n_i.eq(n_i + 1), ix.eq(ix0), iy.eq(iy0),
                                 addr_img.eq(addr_img + hw_cb), addr_row.eq(addr_img + hw_cb),
                                 addr.eq(addr_img + hw_cb)]

        # --- the output side ---------------------------------------------------------------------
        e = Signal(vbits)
        ocb = Signal(dw)
        ort = Signal(16)                      # r*R + t
        rt_last = Signal(16)                  # R*R - 1
        q = Signal(iw)
        row_rt, row_cb = Signal(iw), Signal(iw)
        tail = Signal(vbits)                  # the last emitted e of the last channel block
        channels = Signal(dw)
        qlast = fifo.r_data[vec]
        ocb_last = ocb == cb_n - 1
        emit = ~ocb_last | (e <= tail)
        block_end = e == vec - 1
        final = (ort == rt_last) & ocb_last & qlast
        m.d.comb += [
            self.o.valid.eq(tr.o.valid & fifo.r_rdy & emit),
            tr.o.ready.eq(fifo.r_rdy & (self.o.ready | ~emit)),
            fifo.r_en.eq(tr.o.valid & tr.o.ready & block_end),
            self.o.payload.data.eq(tr.o.payload),
            self.o.payload.smask.eq(fifo.r_data[:vec]),
            self.o.payload.row.eq(row_cb + e),
            self.o.payload.chunk.eq(q),
            self.o.payload.last.eq(final & (e == tail)),
        ]
        with m.If(tr.o.valid & tr.o.ready):
            m.d.sync += e.eq(Mux(block_end, 0, e + 1))
            with m.If(block_end):
                with m.If(~qlast):
                    m.d.sync += q.eq(q + 1)
                with m.Else():
                    m.d.sync += q.eq(0)
                    with m.If(~ocb_last):
                        m.d.sync += [ocb.eq(ocb + 1), row_cb.eq(row_cb + vec)]
                    with m.Else():
                        m.d.sync += [ocb.eq(0), ort.eq(ort + 1), row_rt.eq(row_rt + channels),
                                     row_cb.eq(row_rt + channels)]
                    with m.If(final):
                        m.d.sync += state.eq(_State.IDLE)

        # --- control ------------------------------------------------------------------------
        with m.Switch(state):
            with m.Case(_State.IDLE):
                m.d.comb += self.command.ready.eq(1)
                with m.If(self.command.valid):
                    m.d.sync += [cmd.eq(self.command.payload), step.eq(0),
                                 state.eq(_State.SETUP)]
            with m.Case(_State.SETUP):
                with m.Switch(step):
                    for index, (destination, _, _) in enumerate(products):
                        with m.Case(2 * index + 1):
                            value = product >> shift if destination is cb_n else product
                            m.d.sync += destination.eq(value)
                m.d.sync += step.eq(step + 1)
                with m.If(step == 2 * len(products)):
                    first = Signal(aw)
                    m.d.comb += first.eq(cmd.base - pt_w_cb - p_cb)
                    m.d.sync += [
                        state.eq(_State.RUN),
                        kernel_m1.eq(cmd.kernel - 1), r.eq(0), t.eq(0), cb.eq(0),
                        start.eq(first), start_t.eq(first), start_r.eq(first),
                        iy0.eq(-cmd.pad_top), ix0.eq(-cmd.padding),
                        *restart_pixels(first, -cmd.pad_top, -cmd.padding),
                        i.eq(0), mask_acc.eq(0),
                        e.eq(0), ocb.eq(0), ort.eq(0), q.eq(0), row_rt.eq(0), row_cb.eq(0),
                        rt_last.eq(taps_n - 1),
                        channels.eq(cmd.c),
                        tail.eq(cmd.c + (vec - 1) - cb_vec),
                    ]
        m.d.comb += self.busy.eq(state != _State.IDLE)

        m.d.sync += Assert(~(tr.o.valid & ~fifo.r_rdy), "a transposed block without its mask")
        return m
