"""The ``maskprop`` command line.

    maskprop generate tree|decoder|pe|engine|array|core [options] -o FILE.v    a block's Verilog
    maskprop demo                                   the main job on its built-in default
    maskprop sim --layer SPEC --pass P --density D  one layer's pass on the core
                                                    (--block array: on the tile array alone)
    maskprop eval [--network NAME] [--profile SPEC] whole networks from the cycle model
                  [--bandwidth BYTES]               (data movement at BYTES per cycle)
    maskprop profile --model FILE.py --batch FILE.npz -o PROFILE.json     measure densities
    maskprop flow BLOCK --target ecp5|ice40         synthesize, place and route; area and Fmax
                                                    (core on ecp5: LFE5U-85F unless --device)
    maskprop build --board ulx3s-85f|icebreaker     a board's bitstream and its report
    maskprop train [--device sim|golden|serial:PORT] the digits CNN trained on the core

Bad arguments, unreadable input files, unusable output paths or a configuration the generator
refuses print one line and exit with status 2, before anything is computed or written.
"""

import argparse
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from maskprop.base.config import (CORE_ARRAY, CORE_ARRAY_FIELDS, Config, CoreConfig, JoinSettings,
                                  check_join_lanes)
from maskprop.base.metrics import NO_WORK, format_ratio, format_speedup
from maskprop.sim.layer import PASS_ALIASES, pass_label
from maskprop.workloads.digits import VARIANTS as DIGITS_VARIANTS
from maskprop.workloads.networks import NETWORK_NAMES
from maskprop.workloads.profiles import MASK_MODELS
from maskprop.flow.fpga import FlowError
from maskprop.flow.toolchain import SIMULATORS, SimulationError, ToolchainError
from maskprop.flow.verilog import BLOCKS, DENSE_ONLY_BLOCKS, build_block, generate_verilog

__all__ = ["main", "UsageError", "write_outputs", "check_output_file", "check_output_dir"]



class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit status 2. A ``ValueError``, like every
    refusal of bad values in maskprop, so library callers catch both alike."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


BUFFER_FIELDS = ("col_block", "max_chunks", "max_cols", "y_words")
#: CoreConfig's own fields (its scratchpad and memory port): options of the core only.
CORE_FIELDS = tuple(f.name for f in fields(CoreConfig) if f.name != "array")
#: The device ``maskprop flow BLOCK --target TARGET`` uses without ``--device``, where it is
#: not the target's default (maskprop.flow.fpga.DEFAULT_DEVICE): the core needs a large ECP5.
FLOW_DEVICE = {("core", "ecp5"): "LFE5U-85F"}

#: The blocks ``maskprop sim`` runs a pass on (the first is the default).
SIM_BLOCKS = ("core", "array")

#: Seeds go to NumPy and to the simulators (cocotb's RANDOM_SEED is 32-bit).
SEED_MAX = (1 << 32) - 1
#: Largest ``--batch`` of ``maskprop eval``: a ConvLayer's batch bound (maskprop.sim.layer).
EVAL_BATCH_MAX = 1 << 16

#: Integer options whose range argparse cannot check: command -> {dest: (option, low, high)}
#: (``high`` None: no upper bound).
INT_OPTIONS = {
    "demo": {"seed": ("--seed", 0, SEED_MAX), "rows": ("--rows", 1, None)},
    "sim": {"seed": ("--seed", 0, SEED_MAX)},
    "eval": {"seed": ("--seed", 0, SEED_MAX), "batch": ("--batch", 1, EVAL_BATCH_MAX)},
}


def _check_int_options(args) -> None:
    for dest, (option, low, high) in INT_OPTIONS.get(args.command, {}).items():
        value = getattr(args, dest)
        if value is None or (low <= value and (high is None or value <= high)):
            continue
        if high is None:
            wanted = "a positive integer" if low == 1 else f"an integer >= {low}"
        else:
            wanted = f"an integer in [{low}, {high}]"
        raise UsageError(f"{option} must be {wanted}, not {value}")


def _config_option_message(message: str) -> str:
    """Config's refusals start with the field's name (``"max_chunks must be ..."``); on the
    command line the field is an option, so name it as typed (``"--max-chunks must be ..."``)."""
    for f in fields(Config):
        if message.startswith(f"{f.name} "):
            return f"--{f.name.replace('_', '-')}{message[len(f.name):]}"
    return message


def _add_config_options(parser, *, buffers=True):
    group = parser.add_argument_group(
        "hardware configuration (defaults: maskprop.base.config.Config; the core's tile array: "
        "CORE_ARRAY)")
    for f in fields(Config):
        if not buffers and f.name in BUFFER_FIELDS[1:]:
            continue
        core_default = getattr(CORE_ARRAY, f.name)
        default = {"y_words": "max_cols x max_chunks",
                   "select_window": "the narrowest of at least 4 elements (4 at vec 16, lanes "
                                    "4); vec: any element, the full crossbar",
                   }.get(f.name, f.default)
        extra = (f" (the core: {core_default}, unless another buffer size is given)"
                 if f.name in CORE_ARRAY_FIELDS else "")
        group.add_argument(f"--{f.name.replace('_', '-')}", type=int, dest=f.name,
                           default=None, metavar="N", help=f"default: {default}{extra}")




def _add_core_options(parser):
    group = parser.add_argument_group(
        "the core's scratchpad and memory port (block core only; defaults: "
        "maskprop.base.config.CoreConfig)")
    for f in fields(CoreConfig):
        if f.name in CORE_FIELDS:
            default = ("min(32, max_chunks)" if f.name == "row_block_chunks"
                       else f.default)
            group.add_argument(f"--{f.name.replace('_', '-')}", type=int, dest=f.name,
                               default=None, metavar="N", help=f"default: {default}")


def _option(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _core_config(args, config: Config, block: str) -> CoreConfig | None:
    """The core's configuration from ``--x-words`` etc. on top of ``config`` when ``block`` is
    the core; None for the other blocks, which refuse those options."""
    given = {name: getattr(args, name) for name in CORE_FIELDS
             if getattr(args, name) is not None}
    if block != "core":
        if given:
            raise UsageError(f"{', '.join(map(_option, given))} appl"
                             f"{'ies' if len(given) == 1 else 'y'} to the core only")
        return None
    try:
        return CoreConfig(array=config, **given)
    except ValueError as error:
        message = str(error)
        for name in CORE_FIELDS:
            if message.startswith(f"{name} "):
                raise UsageError(f"{_option(name)}{message[len(name):]}") from None
        # The memory port is one chunk wide: vec x the data's container bits.
        raise UsageError(f"--vec/--data-width: {message}") from None


def _build(args, config: Config, core: CoreConfig | None):
    """``build_block`` for the command's block; the core's own refusal (scratchpad and tile
    array buffers together too large to generate) names its options."""
    if core is None or args.dense_only:
        return build_block(args.block, config, dense_only=args.dense_only)
    return _core_block(core)


def _core_block(core: CoreConfig):
    """``(MaskpropCore, module name)`` of ``core``; the core refuses a scratchpad and tile array
    buffers together too large to generate before it is made (nothing is left unused)."""
    try:
        return build_block("core", core)
    except ValueError as error:
        raise UsageError(f"--x-words/--max-cols/--max-chunks: {error}") from None


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
                        help=f"testbench and data seed, 0..{SEED_MAX} (default: random, printed)")
    parser.add_argument("--out", type=Path, default=Path(out),
                        help=f"run directory (default {out})")


def _config(args, block: str | None = None) -> Config:
    """The tile array's configuration: the options given, over ``Config``'s defaults, or over
    the core's (``CORE_ARRAY_FIELDS``) when ``block`` is the core and none of its buffers
    (``--max-chunks``, ``--max-cols``, ``--y-words``) is given."""
    given = {f.name: getattr(args, f.name) for f in fields(Config)
             if getattr(args, f.name, None) is not None}
    try:
        # The core's buffers are one package: any of them given, the others are Config's.
        core = block == "core" and not set(given) & set(BUFFER_FIELDS[1:])
        return Config(**{**(CORE_ARRAY_FIELDS if core else {}), **given})
    except ValueError as error:
        raise UsageError(_config_option_message(str(error))) from None


def _check_generatable(config: Config) -> None:
    """Refuse a tile array whose buffers are too large to generate, before any work."""
    try:
        config.check_generatable()
    except ValueError as error:
        raise UsageError(f"--max-cols/--max-chunks/--y-words: {error}") from None


# --- files the user names ---------------------------------------------------------------------

def _check_path(path: Path, option: str, *, directory: bool) -> None:
    """Refuse, before any work, an output path that could not be written: a directory where a
    file is wanted or a file where a directory is, a path under a file, or a place where no file
    can be created. Creates nothing."""
    if "\0" in str(path):
        raise UsageError(f"{option} {path!r}: a path cannot contain a NUL character")
    try:
        if directory and path.exists() and not path.is_dir():
            raise UsageError(f"{option} {path}: is a file, not a directory")
        if not directory and path.is_dir():
            raise UsageError(f"{option} {path}: is a directory; give a file name")
        # The closest existing directory must take new files: tried with an unnamed temporary
        # file, which also catches read-only mounts and pseudo file systems (/proc) where
        # permission bits say nothing, and running as root.
        ancestor = path if directory else path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise UsageError(f"{option} {path}: {ancestor} is a file, not a directory")
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as error:              # unwritable, or e.g. a name too long for the system
        raise UsageError(f"{option} {path}: cannot create it "
                         f"({error.strerror or error})") from None


def check_output_file(path: Path, option: str) -> None:
    """Refuse, before any work, an output file that could not be written (see _check_path)."""
    _check_path(Path(path), option, directory=False)


def check_output_dir(path: Path, option: str) -> None:
    """Refuse, before any work, an output directory that could not be used (see _check_path)."""
    _check_path(Path(path), option, directory=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_outputs(files: dict, option: str) -> list:
    """Write each ``{path: text or bytes}`` atomically: into a temporary file in the path's
    directory, renamed over the path once complete, so a failure never leaves a half-written
    file. Missing directories are created here, after all inputs were validated and the work
    done. Returns the paths; ``UsageError`` naming ``option`` if the system refuses a write."""
    mode = 0o666 & ~_umask()                  # what a plain open() would have created
    for path, data in files.items():
        partial = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".partial", delete=False) as file:
                partial = Path(file.name)
                file.write(data.encode() if isinstance(data, str) else data)
            os.chmod(partial, mode)
            os.replace(partial, path)
        except OSError as error:
            if partial is not None:
                partial.unlink(missing_ok=True)
            raise UsageError(f"{option} {path}: cannot write it ({error.strerror or error})") \
                from None
    return list(files)



LAYER_HELP = ("N,C,H,W,K,R[,stride[,padding]]: batch, input channels, height, width, output "
              "channels, kernel size (e.g. 2,8,16,16,16,3,2,1); stride defaults to 1 and padding "
              "to R // 2 (which keeps the size for odd R at stride 1). Or "
              "digits:LAYER[:plain|batchnorm] for a digits-CNN layer with its real tensors "
              "(default plain: no BatchNorm)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="maskprop", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    generate = sub.add_parser("generate", help="write a block's Verilog")
    generate.add_argument("block", choices=BLOCKS)
    generate.add_argument("-o", "--output", required=True, type=Path, metavar="FILE.v")
    generate.add_argument("--dense-only", action="store_true",
                          help="engine or array without the zero-skipping decoder (area "
                               "baseline)")
    _add_config_options(generate)
    _add_core_options(generate)

    demo = sub.add_parser("demo", help="run the backward pass of a digits-CNN layer (real ReLU "
                                       "masks), dense and sparse, on the core's Verilog "
                                       "(backward-data and backward-weight); check it against "
                                       "the golden model; print cycles, bytes moved, speedup "
                                       "and ideal speedup")
    demo.add_argument("--layer", default="conv2", help="digits-CNN layer (default conv2)")
    demo.add_argument("--variant", default="plain", choices=DIGITS_VARIANTS,
                      help="network without or with BatchNorm between conv and ReLU")
    demo.add_argument("--engine", action="store_true",
                      help="run one pass (--pass) on the one-tile engine instead")
    demo.add_argument("--pass", dest="pass_name", default=None, type=_pass_name,
                      help="with --engine: forward, backward-data (default) or backward-weight")
    demo.add_argument("--rows", type=int, default=None,
                      help="with --engine: only the first N rows of the lowered GEMM")
    _add_run_options(demo, "out/demo")
    _add_config_options(demo)
    _add_core_options(demo)

    sim = sub.add_parser("sim", help="run one pass of one conv layer on the core's Verilog "
                                     "(or the tile array's: --block array), dense and sparse; "
                                     "print correctness, cycles, bytes moved, speedup and ideal "
                                     "speedup")
    sim.add_argument("--block", choices=SIM_BLOCKS, default="core",
                     help="core (default): the whole pass memory to memory through the core's "
                          "registers, forward and backward-data; array: the tile array alone, "
                          "fed by the testbench, every pass")
    sim.add_argument("--layer", required=True, metavar="SPEC", help=LAYER_HELP)
    sim.add_argument("--pass", dest="pass_name", required=True, type=_pass_name,
                     help="fwd|forward, bwd-data|backward-data, bwd-weight|backward-weight")
    masks = sim.add_mutually_exclusive_group()
    masks.add_argument("--density", type=float, default=None,
                       help="nonzero fraction of A (and of dZ unless --batchnorm), i.i.d., in "
                            "[0, 1] (default 0.5)")
    masks.add_argument("--masks", type=Path, default=None, metavar="FILE.npz",
                       help="arrays A and (optionally) dZ of the layer's input and output "
                            "shapes, boolean or numeric, whose nonzero patterns to use")
    sim.add_argument("--batchnorm", action="store_true",
                     help="a BatchNorm between conv and ReLU: dZ dense")
    _add_run_options(sim, "out/sim")
    _add_config_options(sim)
    _add_core_options(sim)

    evaluate = sub.add_parser("eval", help="whole networks on the tile array from the RTL-exact "
                                           "cycle model: per-layer and per-pass speedups, "
                                           "totals, CSV/JSON and plots")
    evaluate.add_argument("--network", action="append", default=None, metavar="NAME",
                          help=f"{', '.join(NETWORK_NAMES)}, digits, or all (default; "
                               f"repeatable, each network evaluated once)")
    evaluate.add_argument("--profile", default=None, metavar="SPEC",
                          help=f"literature (default), "
                               f"synthetic:DENSITY[:{'|'.join(MASK_MODELS)}], or a profile "
                               f"FILE.json (e.g. from maskprop profile)")
    evaluate.add_argument("--batch", type=int, default=None,
                          help=f"batch size of the ImageNet networks, 1..{EVAL_BATCH_MAX} "
                               f"(default 1)")
    evaluate.add_argument("--seed", type=int, default=0,
                          help=f"seed of synthesised masks, 0..{SEED_MAX} (default 0)")
    evaluate.add_argument("--bandwidth", type=float, default=None, metavar="BYTES",
                          help="memory bandwidth in bytes per cycle for the data movement "
                               "(default: one word of the core's memory port per cycle, "
                               "vec x the data's container bytes)")
    evaluate.add_argument("--layers", action="store_true", help="also print every layer")
    evaluate.add_argument("--join", action="store_true",
                          help=f"also model the join array (both operands skipped; look-ahead "
                               f"{JoinSettings.group}, queue {JoinSettings.queue}, ring "
                               f"{JoinSettings.ring}; the same multipliers; compute only): its "
                               f"exact schedule on small passes, else the bound of unbounded "
                               f"queues")
    evaluate.add_argument("--out", type=Path, default=Path("out/eval"),
                          help="directory for CSV, JSON and PNG (default out/eval)")
    _add_config_options(evaluate, buffers=False)

    from maskprop.cli import profile as profile_cmd
    profile_cmd.add_parser(sub)

    flow = sub.add_parser("flow", help="run Yosys + nextpnr on a block; report LUTs, FFs, DSPs, "
                                       "BRAMs and Fmax")
    flow.add_argument("block", choices=BLOCKS)
    flow.add_argument("--target", required=True, choices=("ecp5", "ice40"))
    flow.add_argument("--out", type=Path, default=None, help="work directory "
                      "(default: out/flow/<block>-<target>)")
    flow.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    flow.add_argument("--dense-only", action="store_true",
                      help="engine or array without the zero-skipping decoder (area baseline)")
    flow.add_argument("--compare-dense", action="store_true",
                      help="engine or array: also build the dense-only one and print the "
                           "ratios")
    flow.add_argument("--device", default=None,
                      help="FPGA part, e.g. LFE5U-85F or iCE40HX8K (default: LFE5U-25F and "
                           "iCE40UP5K; LFE5U-85F for the core on ecp5)")
    flow.add_argument("--synth-only", action="store_true",
                      help="stop after Yosys: resources only, no place and route, no Fmax")
    flow.add_argument("--router", choices=("router1", "router2"), default=None,
                      help="nextpnr's router (default: router1, nextpnr's own default; "
                           "router2 is much faster on a design as large as the core)")
    _add_config_options(flow)
    _add_core_options(flow)

    from maskprop.flow.board import BOARDS
    build = sub.add_parser("build", help="a board's bitstream: the core, its memory and the "
                                         "UART host link (docs/fpga.md, Boards)")
    build.add_argument("--board", required=True, choices=sorted(BOARDS))
    build.add_argument("--out", type=Path, default=None,
                       help="build directory (default: out/build/<board>)")
    build.add_argument("--baud", type=int, default=115_200,
                       help="the UART's rate (default 115200; the design's clock over an integer, "
                            "within 2 %%)")
    build.add_argument("--clock-mhz", type=float, default=None,
                       help="run the design on this clock, from a PLL unless it is the "
                            "oscillator's (ECP5 boards; default: ulx3s-85f 20 MHz from the PLL, "
                            "icebreaker its 12 MHz oscillator)")
    build.add_argument("--seed", type=int, default=1, help="nextpnr's seed (default 1)")
    build.add_argument("--router", choices=("router1", "router2"), default="router2",
                       help="nextpnr's router (default router2: router1 did not finish the "
                            "core in 20 minutes)")
    build.add_argument("--synth-only", action="store_true",
                       help="stop after Yosys: the resources against the part, no Fmax, no "
                            "bitstream")
    build.add_argument("--json", type=Path, default=None, help="also write the report as JSON")

    train = sub.add_parser("train", help="train the digits CNN with every convolution pass on "
                                         "the core (docs/host_link.md, Training)")
    train.add_argument("--variant", choices=DIGITS_VARIANTS, default="batchnorm",
                       help="batchnorm (default: it learns at 8 images a step) or plain")
    train.add_argument("--steps", type=int, default=200)
    train.add_argument("--batch", type=int, default=None,
                       help="images a step (default 64 plain, 8 batchnorm; each pass runs on "
                            "as many at a time as the board's memory holds)")
    train.add_argument("--lr", type=float, default=0.01, help="Adam's rate (default 0.01)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="sim",
                       help="sim (the simulated ULX3S board, default), golden (the golden "
                            "model), or serial:PORT (a board built by maskprop build)")
    train.add_argument("--baud", type=int, default=115_200, help="the serial board's rate")
    train.add_argument("--check", action="store_true",
                       help="compare every pass on the board with the golden model")
    train.add_argument("--eval-every", type=int, default=50,
                       help="score the test set every N steps (default 50, and at the end)")
    train.add_argument("--json", type=Path, default=None, help="write every step's report")
    return parser


def _generate(args):
    config = _config(args, args.block)
    core = _core_config(args, config, args.block)
    if args.block in ("array", "core"):
        _check_generatable(config)
    check_output_file(args.output, "-o")
    component, name = _build(args, config, core)
    write_outputs({args.output: generate_verilog(component, name)}, "-o")
    print(f"wrote {args.output} (module {name})")


def _console():
    """Rich console; wide enough for the tables when the output is not a terminal."""
    from rich.console import Console
    return Console() if sys.stdout.isatty() else Console(width=132)


def _digits_record(layer: str, variant: str):
    """The digits fixture's record; a missing fixture is a usage error (it says how to make
    it), not a crash."""
    from maskprop.workloads.digits import digits_layer
    try:
        return digits_layer(layer, variant)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None


def _print_comparisons(console, title: str, comparisons):
    """One table row per pass, then the verdict line; returns the exit status."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("pass", "outputs computed", "dense cycles", "sparse cycles", "= model",
                   "speedup", "ideal", "achieved/ideal"):
        table.add_column(column, justify="left" if column == "pass" else "right")
    for c in comparisons:
        table.add_row(c.label, f"{c.outputs_sparse} of {c.outputs_dense}",
                      f"{c.dense_cycles:,}", f"{c.sparse_cycles:,}",
                      "yes" if c.agrees else "NO", format_speedup(c.speedup),
                      format_speedup(c.ideal), format_ratio(c.efficiency))
    console.print(table)
    for c in comparisons:
        # The array's own dense mode with a restricted selection window can be slower than the
        # fair baseline (the full window) where structural zeros are scattered: say so.
        baseline = c.over_baseline
        if baseline is not None and baseline.dense_cycles != c.dense_cycles:
            console.print(f"{c.label}: the fair dense baseline (full selection window, cycle "
                          f"model) takes {baseline.dense_cycles:,} cycles, this array's dense "
                          f"mode {c.dense_cycles:,}; over the baseline: speedup "
                          f"{format_speedup(baseline.speedup)}, achieved/ideal "
                          f"{format_ratio(baseline.efficiency)}")
    ok = all(c.agrees for c in comparisons)
    seeds = sorted({c.sparse.seed for c in comparisons})
    console.print(f"{'PASS' if ok else 'FAIL'}: every output bit-exact against the golden model "
                  f"and every cycle count equal to the cycle model, dense and sparse "
                  f"({comparisons[0].sparse.simulator}, seed {', '.join(map(str, seeds))})")
    return 0 if ok else 1


def _run_passes(console, layer, tensors, passes, config, args):
    """Each pass dense and sparse on the tile array's Verilog, with a progress bar. The passes
    passed :func:`maskprop.host.driver.check_pass` before the tensors were made."""
    from rich.progress import Progress

    from maskprop.host.driver import mode_passes
    from maskprop.host.runs import compare_on_array

    prepared = [mode_passes(layer, p, config, **tensors) for p in passes]
    comparisons = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("tile array RTL runs (dense, sparse)", total=len(passes))
        for pass_name, modes in zip(passes, prepared):
            comparisons.append(compare_on_array(
                modes, build_dir=args.out / pass_name, sim=args.sim, seed=args.seed,
                label=pass_label(pass_name)))
            progress.advance(task)
    return comparisons


def _layer_title(layer, what):
    return (f"{layer.name or 'layer'} ({layer.batch}x{layer.in_channels}x{layer.height}x"
            f"{layer.width} -> {layer.out_channels} channels, {layer.kernel}x{layer.kernel}, "
            f"stride {layer.stride}, padding {layer.padding}) {what}")


def _check_passes(layer, passes, config) -> None:
    """Every refusal the shapes and the configuration decide, before any tensor is made."""
    from maskprop.host.driver import check_pass

    for pass_name in passes:
        check_pass(layer, pass_name, config)
    _check_generatable(config)


def _check_block_passes(layer, passes, config: Config, core: CoreConfig | None) -> None:
    """:func:`_check_passes` for the core when ``core`` is given (what it cannot hold or its
    memory port cannot reach), else for the tile array."""
    from maskprop.host.runs import check_core_run

    if core is None:
        return _check_passes(layer, passes, config)
    _check_generatable(config)
    for pass_name in passes:
        check_core_run(layer, pass_name, core)


def _array_text(config: Config) -> str:
    return f"{config.tiles} tiles, vec {config.vec}, lanes {config.lanes}"


def _core_text(core: CoreConfig) -> str:
    return f"{_array_text(core.array)}, X scratchpad {core.x_words} words"


def _run_core_passes(console, layer, tensors, passes, core, component, args):
    """Each pass dense and sparse on the core's Verilog (``component``), with a progress bar.
    The passes passed :func:`_check_block_passes` before the tensors were made."""
    from rich.progress import Progress

    from maskprop.host.runs import compare_on_core

    comparisons = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("core RTL runs (dense, sparse)", total=len(passes))
        for pass_name in passes:
            comparisons.append(compare_on_core(
                layer, pass_name, core, **tensors, build_dir=args.out / pass_name, sim=args.sim,
                seed=args.seed, label=pass_label(pass_name), component=component))
            progress.advance(task)
    return comparisons


def _print_core_comparisons(console, title: str, comparisons) -> int:
    """A table row per pass and mode (what the core counted), a line per pass (speedups, ideal,
    achieved/ideal), then the verdict line; returns the exit status."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("pass", "mode", "commands", "outputs computed", "cycles busy",
                   "compute cycles", "bytes read", "bytes written", "= models"):
        table.add_column(column, justify="left" if column in ("pass", "mode") else "right")
    for c in comparisons:
        for mode, run in (("dense", c.dense), ("sparse", c.sparse)):
            counters, status = run.counters, run.run.status
            agrees = "yes" if run.agrees else "NO"
            if status["error"]:
                agrees += f" ({status['error_code']})"
            table.add_row(c.label if mode == "dense" else "", mode,
                          f"{len(run.run.statuses)}",
                          f"{counters['outputs']} of {c.dense.counters['outputs']}",
                          f"{counters['cycles_busy']:,}", f"{counters['compute_cycles']:,}",
                          f"{counters['bytes_read']:,}", f"{counters['bytes_written']:,}",
                          agrees)
    console.print(table)
    for c in comparisons:
        if c.dense.operand:
            names = {"a": "A", "dz": "dZ"}
            console.print(f"{c.label} broadcasts {names[c.dense.operand]} in dense mode, "
                          f"{names[c.sparse.operand]} in sparse mode (each its faster)")
    for c in comparisons:
        busy, compute = c.busy, c.compute
        console.print(f"{c.label}: speedup {format_speedup(busy.speedup)} (cycles busy), "
                      f"{format_speedup(compute.speedup)} (compute cycles); ideal "
                      f"{format_speedup(compute.ideal)}; achieved/ideal "
                      f"{format_ratio(busy.efficiency)} (cycles busy), "
                      f"{format_ratio(compute.efficiency)} (compute cycles)")
    ok = all(c.agrees for c in comparisons)
    shifts = sorted({c.shift for c in comparisons})
    seeds = sorted({c.sparse.run.seed for c in comparisons})
    console.print(f"{'PASS' if ok else 'FAIL'}: every output bit-exact against the golden model "
                  f"(requantized, shift {', '.join(map(str, shifts))}), busy and compute "
                  f"cycles and bytes moved equal to the core's cycle model, dense and sparse "
                  f"({comparisons[0].sparse.run.simulator}, seed {', '.join(map(str, seeds))})")
    return 0 if ok else 1


def _demo(args):
    from maskprop.base.metrics import totals

    config = _config(args, "engine" if args.engine else "core")
    core = _core_config(args, config, "engine" if args.engine else "core")
    if not args.engine:
        for option, value in (("--pass", args.pass_name), ("--rows", args.rows)):
            if value is not None:
                raise UsageError(f"{option} applies to the one-tile engine only: add --engine")
    check_output_dir(args.out, "--out")
    record = _digits_record(args.layer, args.variant)
    console = _console()
    if args.engine:
        args.pass_name = args.pass_name or "backward_data"
        record.layer.check_accumulation(config, passes=(args.pass_name,))
        return _engine_demo(console, record, config, args)
    passes = ["backward_data", "backward_weight"]
    _check_block_passes(record.layer, passes, config, core)
    component = _core_block(core)[0]
    tensors = dict(A=record.A, W=record.W, dZ=record.dZ)
    comparisons = _run_core_passes(console, record.layer, tensors, passes, core, component,
                                   args)
    status = _print_core_comparisons(console, _layer_title(
        record.layer, f"backward pass, {args.variant} digits CNN, real ReLU masks, on the core "
                      f"({_core_text(core)})"), comparisons)
    console.print()
    for what, terms in (("cycles busy", [c.busy for c in comparisons]),
                        ("compute cycles", [c.compute for c in comparisons])):
        total = totals(terms)
        console.print(f"backward pass ({_labels(passes)}), {what}: dense "
                      f"{total.dense_cycles:,}, sparse {total.sparse_cycles:,}; speedup "
                      f"{format_speedup(total.speedup)}, ideal {format_speedup(total.ideal)}, "
                      f"achieved/ideal {format_ratio(total.efficiency)}")
    return status


def _labels(passes) -> str:
    return " and ".join(map(pass_label, passes))


def _engine_demo(console, record, config, args):
    from rich.table import Table

    from maskprop.host.runs import compare_on_engine
    from maskprop.sim.lowering import lower_pass

    gemm = lower_pass(record.layer, args.pass_name, A=record.A, W=record.W, dZ=record.dZ)
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
    for mode, run in (("dense", result.dense), ("sparse", result.sparse)):
        macs = run.counters["macs"]
        table.add_row(mode, str(run.counters["outputs"]), str(macs), str(run.cycles),
                      str(run.model), f"{macs / (run.cycles * config.lanes):.2f}")
    console.print(table)
    console.print(f"speedup {format_speedup(result.speedup)}, ideal {format_speedup(result.ideal)} "
                  f"(dense multiplier slots / nonzero MACs), "
                  f"achieved/ideal {format_ratio(result.efficiency)}")
    verdict = "PASS" if result.exact else "FAIL"
    seconds = result.dense.seconds + result.sparse.seconds
    console.print(f"{verdict}: {result.outputs_dense + result.outputs_sparse} outputs bit-exact "
                  f"against the golden model; {seconds:.1f} s; logs in {args.out}")
    return 0 if result.exact else 1


_LAYER_FIELD = re.compile(r"\s*[+-]?[0-9]+\s*")


def _parse_layer(spec: str):
    from maskprop.sim.layer import ConvLayer

    parts = spec.split(",")
    usage = (f"--layer must be N,C,H,W,K,R[,stride[,padding]] (integers) or "
             f"digits:LAYER[:plain|batchnorm], not {spec!r}")
    # ASCII digits only: int() would also take "1_000" and other scripts' digits.
    if not 6 <= len(parts) <= 8 or not all(_LAYER_FIELD.fullmatch(p) for p in parts):
        raise UsageError(usage)
    try:
        numbers = [int(part) for part in parts]
    except ValueError:                        # more digits than Python converts
        raise UsageError(usage) from None
    n, c, h, w, k, r, *rest = numbers
    try:
        return ConvLayer(batch=n, in_channels=c, height=h, width=w, out_channels=k, kernel=r,
                         stride=rest[0] if rest else 1,
                         padding=rest[1] if len(rest) > 1 else r // 2, name="layer")
    except ValueError as error:
        raise UsageError(f"--layer {spec}: {error}") from None


def _parse_digits_layer(spec: str):
    """``digits:LAYER[:plain|batchnorm]`` -> ``(record, variant)``."""
    _, *fields_ = spec.split(":")
    if not 1 <= len(fields_) <= 2 or not fields_[0]:
        raise UsageError(f"--layer must be digits:LAYER[:plain|batchnorm], not {spec!r}")
    variant = fields_[1] if len(fields_) == 2 else "plain"
    try:
        return _digits_record(fields_[0], variant), variant
    except UsageError:
        raise
    except ValueError as error:
        raise UsageError(f"--layer {spec}: {error}") from None


def _seed(args) -> int:
    """``--seed``, else ``MASKPROP_SEED``, else a fresh one (printed with the results)."""
    from maskprop.tb.stimulus import seed_from_env

    if args.seed is not None:
        return args.seed
    try:
        seed = seed_from_env()
    except ValueError:
        raise UsageError(f"MASKPROP_SEED must be an integer, not "
                         f"{os.environ.get('MASKPROP_SEED')!r}") from None
    if not 0 <= seed <= SEED_MAX:
        raise UsageError(f"MASKPROP_SEED must be an integer in [0, {SEED_MAX}], not {seed}")
    return seed


def _sim(args):
    from maskprop.workloads.synthetic import DEFAULT_DENSITY, read_layer_masks, synthetic_tensors

    config = _config(args, args.block)
    core = _core_config(args, config, args.block)
    check_output_dir(args.out, "--out")
    if args.density is not None and not 0.0 <= args.density <= 1.0:    # NaN fails this too
        raise UsageError(f"--density must be in [0, 1], not {args.density}")
    if args.layer.startswith("digits:"):
        if args.density is not None or args.masks is not None or args.batchnorm:
            raise UsageError("a digits layer brings its own tensors: drop --density, --masks "
                             "and --batchnorm (digits:LAYER:batchnorm picks that variant)")
        record, variant = _parse_digits_layer(args.layer)
        layer = record.layer
        _check_block_passes(layer, [args.pass_name], config, core)
        batchnorm = "with BatchNorm" if variant == "batchnorm" else "without BatchNorm"
        source = f"digits CNN {batchnorm}, real ReLU masks"

        def make_tensors():
            return dict(A=record.A, W=record.W, dZ=record.dZ)
    else:
        layer = _parse_layer(args.layer)
        _check_block_passes(layer, [args.pass_name], config, core)
        masks = None if args.masks is None else read_layer_masks(args.masks, layer,
                                                                 where=f"--masks {args.masks}")
        args.seed = _seed(args)
        density = DEFAULT_DENSITY if args.density is None else args.density
        source = (f"masks from {args.masks}" if args.masks else
                  f"synthetic i.i.d. masks, density {density}")
        if args.batchnorm:
            source += ", dZ dense (BatchNorm)"

        def make_tensors():
            return synthetic_tensors(layer, config, args.seed, density=args.density,
                                     masks=masks, dense_dz=args.batchnorm)
    # The core is made (and refuses what it cannot generate) after every other check and
    # before any tensor: so a refusal comes before any work, and a core made is a core used.
    component = None if core is None else _core_block(core)[0]
    tensors = make_tensors()
    console = _console()
    what = f"{pass_label(args.pass_name)}, {source}"
    if core is not None:
        comparisons = _run_core_passes(console, layer, tensors, [args.pass_name], core,
                                       component, args)
        return _print_core_comparisons(
            console, _layer_title(layer, f"{what}; core: {_core_text(core)}"), comparisons)
    comparisons = _run_passes(console, layer, tensors, [args.pass_name], config, args)
    return _print_comparisons(
        console, _layer_title(layer, f"{what}; tile array: {_array_text(config)}"), comparisons)


def _network_names(requested) -> list:
    """``--network`` values, ``all`` expanded, each network once, in the order given."""
    names = []
    for name in requested or ["all"]:
        if name not in NETWORK_NAMES + ("digits", "all"):
            raise UsageError(f"--network must be one of {', '.join(NETWORK_NAMES)}, digits or "
                             f"all, not {name!r}")
        for each in NETWORK_NAMES if name == "all" else (name,):
            if each not in names:
                names.append(each)
    return names


def _mask_source(spec: str, network_name: str, net, seed: int):
    """The masks ``--profile`` gives ``net`` (network ``network_name``), checked now."""
    from maskprop.evaluation.evaluate import ProfileMasks, checked_profile
    from maskprop.workloads import profiles

    if spec == "literature":
        return ProfileMasks(profiles.literature_profile(network_name), seed=seed)
    if spec.startswith("synthetic:"):
        _, density, *model = spec.split(":")
        if len(model) > 1:
            raise UsageError(f"--profile must be synthetic:DENSITY[:{'|'.join(MASK_MODELS)}], "
                             f"not {spec!r}")
        try:
            density = float(density)
        except ValueError:
            raise UsageError(f"--profile synthetic:DENSITY needs a number, not {density!r}") \
                from None
        if not 0.0 <= density <= 1.0:                                   # NaN fails this too
            raise UsageError(f"--profile synthetic density must be in [0, 1], not {density}")
        model = model[0] if model else MASK_MODELS[0]
        if model not in MASK_MODELS:
            raise UsageError(f"--profile synthetic mask model must be "
                             f"{' or '.join(MASK_MODELS)}, not {model!r}")
        return ProfileMasks(profiles.synthetic_profile(network_name, density, model=model),
                            seed=seed)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--profile must be literature, synthetic:DENSITY[:MODEL] or an "
                         f"existing profile file, not {spec!r}")
    try:
        profile = checked_profile(path, network_name, net)
    except ValueError as error:
        # Name the option; the file's name is in the message already when the profile or its
        # masks file said what is wrong with it.
        raise UsageError(f"--profile: {error}" if spec in str(error)
                         else f"--profile {spec}: {error}") from None
    return ProfileMasks(profile, seed=seed)


def _evaluation_files(jobs, evaluations, out: Path) -> dict:
    """Every output of ``maskprop eval``: ``{path: text or PNG bytes}``."""
    from maskprop.evaluation.evaluate import own_scenario
    from maskprop.evaluation.plots import layers_png, summary_png

    files = {}
    for (name, net, _), evaluation in zip(jobs, evaluations):
        files[out / f"{name}.csv"] = evaluation.csv_text()
        files[out / f"{name}.json"] = evaluation.json_text()
        files[out / f"{name}_layers.png"] = layers_png(evaluation, own_scenario(net))
    files[out / "summary.png"] = summary_png(evaluations)
    summary = [row for e in evaluations for row in e.summary()]
    files[out / "summary.json"] = json.dumps(summary, indent=2)
    return files


def _check_bandwidth(bandwidth) -> None:
    """Refuse ``--bandwidth`` as the data-movement model would (a positive, finite number of
    bytes per cycle), before any work; None is the model's default."""
    from maskprop.sim.data_movement import memory_cycles

    if bandwidth is None:
        return
    try:
        memory_cycles(0, bandwidth)
    except ValueError as error:
        raise UsageError(f"--{error}" if str(error).startswith("bandwidth ")
                         else f"--bandwidth: {error}") from None


def _movement_lines(evaluations) -> list:
    """The training step with its data movement at the evaluation's bandwidth, a line per
    network and scenario: speedup with memory and compute overlapped and one after the other,
    and the energy ratio."""
    from maskprop.evaluation.evaluate import SCENARIOS

    # One configuration and one --bandwidth for every network: one bandwidth.
    core = evaluations[0].core
    lines = [f"Training step with its DRAM traffic at {evaluations[0].bandwidth:g} bytes per "
             f"cycle, every pass split into commands for a core of {core.x_words} X words, "
             f"{core.array.y_words} Y words and {core.row_block_chunks} row-block chunks "
             f"(overlapped: fully; serial: not at all; the core is between):"]
    for evaluation in evaluations:
        for scenario in SCENARIOS:
            movement = evaluation.movement_total(scenario, "training step")
            lines.append(f"  {evaluation.network}, {scenario}: speedup "
                         f"{format_speedup(movement.speedup_overlapped)} overlapped, "
                         f"{format_speedup(movement.speedup_serial)} serial; energy dense/sparse "
                         f"{format_speedup(movement.energy_ratio)}")
    return lines


def _totals_table(title: str, extra_columns):
    """A table of ``maskprop eval``: a row per network and scenario, a column per total
    (forward, backward, training step), then ``extra_columns`` (``(name, justify)``)."""
    from rich.table import Table

    from maskprop.evaluation.evaluate import TOTALS

    table = Table(title=title)
    table.add_column("network")
    table.add_column("BatchNorm")
    for which in TOTALS:
        table.add_column(which, justify="right")
    for name, justify in extra_columns:
        table.add_column(name, justify=justify)
    return table


def _join_table(evaluations, config):
    """The join array beside the tile array: per network and scenario, its speedup over the
    tile array's dense mode and achieved/ideal (in parentheses) per total, the pass it does
    worst in, and whether its cycles are exact."""
    from maskprop.evaluation.evaluate import SCENARIOS, TOTALS

    join = evaluations[0].join
    table = _totals_table(f"Join array ({config.tiles} tiles x {config.lanes} lanes, look-ahead "
                          f"{join.group}, queue {join.queue}, ring {join.ring}; compute "
                          f"only), speedup over the tile array's dense mode; achieved/ideal in "
                          f"parentheses", [("worst pass", "right"), ("cycles", "left")])
    for evaluation in evaluations:
        for scenario in SCENARIOS:
            terms = [evaluation.join_total(scenario, which) for which in TOTALS]
            worst = evaluation.join_worst_pass(scenario)
            exact = {r.join_exact for r in evaluation.rows if r.scenario == scenario}
            table.add_row(evaluation.network, scenario,
                          *(f"{format_speedup(t.speedup)} ({format_ratio(t.efficiency)})"
                            for t in terms),
                          NO_WORK if worst is None
                          else f"{pass_label(worst[0])} ({format_ratio(worst[1])})",
                          "exact" if exact == {True} else
                          "bound" if exact == {False} else "exact on small passes, else bound")
    return table


def _eval(args):
    from rich.progress import Progress
    from rich.table import Table

    from maskprop.evaluation.evaluate import (SCENARIOS, TOTALS, check_evaluable,
                                              digits_evaluation_inputs, evaluate)
    from maskprop.workloads.networks import network

    names = _network_names(args.network)
    # Whole networks need buffers the RTL would tile; the cycle model assumes they fit.
    config = _config(args).for_evaluation()
    _check_bandwidth(args.bandwidth)
    check_output_dir(args.out, "--out")
    if "digits" in names and (args.profile is not None or args.batch is not None):
        raise UsageError("the digits CNN is evaluated with its own real masks and batch; "
                         "drop --profile and --batch")
    jobs = []
    for name in names:
        if name == "digits":
            net, source = digits_evaluation_inputs()
        else:
            net = network(name, batch=args.batch or 1)
            spec = "literature" if args.profile is None else args.profile   # "" is no spec
            source = _mask_source(spec, name, net, args.seed)
        try:
            check_evaluable(net, config)
        except ValueError as error:
            if args.batch is None:
                raise
            raise UsageError(f"--batch {args.batch}: {error}") from None
        jobs.append((name, net, source))
    join = JoinSettings() if args.join else None
    if join is not None:
        try:
            check_join_lanes(config)
        except ValueError as error:
            raise UsageError(f"--join: {error}") from None
    console = _console()
    evaluations = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("cycle model", total=sum(len(net.layers) for _, net, _ in jobs))
        for name, net, source in jobs:
            progress.update(task, description=f"cycle model: {net.name}")
            evaluations.append(evaluate(net, source, config, bandwidth=args.bandwidth,
                                        join=join,
                                        progress=lambda n: progress.advance(task, n)))
    table = _totals_table(f"Tile array ({config.tiles} tiles x {config.lanes} lanes, vec "
                          f"{config.vec}), speedup over dense mode on the same RTL (cycle "
                          f"model); ideal in parentheses",
                          [("achieved/ideal (step)", "right"), ("masks", "left")])
    for evaluation in evaluations:
        for scenario in SCENARIOS:
            totals = [evaluation.total(scenario, which) for which in TOTALS]
            table.add_row(evaluation.network, scenario,
                          *(f"{format_speedup(t.speedup)} ({format_speedup(t.ideal)})"
                            for t in totals),
                          format_ratio(totals[-1].efficiency), evaluation.profile)
    console.print(table)
    if join is not None:
        console.print(_join_table(evaluations, config))
    for line in _movement_lines(evaluations):
        console.print(line)
    if args.layers:
        for evaluation in evaluations:
            layers = Table(title=f"{evaluation.network}: every layer and pass")
            for column in ("scenario", "layer", "pass", "A density", "dZ density",
                           "dense cycles", "sparse cycles", "speedup", "ideal", "achieved/ideal"):
                layers.add_column(column, justify="left" if column in
                                  ("scenario", "layer", "pass") else "right")
            for r in evaluation.rows:
                layers.add_row(r.scenario, r.layer, pass_label(r.pass_name),
                               f"{r.a_density:.3f}", f"{r.dz_density:.3f}",
                               f"{r.dense_cycles:,}", f"{r.sparse_cycles:,}",
                               format_speedup(r.speedup), format_speedup(r.ideal),
                               format_ratio(r.efficiency))
            console.print(layers)
    written = write_outputs(_evaluation_files(jobs, evaluations, args.out), "--out")
    console.print(f"wrote {len(written)} files to {args.out}: per-network CSV, JSON and "
                  f"per-layer PNG, summary.png, summary.json")
    return 0


def _flow(args):
    from maskprop.flow.fpga import resolve_device, run_flow

    config = _config(args, args.block)
    core = _core_config(args, config, args.block)
    if args.compare_dense and args.block not in DENSE_ONLY_BLOCKS:
        raise UsageError("--compare-dense applies to the engine and the array only")
    try:
        device = resolve_device(args.target, args.device
                                or FLOW_DEVICE.get((args.block, args.target)))
    except ValueError as error:
        raise UsageError(f"--device: {error}") from None
    if args.block in ("array", "core"):
        _check_generatable(config)
    if args.out is not None:
        check_output_dir(args.out, "--out")
    if args.json is not None:
        check_output_file(args.json, "--json")
    variants = [args.dense_only] + ([True] if args.compare_dense else [])
    if core is not None:
        components = [_build(args, config, core)]
    else:
        components = [build_block(args.block, config, dense_only=d) for d in variants]
    reports = []
    for component, name in components:
        workdir = args.out or Path("out/flow") / f"{name}-{args.target}"
        if args.out and len(variants) > 1:
            workdir = args.out / name
        reports.append(run_flow(component, name, args.target, workdir, device=device,
                                place_and_route=not args.synth_only, router=args.router))
        print(reports[-1].format())
    if len(reports) == 2:
        sparse, dense = reports
        fmax = ("" if sparse.fmax_mhz is None or dense.fmax_mhz is None else
                f", Fmax x{sparse.fmax_mhz / dense.fmax_mhz:.2f}")
        print(f"zero-skipping cost: LUT4 x{sparse.luts / dense.luts:.2f}, "
              f"FF x{sparse.ffs / dense.ffs:.2f}, DSP {sparse.dsps} vs {dense.dsps}{fmax} "
              f"(sparse / dense-only, {args.target}, same run)")
    if args.json:
        # What was built beside what it cost: the block and its whole configuration.
        built = dataclasses.asdict(core if core is not None else config)
        payload = [{"block": args.block, "config": built, **r.as_dict()} for r in reports]
        write_outputs({args.json: json.dumps(payload[0] if len(payload) == 1 else payload,
                                             indent=2)}, "--json")


def _board(args):
    from maskprop.flow.board import BOARDS, board_clock, build_board, uart_divisor

    spec = BOARDS[args.board]
    clock_hz = None if args.clock_mhz is None else round(args.clock_mhz * 1e6)
    try:
        design_hz, _ = board_clock(spec, clock_hz)
    except ValueError as error:
        raise UsageError(f"--clock-mhz: {error}") from None
    try:
        uart_divisor(design_hz, args.baud)
    except ValueError as error:
        raise UsageError(f"--baud: {error}") from None
    out = args.out or Path("out/build") / args.board
    check_output_dir(out, "--out")
    if args.json is not None:
        check_output_file(args.json, "--json")
    report = build_board(spec, out, baud=args.baud, seed=args.seed, router=args.router,
                         synth_only=args.synth_only, clock_hz=clock_hz)
    print(report.format())
    if args.json:
        write_outputs({args.json: json.dumps(report.as_dict(), indent=2)}, "--json")
    # No bitstream because the design does not fit the part: the report says why; status 1.
    return 1 if report.overflow or not (report.bitstream or args.synth_only) else 0


def _train(args):
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeElapsedColumn

    from maskprop.flow.board import BOARDS, board_clock, uart_divisor
    from maskprop.training.digits import (DEFAULT_BATCH, DeviceConvs, DigitsTrainer,
                                          GoldenConvs, TrainingSettings)

    batch = DEFAULT_BATCH[args.variant] if args.batch is None else args.batch
    try:
        settings = TrainingSettings(variant=args.variant, steps=args.steps, batch=batch,
                                    lr=args.lr, seed=args.seed, eval_every=args.eval_every)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.device not in ("sim", "golden") and not args.device.startswith("serial:"):
        raise UsageError(f"--device must be sim, golden or serial:PORT, not {args.device!r}")
    if args.json is not None:
        check_output_file(args.json, "--json")
    spec = BOARDS["ulx3s-85f"]
    try:
        divisor = uart_divisor(board_clock(spec, None)[0], args.baud)
    except ValueError as error:
        raise UsageError(f"--baud: {error}") from None
    with contextlib.ExitStack() as stack:
        if args.device == "golden":
            backend = GoldenConvs()
        else:
            from maskprop.device import Device, SerialTransport, SimulatedBoard
            from maskprop.hw.board_top import BoardTop
            if args.device == "sim":
                top = BoardTop(spec.core, memory_words=spec.memory_words, divisor=4)
                transport = SimulatedBoard(top)
            else:
                top = BoardTop(spec.core, memory_words=spec.memory_words, divisor=divisor)
                transport = SerialTransport(args.device.split(":", 1)[1], args.baud)
            stack.enter_context(transport)
            backend = DeviceConvs(Device(transport, top.register_map, timeout=600),
                                  check=args.check)
        # Every backend on the board's memory: the same passes, so the golden model's run
        # is the board's.
        trainer = DigitsTrainer(settings, spec.core, backend, memory_bytes=spec.memory_bytes)
        reports, seconds = [], []
        columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
                   MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                   TimeElapsedColumn())
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task(f"training ({args.device})", total=settings.steps,
                                     status="")
            for _ in range(settings.steps):
                started = time.monotonic()
                report = trainer.step()
                seconds.append(time.monotonic() - started)
                reports.append(report)
                accuracy = next((r.test_accuracy for r in reversed(reports)
                                 if r.test_accuracy is not None), None)
                progress.update(task, advance=1, status=(
                    f"loss {report.loss:.3f}  speedup {report.speedup:.2f}x"
                    + (f"  test accuracy {accuracy:.3f}" if accuracy is not None else "")))
    first, last = reports[0], reports[-1]
    sparse = sum(r.sparse_cycles for r in reports)
    dense = sum(r.dense_cycles for r in reports)
    print(f"{settings.steps} steps of {settings.batch} images ({trainer.pass_batch} a pass) on "
          f"{args.device} in {sum(seconds):.1f} s: loss {first.loss:.3f} -> {last.loss:.3f}, "
          f"test accuracy {last.test_accuracy:.3f}; compute cycles sparse {sparse:,}, dense "
          f"{dense:,} (speedup {dense / sparse:.2f}x)"
          + ("; every pass equal to the golden model's" if args.check and
             args.device != "golden" else ""))
    if args.json:
        write_outputs({args.json: json.dumps(
            {"settings": dataclasses.asdict(settings), "device": args.device,
             "pass_batch": trainer.pass_batch, "check": args.check,
             "load_1min": os.getloadavg()[0], "cpus": os.cpu_count(),
             "steps": [dict(dataclasses.asdict(r), speedup=r.speedup, seconds=t)
                       for r, t in zip(reports, seconds)]},
            indent=2)}, "--json")


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(argv)
        _check_int_options(args)
        from maskprop.cli import profile as profile_cmd
        handler = {"generate": _generate, "demo": _demo, "sim": _sim, "eval": _eval,
                   "profile": profile_cmd.run, "flow": _flow, "build": _board,
                   "train": _train}[args.command]
        return handler(args) or 0
    except (UsageError, ValueError, ToolchainError, ImportError) as error:
        # One line whatever the message holds (a user's exception text, a file name).
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        print(f"maskprop: error: {message or type(error).__name__}", file=sys.stderr)
        return 2
    except SimulationError as error:
        # Not bad input: the simulation itself failed. One line, naming the log, exit status 1
        # (as for a run whose results differ from the golden model).
        print(f"maskprop: simulation failed: {error}", file=sys.stderr)
        return 1
    except FlowError as error:
        # Not bad input either: a tool failed, or the design does not fit the device. Its
        # message names the command and ends with the tail of the tool's log; exit status 1.
        print(f"maskprop: flow failed: {error}", file=sys.stderr)
        return 1

