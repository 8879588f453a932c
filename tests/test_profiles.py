"""Sparsity profiles: the JSON format, synthetic masks, and the four sources (measured with
PyTorch hooks, the digits fixture, literature, synthetic).

torch is imported unconditionally: CI installs it, and a missing torch must fail, not skip.
"""

import argparse
import json
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

from maskprop.cli.profile import add_parser, run
from maskprop.workloads.digits import load_fixture
from maskprop.workloads.networks import NETWORK_NAMES, NETWORKS, network
from maskprop.workloads.profiles import (FORMAT, Profile, digits_density_history, digits_profile,
                                         literature_profile, load_profile, measure_profile,
                                         save_masks, synthesize_mask, synthetic_profile)


def _profile(**overrides):
    data = dict(network="resnet50", source="measured", description="a test profile",
                batch=4, layers={"conv1": {"A": 1.0, "dZ": 0.9},
                                 "layer1.0.conv1": {"A": 0.4, "Y": 0.5, "dZ": 0.25}},
                default={"A": 0.6})
    data.update(overrides)
    return Profile(**data)


# --- format -----------------------------------------------------------------------------------

def test_round_trip(tmp_path):
    profile = _profile(mask_model="clustered")
    path = profile.save(tmp_path / "sub" / "p.json")
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT
    loaded = load_profile(path)
    assert loaded == profile
    assert loaded.density("layer1.0.conv1", "Y") == 0.5
    assert loaded.density("layer4.2.conv3") == 0.6          # from default
    assert loaded.density("conv1", "A") == 1.0


def test_density_lookup_errors_name_the_layer():
    profile = _profile(default=None)
    with pytest.raises(ValueError, match="'layer2.0.conv1'"):
        profile.density("layer2.0.conv1", "A")
    with pytest.raises(ValueError, match="'conv1'.*'Y'|'Y'.*'conv1'"):
        profile.density("conv1", "Y")
    with pytest.raises(ValueError, match="density key"):
        profile.density("conv1", "W")


@pytest.mark.parametrize("change, message", [
    (dict(layers={"conv1": {"A": 1.5}}), r"\[0, 1\]"),
    (dict(layers={"conv1": {"A": -0.1}}), r"\[0, 1\]"),
    (dict(layers={"conv1": {"dZ": float("nan")}}), r"\[0, 1\]"),
    (dict(layers={"conv1": {"A": float("inf")}}), r"\[0, 1\], not inf"),
    (dict(default={"A": float("-inf")}), r"\[0, 1\], not -inf"),
    (dict(layers={"conv1": {"A": np.float32("nan")}}), r"\[0, 1\], not nan"),
    (dict(layers={"conv1": {"A": 10**400}}), r"\[0, 1\], not an integer of 1329 bits"),
    (dict(layers={"conv1": {"A": "half"}}), "number"),
    (dict(layers={"conv1": {"A": True}}), "number"),
    (dict(layers={"conv1": {"A": 0.5, "B": 0.1}}), "unknown key.*'B'"),
    (dict(default={"A": 0.5, "density": 0.1}), "unknown key.*'density'"),
    (dict(description=""), "description"),
    (dict(description="   "), "description"),
    (dict(source="guess"), "source"),
    (dict(batch=0), "batch"),
    (dict(mask_model="blobs"), "mask model"),
    (dict(source="literature"), "'source'"),           # literature entries need citations
    (dict(network=""), "network"),
    (dict(layers={}, default=None), "no 'layers'"),
])
def test_validation(change, message):
    with pytest.raises(ValueError, match=message):
        _profile(**change)


def test_load_validation(tmp_path):
    good = json.loads(_profile().to_json())
    cases = [({**good, "format": "maskprop-profile/0"}, "format"),
             ({**good, "extra": 1}, "unknown key.*'extra'"),
             ({k: v for k, v in good.items() if k != "description"}, "description")]
    for i, (data, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=message):
            load_profile(path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_profile(tmp_path / "broken.json")


@pytest.mark.parametrize("density, message", [
    ("NaN", r"'A' must be a density \(fraction nonzero\) in \[0, 1\], not nan"),
    ("Infinity", r"in \[0, 1\], not inf"),
    ("1e999", r"in \[0, 1\], not inf"),
    ("-Infinity", r"in \[0, 1\], not -inf"),
    ("1" * 400, r"in \[0, 1\], not an integer of 1326 bits"),
    ("1" * 5000, r"not valid JSON: Exceeds the limit"),
])
def test_profile_files_with_non_densities_are_refused(density, message, tmp_path):
    """Python's json reads NaN, Infinity and 1e999 as floats: the densities check refuses them."""
    text = _profile().to_json().replace('"A": 0.4', f'"A": {density}')
    assert density in text
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_profile(path)


def test_profile_files_that_are_not_json_text(tmp_path):
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00profile")
    with pytest.raises(ValueError, match="is not a text file"):
        load_profile(tmp_path / "binary.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        load_profile(tmp_path / "deep.json")
    with pytest.raises(ValueError, match="cannot read profile"):
        load_profile(tmp_path)


def test_damaged_masks_files(tmp_path):
    """The masks file of a profile: headers are checked before any mask is read, and damage in
    the data is a ValueError naming the file, not a zip or zlib traceback."""
    a = np.ones((2, 3, 4, 4), bool)
    save_masks(tmp_path / "masks.npz", {"conv1/A": a})
    profile = _profile(masks="masks.npz", default=None, layers={"conv1": {"dZ": 0.5}})
    path = profile.save(tmp_path / "p.json")
    loaded = load_profile(path)
    loaded.check_masks({"conv1/A": a.shape})
    with pytest.raises(ValueError, match=r"conv1/A has shape \(2, 3, 4, 4\), the layer needs "
                                         r"\(1, 3, 4, 4\)"):
        loaded.check_masks({"conv1/A": (1, 3, 4, 4)})
    data = (tmp_path / "masks.npz").read_bytes()
    (tmp_path / "masks.npz").write_bytes(data[:len(data) // 2])
    for check in (lambda: loaded.check_masks({}), lambda: loaded.density("conv1", "A"),
                  lambda: loaded.mask("conv1", "A", a.shape)):
        with pytest.raises(ValueError, match=r"profile masks file .*masks.npz: is a truncated or "
                                             r"damaged .npz archive"):
            check()
    np.savez(tmp_path / "masks.npz", **{"conv1/A": np.full(a.shape, "x")})
    with pytest.raises(ValueError, match=r"conv1/A has dtype <U1; a mask must be boolean"):
        loaded.check_masks({})
    with pytest.raises(ValueError, match=r"conv1/A has dtype <U1"):
        loaded.density("conv1", "A")
    (tmp_path / "masks.npz").unlink()
    with pytest.raises(ValueError, match="masks.npz: no such file"):
        loaded.density("conv1", "A")


def test_masks_file(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.random((2, 3, 4, 4)) < 0.3
    (tmp_path / "m").mkdir()
    save_masks(tmp_path / "m" / "masks.npz", {"conv1/A": a})
    profile = _profile(masks="m/masks.npz", default=None,
                       layers={"conv1": {"dZ": 0.5}})
    path = profile.save(tmp_path / "p.json")
    loaded = load_profile(path)
    np.testing.assert_array_equal(loaded.mask("conv1", "A", a.shape), a)
    assert loaded.density("conv1", "A") == a.mean()       # from the masks, no density given
    assert loaded.mask("conv1", "dZ", (2, 5, 4, 4), rng).shape == (2, 5, 4, 4)
    with pytest.raises(ValueError, match="shape"):
        loaded.mask("conv1", "A", (2, 3, 4, 5))
    # Saved elsewhere, the relative masks path follows.
    moved = loaded.save(tmp_path / "deeper" / "q.json")
    assert json.loads(moved.read_text())["masks"] == "../m/masks.npz"
    np.testing.assert_array_equal(load_profile(moved).mask("conv1", "A", a.shape), a)
    with pytest.raises(ValueError, match="'<layer>/A'"):
        save_masks(tmp_path / "bad.npz", {"conv1": a})


# --- synthetic masks --------------------------------------------------------------------------

def _neighbour_nonzero_probability(mask):
    """P(right or lower neighbour nonzero | element nonzero), within each (n, c) plane."""
    hits = (mask[..., :, :-1] & mask[..., :, 1:]).sum() + (mask[..., :-1, :] & mask[..., 1:, :]).sum()
    pairs = mask[..., :, :-1].sum() + mask[..., :-1, :].sum()
    return hits / pairs


@pytest.mark.parametrize("density", [0.0, 0.1, 0.37, 0.5, 0.9, 1.0])
def test_clustered_density_exact_per_channel(density):
    shape = (2, 5, 23, 31)
    mask = synthesize_mask(shape, density, np.random.default_rng(3), "clustered")
    assert mask.shape == shape and mask.dtype == bool
    per_channel = mask.mean(axis=(2, 3))
    assert np.all(np.abs(per_channel - density) <= 1 / (2 * 23 * 31) + 1e-12)


@pytest.mark.parametrize("density", [0.0, 0.2, 0.5, 1.0])
def test_iid_density(density):
    mask = synthesize_mask((2, 8, 32, 32), density, np.random.default_rng(4), "iid")
    # Binomial with 16384 draws: 5 standard deviations.
    assert abs(mask.mean() - density) <= 5 * np.sqrt(density * (1 - density) / mask.size) + 1e-12


def test_clustered_is_spatially_correlated_iid_is_not():
    shape, density = (1, 16, 64, 64), 0.3
    clustered = synthesize_mask(shape, density, np.random.default_rng(5), "clustered",
                                correlation_length=2.0)
    iid = synthesize_mask(shape, density, np.random.default_rng(5), "iid")
    assert _neighbour_nonzero_probability(clustered) > density + 0.3
    assert abs(_neighbour_nonzero_probability(iid) - iid.mean()) < 0.03
    # Longer correlation length, bigger blobs.
    wide = synthesize_mask(shape, density, np.random.default_rng(5), "clustered",
                           correlation_length=6.0)
    assert _neighbour_nonzero_probability(wide) > _neighbour_nonzero_probability(clustered)


def test_synthesize_mask_deterministic_and_checked():
    for model in ("iid", "clustered"):
        a = synthesize_mask((1, 3, 20, 20), 0.4, np.random.default_rng(9), model)
        b = synthesize_mask((1, 3, 20, 20), 0.4, np.random.default_rng(9), model)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, synthesize_mask((1, 3, 20, 20), 0.4,
                                                     np.random.default_rng(10), model))
    with pytest.raises(ValueError, match="density"):
        synthesize_mask((1, 1, 4, 4), 1.2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="mask model"):
        synthesize_mask((1, 1, 4, 4), 0.5, np.random.default_rng(0), "blobs")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        synthesize_mask((4, 4), 0.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="correlation_length"):
        synthesize_mask((1, 1, 4, 4), 0.5, np.random.default_rng(0), "clustered",
                        correlation_length=0)


def test_clustered_is_fast():
    rng = np.random.default_rng(0)
    synthesize_mask((1, 4, 16, 16), 0.5, rng, "clustered")            # warm up the FFT plans
    start = time.perf_counter()
    mask = synthesize_mask((1, 64, 112, 112), 0.45, rng, "clustered")
    assert time.perf_counter() - start < 1.0
    assert abs(mask.mean() - 0.45) < 1e-4


# --- measured ---------------------------------------------------------------------------------

class _Net(nn.Module):
    """conv1 -> ReLU -> conv2 -> BN -> ReLU -> conv3 -> ReLU (functional) -> pool -> fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 5)
        self.seen = {}

    def forward(self, x):
        z1 = self.conv1(x)
        self.seen["z1"] = z1.detach().clone()
        a2 = self.relu1(z1)
        self.seen["a2"] = a2.detach().clone()
        a3 = self.relu2(self.bn2(self.conv2(a2)))
        self.seen["a3"] = a3.detach().clone()
        z3 = self.conv3(a3)
        self.seen["z3"] = z3.detach().clone()
        return self.fc(torch.relu(z3).mean(dim=(2, 3)))


def _fraction_nonzero(tensor):
    return int(torch.count_nonzero(tensor)) / tensor.numel()


@pytest.mark.torch
def test_measure_profile_densities():
    torch.manual_seed(0)
    net = _Net().train()
    x = torch.randn(4, 3, 10, 10)
    targets = torch.tensor([0, 1, 2, 3])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    profile = measure_profile(net, x, targets, network_name="tiny", description="test net")
    seen = net.seen
    assert profile.source == "measured" and profile.batch == 4
    assert "this batch at this point of training" in profile.description
    assert list(profile.layers) == ["conv1", "conv2", "conv3"]
    assert profile.density("conv1", "A") == 1.0                       # random image, dense
    a2 = _fraction_nonzero(seen["a2"])
    assert 0.2 < a2 < 0.8
    assert profile.density("conv2", "A") == pytest.approx(a2, abs=1e-12)
    assert profile.density("conv1", "Y") == pytest.approx(a2, abs=1e-12)  # nn.ReLU module
    a3 = _fraction_nonzero(seen["a3"])
    assert profile.density("conv3", "A") == pytest.approx(a3, abs=1e-12)
    assert profile.density("conv2", "Y") == pytest.approx(a3, abs=1e-12)  # through BN, inplace
    assert "Y" not in profile.layers["conv3"]                            # functional ReLU
    # The model's state is left alone (BatchNorm running statistics, no .grad).
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.torch
def test_measured_dz_follows_the_relu_mask():
    """conv -> ReLU: dZ is zero wherever Z <= 0; conv -> BN -> ReLU: dZ is dense."""
    torch.manual_seed(1)
    net = _Net().train()
    x = torch.randn(3, 3, 9, 9)
    captured = {}

    def keep_dz1(module, args, out):
        out.register_hook(lambda g: captured.setdefault("dz1", g.clone()))
    net.conv1.register_forward_hook(keep_dz1)
    profile = measure_profile(net, x, torch.tensor([4, 0, 2]), network_name="tiny",
                              description="test net")
    dz1, z1 = captured["dz1"], net.seen["z1"]
    assert torch.all(dz1[z1 <= 0] == 0)
    assert profile.density("conv1", "dZ") == pytest.approx(
        _fraction_nonzero(dz1), abs=1e-12)
    assert profile.density("conv1", "dZ") <= _fraction_nonzero(z1 > 0)
    assert profile.density("conv2", "dZ") > 0.99                       # BatchNorm between
    z3 = net.seen["z3"]
    assert profile.density("conv3", "dZ") <= _fraction_nonzero(z3 > 0)


@pytest.mark.torch
def test_measure_profile_without_targets_and_errors():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    profile = measure_profile(net, np.random.default_rng(0).standard_normal((2, 1, 7, 7)),
                              network_name="seq", description="sequential")
    assert list(profile.layers) == ["0", "2"]
    assert profile.density("2", "dZ") == 1.0                # sum of outputs: dense gradient
    assert profile.density("0", "Y") == profile.density("2", "A")
    with pytest.raises(ValueError, match="no torch.nn.Conv2d"):
        measure_profile(nn.Linear(3, 2), torch.randn(2, 3), network_name="x", description="y")
    with pytest.raises(ValueError, match="description"):
        measure_profile(net, torch.randn(2, 1, 7, 7), network_name="x", description="")


MODEL_PY = '''
import torch
from torch import nn

def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

def frozen():
    return model().eval()
'''


def _profile_args(argv):
    parser = argparse.ArgumentParser(prog="maskprop")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["profile", *argv])


@pytest.mark.torch
def test_profile_command(tmp_path, capsys):
    (tmp_path / "net.py").write_text(MODEL_PY)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "batch.npz", inputs=rng.standard_normal((3, 3, 8, 8)).astype(np.float32),
             targets=np.array([0, 3, 1]))
    out = tmp_path / "out" / "net_profile.json"
    args = _profile_args(["--model", str(tmp_path / "net.py"), "--batch",
                          str(tmp_path / "batch.npz"), "-o", str(out), "--network", "mynet",
                          "--description", "two convs, random batch"])
    assert run(args) == 0
    printed = capsys.readouterr().out
    assert "0 " in printed and "2 " in printed and str(out) in printed
    profile = load_profile(out)
    assert profile.network == "mynet" and profile.source == "measured" and profile.batch == 3
    assert profile.description.startswith("two convs, random batch")
    assert list(profile.layers) == ["0", "2"]
    assert profile.density("0", "A") == 1.0
    assert profile.density("2", "dZ") > 0.99                # BatchNorm between conv and ReLU
    assert 0 < profile.density("2", "A") < 1
    # conv -> in-place ReLU: the gradient is that of the conv output, zero where the ReLU cut.
    assert profile.density("0", "dZ") <= profile.density("0", "Y") == profile.density("2", "A")

    def fails(argv, message):
        with pytest.raises(ValueError, match=message):
            run(_profile_args(argv))

    batch = ["--batch", str(tmp_path / "batch.npz"), "-o", str(out)]
    fails(["--model", str(tmp_path / "nope.py"), *batch], "not found")
    fails(["--model", f"{tmp_path / 'net.py'}:build", *batch], "no function 'build'")
    fails(["--model", f"{tmp_path / 'net.py'}:frozen", *batch], "eval mode")
    np.savez(tmp_path / "empty.npz", x=np.zeros(3))
    fails(["--model", str(tmp_path / "net.py"), "--batch", str(tmp_path / "empty.npz"),
           "-o", str(out)], "no array 'inputs'")
    np.savez(tmp_path / "wrong.npz", inputs=np.zeros((2, 5, 8, 8), np.float32))
    fails(["--model", str(tmp_path / "net.py"), "--batch", str(tmp_path / "wrong.npz"),
           "-o", str(out)], "failed: ")


# --- digits -----------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["plain", "batchnorm"])
def test_digits_profile_matches_fixture(variant):
    fixture = load_fixture()
    record = fixture[variant]
    profile = digits_profile(variant)
    assert profile.network == "digits" and profile.source == "digits"
    assert profile.batch == fixture.metadata["settings"]["capture_batch"]
    assert f"{record.test_accuracy:.4f}" in profile.description
    assert f"{fixture.steps} training steps" in profile.description
    for i, layer in enumerate(record.layers):
        assert profile.density(layer.name, "A") == layer.density_A
        assert profile.density(layer.name, "dZ") == layer.density_dZ
        if i + 1 < len(record.layers):
            assert profile.density(layer.name, "Y") == record.layers[i + 1].density_A
    history = digits_density_history(variant)
    assert list(history.steps) == record.history.steps
    steps, values = history.series("conv2", "dZ")
    assert list(values) == record.history.density_dZ["conv2"]
    early = digits_profile(variant, step=history.steps[0])
    assert early.density("conv3", "A") == record.history.density_A["conv3"][0]
    with pytest.raises(ValueError, match="steps"):
        digits_profile(variant, step=7)
    with pytest.raises(ValueError, match="variant"):
        digits_profile("fancy")


# --- literature and synthetic -----------------------------------------------------------------

@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_literature_profiles_cover_their_networks(name):
    profile = literature_profile(name)
    assert profile.source == "literature" and profile.network == name
    assert name in NETWORKS
    layers = network(name).layers
    profile.check_layers([layer.name for layer in layers])        # names exist; A everywhere
    for layer in layers:
        assert profile.cite(layer.name)
        if not layer.relu_input and name != "alexnet":
            assert profile.density(layer.name) == 1.0
            assert profile.cite(layer.name) == "network input (image), dense"
    if name != "alexnet":
        assert profile.default["A"] == 0.56
        assert profile.default["source"].startswith("Cnvlutin (Albericio et al., ISCA 2016)")
        assert "not a per-layer measurement" in profile.description


def test_alexnet_literature_values():
    profile = literature_profile("alexnet")
    names = [layer.name for layer in network("alexnet").layers]
    assert [profile.density(n) for n in names] == [0.999, 0.60, 0.275, 0.207, 0.23]
    for i, n in enumerate(names, start=1):
        cite = profile.cite(n)
        assert "Eyeriss v1 workloads, Sparseloop artifact" in cite and f"conv{i}" in cite
        assert "inference" in cite and "pruned" in cite
    assert "image" in profile.cite(names[0])
    assert profile.default is None
    with pytest.raises(ValueError, match="literature profiles exist"):
        literature_profile("lenet")


@pytest.mark.parametrize("model", ["iid", "clustered"])
def test_synthetic_profile(model, tmp_path):
    profile = synthetic_profile("resnet18", 0.4, model)
    assert profile.source == "synthetic" and "Synthetic" in profile.description
    assert profile.mask_model == model
    names = [layer.name for layer in network("resnet18").layers]
    profile.check_layers(names)
    assert profile.density("conv1") == 1.0
    assert all(profile.density(n) == 0.4 for n in names[1:])
    assert load_profile(profile.save(tmp_path / "s.json")) == profile
    mask = profile.mask("layer1.0.conv1", "A", (1, 64, 56, 56), np.random.default_rng(0))
    assert abs(mask.mean() - 0.4) < 0.02
    with pytest.raises(ValueError, match="network must be one of"):
        synthetic_profile("lenet", 0.4)


def test_missing_torch_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)          # "import torch" raises ImportError
    args = _profile_args(["--model", str(tmp_path / "net.py"), "--batch",
                          str(tmp_path / "batch.npz"), "-o", str(tmp_path / "p.json")])
    with pytest.raises(ImportError, match=r"pip install -e '\.\[torch\]'"):
        run(args)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[torch\]'"):
        measure_profile(object(), np.zeros((1, 1, 2, 2)), network_name="x", description="y")


# --- synthetic tensors for one layer (maskprop sim) --------------------------------------------

def test_synthetic_tensors_follow_their_patterns():
    from maskprop.base.config import DEFAULT
    from maskprop.sim.layer import ConvLayer
    from maskprop.workloads.synthetic import synthetic_tensors

    layer = ConvLayer(2, 5, 4, 4, 6, 3, 1, 1)
    rng = np.random.default_rng(1)
    a_nonzero = rng.random(layer.input_shape) < 0.3
    dz_nonzero = rng.random(layer.output_shape) < 0.6
    tensors = synthetic_tensors(layer, DEFAULT, 7, masks=(a_nonzero, dz_nonzero))
    np.testing.assert_array_equal(tensors["A"] != 0, a_nonzero)
    np.testing.assert_array_equal(tensors["dZ"] != 0, dz_nonzero)
    assert tensors["A"].min() >= 0                          # a ReLU's output
    for name, shape in (("A", layer.input_shape), ("W", layer.weight_shape),
                        ("dZ", layer.output_shape)):
        assert tensors[name].shape == shape
        assert DEFAULT.data_min <= tensors[name].min() and tensors[name].max() <= DEFAULT.data_max
    # The same seed gives the same tensors; a missing dZ mask and dense_dz give a dense dZ.
    again = synthetic_tensors(layer, DEFAULT, 7, masks=(a_nonzero, dz_nonzero))
    assert all(np.array_equal(tensors[k], again[k]) for k in tensors)
    assert np.all(synthetic_tensors(layer, DEFAULT, 7, masks=(a_nonzero, None))["dZ"] != 0)
    assert np.all(synthetic_tensors(layer, DEFAULT, 7, density=0.1, dense_dz=True)["dZ"] != 0)
    assert not np.any(synthetic_tensors(layer, DEFAULT, 7, density=0.0)["A"])
    with pytest.raises(ValueError, match=r"density must be in \[0, 1\], not 1.5"):
        synthetic_tensors(layer, DEFAULT, 7, density=1.5)
    with pytest.raises(ValueError, match="masks or a density, not both"):
        synthetic_tensors(layer, DEFAULT, 7, density=0.5, masks=(a_nonzero, None))
