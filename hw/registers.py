"""Register maps: one description of a block's control and status registers, from which both its
RTL (:class:`RegisterFile`, an AXI4-Lite subordinate) and its documentation table
(:meth:`RegisterMap.markdown`, which ``scripts/make_docs.py`` writes into docs/registers.md)
are generated, so that the two cannot disagree.

A :class:`RegisterMap` is a list of :class:`Register` s, each a list of :class:`Field` s::

    RegisterMap("demo", [
        Register("CONTROL", [Field("start", 1, "pulse", doc="Start a pass.")]),
        Register("LENGTH", [Field("length", 16, "rw", 1, "Elements per pass.")]),
        Register("CYCLES", [Field("cycles", 64, "ro", doc="Busy cycles.")], width=64),
    ])

Access kinds (:data:`ACCESS`), as software sees them:

- ``rw``: software writes, hardware reads (an output of the register file, reset to ``reset``).
- ``ro``: hardware drives (an input), software reads.
- ``const``: read-only, fixed when the RTL is generated: its value is ``reset``; no port.
- ``pulse`` (alias ``w1p``): writing 1 to a bit strobes that output bit high for one cycle;
  reads 0.
- ``w1c``: sticky. Hardware sets bits through the event input ``<name>_set``; software writes 1
  to clear them (0 leaves them). A set in the same cycle as a clear wins, so no event is lost.
  ``cleared_by="<pulse field>"`` also clears the whole field when that pulse field is written
  with any 1 bit (e.g. ``done`` cleared by ``start``).

Registers are 32 bits, or 64 bits (``width=64``) for wide counters and addresses. A 64-bit
register ``NAME`` is two words, ``NAME_LO`` at its offset (aligned to 8) and ``NAME_HI`` four
bytes above. **Reading ``NAME_LO`` latches the ``ro`` bits of ``NAME_HI``**: a driver reads LO,
then HI, and gets the 64-bit value of one cycle even while the counter runs. (``rw``, ``w1c``
and ``const`` bits of HI read their current value; writes go to each word on its own.)

Fields are packed from bit 0 up in the order given unless a field gives its own ``lsb``;
registers are placed at increasing offsets (each aligned to its size) unless one gives its own
``offset``, and later registers continue after it. Overlaps, fields past the register's width,
duplicate names, misaligned offsets and values that do not fit are refused with a
``ValueError`` naming the register, the field and the limit.
"""

import keyword
import re
from dataclasses import dataclass, replace
from typing import NamedTuple

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.hdl import Shape
from amaranth.lib import enum as hdl_enum
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import ceil_log2, check_range
from maskprop.hw.axi import AXI4LiteSignature, RESP_OKAY, RESP_SLVERR

__all__ = ["ACCESS", "RW", "RO", "CONST", "PULSE", "W1C", "Field", "Register", "RegisterMap",
           "Word", "RegisterFile", "fields_signature"]

RW, RO, CONST, PULSE, W1C = "rw", "ro", "const", "pulse", "w1c"
#: The access kinds and what each means, as the documentation states them.
ACCESS = {
    RW: "software writes, hardware reads (an output port); reads back what was written",
    RO: "hardware drives (an input port), software reads; writes are ignored",
    CONST: "read-only, fixed when the RTL is generated (the reset column); no port",
    PULSE: "write 1 to a bit: that output bit is high for one cycle; reads 0",
    W1C: "sticky: hardware sets bits (input `<field>_set`), software writes 1 to clear them",
}
_ALIASES = {"w1p": PULSE}
_WRITABLE = (RW, PULSE, W1C)
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_REGISTER_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_MAP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _check_name(what: str, name, pattern: re.Pattern, form: str) -> str:
    if not isinstance(name, str) or not pattern.match(name) or keyword.iskeyword(name):
        raise ValueError(f"{what} must be {form} (and not a Python keyword), not {name!r}")
    return name


@dataclass(frozen=True)
class Field:
    """One field of a register.

    Parameters
    ----------
    name : str
        Lower-case identifier, unique in the map: the name of its port (``fields.<name>``).
    width : int
        Bits, 1..64 (more than 32 only in a 64-bit register).
    access : str
        ``rw``, ``ro``, ``const``, ``pulse`` (or ``w1p``) or ``w1c``, see :data:`ACCESS`.
    reset : int
        Reset value (``rw``, ``w1c``), or the value (``const``); 0 for ``ro`` and ``pulse``.
    doc : str
        What the field means, for the documentation table.
    enum : amaranth.lib.enum.Enum subclass or None
        The field's values, declared with ``shape=width`` (``rw``, ``ro`` and ``const`` only):
        the port is typed with it, and the table lists its members.
    lsb : int or None
        Bit offset in the register; ``None`` packs the field after the previous one.
    cleared_by : str or None
        ``w1c`` only: a ``pulse`` field of the same map whose strobe also clears this field.
    """

    name: str
    width: int
    access: str
    reset: int = 0
    doc: str = ""
    enum: type | None = None
    lsb: int | None = None
    cleared_by: str | None = None

    def __post_init__(self):
        _check_name("field name", self.name, _FIELD_NAME,
                    "lower-case letters, digits and '_', starting with a letter")
        what = f"field {self.name!r}"
        check_range(f"{what}: width", self.width, 1, 64)
        access = _ALIASES.get(self.access, self.access)
        if access not in ACCESS:
            raise ValueError(f"{what}: access must be one of {', '.join(ACCESS)} or w1p, "
                             f"not {self.access!r}")
        object.__setattr__(self, "access", access)
        if access in (RO, PULSE) and self.reset != 0:
            raise ValueError(f"{what}: a {access} field has no reset value; reset must be 0, "
                             f"not {self.reset!r}")
        check_range(f"{what}: reset", self.reset, 0, (1 << self.width) - 1)
        if self.lsb is not None:
            check_range(f"{what}: lsb", self.lsb, 0, 63)
        if self.enum is not None:
            if access not in (RW, RO, CONST):
                raise ValueError(f"{what}: only rw, ro and const fields take an enum, not "
                                 f"{access}")
            if not isinstance(self.enum, hdl_enum.EnumMeta) or \
                    Shape.cast(self.enum) != unsigned(self.width):
                raise ValueError(f"{what}: enum must be an amaranth.lib.enum.Enum declared with "
                                 f"shape={self.width} (the field's width), not {self.enum!r}")
            if access != RO and self.reset not in {member.value for member in self.enum}:
                raise ValueError(f"{what}: reset {self.reset} is not a value of "
                                 f"{self.enum.__name__}")
        if self.cleared_by is not None:
            if access != W1C:
                raise ValueError(f"{what}: only w1c fields take cleared_by, not {access}")
            _check_name(f"{what}: cleared_by", self.cleared_by, _FIELD_NAME, "a field name")
        if not isinstance(self.doc, str):
            raise ValueError(f"{what}: doc must be a string, not {self.doc!r}")

    @property
    def msb(self) -> int:
        """Highest bit in the register (the field must have been placed: ``lsb`` set)."""
        return self.lsb + self.width - 1

    @property
    def shape(self):
        """The shape of the field's port: its enum, else ``unsigned(width)``."""
        return self.enum if self.enum is not None else unsigned(self.width)

    @property
    def values(self) -> list[tuple[str, int]]:
        """The enum's members as ``(name, value)``, in declaration order; [] without one."""
        return [(member.name, member.value) for member in self.enum] if self.enum else []


class Slice(NamedTuple):
    """Bits ``[start, stop)`` of ``field`` sit at bit ``word_lsb`` up of one 32-bit word."""
    field: Field
    start: int
    stop: int
    word_lsb: int


@dataclass(frozen=True)
class Register:
    """A 32-bit register, or a 64-bit one (two words ``NAME_LO`` and ``NAME_HI``, see the module
    documentation), made of ``fields``.

    Parameters
    ----------
    name : str
        Upper-case identifier, unique in the map (``NAME_LO``/``NAME_HI`` included).
    fields : list of Field
        At least one; placed from bit 0 up unless they give ``lsb``.
    doc : str
        What the register is for, for the documentation table.
    offset : int or None
        Byte offset, a multiple of the register's size (4 or 8); ``None``: after the previous
        register.
    width : int
        32 or 64.
    """

    name: str
    fields: tuple
    doc: str = ""
    offset: int | None = None
    width: int = 32

    def __post_init__(self):
        _check_name("register name", self.name, _REGISTER_NAME,
                    "upper-case letters, digits and '_', starting with a letter")
        what = f"register {self.name}"
        if self.width not in (32, 64):
            raise ValueError(f"{what}: width must be 32 or 64 bits, not {self.width!r}")
        fields = tuple(self.fields)
        if not fields:
            raise ValueError(f"{what} has no fields")
        placed, next_lsb = [], 0
        for field in fields:
            if not isinstance(field, Field):
                raise ValueError(f"{what}: fields must be Field objects, not {field!r}")
            lsb = next_lsb if field.lsb is None else field.lsb
            if lsb + field.width > self.width:
                raise ValueError(f"{what}: field {field.name!r} needs bits "
                                 f"{lsb + field.width - 1}..{lsb}, past the register's "
                                 f"{self.width} bits ({self.width - 1}..0)")
            for other in placed:
                if lsb <= other.msb and other.lsb < lsb + field.width:
                    raise ValueError(f"{what}: field {field.name!r} (bits "
                                     f"{lsb + field.width - 1}..{lsb}) overlaps field "
                                     f"{other.name!r} (bits {other.msb}..{other.lsb})")
            placed.append(replace(field, lsb=lsb))
            next_lsb = lsb + field.width
        object.__setattr__(self, "fields", tuple(placed))
        if self.offset is not None:
            check_range(f"{what}: offset", self.offset, 0, (1 << 32) - self.bytes)
            if self.offset % self.bytes:
                raise ValueError(f"{what}: offset 0x{self.offset:X} must be a multiple of "
                                 f"{self.bytes} (the register's size in bytes)")
        if not isinstance(self.doc, str):
            raise ValueError(f"{what}: doc must be a string, not {self.doc!r}")

    @property
    def bytes(self) -> int:
        return self.width // 8

    @property
    def word_names(self) -> tuple[str, ...]:
        """``(NAME,)``, or ``(NAME_LO, NAME_HI)`` for a 64-bit register."""
        return (self.name,) if self.width == 32 else (f"{self.name}_LO", f"{self.name}_HI")

    def slices(self, index: int) -> list[Slice]:
        """The pieces of fields in word ``index`` (0: the low word)."""
        low, high = 32 * index, 32 * (index + 1)
        pieces = []
        for field in self.fields:
            start, stop = max(field.lsb, low), min(field.lsb + field.width, high)
            if start < stop:
                pieces.append(Slice(field, start - field.lsb, stop - field.lsb, start - low))
        return pieces


class Word(NamedTuple):
    """One 32-bit word of the address space: word ``index`` of ``register``."""
    offset: int
    name: str
    register: Register
    index: int

    @property
    def writable(self) -> bool:
        """Whether a write can change anything (else it is answered with SLVERR)."""
        return any(piece.field.access in _WRITABLE for piece in self.register.slices(self.index))

    @property
    def latched(self) -> bool:
        """Whether this word reads ``ro`` bits latched by the last read of the low word."""
        return self.index > 0 and any(piece.field.access == RO
                                      for piece in self.register.slices(self.index))


@dataclass(frozen=True)
class RegisterMap:
    """The registers of one block, at their byte offsets.

    Parameters
    ----------
    name : str
        Lower-case identifier (the documentation names the map by it).
    registers : list of Register
        At least one; offsets assigned in order where not given.
    data_width : int
        Bus width: 32 (registers are 32-bit words; a 64-bit register is two of them).
    doc : str
        One line on the map, printed above its table.

    ``ValueError`` (naming the registers, fields and limits) for overlapping registers, names
    used twice (register, word and port names: a ``w1c`` field ``x`` also takes the port name
    ``x_set``) and a ``cleared_by`` that names no ``pulse`` field of the map.
    """

    name: str
    registers: tuple
    data_width: int = 32
    doc: str = ""

    def __post_init__(self):
        _check_name("register map name", self.name, _MAP_NAME,
                    "lower-case letters, digits and '_', starting with a letter")
        if self.data_width != 32:
            raise ValueError(f"data_width must be 32 (the registers are 32-bit words; a 64-bit "
                             f"value takes two), not {self.data_width!r}")
        registers = tuple(self.registers)
        if not registers:
            raise ValueError(f"register map {self.name} has no registers")
        placed, next_offset = [], 0
        for register in registers:
            if not isinstance(register, Register):
                raise ValueError(f"register map {self.name}: registers must be Register "
                                 f"objects, not {register!r}")
            offset = register.offset
            if offset is None:
                offset = -(-next_offset // register.bytes) * register.bytes
                check_range(f"register {register.name}: offset", offset, 0,
                            (1 << 32) - register.bytes)
            for other in placed:
                if offset < other.offset + other.bytes and other.offset < offset + register.bytes:
                    raise ValueError(
                        f"register {register.name} (0x{offset:03X}..0x"
                        f"{offset + register.bytes - 1:03X}) overlaps register {other.name} "
                        f"(0x{other.offset:03X}..0x{other.offset + other.bytes - 1:03X})")
            placed.append(replace(register, offset=offset))
            next_offset = offset + register.bytes
        object.__setattr__(self, "registers", tuple(placed))
        self._check_names()

    def _check_names(self):
        words, ports, fields = {}, {}, {}
        for register in self.registers:
            for name in register.word_names:
                if name in words:
                    raise ValueError(f"register map {self.name}: word name {name} of register "
                                     f"{register.name} is also a word of register {words[name]}")
                words[name] = register.name
            for field in register.fields:
                fields[field.name] = field
                names = [field.name] + ([f"{field.name}_set"] if field.access == W1C else [])
                for name in names:
                    if name in ports:
                        raise ValueError(f"register map {self.name}: field {field.name!r} of "
                                         f"register {register.name} needs the name {name!r}, "
                                         f"already taken by {ports[name]}")
                    ports[name] = f"field {field.name!r} of register {register.name}"
        for field in fields.values():
            if field.cleared_by is not None:
                source = fields.get(field.cleared_by)
                if source is None or source.access != PULSE:
                    raise ValueError(f"register map {self.name}: field {field.name!r}: "
                                     f"cleared_by {field.cleared_by!r} must name a pulse field "
                                     f"of the map")

    # --- queries --------------------------------------------------------------------------------

    @property
    def words(self) -> tuple[Word, ...]:
        """Every mapped 32-bit word, by offset."""
        return tuple(sorted((Word(register.offset + 4 * index, name, register, index)
                             for register in self.registers
                             for index, name in enumerate(register.word_names)),
                            key=lambda word: word.offset))

    @property
    def fields(self) -> tuple[Field, ...]:
        """Every field, in the order of the registers (placed: ``lsb`` set)."""
        return tuple(field for register in self.registers for field in register.fields)

    @property
    def size(self) -> int:
        """Bytes from offset 0 to the end of the last register."""
        return max(register.offset + register.bytes for register in self.registers)

    @property
    def addr_width(self) -> int:
        """The fewest byte-address bits that reach every register, at least 3: the word address
        (bits 2 and up) must have a bit, since a zero-width signal becomes a ``[-1:0]`` wire in
        the generated Verilog, which ``verilator -Wall`` rejects (ASCRANGE)."""
        return max(3, ceil_log2(self.size))

    def register(self, name: str) -> Register:
        for register in self.registers:
            if register.name == name:
                return register
        raise KeyError(f"register map {self.name} has no register {name!r}")

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"register map {self.name} has no field {name!r}")

    def register_of(self, field_name: str) -> Register:
        """The register that holds field ``field_name``."""
        for register in self.registers:
            if any(field.name == field_name for field in register.fields):
                return register
        raise KeyError(f"register map {self.name} has no field {field_name!r}")

    def word(self, name: str) -> Word:
        for word in self.words:
            if word.name == name:
                return word
        raise KeyError(f"register map {self.name} has no word {name!r}")

    # --- documentation --------------------------------------------------------------------------

    def markdown(self) -> str:
        """The map as a Markdown table: a bold row per 32-bit word (offset, name, what it is),
        then a row per field or field piece in it (bits in the word, access, reset or constant
        value, description, enum values). Bits not listed read 0 and ignore writes."""
        pulses_clear = {}
        for field in self.fields:
            if field.cleared_by:
                pulses_clear.setdefault(field.cleared_by, []).append(field.name)
        rows = []
        for word in self.words:
            register = word.register
            if register.width == 32:
                about = register.doc
            elif word.index == 0:
                about = f"{register.doc} Low word of the 64-bit {register.name}" + (
                    f"; reading it latches {register.name}_HI." if any(
                        w.latched for w in self.words if w.register is register) else ".")
            else:
                about = f"High word of {register.name}" + (
                    f", as latched by the last read of {register.name}_LO." if word.latched
                    else ".")
            rows.append([f"0x{word.offset:03X}", f"**{word.name}**", "", "", "", "",
                         about.strip(), ""])
            for piece in register.slices(word.index):
                field = piece.field
                name = field.name if (piece.start, piece.stop) == (0, field.width) else \
                    f"{field.name}[{_bits(piece.stop - 1, piece.start)}]"
                doc = field.doc if word.index == 0 or field.lsb >= 32 else f"See {word.name[:-3]}_LO."
                if field.cleared_by:
                    doc += f" Also cleared by writing 1 to `{field.cleared_by}`."
                if field.name in pulses_clear:
                    doc += f" Also clears {', '.join(f'`{n}`' for n in pulses_clear[field.name])}."
                if field.access == W1C:
                    doc += f" Set by `{field.name}_set`."
                rows.append(["", "", name,
                             _bits(piece.word_lsb + piece.stop - piece.start - 1, piece.word_lsb),
                             field.access, _reset(field, piece), doc.strip(),
                             ", ".join(f"{value}: {member}" for member, value in field.values)])
        header = ["offset", "register", "field", "bits", "access", "reset", "description",
                  "values"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
                  for row in rows]
        span = f"0x000..0x{self.size - 1:03X}"
        intro = (f"Register map `{self.name}`: {len(self.registers)} registers, "
                 f"{len(self.words)} 32-bit words in {span} ({self.addr_width} address bits). "
                 f"{self.doc}").strip()
        return intro + "\n\n" + "\n".join(lines) + "\n"


def _bits(msb: int, lsb: int) -> str:
    return str(lsb) if msb == lsb else f"{msb}:{lsb}"


def _reset(field: Field, piece: Slice) -> str:
    if field.access == RO:
        return "-"
    value = (field.reset >> piece.start) & ((1 << (piece.stop - piece.start)) - 1)
    return str(value) if value < 1 << 16 else f"0x{value:X}"


# --- RTL ----------------------------------------------------------------------------------------

def fields_signature(register_map: RegisterMap) -> wiring.Signature:
    """The hardware side of a register file (its ``fields`` port, flows as seen from the
    register file): ``rw`` fields ``Out`` (reset to their reset value), ``ro`` fields ``In``,
    ``pulse`` fields ``Out`` (one-cycle strobes), ``w1c`` fields ``Out`` (the sticky bits) and
    their events ``<name>_set`` ``In``. ``const`` fields have no port."""
    members = {}
    for field in register_map.fields:
        if field.access == RW:
            members[field.name] = Out(field.shape, init=field.enum(field.reset) if field.enum
                                      else field.reset)
        elif field.access == RO:
            members[field.name] = In(field.shape)
        elif field.access == PULSE:
            members[field.name] = Out(field.width)
        elif field.access == W1C:
            members[field.name] = Out(field.width, init=field.reset)
            members[f"{field.name}_set"] = In(field.width)
    return wiring.Signature(members)


class RegisterFile(wiring.Component):
    """The registers of a :class:`RegisterMap` behind an AXI4-Lite subordinate port.

    Parameters
    ----------
    register_map : RegisterMap
    addr_width : int or None
        Byte address bits of ``bus``, from ``register_map.addr_width`` (the default) to 64.
        Every bit is decoded (no aliases): an address past the map is unmapped.

    Ports
    -----
    bus : In(AXI4LiteSignature(addr_width=addr_width, data_width=32))
        ``AWPROT``/``ARPROT`` are ignored, and so are address bits 1..0 (every access is to the
        whole aligned word; ``WSTRB`` picks its bytes).
    fields : Out(fields_signature(register_map))
        One member per field, by field name (``regs.fields.layer_n``); see
        :func:`fields_signature`. Enum fields are typed with their enum.

    Behaviour
    ---------
    A write changes the bytes of the word its ``WSTRB`` enables: ``rw`` bits take the data,
    ``pulse`` bits written 1 strobe, ``w1c`` bits written 1 clear (unless set in the same
    cycle); ``ro`` and ``const`` bits ignore it. A read returns ``rw``, ``w1c``, ``ro`` and
    ``const`` bits and 0 for ``pulse`` and unused bits. Responses: OKAY, or SLVERR (with read
    data 0, and no effect) for an address that maps no register, and for a write to a word with
    no writable bit (a constant or read-only word): the register file is the subordinate
    addressed, so SLVERR rather than DECERR (which is an interconnect's answer for an address
    that reaches no subordinate). Every request is answered: nothing waits for anything but the
    manager's own handshakes.

    Timing
    ------
    Write: ``AW`` and ``W`` are accepted independently, in either order or together, each into
    a one-entry holding register. In the cycle after both are held and the B channel is free
    (no response pending, or the pending one taken in that cycle), the write is performed: if
    ``t`` is the cycle of the later of the two handshakes, the new register values, the pulse
    strobes, a ``w1c`` clear and ``BVALID`` all appear in cycle ``t + 2`` (:attr:`WRITE_LATENCY`).
    ``AWREADY``/``WREADY`` are low while their holding register is full, so one write every 2
    cycles at most.

    Read: the word is sampled in the cycle of the ``AR`` handshake (``ro`` inputs as they are in
    that cycle) and ``RVALID`` is high with it from the next cycle (:attr:`READ_LATENCY` = 1)
    until the ``R`` handshake. ``ARREADY`` is low while ``RVALID`` is high: one read every 2
    cycles at most, independently of and concurrently with writes.

    ``w1c``: ``<name>_set`` high in cycle ``t`` sets the bit from cycle ``t + 1``. A read of
    the low word of a 64-bit register latches the ``ro`` bits of its high word in its AR cycle.
    Every bus output comes straight from a register (no combinational path from any input).
    """

    #: Cycles from the later of the AW and W handshakes to the write's effect and BVALID.
    WRITE_LATENCY = 2
    #: Cycles from the AR handshake to RVALID.
    READ_LATENCY = 1

    def __new__(cls, register_map: RegisterMap, *, addr_width: int | None = None):
        # Checked in __new__: a register file refused in __init__ would already exist, never
        # elaborated, and Amaranth would warn that it was never used.
        cls._check(register_map, addr_width)
        return super().__new__(cls, register_map, addr_width=addr_width, src_loc_at=1)

    @staticmethod
    def _check(register_map, addr_width) -> int:
        if not isinstance(register_map, RegisterMap):
            raise ValueError(f"register_map must be a RegisterMap, not {register_map!r}")
        if addr_width is None:
            return register_map.addr_width
        return check_range("addr_width", addr_width, register_map.addr_width, 64)

    def __init__(self, register_map: RegisterMap, *, addr_width: int | None = None):
        self._map = register_map
        self._addr_width = self._check(register_map, addr_width)
        super().__init__({
            "bus": In(AXI4LiteSignature(addr_width=self._addr_width, data_width=32)),
            "fields": Out(fields_signature(register_map)),
        })

    register_map = property(lambda self: self._map)
    addr_width = property(lambda self: self._addr_width)

    def elaborate(self, platform):
        m = Module()
        bus, ports = self.bus, self.fields
        words = self._map.words

        def port(field) -> "Value":
            return getattr(ports, field.name).as_value() if field.enum else \
                getattr(ports, field.name)

        # --- write channel: AW and W held until the write is performed --------------------------
        aw_held, w_held = Signal(), Signal()
        aw_word = Signal(self._addr_width - 2)
        w_data, w_strb = Signal(32), Signal(4)
        m.d.comb += [bus.awready.eq(~aw_held), bus.wready.eq(~w_held)]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_held.eq(1), aw_word.eq(bus.awaddr[2:])]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_held.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        write = Signal()
        m.d.comb += write.eq(aw_held & w_held & (~bus.bvalid | bus.bready))
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        byte_mask = Cat(bit.replicate(8) for bit in w_strb)
        written = Signal(32)            # bits the write sets to 1 (data & strobes)
        m.d.comb += written.eq(w_data & byte_mask)

        write_hit = {word.offset: Signal(name=f"write_{word.name}") for word in words}
        for word in words:
            m.d.comb += write_hit[word.offset].eq(write & (aw_word == word.offset // 4))
        writable = [write_hit[word.offset] for word in words if word.writable]
        with m.If(write):
            m.d.sync += [aw_held.eq(0), w_held.eq(0), bus.bvalid.eq(1),
                         bus.bresp.eq(Mux(Cat(writable).any() if writable else 0,
                                          RESP_OKAY, RESP_SLVERR))]

        # Per field: the write's strobe (pulse) or clear (w1c) bits, in the write's cycle.
        strobe = {field.name: Signal(field.width, name=f"{field.name}_strobe")
                  for field in self._map.fields if field.access in (PULSE, W1C)}
        for word in words:
            hit = write_hit[word.offset]
            for piece in word.register.slices(word.index):
                field, bits = piece.field, slice(piece.word_lsb,
                                                 piece.word_lsb + piece.stop - piece.start)
                if field.access == RW:
                    value = port(field)[piece.start:piece.stop]
                    with m.If(hit):
                        m.d.sync += value.eq((value & ~byte_mask[bits]) |
                                             (w_data[bits] & byte_mask[bits]))
                elif field.access in (PULSE, W1C):
                    m.d.comb += strobe[field.name][piece.start:piece.stop].eq(
                        Mux(hit, written[bits], 0))
        for field in self._map.fields:
            if field.access == PULSE:
                m.d.sync += port(field).eq(strobe[field.name])
            elif field.access == W1C:
                clear = strobe[field.name]
                if field.cleared_by is not None:
                    clear = Mux(strobe[field.cleared_by].any(), (1 << field.width) - 1, clear)
                value = port(field)
                m.d.sync += value.eq((value & ~clear) | getattr(ports, f"{field.name}_set"))

        # --- read channel ----------------------------------------------------------------------
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        ar_word = bus.araddr[2:]
        read_data = Signal(32)
        read_hit = Signal()
        latch = {}                      # 64-bit registers with ro bits in the high word
        for register in self._map.registers:
            if register.width == 64 and any(p.field.access == RO for p in register.slices(1)):
                latch[register.name] = Signal(32, name=f"{register.name}_hi_latched")
        values = {}
        for word in words:
            value = values[word.offset] = Signal(32, name=f"read_{word.name}")
            live = Signal(32, name=f"live_{word.name}")      # the word's current bits
            ro_bits = 0
            for piece in word.register.slices(word.index):
                field, bits = piece.field, slice(piece.word_lsb,
                                                 piece.word_lsb + piece.stop - piece.start)
                if field.access in (RW, RO, W1C):
                    m.d.comb += live[bits].eq(port(field)[piece.start:piece.stop])
                elif field.access == CONST:
                    m.d.comb += live[bits].eq(
                        Const(field.reset, field.width)[piece.start:piece.stop])
                if field.access == RO:
                    ro_bits |= ((1 << (bits.stop - bits.start)) - 1) << bits.start
            if word.latched:
                m.d.comb += value.eq((latch[word.register.name] & ro_bits) |
                                     (live & ~Const(ro_bits, 32)))
            else:
                m.d.comb += value.eq(live)
            if word.index == 1 and word.register.name in latch:
                low = next(w for w in words if w.register is word.register and w.index == 0)
                with m.If(bus.arvalid & bus.arready & (ar_word == low.offset // 4)):
                    m.d.sync += latch[word.register.name].eq(live)
        # One parallel case over the word address (not a priority chain as deep as the map).
        with m.Switch(ar_word):
            for word in words:
                with m.Case(word.offset // 4):
                    m.d.comb += [read_data.eq(values[word.offset]), read_hit.eq(1)]
            with m.Default():                   # unmapped: 0 and SLVERR
                m.d.comb += [read_data.eq(0), read_hit.eq(0)]
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(read_data),
                         bus.rresp.eq(Mux(read_hit, RESP_OKAY, RESP_SLVERR))]
        return m
