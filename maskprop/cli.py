"""The ``maskprop`` command line.

    maskprop generate tree|decoder|pe|engine [options] -o FILE.v    write a block's Verilog
    maskprop demo                                   the main job on its built-in default
    maskprop sim --layer SPEC --pass P --density D  one layer's pass on the tile array
    maskprop eval [--network NAME] [--profile SPEC] whole networks from the cycle model
    maskprop profile --model FILE.py --batch FILE.npz -o PROFILE.json     measure densities
    maskprop flow BLOCK --target ecp5|ice40         synthesize, place and route; area and Fmax

Bad arguments or a configuration the generator refuses print one line and exit with status 2.
"""

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from maskprop.config import Config
from maskprop.toolchain import SIMULATORS, ToolchainError

__all__ = ["main"]

BLOCKS = ("tree", "decoder", "pe", "engine", "array")


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


BUFFER_FIELDS = ("col_block", "max_chunks", "max_cols")


def _add_config_options(parser, *, buffers=True):
    group = parser.add_argument_group("hardware configuration (defaults: maskprop.config.Config)")
    for f in fields(Config):
        if not buffers and f.name in BUFFER_FIELDS[1:]:
            continue
        group.add_argument(f"--{f.name.replace('_', '-')}", type=int, dest=f.name,
                           default=f.default, metavar="N", help=f"default: {f.default}")


PASS_ALIASES = {"fwd": "forward", "forward": "forward", "bwd-data": "backward_data",
                "backward-data": "backward_data", "backward_data": "backward_data",
                "bwd-weight": "backward_weight", "backward-weight": "backward_weight",
                "backward_weight": "backward_weight"}


def _pass_name(text: str) -> str:
    try:
        return PASS_ALIASES[text]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"invalid pass {text!r} (choose from fwd, bwd-data, bwd-weight)") from None


def _add_run_options(parser, out):
    parser.add_argument("--sim", choices=SIMULATORS, default=None,
                        help="simulator (default: $SIM, else verilator)")
    parser.add_argument("--seed", type=int, default=None,
                        help="testbench and data seed (default: random, printed)")
    parser.add_argument("--out", type=Path, default=Path(out), help="run directory")


def _config(args) -> Config:
    return Config(**{f.name: getattr(args, f.name) for f in fields(Config) if hasattr(args, f.name)})


def build_block(block: str, config: Config, *, dense_only: bool = False):
    """The Amaranth component and its Verilog module name for a block of ``config``."""
    if dense_only and block != "engine":
        raise UsageError("--dense-only applies to the engine only")
    if block == "tree":
        from maskprop.hw.accumulation_tree import AccumulationTree
        return AccumulationTree.from_config(config), "accumulation_tree"
    if block == "decoder":
        from maskprop.hw.index_decoder import ZeroSkipIndexDecoder
        return ZeroSkipIndexDecoder(vec=config.vec, lanes=config.lanes, masks=2), "index_decoder"
    if block == "pe":
        from maskprop.hw.sparse_pe import SparseGradPE
        return SparseGradPE.from_config(config), "sparse_pe"
    if block == "array":
        from maskprop.hw.tile_array import TileArray
        return TileArray(config), "tile_array"
    if block == "engine":
        from maskprop.hw.engine import SparseDotEngine
        return (SparseDotEngine(config, zero_skipping=not dense_only),
                "dense_dot_engine" if dense_only else "sparse_dot_engine")
    raise UsageError(f"unknown block {block!r}; choose from {', '.join(BLOCKS)}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="maskprop", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    generate = sub.add_parser("generate", help="write a block's Verilog")
    generate.add_argument("block", choices=BLOCKS)
    generate.add_argument("-o", "--output", required=True, type=Path, metavar="FILE.v")
    generate.add_argument("--dense-only", action="store_true",
                          help="engine without the zero-skipping decoder (area baseline)")
    _add_config_options(generate)

    demo = sub.add_parser("demo", help="run the backward pass of a digits-CNN layer (real ReLU "
                                       "masks) on the tile array's Verilog, dense and sparse; "
                                       "check it against the golden model; print cycles, "
                                       "speedup and ideal speedup")
    demo.add_argument("--layer", default="conv2", help="digits-CNN layer (default conv2)")
    demo.add_argument("--variant", default="plain", choices=("plain", "batchnorm"),
                      help="network without or with BatchNorm between conv and ReLU")
    demo.add_argument("--engine", action="store_true",
                      help="run one pass (--pass) on the one-tile engine instead")
    demo.add_argument("--pass", dest="pass_name", default="backward-data", type=_pass_name,
                      help="with --engine: forward, backward-data or backward-weight")
    demo.add_argument("--rows", type=int, default=None,
                      help="with --engine: only the first N rows of the lowered GEMM")
    _add_run_options(demo, "out/demo")
    _add_config_options(demo)

    sim = sub.add_parser("sim", help="run one pass of one conv layer on the tile array's "
                                     "Verilog, dense and sparse; print correctness, cycles, "
                                     "speedup and ideal speedup")
    sim.add_argument("--layer", required=True, metavar="SPEC",
                     help="N,C,H,W,K,R[,stride[,padding]] (e.g. 2,8,16,16,16,3,2,1), or "
                          "digits:LAYER[:batchnorm] for a digits-CNN layer with its real tensors")
    sim.add_argument("--pass", dest="pass_name", required=True, type=_pass_name,
                     help="fwd|forward, bwd-data|backward-data, bwd-weight|backward-weight")
    masks = sim.add_mutually_exclusive_group()
    masks.add_argument("--density", type=float, default=None,
                       help="nonzero fraction of A (and of dZ unless --batchnorm), i.i.d.")
    masks.add_argument("--masks", type=Path, default=None, metavar="FILE.npz",
                       help="arrays A and (optionally) dZ whose nonzero patterns to use")
    sim.add_argument("--batchnorm", action="store_true",
                     help="a BatchNorm between conv and ReLU: dZ dense")
    _add_run_options(sim, "out/sim")
    _add_config_options(sim)

    evaluate = sub.add_parser("eval", help="whole networks on the tile array from the RTL-exact "
                                           "cycle model: per-layer and per-pass speedups, "
                                           "totals, CSV/JSON and plots")
    evaluate.add_argument("--network", action="append", default=None, metavar="NAME",
                          help="alexnet, vgg16, resnet18, resnet50, googlenet, digits, or all "
                               "(default; repeatable)")
    evaluate.add_argument("--profile", default="literature", metavar="SPEC",
                          help="literature (default), synthetic:DENSITY[:iid|clustered], or a "
                               "profile FILE.json (e.g. from maskprop profile)")
    evaluate.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of synthesised masks")
    evaluate.add_argument("--layers", action="store_true", help="also print every layer")
    evaluate.add_argument("--out", type=Path, default=Path("out/eval"),
                          help="directory for CSV, JSON and PNG (default out/eval)")
    _add_config_options(evaluate, buffers=False)

    from maskprop import profile_cmd
    profile_cmd.add_parser(sub)

    flow = sub.add_parser("flow", help="run Yosys + nextpnr on a block; report LUTs, FFs, DSPs, "
                                       "BRAMs and Fmax")
    flow.add_argument("block", choices=BLOCKS)
    flow.add_argument("--target", required=True, choices=("ecp5", "ice40"))
    flow.add_argument("--out", type=Path, default=None, help="work directory "
                      "(default: out/flow/<block>-<target>)")
    flow.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    flow.add_argument("--dense-only", action="store_true",
                      help="engine without the zero-skipping decoder (area baseline)")
    flow.add_argument("--compare-dense", action="store_true",
                      help="engine: also build the dense-only engine and print the ratios")
    _add_config_options(flow)
    return parser


def _generate(args):
    component, name = build_block(args.block, _config(args), dense_only=args.dense_only)
    from maskprop.verilog import write_verilog
    path = write_verilog(component, name, args.output)
    print(f"wrote {path} (module {name})")


def _console():
    """Rich console; wide enough for the tables when the output is not a terminal."""
    from rich.console import Console
    return Console() if sys.stdout.isatty() else Console(width=132)


def _digits_record(layer: str, variant: str):
    from maskprop.sim.digits import load_fixture
    try:
        return load_fixture()[variant][layer]
    except KeyError as error:
        raise UsageError(f"digits CNN: {error.args[0]}") from None


def _print_comparisons(console, title: str, comparisons, *, total_label=None):
    """One table row per pass (and a total), then the verdict line; returns the exit status."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("pass", "outputs computed", "dense cycles", "sparse cycles", "= model",
                   "speedup", "ideal", "achieved/ideal"):
        table.add_column(column, justify="left" if column == "pass" else "right")
    for c in comparisons:
        table.add_row(c.label, f"{c.sparse.counters['outputs']} of {c.dense.counters['outputs']}",
                      f"{c.dense.cycles:,}", f"{c.sparse.cycles:,}",
                      "yes" if c.agrees else "NO", f"{c.speedup:.2f}x", f"{c.ideal:.2f}x",
                      f"{c.efficiency:.2f}")
    if total_label and len(comparisons) > 1:
        dense = sum(c.dense.cycles for c in comparisons)
        sparse = sum(c.sparse.cycles for c in comparisons)
        ideal = dense / sum(c.dense.cycles / c.ideal for c in comparisons)
        table.add_row(total_label, "", f"{dense:,}", f"{sparse:,}", "", f"{dense / sparse:.2f}x",
                      f"{ideal:.2f}x", f"{dense / sparse / ideal:.2f}", style="bold")
    console.print(table)
    ok = all(c.agrees for c in comparisons)
    seeds = sorted({c.sparse.seed for c in comparisons})
    console.print(f"{'PASS' if ok else 'FAIL'}: every output bit-exact against the golden model "
                  f"and every cycle count equal to the cycle model, dense and sparse "
                  f"({comparisons[0].sparse.simulator}, seed {', '.join(map(str, seeds))})")
    return 0 if ok else 1


def _run_passes(console, layer, tensors, passes, config, args):
    """Each pass dense and sparse on the tile array's Verilog, with a progress bar."""
    from rich.progress import Progress

    from maskprop.array_runs import compare_on_array
    from maskprop.host import ArrayPass, lower_pass

    prepared = [ArrayPass.prepare(lower_pass(layer, p, **tensors), config) for p in passes]
    comparisons = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("tile array RTL runs (dense, sparse)", total=len(passes))
        for pass_name, array_pass in zip(passes, prepared):
            comparisons.append(compare_on_array(
                array_pass, build_dir=args.out / pass_name, sim=args.sim, seed=args.seed,
                label=pass_name.replace("_", "-")))
            progress.advance(task)
    return comparisons


def _layer_title(layer, what):
    return (f"{layer.name or 'layer'} ({layer.batch}x{layer.in_channels}x{layer.height}x"
            f"{layer.width} -> {layer.out_channels} channels, {layer.kernel}x{layer.kernel}, "
            f"stride {layer.stride}, padding {layer.padding}) {what}")


def _demo(args):
    config = _config(args)
    record = _digits_record(args.layer, args.variant)
    console = _console()
    if args.engine:
        return _engine_demo(console, record, config, args)
    tensors = dict(A=record.A, W=record.W, dZ=record.dZ)
    comparisons = _run_passes(console, record.layer, tensors,
                              ["backward_data", "backward_weight"], config, args)
    title = _layer_title(record.layer, f"backward pass, {args.variant} digits CNN, real ReLU "
                                       f"masks; tile array: {config.tiles} tiles, vec "
                                       f"{config.vec}, lanes {config.lanes}")
    return _print_comparisons(console, title, comparisons, total_label="backward")


def _engine_demo(console, record, config, args):
    from rich.table import Table

    from maskprop.engine_runs import compare_on_engine, lower_record

    gemm = lower_record(record, args.pass_name)
    with console.status(f"running {record.layer.name} {args.pass_name} on the engine's Verilog "
                        f"(dense, then sparse)"):
        result = compare_on_engine(gemm, config, rows=args.rows, build_dir=args.out,
                                   sim=args.sim, seed=args.seed)
    table = Table(title=_layer_title(record.layer, f"{args.pass_name}, {args.variant} digits "
                                                   f"CNN; one-tile engine, vec {config.vec}, "
                                                   f"lanes {config.lanes}"))
    for column in ("mode", "outputs", "MACs issued", "cycles (RTL)", "cycles (model)",
                   "lane use"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode in ("dense", "sparse"):
        macs, cycles = getattr(result, f"{mode}_macs"), getattr(result, f"{mode}_cycles")
        table.add_row(mode, str(getattr(result, f"outputs_{mode}")), str(macs), str(cycles),
                      str(getattr(result, f"model_{mode}")),
                      f"{macs / (cycles * config.lanes):.2f}")
    console.print(table)
    console.print(f"speedup {result.speedup:.2f}x, ideal {result.ideal:.2f}x "
                  f"(dense MACs / nonzero MACs), achieved/ideal {result.efficiency:.2f}")
    verdict = "PASS" if result.exact else "FAIL"
    console.print(f"{verdict}: {result.outputs_dense + result.outputs_sparse} outputs bit-exact "
                  f"against the golden model; {result.seconds:.1f} s; logs in {args.out}")
    return 0 if result.exact else 1


def _parse_layer(spec: str):
    from maskprop.sim.layer import ConvLayer

    try:
        numbers = [int(part) for part in spec.split(",")]
    except ValueError:
        numbers = []
    if not 6 <= len(numbers) <= 8:
        raise UsageError(f"--layer must be N,C,H,W,K,R[,stride[,padding]] or "
                         f"digits:LAYER[:batchnorm], not {spec!r}")
    n, c, h, w, k, r, *rest = numbers
    return ConvLayer(batch=n, in_channels=c, height=h, width=w, out_channels=k, kernel=r,
                     stride=rest[0] if rest else 1, padding=rest[1] if len(rest) > 1 else r // 2,
                     name="layer")


def _synthetic_tensors(layer, config, args):
    """Random values on the nonzero patterns given by --density or --masks."""
    import numpy as np

    from maskprop.tb.stimulus import seed_from_env

    seed = seed_from_env() if args.seed is None else args.seed
    args.seed = seed
    rng = np.random.default_rng(seed)
    if args.masks is not None:
        try:
            with np.load(args.masks) as masks:
                a_nonzero = np.asarray(masks["A"]) != 0
                dz_nonzero = (np.asarray(masks["dZ"]) != 0 if "dZ" in masks
                              else np.ones(layer.output_shape, dtype=bool))
        except (OSError, KeyError, ValueError) as error:
            raise UsageError(f"--masks {args.masks}: {error}") from None
        for name, mask, shape in (("A", a_nonzero, layer.input_shape),
                                  ("dZ", dz_nonzero, layer.output_shape)):
            if mask.shape != tuple(shape):
                raise UsageError(f"--masks {args.masks}: {name} has shape {mask.shape}, the "
                                 f"layer needs {tuple(shape)}")
    else:
        density = 0.5 if args.density is None else args.density
        if not 0.0 <= density <= 1.0:
            raise UsageError(f"--density must be in [0, 1], not {density}")
        a_nonzero = rng.random(layer.input_shape) < density
        dz_nonzero = rng.random(layer.output_shape) < density
    if args.batchnorm:
        dz_nonzero = np.ones(layer.output_shape, dtype=bool)

    def values(shape, low):
        return rng.integers(low, config.data_max + 1, size=shape)
    A = np.where(a_nonzero, np.maximum(1, values(layer.input_shape, 0)), 0)
    dZ = np.where(dz_nonzero, values(layer.output_shape, config.data_min), 0)
    dZ = np.where(dz_nonzero & (dZ == 0), 1, dZ)
    W = values(layer.weight_shape, config.data_min)
    return dict(A=A, W=W, dZ=dZ)


def _sim(args):
    config = _config(args)
    if args.layer.startswith("digits:"):
        _, name, *variant = args.layer.split(":")
        if args.density is not None or args.masks is not None or args.batchnorm:
            raise UsageError("a digits layer brings its own tensors: drop --density, --masks "
                             "and --batchnorm (digits:LAYER:batchnorm picks that variant)")
        record = _digits_record(name, variant[0] if variant else "plain")
        layer, tensors = record.layer, dict(A=record.A, W=record.W, dZ=record.dZ)
        source = f"digits CNN{' with BatchNorm' if variant else ''}, real ReLU masks"
    else:
        layer = _parse_layer(args.layer)
        tensors = _synthetic_tensors(layer, config, args)
        source = (f"masks from {args.masks}" if args.masks else
                  f"synthetic i.i.d. masks, density {0.5 if args.density is None else args.density}")
        if args.batchnorm:
            source += ", dZ dense (BatchNorm)"
    console = _console()
    comparisons = _run_passes(console, layer, tensors, [args.pass_name], config, args)
    title = _layer_title(layer, f"{args.pass_name.replace('_', '-')}, {source}; tile array: "
                                f"{config.tiles} tiles, vec {config.vec}, lanes {config.lanes}")
    return _print_comparisons(console, title, comparisons)


NETWORK_NAMES = ("alexnet", "vgg16", "resnet18", "resnet50", "googlenet")


def _mask_source(spec: str, network_name: str, seed: int):
    from maskprop.evaluate import ProfileMasks
    from maskprop.sim import profiles

    if spec == "literature":
        return ProfileMasks(profiles.literature_profile(network_name), seed=seed)
    if spec.startswith("synthetic:"):
        _, density, *model = spec.split(":")
        try:
            density = float(density)
        except ValueError:
            raise UsageError(f"--profile synthetic:DENSITY needs a number, not {density!r}")
        if not 0.0 <= density <= 1.0:
            raise UsageError(f"--profile synthetic density must be in [0, 1], not {density}")
        model = model[0] if model else "iid"
        if model not in ("iid", "clustered"):
            raise UsageError(f"--profile synthetic mask model must be iid or clustered, "
                             f"not {model!r}")
        return ProfileMasks(profiles.synthetic_profile(network_name, density, model=model),
                            seed=seed)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--profile must be literature, synthetic:DENSITY[:MODEL] or an "
                         f"existing profile file, not {spec!r}")
    profile = profiles.load_profile(path)
    if profile.network != network_name:
        raise UsageError(f"profile {spec} is of network {profile.network!r}, not "
                         f"{network_name!r}")
    return ProfileMasks(profile, seed=seed)


def _eval(args):
    from rich.progress import Progress
    from rich.table import Table

    from maskprop.evaluate import SCENARIOS, TOTALS, digits_evaluation_inputs, evaluate
    from maskprop.plots import plot_layers, plot_summary
    from maskprop.sim.networks import network

    names = args.network or ["all"]
    if "all" in names:
        names = [n for n in names if n != "all"] + [n for n in NETWORK_NAMES if n not in names]
    for name in names:
        if name not in NETWORK_NAMES + ("digits",):
            raise UsageError(f"--network must be one of {', '.join(NETWORK_NAMES)}, digits or "
                             f"all, not {name!r}")
    # Whole networks need buffers the RTL would tile; the cycle model assumes they fit.
    config = Config(**{**_config(args).as_dict(), "max_chunks": 4096, "max_cols": 65536})
    jobs = []
    for name in names:
        if name == "digits":
            if args.profile != "literature":
                raise UsageError("the digits CNN is evaluated with its own real masks; "
                                 "drop --profile")
            jobs.append(("digits", *digits_evaluation_inputs()))
        else:
            jobs.append((name, network(name, batch=args.batch),
                         _mask_source(args.profile, name, args.seed)))
    console = _console()
    evaluations = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("cycle model", total=sum(len(net.layers) for _, net, _ in jobs))
        for name, net, source in jobs:
            progress.update(task, description=f"cycle model: {net.name}")
            evaluations.append(evaluate(net, source, config,
                                        progress=lambda n: progress.advance(task, n)))
    table = Table(title=f"Tile array ({config.tiles} tiles x {config.lanes} lanes, vec "
                        f"{config.vec}), speedup over dense mode on the same RTL (cycle model); "
                        f"ideal in parentheses")
    table.add_column("network")
    table.add_column("BatchNorm")
    for which in TOTALS:
        table.add_column(which, justify="right")
    table.add_column("achieved/ideal (step)", justify="right")
    table.add_column("masks")
    for evaluation in evaluations:
        for scenario in SCENARIOS:
            totals = [evaluation.total(scenario, which) for which in TOTALS]
            table.add_row(evaluation.network, scenario,
                          *(f"{t.speedup:.2f}x ({t.ideal:.2f}x)" for t in totals),
                          f"{totals[-1].efficiency:.2f}", evaluation.profile)
    console.print(table)
    if args.layers:
        for evaluation in evaluations:
            layers = Table(title=f"{evaluation.network}: every layer and pass")
            for column in ("scenario", "layer", "pass", "A density", "dZ density",
                           "dense cycles", "sparse cycles", "speedup", "ideal", "achieved/ideal"):
                layers.add_column(column, justify="left" if column in
                                  ("scenario", "layer", "pass") else "right")
            for r in evaluation.rows:
                layers.add_row(r.scenario, r.layer, r.pass_name.replace("_", "-"),
                               f"{r.a_density:.3f}", f"{r.dz_density:.3f}",
                               f"{r.dense_cycles:,}", f"{r.sparse_cycles:,}",
                               f"{r.speedup:.2f}x", f"{r.ideal:.2f}x", f"{r.efficiency:.2f}")
            console.print(layers)
    written = []
    for (name, net, _), evaluation in zip(jobs, evaluations):
        written += evaluation.write(args.out, name)
        own = "batchnorm" if any(layer.batchnorm for layer in net.layers) else "no-batchnorm"
        written.append(plot_layers(evaluation, own, args.out / f"{name}_layers.png"))
    written.append(plot_summary(evaluations, args.out / "summary.png"))
    summary = [row for e in evaluations for row in e.summary()]
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    console.print(f"wrote {len(written) + 1} files to {args.out}: per-network CSV, JSON and "
                  f"per-layer PNG, summary.png, summary.json")
    return 0


def _flow(args):
    from maskprop.fpga import run_flow

    config = _config(args)
    if args.compare_dense and args.block != "engine":
        raise UsageError("--compare-dense applies to the engine only")
    variants = [args.dense_only] + ([True] if args.compare_dense else [])
    reports = []
    for dense_only in variants:
        component, name = build_block(args.block, config, dense_only=dense_only)
        workdir = args.out or Path("out/flow") / f"{name}-{args.target}"
        if args.out and len(variants) > 1:
            workdir = args.out / name
        reports.append(run_flow(component, name, args.target, workdir))
        print(reports[-1].format())
    if len(reports) == 2:
        sparse, dense = reports
        print(f"zero-skipping cost: LUT4 x{sparse.luts / dense.luts:.2f}, "
              f"FF x{sparse.ffs / dense.ffs:.2f}, DSP {sparse.dsps} vs {dense.dsps}, "
              f"Fmax x{sparse.fmax_mhz / dense.fmax_mhz:.2f} (sparse / dense-only, "
              f"{args.target}, same run)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = [r.as_dict() for r in reports]
        args.json.write_text(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2))


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(argv)
        from maskprop import profile_cmd
        handler = {"generate": _generate, "demo": _demo, "sim": _sim, "eval": _eval,
                   "profile": profile_cmd.run, "flow": _flow}[args.command]
        return handler(args) or 0
    except (UsageError, ValueError, ToolchainError, ImportError) as error:
        print(f"maskprop: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
