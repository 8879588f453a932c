"""The one in-order scoreboard of every stream bench (cocotb on Verilog, Amaranth's simulator).

The expected beats are known before the run (the reference models compute them). Each beat the
monitor takes from ``o`` is compared, bit-exactly, with the next expected one, the moment it
arrives:

- a *wrong or reordered* beat fails at its position, showing the index and both values (and,
  when the received value is a later expected beat, which one: reordered or a beat lost);
- a *surplus* beat (one more than expected) fails when it arrives;
- a *late* beat fails when its deadline (a cycle by which beat ``k`` must have arrived, where a
  timing contract gives one) passes without it, or when it arrives after it;
- a *missing* beat fails at the end (:meth:`Scoreboard.finish`, or when the bench gives up
  waiting);
- after the last expected beat the bench holds ``o.ready`` high with every input idle for a
  drain window of :data:`DRAIN_CYCLES` cycles; any beat offered then fails
  (:meth:`Scoreboard.drained`).

Beats are compared as the packed bits of the output payload (bit-exact, whatever the layout);
``describe`` renders them readably in messages. Where a bench knows every beat's exact cycle
(the handshake reference, :func:`maskprop.tb.timing_reference.check_timing`), that check comes
on top of this one.
"""

__all__ = ["DRAIN_CYCLES", "ScoreboardError", "Scoreboard"]

#: Idle cycles with ``o.ready`` high after the last expected beat, in which nothing may come out:
#: more than any block's pipeline depth (the deepest, the tile array, holds a few groups).
DRAIN_CYCLES = 32


class ScoreboardError(AssertionError):
    """The output stream differs from the expected beats."""


class Scoreboard:
    """In-order, bit-exact check of one output stream against ``expected`` beats.

    ``deadlines`` (optional): the cycle by which each expected beat must have arrived.
    ``describe`` turns a beat into something readable for messages. ``seed`` is quoted in every
    failure, so that it can be rerun with ``MASKPROP_SEED``.
    """

    def __init__(self, expected, *, name: str = "o", deadlines=None, describe=None,
                 seed=None):
        self.expected = list(expected)
        self.name = name
        self.deadlines = None if deadlines is None else list(deadlines)
        if self.deadlines is not None and len(self.deadlines) != len(self.expected):
            raise ValueError(f"{len(self.deadlines)} deadlines for {len(self.expected)} beats")
        self.describe = describe or (lambda beat: beat)
        self.seed = seed
        self.cycles: list = []          # arrival cycle of every beat received so far

    @property
    def received(self) -> int:
        return len(self.cycles)

    @property
    def complete(self) -> bool:
        """Every expected beat has arrived."""
        return self.received == len(self.expected)

    def _fail(self, message: str):
        rerun = "" if self.seed is None else f" (seed {self.seed}: rerun with " \
                                             f"MASKPROP_SEED={self.seed})"
        raise ScoreboardError(f"{self.name}: {message}{rerun}")

    def _show(self, beat) -> str:
        """Packed bits in hex, then the fields ``describe`` gives them."""
        shown = self.describe(beat)
        if not isinstance(beat, int):
            return f"{shown}"
        return f"{beat:#x}" if shown == beat else f"{beat:#x} = {shown}"

    def receive(self, beat, cycle: int):
        """Check the beat that arrived in ``cycle`` against the next expected one."""
        index = self.received
        if index >= len(self.expected):
            self._fail(f"surplus beat {index} in cycle {cycle}: {self._show(beat)}; only "
                       f"{len(self.expected)} expected")
        want = self.expected[index]
        if beat != want:
            later = [k for k in range(index + 1, len(self.expected)) if self.expected[k] == beat]
            hint = (f" (it is expected beat {later[0]}: reordered, or beats lost)"
                    if later else "")
            self._fail(f"beat {index} (cycle {cycle}) is {self._show(beat)}, expected "
                       f"{self._show(want)}{hint}")
        if self.deadlines is not None and cycle > self.deadlines[index]:
            self._fail(f"beat {index} late: arrived in cycle {cycle}, due by cycle "
                       f"{self.deadlines[index]}")
        self.cycles.append(cycle)

    def overdue(self, cycle: int):
        """Called once per cycle with no beat arriving: fail if the next beat's deadline has
        passed (a late beat fails the moment it is late, not at the end)."""
        index = self.received
        if (self.deadlines is not None and index < len(self.expected)
                and cycle > self.deadlines[index]):
            self._fail(f"beat {index} late: not arrived by cycle {self.deadlines[index]} "
                       f"(now {cycle}); expected {self._show(self.expected[index])}")

    def finish(self, cycle: int | None = None):
        """End of the run: fail if an expected beat never arrived."""
        if not self.complete:
            index = self.received
            when = "" if cycle is None else f" after {cycle} cycles"
            self._fail(f"{len(self.expected) - index} beat(s) missing{when}: received "
                       f"{index} of {len(self.expected)}; the first missing is beat {index}, "
                       f"{self._show(self.expected[index])}")

    def drained(self, beat, drain_cycle: int):
        """A beat was offered in the drain window (``drain_cycle`` cycles after the run):
        always a failure."""
        self._fail(f"surplus beat offered {drain_cycle} cycle(s) into the drain window, after "
                   f"all {len(self.expected)} expected beats: {self._show(beat)}")
