"""The fast bench of the accelerator core: :class:`~maskprop.hw.core_system.CoreSystem` (the core
with its memory on chip, an Amaranth ``AxiRam``), so that the testbench only does what a host
does - fills memory through the RAM's backdoor, programs the registers, starts the core, waits
for ``irq`` and reads the result back - and the whole layer runs inside the simulator, with no
Python in any cycle of the run. The speed benchmark (``scripts/bench_sim_speed.py``) and
``tests/test_core_fast.py`` run it; the protocol-checking bench of the core is
``tb/bench_core.py`` (cocotbext-axi's memory model with random pauses and the AXI checker).

Per job, one after the other on one core:

1. **fill** (backdoor, one word per cycle): the tensors, and a stale pattern (0xA5 bytes) over
   the output, which the core must overwrite - only the words memory does not already hold:
   the bench knows what it holds, all zeros at power-up, then its own writes and the results
   it reads back (the core writes nothing else; ``tb/bench_core.py`` checks that);
2. **run**, for each of the job's commands (one, or those of a split pass): its register
   writes, then ``CONTROL.start | CONTROL.clear_counters`` (a minimal AXI4-Lite master, no
   pauses), then a single trigger on ``irq`` (with a timeout): the clock is cocotb's GPI
   clock, so nothing in Python runs until the core is done; then ``STATUS`` and every 64-bit
   counter (low word first), and ``STATUS`` cleared (the job stops at a command's error);
3. **read back**: the result (backdoor).

Reported per command: the status word and the counters; per job: the result bytes, and for
each phase the
simulated cycles, the wall seconds (``time.perf_counter`` in the bench: Python included) and the
CPU seconds of the simulator process (``time.process_time``: cocotb runs inside it, so this is
the model, the scheduler and the bench together, and unlike the wall time it does not grow with
the machine's load); and the same for the whole test (reset to the end); and the names of
every handle cocotb finds in the top level (``visible``: in a fast build, its ports only).
:func:`run_fast_core_jobs` is the host side: it writes the jobs file, runs the bench with
:func:`maskprop.tb.runner.run_testbench` on a fast build (``fast=True``: only the top level's
ports public, which is all this bench touches; about 9x the cycles per CPU second of cocotb's
default ``--public-flat-rw`` build) and returns what it reported.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, with_timeout

from maskprop.host.memory_layout import image_words
from maskprop.host.runs import CommandRuns, core_bench_offsets, decode_status

__all__ = ["FastCoreRun", "FastBench", "run_fast_core_jobs", "LiteMaster", "TOPLEVEL",
           "CLOCK_NS", "STALE"]

#: The generated module's name.
TOPLEVEL = "core_system"
#: The bench's clock period (``maskprop.tb.harness.start``).
CLOCK_NS = 10
#: The stale byte written over every job's output before it runs.
STALE = 0xA5


class LiteMaster:
    """A minimal AXI4-Lite manager on the ports ``<prefix>__*`` of ``dut``: one access at a
    time, no pauses (``bready``/``rready`` high while waiting). Same cycle discipline as
    ``tb/bench_axi_streams.py``: inputs written after a rising edge, handshakes sampled in
    ``ReadOnly``."""

    def __init__(self, dut, clock, prefix: str = "csr"):
        self.clock = clock
        self.port = {name: getattr(dut, f"{prefix}__{name}") for name in (
            "awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready",
            "bresp", "bvalid", "bready", "araddr", "arprot", "arvalid", "arready", "rdata",
            "rresp", "rvalid", "rready")}
        for name in ("awaddr", "awprot", "awvalid", "wdata", "wstrb", "wvalid", "bready",
                     "araddr", "arprot", "arvalid", "rready"):
            self.port[name].value = 0

    async def write(self, offset: int, value: int) -> None:
        p, edge, settled = self.port, RisingEdge(self.clock), ReadOnly()
        p["awaddr"].value, p["awvalid"].value = offset, 1
        p["wdata"].value, p["wstrb"].value, p["wvalid"].value = value, 0xF, 1
        p["bready"].value = 1
        address_sent = data_sent = False
        while True:
            await settled
            address_now = not address_sent and bool(p["awready"].value)
            data_now = not data_sent and bool(p["wready"].value)
            response = bool(p["bvalid"].value)
            resp = int(p["bresp"].value) if response else 0
            await edge
            if address_now:
                address_sent, p["awvalid"].value = True, 0
            if data_now:
                data_sent, p["wvalid"].value = True, 0
            if response:
                break
        p["bready"].value = 0
        if resp:
            raise AssertionError(f"AXI4-Lite write of {value:#x} to {offset:#x}: BRESP {resp}")

    async def read(self, offset: int) -> int:
        p, edge, settled = self.port, RisingEdge(self.clock), ReadOnly()
        p["araddr"].value, p["arvalid"].value, p["rready"].value = offset, 1, 1
        while True:
            await settled
            accepted = bool(p["arready"].value)
            valid = bool(p["rvalid"].value)
            if valid:
                data, resp = int(p["rdata"].value), int(p["rresp"].value)
            await edge
            if accepted:
                p["arvalid"].value = 0
            if valid:
                break
        p["rready"].value = 0
        if resp:
            raise AssertionError(f"AXI4-Lite read of {offset:#x}: RRESP {resp}")
        return data

    async def read64(self, offset: int) -> int:
        """A 64-bit counter: the low word first (it latches the high word)."""
        low = await self.read(offset)
        return low | await self.read(offset + 4) << 32


class _Clock:
    """Simulated cycles, wall seconds and CPU seconds of the simulator process (cocotb runs
    inside it: the model, the scheduler and the bench's Python) since it was made."""

    def __init__(self):
        self.cycles0, self.seconds0 = _cycle(), time.perf_counter()
        self.cpu0 = time.process_time()

    def lap(self) -> dict:
        return {"cycles": _cycle() - self.cycles0,
                "seconds": time.perf_counter() - self.seconds0,
                "cpu_seconds": time.process_time() - self.cpu0}


def _cycle() -> int:
    return int(get_sim_time(unit="ns")) // CLOCK_NS


async def _host_write(host, writes) -> None:
    """``(word address, word)`` pairs written through the backdoor, one per cycle."""
    edge = RisingEdge(host.clock)
    host.en.value, host.we.value = 1, 1
    for address, word in writes:
        host.addr.value, host.wdata.value = address, word
        await edge
    host.idle()


async def _host_read(host, start: int, count: int, latency: int) -> list[int]:
    """``count`` words from ``start``: an address per cycle, each word sampled ``latency``
    cycles after its address (pipelined)."""
    edge, settled = RisingEdge(host.clock), ReadOnly()
    words = []
    host.en.value, host.we.value = 1, 0
    for cycle in range(count + latency):
        if cycle < count:
            host.addr.value = start + cycle
        elif cycle == count:
            host.en.value = 0
        await settled
        if cycle >= latency:
            words.append(int(host.rdata.value))
        await edge
    host.idle()
    return words


@cocotb.test()
async def core_runs_jobs_fast(dut):
    from maskprop.tb.bench_axi_streams import HostPort
    from maskprop.tb.harness import params, record, start

    whole = _Clock()
    with open(params()["jobs"]) as file:
        spec = json.load(file)
    word_bytes, offsets = spec["word_bytes"], spec["offsets"]
    _, seed = await start(dut)
    csr = LiteMaster(dut, dut.clk)
    host = HostPort(dut, dut.clk)
    start_bits = 1 << offsets["start_bit"] | 1 << offsets["clear_bit"]
    # What memory holds, word address -> word (absent: 0, as the RAM starts): the bench's own
    # writes and the results it reads back.
    memory: dict[int, int] = {}
    reports = []
    for job in spec["jobs"]:
        out_address, out_bytes = job["out"]
        # The words to write, made before the fill is timed: the tensors, then the stale
        # pattern over the output; only those memory does not hold already.
        blocks = [(address // word_bytes, image_words(bytes.fromhex(image), word_bytes))
                  for address, image in job["memory"]]
        blocks.append((out_address // word_bytes, image_words(bytes([STALE]) * out_bytes,
                                                         word_bytes)))
        writes = [(first + k, word) for first, words in blocks for k, word in enumerate(words)
                  if memory.get(first + k, 0) != word]
        fill = _Clock()
        await _host_write(host, writes)
        fill = fill.lap()
        fill["words"] = len(writes)
        memory.update(writes)

        run_clock = _Clock()
        commands = []
        for writes in job["commands"]:
            command_start = _cycle()
            for offset, value in writes:
                await csr.write(offset, value)
            programmed = _cycle()
            assert not dut.irq.value, "irq high before start"
            await csr.write(offsets["CONTROL"], start_bits)
            started = _cycle()
            await with_timeout(RisingEdge(dut.irq), job["timeout_cycles"] * CLOCK_NS, "ns")
            irq_cycle = _cycle()
            status = await csr.read(offsets["STATUS"])
            counters = {name: await csr.read64(offset) for name, offset in offsets["counters"]}
            await csr.write(offsets["STATUS"], status & offsets["clear_mask"])
            await ClockCycles(dut.clk, 2)
            commands.append({"status": status, "counters": counters,
                             "program_cycles": programmed - command_start,
                             "start_to_irq_cycles": irq_cycle - started})
            if status >> offsets["error_bit"] & 1:
                break                   # a host stops a split pass at its first error
        run = run_clock.lap()
        run["program_cycles"] = sum(c["program_cycles"] for c in commands)
        run["start_to_irq_cycles"] = sum(c["start_to_irq_cycles"] for c in commands)

        back = _Clock()
        words = await _host_read(host, out_address // word_bytes, -(-out_bytes // word_bytes),
                                 spec["host_read_latency"])
        result = b"".join(word.to_bytes(word_bytes, "little") for word in words)[:out_bytes]
        memory.update(enumerate(words, out_address // word_bytes))
        back = back.lap()
        reports.append({"label": job.get("label", ""), "commands": commands,
                        "result": result.hex(), "fill": fill, "run": run, "read_back": back})
        dut._log.info("%s: %d cycles in %.3f s (%.0f cycles/s), fill %d cycles in %.3f s",
                      job.get("label", "job"), run["cycles"], run["seconds"],
                      run["cycles"] / run["seconds"], fill["cycles"], fill["seconds"])
    record("core_fast", seed=seed, jobs=reports, whole_test=whole.lap(),
           visible=sorted(dut._keys()))


# --- host side ------------------------------------------------------------------------------

@dataclass
class FastCoreRun(CommandRuns):
    """One job on :class:`~maskprop.hw.core_system.CoreSystem`, as the fast bench reported it
    (each command's status and counters: :class:`~maskprop.host.runs.CommandRuns`). ``fill``,
    ``run``, ``read_back``: ``{"cycles", "seconds", "cpu_seconds", ...}`` of each phase (module
    docstring); ``fill`` also has ``words`` (written), ``run`` has ``program_cycles`` (the
    register writes before each start) and ``start_to_irq_cycles``, summed over the
    commands."""
    label: str
    result: bytes
    fill: dict
    run: dict
    read_back: dict

    @property
    def cycles_per_second(self) -> float:
        """Simulated cycles of the run phase per wall second of it."""
        return self.run["cycles"] / self.run["seconds"]


@dataclass
class FastBench:
    """The runs of one bench invocation, with the whole test's ``{"cycles", "seconds"}`` (from
    before reset to the last job's read-back), the runner's record (build directory, log,
    seed, the runner's wall seconds, generation and build included) and the names of the
    handles cocotb could reach in the top level."""
    runs: list
    test: dict
    testbench: object
    visible: list


def run_fast_core_jobs(system, jobs, *, build_dir, sim=None, seed=None, labels=None,
                       waves=None, run_name="") -> FastBench:
    """Run ``jobs`` one after the other on ``system`` (a ``CoreSystem`` with ``host_port``) as
    generated Verilog with the fast bench. Each job is a dict as
    :meth:`~maskprop.host.core_driver.CoreJob.bench_job` makes it (``memory``, ``commands``,
    ``out``, ``timeout_cycles``; ``ranges`` only bounds the memory the job uses: this bench
    counts no traffic);
    ``labels`` names them in the report and the log. ``ValueError`` if a job's tensors do not
    fit the system's memory; :class:`~maskprop.flow.toolchain.SimulationError` if the bench
    fails (see the log)."""
    from maskprop.flow.toolchain import SimulationError
    from maskprop.tb.runner import run_testbench

    if not system.host_port:
        raise ValueError("the fast bench fills memory through the backdoor: build the "
                         "CoreSystem with host_port=True")
    labels = list(labels) if labels is not None else [f"job{k}" for k in range(len(jobs))]
    for label, job in zip(labels, jobs):
        end = max([address + len(image) for address, image in job["memory"]] + [sum(job["out"])]
                  + [hi for _, _, hi in job.get("ranges", ())])
        if end > system.memory_bytes:
            raise ValueError(f"{label}: its tensors end at byte {end:,}, beyond the system's "
                             f"memory of {system.memory_bytes:,} bytes (memory_words = "
                             f"{system.memory_words})")
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "word_bytes": system.core.bus_bytes,
        "host_read_latency": system.host_read_latency,
        "offsets": core_bench_offsets(system.register_map),
        "jobs": [{"label": label,
                  "memory": [(address, bytes(image).hex()) for address, image in job["memory"]],
                  "commands": [[list(write) for write in writes] for writes in job["commands"]],
                  "out": list(job["out"]),
                  "timeout_cycles": job.get("timeout_cycles", 2_000_000)}
                 for label, job in zip(labels, jobs)],
    }
    path = build_dir / (f"jobs-{run_name}.json" if run_name else "jobs.json")
    path.write_text(json.dumps(spec))
    testbench = run_testbench(system, TOPLEVEL, "maskprop.tb.bench_core_fast",
                              params={"jobs": str(path)}, sim=sim, build_dir=build_dir,
                              seed=seed, waves=waves, run_name=run_name, fast=True)
    report = testbench.report.get("core_fast")
    if not testbench.passed or report is None:
        raise SimulationError(f"the core's fast bench failed: see {testbench.log}")
    runs = [FastCoreRun([decode_status(system.register_map, c["status"])
                         for c in job["commands"]],
                        [c["counters"] for c in job["commands"]], label=job["label"],
                        result=bytes.fromhex(job["result"]), fill=job["fill"], run=job["run"],
                        read_back=job["read_back"])
            for job in report["jobs"]]
    return FastBench(runs, report["whole_test"], testbench, report["visible"])
