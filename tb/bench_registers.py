"""cocotb bench: :class:`~maskprop.hw.registers.RegisterFile` as generated Verilog, driven by
cocotbext-axi's AXI4-Lite master.

``MASKPROP_TB_PARAMS`` names the map (``map``: ``core``, the core's map, or ``small``,
:func:`small_map`, which has every access kind, enums, gaps and 64-bit registers with ``ro`` and
``rw`` bits) and the bus's ``addr_width``.

Every test runs the :class:`Monitor`: each cycle it samples the five channels and the ``fields``
ports and checks them against :class:`RegisterModel`, a reference written from the documented
behaviour (docs/registers.md), with the documented timing: ``AWREADY``/``WREADY`` low exactly
while a beat is held, the write performed in the cycle after both are held and B is free,
its effects (``rw`` outputs, one-cycle pulses, ``w1c`` clears) and ``BVALID`` in the next cycle,
``ARREADY`` low exactly while ``RVALID``, read data of the AR cycle, ``w1c`` sets one cycle
after their event. On top of that each test checks its access kind directly against what the
software side asked for, with random pauses on all five channels (each channel's probability
drawn from the seed), so AW and W arrive in every order and B and R are back-pressured.
"""

import random
from collections import Counter

import cocotb
from amaranth.lib import enum
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from maskprop.hw.axi import RESP_OKAY, RESP_SLVERR
from maskprop.hw.core_registers import CORE_REGISTERS
from maskprop.hw.registers import CONST, PULSE, RO, RW, W1C, Field, Register, RegisterMap
from maskprop.tb.bench_axi_streams import pauses
from maskprop.tb.harness import params, record, start

# (Importing bench_axi_streams ignores cocotbext-axi's own deprecation warnings.)

M32 = (1 << 32) - 1
#: No AXI operation may take longer than this (a hang fails the test instead of stalling it).
TIMEOUT_US = 50


class Kind(enum.Enum, shape=2):
    A = 0
    B = 1
    C = 3


def small_map(**kwargs) -> RegisterMap:
    """Every access kind, a field at its own lsb, an enum, a gap and two 64-bit registers (one
    ``rw`` only, one with ``ro`` and ``rw`` bits in its high word)."""
    return RegisterMap("small", [
        Register("ID", [Field("magic", 32, "const", 0xC0FFEE01, "Magic.")]),
        Register("CTRL", [
            Field("go", 2, "w1p", doc="Go."),
            Field("kind", 2, "rw", 1, "Kind | of thing.", enum=Kind, lsb=4),
            Field("level", 8, "rw", 0x5A, "Level.", lsb=16),
        ], "Control."),
        Register("FLAGS", [
            Field("events", 4, "w1c", doc="Events.", cleared_by="go"),
            Field("state", 8, "ro", doc="State.", lsb=8),
            Field("irq", 1, "w1c", 1, "Interrupt.", lsb=31),
        ]),
        Register("BASE", [Field("base", 40, "rw", 0x12_3456_789A, "Base.")], offset=0x10,
                 width=64),
        Register("COUNT", [Field("count", 64, "ro", doc="Count.")], width=64),
        Register("MIXED", [Field("ticks", 40, "ro", doc="Ticks."),
                           Field("limit", 16, "rw", 7, "Limit.", lsb=48)], width=64),
    ], **kwargs)


MAPS = {"core": lambda: CORE_REGISTERS, "small": small_map}


def _mask(width: int) -> int:
    return (1 << width) - 1


# --- reference model ----------------------------------------------------------------------------

class RegisterModel:
    """The register file as software and hardware see it, one cycle at a time: whole registers
    assembled from their fields' ``lsb`` and width, every rule from docs/registers.md."""

    def __init__(self, register_map: RegisterMap):
        self.map = register_map
        self.by_word = {}                 # word address (offset / 4) -> (register, index)
        for register in register_map.registers:
            for index in range(register.width // 32):
                self.by_word[register.offset // 4 + index] = (register, index)
        self.values = {f.name: f.reset for f in register_map.fields if f.access in (RW, W1C)}
        self.pulses = {f.name: 0 for f in register_map.fields if f.access == PULSE}
        self.latched = {r.name: 0 for r in register_map.registers if r.width == 64}

    @staticmethod
    def kind_mask(register: Register, kinds) -> int:
        """Bits of ``register`` held by fields of the access ``kinds``."""
        return sum(_mask(f.width) << f.lsb for f in register.fields if f.access in kinds)

    def writable(self, address: int) -> bool:
        if address not in self.by_word:
            return False
        register, index = self.by_word[address]
        return bool((self.kind_mask(register, (RW, PULSE, W1C)) >> 32 * index) & M32)

    def live(self, register: Register, ro: dict) -> int:
        value = 0
        for field in register.fields:
            source = {RO: lambda: ro[field.name], CONST: lambda: field.reset,
                      PULSE: lambda: 0}.get(field.access, lambda: self.values[field.name])()
            value |= (source & _mask(field.width)) << field.lsb
        return value

    def read(self, address: int, ro: dict) -> tuple[int, int]:
        """The data and response of a read whose AR handshake is in this cycle."""
        if address not in self.by_word:
            return 0, RESP_SLVERR
        register, index = self.by_word[address]
        live = self.live(register, ro)
        data = (live >> 32 * index) & M32
        if index == 1:
            ro_bits = (self.kind_mask(register, (RO,)) >> 32) & M32
            data = (self.latched[register.name] & ro_bits) | (data & ~ro_bits)
        elif register.width == 64:
            self.latched[register.name] = (live >> 32) & M32
        return data, RESP_OKAY

    def step(self, write, sets: dict):
        """End of a cycle: perform ``write`` (``(address, data, strb)`` or None) and the ``w1c``
        events ``sets``; returns the write's response. The pulses it strobes are
        :attr:`pulses` in the next cycle."""
        pulses = dict.fromkeys(self.pulses, 0)
        clears = {f.name: 0 for f in self.map.fields if f.access == W1C}
        response = None
        if write is not None:
            address, data, strb = write
            response = RESP_OKAY if self.writable(address) else RESP_SLVERR
            if response == RESP_OKAY:
                register, index = self.by_word[address]
                enables = sum(0xFF << 8 * lane for lane in range(4) if strb >> lane & 1)
                enables, data = enables << 32 * index, data << 32 * index
                for field in register.fields:
                    on = (enables >> field.lsb) & _mask(field.width)
                    bits = (data >> field.lsb) & _mask(field.width)
                    if field.access == RW:
                        self.values[field.name] = (self.values[field.name] & ~on) | (bits & on)
                    elif field.access == PULSE:
                        pulses[field.name] = bits & on
                    elif field.access == W1C:
                        clears[field.name] = bits & on
        for field in self.map.fields:
            if field.access == W1C:
                clear = clears[field.name]
                if field.cleared_by is not None and pulses[field.cleared_by]:
                    clear = _mask(field.width)
                self.values[field.name] = (self.values[field.name] & ~clear) | sets[field.name]
        self.pulses = pulses
        return response


# --- monitor ------------------------------------------------------------------------------------

class Monitor:
    """Checks every cycle of the DUT against :class:`RegisterModel` (see the module
    documentation) and keeps what the tests look at: each read's AR cycle, address and ``ro``
    inputs, pulse counts, and coverage counts (write orders, back-pressured responses)."""

    def __init__(self, dut, register_map: RegisterMap):
        self.dut, self.model = dut, RegisterModel(register_map)
        self.bus = {name: getattr(dut, f"bus__{name}") for name in (
            "awvalid", "awready", "awaddr", "wvalid", "wready", "wdata", "wstrb", "bvalid",
            "bready", "bresp", "arvalid", "arready", "araddr", "rvalid", "rready", "rdata",
            "rresp")}
        fields = register_map.fields
        self.outputs = {f.name: getattr(dut, f"fields__{f.name}") for f in fields
                        if f.access in (RW, W1C, PULSE)}
        self.kinds = {f.name: f.access for f in fields}
        self.ro = {f.name: getattr(dut, f"fields__{f.name}") for f in fields if f.access == RO}
        self.sets = {f.name: getattr(dut, f"fields__{f.name}_set") for f in fields
                     if f.access == W1C}
        self.cycle = 0
        self.aw = self.w = self.b = self.r = None
        self.aw_cycle = self.w_cycle = 0
        self.reads = []               # (AR cycle, araddr, ro inputs, data, resp)
        self.writes = 0
        self.pulse_counts = Counter()  # (field, bit) -> cycles high
        self.coverage = Counter()
        self.checks = 0

    def start(self):
        self._task = cocotb.start_soon(self._run())
        return self

    def check(self, ok: bool, what: str):
        self.checks += 1
        if not ok:
            raise AssertionError(f"cycle {self.cycle}: {what}")

    async def _run(self):
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            self._sample()
            self.cycle += 1

    def _sample(self):
        def get(name):
            return int(self.bus[name].value)
        awvalid, awready, wvalid, wready = (get(n) for n in ("awvalid", "awready", "wvalid",
                                                               "wready"))
        bvalid, bready, arvalid, arready, rvalid, rready = (get(n) for n in (
            "bvalid", "bready", "arvalid", "arready", "rvalid", "rready"))
        model = self.model
        self.check(awready == (self.aw is None), f"AWREADY {awready}, holding {self.aw}")
        self.check(wready == (self.w is None), f"WREADY {wready}, holding {self.w}")
        self.check(bvalid == (self.b is not None), f"BVALID {bvalid}, expected {self.b}")
        if bvalid:
            self.check(get("bresp") == self.b, f"BRESP {get('bresp')}, expected {self.b}")
        self.check(arready == (self.r is None), f"ARREADY {arready} with RVALID expected "
                                                f"{self.r is not None}")
        self.check(rvalid == (self.r is not None), f"RVALID {rvalid}, expected {self.r}")
        if rvalid:
            got = (get("rdata"), get("rresp"))
            self.check(got == self.r, f"R data/resp {got[0]:#x}/{got[1]}, expected "
                                      f"{self.r[0]:#x}/{self.r[1]}")
        for name, handle in self.outputs.items():
            value = int(handle.value)
            expected = model.pulses[name] if self.kinds[name] == PULSE else model.values[name]
            self.check(value == expected, f"fields.{name} = {value:#x}, expected {expected:#x}")
            if self.kinds[name] == PULSE:
                for bit in range(value.bit_length()):
                    self.pulse_counts[name, bit] += value >> bit & 1

        # --- what happens at the end of this cycle -----------------------------------------------
        if rvalid and rready:
            self.r = None
        if rvalid and not rready:
            self.coverage["r_backpressure"] += 1
        if arvalid and arready:
            address = get("araddr")
            ro = {name: int(handle.value) for name, handle in self.ro.items()}
            self.r = model.read(address >> 2, ro)
            self.reads.append((self.cycle, address, ro, *self.r))
        sets = {name: int(handle.value) for name, handle in self.sets.items()}
        perform = self.aw is not None and self.w is not None and (not bvalid or bready)
        if bvalid and not bready:
            self.coverage["b_backpressure"] += 1
        if bvalid and bready:
            self.b = None
        if perform:
            self.b = model.step((self.aw >> 2, *self.w), sets)
            self.writes += 1
            self.coverage["together" if self.aw_cycle == self.w_cycle else
                          "aw_first" if self.aw_cycle < self.w_cycle else "w_first"] += 1
            self.aw = self.w = None
        else:
            model.step(None, sets)
        if awvalid and awready:
            self.aw, self.aw_cycle = get("awaddr"), self.cycle
        if wvalid and wready:
            self.w, self.w_cycle = (get("wdata"), get("wstrb")), self.cycle


# --- inputs and the bench -----------------------------------------------------------------------

class Inputs:
    """Drives the ``ro`` inputs and the ``w1c`` events after every clock edge: each ``ro`` input
    takes a new random value with probability ``change`` (64-bit ones count up by random steps
    when ``counting``); each ``w1c`` event bit is high with probability ``set_rate``. ``hold``
    (field -> value) pins inputs to known values instead."""

    def __init__(self, dut, register_map, rng, *, change=0.0, set_rate=0.0, counting=False):
        self.dut, self.rng = dut, rng
        self.change, self.set_rate, self.counting = change, set_rate, counting
        self.ro = {f.name: f for f in register_map.fields if f.access == RO}
        self.sets = {f.name: f for f in register_map.fields if f.access == W1C}
        self.values = {name: 0 for name in [*self.ro, *(f"{n}_set" for n in self.sets)]}
        self.hold = {}
        for name, value in self.values.items():
            getattr(dut, f"fields__{name}").value = value

    def start(self):
        cocotb.start_soon(self._run())
        return self

    def _next(self):
        rng = self.rng
        for name, field in self.ro.items():
            if name in self.hold:
                self.values[name] = self.hold[name]
            elif self.counting and field.width > 32:
                # Steps up to 2**28: the low word wraps about every 32 cycles.
                self.values[name] = (self.values[name] + rng.randrange(1 << 28)) & \
                    _mask(field.width)
            elif rng.random() < self.change:
                self.values[name] = rng.getrandbits(field.width)
        for name, field in self.sets.items():
            bits = 0
            if self.set_rate:
                for bit in range(field.width):
                    bits |= (rng.random() < self.set_rate) << bit
            self.values[f"{name}_set"] = self.hold.get(f"{name}_set", bits)

    async def _run(self):
        while True:
            await RisingEdge(self.dut.clk)
            self._next()
            for name, value in self.values.items():
                getattr(self.dut, f"fields__{name}").value = value


class Bench:
    """The DUT with its map, the AXI4-Lite master (random pauses on all five channels), the
    monitor and the input drivers."""

    @classmethod
    async def create(cls, dut, test: str, *, most_paused=0.5, **inputs):
        """The bench for the cocotb test ``test``: its random choices come from the run's seed
        and the test's name, so each test of a run draws its own pause probabilities."""
        self = cls()
        p = params()
        self.dut, self.map = dut, MAPS[p["map"]]()
        # The master drives the bus (valid low) from now on, so reset sees no x on it.
        self.axi = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "bus_"), dut.clk, dut.rst)
        self.inputs = Inputs(dut, self.map, random.Random(), **inputs)
        _, self.seed = await start(dut)
        self.rng = random.Random(f"{self.seed}:{test}")
        self.inputs.rng = random.Random(self.rng.randrange(1 << 32))
        self.pauses = {}
        channels = {"aw": self.axi.write_if.aw_channel, "w": self.axi.write_if.w_channel,
                    "b": self.axi.write_if.b_channel, "ar": self.axi.read_if.ar_channel,
                    "r": self.axi.read_if.r_channel}
        for name, channel in channels.items():
            probability = self.rng.uniform(0, most_paused)
            self.pauses[name] = round(probability, 3)
            channel.set_pause_generator(pauses(
                random.Random(self.rng.randrange(1 << 32)), probability))
        dut._log.info("pause probabilities: %s", self.pauses)
        self.monitor = Monitor(dut, self.map).start()
        self.inputs.start()
        self.words = {word.offset: word for word in self.map.words}
        self.addr_width = len(dut.bus__awaddr)
        return self

    async def write(self, address: int, data: bytes) -> int:
        response = await with_timeout(self.axi.write(address, data), TIMEOUT_US, "us")
        return int(response.resp)

    async def read(self, address: int, length: int = 4) -> tuple[int, int]:
        response = await with_timeout(self.axi.read(address, length), TIMEOUT_US, "us")
        return int.from_bytes(response.data, "little"), int(response.resp)

    async def write_span(self, offset: int, value: int, first: int, last: int) -> tuple[int, int]:
        """Write bytes ``first..last`` of ``value`` to the word at ``offset`` (so WSTRB enables
        exactly those); returns (response, the byte-enable mask)."""
        data = value.to_bytes(4, "little")[first:last + 1]
        enables = sum(0xFF << 8 * lane for lane in range(first, last + 1))
        return await self.write(offset + first, data), enables

    def random_span(self) -> tuple[int, int]:
        first = self.rng.randrange(4)
        return first, self.rng.randrange(first, 4)

    def mask(self, word, kinds) -> int:
        return (RegisterModel.kind_mask(word.register, kinds) >> 32 * word.index) & M32

    def finish(self, test: str, **measurements):
        assert self.monitor.checks > 0
        record(test, seed=self.seed, cycles=self.monitor.cycle, checks=self.monitor.checks,
               reads=len(self.monitor.reads), writes=self.monitor.writes,
               pauses=self.pauses, coverage=dict(self.monitor.coverage), **measurements)


# --- tests --------------------------------------------------------------------------------------

@cocotb.test()
async def rw_fields_read_back_with_strobes(dut):
    """Random byte spans (hence WSTRB patterns) written to every word with ``rw`` bits: each
    read back shows exactly the enabled bytes' ``rw`` bits changed, and the outputs follow."""
    bench = await Bench.create(dut, "rw")
    words = [word for word in bench.map.words if bench.mask(word, (RW,))]
    expected = {}
    for word in words:
        value, response = await bench.read(word.offset)
        assert response == RESP_OKAY
        expected[word.offset] = value & bench.mask(word, (RW,))
    writes = 0
    for _ in range(12 * len(words)):
        word = bench.rng.choice(words)
        rw = bench.mask(word, (RW,))
        value = bench.rng.getrandbits(32)
        response, enables = await bench.write_span(word.offset, value, *bench.random_span())
        assert response == RESP_OKAY
        expected[word.offset] = (expected[word.offset] & ~(enables & rw)) | (value & enables & rw)
        writes += 1
        if bench.rng.random() < 0.5:
            got, response = await bench.read(word.offset)
            assert response == RESP_OKAY and got & rw == expected[word.offset], \
                f"{word.name}: read {got:#x}, rw bits should be {expected[word.offset]:#x}"
    for word in words:
        got, _ = await bench.read(word.offset)
        assert got & bench.mask(word, (RW,)) == expected[word.offset], word.name
    for field in (f for f in bench.map.fields if f.access == RW):
        register = bench.map.register_of(field.name)
        whole = sum(expected.get(register.offset + 4 * i, 0) << 32 * i
                    for i in range(register.width // 32))
        port = int(getattr(dut, f"fields__{field.name}").value)
        assert port == (whole >> field.lsb) & _mask(field.width), field.name
    bench.finish("rw", words=len(words), rw_writes=writes)


@cocotb.test()
async def ro_fields_read_the_hardware(dut):
    """``ro`` inputs pinned to random values read back exactly; then, with the inputs changing
    every cycle, each read returns them as they were in its AR cycle (the monitor)."""
    bench = await Bench.create(dut, "ro", change=0.0)
    ro_fields = [f for f in bench.map.fields if f.access == RO]
    words = [word for word in bench.map.words if bench.mask(word, (RO,))]
    for _ in range(4):
        bench.inputs.hold = {f.name: bench.rng.getrandbits(f.width) for f in ro_fields}
        await RisingEdge(dut.clk)
        for word in words:
            if word.index:             # the high word reads what its low word latched
                await bench.read(word.offset - 4)
            got, response = await bench.read(word.offset)
            whole = sum(bench.inputs.hold[f.name] << f.lsb for f in word.register.fields
                        if f.access == RO)
            expected = (whole >> 32 * word.index) & bench.mask(word, (RO,))
            assert response == RESP_OKAY and got & bench.mask(word, (RO,)) == expected, \
                f"{word.name}: read {got:#x}, ro bits should be {expected:#x}"
    bench.inputs.hold, bench.inputs.change = {}, 0.7
    for _ in range(20 * len(words)):
        await bench.read(bench.rng.choice(words).offset)
    changed = sum(1 for (_, _, a, _, _), (_, _, b, _, _) in zip(bench.monitor.reads,
                                                                  bench.monitor.reads[1:])
                  if a != b)
    assert changed > 10, "the ro inputs did not change between reads"
    bench.finish("ro", words=len(words))


@cocotb.test()
async def pulses_strobe_once_per_write(dut):
    """Random values and byte spans written to the ``pulse`` words: every enabled 1 bit is one
    cycle high on its output (counted per bit), nothing else; pulse bits read 0."""
    bench = await Bench.create(dut, "pulse")
    pulses = [f for f in bench.map.fields if f.access == PULSE]
    words = [word for word in bench.map.words if bench.mask(word, (PULSE,))]
    expected = Counter()
    for _ in range(60 * len(words)):
        word = bench.rng.choice(words)
        value = bench.rng.getrandbits(32)
        span = bench.random_span()
        if bench.rng.random() < 0.8:              # mostly spans with a lane of pulse bits
            lanes = [n for n in range(4) if bench.mask(word, (PULSE,)) >> 8 * n & 0xFF]
            lane = bench.rng.choice(lanes)
            span = bench.rng.randrange(lane + 1), bench.rng.randrange(lane, 4)
        response, enables = await bench.write_span(word.offset, value, *span)
        assert response == RESP_OKAY
        for field in word.register.fields:
            if field.access == PULSE:
                bits = (value & enables) >> (field.lsb - 32 * word.index)
                for bit in range(field.width):
                    expected[field.name, bit] += bits >> bit & 1
        if bench.rng.random() < 0.3:
            got, _ = await bench.read(word.offset)
            assert got & bench.mask(word, (PULSE,)) == 0, f"{word.name} reads pulse bits"
    for _ in range(4):
        await RisingEdge(dut.clk)
    counted = {key: n for key, n in bench.monitor.pulse_counts.items() if n}
    assert counted == {key: n for key, n in expected.items() if n}, (counted, expected)
    assert sum(expected.values()) > 5 * sum(f.width for f in pulses)
    bench.finish("pulse", pulses=sum(expected.values()))


@cocotb.test()
async def w1c_set_by_hardware_cleared_by_software(dut):
    """Each ``w1c`` field: an event sets bits, which stay; writing 1 clears the enabled ones and
    0 nothing; an event during the clearing write wins; ``cleared_by`` clears it all."""
    bench = await Bench.create(dut, "w1c")
    sticky = [f for f in bench.map.fields if f.access == W1C]
    rounds = 0

    async def value_of(field):
        register = bench.map.register_of(field.name)
        got, response = await bench.read(register.offset)
        assert response == RESP_OKAY
        return (got >> field.lsb) & _mask(field.width)

    async def pulse_set(field, bits, cycles=1):
        bench.inputs.hold[f"{field.name}_set"] = bits
        for _ in range(cycles):
            await RisingEdge(dut.clk)
        bench.inputs.hold[f"{field.name}_set"] = 0
        await RisingEdge(dut.clk)

    async def write_ones(field, bits):
        offset = bench.map.register_of(field.name).offset
        await bench.write(offset, (bits << field.lsb).to_bytes(4, "little"))

    async def value_when_bvalid(field):
        """The field's sticky bits in the cycle the next write response appears: the first
        cycle that shows the write's effect."""
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if int(dut.bus__bvalid.value):
                return int(getattr(dut, f"fields__{field.name}").value)

    for _ in range(6):
        for field in sticky:
            # Start from all clear (a write of ones).
            await write_ones(field, _mask(field.width))
            assert await value_of(field) == 0
            bits = bench.rng.randrange(1, 1 << field.width)
            await pulse_set(field, bits)
            assert await value_of(field) == bits and \
                int(getattr(dut, f"fields__{field.name}").value) == bits
            await write_ones(field, 0)                       # zeros clear nothing
            assert await value_of(field) == bits
            clear = bench.rng.getrandbits(field.width)
            await write_ones(field, clear)
            assert await value_of(field) == bits & ~clear
            # An event in the cycle of a clearing write: set wins, in that very cycle.
            await write_ones(field, _mask(field.width))
            watch = cocotb.start_soon(value_when_bvalid(field))
            bench.inputs.hold[f"{field.name}_set"] = 1
            await write_ones(field, 1)
            bench.inputs.hold[f"{field.name}_set"] = 0
            assert await watch & 1 == 1, f"a clear of {field.name} won over its set"
            await RisingEdge(dut.clk)
            if field.cleared_by:
                await pulse_set(field, _mask(field.width))
                source = bench.map.field(field.cleared_by)
                offset = bench.map.register_of(source.name).offset
                await bench.write(offset, (1 << source.lsb).to_bytes(4, "little"))
                assert await value_of(field) == 0, f"{field.cleared_by} did not clear {field.name}"
            rounds += 1
    bench.finish("w1c", rounds=rounds)


@cocotb.test()
async def wide_registers_read_one_cycle(dut):
    """64-bit ``ro`` inputs counting by random steps (the low word wraps every few tens of
    cycles): LO then HI, with pauses and other reads between, always give the value of the LO
    read's AR cycle; and some reads would have been torn without the latch."""
    bench = await Bench.create(dut, "wide", counting=True)
    wide = [r for r in bench.map.registers if r.width == 64 and
            any(f.access == RO for f in r.fields)]
    torn = 0
    for _ in range(40):
        register = bench.rng.choice(wide)
        low, _ = await bench.read(register.offset)
        ar_low = bench.monitor.reads[-1]
        for _ in range(bench.rng.randrange(3)):
            other = bench.rng.choice(bench.map.words)
            if other.register is not register:
                await bench.read(other.offset)
        for _ in range(bench.rng.randrange(40)):
            await RisingEdge(dut.clk)
        high, _ = await bench.read(register.offset + 4)
        ar_high = bench.monitor.reads[-1]
        ro_bits = RegisterModel.kind_mask(register, (RO,))
        sampled = sum(ar_low[2][f.name] << f.lsb for f in register.fields if f.access == RO)
        got = ((high << 32) | low) & ro_bits
        assert got == sampled & ro_bits, \
            f"{register.name}: read {got:#x}, the value at the LO read was {sampled:#x}"
        later = sum(ar_high[2][f.name] << f.lsb for f in register.fields if f.access == RO)
        torn += (later >> 32) != (sampled >> 32)
    assert torn > 5, f"only {torn} reads had the high word change between LO and HI"
    bench.finish("wide", pairs=40, torn_without_latch=torn)


@cocotb.test()
async def unmapped_addresses_answer_slverr(dut):
    """Reads and writes of unmapped addresses (gaps and past the map, up to the bus's address
    space) answer SLVERR (reads 0) within the timeout, writes of constant or read-only words
    too, and none of them changes a register."""
    bench = await Bench.create(dut, "unmapped")
    mapped = {word.offset for word in bench.map.words}
    unmapped = [a for a in range(0, min(1 << bench.addr_width, 1 << 12), 4) if a not in mapped]
    readonly = [word for word in bench.map.words if not bench.mask(word, (RW, PULSE, W1C))]
    before = {}
    for word in bench.map.words:
        before[word.offset], _ = await bench.read(word.offset)
    errors = 0
    for _ in range(60):
        address = bench.rng.choice(unmapped) + bench.rng.randrange(4)
        if bench.rng.random() < 0.5:
            assert await bench.read(address, 1) == (0, RESP_SLVERR), hex(address)
        else:
            assert await bench.write(address, bytes([0xFF])) == RESP_SLVERR, hex(address)
        errors += 1
    for word in readonly:
        assert await bench.write(word.offset, b"\xff\xff\xff\xff") == RESP_SLVERR, word.name
        errors += 1
    for word in bench.map.words:
        if not bench.mask(word, (RO,)):
            got, response = await bench.read(word.offset)
            assert (got, response) == (before[word.offset], RESP_OKAY), word.name
    assert len(unmapped) > 0 and errors >= 60
    bench.finish("unmapped", errors=errors)


@cocotb.test()
async def random_traffic(dut):
    """Concurrent random reads and writes (any word, unmapped ones too, any byte span and
    address low bits) with changing ``ro`` inputs and random ``w1c`` events; the monitor checks
    every cycle. AW and W must have come in all three orders and B and R been back-pressured."""
    bench = await Bench.create(dut, "random", change=0.3, set_rate=0.02)
    count = params().get("transactions", 300)
    offsets = [word.offset for word in bench.map.words]
    spare = [a for a in range(0, min(1 << bench.addr_width, 1 << 12), 4) if a not in offsets]
    rng_w, rng_r = (random.Random(bench.rng.randrange(1 << 32)) for _ in range(2))

    def address(rng):
        pool = spare if spare and rng.random() < 0.1 else offsets
        return rng.choice(pool)

    async def writer():
        for _ in range(count):
            first = rng_w.randrange(4)
            last = rng_w.randrange(first, 4)
            data = rng_w.getrandbits(32).to_bytes(4, "little")[first:last + 1]
            await bench.write(address(rng_w) + first, data)

    async def reader():
        for _ in range(count):
            first = rng_r.randrange(4)
            await bench.read(address(rng_r) + first, 4 - first)

    tasks = [cocotb.start_soon(writer()), cocotb.start_soon(reader())]
    for task in tasks:
        await task
    for _ in range(4):
        await RisingEdge(dut.clk)
    monitor = bench.monitor
    assert monitor.writes == count and len(monitor.reads) == count
    for case in ("together", "aw_first", "w_first", "b_backpressure", "r_backpressure"):
        assert monitor.coverage[case] > 0, f"never {case}: {dict(monitor.coverage)}"
    assert sum(1 for read in monitor.reads if read[4] == RESP_SLVERR) > 0
    bench.finish("random", transactions=2 * count)
