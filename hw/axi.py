"""AXI4 and AXI4-Lite interfaces (AMBA AXI and ACE Protocol Specification, ARM IHI 0022, issue
H: chapter A2 for the signals, B1 for AXI4-Lite), as Amaranth wiring signatures.

The members carry the specification's lower-case signal names without the interface prefix, so
a port ``m_axi`` of a component appears in the generated Verilog as ``m_axi__awaddr``,
``m_axi__awvalid`` and so on: cocotbext-axi finds them with the prefix ``"m_axi_"``
(``AxiBus.from_prefix(dut, "m_axi_")``), and an SoC integrator maps them one to one.

Flows are the manager's (master's): ``Out`` is driven by the manager. A subordinate (slave)
port is ``In(AXI4Signature(...))`` (the flipped signature). Only the signals maskprop drives
or needs are members; the optional ones an interconnect may want are tied off by the
component that owns the port: ``*lock`` 0 (normal access), ``*cache`` 0b0011 (normal,
non-cacheable, bufferable: what Xilinx and Intel interconnects expect from a DMA engine),
``*prot`` 0 (unprivileged, secure, data).
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import check_range

__all__ = ["AXI4LiteSignature", "AXI4Signature", "RESP_OKAY", "RESP_EXOKAY", "RESP_SLVERR",
           "RESP_DECERR", "BURST_FIXED", "BURST_WRAP", "CACHE_NORMAL_BUFFERABLE",
           "BURST_INCR", "MAX_BURST_BEATS", "BOUNDARY_BYTES"]

RESP_OKAY, RESP_EXOKAY, RESP_SLVERR, RESP_DECERR = 0, 1, 2, 3
BURST_FIXED, BURST_INCR, BURST_WRAP = 0, 1, 2
#: AXI4 INCR bursts: at most 256 beats (``AxLEN`` = beats - 1, 8 bits; A3.4.1).
MAX_BURST_BEATS = 256
#: A burst must not cross a 4 KiB address boundary (A3.4.1).
BOUNDARY_BYTES = 4096
#: ``AxCACHE`` of a normal, non-cacheable, bufferable access (A4.4).
CACHE_NORMAL_BUFFERABLE = 0b0011


def _check_data_width(name: str, width: int, allowed) -> int:
    if width not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))} bits, not {width!r}")
    return width


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite, manager's view: five channels, no bursts, no IDs, every beat a whole word.

    Parameters
    ----------
    addr_width : int
        Byte address bits, 1..64.
    data_width : int
        32 or 64 bits (B1.1).
    """

    def __init__(self, *, addr_width: int = 32, data_width: int = 32):
        self.addr_width = check_range("addr_width", addr_width, 1, 64)
        self.data_width = _check_data_width("data_width", data_width, (32, 64))
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8),
            "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    def __eq__(self, other):
        return (type(other) is type(self) and other.addr_width == self.addr_width and
                other.data_width == self.data_width)

    def __repr__(self):
        return f"AXI4LiteSignature(addr_width={self.addr_width}, data_width={self.data_width})"


class AXI4Signature(wiring.Signature):
    """AXI4 with INCR bursts, manager's view.

    Parameters
    ----------
    addr_width : int
        Byte address bits, 12..64 (at least one 4 KiB page).
    data_width : int
        Bus width in bits, a power of two from 8 to 1024 (A1.3).
    id_width : int
        Transaction ID bits, 1..16.
    """

    def __init__(self, *, addr_width: int = 32, data_width: int = 64, id_width: int = 1):
        self.addr_width = check_range("addr_width", addr_width, 12, 64)
        self.data_width = _check_data_width("data_width", data_width,
                                            tuple(8 << k for k in range(8)))
        self.id_width = check_range("id_width", id_width, 1, 16)
        strb = data_width // 8
        super().__init__({
            "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(8), "awsize": Out(3),
            "awburst": Out(2), "awlock": Out(1), "awcache": Out(4), "awprot": Out(3),
            "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(strb), "wlast": Out(1),
            "wvalid": Out(1), "wready": In(1),
            "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(8), "arsize": Out(3),
            "arburst": Out(2), "arlock": Out(1), "arcache": Out(4), "arprot": Out(3),
            "arvalid": Out(1), "arready": In(1),
            "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
        })

    @property
    def bytes_per_beat(self) -> int:
        return self.data_width // 8

    def __eq__(self, other):
        return (type(other) is type(self) and other.addr_width == self.addr_width and
                other.data_width == self.data_width and other.id_width == self.id_width)

    def __repr__(self):
        return (f"AXI4Signature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"id_width={self.id_width})")
