"""The ``maskprop`` command line: generation, bad input (one line, exit 2), the demo."""

import subprocess
import sys

import pytest

from maskprop.cli import main


@pytest.mark.parametrize("block, module", [("tree", "accumulation_tree"),
                                           ("decoder", "index_decoder"),
                                           ("pe", "sparse_pe"),
                                           ("engine", "sparse_dot_engine")])
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


@pytest.mark.parametrize("argv, message", [
    (["generate", "tree", "--lanes", "80", "-o", "x.v"], "lanes must be in [1, 16], not 80"),
    (["generate", "engine", "--vec", "65", "-o", "x.v"], "vec must be in [1, 64], not 65"),
    (["generate", "tree"], "the following arguments are required: -o/--output"),
    (["generate", "pe", "--dense-only", "-o", "x.v"], "--dense-only applies to the engine only"),
    (["flow", "tree", "--target", "gowin"], "invalid choice: 'gowin'"),
    (["demo", "--layer", "conv9"], "conv9"),
    (["bogus"], "invalid choice: 'bogus'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    process = subprocess.run([sys.executable, "-m", "maskprop.cli", *argv],
                             capture_output=True, text=True)
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maskprop: error: "), process.stderr
    assert message in lines[0]
    assert not list(tmp_path.iterdir()), "a refused command must not leave files behind"


@pytest.mark.sim
def test_demo_runs_a_real_layer_bit_exactly(tmp_path, capsys):
    status = main(["demo", "--rows", "32", "--seed", "3", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "PASS" in out and "speedup" in out and "ideal" in out
