"""Register maps (hw/registers.py), the core's map (hw/core_registers.py) and its documentation
(docs/registers.md): the description language's placement and checks, the Markdown table, the
register file's documented timing cycle by cycle in Amaranth's simulator, and the register file
as generated Verilog under cocotb with cocotbext-axi's AXI4-Lite master (tb/bench_registers.py:
every access kind, unmapped addresses, 64-bit reads, random traffic with random pauses on all
five channels, every cycle checked against a reference model)."""

import gc
import re
import warnings
from pathlib import Path

import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator

from maskprop.base.config import FPGA_SMALL, Config
from maskprop.evaluation import doc_tables as tables
from maskprop.hw.axi import RESP_OKAY, RESP_SLVERR
from maskprop.hw.core_registers import (COUNTERS, CORE_REGISTERS, MAGIC, ErrorCode, Pass,
                                        core_register_map)
from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.hw.registers import (CONST, PULSE, RO, RW, W1C, Field, Register, RegisterFile,
                                   RegisterMap, fields_signature)
from maskprop.tb.bench_registers import MAPS, Kind, small_map
from maskprop.tb.runner import run_testbench
from maskprop.tb.stimulus import seed_from_env

ROOT = Path(__file__).resolve().parent.parent


# --- the description ------------------------------------------------------------------------------

def test_offsets_are_assigned_in_order_aligned_to_each_register():
    regs = RegisterMap("m", [
        Register("A", [Field("a", 1, "rw")]),
        Register("B", [Field("b", 64, "ro")], width=64),          # aligned up to 8
        Register("C", [Field("c", 1, "rw")], offset=0x40),
        Register("D", [Field("d", 1, "rw")]),                     # continues after C
        Register("E", [Field("e", 1, "rw")], offset=0x04),        # the gap below B
    ])
    assert [(r.name, r.offset) for r in regs.registers] == \
        [("A", 0), ("B", 8), ("C", 0x40), ("D", 0x44), ("E", 0x04)]
    assert [(w.offset, w.name) for w in regs.words] == \
        [(0, "A"), (4, "E"), (8, "B_LO"), (12, "B_HI"), (0x40, "C"), (0x44, "D")]
    assert regs.size == 0x48 and regs.addr_width == 7
    assert RegisterMap("m", [Register("A", [Field("a", 1, "rw")])]).addr_width == 3


def test_fields_pack_from_bit_0_unless_placed():
    register = small_map().register("CTRL")
    assert [(f.name, f.lsb, f.msb) for f in register.fields] == \
        [("go", 0, 1), ("kind", 4, 5), ("level", 16, 23)]
    assert small_map().field("go").access == PULSE            # w1p is pulse's other name
    assert [(p.field.name, p.start, p.stop, p.word_lsb)
            for p in small_map().register("MIXED").slices(1)] == \
        [("ticks", 32, 40, 0), ("limit", 0, 16, 16)]


def field_errors():
    f = Field("x", 1, "rw")
    return [
        (lambda: Register("R", [Field("a", 20, "rw"), Field("b", 13, "rw")]),
         r"register R: field 'b' needs bits 32\.\.20, past the register's 32 bits \(31\.\.0\)"),
        (lambda: Register("R", [Field("a", 8, "rw"), Field("b", 4, "rw", lsb=6)]),
         r"register R: field 'b' \(bits 9\.\.6\) overlaps field 'a' \(bits 7\.\.0\)"),
        (lambda: Register("R", [Field("a", 40, "ro")]),
         r"register R: field 'a' needs bits 39\.\.0, past the register's 32 bits"),
        (lambda: Register("R", [f], width=48), r"register R: width must be 32 or 64 bits"),
        (lambda: Register("R", []), r"register R has no fields"),
        (lambda: Register("R", [f], offset=6),
         r"register R: offset 0x6 must be a multiple of 4"),
        (lambda: Register("R", [f], offset=4, width=64),
         r"register R: offset 0x4 must be a multiple of 8"),
        (lambda: Register("r", [f]), r"register name must be upper-case"),
        (lambda: Field("x", 0, "rw"), r"field 'x': width must be in \[1, 64\], not 0"),
        (lambda: Field("x", 65, "ro"), r"field 'x': width must be in \[1, 64\], not 65"),
        (lambda: Field("x", 4, "rw", 16), r"field 'x': reset must be in \[0, 15\], not 16"),
        (lambda: Field("x", 4, "ro", 1), r"field 'x': a ro field has no reset value"),
        (lambda: Field("x", 4, "wo"), r"field 'x': access must be one of rw, ro, const, pulse, "
                                      r"w1c or w1p, not 'wo'"),
        (lambda: Field("x", 3, "rw", enum=Kind),
         r"field 'x': enum must be an amaranth.lib.enum.Enum declared with shape=3"),
        (lambda: Field("x", 2, "rw", 2, enum=Kind), r"field 'x': reset 2 is not a value of Kind"),
        (lambda: Field("x", 2, "pulse", enum=Kind), r"field 'x': only rw, ro and const"),
        (lambda: Field("x", 1, "rw", cleared_by="go"), r"field 'x': only w1c fields take"),
        (lambda: Field("pass", 1, "rw"), r"field name must be lower-case .* not 'pass'"),
        (lambda: Field("x", 1, "rw", lsb=64), r"field 'x': lsb must be in \[0, 63\]"),
    ]


def map_errors():
    a = Register("A", [Field("a", 1, "rw")])
    return [
        (lambda: RegisterMap("m", [a, Register("B", [Field("b", 64, "ro")], offset=0, width=64)]),
         r"register B \(0x000\.\.0x007\) overlaps register A \(0x000\.\.0x003\)"),
        (lambda: RegisterMap("m", [a, Register("A", [Field("b", 1, "rw")])]),
         r"word name A of register A is also a word of register A"),
        (lambda: RegisterMap("m", [Register("B_LO", [Field("b", 1, "rw")]),
                                   Register("B", [Field("c", 1, "ro")], width=64)]),
         r"word name B_LO of register B is also a word of register B_LO"),
        (lambda: RegisterMap("m", [a, Register("B", [Field("a", 1, "ro")])]),
         r"field 'a' of register B needs the name 'a', already taken by field 'a' of "
         r"register A"),
        (lambda: RegisterMap("m", [Register("B", [Field("x", 1, "w1c"),
                                                  Field("x_set", 1, "rw")])]),
         r"field 'x_set' of register B needs the name 'x_set', already taken by field 'x'"),
        (lambda: RegisterMap("m", [Register("B", [Field("x", 1, "w1c", cleared_by="y"),
                                                  Field("y", 1, "rw")])]),
         r"field 'x': cleared_by 'y' must name a pulse field"),
        (lambda: RegisterMap("m", [a], data_width=64), r"data_width must be 32 .* not 64"),
        (lambda: RegisterMap("m", []), r"register map m has no registers"),
        (lambda: RegisterMap("m", [Register("A", [Field("a", 1, "rw")], offset=(1 << 32) - 4),
                                   Register("B", [Field("b", 1, "rw")])]),
         r"register B: offset must be in \[0, 4294967292\]"),
    ]


@pytest.mark.parametrize("build, message", field_errors() + map_errors())
def test_a_bad_description_is_refused_naming_what_and_the_limit(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_refused_register_file_leaves_no_unused_component():
    regs = small_map()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=r"addr_width must be in \[6, 64\], not 5"):
            RegisterFile(regs, addr_width=5)
        with pytest.raises(ValueError, match=r"register_map must be a RegisterMap"):
            RegisterFile("map")
        gc.collect()
    assert not caught, [str(w.message) for w in caught]


def test_ports_follow_the_access_kinds():
    members = fields_signature(small_map()).members
    ports = {name: (member.flow.name, Shape.cast(member.shape).width if name != "kind" else
                    member.shape)
             for name, member in members.items()}
    assert ports == {                                   # magic (const) has no port
        "go": ("Out", 2), "kind": ("Out", Kind), "level": ("Out", 8),
        "events": ("Out", 4), "events_set": ("In", 4), "state": ("In", 8),
        "irq": ("Out", 1), "irq_set": ("In", 1), "base": ("Out", 40), "count": ("In", 64),
        "ticks": ("In", 40), "limit": ("Out", 16),
    }
    assert members["kind"].init == Kind.B and members["level"].init == 0x5A
    assert members["irq"].init == 1 and members["base"].init == 0x12_3456_789A


# --- the Markdown table ---------------------------------------------------------------------------

def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def test_markdown_lists_every_word_and_field():
    text = small_map(doc="For tests.").markdown()
    assert text.startswith("Register map `small`: 6 registers, 9 32-bit words in 0x000..0x027 "
                           "(6 address bits). For tests.\n\n")
    rows = table_rows(text)
    assert rows[0] == ["offset", "register", "field", "bits", "access", "reset", "description",
                       "values"]
    assert "\n|---|---|---|---|---|---|---|---|\n" in text
    words = [(row[0], row[1]) for row in rows[1:] if row[0]]
    assert words == [("0x000", "**ID**"), ("0x004", "**CTRL**"), ("0x008", "**FLAGS**"),
                     ("0x010", "**BASE_LO**"), ("0x014", "**BASE_HI**"),
                     ("0x018", "**COUNT_LO**"), ("0x01C", "**COUNT_HI**"),
                     ("0x020", "**MIXED_LO**"), ("0x024", "**MIXED_HI**")]
    fields = {row[2]: row[3:] for row in rows[1:] if row[2]}
    assert fields["magic"] == ["31:0", "const", "0xC0FFEE01", "Magic.", ""]
    assert fields["go"] == ["1:0", "pulse", "0", "Go. Also clears `events`.", ""]
    assert fields["kind"] == ["5:4", "rw", "1", r"Kind \| of thing.", "0: A, 1: B, 3: C"]
    assert fields["level"] == ["23:16", "rw", "90", "Level.", ""]
    assert fields["events"] == ["3:0", "w1c", "0", "Events. Also cleared by writing 1 to `go`. "
                                "Set by `events_set`.", ""]
    assert fields["state"] == ["15:8", "ro", "-", "State.", ""]
    assert fields["irq"] == ["31", "w1c", "1", "Interrupt. Set by `irq_set`.", ""]
    assert fields["base[31:0]"] == ["31:0", "rw", "0x3456789A", "Base.", ""]
    assert fields["base[39:32]"] == ["7:0", "rw", "18", "See BASE_LO.", ""]
    assert fields["ticks[39:32]"] == ["7:0", "ro", "-", "See MIXED_LO.", ""]
    assert fields["limit"] == ["31:16", "rw", "7", "Limit.", ""]
    about = {row[1]: row[6] for row in rows[1:] if row[1]}
    assert about["**COUNT_LO**"] == "Low word of the 64-bit COUNT; reading it latches COUNT_HI."
    assert about["**COUNT_HI**"] == "High word of COUNT, as latched by the last read of COUNT_LO."
    assert about["**BASE_HI**"] == "High word of BASE."          # nothing latched: rw only
    assert about["**CTRL**"] == "Control."


def test_docs_registers_md_holds_the_generated_table():
    """docs/registers.md's generated region is CORE_REGISTERS.markdown(), to the byte: edit the
    map, then run ``scripts/make_docs.py --only registers``."""
    page = ROOT / "docs" / "registers.md"
    text = page.read_text(encoding="utf-8")
    start, end, command = tables.regions(text, str(page))["registers"]
    assert command == ".venv/bin/python -m maskprop.hw.core_registers"
    body = text[start:end].split("\n", 1)[1].rsplit("\n", 1)[0]
    generated = CORE_REGISTERS.markdown().strip("\n")
    assert body.endswith("\n\n" + generated), \
        "docs/registers.md is stale: run .venv/bin/python scripts/make_docs.py --only registers"


# --- the core's map -------------------------------------------------------------------------------

def test_core_map_layout():
    regs = CORE_REGISTERS
    offsets = {word.name: word.offset for word in regs.words}
    assert offsets["ID"] == 0 and offsets["CONTROL"] == 0x20 and offsets["STATUS"] == 0x24
    assert offsets["PASS"] == 0x30 and offsets["A_BASE"] == 0x50 and offsets["OUT_BASE"] == 0x68
    assert [offsets[f"{name.upper()}_LO"] for name, _ in COUNTERS] == \
        list(range(0x80, 0xC0, 8))
    assert regs.field("magic").reset == MAGIC and regs.addr_width == 8
    kinds = {field.name: field.access for field in regs.fields}
    assert [kinds[name] for name in ("start", "clear_counters")] == [PULSE] * 2
    assert [kinds[name] for name in ("busy", "done", "error", "error_code")] == [RO, W1C, W1C, RO]
    assert regs.field("done").cleared_by == "start" and regs.field("error").cleared_by is None
    assert all(kinds[f"layer_{d}"] == RW and regs.field(f"layer_{d}").width == 16 for d in "nchwk")
    assert all(kinds[name] == RW and regs.field(name).width == 8
               for name in ("padding", "pad_top", "pad_bottom"))
    assert kinds["out_pitch"] == RW and regs.field("out_pitch").width == 16
    assert all(kinds[name] == RO and regs.field(name).width == 64 for name, _ in COUNTERS)
    assert regs.field("pass_kind").enum is Pass and regs.field("error_code").enum is ErrorCode


def test_error_codes_are_the_documented_ones():
    assert {code.name: code.value for code in ErrorCode} == {
        "NONE": 0, "BUSY": 1, "BAD_PASS": 2, "ZERO_DIM": 3, "SHAPE_TOO_LARGE": 4,
        "UNALIGNED": 5, "BUS_ERROR": 6, "BAD_PITCH": 7, "NOT_HELD": 8}
    assert CORE_REGISTERS.field("error_code").width == 4
    # One pass_kind value is no pass, so that BAD_PASS can happen.
    assert len(Pass) < 1 << CORE_REGISTERS.field("pass_kind").width


@pytest.mark.parametrize("config", [Config(), FPGA_SMALL,
                                    Config(vec=64, lanes=64, tiles=64, data_width=29,
                                           acc_width=64, col_block=64, max_chunks=4096,
                                           max_cols=65536),
                                    Config(vec=64, lanes=1, data_width=32, acc_width=64),
                                    Config(vec=1, lanes=1, tiles=1, data_width=2, acc_width=4,
                                           col_block=1, max_chunks=1, max_cols=1),
                                    Config(max_chunks=512, y_words=8192)],
                         ids=["default", "fpga-small", "largest", "widest-data", "smallest",
                              "small-y-buffer"])
@pytest.mark.parametrize("bus", [(8, 12), (1024, 64)], ids=["narrowest-bus", "widest-bus"])
def test_config_registers_report_any_configuration(config, bus):
    data_width, addr_width = bus
    regs = core_register_map(config, mem_data_width=data_width, mem_addr_width=addr_width)
    const = {field.name: field.reset for field in regs.fields if field.access == CONST}
    assert const == {"magic": MAGIC, "minor": 4, "major": 1, "vec": config.vec,
                     "lanes": config.lanes, "tiles": config.tiles,
                     "data_width": config.data_width, "acc_width": config.acc_width,
                     "col_block": config.col_block, "bus_bytes": data_width // 8,
                     "addr_bits": addr_width, "max_chunks": config.max_chunks,
                     "max_cols": config.max_cols, "y_words": config.y_words}


def test_every_documented_range_fits_its_field():
    """Each ``lo..hi`` a field's description states fits its width (the widest configuration's
    constants are checked above)."""
    checked = 0
    for field in CORE_REGISTERS.fields:
        for low, high in re.findall(r"\b(\d+)\.\.(\d+)\b", field.doc):
            checked += 1
            assert 0 <= int(low) <= int(high) < 1 << field.width, field
    assert checked >= 15


def test_wide_addresses_take_the_reserved_words():
    regs = core_register_map(mem_addr_width=48)
    narrow = {word.name: word.offset for word in CORE_REGISTERS.words}
    wide = {word.name: word.offset for word in regs.words}
    for tensor in ("A", "W", "DZ", "OUT", "PSUM", "NEXT_W"):
        base = narrow.pop(f"{tensor}_BASE")
        assert (wide.pop(f"{tensor}_BASE_LO"), wide.pop(f"{tensor}_BASE_HI")) == (base, base + 4)
        assert regs.field(f"{tensor.lower()}_base").width == 48
    assert wide == narrow                               # nothing else moved


@pytest.mark.parametrize("kwargs, message", [
    (dict(mem_data_width=48), r"mem_data_width must be a power of two in \[8, 1024\], not 48"),
    (dict(mem_addr_width=65), r"mem_addr_width must be in \[12, 64\], not 65"),
])
def test_core_map_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        core_register_map(**kwargs)


# --- the RTL in Amaranth's simulator: the documented timing, cycle by cycle ------------------------

class Clocked:
    """Cycle-by-cycle AXI4-Lite driving: ``cycle`` counts the clock edges passed."""

    def __init__(self, ctx, dut):
        self.ctx, self.dut, self.bus, self.cycle = ctx, dut, dut.bus, 0

    def get(self, signal):
        return self.ctx.get(signal)

    async def tick(self, n=1):
        for _ in range(n):
            await self.ctx.tick()
            self.cycle += 1

    async def handshake(self, channel, **payload) -> int:
        """Offer one beat on ``channel`` (``aw``, ``w``, ``ar``) until it is taken; returns the
        cycle of the handshake."""
        for name, value in payload.items():
            self.ctx.set(getattr(self.bus, f"{channel}{name}"), value)
        self.ctx.set(getattr(self.bus, f"{channel}valid"), 1)
        while not self.get(getattr(self.bus, f"{channel}ready")):
            await self.tick()
        at = self.cycle
        await self.tick()
        self.ctx.set(getattr(self.bus, f"{channel}valid"), 0)
        return at

    async def write_parts(self, addr, data, strb=0xF, gap=0):
        """AW, then W ``gap`` cycles later (W first for a negative gap, together for 0)."""
        if gap == 0:
            self.ctx.set(self.bus.awaddr, addr)
            self.ctx.set(self.bus.wdata, data)
            self.ctx.set(self.bus.wstrb, strb)
            self.ctx.set(self.bus.awvalid, 1)
            self.ctx.set(self.bus.wvalid, 1)
            assert self.get(self.bus.awready) and self.get(self.bus.wready)
            at = self.cycle
            await self.tick()
            self.ctx.set(self.bus.awvalid, 0)
            self.ctx.set(self.bus.wvalid, 0)
            return at
        aw, w = ("aw", dict(addr=addr)), ("w", dict(data=data, strb=strb))
        first, second = (aw, w) if gap > 0 else (w, aw)
        await self.handshake(first[0], **first[1])
        await self.tick(abs(gap) - 1)
        return await self.handshake(second[0], **second[1])


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def run(ctx):
        await bench(Clocked(ctx, dut))
    sim.add_testbench(run)
    sim.run()


@pytest.mark.parametrize("gap", [0, 1, 3, -1, -4], ids=["together", "aw-then-w", "aw-3-early",
                                                         "w-then-aw", "w-4-early"])
def test_write_takes_effect_two_cycles_after_the_later_handshake(gap):
    dut = RegisterFile(small_map())
    level = dut.fields.level

    async def bench(axi):
        axi.ctx.set(axi.bus.bready, 1)
        assert axi.get(level) == 0x5A
        last = await axi.write_parts(0x04, 0x00AB_0000, strb=0b0100, gap=gap)
        assert axi.cycle == last + 1
        assert axi.get(level) == 0x5A and not axi.get(axi.bus.bvalid)
        assert not axi.get(axi.bus.awready) and not axi.get(axi.bus.wready)   # both held
        await axi.tick()
        assert axi.cycle == last + RegisterFile.WRITE_LATENCY
        assert axi.get(level) == 0xAB and axi.get(axi.bus.bvalid)
        assert axi.get(axi.bus.bresp) == RESP_OKAY
        assert axi.get(axi.bus.awready) and axi.get(axi.bus.wready)           # free again
        await axi.tick()
        assert not axi.get(axi.bus.bvalid)                                     # B taken
        # Strobes: only byte 2 was written; kind (byte 0) kept its reset value.
        assert axi.get(dut.fields.kind) == Kind.B
    simulate(dut, bench)


def test_response_waits_for_bready_and_the_next_write_for_the_response():
    dut = RegisterFile(small_map())

    async def bench(axi):
        await axi.write_parts(0x04, 0x0011_0000)
        await axi.tick()
        assert axi.get(axi.bus.bvalid)
        # A second write is taken into the holding registers but waits for B to be free.
        last = await axi.write_parts(0x04, 0x0022_0000)
        await axi.tick(3)
        assert axi.get(dut.fields.level) == 0x11 and axi.get(axi.bus.bvalid)
        axi.ctx.set(axi.bus.bready, 1)
        await axi.tick()                            # old response taken, new write performed
        assert axi.get(axi.bus.bvalid) and axi.get(dut.fields.level) == 0x22
        assert axi.cycle > last + RegisterFile.WRITE_LATENCY
    simulate(dut, bench)


def test_read_data_one_cycle_after_the_address_with_errors_for_unmapped_words():
    dut = RegisterFile(small_map(), addr_width=8)

    async def bench(axi):
        axi.ctx.set(dut.fields.state, 0x3C)
        for addr, data, resp in [(0x00, 0xC0FFEE01, RESP_OKAY), (0x05, 0x005A0010, RESP_OKAY),
                                 (0x0C, 0, RESP_SLVERR), (0x28, 0, RESP_SLVERR),
                                 (0xFC, 0, RESP_SLVERR), (0x08, 0x8000_3C00, RESP_OKAY)]:
            at = await axi.handshake("ar", addr=addr)
            assert axi.cycle == at + RegisterFile.READ_LATENCY
            assert axi.get(axi.bus.rvalid) and not axi.get(axi.bus.arready)
            assert (axi.get(axi.bus.rdata), axi.get(axi.bus.rresp)) == (data, resp), hex(addr)
            await axi.tick(2)                       # rready low: the data is held
            assert axi.get(axi.bus.rvalid) and axi.get(axi.bus.rdata) == data
            axi.ctx.set(axi.bus.rready, 1)
            await axi.tick()
            axi.ctx.set(axi.bus.rready, 0)
            assert not axi.get(axi.bus.rvalid) and axi.get(axi.bus.arready)
    simulate(dut, bench)


def test_writes_to_nothing_writable_answer_slverr_and_change_nothing():
    dut = RegisterFile(small_map())

    async def bench(axi):
        axi.ctx.set(axi.bus.bready, 1)
        for addr in (0x00, 0x0C, 0x18, 0x1C, 0x2C):    # const, gap, ro, ro, past the end
            await axi.write_parts(addr, 0xFFFF_FFFF)
            await axi.tick()
            assert axi.get(axi.bus.bvalid) and axi.get(axi.bus.bresp) == RESP_SLVERR, hex(addr)
        await axi.write_parts(0x24, 0xFFFF_FFFF)        # MIXED_HI: limit is writable
        await axi.tick()
        assert axi.get(axi.bus.bresp) == RESP_OKAY and axi.get(dut.fields.limit) == 0xFFFF
        assert axi.get(dut.fields.base) == 0x12_3456_789A
    simulate(dut, bench)


def test_pulse_is_one_cycle_and_a_set_wins_over_a_clear():
    dut = RegisterFile(small_map())
    f = dut.fields

    async def bench(axi):
        axi.ctx.set(axi.bus.bready, 1)
        assert axi.get(f.irq) == 1 and axi.get(f.events) == 0
        axi.ctx.set(f.events_set, 0b0110)
        await axi.tick()
        axi.ctx.set(f.events_set, 0)
        assert axi.get(f.events) == 0b0110                       # set the next cycle
        # Write 1 to clear events bit 1 (and bits 3, 0: already clear), 0 to bit 2; irq's byte
        # is not strobed. Meanwhile bit 0 is set in the cycle the write is performed.
        last = await axi.write_parts(0x08, 0x8000_000B, strb=0b0001)
        axi.ctx.set(f.events_set, 0b0001)
        await axi.tick()
        axi.ctx.set(f.events_set, 0)
        assert axi.cycle == last + 2
        assert axi.get(f.events) == 0b0101 and axi.get(f.irq) == 1
        # Pulses: go = 0b10 for exactly one cycle, in the cycle of BVALID; and go clears events.
        last = await axi.write_parts(0x04, 0b10)
        assert axi.get(f.go) == 0
        await axi.tick()
        assert axi.cycle == last + 2
        assert axi.get(f.go) == 0b10 and axi.get(axi.bus.bvalid) and axi.get(f.events) == 0
        assert axi.get(f.kind) == Kind.A                         # the same write: kind = 0
        await axi.tick()
        assert axi.get(f.go) == 0
    simulate(dut, bench)


def test_reading_lo_latches_the_read_only_bits_of_hi():
    dut = RegisterFile(small_map())
    f = dut.fields

    async def read(axi, addr):
        await axi.handshake("ar", addr=addr)
        data = axi.get(axi.bus.rdata)
        axi.ctx.set(axi.bus.rready, 1)
        await axi.tick()
        axi.ctx.set(axi.bus.rready, 0)
        return data

    async def bench(axi):
        axi.ctx.set(f.count, 0x1_FFFF_FFFF)
        axi.ctx.set(f.ticks, 0xAB_0000_0001)
        assert await read(axi, 0x18) == 0xFFFF_FFFF
        axi.ctx.set(f.count, 0x2_0000_0000)                      # the counter carried
        assert await read(axi, 0x1C) == 1                         # HI as of the LO read
        assert await read(axi, 0x1C) == 1
        assert await read(axi, 0x18) == 0
        assert await read(axi, 0x1C) == 2
        # MIXED_HI: ticks' bits latched, limit's live.
        assert await read(axi, 0x20) == 1
        axi.ctx.set(f.ticks, 0xCD_0000_0000)
        assert await read(axi, 0x24) == (7 << 16) | 0xAB
    simulate(dut, bench)


def one_word_register_file():
    return RegisterFile(RegisterMap("one", [Register("R", [Field("x", 8, "rw", 3)])]))


def test_a_one_word_map_has_a_three_bit_bus():
    """The smallest map: one word; the bus still has a word-address bit (the second word is
    unmapped), so that the generated Verilog has no zero-width wire."""
    dut = one_word_register_file()
    assert dut.addr_width == 3

    async def bench(axi):
        axi.ctx.set(axi.bus.bready, 1)
        await axi.write_parts(0x1, 0x0000_00A5)               # address bits 1..0 ignored
        await axi.tick()
        assert axi.get(axi.bus.bresp) == RESP_OKAY and axi.get(dut.fields.x) == 0xA5
        await axi.handshake("ar", addr=0x3)
        assert (axi.get(axi.bus.rdata), axi.get(axi.bus.rresp)) == (0xA5, RESP_OKAY)
        axi.ctx.set(axi.bus.rready, 1)
        await axi.tick()
        await axi.handshake("ar", addr=0x4)
        assert (axi.get(axi.bus.rdata), axi.get(axi.bus.rresp)) == (0, RESP_SLVERR)
    simulate(dut, bench)


# --- the RTL as generated Verilog under cocotb ----------------------------------------------------

BENCH_TESTS = {"rw", "ro", "pulse", "w1c", "wide", "unmapped", "random"}
# (map, bus address bits): the core's map at its own width, and the small map on a wider bus, so
# that addresses past the map but inside the bus's space are unmapped too.
BENCH_MAPS = {"core": None, "small": 10}


def seeded(default: int) -> int:
    seed = seed_from_env(default=default)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    return seed


def run_bench(name: str, tmp_path, *, sim=None, testcase=None, transactions=300):
    seed = seeded(len(name) * 1000 + 17)
    dut = RegisterFile(MAPS[name](), addr_width=BENCH_MAPS[name])
    run = run_testbench(dut, f"register_file_{name}", "maskprop.tb.bench_registers",
                        params={"map": name, "transactions": transactions},
                        sim=sim, build_dir=tmp_path / "build", seed=seed, testcase=testcase)
    assert run.passed, f"{run.failures} of {run.tests} failed, see {run.log} (seed {seed})"
    assert run.seed == seed
    return run


@pytest.mark.sim
@pytest.mark.parametrize("name", BENCH_MAPS)
def test_register_file_under_random_axi_traffic(name, tmp_path):
    """Every bench test on Verilator: each access kind against what software asked for, 64-bit
    reads, unmapped addresses, random concurrent traffic; every cycle checked by the monitor."""
    run = run_bench(name, tmp_path)
    report = run.report
    assert run.tests == len(BENCH_TESTS) and set(report) == BENCH_TESTS
    assert all(test["checks"] > 1000 for test in report.values()), report
    assert report["random"]["transactions"] == 600 and report["random"]["writes"] == 300
    regs = MAPS[name]()
    assert report["wide"]["torn_without_latch"] > 5
    assert report["pulse"]["pulses"] > 5 * sum(f.width for f in regs.fields if f.access == PULSE)
    assert report["unmapped"]["errors"] >= 60


@pytest.mark.sim
def test_register_file_on_icarus(tmp_path):
    """The four-state simulator sees an undriven or uninitialized bit as x: the register file
    must come out of reset clean there too (random traffic on the core's map)."""
    run = run_bench("core", tmp_path, sim="icarus", testcase="random_traffic", transactions=150)
    assert run.simulator == "icarus" and run.tests == 1
    assert run.report["random"]["transactions"] == 300


@pytest.mark.sim
@pytest.mark.parametrize("name", [*BENCH_MAPS, "one-word", "core-48-bit-addresses"])
def test_register_file_passes_verilator_lint(name):
    if name == "one-word":
        dut = one_word_register_file()
    elif name == "core-48-bit-addresses":             # 64-bit rw base registers
        dut = RegisterFile(core_register_map(mem_addr_width=48), addr_width=12)
    else:
        dut = RegisterFile(MAPS[name](), addr_width=BENCH_MAPS[name])
    top = f"register_file_{name.replace('-', '_')}"
    lint_verilog(generate_verilog(dut, top), top)
