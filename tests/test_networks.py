"""Conv-layer workloads of the ImageNet networks (maskprop/workloads/networks.py) against torchvision."""

import pytest

from maskprop.workloads.networks import NETWORKS, Network, _Builder, network

#: Published forward cost at 224x224, batch 1: the "GFLOPS" column of torchvision's model cards,
#: which counts multiply-accumulates (conv + fully connected layers).
PUBLISHED_MACS = {
    "alexnet": 0.71e9,
    "vgg16": 15.47e9,
    "resnet18": 1.81e9,
    "resnet50": 4.09e9,
    "googlenet": 1.50e9,
}

#: Exact MACs of our tables at 224x224, batch 1: (conv layers, fully connected layers).
#:   AlexNet     655,566,528 +  58,621,952 =    714,188,480  (0.714 G, +0.59 % vs 0.71)
#:   VGG-16   15,346,630,656 + 123,633,664 = 15,470,264,320  (15.470 G, +0.002 % vs 15.47)
#:   ResNet-18 1,813,561,344 +     512,000 =  1,814,073,344  (1.814 G, +0.23 % vs 1.81)
#:   ResNet-50 4,087,136,256 +   2,048,000 =  4,089,184,256  (4.089 G, -0.02 % vs 4.09)
#:   GoogLeNet 1,497,352,192 +   1,024,000 =  1,498,376,192  (1.498 G, -0.11 % vs 1.50)
EXACT_MACS = {
    "alexnet": (655_566_528, 9216 * 4096 + 4096 * 4096 + 4096 * 1000),
    "vgg16": (15_346_630_656, 25088 * 4096 + 4096 * 4096 + 4096 * 1000),
    "resnet18": (1_813_561_344, 512 * 1000),
    "resnet50": (4_087_136_256, 2048 * 1000),
    "googlenet": (1_497_352_192, 1024 * 1000),
}

#: Conv layers per network. GoogLeNet: conv1-3 + 9 Inception modules x 6 convs (branch1,
#: branch2 1x1 + 3x3, branch3 1x1 + 3x3, branch4 1x1) = 57. ResNet-18: conv1 + 8 blocks x 2 +
#: 3 downsample = 20. ResNet-50: conv1 + 16 blocks x 3 + 4 downsample = 53.
CONV_COUNTS = {"alexnet": 5, "vgg16": 13, "resnet18": 20, "resnet50": 53, "googlenet": 57}

#: (N, K, Ho, Wo) of the last conv layer in the table, at 224x224, batch 1.
LAST_OUTPUT = {
    "alexnet": (1, 256, 13, 13),
    "vgg16": (1, 512, 14, 14),
    "resnet18": (1, 512, 7, 7),
    "resnet50": (1, 2048, 7, 7),
    "googlenet": (1, 128, 7, 7),  # inception5b's pool-branch projection
}

DISPLAY_NAMES = {"alexnet": "AlexNet", "vgg16": "VGG-16", "resnet18": "ResNet-18",
                 "resnet50": "ResNet-50", "googlenet": "GoogLeNet"}

#: Whether the networks put BatchNorm between conv and ReLU (torchvision's plain AlexNet and
#: vgg16 don't).
BATCHNORM = {"alexnet": False, "vgg16": False, "resnet18": True, "resnet50": True,
             "googlenet": True}

NAMES = sorted(PUBLISHED_MACS)


def test_registry_keys():
    assert set(NETWORKS) == set(PUBLISHED_MACS)


@pytest.mark.parametrize("name", NAMES)
def test_total_macs_match_published(name):
    net = network(name)
    assert isinstance(net, Network)
    assert net.total_macs() == pytest.approx(PUBLISHED_MACS[name], rel=0.01)


@pytest.mark.parametrize("name", NAMES)
def test_exact_macs(name):
    net = network(name)
    conv, fc = EXACT_MACS[name]
    assert net.forward_macs() == conv
    assert net.fc_macs == fc
    assert net.total_macs() == conv + fc


@pytest.mark.parametrize("name", NAMES)
def test_conv_counts_and_names(name):
    net = network(name)
    assert len(net.layers) == CONV_COUNTS[name]
    assert net.name == DISPLAY_NAMES[name]
    names = [layer.name for layer in net.layers]
    assert len(set(names)) == len(names), "layer names must be unique"


@pytest.mark.parametrize("name", NAMES)
def test_last_conv_output_shape(name):
    assert network(name).layers[-1].conv.output_shape == LAST_OUTPUT[name]


@pytest.mark.parametrize("name", NAMES)
def test_relu_input_and_batchnorm_flags(name):
    layers = network(name).layers
    assert [layer.relu_input for layer in layers] == [False] + [True] * (len(layers) - 1)
    assert all(layer.batchnorm == BATCHNORM[name] for layer in layers)


@pytest.mark.parametrize("name", NAMES)
def test_batch_scaling(name):
    one, two = network(name), network(name, batch=2)
    assert two.total_macs() == 2 * one.total_macs()
    assert two.forward_macs() == 2 * one.forward_macs()
    assert two.fc_macs == 2 * one.fc_macs
    assert len(two.layers) == len(one.layers)
    assert all(layer.conv.batch == 2 for layer in two.layers)


def test_unknown_network_names_allowed_values():
    with pytest.raises(ValueError) as info:
        network("nope")
    message = str(info.value)
    assert "'nope'" in message
    for name in NAMES:
        assert name in message


def test_total_macs_adds_fc():
    net = Network("x", (), fc_macs=7)
    assert net.forward_macs() == 0
    assert net.total_macs() == 7
    assert Network("y", ()).total_macs() == 0


# --- shapes along the way ----------------------------------------------------------------------


def _layer(net, name):
    return next(layer.conv for layer in net.layers if layer.name == name)


def test_alexnet_shapes():
    net = network("alexnet")
    shapes = [(layer.conv.input_shape, layer.conv.output_shape) for layer in net.layers]
    assert shapes == [
        ((1, 3, 224, 224), (1, 64, 55, 55)),
        ((1, 64, 27, 27), (1, 192, 27, 27)),
        ((1, 192, 13, 13), (1, 384, 13, 13)),
        ((1, 384, 13, 13), (1, 256, 13, 13)),
        ((1, 256, 13, 13), (1, 256, 13, 13)),
    ]
    assert [layer.conv.kernel for layer in net.layers] == [11, 5, 3, 3, 3]


def test_vgg16_shapes():
    net = network("vgg16")
    assert all(layer.conv.kernel == 3 and layer.conv.padding == 1 and layer.conv.stride == 1
               for layer in net.layers)
    assert [layer.conv.out_channels for layer in net.layers] == [
        64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert [layer.conv.height for layer in net.layers] == [
        224, 224, 112, 112, 56, 56, 56, 28, 28, 28, 14, 14, 14]


def test_resnet18_downsample():
    net = network("resnet18")
    down = [layer.conv for layer in net.layers if "downsample" in layer.name]
    assert [(c.in_channels, c.height, c.out_channels, c.kernel, c.stride, c.out_height)
            for c in down] == [(64, 56, 128, 1, 2, 28), (128, 28, 256, 1, 2, 14),
                               (256, 14, 512, 1, 2, 7)]
    first = _layer(net, "layer2.0.conv1")
    assert (first.in_channels, first.height, first.stride, first.out_height) == (64, 56, 2, 28)
    assert all(layer.conv.kernel == 3 for layer in net.layers
               if "conv" in layer.name and layer.name != "conv1")


def test_googlenet_sizes_and_concat_channels():
    net = network("googlenet")
    # Layer names are torchvision's module names (BasicConv2d's conv is ".conv"), so that a
    # profile measured on torchvision's GoogLeNet matches them.
    # ceil_mode max pools: 112 -> 56 -> 28 -> 14 -> 7.
    assert _layer(net, "conv1.conv").output_shape == (1, 64, 112, 112)
    assert _layer(net, "conv2.conv").input_shape == (1, 64, 56, 56)
    assert _layer(net, "conv3.conv").output_shape == (1, 192, 56, 56)
    expected_input = {"3a": (192, 28), "3b": (256, 28), "4a": (480, 14), "4b": (512, 14),
                      "4c": (512, 14), "4d": (512, 14), "4e": (528, 14), "5a": (832, 7),
                      "5b": (832, 7)}
    for module, (channels, size) in expected_input.items():
        for branch in ("branch1", "branch2.0", "branch3.0", "branch4.1"):
            conv = _layer(net, f"inception{module}.{branch}.conv")
            assert (conv.in_channels, conv.height, conv.width, conv.kernel) == (
                channels, size, size, 1), (module, branch)
        # The "5x5" branch is a 3x3 conv in torchvision.
        assert _layer(net, f"inception{module}.branch3.1.conv").kernel == 3
    # inception5b's concatenated output feeds the 1024-wide classifier.
    out = sum(_layer(net, f"inception5b.{branch}.conv").out_channels
              for branch in ("branch1", "branch2.1", "branch3.1", "branch4.1"))
    assert out == 1024


@pytest.mark.parametrize("size, kernel, stride, padding, ceil_mode, expected", [
    (112, 3, 2, 0, True, 56),
    (112, 3, 2, 0, False, 55),
    (14, 2, 2, 0, True, 7),
    (6, 3, 2, 0, True, 3),
    (6, 3, 2, 0, False, 2),
    (5, 2, 2, 1, True, 3),   # PyTorch drops the window that would start in the padding
    (112, 3, 2, 1, False, 56),
    (28, 3, 1, 1, True, 28),
])
def test_pool_matches_pytorch(size, kernel, stride, padding, ceil_mode, expected):
    b = _Builder(1, 8, size)
    b.pool(kernel, stride, padding, ceil_mode=ceil_mode)
    assert b.size == expected


@pytest.mark.parametrize("name", NAMES)
def test_other_input_size(name):
    # Every network accepts ``size``; fewer pixels mean fewer conv MACs, same FC MACs.
    small, full = network(name, size=160), network(name)
    assert small.layers[0].conv.height == 160
    assert small.forward_macs() < full.forward_macs()
    assert small.fc_macs == full.fc_macs
