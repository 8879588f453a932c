#!/usr/bin/env python3
"""The comparison at equal FPGA (issue 11, item 6): on one part, the largest zero-skipping tile
array and the largest dense-only tile array that place and route, found by the real flow, and
each one's training-step time on the networks (cycles from the cycle model / its own Fmax).

For each design (``TileArray(config, zero_skipping=True|False)``) the script grows ``tiles``
from 1 by doubling, then bisects between the last size that placed and routed and the first
that did not (the flow refuses a design the part cannot hold before nextpnr, and a failed
placement or routing counts as not fitting); everything else is the part's preset
(``FPGA_ICE40`` on the iCE40 UP5K, ``FPGA_SMALL`` on ECP5), ``col_block`` widened to at least
``tiles``. Each design's training step is summed over every layer's three passes (the first
layer has no backward-data) in both BatchNorm scenarios, each pass in its fastest lowering,
with the buffers of network evaluation (``Config.for_evaluation``): the zero-skipping array in
sparse mode, the dense-only one in its only mode. Compute only: the tile array has no memory
port (the core's data movement is not counted here).

Multipliers map to DSP blocks only (Yosys' default for both parts), so a design with more
multipliers than the part's DSP blocks does not fit; a dense design that builds extra
multipliers from LUTs is not explored.

    .venv/bin/python scripts/iso_resource.py --target ice40 [--device D] [--network N ...]
        [--max-tiles N] [--out DIR] [--json FILE] [--plot FILE.png]
"""

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

from rich.progress import track

from maskprop.base.config import FPGA_ICE40, FPGA_SMALL
from maskprop.evaluation.evaluate import SCENARIOS, network_lowerings, published_inputs
from maskprop.flow.fpga import FlowError, resolve_device, run_flow
from maskprop.hw.tile_array import TileArray
from maskprop.sim.cycle_model import fastest
from maskprop.workloads.networks import NETWORK_NAMES

# scripts/bench_output.py
from bench_output import add_network_option, machine, network_names, write_json

PRESETS = {"ice40": FPGA_ICE40, "ecp5": FPGA_SMALL}
DEFAULT_DEVICES = {"ice40": "iCE40UP5K", "ecp5": "LFE5U-85F"}
DESIGNS = {"sparse": True, "dense-only": False}     # name -> zero_skipping


def sized(base, tiles: int):
    """``base`` with ``tiles`` tiles (its column block widened to hold them)."""
    return replace(base, tiles=tiles, col_block=max(base.col_block, tiles))


def try_flow(config, zero_skipping: bool, target: str, device: str, workdir: Path):
    """The flow's report of the array, or None if it does not place and route on the part."""
    name = "tile_array" if zero_skipping else "dense_tile_array"
    try:
        return run_flow(TileArray(config, zero_skipping=zero_skipping), name, target, workdir,
                        device=device)
    except FlowError as error:
        print(f"  does not fit: {str(error).splitlines()[0]}")
        return None


def largest(base, zero_skipping: bool, target: str, device: str, out: Path, max_tiles: int):
    """``(tiles, report, tried)``: the most tiles that place and route (doubling, then
    bisection), its flow report, and every size tried with whether it fitted."""
    tried = {}

    def fits(tiles):
        if tiles not in tried:
            print(f"{'sparse' if zero_skipping else 'dense-only'}: {tiles} tiles")
            workdir = out / ("sparse" if zero_skipping else "dense-only") / f"tiles{tiles}"
            tried[tiles] = try_flow(sized(base, tiles), zero_skipping, target, device, workdir)
        return tried[tiles] is not None

    if not fits(1):
        raise SystemExit(f"not even one tile of {'sparse' if zero_skipping else 'dense-only'} "
                         f"array fits the {device}")
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


def step_cycles(config, zero_skipping: bool, net, source, scenario: str) -> int:
    """Cycles of one training step of ``net`` (every layer's passes, each in its fastest
    lowering) on the tile array of ``config`` (evaluation buffers)."""
    config = config.for_evaluation()
    total = 0
    for _, _, gemms in network_lowerings(net, source, scenario, config):
        # The zero-skipping array in sparse mode; the dense-only one in its only mode.
        total += fastest(gemms, config, dense=not zero_skipping,
                         zero_skipping=zero_skipping).cycles
    return total


def plot(payload: dict, path: Path) -> None:
    """Speedup at equal part per network and scenario, one bar each (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["rows"]
    labels = [f"{r['network']}\n{r['scenario']}" for r in rows]
    figure, axis = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4))
    axis.bar(range(len(rows)), [r["speedup"] for r in rows], color="tab:blue")
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_xticks(range(len(rows)), labels, fontsize=7)
    axis.set_ylabel("training step, dense-only time / sparse time")
    parts = payload["designs"]
    axis.set_title(f"{payload['device']}: sparse {parts['sparse']['tiles']} tiles vs dense-only "
                   f"{parts['dense-only']['tiles']} tiles, each at its own Fmax", fontsize=9)
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
    started = time.monotonic()
    designs = {}
    for design, zero_skipping in DESIGNS.items():
        tiles, report, tried = largest(base, zero_skipping, args.target, device,
                                       args.out / args.target, args.max_tiles)
        designs[design] = {"tiles": tiles, "config": asdict(sized(base, tiles)),
                           "tried": {str(t): ok for t, ok in tried.items()},
                           "report": report.as_dict()}
    flow_seconds = time.monotonic() - started
    rows = []
    for name in names:
        net, source = published_inputs(name)
        for scenario in track(SCENARIOS, description=net.name):
            row = {"network": net.name, "scenario": scenario}
            for design, zero_skipping in DESIGNS.items():
                config = sized(base, designs[design]["tiles"])
                cycles = step_cycles(config, zero_skipping, net, source, scenario)
                fmax = designs[design]["report"]["fmax_mhz"]
                row[f"{design}_cycles"] = cycles
                row[f"{design}_us"] = cycles / fmax
            row["speedup"] = row["dense-only_us"] / row["sparse_us"]
            rows.append(row)
            print(f"{net.name} {scenario}: sparse {row['sparse_us']:,.0f} us, dense-only "
                  f"{row['dense-only_us']:,.0f} us, speedup {row['speedup']:.2f}x")
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
