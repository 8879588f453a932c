"""Conv-layer workloads of whole networks: true shapes, strides, paddings, and whether a
BatchNorm sits between each conv and its ReLU (which makes the output gradient dense).

Only convolutions run on the array; pooling and the residual adds are listed in no table here.
The fully connected layers don't run on the array either, but their MACs belong to the published
totals, so each :class:`Network` carries them as ``fc_macs`` (see :meth:`Network.total_macs`).
Every network takes a ``batch`` and an input ``size`` (224 for the ImageNet networks).

The networks follow torchvision's definitions exactly (``torchvision.models``): AlexNet, VGG-16,
ResNet-18, ResNet-50 and GoogLeNet.
"""

from dataclasses import dataclass

from maskprop.sim.layer import ConvLayer

__all__ = ["NetLayer", "Network", "alexnet", "vgg16", "resnet18", "resnet50", "googlenet",
           "NETWORKS", "NETWORK_NAMES", "network"]


@dataclass(frozen=True)
class NetLayer:
    """One conv layer of a network.

    ``batchnorm``: a BatchNorm sits between this conv and the ReLU after it (``dZ`` is dense).
    ``relu_input``: the layer's input is a ReLU output (possibly max-pooled), i.e. sparse and
    its backward-data has an output mask; false for the first layer (the image), whose
    backward-data is not computed at all.
    """
    conv: ConvLayer
    batchnorm: bool
    relu_input: bool = True

    @property
    def name(self) -> str:
        return self.conv.name


@dataclass(frozen=True)
class Network:
    """A network's conv layers, in execution order.

    ``fc_macs``: multiply-accumulates of the fully connected layers for the whole batch. They do
    not run on the array (no :class:`NetLayer` lists them) but belong to the published totals.
    """
    name: str
    layers: tuple
    fc_macs: int = 0

    def forward_macs(self) -> int:
        """Dense forward MACs of the conv layers (the work that runs on the array)."""
        return sum(layer.conv.dense_macs for layer in self.layers)

    def total_macs(self) -> int:
        """Forward MACs of the whole network: conv layers plus fully connected layers."""
        return self.forward_macs() + self.fc_macs


class _Builder:
    """Appends conv layers while tracking the activation's channels and spatial size."""

    def __init__(self, batch: int, channels: int, size: int):
        self.batch, self.channels, self.size = batch, channels, size
        self.layers = []

    def conv(self, name, out_channels, kernel, stride=1, padding=None, *, batchnorm=True,
             relu_input=True, channels=None, size=None):
        padding = kernel // 2 if padding is None else padding
        layer = ConvLayer(batch=self.batch, in_channels=channels or self.channels,
                          height=size or self.size, width=size or self.size,
                          out_channels=out_channels, kernel=kernel, stride=stride,
                          padding=padding, name=name)
        self.layers.append(NetLayer(layer, batchnorm, relu_input))
        return layer

    def then(self, layer):
        """Continue from ``layer``'s output."""
        self.channels, self.size = layer.out_channels, layer.out_height

    def pool(self, kernel, stride, padding=0, ceil_mode=False):
        """Max pool; output size as PyTorch's ``nn.MaxPool2d`` computes it (dilation 1)."""
        span = self.size + 2 * padding - kernel
        out = (-(-span // stride) if ceil_mode else span // stride) + 1
        if ceil_mode and (out - 1) * stride >= self.size + padding:
            out -= 1  # the last window would start in the right padding: PyTorch drops it
        self.size = out


def resnet50(batch: int = 1, size: int = 224) -> Network:
    """ResNet-50 (torchvision, v1.5: the stride sits in each stage's first 3x3 conv); 53 convs,
    BatchNorm after every one."""
    b = _Builder(batch, 3, size)
    b.then(b.conv("conv1", 64, 7, 2, 3, relu_input=False))
    b.pool(3, 2, 1)
    for stage, (width, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2),
                                                     (512, 3, 2)], start=1):
        for block in range(blocks):
            s = stride if block == 0 else 1
            channels, size = b.channels, b.size
            prefix = f"layer{stage}.{block}"
            b.then(b.conv(f"{prefix}.conv1", width, 1))
            b.then(b.conv(f"{prefix}.conv2", width, 3, s))
            out = b.conv(f"{prefix}.conv3", width * 4, 1)
            if block == 0:
                # The projection shortcut reads the block's input; its output joins the sum.
                b.conv(f"{prefix}.downsample", width * 4, 1, s, channels=channels, size=size)
            b.then(out)
    return Network("ResNet-50", tuple(b.layers), fc_macs=batch * 2048 * 1000)


def alexnet(batch: int = 1, size: int = 224) -> Network:
    """AlexNet (torchvision, the one-GPU variant of "One weird trick"); 5 convs, no BatchNorm.

    The classifier (after an adaptive average pool to 6x6) is 9216 -> 4096 -> 4096 -> 1000.
    """
    b = _Builder(batch, 3, size)
    b.then(b.conv("features.0", 64, 11, 4, 2, batchnorm=False, relu_input=False))
    b.pool(3, 2)
    b.then(b.conv("features.3", 192, 5, 1, 2, batchnorm=False))
    b.pool(3, 2)
    b.then(b.conv("features.6", 384, 3, 1, 1, batchnorm=False))
    b.then(b.conv("features.8", 256, 3, 1, 1, batchnorm=False))
    b.then(b.conv("features.10", 256, 3, 1, 1, batchnorm=False))
    b.pool(3, 2)
    fc = 256 * 6 * 6 * 4096 + 4096 * 4096 + 4096 * 1000
    return Network("AlexNet", tuple(b.layers), fc_macs=batch * fc)


#: torchvision's VGG configuration "D" (VGG-16): output channels of each 3x3 conv, "M" = max pool.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M")


def vgg16(batch: int = 1, size: int = 224) -> Network:
    """VGG-16 (torchvision ``vgg16``, configuration D without BatchNorm); 13 3x3 convs.

    The classifier (after an adaptive average pool to 7x7) is 25088 -> 4096 -> 4096 -> 1000.
    """
    b = _Builder(batch, 3, size)
    index = 0  # torchvision's index in ``features`` (conv, ReLU, ..., MaxPool)
    for item in _VGG16:
        if item == "M":
            b.pool(2, 2)
            index += 1
        else:
            b.then(b.conv(f"features.{index}", item, 3, 1, 1, batchnorm=False,
                          relu_input=index > 0))
            index += 2
    fc = 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000
    return Network("VGG-16", tuple(b.layers), fc_macs=batch * fc)


def resnet18(batch: int = 1, size: int = 224) -> Network:
    """ResNet-18 (torchvision, BasicBlock); 20 convs including the 1x1 projection shortcuts of
    the first block of stages 2-4, BatchNorm after every one."""
    b = _Builder(batch, 3, size)
    b.then(b.conv("conv1", 64, 7, 2, 3, relu_input=False))
    b.pool(3, 2, 1)
    for stage, (width, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        for block in range(2):
            s = stride if block == 0 else 1
            channels, size = b.channels, b.size
            prefix = f"layer{stage}.{block}"
            b.then(b.conv(f"{prefix}.conv1", width, 3, s))
            out = b.conv(f"{prefix}.conv2", width, 3)
            if s != 1 or channels != width:
                # The projection shortcut reads the block's input; its output joins the sum.
                b.conv(f"{prefix}.downsample", width, 1, s, channels=channels, size=size)
            b.then(out)
    return Network("ResNet-18", tuple(b.layers), fc_macs=batch * 512 * 1000)


#: torchvision's Inception modules: (name, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj),
#: with the max pools ("M": kernel, stride; ceil_mode) between them.
_GOOGLENET = (
    ("3a", 64, 96, 128, 16, 32, 32),
    ("3b", 128, 128, 192, 32, 96, 64),
    ("M", 3, 2),
    ("4a", 192, 96, 208, 16, 48, 64),
    ("4b", 160, 112, 224, 24, 64, 64),
    ("4c", 128, 128, 256, 24, 64, 64),
    ("4d", 112, 144, 288, 32, 64, 64),
    ("4e", 256, 160, 320, 32, 128, 128),
    ("M", 2, 2),
    ("5a", 256, 160, 320, 32, 128, 128),
    ("5b", 384, 192, 384, 48, 128, 128),
)


def googlenet(batch: int = 1, size: int = 224) -> Network:
    """GoogLeNet / Inception v1 (torchvision); 57 convs (3 stem + 9 Inception modules x 6),
    each a ``BasicConv2d`` (conv, BatchNorm, ReLU).

    As in torchvision, the "5x5" branch of every Inception module uses a 3x3 conv (a known
    torchvision quirk, pytorch/vision#906) and all max pools use ``ceil_mode=True``
    (112 -> 56 -> 28 -> 14 -> 7 at 224x224). The two auxiliary classifiers (training-time heads
    after 4a and 4d: a 1x1 conv to 128 channels on a 4x4 pooled map and two FC layers each)
    are left out, as they are in the published MAC count. The classifier is 1024 -> 1000.

    All four branches of a module read the module's input (a concatenation of ReLU outputs);
    the pool branch reads it through a 3x3 stride-1 max pool, which keeps the size.
    """
    b = _Builder(batch, 3, size)
    b.then(b.conv("conv1.conv", 64, 7, 2, 3, relu_input=False))
    b.pool(3, 2, ceil_mode=True)
    b.then(b.conv("conv2.conv", 64, 1))
    b.then(b.conv("conv3.conv", 192, 3, 1, 1))
    b.pool(3, 2, ceil_mode=True)
    for name, *spec in _GOOGLENET:
        if name == "M":
            b.pool(*spec, ceil_mode=True)
            continue
        ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj = spec
        prefix = f"inception{name}"
        b.conv(f"{prefix}.branch1.conv", ch1x1, 1)
        red = b.conv(f"{prefix}.branch2.0.conv", ch3x3red, 1)
        b.conv(f"{prefix}.branch2.1.conv", ch3x3, 3, 1, 1, channels=red.out_channels)
        red = b.conv(f"{prefix}.branch3.0.conv", ch5x5red, 1)
        b.conv(f"{prefix}.branch3.1.conv", ch5x5, 3, 1, 1, channels=red.out_channels)
        # 3x3 stride-1 padding-1 max pool (size unchanged), then the 1x1 projection.
        b.conv(f"{prefix}.branch4.1.conv", pool_proj, 1)
        b.channels = ch1x1 + ch3x3 + ch5x5 + pool_proj  # torch.cat of the four branches
    return Network("GoogLeNet", tuple(b.layers), fc_macs=batch * 1024 * 1000)


NETWORKS = {"alexnet": alexnet, "vgg16": vgg16, "resnet18": resnet18, "resnet50": resnet50,
            "googlenet": googlenet}
#: The networks' names, in NETWORKS' order (the command line's ``--network`` choices).
NETWORK_NAMES = tuple(NETWORKS)


def network(name: str, **kwargs) -> Network:
    try:
        return NETWORKS[name](**kwargs)
    except KeyError:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {name!r}") from None
