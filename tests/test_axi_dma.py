# amaranth: UnusedElaboratable=no
# (the parameter tests construct DMAs that are refused or never simulated)
"""AxiDma: against cocotbext-axi's memory models and on AxiRam, as generated Verilog under cocotb
(Verilator; ``SIM=icarus`` works), with the AXI protocol checker (``tb/axi_checker.py``) on the
bus in every run; the checker's own rules on synthetic traces; the RTL's assertions in Amaranth's
simulator; parameter validation."""

import random
import re

import pytest
from amaranth import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.hw.axi import BURST_FIXED, BURST_INCR, BURST_WRAP, RESP_OKAY, RESP_SLVERR
from maskprop.hw.axi_dma import (AxiDma, _BurstSplitter, dma_command_layout,
                                 dma_counter_layout, dma_flags_layout)
from maskprop.hw.axi_ram import AxiRam, HostPortSignature
from maskprop.tb.axi_checker import AxiProtocolModel, ProtocolError, burst_beats
from maskprop.tb.bench_axi_dma import (PAGE, command_bursts, command_fields, command_rows,
                                       random_2d_commands)
from maskprop.tb.bench_axi_dma_ram import MULTIPLIER, pattern
from maskprop.tb.runner import run_testbench
from maskprop.tb.stimulus import seed_from_env

# The cocotbext-axi bench: 16-bit addresses (a 64 KiB memory model), a 32-bit bus, bursts of
# up to 8 beats (a 4 KiB page is 1024 words), commands of up to 40 beats.
DMA_PARAMS = dict(addr_width=16, data_width=32, id_width=2, max_burst=8, max_outstanding=3,
                  max_beats_per_command=40)
TRAFFIC = dict(commands=60, idle=0.3, backpressure=0.3, pause=0.3)


def seeded(default):
    seed = seed_from_env(default=default)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    return seed


def run_dma_bench(tmp_path, sim=None, **traffic):
    dut = AxiDma(**DMA_PARAMS)
    run = run_testbench(dut, "axi_dma", "maskprop.tb.bench_axi_dma",
                        params=dict(dut.parameters, **{**TRAFFIC, **traffic}), sim=sim,
                        build_dir=tmp_path / "build", seed=seeded(20250))
    print(f"logs in {run.build_dir}")
    return run


@pytest.mark.sim
def test_dma_against_cocotbext_memory(tmp_path):
    """Random commands with idle cycles, backpressure and bus pauses: every word exact and in
    order, memory equal to the model, counters equal to the checker's counts; SLVERR: the
    flags and per-command errors exact, no hang, ``clear``."""
    run = run_dma_bench(tmp_path)
    assert (run.tests, run.failures) == (2, 0), f"see {run.log}"
    traffic = run.report["random_traffic"]
    # The in-flight bound was reached (the checker fails a run that exceeds it).
    assert traffic["max_read_outstanding"] == DMA_PARAMS["max_outstanding"]
    assert traffic["max_write_outstanding"] == DMA_PARAMS["max_outstanding"]
    assert run.report["error_responses"]["bad_read_beats"] > 0
    assert run.report["error_responses"]["failed_writes"] > 0


@pytest.mark.sim
def test_dma_on_icarus(tmp_path):
    """The four-state simulator (cocotbext-axi drives x on idle payloads): the same bench,
    fewer commands."""
    run = run_dma_bench(tmp_path, sim="icarus", commands=20)
    assert (run.simulator, run.tests, run.failures) == ("icarus", 2, 0), f"see {run.log}"


# --- AxiDma on AxiRam: a test-only top with the words generated and checked in RTL -----------

class DmaOnRam(wiring.Component):
    """AxiDma connected to AxiRam; ``write_data`` generated and ``read_data`` checked in RTL
    against ``pattern`` (``tb/bench_axi_dma_ram.py`` describes the ports). ``stall`` draws
    backpressure and idle cycles from an LFSR."""

    def __init__(self, *, depth, **dma):
        self._dma, self._depth = dma, depth
        addr_width, data_width = dma["addr_width"], dma["data_width"]
        command = dma_command_layout(addr_width, dma["max_beats_per_command"])
        ram_words = max(1, (depth - 1).bit_length())
        super().__init__({
            "read_cmd": In(stream.Signature(command)),
            "write_cmd": In(stream.Signature(command)),
            "read_salt": In(data_width), "write_salt": In(data_width),
            "stall": In(1), "clear": In(1),
            "host": In(HostPortSignature(addr_width=ram_words, data_width=data_width)),
            **{name: Out(32) for name in ("read_words", "read_mismatches", "write_words",
                                          "writes_done", "done_errors", "first_read",
                                          "last_read", "first_write", "last_write",
                                          "cycle")},
            "error": Out(dma_flags_layout()), "busy": Out(1),
            "counters": Out(dma_counter_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._dma
        width, shift = p["data_width"], (p["data_width"] // 8).bit_length() - 1
        m.submodules.dma = dma = AxiDma(**p)
        m.submodules.ram = ram = AxiRam(addr_width=p["addr_width"], data_width=width,
                                        id_width=p["id_width"], depth=self._depth,
                                        host_port=True)
        wiring.connect(m, dma.bus, ram.bus)
        wiring.connect(m, wiring.flipped(self.host), ram.host)
        m.d.comb += [
            dma.clear.eq(self.clear), self.error.eq(dma.error),
            self.busy.eq(dma.busy.read | dma.busy.write), self.counters.eq(dma.counters),
        ]
        lfsr = Signal(16, init=0xACE1)
        m.d.sync += lfsr.eq(Mux(lfsr[0], (lfsr >> 1) ^ 0xB400, lfsr >> 1))
        cycle = self.cycle
        m.d.sync += cycle.eq(cycle + 1)

        def pattern_of(address, salt):
            return (address[shift:] * (MULTIPLIER & ((1 << width) - 1) | 1))[:width] ^ salt

        def tee(port, target, name):
            """``port``'s commands into two deep queues at once (so that the bench sends a
            whole batch in consecutive cycles): one to ``target``, one for the walker."""
            width = port.payload.shape().size
            ahead = fifo.SyncFIFO(width=width, depth=256)
            queue = fifo.SyncFIFO(width=width, depth=256)
            m.submodules[f"{name}_ahead"] = ahead
            m.submodules[name] = queue
            wiring.connect(m, ahead.r_stream, target)
            m.d.comb += [
                ahead.w_data.eq(port.payload),
                queue.w_data.eq(port.payload),
                ahead.w_en.eq(port.valid & queue.w_rdy),
                queue.w_en.eq(port.valid & ahead.w_rdy),
                port.ready.eq(ahead.w_rdy & queue.w_rdy),
            ]
            return data.View(port.payload.shape(), queue.r_data), queue

        def walker(head, queue, taken, name):
            """The address of the current word of the queued commands, row by row, and whether
            it is the command's last; advances on ``taken``. A word at a time, independently
            of the DMA's splitter."""
            words = range(p["max_beats_per_command"] + 1)
            addr = Signal(p["addr_width"], name=f"{name}_addr")
            row_start = Signal(p["addr_width"], name=f"{name}_row_start")
            pitch = Signal(p["addr_width"], name=f"{name}_pitch")
            left = Signal(words, name=f"{name}_left")
            row_left = Signal(words, name=f"{name}_row_left")
            row_beats = Signal(words, name=f"{name}_row_beats")
            active = Signal(name=f"{name}_active")
            last = left == 1
            take = queue.r_rdy & (~active | (taken & last))
            m.d.comb += queue.r_en.eq(take)
            with m.If(taken):
                m.d.sync += left.eq(left - 1)
                with m.If(row_left == 1):
                    m.d.sync += [addr.eq(row_start + pitch), row_start.eq(row_start + pitch),
                                 row_left.eq(row_beats)]
                with m.Else():
                    m.d.sync += [addr.eq(addr + (1 << shift)), row_left.eq(row_left - 1)]
                with m.If(last):
                    m.d.sync += active.eq(0)
            with m.If(take):
                m.d.sync += [addr.eq(head.addr), row_start.eq(head.addr), pitch.eq(head.pitch),
                             left.eq(head.beats), row_left.eq(head.row_beats),
                             row_beats.eq(head.row_beats), active.eq(1)]
            return addr, last, active

        def span(first, last_cycle, count, taken):
            with m.If(taken):
                m.d.sync += [count.eq(count + 1), last_cycle.eq(cycle)]
                with m.If(count == 0):
                    m.d.sync += first.eq(cycle)

        # Reads: every word checked against the pattern at its address.
        head, queue = tee(self.read_cmd, dma.read_cmd, "read_queue")
        read_taken = dma.read_data.valid & dma.read_data.ready
        r_addr, r_last, r_active = walker(head, queue, read_taken, "read")
        m.d.comb += dma.read_data.ready.eq(r_active & ~(self.stall & lfsr[0] & lfsr[1]))
        wrong = ((dma.read_data.payload.data != pattern_of(r_addr, self.read_salt)) |
                 (dma.read_data.payload.last != r_last))
        with m.If(read_taken & wrong):
            m.d.sync += self.read_mismatches.eq(self.read_mismatches + 1)
        span(self.first_read, self.last_read, self.read_words, read_taken)

        # Writes: every word generated from its address.
        head, queue = tee(self.write_cmd, dma.write_cmd, "write_queue")
        write_taken = dma.write_data.valid & dma.write_data.ready
        w_addr, _, w_active = walker(head, queue, write_taken, "write")
        m.d.comb += [
            dma.write_data.valid.eq(w_active & ~(self.stall & lfsr[2] & lfsr[3])),
            dma.write_data.payload.data.eq(pattern_of(w_addr, self.write_salt)),
            dma.write_data.payload.strb.eq(-1),
            dma.write_done.ready.eq(~(self.stall & lfsr[4] & lfsr[5])),
        ]
        # Counted on W: the DMA takes its first word a cycle or two before the bus can.
        span(self.first_write, self.last_write, self.write_words,
             dma.bus.wvalid & dma.bus.wready)
        with m.If(dma.write_done.valid & dma.write_done.ready):
            m.d.sync += [self.writes_done.eq(self.writes_done + 1),
                         self.done_errors.eq(self.done_errors + dma.write_done.payload.error)]

        with m.If(self.clear):
            m.d.sync += [getattr(self, name).eq(0) for name in (
                "read_words", "read_mismatches", "write_words", "writes_done", "done_errors")]
        return m


PAIR_PARAMS = dict(addr_width=16, data_width=64, id_width=1, max_burst=16, max_outstanding=4,
                   max_beats_per_command=256, command_depth=4)
PAIR_DEPTH = 2048   # 16 KiB of the 64 KiB address space: room for DECERR


def run_pair_bench(tmp_path, sim=None):
    dut = DmaOnRam(depth=PAIR_DEPTH, **PAIR_PARAMS)
    run = run_testbench(dut, "dma_on_ram", "maskprop.tb.bench_axi_dma_ram",
                        params=dict(PAIR_PARAMS, depth=PAIR_DEPTH, commands=80, passes=8),
                        sim=sim,
                        build_dir=tmp_path / "build", seed=seeded(4242))
    print(f"logs in {run.build_dir}")
    return run


@pytest.mark.sim
def test_dma_on_axi_ram(tmp_path):
    """The pair at full rate (one word per cycle each way, also both at once), with random
    commands and stalls, and with DECERR beyond the memory; words checked in RTL."""
    run = run_pair_bench(tmp_path)
    assert (run.tests, run.failures) == (3, 0), f"see {run.log}"
    rate = run.report["full_rate"]
    assert rate["read"]["words"] == PAIR_DEPTH
    assert rate["concurrent_read"]["words"] == rate["concurrent_write"]["words"] == \
        PAIR_DEPTH // 2


def test_pattern_twin():
    """The bench's Python pattern is the RTL's: word index times an odd constant, xor salt."""
    assert pattern(0, 5, 64, 8) == 5
    assert pattern(8, 0, 64, 8) == MULTIPLIER
    assert len({pattern(a, 0, 16, 2) for a in range(0, 2 << 16, 2)}) == 1 << 16


# --- the burst splitter against the reference -------------------------------------------------

SPLIT = dict(addr_width=16, bytes_per_beat=4, max_burst=8, max_beats=40)


def contiguous_bursts(addr, beats, bytes_per_word, max_burst):
    """The splitter's bursts before commands had rows: cut at max_burst and 4 KiB only."""
    bursts = []
    while beats:
        n = min(beats, max_burst, (PAGE - addr % PAGE) // bytes_per_word)
        bursts.append((addr, n))
        addr, beats = addr + n * bytes_per_word, beats - n
    return bursts


def split_commands(commands, *, seed, ready=1.0, idle=0.0):
    """Run ``_BurstSplitter(**SPLIT)`` in Amaranth's simulator on ``commands`` (tuples, as
    ``command_fields``), ``o.ready`` high with probability ``ready`` and ``i.valid`` idle with
    probability ``idle`` per cycle; returns the bursts taken as (cycle, addr, beats, last)."""
    dut = _BurstSplitter(**SPLIT)
    rng = random.Random(seed)
    taken = []

    async def bench(ctx):
        pending = list(commands)
        for cycle in range(40 * len(commands) + 100):
            offer = bool(pending) and rng.random() >= idle
            ctx.set(dut.i.valid, offer)
            if pending:
                ctx.set(dut.i.payload, dict(zip(("addr", "beats", "row_beats", "pitch"),
                                                command_fields(pending[0]))))
            ctx.set(dut.o.ready, rng.random() < ready)
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                burst = ctx.get(dut.o.payload)
                taken.append((cycle, burst.addr, burst.beats, burst.last))
            if offer and ctx.get(dut.i.ready):
                pending.pop(0)
            await ctx.tick()
        assert not pending and not ctx.get(dut.o.valid), "the splitter did not finish"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return taken


def reference_bursts(commands):
    """(addr, beats, last) of every burst of ``commands``: each row cut at max_burst and 4 KiB
    (``command_bursts``), ``last`` on each command's final burst only."""
    bursts = []
    for command in commands:
        own = command_bursts(command, SPLIT["bytes_per_beat"], SPLIT["max_burst"])
        bursts += [(addr, beats, int(k == len(own) - 1)) for k, (addr, beats) in enumerate(own)]
    return bursts


def test_splitter_2d_bursts_match_the_reference():
    """Random 2-D commands (rows of 1 word and more, pitches across pages, rows crossing 4 KiB)
    between contiguous ones: the bursts are the reference's (rows in order, no burst across a
    row's end or a 4 KiB boundary, ``last`` only on a command's final burst), under random
    ``ready`` and idle cycles; and with both always on, one burst per cycle from the first to
    the last, across rows and commands."""
    seed = seeded(777)
    rng = random.Random(seed)
    word, lo, hi = SPLIT["bytes_per_beat"], 0, 1 << SPLIT["addr_width"]
    commands = random_2d_commands(rng, lo, hi, 60, bytes_per_word=word,
                                  max_burst=SPLIT["max_burst"], max_beats=SPLIT["max_beats"])
    commands += [(PAGE - word, 1, 1, PAGE), (2 * PAGE - 3 * word, 40, 5, PAGE - 2 * word),
                 (PAGE - 2 * word, 8, 8, 0x1230), (0x100, 12, 1, 8 * word)]
    for _ in range(20):
        beats = rng.randint(1, SPLIT["max_beats"])
        commands.append((PAGE * rng.randrange(1, 15) - word * rng.randint(0, 9), beats))
    rng.shuffle(commands)
    want = reference_bursts(commands)
    rows = [row for c in commands if len(c) == 4 and c[1] > c[2] for row in command_rows(c)]
    assert any(words == 1 for _, words in rows), "no rows of 1 word"
    assert any(addr // PAGE != (addr + words * word - 1) // PAGE for addr, words in rows), \
        "no row crosses a 4 KiB boundary"
    stalled = split_commands(commands, seed=seed, ready=0.6, idle=0.3)
    assert [tuple(burst) for _, *burst in stalled] == want
    flowing = split_commands(commands, seed=seed)
    assert [tuple(burst) for _, *burst in flowing] == want
    cycles = [cycle for cycle, *_ in flowing]
    assert cycles == list(range(cycles[0], cycles[0] + len(cycles))), "a bubble between bursts"


def test_splitter_contiguous_commands_unchanged():
    """A contiguous command (no rows, or ``row_beats == beats`` with any pitch) is cut as
    before commands had rows, in the same cycles whatever its pitch."""
    seed = seeded(778)
    rng = random.Random(seed)
    word = SPLIT["bytes_per_beat"]
    plain = [(PAGE * rng.randrange(1, 15) - word * rng.randint(0, 20),
              rng.randint(1, SPLIT["max_beats"])) for _ in range(60)]
    pitched = [(addr, beats, beats, word * rng.randrange(1 << 12)) for addr, beats in plain]
    want = [(addr, n, int(k == len(own) - 1)) for addr, beats in plain
            for own in [contiguous_bursts(addr, beats, word, SPLIT["max_burst"])]
            for k, (addr, n) in enumerate(own)]
    for ready, idle in [(1.0, 0.0), (0.6, 0.3)]:
        runs = [split_commands(commands, seed=seed, ready=ready, idle=idle)
                for commands in (plain, pitched)]
        assert runs[0] == runs[1], "the pitch of a contiguous command changed its bursts"
        assert [tuple(burst) for _, *burst in runs[0]] == want


# --- the protocol checker's rules on synthetic traces -----------------------------------------

def aw(addr, length=0, size=2, burst=BURST_INCR, ident=0):
    return {"awid": ident, "awaddr": addr, "awlen": length, "awsize": size, "awburst": burst}


def ar(addr, length=0, size=2, burst=BURST_INCR, ident=0):
    return {"arid": ident, "araddr": addr, "arlen": length, "arsize": size, "arburst": burst}


def w(data=0, strb=0xF, last=1):
    return {"wdata": data, "wstrb": strb, "wlast": last}


def r(data=0, last=1, ident=0, resp=RESP_OKAY):
    return {"rid": ident, "rdata": data, "rresp": resp, "rlast": last}


def b(ident=0, resp=RESP_OKAY):
    return {"bid": ident, "bresp": resp}


def trace(*cycles, **options):
    """A checker (32-bit bus) fed ``cycles``: each a dict ``{channel: payload}`` of handshakes,
    or ``{channel: (valid, ready, payload)}``."""
    model = AxiProtocolModel(data_width=32, **options)
    for cycle in cycles:
        model.cycle({channel: value if isinstance(value, tuple) else (True, True, value)
                     for channel, value in cycle.items()})
    return model


def only_error(model, text):
    assert len(model.errors) == 1 and text in model.errors[0], model.errors
    with pytest.raises(ProtocolError, match=re.escape(text)):
        model.assert_clean(idle=False)


def test_checker_passes_a_clean_trace():
    model = trace({"aw": aw(0x100, 1), "ar": ar(0x0, 2)},
                  {"w": w(1, 0xF, 0), "r": r(1, 0)},
                  {"w": w(2, 0x3, 1), "r": r(2, 0)},
                  {"b": b(), "r": r(3, 1)},
                  max_outstanding=1, max_len=4, size=2)
    model.assert_clean()
    assert (model.read_bursts, model.write_bursts) == (1, 1)
    assert model.bytes_read == 12 and model.bytes_read_in(0x4, 0x9) == 5
    assert model.bytes_written == 6 and model.bytes_written_in(0x104, 0x106) == 2
    assert model.bytes_written_in(0x100, 0x104) == 4 and model.bytes_written_in(0, 0x100) == 0


@pytest.mark.parametrize("channel, payloads", [
    ("aw", (aw(0x100), aw(0x104))), ("ar", (ar(0x10), ar(0x10, 1))),
    ("w", (w(1), w(2))), ("r", (r(1), r(1, ident=1))), ("b", (b(), b(resp=RESP_SLVERR)))])
def test_checker_payload_must_hold_while_waiting(channel, payloads):
    first, second = payloads
    model = trace({channel: (True, False, first)}, {channel: (True, True, second)})
    assert any(f"{channel.upper()} payload changed" in e for e in model.errors), model.errors


@pytest.mark.parametrize("channel", ["aw", "w", "b", "ar", "r"])
def test_checker_valid_must_hold_until_ready(channel):
    payload = {"aw": aw(0), "w": w(), "b": b(), "ar": ar(0), "r": r()}[channel]
    model = trace({channel: (True, False, payload)}, {channel: (False, False, None)})
    only_error(model, f"{channel.upper()}VALID dropped before {channel.upper()}READY")


def test_checker_4k_boundary_len_and_size():
    only_error(trace({"ar": ar(0xFF8, 2)}), "crosses a 4 KiB boundary")
    only_error(trace({"aw": aw(0x1FFC, 1)}), "crosses a 4 KiB boundary")
    assert not trace({"ar": ar(0xFF8, 1)}, {"r": r(0, 0)}, {"r": r()}).errors
    only_error(trace({"ar": ar(0, 8)}, max_len=8), "9 beats, more than 8")
    only_error(trace({"ar": ar(0, 300)}), "ARLEN 300 out of [0, 255]")
    only_error(trace({"aw": aw(0, size=3)}), "AWSIZE 3 wider than the 4-byte bus")
    only_error(trace({"ar": ar(0, size=1)}, size=2), "ARSIZE 1, expected 2")
    only_error(trace({"ar": ar(0, 2, burst=BURST_WRAP)}), "WRAP burst of 3 beats")
    only_error(trace({"aw": aw(0, 16, burst=BURST_FIXED)}), "FIXED burst of 17 beats")
    only_error(trace({"ar": ar(0, burst=3)}), "ARBURST 3 is reserved")


def test_checker_wlast_and_rlast():
    only_error(trace({"aw": aw(0, 2)}, {"w": w(last=0)}, {"w": w(last=1)}, {"w": w(last=1)},
                     {"b": b()}), "WLAST on beat 2 of a 3-beat burst")
    only_error(trace({"aw": aw(0, 1)}, {"w": w(last=0)}, {"w": w(last=0)}, {"b": b()}),
               "no WLAST on the last beat of a 2-beat burst")
    only_error(trace({"ar": ar(0, 1)}, {"r": r(last=1)}), "RLAST on beat 1 of a 2-beat burst")
    only_error(trace({"ar": ar(0, 1)}, {"r": r(last=0)}, {"r": r(last=0)}),
               "no RLAST on the last beat")
    # W ahead of its AW is legal.
    trace({"w": w(last=0)}, {"w": w(last=1)}, {"aw": aw(0, 1)}, {"b": b()}).assert_clean()
    only_error(trace({"aw": aw(0x2)}, {"w": w(strb=0x1)}, {"b": b()}), "WSTRB 0x1 outside")
    trace({"aw": aw(0x2, 1, size=1)}, {"w": w(strb=0xC, last=0)}, {"w": w(strb=0x3)},
          {"b": b()}).assert_clean()


def test_checker_outstanding_and_orphan_responses():
    only_error(trace({"ar": ar(0)}, {"ar": ar(4)}, {"ar": ar(8)}, {"r": r()}, {"r": r()},
                     {"r": r()}, max_outstanding=2), "3 read bursts outstanding, more than 2")
    only_error(trace({"aw": aw(0)}, {"aw": aw(4)}, {"w": w()}, {"w": w()}, {"b": b()},
                     {"b": b()}, max_outstanding=1), "2 write bursts outstanding, more than 1")
    only_error(trace({"r": r()}), "R beat with RID 0 and no read burst outstanding")
    only_error(trace({"ar": ar(0, ident=1)}, {"r": r(ident=0)}, {"r": r(ident=1)}),
               "R beat with RID 0")
    only_error(trace({"b": b(ident=1)}), "B response with BID 1 and no write burst")
    only_error(trace({"aw": aw(0, 1)}, {"w": w(last=0)}, {"b": b()}, {"w": w()}),
               "before its last W beat")
    with pytest.raises(ProtocolError, match="1 read burst"):
        trace({"ar": ar(0)}).assert_clean()
    trace({"ar": ar(0)}).assert_clean(idle=False)
    with pytest.raises(ProtocolError, match="cycle 0: .* crosses"):
        trace({"ar": ar(0xFFC, 1)}, raise_on_error=True)


def test_burst_beats():
    assert burst_beats(0x13, 3, 2, BURST_INCR) == [0x13, 0x14, 0x18, 0x1C]
    assert burst_beats(0x38, 3, 3, BURST_WRAP) == [0x38, 0x20, 0x28, 0x30]
    assert burst_beats(0x10, 2, 2, BURST_FIXED) == [0x10] * 3


# --- assertions, lint, parameters -------------------------------------------------------------

def simulate_command(dut, port, addr, beats, row_beats=None, pitch=0):
    """Offer one command on ``port`` in Amaranth's simulator for a few cycles, with AR and AW
    ready (so that the splitter gets through a few rows)."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        ctx.set(dut.bus.arready, 1)
        ctx.set(dut.bus.awready, 1)
        ctx.set(getattr(dut, port).payload,
                {"addr": addr, "beats": beats,
                 "row_beats": beats if row_beats is None else row_beats, "pitch": pitch})
        ctx.set(getattr(dut, port).valid, 1)
        await ctx.tick()
        ctx.set(getattr(dut, port).valid, 0)
        for _ in range(8):
            await ctx.tick()
    sim.add_testbench(bench)
    sim.run()


def test_latencies():
    """The docstring's latencies, cycle by cycle in Amaranth's simulator, with a bus that is
    always ready and answers when told: the command in cycle 0, R beats in cycles 8 and 9,
    the write words from cycle 1, the write response in cycle 9."""
    dut = AxiDma(addr_width=16, data_width=32, max_burst=4, max_outstanding=2)
    seen = {name: [] for name in ("read_cmd", "write_cmd", "ar", "aw", "read_data", "w",
                                  "write_data", "write_done")}

    async def bench(ctx):
        for signal in (dut.bus.arready, dut.bus.awready, dut.bus.wready, dut.read_data.ready,
                       dut.write_done.ready):
            ctx.set(signal, 1)
        for port in (dut.read_cmd, dut.write_cmd):
            ctx.set(port.payload, {"addr": 0x100, "beats": 2, "row_beats": 2, "pitch": 0})
            ctx.set(port.valid, 1)
        words = [0x11, 0x22]
        for cycle in range(16):
            ctx.set(dut.bus.rvalid, cycle in (8, 9))
            ctx.set(dut.bus.rlast, cycle == 9)
            ctx.set(dut.bus.rdata, 0xA0 + cycle)
            ctx.set(dut.bus.bvalid, cycle == 9)
            ctx.set(dut.write_data.valid, bool(words))
            ctx.set(dut.write_data.payload, {"data": words[0] if words else 0, "strb": 0xF})
            for name, valid, ready in [
                    ("read_cmd", dut.read_cmd.valid, dut.read_cmd.ready),
                    ("write_cmd", dut.write_cmd.valid, dut.write_cmd.ready),
                    ("ar", dut.bus.arvalid, dut.bus.arready),
                    ("aw", dut.bus.awvalid, dut.bus.awready),
                    ("read_data", dut.read_data.valid, dut.read_data.ready),
                    ("write_data", dut.write_data.valid, dut.write_data.ready),
                    ("w", dut.bus.wvalid, dut.bus.wready),
                    ("write_done", dut.write_done.valid, dut.write_done.ready)]:
                if ctx.get(valid) and ctx.get(ready):
                    seen[name].append(cycle)
            if ctx.get(dut.write_data.valid) and ctx.get(dut.write_data.ready):
                words.pop(0)
            await ctx.tick()
            if cycle == 0:
                ctx.set(dut.read_cmd.valid, 0)
                ctx.set(dut.write_cmd.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["read_cmd"] == seen["write_cmd"] == [0]
    assert seen["ar"] == seen["aw"] == [AxiDma.address_latency]
    assert seen["read_data"] == [8 + AxiDma.read_data_latency, 9 + AxiDma.read_data_latency]
    # Words are taken from the cycle the burst's AWVALID rises, each on W the next cycle.
    assert seen["write_data"] == [3, 4] and seen["w"] == [4, 5]
    assert seen["write_done"] == [10]


@pytest.mark.parametrize("direction", ["read", "write"])
def test_one_outstanding_burst_waits_for_its_completion(direction):
    """``max_outstanding = 1``: a second burst is issued only after the first one completes (a
    read burst's last R beat, a write burst's B response), though the info FIFOs, which have at
    least 2 entries, and the read FIFO's room (4 words, two 1-word bursts) would take it: only
    the in-flight count holds it back here. (With ``max_outstanding >= 2`` the info FIFOs are
    ``max_outstanding`` deep and bound it as well, so the cocotb benches cannot tell.) Two
    1-word commands; the bus answers the first burst in cycle ``ANSWER``, the second two cycles
    after its address."""
    ANSWER = 12
    dut = AxiDma(addr_width=16, data_width=32, max_burst=4, max_outstanding=1)
    read = direction == "read"
    address = (dut.bus.arvalid, dut.bus.arready) if read else (dut.bus.awvalid, dut.bus.awready)
    answer_valid = dut.bus.rvalid if read else dut.bus.bvalid
    port = dut.read_cmd if read else dut.write_cmd
    issued, answers = [], []

    async def bench(ctx):
        for signal in (dut.bus.arready, dut.bus.awready, dut.bus.wready, dut.read_data.ready,
                       dut.write_done.ready, dut.bus.rlast):
            ctx.set(signal, 1)
        ctx.set(dut.write_data.valid, 1)
        ctx.set(dut.write_data.payload, {"data": 0x5A, "strb": 0xF})
        commands = [0x100, 0x200]
        for cycle in range(30):
            ctx.set(port.valid, bool(commands))
            ctx.set(port.payload, {"addr": commands[0] if commands else 0, "beats": 1,
                                   "row_beats": 1, "pitch": 0})
            due = ANSWER if not answers else (issued[1] + 2 if len(issued) > 1 else None)
            ctx.set(answer_valid, cycle == due)
            if cycle == due:
                answers.append(cycle)
            if ctx.get(address[0]) and ctx.get(address[1]):
                issued.append(cycle)
            if ctx.get(port.valid) and ctx.get(port.ready):
                commands.pop(0)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # The first burst's address after the usual latency; the second in the cycle after the
    # completion is counted (the count is a register), not before.
    assert issued == [AxiDma.address_latency, ANSWER + 2], \
        f"{direction} bursts issued in cycles {issued}, the first one answered in {ANSWER}"
    assert answers == [ANSWER, ANSWER + 4]


@pytest.mark.parametrize("port", ["read_cmd", "write_cmd"])
def test_assertions_catch_bad_commands(port):
    """The RTL's simulation assertions: an unaligned address, 0 beats, too many beats; rows
    of 0 words or more than ``beats``, an unaligned pitch (ignored in a contiguous command), and
    ``beats`` not a multiple of ``row_beats`` (caught at the short row)."""
    for fine in [(0x40, 4), (0x40, 4, 4, 0x13), (0x40, 6, 2, 0x100), (0x40, 6, 1, 4),
                 (0x40, 8, 4, 16)]:
        simulate_command(AxiDma(addr_width=16, data_width=32), port, *fine)
    for command, message in [((0x42, 4), "address not aligned"), ((0x40, 0), "beats out of"),
                             ((0x40, 4097), "beats out of"),
                             ((0x40, 4, 0, 16), "row_beats out of"),
                             ((0x40, 4, 5, 16), "row_beats out of"),
                             ((0x40, 4, 2, 0x12), "pitch not a multiple"),
                             ((0x40, 5, 2, 16), "not a multiple of row_beats"),
                             ((0x40, 7, 3, 16), "not a multiple of row_beats")]:
        with pytest.raises(AssertionError, match=message):
            simulate_command(AxiDma(addr_width=16, data_width=32), port, *command)


@pytest.mark.sim
@pytest.mark.parametrize("params", [
    dict(), dict(data_width=8, addr_width=12, max_burst=1, max_outstanding=1),
    dict(data_width=1024, max_burst=256, max_outstanding=16, id_width=16, read_buffer=256)],
    ids=["default", "narrow-single", "wide"])
def test_verilator_lint_clean(params):
    lint_verilog(generate_verilog(AxiDma(**params), "axi_dma"), "axi_dma")


@pytest.mark.parametrize("kwargs, message", [
    (dict(addr_width=11), r"addr_width must be in \[12, 64\], not 11"),
    (dict(addr_width=65), r"addr_width must be in \[12, 64\]"),
    (dict(data_width=48), r"data_width must be one of 8, 16, 32, 64, 128, 256, 512, 1024"),
    (dict(id_width=0), r"id_width must be in \[1, 16\], not 0"),
    (dict(max_burst=0), r"max_burst must be in \[1, 256\], not 0"),
    (dict(max_burst=512), r"max_burst must be in \[1, 256\], not 512"),
    (dict(max_burst=12), r"max_burst must be a power of two in \[1, 256\], not 12"),
    (dict(max_outstanding=0), r"max_outstanding must be in \[1, 16\], not 0"),
    (dict(max_outstanding=17), r"max_outstanding must be in \[1, 16\], not 17"),
    (dict(max_beats_per_command=0), r"max_beats_per_command must be in \[1, 16777216\]"),
    (dict(max_burst=16, read_buffer=8), r"read_buffer must be in \[16, 65536\], not 8"),
    (dict(command_depth=1), r"command_depth must be in \[2, 64\], not 1"),
    (dict(max_outstanding=2.0), r"max_outstanding must be an integer in \[1, 16\]"),
])
def test_parameters_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AxiDma(**kwargs)


def test_defaults_and_parameters_round_trip():
    dma = AxiDma()
    assert dma.parameters == dict(addr_width=32, data_width=64, id_width=1, max_burst=16,
                                  max_outstanding=4, max_beats_per_command=4096,
                                  read_buffer=64, command_depth=2)
    assert AxiDma(**dma.parameters).generator_key == dma.generator_key
    assert dma.bytes_per_beat == 8
