"""Stimulus for the join array's blocks: bank contents and a bench wrapper for :class:`~maskprop.
hw.join_lane.JoinLane` and :class:`~maskprop.hw.join_tile.JoinTile` (their four banks per lane
as real memories, so that the stream bench, :func:`~maskprop.tb.amaranth_bench.run_stream`,
drives only ``i`` and checks ``o``), and whole passes for :class:`~maskprop.hw.join_array.
JoinArray` (:class:`ArrayPass`: its beats, results and schedule)."""

from dataclasses import dataclass

import numpy as np
from amaranth import Module
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.sim.blocks import join_array_sums
from maskprop.sim.cycle_model import join_array_schedule, join_lane_cycles, join_pass_word_costs
from maskprop.tb.stimulus import random_signed

__all__ = ["Banks", "WithBanks", "BANK_PORTS", "ArrayPass"]

#: A lane's read ports, one per bank.
BANK_PORTS = ("x_mask", "y_mask", "x_data", "y_data")


@dataclass
class Banks:
    """The contents of one lane's four banks: per operand, mask words (ints) and data words
    (``window`` signed elements each, chunk ``c`` of mask word ``w`` at ``w * group + c``).
    ``window`` and ``group`` are the lane's."""
    window: int
    group: int
    x_mask: list
    y_mask: list
    x_data: list
    y_data: list

    @classmethod
    def random(cls, rng, lane) -> "Banks":
        """Banks for a lane of ``lane`` (:class:`~maskprop.hw.join_lane.JoinLaneParameters`),
        every word drawn at its own density (0 to 1, all-zero words common); data behind a
        clear mask bit is random too (it must not reach a sum), and a set bit may sit on a
        zero (a structure mask)."""
        window, group, data_width = lane.window, lane.group, lane.data_width
        words, width = 1 << lane.word_addr_width, group * window

        def masks():
            return [sum(1 << b for b in range(width) if rng.random() < density)
                    for density in (rng.choice((0.0, 0.0, 0.1, 0.3, 0.6, 1.0))
                                    for _ in range(words))]

        def chunks():
            return [[random_signed(rng, data_width) for _ in range(window)]
                    for _ in range(words * group)]
        return cls(window, group, masks(), masks(), chunks(), chunks())

    def walk(self, word: int, count: int, operand: str):
        """``count`` mask words of ``operand`` (``"x"`` or ``"y"``) from ``word`` on (wrapping):
        their elements and mask bits, in a lane's walk order."""
        masks, chunks = getattr(self, f"{operand}_mask"), getattr(self, f"{operand}_data")
        elements, bits = [], []
        for w in range(count):
            address = (word + w) % len(masks)
            for c in range(self.group):
                elements += chunks[address * self.group + c]
                bits += [masks[address] >> (c * self.window + p) & 1 for p in range(self.window)]
        return elements, bits

    def output(self, payload: dict):
        """``(x, y, x_mask, y_mask)`` of the output ``payload`` (``x_word``, ``y_word``,
        ``last_word``) on this lane: what :func:`~maskprop.sim.blocks.join_lane_sums` takes."""
        count = payload["last_word"] + 1
        (x, x_mask), (y, y_mask) = (self.walk(payload[f"{o}_word"], count, o) for o in "xy")
        return x, y, x_mask, y_mask

    def word_costs(self, payload: dict) -> list:
        """The cycles of each mask word of the output ``payload`` on this lane, by the closed
        form (:func:`~maskprop.sim.cycle_model.join_lane_cycles`, word by word)."""
        _, _, x_mask, y_mask = self.output(payload)
        products = np.array(x_mask, dtype=bool) & np.array(y_mask, dtype=bool)
        word = self.group * self.window
        return [int(join_lane_cycles(products[w:w + word], word))
                for w in range(0, len(products), word)]


class WithBanks(wiring.Component):
    """``dut`` (with ``i``, ``o`` and the :data:`BANK_PORTS`, single or arrays of lanes) with
    each lane's banks as memories holding ``banks[lane]``: ``dut``'s ``i`` and ``o``."""

    def __init__(self, dut, banks: list):
        self.dut, self._banks = dut, banks
        super().__init__({"i": In(stream.Signature(dut.i.payload.shape())),
                          "o": Out(stream.Signature(dut.o.payload.shape()))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        for name in BANK_PORTS:
            ports = getattr(dut, name)
            ports = [ports] if len(self._banks) == 1 and not isinstance(ports, list) else ports
            for lane, (port, banks) in enumerate(zip(ports, self._banks)):
                init = getattr(banks, name)
                bank = memory.Memory(shape=port.data.shape(), depth=len(init), init=init)
                m.submodules[f"{name}{lane}"] = bank
                wiring.connect(m, bank.read_port(), port)
        wiring.connect(m, wiring.flipped(self.i), dut.i)
        wiring.connect(m, dut.o, wiring.flipped(self.o))
        return m


@dataclass
class ArrayPass:
    """One pass of :class:`~maskprop.hw.join_array.JoinArray`: ``x (M, K)`` and ``y (K, J)``
    with their masks (``K`` a multiple of the array's chunk) and the ``wanted (M, J)`` outputs;
    the beats the array takes, the results it must give and its schedule."""
    x: np.ndarray
    y: np.ndarray
    x_mask: np.ndarray
    y_mask: np.ndarray
    wanted: np.ndarray

    @classmethod
    def random(cls, rng, array, *, rows: int) -> "ArrayPass":
        """``rows`` rows over a random number of chunks and columns (at most the array's),
        each row at its own density (all-zero rows and chunks common), masks that may mark a
        zero (a structure mask), data behind a clear mask bit random too, wanted outputs at
        a density of their own per row (rows without one included)."""
        vec, width = array.vec, array.lane.data_width
        k = rng.randint(1, array.max_chunks) * vec
        columns = rng.randint(1, array.max_columns)
        low, high = -(1 << (width - 1)), 1 << (width - 1)

        def operand(shape, per_row_density):
            values = np.array([[rng.randrange(low, high) for _ in range(shape[1])]
                               for _ in range(shape[0])], dtype=np.int64)
            density = [rng.choice((0.0, 0.1, 0.3, 0.6, 1.0)) for _ in range(shape[0])]
            mask = np.array([[rng.random() < density[r] for _ in range(shape[1])]
                             for r in range(shape[0])]) if per_row_density else None
            return values, mask

        x, x_mask = operand((rows, k), True)
        y_t, y_mask_t = operand((columns, k), True)
        wanted = np.array([[rng.random() < density for _ in range(columns)]
                           for density in (rng.choice((0.0, 0.3, 0.8, 1.0))
                                           for _ in range(rows))])
        return cls(x, y_t.T, x_mask, y_mask_t.T, wanted)

    def streams(self, array) -> dict:
        """The beats of ``y``, ``x`` and ``rows``: every chunk of every column and row in order
        (``last`` on each one's final chunk), a ``rows`` beat per row."""
        vec = array.vec
        chunks = self.x.shape[1] // vec

        def chunk(values, mask, c):
            part = slice(c * vec, (c + 1) * vec)
            return {"data": [int(v) for v in values[part]],
                    "mask": sum(int(b) << p for p, b in enumerate(mask[part])),
                    "last": int(c == chunks - 1)}

        y = [{"column": j, "chunk": c, **chunk(self.y[:, j], self.y_mask[:, j], c)}
             for j in range(self.y.shape[1]) for c in range(chunks)]
        x = [chunk(self.x[m], self.x_mask[m], c)
             for m in range(self.x.shape[0]) for c in range(chunks)]
        rows = [{"omask": sum(int(b) << j for j, b in enumerate(row))} for row in self.wanted]
        return {"y": y, "x": x, "rows": rows}

    def results(self, array) -> list:
        """The results on ``o`` (:func:`~maskprop.sim.blocks.join_array_sums`), in order, with
        their column and ``last`` on each row's final one."""
        sums = join_array_sums(self.x, self.y, self.x_mask, self.y_mask, self.wanted,
                               vec=array.vec, lanes=array.lanes, acc_width=array.acc_width)
        m, j = np.nonzero(self.wanted)
        last = np.r_[m[1:] != m[:-1], True] if m.size else []
        return [{"value": s.value, "overflow": int(s.overflow), "column": int(c),
                 "last": int(e)} for s, c, e in zip(sums, j, last)]

    def schedule(self, array):
        """:func:`~maskprop.sim.cycle_model.join_array_schedule` of the pass: ``(x, rows, o)``
        cycles."""
        lane = array.lane
        words = join_pass_word_costs(self.x_mask, self.y_mask, segments=array.lanes,
                                     window=lane.window, group=lane.group, words=True)
        outputs = [[[list(costs) for costs in words[:, m, j]]
                    for j in np.flatnonzero(self.wanted[m])] for m in range(self.x.shape[0])]
        chunks = self.x.shape[1] // array.vec
        return join_array_schedule([chunks] * self.x.shape[0], outputs, tiles=array.tiles,
                                   queue=array.queue, ring=array.ring)
