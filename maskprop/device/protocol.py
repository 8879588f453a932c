"""The host link's wire format (docs/host_link.md): framed requests from the host, one framed
answer from the board for each. The hardware (``hw/host_link.py``) and the host library
(:mod:`maskprop.device`) both take their constants from here.

A frame is ``sync, kind, seq, length (2 bytes, little-endian), payload (length bytes), crc (2
bytes, big-endian)``: a request's ``sync`` is :data:`REQUEST_SYNC` and its ``kind`` a
:class:`Command`; an answer's ``sync`` is :data:`ANSWER_SYNC` and its ``kind`` a
:class:`Status`, with the request's ``seq``. The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021,
initial value 0xFFFF, not reflected, no final XOR; Python's ``binascii.crc_hqx(data, 0xFFFF)``)
over ``kind`` through the payload. Multi-byte numbers in payloads are little-endian; memory is
addressed in words of the memory port's width (``word_bytes``, the bytes of a word in memory
order).
"""

import binascii
import enum
import struct
from dataclasses import dataclass

__all__ = ["REQUEST_SYNC", "ANSWER_SYNC", "VERSION", "HEADER_BYTES", "CRC_BYTES", "Command",
           "Status", "Frame", "LinkInfo", "crc16", "encode", "FrameDecoder", "FrameError",
           "INFO_FORMAT"]

REQUEST_SYNC = 0xA5
ANSWER_SYNC = 0x5A
#: The protocol's version, the first byte of the INFO answer.
VERSION = 1
#: ``sync, kind, seq, length`` before the payload.
HEADER_BYTES = 5
CRC_BYTES = 2
#: The INFO answer: version, word_bytes, memory_words, max_payload, register address bits.
INFO_FORMAT = struct.Struct("<BHIHB")


class Command(enum.IntEnum):
    """A request's kind and its payload (answer payload after the arrow)."""
    #: nothing -> :data:`INFO_FORMAT`.
    INFO = 0x00
    #: register byte address (u32) -> its value (u32).
    REG_READ = 0x01
    #: register byte address (u32), value (u32) -> nothing.
    REG_WRITE = 0x02
    #: first word address (u32), words (u16, at least 1) -> the words.
    MEM_READ = 0x03
    #: first word address (u32), then the words (at least one) -> nothing.
    MEM_WRITE = 0x04
    #: cycle budget (u32): start the core's pass, wait for its interrupt -> STATUS (u32).
    RUN = 0x05


class Status(enum.IntEnum):
    """An answer's kind. Every status but OK has an empty payload, and nothing was done."""
    OK = 0x00
    #: The frame's CRC did not match.
    BAD_CRC = 0x01
    #: The length is larger than the link's buffer (answered at once; the rest of the frame
    #: is dropped), or wrong for the command, or a memory access is longer than the buffer.
    BAD_LENGTH = 0x02
    UNKNOWN_COMMAND = 0x03
    #: The frame stopped before its end for longer than the link's timeout.
    TRUNCATED = 0x04
    #: A memory access beyond the memory.
    BAD_ADDRESS = 0x05
    #: The register bus answered an error (SLVERR or DECERR); for RUN, the start's write.
    BUS_ERROR = 0x06
    #: RUN: no interrupt within the budget; the pass may still be running.
    RUN_TIMEOUT = 0x07


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data``."""
    return binascii.crc_hqx(bytes(data), 0xFFFF)


@dataclass(frozen=True)
class Frame:
    """A decoded frame: ``kind`` (a :class:`Command` or :class:`Status` value), ``seq`` and
    ``payload``."""
    kind: int
    seq: int
    payload: bytes = b""


@dataclass(frozen=True)
class LinkInfo:
    """The INFO answer: what the board's link and memory are."""
    version: int
    word_bytes: int
    memory_words: int
    max_payload: int
    register_address_bits: int

    @classmethod
    def unpack(cls, payload: bytes) -> "LinkInfo":
        if len(payload) != INFO_FORMAT.size:
            raise FrameError(f"INFO answer of {len(payload)} bytes, expected {INFO_FORMAT.size}")
        return cls(*INFO_FORMAT.unpack(payload))

    def pack(self) -> bytes:
        return INFO_FORMAT.pack(self.version, self.word_bytes, self.memory_words,
                                self.max_payload, self.register_address_bits)


def encode(sync: int, kind: int, seq: int, payload: bytes = b"") -> bytes:
    """The frame's bytes."""
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"seq must be in [0, 255], not {seq}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload must be at most 65535 bytes, not {len(payload)}")
    body = bytes([kind, seq]) + struct.pack("<H", len(payload)) + bytes(payload)
    return bytes([sync]) + body + struct.pack(">H", crc16(body))


class FrameError(ValueError):
    """Bytes that are not a frame of the expected kind."""


class FrameDecoder:
    """Frames from a byte stream that starts with ``sync``: feed bytes, take frames. Bytes
    before a ``sync`` are skipped (and counted in :attr:`skipped`); a frame whose CRC does not
    match raises :class:`FrameError`."""

    def __init__(self, sync: int):
        self.sync = sync
        self.skipped = 0
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while True:
            start = self._buffer.find(bytes([self.sync]))
            if start < 0:
                self.skipped += len(self._buffer)
                self._buffer.clear()
                return frames
            self.skipped += start
            del self._buffer[:start]
            if len(self._buffer) < HEADER_BYTES:
                return frames
            length = struct.unpack_from("<H", self._buffer, 3)[0]
            end = HEADER_BYTES + length + CRC_BYTES
            if len(self._buffer) < end:
                return frames
            frame = bytes(self._buffer[:end])
            del self._buffer[:end]
            if crc16(frame[1:]) != 0:
                raise FrameError(f"frame with a bad CRC: {frame.hex()}")
            frames.append(Frame(frame[1], frame[2], frame[HEADER_BYTES:-CRC_BYTES]))

    @property
    def pending(self) -> int:
        """Bytes received that are not yet a whole frame."""
        return len(self._buffer)
