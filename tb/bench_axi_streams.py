"""What the AXI benches (``bench_axi_dma``, ``bench_axi_ram``, ``bench_axi_dma_ram``) share: a
driver and a sink for Amaranth stream ports with random idle cycles and backpressure, the
``AxiRam`` backdoor, and random pause generators for cocotbext-axi's channels. No tests here.

Same cycle discipline as ``tb/drivers.py``: inputs are written after a rising edge, handshakes
sampled in ``ReadOnly`` (what the coming edge sees). A source, once it offers a beat, keeps
offering it until it is taken; idle cycles fall between beats.
"""

import warnings
from collections import deque

from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["StreamSource", "StreamSink", "HostPort", "pauses"]

# cocotbext-axi 0.1.28 still calls cocotb 1.x APIs that cocotb 2 deprecates (Task.kill, Edge);
# the tests run with warnings as errors, which would turn them into failures inside its
# coroutines.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.axi")


def pauses(rng, probability: float):
    """A cocotbext-axi pause generator: each cycle paused with ``probability``."""
    while True:
        yield rng.random() < probability


class StreamSource:
    """Sends packed payloads on the input stream ``port`` of ``dut``, each offered only after a
    random idle gap (probability ``idle`` per cycle)."""

    def __init__(self, dut, port: str, clock, rng, *, idle: float = 0.0):
        self.valid = getattr(dut, f"{port}__valid")
        self.ready = getattr(dut, f"{port}__ready")
        self.payload = getattr(dut, f"{port}__payload")
        self.port, self.clock, self.rng, self.idle = port, clock, rng, idle
        self.pending: deque = deque()
        self.sent_cycles: list[int] = []
        self.valid.value = 0
        self.payload.value = 0

    def send(self, payloads):
        self.pending.extend(payloads)

    async def run(self, *, timeout_cycles: int):
        """Send everything queued (also beats queued while running), then go idle."""
        edge, settled = RisingEdge(self.clock), ReadOnly()
        offering, cycle = False, 0
        while self.pending:
            if cycle > timeout_cycles:
                raise TimeoutError(f"{self.port}: {len(self.pending)} beats not taken after "
                                   f"{timeout_cycles} cycles")
            if not offering and self.rng.random() >= self.idle:
                self.payload.value = self.pending[0]
                self.valid.value = 1
                offering = True
            await settled
            taken = offering and bool(self.ready.value)
            await edge
            if taken:
                self.pending.popleft()
                self.sent_cycles.append(cycle)
                offering = False
                self.valid.value = 0
            cycle += 1
        self.valid.value = 0


class StreamSink:
    """Takes ``count`` beats from the output stream ``port``, ready with probability
    ``1 - backpressure`` per cycle; ``on_beat(bits, cycle)`` for each."""

    def __init__(self, dut, port: str, clock, rng, *, backpressure: float = 0.0):
        self.valid = getattr(dut, f"{port}__valid")
        self.ready = getattr(dut, f"{port}__ready")
        self.payload = getattr(dut, f"{port}__payload")
        self.port, self.clock, self.rng, self.backpressure = port, clock, rng, backpressure
        self.beats: list[int] = []
        self.cycles: list[int] = []
        self.ready.value = 0

    async def run(self, count: int, *, timeout_cycles: int, on_beat=None):
        edge, settled = RisingEdge(self.clock), ReadOnly()
        cycle, ready = 0, None
        while len(self.beats) < count:
            if cycle > timeout_cycles:
                raise TimeoutError(f"{self.port}: {len(self.beats)} of {count} beats after "
                                   f"{timeout_cycles} cycles")
            want = self.rng.random() >= self.backpressure
            if want != ready:
                self.ready.value = int(want)
                ready = want
            await settled
            if want and self.valid.value:
                bits = int(self.payload.value)
                self.beats.append(bits)
                self.cycles.append(cycle)
                if on_beat is not None:
                    on_beat(bits, cycle)
            await edge
            cycle += 1
        self.ready.value = 0

    async def expect_silence(self, cycles: int):
        """Ready for ``cycles`` cycles in which nothing may come out."""
        edge, settled = RisingEdge(self.clock), ReadOnly()
        self.ready.value = 1
        for cycle in range(cycles):
            await settled
            assert not self.valid.value, \
                f"{self.port}: surplus beat {int(self.payload.value):#x} after the expected ones"
            await edge
        self.ready.value = 0


class HostPort:
    """The ``AxiRam`` backdoor (``host__en``, ``host__we``, ``host__addr``, ``host__wdata``,
    ``host__rdata``; word addresses): one word written or read per cycle."""

    def __init__(self, dut, clock, prefix: str = "host"):
        self.en = getattr(dut, f"{prefix}__en")
        self.we = getattr(dut, f"{prefix}__we")
        self.addr = getattr(dut, f"{prefix}__addr")
        self.wdata = getattr(dut, f"{prefix}__wdata")
        self.rdata = getattr(dut, f"{prefix}__rdata")
        self.clock = clock
        self.idle()

    def idle(self):
        self.en.value = 0
        self.we.value = 0
        self.addr.value = 0
        self.wdata.value = 0

    async def write(self, start: int, words):
        """Words ``start``, ``start + 1``, ... := ``words``, one per cycle."""
        edge = RisingEdge(self.clock)
        self.en.value, self.we.value = 1, 1
        for index, word in enumerate(words):
            self.addr.value = start + index
            self.wdata.value = word
            await edge
        self.idle()

    async def read(self, start: int, count: int) -> list[int]:
        """``count`` words from ``start``: an address per cycle, each word sampled the cycle
        after its address."""
        edge, settled = RisingEdge(self.clock), ReadOnly()
        words = []
        self.en.value, self.we.value, self.addr.value = 1, 0, start
        await edge
        for index in range(count):
            if index + 1 < count:
                self.addr.value = start + index + 1
            else:
                self.en.value = 0
            await settled
            words.append(int(self.rdata.value))
            await edge
        self.idle()
        return words
