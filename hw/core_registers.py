"""The control and status registers of the maskprop core (first version), as one
:class:`~maskprop.hw.registers.RegisterMap`: the core's RTL instantiates a
:class:`~maskprop.hw.registers.RegisterFile` from it and docs/registers.md is generated from it
(``python -m maskprop.hw.core_registers`` prints the table).

The core uses the fields by name::

    regs = RegisterFile(core_register_map(config, mem_data_width=64))
    with m.If(regs.fields.start): ...                        # one-cycle strobe
    m.d.comb += regs.fields.busy.eq(busy)                    # ro: driven by the core
    m.d.comb += regs.fields.done_set.eq(pass_finished)       # w1c: sticky event
    with m.If(regs.fields.pass_kind == Pass.BACKWARD_DATA): ...

Addresses are byte addresses of ``mem_addr_width`` bits (32 by default): each base register has
an 8-byte slot, so with ``mem_addr_width`` above 32 it becomes 64 bits wide (``A_BASE_LO`` and
``A_BASE_HI``) without moving any other register. Counters are 64 bits (read ``_LO`` first: it
latches ``_HI``).
"""

from amaranth.lib import enum

from maskprop.base.config import DEFAULT, Config, check_range
from maskprop.hw.registers import Field, Register, RegisterMap

__all__ = ["core_register_map", "CORE_REGISTERS", "MAGIC", "VERSION", "ErrorCode", "Pass", "Mode",
           "Operand", "COUNTERS"]

#: ``ID.magic``: "MPRP" in ASCII, most significant byte first.
MAGIC = 0x4D50_5250
#: ``VERSION``: (major, minor) of this register map; a driver checks major.
VERSION = (1, 4)


class ErrorCode(enum.Enum, shape=4):
    """Why the core refused a start or stopped (``STATUS.error_code``)."""
    NONE = 0             # no error
    BUSY = 1             # start while busy
    BAD_PASS = 2         # PASS.pass_kind is not a pass, or partial sums outside backward-weight
    ZERO_DIM = 3         # a dimension, kernel or stride is 0
    SHAPE_TOO_LARGE = 4  # the buffers or the accumulator cannot hold the layer
    UNALIGNED = 5        # a base address is not a multiple of the memory bus width
    BUS_ERROR = 6        # the memory port got SLVERR or DECERR
    BAD_PITCH = 7        # OUT_PITCH is below the words of one output pixel (and not 0)
    NOT_HELD = 8         # PASS.keep_weights or keep_input, but the buffer holds other data


class Pass(enum.Enum, shape=2):
    """Which pass ``start`` runs (docs/architecture.md section 2)."""
    FORWARD = 0
    BACKWARD_DATA = 1
    BACKWARD_WEIGHT = 2


class Operand(enum.Enum, shape=1):
    """Backward-weight's broadcast operand ``X`` (``PASS.bw_operand``; docs/architecture.md
    section 8.3): the other one goes into the Y buffer."""
    A = 0                # X = im2col(A)^T: result rows (r, t, c), columns k
    DZ = 1               # X = dZ^T: result rows k, columns (r, t, c)


class Mode(enum.Enum, shape=1):
    SPARSE = 0           # skip zeros of the broadcast operand and masked-out outputs
    DENSE = 1            # every structural element, every output (the baseline)


#: The 64-bit performance counters: (field, description). Each counts from the last
#: ``clear_counters`` and is driven by the core.
COUNTERS = (
    ("cycles_busy", "Cycles with `busy` set."),
    ("compute_cycles", "Cycles in which the tile array's decoder held a chunk and its beat could "
                       "move: the cycle model's count (32 bits: the high word reads 0)."),
    ("stall_cycles", "Cycles in which the decoder held a beat the PEs could not take (result "
                     "backpressure; 32 bits)."),
    ("macs", "Multiply-accumulates issued: valid lanes x enabled tiles (32 bits)."),
    ("chunks", "Chunks issued to the decoder, first groups and replays (32 bits)."),
    ("outputs", "Outputs the tile array computed (enabled slots delivered; 32 bits)."),
    ("bytes_read", "Bytes read from memory, a whole bus word per beat (32 bits)."),
    ("bytes_written", "Bytes written to memory, a whole bus word per beat (32 bits)."),
)

_DIM = "(0 is refused: ZERO_DIM)"


def core_register_map(config: Config = DEFAULT, *, mem_data_width: int = 64,
                      mem_addr_width: int = 32) -> RegisterMap:
    """The core's registers for ``config``, whose parameters the CONFIG registers report.

    ``mem_data_width``: the memory port's data width, 8..1024 bits, a power of two (base
    addresses must be multiples of its bytes); ``mem_addr_width``: its byte address bits, 12..64.
    """
    if mem_data_width not in tuple(8 << k for k in range(8)):
        raise ValueError(f"mem_data_width must be a power of two in [8, 1024], not "
                         f"{mem_data_width!r}")
    check_range("mem_addr_width", mem_addr_width, 12, 64)
    base_width = 32 if mem_addr_width <= 32 else 64
    c = config

    return RegisterMap("maskprop_core", [
        # --- identification and configuration (constants of the generated core) -------------
        Register("ID", [Field("magic", 32, "const", MAGIC, "0x4D505250, \"MPRP\".")],
                 "Identifies a maskprop core.", offset=0x000),
        Register("VERSION", [
            Field("minor", 8, "const", VERSION[1], "Register map minor version (additions)."),
            Field("major", 8, "const", VERSION[0], "Register map major version (changes)."),
        ], "Version of this register map."),
        Register("CONFIG0", [
            Field("vec", 7, "const", c.vec, "Elements per chunk, 1..64."),
            Field("lanes", 7, "const", c.lanes, "Multipliers per tile, 1..vec."),
            Field("tiles", 7, "const", c.tiles, "Tiles (output columns per group), 1..64."),
            Field("data_width", 6, "const", c.data_width, "Operand bits (signed), 2..32."),
        ], "Datapath parameters."),
        Register("CONFIG1", [
            Field("acc_width", 7, "const", c.acc_width, "Accumulator bits (signed), up to 64."),
            Field("col_block", 7, "const", c.col_block, "Output columns per row word, 1..64."),
            Field("bus_bytes", 8, "const", mem_data_width // 8,
                  "Memory bus width in bytes, 1..128."),
            Field("addr_bits", 7, "const", mem_addr_width, "Memory address bits, 12..64."),
        ], "Accumulator and memory port parameters."),
        Register("CONFIG2", [
            Field("max_chunks", 13, "const", c.max_chunks,
                  "Row buffer: chunks per reduction (reduction <= max_chunks * vec), 1..4096."),
            Field("max_cols", 17, "const", c.max_cols,
                  "Output columns per pass (the tile array's column addresses), 1..65536."),
        ], "Buffer sizes."),
        # y_words needs 29 bits (up to 2**28): no room left in CONFIG2.
        Register("CONFIG3", [
            Field("y_words", 29, "const", c.y_words,
                  "Y buffer words: max_cols * max_chunks, or a power of two from max_chunks; "
                  "a pass of cols columns of Q chunks takes cols << ceil(log2 Q) of them."),
        ], "Y buffer size."),

        # --- control and status ------------------------------------------------------------
        Register("CONTROL", [
            Field("start", 1, "pulse", doc="Start the pass PASS and the layer registers describe."),
            Field("clear_counters", 1, "pulse", doc="Zero every performance counter."),
        ], "Commands (write 1).", offset=0x020),
        Register("STATUS", [
            Field("busy", 1, "ro", doc="A pass is running."),
            Field("done", 1, "w1c", doc="A pass finished.", cleared_by="start"),
            Field("error", 1, "w1c", doc="An error occurred; error_code says which."),
            Field("error_code", 4, "ro", doc="The first error since error was cleared.",
                  enum=ErrorCode, lsb=8),
        ], "State of the core."),

        # --- the pass and the layer ----------------------------------------------------------
        Register("PASS", [
            Field("pass_kind", 2, "rw", 0, "Which pass start runs (3: BAD_PASS).", enum=Pass),
            Field("mode", 1, "rw", 0, "Zero skipping on or off.", enum=Mode, lsb=4),
            Field("output_mask", 1, "rw", 1, "Backward-data: compute only outputs where "
                  "A != 0 (the ReLU mask); the others are written 0.", lsb=8),
            Field("keep_weights", 1, "rw", 0, "Do not load the Y buffer: one of its halves "
                  "holds this command's weights from the last command that finished, loaded or "
                  "prefetched by it (the same pass, W_BASE, columns and reduction; a band of "
                  "the same output-channel group of a split pass, or the group the command "
                  "before prefetched). Else NOT_HELD, and always for backward-weight.", lsb=12),
            Field("keep_input", 1, "rw", 0, "Do not load the X scratchpad: it holds this "
                  "command's input from the last command that finished (the same input base, "
                  "A_BASE or DZ_BASE, and words; a band of another output-channel group of a "
                  "split pass). Else NOT_HELD, and always for backward-weight.", lsb=13),
            Field("bw_operand", 1, "rw", 0, "Backward-weight: the broadcast operand X. A: "
                  "the result has a row per (tap r, tap t, channel c) and a column per output "
                  "channel k; DZ: a row per k and a column per (r, t, c).", enum=Operand,
                  lsb=16),
            Field("psum_in", 1, "rw", 0, "Backward-weight, a part of a split reduction after "
                  "the first: add the partial sums at PSUM_BASE (64-bit, from the parts before) "
                  "to this part's sums before requantizing or writing them. Another pass, or a "
                  "core without partial sums (a bus below 64 bits, tiles not a power of two or "
                  "col_block not a multiple of tiles): BAD_PASS.", lsb=20),
            Field("psum_out", 1, "rw", 0, "Backward-weight, a part before the last: write the "
                  "raw 64-bit sums to OUT_BASE (each result beat's tiles sums in whole words, "
                  "bus_bytes / 8 a word, beats in order) instead of the requantized result; "
                  "OUT_PITCH is not used. Another pass, or a core without partial sums: "
                  "BAD_PASS.",
                  lsb=21),
            Field("prefetch", 1, "rw", 0, "Forward or backward-data: while this command runs, "
                  "load the weights at NEXT_W_BASE (the same pass, columns and reduction) into "
                  "the half of the Y buffer it does not run from, so that the next command "
                  "keeps them (keep_weights) instead of loading them. This command's weights "
                  "must then fit half the Y buffer (cols << ceil(log2(chunks)) <= y_words / 2, "
                  "else SHAPE_TOO_LARGE); backward-weight, or a Y buffer whose y_words is not "
                  "a power of two (CONFIG): BAD_PASS. The command is done once both its result "
                  "is written and the weights are in.", lsb=24),
        ], "What start runs.", offset=0x030),
        Register("LAYER_NC", [
            Field("layer_n", 16, "rw", 1, f"Batch N, 0..65535 {_DIM}."),
            Field("layer_c", 16, "rw", 1, f"Input channels C, 0..65535 {_DIM}."),
        ], "Layer shape."),
        Register("LAYER_HW", [
            Field("layer_h", 16, "rw", 1, f"Input height H, 0..65535 {_DIM}."),
            Field("layer_w", 16, "rw", 1, f"Input width W, 0..65535 {_DIM}."),
        ], "Layer shape."),
        Register("LAYER_K", [
            Field("layer_k", 16, "rw", 1, f"Output channels K, 0..65535 {_DIM}."),
        ], "Layer shape."),
        Register("CONV", [
            Field("kernel", 8, "rw", 1, f"Kernel size R (R x R), 0..255 {_DIM}."),
            Field("stride", 8, "rw", 1, f"Stride, 0..255 {_DIM}."),
            Field("padding", 8, "rw", 0, "Zero padding left and right (columns), 0..255."),
        ], "Convolution geometry."),
        Register("REQUANT", [
            Field("shift", 6, "rw", 0, "Requantization: arithmetic right shift of the "
                  "accumulator with round-half-up, then saturation, 0..63."),
        ], "Output scaling."),
        Register("CONV_ROWS", [
            Field("pad_top", 8, "rw", 0, "Zero padding above the rows, 0..255 (a layer's "
                  "padding; a row band of a split pass has its own)."),
            Field("pad_bottom", 8, "rw", 0, "Zero padding below the rows, 0..255.", lsb=8),
        ], "Row padding: the output has (H + pad_top + pad_bottom - R) / stride + 1 rows.",
            offset=0x048),
        Register("OUT_PITCH", [
            Field("out_pitch", 16, "rw", 0, "Words from one output pixel to the next in memory, "
                  "for the result and for A read as backward-data's output mask: 0 or "
                  "ceil(cols / vec) (contiguous), or more for one output-channel group of a "
                  "split pass (its words of each pixel). Between 1 and ceil(cols / vec) - 1: "
                  "BAD_PITCH."),
        ], "Output layout.", offset=0x04C),

        # --- tensors in memory (8-byte slots: room for 64-bit addresses) ----------------------
        Register("A_BASE", [Field("a_base", mem_addr_width, "rw",
                                  doc="Byte address of A, the input activations.")],
                 "Base address of A. Every base address must be a multiple of CONFIG1.bus_bytes "
                 "(else UNALIGNED).",
                 offset=0x050, width=base_width),
        Register("W_BASE", [Field("w_base", mem_addr_width, "rw",
                                  doc="Byte address of W, the weights.")],
                 "Base address of W.", offset=0x058, width=base_width),
        Register("DZ_BASE", [Field("dz_base", mem_addr_width, "rw",
                                   doc="Byte address of dZ, the output gradient.")],
                 "Base address of dZ.", offset=0x060, width=base_width),
        Register("OUT_BASE", [Field("out_base", mem_addr_width, "rw",
                                    doc="Byte address of the result (Z, dA or dW).")],
                 "Base address of OUT.", offset=0x068, width=base_width),
        Register("PSUM_BASE", [Field("psum_base", mem_addr_width, "rw",
                                     doc="Byte address of the partial sums PASS.psum_in reads "
                                         "(it may equal OUT_BASE: each word is read before it "
                                         "is written again).")],
                 "Base address of the partial sums read (backward-weight).", offset=0x070,
                 width=base_width),
        Register("NEXT_W_BASE", [Field("next_w_base", mem_addr_width, "rw",
                                       doc="Byte address of the weights PASS.prefetch loads "
                                           "(the next command's W_BASE).")],
                 "Base address of the weights prefetched for the next command.", offset=0x078,
                 width=base_width),

        # --- performance counters (64 bits: read _LO, then _HI) -------------------------------
        *(Register(name.upper(), [Field(name, 64, "ro", doc=doc)],
                   "Performance counter." if index else
                   "Performance counters, from the last clear_counters.",
                   offset=0x080 + 8 * index, width=64)
          for index, (name, doc) in enumerate(COUNTERS)),
    ], doc="Unmapped addresses answer SLVERR; so do writes to constant or read-only words.")


#: The map of the default configuration with a 64-bit, 32-bit-addressed memory port: the one
#: docs/registers.md shows.
CORE_REGISTERS = core_register_map()


if __name__ == "__main__":
    print(CORE_REGISTERS.markdown(), end="")
