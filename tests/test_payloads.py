"""The fast payload packer gives exactly the bits of Amaranth's ``Layout.const()``, on every
stream and counter layout of every block, at edge and default configurations, for in-range
values, values beyond their field's width (truncated as ``Const`` truncates) and partial
payloads (missing fields and elements are 0). Seeded: the seed is printed."""

import random

import pytest
from amaranth import unsigned
from amaranth.hdl import Shape
from amaranth.lib import data

from maskprop.base.config import DEFAULT, FPGA_SMALL, Config
from maskprop.hw.accumulation_tree import tree_input_layout, tree_result_layout
from maskprop.hw.engine import counter_layout, engine_input_layout
from maskprop.hw.layouts import chunk_pair_layout, index_beat_layout, mask_chunk_layout
from maskprop.hw.tile_array import (array_counter_layout, array_result_layout, load_layout,
                                    row_layout, x_chunk_layout)
from maskprop.tb.payloads import as_payload, packer
from maskprop.tb.stimulus import seed_from_env

CONFIGS = [DEFAULT, FPGA_SMALL,
           Config(vec=1, lanes=1, tiles=1, col_block=1, data_width=2, acc_width=4, max_chunks=1,
                  max_cols=1)]


def design_layouts():
    """Every port layout of the blocks (the layout functions their signatures are built from;
    building the blocks themselves would leave unelaborated components behind)."""
    layouts = {"engine counters": counter_layout(), "array counters": array_counter_layout()}
    for c in CONFIGS:
        pair = chunk_pair_layout(c.vec, c.data_width)
        for name, layout in {
            "tree in": tree_input_layout(c.lanes, 2 * c.data_width + 1),
            "tree out": tree_result_layout(c.acc_width),
            "decoder in": mask_chunk_layout(c.vec, 2, pair),
            "decoder out / pe in": index_beat_layout(c.vec, c.lanes, pair),
            "engine in": engine_input_layout(c.vec, c.data_width),
            "array load": load_layout(c), "array rows": row_layout(c),
            "array x": x_chunk_layout(c), "array out": array_result_layout(c),
        }.items():
            layouts[f"{name} {c}"] = layout
    return layouts


LAYOUTS = design_layouts()


def random_payload(rng, shape, *, wide: bool, partial: bool):
    """A plain payload of ``shape``: field values over the field's range (``wide``: up to
    four bits beyond it, either sign), and (``partial``) some fields or trailing elements
    left out."""
    if isinstance(shape, data.ArrayLayout):
        elements = [random_payload(rng, shape.elem_shape, wide=wide, partial=partial)
                    for _ in range(shape.length)]
        return elements[:rng.randint(0, shape.length)] if partial else elements
    if isinstance(shape, data.Layout):
        return {key: random_payload(rng, field.shape, wide=wide, partial=partial)
                for key, field in shape if not (partial and rng.random() < 0.3)}
    shape = Shape.cast(shape)
    extra = 4 if wide else 0
    low = -(1 << (shape.width + extra - 1)) if shape.signed or wide else 0
    high = (1 << (shape.width - shape.signed + extra)) - 1
    return rng.choice([low, high, 0, rng.randint(low, high)])


@pytest.mark.parametrize("name", LAYOUTS)
def test_packer_gives_the_bits_of_layout_const(name):
    layout = LAYOUTS[name]
    seed = seed_from_env(default=11)
    print(f"MASKPROP_SEED={seed}")
    rng = random.Random(seed)
    pack = packer(layout)
    for wide, partial in [(False, False), (True, False), (False, True)]:
        for _ in range(50):
            payload = random_payload(rng, layout, wide=wide, partial=partial)
            assert pack(payload) == layout.const(payload).as_bits(), payload
    full = random_payload(rng, layout, wide=False, partial=False)
    assert as_payload(layout.from_bits(pack(full))) == full


def test_packer_refuses_what_the_layout_does_not_have():
    layout = data.StructLayout({"a": 4, "b": data.ArrayLayout(unsigned(2), 3)})
    pack = packer(layout)
    with pytest.raises(ValueError, match=r"\['c'\]"):
        pack({"a": 1, "c": 2})
    with pytest.raises(ValueError, match="4 elements"):
        pack({"b": [0, 1, 2, 3]})
    assert packer(unsigned(8)) is int
