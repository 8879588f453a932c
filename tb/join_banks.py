"""Bank contents and a bench wrapper for the join array's blocks (:class:`~maskprop.hw.join_lane.
JoinLane`, :class:`~maskprop.hw.join_tile.JoinTile`): their four banks per lane as real
memories, so that the stream bench (:func:`~maskprop.tb.amaranth_bench.run_stream`) drives
only ``i`` and checks ``o``."""

from dataclasses import dataclass

import numpy as np
from amaranth import Module
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.sim.cycle_model import join_lane_cycles
from maskprop.tb.stimulus import random_signed

__all__ = ["Banks", "WithBanks", "BANK_PORTS"]

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
