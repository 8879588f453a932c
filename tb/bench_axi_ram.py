"""cocotb bench: ``AxiRam`` (with its ``host`` backdoor) driven by cocotbext-axi's ``AxiMaster``.

The memory is filled through the backdoor, one word per cycle, and compared with a Python model
(a ``bytearray``) through it at the end. ``random_bursts``: concurrent random reads and writes
(unaligned addresses and lengths, so partial strobes at both ends, narrow sizes, bursts across
4 KiB boundaries, several IDs), random pauses on all five channels, and backdoor writes to a
third region at the same time (they take the write port from W). ``error_responses``: FIXED and
WRAP bursts answered SLVERR and writing nothing, accesses beyond the memory DECERR (the beats
inside it still served), and the RAM still working afterwards. ``streaming``: no pauses; every
R and W beat of a burst in consecutive cycles and the read latency the docstring states. The
protocol checker watches the port in every test.
"""

import cocotb
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiMaster
from cocotbext.axi.constants import AxiBurstType, AxiResp

from maskprop.tb.axi_checker import AxiMonitor
from maskprop.tb.bench_axi_streams import HostPort, pauses
from maskprop.tb.harness import params, record, start


class Ram:
    """The DUT, its Python model and the cocotbext-axi master on its port."""

    def __init__(self, dut):
        p = params()
        self.dut, self.p = dut, p
        self.bytes = p["data_width"] // 8
        self.depth = p["depth"]
        self.size_bytes = self.depth * self.bytes
        self.host = HostPort(dut, dut.clk)
        self.master = AxiMaster(AxiBus.from_prefix(dut, "bus_"), dut.clk, dut.rst)
        for interface in (self.master.write_if, self.master.read_if):
            interface.log.setLevel("WARNING")
        self.model = bytearray(self.size_bytes)

    def channels(self):
        m = self.master
        return [m.write_if.aw_channel, m.write_if.w_channel, m.write_if.b_channel,
                m.read_if.ar_channel, m.read_if.r_channel]

    def words(self, model=None):
        model = self.model if model is None else model
        return [int.from_bytes(model[k * self.bytes:(k + 1) * self.bytes], "little")
                for k in range(self.depth)]

    async def fill(self, rng):
        """Random contents, written through the backdoor."""
        self.model[:] = rng.randbytes(self.size_bytes)
        await self.host.write(0, self.words())

    async def check_contents(self, what: str):
        """The whole memory, read through the backdoor, equals the model."""
        got = await self.host.read(0, self.depth)
        want = self.words()
        bad = [k for k in range(self.depth) if got[k] != want[k]]
        assert not bad, (f"{what}: {len(bad)} words differ from the model, first word {bad[0]} "
                         f"(byte {bad[0] * self.bytes:#x}): {got[bad[0]]:#x} != {want[bad[0]]:#x}")


def random_access(rng, ram: Ram, lo: int, hi: int):
    """(address, length, size) in ``[lo, hi)``: unaligned, up to ~3 bus words or a long burst,
    a narrow size one time in four."""
    length = rng.choice([1, rng.randint(1, 3 * ram.bytes), rng.randint(1, 40 * ram.bytes)])
    length = min(length, hi - lo)
    address = rng.randrange(lo, hi - length + 1)
    max_size = ram.bytes.bit_length() - 1
    size = rng.randint(0, max_size) if rng.random() < 0.25 else max_size
    return address, length, size


def crossing_access(rng, ram: Ram, boundary: int):
    """(address, length, size) of an access across ``boundary``."""
    address = boundary - rng.randint(1, 3 * ram.bytes)
    length = boundary - address + rng.randint(1, 3 * ram.bytes)
    return address, length, rng.randint(0, ram.bytes.bit_length() - 1)


def bursts_of(address: int, length: int, size: int) -> int:
    """Bursts an access takes: cut at 256 beats and at 4 KiB boundaries (as cocotbext-axi's
    master cuts them)."""
    step = 1 << size
    beats = (length + address % step + step - 1) // step
    count, current = 0, address
    while beats:
        n = min(beats, 256, (min(256 * step, 0x1000 - current % 0x1000) + step - 1) // step)
        beats, count = beats - n, count + 1
        current = (current & ~(step - 1)) + n * step
    return count


async def run_all(coroutines):
    tasks = [cocotb.start_soon(c) for c in coroutines]
    return [await task for task in tasks]


@cocotb.test()
async def random_bursts(dut):
    ram = Ram(dut)
    rng, seed = await start(dut)
    for channel in ram.channels():
        channel.set_pause_generator(pauses(rng, params()["pause"]))
    checker = AxiMonitor(dut, "bus", dut.clk, dut.rst).start()
    await ram.fill(rng)
    await ram.check_contents("after the backdoor fill")

    # Reads in [0, 6K), writes in [6K, 10K) (each across a 4 KiB boundary, some accesses
    # placed on it), backdoor writes in [10K, 12K), all at the same time.
    k = 1024
    reads = [random_access(rng, ram, 0, 6 * k) for _ in range(params()["accesses"])]
    reads += [crossing_access(rng, ram, 4 * k) for _ in range(4)]
    writes = [random_access(rng, ram, 6 * k, 10 * k) for _ in range(params()["accesses"])]
    writes += [crossing_access(rng, ram, 8 * k) for _ in range(4)]
    write_data = [rng.randbytes(length) for _, length, _ in writes]
    host_words = [rng.getrandbits(8 * ram.bytes) for _ in range(2 * k // ram.bytes)]
    image = bytes(ram.model)

    host_read_words = 0

    async def host_traffic():
        # Backdoor writes into [10K, 12K) and reads of [0, 6K) while AXI traffic runs, in runs
        # with gaps: the reads take the memory's read port from under the AXI reads.
        nonlocal host_read_words
        start_word, words = 10 * k // ram.bytes, list(host_words)
        while words:
            count = rng.randint(1, 8)
            if rng.random() < 0.5:
                await ram.host.write(start_word, words[:count])
                start_word, words = start_word + count, words[count:]
            else:
                first = rng.randrange(6 * k // ram.bytes - count)
                got = await ram.host.read(first, count)
                want = [int.from_bytes(image[(first + n) * ram.bytes:(first + n + 1) * ram.bytes],
                                       "little") for n in range(count)]
                assert got == want, f"backdoor read of {count} words at word {first} (seed {seed})"
                host_read_words += count
            await ClockCycles(dut.clk, rng.randint(0, 20))

    results = await run_all(
        [ram.master.read(address, length, size=size) for address, length, size in reads] +
        [ram.master.write(address, data, size=size)
         for (address, _, size), data in zip(writes, write_data)] +
        [host_traffic()])
    for (address, length, _), result in zip(reads, results):
        assert result.resp == AxiResp.OKAY, f"read at {address:#x}: {result.resp}"
        assert result.data == image[address:address + length], \
            f"read of {length} bytes at {address:#x} differs from the model (seed {seed})"
    for (address, _, _), result in zip(writes, results[len(reads):]):
        assert result.resp == AxiResp.OKAY, f"write at {address:#x}: {result.resp}"
    for (address, length, _), data in zip(writes, write_data):
        ram.model[address:address + length] = data
    for index, word in enumerate(host_words):
        offset = 10 * k + index * ram.bytes
        ram.model[offset:offset + ram.bytes] = word.to_bytes(ram.bytes, "little")
    await ram.check_contents("after the AXI and backdoor writes")

    # The written range, back over AXI.
    readback = [random_access(rng, ram, 6 * k, 12 * k) for _ in range(params()["accesses"] // 2)]
    for address, length, size in readback:
        result = await ram.master.read(address, length, size=size)
        assert result.resp == AxiResp.OKAY and \
            result.data == bytes(ram.model[address:address + length]), f"read back at {address:#x}"
    checker.assert_clean()
    assert checker.write_responses == {AxiResp.OKAY: checker.write_bursts}
    assert checker.read_bursts == sum(bursts_of(*access) for access in reads + readback)
    assert checker.write_bursts == sum(bursts_of(*access) for access in writes)
    assert checker.bytes_written == sum(map(len, write_data))
    checker.stop()
    record("random_bursts", seed=seed, read_bursts=checker.read_bursts,
           write_bursts=checker.write_bursts, max_read_outstanding=checker.max_read_outstanding,
           max_write_outstanding=checker.max_write_outstanding, host_read_words=host_read_words)


@cocotb.test()
async def error_responses(dut):
    ram = Ram(dut)
    rng, seed = await start(dut)
    checker = AxiMonitor(dut, "bus", dut.clk, dut.rst).start()
    await ram.fill(rng)
    master, width, end = ram.master, ram.bytes, ram.size_bytes
    responses = {}

    # FIXED and WRAP: SLVERR, nothing written, every beat still transferred.
    junk = bytes(range(4 * width))
    responses["write FIXED"] = (await master.write(64, junk[:width] * 3,
                                                   burst=AxiBurstType.FIXED)).resp
    responses["write WRAP"] = (await master.write(8 * width, junk,
                                                  burst=AxiBurstType.WRAP)).resp
    responses["read FIXED"] = (await master.read(64, 3 * width, burst=AxiBurstType.FIXED)).resp
    responses["read WRAP"] = (await master.read(8 * width, 4 * width,
                                                burst=AxiBurstType.WRAP)).resp
    await ram.check_contents("after FIXED and WRAP writes")

    # Beyond the memory: DECERR; the beats inside it are served.
    responses["read beyond"] = (await master.read(end + 3 * width, 2 * width)).resp
    responses["write beyond"] = (await master.write(end, junk)).resp
    await ram.check_contents("after a write beyond the memory")
    straddle = bytes(rng.randbytes(4 * width))
    responses["write straddling"] = (await master.write(end - 2 * width, straddle)).resp
    ram.model[end - 2 * width:] = straddle[:2 * width]
    await ram.check_contents("after a write straddling the end")
    result = await master.read(end - 2 * width, 4 * width)
    responses["read straddling"] = result.resp
    assert result.data[:2 * width] == straddle[:2 * width]

    assert responses == {
        "write FIXED": AxiResp.SLVERR, "write WRAP": AxiResp.SLVERR,
        "read FIXED": AxiResp.SLVERR, "read WRAP": AxiResp.SLVERR,
        "read beyond": AxiResp.DECERR, "write beyond": AxiResp.DECERR,
        "write straddling": AxiResp.DECERR, "read straddling": AxiResp.DECERR,
    }, responses
    # Per beat: the straddling read's first two beats OKAY, its last two DECERR.
    assert checker.read_responses == {AxiResp.SLVERR: 3 + 4, AxiResp.DECERR: 2 + 2,
                                      AxiResp.OKAY: 2}, checker.read_responses

    # Still working.
    data = rng.randbytes(5 * width)
    assert (await master.write(width, data)).resp == AxiResp.OKAY
    ram.model[width:6 * width] = data
    assert (await master.read(width, 5 * width)).data == data
    await ram.check_contents("after the errors")
    checker.assert_clean()
    checker.stop()
    record("error_responses", seed=seed, responses={k: int(v) for k, v in responses.items()})


@cocotb.test()
async def streaming(dut):
    """No pauses: R and W one beat per cycle within a burst, and the read latency."""
    ram = Ram(dut)
    rng, seed = await start(dut)
    checker = AxiMonitor(dut, "bus", dut.clk, dut.rst, record_cycles=True).start()
    await ram.fill(rng)
    length = min(64, ram.depth) * ram.bytes
    data = rng.randbytes(length)
    assert (await ram.master.write(0, data)).resp == AxiResp.OKAY
    result = await ram.master.read(0, length)
    assert result.data == data
    await ClockCycles(dut.clk, 4)
    beats = length // ram.bytes
    cycles = checker.handshake_cycles
    w, r = cycles["w"][-beats:], cycles["r"][-beats:]
    assert w == list(range(w[0], w[0] + beats)), f"W beats not back to back: {w}"
    assert r == list(range(r[0], r[0] + beats)), f"R beats not back to back: {r}"
    latency = r[0] - cycles["ar"][-1]
    assert latency == params()["read_latency"], f"read latency {latency}"
    checker.assert_clean()
    checker.stop()
    record("streaming", seed=seed, beats=beats, read_latency=latency,
           write_response_after_last_w=cycles["b"][-1] - w[-1],
           first_w_after_aw=w[0] - cycles["aw"][-1])
