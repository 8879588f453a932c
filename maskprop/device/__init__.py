"""The host side of a maskprop board (docs/host_link.md): :class:`Device`, one API for a board's
registers, memory, passes and counters, over a serial port (:class:`SerialTransport`) or the
Verilator simulation of the board's top level (:class:`SimulatedBoard`); the link's wire format
is :mod:`maskprop.device.protocol`'s."""

from maskprop.device.board import Device, DeviceError, LinkTimeout, PassResult
from maskprop.device.transport import SerialTransport, SimulatedBoard, Transport, TransportError

__all__ = ["Device", "DeviceError", "LinkTimeout", "PassResult", "SerialTransport",
           "SimulatedBoard", "Transport", "TransportError"]
