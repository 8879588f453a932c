"""One lane of the join array: both operands skipped, one product a cycle, its own partial sum
(docs/architecture.md section 4.8)."""

from dataclasses import dataclass

from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import ceil_log2, check_range

from maskprop.hw.accumulation_tree import AccumulationTree, tree_result_layout
from maskprop.hw.index_decoder import ZeroSkipIndexDecoder
from maskprop.hw.layouts import chunk_layout
from maskprop.hw.sparse_pe import SparseGradPE

__all__ = ["JoinLane", "JoinLaneParameters"]


@dataclass(frozen=True)
class JoinLaneParameters:
    """The parameters of a :class:`JoinLane` (documented there), checked on construction
    (``ValueError`` naming the parameter and its range), with the ports they give: the
    join tile builds its own ports from them."""
    window: int
    group: int
    data_width: int
    acc_width: int
    word_addr_width: int
    max_words: int

    def __post_init__(self):
        check_range("window", self.window, 1, 16)
        groups = min(16, 64 // self.window)
        check_range("group", self.group, 1, groups)
        if self.group & (self.group - 1):
            raise ValueError(f"group must be a power of two in [1, {groups}], not {self.group}")
        check_range("data_width", self.data_width, 2, 32)
        check_range("acc_width", self.acc_width, 2 * self.data_width, 128)
        check_range("word_addr_width", self.word_addr_width, 1, 24)
        check_range("max_words", self.max_words, 1, 1 << self.word_addr_width)

    @property
    def output_layout(self) -> data.StructLayout:
        """One output on ``i``: its first mask word in each operand and its word count less
        one."""
        return data.StructLayout({
            "x_word": unsigned(self.word_addr_width),
            "y_word": unsigned(self.word_addr_width),
            # At least one bit: Verilog has no zero-width vector.
            "last_word": unsigned(max(1, ceil_log2(self.max_words))),
        })

    @property
    def bank_signatures(self) -> dict:
        """The four banks' read-port signatures, as the memories hold them (their user holds
        them flipped, ``In``)."""
        mask = memory.ReadPort.Signature(addr_width=self.word_addr_width,
                                         shape=unsigned(self.group * self.window))
        chunk = memory.ReadPort.Signature(
            addr_width=self.word_addr_width + ceil_log2(self.group),
            shape=chunk_layout(self.window, self.data_width))
        return {"x_mask": mask, "y_mask": mask, "x_data": chunk, "y_data": chunk}


class JoinLane(wiring.Component):
    """The dot products of one selection segment of ``X`` rows with ``Y`` columns, issuing only
    the products whose two operands are nonzero, one a cycle, each output's partial sum its own.

    A lane of the join array serves one segment (``window`` elements) of every chunk of the
    reduction. Its operands sit in per-segment banks the lane reads at its own pace: a **mask
    bank** per operand, one word holding the segment masks of ``group`` consecutive chunks (the
    look-ahead: the lane sees the products of ``group`` chunks at once and skips the empty
    ones), and a **data bank** per operand, one word holding one chunk's ``window`` elements.
    For each output the lane walks the output's mask words, decodes the AND of the two masks
    (a :class:`~maskprop.hw.index_decoder.ZeroSkipIndexDecoder` of ``group * window`` elements
    and one lane), reads the two operands of each product from the data banks, multiplies
    (:class:`~maskprop.hw.sparse_pe.SparseGradPE` of one lane: a ``window``-to-1 selection per
    operand) and accumulates (:class:`~maskprop.hw.accumulation_tree.AccumulationTree` of one
    lane).

    Parameters
    ----------
    window : int
        Elements of a chunk's segment, 1..16.
    group : int
        Chunk segments per mask word, a power of two in 1..16, with ``group * window <= 64``.
    data_width : int
        Width of the signed operands, 2..32; products are exact.
    acc_width : int
        Width of the signed partial sum, ``2 * data_width``..128.
    word_addr_width : int
        Address bits of the mask banks, 1..24 (the data banks have ``log2(group)`` more).
    max_words : int
        Most mask words one output walks, 1..``2 ** word_addr_width``.

    Ports
    -----
    i : In(stream.Signature(output_layout))
        One output: ``x_word`` and ``y_word`` (the mask-bank address of its first word in each
        operand: the word of chunk ``k`` is ``x_word + k // group``, wrapping) and
        ``last_word`` (its words minus one, below ``max_words``; the field is at least one bit
        wide, and a larger value walks that many words).
    x_mask, y_mask : In(memory.ReadPort.Signature(addr_width=word_addr_width, shape=group *
    window))
        The mask banks' synchronous read ports (``wiring.connect`` to a ``memory.Memory``'s
        ``read_port()``; the memory's port is the signature itself, so the lane holds it
        flipped). Bit ``c * window + p`` of a word: element ``p`` of the segment of the word's
        chunk ``c`` is nonzero.
    x_data, y_data : In(memory.ReadPort.Signature(addr_width=word_addr_width + log2(group),
    shape=chunk_layout(window, data_width)))
        The data banks' synchronous read ports: chunk ``c`` of mask word ``w`` at address
        ``w * group + c``, element ``p`` of its segment at index ``p``. An element whose mask
        bit is clear is never read.
    o : Out(stream.Signature(tree_result_layout(acc_width)))
        One partial sum per output, in order: the exact sum of ``x * y`` over the positions
        set in both masks, wrapped to ``acc_width`` with ``overflow`` flagged
        (:func:`~maskprop.sim.blocks.accumulate_frames`).

    Timing
    ------
    A word with ``n`` products costs ``max(1, n)`` cycles (an empty word costs one: the
    look-ahead is one word; :func:`~maskprop.sim.cycle_model.join_lane_cycles`), and words and
    outputs follow without bubbles. Unstalled, with output 0 taken in cycle 0 and every next
    one waiting, an output whose words end ``s`` cycles of word costs into the run is offered
    on ``o`` in cycle ``latency + s - 1``, ``latency = 8``: one cycle to hold the output, one
    to read its first mask word, one to register the AND of the two masks, the decoder's one,
    the data read's one, the PE's two and the accumulator's one. The word fetch, the masks'
    register and the decoder each hold a word, so the next output is taken early, in the
    cycle its predecessor's last mask word is read. The pipeline stalls as
    a whole while ``o`` is back-pressured (``i.ready`` depends on ``o.ready``
    combinationally, through every stage).
    """

    latency = 8

    def __init__(self, **parameters):
        self._parameters = parameters = JoinLaneParameters(**parameters)
        super().__init__({
            "i": In(stream.Signature(parameters.output_layout)),
            **{name: In(signature) for name, signature in parameters.bank_signatures.items()},
            "o": Out(stream.Signature(tree_result_layout(parameters.acc_width))),
        })

    parameters = property(lambda self: self._parameters)
    window = property(lambda self: self._parameters.window)
    group = property(lambda self: self._parameters.group)
    data_width = property(lambda self: self._parameters.data_width)
    acc_width = property(lambda self: self._parameters.acc_width)
    word_addr_width = property(lambda self: self._parameters.word_addr_width)
    max_words = property(lambda self: self._parameters.max_words)
    output_layout = property(lambda self: self._parameters.output_layout)

    def elaborate(self, platform):
        m = Module()
        p = self._parameters
        window, group = p.window, p.group
        word_address = unsigned(p.word_addr_width)
        addresses = data.StructLayout({"x_word": word_address, "y_word": word_address})
        m.submodules.decoder = decoder = ZeroSkipIndexDecoder(
            vec=group * window, lanes=1, side=addresses)
        m.submodules.pe = pe = SparseGradPE(vec=window, lanes=1, data_width=p.data_width)
        m.submodules.accumulator = accumulator = AccumulationTree(
            lanes=1, in_width=2 * p.data_width, acc_width=p.acc_width, stages=0)

        # Word walk, two registers before the decoder: the mask banks' read registers
        # (``fetched``), then the AND of the two masks (``loaded``), so that the decoder's first
        # stage (a carry chain over the word) starts from a flip-flop, not from a block RAM's
        # output. Each moves on when the next is free or moving; the held output's next mask
        # word is read when the fetched one moves on, so the decoder takes a word a cycle; the
        # next output is taken with the held one's last word.
        held = Signal()
        next_word = Signal(addresses)
        words_left = Signal.like(self.i.payload.last_word)
        at_final_word = Signal()
        at_first_word = Signal()
        fetched = Signal()
        fetched_word = Signal(addresses)
        fetched_first = Signal()
        fetched_last = Signal()
        fetch = Signal()
        loaded = Signal()
        loaded_mask = Signal(group * window)
        loaded_word = Signal(addresses)
        loaded_first = Signal()
        loaded_last = Signal()
        load = Signal()
        m.d.comb += [
            at_final_word.eq(words_left == 0),
            load.eq(~loaded | decoder.i.ready),
            fetch.eq(~fetched | load),
            self.i.ready.eq(~held | (fetch & at_final_word)),
            self.x_mask.addr.eq(next_word.x_word),
            self.y_mask.addr.eq(next_word.y_word),
            self.x_mask.en.eq(fetch),
            self.y_mask.en.eq(fetch),
        ]
        with m.If(fetch):
            m.d.sync += [
                fetched.eq(held),
                fetched_word.eq(next_word),
                fetched_first.eq(at_first_word),
                fetched_last.eq(at_final_word),
            ]
            with m.If(held):
                m.d.sync += [
                    next_word.x_word.eq(next_word.x_word + 1),
                    next_word.y_word.eq(next_word.y_word + 1),
                    words_left.eq(words_left - 1),
                    at_first_word.eq(0),
                ]
        with m.If(self.i.ready):
            m.d.sync += held.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += [
                    next_word.x_word.eq(self.i.payload.x_word),
                    next_word.y_word.eq(self.i.payload.y_word),
                    words_left.eq(self.i.payload.last_word),
                    at_first_word.eq(1),
                ]
        with m.If(load):
            m.d.sync += [
                loaded.eq(fetched),
                loaded_mask.eq(self.x_mask.data & self.y_mask.data),
                loaded_word.eq(fetched_word),
                loaded_first.eq(fetched_first),
                loaded_last.eq(fetched_last),
            ]
        m.d.comb += [
            decoder.i.valid.eq(loaded),
            decoder.i.payload.mask.eq(loaded_mask),
            decoder.i.payload.first.eq(loaded_first),
            decoder.i.payload.last.eq(loaded_last),
            decoder.i.payload.side.eq(loaded_word),
        ]

        # Data read: a product's index names its chunk in the word and its element in the
        # chunk's segment; the banks' read registers are this stage's.
        beat = decoder.o.payload
        index = beat.index[0]
        chunk_bits, element_bits = ceil_log2(group), ceil_log2(window)
        if window & (window - 1) == 0:
            element, chunk = index[:element_bits], index[element_bits:][:chunk_bits]
        else:
            element = Signal(element_bits)
            chunk = Signal(chunk_bits) if chunk_bits else index[:0]
            with m.Switch(index):
                for position in range(group * window):
                    with m.Case(position):
                        m.d.comb += element.eq(position % window)
                        if chunk_bits:
                            m.d.comb += chunk.eq(position // window)
        read = Signal()
        read_valid = Signal()
        read_element = Signal(element_bits) if element_bits else None
        read_lane_valid = Signal()
        read_first = Signal()
        read_last = Signal()
        m.d.comb += [
            read.eq(~read_valid | pe.i.ready),
            decoder.o.ready.eq(read),
            self.x_data.addr.eq(Cat(chunk, beat.side.x_word)),
            self.y_data.addr.eq(Cat(chunk, beat.side.y_word)),
            self.x_data.en.eq(read),
            self.y_data.en.eq(read),
        ]
        with m.If(read):
            m.d.sync += [
                read_valid.eq(decoder.o.valid),
                read_lane_valid.eq(beat.lane_valid[0]),
                read_first.eq(beat.first),
                read_last.eq(beat.last),
            ]
            if read_element is not None:
                m.d.sync += read_element.eq(element)
        m.d.comb += [
            pe.i.valid.eq(read_valid),
            pe.i.payload.index[0].eq(read_element if read_element is not None else 0),
            pe.i.payload.lane_valid.eq(read_lane_valid),
            pe.i.payload.first.eq(read_first),
            pe.i.payload.last.eq(read_last),
            pe.i.payload.side.x.eq(self.x_data.data),
            pe.i.payload.side.y.eq(self.y_data.data),
        ]
        wiring.connect(m, pe.o, accumulator.i)
        wiring.connect(m, accumulator.o, wiring.flipped(self.o))
        return m
