"""``maskprop eval`` and ``maskprop profile`` through the CLI: outputs, profiles, bad input."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from maskprop.cli import main
from maskprop.config import Config
from maskprop.evaluate import ProfileMasks, evaluate
from maskprop.sim.networks import network
from maskprop.sim.profiles import Profile, synthetic_profile


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_eval_writes_tables_and_plots(tmp_path, capsys):
    status = main(["eval", "--network", "alexnet", "--network", "resnet18",
                   "--profile", "synthetic:0.4:clustered", "--out", str(tmp_path), "--layers"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "AlexNet" in out and "ResNet-18" in out and "features.3" in out
    for name in ("alexnet", "resnet18"):
        rows = read_csv(tmp_path / f"{name}.csv")
        net = network(name)
        # every layer, pass and scenario; the first layer's backward-data is not computed
        assert len(rows) == 2 * (3 * len(net.layers) - 1)
        assert not any(r["layer"] == net.layers[0].name and r["pass_name"] == "backward_data"
                       for r in rows)
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert {t["totals"] for t in data["totals"]} == {"forward", "backward", "training step"}
        assert (tmp_path / f"{name}_layers.png").stat().st_size > 10_000
    assert (tmp_path / "summary.png").stat().st_size > 10_000
    summary = json.loads((tmp_path / "summary.json").read_text())
    for row in summary:
        assert 1.0 <= row["speedup"] <= row["ideal"] + 1e-9


def test_batchnorm_removes_gradient_sparsity_but_not_output_sparsity():
    config = Config(max_chunks=4096, max_cols=65536)
    evaluation = evaluate(network("resnet18"), ProfileMasks(synthetic_profile("resnet18", 0.4)),
                          config)
    with_bn = evaluation.total("batchnorm", "backward")
    without_bn = evaluation.total("no-batchnorm", "backward")
    assert without_bn.speedup > with_bn.speedup > 1.3
    # Forward does not see dZ: the same in both scenarios.
    assert evaluation.total("batchnorm", "forward").sparse_cycles == \
        evaluation.total("no-batchnorm", "forward").sparse_cycles
    # With BatchNorm, backward-data still computes only the outputs whose activation is nonzero.
    rows = [r for r in evaluation.rows if r.scenario == "batchnorm"
            and r.pass_name == "backward_data"]
    assert all(r.dz_density == 1.0 and r.speedup > 1.5 for r in rows)


def test_eval_with_a_profile_file(tmp_path, capsys):
    layers = {layer.name: {"A": 0.3 + 0.1 * i, "source": "test"}
              for i, layer in enumerate(network("alexnet").layers)}
    layers["features.0"] = {"A": 1.0, "source": "image"}
    profile = Profile(network="alexnet", source="measured", description="made by the test",
                      layers=layers)
    path = profile.save(tmp_path / "alexnet.json")
    assert main(["eval", "--network", "alexnet", "--profile", str(path),
                 "--out", str(tmp_path / "out")]) == 0
    rows = read_csv(tmp_path / "out" / "alexnet.csv")
    forward = {r["layer"]: float(r["a_density"]) for r in rows if r["pass_name"] == "forward"}
    assert forward["features.3"] == pytest.approx(0.4, abs=0.01)


def test_profile_command_through_the_cli(tmp_path):
    import torch
    (tmp_path / "net.py").write_text(
        "import torch\n"
        "def model():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),\n"
        "                               torch.nn.Conv2d(4, 2, 3, padding=1), torch.nn.ReLU(),\n"
        "                               torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 3))\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "batch.npz", inputs=rng.standard_normal((2, 1, 6, 6)).astype("f4"),
             targets=np.array([0, 2]))
    status = main(["profile", "--model", str(tmp_path / "net.py"), "--batch",
                   str(tmp_path / "batch.npz"), "-o", str(tmp_path / "p.json")])
    assert status == 0
    profile = json.loads((tmp_path / "p.json").read_text())
    assert profile["source"] == "measured" and set(profile["layers"]) == {"0", "2"}
    assert 0.0 < profile["layers"]["2"]["A"] < 1.0
    assert torch.__version__


@pytest.mark.parametrize("argv, message", [
    (["eval", "--network", "lenet"], "--network must be one of"),
    # backward-weight of AlexNet's conv1 sums 64 x 55 x 55 products: too many for 48 bits
    (["eval", "--network", "alexnet", "--batch", "64"], "acc_width"),
    (["eval", "--profile", "synthetic:1.5"], "density must be in [0, 1], not 1.5"),
    (["eval", "--profile", "synthetic:0.5:blobs"], "mask model must be iid or clustered"),
    (["eval", "--profile", "nothere.json"], "--profile must be literature"),
    (["eval", "--network", "digits", "--profile", "synthetic:0.5"], "drop --profile"),
    (["profile", "--model", "missing.py", "--batch", "b.npz", "-o", "p.json"], "b.npz"),
])
def test_bad_input(argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    process = subprocess.run([sys.executable, "-m", "maskprop.cli", *argv],
                             capture_output=True, text=True)
    assert process.returncode == 2, process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maskprop: error: "), process.stderr
    assert message in lines[0]
