#!/usr/bin/env python3
"""Measure the tile array (or the one-tile engine, or the core) on every pass of every
digits-CNN layer, on its Verilog, with the real tensors of one training step.

For each layer and pass (the first layer's backward-data is not needed in training and is not
run), the whole pass runs twice on the same RTL: dense mode (every output, every element) and
sparse mode (only outputs the mask enables, only nonzero operands). Cycles are the hardware's own
counters; the cycle model's prediction is checked to be identical and every output bit-exact
against the golden model, or the script stops. With ``--block core`` each pass runs memory to
memory on :data:`~maskprop.base.config.CORE_DEFAULT` (``maskprop.host.runs.compare_on_core``:
the tensors in memory, the pass started through the registers, backward-weight in each mode's
faster operand): its cycles are ``cycles_busy`` (start to done: loads, compute, write-back),
beside the tile array's compute cycles and the bytes moved, each checked against the core's
cycle model. Prints a Markdown table, also written to
``out/bench_<block>.md`` and ``.json``; ``--json FILE`` writes the JSON there too
(``scripts/make_docs.py --only digits-array`` puts the table into docs/results.md).

    .venv/bin/python scripts/bench_digits.py [--block array|engine|core]
                                            [--variant plain|batchnorm|both] [--json FILE]
"""

import argparse
import sys
import time
from pathlib import Path

from rich.progress import track

from maskprop.base import metrics
from maskprop.base.config import CORE_DEFAULT, Config
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
    if block == "core":
        from maskprop.host.runs import compare_on_core
        return compare_on_core(record.layer, pass_name, CORE_DEFAULT, **tensors, build_dir=out,
                               label=label, seed=1)
    from maskprop.host.runs import compare_on_array
    return compare_on_array(mode_passes(record.layer, pass_name, config, **tensors),
                            build_dir=out, label=label, seed=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--block", choices=("array", "engine", "core"), default="array")
    parser.add_argument("--variant", choices=("plain", "batchnorm", "both"), default="both")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help="build directory; the table and JSON go to OUT/bench_BLOCK.md/.json")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the results as JSON to this file (what "
                             "scripts/make_docs.py renders)")
    args = parser.parse_args(argv)
    config = CORE_DEFAULT.array if args.block == "core" else Config()
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
    if args.block == "core":
        payload = core_results(variants, rows, time.monotonic() - started)
    else:
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


def core_results(variants, rows, seconds) -> dict:
    """:func:`results` of the core's runs (``CoreComparison``): the speedup over cycles busy,
    with the compute cycles, the bytes moved and backward-weight's operands beside it."""
    def terms(comparison):
        busy, compute = comparison.busy, comparison.compute
        return dict(dense_cycles=busy.dense_cycles, sparse_cycles=busy.sparse_cycles,
                    dense_slots=busy.dense_slots, nonzero_macs=busy.nonzero_macs,
                    speedup=busy.speedup, ideal=busy.ideal, efficiency=busy.efficiency,
                    dense_compute=compute.dense_cycles, sparse_compute=compute.sparse_cycles,
                    compute_speedup=compute.speedup,
                    dense_bytes=sum(comparison.dense.counters[name] for name in BYTES),
                    sparse_bytes=sum(comparison.sparse.counters[name] for name in BYTES))

    totals = []
    for variant in variants:
        for name, passes in TOTALS.items():
            chosen = [r for v, _, p, r in rows if v == variant and p in passes]
            busy = metrics.totals(r.busy for r in chosen)
            compute = metrics.totals(r.compute for r in chosen)
            totals.append(dict(
                variant=variant, passes=name, dense_cycles=busy.dense_cycles,
                sparse_cycles=busy.sparse_cycles, speedup=busy.speedup, ideal=busy.ideal,
                efficiency=busy.efficiency, dense_compute=compute.dense_cycles,
                sparse_compute=compute.sparse_cycles, compute_speedup=compute.speedup,
                dense_bytes=sum(sum(r.dense.counters[n] for n in BYTES) for r in chosen),
                sparse_bytes=sum(sum(r.sparse.counters[n] for n in BYTES) for r in chosen)))
    return dict(
        block="core", config=CORE_DEFAULT.array.as_dict(), x_words=CORE_DEFAULT.x_words,
        simulator=selected_simulator(), seconds=seconds,
        rows=[dict(variant=v, layer=layer, pass_name=p, **{"pass": pass_label(p)},
                   outputs_dense=int(r.dense.counters["outputs"]),
                   outputs_sparse=int(r.sparse.counters["outputs"]),
                   operands=[r.dense.operand, r.sparse.operand], **terms(r))
              for v, layer, p, r in rows],
        totals=totals)


#: The byte counters a run's traffic sums.
BYTES = ("bytes_read", "bytes_written")


if __name__ == "__main__":
    main()
