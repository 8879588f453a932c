# amaranth: UnusedElaboratable=no
# (a CoreSystem is built for Amaranth's simulator, whose errors may leave it unelaborated)
"""The core's cycle model with memory (``sim/core_model.py``) against the RTL:

- on :class:`~maskprop.hw.core_system.CoreSystem` (the fast bench, the core's own AxiRam): the
  busy, compute and stall cycles of every job exactly, and the bytes moved;
- on the protocol bench (cocotbext-axi's memory): without pauses exactly, with random pauses
  never above the RTL (the difference printed per job), and the bytes per tensor exactly as the
  AXI monitor counted them;
- in Amaranth's simulator, a core whose column block is wider than its memory word (as the
  default core's), whose writer then holds the tile array's results, with one burst in flight;
- backward-weight (both broadcast operands, both modes) on all of these: the gathers, the
  row-block buffer's passes once per column block, and its writer waiting for a bank;
- the memory's parameters move the phases they belong to, and are validated.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from maskprop.base.config import Config, CoreConfig
from maskprop.host.core_driver import CoreJob, check_core_pass, runnable_operands
from maskprop.host.driver import ArrayPass
from maskprop.host.memory_layout import image_words
from maskprop.host.runs import core_bench_offsets, run_core_jobs
from maskprop.hw.core import MaskpropCore
from maskprop.hw.core_system import CoreSystem
from maskprop.sim.core_model import AXI_RAM, MemoryTiming, core_cycles, job_cycles, total_cycles
from maskprop.sim.layer import ConvLayer
from maskprop.tb.bench_core_fast import run_fast_core_jobs
from maskprop.tb.stimulus import random_conv_tensors, seed_from_env

# The core, memory and corner-case layers of the core's own tests (the same Verilog: their
# cached builds serve here too).
from test_core import CORNERS, SPLITS
from test_core_fast import CORE, MEMORY_WORDS

# Memory for the split layers' tensors (the largest ends near 5,200 words).
SPLIT_MEMORY_WORDS = 8192

# The corner cases (1x1, stride 2, stride 3 with padding 0, padding 3, 19 to 13 channels,
# all-zero activations), and a 1x1 stride-3 layer with padding: most of its rows are dead
# (backward-data: input pixels the stride skips; forward: outputs in the padding), they queue
# up in the writer's row FIFO while a live row's results come, and the writer holds them: the
# tile array stalls (in dense mode whatever the data).
LAYERS = CORNERS + [(ConvLayer(2, 8, 6, 6, 10, 1, 3, 1, "1x1, stride 3, padding 1"), 0.5)]

# The bench counts traffic per CoreJob tensor; the data-movement model names the tensors.
BENCH_TENSOR = {"A": "a", "W": "w", "Wt": "w", "dZ": "dz", "Z": "out", "dA": "out",
                "dW": "out"}

# Backward-weight's layers (each operand where it fits): the corner cases, a layer of 20
# output channels from 3 (X = dZ^T: 20 result rows, a partial last block of vec rows, and 27
# columns, four column blocks; X = A: 27 rows, 20 columns) and one whose reduction of 9 pixels
# is one chunk (the row-block buffer then cuts the rows into blocks of vec by itself).
WEIGHT_LAYERS = LAYERS + [
    (ConvLayer(1, 3, 6, 6, 20, 3, 1, 1, "3 to 20 channels"), 0.5),
    (ConvLayer(1, 20, 3, 3, 12, 1, 1, 0, "one chunk of pixels"), 0.5),
]


def seeded(default: int) -> int:
    seed = seed_from_env(default=default)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    return seed


def corner_jobs(seed: int, core: CoreConfig = CORE, layers=LAYERS) -> list:
    """Every layer's two passes in both modes."""
    rng = np.random.default_rng(seed)
    jobs = []
    for layer, density in layers:
        A, W, dZ = random_conv_tensors(rng, layer, density)
        for pass_name in ("forward", "backward_data"):
            for dense in (False, True):
                jobs.append(CoreJob(layer, pass_name, core, A=A, W=W, dZ=dZ, dense=dense,
                                    shift=int(rng.integers(0, 12))))
    return jobs


def weight_jobs(seed: int, core: CoreConfig = CORE, layers=WEIGHT_LAYERS) -> list:
    """Every layer's backward-weight with each broadcast operand whose command fits the core,
    in both modes."""
    rng = np.random.default_rng(seed)
    jobs = []
    for layer, density in layers:
        A, W, dZ = random_conv_tensors(rng, layer, density)
        for operand in runnable_operands(layer, core):
            for dense in (False, True):
                jobs.append(CoreJob(layer, "backward_weight", core, A=A, W=W, dZ=dZ,
                                    dense=dense, shift=int(rng.integers(0, 12)),
                                    operand=operand))
    return jobs


def label(job) -> str:
    operand = f" X={job.operand}" if job.pass_name == "backward_weight" else ""
    return f"{job.layer.name} {job.pass_name}{operand} {'dense' if job.dense else 'sparse'}"


def predict(job, memory: MemoryTiming = AXI_RAM):
    """The model's cycles of ``job`` (a pass that fits: one command) as the core runs it."""
    return core_cycles(job.array_pass(), job.core, dense=job.dense, memory=memory,
                       bases=job.bases)


def check_exact(job, counters, predicted):
    """Busy, compute and stall cycles and the bytes moved, exactly."""
    measured = {name: counters[name] for name in ("cycles_busy", "compute_cycles",
                                                  "stall_cycles", "bytes_read",
                                                  "bytes_written")}
    assert measured == {"cycles_busy": predicted.total, "compute_cycles": predicted.compute,
                        "stall_cycles": predicted.stall_cycles,
                        "bytes_read": sum(predicted.bytes_read.values()),
                        "bytes_written": sum(predicted.bytes_written.values())}, label(job)


def print_phases(job, predicted, busy):
    print(f"{label(job):45s} check {predicted.check} load {predicted.load:4d} run "
          f"{predicted.run:5d} drain {predicted.drain} = {predicted.total:5d} (stalls "
          f"{predicted.stall_cycles}), RTL {busy:5d} (+{busy - predicted.total})")


@pytest.fixture(scope="module")
def system():
    return CoreSystem(CORE, memory_words=MEMORY_WORDS, host_port=True)


@pytest.fixture(scope="module")
def core():
    return MaskpropCore(CORE)


@pytest.mark.sim
def test_exact_on_the_core_system(system, tmp_path):
    """Every corner case, both passes, both modes, on the fast bench: cycles busy, compute and
    stall cycles, bytes read and written, exactly."""
    seed = seeded(900)
    run_exact(system, corner_jobs(seed), tmp_path, seed)
    # (The result skid lets the array hand over a result while the writer is busy: these
    # layers do not stall it; WIDE's do, test_exact_when_the_writer_holds_the_array.)


@pytest.mark.sim
def test_backward_weight_exact_on_the_core_system(system, tmp_path):
    """Backward-weight, both broadcast operands where they fit, both modes, on the fast bench:
    the gathers, the row-block buffer's passes (a row once per column block: up to four
    blocks here), partial blocks of rows, a reduction of one chunk and channel counts that
    are multiples of nothing; cycles busy, compute and stall cycles, bytes, exactly."""
    seed = seeded(940)
    jobs = weight_jobs(seed)
    assert {job.operand for job in jobs} == {"a", "dz"}
    assert any(-(-job.shape.cols // CORE.array.col_block) > 2 for job in jobs)
    run_exact(system, jobs, tmp_path, seed)


def random_weight_jobs(seed: int, count: int) -> list:
    """``count`` random backward-weight jobs that fit the fast bench's core and memory:
    kernels 1/3/5, strides 1-3, paddings up to the kernel, random operand, mode and
    density."""
    rng = np.random.default_rng(seed)
    jobs = []
    while len(jobs) < count:
        kernel = int(rng.choice([1, 3, 5]))
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 12)), int(rng.integers(3, 9)),
                 int(rng.integers(3, 9)), int(rng.integers(1, 30)), kernel,
                 int(rng.choice([1, 2, 3])), int(rng.integers(0, kernel + 1)))
        if min(shape[2:4]) + 2 * shape[7] < kernel:
            continue
        layer = ConvLayer(*shape, f"random{len(jobs)}")
        A, W, dZ = random_conv_tensors(rng, layer, float(rng.choice([0.2, 0.5, 0.8])))
        try:
            job = CoreJob(layer, "backward_weight", CORE, A=A, W=W, dZ=dZ,
                          dense=bool(rng.integers(0, 2)), shift=int(rng.integers(0, 12)),
                          operand=str(rng.choice(["a", "dz"])))
        except ValueError:
            continue
        if sum(-(-len(image) // 4096) for image in job.memory().values()) * 4096 \
                + job.out_bytes > MEMORY_WORDS * CORE.bus_bytes:
            continue
        jobs.append(job)
    return jobs


@pytest.mark.sim
def test_backward_weight_random_layers_exact(system, tmp_path):
    """Random backward-weight layers on the fast bench: cycles and bytes exactly."""
    seed = seeded(945)
    run_exact(system, random_weight_jobs(seed, 24), tmp_path, seed)


def run_exact(system, jobs, tmp_path, seed):
    """``jobs`` (each one command, made from ``seed``) on the fast bench: each result exact and
    its busy, compute and stall cycles and bytes the model's. Returns the jobs and their runs."""
    bench = run_fast_core_jobs(system, [job.bench_job(system.register_map) for job in jobs],
                               labels=[label(job) for job in jobs], build_dir=tmp_path,
                               seed=seed)
    for job, run in zip(jobs, bench.runs):
        assert run.status["done"] and not run.status["error"], (label(job), run.status)
        assert run.result == job.expected_image(), label(job)
        predicted = predict(job)
        print_phases(job, predicted, run.counters["cycles_busy"])
        check_exact(job, run.counters, predicted)
    return jobs, bench.runs


#: Wide and shallow: one memory word per pixel, so a chunk takes one decoder cycle, and the
#: first output row's windows read a whole input row ahead of where the load is when the walk
#: starts: the walk overtakes the input streaming in and waits for its words.
OVERTAKING = [(ConvLayer(1, 4, 6, 40, 3, 3, 1, 1, "40 wide, 3 and 4 channels"), 0.7)]


@pytest.mark.sim
def test_the_walk_waits_for_the_input_it_reads(system, tmp_path):
    """The input streams into the scratchpad during the run; where the walk overtakes it, the
    fetch waits for each chunk's word: results exact, and cycles exactly the model's, which
    gates each chunk on its word's arrival (at a quarter of the bandwidth the run takes longer
    for the same compute)."""
    seed = seeded(960)
    jobs, _ = run_exact(system, corner_jobs(seed, layers=OVERTAKING), tmp_path, seed)
    for job in jobs:
        predicted = predict(job)
        slow = predict(job, MemoryTiming(bytes_per_cycle=CORE.bus_bytes / 4))
        assert slow.run > predicted.run and slow.compute == predicted.compute, label(job)


@pytest.mark.sim
@pytest.mark.parametrize("pause", [0.0, 0.3], ids=["no-pauses", "pauses"])
def test_protocol_bench(core, pause, tmp_path):
    """cocotbext-axi's memory on the core's port, the AXI monitor counting bytes per tensor.
    Without pauses it answers as the AxiRam does: exact. With random pauses on every channel
    the model, with the pause-free timing, is a lower bound; the difference is what the pauses
    cost. Bytes per tensor exactly in both. One pass and mode of each layer (rotating)."""
    seed = seeded(910)
    jobs = corner_jobs(seed)
    check_on_protocol_bench(core, [jobs[4 * k + k % 4] for k in range(len(LAYERS))], pause,
                            tmp_path, seed)


@pytest.mark.sim
@pytest.mark.parametrize("pause", [0.0, 0.3], ids=["no-pauses", "pauses"])
def test_protocol_bench_backward_weight(core, pause, tmp_path):
    """Backward-weight on the protocol bench as test_protocol_bench: exact without pauses, a
    lower bound with them, the bytes of A, dZ and dW exactly. One operand and mode of each
    layer (rotating), every operand and both modes among them."""
    seed = seeded(950)
    jobs = weight_jobs(seed)
    chosen, by_layer = [], {}
    for job in jobs:
        by_layer.setdefault(job.layer.name, []).append(job)
    for k, layer_jobs in enumerate(by_layer.values()):
        chosen.append(layer_jobs[k % len(layer_jobs)])
    assert {job.operand for job in chosen} == {"a", "dz"}
    assert {job.dense for job in chosen} == {False, True}
    check_on_protocol_bench(core, chosen, pause, tmp_path, seed)


def check_on_protocol_bench(core, jobs, pause, tmp_path, seed):
    """``jobs`` on the protocol bench with ``pause``: results exact; the model exact without
    pauses, a lower bound with them; bytes per tensor exactly."""
    runs = run_core_jobs([job.bench_job(core.register_map) for job in jobs], component=core,
                         build_dir=tmp_path, pause=pause, seed=seed)
    for job, run in zip(jobs, runs):
        assert run.status["done"] and not run.status["error"], (label(job), run.status)
        assert run.result == job.expected_image(), label(job)
        predicted = predict(job)
        busy = run.counters["cycles_busy"]
        print_phases(job, predicted, busy)
        if pause:
            assert predicted.total <= busy, label(job)
            assert predicted.compute == run.counters["compute_cycles"], label(job)
        else:
            check_exact(job, run.counters, predicted)
        read = {name: 0 for name in run.bytes_read}
        for tensor, count in predicted.bytes_read.items():
            read[BENCH_TENSOR[tensor]] += count
        assert run.bytes_read == read, label(job)
        (written,) = predicted.bytes_written.items()
        assert run.bytes_written == {name: written[1] if name == BENCH_TENSOR[written[0]] else 0
                                     for name in run.bytes_written}, label(job)
        assert (run.total_read, run.total_written) == (sum(read.values()), written[1])


@pytest.mark.sim
def test_split_passes_exact_per_command(tmp_path):
    """The layers test_core splits (column groups, row bands, both; strides 1 to 3), all three
    passes (backward-weight in output-channel groups and parts of its reduction chained by
    partial sums, each operand it runs in) and both modes, on the fast bench: every command's
    busy, compute and stall cycles and bytes exactly the model's (the partial sums' reads,
    which wait for their beats, and raw writes included), and the result the whole layer's."""
    seed = seeded(930)
    jobs = corner_jobs(seed, layers=SPLITS) + weight_jobs(seed, layers=SPLITS)
    assert any(command.psum_in and command.psum_out for job in jobs
               for command in job.commands)
    system = CoreSystem(CORE, memory_words=SPLIT_MEMORY_WORDS, host_port=True)
    bench = run_fast_core_jobs(system, [job.bench_job(system.register_map) for job in jobs],
                               labels=[label(job) for job in jobs], build_dir=tmp_path,
                               seed=seed)
    for job, run in zip(jobs, bench.runs):
        assert job.split, label(job)
        assert len(run.statuses) == len(job.commands), label(job)
        assert run.done, (label(job), run.statuses)
        assert run.result == job.expected_image(), label(job)
        commands = job_cycles(job.array_pass(), job.core, dense=job.dense, bases=job.bases)
        for predicted, counters in zip(commands, run.command_counters):
            print_phases(job, predicted, counters["cycles_busy"])
            check_exact(job, counters, predicted)
        whole = total_cycles(commands)
        assert whole.total == run.counters["cycles_busy"], label(job)


# A core whose result beats' partial sums take two memory words: tiles 4, a 128-bit bus (two
# 64-bit sums a word); a row-block buffer of 4 chunks of 8 pixels, so a reduction is split into
# row bands of a few output rows (some of which see a tap only in padding: rows sent empty).
TWO_WORD_SUMS = CoreConfig(Config(vec=8, lanes=2, tiles=4, col_block=8, max_chunks=32,
                                  max_cols=16), x_words=256, row_block_chunks=4)
TWO_WORD_LAYERS = [(ConvLayer(2, 3, 6, 6, 10, 3, 1, 1, "bands of 6x6, 10 channels"), 0.5),
                   (ConvLayer(1, 5, 27, 9, 20, 3, 2, 1, "stride 2, two groups"), 0.3)]


@pytest.mark.sim
def test_partial_sums_of_two_words_a_beat_exact(tmp_path):
    """Backward-weight split over its reduction on a core whose beats' sums take two words
    (the sums register filled in two cycles, the packer sending two words a beat), both modes:
    every command's cycles and bytes exactly the model's, and the result the golden model's."""
    assert TWO_WORD_SUMS.partial_sums and TWO_WORD_SUMS.sum_words_per_beat == 2
    seed = seeded(935)
    jobs = weight_jobs(seed, TWO_WORD_SUMS, TWO_WORD_LAYERS)
    assert all(any(c.psum_in and c.psum_out for c in job.commands) for job in jobs)
    system = CoreSystem(TWO_WORD_SUMS, memory_words=2048, host_port=True)
    bench = run_fast_core_jobs(system, [job.bench_job(system.register_map) for job in jobs],
                               labels=[label(job) for job in jobs], build_dir=tmp_path,
                               seed=seed)
    for job, run in zip(jobs, bench.runs):
        assert run.done, (label(job), run.statuses)
        assert run.result == job.expected_image(), label(job)
        commands = job_cycles(job.array_pass(), job.core, dense=job.dense, bases=job.bases)
        assert len(commands) == len(run.command_counters), label(job)
        for predicted, counters in zip(commands, run.command_counters):
            print_phases(job, predicted, counters["cycles_busy"])
            check_exact(job, counters, predicted)


# --- a core whose writer back-pressures the tile array, in Amaranth's simulator -----------------

# A column block of 16 columns and words of 8 channels (the default core has 32 and 16): every
# full block gives the gearbox two words, so it holds the array's next results; one burst of at
# most 4 beats in flight per direction.
WIDE = CoreConfig(Config(vec=8, lanes=2, tiles=2, col_block=16, max_chunks=64, max_cols=32),
                  x_words=256, max_burst=4, max_outstanding=1)
WIDE_LAYERS = [(ConvLayer(2, 3, 3, 7, 6, 1, 2, 0, "1x1, stride 2"), 0.5),
               (ConvLayer(1, 10, 5, 5, 16, 1, 3, 0, "1x1, stride 3"), 0.5)]


def run_in_amaranth(system, jobs) -> list:
    """Each job on ``system`` (with its backdoor) in Amaranth's simulator, as the fast bench
    runs it: memory through the backdoor, the registers and start over AXI4-Lite, then ``irq``;
    returns each job's counters."""
    offsets = core_bench_offsets(system.register_map)
    csr, host, word_bytes = system.csr, system.host, system.core.bus_bytes
    results = []

    async def bench(ctx):
        async def handshake(valid, ready, **payload):
            for name, value in payload.items():
                ctx.set(getattr(csr, name), value)
            ctx.set(getattr(csr, valid), 1)
            while not ctx.get(getattr(csr, ready)):
                await ctx.tick()
            await ctx.tick()
            ctx.set(getattr(csr, valid), 0)

        async def write(offset, value):
            await handshake("awvalid", "awready", awaddr=offset)
            await handshake("wvalid", "wready", wdata=value, wstrb=0xF)
            await handshake("bready", "bvalid")

        async def read(offset):
            await handshake("arvalid", "arready", araddr=offset)
            ctx.set(csr.rready, 1)
            while not ctx.get(csr.rvalid):
                await ctx.tick()
            value = ctx.get(csr.rdata)
            await ctx.tick()
            ctx.set(csr.rready, 0)
            return value

        for job in jobs:
            ctx.set(host.en, 1)
            ctx.set(host.we, 1)
            for address, image in job["memory"]:
                for k, word in enumerate(image_words(image, word_bytes)):
                    ctx.set(host.addr, address // word_bytes + k)
                    ctx.set(host.wdata, word)
                    await ctx.tick()
            ctx.set(host.en, 0)
            (writes,) = job["commands"]           # passes that fit: one command
            for offset, value in writes:
                await write(offset, value)
            await write(offsets["CONTROL"], 1 << offsets["start_bit"] | 1 << offsets["clear_bit"])
            while not ctx.get(system.irq):
                await ctx.tick()
            results.append({name: await read(offset) | await read(offset + 4) << 32
                             for name, offset in offsets["counters"]})
            status = await read(offsets["STATUS"])
            await write(offsets["STATUS"], status & offsets["clear_mask"])

    simulator = Simulator(system)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return results


def test_exact_when_the_writer_holds_the_array():
    """On WIDE, in Amaranth's simulator: dense passes whose blocks the gearbox takes two cycles
    over, so the array stalls, and a sparse backward-data with a two-word output mask per
    pixel. Cycles busy, compute and stall cycles exactly."""
    jobs = corner_jobs(seeded(920), WIDE, WIDE_LAYERS)
    check_stalling_in_amaranth([job for job in jobs
                                if job.dense or job.pass_name == "backward_data"])


def check_stalling_in_amaranth(jobs):
    """``jobs`` on WIDE in Amaranth's simulator: each one's busy, compute and stall cycles
    exactly the model's, and the array stalls in some."""
    system = CoreSystem(WIDE, memory_words=1024, host_port=True)
    counters = run_in_amaranth(system, [job.bench_job(system.register_map) for job in jobs])
    for job, measured in zip(jobs, counters):
        predicted = predict(job)
        print_phases(job, predicted, measured["cycles_busy"])
        check_exact(job, measured, predicted)
    assert any(measured["stall_cycles"] for measured in counters)


#: Backward-weight on WIDE: one input pixel under a 3x3 window with padding 1, so 8 of the 9
#: taps' rows see only padding (not live: their two column blocks' zero words pass through the
#: gearbox at once) between the live rows, whose 16 results per block come a cycle apart: the
#: writer holds the array.
WIDE_WEIGHT_LAYERS = [(ConvLayer(1, 8, 1, 1, 32, 3, 1, 1, "one pixel, 3x3"), 0.5),
                      (ConvLayer(1, 4, 2, 2, 32, 3, 2, 2, "stride 2, padding 2"), 0.5)]


def test_backward_weight_exact_when_the_writer_holds_the_array():
    """Backward-weight on WIDE, in Amaranth's simulator, both modes: cycles busy, compute and
    stall cycles exactly, and the array stalls."""
    check_stalling_in_amaranth(weight_jobs(seeded(925), WIDE, WIDE_WEIGHT_LAYERS))


# --- the memory's parameters ---------------------------------------------------------------------

def test_memory_parameters_move_their_phases():
    """A later first R beat delays the load by as much and nothing after it (forward: no mask
    read during the run); a later write response the drain; half the bandwidth spaces the
    words two cycles apart: the Y words the load waits for, and the X words the run reads as
    they come."""
    job = corner_jobs(seeded(930))[4]           # stride 2, forward, sparse
    assert job.pass_name == "forward" and not job.dense
    base = predict(job)
    weights = sum(t.words for t in base.traffic.tensors if t.role == "Y buffer")
    later = predict(job, MemoryTiming(read_latency=AXI_RAM.read_latency + 10))
    assert (later.check, later.load, later.run, later.drain) == \
        (base.check, base.load + 10, base.run, base.drain)
    slower = predict(job, MemoryTiming(write_response_latency=AXI_RAM.write_response_latency + 7))
    assert (slower.load, slower.run, slower.drain) == (base.load, base.run, base.drain + 7)
    half = predict(job, MemoryTiming(bytes_per_cycle=CORE.bus_bytes / 2))
    assert half.load == base.load + weights - 1
    assert half.run >= base.run and half.compute == base.compute
    # More than a word per cycle is a word per cycle: the bus carries no more.
    assert predict(job, MemoryTiming(bytes_per_cycle=4 * CORE.bus_bytes)).total == base.total


def test_memory_parameters_move_backward_weights_phases():
    """Backward-weight: a later first R beat delays the load (both bands) by as much and
    nothing after it; a later write response the drain; half the bandwidth spaces the A and
    dZ words two cycles apart, all of which the load waits for."""
    for job in weight_jobs(seeded(935))[:4]:
        base = predict(job)
        loaded = sum(t.words for t in base.traffic.tensors if t.role == "X scratchpad")
        later = predict(job, MemoryTiming(read_latency=AXI_RAM.read_latency + 10))
        assert (later.check, later.load, later.run, later.drain) == \
            (base.check, base.load + 10, base.run, base.drain), label(job)
        slower = predict(job, MemoryTiming(
            write_response_latency=AXI_RAM.write_response_latency + 7))
        assert (slower.load, slower.run, slower.drain) == \
            (base.load, base.run, base.drain + 7), label(job)
        half = predict(job, MemoryTiming(bytes_per_cycle=CORE.bus_bytes / 2))
        assert half.load == base.load + loaded - 1, label(job)
        assert half.compute == base.compute, label(job)


@pytest.mark.parametrize("kwargs, message", [
    ({"read_latency": 0}, r"read_latency must be in \[1, 1000\], not 0"),
    ({"read_latency": 1.5}, r"read_latency must be an integer in \[1, 1000\]"),
    ({"write_accept_latency": -1}, r"write_accept_latency must be in \[0, 1000\], not -1"),
    ({"write_response_latency": 0}, r"write_response_latency must be in \[1, 1000\], not 0"),
    ({"write_response_latency": 1001}, r"write_response_latency must be in \[1, 1000\]"),
    ({"bytes_per_cycle": 0}, "bytes_per_cycle must be a positive finite number"),
    ({"bytes_per_cycle": float("inf")}, "bytes_per_cycle must be a positive finite number"),
    ({"bytes_per_cycle": True}, "bytes_per_cycle must be a positive finite number"),
    ({"bytes_per_cycle": "8"}, "bytes_per_cycle must be a positive finite number"),
])
def test_memory_timing_is_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MemoryTiming(**kwargs)


def test_core_cycles_refuses_what_it_cannot_model():
    job = corner_jobs(1)[0]
    array_pass = ArrayPass.lower(job.layer, job.pass_name, CORE.array, A=job.A, W=job.W,
                                 dZ=job.dZ)
    with pytest.raises(ValueError, match="array_pass must be an ArrayPass"):
        core_cycles(array_pass.gemm, CORE, dense=False)
    with pytest.raises(ValueError, match="core must be a CoreConfig"):
        core_cycles(array_pass, CORE.array, dense=False)
    with pytest.raises(ValueError, match=r"core: its tile array \(core.array\)"):
        core_cycles(array_pass, WIDE, dense=False)
    with pytest.raises(ValueError, match="dense must be True or False"):
        core_cycles(array_pass, CORE, dense=1)
    with pytest.raises(ValueError, match="memory must be a MemoryTiming"):
        core_cycles(array_pass, CORE, dense=False, memory=3)
    with pytest.raises(ValueError, match="bases must be a dict of byte addresses named"):
        core_cycles(array_pass, CORE, dense=False, bases={"x": 0})
    with pytest.raises(ValueError, match=r"bases\['w'\] must be a multiple of the bus width, "
                                         r"32 bytes, not 4100"):
        core_cycles(array_pass, CORE, dense=False, bases={"w": 4100})
    with pytest.raises(ValueError, match=r"bases\['out'\] must be in \[0, 4294967295\]"):
        core_cycles(array_pass, CORE, dense=False, bases={"out": 1 << 32})
    # What the core cannot run even split, as the host driver words it.
    small = CoreConfig(CORE.array, x_words=2)
    with pytest.raises(ValueError, match="more than the X scratchpad's x_words = 2"):
        core_cycles(array_pass, small, dense=False)
    # A split pass: one of its commands, or all of them with job_cycles.
    tiny = CoreConfig(CORE.array, x_words=32)       # one image per command
    with pytest.raises(ValueError, match="runs as 2 commands on this core; name one"):
        core_cycles(array_pass, tiny, dense=False)
    with pytest.raises(ValueError, match="command must be one of the commands the pass runs"):
        core_cycles(array_pass, CORE, dense=False,
                    command=check_core_pass(job.layer, job.pass_name, tiny)[0])
    # Backward-weight: the command of the lowering's orientation; a reduction beyond the
    # row-block buffer runs as parts with partial sums: one of them, or all with job_cycles.
    weight = ArrayPass.lower(job.layer, "backward_weight", CORE.array, A=job.A, W=job.W,
                             dZ=job.dZ, x_operand="a", check_fit=False)
    predicted = core_cycles(weight, CORE, dense=False)
    assert [cycles.total for cycles in job_cycles(weight, CORE, dense=False)] == \
        [predicted.total]
    assert predicted.check == MaskpropCore.WEIGHT_CHECK_CYCLES
    assert set(predicted.bytes_read) == {"A", "dZ"} and set(predicted.bytes_written) == {"dW"}
    short = CoreConfig(CORE.array, x_words=CORE.x_words, row_block_chunks=2)
    with pytest.raises(ValueError, match="runs as 2 commands on this core; name one"):
        core_cycles(weight, short, dense=False)
    parts = job_cycles(weight, short, dense=False)
    assert len(parts) == 2
    assert set(parts[0].bytes_written) == {"dW sums"} and "dW sums" in parts[1].bytes_read
