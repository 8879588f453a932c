"""Host side of the accelerator core (``hw/core.py``): one layer pass as a memory image and the
register writes that start it, the shape checks the core makes before it starts, and the result
it must leave in memory (from the golden model's direct convolutions).

The core runs a pass memory to memory (docs/architecture.md section 8): the host places the
pass's tensors in memory in the core's layout (:mod:`maskprop.host.memory_layout`), writes the
layer's shape, the base addresses, the mode and the requantization shift into the control
registers (``hw/core_registers.py``), and sets ``CONTROL.start``; the core writes the
requantized result, 0 wherever an output was not computed (so the result is directly the next
layer's sparse input), and sets ``STATUS.done`` or ``STATUS.error``.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from maskprop.base.config import CoreConfig
from maskprop.host.memory_layout import (backward_data_weights, channel_words, pack, unpack,
                                         word_bytes)
from maskprop.host.split import (OPERANDS, CoreCommand, plan_pass, weight_result_shape,
                                 whole_pass)
from maskprop.sim.golden import (conv_backward_data_fixed, conv_backward_weight_fixed,
                                 conv_forward_fixed)
from maskprop.sim.layer import ConvLayer, check_pass_name, pass_label

__all__ = ["CORE_PASSES", "PAGE", "CoreJob", "check_core_pass", "core_pass_shape",
           "register_words", "runnable_operands", "weight_gradient_matrix"]

#: The passes the core runs on chip.
CORE_PASSES = ("forward", "backward_data", "backward_weight")
#: Tensors are placed at multiples of this (a 4 KiB page: no burst of a tensor's first words
#: crosses a page boundary because of where the tensor starts).
PAGE = 4096


@dataclass(frozen=True)
class CorePassShape:
    """What a pass of ``layer`` takes on the core: ``rows`` (GEMM rows = output pixels),
    ``cols`` (output channels), ``chunks`` (the reduction's chunks: taps x channel words),
    ``x_words`` (words of the broadcast input tensor in the X scratchpad), ``y_words`` (weight
    words, ``cols * chunks``), ``out_words`` (``rows * ceil(cols / vec)``).

    Backward-weight: ``rows`` and ``cols`` are the result's (``R*R*C`` and ``K`` when ``A`` is
    the broadcast operand, else ``K`` and ``R*R*C``), ``chunks`` the reduction's (``vec``
    output pixels each), ``x_words`` those of ``A`` and ``dZ`` together, ``y_words`` the
    words gathered into the Y buffer (``cols * chunks``; none read from memory)."""
    rows: int
    cols: int
    chunks: int
    x_words: int
    y_words: int
    out_words: int


def core_pass_shape(layer: ConvLayer, pass_name: str, vec: int,
                    operand: str = "a") -> CorePassShape:
    """The sizes of ``pass_name`` of ``layer`` on a core with chunks of ``vec`` (``operand``:
    backward-weight's broadcast operand)."""
    if check_pass_name(pass_name) not in CORE_PASSES:
        raise ValueError(f"{layer.label} {pass_label(pass_name)}: the core runs "
                         f"{' and '.join(map(pass_label, CORE_PASSES))}")
    n, c, h, w = layer.input_shape
    k, ho, wo = layer.out_channels, layer.out_height, layer.out_width
    taps = layer.kernel * layer.kernel
    if pass_name == "backward_weight":
        rows, cols = weight_result_shape(layer, operand)
        chunks = -(-n * ho * wo // vec)
        x_words = whole_pass(layer, pass_name, operand).x_words(layer, vec)
        return CorePassShape(rows, cols, chunks, x_words, cols * chunks,
                             rows * channel_words(cols, vec))
    if pass_name == "forward":
        rows, cols, reduced, x_pixels = n * ho * wo, k, c, n * h * w
    else:
        rows, cols, reduced, x_pixels = n * h * w, c, k, n * ho * wo
    chunks = taps * channel_words(reduced, vec)
    return CorePassShape(rows, cols, chunks, x_pixels * channel_words(reduced, vec),
                         cols * chunks, rows * channel_words(cols, vec))


def weight_gradient_matrix(dW: np.ndarray, operand: str) -> np.ndarray:
    """``dW (K, C, R, R)`` as the core writes it, a 4-D tensor for
    :func:`~maskprop.host.memory_layout.pack`: ``operand`` ``"a"``, one row of ``K`` channels
    per ``(r, t, c)`` (shape ``(1, K, R*R*C, 1)``); ``"dz"``, one row of ``R*R*C`` per ``k``
    (``(1, R*R*C, K, 1)``)."""
    k = dW.shape[0]
    by_tap = np.asarray(dW).transpose(2, 3, 1, 0).reshape(-1, k)      # [(r, t, c), k]
    return (by_tap.T.reshape(1, k, -1, 1) if operand == "a"
            else by_tap.reshape(1, -1, k, 1))


def check_core_pass(layer: ConvLayer, pass_name: str, core: CoreConfig,
                    operand: str = "a", *, prefetch: bool = True) -> list:
    """The commands that run ``pass_name`` of ``layer`` on ``core``
    (:func:`maskprop.host.split.plan_pass`: one if the pass fits the buffers, else the pass
    split); ``ValueError`` naming the parameter to change for a pass the core cannot run even
    split: a reduction of more chunks than the row buffer (``max_chunks``), one the accumulator
    cannot hold (``acc_width``), or a single row band larger than the X scratchpad
    (``x_words``). ``prefetch``: as :func:`~maskprop.host.split.plan_pass`'s."""
    core_pass_shape(layer, pass_name, core.array.vec, operand)     # a pass the core runs
    return plan_pass(layer, pass_name, core, operand=operand, prefetch=prefetch)


def runnable_operands(layer: ConvLayer, core: CoreConfig) -> list[str]:
    """Backward-weight's broadcast operands (:data:`~maskprop.host.split.OPERANDS`) in which
    the core runs ``layer``'s pass; ``ValueError`` with both operands' reasons if none."""
    runnable, reasons = [], []
    for operand in OPERANDS:
        try:
            check_core_pass(layer, "backward_weight", core, operand)
        except ValueError as error:
            reasons.append(error)
        else:
            runnable.append(operand)
    if not runnable:
        prefix = f"{layer.label} {pass_label('backward_weight')}: "
        first, second = (str(reason).removeprefix(prefix) for reason in reasons)
        raise ValueError(f"{prefix}broadcasting A, {first}; broadcasting dZ, {second}")
    return runnable


def register_words(register_map, values: dict) -> list[tuple[int, int]]:
    """``(offset, value)`` of the 32-bit words to write so that every field named in ``values``
    holds its value (the other fields of those registers keep their reset values); enum values
    may be given as members."""
    unknown = set(values) - {f.name for f in register_map.fields}
    if unknown:
        raise KeyError(f"register map {register_map.name} has no field(s) "
                       f"{', '.join(sorted(unknown))}")
    writes = []
    for word in register_map.words:
        pieces = word.register.slices(word.index)
        if not any(piece.field.name in values for piece in pieces):
            continue
        value = 0
        for piece in pieces:
            raw = values.get(piece.field.name, piece.field.reset)
            raw = int(getattr(raw, "value", raw))
            part = (raw >> piece.start) & ((1 << (piece.stop - piece.start)) - 1)
            value |= part << piece.word_lsb
        writes.append((word.offset, value))
    return writes


@dataclass
class CoreJob:
    """One pass of one layer on the core: tensors placed in memory, and what must come out.

    ``dense``: the sparsity-agnostic baseline (every output computed, every structural element
    multiplied); ``output_mask`` (backward-data, sparse mode): compute only where ``A != 0``;
    ``shift``: the requantization shift; ``operand``: backward-weight's broadcast operand
    (``"a"`` or ``"dz"``).
    """
    layer: ConvLayer
    pass_name: str
    core: CoreConfig
    A: np.ndarray
    W: np.ndarray
    dZ: np.ndarray
    dense: bool = False
    shift: int = 0
    output_mask: bool = True
    origin: int = 0
    operand: str = "a"
    bases: dict = field(init=False)
    shape: CorePassShape = field(init=False)
    commands: list = field(init=False)

    def __post_init__(self):
        self.commands = check_core_pass(self.layer, self.pass_name, self.core, self.operand)
        self.shape = core_pass_shape(self.layer, self.pass_name, self.core.array.vec,
                                     self.operand)
        for name, tensor, expected in (("A", self.A, self.layer.input_shape),
                                       ("W", self.W, self.layer.weight_shape),
                                       ("dZ", self.dZ, self.layer.output_shape)):
            if np.shape(tensor) != expected:
                raise ValueError(f"{name} must have shape {expected}, not {np.shape(tensor)}")
        self.bases, address = {}, self.origin
        for name, image in self.images().items():
            self.bases[name] = address
            address += -(-max(len(image), 1) // PAGE) * PAGE
        self.bases.setdefault("w", self.bases["a"])       # backward-weight reads no W
        self.bases["out"] = address
        end = address + self.out_bytes
        # Backward-weight split over its reduction: the partial sums of every group.
        self.bases["psum"] = address + -(-self.out_bytes // PAGE) * PAGE
        if self.psum_bytes:
            end = self.bases["psum"] + self.psum_bytes
        if end > 1 << self.core.addr_width:
            raise ValueError(f"the tensors need {end:,} bytes of memory, "
                             f"more than addr_width = {self.core.addr_width} bits reach")

    def images(self) -> dict:
        """``{name: bytes}``: the memory image of each tensor the pass reads (``a``, ``w``,
        ``dz``; backward-weight reads no ``w``)."""
        vec, width = self.core.array.vec, self.core.array.data_width
        if self.pass_name == "backward_weight":
            return {"a": pack(self.A, vec, width), "dz": pack(self.dZ, vec, width)}
        weights = self.W if self.pass_name == "forward" else backward_data_weights(self.W)
        return {"a": pack(self.A, vec, width), "w": pack(weights, vec, width),
                "dz": pack(self.dZ, vec, width)}

    @property
    def reads(self) -> tuple:
        """The images (:meth:`images`' names) the core reads from memory for this pass: the
        broadcast operand X and the weights Y, and backward-data's ``A`` for its output mask
        (sparse mode with ``output_mask``). :meth:`images` lays out ``dZ`` for the forward pass
        too (and ``A`` for a backward-data without its mask); a host that only needs the
        result can leave those out of memory."""
        if self.pass_name == "forward":
            return ("a", "w")
        if self.pass_name == "backward_data":
            return ("dz", "w") + (("a",) if self.output_mask and not self.dense else ())
        return ("a", "dz")

    def memory(self) -> dict:
        """``{byte address: bytes}``: every tensor the pass reads, in the core's layout."""
        return {self.bases[name]: image for name, image in self.images().items()}

    @property
    def out_bytes(self) -> int:
        return self.shape.out_words * word_bytes(self.core.array.vec, self.core.array.data_width)

    @property
    def psum_bytes(self) -> int:
        """Bytes of backward-weight's partial sums (0 unless its reduction is split): each
        output-channel group's, one after the other."""
        groups = {command.psum_offset: command.sum_words(self.layer, self.core.array.tiles, self.core.bus_bytes)
                  for command in self.commands if command.psum_out}
        return sum(groups.values()) * self.core.bus_bytes

    @property
    def out_shape(self) -> tuple:
        """The shape of the result tensor as the core writes it (for backward-weight,
        :func:`weight_gradient_matrix`'s)."""
        if self.pass_name == "backward_weight":
            rows, cols = weight_result_shape(self.layer, self.operand)
            return (1, cols, rows, 1)
        return self.layer.output_shape if self.pass_name == "forward" else self.layer.input_shape

    @property
    def split(self) -> bool:
        """The pass runs as more than one command (it does not fit the buffers)."""
        return len(self.commands) > 1

    def command_bases(self, command: CoreCommand) -> dict:
        """The byte addresses ``command`` reads and writes its part of each tensor at."""
        return command.bases(self.layer, self.bases, self.core.array.vec, self.core.bus_bytes)

    def fields(self, command: CoreCommand | None = None) -> dict:
        """The register fields (``hw/core_registers.py``) of ``command`` (default: the first,
        the only one of a pass that fits)."""
        from maskprop.hw.core_registers import Mode, Operand, Pass
        command = command or self.commands[0]
        bases = self.command_bases(command)
        return {
            "pass_kind": {"forward": Pass.FORWARD, "backward_data": Pass.BACKWARD_DATA,
                          "backward_weight": Pass.BACKWARD_WEIGHT}[self.pass_name],
            "bw_operand": Operand.DZ if self.operand == "dz" else Operand.A,
            "mode": Mode.DENSE if self.dense else Mode.SPARSE,
            "output_mask": int(self.output_mask),
            "keep_input": int(command.keep_input),
            "keep_weights": int(command.keep_weights),
            **command.layer_fields(self.layer),
            "out_pitch": command.offsets(self.layer, self.core.array.vec)["out_pitch"],
            "shift": self.shift,
            "a_base": bases["a"], "w_base": bases["w"], "dz_base": bases["dz"],
            "out_base": bases["out"],
            "psum_in": int(command.psum_in), "psum_out": int(command.psum_out),
            "psum_base": bases["psum"],
            "prefetch": int(command.prefetch is not None), "next_w_base": bases["next_w"],
        }

    def array_pass(self):
        """The whole pass lowered for the core's tile array
        (:class:`~maskprop.host.driver.ArrayPass`, what the core's model takes), with the
        output mask if the job asks for it; the buffer limits are the commands' (each fits)."""
        from maskprop.host.driver import ArrayPass
        return ArrayPass.lower(self.layer, self.pass_name, self.core.array, A=self.A, W=self.W,
                               dZ=self.dZ, output_mask=self.output_mask,
                               x_operand=self.operand, check_fit=False)

    def golden(self) -> np.ndarray:
        """The result tensor the core must write, from the golden model's direct convolution:
        requantized, and 0 wherever sparse mode does not compute an output."""
        config, layer = self.core.array, self.layer
        if self.pass_name == "backward_weight":
            if any(command.psum_out for command in self.commands):
                # Split with partial sums: the parts' sums add up in 64 bits.
                config = dataclasses.replace(config, acc_width=64)
            return conv_backward_weight_fixed(self.dZ, self.A, layer.kernel, layer.stride,
                                              layer.padding, config=config, shift=self.shift)
        if self.pass_name == "forward":
            return conv_forward_fixed(self.A, self.W, layer.stride, layer.padding, config=config,
                                      shift=self.shift)
        omask = self.A if self.output_mask and not self.dense else None
        return conv_backward_data_fixed(self.dZ, self.W, (layer.height, layer.width),
                                        layer.stride, layer.padding, omask, config=config,
                                        shift=self.shift)

    def expected_image(self) -> bytes:
        """The bytes the core must leave at ``bases["out"]``."""
        golden = self.golden()
        if self.pass_name == "backward_weight":
            golden = weight_gradient_matrix(golden, self.operand)
        return pack(golden, self.core.array.vec, self.core.array.data_width)

    def bench_job(self, register_map) -> dict:
        """The job as :func:`maskprop.host.runs.run_core_jobs` takes it: the tensors, then each
        command's register writes (the bench starts each once the one before is done)."""
        images = self.images()
        return {
            "memory": [(self.bases[name], image) for name, image in images.items()],
            "commands": [register_words(register_map, self.fields(command))
                         for command in self.commands],
            "out": (self.bases["out"], self.out_bytes),
            # A hung core fails in seconds: every word and every chunk of every row, 50 times.
            "timeout_cycles": 50 * (self.shape.x_words + self.shape.y_words + self.shape.out_words
                                    + self.shape.rows * self.shape.chunks
                                    + 2 * self.psum_bytes // self.core.bus_bytes) + 5000,
            "ranges": self.ranges(images),
        }

    def ranges(self, images: dict | None = None) -> list:
        """``(name, low, high)``: the byte ranges of the tensors :meth:`images` lays out, of
        the result (``"out"``) and, for a backward-weight split over its reduction, of the
        partial sums (``"psum"``)."""
        images = self.images() if images is None else images
        return ([(name, self.bases[name], self.bases[name] + len(image))
                 for name, image in images.items()]
                + [("out", self.bases["out"], self.bases["out"] + self.out_bytes)]
                + ([("psum", self.bases["psum"], self.bases["psum"] + self.psum_bytes)]
                   if self.psum_bytes else []))

    @property
    def memory_bytes(self) -> int:
        """The memory the pass needs: the end of the last of its :meth:`ranges`."""
        return max(high for _, _, high in self.ranges())

    def result(self, image: bytes) -> np.ndarray:
        """The result tensor from the bytes read back at ``bases["out"]`` (backward-weight:
        ``dW (K, C, R, R)``)."""
        tensor = unpack(image, self.out_shape, self.core.array.vec, self.core.array.data_width)
        if self.pass_name != "backward_weight":
            return tensor
        k, c, r, _ = self.layer.weight_shape
        by_tap = tensor[0, :, :, 0].T if self.operand == "a" else tensor[0, :, :, 0]
        return by_tap.reshape(r, r, c, k).transpose(3, 2, 0, 1)
