"""Host driver refusals: a layer the configuration cannot run is refused before simulation."""

import numpy as np
import pytest

from maskprop.config import Config
from maskprop.host import ArrayPass, lower_pass
from maskprop.sim.layer import ConvLayer


def tensors(layer):
    return (np.ones(layer.input_shape, dtype=np.int64), np.ones(layer.weight_shape, np.int64),
            np.ones(layer.output_shape, dtype=np.int64))


def test_refuses_a_reduction_longer_than_the_row_buffer():
    layer = ConvLayer(1, 64, 4, 4, 8, 3, 1, 1, "wide")          # 576-element reduction
    A, W, dZ = tensors(layer)
    with pytest.raises(ValueError, match=r"needs 36 chunks of 16, but max_chunks is 32; "
                                         r"raise max_chunks to 64"):
        ArrayPass.prepare(lower_pass(layer, "forward", A=A, W=W, dZ=dZ),
                          Config(max_chunks=32))


def test_refuses_more_columns_than_the_y_buffer():
    layer = ConvLayer(1, 4, 4, 4, 300, 1, 1, 0, "many")
    A, W, dZ = tensors(layer)
    with pytest.raises(ValueError, match=r"300 output columns, but max_cols is 128"):
        ArrayPass.prepare(lower_pass(layer, "forward", A=A, W=W, dZ=dZ), Config())


def test_refuses_a_reduction_the_accumulator_cannot_hold():
    layer = ConvLayer(1, 16, 4, 4, 4, 3, 1, 1, "deep")           # 144 products
    A, W, dZ = tensors(layer)
    with pytest.raises(ValueError, match="forward"):
        ArrayPass.prepare(lower_pass(layer, "forward", A=A, W=W, dZ=dZ),
                          Config(data_width=16, acc_width=38))


def test_refuses_operands_outside_data_width():
    layer = ConvLayer(1, 2, 3, 3, 2, 1, 1, 0, "big")
    A, W, dZ = tensors(layer)
    with pytest.raises(ValueError, match="data_width"):
        ArrayPass.prepare(lower_pass(layer, "forward", A=A * 300, W=W, dZ=dZ),
                          Config(data_width=8, acc_width=24))
