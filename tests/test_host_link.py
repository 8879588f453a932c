# amaranth: UnusedElaboratable=no
"""HostLink against its reference model (sim/host_link_model.py), byte for byte: every command
with good and bad lengths and addresses, register-bus errors, RUN with and without its
interrupt, corrupted, truncated and oversized frames, each followed by frames that must still
work; random idle between request bytes, backpressure on answers and waits on the register
bus. Seeds print and rerun with MASKPROP_SEED."""

import random
import struct

import pytest

from maskprop.device.protocol import REQUEST_SYNC, Command, Status, encode
from maskprop.hw.host_link import HostLink
from maskprop.sim.host_link_model import LinkModel
from maskprop.tb.host_link_bench import LinkBench, Send
from maskprop.tb.stimulus import seed_from_env

TIMEOUT = 64
RUN_START, RUN_STATUS = (0x20, 1), 0x24
BUS_ERROR_ADDRESS = 0x44


def make(word_bytes=4, memory_words=48, max_payload=64, read_latency=1, csr_addr_width=8):
    link = HostLink(csr_addr_width=csr_addr_width, word_bytes=word_bytes,
                    memory_words=memory_words, max_payload=max_payload, timeout=TIMEOUT,
                    run_start=RUN_START, run_status=RUN_STATUS,
                    mem_read_latency=read_latency)
    rng = random.Random(0)
    model = LinkModel(info=link.info,
                      memory=[rng.getrandbits(8 * word_bytes) for _ in range(memory_words)],
                      registers={RUN_STATUS: 0b10, 0x00: 0x4D505250},
                      bus_errors=frozenset({BUS_ERROR_ADDRESS}), run_start=RUN_START,
                      run_status=RUN_STATUS)
    return link, model


def request(kind, seq, payload=b""):
    return encode(REQUEST_SYNC, kind, seq, payload)


def good_requests(rng, link, count):
    """Random well-formed requests of every kind, some refused by the link's checks."""
    info = link.info
    word_bytes, words = info.word_bytes, info.memory_words
    most = info.max_payload // word_bytes
    # One of each outcome first, then random ones.
    frames = [request(Command.INFO, 0),
              request(Command.REG_READ, 1, struct.pack("<I", BUS_ERROR_ADDRESS)),
              request(Command.REG_WRITE, 2, struct.pack("<II", 1 << 8, 1)),
              request(Command.MEM_READ, 3, struct.pack("<IH", 0, 0)),
              request(Command.MEM_WRITE, 4, struct.pack("<I", words) + bytes(word_bytes)),
              request(0x7F, 5),
              request(Command.MEM_WRITE, 6, struct.pack("<I", 0))]      # no word: BAD_LENGTH
    for seq in range(len(frames), count):
        choice = rng.randrange(9)
        if choice == 0:
            address = rng.choice([0x00, 0x04, 0x30, BUS_ERROR_ADDRESS, 1 << 8, 0xFFFFFFFF])
            frames.append(request(Command.REG_READ, seq, struct.pack("<I", address)))
        elif choice == 1:
            address = rng.choice([0x04, 0x30, 0x3C, BUS_ERROR_ADDRESS, 1 << 8])
            frames.append(request(Command.REG_WRITE, seq,
                                  struct.pack("<II", address, rng.getrandbits(32))))
        elif choice in (2, 3):
            n = rng.randint(1, min(most - 1, words))
            start = rng.choice([rng.randrange(words - n + 1), words - n + 1, 0xFFFFFFFF])
            data = bytes(rng.getrandbits(8) for _ in range(n * word_bytes))
            frames.append(request(Command.MEM_WRITE, seq, struct.pack("<I", start) + data))
        elif choice in (4, 5):
            n = rng.choice([rng.randint(1, most), 0, most + 1])
            start = rng.choice([rng.randrange(words), words - 1, 0xFFFFFFFF])
            frames.append(request(Command.MEM_READ, seq, struct.pack("<IH", start, n)))
        elif choice == 6:
            frames.append(request(Command.RUN, seq, struct.pack("<I", 10_000)))
        elif choice == 7:     # a wrong length for the command
            kind = rng.choice(list(Command))
            frames.append(request(kind, seq, bytes(rng.choice([1, 2, 3, 5, 7, 9]))))
        else:
            frames.append(request(rng.choice([0x06, 0x7F, 0xFF]), seq))
    return frames


@pytest.mark.parametrize("word_bytes, read_latency, idle, backpressure", [
    (4, 1, 0.0, 0.0), (4, 2, 0.3, 0.5), (32, 2, 0.2, 0.3), (1, 1, 0.5, 0.0)])
def test_requests_answered_as_the_model_does(word_bytes, read_latency, idle, backpressure):
    seed = seed_from_env(default=41)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    link, model = make(word_bytes=word_bytes, read_latency=read_latency,
                       max_payload=max(64, 4 * word_bytes + 4))
    frames = good_requests(rng, link, 60)
    bench = LinkBench(link, model, seed, idle=idle, backpressure=backpressure)
    bench.run([Send(frame) for frame in frames])
    statuses = {answer[1] for answer in bench.answers}
    # The script reaches every outcome but the three that need a broken frame or a lost irq.
    assert statuses >= set(Status) - {Status.BAD_CRC, Status.TRUNCATED, Status.RUN_TIMEOUT}


def test_corrupted_frames_are_refused_and_never_executed():
    seed = seed_from_env(default=42)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    link, model = make()
    script = []
    for seq in range(40):
        frame = bytearray(rng.choice(good_requests(rng, link, 8)[1:]))
        frame[2] = seq
        good = bytes(frame[:-2]) + encode(REQUEST_SYNC, frame[1], seq, frame[5:-2])[-2:]
        corrupt = bytearray(good)
        # Any byte but the sync and the length: the frame keeps its end, its CRC fails.
        position = rng.choice([1, 2] + list(range(5, len(corrupt))))
        corrupt[position] ^= 1 << rng.randrange(8)
        script += [Send(bytes(corrupt)), Send(good)]
    bench = LinkBench(link, model, seed)
    bench.run(script)
    assert [answer[1] for answer in bench.answers[::2]] == [Status.BAD_CRC] * 40


def test_a_shorter_length_ends_the_frame_early_and_the_rest_is_dropped():
    seed = seed_from_env(default=43)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    link, model = make()
    payload = struct.pack("<I", 3) + bytes(range(1, 9))         # no sync byte in it
    frame = bytearray(request(Command.MEM_WRITE, 7, payload))
    frame[3] = 4                                                   # length 12 -> 4
    framed = 5 + 4 + 2                         # what the link takes for the whole frame
    assert REQUEST_SYNC not in frame[framed:]  # the rest is dropped while it hunts for a sync
    bench = LinkBench(link, model, seed)
    bench.run([Send(bytes(frame), answered_after=framed),
               Send(request(Command.MEM_READ, 8, struct.pack("<IH", 3, 2)))])
    assert [a[1] for a in bench.answers] == [Status.BAD_CRC, Status.OK]


def test_truncated_and_oversized_frames_are_answered_and_the_link_recovers():
    seed = seed_from_env(default=44)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    link, model = make()
    write = request(Command.REG_WRITE, 5, struct.pack("<II", 0x30, 0x1234))
    script = []
    for cut in (1, 2, 3, 4, 5, 8, len(write) - 1):
        script += [Send(write[:cut], truncated=True), Send(request(Command.INFO, cut))]
    too_long = encode(REQUEST_SYNC, Command.MEM_WRITE, 9,
                      bytes(rng.getrandbits(8) for _ in range(link.max_payload + 1)))
    script += [Send(too_long, answered_after=5, quiet=TIMEOUT + 8),
               Send(request(Command.REG_READ, 10, struct.pack("<I", 0x30))), Send(write)]
    bench = LinkBench(link, model, seed)
    bench.run(script)
    assert [a[1] for a in bench.answers[:-3:2]] == [Status.TRUNCATED] * 7
    assert bench.answers[-3][1] == Status.BAD_LENGTH
    assert model.registers[0x30] == 0x1234


def test_run_without_its_interrupt_times_out():
    seed = seed_from_env(default=45)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    link, model = make()
    model.run_completes = False
    bench = LinkBench(link, model, seed)
    bench.run([Send(request(Command.RUN, 1, struct.pack("<I", 500))),
               Send(request(Command.REG_READ, 2, struct.pack("<I", RUN_STATUS)))])
    assert [a[1] for a in bench.answers] == [Status.RUN_TIMEOUT, Status.OK]


@pytest.mark.parametrize("name, value, message", [
    ("csr_addr_width", 1, "csr_addr_width must be in [2, 32]"),
    ("word_bytes", 3, "word_bytes must be a power of two in [1, 128]"),
    ("memory_words", 0, "memory_words must be in [1, 4294967296]"),
    ("max_payload", 11, "max_payload must be in [12, 65535]"),
    ("timeout", 15, "timeout must be in [16, 4294967295]"),
    ("mem_read_latency", 9, "mem_read_latency must be in [1, 8]"),
    ("run_status", 256, "run_status must be in [0, 255]"),
])
def test_bad_parameters_are_refused(name, value, message):
    arguments = dict(csr_addr_width=8, word_bytes=4, memory_words=16)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        HostLink(**{**arguments, name: value})
