"""Float golden model vs PyTorch (float64): conv2d forward and autograd gradients, BatchNorm.

torch is imported unconditionally: CI installs it, and a missing torch must fail, not skip.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given

from conv_strategies import GOLDEN_SETTINGS, conv_layers, densities, seeds, sparse_normal
from maskprop.sim.golden import (batchnorm_backward, batchnorm_forward, conv_backward_data,
                                 conv_backward_weight, conv_forward, conv_train_step, relu)
from maskprop.sim.layer import ConvLayer
from maskprop.sim.lowering import lower_backward_data, lower_backward_weight, lower_forward

pytestmark = pytest.mark.torch

CLOSE = dict(rtol=1e-10, atol=1e-12)


def _leaf(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


@GOLDEN_SETTINGS
@given(layer=conv_layers(), seed=seeds, density=densities)
def test_conv_matches_torch_autograd(layer, seed, density):
    rng = np.random.default_rng(seed)
    A = sparse_normal(rng, layer.input_shape, density)
    W = sparse_normal(rng, layer.weight_shape, 1.0)
    G = sparse_normal(rng, layer.output_shape, 0.5)
    s, p = layer.stride, layer.padding

    A_t, W_t = _leaf(A), _leaf(W)
    Z_t = F.conv2d(A_t, W_t, stride=s, padding=p)
    Z_t.backward(torch.from_numpy(G))
    Z_ref, dA_ref, dW_ref = Z_t.detach().numpy(), A_t.grad.numpy(), W_t.grad.numpy()

    np.testing.assert_allclose(conv_forward(A, W, s, p), Z_ref, **CLOSE)
    np.testing.assert_allclose(conv_backward_data(G, W, A.shape[2:], s, p), dA_ref, **CLOSE)
    np.testing.assert_allclose(conv_backward_weight(G, A, layer.kernel, s, p), dW_ref, **CLOSE)
    # The lowered GEMMs against the same independent reference.
    np.testing.assert_allclose(lower_forward(layer, A, W).run(), Z_ref, **CLOSE)
    np.testing.assert_allclose(lower_backward_data(layer, G, W, A_mask=A).run(),
                               dA_ref * (A != 0), **CLOSE)
    np.testing.assert_allclose(lower_backward_weight(layer, G, A).run(), dW_ref, **CLOSE)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_train_step_matches_torch(batchnorm):
    rng = np.random.default_rng(7)   # fixed seed: a single deterministic case
    layer = ConvLayer(batch=2, in_channels=3, height=6, width=5, out_channels=4, kernel=3,
                      stride=2, padding=1)
    A = relu(rng.standard_normal(layer.input_shape))
    W = rng.standard_normal(layer.weight_shape)
    G = rng.standard_normal(layer.output_shape)
    step = conv_train_step(A, W, G, layer.stride, layer.padding, batchnorm=batchnorm)

    A_t, W_t = _leaf(A), _leaf(W)
    Z_t = F.conv2d(A_t, W_t, stride=layer.stride, padding=layer.padding)
    Z_t.retain_grad()
    pre_t = F.batch_norm(Z_t, None, None, training=True, eps=1e-5) if batchnorm else Z_t
    F.relu(pre_t).backward(torch.from_numpy(G))

    np.testing.assert_allclose(step.pre_activation, pre_t.detach().numpy(), **CLOSE)
    np.testing.assert_allclose(step.dZ, Z_t.grad.numpy(), **CLOSE)
    np.testing.assert_allclose(step.dW, W_t.grad.numpy(), **CLOSE)
    # torch's dA is dense; the golden step's is output-masked by A != 0.
    np.testing.assert_allclose(step.dA, A_t.grad.numpy() * (A != 0), **CLOSE)


def test_batchnorm_matches_torch():
    rng = np.random.default_rng(11)
    Z, G = rng.standard_normal((3, 4, 5, 2)), rng.standard_normal((3, 4, 5, 2))
    Z_t = _leaf(Z)
    Y_t = F.batch_norm(Z_t, None, None, training=True, eps=1e-5)
    Y_t.backward(torch.from_numpy(G))
    np.testing.assert_allclose(batchnorm_forward(Z), Y_t.detach().numpy(), **CLOSE)
    np.testing.assert_allclose(batchnorm_backward(G, Z), Z_t.grad.numpy(), **CLOSE)
