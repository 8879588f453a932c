"""The committed digits-CNN fixture (real ReLU masks): consistency, exact masks, golden model.

The fixture is ``maskprop/workloads/data/digits_cnn.npz`` (+ ``.json``), written by
``scripts/make_digits_fixture.py``; everything here but the last test needs NumPy only.
"""

import json
import sys

import numpy as np
import pytest

from maskprop.workloads.digits import (FIXTURE_PATH, NETWORK, TENSORS, VARIANTS, TrainSettings,
                                 choose_frac_bits, conv_layers, dequantize, fixture_from_arrays,
                                 load_fixture, make_fixture, quantize, upsample2x)
from maskprop.sim.golden import (batchnorm_backward, batchnorm_forward, conv_backward_data,
                                 conv_backward_data_fixed, conv_backward_weight,
                                 conv_backward_weight_fixed, conv_forward, conv_forward_fixed,
                                 relu, relu_backward, to_fixed)

#: The trained networks must actually have learned the task (chance is 0.1).
MIN_TEST_ACCURACY = 0.85
#: Fixture size budget.
MAX_FIXTURE_BYTES = 1 << 20
#: With BatchNorm between conv and ReLU, dZ is dense: at least this fraction nonzero.
BN_MIN_DZ_DENSITY = 0.95
INT16 = (-(1 << 15), (1 << 15) - 1)


@pytest.fixture(scope="module")
def fixture():
    return load_fixture()


def _close(actual, expected, rel=1e-5):
    """float64 golden vs PyTorch float32: error relative to the tensor's peak magnitude."""
    scale = float(np.max(np.abs(expected)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rel * scale)


# --- files and metadata -----------------------------------------------------------------------

def test_files_small_and_consistent(fixture):
    assert FIXTURE_PATH.stat().st_size < MAX_FIXTURE_BYTES
    sidecar = json.loads(FIXTURE_PATH.with_suffix(".json").read_text())
    assert sidecar == fixture.metadata
    assert fixture.path == FIXTURE_PATH


def test_metadata(fixture):
    assert set(fixture.variants) == set(VARIANTS)
    assert fixture.steps == TrainSettings().steps and fixture.seed == TrainSettings().seed
    assert fixture.torch_version
    assert fixture.metadata["data_width"] == 16
    assert fixture.metadata["network"] == [
        {"name": s.name, "in_channels": s.in_channels, "out_channels": s.out_channels,
         "kernel": s.kernel, "stride": s.stride, "padding": s.padding} for s in NETWORK]
    for name in VARIANTS:
        assert fixture[name].batchnorm == (name == "batchnorm")
        assert fixture[name].test_accuracy > MIN_TEST_ACCURACY, name


def test_lookup_errors(fixture, tmp_path):
    assert fixture["plain"]["conv2"] is fixture["plain"].layers[1]
    with pytest.raises(KeyError, match="conv9"):
        fixture["plain"]["conv9"]
    with pytest.raises(KeyError, match="variants are"):
        fixture["resnet"]
    with pytest.raises(FileNotFoundError, match="make_digits_fixture"):
        load_fixture(tmp_path / "missing.npz")


# --- shapes, ranges, quantization -------------------------------------------------------------

def test_layers_and_shapes(fixture):
    expected = conv_layers(batch=2)
    assert [layer.name for layer in expected] == [s.name for s in NETWORK]
    for variant in VARIANTS:
        records = fixture[variant].layers
        assert [r.layer for r in records] == expected
        for r in records:
            shapes = {"A": r.layer.input_shape, "dA": r.layer.input_shape,
                      "W": r.layer.weight_shape, "dW": r.layer.weight_shape,
                      "Z": r.layer.output_shape, "dZ": r.layer.output_shape}
            for name in TENSORS:
                assert r.fixed(name).shape == shapes[name], (variant, r.name, name)
                assert r.fixed(name).dtype == np.int64
                assert r.float(name).shape == shapes[name]
            assert r.layer.batch >= 2
            if r.batchnorm:
                assert r.bn_weight.shape == r.bn_bias.shape == (r.layer.out_channels,)
            else:
                assert r.bn_weight is None and r.bn_bias is None
        # Each layer's input is the previous layer's (post-ReLU) output.
        for prev, nxt in zip(records, records[1:]):
            assert nxt.layer.input_shape == prev.layer.output_shape


@pytest.mark.parametrize("variant", VARIANTS)
def test_int16_range_well_used(fixture, variant):
    for r in fixture[variant].layers:
        for name in TENSORS:
            q = r.fixed(name)
            assert INT16[0] <= q.min() and q.max() <= INT16[1], (r.name, name)
            # Largest power-of-two scale without saturation: at least half the range is used.
            assert np.abs(q).max() >= (1 << 14), (r.name, name)
            assert r.frac_bits[name] == choose_frac_bits(r.float(name))


@pytest.mark.parametrize("variant", VARIANTS)
def test_quantization_and_exact_masks(fixture, variant):
    for r in fixture[variant].layers:
        for name in TENSORS:
            q, x, f = r.fixed(name), r.float(name), r.frac_bits[name]
            np.testing.assert_array_equal(q, quantize(x, f))
            # Exact masks and signs: the fixed-point mask is the float (PyTorch) mask.
            np.testing.assert_array_equal(q != 0, x != 0)
            np.testing.assert_array_equal(np.sign(q), np.sign(x))
            # Where no nonzero was lost, this is the golden model's to_fixed.
            reference = to_fixed(x, f, 16)
            fixed_up = (reference == 0) & (x != 0)
            assert np.count_nonzero(fixed_up) == r.lsb_fixups[name]
            np.testing.assert_array_equal(q[~fixed_up], reference[~fixed_up])
            # Error at most half an LSB, or under one LSB where a nonzero was kept at +-1.
            error = np.abs(dequantize(q, f) - x)
            assert np.all(error[~fixed_up] <= np.ldexp(0.5, -f))
            assert np.all(error[fixed_up] < np.ldexp(1.0, -f))


def test_quantize_keeps_masks():
    x = np.array([0.0, 1e-9, -1e-9, 0.49, 0.5, -0.5, -0.51, 3.2, -0.0])
    np.testing.assert_array_equal(quantize(x, 0), [0, 1, -1, 1, 1, -1, -1, 3, 0])
    assert choose_frac_bits(np.array([1.0])) == 14       # 2**14 <= 32767 < 2**15
    assert choose_frac_bits(np.array([-32767.0])) == 0
    assert choose_frac_bits(np.array([1e6])) == -5       # large values: negative frac_bits
    assert choose_frac_bits(np.zeros(3)) == 15
    peak = 32767.4 / 2 ** 20                            # rounds down to the limit at 20 bits
    assert choose_frac_bits(np.array([peak])) == 20 and quantize([peak], 20)[0] == 32767
    np.testing.assert_array_equal(upsample2x(np.arange(4).reshape(2, 2)),
                                  [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])


# --- masks and densities ------------------------------------------------------------------------

def test_plain_relu_masks(fixture):
    records = fixture["plain"].layers
    for r in records:
        # dZ is zero wherever the ReLU after the conv zeroed its input (float and fixed point).
        assert np.all(r.dZ_float[r.Z_float <= 0] == 0), r.name
        assert np.all(r.dZ[r.Z <= 0] == 0), r.name
        np.testing.assert_array_equal(r.Z > 0, r.Z_float > 0)
        assert 0 < r.density_dZ < 1
    for prev, nxt in zip(records, records[1:]):
        # The next layer's input is exactly ReLU(Z) and the backward chain is relu_backward.
        np.testing.assert_array_equal(nxt.A_float, relu(prev.Z_float))
        np.testing.assert_array_equal(prev.dZ_float, relu_backward(nxt.dA_float, prev.Z_float))


def test_batchnorm_dense_gradients(fixture):
    for r in fixture["batchnorm"].layers:
        assert r.density_dZ >= BN_MIN_DZ_DENSITY, (r.name, r.density_dZ)
        # Input-activation masks still exist (the image's background, then ReLU outputs).
        assert r.density_A < 0.9, (r.name, r.density_A)


def test_batchnorm_chain_matches_golden(fixture):
    """conv -> BN(gamma, beta) -> ReLU: golden BatchNorm forward/backward on PyTorch's tensors."""
    records = fixture["batchnorm"].layers
    for prev, nxt in zip(records, records[1:]):
        gamma = prev.bn_weight[None, :, None, None]
        beta = prev.bn_bias[None, :, None, None]
        pre = gamma * batchnorm_forward(prev.Z_float) + beta
        _close(relu(pre), nxt.A_float, rel=1e-5)
        # Mask from PyTorch's own activation (a float64 recomputation could flip a value at 0).
        d_pre = np.where(nxt.A_float > 0, nxt.dA_float, 0.0)
        _close(batchnorm_backward(gamma * d_pre, prev.Z_float), prev.dZ_float, rel=1e-5)


def test_densities(fixture):
    for variant in VARIANTS:
        v = fixture[variant]
        layers = {r.name: r for r in v.layers}
        for name in ("conv2", "conv3", "conv4"):
            assert 0 < layers[name].density_A < 1, (variant, name)
        assert 0 < layers["conv1"].density_A < 1          # image background is exactly 0
        for lmeta in fixture.metadata["variants"][variant]["layers"]:
            r = layers[lmeta["layer"]["name"]]
            assert lmeta["density"] == {"A": round(r.density_A, 6), "dZ": round(r.density_dZ, 6)}
        # Density history: step 0, every history_every updates, the end.
        h = v.history
        assert h.steps == TrainSettings().history_steps and h.steps[0] == 0
        assert h.steps[-1] == fixture.steps and len(h.loss) == len(h.steps)
        assert set(h.density_A) == set(h.density_dZ) == set(layers)
        for series in (*h.density_A.values(), *h.density_dZ.values()):
            assert len(series) == len(h.steps) and all(0 <= d <= 1 for d in series)
        assert h.loss[-1] < h.loss[0]
        if variant == "plain":
            # Without BatchNorm, dZ of a layer and A of the next share the ReLU mask (dA dense).
            for prev, nxt in zip(NETWORK, NETWORK[1:]):
                assert all(dz <= a for dz, a in zip(h.density_dZ[prev.name],
                                                     h.density_A[nxt.name]))
        else:
            assert all(d >= BN_MIN_DZ_DENSITY for s in h.density_dZ.values() for d in s)


# --- golden model on real tensors ---------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_golden_float_reproduces_torch(fixture, variant):
    for r in fixture[variant].layers:
        s, p, R = r.layer.stride, r.layer.padding, r.layer.kernel
        _close(conv_forward(r.A_float, r.W_float, s, p), r.Z_float)
        dA = conv_backward_data(r.dZ_float, r.W_float, r.A.shape[2:], s, p)
        _close(dA, r.dA_float)
        masked = conv_backward_data(r.dZ_float, r.W_float, r.A.shape[2:], s, p, omask=r.A != 0)
        assert np.all(masked[r.A == 0] == 0)
        np.testing.assert_array_equal(masked[r.A != 0], dA[r.A != 0])
        _close(conv_backward_weight(r.dZ_float, r.A_float, R, s, p), r.dW_float)


@pytest.mark.parametrize("variant", VARIANTS)
def test_golden_fixed_runs_on_real_data(fixture, variant):
    """The bit-exact passes accept the fixture (no overflow refusal) and, requantized to the
    stored output scales, agree with PyTorch up to quantization error."""
    for r in fixture[variant].layers:
        s, p, R, f = r.layer.stride, r.layer.padding, r.layer.kernel, r.frac_bits
        shifts = {"Z": f["A"] + f["W"] - f["Z"], "dA": f["dZ"] + f["W"] - f["dA"],
                  "dW": f["dZ"] + f["A"] - f["dW"]}
        assert all(0 <= v <= 63 for v in shifts.values()), shifts
        Z = conv_forward_fixed(r.A, r.W, s, p, shift=shifts["Z"])
        dA = conv_backward_data_fixed(r.dZ, r.W, r.A.shape[2:], s, p, omask=r.A != 0,
                                      shift=shifts["dA"])
        dW = conv_backward_weight_fixed(r.dZ, r.A, R, s, p, shift=shifts["dW"])
        for name, out in (("Z", Z), ("dA", dA), ("dW", dW)):
            reference = r.float(name) * (r.A_float != 0) if name == "dA" else r.float(name)
            _close(dequantize(out, f[name]), reference, rel=5e-4)
        assert np.all(dA[r.A == 0] == 0)


# --- regeneration -----------------------------------------------------------------------------

def test_missing_torch_message(monkeypatch):
    from maskprop.workloads import digits
    monkeypatch.setitem(sys.modules, "torch", None)    # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[torch\]'"):
        digits.make_fixture(TrainSettings(steps=1))


@pytest.mark.torch
def test_regeneration_is_deterministic():
    """A short run, twice in-process with the same seed: identical arrays and metadata."""
    settings = TrainSettings(steps=6, history_every=3)
    first_arrays, first_meta = make_fixture(settings)
    second_arrays, second_meta = make_fixture(settings)
    assert first_meta == second_meta
    assert first_arrays.keys() == second_arrays.keys()
    for key in first_arrays:
        np.testing.assert_array_equal(first_arrays[key], second_arrays[key], err_msg=key)
    short = fixture_from_arrays(first_arrays, first_meta)
    assert short["plain"].history.steps == [0, 3, 6]
    for r in short["plain"].layers:
        assert np.all(r.dZ[r.Z <= 0] == 0)
        np.testing.assert_array_equal(r.A != 0, r.A_float != 0)
