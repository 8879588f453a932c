# amaranth: UnusedElaboratable=no
# (the parameter tests construct RAMs that are refused or never simulated)
"""AxiRam as generated Verilog driven by cocotbext-axi's AxiMaster under cocotb (Verilator;
``SIM=icarus`` works), the protocol checker on its port in every run; its backdoor in
Amaranth's simulator; lint; parameter validation."""

import random

import pytest
from amaranth.sim import Simulator

from maskprop.base.config import GENERATABLE_BUFFER_BITS
from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.hw.axi_ram import AxiRam
from maskprop.tb.runner import run_testbench
from maskprop.tb.stimulus import seed_from_env

# 16-bit addresses, 64-bit words, 2048 words (16 KiB of the 64 KiB address space: room for
# DECERR beyond the memory, and three 4 KiB boundaries inside it), 2 ID bits.
RAM_PARAMS = dict(addr_width=16, data_width=64, id_width=2, depth=2048, host_port=True)
TRAFFIC = dict(accesses=40, pause=0.3)


def run_ram_bench(tmp_path, sim=None, **traffic):
    seed = seed_from_env(default=777)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    dut = AxiRam(**RAM_PARAMS)
    run = run_testbench(dut, "axi_ram", "maskprop.tb.bench_axi_ram",
                        params=dict(RAM_PARAMS, **{**TRAFFIC, **traffic},
                                    read_latency=dut.read_latency),
                        sim=sim, build_dir=tmp_path / "build", seed=seed)
    print(f"logs in {run.build_dir}")
    return run


@pytest.mark.sim
def test_ram_against_axi_master(tmp_path):
    """Random concurrent bursts (unaligned, narrow, across 4 KiB, several IDs) with pauses on
    every channel and backdoor writes and reads at the same time, equal to the model; SLVERR
    for FIXED and WRAP, DECERR beyond the memory, no hang; one beat per cycle and the stated
    latency."""
    run = run_ram_bench(tmp_path)
    assert (run.tests, run.failures) == (3, 0), f"see {run.log}"
    streaming = run.report["streaming"]
    assert streaming["read_latency"] == AxiRam.read_latency == 3
    assert streaming["first_w_after_aw"] == 2 and streaming["write_response_after_last_w"] == 1
    assert run.report["random_bursts"]["max_read_outstanding"] > 1
    assert run.report["random_bursts"]["host_read_words"] > 0


@pytest.mark.sim
def test_ram_on_icarus(tmp_path):
    """The four-state simulator (the master drives x on idle payloads): the same bench,
    fewer accesses."""
    run = run_ram_bench(tmp_path, sim="icarus", accesses=16)
    assert (run.simulator, run.tests, run.failures) == ("icarus", 3, 0), f"see {run.log}"


def test_backdoor_and_bus_in_amaranth_simulator():
    """The backdoor writes whole words and reads them the next cycle; ``init`` preloads."""
    dut = AxiRam(addr_width=12, data_width=16, depth=8, init=[0x1234, 0xBEEF], host_port=True)
    rng = random.Random(seed_from_env(default=5))
    words = [rng.getrandbits(16) for _ in range(6)]
    seen = []

    async def bench(ctx):
        ctx.set(dut.host.en, 1)
        for address in (0, 1):
            ctx.set(dut.host.addr, address)
            await ctx.tick()
            seen.append(ctx.get(dut.host.rdata))
        ctx.set(dut.host.we, 1)
        for k, word in enumerate(words):
            ctx.set(dut.host.addr, 2 + k)
            ctx.set(dut.host.wdata, word)
            await ctx.tick()
        ctx.set(dut.host.we, 0)
        for address in range(2, 8):
            ctx.set(dut.host.addr, address)
            await ctx.tick()
            seen.append(ctx.get(dut.host.rdata))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0x1234, 0xBEEF] + words


def test_host_reads_share_the_read_port_with_bursts():
    """The backdoor's reads take the memory's one read port from under read bursts, with
    random back-pressure on R and a host read in about half the cycles: every R beat is its
    word, in order, never changed while it waits for ``rready``; every host word is on
    ``rdata`` the cycle after its read and stays until the next."""
    seed = seed_from_env(default=11)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    words = [rng.getrandbits(16) for _ in range(16)]
    dut = AxiRam(addr_width=12, data_width=16, depth=16, init=words, host_port=True)
    bursts = [(rng.randrange(16), rng.randint(1, 8)) for _ in range(12)]
    expected = [words[(start + k) % 16] for start, length in bursts for k in range(length)]
    received, host_reads = [], 0

    async def bench(ctx):
        nonlocal host_reads
        pending, host_word, offered = list(bursts), None, None
        for _ in range(2000):
            if pending:
                start, length = pending[0]
                ctx.set(dut.bus.arvalid, 1)
                ctx.set(dut.bus.araddr, 2 * start)
                ctx.set(dut.bus.arlen, length - 1)
            else:
                ctx.set(dut.bus.arvalid, 0)
            ctx.set(dut.bus.arsize, 1)
            ctx.set(dut.bus.arburst, 1)
            ctx.set(dut.bus.rready, rng.random() < 0.4)
            host_addr = rng.randrange(16) if rng.random() < 0.5 else None
            ctx.set(dut.host.en, host_addr is not None)
            ctx.set(dut.host.addr, host_addr or 0)
            (_, _, arready, rvalid, rready, rdata,
             host_rdata) = await ctx.tick().sample(dut.bus.arready, dut.bus.rvalid,
                                                   dut.bus.rready, dut.bus.rdata, dut.host.rdata)
            if host_word is not None:
                assert host_rdata == host_word, f"host word {host_rdata:#x}, not {host_word:#x}"
            if host_addr is not None:
                host_word, host_reads = words[host_addr], host_reads + 1
            if offered is not None:
                assert rvalid and rdata == offered, "an R beat changed while it waited"
            offered = rdata if rvalid and not rready else None
            if rvalid and rready:
                received.append(rdata)
            if pending and arready:
                pending.pop(0)
            if len(received) == len(expected):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert received == expected
    assert host_reads > len(expected) // 2


@pytest.mark.sim
@pytest.mark.parametrize("params", [
    dict(), dict(data_width=8, addr_width=12, depth=4096, id_width=4, host_port=True),
    dict(data_width=1024, depth=64), dict(data_width=32, depth=2, init=[1, 2], host_port=True)],
    ids=["default", "byte-wide-whole-space", "widest", "two-words"])
def test_verilator_lint_clean(params):
    lint_verilog(generate_verilog(AxiRam(**params), "axi_ram"), "axi_ram")


@pytest.mark.parametrize("kwargs, message", [
    (dict(addr_width=11), r"addr_width must be in \[12, 64\], not 11"),
    (dict(data_width=24), r"data_width must be one of 8, 16, 32"),
    (dict(id_width=17), r"id_width must be in \[1, 16\], not 17"),
    (dict(depth=1), r"depth must be in \[2, 65536\], not 1"),
    (dict(depth=1 << 17), r"depth must be in \[2, 65536\], not 131072"),
    (dict(addr_width=12, data_width=8, depth=4097), r"depth must be in \[2, 4096\], not 4097"),
    (dict(depth=10, init=[0] * 11), r"init has 11 words, more than depth \(10\)"),
])
def test_parameters_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AxiRam(**kwargs)


def test_size_limit_is_the_generatable_buffer():
    assert AxiRam(data_width=64, depth=GENERATABLE_BUFFER_BITS // 64).size_bytes == 1 << 19
    ram = AxiRam(addr_width=16, data_width=64, depth=2048, host_port=True)
    assert ram.word_addr_width == 11 and ram.size_bytes == 16384
    assert AxiRam(**ram.parameters).generator_key == ram.generator_key
