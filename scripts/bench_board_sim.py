#!/usr/bin/env python3
"""The simulated board's speed (docs/host_link.md): every pass of every digits-CNN layer run
through ``maskprop.device`` on BoardTop's Verilator simulation, UART included, in a training
step's order (every forward pass, then from the last layer to the first its backward-weight and
backward-data passes, none for the first layer's input), each result checked bit-exactly against
the golden model, with the wall time split by link command (the memory transfers against RUN,
which is the core computing), the bytes each way and the core's busy cycles.

The board is the ULX3S build's (``maskprop.flow.board.BOARD_CORE``, 2048 words of memory) with
the UART at ``--divisor`` clock cycles a bit (default 4, the fastest the UART takes: 40 cycles a
byte). The tensors are the digits CNN's real ones (the fixture's training step, batch 2).

    .venv/bin/python scripts/bench_board_sim.py [--variant plain|batchnorm] [--divisor N]
        [--json FILE]
"""

import argparse
import time

import numpy as np

from maskprop.device import Device, SimulatedBoard
from maskprop.flow.board import BOARDS
from maskprop.host.core_driver import CoreJob
from maskprop.hw.board_top import BoardTop
from maskprop.hw.uart import MAX_DIVISOR, MIN_DIVISOR
from maskprop.workloads.digits import NETWORK, VARIANTS, digits_layer

# scripts/bench_output.py
from bench_output import machine, write_json


def measure(variant: str, divisor: int) -> dict:
    spec = BOARDS["ulx3s-85f"]
    top = BoardTop(spec.core, memory_words=spec.memory_words, divisor=divisor)
    rows = []
    started = time.monotonic()
    with SimulatedBoard(top) as board:
        device = Device(board, top.register_map, timeout=600)
        # A training step's order: every forward pass, then each layer's backward passes from
        # the last layer to the first (backward-weight, then backward-data but for the first).
        order = ([(conv, "forward") for conv in NETWORK] +
                 [(conv, pass_name) for index, conv in reversed(list(enumerate(NETWORK)))
                  for pass_name in ("backward_weight",) + (("backward_data",) if index else ())])
        for conv, pass_name in order:
            record = digits_layer(conv.name, variant)
            job = CoreJob(record.layer, pass_name, spec.core, A=record.A, W=record.W,
                          dZ=record.dZ, shift=12)
            before = (dict(device.stats.seconds), device.stats.bytes_sent,
                      device.stats.bytes_received)
            t0 = time.monotonic()
            done = device.run_job(job)
            seconds = time.monotonic() - t0
            if not np.array_equal(done.result, job.result(job.expected_image())):
                raise AssertionError(f"{conv.name} {pass_name}: the board's result is not "
                                     f"the golden model's")
            run = device.stats.seconds.get("RUN", 0.0) - before[0].get("RUN", 0.0)
            rows.append({"layer": conv.name, "pass": pass_name, "seconds": seconds,
                         "run_seconds": run,
                         "bytes_sent": device.stats.bytes_sent - before[1],
                         "bytes_received": device.stats.bytes_received - before[2],
                         "cycles_busy": done.counters["cycles_busy"]})
            print(f"{conv.name:6} {pass_name:16} {seconds:6.2f} s (RUN {run:5.2f} s), "
                  f"{rows[-1]['bytes_sent']:7,} B sent, {rows[-1]['bytes_received']:7,} B "
                  f"received, {rows[-1]['cycles_busy']:8,} busy cycles", flush=True)
    total = time.monotonic() - started
    step = sum(row["seconds"] for row in rows)
    return {"variant": variant, "divisor": divisor, "core": spec.name,
            "cycles": board.cycles, "wall_seconds": total, "step_seconds": step,
            "run_seconds": sum(row["run_seconds"] for row in rows),
            "bytes_sent": sum(row["bytes_sent"] for row in rows),
            "bytes_received": sum(row["bytes_received"] for row in rows),
            "cycles_per_second": board.cycles / total, "rows": rows, "machine": machine()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=VARIANTS, default="plain")
    parser.add_argument("--divisor", type=int, default=MIN_DIVISOR,
                        help=f"the UART's cycles a bit ({MIN_DIVISOR}..{MAX_DIVISOR}, default "
                             f"{MIN_DIVISOR})")
    parser.add_argument("--json", default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    if not MIN_DIVISOR <= args.divisor <= MAX_DIVISOR:
        parser.error(f"--divisor must be in [{MIN_DIVISOR}, {MAX_DIVISOR}], not {args.divisor}")
    result = measure(args.variant, args.divisor)
    print(f"one training step's passes: {result['step_seconds']:.1f} s "
          f"({result['run_seconds']:.1f} s of it RUN), {result['bytes_sent']:,} bytes sent and "
          f"{result['bytes_received']:,} received; {result['cycles']:,} board cycles at "
          f"{result['cycles_per_second']:,.0f} cycles/s; 200 steps: "
          f"{200 * result['step_seconds'] / 60:.0f} minutes")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
