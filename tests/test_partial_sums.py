# amaranth: UnusedElaboratable=no
# (the parameter tests construct blocks that are refused or never elaborated)
"""PartialSums in Amaranth's simulator, against its docstring ("one result beat, one slot
group": every result beat takes ``W = ceil(tiles / P)`` memory words of ``P`` 64-bit values,
slot ``t`` in value ``t % P`` of word ``t // P``, invalid slots and values beyond ``tiles``
0 when written and ignored when read).

Random commands (result beats with any pattern of valid slots, garbage in the invalid ones and
in the ignored values of ``sums``) in all four modes (pass-through, add, keep, add + keep),
several commands per run separated by ``start`` with leftovers before it (sums words of a
beat never taken, packer words never sent, a flagged beat) that must not leak into the next
command; every ``o`` beat and ``raw`` word bit-exact against a Python golden model (64-bit
wrapping sums), in order, nothing missing or surplus (also in a drain window), under random
idling on ``results`` and ``sums`` and random backpressure on ``o`` and ``raw``; every
cycle's handshakes against the docstring's rules (a cycle model of the sums register and the
packer) and the ``overflow`` flag; handshake independence; the combinational pass-through;
the exact unstalled cycles of add and keep mode; parameter validation; Verilog and lint."""

import random

import pytest
from amaranth import Module, signed, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from maskprop.base.config import Config
from maskprop.flow.verilog import generate_verilog, lint_verilog
from maskprop.hw.partial_sums import SUM_WIDTH, PartialSums
from maskprop.hw.tile_array import array_result_layout
from maskprop.tb.stimulus import random_signed, seed_from_env

MASK64 = (1 << 64) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def wrap64(value: int) -> int:
    """``value`` wrapped to a signed 64-bit integer (the golden sum's overflow rule)."""
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


def describe(layout: data.StructLayout, bits: int) -> str:
    """A result beat's fields, readable (for failure messages)."""
    beat = layout.from_bits(bits)
    tiles = layout["value"].shape.length
    return (f"value={[beat.value[t] for t in range(tiles)]} overflow={beat.overflow:#b} "
            f"column={[beat.column[t] for t in range(tiles)]} valid={beat.valid:#b}")


def beat_words(values: list, per_word: int, words: int) -> list:
    """A beat's ``words`` memory words: ``values[t]`` (``None``: 0) in value ``t % per_word``
    of word ``t // per_word``, 0 beyond the values."""
    out = [0] * words
    for t, value in enumerate(values):
        if value is not None:
            out[t // per_word] |= (value & MASK64) << (SUM_WIDTH * (t % per_word))
    return out


class Command:
    """One command's stimulus and expected outputs in a mode (``add``, ``keep``).

    ``beats``: per result beat a list of ``tiles`` slots ``(valid, acc, column, overflow)``;
    ``psums``: per beat the ``P * W`` 64-bit values of its sums words (those of invalid slots
    and beyond ``tiles`` are garbage that must be ignored). ``leftover``: a second
    :class:`Command` offered after this one's drain window for ``leftover_cycles`` cycles with
    ``o`` never ready, and dropped by the next ``start`` (what ``raw`` delivers of it must be
    its words, in order); ``raw`` is ready in a leftover cycle ``k`` if
    ``leftover_raw_ready[k]``, or at random (0.3) without the list."""

    def __init__(self, config: Config, bus_width: int, beats: list, psums: list, *, add: bool,
                 keep: bool, leftover: "Command | None" = None, leftover_cycles: int = 0,
                 leftover_raw_ready: list | None = None):
        per_word = bus_width // SUM_WIDTH
        words = -(-config.tiles // per_word)
        self.add, self.keep = add, keep
        self.leftover, self.leftover_cycles = leftover, leftover_cycles
        self.leftover_raw_ready = leftover_raw_ready
        in_layout = array_result_layout(config)
        out_layout = array_result_layout(config, SUM_WIDTH)
        self.results, self.o, self.raw, self.words, self.flagged = [], [], [], [], []
        assert len(psums) == len(beats)
        for slots, sums in zip(beats, psums):
            assert len(slots) == config.tiles and len(sums) == per_word * words
            values = [wrap64(acc + (sums[t] if add else 0)) if ok else 0
                      for t, (ok, acc, _, _) in enumerate(slots)]
            fields = {"overflow": sum(s[3] << t for t, s in enumerate(slots)),
                      "column": [s[2] for s in slots],
                      "valid": sum(s[0] << t for t, s in enumerate(slots))}
            self.results.append(in_layout.const(
                {"value": [s[1] for s in slots], **fields}).as_bits())
            self.flagged.append(keep and any(ok and flag for ok, _, _, flag in slots))
            if add:
                self.words += beat_words(sums, per_word, words)
            if keep:
                self.raw += beat_words(values, per_word, words)
            else:
                self.o.append(out_layout.const({"value": values, **fields}).as_bits())
        self.overflow = any(self.flagged)


def random_slots(rng: random.Random, config: Config, *, pattern: str | None = None,
                 flags: float = 0.1) -> list:
    """One result beat's ``tiles`` slots: valid ones with random accumulators in the
    ``acc_width`` range (extremes often), column field random, overflow flag with ``flags``;
    invalid ones with random garbage (value, column, overflow) half the time. ``pattern``:
    ``"none"``, ``"all"``, ``"some"`` (any subset), random if ``None``."""
    tiles = config.tiles
    pattern = pattern or rng.choices(["none", "all", "some"], [1, 3, 6])[0]
    if pattern == "none":
        mask = 0
    elif pattern == "all":
        mask = (1 << tiles) - 1
    else:
        mask = rng.getrandbits(tiles)
    slots = []
    for t in range(tiles):
        if mask >> t & 1:
            slots.append((True, random_signed(rng, config.acc_width, 0.3),
                          rng.randrange(config.max_cols), rng.random() < flags))
        elif rng.random() < 0.5:
            slots.append((False, random_signed(rng, config.acc_width),
                          rng.randrange(config.max_cols), rng.random() < 0.5))
        else:
            slots.append((False, 0, 0, False))
    return slots


def random_command(rng: random.Random, config: Config, bus_width: int, *, add: bool,
                   keep: bool, beats: int | None = None, leftover: bool = True,
                   flags: float | None = None) -> Command:
    """A command of ``beats`` (random 0..10, mostly more than 0) random result beats with
    random partial sums (64-bit, extremes often; garbage in the ignored values), and, if
    ``leftover``, often a leftover: one more beat with its sums plus some of the next beat's,
    offered for a random number of cycles before the next ``start``."""
    per_word = bus_width // SUM_WIDTH
    words = -(-config.tiles // per_word)
    if beats is None:
        beats = 0 if rng.random() < 0.05 else rng.randint(1, 10)
    if flags is None:
        flags = rng.choice((0.0, 0.05, 0.3))
    slots = [random_slots(rng, config, flags=flags) for _ in range(beats)]
    psums = [[random_signed(rng, SUM_WIDTH, 0.3) for _ in range(per_word * words)]
             for _ in range(beats)]
    extra = None
    if leftover and rng.random() < 0.7:
        extra = random_command(rng, config, bus_width, add=add, keep=keep, beats=2,
                               leftover=False, flags=0.5)
        # Only the first beat's sums and part of the second's: that beat never completes.
        extra.words = extra.words[:words + rng.randrange(words)]
    return Command(config, bus_width, slots, psums, add=add, keep=keep, leftover=extra,
                   leftover_cycles=rng.randint(1, 2 * words + 3))


class Model:
    """The handshake rules of the docstring, cycle by cycle: the sums register (``loaded``
    words of the next beat's sums; ``sums.ready`` while not full or when its beat leaves) and
    the packer (``packed``: it holds a beat, ``sending`` its word on ``raw``; a beat goes in
    when it is empty or sends its last word in that cycle)."""

    def __init__(self, words: int):
        self.words = words
        self.loaded, self.packed, self.sending = 0, False, 0

    def start(self):
        self.loaded, self.packed, self.sending = 0, False, 0

    def outputs(self, add, keep, results_valid, o_ready, raw_ready):
        """``(results.ready, sums.ready, o.valid, raw.valid)`` in a cycle without start."""
        full = self.loaded == self.words
        sums_in = full if add else True
        last = self.sending == self.words - 1
        packer_free = not self.packed or (raw_ready and last)
        results_ready = sums_in and (packer_free if keep else o_ready)
        take = results_valid and results_ready
        sums_ready = add and (not full or take)
        return results_ready, sums_ready, results_valid and not keep and sums_in, self.packed

    def step(self, add, keep, take, load, sent):
        full = self.loaded == self.words
        if load:
            self.loaded = (0 if full else self.loaded) + 1
        elif take and add:
            self.loaded = 0
        if take and keep:
            self.packed, self.sending = True, 0
        elif sent:
            self.sending += 1
            if self.sending == self.words:
                self.packed = False


def run_commands(dut: PartialSums, commands: list, *, idle: float = 0.0,
                 backpressure: float = 0.0, seed: int = 0, drain: int = 6,
                 max_cycles: int = 5000, probe: bool = False, offer_at_start: bool = True) -> list:
    """Run ``commands`` one after the other, each after a ``start`` pulse with its mode.

    Every cycle: each input offers its next beat/word unless it idles (with ``idle``; an
    offered one is held until taken), each output is ready unless it backpressures (with
    ``backpressure``); ``o`` and ``raw`` are checked as they deliver (bit-exact, in order,
    nothing surplus), an output not taken must hold its valid and payload, every handshake
    signal must match :class:`Model` and ``overflow`` the flagged valid slots taken in keep
    mode since ``start``. After a command, a drain window with both outputs ready must see
    nothing more; then its leftover (if any) is offered with ``o`` never ready. In a start
    cycle (add or keep) the next command's first beat and word may be offered and must not
    be taken. With ``probe``, every cycle also checks that ``results.ready`` and
    ``sums.ready`` do not depend on their ``valid``, nor ``o.valid`` and ``raw.valid`` on
    their ``ready``. Returns per command the cycles (from 0, the cycle after ``start``) in which
    beats and words were taken and delivered."""
    m = Module()
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-8)
    rng = random.Random(seed)
    records = []
    model = Model(dut.words_per_beat)
    r_bits, s_bits = dut.results.payload.as_value(), dut.sums.payload
    o_bits, raw_bits = dut.o.payload.as_value(), dut.raw.payload
    out_layout = dut.o.payload.shape()

    async def bench(ctx):
        state = {"b_on": False, "w_on": False, "held_o": None, "held_raw": None,
                 "overflow": False}

        async def cycle(n, cmd, queues, record, cycle_no, *, idle_now, o_ready, raw_ready,
                        start=False):
            """One clock cycle; ``queues``: indices into the stimulus and expectations."""
            bi, wi = queues["bi"], queues["wi"]
            if not state["b_on"] and bi < len(cmd.results) and rng.random() >= idle_now:
                state["b_on"] = True
                ctx.set(r_bits, cmd.results[bi])
            if not state["w_on"] and wi < len(cmd.words) and rng.random() >= idle_now:
                state["w_on"] = True
                ctx.set(s_bits, cmd.words[wi])
            b_on, w_on = state["b_on"], state["w_on"]
            ctx.set(dut.results.valid, b_on)
            ctx.set(dut.sums.valid, w_on)
            ctx.set(dut.o.ready, o_ready)
            ctx.set(dut.raw.ready, raw_ready)
            ctx.set(dut.start, start)
            if probe:
                for flipped, port, value in ((dut.sums.valid, dut.sums.ready, w_on),
                                             (dut.results.valid, dut.results.ready, b_on),
                                             (dut.o.ready, dut.o.valid, o_ready),
                                             (dut.raw.ready, dut.raw.valid, raw_ready)):
                    before = ctx.get(port)
                    ctx.set(flipped, not value)
                    assert ctx.get(port) == before, (
                        f"command {n} cycle {cycle_no}: {port.name} depends on {flipped.name}")
                    ctx.set(flipped, value)
            (_, _, r_ready, s_ready, o_valid, o_payload, raw_valid,
             raw_payload) = await ctx.tick().sample(
                dut.results.ready, dut.sums.ready, dut.o.valid, o_bits, dut.raw.valid,
                raw_bits)
            where = f"command {n} cycle {cycle_no}"
            if start:
                if cmd.add or cmd.keep:
                    assert not (r_ready and b_on), f"{where}: a beat taken in the start cycle"
                    assert not (s_ready and w_on), f"{where}: a word taken in the start cycle"
                    assert not o_valid, f"{where}: o.valid in the start cycle"
                model.start()
                state["held_o"] = state["held_raw"] = None
                state["overflow"] = False
                assert not ctx.get(dut.overflow), f"{where}: overflow not cleared by start"
                return
            expected = model.outputs(cmd.add, cmd.keep, b_on, o_ready, raw_ready)
            got = (bool(r_ready), bool(s_ready), bool(o_valid), bool(raw_valid))
            names = ("results.ready", "sums.ready", "o.valid", "raw.valid")
            for name, want, have in zip(names, expected, got):
                assert want == have, f"{where}: {name} {int(have)}, the docstring says {int(want)}"
            # A valid output not taken holds its payload.
            for key, valid, ready, payload in (("held_o", o_valid, o_ready, o_payload),
                                               ("held_raw", raw_valid, raw_ready, raw_payload)):
                if state[key] is not None:
                    assert valid and payload == state[key], f"{where}: {key[5:]} not held"
                state[key] = payload if valid and not ready else None
            take, load = b_on and r_ready, w_on and s_ready
            sent = raw_valid and raw_ready
            model.step(cmd.add, cmd.keep, take, load, sent)
            if take:
                state["overflow"] |= cmd.flagged[bi]
                record["results"].append(cycle_no)
                queues["bi"] += 1
                state["b_on"] = False
            if load:
                record["sums"].append(cycle_no)
                queues["wi"] += 1
                state["w_on"] = False
            if o_valid and o_ready:
                oi = queues["oi"]
                assert oi < len(cmd.o), f"{where}: surplus o beat"
                assert o_payload == cmd.o[oi], (
                    f"{where}: o beat {oi}: got {describe(out_layout, o_payload)}, expected "
                    f"{describe(out_layout, cmd.o[oi])}")
                record["o"].append(cycle_no)
                queues["oi"] += 1
            if sent:
                ri = queues["ri"]
                assert ri < len(cmd.raw), f"{where}: surplus raw word"
                assert raw_payload == cmd.raw[ri], (
                    f"{where}: raw word {ri}: got {raw_payload:#x}, expected {cmd.raw[ri]:#x}")
                record["raw"].append(cycle_no)
                queues["ri"] += 1
            assert ctx.get(dut.overflow) == state["overflow"], f"{where}: overflow flag"

        for n, cmd in enumerate(commands):
            record = {"results": [], "sums": [], "o": [], "raw": []}
            queues = dict(bi=0, wi=0, oi=0, ri=0)
            ctx.set(dut.add, cmd.add)
            ctx.set(dut.keep, cmd.keep)
            # The previous command's (or leftover's) offers are withdrawn at its end.
            state["b_on"] = state["w_on"] = False
            await cycle(n, cmd, queues, record, -1,
                        idle_now=idle if offer_at_start and (cmd.add or cmd.keep) else 1.0,
                        o_ready=False, raw_ready=False, start=True)
            count = 0
            while (queues["bi"] < len(cmd.results) or queues["wi"] < len(cmd.words)
                   or queues["oi"] < len(cmd.o) or queues["ri"] < len(cmd.raw)):
                assert count < max_cycles, f"command {n} hung: {queues}"
                await cycle(n, cmd, queues, record, count, idle_now=idle,
                            o_ready=rng.random() >= backpressure,
                            raw_ready=rng.random() >= backpressure)
                count += 1
            assert not state["b_on"] and not state["w_on"]
            for _ in range(drain):                    # nothing more, outputs ready
                await cycle(n, cmd, queues, record, count, idle_now=1.0, o_ready=True,
                            raw_ready=True)
                count += 1
            if cmd.leftover is not None:              # dropped by the next start
                extra = {"results": [], "sums": [], "o": [], "raw": []}
                extra_queues = dict(bi=0, wi=0, oi=0, ri=0)
                for k in range(cmd.leftover_cycles):
                    raw_ready = (cmd.leftover_raw_ready[k] if cmd.leftover_raw_ready
                                 else rng.random() < 0.3)
                    await cycle(n, cmd.leftover, extra_queues, extra, count + k, idle_now=idle,
                                o_ready=False, raw_ready=raw_ready)
            records.append(record)

    sim.add_testbench(bench)
    sim.run()
    return records


# (name, config, bus_width): the defaults with P == tiles (W 1) and P < tiles (W 2), P 1 with
# wide beats (W 8), one-slot beats in wide words (P 8), sizes that are not powers of two with a
# 64-bit accumulator (P 3, W 1), and a last word with a value beyond tiles (tiles 5, P 2, W 3).
CONFIGS = [
    ("t4-p4", Config(), 256),
    ("t4-p2", Config(), 128),
    ("t8-p1", Config(tiles=8, col_block=32), 64),
    ("t1-p8", Config(tiles=1, col_block=1), 512),
    ("t3-p3", Config(tiles=3, col_block=7, acc_width=64), 192),
    ("t5-p2", Config(tiles=5, acc_width=34), 128),
]
MODES = {"pass": (False, False), "add": (True, False), "keep": (False, True),
         "add-keep": (True, True)}
# (idle, backpressure): free flow, both sides random, starved inputs, stalled outputs.
TRAFFIC = [(0.0, 0.0), (0.3, 0.5), (0.8, 0.1), (0.1, 0.9)]


@pytest.mark.parametrize("traffic", TRAFFIC, ids=lambda t: f"idle{t[0]}-bp{t[1]}")
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name, config, bus_width", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_random_commands(name, config, bus_width, mode, traffic):
    """Three commands of the mode, each after ``start`` (the leftovers of the one before must
    not reach it), every output and handshake checked; the handshake-independence probe in
    the mixed traffic."""
    idle, backpressure = traffic
    add, keep = MODES[mode]
    seed = seed_from_env(default=sum(map(ord, name + mode)) * 100 + int(idle * 10) * 10
                         + int(backpressure * 10))
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    commands = [random_command(rng, config, bus_width, add=add, keep=keep) for _ in range(3)]
    dut = PartialSums(config, bus_width=bus_width)
    records = run_commands(dut, commands, idle=idle, backpressure=backpressure, seed=seed,
                           probe=traffic == (0.3, 0.5))
    for cmd, record in zip(commands, records):
        assert len(record["results"]) == len(cmd.results)
        assert len(record["sums"]) == len(cmd.words)
        assert len(record["o"]) == len(cmd.o) and len(record["raw"]) == len(cmd.raw)


def test_modes_change_between_commands():
    """Commands through every mode in turn, each after ``start``: leftovers of one mode never
    reach the next; the handshake-independence probe every cycle."""
    seed = seed_from_env(default=77)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    order = ["add-keep", "add", "keep", "pass", "add", "add-keep", "pass", "keep", "add-keep"]
    for config, bus_width in ((Config(tiles=3, col_block=7), 128), (Config(), 256)):
        commands = [random_command(rng, config, bus_width, add=MODES[mode][0],
                                   keep=MODES[mode][1]) for mode in order]
        run_commands(PartialSums(config, bus_width=bus_width), commands, idle=0.2,
                     backpressure=0.3, seed=seed, probe=True)


def test_leftovers_are_dropped_by_start():
    """Directed leftovers, ``W`` 3: add mode, two of a beat's three sums words taken and the
    beat never taken; keep mode, a beat in the packer with one of its words sent and two not;
    add + keep, a full sums register behind a packer never drained. The next command (same
    mode) is exact, and needs its own ``W`` words before its first beat."""
    seed = seed_from_env(default=21)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    config, bus_width = Config(tiles=5), 128
    for add, keep in ((True, False), (False, True), (True, True)):
        first = random_command(rng, config, bus_width, add=add, keep=keep, beats=2,
                               leftover=False)
        extra = random_command(rng, config, bus_width, add=add, keep=keep, beats=2,
                               leftover=False, flags=1.0)
        extra.results = extra.results[:1]
        extra.words = extra.words[:2 if not keep else 6]
        first.leftover, first.leftover_cycles = extra, 8
        # keep: the beat goes in in cycle 0, its first word is sent in cycle 1, no other.
        first.leftover_raw_ready = [False, True] + [False] * 6 if not add else [False] * 8
        second = random_command(rng, config, bus_width, add=add, keep=keep, beats=3,
                                leftover=False)
        records = run_commands(PartialSums(config, bus_width=bus_width), [first, second],
                               seed=seed)
        if add:
            assert records[1]["sums"][:3] == [0, 1, 2]
            assert records[1]["results"][0] == 3


def test_pass_through_is_combinational():
    """Neither ``add`` nor ``keep``: ``o`` is ``results`` in the same instant, each valid
    slot's value sign-extended to 64 bits, invalid slots 0, the other fields unchanged;
    ``results.ready`` is ``o.ready``; ``sums.ready`` and ``raw.valid`` low."""
    seed = seed_from_env(default=31)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    for name, config, bus_width in CONFIGS:
        dut = PartialSums(config, bus_width=bus_width)
        cmd = random_command(rng, config, bus_width, add=False, keep=False, beats=40,
                             leftover=False, flags=0.3)
        m = Module()
        m.submodules.dut = dut
        sim = Simulator(m)
        sim.add_clock(1e-8)

        async def bench(ctx, dut=dut, cmd=cmd):
            ctx.set(dut.sums.valid, 1)
            for j, (beat, out) in enumerate(zip(cmd.results, cmd.o)):
                valid, ready = rng.random() < 0.7, rng.random() < 0.7
                ctx.set(dut.results.payload.as_value(), beat)
                ctx.set(dut.results.valid, valid)
                ctx.set(dut.o.ready, ready)
                assert ctx.get(dut.o.payload.as_value()) == out, f"{name} beat {j}"
                assert ctx.get(dut.o.valid) == valid and ctx.get(dut.results.ready) == ready
                assert not ctx.get(dut.sums.ready) and not ctx.get(dut.raw.valid)
                if j % 4 == 0:
                    await ctx.tick()
                assert not ctx.get(dut.overflow)

        sim.add_testbench(bench)
        sim.run()


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name, config, bus_width",
                         [CONFIGS[0], CONFIGS[1], CONFIGS[2], CONFIGS[5]],
                         ids=[CONFIGS[i][0] for i in (0, 1, 2, 5)])
def test_unstalled_cycles(name, config, bus_width, mode):
    """Inputs offered from cycle 0, outputs always ready (W 1, 2, 8, 3): pass-through takes and
    delivers beat ``j`` in cycle ``j``; add mode loads word ``k`` in cycle ``k`` and passes beat
    ``j`` in cycle ``W (j + 1)`` (with ``W`` 1 one beat per cycle from the cycle after the
    first word, ``latency`` 0); keep mode takes beat ``j`` in cycle ``W j`` and sends its words
    in ``W j + 1 .. W j + W`` (``raw_latency`` 1, one word per cycle sustained, the next beat
    taken as the last word goes); add + keep both, ``W`` cycles later."""
    seed = seed_from_env(default=5)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    dut = PartialSums(config, bus_width=bus_width)
    w = dut.words_per_beat
    assert (dut.latency, dut.raw_latency) == (0, 1)
    add, keep = MODES[mode]
    commands = [random_command(rng, config, bus_width, add=add, keep=keep, beats=12,
                               leftover=False) for _ in range(2)]
    n = 12
    for record in run_commands(dut, commands, seed=seed, offer_at_start=False):
        if not add and not keep:
            taken = list(range(n))
        else:
            taken = [w * (j + 1) if add else w * j for j in range(n)]
        assert record["results"] == taken
        assert record["sums"] == (list(range(n * w)) if add else [])
        assert record["o"] == ([] if keep else [t + dut.latency for t in taken])
        assert record["raw"] == ([t + dut.raw_latency + k for t in taken for k in range(w)]
                                 if keep else [])


def test_sums_wrap_at_64_bits():
    """Accumulator plus partial sum leaving int64 wraps (the golden model's rule), on ``o``
    and in ``raw``; a 48-bit accumulator is sign-extended before the add."""
    config, bus_width = Config(tiles=3, col_block=3, acc_width=64), 256
    slots = [(True, INT64_MAX, 0, False), (True, INT64_MIN, 1, False), (True, -1, 2, False)]
    psums = [[INT64_MAX, INT64_MIN, INT64_MIN, 123]]
    for keep in (False, True):
        cmd = Command(config, bus_width, [slots], psums, add=True, keep=keep)
        if keep:                      # MAX + MAX wraps to -2, MIN + MIN to 0, -1 + MIN to MAX
            assert cmd.raw == [(-2 & MASK64) | (0 << 64) | (INT64_MAX << 128)]
        run_commands(PartialSums(config, bus_width=bus_width), [cmd], seed=2)
    config = Config(tiles=2, col_block=2)                 # acc_width 48
    slots = [(True, -(1 << 47), 0, False), (True, -1, 1, False)]
    cmd = Command(config, 128, [slots], [[0, 5]], add=True, keep=True)
    assert cmd.raw == [(-(1 << 47) & MASK64) | (4 << 64)]
    run_commands(PartialSums(config, bus_width=128), [cmd], seed=2)


def test_overflow_flag_in_keep_mode():
    """``overflow`` is set by a flagged valid slot taken in keep mode (with or without
    ``add``) and stays set, not by a flagged invalid slot nor outside keep mode (``o``
    carries the flags there); ``start`` clears it. (Checked every cycle by the scoreboard.)"""
    config, bus_width = Config(tiles=4, col_block=4), 128

    def command(flag_valid, flag_invalid, add, keep):
        first = [(True, 5, 0, False), (False, 0, 1, flag_invalid), (True, -7, 2, flag_valid),
                 (False, 0, 3, False)]
        second = [(True, 1, 0, False), (False, 0, 1, flag_invalid), (False, 0, 2, False),
                  (False, 0, 3, False)]
        psums = [[3, 0, 4, 0], [5, 0, 0, 0]]
        return Command(config, bus_width, [first, second], psums, add=add, keep=keep)

    commands = [
        command(True, False, False, True),      # set
        command(False, True, True, True),       # cleared by start; an invalid slot's flag
        command(True, True, False, False),      # flags on o only
        command(True, False, True, False),
        command(False, False, True, True),
        command(True, True, True, True),        # set with add
    ]
    assert [c.overflow for c in commands] == [True, False, False, False, False, True]
    run_commands(PartialSums(config, bus_width=bus_width), commands, seed=1)


def test_layouts_and_properties():
    for _, config, bus_width in CONFIGS:
        dut = PartialSums(config, bus_width=bus_width)
        p = bus_width // 64
        assert (dut.config, dut.bus_width, dut.values_per_word) == (config, bus_width, p)
        assert dut.words_per_beat == -(-config.tiles // p)
        assert (dut.latency, dut.raw_latency) == (0, 1)
        layout, base = dut.o.payload.shape(), array_result_layout(config)
        assert layout == array_result_layout(config, SUM_WIDTH)
        assert layout["value"].shape == data.ArrayLayout(signed(SUM_WIDTH), config.tiles)
        for name in ("overflow", "column", "valid"):
            assert layout[name].shape == base[name].shape
        assert dut.results.payload.shape() == base
        assert dut.sums.payload.shape() == dut.raw.payload.shape() == unsigned(bus_width)
        assert not hasattr(dut, "total")
    assert [PartialSums(c, bus_width=b).words_per_beat for _, c, b in CONFIGS] == [
        1, 2, 8, 1, 1, 3]


@pytest.mark.parametrize("bus_width, message", [
    (0, r"bus_width must be in \[64, 4096\], not 0"),
    (32, r"bus_width must be in \[64, 4096\], not 32"),
    (96, r"bus_width must be a multiple of 64 in \[64, 4096\], not 96"),
    (8192, r"bus_width must be in \[64, 4096\], not 8192"),
    (4160, r"bus_width must be in \[64, 4096\], not 4160"),
    (256.0, r"bus_width must be an integer in \[64, 4096\], not 256.0"),
    (True, r"bus_width must be an integer in \[64, 4096\], not True"),
    ("256", r"bus_width must be an integer in \[64, 4096\], not '256'"),
])
def test_bus_width_is_checked(bus_width, message):
    with pytest.raises(ValueError, match=message):
        PartialSums(Config(), bus_width=bus_width)


def test_config_must_be_a_config():
    with pytest.raises(ValueError, match="config must be a Config"):
        PartialSums({"tiles": 4}, bus_width=256)
    with pytest.raises(ValueError, match="config must be a Config"):
        PartialSums(None, bus_width=256)
    with pytest.raises(TypeError):
        PartialSums(Config())                       # bus_width has no default


VERILOG_CONFIGS = [(Config(), 256), (Config(tiles=1, col_block=1), 64),
                   (Config(tiles=5), 128), (Config(tiles=3, col_block=7), 4096)]


@pytest.mark.parametrize("config, bus_width", VERILOG_CONFIGS)
def test_verilog(config, bus_width):
    text = generate_verilog(PartialSums(config, bus_width=bus_width), "partial_sums")
    assert "module partial_sums" in text
    for port in ("results__ready", "sums__ready", "o__valid", "raw__valid", "overflow"):
        assert port in text


@pytest.mark.sim
@pytest.mark.parametrize("config, bus_width", VERILOG_CONFIGS[:3])
def test_verilator_lint_clean(config, bus_width):
    lint_verilog(generate_verilog(PartialSums(config, bus_width=bus_width), "partial_sums"),
                 "partial_sums")
