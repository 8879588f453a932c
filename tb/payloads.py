"""Stream payloads between the models' plain values and the packed bits on a port.

The models speak in the plain values that ``data.Layout.const()`` takes (dicts of fields, lists
of array elements, ints); a port carries the packed bits of its layout. ``Layout.const()`` does
the packing exactly but builds an Amaranth constant for every field of every beat, which made
packing the stimulus of a long run cost more than simulating it (a network pass has tens of
thousands of beats). :func:`packer` compiles a layout once into shifts and masks that give the
same bits (``tests/test_payloads.py`` holds it to ``Layout.const()`` on every layout of the
design); :func:`as_payload` turns a sampled ``data.Const`` view back into plain values.
"""

from amaranth.hdl import Const, Shape, ShapeCastable
from amaranth.lib import data

__all__ = ["packer", "as_payload"]


def packer(shape):
    """A function from a plain payload of ``shape`` (a ``data.Layout`` or a plain shape) to its
    packed bits, as ``shape.const(payload).as_bits()`` (or ``int`` for a plain shape) gives
    them: a field missing from a dict is 0, and a value is truncated to its field's width
    (two's complement for a negative one), as ``Const`` truncates."""
    if isinstance(shape, data.Layout):
        fields = [(key, field.offset, _field_packer(field.shape)) for key, field in shape]
        if isinstance(shape, data.ArrayLayout):
            def pack_array(payload):
                if len(payload) > len(fields):
                    raise ValueError(f"payload has {len(payload)} elements; layout {shape!r} "
                                     f"has {len(fields)}")
                bits = 0       # elements not given are 0
                for (_, offset, pack), value in zip(fields, payload):
                    bits |= pack(value) << offset
                return bits
            return pack_array

        keys = {key for key, _, _ in fields}

        def pack_struct(payload):
            if not isinstance(payload, dict):     # anything else as Amaranth reads it
                return shape.const(payload).as_bits()
            unknown = payload.keys() - keys
            if unknown:
                raise ValueError(f"payload has fields {sorted(unknown)} that layout {shape!r} "
                                 f"does not have")
            bits = 0
            for key, offset, pack in fields:
                if key in payload:
                    bits |= pack(payload[key]) << offset
            return bits
        return pack_struct
    return int


def _field_packer(shape):
    if isinstance(shape, data.Layout):
        return packer(shape)
    if isinstance(shape, ShapeCastable):        # e.g. an enum: Amaranth knows its encoding
        mask = (1 << Shape.cast(shape).width) - 1
        return lambda value: Const.cast(Const(value, shape)).value & mask
    mask = (1 << Shape.cast(shape).width) - 1
    return lambda value: int(value) & mask


def as_payload(value):
    """A sampled payload (a ``data.Const`` view, possibly nested) as the plain dicts, lists and
    ints that ``layout.const()`` takes: readable fields in scoreboard messages, and what tests
    compare with other models' payloads."""
    if not isinstance(value, data.Const):
        return int(value)
    layout = value.shape()
    if isinstance(layout, data.ArrayLayout):
        return [as_payload(value[index]) for index in range(layout.length)]
    return {name: as_payload(value[name]) for name, _ in layout}
