"""Device: one API for a maskprop board, real or simulated - registers, memory, passes and
counters over the host link (docs/host_link.md)."""

import hashlib
import struct
import time
from dataclasses import dataclass, field

import numpy as np

from maskprop.device.protocol import (ANSWER_SYNC, CRC_BYTES, HEADER_BYTES, REQUEST_SYNC,
                                      Command, FrameDecoder, FrameError, LinkInfo, Status,
                                      encode)
from maskprop.device.transport import Transport

__all__ = ["Device", "DeviceError", "LinkTimeout", "LinkStats", "PassResult"]


class DeviceError(RuntimeError):
    """The board answered an error, or a pass ended in one."""


class LinkTimeout(DeviceError):
    """No answer within the time allowed, after every retry."""


@dataclass
class LinkStats:
    """What a :class:`Device` has sent and received: requests, bytes each way (whole frames)
    and the wall seconds spent per command, waiting for its answer included."""
    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: dict = field(default_factory=dict)

    def add(self, command: Command, sent: int, received: int, seconds: float) -> None:
        self.requests += 1
        self.bytes_sent += sent
        self.bytes_received += received
        self.seconds[command.name] = self.seconds.get(command.name, 0.0) + seconds


@dataclass
class PassResult:
    """What :meth:`Device.run_job` returns: the result tensor, the core's counters summed
    over the pass's commands, and its STATUS after each command."""
    result: np.ndarray
    counters: dict
    statuses: list


class Device:
    """A board behind ``transport`` (:mod:`maskprop.device.transport`) with ``register_map``,
    the core's (:func:`~maskprop.hw.core_registers.core_register_map` of the configuration
    the board was built with).

    Every request waits for its answer. A request without an answer within ``timeout``
    seconds is sent again after the link's own timeout has passed (``link_quiet`` seconds: the
    board has then dropped what it had of the frame), up to ``retries`` times; RUN is never
    sent again (:meth:`run` says what to do). An answer for an earlier request (a late one) is
    skipped by its sequence number.
    """

    def __init__(self, transport: Transport, register_map, *, timeout: float = 5.0,
                 retries: int = 2, link_quiet: float = 0.2):
        self.transport = transport
        self.register_map = register_map
        self.timeout = timeout
        self.retries = retries
        self.link_quiet = link_quiet
        self._seq = 0
        self._decoder = FrameDecoder(ANSWER_SYNC)
        self.stats = LinkStats()
        self._resident = {}     # byte address -> (bytes, digest) of an image run_job wrote
        self.info = LinkInfo.unpack(self.request(Command.INFO))
        from maskprop.host.runs import core_bench_offsets
        self._offsets = core_bench_offsets(register_map)
        magic = self.read_register(register_map.word("ID").offset)
        expected = register_map.field("magic").reset
        if magic != expected:
            raise DeviceError(f"the board's ID register reads {magic:#010x}, not a maskprop "
                              f"core's {expected:#010x}")

    # --- frames -------------------------------------------------------------------------------
    def request(self, command: Command, payload: bytes = b"", *, timeout: float | None = None,
                retry: bool = True) -> bytes:
        """Send one request and return its answer's payload; :class:`DeviceError` if the
        board answers an error, :class:`LinkTimeout` if it does not answer."""
        timeout = self.timeout if timeout is None else timeout
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            self._seq = (self._seq + 1) & 0xFF
            frame = encode(REQUEST_SYNC, command, self._seq, payload)
            started = time.monotonic()
            self.transport.write(frame)
            answer = self._answer(self._seq, timeout)
            self.stats.add(command, len(frame), 0 if answer is None else
                           HEADER_BYTES + len(answer.payload) + CRC_BYTES,
                           time.monotonic() - started)
            if answer is not None:
                if answer.kind != Status.OK:
                    raise DeviceError(f"{command.name} answered {_status_name(answer.kind)}")
                return answer.payload
            if attempt + 1 < attempts:
                time.sleep(self.link_quiet)
        raise LinkTimeout(f"no answer to {command.name} from {self.transport.name} within "
                          f"{timeout:g} s ({attempts} attempt{'s' if attempts > 1 else ''})")

    def _answer(self, seq: int, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            want = max(1, HEADER_BYTES + CRC_BYTES - self._decoder.pending)
            data = self.transport.read(want, left)
            try:
                frames = self._decoder.feed(data)
            except FrameError:
                continue                 # a damaged answer: as if none came (the retry asks)
            for frame in frames:
                if frame.seq == seq:
                    return frame

    # --- registers and memory -----------------------------------------------------------------
    def read_register(self, offset: int) -> int:
        return struct.unpack("<I", self.request(Command.REG_READ, struct.pack("<I", offset)))[0]

    def write_register(self, offset: int, value: int) -> None:
        self.request(Command.REG_WRITE, struct.pack("<II", offset, value))

    def write_memory(self, address: int, data: bytes) -> None:
        """``data`` into memory from byte ``address``; a partial first or last word keeps its
        other bytes (read first)."""
        self._forget(address, address + len(data))
        word = self.info.word_bytes
        start, end = address // word * word, -(-(address + len(data)) // word) * word
        if (start, end) != (address, address + len(data)):
            image = bytearray(self.read_memory(start, end - start))
            image[address - start:address - start + len(data)] = data
            data, address = bytes(image), start
        per_request = (self.info.max_payload - 4) // word
        for first in range(0, len(data) // word, per_request):
            chunk = data[first * word:(first + per_request) * word]
            self.request(Command.MEM_WRITE,
                         struct.pack("<I", address // word + first) + chunk)

    def read_memory(self, address: int, size: int) -> bytes:
        """``size`` bytes of memory from byte ``address``."""
        word = self.info.word_bytes
        start, end = address // word * word, -(-(address + size) // word) * word
        per_request = self.info.max_payload // word
        words = (end - start) // word
        image = b"".join(
            self.request(Command.MEM_READ, struct.pack("<IH", start // word + first,
                                                       min(per_request, words - first)))
            for first in range(0, words, per_request))
        return image[address - start:address - start + size]

    # --- passes -------------------------------------------------------------------------------
    def status(self) -> dict:
        from maskprop.host.runs import decode_status
        return decode_status(self.register_map, self.read_register(self._offsets["STATUS"]))

    def counters(self) -> dict:
        """The core's performance counters (``hw/core_registers.py``), from the last clear."""
        values = {}
        for name, offset in self._offsets["counters"]:
            low = self.read_register(offset)
            values[name] = low | self.read_register(offset + 4) << 32
        return values

    def run(self, budget_cycles: int, timeout: float | None = None) -> dict:
        """Start the pass the registers describe and wait for it (RUN): the decoded STATUS.
        ``budget_cycles``: the board's cycles to wait for the core's interrupt
        (``RUN_TIMEOUT`` after them; the pass may still be running: poll :meth:`status`).
        ``timeout``: the seconds the host waits for the answer (default: the device's, or
        longer for a large budget on a slow board: the caller knows its clock)."""
        offsets = self._offsets
        self.write_register(offsets["STATUS"], offsets["clear_mask"])      # w1c: done, error
        payload = self.request(Command.RUN, struct.pack("<I", budget_cycles), timeout=timeout,
                               retry=False)
        from maskprop.host.runs import decode_status
        status = decode_status(self.register_map, struct.unpack("<I", payload)[0])
        if status["error"]:
            raise DeviceError(f"the core stopped with error {status['error_code']}")
        return status

    def run_job(self, job, *, timeout: float | None = None) -> PassResult:
        """One pass (a :class:`~maskprop.host.core_driver.CoreJob` for this board's core):
        the tensors it reads (:attr:`~maskprop.host.core_driver.CoreJob.reads`) written to
        memory unless a pass before left the same image at the same address (this device
        remembers what it wrote until something overwrites it: :meth:`write_memory`, or the
        core's results), each command's registers written and run, the
        counters summed, the result read back and unpacked."""
        spec = job.bench_job(self.register_map)
        needed = job.memory_bytes
        have = self.info.memory_words * self.info.word_bytes
        if needed > have:
            raise DeviceError(f"{job.layer.name} {job.pass_name} needs {needed:,} bytes of the "
                              f"board's memory, which has {have:,}")
        # Only what the core reads (the forward pass's dZ, say, is laid out but never read),
        # and only if that image is not there already (a step's passes of a layer find A
        # where the pass before left it).
        reads = {job.bases[name] for name in job.reads}
        for address, image in spec["memory"]:
            held = (len(image), hashlib.blake2b(image, digest_size=16).digest())
            if address in reads and self._resident.get(address) != held:
                self.write_memory(address, image)
                self._resident[address] = held
        offsets = self._offsets
        totals, statuses = {}, []
        for writes in spec["commands"]:
            self.write_register(offsets["CONTROL"], 1 << offsets["clear_bit"])
            for offset, value in writes:
                self.write_register(offset, value)
            statuses.append(self.run(spec["timeout_cycles"], timeout=timeout))
            for name, value in self.counters().items():
                totals[name] = totals.get(name, 0) + value
        for name, low, high in spec["ranges"]:
            if name in ("out", "psum"):     # what the core wrote
                self._forget(low, high)
        address, size = spec["out"]
        return PassResult(job.result(self.read_memory(address, size)), totals, statuses)

    def _forget(self, low: int, high: int) -> None:
        """The images :meth:`run_job` left in ``[low, high)`` are no longer known to be
        there."""
        for address, (size, _) in list(self._resident.items()):
            if address < high and low < address + size:
                del self._resident[address]

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _status_name(kind: int) -> str:
    try:
        return Status(kind).name
    except ValueError:
        return f"status {kind:#04x}"
