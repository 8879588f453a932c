"""The ``maskprop`` command line.

    maskprop generate tree [config options] -o FILE.v   write a block's Verilog
    maskprop demo                                       the main job on its built-in default
    maskprop flow tree --target ecp5|ice40              synthesize, place and route; report area/Fmax

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

BLOCKS = ("tree",)


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


def build_block(block: str, config: Config):
    """The Amaranth component and its Verilog module name for a block of ``config``."""
    if block == "tree":
        from maskprop.hw.accumulation_tree import AccumulationTree
        return AccumulationTree.from_config(config), "accumulation_tree"
    raise UsageError(f"unknown block {block!r}; choose from {', '.join(BLOCKS)}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="maskprop", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    generate = sub.add_parser("generate", help="write a block's Verilog")
    generate.add_argument("block", choices=BLOCKS)
    generate.add_argument("-o", "--output", required=True, type=Path, metavar="FILE.v")
    _add_config_options(generate)

    demo = sub.add_parser("demo", help="generate the accumulation tree, run its cocotb testbench "
                                       "against the golden model, print a summary")
    demo.add_argument("--sim", choices=SIMULATORS, default=None,
                      help="simulator (default: $SIM, else verilator)")
    demo.add_argument("--seed", type=int, default=None, help="stimulus seed (default: random)")
    demo.add_argument("--waves", action="store_true", help="record waveforms (also WAVES=1)")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="build directory")
    _add_config_options(demo)

    flow = sub.add_parser("flow", help="run Yosys + nextpnr on a block; report LUTs, FFs, DSPs, "
                                       "BRAMs and Fmax")
    flow.add_argument("block", choices=BLOCKS)
    flow.add_argument("--target", required=True, choices=("ecp5", "ice40"))
    flow.add_argument("--out", type=Path, default=None, help="work directory "
                      "(default: out/flow/<block>-<target>)")
    flow.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    _add_config_options(flow)
    return parser


def _generate(args):
    component, name = build_block(args.block, _config(args))
    from maskprop.verilog import write_verilog
    path = write_verilog(component, name, args.output)
    print(f"wrote {path} (module {name})")


def _demo(args):
    from rich.console import Console
    from rich.table import Table

    from maskprop.tb.runner import run_testbench

    config = _config(args)
    tree, name = build_block("tree", config)
    params = dict(lanes=tree.lanes, in_width=tree.in_width, acc_width=tree.acc_width,
                  stages=tree.stages, latency=tree.latency)
    console = Console()
    with console.status(f"building {name} and running its cocotb testbench"):
        run = run_testbench(tree, name, "maskprop.tb.tb_accumulation_tree", params=params,
                            sim=args.sim, build_dir=args.out, seed=args.seed,
                            waves=True if args.waves else None)
    table = Table(title=f"AccumulationTree (lanes {tree.lanes}, {tree.in_width}-bit terms, "
                        f"{tree.acc_width}-bit accumulator, {tree.stages} tree stages) "
                        f"on {run.simulator}")
    for column in ("traffic", "beats", "frames", "cycles", "beats/cycle", "latency"):
        table.add_column(column, justify="right" if column != "traffic" else "left")
    for test, measured in run.report.items():
        latency = (f"{measured['min_latency']}" if measured["min_latency"] ==
                   measured["max_latency"] else
                   f"{measured['min_latency']}..{measured['max_latency']}")
        table.add_row(test.replace("_", " "), str(measured["beats"]), str(measured["frames"]),
                      str(measured["cycles"]), f"{measured['throughput']:.3f}", latency)
    console.print(table)
    verdict = "PASS" if run.passed else "FAIL"
    console.print(f"{verdict}: {run.tests - run.failures}/{run.tests} testbench cases bit-exact "
                  f"against the golden reference; expected latency {tree.latency} cycles; "
                  f"{run.seconds:.1f} s; seed {run.seed} (rerun with --seed {run.seed}); "
                  f"logs in {run.build_dir}")
    return 0 if run.passed else 1


def _flow(args):
    from maskprop.fpga import run_flow

    component, name = build_block(args.block, _config(args))
    workdir = args.out or Path("out/flow") / f"{args.block}-{args.target}"
    report = run_flow(component, name, args.target, workdir)
    print(report.format())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.as_dict(), indent=2))


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
