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
    with their masks and the ``wanted (M, J)`` outputs; the beats the array takes (the
    reduction in whole chunks, the last one padded with zeros by the host), the results it
    must give and its schedule. ``row_chunks``: how many chunks each row sends (default all;
    a shorter row's further elements are not part of its products)."""
    x: np.ndarray
    y: np.ndarray
    x_mask: np.ndarray
    y_mask: np.ndarray
    wanted: np.ndarray
    row_chunks: list | None = None

    @classmethod
    def random(cls, rng, array, *, rows: int) -> "ArrayPass":
        """``rows`` rows over a random number of chunks and columns (at most the array's),
        each row of its own length (a shorter row after a longer one in the same slot of the
        ring must not see the longer one's masks) and at its own density (all-zero rows and
        chunks common), masks that may mark a zero (a structure mask), data behind a clear
        mask bit random too, wanted outputs at a density of their own per row (rows without
        one included)."""
        vec, width = array.vec, array.lane.data_width
        chunks = rng.randint(1, array.max_chunks)
        columns = rng.randint(1, array.max_columns)
        low, high = -(1 << (width - 1)), 1 << (width - 1)

        def operand(count):
            values = np.array([[rng.randrange(low, high) for _ in range(chunks * vec)]
                               for _ in range(count)], dtype=np.int64)
            density = [rng.choice((0.0, 0.1, 0.3, 0.6, 1.0)) for _ in range(count)]
            mask = np.array([[rng.random() < d for _ in range(chunks * vec)] for d in density])
            return values, mask

        x, x_mask = operand(rows)
        y_t, y_mask_t = operand(columns)
        wanted = np.array([[rng.random() < density for _ in range(columns)]
                           for density in (rng.choice((0.0, 0.3, 0.8, 1.0))
                                           for _ in range(rows))])
        row_chunks = [rng.randint(1, chunks) for _ in range(rows)]
        return cls(x, y_t.T, x_mask, y_mask_t.T, wanted, row_chunks)

    def _trimmed(self, vec: int):
        """``x`` and ``x_mask`` with each row's elements past its chunks zeroed, and each row's
        chunk count (the reference and the model pad the reduction to whole chunks
        themselves)."""
        chunks = -(-self.x.shape[1] // vec)
        counts = list(self.row_chunks or [chunks] * self.x.shape[0])
        x, x_mask = self.x.copy(), self.x_mask.copy()
        for m, count in enumerate(counts):
            x[m, count * vec:], x_mask[m, count * vec:] = 0, False
        return x, x_mask, counts

    def streams(self, array) -> dict:
        """The beats of ``y``, ``x`` and ``rows``: every chunk of every column, each row's
        chunks, in order (``last`` on each one's final chunk), a ``rows`` beat per row."""
        vec = array.vec
        x, x_mask, counts = self._trimmed(vec)
        pad = -x.shape[1] % vec  # the host pads the last chunk with zeros
        x, x_mask = (np.pad(a, [(0, 0), (0, pad)]) for a in (x, x_mask))
        y, y_mask = (np.pad(a, [(0, pad), (0, 0)]) for a in (self.y, self.y_mask))

        def chunk(values, mask, c, count):
            part = slice(c * vec, (c + 1) * vec)
            return {"data": [int(v) for v in values[part]],
                    "mask": sum(int(b) << p for p, b in enumerate(mask[part])),
                    "last": int(c == count - 1)}

        chunks = y.shape[0] // vec
        ys = [{"column": j, "chunk": c, **chunk(y[:, j], y_mask[:, j], c, chunks)}
              for j in range(y.shape[1]) for c in range(chunks)]
        xs = [chunk(x[m], x_mask[m], c, count)
              for m, count in enumerate(counts) for c in range(count)]
        rows = [{"omask": sum(int(b) << j for j, b in enumerate(row))} for row in self.wanted]
        return {"y": ys, "x": xs, "rows": rows}

    def results(self, array) -> list:
        """The beats on ``o`` (:func:`~maskprop.sim.blocks.join_array_sums`), in order: each
        row's wanted outputs ``tiles`` at a time (a deal step), with their columns, the unused
        slots 0, ``last`` on the row's final beat."""
        x, x_mask, _ = self._trimmed(array.vec)
        sums = iter(join_array_sums(x, self.y, x_mask, self.y_mask, self.wanted, vec=array.vec,
                                    lanes=array.lanes, acc_width=array.acc_width))
        tiles, beats = array.tiles, []
        for row in self.wanted:
            columns = np.flatnonzero(row).tolist()
            for rank in range(0, len(columns), tiles):
                step = columns[rank:rank + tiles]
                results = [next(sums) for _ in step]
                unused = [0] * (tiles - len(step))
                beats.append({
                    "value": [r.value for r in results] + unused,
                    "overflow": sum(int(r.overflow) << k for k, r in enumerate(results)),
                    "column": step + unused,
                    "valid": (1 << len(step)) - 1,
                    "last": int(rank + tiles >= len(columns)),
                })
        return beats

    def schedule(self, array):
        """:func:`~maskprop.sim.cycle_model.join_array_schedule` of the pass: ``(x, rows, o)``
        cycles (a row walks the mask words its chunks fill)."""
        lane = array.lane
        _, x_mask, counts = self._trimmed(array.vec)
        words = join_pass_word_costs(x_mask, self.y_mask, segments=array.lanes,
                                     window=lane.window, group=lane.group, words=True)
        outputs = [[[list(costs[:-(-count // lane.group)]) for costs in words[:, m, j]]
                    for j in np.flatnonzero(self.wanted[m])] for m, count in enumerate(counts)]
        return join_array_schedule(counts, outputs, tiles=array.tiles, queue=array.queue,
                                   ring=array.ring)
