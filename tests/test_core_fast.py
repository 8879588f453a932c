# amaranth: UnusedElaboratable=no
# (the parameter tests construct systems that are refused or never generated)
"""CoreSystem (the core with an Amaranth AxiRam on its memory port) under the fast bench
(``tb/bench_core_fast.py``: backdoor fill, a minimal AXI4-Lite master, one trigger on ``irq``):
small layers, both passes, sparse and dense, one after the other on one core, each result
exactly the golden model's and the counters what the pass implies, on the runner's fast build
(only the top level's ports public: cocotb reaches all of them and nothing else). No timing
assertions: the speed is measured by ``scripts/bench_sim_speed.py``. Also: the fast build's own
cache entry and control file, the system's parameters, ports and Verilator lint."""

import numpy as np
import pytest
from amaranth import ClockDomain, Module
from amaranth.sim import Simulator

from maskprop.base.config import CORE_DEFAULT, Config, CoreConfig, GENERATABLE_BUFFER_BITS
from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.host.core_driver import CoreJob, runnable_operands
from maskprop.hw.core_registers import MAGIC
from maskprop.hw.core_system import CoreSystem
from maskprop.sim.core_model import job_cycles, total_cycles
from maskprop.sim.layer import ConvLayer
from maskprop.tb.bench_core_fast import TOPLEVEL, run_fast_core_jobs
from maskprop.tb.runner import (VERILATOR_ARGS, public_ports_control, simulation_build_dir,
                                top_level_ports, verilator_build_args)
from maskprop.tb.stimulus import random_conv_tensors, seed_from_env

# Small buffers keep the build short (the core of tests/test_core.py), 128 KiB of memory.
CORE = CoreConfig(Config(vec=16, lanes=4, tiles=4, col_block=8, max_chunks=64, max_cols=32),
                  x_words=1024, row_block_chunks=32)
MEMORY_WORDS = 4096
# The last: backward-weight's A and dZ bands (3 words a pixel) fit the scratchpad two images at
# a time, so its reduction runs in three parts chained by partial sums.
LAYERS = (ConvLayer(2, 5, 6, 6, 7, 3, 1, 1, "small"),
          ConvLayer(1, 19, 7, 5, 20, 3, 2, 1, "strided"),
          ConvLayer(5, 5, 12, 12, 20, 3, 1, 1, "split reduction"))


@pytest.fixture(scope="module")
def system():
    return CoreSystem(CORE, memory_words=MEMORY_WORDS, host_port=True)


@pytest.mark.sim
def test_small_layers_exact_in_every_pass_and_mode(system, tmp_path):
    """The layers, the three passes (backward-weight broadcasting A and dZ), dense and sparse,
    on the fast bench: each result exact, the counters as the models say (a split pass's
    summed over its commands: the core model's)."""
    seed = seed_from_env(default=10)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = np.random.default_rng(seed)
    jobs = []
    for layer in LAYERS:
        A, W, dZ = random_conv_tensors(rng, layer, 0.5)
        passes = [("forward", "a"), ("backward_data", "a")] + [
            ("backward_weight", operand) for operand in runnable_operands(layer, CORE)]
        for pass_name, operand in passes:
            for dense in (False, True):
                jobs.append(CoreJob(layer, pass_name, CORE, A=A, W=W, dZ=dZ, dense=dense,
                                    shift=int(rng.integers(0, 12)), operand=operand))
    labels = [f"{job.layer.label} {job.pass_name} {job.operand} "
              f"{'dense' if job.dense else 'sparse'}" for job in jobs]
    bench = run_fast_core_jobs(system, [job.bench_job(system.register_map) for job in jobs],
                               labels=labels, build_dir=tmp_path, seed=seed)
    assert [run.label for run in bench.runs] == labels
    # The fast build on Verilator: cocotb sees exactly the top level's ports (the bench used
    # them all); Icarus ignores the option and shows the internals too.
    ports = set(top_level_ports(generate_verilog(system, TOPLEVEL), TOPLEVEL))
    if bench.testbench.simulator == "verilator":
        assert set(bench.visible) == ports
    else:
        assert ports < set(bench.visible)
    word_bytes = CORE.bus_bytes
    assert any(job.split and job.pass_name == "backward_weight" and
               any(c.psum_in and c.psum_out for c in job.commands) for job in jobs)
    for label, job, run in zip(labels, jobs, bench.runs):
        assert run.done, (label, run.statuses)
        np.testing.assert_array_equal(job.result(run.result), job.golden(), err_msg=label)
        assert run.result == job.expected_image(), label
        counters = run.counters
        if job.split:
            model = total_cycles(job_cycles(job.array_pass(), CORE, dense=job.dense,
                                            bases=job.bases))
            assert counters["compute_cycles"] == model.compute, label
            assert counters["bytes_read"] == sum(model.bytes_read.values()), label
            assert counters["bytes_written"] == sum(model.bytes_written.values()), label
            assert counters["cycles_busy"] == model.total, label
            continue
        assert counters["compute_cycles"] == job.array_pass().model_cycles(job.dense), label
        images = job.images()
        reads = {"forward": ("a", "w"), "backward_data": ("dz", "w"),
                 "backward_weight": ("a", "dz")}[job.pass_name]
        if job.pass_name == "backward_data" and not job.dense:
            reads += ("a",)                 # the output mask
        assert counters["bytes_read"] == sum(len(images[name]) for name in reads), label
        assert counters["bytes_written"] == job.out_bytes, label
        # The phases' cycles: the core is busy from start to done, inside the run; the fill is
        # one word per cycle, of the tensors and the stale output the words memory lacks.
        assert 0 < counters["compute_cycles"] < counters["cycles_busy"], label
        # (start_to_irq counts from the write's response, irq comes a cycle after done)
        assert abs(run.run["start_to_irq_cycles"] - counters["cycles_busy"]) <= 8, label
        assert run.run["program_cycles"] >= 2 * len(job.bench_job(system.register_map)["commands"][0])
        assert run.run["cycles"] > run.run["program_cycles"] + run.run["start_to_irq_cycles"]
        words = sum(-(-len(image) // word_bytes) for image in images.values())
        assert run.fill["cycles"] == run.fill["words"], label
        assert job.out_bytes // word_bytes <= run.fill["words"] <= \
            words + job.out_bytes // word_bytes, label
        assert run.fill["seconds"] > 0 and run.run["seconds"] > 0, label
    assert bench.test["cycles"] >= sum(run.fill["cycles"] + run.run["cycles"]
                                       + run.read_back["cycles"] for run in bench.runs)


def _port_names(system) -> set:
    """The top level's ports by the system's signature (Amaranth joins a path with ``__``) and
    its clock domain's two."""
    return {"clk", "rst"} | {"__".join(map(str, path))
                             for path, _, _ in system.signature.flatten(system)}


def test_fast_build_is_its_own_cache_entry_and_exposes_only_the_ports(system):
    verilog = generate_verilog(system, TOPLEVEL)
    ports = top_level_ports(verilog, TOPLEVEL)
    assert sorted(ports) == sorted(_port_names(system))
    assert {"csr__awaddr", "host__rdata", "irq"} <= set(ports)
    control = public_ports_control(verilog, TOPLEVEL).splitlines()
    assert control[0] == "`verilator_config"
    assert sorted(control[1:]) == sorted(f'public_flat_rw -module "{TOPLEVEL}" -var "{port}"'
                                         for port in ports)
    assert verilator_build_args() == VERILATOR_ARGS
    assert verilator_build_args(fast=True)[len(VERILATOR_ARGS):] == ["--no-public-flat-rw",
                                                                     "-CFLAGS", "-O2"]
    builds = {(sim, fast): simulation_build_dir(verilog, TOPLEVEL, sim=sim, fast=fast)
              for sim in ("verilator", "icarus") for fast in (False, True)}
    # Verilator: a build of its own (one with every signal public is no fast build, and the
    # other way round); Icarus has no such options and shares one build.
    assert builds["verilator", True] != builds["verilator", False]
    assert builds["icarus", True] == builds["icarus", False]
    assert len(set(builds.values())) == 3


def test_a_build_is_keyed_by_where_cocotb_is_installed(monkeypatch):
    """A Verilator executable loads cocotb's VPI library from the environment that built it:
    another installation of the same cocotb version (another virtual environment) gets a build
    of its own, so removing one environment never breaks the other's runs."""
    import cocotb

    verilog = "module top(input clk); endmodule\n"
    here = simulation_build_dir(verilog, "top", sim="verilator")
    monkeypatch.setattr(cocotb, "__file__", "/elsewhere/site-packages/cocotb/__init__.py")
    assert simulation_build_dir(verilog, "top", sim="verilator") != here
    with pytest.raises(ValueError, match="no module other"):
        top_level_ports(verilog, "other")


@pytest.mark.sim
def test_a_memory_error_response_is_reported_and_the_core_goes_on(system, tmp_path):
    """An address beyond the RAM (DECERR) for the output, then for the input, then for the
    weights a prefetch reads for the next command: the pass ends, ``STATUS.error`` with
    BUS_ERROR and not done, no hang; then a legal pass is exact."""
    from maskprop.host.core_driver import register_words
    layer = LAYERS[0]
    A, W, dZ = random_conv_tensors(np.random.default_rng(3), layer, 0.5)
    job = CoreJob(layer, "forward", CORE, A=A, W=W, dZ=dZ)
    beyond = system.memory_bytes + 0x1000          # aligned, inside addr_width, not memory
    jobs = []
    beyonds = [{"out_base": beyond}, {"a_base": beyond}, {"prefetch": 1, "next_w_base": beyond}]
    for fields in beyonds:
        bench_job = job.bench_job(system.register_map)
        bench_job["commands"] = [register_words(system.register_map, {**job.fields(), **fields})]
        jobs.append(bench_job)
    jobs.append(job.bench_job(system.register_map))
    bench = run_fast_core_jobs(system, jobs, labels=["out beyond", "input beyond",
                                                     "prefetch beyond", "legal"],
                               build_dir=tmp_path, seed=1)
    for run in bench.runs[:len(beyonds)]:
        assert run.status["error"] and not run.status["done"], (run.label, run.status)
        assert run.status["error_code"] == "BUS_ERROR", (run.label, run.status)
    legal = bench.runs[len(beyonds)]
    assert legal.status["done"] and not legal.status["error"], legal.status
    assert legal.result == job.expected_image()


def test_jobs_beyond_the_memory_are_refused(system, tmp_path):
    layer = ConvLayer(4, 16, 32, 32, 16, 3, 1, 1, "large")     # 4096 words of A alone
    job = CoreJob(layer, "forward", CoreConfig(CORE.array, x_words=1024),
                  *random_conv_tensors(np.random.default_rng(1), layer, 0.5))
    with pytest.raises(ValueError, match=r"beyond the system's memory of 131,072 bytes"):
        run_fast_core_jobs(system, [job.bench_job(system.register_map)], build_dir=tmp_path)
    with pytest.raises(ValueError, match="host_port=True"):
        run_fast_core_jobs(CoreSystem(CORE, memory_words=MEMORY_WORDS), [],
                           build_dir=tmp_path)


def test_parameters_are_validated():
    room = (GENERATABLE_BUFFER_BITS - CORE_DEFAULT.buffer_bits) // CORE_DEFAULT.bus_width
    assert room == 2446                     # as the docstring says
    CoreSystem(memory_words=room)
    for words in (0, 1, room + 1, 2.0, True, None):
        with pytest.raises(ValueError, match=rf"memory_words must be an integer in \[2, {room}\]"):
            CoreSystem(memory_words=words)
    with pytest.raises(ValueError, match="generation limit"):
        CoreSystem(memory_words=room + 1)
    # A 12-bit address space: 128 words of 32 bytes, whatever the generation limit.
    small = CoreConfig(CORE.array, x_words=64, addr_width=12)
    CoreSystem(small, memory_words=128)
    with pytest.raises(ValueError, match=r"\[2, 128\] \(128 words are what addr_width = 12"):
        CoreSystem(small, memory_words=129)
    with pytest.raises(ValueError, match="core must be a CoreConfig"):
        CoreSystem(CORE.array)
    with pytest.raises(ValueError, match="host_port must be True or False"):
        CoreSystem(CORE, host_port=1)
    # The core's own limit, named: X scratchpad and tile array over 2**22 bits.
    with pytest.raises(ValueError, match="x_words = 8192"):
        CoreSystem(CoreConfig(x_words=8192))
    # And the room left when the core takes nearly everything.
    full = CoreConfig(Config(vec=1, lanes=1, tiles=1, col_block=1, data_width=8, acc_width=20,
                             max_chunks=64, max_cols=8188), x_words=64)
    assert full.buffer_bits == GENERATABLE_BUFFER_BITS
    with pytest.raises(ValueError, match="leave room for"):
        CoreSystem(full)


def test_ports_and_generator_key():
    with_host = CoreSystem(CORE, memory_words=MEMORY_WORDS, host_port=True)
    without = CoreSystem(CORE, memory_words=MEMORY_WORDS)
    members = with_host.signature.members
    assert set(members) == {"csr", "irq", "host"}
    assert set(without.signature.members) == {"csr", "irq"}
    assert len(with_host.host.addr) == 12
    assert len(with_host.host.wdata) == CORE.bus_width
    assert members["csr"].signature.addr_width == with_host.register_map.addr_width
    assert with_host.memory_bytes == MEMORY_WORDS * CORE.bus_bytes == 131072
    keys = {CoreSystem(CORE, memory_words=words, host_port=host).generator_key
            for words in (MEMORY_WORDS, MEMORY_WORDS + 1) for host in (False, True)}
    assert len(keys) == 4
    assert with_host.generator_key == CoreSystem(CORE, memory_words=MEMORY_WORDS,
                                                 host_port=True).generator_key


def test_input_stages_take_requests_from_the_first_cycle_after_reset():
    """Amaranth's simulator: a CSR read and a backdoor write offered in the first cycle after
    ``rst`` are taken and reach the core and the RAM (which leave reset a cycle later); the
    read's response and a backdoor read's word arrive when the docstring says."""
    dut = CoreSystem(CORE, memory_words=MEMORY_WORDS, host_port=True)
    top = Module()
    top.domains.sync = sync = ClockDomain()
    top.submodules.dut = dut
    trace = []

    async def bench(ctx):
        ctx.set(sync.rst, 1)
        for _ in range(2):
            await ctx.posedge(sync.clk)
        ctx.set(sync.rst, 0)
        ctx.set(dut.csr.araddr, dut.register_map.word("ID").offset)
        ctx.set(dut.csr.arvalid, 1)
        ctx.set(dut.csr.rready, 1)
        ctx.set(dut.host.en, 1)
        ctx.set(dut.host.we, 1)
        ctx.set(dut.host.addr, 5)
        ctx.set(dut.host.wdata, 0x1234)
        for cycle in range(6):
            trace.append((ctx.get(dut.csr.arready), ctx.get(dut.csr.rvalid),
                          ctx.get(dut.csr.rdata), ctx.get(dut.host.rdata)))
            await ctx.tick()
            if cycle == 0:                  # then read word 5 back from cycle 1 on
                ctx.set(dut.csr.arvalid, 0)
                ctx.set(dut.host.we, 0)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert trace[0][0] == 1                                 # AR taken in the first cycle
    assert [rvalid for _, rvalid, _, _ in trace] == [0, 0, 0, 1, 0, 0]
    assert trace[3][2] == MAGIC
    # Written in cycle 0, read from cycle 1: the word 2 cycles after its address.
    assert [word for *_, word in trace] == [0, 0, 0, 0x1234, 0x1234, 0x1234]
    assert CoreSystem.host_read_latency == 2


@pytest.mark.sim
@pytest.mark.parametrize("host_port", [True, False], ids=["host", "board"])
def test_verilog_lints_clean(host_port):
    """The board build's top level (no backdoor) and the bench's both pass verilator -Wall."""
    lint_verilog(generate_verilog(CoreSystem(CORE, memory_words=MEMORY_WORDS,
                                             host_port=host_port), TOPLEVEL), TOPLEVEL)
