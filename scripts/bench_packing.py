#!/usr/bin/env python3
"""What packing the lanes and skipping both operands would buy (issue 11, items 1 and 2): a
design study on the cycle model's masks, made before building either.

Every scheme runs the same lowered passes (each scheme in the orientation it is fastest in) on
the evaluation's multipliers (``tiles x lanes``, vec, selection window); achieved/ideal is the
nonzero MACs over the multiplier slots the scheme occupies (the ideal's definition,
``maskprop.base.metrics``; the dense baseline is the same for all), so 1.0 wastes no slot.

- ``today``: the tile array as built (``maskprop.sim.cycle_model.array_cycles``, exact against
  the RTL): one decoder shared by the tiles skips the zeros of ``X`` chunk by chunk, the tiles
  of a column group in lockstep.
- ``row``: the same shared decoder and lockstep tiles, but each selection segment's lanes walk
  that segment's nonzeros across all the row's chunks, so a column group costs
  ``max(1, max_s ceil(N_s / segment_lanes))`` for the row's ``N_s`` nonzeros in segment ``s``
  (``ceil(N / lanes)`` with the full crossbar); chunks without a nonzero and rows with no
  wanted column cost nothing; loading the row is assumed hidden behind the previous row's
  work. ``rotated``: chunk ``k`` is rotated by ``k`` positions (on both operands, so the
  products do not change) before it is dealt into segments, which spreads a channel over the
  lanes instead of tying it to one.
- ``output``: every tile its own decoder on the AND of its ``X`` row's and ``Y`` column's masks
  (an inner join, as SparTen does: both operands skipped), packing across the whole reduction:
  an output with ``P_s`` products in segment ``s`` costs ``max(1, max_s ceil(P_s /
  segment_lanes))``. The wanted outputs go to the tiles round-robin, the deal going on across
  rows and starting one tile further each row; ``barrier B``: the tiles wait for each other
  every ``B`` rows (the pass costs the busiest tile's sum in each batch of rows); ``dealt``:
  never (the busiest tile's sum over the pass); ``queue bound``: the sum over all tiles
  divided by ``tiles`` (any dispatch is at least that). ``a chunk a cycle``: the tile reads
  one chunk pair a cycle (of the row's chunks with a nonzero ``X``), so an output costs at
  least that many cycles however few products it has. ``lanes decoupled``: each segment's
  lanes go on to the tile's next output without waiting for the other segments (a partial
  sum per lane, added up per output afterwards), so a tile costs its busiest segment's
  products summed over its outputs rather than the sum of each output's busiest segment.

Schemes other than ``today`` assume their operands arrive in time (no stall for the row or the
``Y`` column), so they bound what the scheme can reach; the cost in area is not counted here.

Default: the digits CNN on its real masks and ResNet-18 on its literature profile, batch 1, both
BatchNorm scenarios. ``--json FILE`` also writes the table (``scripts/make_docs.py --only
packing`` puts it into docs/results.md).

    .venv/bin/python scripts/bench_packing.py [--network NAME ...] [--select-window N]
        [--json FILE]
"""

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.progress import track

from maskprop.base.config import EVALUATION
from maskprop.evaluation.evaluate import SCENARIOS, network_lowerings, published_inputs
from maskprop.base.metrics import nonzero_products
from maskprop.sim.cycle_model import (IssuedChunks, array_cycles, chunk_counts,
                                      dealt_outputs, decoupled_tile_cycles, mode_estimates,
                                      segment_elements, wanted_outputs, wanted_per_block)
from maskprop.sim.layer import PASSES

# scripts/bench_output.py
from bench_output import add_network_option, machine, network_names, write_json

#: Every scheme measured, in the table's order (the module's docstring says what each is).
SCHEMES = ("today", "row, window", "row, rotated", "row, crossbar",
           "output, rotated, barrier 1", "output, rotated, barrier 8", "output, rotated, dealt",
           "output, rotated, queue bound", "output, rotated, dealt, a chunk a cycle",
           "output, window, lanes decoupled", "output, rotated, lanes decoupled",
           "output, crossbar, barrier 1",
           "output, crossbar, dealt", "output, crossbar, queue bound")
BARRIERS = (1, 8)


def _packed(counts, per_lane: int):
    """Beats of ``counts`` (the nonzeros of each segment, stacked on axis 0) packed onto
    ``per_lane`` lanes per segment: the busiest segment's, at least one."""
    return np.maximum(1, (-(-counts // per_lane)).max(axis=0))


def scheme_cycles(gemm, config) -> dict:
    """Sparse-mode cycles of ``gemm`` under each scheme of :data:`SCHEMES`."""
    selection, tiles, lanes = config.selection, config.tiles, config.lanes
    wanted = wanted_outputs(gemm, dense=False)
    x = np.asarray(gemm.X != 0)
    y = np.asarray(gemm.Y != 0)
    cycles = {"today": array_cycles(IssuedChunks.of(gemm, config, dense=False), wanted,
                                    config)}
    # Row schemes: groups of the row's wanted columns (none for a row with none wanted).
    groups = (-(-wanted_per_block(wanted, config.col_block) // tiles)).sum(axis=-1)
    for rotate in (False, True):
        name = "rotated" if rotate else "window"
        x_segments = segment_elements(x, config.vec, selection.segments, rotate=rotate)
        per_segment = np.stack([s.sum(axis=-1) for s in x_segments])
        cycles[f"row, {name}"] = int((groups * _packed(per_segment, selection.segment_lanes))
                                     .sum())
        # Output schemes: the products of each output, per segment.
        y_segments = [s.T for s in segment_elements(y.T, config.vec, selection.segments,
                                                     rotate=rotate)]
        products = np.stack([xs.astype(np.float32) @ ys.astype(np.float32)
                             for xs, ys in zip(x_segments, y_segments)]).astype(np.int64)
        cost = _packed(products, selection.segment_lanes)
        cycles.update(_output_schemes(cost, wanted, tiles, f"output, {name}"))
        cycles[f"output, {name}, lanes decoupled"] = decoupled_tile_cycles(
            -(-products // selection.segment_lanes), wanted, tiles)
    # A tile that reads one chunk pair a cycle (the row's chunks with a nonzero X).
    chunks = (chunk_counts(x, config.vec) > 0).sum(axis=-1)
    walked = _output_schemes(np.maximum(cost, chunks[:, None]), wanted, tiles, "walk")
    cycles["output, rotated, dealt, a chunk a cycle"] = walked["walk, dealt"]
    cycles["row, crossbar"] = int((groups * _packed(per_segment.sum(axis=0)[None], lanes))
                                  .sum())
    cycles.update(_output_schemes(_packed(products.sum(axis=0)[None], lanes), wanted, tiles,
                                  "output, crossbar"))
    return {scheme: cycles[scheme] for scheme in SCHEMES}


def _output_schemes(cost, wanted, tiles: int, name: str) -> dict:
    """Cycles of the wanted outputs, each costing ``cost (M, J)``, on ``tiles`` tiles under
    each dispatch of the output schemes (the module's docstring)."""
    rows = wanted.shape[0]
    m, j, tile = dealt_outputs(wanted, tiles)
    cost = cost[m, j]
    out = {f"{name}, queue bound": -(-int(cost.sum()) // tiles)}
    per_tile = np.zeros(tiles, dtype=np.int64)
    np.add.at(per_tile, tile, cost)
    out[f"{name}, dealt"] = int(per_tile.max())
    for batch in BARRIERS:
        per_batch = np.zeros((-(-rows // batch), tiles), dtype=np.int64)
        np.add.at(per_batch, (m // batch, tile), cost)
        out[f"{name}, barrier {batch}"] = int(per_batch.max(axis=1).sum())
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_network_option(parser, ["digits", "resnet18"])
    parser.add_argument("--select-window", type=int, default=None, metavar="N",
                        help="the selection window (default: the evaluation's, "
                             f"{EVALUATION.select_window})")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = network_names(parser, args)
    try:
        config = (EVALUATION if args.select_window is None
                  else replace(EVALUATION, select_window=args.select_window))
    except ValueError as error:
        parser.error(str(error))
    multipliers = config.tiles * config.lanes
    rows = []
    for name in names:
        net, source = published_inputs(name)
        for scenario in SCENARIOS:
            sums = {p: {"dense": 0, "macs": 0, **{s: 0 for s in SCHEMES}} for p in PASSES}
            passes = network_lowerings(net, source, scenario, config)
            for layer, pass_name, gemms in track(passes, description=f"{net.name}, {scenario}"):
                dense, sparse = mode_estimates(gemms, config)
                each = [scheme_cycles(gemm, config) for gemm in gemms]
                total = sums[pass_name]
                total["dense"] += dense.cycles
                total["macs"] += nonzero_products(sparse.gemm.X != 0, sparse.gemm.Y != 0,
                                                  wanted_outputs(sparse.gemm, dense=False))
                for scheme in SCHEMES:           # each scheme in its faster orientation
                    total[scheme] += min(cycles[scheme] for cycles in each)
            for pass_name, total in sums.items():
                rows.append({"network": net.name, "scenario": scenario, "pass": pass_name,
                             **total})
            step = {key: sum(total[key] for total in sums.values())
                    for key in ("dense", "macs", *SCHEMES)}
            rows.append({"network": net.name, "scenario": scenario, "pass": "training step",
                         **step})
    for row in rows:
        shares = ", ".join(f"{scheme} {row['macs'] / (row[scheme] * multipliers):.2f}"
                           for scheme in SCHEMES)
        print(f"{row['network']} {row['scenario']} {row['pass']}: achieved/ideal {shares}")
    if args.json:
        write_json(args.json, {"config": {"vec": config.vec, "lanes": config.lanes,
                                          "tiles": config.tiles, "col_block": config.col_block,
                                          "select_window": config.select_window},
                               "schemes": list(SCHEMES), "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
