"""How tensors sit in the accelerator core's memory (docs/architecture.md section 8).

Every tensor is **channel-last with the channels padded to a multiple of ``vec``**, so that one
bus word is one chunk: ``vec`` channels of one pixel, element 0 in the least significant bits.
Each element takes a *container* of 8, 16 or 32 bits (the smallest that holds ``data_width``),
little-endian, sign-extended; padded channels are 0.

============================ ========================== ===============================
tensor                       shape (NCHW convention)    words, slowest first
============================ ========================== ===============================
activation ``A``, ``dA``     ``(N, C, H, W)``           ``[N][H][W][ceil(C/vec)]``
gradient ``dZ``, output Z    ``(N, K, Ho, Wo)``         ``[N][Ho][Wo][ceil(K/vec)]``
forward weights              ``W (K, C, R, R)``         ``[K][R][R][ceil(C/vec)]``
backward-data weights        ``W^T`` flipped            ``[C][R][R][ceil(K/vec)]``
============================ ========================== ===============================

The backward-data weights are the same weights transposed and with flipped taps
(``Wt[c, k, r', t'] = W[k, c, R-1-r', R-1-t']``): the host keeps both copies, as a training
framework keeps weights and optimizer state; the core reads each as one contiguous column per
output channel, which is what the tile array's Y buffer loads.
"""

import numpy as np

from maskprop.base.config import container_bits

__all__ = ["word_bytes", "channel_words", "pack", "unpack", "image_words",
           "backward_data_weights"]


def word_bytes(vec: int, data_width: int) -> int:
    """Bytes of one memory word (one chunk of ``vec`` elements)."""
    return vec * container_bits(data_width) // 8


def channel_words(channels: int, vec: int) -> int:
    """Words one pixel's ``channels`` take: ``ceil(channels / vec)``."""
    return -(-channels // vec)


def _dtype(data_width: int) -> np.dtype:
    return np.dtype(f"<i{container_bits(data_width) // 8}")


def pack(T, vec: int, data_width: int) -> bytes:
    """``T (N, C, H, W)`` (integers within ``data_width`` bits) as the core's memory image:
    channel-last, channels padded to a multiple of ``vec``."""
    T = np.asarray(T)
    if T.ndim != 4:
        raise ValueError(f"a tensor to pack must be 4-D (N, C, H, W), not shape {T.shape}")
    low, high = -(1 << (data_width - 1)), (1 << (data_width - 1)) - 1
    if T.size and (T.min() < low or T.max() > high):
        raise ValueError(f"the tensor holds values outside the signed {data_width}-bit range "
                         f"of data_width")
    n, c, h, w = T.shape
    padded = np.zeros((n, h, w, channel_words(c, vec) * vec), dtype=_dtype(data_width))
    padded[..., :c] = T.transpose(0, 2, 3, 1)
    return padded.tobytes()


def image_words(image: bytes, word_bytes: int) -> list[int]:
    """A memory image as bus words of ``word_bytes`` bytes (little-endian, as the core's memory
    port and the AXI RAMs see them), the last one padded with zeros."""
    image = bytes(image) + bytes(-len(image) % word_bytes)
    return [int.from_bytes(image[k:k + word_bytes], "little")
            for k in range(0, len(image), word_bytes)]


def unpack(image: bytes, shape: tuple, vec: int, data_width: int) -> np.ndarray:
    """The ``(N, C, H, W)`` int64 tensor of ``shape`` from the core's memory image (the inverse
    of :func:`pack`; padded channels are dropped)."""
    n, c, h, w = shape
    cp = channel_words(c, vec) * vec
    words = np.frombuffer(image, dtype=_dtype(data_width), count=n * h * w * cp)
    return words.reshape(n, h, w, cp)[..., :c].transpose(0, 3, 1, 2).astype(np.int64)


def backward_data_weights(W) -> np.ndarray:
    """The backward-data weights ``(C, K, R, R)``: ``W (K, C, R, R)`` transposed with flipped
    taps; :func:`pack` lays them out as ``[C][R][R][ceil(K/vec)]``."""
    W = np.asarray(W)
    if W.ndim != 4:
        raise ValueError(f"W must be 4-D (K, C, R, R), not shape {W.shape}")
    return W.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1]
