"""Hypothesis strategies and operand generators shared by the golden-model tests.

Operands are drawn as a layer plus an integer seed for ``numpy.random.default_rng``: hypothesis
shrinks and prints the seed with the falsifying example, so every failure is reproducible.
"""

from hypothesis import settings
from hypothesis import strategies as st

from maskprop.base.config import Config
from maskprop.sim.layer import ConvLayer

#: Base settings of every golden-model property test: no deadline (first calls import/compile),
#: bounded example counts so the suite stays fast, and the reproduction blob printed on failure.
GOLDEN_SETTINGS = settings(deadline=None, max_examples=200, print_blob=True)

KERNELS = (1, 3, 5, 7)

@st.composite
def conv_layers(draw, max_batch=3, max_channels=5, max_hw=9, max_stride=3, max_padding=3):
    """Small ConvLayers: kernels 1/3/5/7 where they fit the padded input."""
    height, width = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    padding = draw(st.integers(0, max_padding))
    fitting = [r for r in KERNELS if r <= min(height, width) + 2 * padding]  # 1 always fits
    return ConvLayer(
        batch=draw(st.integers(1, max_batch)),
        in_channels=draw(st.integers(1, max_channels)),
        height=height, width=width,
        out_channels=draw(st.integers(1, max_channels)),
        kernel=draw(st.sampled_from(fitting)),
        stride=draw(st.integers(1, max_stride)),
        padding=padding,
    )

seeds = st.integers(0, 2**32 - 1)
densities = st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])

def sparse_fixed(rng, shape, density, config=Config()):
    """int64 values over the full signed ``data_width`` range, extremes over-represented,
    with a fraction ``1 - density`` of exact zeros."""
    x = rng.integers(config.data_min, config.data_max, size=shape, endpoint=True)
    extremes = rng.random(shape) < 0.1
    x[extremes] = rng.choice([config.data_min, config.data_max], size=int(extremes.sum()))
    x[rng.random(shape) >= density] = 0
    return x

def sparse_normal(rng, shape, density):
    """float64 standard-normal values with a fraction ``1 - density`` of exact zeros."""
    x = rng.standard_normal(shape)
    x[rng.random(shape) >= density] = 0.0
    return x
