"""The host link's reference model: what the board answers to each request, and what the
request does to its registers and memory (docs/host_link.md; the wire format is
:mod:`maskprop.device.protocol`'s). ``hw/host_link.py`` is held equal to it byte for byte; the
host library's simulated board answers through the RTL, not through this."""

import struct
from dataclasses import dataclass, field

from maskprop.device.protocol import (ANSWER_SYNC, CRC_BYTES, HEADER_BYTES, Command, LinkInfo,
                                      Status, crc16, encode)

__all__ = ["LinkModel"]


@dataclass
class LinkModel:
    """A board as the host sees it through the link.

    ``registers``: register address -> value (reads of an address not in it answer 0);
    ``bus_errors``: register addresses whose access the bus answers with an error;
    ``memory``: the memory's words; ``run_start``: the register write RUN starts the core with;
    ``run_status``: the register RUN answers; ``run_completes``: whether the core's interrupt
    comes within a RUN's budget (the bench decides it and tells the model)."""
    info: LinkInfo
    memory: list
    registers: dict = field(default_factory=dict)
    bus_errors: frozenset = frozenset()
    run_start: tuple = (0x20, 1)
    run_status: int = 0x24
    run_completes: bool = True

    def answer(self, status: Status, seq: int, payload: bytes = b"") -> bytes:
        return encode(ANSWER_SYNC, status, seq, payload)

    def truncated(self, received: bytes) -> bytes:
        """The answer to a frame that stopped after ``received`` (from its sync byte)."""
        seq = received[2] if len(received) > 2 else 0
        return self.answer(Status.TRUNCATED, seq)

    def request(self, frame: bytes) -> bytes:
        """The answer to ``frame`` (sync through CRC, or, when its length exceeds the buffer,
        its header), executing it if it is good."""
        kind, seq = frame[1], frame[2]
        length = struct.unpack_from("<H", frame, 3)[0]
        if length > self.info.max_payload:
            return self.answer(Status.BAD_LENGTH, seq)
        if len(frame) != HEADER_BYTES + length + CRC_BYTES:
            raise ValueError(f"a frame of length {length} has {len(frame)} bytes")
        if crc16(frame[1:]) != 0:
            return self.answer(Status.BAD_CRC, seq)
        payload = frame[HEADER_BYTES:HEADER_BYTES + length]
        status, reply = self._execute(kind, payload)
        return self.answer(status, seq, reply)

    def _execute(self, kind: int, payload: bytes):
        info, length = self.info, len(payload)
        word_bytes = info.word_bytes
        arg0 = int.from_bytes(payload[:4].ljust(4, b"\0"), "little")
        if kind == Command.INFO:
            return (Status.BAD_LENGTH, b"") if length else (Status.OK, info.pack())
        if kind in (Command.REG_READ, Command.REG_WRITE):
            if length != (4 if kind == Command.REG_READ else 8):
                return Status.BAD_LENGTH, b""
            if arg0 >= 1 << info.register_address_bits:
                return Status.BAD_ADDRESS, b""
            if arg0 in self.bus_errors:
                return Status.BUS_ERROR, b""
            if kind == Command.REG_READ:
                return Status.OK, struct.pack("<I", self.registers.get(arg0, 0))
            self.registers[arg0] = int.from_bytes(payload[4:8], "little")
            return Status.OK, b""
        if kind == Command.MEM_READ:
            words = int.from_bytes(payload[4:6], "little") if length == 6 else 0
            if length != 6 or not 1 <= words <= info.max_payload // word_bytes:
                return Status.BAD_LENGTH, b""
            if arg0 + words > info.memory_words:
                return Status.BAD_ADDRESS, b""
            return Status.OK, b"".join(self.memory[arg0 + k].to_bytes(word_bytes, "little")
                                       for k in range(words))
        if kind == Command.MEM_WRITE:
            if length < 4 + word_bytes or (length - 4) % word_bytes:
                return Status.BAD_LENGTH, b""
            words = (length - 4) // word_bytes
            if arg0 + words > info.memory_words:
                return Status.BAD_ADDRESS, b""
            for k in range(words):
                chunk = payload[4 + k * word_bytes:4 + (k + 1) * word_bytes]
                self.memory[arg0 + k] = int.from_bytes(chunk, "little")
            return Status.OK, b""
        if kind == Command.RUN:
            if length != 4:
                return Status.BAD_LENGTH, b""
            address, value = self.run_start
            if address in self.bus_errors:
                return Status.BUS_ERROR, b""
            self.registers[address] = value
            if not self.run_completes:
                return Status.RUN_TIMEOUT, b""
            if self.run_status in self.bus_errors:
                return Status.BUS_ERROR, b""
            return Status.OK, struct.pack("<I", self.registers.get(self.run_status, 0))
        return Status.UNKNOWN_COMMAND, b""
