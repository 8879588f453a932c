"""An AXI4 protocol checker and traffic counter for any AXI4 port of a DUT, run alongside a cocotb
test (AMBA AXI and ACE Protocol Specification, ARM IHI 0022H: A3.2 handshakes, A3.4 bursts).

Amaranth flattens a port ``bus`` of :class:`~maskprop.hw.axi.AXI4Signature` into
``bus__awvalid``, ``bus__awaddr``, ... (the member names joined with ``__``): the monitor finds
the signals from that prefix. It works one clock cycle at a time, like the stream benches
(``tb/drivers.py``): it samples the settled signals in ``ReadOnly`` (what the coming rising edge
will see), so a handshake is a cycle with VALID and READY both high.

The rules live in :class:`AxiProtocolModel`, plain Python fed one sample per cycle (the tests
feed it synthetic traces, to show that every rule fires); :class:`AxiMonitor` samples a DUT for
it. A violation is recorded, with its cycle, in ``errors`` (and raised at once with
``raise_on_error``); a test ends with :meth:`AxiProtocolModel.assert_clean`, which also fails if
a burst is still waiting for its data or response. The rules:

- a VALID that drops before its READY; a payload that changes while VALID waits for READY (all
  five channels);
- a burst of reserved type, an ``AxSIZE`` wider than the bus (or, with ``size=``, not that
  size), more beats than ``max_len`` (``AxLEN`` + 1; 256 at most by the width of ``AxLEN``), an
  INCR burst that crosses a 4 KiB boundary, a WRAP burst of other than 2, 4, 8 or 16 beats or
  with an unaligned address, a FIXED burst of more than 16 beats;
- WLAST not on exactly the last beat of its burst (W bursts follow the AW order; W may come
  before its AW), a write strobe outside the beat's byte lanes;
- RLAST not on exactly the last beat of its burst (in order per ID);
- more than ``max_outstanding`` read (or write) bursts in flight: a read from its AR handshake
  to its last R beat, a write from its AW handshake to its B response;
- an R beat or a B response whose ID has no burst outstanding, a B response before the last W
  beat of its burst.

Traffic, per byte address: :meth:`~AxiProtocolModel.bytes_read_in` counts the bytes of every R
beat (``2**AxSIZE``, less the unaligned start of a burst's first beat) that fall in an address
range, :meth:`~AxiProtocolModel.bytes_written_in` the bytes with their write strobe set. Error
responses are counted too: the bytes moved on the bus either way.
"""

from collections import deque
from dataclasses import dataclass, field

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from maskprop.hw.axi import BOUNDARY_BYTES, BURST_FIXED, BURST_INCR, BURST_WRAP, RESP_OKAY

__all__ = ["AxiProtocolModel", "AxiMonitor", "ProtocolError", "CHANNELS", "burst_beats"]

#: The payload members of each channel (VALID/READY apart), as in ``AXI4Signature``.
CHANNELS = {
    "aw": ("awid", "awaddr", "awlen", "awsize", "awburst", "awlock", "awcache", "awprot"),
    "w": ("wdata", "wstrb", "wlast"),
    "b": ("bid", "bresp"),
    "ar": ("arid", "araddr", "arlen", "arsize", "arburst", "arlock", "arcache", "arprot"),
    "r": ("rid", "rdata", "rresp", "rlast"),
}


class ProtocolError(AssertionError):
    """An AXI protocol violation seen by the checker."""


def burst_beats(addr: int, length: int, size: int, burst: int):
    """The byte address of every beat of a burst (``length`` = ``AxLEN``, beats - 1): INCR and
    WRAP bursts align the beats after the first to the size, FIXED ones repeat the address."""
    step = 1 << size
    beats = length + 1
    if burst == BURST_FIXED:
        return [addr] * beats
    aligned = addr & ~(step - 1)
    if burst == BURST_WRAP:
        total = step * beats
        lower = (addr // total) * total
        return [lower + (aligned - lower + k * step) % total for k in range(beats)]
    return [addr] + [aligned + k * step for k in range(1, beats)]


@dataclass
class _Burst:
    id: int
    addr: int
    len: int
    size: int
    burst: int
    cycle: int
    beats: list = field(default_factory=list)      # byte address of each beat
    seen: int = 0                                  # data beats so far
    data_done: bool = False


class AxiProtocolModel:
    """The checker's rules and traffic counts, fed one sample per cycle with :meth:`cycle`.

    Parameters
    ----------
    data_width : int
        Bus width in bits.
    max_outstanding : int or None
        Bursts allowed in flight per direction (None: no bound).
    max_len : int
        Beats per burst allowed (``AxLEN + 1``), at most 256.
    size : int or None
        The one ``AxSIZE`` allowed (None: any up to the bus width).
    name : str
        Prefix of the error messages.
    raise_on_error : bool
        Raise :class:`ProtocolError` at the first violation instead of only recording it.
    record_cycles : bool
        Keep the cycle of every handshake, per channel, in ``handshake_cycles``.
    """

    def __init__(self, *, data_width: int, max_outstanding: int | None = None,
                 max_len: int = 256, size: int | None = None, name: str = "axi",
                 raise_on_error: bool = False, record_cycles: bool = False):
        self.bytes_per_beat = data_width // 8
        self.max_size = (self.bytes_per_beat - 1).bit_length()
        self.max_outstanding = max_outstanding
        self.max_len = min(max_len, 256)
        self.size = size
        self.name = name
        self.raise_on_error = raise_on_error
        self.record_cycles = record_cycles
        self.handshake_cycles = {channel: [] for channel in CHANNELS}
        self.cycle_index = 0
        self.errors: list[str] = []
        # Traffic since the start (kept across resets).
        self.read_beats: list[tuple[int, int]] = []            # (byte address, bytes)
        self.write_beats: list[tuple[int, int]] = []           # (word address, strobes)
        self.read_bursts = 0
        self.write_bursts = 0
        self.read_responses: dict[int, int] = {}               # RRESP -> beats
        self.write_responses: dict[int, int] = {}              # BRESP -> responses
        self.max_read_outstanding = 0
        self.max_write_outstanding = 0
        self.reset()

    def reset(self):
        """Forget every burst in flight and every payload held (the bus is in reset)."""
        self._held = {channel: None for channel in CHANNELS}   # payload waiting for READY
        self._reads: dict[int, deque] = {}                     # per ID, in order
        self._writes: list[_Burst] = []                        # AW order, until their B
        self._early_w: deque = deque()                         # W beats before their AW
        self.read_outstanding = 0
        self.write_outstanding = 0

    # --- violations ---------------------------------------------------------------------------
    def error(self, message: str):
        text = f"{self.name}: cycle {self.cycle_index}: {message}"
        self.errors.append(text)
        if self.raise_on_error:
            raise ProtocolError(text)

    def assert_clean(self, *, idle: bool = True):
        """Raise :class:`ProtocolError` listing the violations; with ``idle``, also if a burst
        still waits for data or a response (a hang, or a response that never came)."""
        problems = list(self.errors)
        if idle:
            pending = sum(len(queue) for queue in self._reads.values())
            if pending:
                problems.append(f"{self.name}: {pending} read burst(s) still waiting for data")
            if self._writes:
                problems.append(f"{self.name}: {len(self._writes)} write burst(s) still "
                                f"waiting for data or a response")
            if self._early_w:
                problems.append(f"{self.name}: {len(self._early_w)} W beat(s) without an AW")
        if problems:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise ProtocolError(f"{len(problems)} AXI protocol problem(s):\n  {shown}{more}")

    # --- one cycle ----------------------------------------------------------------------------
    def cycle(self, samples: dict):
        """One cycle's sample: ``{channel: (valid, ready, payload)}`` for each of ``aw``,
        ``w``, ``b``, ``ar``, ``r`` (a missing channel is idle); ``payload`` is a dict of the
        channel's members (only read when ``valid``)."""
        for channel in ("aw", "w", "b", "ar", "r"):
            valid, ready, payload = samples.get(channel, (False, False, None))
            held = self._held[channel]
            if held is not None:
                if not valid:
                    self.error(f"{channel.upper()}VALID dropped before {channel.upper()}READY "
                               f"(payload {_show(held)})")
                elif payload != held:
                    changed = sorted(key for key in held if payload.get(key) != held[key])
                    self.error(f"{channel.upper()} payload changed while waiting for "
                               f"{channel.upper()}READY: {', '.join(changed)} "
                               f"({_show(held)} -> {_show(payload)})")
            self._held[channel] = dict(payload) if valid and not ready else None
            if valid and ready:
                getattr(self, f"_{channel}")(payload)
                if self.record_cycles:
                    self.handshake_cycles[channel].append(self.cycle_index)
        self.cycle_index += 1

    def _address(self, channel: str, payload: dict) -> _Burst:
        p = channel
        burst = _Burst(id=payload.get(f"{p}id", 0), addr=payload[f"{p}addr"],
                       len=payload.get(f"{p}len", 0),
                       size=payload.get(f"{p}size", self.max_size),
                       burst=payload.get(f"{p}burst", BURST_INCR), cycle=self.cycle_index)
        beats, label = burst.len + 1, p.upper()
        if burst.size > self.max_size:
            self.error(f"{label}SIZE {burst.size} wider than the {self.bytes_per_beat}-byte bus")
        elif self.size is not None and burst.size != self.size:
            self.error(f"{label}SIZE {burst.size}, expected {self.size}")
        if not 0 <= burst.len <= 255:
            self.error(f"{label}LEN {burst.len} out of [0, 255]")
        elif beats > self.max_len:
            self.error(f"{label}LEN {burst.len}: {beats} beats, more than {self.max_len}")
        step = 1 << burst.size
        if burst.burst == BURST_INCR:
            start = burst.addr & ~(step - 1)
            if start // BOUNDARY_BYTES != (start + beats * step - 1) // BOUNDARY_BYTES:
                self.error(f"INCR burst at 0x{burst.addr:x} of {beats} x {step} bytes "
                           f"crosses a 4 KiB boundary")
        elif burst.burst == BURST_WRAP:
            if beats not in (2, 4, 8, 16) or burst.addr % step:
                self.error(f"WRAP burst of {beats} beats at 0x{burst.addr:x}: needs 2, 4, 8 "
                           f"or 16 beats and an address aligned to {step}")
        elif burst.burst == BURST_FIXED:
            if beats > 16:
                self.error(f"FIXED burst of {beats} beats (16 at most)")
        else:
            self.error(f"{label}BURST {burst.burst} is reserved")
        burst.beats = burst_beats(burst.addr, burst.len, burst.size,
                                  burst.burst if burst.burst in (0, 1, 2) else BURST_INCR)
        return burst

    def _ar(self, payload):
        burst = self._address("ar", payload)
        self._reads.setdefault(burst.id, deque()).append(burst)
        self.read_bursts += 1
        self.read_outstanding += 1
        self.max_read_outstanding = max(self.max_read_outstanding, self.read_outstanding)
        if self.max_outstanding is not None and self.read_outstanding > self.max_outstanding:
            self.error(f"{self.read_outstanding} read bursts outstanding, more than "
                       f"{self.max_outstanding}")

    def _r(self, payload):
        rid = payload.get("rid", 0)
        queue = self._reads.get(rid)
        resp = payload.get("rresp", RESP_OKAY)
        self.read_responses[resp] = self.read_responses.get(resp, 0) + 1
        if not queue:
            self.error(f"R beat with RID {rid} and no read burst outstanding with that ID")
            return
        burst = queue[0]
        address = burst.beats[min(burst.seen, burst.len)]
        step = 1 << burst.size
        self.read_beats.append((address, step - address % step))
        burst.seen += 1
        last = bool(payload.get("rlast", 1))
        beats = burst.len + 1
        if last and burst.seen != beats:
            self.error(f"RLAST on beat {burst.seen} of a {beats}-beat burst "
                       f"(ARADDR 0x{burst.addr:x})")
        elif not last and burst.seen == beats:
            self.error(f"no RLAST on the last beat of a {beats}-beat burst "
                       f"(ARADDR 0x{burst.addr:x})")
        if last or burst.seen == beats:
            queue.popleft()
            self.read_outstanding -= 1

    def _aw(self, payload):
        burst = self._address("aw", payload)
        self._writes.append(burst)
        self.write_bursts += 1
        self.write_outstanding += 1
        self.max_write_outstanding = max(self.max_write_outstanding, self.write_outstanding)
        if self.max_outstanding is not None and self.write_outstanding > self.max_outstanding:
            self.error(f"{self.write_outstanding} write bursts outstanding, more than "
                       f"{self.max_outstanding}")
        while self._early_w and self._w_burst() is not None:
            self._w_beat(*self._early_w.popleft())

    def _w_burst(self):
        return next((burst for burst in self._writes if not burst.data_done), None)

    def _w(self, payload):
        beat = (payload["wdata"], payload.get("wstrb", (1 << self.bytes_per_beat) - 1),
                bool(payload.get("wlast", 1)))
        if self._w_burst() is None or self._early_w:
            self._early_w.append(beat)
        else:
            self._w_beat(*beat)

    def _w_beat(self, wdata, wstrb, wlast):
        burst = self._w_burst()
        address = burst.beats[min(burst.seen, burst.len)]
        word = address - address % self.bytes_per_beat
        step = 1 << min(burst.size, self.max_size)
        lower = address % self.bytes_per_beat
        upper = (address & ~(step - 1)) % self.bytes_per_beat + step
        lanes = ((1 << upper) - 1) & ~((1 << lower) - 1)
        if wstrb & ~lanes & ((1 << self.bytes_per_beat) - 1):
            self.error(f"WSTRB 0x{wstrb:x} outside the byte lanes 0x{lanes:x} of the beat at "
                       f"0x{address:x}")
        self.write_beats.append((word, wstrb))
        burst.seen += 1
        beats = burst.len + 1
        if wlast and burst.seen != beats:
            self.error(f"WLAST on beat {burst.seen} of a {beats}-beat burst "
                       f"(AWADDR 0x{burst.addr:x})")
        elif not wlast and burst.seen == beats:
            self.error(f"no WLAST on the last beat of a {beats}-beat burst "
                       f"(AWADDR 0x{burst.addr:x})")
        if wlast or burst.seen == beats:
            burst.data_done = True

    def _b(self, payload):
        bid = payload.get("bid", 0)
        resp = payload.get("bresp", RESP_OKAY)
        self.write_responses[resp] = self.write_responses.get(resp, 0) + 1
        burst = next((burst for burst in self._writes if burst.id == bid), None)
        if burst is None:
            self.error(f"B response with BID {bid} and no write burst outstanding with that ID")
            return
        if not burst.data_done:
            self.error(f"B response for the burst at AWADDR 0x{burst.addr:x} before its last "
                       f"W beat ({burst.seen} of {burst.len + 1} beats)")
        self._writes.remove(burst)
        self.write_outstanding -= 1

    # --- traffic ------------------------------------------------------------------------------
    @property
    def bytes_read(self) -> int:
        return sum(size for _, size in self.read_beats)

    @property
    def bytes_written(self) -> int:
        return sum(bin(strobes).count("1") for _, strobes in self.write_beats)

    def bytes_read_in(self, lo: int, hi: int) -> int:
        """Bytes of R beats at byte addresses in ``[lo, hi)``."""
        return sum(max(0, min(hi, address + size) - max(lo, address))
                   for address, size in self.read_beats)

    def bytes_written_in(self, lo: int, hi: int) -> int:
        """Bytes written (strobe set) at byte addresses in ``[lo, hi)``."""
        total = 0
        for word, strobes in self.write_beats:
            if word + self.bytes_per_beat <= lo or word >= hi:
                continue
            first, last = max(lo, word) - word, min(hi, word + self.bytes_per_beat) - word
            total += bin((strobes >> first) & ((1 << (last - first)) - 1)).count("1")
        return total


def _show(payload: dict) -> str:
    return " ".join(f"{key}=0x{value:x}" for key, value in payload.items())


class AxiMonitor(AxiProtocolModel):
    """:class:`AxiProtocolModel` on the AXI4 port ``prefix`` of ``dut`` (signals
    ``{prefix}__awvalid`` and so on; members a port lacks are left out), sampled every cycle of
    ``clock`` from :meth:`start` on; cycles with ``reset`` high reset the model."""

    def __init__(self, dut, prefix: str, clock, reset=None, **kwargs):
        self._handles = {}
        for channel, members in CHANNELS.items():
            handle = lambda name: getattr(dut, f"{prefix}__{name}", None)   # noqa: E731
            self._handles[channel] = (
                handle(f"{channel}valid"), handle(f"{channel}ready"),
                [(name, handle(name)) for name in members if handle(name) is not None])
        kwargs.setdefault("name", prefix)
        super().__init__(data_width=len(getattr(dut, f"{prefix}__wdata")), **kwargs)
        self.clock, self.reset_signal = clock, reset
        self._task = None

    def start(self):
        self._task = cocotb.start_soon(self._run())
        return self

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _sample(self, channel):
        valid_handle, ready_handle, members = self._handles[channel]
        valid, ready = valid_handle.value, ready_handle.value
        if not (valid.is_resolvable and ready.is_resolvable):
            self.error(f"{channel.upper()}VALID/READY not 0 or 1 ({valid}, {ready})")
            return False, False, None
        valid, ready = bool(valid), bool(ready)
        if not valid:
            return False, ready, None
        payload = {}
        for name, handle in members:
            value = handle.value
            if not value.is_resolvable:
                self.error(f"{name} has x/z bits while {channel.upper()}VALID: {value}")
                payload[name] = -1
            else:
                payload[name] = int(value)
        return True, ready, payload

    async def _run(self):
        edge, settled = RisingEdge(self.clock), ReadOnly()
        while True:
            await settled
            if self.reset_signal is not None and self.reset_signal.value != 0:
                self.reset()
                self.cycle_index += 1
            else:
                self.cycle({channel: self._sample(channel) for channel in CHANNELS})
            await edge
