"""Payload layouts shared between blocks (docs/architecture.md section 3.1: chunks and masks)."""

from amaranth import Cat, Const, Signal, signed, unsigned
from amaranth.lib import data

from maskprop.base.config import ceil_log2

__all__ = ["index_width", "chunk_layout", "chunk_pair_layout", "mask_chunk_layout",
           "index_beat_layout", "index_position", "index_offset", "word_elements"]


def index_width(vec: int) -> int:
    """Bits of an element index within a chunk of ``vec`` elements (at least 1)."""
    return max(1, ceil_log2(vec))


def chunk_layout(vec: int, data_width: int) -> data.ArrayLayout:
    """``vec`` signed operands of one chunk, element 0 first."""
    return data.ArrayLayout(signed(data_width), vec)


def chunk_pair_layout(vec: int, data_width: int) -> data.StructLayout:
    """The two operand chunks whose dot product the PE forms: the broadcast ``x`` (the sparse
    operand) and the tile's own ``y``."""
    return data.StructLayout({"x": chunk_layout(vec, data_width),
                              "y": chunk_layout(vec, data_width)})


def mask_chunk_layout(vec: int, masks: int = 1, side=None) -> data.StructLayout:
    """Decoder input: one chunk's nonzero mask(s) (bit ``e`` = element ``e`` is nonzero),
    the framing of the output it belongs to, and an optional payload carried along (``side``)."""
    fields = {"mask": unsigned(vec)}
    if masks == 2:
        fields["mask_b"] = unsigned(vec)
    fields.update({"first": 1, "last": 1})
    if side is not None:
        fields["side"] = side
    return data.StructLayout(fields)


def index_beat_layout(vec: int, lanes: int, side=None) -> data.StructLayout:
    """Decoder output / PE input: up to ``lanes`` element indices in ascending order (lane ``j``
    valid when bit ``j`` of ``lane_valid`` is set; valid lanes are always the lowest ones), the
    framing, and the side payload of the chunk they index."""
    fields = {
        "index": data.ArrayLayout(unsigned(index_width(vec)), lanes),
        "lane_valid": unsigned(lanes),
        "first": 1,
        "last": 1,
    }
    if side is not None:
        fields["side"] = side
    return data.StructLayout(fields)


def index_position(offset, segment: int, selection):
    """The chunk position an index beat carries for element ``offset`` of ``segment`` of
    ``selection`` (:class:`~maskprop.base.config.Selection`; :meth:`~maskprop.base.config.
    Selection.positions`): ``offset * segments + segment``, a concatenation when the segment
    count is a power of two. The decoder's encoding; :func:`index_offset` is the PE's inverse."""
    segments = selection.segments
    if segments == 1:
        return offset
    if segments & (segments - 1) == 0:
        return Cat(Const(segment, ceil_log2(segments)), offset)
    return offset * segments + segment


def index_offset(m, index, segment: int, selection, *, name: str):
    """The inverse of :func:`index_position` for a lane serving ``segment``: its ``index``'s
    offset within the segment. The index's high bits when the segment count is a power of two,
    else a small table (added to ``m``, driving a signal called ``name``)."""
    segments, window = selection.segments, selection.window
    if segments & (segments - 1) == 0:
        return index[ceil_log2(segments):][:ceil_log2(window)]
    offset = Signal(range(window), name=name)
    with m.Switch(index):
        for k, position in enumerate(selection.positions(segment)):
            with m.Case(position):
                m.d.comb += offset.eq(k)
    return offset


def word_elements(word, vec: int, container: int, data_width: int) -> list:
    """The ``vec`` signed operands of a memory word of the core's tensor layout (element ``e``
    in bits ``e * container`` up; the container holds the value sign-extended, so its low
    ``data_width`` bits are it)."""
    return [word[e * container:e * container + data_width].as_signed() for e in range(vec)]
