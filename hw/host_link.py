"""HostLink: the board's end of the host link (docs/host_link.md): framed requests in from a
byte stream (the UART), each checked, executed on the core's register bus and memory, and
answered; the wire format is :mod:`maskprop.device.protocol`'s."""

import struct

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from maskprop.base.config import ceil_log2, check_range
from maskprop.device.protocol import (ANSWER_SYNC, INFO_FORMAT, REQUEST_SYNC, VERSION, Command,
                                      LinkInfo, Status)
from maskprop.hw.axi import AXI4LiteSignature
from maskprop.hw.axi_ram import HostPortSignature

__all__ = ["HostLink"]

#: The largest request payload the protocol's 16-bit length can carry.
MAX_PAYLOAD = 0xFFFF


def _crc16_update(crc, byte):
    """CRC-16/CCITT-FALSE's register after ``byte`` (MSB first, polynomial 0x1021)."""
    for bit in reversed(range(8)):
        feedback = crc[15] ^ byte[bit]
        crc = (crc << 1)[:16] ^ Mux(feedback, 0x1021, 0)
    return crc


class HostLink(wiring.Component):
    """Requests in, answers out: one frame at a time, each answered before the next is read.

    Every request is received whole and its CRC checked before anything is done: a memory
    write's words wait in a buffer of ``max_payload`` bytes until then. A frame whose length
    exceeds the buffer is answered ``BAD_LENGTH`` at once and the rest of it dropped (until the
    line has been quiet for ``timeout`` cycles); a frame that stops for ``timeout`` cycles is
    answered ``TRUNCATED``; a bad CRC ``BAD_CRC``; none of them is executed. Bytes that arrive
    while a request executes or its answer is sent are dropped (the host waits for each answer;
    docs/host_link.md). Nothing the host sends can stop the link: every state but the wait for
    the first byte of a frame ends by itself (RUN after its budget of cycles).

    Parameters
    ----------
    csr_addr_width : int
        Byte address bits of the register bus, 2..32. A register address at or beyond
        ``2**csr_addr_width`` is answered ``BAD_ADDRESS``.
    word_bytes : int
        Bytes of a memory word (the memory port's width), a power of two 1..128.
    memory_words : int
        Words of memory, 1 .. 2**32; ``mem.addr`` has ``ceil(log2(memory_words))`` bits.
    max_payload : int
        The request buffer's bytes (the largest request payload, and the largest MEM_READ
        answer), at least ``8 + word_bytes`` (a register write; a one-word memory write), at
        most 65,535.
    timeout : int
        Cycles without a byte after which a frame is abandoned, 16 .. 2**32 - 1. Choose a few
        character times of the UART (the host sends a frame's bytes back to back).
    run_start : (int, int)
        The register address and value RUN writes to start the core.
    run_status : int
        The register RUN reads after the interrupt, and answers.
    mem_read_latency : int
        Cycles from a read on ``mem`` to its word on ``mem.rdata``, 1..8 (2 for
        :class:`~maskprop.hw.core_system.CoreSystem`'s backdoor).

    ``ValueError`` naming the parameter and its range for anything else.

    Ports
    -----
    i : In(stream.Signature(8))
        Request bytes (from :class:`~maskprop.hw.uart.UartRx`); always taken.
    o : Out(stream.Signature(8))
        Answer bytes (to :class:`~maskprop.hw.uart.UartTx`); any backpressure.
    csr : Out(AXI4LiteSignature(addr_width=csr_addr_width, data_width=32))
        Manager of the register bus: one transaction at a time, all byte strobes.
    mem : Out(HostPortSignature(addr_width=..., data_width=8 * word_bytes))
        The memory's word port (a host of :class:`~maskprop.hw.axi_ram.AxiRam`'s backdoor).
    irq : In(1)
        The core's interrupt, a level; RUN waits for it.
    idle : Out(1)
        Waiting for the first byte of a request (nothing received, executing or answering).

    Latency and throughput
    ----------------------
    A request is checked in the cycle after its last CRC byte; an answer's first byte is
    offered from the cycle after the request is executed (INFO, errors: at once; a register
    access: its bus transaction; MEM_WRITE: ``2 * word_bytes + 1`` cycles a word). Answer
    bytes go out one a cycle while ``o`` takes them, with ``mem_read_latency + 1`` cycles
    before each word of a MEM_READ. The UART's character time (``10 * divisor`` cycles) is
    far longer than any of these.
    """

    def __init__(self, *, csr_addr_width: int, word_bytes: int, memory_words: int,
                 max_payload: int = 1024, timeout: int = 1 << 20, run_start=(0x20, 1),
                 run_status: int = 0x24, mem_read_latency: int = 1):
        self._csr_addr_width = check_range("csr_addr_width", csr_addr_width, 2, 32)
        if word_bytes not in tuple(1 << k for k in range(8)):
            raise ValueError(f"word_bytes must be a power of two in [1, 128], not {word_bytes!r}")
        self._word_bytes = word_bytes
        self._memory_words = check_range("memory_words", memory_words, 1, 1 << 32)
        self._max_payload = check_range("max_payload", max_payload, 8 + word_bytes, MAX_PAYLOAD)
        self._timeout = check_range("timeout", timeout, 16, (1 << 32) - 1)
        start_addr, start_value = run_start
        check_range("run_start address", start_addr, 0, (1 << csr_addr_width) - 1)
        check_range("run_start value", start_value, 0, (1 << 32) - 1)
        self._run_start = (start_addr, start_value)
        self._run_status = check_range("run_status", run_status, 0, (1 << csr_addr_width) - 1)
        self._mem_read_latency = check_range("mem_read_latency", mem_read_latency, 1, 8)
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "csr": Out(AXI4LiteSignature(addr_width=csr_addr_width, data_width=32)),
            "mem": Out(HostPortSignature(addr_width=self.mem_addr_width,
                                         data_width=8 * word_bytes)),
            "irq": In(1),
            "idle": Out(1),
        })

    word_bytes = property(lambda self: self._word_bytes)
    memory_words = property(lambda self: self._memory_words)
    max_payload = property(lambda self: self._max_payload)
    timeout = property(lambda self: self._timeout)
    mem_read_latency = property(lambda self: self._mem_read_latency)
    mem_addr_width = property(lambda self: max(1, ceil_log2(self._memory_words)),
                              doc="Bits of ``mem.addr``.")

    @property
    def info(self) -> LinkInfo:
        """What the INFO command answers."""
        return LinkInfo(VERSION, self._word_bytes, self._memory_words, self._max_payload,
                        self._csr_addr_width)

    def elaborate(self, platform):
        m = Module()
        word_bytes = self._word_bytes
        word_shift = exact_log2(word_bytes)
        reply_bytes = max(word_bytes, INFO_FORMAT.size)

        buffer = memory.Memory(shape=8, depth=self._max_payload, init=[])
        m.submodules.buffer = buffer
        buffer_write = buffer.write_port()
        buffer_read = buffer.read_port()

        byte = self.i.payload
        took = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(1)

        # The request.
        kind = Signal(8)
        seq = Signal(8)
        length = Signal(16)
        count = Signal(16)                  # payload bytes received, or answer bytes sent
        rx_crc = Signal(16)
        arg0 = Signal(32)                   # payload bytes 0..3
        arg1 = Signal(32)                   # payload bytes 4..7
        idle = Signal(range(self._timeout + 1))
        timed_out = idle == self._timeout
        with m.If(took):
            m.d.sync += idle.eq(0)
        with m.Elif(~timed_out):
            m.d.sync += idle.eq(idle + 1)

        # The answer.
        status = Signal(8)
        answer_length = Signal(16)
        reply = Signal(8 * reply_bytes)     # answer payload, sent from its low byte
        from_memory = Signal()              # the payload is words read from memory
        discard = Signal()                  # after the answer, drop bytes until quiet
        tx_crc = Signal(16)

        # Execution.
        word_addr = Signal(33)
        words_left = Signal(17)
        word = Signal(8 * word_bytes)
        byte_in_word = Signal(range(word_bytes + 1))
        read_pointer = Signal(16)
        wait = Signal(range(self._mem_read_latency + 1))
        running = Signal()                  # the register access is RUN's
        aw_done = Signal()
        w_done = Signal()
        budget = Signal(32)

        payload_words = (length - 4) >> word_shift
        read_words = arg1[:16]
        start_addr, start_value = self._run_start

        def answer(m, code, payload_length=0, *, discard_after=False):
            m.d.sync += [status.eq(code), answer_length.eq(payload_length),
                         discard.eq(discard_after), count.eq(0)]
            m.next = "A_SYNC"

        def fail(m, code):
            answer(m, code)
            m.d.sync += from_memory.eq(0)

        with m.FSM() as fsm:
            m.d.comb += self.idle.eq(fsm.ongoing("HUNT"))
            # --- receive a request --------------------------------------------------------
            with m.State("HUNT"):
                with m.If(took & (byte == REQUEST_SYNC)):
                    m.d.sync += [rx_crc.eq(0xFFFF), seq.eq(0), arg0.eq(0), arg1.eq(0),
                                 running.eq(0), from_memory.eq(0)]
                    m.next = "KIND"

            def frame_byte(state, after, target=None):
                """A state that takes one byte of the frame into the CRC (and ``target``)."""
                with m.State(state):
                    with m.If(took):
                        m.d.sync += rx_crc.eq(_crc16_update(rx_crc, byte))
                        if target is not None:
                            m.d.sync += target.eq(byte)
                        m.next = after
                    with m.Elif(timed_out):
                        fail(m, Status.TRUNCATED)

            frame_byte("KIND", "SEQ", kind)
            frame_byte("SEQ", "LENGTH0", seq)
            frame_byte("LENGTH0", "LENGTH1", length[:8])
            with m.State("LENGTH1"):
                with m.If(took):
                    whole = Signal(16)
                    m.d.comb += whole.eq(Cat(length[:8], byte))
                    m.d.sync += [length[8:].eq(byte), rx_crc.eq(_crc16_update(rx_crc, byte)),
                                 count.eq(0)]
                    with m.If(whole > self._max_payload):
                        answer(m, Status.BAD_LENGTH, discard_after=True)
                    with m.Elif(whole == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
                with m.Elif(timed_out):
                    fail(m, Status.TRUNCATED)
            with m.State("PAYLOAD"):
                m.d.comb += [buffer_write.addr.eq(count), buffer_write.data.eq(byte)]
                with m.If(took):
                    m.d.comb += buffer_write.en.eq(1)
                    m.d.sync += [rx_crc.eq(_crc16_update(rx_crc, byte)), count.eq(count + 1)]
                    with m.If(count < 4):
                        m.d.sync += arg0.word_select(count[:2], 8).eq(byte)
                    with m.Elif(count < 8):
                        m.d.sync += arg1.word_select(count[:2], 8).eq(byte)
                    with m.If(count == length - 1):
                        m.next = "CRC0"
                with m.Elif(timed_out):
                    fail(m, Status.TRUNCATED)
            frame_byte("CRC0", "CRC1")
            frame_byte("CRC1", "CHECK")

            # --- check and decode ---------------------------------------------------------
            with m.State("CHECK"):
                m.d.sync += [word_addr.eq(arg0), byte_in_word.eq(0), read_pointer.eq(4)]
                with m.If(rx_crc != 0):
                    fail(m, Status.BAD_CRC)
                with m.Elif(kind == Command.INFO):
                    with m.If(length != 0):
                        fail(m, Status.BAD_LENGTH)
                    with m.Else():
                        info = int.from_bytes(self.info.pack(), "little")
                        m.d.sync += reply.eq(info)
                        answer(m, Status.OK, INFO_FORMAT.size)
                with m.Elif((kind == Command.REG_READ) | (kind == Command.REG_WRITE)):
                    with m.If(length != Mux(kind == Command.REG_READ, 4, 8)):
                        fail(m, Status.BAD_LENGTH)
                    with m.Elif(arg0 >= (1 << self._csr_addr_width)):
                        fail(m, Status.BAD_ADDRESS)
                    with m.Elif(kind == Command.REG_READ):
                        m.next = "CSR_READ"
                    with m.Else():
                        m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                        m.next = "CSR_WRITE"
                with m.Elif(kind == Command.MEM_READ):
                    with m.If((length != 6) | (read_words == 0) |
                              (read_words > self._max_payload // word_bytes)):
                        fail(m, Status.BAD_LENGTH)
                    with m.Elif(arg0 + read_words > self._memory_words):
                        fail(m, Status.BAD_ADDRESS)
                    with m.Else():
                        m.d.sync += [from_memory.eq(1), words_left.eq(read_words)]
                        answer(m, Status.OK, read_words << word_shift)
                with m.Elif(kind == Command.MEM_WRITE):
                    misfit = (length - 4)[:word_shift] != 0 if word_shift else Const(0)
                    with m.If((length < 4 + word_bytes) | misfit):
                        fail(m, Status.BAD_LENGTH)
                    with m.Elif(arg0 + payload_words > self._memory_words):
                        fail(m, Status.BAD_ADDRESS)
                    with m.Else():
                        m.d.sync += words_left.eq(payload_words)
                        m.next = "MEM_FETCH"
                with m.Elif(kind == Command.RUN):
                    with m.If(length != 4):
                        fail(m, Status.BAD_LENGTH)
                    with m.Else():
                        m.d.sync += [running.eq(1), budget.eq(arg0), aw_done.eq(0),
                                     w_done.eq(0)]
                        m.next = "CSR_WRITE"
                with m.Else():
                    fail(m, Status.UNKNOWN_COMMAND)

            # --- the register bus: one write or one read ----------------------------------
            with m.State("CSR_WRITE"):
                m.d.comb += [
                    self.csr.awaddr.eq(Mux(running, start_addr, arg0)),
                    self.csr.wdata.eq(Mux(running, start_value, arg1)),
                    self.csr.wstrb.eq(0b1111),
                    self.csr.awvalid.eq(~aw_done),
                    self.csr.wvalid.eq(~w_done),
                    self.csr.bready.eq(aw_done & w_done),
                ]
                with m.If(self.csr.awvalid & self.csr.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(self.csr.wvalid & self.csr.wready):
                    m.d.sync += w_done.eq(1)
                with m.If(self.csr.bready & self.csr.bvalid):
                    with m.If(self.csr.bresp != 0):
                        fail(m, Status.BUS_ERROR)
                    with m.Elif(running):
                        m.next = "RUN_WAIT"
                    with m.Else():
                        answer(m, Status.OK)
            with m.State("CSR_READ"):
                m.d.comb += [self.csr.araddr.eq(Mux(running, self._run_status, arg0)),
                             self.csr.arvalid.eq(1)]
                with m.If(self.csr.arready):
                    m.next = "CSR_READ_DATA"
            with m.State("CSR_READ_DATA"):
                m.d.comb += self.csr.rready.eq(1)
                with m.If(self.csr.rvalid):
                    with m.If(self.csr.rresp != 0):
                        fail(m, Status.BUS_ERROR)
                    with m.Else():
                        m.d.sync += reply.eq(self.csr.rdata)
                        answer(m, Status.OK, 4)

            # --- RUN: wait for the interrupt, then read the status ------------------------
            with m.State("RUN_WAIT"):
                m.d.sync += budget.eq(budget - 1)
                with m.If(self.irq):
                    m.next = "CSR_READ"
                with m.Elif(budget == 0):
                    fail(m, Status.RUN_TIMEOUT)

            # --- MEM_WRITE: the buffer's bytes into words, each word into memory ----------
            with m.State("MEM_FETCH"):
                m.d.comb += [buffer_read.addr.eq(read_pointer), buffer_read.en.eq(1)]
                m.d.sync += read_pointer.eq(read_pointer + 1)
                m.next = "MEM_GATHER"
            with m.State("MEM_GATHER"):
                m.d.sync += [word.eq(Cat(word[8:], buffer_read.data)),
                             byte_in_word.eq(byte_in_word + 1)]
                with m.If(byte_in_word == word_bytes - 1):
                    m.next = "MEM_STORE"
                with m.Else():
                    m.next = "MEM_FETCH"
            with m.State("MEM_STORE"):
                m.d.comb += [self.mem.en.eq(1), self.mem.we.eq(1), self.mem.addr.eq(word_addr),
                             self.mem.wdata.eq(word)]
                m.d.sync += [word_addr.eq(word_addr + 1), words_left.eq(words_left - 1),
                             byte_in_word.eq(0)]
                with m.If(words_left == 1):
                    answer(m, Status.OK)
                with m.Else():
                    m.next = "MEM_FETCH"

            # --- the answer ---------------------------------------------------------------
            with m.State("A_SYNC"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(ANSWER_SYNC)]
                with m.If(self.o.ready):
                    m.d.sync += tx_crc.eq(0xFFFF)
                    m.next = "A_STATUS"
            for state, value, after in (("A_STATUS", status, "A_SEQ"),
                                        ("A_SEQ", seq, "A_LENGTH0"),
                                        ("A_LENGTH0", answer_length[:8], "A_LENGTH1")):
                with m.State(state):
                    m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(value)]
                    with m.If(self.o.ready):
                        m.d.sync += tx_crc.eq(_crc16_update(tx_crc, value))
                        m.next = after
            with m.State("A_LENGTH1"):
                value = answer_length[8:]
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(value)]
                with m.If(self.o.ready):
                    m.d.sync += [tx_crc.eq(_crc16_update(tx_crc, value)), byte_in_word.eq(0)]
                    with m.If(answer_length == 0):
                        m.next = "A_CRC0"
                    with m.Elif(from_memory):
                        m.next = "A_READ"
                    with m.Else():
                        m.next = "A_PAYLOAD"
            with m.State("A_READ"):
                m.d.comb += [self.mem.en.eq(1), self.mem.addr.eq(word_addr)]
                m.d.sync += [word_addr.eq(word_addr + 1), words_left.eq(words_left - 1),
                             wait.eq(self._mem_read_latency - 1)]
                m.next = "A_READ_WAIT"
            with m.State("A_READ_WAIT"):
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 0):
                    m.d.sync += reply.eq(self.mem.rdata)
                    m.next = "A_PAYLOAD"
            with m.State("A_PAYLOAD"):
                value = reply[:8]
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(value)]
                with m.If(self.o.ready):
                    m.d.sync += [tx_crc.eq(_crc16_update(tx_crc, value)), count.eq(count + 1),
                                 reply.eq(reply >> 8), byte_in_word.eq(byte_in_word + 1)]
                    with m.If(count == answer_length - 1):
                        m.next = "A_CRC0"
                    with m.Elif(from_memory & (byte_in_word == word_bytes - 1)):
                        m.d.sync += byte_in_word.eq(0)
                        m.next = "A_READ"
            with m.State("A_CRC0"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(tx_crc[8:])]
                with m.If(self.o.ready):
                    m.next = "A_CRC1"
            with m.State("A_CRC1"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(tx_crc[:8])]
                with m.If(self.o.ready):
                    with m.If(discard):
                        m.next = "DISCARD"
                    with m.Else():
                        m.next = "HUNT"
            with m.State("DISCARD"):
                # The rest of a frame too long to take: dropped until the line is quiet.
                with m.If(timed_out):
                    m.next = "HUNT"
        return m
