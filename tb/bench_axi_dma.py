"""cocotb bench: ``AxiDma`` against cocotbext-axi's AXI4 memory models.

Random read and write commands (random lengths up to ``max_beats_per_command``, addresses at and
around 4 KiB boundaries, many queued; contiguous and 2-D: rows of 1 word up to a few bursts,
pitches from back to back to over a page, rows across 4 KiB boundaries) with random idle cycles
on ``read_cmd``, ``write_cmd`` and ``write_data``, random backpressure on ``read_data`` and
``write_done``, and random pauses on all five AXI channels of the memory model. Every word read
is checked bit-exactly and in order against the memory image at its row's address, with
``last`` exactly on each command's final word (not on each row's); every write command must
complete (one ``write_done`` beat each), RREADY must never drop, with the memory then equal to
the model that applied the commands' words and strobes, in order, to the addresses of their
rows. The protocol checker (``tb/axi_checker.py``) watches the port throughout; its traffic
counts must equal the commands' bytes per 4 KiB page, the bursts on AR and AW must be exactly
``command_bursts`` (rows cut at ``max_burst`` and 4 KiB only), and the DMA's own counters must
equal the checker's counts. A last phase reads to a slow consumer on a bus without pauses, so
that the read FIFO fills.

``error_responses``: a memory model that answers SLVERR inside one page: every command still
completes, the error flags and each write command's ``error`` bit are exactly those of the
commands that touched the page, and ``clear`` resets the flags.
"""

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiRam, AxiSlave
from cocotbext.axi.constants import AxiResp

from maskprop.hw.axi_dma import DMA_COUNTERS, dma_command_layout
from maskprop.tb.axi_checker import AxiMonitor
from maskprop.tb.bench_axi_streams import StreamSink, StreamSource, pauses
from maskprop.tb.harness import params, record, start

PAGE = 4096


def command_fields(command) -> tuple[int, int, int, int]:
    """``(addr, beats)`` (contiguous) or ``(addr, beats, row_beats, pitch)``, as all four."""
    addr, beats, *rest = command
    row_beats, pitch = rest if rest else (beats, 0)
    return addr, beats, row_beats, pitch


def command_rows(command) -> list[tuple[int, int]]:
    """The rows a command moves: (byte address of the row's first word, words), in order."""
    addr, beats, row_beats, pitch = command_fields(command)
    assert row_beats and beats % row_beats == 0, f"not whole rows: {command}"
    return [(addr + r * pitch, row_beats) for r in range(beats // row_beats)]


def word_addresses(command, bytes_per_word: int) -> list[int]:
    """The byte address of each word of a command, in the order the DMA moves them."""
    return [addr + k * bytes_per_word for addr, words in command_rows(command)
            for k in range(words)]


def command_bursts(command, bytes_per_word: int, max_burst: int) -> list[tuple[int, int]]:
    """The reference burst list, (address, beats) each: every row cut at ``max_burst`` beats
    and at 4 KiB boundaries only, rows in order, no burst spanning two rows."""
    bursts = []
    for addr, left in command_rows(command):
        while left:
            beats = min(left, max_burst, (PAGE - addr % PAGE) // bytes_per_word)
            bursts.append((addr, beats))
            addr, left = addr + beats * bytes_per_word, left - beats
    return bursts


class Setup:
    """The DUT's parameters and the packing of its stream payloads."""

    def __init__(self):
        p = params()
        self.p = p
        self.addr_width, self.data_width = p["addr_width"], p["data_width"]
        self.bytes = self.data_width // 8
        self.size = self.bytes.bit_length() - 1
        self.max_beats = p["max_beats_per_command"]
        self.memory_bytes = 1 << self.addr_width
        self.layout = dma_command_layout(self.addr_width, self.max_beats)

    def command(self, *command):
        """The packed payload of ``(addr, beats)`` or ``(addr, beats, row_beats, pitch)``."""
        return pack_command(self.layout, command)

    def write_word(self, word, strobes):
        return word | strobes << self.data_width

    def read_word(self, bits):
        return bits & ((1 << self.data_width) - 1), bits >> self.data_width


def random_commands(rng, s: Setup, lo: int, hi: int, count: int):
    """``count`` (addr, beats) in ``[lo, hi)``: random lengths (1, the burst size and around
    it, the largest), most starting at or a few words before a 4 KiB boundary."""
    burst = s.p["max_burst"]
    commands = []
    for _ in range(count):
        beats = rng.choice([1, 2, burst - 1 or 1, burst, burst + 1, rng.randint(1, s.max_beats),
                            s.max_beats, rng.randint(1, 3 * burst)])
        beats = min(beats, s.max_beats, (hi - lo) // s.bytes)
        if rng.random() < 0.7:
            boundary = rng.randrange(lo // PAGE + 1, hi // PAGE) * PAGE
            addr = boundary - rng.randint(0, min(beats + 1, 2 * burst)) * s.bytes
        else:
            addr = rng.randrange(lo, hi, s.bytes)
        addr = max(lo, min(addr, hi - beats * s.bytes))
        commands.append((addr, beats))
    return commands


def pack_command(layout, command) -> int:
    """``command`` (see ``command_fields``) as the bits of a ``dma_command_layout`` payload."""
    values = dict(zip(("addr", "beats", "row_beats", "pitch"), command_fields(command)))
    return sum(value << layout[name].offset for name, value in values.items())


def random_2d_commands(rng, lo: int, hi: int, count: int, *, bytes_per_word: int,
                       max_burst: int, max_beats: int):
    """``count`` strided commands (addr, beats, row_beats, pitch) in ``[lo, hi)``: rows of 1
    word, of a burst and around it, and longer; pitches from the row's own length (rows back to
    back, still cut at each row) through a few words of gap and random ones to about a page
    (each row then crosses, or nearly crosses, a 4 KiB boundary at its own offset); about half
    start just before a boundary."""
    burst, word = max_burst, bytes_per_word
    commands = []
    for _ in range(count):
        row_beats = rng.choice([1, 1, 2, burst - 1 or 1, burst, burst + 1,
                                rng.randint(1, 3 * burst)])
        row_beats = min(row_beats, max_beats, (hi - lo) // word)
        row_bytes = row_beats * word
        kind = rng.randrange(4)
        if kind == 0:
            pitch = row_bytes
        elif kind == 1:
            pitch = row_bytes + rng.randint(1, 4) * word
        elif kind == 2:
            pitch = rng.randrange(row_bytes, max(row_bytes + 1, PAGE // 2), word)
        else:
            pitch = max(row_bytes, PAGE + rng.randint(-2 * row_beats, 2 * row_beats) * word)
        rows = rng.choice([1, 2, rng.randint(1, max_beats // row_beats)])
        rows = max(1, min(rows, max_beats // row_beats, (hi - lo - row_bytes) // pitch + 1))
        extent = (rows - 1) * pitch + row_bytes
        if rng.random() < 0.5:
            boundary = rng.randrange(lo // PAGE + 1, hi // PAGE) * PAGE
            addr = boundary - rng.randint(0, row_beats + 1) * word
        else:
            addr = rng.randrange(lo, hi, word)
        addr = max(lo, min(addr, hi - extent))
        commands.append((addr, rows * row_beats, row_beats, pitch))
    return commands


def mixed_commands(rng, s: Setup, lo: int, hi: int, count: int):
    """``count`` contiguous commands and ``count // 2`` strided ones, shuffled together."""
    commands = random_commands(rng, s, lo, hi, count) + random_2d_commands(
        rng, lo, hi, count // 2, bytes_per_word=s.bytes, max_burst=s.p["max_burst"],
        max_beats=s.max_beats)
    rng.shuffle(commands)
    return commands


def random_strobes(rng, s: Setup) -> int:
    full = (1 << s.bytes) - 1
    return full if rng.random() < 0.6 else rng.randrange(full + 1)


def expected_read_words(image, s: Setup, commands):
    words = []
    for command in commands:
        addresses = word_addresses(command, s.bytes)
        for k, start in enumerate(addresses):
            words.append((int.from_bytes(image[start:start + s.bytes], "little"),
                          int(k == len(addresses) - 1)))
    return words


def apply_writes(image, s: Setup, commands, words):
    """The memory after the commands' words with their strobes, in order."""
    words = iter(words)
    for command in commands:
        for base in word_addresses(command, s.bytes):
            word, strobes = next(words)
            for lane in range(s.bytes):
                if strobes >> lane & 1:
                    image[base + lane] = word >> 8 * lane & 0xFF


def page_bytes(s: Setup, commands, strobed_words=None):
    """Bytes per 4 KiB page the commands move (with ``strobed_words``: only strobed bytes)."""
    pages = {}
    words = iter(strobed_words) if strobed_words is not None else None
    for command in commands:
        for addr in word_addresses(command, s.bytes):
            count = s.bytes if words is None else bin(next(words)[1]).count("1")
            page = addr // PAGE
            pages[page] = pages.get(page, 0) + count
    return pages


def memory_channels(model):
    return [model.write_if.aw_channel, model.write_if.w_channel, model.write_if.b_channel,
            model.read_if.ar_channel, model.read_if.r_channel]


def quiet(model):
    """cocotbext-axi logs every burst at INFO: thousands of lines per run."""
    for interface in (model.write_if, model.read_if):
        interface.log.setLevel("WARNING")


def hold_inputs(dut):
    """Every input of the DMA but the bus at 0, from before reset (x on Icarus otherwise)."""
    dut.clear.value = 0
    for port in ("read_cmd", "write_cmd", "write_data"):
        getattr(dut, f"{port}__valid").value = 0
        getattr(dut, f"{port}__payload").value = 0
    for port in ("read_data", "write_done"):
        getattr(dut, f"{port}__ready").value = 0


class Dma:
    """The DUT's five stream ports, driven and taken with random traffic."""

    def __init__(self, dut, rng, s: Setup, *, idle, backpressure):
        self.dut, self.s = dut, s
        clk = dut.clk
        self.read_cmd = StreamSource(dut, "read_cmd", clk, rng, idle=idle)
        self.write_cmd = StreamSource(dut, "write_cmd", clk, rng, idle=idle)
        self.write_data = StreamSource(dut, "write_data", clk, rng, idle=idle)
        self.read_data = StreamSink(dut, "read_data", clk, rng, backpressure=backpressure)
        self.write_done = StreamSink(dut, "write_done", clk, rng, backpressure=backpressure)

    async def run(self, reads, writes, write_words, *, timeout_cycles):
        """Send the commands and write words, take every read word and completion."""
        s = self.s
        self.read_cmd.send([s.command(*c) for c in reads])
        self.write_cmd.send([s.command(*c) for c in writes])
        self.write_data.send([s.write_word(*w) for w in write_words])
        tasks = [cocotb.start_soon(source.run(timeout_cycles=timeout_cycles))
                 for source in (self.read_cmd, self.write_cmd, self.write_data)]
        received = len(self.read_data.beats) + sum(command[1] for command in reads)
        done = len(self.write_done.beats) + len(writes)
        tasks += [cocotb.start_soon(self.read_data.run(received, timeout_cycles=timeout_cycles)),
                  cocotb.start_soon(self.write_done.run(done, timeout_cycles=timeout_cycles))]
        for task in tasks:
            await task

    async def idle_check(self, cycles=32):
        """After the traffic: nothing more comes out, and both engines go idle."""
        silence = [cocotb.start_soon(sink.expect_silence(cycles))
                   for sink in (self.read_data, self.write_done)]
        for task in silence:
            await task
        await ReadOnly()
        assert int(self.dut.busy.value) == 0, f"busy={self.dut.busy.value} after the traffic"
        await RisingEdge(self.dut.clk)

    def counters(self):
        value, fields = int(self.dut.counters.value), {}
        for index, name in enumerate(DMA_COUNTERS):
            fields[name] = value >> 32 * index & 0xFFFFFFFF
        return fields


def start_monitor(dut, s: Setup):
    return AxiMonitor(dut, "bus", dut.clk, dut.rst, max_outstanding=s.p["max_outstanding"],
                      max_len=s.p["max_burst"], size=s.size).start()


@cocotb.test()
async def random_traffic(dut):
    """Reads from one half of memory and writes to the other, concurrently; then the written
    half read back through the DMA."""
    s = Setup()
    p = s.p
    model = AxiRam(AxiBus.from_prefix(dut, "bus_"), dut.clk, dut.rst, size=s.memory_bytes)
    quiet(model)
    hold_inputs(dut)
    rng, seed = await start(dut)
    dma = Dma(dut, rng, s, idle=p["idle"], backpressure=p["backpressure"])
    image = bytearray(rng.randbytes(s.memory_bytes))
    model.write(0, bytes(image))
    for channel in memory_channels(model):
        channel.set_pause_generator(pauses(rng, p["pause"]))
    checker = start_monitor(dut, s)
    rready_low, issued = [], {"ar": [], "aw": []}

    async def watch_bus():
        # The read engine reserves FIFO room for every burst it issues: RREADY never drops.
        # And every burst's address and length, for the reference burst list.
        edge, settled = RisingEdge(dut.clk), ReadOnly()
        while True:
            await settled
            if not dut.bus__rready.value:
                rready_low.append(checker.cycle_index)
            for channel, bursts in issued.items():
                if getattr(dut, f"bus__{channel}valid").value and \
                        getattr(dut, f"bus__{channel}ready").value:
                    bursts.append((int(getattr(dut, f"bus__{channel}addr").value),
                                   int(getattr(dut, f"bus__{channel}len").value) + 1))
            await edge

    watcher = cocotb.start_soon(watch_bus())
    half = s.memory_bytes // 2
    reads = mixed_commands(rng, s, 0, half, p["commands"])
    writes = mixed_commands(rng, s, half, s.memory_bytes, p["commands"])
    write_words = [(rng.getrandbits(s.data_width), random_strobes(rng, s))
                   for command in writes for _ in range(command[1])]
    expected = expected_read_words(image, s, reads)
    timeout = 40 * (len(expected) + len(write_words)) + 2000
    await dma.run(reads, writes, write_words, timeout_cycles=timeout)
    apply_writes(image, s, writes, write_words)

    # The written half, back through the DMA, to a slow reader on a bus without pauses: the
    # read FIFO fills, and only the reservation keeps RREADY high.
    for channel in memory_channels(model):
        channel.set_pause_generator(None)
        # cocotbext leaves ``pause`` at the generator's last value: a channel paused in this
        # cycle would stay paused for good.
        channel.pause = False
    dma.read_data.backpressure = 0.85
    readback = mixed_commands(rng, s, half, s.memory_bytes, p["commands"] // 2)
    expected += expected_read_words(image, s, readback)
    await dma.run(readback, [], [], timeout_cycles=timeout)
    await dma.idle_check()

    received = [s.read_word(bits) for bits in dma.read_data.beats]
    for index, (got, want) in enumerate(zip(received, expected)):
        assert got == want, (f"read word {index} of {len(expected)}: got data {got[0]:#x} "
                             f"last {got[1]}, expected {want[0]:#x} last {want[1]} (seed {seed})")
    assert len(received) == len(expected)
    assert dma.write_done.beats == [0] * len(writes), "a write completed with error"
    memory = model.read(0, s.memory_bytes)
    assert memory == bytes(image), f"memory differs from the model at byte " \
        f"{next(i for i, (a, b) in enumerate(zip(memory, image)) if a != b):#x}"
    assert int(dut.error.value) == 0
    watcher.cancel()
    assert not rready_low, f"RREADY low in cycles {rready_low[:10]}"

    checker.assert_clean()
    all_reads = reads + readback
    for page, count in page_bytes(s, all_reads).items():
        assert checker.bytes_read_in(page * PAGE, (page + 1) * PAGE) == count, page
    for page, count in page_bytes(s, writes, write_words).items():
        assert checker.bytes_written_in(page * PAGE, (page + 1) * PAGE) == count, page
    assert checker.bytes_read_in(0, s.memory_bytes) == checker.bytes_read
    counters = dma.counters()
    assert counters["bytes_read"] == checker.bytes_read == \
        s.bytes * sum(command[1] for command in all_reads)
    assert counters["bytes_written"] == s.bytes * len(write_words)
    assert counters["read_bursts"] == checker.read_bursts
    assert counters["write_bursts"] == checker.write_bursts
    # Bursts: as few as the rules allow (each row cut only at max_burst and 4 KiB), and
    # exactly those addresses and lengths, in order.
    assert checker.read_bursts == sum(bursts_of(s, c) for c in all_reads)
    assert checker.write_bursts == sum(bursts_of(s, c) for c in writes)
    for channel, commands in (("ar", all_reads), ("aw", writes)):
        want = [burst for c in commands for burst in command_bursts(c, s.bytes, p["max_burst"])]
        assert issued[channel] == want, f"{channel.upper()} bursts differ from the reference"
    checker.stop()
    record("random_traffic", seed=seed, read_words=len(received), write_words=len(write_words),
           strided_reads=sum(len(c) == 4 for c in all_reads),
           strided_writes=sum(len(c) == 4 for c in writes),
           read_bursts=checker.read_bursts, write_bursts=checker.write_bursts,
           max_read_outstanding=checker.max_read_outstanding,
           max_write_outstanding=checker.max_write_outstanding, counters=counters)


def bursts_of(s: Setup, command) -> int:
    return len(command_bursts(command, s.bytes, s.p["max_burst"]))


class FaultyMemory:
    """A memory model target that fails (cocotbext-axi answers SLVERR) every access that
    touches the bytes ``[bad_lo, bad_hi)``."""

    def __init__(self, size, bad_lo, bad_hi):
        self.data = bytearray(size)
        self.bad_lo, self.bad_hi = bad_lo, bad_hi

    def touches_bad(self, address, length):
        return address < self.bad_hi and address + length > self.bad_lo

    async def read(self, address, length):
        if self.touches_bad(address, length):
            raise IOError(f"read of {length} bytes at {address:#x}")
        return bytes(self.data[address:address + length])

    async def write(self, address, data):
        if self.touches_bad(address, len(data)):
            raise IOError(f"write of {len(data)} bytes at {address:#x}")
        self.data[address:address + len(data)] = data


@cocotb.test()
async def error_responses(dut):
    """SLVERR inside one page: every command completes, the flags and per-command errors are
    exact, and ``clear`` resets the flags."""
    s = Setup()
    p = s.p
    bad_lo, bad_hi = 3 * PAGE, 4 * PAGE
    target = FaultyMemory(s.memory_bytes, bad_lo, bad_hi)
    model = AxiSlave(AxiBus.from_prefix(dut, "bus_"), dut.clk, dut.rst, target=target)
    quiet(model)
    hold_inputs(dut)
    rng, seed = await start(dut)
    dma = Dma(dut, rng, s, idle=p["idle"], backpressure=p["backpressure"])
    target.data[:] = rng.randbytes(s.memory_bytes)
    for channel in memory_channels(model):
        channel.set_pause_generator(pauses(rng, p["pause"]))
    checker = start_monitor(dut, s)

    def touches(command):
        addr, beats = command
        return addr < bad_hi and addr + beats * s.bytes > bad_lo

    # First only commands that stay clear of the bad page: no error.
    good_reads = [c for c in random_commands(rng, s, 0, 2 * PAGE, 6) if not touches(c)]
    await dma.run(good_reads, [], [], timeout_cycles=20000)
    await ClockCycles(dut.clk, 2)
    assert int(dut.error.value) == 0, "an error flag without an error response"

    reads = random_commands(rng, s, 2 * PAGE, 5 * PAGE, 10) + [(bad_lo, 1)]
    writes = random_commands(rng, s, 2 * PAGE, 5 * PAGE, 10) + [(bad_hi - s.bytes, 2)]
    assert any(map(touches, reads)) and not all(map(touches, reads))
    assert any(map(touches, writes)) and not all(map(touches, writes))
    # The reads complete before the writes start: they see the image as it is now.
    write_words = [(rng.getrandbits(s.data_width), (1 << s.bytes) - 1)
                   for _, beats in writes for _ in range(beats)]
    image = bytes(target.data)
    await dma.run(reads, [], [], timeout_cycles=20000)
    await dma.run([], writes, write_words, timeout_cycles=20000)
    await dma.idle_check()

    expected = expected_read_words(image, s, good_reads + reads)
    received = [s.read_word(bits) for bits in dma.read_data.beats]
    assert [last for _, last in received] == [last for _, last in expected], \
        "words per command or last flags wrong under error responses"
    words = iter(zip(received, expected))
    for addr, beats in good_reads + reads:
        for k in range(beats):
            (got, _), (want, _) = next(words)
            word_addr = addr + k * s.bytes
            if not bad_lo <= word_addr < bad_hi:
                assert got == want, f"word at {word_addr:#x}: {got:#x} != {want:#x}"
    assert dma.write_done.beats == [int(touches(c)) for c in writes], \
        "per-command write error bits"
    assert int(dut.error.value) == 0b11, f"error flags {dut.error.value}"
    bad_beats = sum(1 for addr, beats in reads for k in range(beats)
                    if bad_lo <= addr + k * s.bytes < bad_hi)
    assert checker.read_responses.get(AxiResp.SLVERR, 0) == bad_beats
    checker.assert_clean()

    dut.clear.value = 1
    await RisingEdge(dut.clk)
    dut.clear.value = 0
    await ClockCycles(dut.clk, 2)
    assert int(dut.error.value) == 0, "clear did not reset the error flags"
    assert dma.counters() == {name: 0 for name in DMA_COUNTERS}
    await dma.run([(0, 3)], [(PAGE, 3)], [(1, 1), (2, 1), (3, 1)], timeout_cycles=2000)
    await dma.idle_check()
    assert int(dut.error.value) == 0, "an error flag after clear without a new error"
    checker.assert_clean()
    checker.stop()
    record("error_responses", seed=seed, bad_read_beats=bad_beats,
           failed_writes=sum(dma.write_done.beats))
