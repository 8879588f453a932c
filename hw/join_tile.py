"""A tile of the join array: one JoinLane per selection segment, decoupled, and the join of
their partial sums (docs/architecture.md section 4.8)."""

from dataclasses import asdict

from amaranth import Cat, Module, Shape, Signal, signed
from amaranth.hdl import Assert
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import ceil_log2, check_range

from maskprop.hw.accumulation_tree import tree_result_layout
from maskprop.hw.join_lane import JoinLane, JoinLaneParameters

__all__ = ["JoinTile"]


class JoinTile(wiring.Component):
    """The dot products of ``X`` rows with ``Y`` columns over ``lanes`` selection segments, each
    served by its own :class:`~maskprop.hw.join_lane.JoinLane`, the lanes decoupled.

    Every output is given to every lane (lane ``s`` computes its partial sum over segment ``s``
    of each chunk, from its own four banks); a lane goes on to its next output as soon as it has
    walked this one, so a lane with few products in an output runs ahead of one with many, by
    up to ``queue`` outputs: each lane takes outputs from its own queue and leaves its partial
    sums in another, and the **join** adds an output's partial sums once every lane has
    delivered its own. The tile then costs its busiest lane summed over its outputs, not each
    output's busiest lane summed (``scripts/bench_packing.py``, "lanes decoupled").

    Parameters
    ----------
    lanes : int
        Lanes (selection segments), 1..16.
    queue : int
        Outputs in the tile at once, 1..64: accepted and not yet delivered, the most a lane
        runs ahead of the slowest. Each lane's output and partial-sum queues hold ``queue``
        entries, so no lane ever waits for room to leave a partial sum.
    tag : Shape or Layout
        A payload carried from each output on ``i`` to its result on ``o`` (which output it
        is: its row and column, for the array).
    window, group, data_width, acc_width, word_addr_width, max_words :
        The lanes' (:class:`~maskprop.hw.join_lane.JoinLane`); every lane reads its banks at
        the same addresses.

    Ports
    -----
    i : In(stream.Signature(output_layout))
        One output: the lanes' ``x_word``, ``y_word``, ``last_word`` and the ``tag``.
    x_mask, y_mask, x_data, y_data : arrays of ``lanes`` read ports
        Lane ``s``'s banks (:class:`~maskprop.hw.join_lane.JoinLane`'s ports): segment ``s``
        of every chunk of both operands.
    o : Out(stream.Signature(result_layout))
        One result per output, in the order of ``i``: ``value``, the sum of the lanes' partial
        sums wrapped to ``acc_width``; ``overflow``, set when a lane's running sum or the total
        left the ``acc_width`` range (:func:`~maskprop.sim.blocks.join_tile_sums`); ``tag``.

    Timing
    ------
    Unstalled, output ``k`` is accepted in cycle ``max(k, join(k - queue) + 1)`` and each lane
    takes it from its queue one cycle later at the earliest (when it has read its previous
    output's last mask word); a lane's partial sum is in its queue 4 cycles after the
    output's final decoder beat (the data read, the PE, the accumulator); the join takes
    output ``k`` the cycle after the last lane's partial sum is in its queue (and after output
    ``k - 1``), and offers the result ``join_latency = 3`` cycles later (the partial sums
    registered, added in pairs, then the pairs added).
    :func:`~maskprop.sim.cycle_model.join_tile_schedule` is the closed form, register by
    register. The join stalls as a whole on ``o``; the lanes run on
    until their queues are full.
    """

    join_latency = 3

    def __init__(self, *, lanes: int, queue: int, tag, **lane_parameters):
        self._lanes = check_range("lanes", lanes, 1, 16)
        self._queue = check_range("queue", queue, 1, 64)
        self._tag = tag
        self._lane = lane = JoinLaneParameters(**lane_parameters)
        super().__init__({
            "i": In(stream.Signature(self.output_layout)),
            **{name: In(signature).array(lanes)
               for name, signature in lane.bank_signatures.items()},
            "o": Out(stream.Signature(self.result_layout)),
        })

    lanes = property(lambda self: self._lanes)
    queue = property(lambda self: self._queue)
    lane = property(lambda self: self._lane, doc="The lanes' :class:`JoinLaneParameters`.")
    acc_width = property(lambda self: self._lane.acc_width, doc="The results' width.")

    @property
    def output_layout(self) -> data.StructLayout:
        """One output on ``i``: the lanes' fields and the tag."""
        return data.StructLayout({**{name: field.shape for name, field
                                     in self._lane.output_layout}, "tag": self._tag})

    @property
    def result_layout(self) -> data.StructLayout:
        return data.StructLayout({"value": signed(self.acc_width), "overflow": 1,
                                  "tag": self._tag})

    def elaborate(self, platform):
        m = Module()
        lanes, depth = self._lanes, self._queue
        lane_output = self._lane.output_layout
        partial = tree_result_layout(self.acc_width)

        # Admission: the tags' queue holds every output in the tile, so it alone decides
        # whether one more fits; the lanes' queues are as deep, so they always have room.
        m.submodules.tags = tags = fifo.SyncFIFO(width=Shape.cast(self._tag).width,
                                                 depth=depth)
        m.d.comb += [
            self.i.ready.eq(tags.w_rdy),
            tags.w_en.eq(self.i.valid),
            tags.w_data.eq(self.i.payload.tag),
        ]
        taken = self.i.valid & self.i.ready

        partials = []
        for s in range(lanes):
            lane = JoinLane(**asdict(self._lane))
            m.submodules[f"lane{s}"] = lane
            outputs = fifo.SyncFIFO(width=lane_output.size, depth=depth)
            sums = fifo.SyncFIFO(width=partial.size, depth=depth)
            m.submodules[f"outputs{s}"], m.submodules[f"partials{s}"] = outputs, sums
            m.d.comb += [
                outputs.w_en.eq(taken),
                # The output layout starts with the lane's fields, in the lane's order.
                outputs.w_data.eq(self.i.payload.as_value()[:lane_output.size]),
                lane.i.valid.eq(outputs.r_rdy),
                lane.i.payload.eq(outputs.r_data),
                outputs.r_en.eq(lane.i.ready),
                sums.w_en.eq(lane.o.valid),
                sums.w_data.eq(lane.o.payload),
                # Never back-pressured: its partial-sum queue always has room (the Assert
                # below), and a constant keeps the queue's level out of the lane's ready chain.
                lane.o.ready.eq(1),
            ]
            for name in self._lane.bank_signatures:
                wiring.connect(m, wiring.flipped(getattr(self, name)[s]), getattr(lane, name))
            partials.append(sums)
            m.d.sync += [
                Assert(~taken | outputs.w_rdy, f"lane {s}'s output queue overflows"),
                Assert(~lane.o.valid | sums.w_rdy, f"lane {s} waits to leave a partial sum"),
            ]

        # The join, three registered stages, the whole of it stalling on ``o``: the partial sums
        # of the oldest output taken from every lane's queue (the queues' reads end here), then
        # summed in pairs, then the pairs' sum (``acc_width`` + 2 bits wide carry chains, one
        # adder level a stage) with the overflows and the tag.
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        taken_valid = Signal()
        taken = [Signal(partial, name=f"taken{s}") for s in range(lanes)]
        taken_tag = Signal(self._tag)
        join = Signal()
        ready_all = Cat(sums.r_rdy for sums in partials).all() & tags.r_rdy
        m.d.comb += join.eq(ready_all & (~taken_valid | advance))
        m.d.comb += [sums.r_en.eq(join) for sums in partials]
        m.d.comb += tags.r_en.eq(join)
        with m.If(~taken_valid | advance):
            m.d.sync += taken_valid.eq(ready_all)
            m.d.sync += [reg.eq(sums.r_data) for reg, sums in zip(taken, partials)]
            m.d.sync += taken_tag.eq(tags.r_data)
        pair_width = self.acc_width + 1
        pairs = [Signal(signed(pair_width), name=f"pair{k}") for k in range(-(-lanes // 2))]
        pairs_valid = Signal()
        pairs_overflow = Signal()
        pairs_tag = Signal(self._tag)
        with m.If(advance):
            m.d.sync += [
                pairs_valid.eq(taken_valid),
                pairs_overflow.eq(Cat(reg.overflow for reg in taken).any()),
                pairs_tag.eq(taken_tag),
            ]
            m.d.sync += [pair.eq(sum(reg.value for reg in taken[2 * k:2 * k + 2]))
                         for k, pair in enumerate(pairs)]
        total = Signal(signed(pair_width + ceil_log2(len(pairs)) + 1))
        m.d.comb += total.eq(sum(pairs))
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(pairs_valid),
                self.o.payload.value.eq(total),
                self.o.payload.overflow.eq(
                    pairs_overflow | (total != total[:self.acc_width].as_signed())),
                self.o.payload.tag.eq(pairs_tag),
            ]
        return m
