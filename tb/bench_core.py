"""cocotb bench of MaskpropCore: it does what a host does and nothing more - writes the tensors
into memory, programs the registers over AXI4-Lite (cocotbext-axi's ``AxiLiteMaster``), sets
``CONTROL.start``, waits for ``irq`` and reads the status and the counters, command after
command of a split pass (stopping at an error, as a host would), then the result back -
while cocotbext-axi's ``AxiRam`` serves the core's memory port. Random pauses on all five
channels of both buses (idle cycles and backpressure), and the AXI protocol checker
(:class:`~maskprop.tb.axi_checker.AxiMonitor`) on the memory port throughout.

The jobs and what to compare come from the file named by the ``jobs`` parameter
(:func:`maskprop.host.runs.run_core_jobs` writes it and checks the report); the bench reports,
per command, the status (with the error code), every counter and the bytes the checker saw per
tensor, and per job the result bytes.
"""

import json
import logging

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from maskprop.tb.axi_checker import AxiMonitor
from maskprop.tb.bench_axi_streams import pauses
from maskprop.tb.harness import params, record, start


async def read64(csr, offset: int) -> int:
    """A 64-bit counter: the low word first (it latches the high word)."""
    low = await csr.read_dword(offset)
    return low | await csr.read_dword(offset + 4) << 32


@cocotb.test()
async def core_runs_jobs(dut):
    with open(params()["jobs"]) as file:
        spec = json.load(file)
    rng, seed = await start(dut)
    csr = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "csr_"), dut.clk, dut.rst)
    ram = AxiRam(AxiBus.from_prefix(dut, "mem_"), dut.clk, dut.rst, size=spec["memory_bytes"])
    for model in (csr, ram):            # one log line per burst would swamp the log
        model.write_if.log.setLevel(logging.WARNING)
        model.read_if.log.setLevel(logging.WARNING)
    if spec["pause"]:
        for interface in (csr.write_if, csr.read_if):
            for channel in interface.__dict__.values():
                if hasattr(channel, "set_pause_generator"):
                    channel.set_pause_generator(pauses(rng, rng.uniform(0, spec["pause"])))
        for interface in (ram.write_if, ram.read_if):
            for channel in interface.__dict__.values():
                if hasattr(channel, "set_pause_generator"):
                    channel.set_pause_generator(pauses(rng, rng.uniform(0, spec["pause"])))
    monitor = AxiMonitor(dut, "mem", dut.clk, dut.rst, max_outstanding=spec["max_outstanding"])
    monitor.start()
    offsets = spec["offsets"]
    reports = []
    for job in spec["jobs"]:
        for address, image in job["memory"]:
            ram.write(address, bytes.fromhex(image))
        out_address, out_bytes = job["out"]
        ram.write(out_address, bytes([0xA5]) * out_bytes)      # stale data must be overwritten
        before = {"read": monitor.bytes_read, "written": monitor.bytes_written}
        ranges = {name: (lo, hi) for name, lo, hi in job["ranges"]}
        commands = []
        for writes in job["commands"]:
            read_before = {name: monitor.bytes_read_in(lo, hi)
                           for name, (lo, hi) in ranges.items()}
            written_before = {name: monitor.bytes_written_in(lo, hi)
                              for name, (lo, hi) in ranges.items()}
            command_before = {"read": monitor.bytes_read, "written": monitor.bytes_written}
            for offset, value in writes:
                await csr.write_dword(offset, value)
            # Counters from zero for each command: clear_counters with start, in one write.
            await csr.write_dword(offsets["CONTROL"],
                                  1 << offsets["start_bit"] | 1 << offsets["clear_bit"])
            if job.get("start_again"):      # a start while busy: refused, the pass goes on
                await csr.write_dword(offsets["CONTROL"], 1 << offsets["start_bit"])
            # irq, then busy low: an error (a start while busy) raises irq while the pass runs.
            status = await with_timeout(_wait_finished(dut, csr, offsets),
                                        job["timeout_cycles"] * 10, "ns")
            counters = {name: await read64(csr, offset) for name, offset in offsets["counters"]}
            commands.append({
                "status": status,
                "counters": counters,
                "bytes_read": {name: monitor.bytes_read_in(lo, hi) - read_before[name]
                               for name, (lo, hi) in ranges.items()},
                "bytes_written": {name: monitor.bytes_written_in(lo, hi) - written_before[name]
                                  for name, (lo, hi) in ranges.items()},
                "total_read": monitor.bytes_read - command_before["read"],
                "total_written": monitor.bytes_written - command_before["written"],
            })
            # Clear done and error (write 1 to clear) for the next command.
            await csr.write_dword(offsets["STATUS"], status & offsets["clear_mask"])
            await ClockCycles(dut.clk, 2)
            if status >> offsets["error_bit"] & 1:
                break                   # a host stops a split pass at its first error
        reports.append({
            "commands": commands,
            "result": ram.read(out_address, out_bytes).hex(),
            "total_read": monitor.bytes_read - before["read"],
            "total_written": monitor.bytes_written - before["written"],
        })
    monitor.stop()
    record("core", seed=seed, jobs=reports, protocol_errors=[str(e) for e in monitor.errors])
    monitor.assert_clean()


async def _wait_finished(dut, csr, offsets) -> int:
    """Wait for ``irq``, then until STATUS says not busy; returns STATUS."""
    while not dut.irq.value:
        await RisingEdge(dut.clk)
    while True:
        status = await csr.read_dword(offsets["STATUS"])
        if not status >> offsets["busy_bit"] & 1:
            return status
        await ClockCycles(dut.clk, 16)
