"""The ``maskprop`` command line.

    maskprop generate tree|decoder|pe|engine [options] -o FILE.v    write a block's Verilog
    maskprop demo                                   the main job on its built-in default
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

BLOCKS = ("tree", "decoder", "pe", "engine")


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _add_config_options(parser):
    group = parser.add_argument_group("hardware configuration (defaults: maskprop.config.Config)")
    for f in fields(Config):
        group.add_argument(f"--{f.name.replace('_', '-')}", type=int, dest=f.name,
                           default=f.default, metavar="N", help=f"default: {f.default}")


def _config(args) -> Config:
    return Config(**{f.name: getattr(args, f.name) for f in fields(Config)})


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

    demo = sub.add_parser("demo", help="run a real layer's pass on the engine's Verilog, dense "
                                       "and sparse, check it against the golden model, print "
                                       "cycles, speedup and ideal speedup")
    demo.add_argument("--layer", default="conv2", help="digits-CNN layer (default conv2)")
    demo.add_argument("--variant", default="plain", choices=("plain", "batchnorm"),
                      help="network without or with BatchNorm between conv and ReLU")
    demo.add_argument("--pass", dest="pass_name", default="backward_data",
                      choices=("forward", "backward_data", "backward_weight"))
    demo.add_argument("--rows", type=int, default=None,
                      help="only the first N rows of the lowered GEMM (default: all)")
    demo.add_argument("--sim", choices=SIMULATORS, default=None,
                      help="simulator (default: $SIM, else verilator)")
    demo.add_argument("--seed", type=int, default=None, help="testbench seed (default: random)")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="build directory")
    _add_config_options(demo)

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


def _demo(args):
    from rich.console import Console
    from rich.table import Table

    from maskprop.engine_runs import compare_on_engine, lower_record
    from maskprop.sim.digits import load_fixture

    config = _config(args)
    fixture = load_fixture()
    try:
        record = fixture[args.variant][args.layer]
    except KeyError as error:
        raise UsageError(str(error.args[0])) from None
    gemm = lower_record(record, args.pass_name)
    console = Console()
    with console.status(f"running {record.layer.name} {args.pass_name} on the engine's Verilog "
                        f"(dense, then sparse)"):
        result = compare_on_engine(gemm, config, rows=args.rows, build_dir=args.out,
                                   sim=args.sim, seed=args.seed)
    layer = record.layer
    title = (f"{layer.name} ({layer.in_channels}->{layer.out_channels} channels, "
             f"{layer.kernel}x{layer.kernel}, stride {layer.stride}, batch {layer.batch}) "
             f"{args.pass_name}, {args.variant} digits CNN with its real ReLU masks, on the "
             f"one-tile engine (vec {config.vec}, lanes {config.lanes}) in {result.simulator}")
    table = Table(title=title)
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
        handler = {"generate": _generate, "demo": _demo, "flow": _flow}[args.command]
        return handler(args) or 0
    except (UsageError, ValueError, ToolchainError) as error:
        print(f"maskprop: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
