"""``maskprop eval`` and ``maskprop profile`` through the CLI: outputs, profiles, bad input."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from maskprop.cli.main import main
from maskprop.base.config import EVALUATION
from maskprop.evaluation.evaluate import ProfileMasks, checked_profile, evaluate
from maskprop.workloads.networks import network
from maskprop.workloads.profiles import Profile, synthetic_profile


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
    config = EVALUATION
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
    # The first conv reads the batch itself: normal samples, none exactly zero.
    assert profile["layers"]["0"]["A"] == 1.0


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
    process = subprocess.run([sys.executable, "-m", "maskprop", *argv],
                             capture_output=True, text=True)
    assert process.returncode == 2, process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maskprop: error: "), process.stderr
    assert message in lines[0]


# --- issue 8: no misleading numbers, each network once, refusals before computing -------------

def test_totals_without_work_have_no_ideal():
    from maskprop.base.metrics import Totals, totals

    none = Totals(dense_cycles=4096, sparse_cycles=512, dense_slots=48384, nonzero_macs=0)
    assert none.speedup == 8.0 and none.ideal is None and none.efficiency is None
    some = Totals(dense_cycles=4096, sparse_cycles=512, dense_slots=48384, nonzero_macs=4032)
    assert some.ideal == 12.0 and some.efficiency == 8.0 / 12.0
    # A total sums the integer terms (each pass weighted by its work), not the ratios.
    both = totals([none, some])
    assert (both.dense_cycles, both.sparse_cycles, both.dense_slots, both.nonzero_macs) == \
        (8192, 1024, 96768, 4032)
    assert both.ideal == 24.0 and both.efficiency == 8.0 / 24.0
    assert Totals(0, 0, 0, 0).speedup is None


def test_own_scenario_is_the_networks_batchnorm_placement():
    from maskprop.evaluation.evaluate import own_scenario

    assert own_scenario(network("alexnet")) == "no-batchnorm"
    assert own_scenario(network("resnet18")) == "batchnorm"


def test_eval_says_no_work_where_nothing_is_nonzero(tmp_path, capsys):
    """Density 0: without BatchNorm every backward pass has no nonzero product (the image layer's
    dZ follows the next layer's input, 0)."""
    status = main(["eval", "--network", "alexnet", "--profile", "synthetic:0", "--layers",
                   "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    row = next(line for line in out.splitlines() if "no-batchnorm" in line and "AlexNet" in line)
    assert row.count("(no work)") == 1                 # backward; forward reads the image
    rows = read_csv(tmp_path / "alexnet.csv")
    idle = [r for r in rows if r["scenario"] == "no-batchnorm" and r["pass_name"] != "forward"]
    assert idle and all(r["nonzero_macs"] == "0" and r["ideal"] == "no work"
                        and r["efficiency"] == "no work" for r in idle)
    busy = [r for r in rows if r not in idle and r["nonzero_macs"] != "0"]
    assert busy and all(float(r["ideal"]) >= float(r["speedup"]) for r in busy)
    totals = {(t["scenario"], t["totals"]): t
              for t in json.loads((tmp_path / "alexnet.json").read_text())["totals"]}
    assert totals["no-batchnorm", "backward"]["ideal"] is None
    assert totals["no-batchnorm", "backward"]["efficiency"] is None
    assert totals["no-batchnorm", "forward"]["ideal"] > 1.0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["ideal"] for s in summary if s["scenario"] == "no-batchnorm"
            and s["totals"] == "backward"] == [None]


def test_eval_evaluates_each_network_once(tmp_path, monkeypatch, capsys):
    import maskprop.evaluation.evaluate as evaluate_module

    evaluated = []
    real = evaluate_module.evaluate

    def counting(net, *args, **kwargs):
        evaluated.append(net.name)
        return real(net, *args, **kwargs)
    monkeypatch.setattr(evaluate_module, "evaluate", counting)
    assert main(["eval", "--network", "alexnet", "--network", "digits", "--network", "alexnet",
                 "--out", str(tmp_path)]) == 0
    assert evaluated == ["AlexNet", "digits CNN"]
    out = capsys.readouterr().out
    assert sum(line.startswith("│ AlexNet") for line in out.splitlines()) == 2  # two scenarios


@pytest.mark.parametrize("layers, message", [
    ({"features.0": {"A": 1.0}}, r"has no 'A' density for layer 'features.3'"),
    ({"conv1": {"A": 0.5}}, r"has no 'A' density for layer 'features.0' \(layer not listed"),
])
def test_eval_checks_a_profile_file_before_computing(layers, message, tmp_path, monkeypatch):
    import maskprop.evaluation.evaluate as evaluate_module

    def forbidden(*args, **kwargs):
        raise AssertionError("evaluate ran with a profile that lacks densities")
    monkeypatch.setattr(evaluate_module, "evaluate", forbidden)
    path = Profile(network="alexnet", source="measured", description="partial",
                   layers=layers).save(tmp_path / "alexnet.json")
    with pytest.raises(ValueError, match=message):
        checked_profile(path, "alexnet", network("alexnet"))
    assert main(["eval", "--network", "alexnet", "--profile", str(path),
                 "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
