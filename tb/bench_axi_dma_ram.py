"""cocotb bench: ``AxiDma`` on ``AxiRam`` in one design (the test-only top of
``tests/test_axi_dma.py``), where the write words are generated and the read words checked in
RTL, so that cocotb only sends commands and reads counters: long runs at full simulation speed.

The top's ports: ``read_cmd``/``write_cmd`` (the DMA's commands, also queued for the RTL checker
and generator, which walk their rows as the DMA must), ``read_salt``/``write_salt`` (the word at
byte address ``a`` is ``pattern(a, salt)``), ``stall`` (pseudo-random backpressure on
``read_data`` and ``write_done`` and idle cycles on ``write_data``), ``clear``, the RAM's
``host`` backdoor; out: ``read_words``, ``read_mismatches`` (a wrong word, or ``last`` not on
exactly a command's final word), ``write_words`` (counted on W), ``writes_done``,
``done_errors``, the cycles (of the free running ``cycle``) of the first and last read and write
word since ``clear``, and the DMA's ``error``, ``busy`` and ``counters``.

``full_rate``: the whole memory written, then read, by long commands, then a read and a write
at the same time: exactly one word per cycle in each direction (the span from first to last
word equals the words), without the protocol checker, to run at the simulator's speed; then the
whole memory written and read by 2-D commands of whole bursts (rows of two interleaved
commands, other row lengths for the read): still one word per cycle, with no bubble between
rows. ``random_commands``: random commands (lengths, 4 KiB boundaries; contiguous and 2-D, rows
of 1 word and more, pitches across pages) with random stalls, reads and writes at once.
``decode_errors``: commands beyond the memory: DECERR, error flags, every command complete. The
protocol checker watches the bus throughout.
"""

import time

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from maskprop.hw.axi_dma import DMA_COUNTERS, dma_command_layout
from maskprop.tb.axi_checker import AxiMonitor
from maskprop.tb.bench_axi_dma import pack_command, random_2d_commands
from maskprop.tb.bench_axi_streams import HostPort, StreamSource
from maskprop.tb.harness import params, record, start

PAGE = 4096
#: An odd multiplier: word index -> pattern is a bijection modulo 2**data_width.
MULTIPLIER = 0x9E3779B97F4A7C15


def pattern(address: int, salt: int, data_width: int, bytes_per_word: int) -> int:
    """The word the top generates and expects at byte ``address`` (its RTL twin in the test)."""
    mask = (1 << data_width) - 1
    return ((address // bytes_per_word) * (MULTIPLIER & mask | 1) ^ salt) & mask


class Top:
    def __init__(self, dut, rng):
        p = params()
        self.dut, self.p = dut, p
        self.bytes = p["data_width"] // 8
        self.memory_bytes = p["depth"] * self.bytes
        self.read_cmd = StreamSource(dut, "read_cmd", dut.clk, rng)
        self.write_cmd = StreamSource(dut, "write_cmd", dut.clk, rng)
        self.host = HostPort(dut, dut.clk)
        self.checker = AxiMonitor(dut, "bus", dut.clk, dut.rst,
                                  max_outstanding=p["max_outstanding"], max_len=p["max_burst"],
                                  size=self.bytes.bit_length() - 1)
        self.started = time.monotonic()
        self.layout = dma_command_layout(p["addr_width"], p["max_beats_per_command"])

    def command(self, *command):
        """The packed payload of ``(addr, beats)`` or ``(addr, beats, row_beats, pitch)``."""
        return pack_command(self.layout, command)

    def value(self, name) -> int:
        return int(getattr(self.dut, name).value)

    def counters(self):
        value = self.value("counters")
        return {name: value >> 32 * k & 0xFFFFFFFF for k, name in enumerate(DMA_COUNTERS)}

    def spans(self):
        """Words moved since ``clear`` and the cycles from the first to the last, per
        direction."""
        return {direction: dict(words=self.value(f"{direction}_words"),
                                span=self.value(f"last_{direction}") -
                                self.value(f"first_{direction}") + 1)
                for direction in ("read", "write")}

    async def clear(self):
        self.dut.clear.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.clear.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def run(self, reads=(), writes=(), *, timeout_cycles=200000):
        """Send the commands; then wait (checking every 32 cycles) until all are done."""
        self.read_cmd.send([self.command(*c) for c in reads])
        self.write_cmd.send([self.command(*c) for c in writes])
        want_words = self.value("read_words") + sum(command[1] for command in reads)
        want_done = self.value("writes_done") + len(writes)
        senders = [cocotb.start_soon(source.run(timeout_cycles=timeout_cycles))
                   for source in (self.read_cmd, self.write_cmd)]
        for task in senders:
            await task
        waited = 0
        while True:
            await ReadOnly()
            if (self.value("busy") == 0 and self.value("read_words") == want_words and
                    self.value("writes_done") == want_done):
                break
            assert waited < timeout_cycles, (
                f"not done after {timeout_cycles} cycles: read_words "
                f"{self.value('read_words')} of {want_words}, writes_done "
                f"{self.value('writes_done')} of {want_done}, busy {self.value('busy')}")
            await ClockCycles(self.dut.clk, 32)
            waited += 32
        await RisingEdge(self.dut.clk)


def hold_inputs(dut):
    for name in ("clear", "stall", "read_salt", "write_salt"):
        getattr(dut, name).value = 0
    for port in ("read_cmd", "write_cmd"):
        getattr(dut, f"{port}__valid").value = 0
        getattr(dut, f"{port}__payload").value = 0


def chunks(rng, lo, hi, bytes_per_word, max_beats, multiple=1):
    """Commands covering ``[lo, hi)`` in order, random lengths up to ``max_beats`` (multiples
    of ``multiple``)."""
    commands, addr = [], lo
    while addr < hi:
        beats = min(rng.randint(1, max_beats // multiple) * multiple,
                    (hi - addr) // bytes_per_word)
        commands.append((addr, beats))
        addr += beats * bytes_per_word
    return commands


async def setup(dut, *, checker=True):
    hold_inputs(dut)
    rng, seed = await start(dut)
    top = Top(dut, rng)
    if checker:
        top.checker.start()
    return top, rng, seed


@cocotb.test()
async def full_rate(dut):
    """Commands of whole bursts (multiples of ``max_burst`` beats, every burst full): one word
    per cycle, each direction alone and both at once. Commands of any length: measured. No
    per-cycle Python here (the other tests run the protocol checker): the run goes at the
    simulator's speed, and the report says how fast that is."""
    top, rng, seed = await setup(dut, checker=False)
    p, size = top.p, top.memory_bytes
    salt1, salt2 = rng.getrandbits(p["data_width"]), rng.getrandbits(p["data_width"])
    long, burst = p["max_beats_per_command"], p["max_burst"]
    results = {}

    dut.write_salt.value = salt1
    await top.clear()
    await top.run(writes=chunks(rng, 0, size, top.bytes, long, burst))
    results["write"] = top.spans()["write"]
    dut.read_salt.value = salt1
    await top.clear()
    await top.run(reads=chunks(rng, 0, size, top.bytes, long, burst))
    results["read"] = top.spans()["read"]
    assert top.value("read_mismatches") == 0, "words read differ from the words written"

    # Read the first half while writing the second with another salt.
    await top.clear()
    dut.write_salt.value = salt2
    await top.run(reads=chunks(rng, 0, size // 2, top.bytes, long, burst),
                  writes=chunks(rng, size // 2, size, top.bytes, long, burst))
    both = top.spans()
    results["concurrent_read"], results["concurrent_write"] = both["read"], both["write"]
    assert top.value("read_mismatches") == 0
    for name, result in results.items():
        assert result["words"] == result["span"], f"{name}: not one word per cycle: {result}"

    # Any lengths (short bursts at command ends and 4 KiB boundaries), both at once, a few
    # passes over the memory: measured.
    await top.clear()
    for _ in range(p["passes"]):
        await top.run(reads=chunks(rng, 0, size // 2, top.bytes, long),
                      writes=chunks(rng, size // 2, size, top.bytes, long))
    any_length = top.spans()
    assert top.value("read_mismatches") == 0
    dut.read_salt.value = salt2
    await top.run(reads=chunks(rng, size // 2, size, top.bytes, long))
    assert top.value("read_mismatches") == 0, "the second half does not hold the second salt"

    # The backdoor sees what the DMA wrote.
    words = await top.host.read(0, p["depth"])
    expected = [pattern(k * top.bytes, salt1 if k * top.bytes < size // 2 else salt2,
                        p["data_width"], top.bytes) for k in range(p["depth"])]
    assert words == expected, "memory (backdoor) differs from the written pattern"

    assert results["read"]["words"] == results["write"]["words"] == p["depth"]
    assert int(dut.error.value) == 0

    # 2-D commands of whole bursts: still one word per cycle (no bubble between rows). The
    # write's rows interleave, the read's are of another length, so a row put at the wrong
    # address reads back wrong.
    salt3 = rng.getrandbits(p["data_width"])
    dut.write_salt.value = dut.read_salt.value = salt3
    await top.clear()
    await top.run(writes=interleaved(0, size, top.bytes, 2 * burst, long))
    results["strided_write"] = top.spans()["write"]
    await top.clear()
    await top.run(reads=interleaved(0, size, top.bytes, burst, long))
    results["strided_read"] = top.spans()["read"]
    assert top.value("read_mismatches") == 0, "strided reads differ from the strided writes"
    for name in ("strided_write", "strided_read"):
        result = results[name]
        assert result["words"] == result["span"] == p["depth"], f"{name}: {result}"
    assert int(dut.error.value) == 0
    cycles = int(dut.cycle.value)
    record("full_rate", seed=seed, **results, any_length=any_length, cycles=cycles,
           cycles_per_second=round(cycles / (time.monotonic() - top.started)))


def interleaved(lo, hi, bytes_per_word, row_beats, max_beats):
    """2-D commands covering ``[lo, hi)``: blocks of rows of ``row_beats`` words, each block's
    even rows one command and its odd rows the next (pitch two rows)."""
    row_bytes = row_beats * bytes_per_word
    rows = max_beats // row_beats
    commands, addr = [], lo
    while addr < hi:
        count = min(rows, (hi - addr) // (2 * row_bytes))
        commands += [(addr, count * row_beats, row_beats, 2 * row_bytes),
                     (addr + row_bytes, count * row_beats, row_beats, 2 * row_bytes)]
        addr += 2 * count * row_bytes
    return commands


def random_commands(rng, lo, hi, bytes_per_word, max_beats, count):
    commands = []
    for _ in range(count):
        beats = rng.choice([1, rng.randint(1, max_beats), max_beats, rng.randint(1, 40)])
        beats = min(beats, (hi - lo) // bytes_per_word)
        if rng.random() < 0.6:
            boundary = rng.randrange(lo // PAGE + 1, hi // PAGE) * PAGE
            addr = boundary - rng.randint(0, beats) * bytes_per_word
        else:
            addr = rng.randrange(lo, hi, bytes_per_word)
        commands.append((max(lo, min(addr, hi - beats * bytes_per_word)), beats))
    return commands


@cocotb.test()
async def random_commands_with_stalls(dut):
    top, rng, seed = await setup(dut)
    p, size = top.p, top.memory_bytes
    salt1, salt2 = rng.getrandbits(p["data_width"]), rng.getrandbits(p["data_width"])
    long = p["max_beats_per_command"]
    # First half salt1, second half salt2 (through the backdoor: the fast way to fill).
    await top.host.write(0, [pattern(k * top.bytes, salt1 if k * top.bytes < size // 2 else salt2,
                                     p["data_width"], top.bytes) for k in range(p["depth"])])
    dut.read_salt.value, dut.write_salt.value = salt1, salt2
    dut.stall.value = 1
    await top.clear()
    # Reads of the first half, writes of the same words into the second: the contents stay
    # as they are whatever the order, and every read word is known.
    strided = dict(bytes_per_word=top.bytes, max_burst=p["max_burst"], max_beats=long)
    reads = random_commands(rng, 0, size // 2, top.bytes, long, p["commands"]) + \
        random_2d_commands(rng, 0, size // 2, p["commands"] // 2, **strided)
    writes = random_commands(rng, size // 2, size, top.bytes, long, p["commands"]) + \
        random_2d_commands(rng, size // 2, size, p["commands"] // 2, **strided)
    rng.shuffle(reads)
    rng.shuffle(writes)
    await top.run(reads=reads, writes=writes)
    assert top.value("read_mismatches") == 0
    assert top.value("read_words") == sum(command[1] for command in reads)
    assert top.value("write_words") == sum(command[1] for command in writes)
    assert top.value("writes_done") == len(writes) and top.value("done_errors") == 0
    assert int(dut.error.value) == 0
    counters = top.counters()
    assert counters["bytes_read"] == top.bytes * top.value("read_words")
    assert counters["bytes_written"] == top.bytes * top.value("write_words")
    assert counters["read_bursts"] == top.checker.read_bursts
    assert counters["write_bursts"] == top.checker.write_bursts
    top.checker.assert_clean()
    record("random_commands", seed=seed, reads=len(reads), writes=len(writes),
           read_bursts=top.checker.read_bursts, write_bursts=top.checker.write_bursts,
           counters=counters)


@cocotb.test()
async def decode_errors(dut):
    top, rng, seed = await setup(dut)
    p, size = top.p, top.memory_bytes
    assert size < 1 << p["addr_width"], "the bench needs addresses beyond the memory"
    await top.run(reads=[(0, 4)], writes=[(0, 4)])
    assert int(dut.error.value) == 0
    # Beyond the end, and straddling it; then ordinary commands: all complete.
    await top.run(reads=[(size, 3), (size - 2 * top.bytes, 4), (0, 2)],
                  writes=[(size + PAGE, 2), (size - top.bytes, 2), (0, 1)])
    assert int(dut.error.value) == 0b11, f"error flags {dut.error.value}"
    assert top.value("done_errors") == 2
    assert top.checker.read_responses[3] == 3 + 2        # DECERR beats
    assert top.checker.write_responses[3] == 2
    await top.clear()
    assert int(dut.error.value) == 0
    await top.run(reads=[(8 * top.bytes, 5)], writes=[(8 * top.bytes, 5)])
    assert int(dut.error.value) == 0 and top.value("done_errors") == 0
    top.checker.assert_clean()
    record("decode_errors", seed=seed)
