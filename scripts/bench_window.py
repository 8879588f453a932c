#!/usr/bin/env python3
"""Restricted selection windows against the full crossbar, on the same masks: area and Fmax
of the engine, achieved/ideal and training-step cycles of the tile array, and training steps
per second per LUT, the figure that decides ``Config.select_window``'s default.

Every lane of the default configuration (vec 16, lanes 4) selects its operands among the
``select_window`` elements of its segment: 16 (the full crossbar, every element), 8 or 4
(``Config.select_windows()``). For each window:

- **area and Fmax**: the engine (one tile: decoder, PE, tree) through the FPGA flow on the
  ECP5 LFE5U-25F (speed 6, harness, placed and routed, router1): LUT4, FF, MULT18X18D and
  nextpnr's Fmax (pessimistic for DSP paths: nextpnr models no DSP pipeline registers). The
  dense-only engine is built with the narrowest window, its cheapest form (each lane steps
  through its own 4 elements), as the baseline a sparsity-agnostic design would be;
- **cycles**: ``maskprop eval``'s cycle model (tile array, EVALUATION buffers with that window)
  on the digits CNN's real masks and the five networks' literature profiles, both BatchNorm
  scenarios: achieved/ideal per pass and over the training step, and the step's cycles;
- **the tile array**: its LUT4 and FF after synthesis (FPGA_SMALL buffers with that window;
  its place and route takes over an hour, docs/fpga.md);
- **throughput per LUT**: training steps per second (the engine's Fmax / step cycles) per LUT4
  of the engine and of the tile array, relative to the full window's; for the dense-only
  engine, its dense cycles at its Fmax per its LUT4. The default is the window with the best
  figure per LUT of the tile array, the block that runs the training step.

``--no-flow`` skips the FPGA flow (cycles only, seconds). ``--json FILE`` writes everything
(``scripts/make_docs.py --only select-window`` puts the tables into docs/results.md).

    .venv/bin/python scripts/bench_window.py [--network NAME ...] [--no-flow] [--out DIR]
        [--json FILE]
"""

import argparse
import math
from dataclasses import replace
from pathlib import Path

from maskprop.base.config import DEFAULT, EVALUATION, FPGA_SMALL
from maskprop.base.metrics import totals
from maskprop.evaluation.evaluate import SCENARIOS, evaluate, published_inputs
from maskprop.flow.fpga import run_flow
from maskprop.hw.engine import SparseDotEngine
from maskprop.hw.tile_array import TileArray
from maskprop.sim.layer import PASSES
from maskprop.workloads.networks import NETWORK_NAMES

from bench_output import machine, write_json     # scripts/bench_output.py

WINDOWS = DEFAULT.select_windows()
#: What the JSON keeps of each FlowReport (docs tables read these).
REPORTED = ("target", "device", "package", "speed", "method", "seed", "luts", "ffs", "dsps",
            "brams", "lutrams", "fmax_mhz", "routed", "wall_seconds")
NETWORKS = ["digits", *NETWORK_NAMES]


def design_area(window: int | None, dense_only: bool, out: Path) -> dict:
    """The engine with ``window`` through the ECP5 flow (its resources and Fmax) and, for the
    sparse engine, the tile array's synthesis (``array``: its LUT4 and FF)."""
    config = replace(DEFAULT, select_window=window)
    name = f"{'dense_only' if dense_only else 'sparse'}_engine_w{config.window}"
    report = run_flow(SparseDotEngine(config, zero_skipping=not dense_only), name, "ecp5",
                      out / name)
    print(report.format(), flush=True)
    area = {key: value for key, value in report.as_dict().items() if key in REPORTED}
    if not dense_only:
        name = f"tile_array_w{config.window}"
        array = run_flow(TileArray(replace(FPGA_SMALL, select_window=window)), name, "ecp5",
                         out / name, place_and_route=False)
        print(array.format(), flush=True)
        area["array"] = {"luts": array.luts, "ffs": array.ffs}
    return area


def cycles(window: int, names: list) -> list:
    """Achieved/ideal and cycles of every network and scenario with ``window``."""
    config = replace(EVALUATION, select_window=window)
    rows = []
    for name in names:
        net, source = published_inputs(name)
        evaluation = evaluate(net, source, config)
        for scenario in SCENARIOS:
            passes = {p: totals(r for r in evaluation.rows
                                if r.scenario == scenario and r.pass_name == p) for p in PASSES}
            step = evaluation.total(scenario, "training step")
            rows.append({"network": net.name, "key": name, "scenario": scenario,
                         "window": window, "dense_cycles": step.dense_cycles,
                         "sparse_cycles": step.sparse_cycles, "efficiency": step.efficiency,
                         "pass_efficiency": {p: t.efficiency for p, t in passes.items()}})
    return rows


def per_lut(cycles_: int, area: dict, *, array: bool = False) -> float:
    """Training steps per second per LUT4: at the engine's Fmax, per LUT4 of the engine or
    (``array``) of the tile array."""
    luts = area["array"]["luts"] if array else area["luts"]
    return area["fmax_mhz"] * 1e6 / cycles_ / luts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", action="append", default=None,
                        help="digits or a network of maskprop eval (repeatable; default: all)")
    parser.add_argument("--no-flow", action="store_true",
                        help="cycles only: no synthesis, place and route")
    parser.add_argument("--out", type=Path, default=Path("out/bench_window"),
                        help="the FPGA flow's working directories (default out/bench_window)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = args.network or NETWORKS
    unknown = [name for name in names if name not in NETWORKS]
    if unknown:
        parser.error(f"--network must be digits or one of {', '.join(NETWORK_NAMES)}, not "
                     f"{', '.join(unknown)}")

    rows = [row for window in WINDOWS for row in cycles(window, names)]
    for row in rows:
        passes = ", ".join(f"{p} {e:.3f}" for p, e in row["pass_efficiency"].items()
                           if e is not None)
        print(f"{row['network']} {row['scenario']} window {row['window']}: achieved/ideal "
              f"{row['efficiency']:.3f} over the step ({passes}); {row['sparse_cycles']:,} "
              f"cycles")
    areas = {}
    if not args.no_flow:
        areas = {str(w): design_area(w, False, args.out) for w in WINDOWS}
        areas["dense-only"] = design_area(WINDOWS[0], True, args.out)
        full = str(WINDOWS[-1])
        for row in rows:
            area = areas[str(row["window"])]
            reference = next(r for r in rows if r["key"] == row["key"] and
                             r["scenario"] == row["scenario"] and r["window"] == WINDOWS[-1])
            for array in (False, True):
                suffix = "_array" if array else ""
                row[f"per_lut_vs_full{suffix}"] = (
                    per_lut(row["sparse_cycles"], area, array=array) /
                    per_lut(reference["sparse_cycles"], areas[full], array=array))
            row["dense_only_per_lut_vs_full"] = (
                per_lut(row["dense_cycles"], areas["dense-only"]) /
                per_lut(reference["sparse_cycles"], areas[full]))
        means = {}
        for key in areas:
            window = None if key == "dense-only" else int(key)
            mine = [r for r in rows if r["window"] == (window or WINDOWS[-1])]
            if window is None:
                means[key] = {"engine": _geometric_mean(
                    [r["dense_only_per_lut_vs_full"] for r in mine])}
            else:
                means[key] = {"engine": _geometric_mean([r["per_lut_vs_full"] for r in mine]),
                              "array": _geometric_mean([r["per_lut_vs_full_array"]
                                                        for r in mine])}
            print(f"{key}: training steps per second per LUT, geometric mean over networks "
                  f"and scenarios, relative to the full window: "
                  + ", ".join(f"{mean:.3f}x per {what} LUT" for what, mean in
                              means[key].items()))
        # The tile array is what runs a training step (the engine is one tile of it).
        best = max(WINDOWS, key=lambda w: means[str(w)]["array"])
        print(f"best training-step throughput per LUT of the tile array: window {best}")
    else:
        means, best = {}, None
    if args.json:
        write_json(args.json, {"vec": DEFAULT.vec, "lanes": DEFAULT.lanes,
                               "windows": WINDOWS, "areas": areas, "rows": rows,
                               "per_lut_geomean": means, "best_window": best,
                               "machine": machine()})


def _geometric_mean(values: list) -> float:
    return math.prod(values) ** (1 / len(values))


if __name__ == "__main__":
    main()
