"""The core's memory layout: packing round-trips, and one memory word is exactly the chunk the
tile array gets (the Y columns the core loads are the host driver's ``ArrayPass.y``)."""

import numpy as np
import pytest

from maskprop.base.config import Config, container_bits
from maskprop.host.driver import ArrayPass
from maskprop.host.memory_layout import (backward_data_weights, channel_words, pack, unpack,
                                         word_bytes)
from maskprop.sim.layer import ConvLayer
from maskprop.tb.stimulus import random_conv_tensors, seed_from_env


def words(image: bytes, config: Config) -> np.ndarray:
    """The memory image as ``(words, vec)`` signed elements."""
    dtype = np.dtype(f"<i{container_bits(config.data_width) // 8}")
    return np.frombuffer(image, dtype=dtype).reshape(-1, config.vec).astype(np.int64)


@pytest.mark.parametrize("data_width, container", [(2, 8), (8, 8), (9, 16), (16, 16), (17, 32),
                                                   (32, 32)])
def test_containers(data_width, container):
    assert container_bits(data_width) == container
    assert word_bytes(16, data_width) == 16 * container // 8


@pytest.mark.parametrize("config", [Config(), Config(vec=4, lanes=2, data_width=8, acc_width=24)],
                         ids=["vec16", "vec4-8bit"])
def test_round_trip_and_word_order(config):
    seed = seed_from_env(default=11)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = np.random.default_rng(seed)
    T = rng.integers(config.data_min, config.data_max + 1, size=(2, 19, 3, 5))
    image = pack(T, config.vec, config.data_width)
    cb = channel_words(19, config.vec)
    assert len(image) == 2 * 3 * 5 * cb * word_bytes(config.vec, config.data_width)
    np.testing.assert_array_equal(unpack(image, T.shape, config.vec, config.data_width), T)
    grid = words(image, config)
    for n, h, w, block in [(0, 0, 0, 0), (1, 2, 4, cb - 1), (1, 1, 3, 1)]:
        word = grid[((n * 3 + h) * 5 + w) * cb + block]
        channels = T[n, block * config.vec:(block + 1) * config.vec, h, w]
        np.testing.assert_array_equal(word[:len(channels)], channels)
        assert not word[len(channels):].any()          # padded channels are 0


def test_refuses_out_of_range_values_and_bad_shapes():
    with pytest.raises(ValueError, match="outside the signed 8-bit range of data_width"):
        pack(np.full((1, 1, 1, 1), 128), 16, 8)
    with pytest.raises(ValueError, match="must be 4-D"):
        pack(np.zeros((2, 2)), 16, 8)


@pytest.mark.parametrize("pass_name", ["forward", "backward_data"])
def test_weight_words_are_the_array_y_columns(pass_name):
    """Column ``j`` of the tile array's Y (chunk ``q`` at ``j * max_chunks + q``) is memory words
    ``j * Q .. j * Q + Q - 1`` of the pass's weights: the core loads each column with one burst."""
    config = Config(max_cols=64)
    layer = ConvLayer(2, 19, 5, 5, 21, 3, 2, 1, "c19k21")
    rng = np.random.default_rng(seed_from_env(default=3))
    A, W, dZ = random_conv_tensors(rng, layer, 0.5, data_max=100)
    array_pass = ArrayPass.lower(layer, pass_name, config, A=A, W=W, dZ=dZ)
    weights = W if pass_name == "forward" else backward_data_weights(W)
    grid = words(pack(weights, config.vec, config.data_width), config)
    columns, chunks = array_pass.cols, array_pass.chunks
    np.testing.assert_array_equal(grid.reshape(columns, chunks, config.vec), array_pass.y)


def test_core_config_validates_its_parameters():
    from maskprop.base.config import CoreConfig
    assert CoreConfig().bus_width == 256 and CoreConfig().bus_bytes == 32
    assert CoreConfig(Config(vec=8, lanes=2, data_width=8, acc_width=24)).bus_width == 64
    for kwargs, message in [
            ({"x_words": 3}, r"x_words must be a power of two in \[2, 65536\], not 3"),
            ({"x_words": 1 << 17}, r"x_words must be in \[2, 65536\], not 131072"),
            ({"addr_width": 8}, r"addr_width must be in \[12, 64\], not 8"),
            ({"max_burst": 3}, r"max_burst must be a power of two in \[1, 256\], not 3"),
            ({"max_outstanding": 0}, r"max_outstanding must be in \[1, 16\], not 0"),
            ({"array": Config(vec=12, lanes=4)}, r"vec x container bits = 12 x 16 = 192 bits "
                                                  r"is not a power of two")]:
        with pytest.raises(ValueError, match=message):
            CoreConfig(**kwargs)


def test_image_words_are_little_endian_bus_words_padded_at_the_end():
    from maskprop.host.memory_layout import image_words
    assert image_words(bytes([1, 2, 3, 4, 5]), 4) == [0x04030201, 0x05]
    assert image_words(b"", 4) == []
