#!/usr/bin/env python3
"""The comparison at equal FPGA (issue 11, item 6): on one part, the largest zero-skipping tile
array, the largest dense-only tile array and the largest join array that place and route,
found by the real flow, and each one's training-step time on the networks (cycles from the
cycle model / its own Fmax).

For each design the script grows ``tiles`` from 1 by doubling, then bisects between the last
size that placed and routed and the first that did not (the flow refuses a design the part
cannot hold before nextpnr, and a failed placement or routing counts as not fitting);
everything else is the part's preset (``FPGA_ICE40`` on the iCE40 UP5K, ``FPGA_SMALL`` on
ECP5), ``col_block`` widened to at least ``tiles``:

- ``sparse``: ``TileArray(config)``, in sparse mode;
- ``dense-only``: ``TileArray(config, zero_skipping=False)``, the sparsity-agnostic baseline;
- ``join``: ``JoinArray`` with the preset's operands, its lanes one per selection segment
  (the same multipliers per tile), its banks as large as the tile array's buffers
  (``max_chunks`` chunks, ``max_cols`` columns), and the target's look-ahead, queue and ring
  (:data:`JOIN`).

Each design's training step is summed over every layer's three passes (the first layer has no
backward-data) in both BatchNorm scenarios, each pass in its fastest lowering, with the buffers
of network evaluation (``Config.for_evaluation``). The join array's cycles are its exact
schedule on the digits CNN (``cycle_model.join_array_cycles``) and, on the ImageNet networks,
where that Python loop over outputs would take hours, the bound of unbounded queues
(``cycle_model.decoupled_tile_cycles``); the table says which. Compute only: the arrays have no
memory port (the core's data movement is not counted here).

Multipliers map to DSP blocks only (Yosys' default for both parts), so a design with more
multipliers than the part's DSP blocks does not fit; a dense design that builds extra
multipliers from LUTs is not explored.

    .venv/bin/python scripts/iso_resource.py --target ice40 [--device D] [--network N ...]
        [--design NAME ...] [--max-tiles N] [--out DIR] [--json FILE] [--plot FILE.png]
"""

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

from rich.progress import track

from maskprop.base.config import FPGA_ICE40, FPGA_SMALL, JoinSettings
from maskprop.evaluation.evaluate import SCENARIOS, network_lowerings, published_inputs
from maskprop.flow.fpga import FlowError, resolve_device, run_flow
from maskprop.hw.join_array import JoinArray
from maskprop.hw.tile_array import TileArray
from maskprop.sim.cycle_model import fastest, join_pass_cycles
from maskprop.workloads.networks import NETWORK_NAMES

# scripts/bench_output.py
from bench_output import add_network_option, machine, network_names, write_json

PRESETS = {"ice40": FPGA_ICE40, "ecp5": FPGA_SMALL}
DEFAULT_DEVICES = {"ice40": "iCE40UP5K", "ecp5": "LFE5U-85F"}
DESIGNS = ("sparse", "dense-only", "join")
#: The join array's look-ahead (chunks a mask word), queue and ring on each target. On the
#: UP5K the smallest: the iCE40 has no LUT RAM, so the tiles' queues and the small banks are
#: flip-flops: two tiles of look-ahead 2 need 5,318 of the 5,280 logic cells at queue 4 and
#: did not place at queue 2 (4,674 cells, nextpnr found no legal placement after 11 minutes).
#: With the dealer's stages, the collector's skid buffers and the lanes' mask registers, two
#: tiles of look-ahead 1, queue 2 and a ring of 2 rows did not place either (4,753 cells);
#: queue 2 with a ring of 1 does, and queue 1 with a ring of 2, but the digits CNN's exact
#: step takes 280,087 cycles with the first and 323,142 with the second (BatchNorm). On ECP5
#: bench_join's.
JOIN = {"ice40": JoinSettings(group=1, queue=2, ring=1), "ecp5": JoinSettings()}
#: The networks small enough for the join array's exact schedule.
EXACT = ("digits",)


def sized(base, tiles: int):
    """``base`` with ``tiles`` tiles (its column block widened to hold them)."""
    return replace(base, tiles=tiles, col_block=max(base.col_block, tiles))


def build(design: str, config, join: JoinSettings):
    """The design's component and its module name; ``join`` the join array's look-ahead,
    queue and ring."""
    if design == "join":
        return JoinArray.from_config(config, **asdict(join)), "join_array"
    if design == "sparse":
        return TileArray(config), "tile_array"
    return TileArray(config, zero_skipping=False), "dense_tile_array"


def try_flow(config, design: str, target: str, device: str, workdir: Path):
    """The flow's report of the design, or None if it does not place and route on the part."""
    component, name = build(design, config, JOIN[target])
    try:
        return run_flow(component, name, target, workdir, device=device)
    except FlowError as error:
        print(f"  does not fit: {str(error).splitlines()[0]}")
        return None


def largest(base, design: str, target: str, device: str, out: Path, max_tiles: int):
    """``(tiles, report, tried)``: the most tiles that place and route (doubling, then
    bisection), its flow report, and every size tried with whether it fitted."""
    tried = {}

    def fits(tiles):
        if tiles not in tried:
            print(f"{design}: {tiles} tiles")
            workdir = out / design / f"tiles{tiles}"
            tried[tiles] = try_flow(sized(base, tiles), design, target, device, workdir)
        return tried[tiles] is not None

    if not fits(1):
        raise SystemExit(f"not even one tile of the {design} design fits the {device}")
    low, high = 1, None
    while high is None and low < max_tiles:
        candidate = min(2 * low, max_tiles)
        if fits(candidate):
            low = candidate
        else:
            high = candidate
    while high is not None and high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low, tried[low], {tiles: report is not None for tiles, report in sorted(tried.items())}


def step_cycles(config, design: str, net, source, scenario: str, target: str = "ice40", *,
                exact: bool = False) -> int:
    """Cycles of one training step of ``net`` (every layer's passes, each in its fastest
    lowering) on the design of ``config`` (evaluation buffers): the tile array's exact cycle
    model (the zero-skipping one in sparse mode, the dense-only one in its only mode); the
    join array's exact schedule with ``exact``, else its bound (the module's docstring)."""
    config = config.for_evaluation()
    total = 0
    for _, _, gemms in network_lowerings(net, source, scenario, config):
        if design == "join":
            # Exact on the networks small enough, the bound of unbounded queues on the others.
            total += join_pass_cycles(gemms, config, JOIN[target],
                                      exact_outputs=None if exact else 0)[0]
        else:
            total += fastest(gemms, config, dense=design == "dense-only",
                             zero_skipping=design == "sparse").cycles
    return total


def plot(payload: dict, path: Path) -> None:
    """Speedup at equal part per network and scenario, a bar per design against the dense-only
    one (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, parts = payload["rows"], payload["designs"]
    labels = [f"{r['network']}\n{r['scenario']}" for r in rows]
    compared = [d for d in ("sparse", "join") if d in parts]
    width = 0.8 / len(compared)
    figure, axis = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4))
    for k, design in enumerate(compared):
        key = "speedup" if design == "sparse" else f"{design}_speedup"
        axis.bar([i + (k - (len(compared) - 1) / 2) * width for i in range(len(rows))],
                 [r[key] for r in rows], width,
                 label=f"{design}, {parts[design]['tiles']} tiles")
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_xticks(range(len(rows)), labels, fontsize=7)
    axis.set_ylabel("training step, dense-only time / design's time")
    axis.set_title(f"{payload['device']}: against dense-only, {parts['dense-only']['tiles']} "
                   f"tiles, each at its own Fmax", fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, choices=sorted(PRESETS))
    parser.add_argument("--device", default=None,
                        help="the part (default: iCE40UP5K on ice40, LFE5U-85F on ecp5)")
    add_network_option(parser, ["digits", *NETWORK_NAMES])
    parser.add_argument("--design", action="append", choices=DESIGNS, default=None,
                        help="a design to compare with dense-only (repeatable; default: "
                             "sparse and join)")
    parser.add_argument("--max-tiles", type=int, default=64, help="largest size tried (64)")
    parser.add_argument("--out", type=Path, default=Path("out/iso-resource"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    names = network_names(parser, args)
    if not 1 <= args.max_tiles <= 64:
        parser.error(f"--max-tiles must be in [1, 64], not {args.max_tiles}")
    try:
        device = resolve_device(args.target, args.device or DEFAULT_DEVICES[args.target])
    except ValueError as error:
        parser.error(f"--device: {error}")
    base = PRESETS[args.target]
    chosen = ["dense-only", *dict.fromkeys(d for d in (args.design or ["sparse", "join"])
                                           if d != "dense-only")]
    started = time.monotonic()
    designs = {}
    for design in chosen:
        tiles, report, tried = largest(base, design, args.target, device,
                                       args.out / args.target, args.max_tiles)
        designs[design] = {"tiles": tiles, "config": asdict(sized(base, tiles)),
                           "tried": {str(t): ok for t, ok in tried.items()},
                           "report": report.as_dict()}
        if design == "join":
            designs[design]["join"] = asdict(JOIN[args.target])
    flow_seconds = time.monotonic() - started
    rows = []
    for name in names:
        net, source = published_inputs(name)
        for scenario in track(SCENARIOS, description=net.name):
            row = {"network": net.name, "scenario": scenario, "join_exact": name in EXACT}
            for design in chosen:
                config = sized(base, designs[design]["tiles"])
                cycles = step_cycles(config, design, net, source, scenario, args.target,
                                     exact=name in EXACT)
                fmax = designs[design]["report"]["fmax_mhz"]
                row[f"{design}_cycles"] = cycles
                row[f"{design}_us"] = cycles / fmax
            for design in chosen[1:]:
                key = "speedup" if design == "sparse" else f"{design}_speedup"
                row[key] = row["dense-only_us"] / row[f"{design}_us"]
            rows.append(row)
            print(f"{net.name} {scenario}: " + ", ".join(
                f"{d} {row[f'{d}_us']:,.0f} us" for d in chosen))
    payload = {"target": args.target, "device": device, "designs": designs, "rows": rows,
               "flow_seconds": flow_seconds, "machine": machine()}
    for design, entry in designs.items():
        report = entry["report"]
        print(f"{design}: {entry['tiles']} tiles, {report['luts']} LUT4, {report['dsps']} DSP, "
              f"{report['brams']} BRAM, {report['fmax_mhz']:.1f} MHz (tried {entry['tried']})")
    if args.json:
        write_json(args.json, payload)
    if args.plot:
        plot(payload, args.plot)


if __name__ == "__main__":
    main()
