#!/usr/bin/env python3
"""Measure the tile array (or the one-tile engine) on every pass of every digits-CNN layer, on
its Verilog, with the real tensors of one training step.

For each layer and pass (the first layer's backward-data is not needed in training and is not
run), the whole pass runs twice on the same RTL: dense mode (every output, every element) and
sparse mode (only outputs the mask enables, only nonzero operands). Cycles are the hardware's own
counters; the cycle model's prediction is checked to be identical and every output bit-exact
against the golden model, or the script stops. Prints a Markdown table, also written to
``out/bench_<block>.md`` and ``.json``; ``--json FILE`` writes the JSON there too
(``scripts/make_docs.py --only digits-array`` puts the table into docs/results.md).

    .venv/bin/python scripts/bench_digits.py [--block array|engine] [--variant plain|batchnorm|both]
                                            [--json FILE]
"""

import argparse
import sys
import time
from pathlib import Path

from rich.progress import track

from maskprop.base import metrics
from maskprop.base.config import Config
from maskprop.evaluation.doc_tables import bench_digits_table
from maskprop.flow.toolchain import selected_simulator
from maskprop.host.driver import mode_passes
from maskprop.sim.layer import PASSES, pass_label
from maskprop.sim.lowering import lower_pass
from maskprop.workloads.digits import load_fixture

from bench_output import write_json     # scripts/bench_output.py


def run(block, record, pass_name, config, out, label):
    tensors = dict(A=record.A, W=record.W, dZ=record.dZ)
    if block == "engine":
        from maskprop.host.runs import compare_on_engine
        gemm = lower_pass(record.layer, pass_name, **tensors)
        return compare_on_engine(gemm, config, build_dir=out, label=label, seed=1)
    from maskprop.host.runs import compare_on_array
    return compare_on_array(mode_passes(record.layer, pass_name, config, **tensors),
                            build_dir=out, label=label, seed=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--block", choices=("array", "engine"), default="array")
    parser.add_argument("--variant", choices=("plain", "batchnorm", "both"), default="both")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help="build directory; the table and JSON go to OUT/bench_BLOCK.md/.json")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the results as JSON to this file (what "
                             "scripts/make_docs.py renders)")
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
    payload = results(args.block, config, variants, rows, time.monotonic() - started)
    text = bench_digits_table(payload)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bench_{args.block}.md").write_text(text + "\n")
    write_json(args.out / f"bench_{args.block}.json", payload)
    if args.json is not None:
        write_json(args.json, payload)


#: Totals over several passes: name -> the passes summed.
TOTALS = {"forward": ("forward",), "backward_data": ("backward_data",),
          "backward_weight": ("backward_weight",), "backward": ("backward_data", "backward_weight"),
          "training_step": PASSES}


def results(block, config, variants, rows, seconds) -> dict:
    """Every layer pass and the totals per variant, as the JSON of ``--json``. A total sums the
    passes' integer terms (``maskprop.base.metrics.totals``), so each pass weighs by its work."""
    totals = []
    for variant in variants:
        for name, passes in TOTALS.items():
            total = metrics.totals(r for v, _, p, r in rows if v == variant and p in passes)
            totals.append(dict(variant=variant, passes=name, dense_cycles=total.dense_cycles,
                               sparse_cycles=total.sparse_cycles, dense_slots=total.dense_slots,
                               nonzero_macs=total.nonzero_macs, speedup=total.speedup,
                               ideal=total.ideal, efficiency=total.efficiency))
    return dict(
        block=block, config=config.as_dict(), simulator=selected_simulator(),
        seconds=seconds,
        rows=[dict(variant=v, layer=layer, pass_name=p, **{"pass": pass_label(p)},
                   outputs_dense=int(r.outputs_dense), outputs_sparse=int(r.outputs_sparse),
                   dense_cycles=int(r.dense_cycles), sparse_cycles=int(r.sparse_cycles),
                   dense_slots=int(r.dense_slots), nonzero_macs=int(r.nonzero_macs),
                   speedup=float(r.speedup), ideal=None if r.ideal is None else float(r.ideal),
                   efficiency=None if r.efficiency is None else float(r.efficiency))
              for v, layer, p, r in rows],
        totals=totals)


if __name__ == "__main__":
    main()
