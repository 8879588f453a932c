"""maskprop.device on the simulated board (hw/board_top.py on Verilator, UART included): the
whole host link end to end - INFO, registers (and the bus's errors), memory at any alignment
across several frames, corrupted, truncated and oversized frames answered with errors and
never executed, a host timeout that recovers, and a pass of a layer run through the link,
bit-exact against the golden model with the core's counters. Seeds print and rerun with
MASKPROP_SEED."""

import struct

import numpy as np
import pytest

from maskprop.base.config import Config, CoreConfig
from maskprop.device.board import Device, DeviceError, LinkTimeout
from maskprop.device.protocol import (ANSWER_SYNC, REQUEST_SYNC, Command, FrameDecoder, Status,
                                      encode)
from maskprop.device.transport import SimulatedBoard, SerialTransport, TransportError
from maskprop.host.core_driver import CoreJob
from maskprop.hw.board_top import BoardTop
from maskprop.sim.layer import ConvLayer
from maskprop.tb.stimulus import random_conv_tensors, seed_from_env

pytestmark = pytest.mark.sim

# The small core of tests/test_core_fast.py: a short build.
CORE = CoreConfig(Config(vec=16, lanes=4, tiles=4, col_block=8, max_chunks=64, max_cols=32),
                  x_words=1024, row_block_chunks=32)
#: A short link timeout (50 characters), so that the tests of truncated frames are quick.
TOP = dict(memory_words=4096, divisor=4, timeout_characters=50)


@pytest.fixture(scope="module")
def top():
    return BoardTop(CORE, **TOP)


@pytest.fixture
def device(top):
    with SimulatedBoard(top) as board:
        yield Device(board, top.register_map, timeout=30, link_quiet=0.05)


def answers(board, count, timeout=30):
    """The next ``count`` answer frames from ``board``."""
    decoder, frames = FrameDecoder(ANSWER_SYNC), []
    while len(frames) < count:
        data = board.read(1, timeout)
        assert data, f"no answer within {timeout} s"
        frames += decoder.feed(data)
    return frames


def test_info_registers_and_bus_errors(device, top):
    assert device.info == top.info
    offsets = top.register_map
    base = offsets.word("A_BASE").offset
    device.write_register(base, 0x1240)
    assert device.read_register(base) == 0x1240
    with pytest.raises(DeviceError, match="REG_READ answered BUS_ERROR"):
        device.read_register(0xFC)                     # unmapped: the core answers SLVERR
    with pytest.raises(DeviceError, match="REG_WRITE answered BAD_ADDRESS"):
        device.write_register(1 << top.register_map.addr_width, 0)
    assert device.status()["error"] == 0


def test_memory_at_any_alignment_across_frames(device, top):
    seed = seed_from_env(default=61)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = np.random.default_rng(seed)
    word = top.info.word_bytes
    for address, size in ((0, word), (5, 3), (word - 1, 2 * top.info.max_payload + 7),
                          (4096 * word - 40, 40)):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        before = device.read_memory(address - address % word, word)
        device.write_memory(address, data)
        assert device.read_memory(address, size) == data
        # The bytes of the first word before address are kept.
        head = address % word
        assert device.read_memory(address - head, head) == before[:head]
    with pytest.raises(DeviceError, match="MEM_READ answered BAD_ADDRESS"):
        device.read_memory(4096 * word, 1)


def test_broken_frames_are_answered_and_never_executed(device, top):
    board = device.transport
    base = top.register_map.word("W_BASE").offset
    device.write_register(base, 0x100)
    good = encode(REQUEST_SYNC, Command.REG_WRITE, 7, struct.pack("<II", base, 0x200))
    corrupt = bytearray(good)
    corrupt[8] ^= 0x10                                  # a payload bit
    board.write(bytes(corrupt))
    [answer] = answers(board, 1)
    assert (answer.kind, answer.seq) == (Status.BAD_CRC, 7)
    board.write(good[:9])                               # stops in the payload
    [answer] = answers(board, 1)
    assert (answer.kind, answer.seq) == (Status.TRUNCATED, 7)
    oversized = encode(REQUEST_SYNC, Command.MEM_WRITE, 8, bytes(top.info.max_payload + 1))
    board.write(oversized)
    [answer] = answers(board, 1)
    assert (answer.kind, answer.seq) == (Status.BAD_LENGTH, 8)
    board.read(1 << 16, 0.5)                            # the link drops the rest, then listens
    assert device.read_register(base) == 0x100          # none of them was executed
    board.write(encode(REQUEST_SYNC, 0x42, 9))
    [answer] = answers(board, 1)
    assert (answer.kind, answer.seq) == (Status.UNKNOWN_COMMAND, 9)


def prefix_next_write(board, prefix: bytes) -> None:
    """Send ``prefix`` in front of the next request, in the same write: the board receives
    both back to back, however late the host's request comes (the link's timeout runs on the
    board's clock, which runs freely while a frame is open, so a prefix written on its own
    could time out before the request arrives, and the request would then be answered)."""
    write = board.write

    def joined(data):
        board.write = write
        write(prefix + data)
    board.write = joined


def test_a_host_timeout_recovers(device, top):
    """A frame cut short swallows the next request's bytes; the host hears nothing for its
    request, waits for the link's timeout and sends it again."""
    board = device.transport
    cut = encode(REQUEST_SYNC, Command.MEM_WRITE, 200,
                 struct.pack("<I", 0) + bytes(top.info.word_bytes))[:10]
    device.timeout = 2.0
    base = top.register_map.word("DZ_BASE").offset
    prefix_next_write(board, cut)
    device.write_register(base, 0x300)
    assert device.read_register(base) == 0x300
    device.retries = 0
    prefix_next_write(board, cut)
    with pytest.raises(LinkTimeout, match="no answer to REG_READ"):
        device.read_register(base)


@pytest.mark.parametrize("pass_name", ["forward", "backward_data", "backward_weight"])
def test_a_pass_through_the_link_is_exact(device, pass_name):
    seed = seed_from_env(default=62)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = np.random.default_rng(seed)
    layer = ConvLayer(2, 5, 6, 6, 7, 3, 1, 1, "small")
    A, W, dZ = random_conv_tensors(rng, layer, 0.5)
    for dense in (False, True):
        job = CoreJob(layer, pass_name, CORE, A=A, W=W, dZ=dZ, dense=dense, shift=3)
        # Noise where the job's tensors go: run_job writes only what the core reads, so a
        # tensor it reads but run_job left out would show.
        extent = max(high for _, _, high in job.bench_job(device.register_map)["ranges"])
        device.write_memory(0, rng.integers(0, 256, extent, dtype=np.uint8).tobytes())
        done = device.run_job(job)
        np.testing.assert_array_equal(done.result, job.result(job.expected_image()))
        assert done.counters["cycles_busy"] > 0 and done.counters["macs"] > 0
        assert all(status["done"] for status in done.statuses)


def test_a_missing_serial_port_is_a_clear_error():
    with pytest.raises(TransportError, match="cannot open serial port /dev/nonexistent-maskprop"):
        SerialTransport("/dev/nonexistent-maskprop", 115200)


def test_a_pass_larger_than_the_boards_memory_is_refused_before_anything_is_sent(device):
    layer = ConvLayer(8, 16, 16, 16, 16, 3, 1, 1, "large")
    rng = np.random.default_rng(0)
    A, W, dZ = random_conv_tensors(rng, layer, 0.5)
    sent = device.stats.bytes_sent
    with pytest.raises(DeviceError, match=r"large forward needs [\d,]+ bytes of the board's "
                                          r"memory, which has 131,072"):
        device.run_job(CoreJob(layer, "forward", CORE, A=A, W=W, dZ=dZ))
    assert device.stats.bytes_sent == sent


def test_an_image_already_on_the_board_is_not_sent_again(device):
    """A step's passes of a layer share A at the same address: the second pass sends less,
    and still computes the golden result; a write over A makes the next pass send it again."""
    seed = seed_from_env(default=63)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = np.random.default_rng(seed)
    layer = ConvLayer(2, 5, 6, 6, 7, 3, 1, 1, "small")
    A, W, dZ = random_conv_tensors(rng, layer, 0.5)
    sent = []
    for pass_name in ("forward", "backward_weight", "backward_weight", "forward"):
        job = CoreJob(layer, pass_name, CORE, A=A, W=W, dZ=dZ, shift=3)
        if len(sent) == 3:
            device.write_memory(job.bases["a"], bytes(16))      # over A: sent again
        before = device.stats.bytes_sent
        done = device.run_job(job)
        sent.append(device.stats.bytes_sent - before)
        np.testing.assert_array_equal(done.result, job.result(job.expected_image()))
    a_bytes = len(CoreJob(layer, "forward", CORE, A=A, W=W, dZ=dZ).images()["a"])
    dz_bytes = len(CoreJob(layer, "forward", CORE, A=A, W=W, dZ=dZ).images()["dz"])
    assert dz_bytes < sent[1] < dz_bytes + a_bytes         # dZ sent, A kept
    assert sent[2] < min(a_bytes, dz_bytes)                # both kept: registers only
    assert sent[3] > a_bytes                               # A sent again after the write
