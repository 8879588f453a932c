"""The ``maskprop`` command line: generation, bad input (one line, exit 2), the demo."""

import subprocess
import sys

import numpy as np
import pytest

from maskprop.cli import main


@pytest.mark.parametrize("block, module", [("tree", "accumulation_tree"),
                                           ("decoder", "index_decoder"),
                                           ("pe", "sparse_pe"),
                                           ("engine", "sparse_dot_engine"),
                                           ("array", "tile_array")])
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
    (["demo", "--layer", "conv9"], "digits CNN: no layer 'conv9'"),
    (["sim", "--layer", "2,8,8", "--pass", "fwd"], "--layer must be N,C,H,W,K,R"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "bwd"], "invalid pass 'bwd'"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--density", "1.5"],
     "--density must be in [0, 1], not 1.5"),
    (["sim", "--layer", "1,300,4,4,8,3", "--pass", "fwd"],
     "needs 169 chunks of 16, but max_chunks is 64"),
    (["sim", "--layer", "2,4,4,4,4,3", "--pass", "fwd", "--masks", "missing.npz"],
     "--masks missing.npz"),
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
def test_demo_runs_the_backward_pass_of_a_real_layer(tmp_path, capsys):
    status = main(["demo", "--layer", "conv4", "--seed", "3", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "PASS" in out and "backward-data" in out and "backward-weight" in out
    assert "backward " in out and "ideal" in out


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
    status = main(["sim", "--layer", "digits:conv3:batchnorm", "--pass", "bwd-weight",
                   "--seed", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "with BatchNorm" in out and "PASS" in out
