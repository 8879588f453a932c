"""``maskprop eval`` and ``maskprop profile`` through the CLI: outputs, profiles, bad input."""

import csv
import json
import subprocess
import sys
from dataclasses import replace

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
    # AlexNet's conv1 at batch 64 lowers forward to 375 million elements; backward-weight's
    # 193,600-product reduction is split with 64-bit partial sums, not refused for acc_width
    (["eval", "--network", "alexnet", "--batch", "64"],
     "--batch 64: AlexNet layer 'features.0' forward at batch 64 lowers to operands of"),
    (["eval", "--profile", "synthetic:1.5"], "density must be in [0, 1], not 1.5"),
    (["eval", "--profile", "synthetic:0.5:blobs"], "mask model must be iid or clustered"),
    (["eval", "--profile", "nothere.json"], "--profile must be literature"),
    (["eval", "--network", "digits", "--profile", "synthetic:0.5"], "drop --profile"),
    (["profile", "--model", "missing.py", "--batch", "b.npz", "-o", "p.json"], "b.npz"),
    (["eval", "--network", "digits", "--join", "--select-window", "8"],
     "--join: lanes must equal vec / select_window = 2 for the join array"),
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


# --- issue 10, item 7: data movement and energy ------------------------------------------------

def test_default_bandwidth_is_the_cores_memory_port():
    from maskprop.base.config import Config, CoreConfig
    from maskprop.evaluation.evaluate import default_bandwidth

    assert default_bandwidth(Config()) == CoreConfig().bus_bytes == 32
    narrow = Config(vec=8, lanes=4, data_width=8, acc_width=32)
    assert default_bandwidth(narrow) == CoreConfig(narrow).bus_bytes == 8


def test_pass_costs_estimate_is_the_cycle_models():
    """The evaluation counts each mode's costs on the lowering that mode runs in, and where
    the core runs both of backward-weight's orientations its estimate is pass_estimate's;
    each mode's traffic is that of the commands of its lowering on the evaluation's core."""
    from maskprop.evaluation.evaluate import evaluation_core, pass_costs
    from maskprop.host.core_driver import runnable_operands
    from maskprop.host.split import plan_pass
    from maskprop.sim import data_movement as dm
    from maskprop.sim.cycle_model import candidate_lowerings, estimate_lowerings, pass_estimate
    from maskprop.sim.layer import ConvLayer

    layer = ConvLayer(batch=1, in_channels=12, height=4, width=4, out_channels=19, kernel=3,
                      stride=1, padding=1, name="wide")
    rng = np.random.default_rng(11)
    a = rng.random(layer.input_shape) < 0.3
    dz = rng.random(layer.output_shape) < 0.3
    core = evaluation_core(EVALUATION)
    assert runnable_operands(layer, core) == ["a", "dz"]
    for pass_name in ("forward", "backward_data", "backward_weight"):
        estimate, dense, sparse = pass_costs(layer, pass_name, a, dz, EVALUATION, bandwidth=32)
        assert estimate == pass_estimate(layer, pass_name, a, dz, EVALUATION)
        assert (dense.cycles, sparse.cycles) == (estimate.dense_cycles, estimate.sparse_cycles)
        assert dense.traffic.dense and not sparse.traffic.dense
        for cost, orientation in ((dense, estimate.dense_orientation),
                                  (sparse, estimate.sparse_orientation)):
            operand = orientation or "a"
            commands = plan_pass(layer, pass_name, core, operand=operand)
            assert cost.traffic == dm.summed_traffic([
                dm.command_traffic(layer, c, EVALUATION, dense=cost.traffic.dense)
                for c in commands])
        if pass_name == "backward_data":
            assert sparse.traffic.mask_bytes == dm.tensor_words(layer, "A", 16) * 32
            assert dense.traffic.mask_bytes == 0
        elif estimate.dense_orientation == estimate.sparse_orientation:
            assert sparse.traffic.total_bytes == dense.traffic.total_bytes
    # Every pass of the digits CNN on its real masks, and ties (all-zero and all-one masks,
    # where backward-weight's two orientations can take the same cycles): the same estimate
    # where the core runs both orientations, else the cycle model's over the one it runs.
    from maskprop.evaluation.evaluate import digits_evaluation_inputs
    net, masks = digits_evaluation_inputs()
    restricted = set()
    for scenario in ("batchnorm", "no-batchnorm"):
        for net_layer in net.layers:
            a, dz = masks.masks(net_layer, scenario)
            conv = net_layer.conv
            runnable = runnable_operands(conv, core)
            for a_mask, dz_mask in ((a, dz), (np.zeros_like(a), np.zeros_like(dz)),
                                    (np.ones_like(a), np.ones_like(dz))):
                for pass_name in ("forward", "backward_data", "backward_weight"):
                    estimate = pass_costs(conv, pass_name, a_mask, dz_mask, EVALUATION,
                                          bandwidth=32)[0]
                    expected = pass_estimate(conv, pass_name, a_mask, dz_mask, EVALUATION)
                    if pass_name == "backward_weight" and runnable != ["a", "dz"]:
                        restricted.add(conv.name)
                        gemms = [g for g in candidate_lowerings(
                            conv, pass_name, A=a_mask.view(np.uint8),
                            W=np.ones(conv.weight_shape, dtype=np.uint8),
                            dZ=dz_mask.view(np.uint8), config=EVALUATION)
                            if g.orientation in runnable]
                        expected = estimate_lowerings(gemms, EVALUATION)
                        assert {estimate.dense_orientation,
                                estimate.sparse_orientation} <= set(runnable)
                    assert estimate == expected, (conv.name, pass_name)
    assert restricted and restricted != {layer.name for layer in net.layers}


MOVEMENT_SUMS = ("dense_bytes", "sparse_bytes", "dense_memory_cycles", "sparse_memory_cycles",
                 "dense_overlapped_cycles", "sparse_overlapped_cycles", "dense_serial_cycles",
                 "sparse_serial_cycles", "dense_energy_pj", "sparse_energy_pj")


def test_the_dense_baseline_ignores_the_selection_window():
    """The dense baseline is the full window's whatever the array's window. A first layer of 3
    channels: each chunk's 3 structural elements are a prefix, which the interleaved segments
    spread, so the windowed array's own dense mode takes the full window's one beat per chunk.
    Backward-weight with im2col(A) as X on a 7 x 7 map: its border taps scatter structural
    zeros over a chunk, its dense mode at window 4 takes more cycles than the full window's,
    and the estimates still count the full window's; only the sparse cycles pay for the
    window."""
    from maskprop.evaluation.evaluate import pass_costs
    from maskprop.sim.cycle_model import mode_cycles, pass_estimate
    from maskprop.sim.layer import ConvLayer
    from maskprop.sim.lowering import lower_pass

    rng = np.random.default_rng(3)
    full_window, windowed = EVALUATION.full_window, replace(EVALUATION, select_window=4)
    first = ConvLayer(batch=1, in_channels=3, height=8, width=8, out_channels=16, kernel=3,
                      stride=1, padding=1, name="first")
    late = ConvLayer(batch=2, in_channels=16, height=7, width=7, out_channels=16, kernel=3,
                     stride=1, padding=1, name="late")
    for layer, pass_name, operand in ((first, "forward", "dz"), (late, "backward_weight", "a")):
        a = rng.random(layer.input_shape) < 0.6
        dz = rng.random(layer.output_shape) < 0.4
        gemm = lower_pass(layer, pass_name, A=a, W=np.ones(layer.weight_shape), dZ=dz,
                          x_operand=operand, vec=EVALUATION.vec)
        own, fair = (mode_cycles(gemm, config, dense=True)
                     for config in (windowed, full_window))
        assert (own == fair) if layer is first else (own > fair), (layer.name, own, fair)
        full, _, _ = pass_costs(layer, pass_name, a, dz, full_window, bandwidth=32)
        narrow, _, _ = pass_costs(layer, pass_name, a, dz, windowed, bandwidth=32)
        assert narrow.dense_cycles == full.dense_cycles
        assert narrow.sparse_cycles >= full.sparse_cycles
        assert (pass_estimate(layer, pass_name, a, dz, windowed).dense_cycles ==
                pass_estimate(layer, pass_name, a, dz, full_window).dense_cycles)


def test_on_the_digits_cnn_every_windows_dense_mode_is_the_baseline():
    """The RTL comparisons time the array's own dense mode: on the digits CNN's real masks
    (both variants, every pass and orientation) it takes exactly the full window's cycles at
    every selection window, so they compare with the fair baseline."""
    from maskprop.evaluation.evaluate import SCENARIOS, _evaluated_passes, published_inputs
    from maskprop.sim.cycle_model import candidate_lowerings, mode_cycles

    net, source = published_inputs("digits")
    layers = list(net.layers)
    compared = 0
    for index, net_layer in enumerate(layers):
        following = layers[index + 1] if index + 1 < len(layers) else None
        for scenario in SCENARIOS:
            a, dz = source.masks(net_layer, scenario, following)
            for pass_name in _evaluated_passes(net_layer):
                conv = net_layer.conv
                for gemm in candidate_lowerings(conv, pass_name, A=a, W=np.ones(
                        conv.weight_shape), dZ=dz, config=EVALUATION):
                    full = mode_cycles(gemm, EVALUATION.full_window, dense=True)
                    for window in EVALUATION.select_windows()[:-1]:
                        windowed = replace(EVALUATION, select_window=window)
                        assert mode_cycles(gemm, windowed, dense=True) == full, \
                            (conv.name, pass_name, gemm.orientation, window)
                        compared += 1
    assert compared >= 3 * 2 * 2


@pytest.mark.parametrize("bandwidth", [32, 2.5])
def test_eval_rows_and_totals_with_data_movement(bandwidth):
    """Each layer pass of the digits CNN: bytes as the core's tensor sizes, memory cycles at the
    stated bandwidth, both compositions, energy; the totals are the rows' sums and their
    ratios."""
    from fractions import Fraction

    from maskprop.evaluation.evaluate import (TOTALS, digits_evaluation_inputs, evaluate,
                                              evaluation_core)
    from maskprop.host.core_driver import core_pass_shape
    from maskprop.host.split import plan_pass
    from maskprop.sim.data_movement import HOROWITZ_45NM

    net, masks = digits_evaluation_inputs()
    evaluation = evaluate(net, masks, EVALUATION, bandwidth=bandwidth)
    assert evaluation.bandwidth == bandwidth
    convs = {layer.name: layer.conv for layer in net.layers}
    for row in evaluation.rows:
        record = row.as_dict()
        for mode in ("dense", "sparse"):
            cost = getattr(row, f"{mode}_cost")
            total = record[f"{mode}_bytes_read"] + record[f"{mode}_bytes_written"]
            assert record[f"{mode}_bytes"] == total == cost.traffic.total_bytes
            assert record[f"{mode}_memory_cycles"] == -(-Fraction(total) //
                                                        Fraction(str(bandwidth)))
            cycles = record[f"{mode}_cycles"]
            memory = record[f"{mode}_memory_cycles"]
            assert record[f"{mode}_overlapped_cycles"] == max(cycles, memory)
            assert record[f"{mode}_serial_cycles"] == cycles + memory
            parts = sum(record[f"{mode}_energy_{part}_pj"] for part in
                        ("compute", "x_buffer", "row_buffer", "y_buffer", "dram"))
            assert record[f"{mode}_energy_pj"] == pytest.approx(parts)
            assert record[f"{mode}_energy_dram_pj"] == pytest.approx(
                total * HOROWITZ_45NM.dram_byte_pj())
            if row.pass_name != "backward_weight":
                shape = core_pass_shape(convs[row.layer], row.pass_name, 16)
                words = shape.x_words + shape.y_words + shape.out_words
                if mode == "sparse" and row.pass_name == "backward_data":
                    words += shape.rows * 1                     # A: one word per pixel (C 8)
                    assert record["sparse_mask_bytes"] == shape.rows * 32
                    assert record["sparse_bytes_with_bitmap"] == total - shape.rows * 30
                assert total == words * 32
            else:
                # On the evaluation's core the digits CNN's backward-weight is one command.
                orientation = record[f"{mode}_orientation"]
                commands = plan_pass(convs[row.layer], row.pass_name,
                                     evaluation_core(EVALUATION), operand=orientation)
                assert len(commands) == record[f"{mode}_commands"] == 1
                assert not check_weight_traffic(convs[row.layer], cost.traffic, commands,
                                                orientation)
        assert "on_core" not in record
        assert record["speedup_serial"] == (record["dense_serial_cycles"] /
                                            record["sparse_serial_cycles"])
        assert record["energy_ratio"] == record["dense_energy_pj"] / record["sparse_energy_pj"]
    for summary in evaluation.summary():
        rows = [r.as_dict() for r in evaluation.rows if r.scenario == summary["scenario"]
                and r.pass_name in TOTALS[summary["totals"]]]
        for key in MOVEMENT_SUMS:
            assert summary[key] == pytest.approx(sum(r[key] for r in rows), rel=1e-12), key
        assert summary["sparse_bytes_with_bitmap"] == sum(r["sparse_bytes_with_bitmap"]
                                                          for r in rows)
        assert summary["speedup_overlapped"] == (summary["dense_overlapped_cycles"] /
                                                 summary["sparse_overlapped_cycles"])
        assert summary["speedup_serial"] == (summary["dense_serial_cycles"] /
                                             summary["sparse_serial_cycles"])
        assert summary["energy_ratio"] == summary["dense_energy_pj"] / summary["sparse_energy_pj"]
        assert summary["bandwidth_bytes_per_cycle"] == bandwidth


def test_a_slow_memory_makes_passes_memory_bound():
    """At a tenth of a byte per cycle every pass waits for memory: overlapped cycles are the
    memory's, and the speedup with data movement is the bytes' ratio, below 1 where sparse
    backward-data reads A for its mask."""
    from maskprop.evaluation.evaluate import digits_evaluation_inputs, evaluate

    net, masks = digits_evaluation_inputs()
    evaluation = evaluate(net, masks, EVALUATION, bandwidth=0.1, scenarios=("batchnorm",))
    for row in evaluation.rows:
        assert row.dense_cost.overlapped == row.dense_cost.memory > row.dense_cycles
        assert row.sparse_cost.overlapped == row.sparse_cost.memory
        if row.pass_name == "backward_data":
            assert row.speedup_overlapped < 1 < row.speedup
        else:
            assert row.speedup_overlapped == 1.0


def test_eval_json_states_the_energy_source_and_assumptions(tmp_path):
    from maskprop.evaluation.evaluate import digits_evaluation_inputs, evaluate
    from maskprop.sim.data_movement import ASSUMPTIONS

    net, masks = digits_evaluation_inputs()
    data = json.loads(evaluate(net, masks, EVALUATION).json_text())
    assert data["bandwidth_bytes_per_cycle"] == 32
    assert "Horowitz" in data["energy_table"]["source"]
    assert data["energy_table"]["sram_read_64bit_pj"] == {"8192": 10.0, "32768": 20.0,
                                                          "1048576": 100.0}
    assert data["assumptions"] == list(ASSUMPTIONS)
    assert any("plan_pass" in line and "halo" in line for line in data["assumptions"])
    assert data["core"] == {"x_words": 4096, "y_words": 8192, "max_cols": 128}
    text = evaluate(net, masks, EVALUATION).csv_text()
    header = text.splitlines()[0].split(",")
    assert header[:4] == ["network", "scenario", "layer", "pass_name"]
    for column in ("dense_bytes", "sparse_memory_cycles", "sparse_macs_issued",
                   "sparse_y_reads", "dense_energy_pj", "speedup_serial", "energy_ratio",
                   "dense_commands", "sparse_commands"):
        assert column in header


@pytest.mark.parametrize("bandwidth", [0, -4, float("nan"), "fast"])
def test_evaluate_refuses_a_bandwidth_before_computing(bandwidth, monkeypatch):
    import maskprop.evaluation.evaluate as evaluate_module

    def forbidden(*args, **kwargs):
        raise AssertionError("a pass was computed")
    monkeypatch.setattr(evaluate_module, "pass_costs", forbidden)
    net, masks = evaluate_module.digits_evaluation_inputs()
    with pytest.raises(ValueError, match="bandwidth must be a positive number"):
        evaluate_module.evaluate(net, masks, EVALUATION, bandwidth=bandwidth)


def test_eval_counts_the_commands_of_split_passes():
    """On a core whose X scratchpad holds a few rows, the digits CNN's passes split: each
    row's traffic is the sum of its commands' (the X bands with their halo rows, the weights
    once per group), every output written once, and the buffers' energy is that of the core's
    buffers filled by every command. Backward-weight's parts read and write their partial
    sums (each written sum read back once), and it reads at least its operands and writes
    its result once."""
    from dataclasses import replace

    from maskprop.base.config import CoreConfig
    from maskprop.evaluation.evaluate import digits_evaluation_inputs, evaluation_core
    from maskprop.host.split import plan_pass
    from maskprop.sim.data_movement import (buffer_sizes, command_traffic, pass_traffic,
                                            tensor_words)

    net, masks = digits_evaluation_inputs()
    core = replace(evaluation_core(EVALUATION), x_words=256)
    evaluation = evaluate(net, masks, EVALUATION, core=core, scenarios=("batchnorm",))
    convs = {layer.name: layer.conv for layer in net.layers}
    split = weight_split = 0
    for row in evaluation.rows:
        conv = convs[row.layer]
        for dense, cost in ((True, row.dense_cost), (False, row.sparse_cost)):
            traffic = cost.traffic
            if row.pass_name == "backward_weight":
                orientation = row.dense_orientation if dense else row.sparse_orientation
                commands = plan_pass(conv, row.pass_name, core, operand=orientation)
                assert traffic.commands == len(commands)
                assert traffic == summed_commands(conv, commands, dense)
                weight_split += check_weight_traffic(conv, traffic, commands, orientation)
                assert cost.events.x_fill_words == traffic.words("X scratchpad")
                continue
            commands = plan_pass(conv, row.pass_name, core)
            assert traffic.commands == len(commands)
            parts = [command_traffic(conv, c, EVALUATION, dense=dense) for c in commands]
            for tensor in traffic.tensors:
                assert tensor.words == sum(t.words for part in parts for t in part.tensors
                                           if t.tensor == tensor.tensor
                                           and t.role == tensor.role)
            forward = row.pass_name == "forward"
            # Every output written once, and (the later commands of a group keep them) every
            # weight read once.
            for role, tensor in (("output", "Z" if forward else "dA"),
                                 ("Y buffer", "W" if forward else "Wt")):
                assert traffic.words(role) == tensor_words(conv, tensor, EVALUATION.vec)
            assert cost.events.x_fill_words == traffic.words("X scratchpad")
            assert buffer_sizes(cost.events, EVALUATION, core).x_bytes <= core.x_words * 32
            if len(commands) > 1:
                split += 1
                source = "A" if row.pass_name == "forward" else "dZ"
                assert traffic.words("X scratchpad") >= tensor_words(conv, source,
                                                                     EVALUATION.vec)
                unsplit = pass_traffic(conv, row.pass_name, EVALUATION, dense=dense)
                assert traffic.total_bytes >= unsplit.total_bytes
    assert split >= 4 and weight_split >= 2
    # What the host cannot split to fit is refused before anything is computed.
    with pytest.raises(ValueError, match="x_words"):
        evaluate(net, masks, EVALUATION, core=replace(core, x_words=2))


def summed_commands(layer, commands, dense):
    from maskprop.sim.data_movement import command_traffic, summed_traffic

    return summed_traffic([command_traffic(layer, c, EVALUATION, dense=dense)
                           for c in commands])


def check_weight_traffic(layer, traffic, commands, operand) -> bool:
    """Backward-weight's traffic against its tensors' sizes: ``dZ`` read once, per
    output-channel group every row of ``A`` a window reads at least once (each image exactly
    once when the parts are whole images), ``dW`` written once in the core's layout (a row per
    broadcast row); 64-bit partial sums exactly when the reduction is split into parts, each
    written sum read back once. True if the reduction is split."""
    from maskprop.host.memory_layout import channel_words, word_bytes
    from maskprop.host.split import whole_band
    from maskprop.sim.data_movement import tensor_words

    vec, size = EVALUATION.vec, word_bytes(EVALUATION.vec, EVALUATION.data_width)
    moved = {(t.tensor, t.role, t.direction): t.words for t in traffic.tensors}
    groups = len({c.columns for c in commands})
    parts = len(commands) // groups
    taps_c = layer.kernel ** 2 * layer.in_channels
    rows, cols = (taps_c, layer.out_channels) if operand == "a" else (layer.out_channels, taps_c)
    assert moved[("dZ", "X scratchpad", "read")] == tensor_words(layer, "dZ", vec)
    read_rows = {o * layer.stride - layer.padding + r for o in range(layer.out_height)
                 for r in range(layer.kernel)} & set(range(layer.height))
    a_words = layer.batch * len(read_rows) * layer.width * channel_words(layer.in_channels, vec)
    if all(c.band == whole_band(layer, "forward") for c in commands):
        assert moved[("A", "X scratchpad", "read")] == groups * tensor_words(layer, "A", vec)
    else:
        assert moved[("A", "X scratchpad", "read")] >= groups * a_words
    assert moved[("dW", "output", "write")] == rows * channel_words(cols, vec)
    sums = {key: words for key, words in moved.items() if key[0] == "dW sums"}
    if parts == 1:
        assert not sums
    else:
        # Each part but the last writes every result beat's tiles 64-bit sums, each part but
        # the first reads them back.
        beat = -(-EVALUATION.tiles * 64 // (size * 8))
        widths = ([len(columns) for columns in {c.columns for c in commands}]
                  if operand == "a" else [cols])
        per_part = sum(rows * -(-width // EVALUATION.tiles) * beat for width in widths)
        assert sums == {("dW sums", "partial sums", "read"): (parts - 1) * per_part,
                        ("dW sums", "partial sums", "write"): (parts - 1) * per_part}
    least = a_words + tensor_words(layer, "dZ", vec) + rows * channel_words(cols, vec)
    assert traffic.total_bytes >= least * size
    assert traffic.total_bytes > least * size or parts == 1
    return parts > 1


def test_backward_weight_runs_in_the_orientations_the_core_runs():
    """A layer whose ``R*R*C`` result columns exceed the core's max_cols runs backward-weight
    broadcasting A only, even where the cycle model alone would broadcast dZ; one the core
    runs in neither orientation is refused, before anything is computed, with both reasons."""
    from dataclasses import replace

    from maskprop.evaluation.evaluate import check_evaluable, evaluation_core, pass_costs
    from maskprop.host.core_driver import runnable_operands
    from maskprop.host.split import plan_pass
    from maskprop.sim.cycle_model import pass_estimate
    from maskprop.sim.layer import ConvLayer
    from maskprop.workloads.networks import NetLayer, Network

    layer = ConvLayer(batch=1, in_channels=16, height=10, width=10, out_channels=32, kernel=3,
                      stride=1, padding=1, name="deep")
    core = evaluation_core(EVALUATION)
    assert runnable_operands(layer, core) == ["a"]        # 144 columns > max_cols 128
    rng = np.random.default_rng(5)
    a = np.ones(layer.input_shape, dtype=bool)
    dz = rng.random(layer.output_shape) < 0.05
    free = pass_estimate(layer, "backward_weight", a, dz, EVALUATION)
    assert free.sparse_orientation == "dz"                # faster, but not on this core
    estimate, dense, sparse = pass_costs(layer, "backward_weight", a, dz, EVALUATION,
                                         bandwidth=32)
    assert estimate.dense_orientation == estimate.sparse_orientation == "a"
    assert estimate.sparse_cycles > free.sparse_cycles
    assert estimate.nonzero_macs == free.nonzero_macs
    commands = plan_pass(layer, "backward_weight", core, operand="a")
    for cost in (dense, sparse):
        assert cost.traffic == summed_commands(layer, commands, cost.traffic.dense)
    # Neither orientation fits: a scratchpad of 32 words holds forward's band of one output
    # row (3 rows of A, 30 words), not that and the row's dZ (10 more words).
    tiny = replace(core, x_words=32)
    with pytest.raises(ValueError, match="broadcasting A, .*; broadcasting dZ, "):
        pass_costs(layer, "backward_weight", a, dz, EVALUATION, bandwidth=32, core=tiny)
    net = Network("one layer", (NetLayer(layer, batchnorm=False, relu_input=False),))
    with pytest.raises(ValueError, match="broadcasting A, .*; broadcasting dZ, "):
        check_evaluable(net, EVALUATION, core=tiny)
    check_evaluable(net, EVALUATION, core=core)


def test_backward_weight_reduction_is_not_refused_for_acc_width():
    """Backward-weight's reduction over the batch is split with 64-bit partial sums: a layer
    whose reduction exceeds what acc_width holds is evaluable, but forward's is still checked."""
    from dataclasses import replace

    from maskprop.evaluation.evaluate import check_evaluable
    from maskprop.sim.layer import ConvLayer
    from maskprop.workloads.networks import NetLayer, Network

    wide = ConvLayer(batch=64, in_channels=3, height=56, width=56, out_channels=16, kernel=3,
                     stride=1, padding=1, name="wide")
    assert wide.reduction("backward_weight") > EVALUATION.max_reduction()
    check_evaluable(Network("wide", (NetLayer(wide, batchnorm=False, relu_input=False),)),
                    EVALUATION)
    deep = ConvLayer(batch=1, in_channels=16, height=4, width=4, out_channels=16, kernel=3,
                     stride=1, padding=1, name="deep")
    narrow = replace(EVALUATION, acc_width=34)
    assert deep.reduction("forward") > narrow.max_reduction()
    with pytest.raises(ValueError, match="forward reduction sums"):
        check_evaluable(Network("deep", (NetLayer(deep, batchnorm=False, relu_input=False),)),
                        narrow)


# --- issue 11: the join array beside the tile array -------------------------------------------

def test_eval_models_the_join_array_exactly_on_the_digits_cnn(tmp_path, capsys):
    """``--join``: every digits-CNN pass's join cycles are the exact schedule of the array in
    the pass's faster lowering; its totals relate to the tile array's dense baseline as every
    speedup does (achieved/ideal = nonzero MACs over the multiplier slots the join array
    uses); summary.json and the per-network JSON carry them."""
    from maskprop.base.config import JoinSettings
    from maskprop.base.metrics import multiplier_slots
    from maskprop.evaluation.evaluate import SCENARIOS, TOTALS, digits_evaluation_inputs
    from maskprop.sim.cycle_model import candidate_lowerings, join_array_cycles

    net, masks = digits_evaluation_inputs()
    join = JoinSettings()
    config = EVALUATION.for_evaluation()
    evaluation = evaluate(net, masks, config, join=join)
    layers = {layer.name: layer for layer in net.layers}
    checked = 0
    for row in evaluation.rows[::5]:                      # a sample: the loop is the model's
        conv = layers[row.layer].conv
        a, dz = masks.masks(layers[row.layer], row.scenario)
        gemms = candidate_lowerings(conv, row.pass_name,
                                    A=np.asarray(a, dtype=bool).view(np.uint8),
                                    W=np.ones(conv.weight_shape, dtype=np.uint8),
                                    dZ=np.asarray(dz, dtype=bool).view(np.uint8), config=config)
        assert row.join_exact
        assert row.join_cycles == min(join_array_cycles(g, config, group=join.group,
                                                        queue=join.queue, ring=join.ring)
                                      for g in gemms)
        checked += 1
    assert checked >= 4
    for scenario in SCENARIOS:
        for which in TOTALS:
            terms = evaluation.join_total(scenario, which)
            assert terms.exact
            # The same multipliers as the tile array: its dense slots are every multiplier in
            # every dense cycle, so speedup / ideal is the nonzero MACs over the join array's
            # own slots (checked in exact integer terms, then the float's definition).
            multipliers = config.tiles * config.lanes
            assert terms.dense_slots == multiplier_slots(terms.dense_cycles, multipliers)
            assert terms.efficiency == terms.speedup / terms.ideal
            assert 0 < terms.nonzero_macs <= multiplier_slots(terms.sparse_cycles, multipliers)
    status = main(["eval", "--network", "digits", "--join", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "Join array (4 tiles x 4 lanes, look-ahead 4, queue 8, ring 4; compute only)" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary) == len(SCENARIOS) * len(TOTALS)
    for row, (scenario, which) in zip(summary, [(s, w) for s in SCENARIOS for w in TOTALS]):
        terms = evaluation.join_total(scenario, which)
        assert (row["join_cycles"], row["join_exact"]) == (terms.sparse_cycles, True)
        assert row["join_efficiency"] == terms.efficiency      # JSON keeps a float exactly
    data = json.loads((tmp_path / "digits.json").read_text())
    assert data["join"] == {"group": 4, "queue": 8, "ring": 4}
    assert all(layer["join_exact"] for layer in data["layers"])


def test_without_join_eval_has_no_join_fields(tmp_path):
    from maskprop.evaluation.evaluate import digits_evaluation_inputs

    net, masks = digits_evaluation_inputs()
    evaluation = evaluate(net, masks, EVALUATION.for_evaluation())
    assert evaluation.join_total("batchnorm", "training step") is None
    assert not any(key.startswith("join") for row in evaluation.summary() for key in row)
    assert not any(key.startswith("join") for key in evaluation.rows[0].as_dict())


def test_join_pass_cycles_bound_below_exact():
    """Above ``exact_outputs`` the bound of unbounded queues, never above the exact cycles."""
    from maskprop.base.config import JoinSettings
    from maskprop.evaluation.evaluate import digits_evaluation_inputs, network_lowerings
    from maskprop.sim.cycle_model import join_pass_cycles

    net, masks = digits_evaluation_inputs()
    config = EVALUATION.for_evaluation()
    for _, _, gemms in list(network_lowerings(net, masks, "no-batchnorm", config))[:6]:
        exact, is_exact = join_pass_cycles(gemms, config, JoinSettings())
        bound, is_bound = join_pass_cycles(gemms, config, JoinSettings(), exact_outputs=0)
        assert (is_exact, is_bound) == (True, False)
        assert 0 < bound <= exact
