#!/usr/bin/env python3
"""Measure the one-tile engine on every pass of every digits-CNN layer, on its Verilog.

For each layer and pass (the first layer's backward-data is not needed in training and is not
run), the whole lowered GEMM runs twice on the same RTL: dense mode (every output, every
element) and sparse mode (only outputs the mask enables, only nonzero products). Cycles are the
engine's own counters; the cycle model's prediction is checked to be identical; every output is
compared bit-exactly with the golden model. Prints a Markdown table (also written to
``out/bench_engine.md`` and ``.json``).

    .venv/bin/python scripts/bench_engine.py [--variant plain|batchnorm|both] [--vec 16 --lanes 4]
"""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rich.progress import track

from maskprop.config import Config
from maskprop.engine_runs import PASS_NAMES, compare_on_engine, lower_record
from maskprop.sim.digits import load_fixture


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=("plain", "batchnorm", "both"), default="both")
    parser.add_argument("--vec", type=int, default=16)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("out/bench_engine"))
    args = parser.parse_args(argv)
    config = Config(vec=args.vec, lanes=args.lanes)
    fixture = load_fixture()
    variants = ("plain", "batchnorm") if args.variant == "both" else (args.variant,)
    jobs = [(variant, record, pass_name)
            for variant in variants for record in fixture[variant].layers
            for pass_name in PASS_NAMES
            if not (pass_name == "backward_data" and record is fixture[variant].layers[0])]
    started = time.monotonic()
    rows = []
    for variant, record, pass_name in track(jobs, description="engine RTL runs"):
        result = compare_on_engine(lower_record(record, pass_name), config,
                                   build_dir=args.out / variant / record.name / pass_name,
                                   label=f"{variant} {record.name} {pass_name}", seed=1)
        if not (result.exact and result.dense_cycles == result.model_dense
                and result.sparse_cycles == result.model_sparse):
            sys.exit(f"{result.label}: RTL and golden/cycle model disagree: {result}")
        rows.append((variant, record.name, pass_name, result))

    lines = [f"vec {config.vec}, lanes {config.lanes}; `python scripts/bench_engine.py` "
             f"({time.monotonic() - started:.0f} s, {rows[0][3].simulator})", "",
             "| network | layer | pass | outputs dense / sparse | dense cycles | sparse cycles "
             "| speedup | ideal | achieved/ideal |",
             "|---|---|---|---|---|---|---|---|---|"]
    for variant, layer, pass_name, r in rows:
        lines.append(f"| {variant} | {layer} | {pass_name.replace('_', '-')} | "
                     f"{r.outputs_dense} / {r.outputs_sparse} | {r.dense_cycles} | "
                     f"{r.sparse_cycles} | {r.speedup:.2f}x | {r.ideal:.2f}x | "
                     f"{r.efficiency:.2f} |")
    for variant in variants:
        for pass_name in PASS_NAMES:
            picked = [r for v, _, p, r in rows if v == variant and p == pass_name]
            dense = sum(r.dense_cycles for r in picked)
            sparse = sum(r.sparse_cycles for r in picked)
            # Ideal over the whole network: dense MACs / nonzero MACs, summed over layers (the
            # sparse run issues exactly the nonzero MACs, and ideal = dense MACs / those).
            ideal = sum(r.ideal * r.sparse_macs for r in picked) / sum(
                r.sparse_macs for r in picked)
            lines.append(f"| {variant} | **all** | {pass_name.replace('_', '-')} | | {dense} | "
                         f"{sparse} | {dense / sparse:.2f}x | {ideal:.2f}x | "
                         f"{dense / sparse / ideal:.2f} |")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out.parent / "bench_engine.md").write_text(text + "\n")
    (args.out.parent / "bench_engine.json").write_text(json.dumps(
        [dict(variant=v, layer=l, pass_name=p, **asdict(r), speedup=r.speedup,
              efficiency=r.efficiency) for v, l, p, r in rows], indent=2, default=float))


if __name__ == "__main__":
    main()
