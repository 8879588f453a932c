"""Cycle-by-cycle reference of the blocks' handshakes and performance-counter events, under any
traffic.

The scoreboards check *what* comes out; this says *when* every beat must move. Given what a bench
drove in each cycle (the ``valid`` of every input stream, the ``ready`` of ``o``) and the input
payloads, it applies each block's documented stall rules and returns the cycle of every
handshake on every port and, per cycle, the increment of every performance counter. Tests hold
the RTL to it exactly, so a block that computes the right values but loses a cycle under
backpressure (or counts the wrong event) fails. The rules, from the blocks' docstrings:

- ``SparseGradPE`` (two registers) and ``AccumulationTree`` (``stages`` registers, then the
  accumulator, which is also the result register) stall as whole pipelines: everything moves in
  a cycle in which the block's output register is empty or being taken, and ``i.ready`` says so.
  The tree's output is valid only after a frame's ``last`` beat.
- ``ZeroSkipIndexDecoder``: a chunk with ``n`` set bits sends ``ceil(n / lanes)`` beats, one in
  each cycle in which ``o.ready``; an all-zero chunk sends nothing and leaves after one cycle,
  unless it ends a frame (one empty beat carries ``last``). A new chunk is taken in the cycle in
  which the held one leaves, or whenever none is held. ``busy`` while a chunk is held.
- ``DenseIndexSequencer``: ``ceil(vec / lanes)`` beats straight from the offered chunk (``o.valid``
  is ``i.valid``), the chunk taken with its final beat; ``busy`` while a chunk is offered.
- ``SparseDotEngine``: decoder (on ``x_mask & y_mask``) -> PE -> tree.
- ``TileArray``: ``load`` is always ready. The row register takes a row when it holds none or in
  the cycle the row's last chunk of its last group enters the decoder; its wanted columns make
  ``max(1, ceil(wanted / tiles))`` groups. The first group takes the row's chunks from ``x`` (a
  chunk moves when the decoder takes it) and keeps the ones a replay needs (nonzero ones, every
  one in dense mode, the last one if the row had none); later groups replay the kept ones. The
  group FIFO never fills (it is deeper than the pipeline). Then the engine's pipeline; all tiles
  move in lockstep, and the results of a group leave together.

Counter events are the counters' documented definitions (:func:`maskprop.hw.engine.counter_layout`,
:func:`maskprop.hw.tile_array.array_counter_layout`), and :func:`counter_values` their documented
timing: registered one cycle, zeroed with their registered events by ``clear``.
"""

import abc
from collections import deque
from dataclasses import dataclass, field

from maskprop.hw.index_decoder import prefix_closure
from maskprop.sim.blocks import decode_chunks

__all__ = ["Traffic", "Prediction", "StalledPipeline", "DecoderModel", "DenseSequencerModel",
           "PEModel", "TreeModel", "EngineModel", "TileArrayModel", "decoder_model", "pe_model",
           "tree_model", "predict", "counter_values", "first_difference", "check_timing",
           "check_counters"]


@dataclass
class Traffic:
    """What a bench drove in each cycle: ``valid[port][t]`` of every input stream and
    ``ready[t]`` of ``o``."""
    valid: dict
    ready: list

    @property
    def cycles(self) -> int:
        return len(self.ready)


@dataclass
class Prediction:
    """What the rules make of the traffic: every handshake's cycle and every counter's increment
    in every cycle (``events[name][t]``)."""
    port_cycles: dict
    out_cycles: list = field(default_factory=list)
    events: dict = field(default_factory=dict)


def popcount(value: int) -> int:
    return bin(value).count("1")


class StalledPipeline(abc.ABC):
    """A pipeline that stalls as a whole: ``stages`` registers, each holding ``None`` (a bubble)
    or the ``last`` flag of its beat, then an output register. Everything moves in a cycle in
    which the output register is empty or being taken, and ``i.ready`` says so. Subclasses say
    what the output register holds (:meth:`output`)."""

    def __init__(self, stages: int):
        self.stages = [None] * stages
        self.o_valid = False
        self.o_last = None      # the ``last`` flag of the beat in the output register

    def offering(self, offered=None) -> bool:
        return self.o_valid

    def i_ready(self, o_ready: bool) -> bool:
        return not self.o_valid or o_ready

    @abc.abstractmethod
    def output(self, beat) -> bool:
        """Whether the output register is valid after taking ``beat`` (``None``: a bubble)."""

    def clock(self, o_ready: bool, beat):
        """``beat``: the ``last`` flag of the beat offered on ``i``, or ``None``."""
        if self.i_ready(o_ready):
            into_output = self.stages[-1] if self.stages else beat
            self.o_valid, self.o_last = self.output(into_output), into_output
            self.stages = ([beat] + self.stages[:-1]) if self.stages else []


class PEModel(StalledPipeline):
    """:class:`~maskprop.hw.sparse_pe.SparseGradPE`: the operand-select register, then the
    multiply (output) register, which holds every beat."""

    def __init__(self):
        super().__init__(stages=1)

    def output(self, beat) -> bool:
        return beat is not None


class TreeModel(StalledPipeline):
    """:class:`~maskprop.hw.accumulation_tree.AccumulationTree`: ``stages`` registers, then the
    accumulator (output register), whose result is offered after a frame's ``last`` beat."""

    def output(self, beat) -> bool:
        return beat is True


@dataclass
class Chunk:
    """A chunk as the decoder sees it: the valid lanes of each beat it yields (none for an
    all-zero chunk), whether it ends a frame, and what rides along (the tile array's enabled
    tiles)."""
    beats: tuple
    last: bool
    tiles_on: int = 1

    @classmethod
    def of(cls, mask: int, last: bool, config, tiles_on: int = 1) -> "Chunk":
        """The chunk of set bits ``mask`` on the decoder of ``config`` (its lanes and selection
        window): the valid lanes of the beats :func:`~maskprop.sim.blocks.decode_chunks`
        sends for it."""
        beats = decode_chunks([(mask, False, False)], config.lanes, vec=config.vec,
                              window=config.window)
        return cls(tuple(sum(e is not None for e in beat.indices) for beat in beats), last,
                   tiles_on)

    @property
    def bits(self) -> int:
        return sum(self.beats)


class DecoderModel:
    """:class:`~maskprop.hw.index_decoder.ZeroSkipIndexDecoder`."""

    def __init__(self):
        self.held = None
        self.left = ()         # valid lanes of the held chunk's beats not sent yet

    def busy(self, offered=None) -> bool:
        return self.held is not None

    def offering(self, offered=None) -> bool:
        return self.held is not None and (len(self.left) > 0 or self.held.last)

    def beat(self, offered=None):
        """(valid lanes, ``last``) of the beat on ``o``."""
        final = len(self.left) <= 1
        return (self.left[0] if self.left else 0), self.held.last and final

    def i_ready(self, o_ready: bool) -> bool:
        if self.held is None:
            return True
        return ((not self.left and not self.held.last) or
                (len(self.left) <= 1 and o_ready))

    def clock(self, o_ready: bool, offered):
        """``offered``: the chunk on ``i`` if ``i.valid``, else ``None``."""
        ready = self.i_ready(o_ready)
        if self.offering() and o_ready:
            self.left = self.left[1:]
        if ready:
            self.held = offered
            self.left = offered.beats if offered is not None else ()


class DenseSequencerModel:
    """:class:`~maskprop.hw.index_decoder.DenseIndexSequencer`: combinational from ``i``."""

    def __init__(self, vec: int, lanes: int):
        self.vec, self.lanes = vec, lanes
        self.beats = -(-vec // lanes)
        self.index = 0         # beat of the offered chunk

    def busy(self, offered) -> bool:
        return offered is not None

    def offering(self, offered) -> bool:
        return offered is not None

    def beat(self, offered):
        final = self.index == self.beats - 1
        return min(self.lanes, self.vec - self.index * self.lanes), offered.last and final

    def i_ready(self, o_ready: bool) -> bool:
        return o_ready and self.index == self.beats - 1

    def clock(self, o_ready: bool, offered):
        if offered is not None and o_ready:
            self.index = 0 if self.index == self.beats - 1 else self.index + 1


class _Block(abc.ABC):
    """A block with input streams and ``o``: :meth:`step` is one cycle."""

    inputs: tuple = ("i",)

    @abc.abstractmethod
    def step(self, offered: dict, o_ready: bool):
        """``offered[port]``: the payload on the port if it is valid this cycle, else ``None``.
        Returns (ports whose beat is taken, whether ``o`` delivers, {counter: increment})."""


class _Stream(_Block):
    """One block with no counters (decoder, sequencer, PE or tree) between ``i`` and ``o``;
    ``to_input`` turns a payload into what the unit's :meth:`clock` takes."""

    def __init__(self, unit, to_input):
        self.unit, self.to_input = unit, to_input

    def step(self, offered, o_ready):
        unit = self.unit
        payload = None if offered["i"] is None else self.to_input(offered["i"])
        taken = payload is not None and unit.i_ready(o_ready)
        delivered = unit.offering(payload) and o_ready
        unit.clock(o_ready, payload)
        return ({"i"} if taken else set()), delivered, {}


def decoder_model(config, *, dense_only: bool = False) -> _Block:
    """The decoder of ``config`` (payloads ``{"mask", ["mask_b"], "first", "last"}``) or the
    dense sequencer."""
    if dense_only:
        return _Stream(DenseSequencerModel(config.vec, config.lanes),
                       lambda p: Chunk((), bool(p["last"])))
    return _Stream(DecoderModel(),
                   lambda p: Chunk.of(p["mask"] & p.get("mask_b", p["mask"]),
                                      bool(p["last"]), config))


def pe_model() -> _Block:
    """The PE alone (payloads: index beats with ``last``)."""
    return _Stream(PEModel(), lambda p: bool(p["last"]))


def tree_model(stages: int) -> _Block:
    """The tree alone (payloads: ``{"terms", "first", "last"}``)."""
    return _Stream(TreeModel(stages), lambda p: bool(p["last"]))


class EngineModel(_Block):
    """:class:`~maskprop.hw.engine.SparseDotEngine` (payloads of ``engine_input_layout``)."""

    def __init__(self, config, *, dense: bool = False, zero_skipping: bool = True):
        self.vec, self.lanes = config.vec, config.lanes
        self.dense, self.zero_skipping = dense, zero_skipping
        self.config = config
        self.source = (DecoderModel() if zero_skipping
                       else DenseSequencerModel(config.vec, config.lanes))
        self.pe, self.tree = PEModel(), TreeModel(config.tree_stages)

    def _chunk(self, payload):
        all_ones = (1 << self.vec) - 1
        mask = all_ones if self.dense else payload["x_mask"] & payload["y_mask"]
        return Chunk.of(mask, bool(payload["last"]), self.config)

    def step(self, offered, o_ready):
        payload = offered["i"]
        chunk = None if payload is None else self._chunk(payload)
        source, pe, tree = self.source, self.pe, self.tree
        tree_ready = tree.i_ready(o_ready)
        pe_ready = pe.i_ready(tree_ready)
        busy = source.busy(chunk)
        beat_valid = source.offering(chunk)
        lanes, last = source.beat(chunk) if beat_valid else (0, None)
        beat_taken = beat_valid and pe_ready
        chunk_taken = chunk is not None and source.i_ready(pe_ready)
        delivered = tree.o_valid and o_ready
        events = {
            "cycles": int(busy),
            "stalls": int(beat_valid and not pe_ready),
            "beats": int(beat_taken),
            "macs": lanes if beat_taken else 0,
            "chunks": int(chunk_taken),
            "chunks_skipped": int(chunk_taken and self.zero_skipping and chunk.bits == 0),
            "outputs": int(delivered),
        }
        # Clock edge.
        tree.clock(o_ready, pe.o_last)
        pe.clock(tree_ready, last if beat_valid else None)
        source.clock(pe_ready, chunk)
        return ({"i"} if chunk_taken else set()), delivered, events


class TileArrayModel(_Block):
    """:class:`~maskprop.hw.tile_array.TileArray`; ``zero_skipping=False``: the dense-only
    array (always dense, its sequencer is the decoder on each mask's prefix closure)."""

    inputs = ("load", "rows", "x")

    def __init__(self, config, *, dense: bool = False, zero_skipping: bool = True):
        if not (zero_skipping or dense):
            raise ValueError("the dense-only array runs dense mode only")
        self.config, self.dense, self.zero_skipping = config, dense, zero_skipping
        self.decoder, self.pe, self.tree = (DecoderModel(), PEModel(),
                                            TreeModel(config.tree_stages))
        self.row = None              # tiles enabled in each of the held row's groups left
        self.first_group = False
        self.chunk = 0               # chunk of the first group, or entry of a replay
        self.kept = []               # masks of the chunks a replay sends
        self.in_flight = deque()     # enabled tiles of each issued group, until its result

    def _wanted(self, row) -> int:
        valid = row["col_valid"]
        return valid if self.dense else row["omask"] & valid

    def step(self, offered, o_ready):
        tiles = self.config.tiles
        decoder, pe, tree = self.decoder, self.pe, self.tree
        tree_ready = tree.i_ready(o_ready)
        pe_ready = pe.i_ready(tree_ready)
        decoder_ready = decoder.i_ready(pe_ready)

        # The chunk in front of the decoder: the streamed one (first group) or a kept one.
        issue, mask, last_chunk, row_done = False, 0, False, False
        if self.row is not None:
            if self.first_group:
                current = offered["x"]
                mask = None if current is None else current["mask"]
                last_chunk = current is not None and bool(current["last"])
            else:
                mask = self.kept[self.chunk]
                last_chunk = self.chunk == len(self.kept) - 1
            issue = mask is not None and decoder_ready
            row_done = issue and last_chunk and len(self.row) == 1
        row = offered["rows"]
        row_taken = row is not None and (self.row is None or row_done)
        delivered = tree.o_valid and o_ready

        bits = popcount(mask or 0)
        beat_valid = decoder.offering()
        lanes, beat_last = decoder.beat() if beat_valid else (0, None)
        beat_taken = beat_valid and pe_ready
        events = {
            "cycles": int(decoder.busy()),
            "stalls": int(beat_valid and not pe_ready),
            "beats": int(beat_taken),
            "macs": lanes * decoder.held.tiles_on if beat_taken else 0,
            "chunks": int(issue),
            "chunks_skipped": int(issue and bits == 0),
            "groups": int(issue and self.chunk == 0),
            "rows": int(row_taken),
            "outputs": self.in_flight[0] if delivered else 0,
            "outputs_skipped": (popcount(row["col_valid"] & ~self._wanted(row))
                                if row_taken else 0),
        }
        taken = {"load"} if offered["load"] is not None else set()
        if issue and self.first_group:
            taken.add("x")
        if row_taken:
            taken.add("rows")

        # Clock edge.
        if delivered:
            self.in_flight.popleft()
        tree.clock(o_ready, pe.o_last)
        pe.clock(tree_ready, beat_last)
        decoded = mask if self.zero_skipping or mask is None else prefix_closure(mask)
        chunk = Chunk.of(decoded, last_chunk, self.config, self.row[0]) if issue else None
        decoder.clock(pe_ready, chunk)
        if issue:
            if self.chunk == 0:
                self.in_flight.append(self.row[0])
            if self.first_group and (self.dense or mask != 0 or (last_chunk and not self.kept)):
                self.kept.append(mask)
            self.chunk += 1
            if last_chunk:
                self.chunk, self.first_group = 0, False
                self.row = self.row[1:] or None
        if row_taken:
            wanted = popcount(self._wanted(row))
            self.row = [min(tiles, wanted - g) for g in range(0, wanted, tiles)] or [0]
            self.first_group, self.chunk, self.kept = True, 0, []
        return taken, delivered, events


def predict(model: _Block, traffic: Traffic, payloads: dict) -> Prediction:
    """Run ``model`` over the recorded ``traffic``; the ``k``-th beat a port moves is
    ``payloads[port][k]``. A port that the bench shows valid when the model has sent all its
    beats (the RTL took fewer) is treated as idle: the handshake cycles then differ anyway."""
    pending = {port: deque(payloads.get(port, [])) for port in model.inputs}
    prediction = Prediction({port: [] for port in model.inputs})
    for t in range(traffic.cycles):
        offered = {port: (pending[port][0] if traffic.valid[port][t] and pending[port]
                          else None) for port in model.inputs}
        taken, delivered, events = model.step(offered, bool(traffic.ready[t]))
        for port in taken:
            pending[port].popleft()
            prediction.port_cycles[port].append(t)
        if delivered:
            prediction.out_cycles.append(t)
        for name, increment in events.items():
            prediction.events.setdefault(name, []).append(increment)
    return prediction


def counter_values(events: dict, clear, *, width: int = 32) -> dict:
    """Every counter's value in each cycle ``0..len(clear)`` (one more than the trace: the value
    after the last cycle), by the counters' documented timing.

    A counter adds the event of cycle ``t`` at the end of ``t + 1`` (the event is registered
    first), so in cycle ``t`` it shows the events of cycles up to ``t - 2``. ``clear`` in cycle
    ``c`` zeroes the counter and the registered event of cycle ``c - 1``, and drops the event of
    cycle ``c`` itself: after a clear in cycle ``c`` a counter counts exactly the events of
    cycles ``c + 1`` onwards, and reads 0 in cycles ``c + 1`` and ``c + 2``.
    """
    wrap = (1 << width) - 1
    values = {}
    for name, increments in events.items():
        counter, registered, trace = 0, 0, []
        for t, increment in enumerate(increments):
            trace.append(counter)
            if clear[t]:
                counter, registered = 0, 0
            else:
                counter, registered = (counter + registered) & wrap, increment
        trace.append((counter + registered) & wrap)   # the registered event lands a cycle later
        values[name] = trace
    return values


def first_difference(have: list, want: list):
    """Index of the first element where two sequences differ (or where one ends), else None."""
    for index, (a, b) in enumerate(zip(have, want)):
        if a != b:
            return index
    return None if len(have) == len(want) else min(len(have), len(want))


def check_timing(run, model: _Block, payloads: dict) -> Prediction:
    """Assert that every handshake of a bench run (a :class:`~maskprop.tb.traffic.BenchRecord`,
    from either simulator) happened in the cycle the reference
    predicts from the run's own recorded traffic; return the prediction. A beat taken late,
    early, or not at all fails, naming the port, the beat and both cycles."""
    prediction = predict(model, Traffic(run.offered, run.o_ready), payloads)
    pairs = [(f"input {port}", run.port_cycles[port], prediction.port_cycles[port])
             for port in model.inputs]
    pairs.append(("output o", run.out_cycles, prediction.out_cycles))
    for what, have, want in pairs:
        beat = first_difference(have, want)
        if beat is not None:
            def at(cycles):
                return f"cycle {cycles[beat]}" if beat < len(cycles) else "never"
            raise AssertionError(f"{what}: beat {beat} of {len(want)} moved in {at(have)}, the "
                                 f"handshake reference says {at(want)}")
    return prediction


def _fields(value, layout) -> dict:
    """A counter struct (an int from cocotb or a ``data.Const`` from Amaranth) as a dict."""
    view = layout.from_bits(value) if isinstance(value, int) else value
    return {name: int(getattr(view, name)) for name, _ in layout}


def check_counters(run, prediction: Prediction, layout, *, port: str = "counters") -> dict:
    """Assert that every field of the counter port, in every cycle of the run (``watch``) and
    after it (``read``), is what the predicted events and the recorded ``clear`` pulses make of
    it (:func:`counter_values`). Returns the expected final values."""
    cycles = len(run.o_ready)
    clear = run.pulsed.get("clear", [False] * cycles)
    expected = counter_values({name: prediction.events[name] for name, _ in layout}, clear)
    observed = run.watched.get(port)
    if observed is not None:
        assert len(observed) == cycles
        for t, value in enumerate(observed):
            have = _fields(value, layout)
            wrong = {name: (have[name], expected[name][t]) for name in have
                     if have[name] != expected[name][t]}
            assert not wrong, f"cycle {t}: counters (RTL, expected) {wrong}"
    final = {name: trace[-1] for name, trace in expected.items()}
    have = _fields(run.read[port], layout)
    assert have == final, f"counters after the run: RTL {have}, expected {final}"
    return final
