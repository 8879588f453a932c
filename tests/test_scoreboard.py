# amaranth: UnusedElaboratable=no
"""The scoreboard cannot miss: fed a wrong, reordered, surplus, missing or late beat, or a beat in
the drain window, it fails, naming the beat; directly, and through the Amaranth-simulator bench on
a block that misbehaves. (The cocotb bench uses the same scoreboard:
tests/test_stream_bench.py.)"""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.tb.amaranth_bench import run_stream
from maskprop.tb.scoreboard import DRAIN_CYCLES, Scoreboard, ScoreboardError
from maskprop.tb.traffic import TrafficSchedule


# --- the scoreboard on its own ---------------------------------------------------------------

def test_in_order_beats_on_time_pass():
    board = Scoreboard([1, 2, 3], deadlines=[0, 1, 5])
    board.receive(1, 0)
    board.receive(2, 1)
    for cycle in (2, 3, 4, 5):
        board.overdue(cycle)
    assert not board.complete
    board.receive(3, 5)
    board.finish()
    assert board.complete and board.cycles == [0, 1, 5]


def test_wrong_beat_fails_with_index_and_both_values():
    board = Scoreboard([0x10, 0x20, 0x30], seed=42)
    board.receive(0x10, 0)
    with pytest.raises(ScoreboardError, match=r"beat 1 \(cycle 3\) is 0x21, expected 0x20 "
                                              r"\(seed 42: rerun with MASKPROP_SEED=42\)"):
        board.receive(0x21, 3)


def test_reordered_beats_fail_at_the_first_out_of_place():
    board = Scoreboard([1, 2, 3, 4])
    board.receive(1, 0)
    with pytest.raises(ScoreboardError, match=r"beat 1 .* is 0x3, expected 0x2 \(it is expected "
                                              r"beat 2: reordered, or beats lost\)"):
        board.receive(3, 1)


def test_surplus_beat_fails_on_arrival():
    board = Scoreboard([7])
    board.receive(7, 0)
    with pytest.raises(ScoreboardError, match=r"surplus beat 1 in cycle 4: 0x7; only 1 expected"):
        board.receive(7, 4)


def test_missing_beat_fails_at_the_end():
    board = Scoreboard([5, 6, 7])
    board.receive(5, 0)
    with pytest.raises(ScoreboardError, match=r"2 beat\(s\) missing after 100 cycles: received "
                                              r"1 of 3; the first missing is beat 1, 0x6"):
        board.finish(100)


def test_late_beat_fails_on_arrival_and_when_overdue():
    board = Scoreboard([5, 6], deadlines=[2, 4])
    board.receive(5, 2)                                     # on its deadline: fine
    with pytest.raises(ScoreboardError, match=r"beat 1 late: arrived in cycle 5, due by "
                                              r"cycle 4"):
        board.receive(6, 5)
    board = Scoreboard([5, 6], deadlines=[2, 4])
    board.receive(5, 1)
    board.overdue(4)                                        # not late yet
    with pytest.raises(ScoreboardError, match=r"beat 1 late: not arrived by cycle 4 \(now 5\)"):
        board.overdue(5)


def test_beat_in_the_drain_window_fails():
    board = Scoreboard([])
    board.finish()
    with pytest.raises(ScoreboardError, match=r"surplus beat offered 3 cycle\(s\) into the "
                                              r"drain window, after all 0 expected beats: 0x9"):
        board.drained(9, 3)


def test_deadlines_must_match_the_beats():
    with pytest.raises(ValueError, match=r"2 deadlines for 3 beats"):
        Scoreboard([1, 2, 3], deadlines=[1, 2])


# --- the traffic schedule both benches share ------------------------------------------------

def test_schedule_feeds_phases_in_order_and_holds_an_offered_beat():
    """A phase starts when the previous one has sent everything; an offered beat stays offered,
    unchanged, until it is taken."""
    import random

    schedule = TrafficSchedule({"a": [1, 2], "b": [3]}, random.Random(0), phases=[["a"], ["b"]])
    offered = []
    for ready in [False, True, True, False, True]:
        drive = schedule.drive()
        offered.append((dict(drive.payloads), dict(drive.valid)))
        schedule.sampled({port: ready for port in schedule.active}, o_valid=False)
    assert offered == [({"a": 1}, {"a": True, "b": False}),     # offered, not taken
                       ({}, {"a": True, "b": False}),           # still offered, taken
                       ({"a": 2}, {"a": True, "b": False}),     # next beat, taken
                       ({"b": 3}, {"a": False, "b": True}),     # phase b starts
                       ({}, {"a": False, "b": True})]
    assert schedule.record.port_cycles == {"a": [1, 2], "b": [4]}
    assert not schedule.sending


# --- the Amaranth bench on blocks that misbehave --------------------------------------------

class Wire(wiring.Component):
    """A correct stream wire: ``o`` is ``i``."""
    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
        return m


class LateGhost(Wire):
    """A wire that also offers one beat of its own (``0xAB``) in cycle ``ghost`` after reset."""

    def __init__(self, ghost: int):
        super().__init__()
        self.ghost = ghost

    def elaborate(self, platform):
        m = Module()
        cycle = Signal(range(self.ghost + 2))
        gone = Signal()
        with m.If(cycle <= self.ghost):
            m.d.sync += cycle.eq(cycle + 1)
        haunting = (cycle == self.ghost) | ((cycle > self.ghost) & ~gone)
        with m.If(haunting & ~self.i.valid):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(0xAB)]
            with m.If(self.o.ready):
                m.d.sync += gone.eq(1)
        with m.Else():
            m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload),
                         self.i.ready.eq(self.o.ready)]
        return m


TRAFFIC = dict(idle=0.3, backpressure=0.4, seed=3)


def test_bench_passes_a_correct_block():
    run = run_stream(Wire(), list(range(40)), list(range(40)), **TRAFFIC)
    assert [int(beat) for beat in run.outputs] == list(range(40))


def test_bench_catches_a_wrong_beat():
    with pytest.raises(ScoreboardError, match=r"Wire.o: beat 5 \(cycle \d+\) is 0x5, expected 0x6"):
        run_stream(Wire(), list(range(10)), [0, 1, 2, 3, 4, 6, 7, 8, 9, 10], **TRAFFIC)


def test_bench_catches_reordered_beats():
    with pytest.raises(ScoreboardError, match=r"beat 2 .* is 0x2, expected 0x3 \(it is expected "
                                              r"beat 3: reordered"):
        run_stream(Wire(), [0, 1, 2, 3, 4], [0, 1, 3, 2, 4], **TRAFFIC)


def test_bench_catches_a_surplus_beat_during_the_run():
    with pytest.raises(ScoreboardError, match=r"surplus beat 4 in cycle \d+: 0x4; only 4 "
                                              r"expected"):
        run_stream(Wire(), [0, 1, 2, 3, 4], [0, 1, 2, 3], **TRAFFIC)


def test_bench_catches_a_surplus_beat_in_the_drain_window():
    """All expected beats arrived and every input was taken: the block's own beat after that
    is caught by the drain window."""
    with pytest.raises(ScoreboardError, match=r"into the drain window, after all 3 expected "
                                              r"beats: 0xab"):
        run_stream(LateGhost(ghost=DRAIN_CYCLES // 2), [1, 2, 3], [1, 2, 3])


def test_bench_catches_a_missing_beat():
    with pytest.raises(ScoreboardError, match=r"1 beat\(s\) missing after 200 cycles: received "
                                              r"3 of 4; the first missing is beat 3, 0x3"):
        run_stream(Wire(), [0, 1, 2], [0, 1, 2, 3], max_cycles=200, **TRAFFIC)


def test_bench_catches_a_late_beat():
    """Unstalled, the wire delivers beat ``k`` in cycle ``k``: on time for deadlines ``k``,
    late for any earlier one, failing in the cycle it becomes late."""
    run_stream(Wire(), [5, 6, 7], [5, 6, 7], deadlines=[0, 1, 2])
    with pytest.raises(ScoreboardError, match=r"beat 2 late: arrived in cycle 2, due by "
                                              r"cycle 1"):
        run_stream(Wire(), [5, 6, 7], [5, 6, 7], deadlines=[0, 1, 1])
    with pytest.raises(ScoreboardError, match=r"beat 0 late: not arrived by cycle 0 \(now 1\)"):
        run_stream(Wire(), [5, 6, 7], [5, 6, 7], deadlines=[0, 1, 2], backpressure=1.0)
