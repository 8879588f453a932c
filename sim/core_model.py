"""Cycle model of one command of the accelerator core (``hw/core.py``), memory included.

:func:`core_cycles` predicts, for a forward, backward-data or backward-weight pass in dense or
sparse mode, the core's ``cycles_busy`` counter (``CONTROL.start`` to ``STATUS.done``) split
into its phases -
the command **check**, the **load** of the Y buffer, the **run** (walk, compute, write-back,
with the X scratchpad's load streaming in) and the **drain** of the last write - together with the tile array's
``compute_cycles`` (the cycle model's :meth:`~maskprop.host.driver.ArrayPass.model_cycles`) and
``stall_cycles``, and the bytes read and written per tensor (the data-movement model's
:func:`~maskprop.sim.data_movement.pass_traffic`). The memory is a parameter
(:class:`MemoryTiming`: read latency, write latencies, bandwidth); :data:`AXI_RAM` is the
on-chip RAM of :class:`~maskprop.hw.core_system.CoreSystem`.

Why it is exact
---------------
The core is a chain of blocks joined by ready/valid handshakes, with no arbitration and no
choice that depends on data other than what the pass's chunk lists already say (which rows and
chunks are live, each chunk's decoder beats, each row-block's column groups: the cycle
model's :class:`~maskprop.sim.cycle_model.IssuedChunks` and
:func:`~maskprop.sim.cycle_model.column_groups`). So every handshake happens in the first
cycle in which all its conditions hold, and the model computes that cycle for every handshake
of the pass, in stream order, as the maximum of its conditions - each read off the RTL:

- the **command check**: one ``CHECK`` cycle, ``DIVIDE`` (18 restoring-division steps and a
  cycle that finds the step counter at 0), ten products of ``SIZE_LOAD`` + 18 multiplier steps
  + a store cycle, one ``LIMITS`` cycle (:data:`CHECK_CYCLES`); then one cycle per read command
  state (Y, X, backward-weight's ``dZ`` and, for sparse backward-data's output mask, ``A``; a
  state with nothing to read, a kept buffer's, passes in a cycle);
- the **DMA's read engine** (``hw/axi_dma.py``): a command's first AR handshake
  :attr:`~maskprop.hw.axi_dma.AxiDma.address_latency` cycles after the command, bursts of at
  most ``max_burst`` beats that do not cross 4 KiB, one AR per cycle, at most
  ``max_outstanding`` bursts from AR to last R beat, an AR only when the read FIFO
  (``max_burst * max_outstanding`` words) has room for the whole burst besides every word
  promised to it, and a word on ``read_data``
  :attr:`~maskprop.hw.axi_dma.AxiDma.read_data_latency` cycles after its R beat (the FIFO's
  output register; later if the word before it is still there);
- the **memory**: :class:`MemoryTiming`;
- ``LOADING`` ends the cycle after the last Y word is taken (at the earliest the cycle after
  ``READ_A``); ``WRITE`` offers the write command, ``WALK`` the address generator's; the X
  words are taken as they come, during the run;
- the **address generator** (``hw/address_generator.py``): row-block 0 pending
  :func:`~maskprop.hw.address_generator.walk_cycles` ``- 2`` cycles after its command; then
  one row-block pending at a time, its rows beat offered while the chunks of the row-block
  before it are walked, a row-block's chunks one per cycle from the cycle after it is taken
  for walking (once the one before it has sent its last chunk), and the next row-block pending
  once its rows beat and its walk are both taken;
- the **rows beat** waits for the tile array's row register (free in the cycle the row before
  it issues its last chunk), a free entry of the writer's row FIFO
  (``MaskpropCore.WRITER_ROW_FIFO_DEPTH`` entries) and, for the output mask, the pixel's mask
  in the mask FIFO (``MaskpropCore.MASK_FIFO_DEPTH`` entries, filled
  from the ``A`` words, one per pixel, as the FIFO has room);
- the **fetch**: the scratchpad's registered read, then a two-entry FIFO, readable the cycle
  after it is written and writable while it holds fewer than two chunks; a chunk is taken from
  the walker only from the cycle after its X word was taken from the read stream (its address:
  the window's input pixel and channel word, from the chunk's row and reduction position);
- the **tile array** (``hw/tile_array.py``): a row's first chunk enters the decoder the cycle
  after its row, each chunk when the decoder is free, ready and the chunk there; a chunk with
  ``n`` set bits yields ``ceil(n / lanes)`` beats (with a selection window, its busiest
  segment's: :func:`~maskprop.hw.index_decoder.chunk_cycles`), an all-zero chunk one cycle
  and no beat (a beat if it ends its group); each further column group replays the kept chunks; a group's
  result reaches ``o`` after the PE's and the tree's registers;
- the **back end**: the PE's registers move together when their last holds no beat or the tree
  moves; the tree's move together unless a result waits on ``o``. While one waits (the result
  skid is full) the decoder stalls once the PE is full; these cycles are followed one by
  one, and the decoder's stalls counted (``stall_cycles``);
- the **result skid** (``hw/skid_buffer.py``) between the tile array and the writer: a result
  taken when it is empty (passing through when the writer takes it at once), held until the
  writer does;
- the **output writer** (``hw/output_writer.py``): a result taken into its requantize register
  when that is free, assembled when the block register is free and the row's writer beat is
  readable; a block complete with its last result (a dead row's at once); it moves into the
  gearbox when the gearbox has sent all whole words of the blocks before it (and a row's
  remainder), which sends one word per cycle;
- the **skid buffer** (``hw/skid_buffer.py``) between the writer and the DMA: the writer's word
  is taken when the skid register is empty, the DMA takes it when ready;
- the **DMA's write engine**: AW handshakes from ``address_latency`` after the write command,
  one per cycle, at most ``max_outstanding`` bursts from AW to B (the next AW two cycles after a
  B), a word taken once its burst's AW is issued and the W register is free, on W the cycle
  after; ``write_done`` the cycle after the last burst's B, and the core idle the cycle after.

Backward-weight
---------------
A backward-weight command (``PASS.bw_operand``: the lowering's orientation, ``"a"`` or
``"dz"``) runs the same back end (tile array, result skid, writer, DMA writes) behind other
front stages, each again read off the RTL:

- the **check** takes :data:`WEIGHT_CHECK_CYCLES` (the column blocks divided once more,
  ``WEIGHT_BLOCKS``); ``READ_Y`` passes in one cycle, ``READ_X`` offers the read of the ``A``
  band and ``READ_DZ`` that of the ``dZ`` band (one cycle each), ``READ_A`` passes;
  ``LOADING`` ends the cycle after the last word of both is taken (at the earliest the cycle
  after ``READ_A``); ``WRITE`` offers the write command;
- **GATHER_Y**: the window gather (``hw/window_gather.py``) is idle and takes the Y
  operand's command at once (``"a"``: ``dZ`` with kernel 1; ``"dz"``: ``A``'s windows); the
  Y buffer always takes its words, so its last word leaves
  :func:`~maskprop.hw.window_gather.gather_cycles` later, and the gather is idle again
  ``SETUP_CYCLES + PIPELINE_CYCLES + vec * (tiles + 1)`` cycles after its command
  (``tiles = R*R*Cb*Q``, the last tile's dropped channels gone): ``GATHER_X``'s command is
  taken then;
- the **X gather** (``"a"``: ``A``'s windows, rows ``(r, t, c)``; ``"dz"``: ``dZ``, rows
  ``k``), word by word: the reader issues a word once the read stage's word is taken by the
  transposer (or is taken in that cycle) and the mask FIFO has room (at most four tiles
  between a tile's last issue and its last word out), from ``SETUP_CYCLES + 1`` after the
  command; the transposer (``hw/transposer.py``) takes word ``i`` of a tile the cycle after
  its issue, once slot ``i`` of the tile before has been sent (or is sent in that cycle);
  a tile's words leave one per cycle from the cycle after its last word was taken, an
  emitted word when the row-block buffer takes it, a dropped channel's word (beyond ``C`` in
  the last channel block) at once;
- the **row-block buffer** (``hw/row_block_buffer.py``): a block (a channel block's rows
  over all ``Q`` chunks; with ``Q = 1`` the writer cuts the rows into blocks of ``vec``) goes
  into bank ``j % 2``, whose words are taken from the cycle after the reader released the
  block two before; the block is full the cycle after its last word. The reader's passes (a
  row for one column block, every row ``blocks`` times in succession) start after the pass
  before, once the ``rows`` register is free or taken in that cycle, the bank full and, for
  a live row, the read stage free (its chunk taken by the tile array); a pass's ``rows``
  beat is offered the cycle after its start, chunk ``q`` (``0 .. lastq``, the row's last
  chunk with a structural element) read one per cycle as the stage frees: a chunk without a
  structural element costs its read cycle and is dropped, a live one is offered to the tile
  array the cycle after its read. The block's last pass releases the bank.

The rows beat and the chunks then meet the tile array and the writer exactly as the address
generator's and the fetch's do for the other passes (every output wanted: a weight gradient
has no output mask). The gathers and the buffer wait only on handshakes before them, so the
model computes the gather's words on demand, block by block ahead of the reader.

Each handshake is computed once, from handshakes before it in its stream or in the streams it
waits for, so the cost is linear in the pass's chunks, row-blocks and words (plus the cycles in
which a result waits). The tests hold the total, the compute and stall cycles and the bytes to
the RTL (``tests/test_core_model.py``).

What is not modelled
--------------------
Illegal commands and bus errors (a backward-weight the core cannot run, e.g. a reduction
beyond the row-block buffer, is refused as the host driver refuses it); a memory that refuses
AR or AW (the model's memory takes them at once: :class:`~maskprop.hw.axi_ram.AxiRam`'s two-deep
address queues never delay a beat, because a burst waits there only behind two others, whose
beats come first); the tile array's groups FIFO (16 entries) is never full, because at most
one group per register of the decoder, PE and tree is in flight.

Under random backpressure
-------------------------
A memory that pauses (or answers later than its :class:`MemoryTiming` says) only delays events:
every condition above is a maximum of earlier events' cycles, and nothing in the core goes
faster because something else was late. So with the memory's pause-free timing the model is a
lower bound of ``cycles_busy``; the difference is the cycles the pauses cost.
"""

import bisect
import math
import numbers
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from maskprop.base.config import CoreConfig, check_range
from maskprop.host.core_driver import check_core_pass
from maskprop.host.driver import ArrayPass
from maskprop.host.memory_layout import channel_words
from maskprop.host.split import BASES, CoreCommand
from maskprop.hw.accumulation_tree import AccumulationTree
from maskprop.hw.address_generator import walk_cycles
from maskprop.hw.axi import BOUNDARY_BYTES
from maskprop.hw.axi_dma import AxiDma
from maskprop.hw.axi_ram import AxiRam
from maskprop.hw.core import MaskpropCore
from maskprop.hw.sparse_pe import SparseGradPE
from maskprop.hw.tile_array import TileArray
from maskprop.hw.window_gather import PIPELINE_CYCLES, SETUP_CYCLES
from maskprop.sim.cycle_model import IssuedChunks, array_cycles, column_groups, row_chunk_cycles
from maskprop.sim.data_movement import PassTraffic, command_traffic, summed_traffic

__all__ = ["MemoryTiming", "AXI_RAM", "CoreCycles", "core_cycles", "job_cycles", "total_cycles",
           "CHECK_CYCLES", "WEIGHT_CHECK_CYCLES", "BASES"]

#: Cycles from the first busy cycle to the first read command (``MaskpropCore.CHECK_CYCLES``).
CHECK_CYCLES = MaskpropCore.CHECK_CYCLES
#: Backward-weight's: its column blocks divided once more (``MaskpropCore.WEIGHT_CHECK_CYCLES``).
WEIGHT_CHECK_CYCLES = MaskpropCore.WEIGHT_CHECK_CYCLES


_NEVER = -(1 << 62)        # "no condition": earlier than any cycle


@dataclass(frozen=True)
class MemoryTiming:
    """The memory on the core's AXI4 port, as the model sees it.

    ``read_latency``: cycles from an AR handshake to the burst's first R beat, 1..1000.
    ``write_accept_latency``: cycles from an AW handshake to the first cycle the memory takes a
    W beat of that burst, 0..1000. ``write_response_latency``: cycles from a burst's last W
    beat to its B handshake, 1..1000. ``bytes_per_cycle``: the bandwidth of each direction
    (reads and writes have channels of their own), a positive finite number, or ``None`` for
    one bus word per cycle; a beat never comes sooner than one per cycle.

    The memory answers in order, takes AR and AW at once, never pauses R or B, and serves a
    burst's beats back to back, bursts after each other: a burst's first R beat comes
    ``read_latency`` after its AR and no sooner than one beat time after the burst before it
    ended, and so on. The defaults are :class:`~maskprop.hw.axi_ram.AxiRam`'s."""
    read_latency: int = AxiRam.read_latency
    write_accept_latency: int = AxiRam.write_accept_latency
    write_response_latency: int = AxiRam.write_response_latency
    bytes_per_cycle: numbers.Real | None = None

    def __post_init__(self):
        check_range("read_latency", self.read_latency, 1, 1000)
        check_range("write_accept_latency", self.write_accept_latency, 0, 1000)
        check_range("write_response_latency", self.write_response_latency, 1, 1000)
        rate = self.bytes_per_cycle
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, numbers.Real)
                                 or not math.isfinite(rate) or rate <= 0):
            raise ValueError(f"bytes_per_cycle must be a positive finite number of bytes per "
                             f"cycle, or None for one bus word per cycle, not {rate!r}")

    def beat_time(self, bus_bytes: int):
        """Cycles per beat of one direction on a bus of ``bus_bytes``: at least 1, a
        ``Fraction`` when the bandwidth is not a whole number of beats per cycle (a float is
        taken as the decimal it prints as, as :func:`~maskprop.sim.data_movement.memory_cycles`
        does)."""
        if self.bytes_per_cycle is None:
            return 1
        rate = self.bytes_per_cycle
        rate = Fraction(str(float(rate))) if isinstance(rate, float) else Fraction(rate)
        time = Fraction(bus_bytes) / rate
        return 1 if time <= 1 else (int(time) if time.denominator == 1 else time)


#: :class:`~maskprop.hw.core_system.CoreSystem`'s on-chip memory (``hw/axi_ram.py``).
AXI_RAM = MemoryTiming()


@dataclass(frozen=True)
class CoreCycles:
    """One command on the core (:func:`core_cycles`). Phases, in cycles, which add up to
    :attr:`total` (the ``cycles_busy`` counter): ``check`` (``CHECK`` to ``LIMITS``:
    :data:`CHECK_CYCLES`, backward-weight's :data:`WEIGHT_CHECK_CYCLES`),
    ``load`` (the read commands until every X and Y word is in: the last ``LOADING`` cycle;
    backward-weight: until the ``A`` and ``dZ`` bands are in),
    ``run`` (``WRITE``, ``WALK``, and the walk, compute and write-back until the DMA takes the
    last output word; backward-weight: ``WRITE``, the two gathers, the row-block buffer's
    passes, compute and write-back), ``drain`` (that word's write, its response, ``write_done``). Also the
    tile array's ``compute`` cycles (its ``compute_cycles`` counter, inside ``run``) and
    ``stall_cycles`` (its ``stall_cycles`` counter: the decoder waiting on a full pipeline
    while the result skid is full), and the pass's DRAM ``traffic``."""
    check: int
    load: int
    run: int
    drain: int
    compute: int
    stall_cycles: int
    traffic: PassTraffic

    @property
    def total(self) -> int:
        return self.check + self.load + self.run + self.drain

    @property
    def bytes_read(self) -> dict:
        """``{tensor: bytes}`` read (the data-movement model's names: ``A``, ``W``, ``Wt``,
        ``dZ``; backward-weight ``A`` and ``dZ``)."""
        return {t.tensor: t.bytes for t in self.traffic.tensors if t.direction == "read"}

    @property
    def bytes_written(self) -> dict:
        """``{tensor: bytes}`` written (``Z``, ``dA`` or ``dW``: backward-weight's result in
        the core's layout, a row per broadcast row of ``ceil(cols / vec)`` words)."""
        return {t.tensor: t.bytes for t in self.traffic.tensors if t.direction == "write"}


def _cycle(time) -> int:
    """The cycle of an event at ``time`` (a beat time may be fractional)."""
    return time if isinstance(time, int) else math.ceil(time)


class _BufferedFifo:
    """Handshake cycles of an Amaranth ``SyncFIFOBuffered`` of ``depth`` entries: ``depth - 1``
    of memory and an output register. An entry written in cycle ``t`` moves to the output
    register in ``max(t + 1, the cycle its predecessor is read)`` and is readable from the cycle
    after; a write needs a free memory entry (``w_rdy`` does not count the output register).
    Entries are written and read in order; ``read`` takes the read cycles."""

    def __init__(self, depth: int):
        self.inner = depth - 1
        self.moved, self.read = [], []

    def room(self, index: int) -> int:
        """The first cycle entry ``index`` may be written in."""
        ahead = index - self.inner
        return self.moved[ahead] + 1 if ahead >= 0 else _NEVER

    def write(self, cycle: int) -> int:
        """The next entry, written in ``cycle``: returns the first cycle it can be read in."""
        assert len(self.read) == len(self.moved), "the entry before is not read yet"
        self.moved.append(max(cycle + 1, self.read[-1] if self.read else _NEVER))
        return self.moved[-1] + 1


def _bursts(address: int, words: int, bus_bytes: int, max_burst: int,
            row_words: int | None = None, pitch: int = 0) -> list:
    """The beats of the bursts AxiDma cuts a command into: rows of ``row_words`` words (default:
    one row), row ``r`` from ``address + r * pitch`` bytes, each cut into bursts of at most
    ``max_burst`` beats, none across a 4 KiB boundary."""
    page = BOUNDARY_BYTES // bus_bytes
    row_words = row_words or words
    bursts = []
    for row in range(-(-words // row_words) if words else 0):
        word = (address + row * pitch) // bus_bytes
        left = min(row_words, words - row * row_words)
        while left:
            beats = min(left, max_burst, page - word % page)
            bursts.append(beats)
            word, left = word + beats, left - beats
    return bursts


class _ReadStream:
    """The DMA's read engine and the memory's R channel: the cycle each word of the read
    commands is taken from ``read_data``, computed in stream order on demand (the ``A`` words of
    the output mask are taken as the mask FIFO has room, which the walk decides)."""

    def __init__(self, commands, core: CoreConfig, memory: MemoryTiming, consumer):
        # commands: (cycle of the command's handshake, byte address, words, words per row,
        # pitch in bytes); consumer(n, offered) returns the cycle word n is taken, offered
        # from cycle `offered` on.
        self.commands, self.core, self.memory, self.consumer = commands, core, memory, consumer
        self.beat_time = memory.beat_time(core.bus_bytes)
        self.read_buffer = core.max_burst * core.max_outstanding   # AxiDma's default, the core's
        self.first, self.beats, self.command, self.burst_of = [], [], [], []
        for index, (_, address, words, row_words, pitch) in enumerate(commands):
            for beats in _bursts(address, words, core.bus_bytes, core.max_burst, row_words,
                                 pitch):
                self.first.append(len(self.burst_of))
                self.beats.append(beats)
                self.command.append(index)
                self.burst_of.extend([len(self.beats) - 1] * beats)
        self.ar = []             # AR handshake of each burst
        self.r = []              # R beat of each word (a time: fractional below a word a cycle)
        self.taken = []          # read_data handshake of each word

    def taken_at(self, n: int) -> int:
        while len(self.taken) <= n:
            self._next()
        return self.taken[n]

    def _next(self):
        n = len(self.taken)
        burst = self.burst_of[n]
        r = self.r[-1] + self.beat_time if self.r else _NEVER
        if self.first[burst] == n:
            ar = self.ar[-1] + 1 if self.ar else _NEVER
            if burst == 0 or self.command[burst - 1] != self.command[burst]:
                handshake = self.commands[self.command[burst]][0]   # a cycle, or its function
                ar = max(ar, (handshake() if callable(handshake) else handshake)
                         + AxiDma.address_latency)
            # At most max_outstanding bursts from AR to last R beat: the count drops the cycle
            # after that beat, the next AR is issued then and handshaken the cycle after.
            done = burst - self.core.max_outstanding
            if done >= 0:
                ar = max(ar, _cycle(self.r[self.first[done] + self.beats[done] - 1]) + 2)
            # Room in the read FIFO for the whole burst besides the words promised to it.
            need = self.first[burst] + self.beats[burst] - self.read_buffer
            if need > 0:
                ar = max(ar, self.taken[need - 1] + 2)
            self.ar.append(ar)
            r = max(r, ar + self.memory.read_latency)
        self.r.append(r)
        offered = max(_cycle(r) + AxiDma.read_data_latency,
                      self.taken[-1] + 1 if self.taken else _NEVER)
        self.taken.append(self.consumer(n, offered))


class _WriteStream:
    """The DMA's write engine and the memory's W and B channels, word by word."""

    def __init__(self, command: int, address: int, words: int, row_words: int, pitch: int,
                 core: CoreConfig, memory: MemoryTiming):
        self.command, self.core, self.memory = command, core, memory
        self.beat_time = memory.beat_time(core.bus_bytes)
        self.beats = _bursts(address, words, core.bus_bytes, core.max_burst, row_words, pitch)
        self.burst_of = [burst for burst, beats in enumerate(self.beats) for _ in range(beats)]
        self.aw = []             # AW handshake of each burst
        self.b = []              # B handshake of each burst
        self.w = []              # W beat of each word (a time)

    def ready(self, n: int) -> int:
        """The first cycle the DMA can take word ``n``: its burst's AW issued (AWVALID up) and
        the W register free (its word taken by the memory)."""
        burst = self.burst_of[n]
        while len(self.aw) <= burst:
            aw = self.aw[-1] + 1 if self.aw else self.command + AxiDma.address_latency
            done = len(self.aw) - self.core.max_outstanding
            if done >= 0:            # at most max_outstanding bursts from AW to B
                aw = max(aw, self.b[done] + 2)
            self.aw.append(aw)
        return max(self.aw[burst], _cycle(self.w[-1]) if self.w else _NEVER)

    def take(self, n: int, cycle: int):
        """The DMA takes word ``n`` in ``cycle``: on W from the next cycle."""
        burst = self.burst_of[n]
        w = self.w[-1] + self.beat_time if self.w else _NEVER
        if n == 0 or self.burst_of[n - 1] != burst:
            w = max(w, self.aw[burst] + self.memory.write_accept_latency)
        self.w.append(max(w, cycle + 1))
        if n + 1 == len(self.burst_of) or self.burst_of[n + 1] != burst:
            self.b.append(_cycle(self.w[-1]) + self.memory.write_response_latency)


class _BackEnd:
    """The tile array behind its decoder: the PE's registers, which move together when the last
    of them holds no beat or the tree moves, and the tree's, which move together unless a
    result waits on ``o`` (``i.ready = ~o.valid | o.ready`` in both). While the tree moves,
    every beat passes in fixed time; in the cycles a result waits (:meth:`hold`) the PE still
    takes beats into an empty last register and the decoder stalls otherwise, so those cycles
    are followed one by one."""

    def __init__(self, pe: int, tree: int):
        self.pe, self.tree = pe, tree
        self.holds = []          # (first, last) cycles in which a result waits on o
        self.now = None          # `regs` are the PE's registers at the start of this cycle
        self.regs = [False] * pe     # a beat in each? [0] takes the decoder's, [-1] feeds the tree
        self.stalls = 0          # cycles the decoder offered a beat the PE did not take

    def hold(self, first: int, last: int):
        """A result waits on ``o`` from cycle ``first`` to ``last``. Holds come in order and do
        not overlap: a result reaches ``o`` only after the one before it is taken."""
        self.holds.append((first, last))

    def _hold_from(self, cycle: int):
        """The first hold that ends in or after ``cycle``, or None."""
        k = bisect.bisect_left(self.holds, (cycle + 1, _NEVER)) - 1
        if k >= 0 and self.holds[k][1] >= cycle:
            return self.holds[k]
        return self.holds[k + 1] if k + 1 < len(self.holds) else None

    def _tree_moves(self, cycle: int) -> bool:
        hold = self._hold_from(cycle)
        return hold is None or hold[0] > cycle

    def _shift(self, cycles: int, beats: int = 0):
        """``cycles`` cycles in which the tree moves, a beat coming in the last ``beats``."""
        fresh = [True] * min(beats, self.pe) + [False] * max(0, min(cycles, self.pe) - beats)
        self.regs = (fresh + self.regs[:max(0, self.pe - cycles)])[:self.pe]
        self.now += cycles

    def _run_to(self, cycle: int):
        """The registers through the cycles before ``cycle``, no beat coming."""
        while self.now < cycle:
            hold = self._hold_from(self.now)
            if hold is None or hold[0] >= cycle:
                self._shift(cycle - self.now)
            elif hold[0] > self.now:
                self._shift(hold[0] - self.now)
            else:
                if not self.regs[-1]:
                    self.regs = [False] + self.regs[:-1]
                self.now += 1

    def emit(self, cycle: int, beats: int) -> int:
        """The decoder offers ``beats`` beats, the first in ``cycle``, each one the cycle after
        the one before it is taken; returns the cycle the last is taken in."""
        if self.now is None:
            self.now = cycle
        self._run_to(cycle)
        hold = self._hold_from(cycle)
        if hold is None or hold[0] >= cycle + beats:
            self._shift(beats, beats)
            return cycle + beats - 1
        taken = 0
        while taken < beats:
            if self._tree_moves(self.now) or not self.regs[-1]:
                self.regs = [True] + self.regs[:-1]
                taken += 1
            else:
                self.stalls += 1
            self.now += 1
        return self.now - 1

    def result(self) -> int:
        """The cycle in which the result ending with the beat taken last is on ``o``: the beat
        leaves the PE when the PE moves with it in the last register, then needs the tree to
        move once per register."""
        position, cycle, regs = 0, self.now, list(self.regs)
        while True:
            if self._tree_moves(cycle) or not regs[-1]:
                if position == self.pe - 1:
                    break
                regs = [False] + regs[:-1]
                position += 1
            cycle += 1
        moves = 0
        while True:
            if self._tree_moves(cycle):
                moves += 1
                if moves == self.tree:
                    return cycle + 1
            cycle += 1


def _last_kept(issued: IssuedChunks, beats: np.ndarray, m: int, dense: bool) -> int:
    """The decoder beats of the last chunk row ``m``'s replays keep (sparse mode drops its
    all-zero chunks; a replay's last chunk takes a beat even if all zero)."""
    kept = issued.live[m] if dense else issued.live[m] & (issued.counts[m] > 0)
    return max(1, int(beats[m][kept][-1])) if kept.any() else 1


class _PartialSums:
    """Backward-weight's partial sums (``hw/partial_sums.py``) between the result skid and the
    writer, ``words`` memory words per result beat: with ``add``, the sums register takes word
    ``r`` of beat ``i``'s words (from word ``first`` of the read stream) as it comes, its first
    once beat ``i - 1`` has left (in that cycle at the latest), and beat ``i`` goes from the
    cycle after its last word; with ``keep``, a beat goes into the packer once the beat before
    has sent its last word (in that cycle at the latest), and its words are offered one per
    cycle from the cycle after."""

    def __init__(self, words: int, reads: "_ReadStream", first: int):
        self.words, self.reads, self.first = words, reads, first
        self.beats = []                 # the cycle each result beat was taken

    def sums_taken(self, j: int, offered: int) -> int:
        """The cycle the sums register takes word ``j`` (offered from ``offered``)."""
        beat, word = divmod(j, self.words)
        if word == 0 and beat > 0:
            assert beat - 1 < len(self.beats), "a sums word needed before its beat's turn"
            return max(offered, self.beats[beat - 1])
        return offered

    def sums_in(self) -> int:
        """The first cycle the next beat's sums are all in."""
        last = self.first + (len(self.beats) + 1) * self.words - 1
        return self.reads.taken_at(last) + 1


class _BackEndWriter:
    """The back end shared by every pass, from the rows beat on: the tile array's decoder and
    row register, the tile array (:class:`_BackEnd`), the result skid, the writer (its row
    FIFO, requantize register, block register and gearbox) and the DMA's writes
    (:class:`_WriteStream`). Per row-block, the front end calls :meth:`rows_beat`, for a live
    row :meth:`chunk` for each chunk of its first group then :meth:`groups`, and
    :meth:`block_done`; :meth:`cycles` gives the command's phases at the end."""

    def __init__(self, core: CoreConfig, memory: MemoryTiming, write_state: int, address: int,
                 words: int, row_words: int | None, pitch: int, cols: int,
                 sums: _PartialSums | None = None, add: bool = False, keep: bool = False):
        config = core.array
        self.vec, self.col_block, self.cols = config.vec, config.col_block, cols
        # Backward-weight's partial sums: added to the results (add), the sums written raw
        # instead of through the writer (keep).
        self.sums, self.add, self.keep = sums, add, keep
        self.packer_free = _NEVER        # keep: the previous beat's last word sent
        self.blocks = -(-cols // config.col_block)
        self.write_state = write_state
        self.writes = _WriteStream(write_state, address, words, row_words, pitch, core, memory)
        self.back_end = _BackEnd(SparseGradPE.latency,
                                 AccumulationTree.latency_for(config.tree_stages))
        self.writer_rows = _BufferedFifo(MaskpropCore.WRITER_ROW_FIFO_DEPTH)
        self.decoder_free = self.row_free = _NEVER
        self.held_free = self.block_free = self.gearbox_free = _NEVER
        self.skid_free = self.result_free = _NEVER
        self.beat = self.rows_readable = _NEVER   # this row-block's rows beat, its writer beat
        self.have = self.word = 0        # values in the gearbox; output words so far
        self.last_word = self.last_word_sent = _NEVER   # the last word's DMA and skid takes

    def rows_beat(self, earliest: int, live: bool) -> int:
        """The row-block's rows beat, offered from ``earliest`` (the front end's conditions):
        it waits for the tile array's row register (a live row) and a free entry of the
        writer's row FIFO, and writes that entry."""
        beat = max(earliest, self.writer_rows.room(len(self.writer_rows.moved)))
        if live:
            beat = max(beat, self.row_free)
        self.beat, self.rows_readable = beat, self.writer_rows.write(beat)
        return beat

    def chunk(self, ready: int, n, last: bool) -> int:
        """A chunk of the first group with ``n`` decoder beats, at the decoder from ``ready``:
        it enters the decoder after the rows beat, once the decoder is free; returns that
        cycle. An all-zero chunk takes one cycle and no beat, unless it ends the group."""
        issue = max(self.beat + 1, self.decoder_free, ready)
        if n == 0 and not last:
            self.decoder_free = issue + 1
        else:
            self.decoder_free = self.back_end.emit(issue + 1, max(1, int(n)))
        return issue

    def _deliver(self, offered: int):
        """The result skid takes a result offered in cycle ``offered`` when it is empty (the
        tree holds the result until then), the writer takes it from there into its requantize
        register when that is free (in the same cycle if the skid was empty: it passes
        through), and assembles it once its row's writer beat is readable and the block
        register is free. With partial sums the beat also waits for its sums (add), and goes
        into the packer instead of the writer (keep)."""
        accepted = max(offered, self.result_free)
        if accepted > offered:
            self.back_end.hold(offered, accepted - 1)
        taken = accepted
        if self.add:
            taken = max(taken, self.sums.sums_in())
        taken = max(taken, self.packer_free if self.keep else self.held_free)
        if self.sums is not None:
            self.sums.beats.append(taken)
        self.result_free = taken + 1
        if self.keep:
            for _ in range(self.sums.words):
                self._send_word(taken + 1)
            self.packer_free = self.last_word_sent
        else:
            self.held_free = max(taken + 1, self.rows_readable, self.block_free)

    def groups(self, last_issue: int, groups: int, replay: int, last_kept: int):
        """A live row's first group issued (its last chunk in ``last_issue``): its result, then
        the ``groups - 1`` replays of the kept chunks (``replay`` beats, the last chunk's
        ``last_kept``) and theirs; the row register is free once the last group's last chunk
        issues."""
        row_done = last_issue
        self._deliver(self.back_end.result())
        for _ in range(1, groups):
            start = self.decoder_free
            if replay > last_kept:
                start = self.back_end.emit(start + 1, replay - last_kept)
            row_done = start
            self.decoder_free = self.back_end.emit(start + 1, last_kept)
            self._deliver(self.back_end.result())
        self.row_free = row_done

    def block_done(self, b: int, live: bool):
        """Row-block ``b`` of its row complete (a live row's once its last result is
        assembled, a dead row's once its writer beat is readable): it moves into the gearbox,
        which sends its whole words (all, at a row end) to the DMA."""
        if self.keep:                    # the writer's row beats are dropped as they come
            self.writer_rows.read.append(self.rows_readable)
            return
        complete = self.held_free if live else max(self.rows_readable, self.block_free)
        self.writer_rows.read.append(complete)
        move = max(complete + 1, self.gearbox_free)
        self.block_free = move
        self.have += min(self.col_block, self.cols - b * self.col_block)
        if b == self.blocks - 1:
            count, self.have = -(-self.have // self.vec), 0
        else:
            count, self.have = divmod(self.have, self.vec)
        self.last_word_sent = move
        for _ in range(count):
            self._send_word(self.last_word_sent + 1)
        self.gearbox_free = self.last_word_sent if count else move + 1

    def _send_word(self, valid: int):
        """The next word, offered from ``valid`` and after the word before: the skid takes it
        when empty (``last_word_sent``), the DMA when ready."""
        sent = max(valid, self.last_word_sent + 1 if self.word else _NEVER, self.skid_free)
        taken = max(sent, self.writes.ready(self.word))
        self.writes.take(self.word, taken)
        self.skid_free = taken + 1
        self.word, self.last_word, self.last_word_sent = self.word + 1, taken, sent

    def cycles(self, check: int, compute: int, traffic: PassTraffic,
               prefetched: int = _NEVER) -> CoreCycles:
        """The command's phases: write_done the cycle after the last B, then idle; with a
        prefetch (its last word taken in cycle ``prefetched``), not before the cycle after
        it."""
        total = max(self.writes.b[-1] + 2, prefetched + 2)
        return CoreCycles(check=check, load=self.write_state - check,
                          run=self.last_word + 1 - self.write_state,
                          drain=total - (self.last_word + 1), compute=compute,
                          stall_cycles=self.back_end.stalls, traffic=traffic)


class _Gather:
    """The window gather's second command (backward-weight's X operand) into the row-block
    buffer, word by word: the reader issues a word (read, or a zero word) once the read stage
    is free (its word taken by the transposer, or taken in that cycle) and the mask FIFO has
    room (at most four tiles between a tile's last read and its last word out); the
    transposer takes word ``i`` of tile ``b`` the cycle after its issue at the earliest, once
    slot ``i`` is sent from tile ``b - 1`` (or in that cycle); tile ``b``'s words leave one
    per cycle from the cycle after its last word was taken, each emitted word when the
    row-block buffer's writer takes it (a dropped channel's word needs nothing). ``writable(w)``
    is the first cycle the buffer may take emitted word ``w`` (its bank released); the tiles
    are computed on demand (:meth:`sent`)."""

    def __init__(self, handshake: int, vec: int, kernel: int, channels: int, chunks: int,
                 writable):
        self.vec, self.chunks, self.writable = vec, chunks, writable
        self.cb = -(-channels // vec)
        self.tail = channels - 1 - (self.cb - 1) * vec
        self.tiles = kernel * kernel * self.cb * chunks
        self.issue_at = handshake + SETUP_CYCLES + 1     # the first word's issue
        self.taken_before = _NEVER                       # the previous word's take
        self.out = []            # each tile's send cycles
        self.emitted = []        # the cycle the buffer takes each emitted word

    def sent(self, w: int) -> int:
        """The cycle the row-block buffer takes emitted word ``w``."""
        while len(self.emitted) <= w:
            self._tile()
        return self.emitted[w]

    def _tile(self):
        b, vec = len(self.out), self.vec
        assert b < self.tiles, "past the gather's last tile"
        room = self.out[b - 4][-1] + 1 if b >= 4 else _NEVER
        take = _NEVER
        for i in range(vec):
            issue = max(self.issue_at if b == 0 and i == 0 else self.taken_before, room)
            take = max(issue + 1, self.out[b - 1][i] if b else _NEVER)
            self.taken_before = take
        emit = vec if (b // self.chunks) % self.cb < self.cb - 1 else self.tail + 1
        sends, previous = [], take
        for e in range(vec):
            send = previous + 1
            if e < emit:
                send = max(send, self.writable(len(self.emitted)))
                self.emitted.append(send)
            sends.append(send)
            previous = send
        self.out.append(sends)


def _weight_part(gemm, layer, command: CoreCommand, config, dense: bool):
    """A backward-weight command's :class:`IssuedChunks` and wanted outputs: its output pixels'
    columns of the whole pass's ``X`` (chunked from its first pixel, the last chunk padded as
    the window gather pads it) and its result columns; with partial sums every row is sent, a
    row without a structural chunk as an empty chunk 0 (``RowBlockBuffer.keep_empty``)."""
    vec = gemm.vec
    pixels = command.reduction_pixels(layer)
    rows, cols = command.weight_shape(layer)
    width = -(-len(pixels) // vec) * vec
    structure = np.zeros((gemm.X.shape[0], width), dtype=bool)
    nonzero = np.zeros_like(structure)
    structure[:, :len(pixels)] = gemm.structure[:, pixels.start:pixels.stop]
    nonzero[:, :len(pixels)] = gemm.X[:, pixels.start:pixels.stop] != 0
    issued = IssuedChunks.from_elements(structure if dense else nonzero, structure, config)
    if command.psum_in or command.psum_out:
        issued.live[~issued.live.any(axis=-1), 0] = True
    columns = command.columns if command.operand == "a" else slice(None)
    wanted = np.ones((rows, cols), dtype=bool)
    assert gemm.X.shape[0] == rows and len(np.ones(gemm.Y.shape[1])[columns]) == cols
    return issued, wanted


def _weight_cycles(layer, command: CoreCommand, core: CoreConfig, memory: MemoryTiming,
                   traffic: PassTraffic, bases: dict, issued: IssuedChunks,
                   wanted: np.ndarray, dense: bool) -> CoreCycles:
    """:func:`core_cycles` of a backward-weight command (the module docstring's phases)."""
    config = core.array
    vec, tiles, col_block = config.vec, config.tiles, config.col_block
    rows, cols = wanted.shape
    blocks = -(-cols // col_block)
    live_rows = issued.live_rows
    groups = column_groups(wanted, tiles, col_block, live_rows)
    _, replay = row_chunk_cycles(issued)
    beats = issued.beats
    a_words, dz_words = command.weight_bands(layer, vec)
    col_words = -(-cols // vec)
    sum_words = command.sum_words(layer, tiles, core.bus_bytes)
    base = command.bases(layer, bases, vec, core.bus_bytes)
    check = WEIGHT_CHECK_CYCLES
    # A group of output channels (A broadcast) reads its words of each dZ pixel and writes its
    # words of each result row, out_pitch words apart (one row when that is contiguous).
    pitch_words = command.offsets(layer, vec)["out_pitch"] or col_words
    row_words = None if pitch_words == col_words else col_words
    pitch = pitch_words * core.bus_bytes

    # --- load: READ_Y passes, READ_X reads the A band, READ_DZ the dZ band, READ_A the partial
    # sums (psum_in) or passes; the sums are taken during the run -------------------------
    loaded = a_words + dz_words
    reads_of = [(check + 1, base["a"], a_words, None, 0),
                (check + 2, base["dz"], dz_words, row_words, pitch)]
    if command.psum_in:
        reads_of.append((check + 3, base["psum"], sum_words, None, 0))
    sums = None
    reads = _ReadStream(reads_of, core, memory,
                        lambda n, offered: offered if n < loaded else sums.sums_taken(
                            n - loaded, offered))
    if command.psum_in or command.psum_out:
        sums = _PartialSums(core.sum_words_per_beat, reads, loaded)
    # LOADING (from the cycle after READ_A) sees the count the cycle after the last word.
    write_state = max(reads.taken_at(loaded - 1) + 2, check + 5)
    if command.psum_out:
        writer = _BackEndWriter(core, memory, write_state, base["out"], sum_words, None, 0,
                                cols, sums, add=command.psum_in, keep=True)
    else:
        writer = _BackEndWriter(core, memory, write_state, base["out"], rows * col_words,
                                row_words, pitch, cols, sums, add=command.psum_in)

    # --- the gathers: Y into the Y buffer (never stalled), then X into the row-block buffer --
    pixels = command.pixels(layer)
    chunks = -(-pixels // vec)
    gather_a = (layer.kernel, layer.in_channels)
    gather_dz = (1, len(command.columns))
    (y_kernel, y_channels), (x_kernel, x_channels) = (
        (gather_a, gather_dz) if command.operand == "dz" else (gather_dz, gather_a))
    y_tiles = y_kernel * y_kernel * -(-y_channels // vec) * chunks
    gather_y = write_state + 1                   # GATHER_Y: the gather is idle
    # LOAD_Y ends with the last word (gather_cycles); GATHER_X's command is taken once the
    # gather is idle, the cycle after the last tile's last (maybe dropped) word.
    gather_x = gather_y + SETUP_CYCLES + PIPELINE_CYCLES + vec * (y_tiles + 1)

    # The row-block buffer's blocks: (first row, rows, last emitted word). A block is the
    # gather's channel block's rows over all chunks; with one chunk the writer cuts the rows
    # into blocks of vec (it cannot see the gather's channel blocks).
    x_cb = -(-x_channels // vec)
    row_blocks = []
    if chunks > 1:
        word = 0
        for rt in range(x_kernel * x_kernel):
            for cb in range(x_cb):
                n = min(vec, x_channels - cb * vec)
                word += n * chunks
                row_blocks.append((rt * x_channels + cb * vec, n, word - 1))
    else:
        for first in range(0, rows, vec):
            n = min(vec, rows - first)
            row_blocks.append((first, n, first + n - 1))
    block_of = np.zeros(row_blocks[-1][2] + 1, dtype=np.int64)
    for j, (_, _, last) in enumerate(row_blocks):
        block_of[last + 1:] = j + 1
    released = []                # the reader's last cycle on each block (its bank released)

    def writable(w: int) -> int:
        j = int(block_of[w])
        if j < 2:
            return _NEVER
        assert j - 2 < len(released), "a block written before the bank is known to be free"
        return released[j - 2] + 1

    gather = _Gather(gather_x, vec, x_kernel, x_channels, chunks, writable)

    # --- run: the row-block buffer's passes, then the back end (_BackEndWriter) -------------
    pass_done = rows_taken = stage_taken = _NEVER
    issued_1 = _NEVER

    for first_row, n_rows, last in row_blocks:
        full = gather.sent(last) + 1             # the bank is full the cycle after
        for m in range(first_row, first_row + n_rows):
            live = bool(live_rows[m])
            if live:
                row_live = issued.live[m]
                last_q = int(np.flatnonzero(row_live)[-1])
                last_kept = _last_kept(issued, beats, m, dense)
            for b in range(blocks):
                # A pass starts when the rows register is free (or taken now), after the pass
                # before, in a full bank, and (a live row) with the read stage free.
                start = max(pass_done + 1, rows_taken, full,
                            stage_taken if live else _NEVER)
                full = _NEVER
                rows_beat = writer.rows_beat(start + 1, live)
                if live:
                    read = _NEVER
                    for q in range(last_q + 1):
                        read = start if q == 0 else max(read + 1, stage_taken)
                        if not row_live[q]:
                            stage_taken = _NEVER         # dropped at the read stage
                            continue
                        issue = writer.chunk(read + 1, beats[m, q], q == last_q)
                        stage_taken = issued_1 = issue
                    pass_done = read
                    writer.groups(issued_1, int(groups[m, b]), int(replay[m]), last_kept)
                else:
                    pass_done = start
                rows_taken = rows_beat
                writer.block_done(b, live)
        released.append(pass_done)

    return writer.cycles(check, array_cycles(issued, wanted, config), traffic)


def _chunk_addresses(layer, pass_name: str, vec: int, command: CoreCommand):
    """The X scratchpad address of each chunk the walker sends for ``command``:
    ``addresses(m, live)`` for the command's GEMM row ``m`` and the row's chunks (a boolean row
    over the reduction, chunk ``q`` = tap ``(r, t)`` and channel word ``q % words``), in order:
    the word of the input pixel the chunk reads (forward: the window's tap; backward-data: the
    ``dZ`` pixel the flipped tap reads through the dilation), from the command's first word."""
    forward = pass_name == "forward"
    R, s, p = layer.kernel, layer.stride, layer.padding
    words = channel_words(layer.in_channels if forward else layer.out_channels, vec)
    height, width = ((layer.out_height, layer.out_width) if forward
                     else (layer.height, layer.width))
    source_h, source_w = ((layer.height, layer.width) if forward
                          else (layer.out_height, layer.out_width))
    rows = command.gemm_rows(layer)
    first = command.offsets(layer, vec)["a" if forward else "dz"]

    def addresses(m: int, live) -> np.ndarray:
        image, rest = divmod(rows[m], height * width)
        y, x = divmod(rest, width)
        r, t, word = np.unravel_index(np.flatnonzero(live), (R, R, words))
        if forward:
            u, v = s * y + r - p, s * x + t - p
        else:
            u, v = (y + r - (R - 1 - p)) // s, (x + t - (R - 1 - p)) // s
        return ((image * source_h + u) * source_w + v) * words + word - first

    return addresses


def _operand(gemm) -> str:
    """Backward-weight's broadcast operand (the lowering's orientation), ``"a"`` otherwise."""
    return gemm.orientation if gemm.pass_name == "backward_weight" else "a"


def core_cycles(array_pass: ArrayPass, core: CoreConfig, *, dense: bool,
                memory: MemoryTiming = AXI_RAM, bases: dict | None = None,
                command: CoreCommand | None = None, prefetch: bool = True) -> CoreCycles:
    """The cycles of one command on the core of ``core`` (module docstring): ``array_pass`` is
    the pass as the core runs it, lowered for ``core.array`` (``ArrayPass.lower``, with the
    output mask if the command asks for it: sparse backward-data then reads ``A`` for it;
    backward-weight's broadcast operand is its ``gemm.orientation``), ``dense`` its mode, ``memory`` the memory's timing, ``bases`` the tensors' byte addresses
    by :data:`BASES` name (``CoreJob.bases``; only where they fall in a 4 KiB page matters, for
    the DMA's bursts; default: each at a page boundary), ``command`` which of the pass's
    commands (:func:`~maskprop.host.core_driver.check_core_pass`; default: the only one of a
    pass that fits; :func:`job_cycles` gives them all), ``prefetch`` which plan
    (:func:`~maskprop.host.split.plan_pass`'s: ``False``, the one without weight prefetches).
    ``ValueError`` naming the parameter for anything the core or the model does not take."""
    if not isinstance(array_pass, ArrayPass):
        raise ValueError(f"array_pass must be an ArrayPass, not {array_pass!r}")
    if not isinstance(core, CoreConfig):
        raise ValueError(f"core must be a CoreConfig, not {core!r}")
    if core.array != array_pass.config:
        raise ValueError("core: its tile array (core.array) is not the one array_pass was "
                         "lowered for (array_pass.config)")
    if not isinstance(dense, bool):
        raise ValueError(f"dense must be True or False, not {dense!r}")
    if not isinstance(memory, MemoryTiming):
        raise ValueError(f"memory must be a MemoryTiming, not {memory!r}")
    bases = {} if bases is None else bases
    if not isinstance(bases, dict) or not set(bases) <= set(BASES):
        raise ValueError(f"bases must be a dict of byte addresses named {', '.join(BASES)}, "
                         f"not {bases!r}")
    for name, address in bases.items():
        check_range(f"bases[{name!r}]", address, 0, (1 << core.addr_width) - 1)
        if address % core.bus_bytes:
            raise ValueError(f"bases[{name!r}] must be a multiple of the bus width, "
                             f"{core.bus_bytes} bytes, not {address}")
    gemm = array_pass.gemm
    layer, pass_name = gemm.layer, gemm.pass_name
    plan = check_core_pass(layer, pass_name, core, _operand(gemm), prefetch=prefetch)
    if command is None:
        if len(plan) > 1:
            raise ValueError(f"command: {layer.label} {pass_name} runs as {len(plan)} commands "
                             f"on this core; name one, or take them all with job_cycles")
        command = plan[0]
    elif command not in plan:
        raise ValueError(f"command must be one of the commands the pass runs as "
                         f"(check_core_pass), not {command!r}")
    config = core.array
    vec, tiles, col_block = config.vec, config.tiles, config.col_block
    wants_mask = pass_name == "backward_data" and not dense and gemm.omask is not None

    # The command's part of the pass: its GEMM rows (output pixels) and columns; for
    # backward-weight its part of the reduction and its columns.
    issued, wanted = array_pass.issued(dense), array_pass.wanted(dense)
    if pass_name == "backward_weight":
        issued, wanted = _weight_part(gemm, layer, command, config, dense)
    elif len(plan) > 1:
        rows_of = np.asarray(command.gemm_rows(layer))
        issued = issued.rows(rows_of)
        wanted = wanted[rows_of][:, command.columns.start:command.columns.stop]
    rows, cols = wanted.shape
    blocks = -(-cols // col_block)
    col_words = -(-cols // vec)
    live_rows = issued.live_rows
    groups = column_groups(wanted, tiles, col_block, live_rows)
    _, replay = row_chunk_cycles(issued)
    beats = issued.beats                        # decoder beats of each chunk (0: all zero)
    traffic = command_traffic(layer, command, config, dense=dense,
                              output_mask=gemm.omask is not None)
    if pass_name == "backward_weight":
        return _weight_cycles(layer, command, core, memory, traffic, bases, issued, wanted,
                              dense)
    words = {t.role: t.words for t in traffic.tensors}
    x_words, out_words = words["X scratchpad"], words["output"]
    y_words, prefetch_words = command.y_words(layer, vec), command.prefetch_words(layer, vec)
    pitch_words = command.offsets(layer, vec)["out_pitch"]
    pitch = pitch_words * core.bus_bytes
    row_words = None if pitch_words == col_words else col_words   # a row per output pixel
    base = command.bases(layer, bases, vec, core.bus_bytes)

    # --- load: the read commands, the X and Y words -------------------------------------------
    x_base = base["a" if pass_name == "forward" else "dz"]
    # READ_Y, READ_X and READ_A each offer their read command in their first cycle, or pass
    # in one cycle reading nothing (a kept buffer, no output mask); READ_DZ (backward-weight's)
    # passes in one cycle between READ_X and READ_A.
    commands = [(CHECK_CYCLES + index, address, words, None, 0)
                for index, (address, words, kept) in enumerate((
                    (base["w"], y_words, command.keep_weights),
                    (x_base, x_words, command.keep_input))) if not kept]
    a_words = out_words if wants_mask else 0
    if wants_mask:
        commands.append((CHECK_CYCLES + 3, base["a"], a_words, row_words, pitch))
    loaded = x_words + y_words
    if prefetch_words:
        # PASS.prefetch: offered from LOADING once the X and Y words are in, taken at once.
        commands.append((lambda: max(CHECK_CYCLES + 4, reads.taken_at(loaded - 1) + 1
                                     if loaded else _NEVER),
                         base["next_w"], prefetch_words, None, 0))
    masks = _BufferedFifo(MaskpropCore.MASK_FIFO_DEPTH)
    mask_readable = []           # the first cycle each pixel's mask can be read

    def consume(n, offered):
        """X, Y and prefetched words are taken as offered; an A word when the mask FIFO has
        room, its pixel's last writing the mask."""
        if n < loaded or n >= loaded + a_words:
            return offered
        pixel, index = divmod(n - loaded, col_words)
        cycle = max(offered, masks.room(pixel))
        if index == col_words - 1:
            mask_readable.append(masks.write(cycle))
        return cycle

    reads = _ReadStream(commands, core, memory, consume)
    # LOADING (from the cycle after READ_A) waits for the weights only, and sees the count the
    # cycle after the last word; the X words stream in behind them during the run.
    last_weight = reads.taken_at(y_words - 1) if y_words else _NEVER
    write_state = max(last_weight + 2, CHECK_CYCLES + 5)

    def word_in(address: int) -> int:
        """The first cycle the fetch may take a chunk at X word ``address``: the cycle after
        the word is written (all of them, for a kept input)."""
        return _NEVER if command.keep_input else reads.taken_at(y_words + address) + 1

    addresses = _chunk_addresses(layer, pass_name, vec, command)
    writer = _BackEndWriter(core, memory, write_state, base["out"], out_words, row_words, pitch,
                            cols)
    walk_state = write_state + 1

    # --- run: walker, fetch, then the back end (_BackEndWriter), row-block by row-block ------
    pad = max(command.band.pad_top, layer.padding)       # rows' and columns' pre-steps overlap
    pre_steps = max(0, pad + 1 - layer.kernel) if pass_name == "backward_data" else 0
    pending = walk_state + walk_cycles([], 1, pre_steps) - 2   # row-block 0 pending
    walking = pending + 1            # taken for walking
    last_walked = _NEVER             # the previous row-block's last chunk, if it was live
    walked = fetched = issued_1 = issued_2 = _NEVER    # the chunk before: walker, fetch, decoder

    for m in range(rows):
        live = bool(live_rows[m])
        if live:
            row_beats = beats[m][issued.live[m]]
            last_kept = _last_kept(issued, beats, m, dense)
        for b in range(blocks):
            # The rows beat: to the array (a live row), the writer's row FIFO, the mask FIFO.
            earliest = pending + 1
            if wants_mask:
                while len(mask_readable) <= m:
                    reads.taken_at(loaded + (len(mask_readable) + 1) * col_words - 1)
                earliest = max(earliest, mask_readable[m])
            rows_beat = writer.rows_beat(earliest, live)
            if wants_mask and b == blocks - 1:
                masks.read.append(rows_beat)
            if live:
                # The first group takes the row's chunks from the walker through the fetch.
                for k, (n, address) in enumerate(zip(row_beats, addresses(m, issued.live[m]))):
                    walk = max(walking + 1 if k == 0 else walked + 1, fetched, word_in(address))
                    fetch = max(walk + 1, issued_2 + 1)
                    issue = writer.chunk(fetch + 1, n, k == len(row_beats) - 1)
                    walked, fetched, issued_1, issued_2 = walk, fetch, issue, issued_1
                last_walked = walked
                writer.groups(issued_1, int(groups[m, b]), int(replay[m]), last_kept)
            # The next row-block is pending once this one's rows beat and walk are taken, and is
            # taken for walking once this one's last chunk is.
            pending = max(rows_beat, walking)
            walking = max(pending + 1, last_walked if live else _NEVER)
            writer.block_done(b, live)

    prefetched = reads.taken_at(loaded + a_words + prefetch_words - 1) if prefetch_words else _NEVER
    return writer.cycles(CHECK_CYCLES, array_cycles(issued, wanted, config), traffic, prefetched)


def job_cycles(array_pass: ArrayPass, core: CoreConfig, *, dense: bool,
               memory: MemoryTiming = AXI_RAM, bases: dict | None = None,
               prefetch: bool = True) -> list:
    """:func:`core_cycles` of every command the pass runs as on ``core``
    (:func:`~maskprop.host.core_driver.check_core_pass`: one, or the pass split; ``prefetch``
    which plan), in order."""
    gemm = array_pass.gemm
    plan = check_core_pass(gemm.layer, gemm.pass_name, core, _operand(gemm), prefetch=prefetch)
    return [core_cycles(array_pass, core, dense=dense, memory=memory, bases=bases,
                        command=command, prefetch=prefetch) for command in plan]


def total_cycles(commands: list) -> CoreCycles:
    """The commands of one pass (:func:`job_cycles`) as one :class:`CoreCycles`: each phase,
    the compute and stall cycles and each tensor's words and bytes summed (the host's time
    between commands is not in it: the core is idle then)."""
    traffic = summed_traffic([cycles.traffic for cycles in commands])
    return CoreCycles(*(sum(getattr(c, name) for c in commands)
                        for name in ("check", "load", "run", "drain", "compute",
                                     "stall_cycles")), traffic=traffic)
