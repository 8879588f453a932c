#!/usr/bin/env python3
"""What the Y buffer's weight prefetch saves: a network's forward and backward-data passes on
the core, each as the commands ``plan_pass`` makes with prefetches and as the plan without them
(the widest groups, every weight load waited for), from the core's cycle model
(``sim/core_model.py``, exact per command against the RTL) at two memory bandwidths.

Default: ResNet-18 at batch 1 on CORE_DEFAULT, sparse mode, synthetic tensors (``A`` and
``dZ`` nonzero i.i.d. at ``--density``), at one memory word per cycle (the core's on-chip
memory) and a quarter of that. Prints, per bandwidth, the core's busy cycles with and without
prefetches, the cycles a run waited for its weights (the load phase), the commands and the
DRAM bytes; and what is still not overlapped in backward-weight (no prefetch: its ``A`` and
``dZ`` bands are in before its gathers start), its busy and load cycles in the first runnable
orientation. ``--json FILE`` also writes them (``scripts/make_docs.py --only prefetch`` puts
them into docs/results.md).

    .venv/bin/python scripts/bench_prefetch.py [--network NAME] [--density 0.5] [--json FILE]
"""

import argparse
from pathlib import Path

import numpy as np
from rich.progress import track

from maskprop.base.config import CORE_DEFAULT
from maskprop.host.core_driver import runnable_operands
from maskprop.host.driver import ArrayPass
from maskprop.sim.core_model import MemoryTiming, job_cycles, total_cycles
from maskprop.tb.stimulus import random_conv_tensors
from maskprop.workloads.networks import NETWORK_NAMES, network

from bench_output import machine, write_json     # scripts/bench_output.py

PASSES = ("forward", "backward_data")
FIELDS = ("total", "load", "check", "compute", "commands", "bytes")


def _sums(commands: list) -> dict:
    whole = total_cycles(commands)
    return {"total": whole.total, "load": whole.load, "check": whole.check,
            "compute": whole.compute, "commands": len(commands),
            "bytes": whole.traffic.total_bytes}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="resnet18")
    parser.add_argument("--density", type=float, default=0.5,
                        help="nonzero fraction of A and dZ (synthetic, i.i.d.)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 0 <= args.density <= 1:
        parser.error(f"--density must be in [0, 1], not {args.density}")
    if args.network not in NETWORK_NAMES:
        parser.error(f"--network must be one of {', '.join(NETWORK_NAMES)}, not {args.network}")
    core, net = CORE_DEFAULT, network(args.network)
    full = core.bus_bytes
    bandwidths = (full, full // 4)
    rng = np.random.default_rng(args.seed)
    totals = {(bw, plan): dict.fromkeys(FIELDS, 0) for bw in bandwidths
              for plan in ("prefetch", "none")}
    weight = {bw: dict.fromkeys(FIELDS, 0) for bw in bandwidths}
    passes = 0
    for layer in track(net.layers, description=f"{net.name} on the core's model"):
        conv = layer.conv
        A, W, dZ = random_conv_tensors(rng, conv, args.density)
        for pass_name in PASSES:
            if pass_name == "backward_data" and not layer.relu_input:
                continue                 # the first layer's input is the image
            passes += 1
            lowered = ArrayPass.lower(conv, pass_name, core.array, A=A, W=W, dZ=dZ,
                                      check_fit=False)
            for bw in bandwidths:
                memory = MemoryTiming(bytes_per_cycle=bw)
                for plan, prefetch in (("prefetch", True), ("none", False)):
                    sums = _sums(job_cycles(lowered, core, dense=False, memory=memory,
                                            prefetch=prefetch))
                    for name in FIELDS:
                        totals[bw, plan][name] += sums[name]
        operand = runnable_operands(conv, core)[0]
        lowered = ArrayPass.lower(conv, "backward_weight", core.array, A=A, W=W, dZ=dZ,
                                  x_operand=operand, check_fit=False)
        for bw in bandwidths:
            sums = _sums(job_cycles(lowered, core, dense=False,
                                    memory=MemoryTiming(bytes_per_cycle=bw)))
            for name in FIELDS:
                weight[bw][name] += sums[name]
    rows = [{"bytes_per_cycle": bw, "plan": plan, **values}
            for (bw, plan), values in totals.items()]
    rows += [{"bytes_per_cycle": bw, "plan": "backward_weight", **values}
             for bw, values in weight.items()]
    payload = {"network": net.name, "batch": 1, "passes": list(PASSES),
               "layer_passes": passes, "density": args.density, "seed": args.seed,
               "core": "CORE_DEFAULT", "mode": "sparse", "rows": rows, "machine": machine()}
    for bw in bandwidths:
        with_, without = totals[bw, "prefetch"], totals[bw, "none"]
        print(f"{bw} B/cycle: busy {without['total']:,} without prefetch, "
              f"{with_['total']:,} with ({without['total'] / with_['total']:.3f}x); "
              f"weights waited for {without['load']:,} / {with_['load']:,} cycles; "
              f"commands {without['commands']} / {with_['commands']}; "
              f"bytes {without['bytes']:,} / {with_['bytes']:,}; backward-weight busy "
              f"{weight[bw]['total']:,}, bands waited for {weight[bw]['load']:,}")
    if args.json:
        write_json(args.json, payload)


if __name__ == "__main__":
    main()
