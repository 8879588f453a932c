"""Cycle model: predicts the RTL's cycle counts exactly from masks and the configuration.

Unit costs come from the hardware's own contract (:func:`maskprop.hw.index_decoder.chunk_cycles`
is the decoder's; it is restated here in vectorized form and tests hold the two together).
"""

from dataclasses import dataclass

import numpy as np

from maskprop.base.metrics import Speedups, multiplier_slots, nonzero_products
from maskprop.sim.blocks import segment_elements
from maskprop.sim.lowering import ORIENTATIONS, lower_pass

__all__ = ["chunk_costs", "engine_cycles", "stream_schedule", "chunk_counts", "prefix_closure",
           "IssuedChunks", "row_chunk_cycles", "column_groups", "wanted_per_block",
           "array_cycles", "array_group_cycles", "array_output_cycles", "wanted_outputs",
           "mode_cycles", "SlotBreakdown", "slot_breakdown", "PassEstimate", "ModeEstimate",
           "fastest", "dense_baseline", "mode_estimates", "estimate_lowerings",
           "candidate_lowerings", "pass_estimate", "join_lane_cycles",
           "JoinTileTimeline", "join_tile_schedule", "join_array_schedule", "dealt_outputs",
           "join_pass_word_costs", "join_word_costs", "decoupled_tile_cycles",
           "join_array_cycles", "JOIN_EXACT_OUTPUTS", "join_pass_cycles"]


def chunk_costs(x_chunks: np.ndarray, y_chunks: np.ndarray, config, *,
                dense: bool = False) -> np.ndarray:
    """Cycles of each chunk pair (``(..., vec)`` arrays) on the decoder of ``config`` (its
    ``lanes`` and selection window), unstalled.

    Sparse mode issues only products with both operands nonzero, ``lanes`` per cycle (with a
    restricted window, as many cycles as the busiest segment,
    :meth:`~maskprop.base.config.Selection.beats`), and an
    all-zero chunk costs one cycle: ``max(1, ceil(n / lanes))``. Dense mode issues every
    element: ``ceil(vec / lanes)``.
    """
    vec = x_chunks.shape[-1]
    if dense:
        return np.full(x_chunks.shape[:-1], -(-vec // config.lanes), dtype=np.int64)
    return np.maximum(1, config.selection.beats((x_chunks != 0) & (y_chunks != 0)))


def engine_cycles(stream, config, *, dense: bool = False) -> int:
    """Input-busy cycles (the engine's ``cycles - stalls`` counter) for a :class:`ChunkStream`
    on the engine of ``config``."""
    return int(chunk_costs(stream.x, stream.y, config, dense=dense).sum())


def stream_schedule(costs, chunks_per_frame: int, latency: int):
    """Unstalled timing of a chunk stream: the cycle each chunk is accepted and the cycle each
    frame's result is offered (see :class:`maskprop.hw.engine.SparseDotEngine`)."""
    ends = np.cumsum(np.asarray(costs).ravel())
    accepted = np.concatenate(([0], ends[:-1]))
    results = ends[chunks_per_frame - 1::chunks_per_frame] - 1 + latency
    return accepted, results


def join_lane_cycles(products: np.ndarray, word_elements: int) -> np.ndarray:
    """Cycles :class:`~maskprop.hw.join_lane.JoinLane` spends on each output, unstalled:
    ``products`` (``(..., n)`` booleans) marks the positions of the lane's walk (chunk by
    chunk, ``window`` elements each) where both operands are nonzero; a mask word covers
    ``word_elements = group * window`` of them (the last one padded) and costs one cycle a
    product, one if it has none."""
    products = np.asarray(products, dtype=bool)
    words = -(-products.shape[-1] // word_elements)
    padding = [(0, 0)] * (products.ndim - 1) + [(0, words * word_elements - products.shape[-1])]
    counts = np.count_nonzero(np.pad(products, padding).reshape(
        *products.shape[:-1], words, word_elements), axis=-1)
    return np.maximum(1, counts).sum(axis=-1)


#: :class:`~maskprop.hw.join_lane.JoinLane`'s cycles from an output's last decoder beat to its
#: partial sum on ``o``: the data read, the PE's two stages, the accumulator.
JOIN_LANE_TAIL = 4
#: :class:`~maskprop.hw.join_tile.JoinTile`'s cycles from the join taking an output's partial
#: sums to its result on ``o``: the partial sums registered, summed in pairs, then summed.
JOIN_TILE_LATENCY = 3


class JoinTileTimeline:
    """The handshake cycles of one :class:`~maskprop.hw.join_tile.JoinTile`, output by output,
    register by register: :func:`join_tile_schedule` for a tile alone, and
    :func:`join_array_schedule` for the tiles of a join array, whose outputs arrive when the
    dealer gets to them and whose results wait for the collector.

    Each lane is a chain of registers the recurrence follows per output: the lane takes output
    ``k`` from its queue (``T``) when the queue has it (the cycle after the tile accepted it)
    and the lane has read its last word of output ``k - 1`` (``F_last``); it reads the first
    word (``F_0``) when it has taken it and the previous word has moved on into the masks'
    register (``M_last``); that register takes the word (``M_0``) the cycle after it is read
    and once the decoder has taken the previous word (``L_last``); the decoder takes it
    (``L_0``) the cycle after and once done with the previous one (``E``), then walks the
    output's words back to back; the partial sum is in the lane's queue
    :data:`JOIN_LANE_TAIL` cycles after the final decoder beat. The join takes output ``k``
    (``J``) the cycle after the last lane's partial sum is in its queue, and not before output
    ``k - 1`` has moved on from the join's first register (``P``). The join's three registers
    move together, in every cycle in which ``o`` does not hold a result that is not collected
    (``advance``; with ``skid``, a skid buffer behind ``o`` as in the join array, one that has
    not left ``o`` for the skid): output ``k`` moves to the second in the first such cycle
    after ``J`` (``P``), to ``o`` in the first after that, and is offered the cycle after. The
    tile accepts output ``k`` once output ``k - queue`` has been joined.
    """

    def __init__(self, lanes: int, queue: int, *, skid: bool = False):
        never = -(1 << 62)
        self.queue = queue
        self.skid = skid
        self.accepted, self.joined, self.moved, self.offered, self.collected = [], [], [], [], []
        self.left = []    # the cycle each result left ``o``: collected, or taken by the skid
        self._last_read = [never] * lanes     # F_last: the previous output's last word read
        self._last_loaded = [never] * lanes   # M_last: that word's masks registered
        self._last_taken = [never] * lanes    # L_last: the decoder took that word
        self._done = [never] * lanes          # E: the decoder's final beat of it

    def admission(self) -> int:
        """The first cycle the tile can accept its next output (its tags' queue not full)."""
        k = len(self.accepted)
        return self.joined[k - self.queue] + 1 if k >= self.queue else 0

    def _advance_from(self, cycle: int) -> int:
        # The first cycle from ``cycle`` on in which ``o`` holds no result that has not left;
        # only the last results can still be there (the join holds three).
        for offered, left in zip(self.offered[-3:], self.left[-3:]):
            if offered <= cycle < left:
                cycle = left
        return cycle

    def accept(self, word_costs, cycle: int) -> int:
        """Output accepted in ``cycle`` (at or after :meth:`admission`), costing lane ``s`` the
        words ``word_costs[s]`` (:func:`join_lane_cycles`, word by word): the cycle its result
        is offered on ``o``. Every earlier result must have been collected (:meth:`collect`)."""
        ready = cycle
        for s, costs in enumerate(word_costs):
            taken = max(cycle + 1, self._last_read[s])
            first_read = max(taken + 1, self._last_loaded[s])
            first_loaded = max(first_read + 1, self._last_taken[s])
            first_decoded = max(self._done[s], first_loaded + 1)
            self._done[s] = first_decoded + sum(costs)
            # Word j is taken by the decoder when word j - 1's products are done, loaded
            # when word j - 1 is taken and read when word j - 2 is taken (j >= 2).
            self._last_taken[s] = self._done[s] - costs[-1]
            self._last_loaded[s] = (first_loaded if len(costs) == 1
                                    else self._last_taken[s] - costs[-2])
            self._last_read[s] = (first_read if len(costs) == 1 else
                                  first_loaded if len(costs) == 2 else
                                  self._last_loaded[s] - costs[-3])
            ready = max(ready, self._done[s] + JOIN_LANE_TAIL)
        joined = max(ready + 1, self.moved[-1] if self.moved else 0)
        moved = self._advance_from(joined + 1)
        offered = self._advance_from(moved + 1) + 1
        self.accepted.append(cycle)
        self.joined.append(joined)
        self.moved.append(moved)
        self.offered.append(offered)
        return offered

    def collect(self, cycle: int):
        """The last offered result is collected in ``cycle``: taken from ``o``, or with a skid
        buffer behind ``o``, from the skid or from ``o`` through it (``o`` is then free from
        the first cycle after the offer in which the skid holds no earlier result)."""
        if self.skid:
            skid_free = self.collected[-1] + 1 if self.collected else 0
            self.left.append(max(self.offered[-1], skid_free))
        else:
            self.left.append(cycle)
        self.collected.append(cycle)


def join_tile_schedule(word_costs, queue: int):
    """Unstalled handshake cycles of :class:`~maskprop.hw.join_tile.JoinTile`: the cycle each
    output is accepted on ``i`` and the cycle its result is offered on ``o``
    (:class:`JoinTileTimeline`, every output offered as early as the tile takes it, every
    result taken when offered).

    ``word_costs[s][k]`` lists the cycles of lane ``s``'s mask words of output ``k``
    (:func:`join_lane_cycles`, word by word)."""
    lanes, outputs = len(word_costs), len(word_costs[0])
    tile = JoinTileTimeline(lanes, queue)
    for k in range(outputs):
        accept = max(tile.accepted[-1] + 1 if tile.accepted else 0, tile.admission())
        tile.collect(tile.accept([word_costs[s][k] for s in range(lanes)], accept))
    return tile.accepted, tile.offered


def join_array_schedule(row_chunks, row_outputs, *, tiles: int, queue: int, ring: int):
    """Handshake cycles of :class:`~maskprop.hw.join_array.JoinArray` when ``x`` and ``rows``
    offer a beat in every cycle and ``o`` is always ready, cycle 0 being the first in which
    they offer one: ``(x, rows, o)``, the cycle of every beat on each.

    ``row_chunks[r]`` is row ``r``'s chunk count on ``x``; ``row_outputs[r]`` its wanted
    outputs in order, each the word costs of every lane (``[lane][word]``,
    :func:`join_lane_cycles` word by word). Register by register:

    - ``x``: row ``r``'s chunks a cycle each, from the cycle after row ``r - 1``'s last and
      after row ``r - ring``'s slot was freed (the cycle its last results were collected, or
      the dealer took it without a wanted output);
    - ``rows``: row ``r`` taken the cycle after its last chunk is written at the earliest,
      and once the dealer is done with row ``r - 1`` (in the cycle of its final deal; the
      cycle after, for a row without a wanted output);
    - the deal: the row's outputs in steps of ``tiles`` in rank order, rank ``j`` of the
      ``p``-th row with a wanted output to tile ``(p + j) % tiles`` (:func:`dealt_outputs`),
      into the tile's stage register: the first step the cycle after the row was taken, each
      step the cycle after the previous at the earliest and once the stage of every tile it
      deals to is free (empty, or its output accepted by the tile in that cycle);
    - each tile accepts its output from its stage the cycle after the deal at the earliest,
      when it admits one (:meth:`JoinTileTimeline.admission`), then
      :class:`JoinTileTimeline`; ``o``: a step's results in one beat, collected in the cycle
      the last of them is offered or the cycle after the previous step's were, whichever is
      later.
    """
    lanes = next((len(output) for outputs in row_outputs for output in outputs), 1)
    timelines = [JoinTileTimeline(lanes, queue, skid=True) for _ in range(tiles)]
    x_cycles, rows_cycles, out_cycles, freed = [], [], [], []
    next_x = 0               # the first cycle row r's first chunk may be written
    dealer_free = 0          # the first cycle the dealer may take row r
    first = 0                # the next row's first tile
    for r, (chunks, outputs) in enumerate(zip(row_chunks, row_outputs)):
        start = max(next_x, freed[r - ring] + 1 if r >= ring else 0)
        x_cycles += range(start, start + chunks)
        next_x = start + chunks
        taken = max(next_x, dealer_free)
        rows_cycles.append(taken)
        if not outputs:
            freed.append(taken)
            dealer_free = taken + 1
            continue
        step = taken
        for rank in range(0, len(outputs), tiles):
            group = outputs[rank:rank + tiles]
            owners = [timelines[(first + j) % tiles] for j in range(len(group))]
            step = max([step + 1] + [tile.accepted[-1] for tile in owners if tile.accepted])
            offered = [tile.accept(costs, max(step + 1, tile.admission()))
                       for tile, costs in zip(owners, group)]
            collected = max(max(offered), out_cycles[-1] + 1 if out_cycles else 0)
            for tile in owners:
                tile.collect(collected)
            out_cycles.append(collected)
        first = (first + 1) % tiles
        freed.append(out_cycles[-1])
        dealer_free = step
    return x_cycles, rows_cycles, out_cycles


def chunk_counts(nonzero: np.ndarray, vec: int) -> np.ndarray:
    """Set elements of each chunk of ``vec`` along the reduction: ``(M, Q*vec)`` -> ``(M, Q)``
    (the reduction is a multiple of ``vec``, as every aligned lowering's is)."""
    rows, length = nonzero.shape
    if length % vec:
        raise ValueError(f"a reduction of {length} is not a whole number of chunks of {vec}")
    return np.count_nonzero(np.asarray(nonzero).reshape(rows, length // vec, vec), axis=-1)


def prefix_closure(elements, vec: int) -> np.ndarray:
    """``(M, Q * vec)`` booleans with, in every chunk, each element below the chunk's last set
    one set too: what :class:`~maskprop.hw.index_decoder.PrefixIndexSequencer` sends
    (:func:`maskprop.hw.index_decoder.prefix_closure`, vectorized)."""
    rows, length = np.shape(elements)
    chunks = np.asarray(elements, dtype=bool).reshape(rows, length // vec, vec)
    closed = np.logical_or.accumulate(chunks[..., ::-1], axis=-1)[..., ::-1]
    return closed.reshape(rows, length)


@dataclass(frozen=True)
class IssuedChunks:
    """What the tile array's decoder gets for a pass in one mode: ``counts (M, Q)`` the set mask
    bits of every chunk (the elements it issues: the structure's in dense mode, the nonzeros in
    sparse mode), ``beats (M, Q)`` the decoder beats each takes
    (:meth:`~maskprop.base.config.Selection.beats`, 0 for none) and ``live (M, Q)`` the chunks
    that are sent at all (those with a structural element; a row without one is not sent)."""
    counts: np.ndarray
    beats: np.ndarray
    live: np.ndarray

    @classmethod
    def of(cls, gemm, config, *, dense: bool, zero_skipping: bool = True) -> "IssuedChunks":
        """The chunks of a lowered pass on the tile array of ``config``; ``zero_skipping=False``:
        on the dense-only array (``TileArray(config, zero_skipping=False)``, always dense),
        whose sequencer sends each chunk's prefix up to its last structural element."""
        if gemm.vec != config.vec:
            raise ValueError(f"the pass is lowered for vec={gemm.vec}, the array has vec="
                             f"{config.vec}")
        if not zero_skipping:
            return cls.from_elements(prefix_closure(gemm.structure, config.vec), gemm.structure,
                                     config)
        return cls.from_elements(gemm.structure if dense else gemm.X != 0, gemm.structure,
                                 config)

    @classmethod
    def from_elements(cls, issued, structure, config) -> "IssuedChunks":
        """From the elements issued and the structural ones, ``(M, Q * vec)`` booleans each."""
        vec = config.vec
        rows, length = np.shape(issued)
        if length % vec:
            raise ValueError(f"a reduction of {length} is not a whole number of chunks of {vec}")
        elements = np.asarray(issued, dtype=bool).reshape(rows, length // vec, vec)
        return cls(np.count_nonzero(elements, axis=-1),
                   config.selection.beats(elements),
                   chunk_counts(structure, vec) > 0)

    def rows(self, which) -> "IssuedChunks":
        """The chunks of the rows ``which`` (an index or a mask of rows)."""
        return IssuedChunks(self.counts[which], self.beats[which], self.live[which])

    @property
    def live_rows(self) -> np.ndarray:
        return self.live.any(axis=-1)


def row_chunk_cycles(issued: IssuedChunks):
    """Decoder cycles of one pass of each row's chunks through the tile array, for the first
    column group (every live chunk; one without a set bit costs a cycle) and for a replay (only
    the chunks with a set bit, at least one cycle): two ``(M,)``, 0 for a row with no live
    chunk (never sent)."""
    beats = np.where(issued.live, issued.beats, 0)
    first = np.where(issued.live, np.maximum(1, beats), 0).sum(axis=-1)
    replay = np.where(issued.live_rows, np.maximum(1, beats.sum(axis=-1)), 0)
    return first, replay


def column_groups(wanted: np.ndarray, tiles: int, col_block: int,
                  live_rows: np.ndarray | None = None) -> np.ndarray:
    """Column groups per row and block of the tile array: ``max(1, ceil(wanted / tiles))`` for
    every block of ``col_block`` columns (a block with nothing wanted still takes one group to
    consume its X chunks), none for a row that is not sent (``live_rows`` False).
    ``(M, J)`` -> ``(M, blocks)``."""
    groups = np.maximum(1, -(-wanted_per_block(wanted, col_block) // tiles))
    if live_rows is not None:
        groups = np.where(np.asarray(live_rows)[:, None], groups, 0)
    return groups


def wanted_per_block(wanted: np.ndarray, col_block: int) -> np.ndarray:
    """Wanted outputs of each row in each block of ``col_block`` columns: ``(M, J)`` ->
    ``(M, blocks)``."""
    rows, cols = wanted.shape
    blocks = -(-cols // col_block)
    padded = np.zeros((rows, blocks * col_block), dtype=bool)
    padded[:, :cols] = wanted
    return padded.reshape(rows, blocks, col_block).sum(axis=-1)


def array_cycles(issued: IssuedChunks, wanted: np.ndarray, config) -> int:
    """Cycles of a pass on :class:`maskprop.hw.tile_array.TileArray` (its ``cycles - stalls``
    counter): each live row is sent once per block of columns, and each of the block's column
    groups passes the row's live chunks through the decoder (the first all of them, the others
    those with a set bit). ``wanted``: ``(M, J)`` outputs to compute (all of them in dense mode).
    """
    first, replay = row_chunk_cycles(issued)
    groups = column_groups(wanted, config.tiles, config.col_block, issued.live_rows)
    return int((np.where(groups > 0, first[:, None] + (groups - 1) * replay[:, None], 0)).sum())


def array_group_cycles(issued: IssuedChunks, wanted: np.ndarray, config) -> np.ndarray:
    """Decoder cycles of every column group of a pass on the tile array, in the order the array
    issues them (row by row, block by block, ascending columns): a row's first group passes
    all its live chunks, the others replay those with a set bit (see :func:`array_cycles`, their
    sum)."""
    first, replay = row_chunk_cycles(issued)
    groups = column_groups(wanted, config.tiles, config.col_block, issued.live_rows)
    blocks = groups.shape[1]
    groups = groups.ravel()                                                 # (M * blocks,)
    durations = np.repeat(np.repeat(replay, blocks), groups)
    starts = np.concatenate(([0], np.cumsum(groups)[:-1]))[groups > 0]      # each block's first
    durations[starts] = np.repeat(first, blocks)[groups > 0]
    return durations


def array_output_cycles(issued: IssuedChunks, wanted: np.ndarray, config, *,
                        latency: int) -> np.ndarray:
    """The cycle in which each column group's result is offered on an unstalled pass, counted
    from the cycle in which the array accepts the pass's first row (cycle 0).

    From :class:`~maskprop.hw.tile_array.TileArray`'s timing contract: the first chunk enters
    the decoder in the cycle after its row is accepted (the row register), groups and rows then
    follow without bubbles, each taking :func:`array_group_cycles`, and a group's result comes
    ``latency`` cycles after its last chunk's last decoder cycle - counted as for a one-cycle
    chunk: entered in ``t``, result in ``t + latency``. So group ``g``'s result is offered in
    ``1 + sum(durations[:g + 1]) - 1 + latency``; the last one ends the pass.
    """
    return np.cumsum(array_group_cycles(issued, wanted, config)) + latency


@dataclass(frozen=True)
class SlotBreakdown:
    """Where the multiplier slots of a sparse pass on the tile array go: every decoder cycle
    offers ``lanes * tiles`` slots, and each is exactly one of

    - ``productive``: a product of two nonzero operands for a wanted output (the nonzero
      MACs); their share of all slots is achieved/ideal;
    - ``zero_operand``: a product issued for a wanted output whose ``Y`` operand is 0 (the
      decoder skips zeros of ``X`` only, so in backward-weight, where both are sparse, these
      are the other operand's zeros);
    - ``idle_tiles``: a tile without a wanted column in the group (a block's wanted columns not
      a multiple of ``tiles``, or a block with none, which still takes one group);
    - ``lane_fragments``: a lane left empty in a chunk's beats (a chunk of ``n`` nonzeros
      takes ``ceil(n / lanes)`` beats; with a selection window, as many as its busiest
      segment needs, while the other segments' lanes idle);
    - ``empty_chunks``: the cycle of a chunk without a nonzero in a row's first group, or of a
      replay of a row with none.

    They add up to ``cycles * lanes * tiles`` (:attr:`total`)."""
    productive: int
    zero_operand: int
    idle_tiles: int
    lane_fragments: int
    empty_chunks: int

    CAUSES = ("productive", "zero_operand", "idle_tiles", "lane_fragments", "empty_chunks")

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in self.CAUSES)

    def __add__(self, other: "SlotBreakdown") -> "SlotBreakdown":
        return SlotBreakdown(*(getattr(self, n) + getattr(other, n) for n in self.CAUSES))

    def shares(self) -> dict:
        """Each cause's fraction of all slots (``None`` for a pass with no cycle)."""
        return {name: getattr(self, name) / self.total if self.total else None
                for name in self.CAUSES}


def slot_breakdown(gemm, config) -> SlotBreakdown:
    """:class:`SlotBreakdown` of a lowered pass in sparse mode on the tile array of
    ``config``, counted from the same chunks and column groups as :func:`array_cycles`: each
    column group issues every nonzero ``X`` element of its row once (the first group all live
    chunks, the replays those with a nonzero), to each of its tiles."""
    lanes, tiles = config.lanes, config.tiles
    issued = IssuedChunks.of(gemm, config, dense=False)
    wanted = wanted_outputs(gemm, dense=False)
    first, replay = row_chunk_cycles(issued)
    groups = column_groups(wanted, tiles, config.col_block, issued.live_rows).astype(np.int64)
    in_block = np.where(issued.live_rows[:, None],
                        wanted_per_block(wanted, config.col_block), 0).astype(np.int64)
    counts = np.where(issued.live, issued.counts, 0).astype(np.int64)
    nonzeros = counts.sum(axis=-1)                   # issued to each tile of each group
    beats = np.where(issued.live, issued.beats, 0).sum(axis=-1)   # cycles with a nonzero
    per_row = groups.sum(axis=-1)
    # The rest of a group's cycles have none: a first group's chunks without a nonzero, or
    # the one cycle of a replay of a row with none.
    empty = np.where(groups > 0, (first - beats)[:, None]
                     + (groups - 1) * (replay - beats)[:, None], 0)
    productive = nonzero_products(gemm.X != 0, gemm.Y != 0, wanted)
    return SlotBreakdown(
        productive=productive,
        zero_operand=int((nonzeros * in_block.sum(axis=-1)).sum()) - productive,
        idle_tiles=int((nonzeros * (groups * tiles - in_block).sum(axis=-1)).sum()),
        lane_fragments=int(((beats * lanes - nonzeros) * per_row).sum()) * tiles,
        empty_chunks=int(empty.sum()) * lanes * tiles)


def wanted_outputs(gemm, *, dense: bool) -> np.ndarray:
    """``(M, J)`` outputs the tile array computes: all in dense mode, else the output mask."""
    everything = np.ones((gemm.X.shape[0], gemm.Y.shape[1]), dtype=bool)
    if dense or gemm.omask is None:
        return everything
    return np.asarray(gemm.omask, dtype=bool)


def mode_cycles(gemm, config, *, dense: bool) -> int:
    """Cycles of a lowered pass (aligned to ``config.vec``) on the tile array in one mode."""
    return array_cycles(IssuedChunks.of(gemm, config, dense=dense),
                        wanted_outputs(gemm, dense=dense), config)


@dataclass(frozen=True)
class PassEstimate(Speedups):
    """Cycle-model result of one pass of one layer on the tile array (terms and ratios as in
    :mod:`maskprop.base.metrics`). ``dense_orientation``, ``sparse_orientation``: the
    backward-weight orientation each mode runs in (its faster one), ``""`` for the other
    passes."""
    layer: str
    pass_name: str
    dense_cycles: int
    sparse_cycles: int
    dense_slots: int
    nonzero_macs: int
    dense_orientation: str
    sparse_orientation: str

    @classmethod
    def of(cls, dense: "ModeEstimate", sparse: "ModeEstimate", config) -> "PassEstimate":
        """The estimate of a pass from each mode's run (:func:`mode_estimates`): their cycles,
        the dense slots and the nonzero MACs (the same in every orientation)."""
        return cls(sparse.gemm.layer.name, sparse.gemm.pass_name, dense.cycles, sparse.cycles,
                   multiplier_slots(dense.cycles, config.lanes * config.tiles),
                   nonzero_products(sparse.gemm.X != 0, sparse.gemm.Y != 0,
                                    wanted_outputs(sparse.gemm, dense=False)),
                   dense.gemm.orientation, sparse.gemm.orientation)


@dataclass(frozen=True)
class ModeEstimate:
    """A pass in one mode in the lowering it runs fastest in: that lowering, its cycles and
    the chunks the decoder gets (:class:`IssuedChunks`)."""
    gemm: object
    cycles: int
    issued: IssuedChunks


def fastest(gemms, config, *, dense: bool, zero_skipping: bool = True) -> ModeEstimate:
    """The lowering of ``gemms`` (the candidate orientations of one pass, all aligned to
    ``config.vec``) that runs in the fewest cycles in that mode on the array of ``config``
    (``zero_skipping=False``: the dense-only array, dense mode), the first on a tie."""
    estimates = []
    for gemm in gemms:
        issued = IssuedChunks.of(gemm, config, dense=dense, zero_skipping=zero_skipping)
        cycles = array_cycles(issued, wanted_outputs(gemm, dense=dense), config)
        estimates.append(ModeEstimate(gemm, cycles, issued))
    return min(estimates, key=lambda estimate: estimate.cycles)      # the first on a tie


def dense_baseline(config):
    """The configuration whose dense mode is the fair dense baseline of ``config``'s array:
    the same with the full selection window. A sparsity-agnostic design packs a chunk's
    structural elements into its lanes; with a restricted window the array's own dense mode
    takes a chunk's busiest segment, which is the same for a prefix of the chunk (padded
    channels and pixels: :class:`~maskprop.base.config.Selection`) but can be more where
    structural zeros are scattered (backward-weight's ``"a"`` orientation at a map's border)."""
    return config.full_window


def mode_estimates(gemms, config) -> tuple[ModeEstimate, ModeEstimate]:
    """``(dense, sparse)``: each mode of a pass in its fastest lowering (:func:`fastest`),
    dense mode on the fair baseline (:func:`dense_baseline`: the full selection window
    whatever ``config``'s)."""
    return fastest(gemms, dense_baseline(config), dense=True), fastest(gemms, config, dense=False)


def estimate_lowerings(gemms, config) -> PassEstimate:
    """Dense and sparse cycles of a pass given its candidate lowerings (one, or backward-
    weight's two orientations): :meth:`PassEstimate.of` its :func:`mode_estimates`."""
    return PassEstimate.of(*mode_estimates(gemms, config), config)


def candidate_lowerings(layer, pass_name: str, *, A, W, dZ, config, output_mask: bool = True):
    """Every lowering a pass may run in on the tile array of ``config``: one, or backward-
    weight's two orientations."""
    orientations = ORIENTATIONS if pass_name == "backward_weight" else ("dz",)
    return [lower_pass(layer, pass_name, A=A, W=W, dZ=dZ, output_mask=output_mask,
                       x_operand=orientation, vec=config.vec) for orientation in orientations]


def pass_estimate(layer, pass_name: str, a_nonzero, dz_nonzero, config, *,
                  w_nonzero=None) -> PassEstimate:
    """:func:`estimate_lowerings` of a layer's pass from masks alone.

    ``a_nonzero``: the layer's input activation's nonzero map ``(N, C, H, W)``; ``dz_nonzero``:
    the output gradient's ``(N, K, Ho, Wo)``; ``w_nonzero``: the weights' (default: dense).
    The pass is lowered by :func:`candidate_lowerings`, as the host driver lowers it, so the
    counts are the RTL's.
    """
    def pattern(nonzero):     # one byte per element: the lowered operands stay small
        return np.asarray(nonzero, dtype=bool).view(np.uint8)

    w = (np.ones(layer.weight_shape, dtype=np.uint8) if w_nonzero is None
         else pattern(w_nonzero))
    return estimate_lowerings(candidate_lowerings(layer, pass_name, A=pattern(a_nonzero), W=w,
                                                  dZ=pattern(dz_nonzero), config=config), config)


# --- The join array (docs/architecture.md section 4.8) -----------------------------------------

def dealt_outputs(wanted: np.ndarray, tiles: int):
    """The wanted outputs ``(m, j)`` in the pass's order (row-major) and the tile each is
    dealt to, as :class:`~maskprop.hw.join_array.JoinArray`'s dealer deals them: rank ``r``
    of the ``p``-th row with a wanted output to tile ``(p + r) % tiles`` (each row starts one
    tile further, so that a column whose outputs cost more is not always on the same tile)."""
    m, j = np.nonzero(wanted)
    start = np.r_[0, np.flatnonzero(np.diff(m)) + 1]            # each row's first output
    counts = np.diff(np.r_[start, m.size])
    rank = np.arange(m.size) - np.repeat(start, counts)
    position = np.repeat(np.arange(start.size), counts)
    return m, j, (rank + position) % tiles


def join_pass_word_costs(x_nonzero, y_nonzero, *, segments: int, window: int, group: int,
                         words: bool = False, floor: bool = True) -> np.ndarray:
    """Each lane's cycles on each output ``(m, j)`` of ``X (M, K) @ Y (K, J)`` (their nonzero
    elements given) in a join array of ``segments`` lanes of ``window`` elements (a chunk of
    ``segments * window``, the last one padded) with mask words of ``group`` chunks:
    ``(segments, M, J)``, the sum over the output's words of :func:`join_lane_cycles`'s
    ``max(1, n)``; with ``words``, ``(segments, M, J, words)``, word by word (what
    :class:`JoinTileTimeline` takes). The segments are rotated (:func:`~maskprop.sim.blocks.
    segment_elements`). ``floor=False``: the words' products ``n`` themselves, for the bounds
    of lanes that would not pay an empty word's cycle (``scripts/bench_join.py``)."""
    vec = segments * window
    x = segment_elements(np.asarray(x_nonzero, dtype=bool), vec, segments)
    y = segment_elements(np.asarray(y_nonzero, dtype=bool).T, vec, segments)
    span = group * window
    count = -(-x[0].shape[1] // span)
    shape = (segments, x[0].shape[0], y[0].shape[0])
    costs = np.zeros(shape + ((count,) if words else ()), dtype=np.int64)
    for s in range(segments):
        for w in range(count):
            part = slice(w * span, (w + 1) * span)
            products = x[s][:, part].astype(np.float32) @ y[s][:, part].T.astype(np.float32)
            cost = np.rint(products).astype(np.int64)
            if floor:
                cost = np.maximum(1, cost)
            if words:
                costs[s, :, :, w] = cost
            else:
                costs[s] += cost
    return costs


def join_word_costs(gemm, config, group: int, *, words: bool = False,
                    floor: bool = True) -> np.ndarray:
    """:func:`join_pass_word_costs` of ``gemm`` in the join array of ``config`` (its vec and
    selection window: one lane a segment)."""
    selection = config.selection
    return join_pass_word_costs(gemm.X != 0, gemm.Y != 0, segments=selection.segments,
                                window=selection.window, group=group, words=words,
                                floor=floor)


def decoupled_tile_cycles(costs: np.ndarray, wanted: np.ndarray, tiles: int) -> int:
    """The join array's cycles with unbounded queues, a bound the exact schedule approaches as
    ``queue`` grows: each lane of a tile walks the tile's outputs without waiting for the
    others, so the pass costs the busiest lane of the busiest tile, the outputs dealt as
    :func:`dealt_outputs` says and costing ``costs (segments, M, J)`` in each lane."""
    m, j, tile = dealt_outputs(wanted, tiles)
    per_lane = np.zeros((tiles, costs.shape[0]), dtype=np.int64)
    for segment, segment_costs in enumerate(costs):
        np.add.at(per_lane[:, segment], tile, segment_costs[m, j])
    return max(1, int(per_lane.max()))


def join_array_cycles(gemm, config, *, group: int, queue: int, ring: int) -> int:
    """:class:`~maskprop.hw.join_array.JoinArray`'s exact cycles on ``gemm`` (sparse mode, its
    wanted outputs; the rows without one are not sent), ``X`` streaming in from cycle 0 and the
    results taken as they come: the cycle after the last result
    (:func:`join_array_schedule`). A Python loop over outputs: for small passes (the digits
    CNN); :func:`decoupled_tile_cycles` bounds it for networks."""
    wanted = wanted_outputs(gemm, dense=False)
    rows = np.flatnonzero(wanted.any(axis=1))
    if rows.size == 0:
        return 0
    words = join_word_costs(gemm, config, group, words=True)
    chunks = -(-gemm.X.shape[1] // config.vec)
    outputs = [[[[int(c) for c in costs] for costs in words[:, m, j]]
                for j in np.flatnonzero(wanted[m])] for m in rows]
    _, _, results = join_array_schedule([chunks] * rows.size, outputs, tiles=config.tiles,
                                        queue=queue, ring=ring)
    return results[-1] + 1


#: The most wanted outputs of a pass whose join-array cycles :func:`join_pass_cycles` takes
#: from the exact schedule (a Python loop over outputs, a few tens of thousands a second);
#: larger passes get the bound of unbounded queues. Every pass of the digits CNN is below it
#: (4,096 outputs at most), most of an ImageNet network's above.
JOIN_EXACT_OUTPUTS = 1 << 14


def join_pass_cycles(gemms, config, join, *, exact_outputs: int | None = JOIN_EXACT_OUTPUTS):
    """``(cycles, exact)``: the join array's cycles on a pass in its faster lowering (``gemms``,
    the candidate orientations), with ``config``'s multipliers and ``join``'s look-ahead,
    queue and ring (a :class:`~maskprop.base.config.JoinSettings`): the exact schedule
    (:func:`join_array_cycles`) when no lowering wants more than ``exact_outputs`` outputs
    (``None``: always), else the bound of unbounded queues (:func:`decoupled_tile_cycles`, at
    most the exact cycles)."""
    wanted = [wanted_outputs(gemm, dense=False) for gemm in gemms]
    if exact_outputs is None or max(int(w.sum()) for w in wanted) <= exact_outputs:
        return min(join_array_cycles(gemm, config, group=join.group, queue=join.queue,
                                     ring=join.ring) for gemm in gemms), True
    return min(decoupled_tile_cycles(join_word_costs(gemm, config, join.group), w, config.tiles)
               for gemm, w in zip(gemms, wanted)), False
