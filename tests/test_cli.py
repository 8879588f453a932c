"""The ``maskprop`` command line: generation, bad input (one line, exit 2, before any work and
without writing anything), the demo."""

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maskprop.base.config import CORE_DEFAULT, Config, CoreConfig
from maskprop.cli.main import UsageError, main, write_outputs


@pytest.mark.parametrize("block, module", [("tree", "accumulation_tree"),
                                           ("decoder", "index_decoder"),
                                           ("pe", "sparse_pe"),
                                           ("engine", "sparse_dot_engine"),
                                           ("array", "tile_array"),
                                           ("join-array", "join_array")])
def test_generate(block, module, tmp_path, capsys):
    out = tmp_path / f"{block}.v"
    assert main(["generate", block, "--vec", "8", "--lanes", "2", "-o", str(out)]) == 0
    text = out.read_text()
    assert f"module {module}(" in text
    assert f"wrote {out}" in capsys.readouterr().out


def test_generate_dense_only_engine(tmp_path):
    out = tmp_path / "dense.v"
    assert main(["generate", "engine", "--dense-only", "-o", str(out)]) == 0
    assert "module dense_dot_engine(" in out.read_text()


#: A small core: 2 tiles of 2 lanes, 4 x 8-bit chunks (a 32-bit memory port), 8 columns x 4
#: chunks of Y buffer, 64 words of X scratchpad, 16 address bits.
SMALL_CORE = ["--vec", "4", "--lanes", "2", "--tiles", "2", "--data-width", "8", "--acc-width",
              "20", "--col-block", "2", "--max-chunks", "4", "--max-cols", "8", "--x-words", "64",
              "--addr-width", "16", "--max-burst", "4", "--max-outstanding", "2"]


def _port_width(verilog: str, module: str, port: str) -> int:
    """Bits of ``port`` of ``module`` in Yosys-written Verilog."""
    body = verilog[verilog.index(f"module {module}("):]
    body = body[:body.index("\nendmodule")]
    match = re.search(rf"^\s*(?:input|output)\s+(?:wire\s+)?(?:\[(\d+):0\]\s+)?{port};", body,
                      re.M)
    assert match, f"no port {port} in module {module}"
    return int(match[1]) + 1 if match[1] else 1


def test_generate_core(tmp_path, capsys):
    """``maskprop generate core``: the core's options reach its ports (the memory port one chunk
    of vec x 8-bit containers wide, --addr-width address bits) and its X scratchpad."""
    out = tmp_path / "core.v"
    assert main(["generate", "core", *SMALL_CORE, "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    text = out.read_text()
    assert "module maskprop_core(" in text
    assert _port_width(text, "maskprop_core", "mem__rdata") == 4 * 8
    assert _port_width(text, "maskprop_core", "mem__wstrb") == 4
    assert _port_width(text, "maskprop_core", "mem__araddr") == 16
    assert _port_width(text, "maskprop_core", "mem__awlen") == 8
    assert _port_width(text, "maskprop_core", "csr__wdata") == 32
    assert _port_width(text, "maskprop_core", "irq") == 1
    # The scratchpad: 64 words of one chunk.
    assert re.search(r"reg \[31:0\] \\?x_pad\s*\[63:0\]", text), "no 64-word X scratchpad"


@pytest.mark.parametrize("argv, message", [
    (["generate", "tree", "--lanes", "80", "-o", "x.v"], "lanes must be in [1, 16], not 80"),
    (["generate", "engine", "--vec", "65", "-o", "x.v"], "vec must be in [1, 64], not 65"),
    (["generate", "tree"], "the following arguments are required: -o/--output"),
    (["generate", "pe", "--dense-only", "-o", "x.v"],
     "--dense-only applies to the engine and the array only"),
    (["generate", "join-array", "--select-window", "16", "-o", "x.v"],
     "lanes must equal vec / select_window = 1 for the join array (a lane a segment), not 4"),
    (["flow", "tree", "--target", "gowin"], "invalid choice: 'gowin'"),
    (["demo", "--layer", "conv9"], "digits CNN: no layer 'conv9'"),
    (["sim", "--layer", "2,8,8", "--pass", "fwd"], "--layer must be N,C,H,W,K,R"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "bwd"], "invalid pass 'bwd'"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--density", "1.5"],
     "--density must be in [0, 1], not 1.5"),
    (["sim", "--layer", "1,1000,4,4,8,3", "--pass", "fwd"],
     "the reduction takes 567 chunks, but the row buffer holds max_chunks = 512"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--masks", "missing.npz"],
     "--masks missing.npz"),
    (["generate", "core", "--x-words", "3", "-o", "x.v"],
     "--x-words must be a power of two in [2, 65536], not 3"),
    (["bogus"], "invalid choice: 'bogus'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    process = subprocess.run([sys.executable, "-m", "maskprop", *argv],
                             capture_output=True, text=True)
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maskprop: error: "), process.stderr
    assert message in lines[0]
    assert not list(tmp_path.iterdir()), "a refused command must not leave files behind"


@pytest.fixture
def core_runs(monkeypatch):
    """The CoreComparison of every ``compare_on_core`` the command made, in order."""
    import maskprop.host.runs as runs

    made = []
    real = runs.compare_on_core

    def recording(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]
    monkeypatch.setattr(runs, "compare_on_core", recording)
    return made


def _row(out: str, *starts) -> str:
    """The first table line whose first cells are ``starts``."""
    pattern = r"│\s*" + r"\s*│\s*".join(map(re.escape, starts)) + r"\s*│"
    return next(line for line in out.splitlines() if re.match(pattern, line))


def _check_core_output(out: str, comparison) -> None:
    """The table and the speedup line say what the core counted (each mode's row)."""
    from maskprop.base.metrics import format_ratio, format_speedup

    lines = out.splitlines()
    dense_row = lines.index(_row(out, comparison.label, "dense"))
    for mode, run in (("dense", comparison.dense), ("sparse", comparison.sparse)):
        counters = run.counters
        row = lines[dense_row + (mode == "sparse")]      # the pass's sparse row follows
        cells = [cell.strip() for cell in row.strip("│").split("│")]
        assert cells[:2] == [comparison.label if mode == "dense" else "", mode], row
        assert cells[2:] == [f"{len(run.run.statuses)}",
                             f"{counters['outputs']} of {comparison.dense.counters['outputs']}",
                             f"{counters['cycles_busy']:,}", f"{counters['compute_cycles']:,}",
                             f"{counters['bytes_read']:,}", f"{counters['bytes_written']:,}",
                             "yes"], row
    busy, compute = comparison.busy, comparison.compute
    assert (f"{comparison.label}: speedup {format_speedup(busy.speedup)} (cycles busy), "
            f"{format_speedup(compute.speedup)} (compute cycles); ideal "
            f"{format_speedup(compute.ideal)}; achieved/ideal {format_ratio(busy.efficiency)} "
            f"(cycles busy), {format_ratio(compute.efficiency)} (compute cycles)") in \
        " ".join(out.split())                               # the console wraps long lines


@pytest.mark.sim
def test_demo_runs_the_backward_pass_of_a_real_layer(tmp_path, capsys, core_runs):
    """Backward-data and backward-weight on the core, each checked, and the whole backward
    pass in cycles busy and in compute cycles."""
    from maskprop.base.metrics import format_speedup

    status = main(["demo", "--layer", "conv4", "--seed", "3", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    data, weight = core_runs
    assert data.label == "backward-data" and weight.label == "backward-weight"
    assert data.agrees and weight.agrees
    for comparison in core_runs:
        _check_core_output(out, comparison)
    words = " ".join(out.split())
    assert "on the core (4 tiles, vec 16, lanes 4, X scratchpad 4096 words)" in words
    assert words.count("PASS: every output bit-exact") == 1 and "FAIL" not in words
    for what, counter in (("cycles busy", "cycles_busy"), ("compute cycles", "compute_cycles")):
        dense = sum(c.dense.counters[counter] for c in core_runs)
        sparse = sum(c.sparse.counters[counter] for c in core_runs)
        assert (f"backward pass (backward-data and backward-weight), {what}: dense "
                f"{dense:,}, sparse {sparse:,}; speedup {format_speedup(dense / sparse)}") in words


@pytest.mark.sim
def test_engine_demo(tmp_path, capsys):
    status = main(["demo", "--engine", "--rows", "32", "--seed", "3", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "PASS" in out and "one-tile engine" in out


@pytest.mark.sim
@pytest.mark.parametrize("extra", [["--density", "0.3"], ["--masks", "MASKS"], ["--batchnorm"]])
def test_sim_one_layer(extra, tmp_path, capsys):
    if "MASKS" in extra:
        rng = np.random.default_rng(0)
        np.savez(tmp_path / "masks.npz", A=rng.random((2, 5, 4, 4)) < 0.5,
                 dZ=rng.random((2, 6, 4, 4)) < 0.5)
        extra = ["--masks", str(tmp_path / "masks.npz")]
    status = main(["sim", "--layer", "2,5,4,4,6,3", "--pass", "bwd-data", "--seed", "5",
                   "--out", str(tmp_path / "run"), *extra])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "PASS" in out and "backward-data" in out


@pytest.mark.sim
def test_sim_digits_layer(tmp_path, capsys):
    status = main(["sim", "--block", "array", "--layer", "digits:conv3:batchnorm", "--pass",
                   "bwd-weight", "--seed", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "digits CNN with BatchNorm" in out and "PASS" in out and "tile array: 4 tiles" in out


def _sim_on_core(argv, tmp_path, capsys, core_runs):
    """``maskprop sim ARGV`` on the core: it passes, its one pass agrees with the models and
    the table says what the core counted. Returns the output and the comparison."""
    status = main(["sim", *argv, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    (comparison,) = core_runs
    assert comparison.agrees
    _check_core_output(out, comparison)
    return out, comparison


@pytest.mark.sim
@pytest.mark.parametrize("pass_arg", ["fwd", "bwd-data", "bwd-weight"])
def test_sim_on_the_core_is_exact_and_prints_what_the_core_counted(pass_arg, tmp_path, capsys,
                                                                    core_runs):
    """``sim``'s default block: the pass dense and sparse on the core's Verilog, the result in
    memory the golden model's, the table what the core's counters said."""
    from maskprop.base.config import DEFAULT
    from maskprop.host.core_driver import CoreJob
    from maskprop.host.runs import fastest_operand
    from maskprop.sim.golden import (conv_backward_data_fixed, conv_backward_weight_fixed,
                                     conv_forward_fixed)
    from maskprop.sim.layer import ConvLayer
    from maskprop.workloads.synthetic import synthetic_tensors

    out, comparison = _sim_on_core(["--layer", "2,5,4,4,6,3", "--pass", pass_arg, "--seed",
                                    "5"], tmp_path, capsys, core_runs)
    words = " ".join(out.split())
    assert "core: 4 tiles, vec 16, lanes 4, X scratchpad 4096 words" in words
    assert (f"PASS: every output bit-exact against the golden model (requantized, shift "
            f"{comparison.shift})") in words and "seed 5" in words
    # The result read back, against the golden model's direct convolution of the tensors the
    # seed makes (so the command ran the tensors it says it ran).
    layer = ConvLayer(2, 5, 4, 4, 6, 3, 1, 1, "layer")
    t = synthetic_tensors(layer, DEFAULT, 5)
    pass_name = {"fwd": "forward", "bwd-data": "backward_data",
                 "bwd-weight": "backward_weight"}[pass_arg]
    for run in (comparison.dense, comparison.sparse):
        # Backward-weight: each mode in the operand the core's model finds faster.
        operand = (fastest_operand(layer, CORE_DEFAULT, **t, dense=run.dense)
                   if pass_arg == "bwd-weight" else "a")
        assert run.operand == (operand if pass_arg == "bwd-weight" else "")
        job = CoreJob(layer, pass_name, CORE_DEFAULT, **t, dense=run.dense,
                      shift=comparison.shift, operand=operand)
        if pass_arg == "fwd":
            golden = conv_forward_fixed(t["A"], t["W"], 1, 1, shift=comparison.shift)
        elif pass_arg == "bwd-weight":
            golden = conv_backward_weight_fixed(t["dZ"], t["A"], 3, 1, 1,
                                                shift=comparison.shift)
        else:
            golden = conv_backward_data_fixed(t["dZ"], t["W"], (4, 4), 1, 1,
                                              None if run.dense else t["A"] != 0,
                                              shift=comparison.shift)
        np.testing.assert_array_equal(job.result(run.run.result), golden)
        # The shift keeps the outputs' top bits: a quarter nonzero at least, few saturated.
        assert np.count_nonzero(golden) > golden.size // 4
        assert np.count_nonzero(np.abs(golden) >= DEFAULT.data_max) <= golden.size // 20
    # Sparse mode skipped work: fewer compute cycles (and, backward-data, fewer outputs).
    assert comparison.sparse.counters["compute_cycles"] < comparison.dense.counters[
        "compute_cycles"]
    if pass_arg == "bwd-data":
        assert comparison.sparse.counters["outputs"] < comparison.dense.counters["outputs"]
    if pass_arg == "bwd-weight":
        names = {"a": "A", "dz": "dZ"}
        assert (f"backward-weight broadcasts {names[comparison.dense.operand]} in dense mode, "
                f"{names[comparison.sparse.operand]} in sparse mode") in words


def test_unsaturated_shift_is_the_smallest_that_fits():
    from maskprop.host.runs import unsaturated_shift

    assert unsaturated_shift([], 16) == 0
    assert unsaturated_shift([0, 5, -3, 32767], 16) == 0
    assert unsaturated_shift([32768], 16) == 1
    assert unsaturated_shift(np.array([[-(1 << 20)], [7]]), 16) == 6
    assert unsaturated_shift([(1 << 20) - 1], 16) == 5
    assert unsaturated_shift([1 << 40], 8) == 34


@pytest.mark.sim
def test_sim_on_the_core_fails_when_a_result_is_wrong(tmp_path, capsys, monkeypatch):
    """A result byte the core got wrong (flipped here after the run) is a FAIL, exit status 1,
    and the mode's row says NO."""
    import maskprop.host.runs as runs

    real = runs.run_core_jobs

    def one_bit_wrong(*args, **kwargs):
        dense, sparse = real(*args, **kwargs)
        sparse.result = bytes([sparse.result[0] ^ 1]) + sparse.result[1:]
        return [dense, sparse]
    monkeypatch.setattr(runs, "run_core_jobs", one_bit_wrong)
    status = main(["sim", "--layer", "1,5,4,4,6,3", "--pass", "fwd", "--seed", "6",
                   "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1, out
    assert _row(out, "forward", "dense").rstrip(" │").endswith("yes")
    assert _row(out, "", "sparse").rstrip(" │").endswith("NO")
    assert "FAIL: every output bit-exact" in out and "PASS" not in out


# --- in-process refusals (issue 8): one line, exit 2, before any work, nothing written ---------

def refused(argv, capsys) -> str:
    """Run ``maskprop`` in-process; assert it refused in one line with exit status 2 and
    return that line."""
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maskprop: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def no_work_allowed(monkeypatch):
    """Fail the test if a refused command gets as far as making tensors, lowering a pass,
    evaluating a network, generating Verilog or simulating."""
    def forbidden(name):
        def fail(*args, **kwargs):
            raise AssertionError(f"{name} ran for an input that should have been refused")
        return fail
    targets = ("maskprop.workloads.synthetic.synthetic_tensors",
               "maskprop.sim.lowering.lower_pass", "maskprop.evaluation.evaluate.evaluate",
               "maskprop.flow.verilog.generate_verilog", "maskprop.host.runs.compare_on_array",
               "maskprop.host.runs.compare_on_engine", "maskprop.host.runs.compare_on_core")
    # Every module first: one imported while a tripwire is set would keep it for good (e.g.
    # maskprop.sim.cycle_model's ``from maskprop.sim.lowering import lower_pass``).
    for target in targets:
        importlib.import_module(target.rsplit(".", 1)[0])
    for target in targets:
        monkeypatch.setattr(target, forbidden(target))


@pytest.mark.parametrize("argv, message", [
    # The tile array. The layer: its im2col alone is 7 GB.
    (["--block", "array", "--layer", "64,512,56,56,512,3,1,1", "--pass", "fwd"],
     "needs 288 chunks of 16, but max_chunks is 64"),
    (["--block", "array", "--layer", "64,512,56,56,512,3,1,1", "--pass", "fwd", "--max-chunks",
      "512", "--max-cols", "512"], "A 64x512x56x56 has 102,760,448 elements"),
    (["--block", "array", "--layer", "1,4,4,4,300,1", "--pass", "fwd"],
     "300 output columns, but max_cols is 128"),
    (["--block", "array", "--layer", "1,16,4,4,200,3", "--pass", "bwd-weight"],
     "144 output columns broadcasting dZ or 200 output columns broadcasting A"),
    (["--block", "array", "--layer", "1,16,4,4,4,3", "--pass", "fwd", "--acc-width", "38"],
     "forward reduction sums 144 products"),
    (["--block", "array", "--layer", "1,64,64,64,64,3", "--pass", "fwd"],
     "the lowered pass streams 4,755,456"),
    (["--block", "array", "--layer", "1,1,65536,65536,1,1,256,0", "--pass", "fwd", "--masks",
      "absent.npz"], "A 1x1x65536x65536 has 4,294,967,296 elements"),
    # The core (the default): what its buffers cannot hold and its memory port cannot reach.
    # (larger passes are split into commands: what even one row band or the reduction
    # cannot fit, and what is too large to simulate)
    (["--layer", "64,512,56,56,512,3,1,1", "--pass", "fwd"],
     "one row of its result reads 3 input rows of 1,792 words, more than the X scratchpad's "
     "x_words = 4,096"),
    (["--layer", "1,512,100,100,8,1", "--pass", "bwd-data"],
     "A 1x512x100x100 has 5,120,000 elements; one RTL run takes at most 4,194,304"),
    (["--layer", "1,1000,4,4,8,3", "--pass", "fwd"],
     "the reduction takes 567 chunks, but the row buffer holds max_chunks = 512"),
    (["--layer", "1,16,3,5000,4,3", "--pass", "fwd"],
     "one row of its result reads 2 input rows of 5,000 words"),
    (["--layer", "1,16,4,4,4,3", "--pass", "fwd", "--acc-width", "38"],
     "forward reduction sums 144 products"),
    (["--layer", "2,5,4,4,6,3", "--pass", "fwd", "--addr-width", "12"],
     "the tensors need 13,312 bytes of memory, more than addr_width = 12 bits reach"),
    (["--layer", "1,1,65536,65536,1,1,256,0", "--pass", "fwd", "--masks", "absent.npz"],
     "one row of its result reads 1 input row of 65,536 words"),
])
def test_sim_refuses_from_the_shape_before_making_tensors(argv, message, tmp_path, monkeypatch,
                                                          capsys, no_work_allowed):
    monkeypatch.chdir(tmp_path)
    assert message in refused(["sim", *argv], capsys)
    assert not files_under(tmp_path)


def test_demo_refuses_from_the_shape_before_lowering(tmp_path, monkeypatch, capsys,
                                                     no_work_allowed):
    monkeypatch.chdir(tmp_path)
    # conv2's backward-data (on the core) reduces over 16 channels x 3 x 3: 9 chunks of 16.
    assert ("conv2' backward-data: the reduction takes 9 chunks, but the row buffer holds "
            "max_chunks = 8") in refused(
        ["demo", "--max-chunks", "8"], capsys)
    # Its backward-weight: broadcasting A, its 16 output channels split into groups of whole
    # memory words (16 channels), more than max_cols; broadcasting dZ, 8 x 3 x 3 result
    # columns, which no group splits.
    assert ("conv2' backward-weight: broadcasting A, not even 16 output columns (one memory "
            "word) of 8 chunks fit the Y buffer (y_words = 512, max_cols = 8); raise max_cols; "
            "broadcasting dZ, 72 result columns") in refused(["demo", "--max-cols", "8"], capsys)
    # conv2's input gradient dZ: rows of 8 pixels of one word each (bands need one).
    assert "words, more than the X scratchpad's x_words = 4; raise x_words" in \
        refused(["demo", "--x-words", "4"], capsys)
    assert not files_under(tmp_path)


@pytest.mark.parametrize("argv", [["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd"], ["demo"]])
def test_the_core_without_its_bench_is_one_line(argv, tmp_path, monkeypatch, capsys,
                                                no_work_allowed):
    """cocotbext-axi is a test extra: without it the core's runs are refused up front, saying
    how to install it, not failed inside the simulator."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "cocotbext.axi" else real(name, *args))
    monkeypatch.chdir(tmp_path)
    line = refused(argv, capsys)
    assert "the core's testbench (tb/bench_core.py) needs cocotbext-axi" in line
    assert "pip install 'maskprop[test]'" in line
    assert not files_under(tmp_path)


def _masks(path, **arrays):
    np.savez(path, **arrays)
    return path


def _empty(path):
    path.write_bytes(b"")
    return path


def _text(path):
    path.write_text("A = 1, 0, 1\n")
    return path


def _directory(path):
    path.mkdir()
    return path


def _npy(path):
    np.save(path.with_suffix(".npy"), np.ones((2, 1, 5, 5)))
    return path.with_suffix(".npy")


def _truncated(path):
    _masks(path, A=np.ones((2, 4, 4, 4), bool))
    path.write_bytes(path.read_bytes()[:-30])
    return path


def _bad_crc(path):
    """Headers intact, data changed: only reading the data finds it."""
    _masks(path, A=np.ones((2, 4, 4, 4), bool))
    data = path.read_bytes()
    ones = data.index(b"\x01" * 128)
    path.write_bytes(data[:ones] + b"\x00" + data[ones + 1:])
    return path


MASK_FILES = {
    "empty": (_empty, "is empty, not an .npz file"),
    "truncated": (_truncated, "is a truncated or damaged .npz archive"),
    "bad data": (_bad_crc, "is a truncated or damaged .npz archive"),
    "npy": (_npy, "is a single .npy array, not an .npz archive"),
    "text": (_text, "is not an .npz file (numpy.savez archive)"),
    "directory": (_directory, "is a directory, not an .npz file"),
    "missing": (lambda p: p, "no such file"),
    "no A": (lambda p: _masks(p, dZ=np.ones((2, 4, 4, 4))), "no array 'A' (it holds 'dZ')"),
    "shape": (lambda p: _masks(p, A=np.ones((2, 4, 4, 5))),
              "A has shape (2, 4, 4, 5), the layer needs (2, 4, 4, 4)"),
    "strings": (lambda p: _masks(p, A=np.full((2, 4, 4, 4), "1")),
                "A has dtype <U1; a mask must be boolean, integer or floating point"),
    "objects": (lambda p: _masks(p, A=np.full((2, 4, 4, 4), None, dtype=object)),
                "A has dtype object"),
    "complex": (lambda p: _masks(p, A=np.ones((2, 4, 4, 4), complex)), "A has dtype complex"),
    "NaN": (lambda p: _masks(p, A=np.full((2, 4, 4, 4), np.nan)), "A holds NaN"),
    "dZ NaN": (lambda p: _masks(p, A=np.ones((2, 4, 4, 4)), dZ=np.full((2, 4, 4, 4), np.nan)),
               "dZ holds NaN"),
}


@pytest.mark.parametrize("kind", MASK_FILES)
def test_unreadable_masks_are_one_line(kind, tmp_path, monkeypatch, capsys, no_work_allowed):
    make, message = MASK_FILES[kind]
    monkeypatch.chdir(tmp_path)
    path = make(tmp_path / "masks.npz")
    before = files_under(tmp_path)
    line = refused(["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--masks", str(path)],
                   capsys)
    assert f"--masks {path}: " in line and message in line
    assert "pickle" not in line
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("dtype", [bool, np.int8, np.uint16, np.int64, np.float32, np.float64])
def test_boolean_integer_and_float_masks_are_read(dtype, tmp_path):
    from maskprop.sim.layer import ConvLayer
    from maskprop.workloads.synthetic import read_layer_masks

    layer = ConvLayer(2, 4, 4, 4, 4, 3, 1, 1)
    rng = np.random.default_rng(0)
    a = (rng.random(layer.input_shape) < 0.5).astype(dtype)
    dz = (rng.random(layer.output_shape) < 0.3).astype(dtype) * 3
    a_nonzero, dz_nonzero = read_layer_masks(_masks(tmp_path / "m.npz", A=a, dZ=dz), layer)
    np.testing.assert_array_equal(a_nonzero, a != 0)
    np.testing.assert_array_equal(dz_nonzero, dz != 0)
    a_only, none = read_layer_masks(_masks(tmp_path / "a.npz", A=a), layer)
    assert none is None and a_only.dtype == bool


@pytest.mark.parametrize("argv, message", [
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--seed", "-1"],
     "--seed must be an integer in [0, 4294967295], not -1"),
    (["demo", "--seed", str(2**32)], "--seed must be an integer in [0, 4294967295], not 4294967296"),
    (["eval", "--seed", "-5"], "--seed must be an integer in [0, 4294967295], not -5"),
    (["eval", "--batch", "0"], "--batch must be an integer in [1, 65536], not 0"),
    (["eval", "--batch", "70000"], "--batch must be an integer in [1, 65536], not 70000"),
    (["eval", "--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
    (["demo", "--engine", "--rows", "0"], "--rows must be a positive integer, not 0"),
    (["demo", "--rows", "5"], "--rows applies to the one-tile engine only"),
    (["demo", "--pass", "fwd"], "--pass applies to the one-tile engine only"),
    (["generate", "tree", "--max-chunks", "3", "-o", "x.v"],
     "--max-chunks must be a power of two in [1, 4096], not 3"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--vec", "0"],
     "--vec must be in [1, 64], not 0"),
    (["eval", "--tree-stages", "9"], "--tree-stages must be in [0, 2], not 9"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--density", "nan"],
     "--density must be in [0, 1], not nan"),
    (["sim", "--layer", "2,4,0,4,4,3", "--pass", "fwd"],
     "--layer 2,4,0,4,4,3: height must be in [1, 65536], not 0"),
    (["sim", "--layer", "2,4,4,4,4,3,1_0", "--pass", "fwd"], "--layer must be N,C,H,W,K,R"),
    (["sim", "--layer", "digits:conv3:fancy", "--pass", "fwd"],
     "the digits CNN variant must be plain or batchnorm, not 'fancy'"),
    (["sim", "--layer", "digits:conv3:plain:x", "--pass", "fwd"],
     "--layer must be digits:LAYER[:plain|batchnorm]"),
    (["sim", "--layer", "digits:", "--pass", "fwd"], "--layer must be digits:LAYER"),
    (["eval", "--network", "digits", "--batch", "2"], "drop --profile and --batch"),
    (["eval", "--profile", "synthetic:0.5:iid:more"],
     "--profile must be synthetic:DENSITY[:iid|clustered]"),
    (["eval", "--profile", "synthetic:inf"], "density must be in [0, 1], not inf"),
    (["eval", "--profile", ""], "--profile must be literature, synthetic:DENSITY[:MODEL] or an "
                                "existing profile file, not ''"),
    # The core's own options, and the configurations it refuses.
    (["generate", "core", "--max-burst", "3", "-o", "x.v"],
     "--max-burst must be a power of two in [1, 256], not 3"),
    (["generate", "core", "--addr-width", "8", "-o", "x.v"],
     "--addr-width must be in [12, 64], not 8"),
    (["flow", "core", "--target", "ecp5", "--max-outstanding", "0"],
     "--max-outstanding must be in [1, 16], not 0"),
    (["generate", "core", "--vec", "3", "--lanes", "2", "-o", "x.v"],
     "--vec/--data-width: vec x container bits = 3 x 16 = 48 bits is not a power of two"),
    (["generate", "core", "--x-words", "65536", "-o", "x.v"],
     "--x-words/--max-cols/--max-chunks: x_words = 65536 words of 256 bits and the tile "
     "array's buffers hold"),
    (["generate", "tree", "--x-words", "8", "-o", "x.v"], "--x-words applies to the core only"),
    (["flow", "array", "--target", "ecp5", "--max-burst", "4", "--addr-width", "16"],
     "--addr-width, --max-burst apply to the core only"),
    (["generate", "core", "--dense-only", "-o", "x.v"],
     "--dense-only applies to the engine and the array only"),
    (["flow", "core", "--target", "ecp5", "--device", "LFE5U-99F"],
     "--device: unknown ecp5 device 'LFE5U-99F'; choose one of ['LFE5U-12F'"),
    (["flow", "tree", "--target", "ice40", "--device", "LFE5U-85F"],
     "--device: unknown ice40 device 'LFE5U-85F'"),
    (["flow", "core", "--target", "ecp5", "--router", "maze"],
     "argument --router: invalid choice: 'maze'"),
    # sim on the core (its default block) and on the tile array: backward-weight's reduction
    # is split into parts of whole output rows, but one row of 600 output pixels (38 chunks
    # of 16) is longer than the row-block buffer's 32.
    (["sim", "--layer", "1,4,2,600,4,1", "--pass", "bwd-weight"],
     "layer 'layer' backward-weight: broadcasting A, one output row over 600 output pixels "
     "takes 38 chunks, but the row-block buffer holds row_block_chunks = 32"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--block", "gpu"],
     "argument --block: invalid choice: 'gpu'"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--block", "array", "--x-words", "8"],
     "--x-words applies to the core only"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--max-burst", "3"],
     "--max-burst must be a power of two in [1, 256], not 3"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--x-words", "65536"],
     "--x-words/--max-cols/--max-chunks: x_words = 65536 words of 256 bits"),
    (["demo", "--x-words", "3"], "--x-words must be a power of two in [2, 65536], not 3"),
    (["demo", "--engine", "--x-words", "64"], "--x-words applies to the core only"),
    # eval's bandwidth, as the data-movement model takes it.
    (["eval", "--bandwidth", "0"],
     "--bandwidth must be a positive number of bytes per cycle, not 0.0"),
    (["eval", "--bandwidth", "-2.5"],
     "--bandwidth must be a positive number of bytes per cycle, not -2.5"),
    (["eval", "--bandwidth", "nan"],
     "--bandwidth must be a positive number of bytes per cycle, not nan"),
    (["eval", "--bandwidth", "inf"],
     "--bandwidth must be a positive number of bytes per cycle, not inf"),
    (["eval", "--bandwidth", "1e400"],
     "--bandwidth must be a positive number of bytes per cycle, not inf"),
    (["eval", "--bandwidth", "fast"], "argument --bandwidth: invalid float value: 'fast'"),
])
def test_options_name_themselves(argv, message, tmp_path, monkeypatch, capsys, no_work_allowed):
    monkeypatch.chdir(tmp_path)
    line = refused(argv, capsys)
    assert message in line
    assert not files_under(tmp_path)


def test_eval_bandwidth_reaches_the_data_movement(tmp_path, capsys):
    """``--bandwidth`` is the bandwidth of every memory-cycle count eval writes and prints."""
    from maskprop.base.metrics import format_speedup

    assert main(["eval", "--network", "alexnet", "--bandwidth", "3.2", "--out",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Training step with its DRAM traffic at 3.2 bytes per cycle" in " ".join(out.split())
    layers = json.loads((tmp_path / "alexnet.json").read_text())["layers"]
    assert layers
    for row in layers:        # ceil(bytes / 3.2): 3.2 is 16/5, exactly
        assert row["bandwidth_bytes_per_cycle"] == 3.2
        for mode in ("dense", "sparse"):
            assert row[f"{mode}_memory_cycles"] == -(-row[f"{mode}_bytes"] * 5 // 16), row
    # What is printed is the training step at that bandwidth.
    summary = json.loads((tmp_path / "summary.json").read_text())
    for scenario in ("batchnorm", "no-batchnorm"):
        step = next(row for row in summary
                    if row["scenario"] == scenario and row["totals"] == "training step")
        assert step["bandwidth_bytes_per_cycle"] == 3.2
        assert (f"AlexNet, {scenario}: speedup {format_speedup(step['speedup_overlapped'])} "
                f"overlapped, {format_speedup(step['speedup_serial'])} serial; energy "
                f"dense/sparse {format_speedup(step['energy_ratio'])}") in out


def test_eval_refuses_a_batch_the_cycle_model_cannot_hold(tmp_path, monkeypatch, capsys,
                                                          no_work_allowed):
    monkeypatch.chdir(tmp_path)
    line = refused(["eval", "--network", "vgg16", "--batch", "50", "--acc-width", "64"], capsys)
    assert re.search(r"--batch 50: VGG-16 layer '[\w.]+' \S+ at batch 50 lowers to operands "
                     r"of [0-9,]+ elements; the cycle model takes at most 134,217,728: use a "
                     r"batch of at most 4$", line), line


# --- output paths: checked first, written atomically ------------------------------------------

def test_generate_refuses_unusable_outputs(tmp_path, monkeypatch, capsys, no_work_allowed):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.txt").write_text("kept")
    for output, message in ((tmp_path / "dir", "is a directory; give a file name"),
                            (tmp_path / "file.txt" / "x.v", "file.txt is a file, not a directory"),
                            (Path("/proc/maskprop-test/x.v"), "cannot create it")):
        line = refused(["generate", "tree", "-o", str(output)], capsys)
        assert line.startswith(f"maskprop: error: -o {output}: ") and message in line
    assert files_under(tmp_path) == ["dir", "file.txt"]
    assert (tmp_path / "file.txt").read_text() == "kept"


@pytest.mark.parametrize("command", [["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd"],
                                     ["demo"], ["eval", "--network", "alexnet"]])
def test_run_directories_are_checked_first(command, tmp_path, monkeypatch, capsys,
                                           no_work_allowed):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("kept")
    for out, message in (("file.txt", "--out file.txt: is a file, not a directory"),
                         ("file.txt/run", "--out file.txt/run: file.txt is a file"),
                         ("/proc/maskprop-test", "--out /proc/maskprop-test: cannot create it")):
        assert message in refused([*command, "--out", out], capsys)
    assert files_under(tmp_path) == ["file.txt"]


def test_flow_checks_its_outputs_before_running_the_tools(tmp_path, monkeypatch, capsys,
                                                          no_work_allowed):
    def forbidden(*args, **kwargs):
        raise AssertionError("the FPGA flow ran with an unusable output path")
    monkeypatch.setattr("maskprop.flow.fpga.run_flow", forbidden)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("kept")
    (tmp_path / "dir").mkdir()
    for option, value, message in (("--out", "file.txt", "--out file.txt: is a file"),
                                   ("--json", "dir", "--json dir: is a directory"),
                                   ("--json", "file.txt/r.json", "file.txt is a file")):
        line = refused(["flow", "tree", "--target", "ecp5", option, value], capsys)
        assert message in line
    assert files_under(tmp_path) == ["dir", "file.txt"]


class _FakeReport:
    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def format(self):
        return f"fake report {self.kwargs}"

    def as_dict(self):
        return self.kwargs


@pytest.mark.parametrize("argv, top, device, routed", [
    (["flow", "core", "--target", "ecp5", *SMALL_CORE], "maskprop_core", "LFE5U-85F", True),
    (["flow", "core", "--target", "ecp5", "--device", "lfe5u-45f", "--synth-only"],
     "maskprop_core", "LFE5U-45F", False),
    (["flow", "core", "--target", "ecp5", "--router", "router2"], "maskprop_core", "LFE5U-85F",
     True),
    (["flow", "core", "--target", "ice40", "--synth-only"], "maskprop_core", "iCE40UP5K", False),
    (["flow", "array", "--target", "ecp5"], "tile_array", "LFE5U-25F", True),
    (["flow", "tree", "--target", "ice40", "--device", "hx8k"], "accumulation_tree",
     "iCE40HX8K", True),
])
def test_flow_device_and_synth_only(argv, top, device, routed, tmp_path, monkeypatch, capsys):
    """What ``maskprop flow`` hands the flow, without running it: the core goes to the
    LFE5U-85F unless --device says otherwise (the other blocks keep the target's default),
    --synth-only stops after synthesis, and the core's options build the core they name."""
    seen = {}

    def run_flow(component, name, target, workdir, **kwargs):
        seen.update(component=component, name=name, **kwargs)
        return _FakeReport(top=name, device=kwargs["device"])
    monkeypatch.setattr("maskprop.flow.fpga.run_flow", run_flow)
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--json", "r.json"]) == 0
    seen["component"]._MustUse__used = True        # never elaborated: no UnusedElaboratable
    assert seen["name"] == top and seen["device"] == device
    assert seen["place_and_route"] is routed
    assert seen["router"] == ("router2" if "--router" in argv else None)
    # The JSON says what was built (the block and its whole configuration) beside the report.
    report = json.loads((tmp_path / "r.json").read_text())
    block = argv[1]
    assert report.pop("block") == block and report == {"top": top, "device": device,
                                                       "config": report["config"]}
    config = report["config"]["array"] if block == "core" else report["config"]
    assert config["vec"] == (4 if "--x-words" in argv else 16)
    assert "fake report" in capsys.readouterr().out
    if block == "core":
        core = seen["component"].core
        assert CoreConfig(**{**report["config"], "array": Config(**config)}) == core
        if "--x-words" in argv:
            assert (core.x_words, core.addr_width, core.max_burst, core.max_outstanding) == \
                (64, 16, 4, 2)
            assert (core.array.vec, core.array.tiles, core.array.max_cols) == (4, 2, 8)
        else:
            assert core == CoreConfig()


def test_generate_writes_atomically_with_the_usual_mode(tmp_path, monkeypatch):
    out = tmp_path / "new" / "tree.v"
    assert main(["generate", "tree", "-o", str(out)]) == 0
    assert "module accumulation_tree(" in out.read_text()
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert files_under(tmp_path) == ["new", "new/tree.v"]


def test_a_failed_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(UsageError, match=r"-o .*out.txt: cannot write it \(No space left"):
        write_outputs({target: "new contents"}, "-o")
    assert target.read_text() == "old"
    assert files_under(tmp_path) == ["out.txt"]


# --- maskprop profile: the user's model and batch ----------------------------------------------

GOOD_MODEL = """
import torch
def model():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(2, 2, 3, padding=1))
"""

MODEL_FAILURES = {
    "import raises": ("raise RuntimeError('no GPU here')\n",
                      "importing it failed: RuntimeError: no GPU here"),
    "import exits": ("import sys\nsys.exit(3)\n", "importing it failed: it called sys.exit(3)"),
    "syntax error": ("def model(:\n", "importing it failed: SyntaxError: "),
    "constructor raises": ("def model():\n    return {}['weights']\n",
                           "calling model() failed: KeyError: 'weights'"),
    "constructor exits": ("import sys\ndef model():\n    sys.exit('bye')\n",
                          "calling model() failed: it called sys.exit('bye')"),
    "forward raises": (GOOD_MODEL.replace("def model():", (
        "class Odd(Exception):\n    pass\n"
        "class Net(torch.nn.Conv2d):\n"
        "    def forward(self, x):\n        raise Odd('forward is broken')\n"
        "def model():\n    return Net(1, 1, 1)\n"
        "def unused():")), "failed: Odd: forward is broken"),
    "forward exits": (GOOD_MODEL.replace("def model():", (
        "import sys\n"
        "class Net(torch.nn.Conv2d):\n"
        "    def forward(self, x):\n        sys.exit()\n"
        "def model():\n    return Net(1, 1, 1)\n"
        "def unused():")), "failed: it called sys.exit(None)"),
    "forward raises BaseException": (GOOD_MODEL.replace("def model():", (
        "class Stop(BaseException):\n    pass\n"
        "class Net(torch.nn.Conv2d):\n"
        "    def forward(self, x):\n        raise Stop('halt')\n"
        "def model():\n    return Net(1, 1, 1)\n"
        "def unused():")), "failed: Stop: halt"),
    "no conv": ("import torch\ndef model():\n    return torch.nn.Flatten()\n",
                "failed: ValueError: model has no torch.nn.Conv2d layer"),
}


def _batch(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("kind", MODEL_FAILURES)
def test_profile_model_failures_are_one_line(kind, tmp_path, monkeypatch, capsys):
    source, message = MODEL_FAILURES[kind]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(source)
    _batch(tmp_path / "batch.npz", inputs=np.ones((2, 1, 5, 5), np.float32))
    line = refused(["profile", "--model", "net.py", "--batch", "batch.npz", "-o", "out/p.json"],
                   capsys)
    assert message in line and "--model net.py" in line
    assert files_under(tmp_path) == ["batch.npz", "net.py"]


BATCH_FILES = {
    "empty": (_empty, "is empty"),
    "npy": (_npy, "is a single .npy array"),
    "text": (_text, "is not an .npz file"),
    "no inputs": (lambda p: _batch(p, x=np.ones(3)), "no array 'inputs' (it has x)"),
    "complex": (lambda p: _batch(p, inputs=np.ones((2, 1, 5, 5), complex)),
                "'inputs' must be a numeric array with a batch dimension, not complex128"),
    "strings": (lambda p: _batch(p, inputs=np.full((2, 1, 5, 5), "a")), "not <U1"),
    "NaN": (lambda p: _batch(p, inputs=np.full((2, 1, 5, 5), np.nan)),
            "'inputs' holds NaN or infinity"),
    "huge": (lambda p: _batch(p, inputs=np.full((2, 1, 5, 5), 1e300)),
             "'inputs' holds values beyond float32's range"),
    "targets count": (lambda p: _batch(p, inputs=np.ones((2, 1, 5, 5)), targets=np.zeros(3, int)),
                      "'targets' has (3,) entries, 'inputs' 2"),
    "negative targets": (lambda p: _batch(p, inputs=np.ones((2, 1, 5, 5)),
                                          targets=np.array([0, -1])), "below 0"),
    "text targets": (lambda p: _batch(p, inputs=np.ones((2, 1, 5, 5)), targets=np.array(["a", "b"])),
                     "'targets' must be class indices"),
}


@pytest.mark.parametrize("kind", BATCH_FILES)
def test_profile_unreadable_batches_are_one_line(kind, tmp_path, monkeypatch, capsys):
    make, message = BATCH_FILES[kind]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(GOOD_MODEL + "open('imported', 'w').close()\n")
    path = make(tmp_path / "batch.npz")
    before = files_under(tmp_path)
    line = refused(["profile", "--model", "net.py", "--batch", str(path), "-o", "p.json"], capsys)
    assert f"--batch {path}: " in line and message in line
    assert files_under(tmp_path) == before, "the model must not even be imported"


def test_profile_checks_its_output_before_running_the_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(GOOD_MODEL + "open('imported', 'w').close()\n")
    _batch(tmp_path / "batch.npz", inputs=np.ones((2, 1, 5, 5), np.float32))
    (tmp_path / "taken").mkdir()
    line = refused(["profile", "--model", "net.py", "--batch", "batch.npz", "-o", "taken"],
                   capsys)
    assert "-o taken: is a directory; give a file name" in line
    assert files_under(tmp_path) == ["batch.npz", "net.py", "taken"]
    assert main(["profile", "--model", "net.py", "--batch", "batch.npz", "-o", "new/p.json"]) == 0
    assert json.loads((tmp_path / "new" / "p.json").read_text())["source"] == "measured"


# --- output that misleads -------------------------------------------------------------------

#: Multipliers of the fake comparisons' array: dense slots are dense cycles times this.
FAKE_MULTIPLIERS = 16


def _fake_comparison(label, dense, sparse, ideal):
    """A comparison whose runs agree with the model, with ``ideal`` (None: no work)."""
    from maskprop.host.runs import Comparison, ModeRun

    def run(cycles, is_dense):
        return ModeRun(is_dense, cycles, cycles, True, {"outputs": 8}, 0.0, "verilator", 1)
    dense_slots = dense * FAKE_MULTIPLIERS
    nonzero = 0 if ideal is None else round(dense_slots / ideal)
    comparison = Comparison(label, run(dense, True), run(sparse, False), dense_slots, nonzero)
    assert comparison.ideal == ideal
    return comparison


@pytest.mark.parametrize("spec, says", [("digits:conv3", "digits CNN without BatchNorm"),
                                        ("digits:conv3:plain", "digits CNN without BatchNorm"),
                                        ("digits:conv3:batchnorm", "digits CNN with BatchNorm")])
def test_digits_layer_title_names_its_variant(spec, says, tmp_path, monkeypatch, capsys):
    import maskprop.cli.main as cli

    seen = {}

    def run_passes(console, layer, tensors, passes, config, args):
        seen["A"] = tensors["A"]
        return [_fake_comparison("forward", 100, 50, 4.0)]
    monkeypatch.setattr(cli, "_run_passes", run_passes)
    assert main(["sim", "--block", "array", "--layer", spec, "--pass", "fwd", "--out",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert says in out
    variant = "batchnorm" if spec.endswith("batchnorm") else "plain"
    from maskprop.workloads.digits import load_fixture
    np.testing.assert_array_equal(seen["A"], load_fixture()[variant]["conv3"].A)


def test_no_work_is_said_not_divided_by_one(capsys):
    from maskprop.cli.main import _console, _print_comparisons

    comparisons = [_fake_comparison("backward-data", 48384, 1008, None),
                   _fake_comparison("backward-weight", 1000, 500, 4.0)]
    assert _print_comparisons(_console(), "t", comparisons) == 0
    out = capsys.readouterr().out
    data_row = next(line for line in out.splitlines() if "backward-data" in line)
    assert "no work" in data_row and "48.00x" in data_row
    assert "48384.00x" not in out
    weight_row = next(line for line in out.splitlines() if "backward-weight" in line)
    assert "no work" not in weight_row and "4.00x" in weight_row and "0.50" in weight_row


def test_a_dense_mode_slower_than_the_fair_baseline_is_said(capsys):
    """Where the array's windowed dense mode takes more cycles than the fair baseline (the
    full window), the table's speedup is over the array's own dense mode: a line says so and
    gives the speedup over the baseline; where they are equal nothing is added."""
    from dataclasses import replace

    from maskprop.cli.main import _console, _print_comparisons

    slower = replace(_fake_comparison("backward-weight", 1000, 500, 4.0), baseline_cycles=900)
    equal = replace(_fake_comparison("forward", 800, 400, 4.0), baseline_cycles=800)
    assert _print_comparisons(_console(), "t", [slower, equal]) == 0
    text = " ".join(capsys.readouterr().out.split())      # the console wraps long lines
    assert text.count("fair dense baseline") == 1
    assert ("backward-weight: the fair dense baseline (full selection window, cycle model) "
            "takes 900 cycles, this array's dense mode 1,000; over the baseline: speedup "
            "1.80x, achieved/ideal 0.45") in text


def test_help_documents_the_layer_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sim", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "stride defaults to 1 and padding to R // 2" in text
    assert "digits:LAYER[:plain|batchnorm]" in text


@pytest.mark.sim
@pytest.mark.parametrize("block", ["core", "array"])
def test_sim_with_nothing_to_compute_says_no_work(block, tmp_path, capsys):
    status = main(["sim", "--block", block, "--layer", "1,4,4,4,4,3", "--pass", "fwd",
                   "--density", "0", "--seed", "2", "--out", str(tmp_path)])
    out = " ".join(capsys.readouterr().out.split())
    assert status == 0, out
    assert "PASS" in out
    if block == "core":
        assert "ideal no work; achieved/ideal no work (cycles busy), no work (compute cycles)" \
            in out
    else:
        assert "no work" in out


@pytest.mark.parametrize("argv", [
    ["generate", "array", "--max-cols", "65536", "--max-chunks", "4096", "-o", "array.v"],
    ["sim", "--layer", "1,4,4,4,4,3", "--pass", "fwd", "--max-cols", "1024"],
    ["flow", "array", "--target", "ecp5", "--max-cols", "1024"],
    ["generate", "core", "--max-cols", "1024", "-o", "core.v"],
    ["flow", "core", "--target", "ecp5", "--max-cols", "1024"],
    ["demo", "--max-cols", "1024"],
])
def test_buffers_too_large_to_generate_are_refused_up_front(argv, tmp_path, monkeypatch, capsys,
                                                            no_work_allowed):
    """The issue's example grew past 24 GB: every command that would generate the tile array
    refuses such buffers at once, naming the options and the limit."""
    monkeypatch.chdir(tmp_path)
    message = refused(argv, capsys)
    assert message.startswith("maskprop: error: --max-cols/--max-chunks/--y-words: max_cols x "
                              "max_chunks = ")
    assert "too large to generate" in message and "2**22" in message
    assert not files_under(tmp_path)


@pytest.mark.sim
def test_sim_splits_a_layer_the_core_cannot_hold(tmp_path, capsys, core_runs):
    """A layer whose input is larger than the X scratchpad runs as the host's commands (row
    bands, the later ones keeping the weights): exact, and the table says how many."""
    from maskprop.base.config import Config, CoreConfig
    from maskprop.host.split import plan_pass
    from maskprop.sim.layer import ConvLayer

    # tests/test_core.py's core: one simulator build serves both.
    _, comparison = _sim_on_core(["--layer", "1,20,24,22,20,3", "--pass", "fwd", "--x-words",
                                  "1024", "--max-chunks", "64", "--max-cols", "32",
                                  "--col-block", "8", "--seed", "6"], tmp_path, capsys,
                                 core_runs)
    layer = ConvLayer(1, 20, 24, 22, 20, 3, 1, 1, "layer")
    plan = plan_pass(layer, "forward", CoreConfig(Config(max_chunks=64, max_cols=32,
                                                         col_block=8), x_words=1024))
    assert len(plan) > 1 and all(command.keep_weights for command in plan[1:])
    assert len(comparison.dense.run.statuses) == len(plan)
