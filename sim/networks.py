"""Conv-layer workloads of whole networks: true shapes, strides, paddings, and whether a
BatchNorm sits between each conv and its ReLU (which makes the output gradient dense).

Only convolutions run on the array; fully connected layers, pooling and the residual adds are
listed in no table here. Every network takes a ``batch`` and an input ``size`` (224 for the
ImageNet networks).
"""

from dataclasses import dataclass

from .layer import ConvLayer

__all__ = ["NetLayer", "Network", "resnet50", "NETWORKS", "network"]


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
    name: str
    layers: tuple

    def forward_macs(self) -> int:
        return sum(layer.conv.dense_macs for layer in self.layers)


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

    def pool(self, kernel, stride, padding=0):
        self.size = (self.size + 2 * padding - kernel) // stride + 1


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
    return Network("ResNet-50", tuple(b.layers))


NETWORKS = {"resnet50": resnet50}


def network(name: str, **kwargs) -> Network:
    try:
        return NETWORKS[name](**kwargs)
    except KeyError:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {name!r}") from None
