#!/usr/bin/env python3
"""Where the sparse cycles go: every multiplier slot of each pass, on the tile array, split by
cause (``maskprop.sim.cycle_model.slot_breakdown``): productive (their share is
achieved/ideal), products with a zero ``Y`` operand, idle tiles, empty lanes in a chunk's last
beat, chunks without a nonzero. Summed per pass over a network's layers, in both BatchNorm
scenarios; each pass in the orientation the cycle model finds fastest in sparse mode.

Default: the digits CNN on its real masks and ResNet-18 on its literature profile, batch 1,
the evaluation's configuration. ``--json FILE`` also writes the table
(``scripts/make_docs.py --only slot-losses`` puts it into docs/results.md).

    .venv/bin/python scripts/slot_losses.py [--network NAME ...] [--json FILE]
"""

import argparse
from pathlib import Path

from rich.progress import track

from maskprop.base.config import EVALUATION
from maskprop.evaluation.evaluate import SCENARIOS, network_lowerings, published_inputs
from maskprop.sim.cycle_model import SlotBreakdown, fastest, slot_breakdown
from maskprop.sim.layer import PASSES

# scripts/bench_output.py
from bench_output import add_network_option, machine, network_names, write_json


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_network_option(parser, ["digits", "resnet18"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = network_names(parser, args)
    config = EVALUATION
    rows = []
    for name in names:
        net, source = published_inputs(name)
        for scenario in SCENARIOS:
            sums = {p: SlotBreakdown(0, 0, 0, 0, 0) for p in PASSES}
            passes = network_lowerings(net, source, scenario, config)
            for layer, pass_name, gemms in track(passes, description=f"{net.name}, {scenario}"):
                gemm = fastest(gemms, config, dense=False).gemm
                sums[pass_name] += slot_breakdown(gemm, config)
            for pass_name, breakdown in sums.items():
                rows.append({"network": net.name, "scenario": scenario, "pass": pass_name,
                             "slots": breakdown.total,
                             **{cause: getattr(breakdown, cause)
                                for cause in SlotBreakdown.CAUSES}})
    for row in rows:
        shares = ", ".join(f"{cause} {row[cause] / row['slots']:.3f}"
                           for cause in SlotBreakdown.CAUSES)
        print(f"{row['network']} {row['scenario']} {row['pass']}: {shares}")
    if args.json:
        write_json(args.json, {"config": {"vec": config.vec, "lanes": config.lanes,
                                          "tiles": config.tiles, "col_block": config.col_block},
                               "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
