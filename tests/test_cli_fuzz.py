"""Fuzzing the command line (issue 8): whatever malformed layer, file or option ``maskprop sim``,
``generate``, ``eval`` and ``profile`` are given, they answer with exactly one line on stderr,
``maskprop: error: ...``, and exit status 2, before computing anything and without writing
anything.

Every drawn command line is a valid one with at least one defect, so no draw may be accepted.
The expensive steps (making a layer's tensors, lowering a pass, evaluating a network, generating
Verilog, simulating) are tripwires that fail the test when reached: every refusal must come
before them. The commands run in-process (``maskprop.cli.main.main``) in a fresh working directory
holding only the example's input files; afterwards it must hold exactly those, unchanged.
Hypothesis runs derandomized, so a failure reproduces as it is, and prints the failing example.
"""

import contextlib
import importlib
import io
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskprop.cli.main import BLOCKS, main
from maskprop.sim.layer import PASS_ALIASES
from maskprop.workloads.networks import NETWORK_NAMES

FUZZ_SETTINGS = settings(max_examples=120, deadline=None, derandomize=True, print_blob=True,
                         suppress_health_check=[HealthCheck.too_slow])

#: Every example's working directory holds these besides its input files, so that output paths
#: can name an existing file or directory.
A_FILE, A_DIRECTORY = "file.txt", "dir"


class ExpensiveStep(AssertionError):
    """Raised by a tripwire. maskprop's main() catches only the errors of bad input, so this
    reaches the test, which Hypothesis then shrinks and prints."""


TRIPWIRES = ("maskprop.workloads.synthetic.synthetic_tensors", "maskprop.sim.lowering.lower_pass",
             "maskprop.evaluation.evaluate.evaluate", "maskprop.flow.verilog.generate_verilog",
             "maskprop.host.runs.compare_on_array", "maskprop.host.runs.compare_on_engine",
             "maskprop.host.runs.compare_on_core")
# Every module a tripwire is set in, imported now: one first imported while a tripwire is set
# would keep it for good (e.g. maskprop.sim.cycle_model's ``from ... import lower_pass``).
for _target in TRIPWIRES:
    importlib.import_module(_target.rsplit(".", 1)[0])


def _tripwire(name):
    def reached(*args, **kwargs):
        raise ExpensiveStep(f"{name} was reached by an input that must be refused before it")
    return reached


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else "directory"
            for p in sorted(root.rglob("*"))}


# --- the pieces of a command line ---------------------------------------------------------------

@dataclass(frozen=True)
class Set:
    """Give ``option`` the value ``value`` (replacing the base's); ``option`` "BLOCK" is
    generate's positional argument."""
    option: str
    value: str


@dataclass(frozen=True)
class Drop:
    """Leave ``option`` out."""
    option: str


@dataclass(frozen=True)
class Flag:
    """Add the flag ``option``."""
    option: str


@dataclass(frozen=True)
class File:
    """Give ``option`` a file made by recipe ``recipe`` (with ``data``) in the inputs."""
    option: str
    recipe: str
    data: object = None


def _command_line(command, base: dict, defects, work: Path) -> list:
    options = dict(base)
    flags = []
    for index, defect in enumerate(defects):
        if isinstance(defect, Set):
            options[defect.option] = defect.value
        elif isinstance(defect, Drop):
            options.pop(defect.option, None)
        elif isinstance(defect, Flag):
            flags.append(defect.option)
        else:
            options[defect.option] = str(_make_file(defect, work / "inputs", index))
            if defect.option == "--masks":       # --density and --masks exclude each other
                options.pop("--density", None)
    argv = [command] + ([options.pop("BLOCK")] if "BLOCK" in options else [])
    for option, value in options.items():
        argv += [option, value]
    return argv + flags


# --- files --------------------------------------------------------------------------------------

LAYER_SHAPE = (2, 4, 4, 4)            # A and dZ of the base layer 2,4,4,4,4,3 (padding 1)

GOOD_MODEL = """
import torch
def model():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(2, 2, 3, padding=1))
"""

BROKEN_MODELS = {
    "import raises": "raise {exception}('broken at import')\n",
    "import exits": "import sys\nsys.exit({code})\n",
    "syntax error": "def model(:\n",
    "no function": "import torch\n",
    "constructor raises": "def model():\n    raise {exception}('cannot build')\n",
    "constructor exits": "import sys\ndef model():\n    sys.exit({code})\n",
    "not a module": "def model():\n    return 42\n",
    "eval mode": GOOD_MODEL + "_build = model\ndef model():\n    return _build().eval()\n",
    "forward raises": GOOD_MODEL.replace("def model():", (
        "class Net(torch.nn.Conv2d):\n    def forward(self, x):\n"
        "        raise {exception}('broken in forward')\n"
        "def model():\n    return Net(1, 1, 1)\ndef unused():")),
    "forward exits": GOOD_MODEL.replace("def model():", (
        "import sys\nclass Net(torch.nn.Conv2d):\n    def forward(self, x):\n"
        "        sys.exit({code})\n"
        "def model():\n    return Net(1, 1, 1)\ndef unused():")),
    "no conv": "import torch\ndef model():\n    return torch.nn.Flatten()\n",
}
EXCEPTIONS = ("ValueError", "RuntimeError", "KeyError", "TypeError", "ZeroDivisionError",
              "AssertionError", "MemoryError", "RecursionError", "GeneratorExit", "OSError")
EXIT_CODES = ("", "0", "1", "3", "'bye'", "None")


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _profile_json(**changes):
    """A valid alexnet profile, then ``changes`` (``None`` deletes a key)."""
    data = {"format": "maskprop-profile/1", "network": "alexnet", "source": "measured",
            "description": "fuzz", "batch": 1,
            "layers": {name: {"A": 0.5} for name in
                       ("features.0", "features.3", "features.6", "features.8", "features.10")}}
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return json.dumps(data)


def _make_file(file: File, inputs: Path, index: int) -> Path:
    """The input file of ``file.recipe`` for defect ``index``; its name has the option's
    expected suffix."""
    inputs.mkdir(exist_ok=True)
    suffix = {"--model": ".py", "--profile": ".json"}.get(file.option, ".npz")
    path = inputs / f"input{index}{suffix}"
    recipe, data = file.recipe, file.data
    if recipe == "missing":
        return path
    if recipe == "directory":
        path.mkdir()
        return path
    if recipe == "under a file":
        path.write_bytes(b"")
        return path / f"inner{suffix}"
    if recipe == "npy":
        np.save(inputs / f"input{index}.npy", np.ones(LAYER_SHAPE))
        return inputs / f"input{index}.npy"
    if recipe == "bytes":
        path.write_bytes(data)
    elif recipe == "text":
        path.write_text(data)
    elif recipe == "truncated":
        cut = data
        _npz(path, A=np.ones(LAYER_SHAPE, bool), dZ=np.zeros(LAYER_SHAPE, bool),
             inputs=np.ones((2, 1, 5, 5), np.float32))
        whole = path.read_bytes()
        path.write_bytes(whole[:cut % len(whole)])
    elif recipe == "arrays":                     # data: {name: (shape, dtype, fill)}
        _npz(path, **{name: np.full(shape, fill, dtype=dtype)
                      for name, (shape, dtype, fill) in data.items()})
    elif recipe == "model":
        source, exception, code = data
        path.write_text(BROKEN_MODELS[source].format(exception=exception, code=code))
    elif recipe == "profile":
        path.write_text(data)
    else:
        raise AssertionError(f"unknown recipe {recipe!r}")
    return path


# --- strategies ---------------------------------------------------------------------------------

def _not_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return True
    return False


non_integers = st.one_of(
    st.sampled_from(["", " ", "1.5", "abc", "0x10", "1e3", "seven", "--", "nan"]),
    st.text(max_size=6).filter(_not_int))


def _outside(low, high):
    """Integers outside ``[low, high]``, big ones included, or text that is no integer."""
    return st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1),
                     st.integers(min_value=high + 1, max_value=high + 5),
                     st.just(str(10**40))).map(str) | non_integers


CONFIG_DEFECTS = st.one_of(
    *(st.builds(Set, st.just(option), _outside(low, high)) for option, low, high in (
        ("--vec", 1, 64), ("--lanes", 1, 64), ("--tiles", 1, 64), ("--data-width", 2, 32),
        ("--acc-width", 4, 64), ("--tree-stages", 0, 6), ("--col-block", 1, 64),
        ("--max-chunks", 1, 4096), ("--max-cols", 1, 65536))),
    st.builds(Set, st.just("--max-chunks"),
              st.integers(3, 4095).filter(lambda n: n & (n - 1)).map(str)))

seed_defects = st.builds(Set, st.just("--seed"), _outside(0, 2**32 - 1))

# Directories where a directory is wanted, and files where a file is, that cannot be.
bad_directories = st.sampled_from([A_FILE, f"{A_FILE}/run", f"{A_FILE}/a/b", "/proc/maskprop-fuzz",
                                   "/proc/maskprop-fuzz/run"])
bad_files = st.sampled_from([A_DIRECTORY, ".", f"{A_FILE}/x.out", f"{A_FILE}/a/x.out",
                             "/proc/maskprop-fuzz/x.out", "/proc"])

_LAYER_LIKE = re.compile(r"(\s*[+-]?[0-9]+\s*,){5,7}\s*[+-]?[0-9]+\s*", re.ASCII)
_LAYER_FIELD = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
# Upper bounds of the layer fields N, C, H, W, K (sim/layer.py MAX_EXTENT) and R, stride, padding.
_FIELD_MAX = (1 << 16,) * 5 + (1 << 8,) * 3


@st.composite
def bad_layers(draw):
    """A --layer text that no shape check may accept."""
    kind = draw(st.sampled_from(["count", "token", "not positive", "too large", "kernel",
                                 "too many elements", "text", "digits"]))
    fields = [str(draw(st.integers(1, 6))) for _ in range(draw(st.integers(6, 8)))]
    if kind == "count":
        count = draw(st.sampled_from([1, 2, 3, 4, 5, 9, 10, 12]))
        return ",".join(str(draw(st.integers(1, 9))) for _ in range(count))
    if kind == "token":
        token = draw(st.text(min_size=0, max_size=5).filter(
            lambda t: "," not in t and not _LAYER_FIELD.fullmatch(t)))
        fields[draw(st.integers(0, len(fields) - 1))] = token
    elif kind == "not positive":
        index = draw(st.integers(0, len(fields) - 1))
        fields[index] = str(draw(st.integers(max_value=-1 if index == 7 else 0)))
    elif kind == "too large":
        index = draw(st.integers(0, len(fields) - 1))
        fields[index] = str(draw(st.integers(_FIELD_MAX[index] + 1, 10**30)))
    elif kind == "kernel":                     # height + 2 * padding < kernel, padding 0
        kernel = draw(st.integers(2, 256))
        fields = [str(v) for v in (1, 1, draw(st.integers(1, kernel - 1)), kernel, 1, kernel, 1,
                                   0)]
    elif kind == "too many elements":          # every field in range, A > 2**22 elements
        height, width = draw(st.integers(2049, 1 << 16)), draw(st.integers(2049, 1 << 16))
        fields = [str(v) for v in (draw(st.integers(1, 64)), draw(st.integers(1, 64)), height,
                                   width, draw(st.integers(1, 64)), 1,
                                   draw(st.integers(1, 256)))]
    elif kind == "text":
        return draw(st.text(max_size=20).filter(
            lambda t: not _LAYER_LIKE.fullmatch(t) and not t.startswith("digits:")))
    else:
        return draw(st.sampled_from(["digits:", "digits:conv9", "digits:conv3:fancy",
                                     "digits:conv3:plain:x", "digits::plain", "digits:conv3:",
                                     "digits:conv3:batchnorm:", "digits:CONV3"]))
    return ",".join(fields)


def _bad_float_text(low, high):
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).filter(
            lambda x: not low <= x <= high).map(repr),
        st.sampled_from(["nan", "inf", "-inf", "1.0000001", "-0.0001", "half", "", "1/2"]))


@st.composite
def broken_npz(draw, names):
    """An --masks or --batch file that cannot be used (``names``: the arrays it needs)."""
    recipe = draw(st.sampled_from(["missing", "directory", "under a file", "npy", "bytes",
                                   "text", "truncated", "arrays"]))
    if recipe == "bytes":
        return File("", recipe, draw(st.binary(max_size=64)))
    if recipe == "text":
        return File("", recipe, draw(st.text(max_size=40)))
    if recipe == "truncated":
        return File("", recipe, draw(st.integers(0, 10**6)))
    if recipe != "arrays":
        return File("", recipe)
    first = names[0]
    problem = draw(st.sampled_from(["missing", "dtype", "NaN", "shape"]))
    good = {"A": (LAYER_SHAPE, bool, True), "dZ": (LAYER_SHAPE, bool, True),
            "inputs": ((2, 1, 5, 5), np.float32, 1.0)}
    arrays = {name: good[name] for name in names}
    if problem == "missing":
        arrays = {f"not_{first}": good[first]}
    elif problem == "dtype":
        shape = good[first][0]
        arrays[first] = draw(st.sampled_from([(shape, "U3", "abc"), (shape, object, None),
                                              (shape, complex, 1j), (shape, "S2", b"x"),
                                              (shape, "datetime64[s]", 0)]))
    elif problem == "NaN":
        arrays[draw(st.sampled_from(names))] = (good[first][0], np.float64, math.nan)
    else:                 # not the layer's shape; not a batch of images (no N x ... array)
        wrong = [(3,), (0, 1, 5, 5), ()] + ([(2, 4, 4, 5)] if first == "A" else [])
        arrays[first] = (draw(st.sampled_from(wrong)), np.float32, 1.0)
    return File("", "arrays", arrays)


def _with_option(option, files):
    return files.map(lambda f: File(option, f.recipe, f.data))


def _defects(*strategies):
    """One defect of those strategies (half the draws, so that every defect is met alone,
    not only behind a cheaper one checked first), or two or three."""
    defect = st.one_of(*strategies)
    return st.one_of(st.lists(defect, min_size=1, max_size=1),
                     st.lists(defect, min_size=2, max_size=3))


def _assert_refused(command, base, defects):
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        (work / A_FILE).write_text("kept")
        (work / A_DIRECTORY).mkdir()
        argv = _command_line(command, base, defects, work)
        before = _snapshot(work)
        stdout, stderr = io.StringIO(), io.StringIO()
        previous = os.getcwd()
        os.chdir(work)
        try:
            with contextlib.ExitStack() as stack:
                for target in TRIPWIRES:
                    stack.enter_context(mock.patch(target, _tripwire(target)))
                stack.enter_context(contextlib.redirect_stdout(stdout))
                stack.enter_context(contextlib.redirect_stderr(stderr))
                status = main(argv)
        finally:
            os.chdir(previous)
        err, out = stderr.getvalue(), stdout.getvalue()
        assert status == 2, (argv, status, err, out)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("maskprop: error: "), (argv, err)
        assert "Traceback" not in err + out and out == "", (argv, err, out)
        assert _snapshot(work) == before, (argv, "a refused command changed its files")


# --- the commands -------------------------------------------------------------------------------

SIM_BASE = {"--layer": "2,4,4,4,4,3", "--pass": "fwd", "--density": "0.5", "--seed": "1"}

# The core's own options, out of range or (x_words, max_burst) not a power of two: refused by
# the core, and by the tile array as options of the core only.
CORE_DEFECTS = st.one_of(
    *(st.builds(Set, st.just(option), _outside(low, high)) for option, low, high in (
        ("--x-words", 2, 65536), ("--addr-width", 12, 64), ("--max-burst", 1, 256),
        ("--max-outstanding", 1, 16))),
    *(st.builds(Set, st.just(option), st.integers(3, high - 1).filter(
        lambda n: n & (n - 1)).map(str)) for option, high in (("--x-words", 65536),
                                                              ("--max-burst", 256))))


@FUZZ_SETTINGS
@given(block=st.sampled_from(["core", "array"]), defects=_defects(
    st.builds(Set, st.just("--layer"), bad_layers()),
    st.builds(Set, st.just("--pass"), st.text(max_size=12).filter(
        lambda t: t not in PASS_ALIASES)),
    st.builds(Set, st.just("--density"), _bad_float_text(0.0, 1.0)),
    _with_option("--masks", broken_npz(["A", "dZ"])),
    seed_defects,
    st.builds(Set, st.just("--out"), bad_directories),
    CONFIG_DEFECTS,
    st.builds(Set, st.just("--layer"), st.sampled_from(["digits:conv2", "digits:conv3:plain"])),
    st.builds(Set, st.just("--block"), st.text(max_size=8).filter(
        lambda t: t not in ("core", "array"))),
    CORE_DEFECTS,
))
def test_sim_refuses_malformed_input(block, defects):
    """On either block: the core (the default) and the tile array."""
    _assert_refused("sim", {**SIM_BASE, "--block": block}, defects)


@FUZZ_SETTINGS
@given(defects=_defects(
    st.builds(Set, st.just("BLOCK"), st.text(max_size=10).filter(lambda t: t not in BLOCKS)),
    st.builds(Set, st.just("-o"), bad_files),
    st.just(Drop("-o")),
    st.just(Flag("--dense-only")),                  # the base block is the tree, not the engine
    CONFIG_DEFECTS,
))
def test_generate_refuses_malformed_input(defects):
    _assert_refused("generate", {"BLOCK": "tree", "-o": "out.v"}, defects)


bad_profiles = st.one_of(
    st.builds(lambda d: f"synthetic:{d}", _bad_float_text(0.0, 1.0)),
    st.builds(lambda m: f"synthetic:0.5:{m}",
              st.text(max_size=8).filter(lambda t: t not in ("iid", "clustered"))),
    st.just("synthetic:0.5:iid:extra"),
    st.text(max_size=15).filter(lambda t: t != "literature" and not t.startswith("synthetic:")),
)
profile_files = st.one_of(
    st.builds(File, st.just("--profile"), st.sampled_from(["missing", "directory",
                                                           "under a file"])),
    st.builds(File, st.just("--profile"), st.just("bytes"), st.binary(max_size=40)),
    st.builds(File, st.just("--profile"), st.just("text"), st.text(max_size=40)),
    st.builds(File, st.just("--profile"), st.just("profile"), st.sampled_from([
        _profile_json(layers={"features.0": {"A": float("nan")}}),
        _profile_json(layers={"features.0": {"A": float("inf")}}),
        _profile_json(layers={"features.0": {"A": 10**400}}),
        _profile_json(layers={"features.0": {"A": 0.5}}),      # no density for the others
        _profile_json(network="resnet18"),
        _profile_json(format="maskprop-profile/2"),
        _profile_json(description=None),
        _profile_json(masks="absent.npz", layers={}),
        _profile_json(masks=f"../{A_FILE}", layers={}),        # text, not an archive
        "[" * 50_000 + "]" * 50_000,
        "1" * 5000,
        "NaN",
    ])),
    st.builds(File, st.just("--profile"), st.just("profile"),
              st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=8).map(json.dumps)),
)


@FUZZ_SETTINGS
@given(defects=_defects(
    st.builds(Set, st.just("--network"), st.text(max_size=10).filter(
        lambda t: t not in NETWORK_NAMES + ("digits", "all"))),
    st.builds(Set, st.just("--network"), st.just("digits")),      # with --profile: refused
    st.builds(Set, st.just("--profile"), bad_profiles),
    profile_files,
    st.builds(Set, st.just("--batch"), _outside(1, 1 << 16)),
    # Within range, but AlexNet's conv1 then lowers to operands larger than the cycle model
    # takes (from N = 23 on; backward-weight's long reduction itself is split with 64-bit
    # partial sums).
    st.builds(Set, st.just("--batch"), st.integers(44, 1 << 16).map(str)),
    seed_defects,
    st.builds(Set, st.just("--out"), bad_directories),
    CONFIG_DEFECTS,
    # Bytes per cycle: positive and finite (or no number at all).
    st.builds(Set, st.just("--bandwidth"), st.one_of(
        st.floats(max_value=0.0).map(repr),
        st.sampled_from(["nan", "inf", "-inf", "1e400", "", "fast", "1/2", "0x20"]))),
))
def test_eval_refuses_malformed_input(defects):
    _assert_refused("eval", {"--network": "alexnet", "--profile": "synthetic:0.5",
                             "--seed": "0"}, defects)


model_files = st.one_of(
    st.builds(File, st.just("--model"), st.sampled_from(["missing", "directory",
                                                         "under a file"])),
    st.builds(File, st.just("--model"), st.just("model"),
              st.tuples(st.sampled_from(sorted(BROKEN_MODELS)), st.sampled_from(EXCEPTIONS),
                        st.sampled_from(EXIT_CODES))),
    st.builds(File, st.just("--model"), st.just("bytes"),
              st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b)),
)


@FUZZ_SETTINGS
@given(defects=_defects(
    model_files,
    st.builds(Set, st.just("--model"), st.sampled_from(["net.txt", "net", "net.py:no_function",
                                                        "net.py:model:x"])),
    _with_option("--batch", broken_npz(["inputs"])),
    st.builds(Set, st.just("-o"), bad_files),
    st.builds(Set, st.sampled_from(["--network", "--description"]),
              st.text(alphabet=" \t", max_size=3)),
))
def test_profile_refuses_malformed_input(defects):
    with tempfile.TemporaryDirectory() as directory:
        # The good model and batch the defects replace live outside the working directory.
        good = Path(directory)
        (good / "net.py").write_text(GOOD_MODEL)
        np.savez(good / "batch.npz", inputs=np.ones((2, 1, 5, 5), np.float32))
        base = {"--model": str(good / "net.py"), "--batch": str(good / "batch.npz"),
                "-o": "p.json"}
        _assert_refused("profile", base, defects)
