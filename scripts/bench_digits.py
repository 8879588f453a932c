#!/usr/bin/env python3
"""Measure the tile array (or the one-tile engine) on every pass of every digits-CNN layer, on
its Verilog, with the real tensors of one training step.

For each layer and pass (the first layer's backward-data is not needed in training and is not
run), the whole pass runs twice on the same RTL: dense mode (every output, every element) and
sparse mode (only outputs the mask enables, only nonzero operands). Cycles are the hardware's own
counters; the cycle model's prediction is checked to be identical and every output bit-exact
against the golden model, or the script stops. Prints a Markdown table, also written to
``out/bench_<block>.md`` and ``.json``.

    .venv/bin/python scripts/bench_digits.py [--block array|engine] [--variant plain|batchnorm|both]
"""

import argparse
import json
import sys
import time
from pathlib import Path

from rich.progress import track

from maskprop.base.config import Config
from maskprop.host.driver import ArrayPass, lower_pass
from maskprop.sim.layer import PASSES, pass_label
from maskprop.workloads.digits import load_fixture


def run(block, record, pass_name, config, out, label):
    if block == "engine":
        from maskprop.host.engine_runs import compare_on_engine, lower_record
        return compare_on_engine(lower_record(record, pass_name), config, build_dir=out,
                                 label=label, seed=1)
    from maskprop.host.array_runs import compare_on_array
    array_pass = ArrayPass.prepare(
        lower_pass(record.layer, pass_name, A=record.A, W=record.W, dZ=record.dZ), config)
    return compare_on_array(array_pass, build_dir=out, label=label, seed=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--block", choices=("array", "engine"), default="array")
    parser.add_argument("--variant", choices=("plain", "batchnorm", "both"), default="both")
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    config = Config()
    fixture = load_fixture()
    variants = ("plain", "batchnorm") if args.variant == "both" else (args.variant,)
    jobs = [(variant, record, pass_name)
            for variant in variants for record in fixture[variant].layers
            for pass_name in PASSES
            if not (pass_name == "backward_data" and record is fixture[variant].layers[0])]
    started = time.monotonic()
    rows = []
    for variant, record, pass_name in track(jobs, description=f"{args.block} RTL runs"):
        label = f"{variant} {record.name} {pass_name}"
        result = run(args.block, record, pass_name, config,
                     args.out / f"bench_{args.block}" / variant / record.name / pass_name, label)
        if not result.agrees:
            sys.exit(f"{label}: RTL and golden/cycle model disagree: {result}")
        rows.append((variant, record.name, pass_name, result))

    shape = (f"{config.tiles} tiles x {config.lanes} lanes" if args.block == "array" else
             f"one tile, {config.lanes} lanes")
    lines = [f"{args.block}: {shape}, vec {config.vec}; "
             f"`.venv/bin/python scripts/bench_digits.py --block {args.block}` "
             f"({time.monotonic() - started:.0f} s on Verilator)", "",
             "| network | layer | pass | outputs computed | dense cycles | sparse cycles "
             "| speedup | ideal | achieved/ideal |",
             "|---|---|---|---|---|---|---|---|---|"]
    for variant, layer, pass_name, r in rows:
        lines.append(f"| {variant} | {layer} | {pass_label(pass_name)} | "
                     f"{r.outputs_sparse} of {r.outputs_dense} | {r.dense_cycles:,} | "
                     f"{r.sparse_cycles:,} | {r.speedup:.2f}x | {r.ideal:.2f}x | "
                     f"{r.efficiency:.2f} |")
    for variant in variants:
        for passes, name in ((("forward",), "forward"), (("backward_data",), "backward-data"),
                             (("backward_weight",), "backward-weight"),
                             (("backward_data", "backward_weight"), "**backward**"),
                             (PASSES, "**training step**")):
            picked = [r for v, _, p, r in rows if v == variant and p in passes]
            dense = sum(r.dense_cycles for r in picked)
            sparse = sum(r.sparse_cycles for r in picked)
            # Ideal over several passes: their dense cycles over the sum of each pass's
            # cycles at its ideal speedup.
            ideal = dense / sum(r.dense_cycles / r.ideal for r in picked)
            lines.append(f"| {variant} | all | {name} | | {dense:,} | {sparse:,} | "
                         f"{dense / sparse:.2f}x | {ideal:.2f}x | {dense / sparse / ideal:.2f} |")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bench_{args.block}.md").write_text(text + "\n")
    (args.out / f"bench_{args.block}.json").write_text(json.dumps(
        [dict(variant=v, layer=l, pass_name=p, dense_cycles=r.dense_cycles,
              sparse_cycles=r.sparse_cycles, speedup=r.speedup, ideal=float(r.ideal),
              efficiency=float(r.efficiency)) for v, l, p, r in rows], indent=2))


if __name__ == "__main__":
    main()
