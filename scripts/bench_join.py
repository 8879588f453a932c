#!/usr/bin/env python3
"""The join array's built blocks against today's tile array (issue 11): what a lane and a
tile cost on ECP5 and what they reach on the same masks, for each mask-word look-ahead.

A join lane (``hw/join_lane.py``) sees its segment of ``group`` chunks at once: a word with
``n`` products costs ``max(1, n)`` cycles, so a larger group skips more empty chunks for free
and costs a wider find-first-set. For each group this measures:

- the lane's and a tile's ECP5 LUT4s at the default configuration's operands and buffers
  (Yosys; the lane synthesis only, the tile placed and routed in the flow's harness, with its
  Fmax and critical path; a tile is ``lanes`` lanes, their queues and the join);
- once, at look-ahead :data:`BOUNDS_GROUP`, the whole join array (banks, ring, dealer,
  collector) and today's tile array of the same configuration (``FPGA_SMALL``, the one of
  docs/fpga.md), both placed and routed on the LFE5U-85F in the same run (the join array's
  80 block RAMs do not fit the 25F's 56: each bank has a read port per tile), each with the
  nextpnr router that routes it (:data:`ARRAY_ROUTERS`);
- achieved/ideal (nonzero MACs over the multiplier slots used, ``maskprop.base.metrics``) over
  the training step and in its worst pass, each pass in the orientation it is fastest in:
  ``today`` is the tile array as built (``cycle_model.array_cycles``, exact against its RTL);
  ``join`` the join array with unbounded lane queues (``cycle_model.decoupled_tile_cycles``, a
  bound), and on the digits CNN also exact with the tiles' queue and the ring of rows
  (``cycle_model.join_array_cycles``: the whole JoinArray's schedule, exact against its RTL:
  ``X`` streamed in a chunk a cycle, the dealer, every tile's recurrence, the collector); and,
  as bounds, two lanes that are not built:
  ``empty words free`` (the word fetch drops empty words: an output costs the larger of its
  products and its words) and ``products only`` (an output costs its products, at least one
  cycle), to say what the floor of a cycle per word costs.

Default: the digits CNN on its real masks and ResNet-18 on its literature profile, both
BatchNorm scenarios, the evaluation's multipliers (vec 16, 4 lanes, 4 tiles, window 4).

    .venv/bin/python scripts/bench_join.py [--network NAME ...] [--group G ...] [--queue Q]
        [--ring R] [--out DIR] [--json FILE]
"""

import argparse
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from amaranth import unsigned
from rich.progress import track

from maskprop.base.config import (EVALUATION, FPGA_SMALL, Config, JoinSettings,
                                  check_join_lanes, check_range)
from maskprop.base.metrics import nonzero_products
from maskprop.evaluation.evaluate import SCENARIOS, network_lowerings, published_inputs
from maskprop.flow.fpga import run_flow
from maskprop.hw.join_lane import JoinLane, JoinLaneParameters
from maskprop.hw.join_tile import JoinTile
from maskprop.sim.cycle_model import (IssuedChunks, array_cycles, decoupled_tile_cycles,
                                      join_array_cycles, join_word_costs, mode_estimates,
                                      wanted_outputs)
from maskprop.sim.layer import PASSES

# scripts/bench_output.py, scripts/iso_resource.py
from bench_output import add_network_option, machine, network_names, write_json
from iso_resource import build

GROUPS = (1, 2, 4, 8)
#: The look-ahead of the two lanes that are not built (:func:`floor_bounds`) and of the whole
#: join array (:func:`measure_arrays`).
BOUNDS_GROUP = 4
FLOOR_BOUNDS = (f"join g{BOUNDS_GROUP}, empty words free", f"join g{BOUNDS_GROUP}, products only")
#: Where the whole arrays are placed and routed (:func:`measure_arrays`), and with which of
#: nextpnr's routers: router1 left the join array with 100-500 overused wires after 21 minutes,
#: router2 routes it in about 6; router2 did not converge on today's array in 7 minutes
#: (2,000-2,600 overused wires from its 10th to 25th iteration), router1 routes it in 4.
ARRAY_DEVICE = "LFE5U-85F"
ARRAY_ROUTERS = {"today": "router1", "join": "router2"}
#: The digits CNN is small enough for the exact schedule (a Python loop over outputs).
EXACT = ("digits",)


def lane_parameters(config, group: int) -> JoinLaneParameters:
    """A lane of ``config``'s array: its operands, accumulator and banks (``max_chunks``
    chunks of ``max_cols`` columns of ``Y``)."""
    words = -(-config.max_chunks // group)
    return JoinLaneParameters(window=config.window, group=group, data_width=config.data_width,
                              acc_width=config.acc_width,
                              word_addr_width=max(1, (words * config.max_cols - 1).bit_length()),
                              max_words=words)


def measure_area(config, groups, queue: int, out: Path) -> dict:
    """Per look-ahead: the lane's LUT4s (synthesis only) and the tile's LUT4s and Fmax (placed
    and routed in the flow's harness) with its critical path."""
    area = {}
    for group in track(groups, description="synthesis, place and route"):
        parameters = asdict(lane_parameters(config, group))
        lane = run_flow(JoinLane(**parameters), f"join_lane_g{group}", "ecp5",
                        out / f"join_lane_g{group}", place_and_route=False)
        tile = run_flow(JoinTile(lanes=config.selection.segments, queue=queue,
                                 tag=unsigned(16), **parameters),
                        f"join_tile_g{group}", "ecp5", out / f"join_tile_g{group}")
        area[group] = {"lane_luts": lane.luts, "tile_luts": tile.luts,
                       "tile_fmax_mhz": tile.fmax_mhz, "tile_dsps": tile.dsps,
                       "tile_critical_path": tile.critical_path}
    return area


def measure_arrays(config, group: int, queue: int, ring: int, out: Path) -> dict:
    """Today's tile array and the join array of the same ``config`` (tiles, lanes a segment,
    operand and buffer sizes; the join array's look-ahead ``group``, ``queue`` and ``ring``),
    each placed and routed in the flow's harness on :data:`ARRAY_DEVICE`, banks, dealer and
    collector included: ``{"config": ..., design: report}``."""
    join = JoinSettings(group=group, queue=queue, ring=ring)
    arrays = {"today": build("sparse", config, join), "join": build("join", config, join)}
    reports = {"config": {"tiles": config.tiles, "lanes": config.lanes,
                          "max_chunks": config.max_chunks, "max_cols": config.max_cols,
                          "group": group}}
    for design, (component, name) in track(arrays.items(), description="the whole arrays"):
        report = run_flow(component, name, "ecp5", out / name, device=ARRAY_DEVICE,
                          router=ARRAY_ROUTERS[design])
        reports[design] = {key: getattr(report, key)
                           for key in ("device", "luts", "ffs", "dsps", "brams", "lutrams",
                                       "fmax_mhz", "critical_path", "router", "wall_seconds")}
    return reports


def floor_bounds(gemm, config, wanted) -> dict:
    """Two lanes that are not built, as bounds at look-ahead :data:`BOUNDS_GROUP`: one whose
    word fetch drops empty words (an output costs the larger of its products and its words,
    at least a cycle) and one that costs only its products (at least a cycle an output)."""
    products = join_word_costs(gemm, config, BOUNDS_GROUP, floor=False)
    words = -(-gemm.X.shape[1] // (config.vec * BOUNDS_GROUP))
    return {FLOOR_BOUNDS[0]: decoupled_tile_cycles(np.maximum(products, max(1, words)),
                                                   wanted, config.tiles),
            FLOOR_BOUNDS[1]: decoupled_tile_cycles(np.maximum(products, 1), wanted,
                                                   config.tiles)}


def measure_cycles(names, config, groups, queue: int, ring: int) -> list:
    rows = []
    schemes = ["today", *(f"join g{g}" for g in groups),
               *(FLOOR_BOUNDS if BOUNDS_GROUP in groups else ())]
    for name in names:
        net, source = published_inputs(name)
        exact = name in EXACT
        columns = schemes + ([f"join g{g} exact" for g in groups] if exact else [])
        for scenario in SCENARIOS:
            sums = {p: {"macs": 0, **{c: 0 for c in columns}} for p in PASSES}
            passes = network_lowerings(net, source, scenario, config)
            for layer, pass_name, gemms in track(passes, description=f"{net.name}, {scenario}"):
                _, sparse = mode_estimates(gemms, config)
                total = sums[pass_name]
                total["macs"] += int(nonzero_products(sparse.gemm.X != 0, sparse.gemm.Y != 0,
                                                      wanted_outputs(sparse.gemm, dense=False)))
                each = []
                for gemm in gemms:
                    wanted = wanted_outputs(gemm, dense=False)
                    cycles = {"today": array_cycles(IssuedChunks.of(gemm, config, dense=False),
                                                    wanted, config)}
                    for group in groups:
                        cycles[f"join g{group}"] = decoupled_tile_cycles(
                            join_word_costs(gemm, config, group), wanted, config.tiles)
                        if exact:
                            cycles[f"join g{group} exact"] = join_array_cycles(
                                gemm, config, group=group, queue=queue, ring=ring)
                    if BOUNDS_GROUP in groups:
                        cycles.update(floor_bounds(gemm, config, wanted))
                    each.append(cycles)
                for column in columns:             # each scheme in its faster orientation
                    total[column] += int(min(cycles[column] for cycles in each))
            for pass_name, total in sums.items():
                rows.append({"network": net.name, "scenario": scenario, "pass": pass_name,
                             **total})
            rows.append({"network": net.name, "scenario": scenario, "pass": "training step",
                         "macs": sum(t["macs"] for t in sums.values()),
                         **{c: sum(t[c] for t in sums.values()) for c in columns}})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_network_option(parser, ["digits", "resnet18"])
    parser.add_argument("--group", type=int, action="append", default=None,
                        help=f"mask-word look-ahead in chunks (repeatable; default "
                             f"{', '.join(map(str, GROUPS))})")
    parser.add_argument("--queue", type=int, default=JoinSettings.queue,
                        help=f"outputs a tile holds (the exact schedule's queue; default "
                             f"{JoinSettings.queue})")
    parser.add_argument("--ring", type=int, default=JoinSettings.ring,
                        help=f"X rows the array holds (the exact schedule's ring; default "
                             f"{JoinSettings.ring})")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the synthesis runs go (default: a temporary directory)")
    parser.add_argument("--no-area", action="store_true", help="skip the synthesis")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = network_names(parser, args)
    config, built = EVALUATION, Config()        # the cycles' multipliers, the RTL's buffers
    groups = args.group or list(GROUPS)
    try:
        check_join_lanes(config)
        for group in groups:
            lane_parameters(built, group)
        check_range("queue", args.queue, 1, 64)
        check_range("ring", args.ring, 1, 16)
    except ValueError as error:
        parser.error(str(error))
    area, arrays = {}, {}
    if not args.no_area:
        with tempfile.TemporaryDirectory(prefix="bench-join-", dir=Path.cwd()) as scratch:
            out = args.out or Path(scratch)
            area = measure_area(built, groups, args.queue, out)
            arrays = measure_arrays(FPGA_SMALL, BOUNDS_GROUP, args.queue, args.ring, out)
    rows = measure_cycles(names, config, groups, args.queue, args.ring)
    multipliers = config.tiles * config.lanes
    for group, entry in area.items():
        print(f"group {group}: lane {entry['lane_luts']:,} LUT4, tile "
              f"{entry['tile_luts']:,} LUT4 at {entry['tile_fmax_mhz']:.1f} MHz "
              f"({built.selection.segments} lanes, queue {args.queue})")
    for design, report in arrays.items():
        if design != "config":
            print(f"{design} array: {report['luts']:,} LUT4, {report['dsps']} DSP, "
                  f"{report['brams']} block RAM at {report['fmax_mhz']:.1f} MHz")
    for row in rows:
        shares = ", ".join(f"{key} {row['macs'] / (row[key] * multipliers):.2f}"
                           for key in row if key not in ("network", "scenario", "pass", "macs")
                           and row[key])
        print(f"{row['network']} {row['scenario']} {row['pass']}: achieved/ideal {shares}")
    if args.json:
        write_json(args.json, {"config": {"vec": config.vec, "lanes": config.lanes,
                                          "tiles": config.tiles,
                                          "select_window": config.select_window,
                                          "data_width": config.data_width,
                                          "acc_width": config.acc_width,
                                          "max_chunks": config.max_chunks,
                                          "max_cols": config.max_cols},
                               "groups": groups, "queue": args.queue, "ring": args.ring,
                               "area": {str(g): a for g, a in area.items()},
                               "arrays": arrays,
                               "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
