#!/usr/bin/env python3
"""How fast the cycle model is: a whole network's passes on the tile array, from masks.

Default: ResNet-50's backward pass (backward-data of every layer but the first, and
backward-weight of every layer) at batch 1, 224x224, with i.i.d. synthetic masks (activations at
``--density``; output gradients dense where a BatchNorm follows the conv, as everywhere in
ResNet-50, else i.i.d. at ``--density`` too). Prints the cycle
totals, speedup and ideal, and the wall time the model took; ``--json FILE`` also writes them as
JSON, with the machine's CPUs and load at the end (``scripts/make_docs.py --only cycle-model``
puts them into docs/results.md).

    .venv/bin/python scripts/bench_cycle_model.py [--network NAME] [--density 0.5]
                                                  [--passes forward,...] [--json FILE]
"""

import argparse
import time
from pathlib import Path

import numpy as np
from rich.progress import track

from maskprop.base.config import EVALUATION
from maskprop.base.metrics import totals
from maskprop.sim.cycle_model import pass_estimate
from maskprop.sim.layer import PASSES
from maskprop.workloads.networks import network

from bench_output import machine, write_json     # scripts/bench_output.py


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="resnet50")
    parser.add_argument("--density", type=float, default=0.5,
                        help="nonzero fraction of every ReLU activation (synthetic, i.i.d.)")
    parser.add_argument("--passes", default="backward_data,backward_weight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the totals and the wall time as JSON to this file")
    args = parser.parse_args(argv)
    if not 0 <= args.density <= 1:
        parser.error(f"--density must be in [0, 1], not {args.density}")
    config = EVALUATION
    net = network(args.network)
    passes = args.passes.split(",")
    unknown = [p for p in passes if p not in PASSES]
    if unknown:
        parser.error(f"--passes must name passes of {', '.join(PASSES)}, not {', '.join(unknown)}")
    rng = np.random.default_rng(args.seed)
    started = time.monotonic()
    estimates = []
    for layer in track(net.layers, description=f"{net.name} cycle model"):
        conv = layer.conv
        a = (rng.random(conv.input_shape) < args.density if layer.relu_input
             else np.ones(conv.input_shape, dtype=bool))
        dz = (np.ones(conv.output_shape, dtype=bool) if layer.batchnorm
              else rng.random(conv.output_shape) < args.density)
        for pass_name in passes:
            if pass_name == "backward_data" and not layer.relu_input:
                continue          # the first layer's input gradient is never needed
            estimates.append(pass_estimate(conv, pass_name, a, dz, config))
    seconds = time.monotonic() - started
    total, count = totals(estimates), len(estimates)
    speedup, ideal = total.speedup, total.ideal
    dz = ("dense (BatchNorm)" if all(layer.batchnorm for layer in net.layers)
          else "sparse where no BatchNorm follows the conv")
    print(f"{net.name}, batch 1, {'+'.join(passes)}: {count} layer passes, activation density "
          f"{args.density} (synthetic i.i.d.), dZ {dz}; vec {config.vec}, lanes "
          f"{config.lanes}, tiles {config.tiles}")
    print(f"dense {total.dense_cycles:,} cycles, sparse {total.sparse_cycles:,} cycles: speedup "
          f"{speedup:.2f}x, ideal {ideal:.2f}x, achieved/ideal {total.efficiency:.2f}")
    print(f"cycle model wall time: {seconds:.1f} s")
    if args.json is not None:
        write_json(args.json, dict(
            network=net.name, batch=1, passes=passes, layer_passes=count, density=args.density,
            dz=dz, seed=args.seed,
            config=config.as_dict(), dense_cycles=total.dense_cycles,
            sparse_cycles=total.sparse_cycles, dense_slots=total.dense_slots,
            nonzero_macs=total.nonzero_macs, speedup=speedup, ideal=ideal,
            efficiency=total.efficiency, seconds=seconds, machine=machine()))


if __name__ == "__main__":
    main()
