#!/usr/bin/env python3
"""Mutation testing of the RTL: does the test suite notice a small, plausible bug?

Each mutant of :data:`CATALOGUE` is one exact-text edit of one RTL module (``maskprop.hw.<block>``):
a counter that counts offered beats, a clear that keeps an event, a PE that keeps bubbles, a
shallower FIFO, an off-by-one rank, a dropped ``first``, a wrong reset... For each mutant a pytest
subprocess runs the mutant's own fast selection of tests (``-x``: it stops at the first failure)
with ``MASKPROP_MUTANT=<name>`` and ``-p mutant_plugin`` (``scripts/mutant_plugin.py``), whose
import hook rewrites the module's source text as Python imports it. Nothing on disk changes, so
other work in the tree is undisturbed and a crash leaves no mutated file behind; the generated
Verilog, and with it every simulator build (cached by the Verilog's text), is the mutant's.

A mutant is *killed* when a test fails (the verdict quotes the failure; a cocotb bench's failure
names its log, kept in the run's scratch directory, so the verdict quotes the reason the log
gives); it *survives* when all pass. A few mutants cannot be killed because they do not change
behaviour; they are listed with ``equivalent=<why>`` and must survive (a test failing on one means
the reasoning is wrong). The pattern of every mutant must
occur exactly once in its module: an edit of the RTL that makes a pattern vanish fails loudly
(here and in ``tests/test_mutants.py``) instead of letting the catalogue rot.

Before the mutants, the union of their test selections runs once unmutated and must pass (a
failure there would be no evidence about any mutant); ``--no-baseline`` skips it.

    .venv/bin/python scripts/mutants.py                    # every mutant, then the table
    .venv/bin/python scripts/mutants.py --list             # the catalogue
    .venv/bin/python scripts/mutants.py --only pe-keeps-bubbles --jobs 2
    .venv/bin/python scripts/mutants.py --jobs 2 --write-docs   # and the table into the docs

Exit status 0 only if every mutant is killed or, listed as equivalent, survives.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
DOCS = ROOT / "docs" / "verification.md"
ENV_MUTANT = "MASKPROP_MUTANT"
ENV_APPLIED = "MASKPROP_MUTANT_APPLIED"     # file the hook writes when it has mutated the module


class MutantError(RuntimeError):
    """A catalogue entry that no longer fits the RTL (its pattern is missing or ambiguous)."""


@dataclass(frozen=True)
class Mutant:
    name: str
    block: str                 # module maskprop.hw.<block>
    find: str                  # exact text, exactly once in the module
    replace: str
    bug: str                   # what the mutated RTL does wrong
    tests: tuple               # pytest selection that should kill it, fastest first
    equivalent: str = ""       # why no test can kill it, if none can

    @property
    def module(self) -> str:
        return f"maskprop.hw.{self.block}"

    @property
    def path(self) -> Path:
        return ROOT / "hw" / f"{self.block}.py"

    def apply(self, source: str) -> str:
        """``source`` with the mutation applied; :class:`MutantError` unless the pattern occurs
        exactly once."""
        count = source.count(self.find)
        if count != 1:
            raise MutantError(f"mutant {self.name}: its pattern occurs {count} times in "
                              f"{self.path.relative_to(ROOT)}, not once: {self.find!r}")
        return source.replace(self.find, self.replace)


RAM_SHARED_READ = ("tests/test_axi_ram.py::test_host_reads_share_the_read_port_with_bursts",
                   "tests/test_axi_ram.py::test_ram_against_axi_master")
DECODER = ("tests/test_index_decoder.py", "tests/test_throughput.py::test_decoder_handshakes")
TREE = ("tests/test_accumulation_tree.py", "tests/test_throughput.py::test_tree_handshakes")
ENGINE_COUNTERS = ("tests/test_counters.py::test_engine_counters",)
ARRAY_COUNTERS = ("tests/test_counters.py::test_array_counters",)
CORE_ILLEGAL = ("tests/test_core.py::test_illegal_commands_report_their_error_and_never_hang",)
CORE_OVERTAKING = ("tests/test_core_model.py::test_the_walk_waits_for_the_input_it_reads",)
CORE_FAST = ("tests/test_core_fast.py::test_small_layers_exact_in_every_pass_and_mode",)
CORE_SPLIT = ("tests/test_core_model.py::test_split_passes_exact_per_command",)
TRANSPOSER = ("tests/test_transposer.py::test_every_word_transposed_in_order",)
PARTIAL_SUMS = ("tests/test_partial_sums.py",)
GATHER = ("tests/test_window_gather.py::test_kernel_stride_padding_grid",
          "tests/test_window_gather.py::test_random_layers_with_backpressure")
ROW_BLOCKS = ("tests/test_row_block_buffer.py::test_random_rows",
              "tests/test_row_block_buffer.py::test_throughput_unstalled")
JOIN_LANE = ("tests/test_join_lane.py",)
JOIN_TILE = ("tests/test_join_tile.py",)
JOIN_ARRAY = ("tests/test_join_array.py::test_random_passes",)
DMA_COCOTBEXT = ("tests/test_axi_dma.py::test_dma_against_cocotbext_memory",)

CATALOGUE = [
    # --- ZeroSkipIndexDecoder ------------------------------------------------------------------
    Mutant("decoder-rank-step-off-by-one", "rank_compaction",
           "[rank.eq(rank - step) for rank in self.rank]",
           "[rank.eq(rank - step + 1) for rank in self.rank]",
           "after each beat the ranks count down by lanes - 1: a bit is sent twice "
           "(the shared rank register)", DECODER),
    Mutant("decoder-drops-pending-first", "index_decoder",
           "self.o.payload.first.eq((held_first & ~issued_beats) | pending_first),",
           "self.o.payload.first.eq(held_first & ~issued_beats),",
           "a frame that starts with an all-zero chunk loses its `first`", DECODER),
    Mutant("decoder-final-beat-off-by-one", "rank_compaction",
           "else self.total <= step", "else self.total < step",
           "a chunk with exactly `lanes` unsent bits takes one more (empty) cycle "
           "(the shared rank register)", DECODER),
    Mutant("decoder-busy-means-offering", "index_decoder",
           "self.busy.eq(held),", "self.busy.eq(self.o.valid),",
           "an all-zero chunk's cycle is not `busy`: the `cycles` counter misses it",
           ENGINE_COUNTERS),
    Mutant("decoder-resets-holding-a-chunk", "index_decoder",
           "held = Signal()                              # a chunk is in the register",
           "held = Signal(init=1)                        # a chunk is in the register",
           "wrong reset: the chunk register starts full (a phantom all-zero chunk)",
           ENGINE_COUNTERS),
    Mutant("decoder-window-segment-count-wraps", "index_decoder",
           "segment.step(segment_lanes, saturate=segments > 1)",
           "segment.step(segment_lanes)",
           "with a selection window, a segment that is done keeps counting down: its total "
           "wraps and the chunk's final beat comes late", DECODER),
    Mutant("prefix-sequencer-lowest-bit-wins", "index_decoder",
           "for position in range(vec):                  # the highest set bit wins",
           "for position in reversed(range(vec)):        # the highest set bit wins",
           "the dense-only array's sequencer takes a chunk's length from its lowest set bit: "
           "structural elements above it are never multiplied",
           ("tests/test_index_decoder.py",)),
    Mutant("decoder-single-lane-final-when-one-left", "rank_compaction",
           "self._single.eq(rest == 0)", "self._single.eq(mask == 0)",
           "the single-lane decoder (the join lane's) sees a chunk's final beat one beat late: "
           "an empty extra beat a chunk", DECODER),
    # --- JoinLane -------------------------------------------------------------------------------
    Mutant("join-lane-reads-the-x-word-for-y", "join_lane",
           "self.y_data.addr.eq(Cat(chunk, beat.side.y_word)),",
           "self.y_data.addr.eq(Cat(chunk, beat.side.x_word)),",
           "the Y operand is read at the X operand's address", JOIN_LANE),
    Mutant("join-lane-takes-the-next-output-a-word-early", "join_lane",
           "self.i.ready.eq(~held | (fetch & at_final_word)),",
           "self.i.ready.eq(~held | fetch),",
           "an output is replaced by the next after its first word: words missing", JOIN_LANE),
    Mutant("join-lane-data-read-ignores-the-stall", "join_lane",
           "self.x_data.en.eq(read),", "self.x_data.en.eq(1),",
           "the X data read does not hold while the PE stalls: a stalled product takes the "
           "next product's X operand", JOIN_LANE),
    Mutant("join-lane-loads-the-x-mask-only", "join_lane",
           "loaded_mask.eq(self.x_mask.data & self.y_mask.data),",
           "loaded_mask.eq(self.x_mask.data),",
           "the masks' register keeps X's mask alone: products whose Y operand is zero are "
           "issued", JOIN_LANE),
    Mutant("join-lane-fetch-waits-for-the-masks-register", "join_lane",
           "fetch.eq(~fetched | load),", "fetch.eq(load),",
           "the mask banks are read only when the masks' register moves, also when the read "
           "registers are empty: a word read late after an idle spell",
           JOIN_TILE + JOIN_ARRAY),
    # --- JoinTile -------------------------------------------------------------------------------
    Mutant("join-tile-joins-without-the-last-lane", "join_tile",
           "ready_all = Cat(sums.r_rdy for sums in partials).all() & tags.r_rdy",
           "ready_all = Cat(sums.r_rdy for sums in partials[:-1]).all() & tags.r_rdy",
           "the join does not wait for the last lane's partial sum", JOIN_TILE),
    Mutant("join-tile-drops-partial-overflow", "join_tile",
           "pairs_overflow.eq(Cat(reg.overflow for reg in taken).any()),",
           "pairs_overflow.eq(Cat(reg.overflow for reg in taken[:0]).any()),",
           "a lane's overflowed partial sum is not flagged on the result", JOIN_TILE),
    Mutant("join-tile-holds-one-output-more", "join_tile",
           "m.submodules.tags = tags = fifo.SyncFIFO(width=Shape.cast(self._tag).width,\n"
           "                                                 depth=depth)",
           "m.submodules.tags = tags = fifo.SyncFIFO(width=Shape.cast(self._tag).width,\n"
           "                                                 depth=depth + 1)",
           "the tile admits one output more than its lanes' queues hold", JOIN_TILE),
    # --- JoinArray ------------------------------------------------------------------------------
    Mutant("join-array-last-chunk-keeps-the-word", "join_array",
           "return here | (beat.last & (place < c)) if c else here",
           "return here if c else here",
           "a row's last chunk leaves the rest of its mask word as it was: a shorter row in a "
           "slot sees the longer row's masks there", JOIN_ARRAY),
    Mutant("join-array-writes-masks-without-a-beat", "join_array",
           "mask_port.en.eq(Cat(enable & places(c) for c in range(group))),",
           "mask_port.en.eq(Cat(places(c) for c in range(group))),",
           "the mask banks are written in every cycle, a beat or not: an X chunk waiting for "
           "its slot overwrites the masks of the row still in it", JOIN_ARRAY),
    Mutant("join-array-deals-into-a-full-stage", "join_array",
           "stage_free.append(~staged[t] | tile.i.ready)",
           "stage_free.append(~staged[t] | 1)",
           "the dealer deals into a tile's stage without asking whether the tile takes the "
           "output there: the held one is overwritten", JOIN_ARRAY),
    Mutant("join-array-stage-drops-an-untaken-output", "join_array",
           "            with m.Elif(tile.i.ready):\n                m.d.sync += staged[t].eq(0)",
           "            with m.Else():\n                m.d.sync += staged[t].eq(0)",
           "a tile's stage empties after a cycle whether or not the tile took its output",
           JOIN_ARRAY),
    Mutant("join-array-every-row-starts-on-tile-0", "join_array",
           "target[t].eq((t - p) % tiles)",
           "target[t].eq(t)",
           "the dealer starts every row's deal on tile 0 while the collector expects each row "
           "one tile further", JOIN_ARRAY),
    Mutant("join-array-frees-a-slot-on-any-result", "join_array",
           "freed = Mux(collected & head.last, Const(1, ring) << head.slot, 0)",
           "freed = Mux(collected, Const(1, ring) << head.slot, 0)",
           "the collector frees a row's slot with its first results: the next row overwrites "
           "it while tiles still read it", JOIN_ARRAY),
    Mutant("join-array-collects-without-the-last-tile", "join_array",
           "self.o.valid.eq(offered[0] & Cat(~want | has\n"
           "                                             for want, has in zip(in_step, offered)).all()),",
           "self.o.valid.eq(offered[0] & Cat(~want | has\n"
           "                                             for want, has in zip(in_step[:-1], offered)).all()),",
           "the collector does not wait for a full step's last tile", JOIN_ARRAY),
    Mutant("join-array-deals-a-row-still-held", "join_array",
           "& pending.bit_select(next_slot, 1))",
           "& full.bit_select(next_slot, 1))",
           "the dealer takes a row when its slot is occupied, even by an older row not yet "
           "collected, rather than when the row is written", JOIN_ARRAY),
    # --- SparseGradPE ---------------------------------------------------------------------------
    Mutant("pe-window-selects-the-first-segment", "sparse_pe",
           "positions = selection.positions(segment)",
           "positions = selection.positions(0)",
           "with a selection window, every lane selects among the chunk's first segment",
           ("tests/test_throughput.py::test_pe_handshakes",)),
    Mutant("pe-keeps-bubbles", "sparse_pe",
           "advance.eq(~self.o.valid | self.o.ready)", "advance.eq(self.o.ready)",
           "the PE no longer collapses bubbles while its output is stalled: slower, same values",
           ("tests/test_throughput.py::test_pe_handshakes",)),
    # --- AccumulationTree -----------------------------------------------------------------------
    Mutant("tree-keeps-bubbles", "accumulation_tree",
           "advance.eq(~self.o.valid | self.o.ready),", "advance.eq(self.o.ready),",
           "the tree stalls whenever `o` is not ready, even with no result waiting", TREE),
    Mutant("tree-overflow-carried-into-next-frame", "accumulation_tree",
           "overflow_next.eq((~first & acc_overflow) |",
           "overflow_next.eq((first & acc_overflow) |",
           "the sticky overflow flag restarts on the wrong beats (mux arms swapped)", TREE),
    # --- SparseDotEngine ------------------------------------------------------------------------
    Mutant("engine-beats-counts-offered", "engine",
           '"beats": beat_taken,', '"beats": decoder.o.valid,',
           "`beats` counts offered beats, stalled ones again in every cycle", ENGINE_COUNTERS),
    Mutant("engine-stalls-while-busy", "engine",
           '"stalls": decoder.o.valid & ~decoder.o.ready,',
           '"stalls": decoder.busy & ~decoder.o.ready,',
           "`stalls` also counts an all-zero chunk's cycle when the PE is not ready",
           ENGINE_COUNTERS),
    Mutant("engine-skips-on-x-mask-only", "engine",
           "zero_chunk = (decoder.i.payload.mask & decoder.i.payload.mask_b) == 0",
           "zero_chunk = decoder.i.payload.mask == 0",
           "`chunks_skipped` ignores the Y mask", ENGINE_COUNTERS),
    Mutant("engine-decodes-x-mask-twice", "engine",
           "decoder.i.payload.mask_b.eq(chunk.y_mask | ",
           "decoder.i.payload.mask_b.eq(chunk.x_mask | ",
           "Y's zeros are no longer skipped: exact values, wasted cycles", ENGINE_COUNTERS),
    # --- counters (shared by the engine and the tile array) --------------------------------------
    Mutant("engine-clear-keeps-event", "counters",
           "m.d.sync += event.eq(Mux(clear, 0, increment))", "m.d.sync += event.eq(increment)",
           "a clear leaves the event of its own cycle behind (the engine's counters)",
           ENGINE_COUNTERS),
    Mutant("engine-clear-keeps-registered-event", "counters",
           "m.d.sync += counter.eq(Mux(clear, 0, counter + event))",
           "m.d.sync += counter.eq(Mux(clear, event, counter + event))",
           "a clear leaves the event of the cycle before it behind", ENGINE_COUNTERS),
    Mutant("engine-counters-skip-the-event-register", "counters",
           "accumulate(m, counter, event, clear)",
           "accumulate(m, counter, increment, clear)",
           "the counters add their events directly: a cycle early, same totals", ENGINE_COUNTERS),
    # --- TileArray --------------------------------------------------------------------------------
    Mutant("array-skipped-chunk-from-stream", "tile_array",
           '"chunks_skipped": issue & (decoder.i.payload.mask == 0),',
           '"chunks_skipped": issue & (self.x.payload.mask == 0),',
           "`chunks_skipped` looks at the streamed chunk, not the one issued (replays)",
           ARRAY_COUNTERS),
    Mutant("array-shallow-group-fifo", "tile_array",
           "FIFO_DEPTH = 16", "FIFO_DEPTH = 4",
           "the group FIFO holds 4 groups: short groups wait for it, every count unchanged",
           ("tests/test_throughput.py::test_array_unstalled_timing",)),
    Mutant("array-overflow-from-tile-0", "tile_array",
           "self.o.payload.overflow[t].eq(tree.o.payload.overflow),",
           "self.o.payload.overflow[t].eq(trees[0].o.payload.overflow),",
           "every tile's overflow flag is tile 0's", ("tests/test_tile_overflow.py",)),
    Mutant("array-groups-counted-at-last-chunk", "tile_array",
           '"groups": issue & (chunk == 0),', '"groups": issue & last_chunk,',
           "`groups` counts a group at its last chunk instead of its first", ARRAY_COUNTERS),
    Mutant("array-row-register-bubble", "tile_array",
           "self.rows.ready.eq(~row_held | row_done),", "self.rows.ready.eq(~row_held),",
           "the next row is taken a cycle after the last one is done: a bubble per row, "
           "exact values and busy cycles", ARRAY_COUNTERS),
    Mutant("array-group-start-ignores-fifo", "tile_array",
           "group_can_start.eq((chunk != 0) | groups.w_rdy),", "group_can_start.eq(1),",
           "a group starts even when the group FIFO is full",
           ("tests/test_throughput.py::test_array_unstalled_timing",) + ARRAY_COUNTERS,
           equivalent="the FIFO never fills: a group is in flight from its first chunk's issue "
                      "to its result's handshake, and the pipeline holds at most 4 + "
                      "tree_stages of them (chunk register, 2 PE registers, the tree's "
                      "registers, the accumulator), at most 10 for lanes <= 64, while "
                      "FIFO_DEPTH is 16: the w_rdy gate is unreachable"),
    Mutant("array-macs-counts-offered-beats", "tile_array",
           "registered_event(m, Mux(beat_taken, lanes_issued, 0), self.clear,",
           "registered_event(m, lanes_issued, self.clear,",
           "`macs` counts the lanes of stalled beats in every cycle", ARRAY_COUNTERS),
    Mutant("array-skipped-outputs-ignore-col-valid", "tile_array",
           "skipped.eq(sum(self.rows.payload.col_valid[p] & ~wanted[p] for p in range(block))),",
           "skipped.eq(sum(~wanted[p] for p in range(block))),",
           "`outputs_skipped` counts columns that do not exist", ARRAY_COUNTERS),
    Mutant("array-clear-keeps-event", "counters",
           "m.d.sync += event.eq(Mux(clear, 0, increment))", "m.d.sync += event.eq(increment)",
           "a clear leaves the event of its own cycle behind (the tile array's counters)",
           ARRAY_COUNTERS),
    Mutant("array-tiles-event-ignores-clear", "tile_array",
           "tiles_event = registered_event(m, tiles_issued, self.clear,",
           "tiles_event = registered_event(m, tiles_issued, 0,",
           "the MAC counter's tiles factor is not cleared", ARRAY_COUNTERS,
           equivalent="the MAC event is lanes_event * tiles_event, and `clear` zeroes "
                      "lanes_event in the same cycle: the product is 0 whatever tiles_event "
                      "holds, so clearing it too is redundant"),
    Mutant("array-reads-position-not-index", "tile_array",
           "chunk_index.eq(current.index),",
           "chunk_index.eq(chunk),",
           "a chunk reads the Y chunk of its position in the row (or its buffer entry), not of "
           "its index along the reduction",
           ARRAY_COUNTERS),
    Mutant("array-replays-every-chunk", "tile_array",
           "keep.eq(dense | (self.x.payload.mask != 0) | (last_chunk & (stored == 0))),",
           "keep.eq(1),",
           "replays send all-zero chunks too: exact values, wasted cycles", ARRAY_COUNTERS),
    # --- MaskpropCore -----------------------------------------------------------------------------
    Mutant("core-zero-dim-misses-k", "core",
           "dims = (command.n, command.c, command.h, command.w, command.k, command.kernel,",
           "dims = (command.n, command.c, command.h, command.w, command.kernel,",
           "the command check lets K = 0 through: no ZERO_DIM, the pass starts with empty "
           "transfers", CORE_ILLEGAL),
    Mutant("core-output-mask-bit-off-by-one", "core",
           "omask.eq(Mux(wants_mask, masks.r_data.word_select(row_block, c.col_block), ~0)),",
           "omask.eq(Mux(wants_mask, masks.r_data.bit_select(col_base + 1, c.col_block), ~0)),",
           "the output mask of a row block is read one column off (sparse backward-data)",
           CORE_FAST),
    Mutant("core-mask-assembly-counts-offered-words", "core",
           "with m.If(a_valid & a_ready):", "with m.If(a_valid):",
           "the output mask's A words are counted as offered, not taken: while the mask FIFO "
           "is full a pixel's mask is lost", CORE_FAST),
    Mutant("core-fetch-stage-drops-backpressure", "core",
           "advance.eq(~fetched | staged.w_rdy),",
           "advance.eq(1),",
           "the scratchpad's read port reloads while its chunk has not entered the full stage "
           "FIFO: the chunk is lost", CORE_FAST),
    Mutant("core-write-skid-forgets-its-beat", "skid_buffer",
           "m.d.sync += skid_valid.eq(0)", "m.d.sync += skid_valid.eq(self.o.ready)",
           "the skid buffer keeps offering a beat the consumer has taken: a result word is "
           "written twice", ("tests/test_skid_buffer.py",)),
    Mutant("core-y-load-stride-doubled", "core",
           "array.load.payload.addr.eq((y_column << y_shift) | y_chunk),",
           "array.load.payload.addr.eq((y_column << (y_shift + 1)) | y_chunk),",
           "the weights are loaded at twice the column stride the tiles read them at",
           CORE_FAST),
    Mutant("core-group-output-contiguous", "core",
           "row_beats = (Mux(strided & (pitch_words != col_words), col_words, beats)",
           "row_beats = (beats",
           "an output-channel group's words are written back to back, not one row per pixel "
           "OUT_PITCH apart (a split pass)", CORE_SPLIT),
    Mutant("core-band-walks-the-layer-padding", "core",
           "walk.pad_top.eq(command.pad_top), walk.pad_bottom.eq(command.pad_bottom),",
           "walk.pad_top.eq(command.padding), walk.pad_bottom.eq(command.padding),",
           "a row band is walked with the layer's padding, not its own (a split pass)",
           CORE_SPLIT),
    Mutant("core-keeps-weights-without-checking", "core",
           "*(weights_match[h].eq(y_valid[h] & (held_weights[h].as_value() ==",
           "*(weights_match[h].eq(y_valid[h] | (held_weights[h].as_value() ==",
           "a command keeps the Y buffer whatever weights it holds: another W_BASE, column count "
           "or reduction computes with stale weights", CORE_ILLEGAL),
    Mutant("core-prefetch-into-the-running-half", "core",
           "array.load.payload.half.eq(run_half ^ prefetching),",
           "array.load.payload.half.eq(run_half),",
           "a prefetch writes the next group's weights over the ones the run is reading",
           CORE_SPLIT),
    Mutant("core-kept-weights-read-from-half-0", "core",
           "keep_half.eq(command.keep_weights & ~weights_match[0]),",
           "keep_half.eq(0),",
           "a command that keeps prefetched weights reads the other half: the group before's",
           CORE_SPLIT),
    Mutant("core-kept-input-awaited", "core",
           "word_in.eq(command.keep_input | (chunk.addr < x_count)),",
           "word_in.eq(chunk.addr < x_count),",
           "a command that keeps its input waits for X words that never come: the walk hangs",
           CORE_SPLIT),
    Mutant("core-fetch-ahead-of-the-load", "core",
           "word_in.eq(command.keep_input | (chunk.addr < x_count)),",
           "word_in.eq(1),",
           "the fetch reads X words the load has not written yet (the walk outruns the X "
           "stream)", CORE_OVERTAKING),
    Mutant("core-weight-y-gather-reads-the-a-band", "core",
           "gather_dz.base.eq(x_words),", "gather_dz.base.eq(0),",
           "backward-weight gathers dZ from the scratchpad's first word, where A is",
           CORE_FAST),
    Mutant("core-weight-operands-swapped", "core",
           "gather.command.payload.eq(Mux(x_is_dz, gather_dz, gather_a))]",
           "gather.command.payload.eq(Mux(x_is_dz, gather_a, gather_dz))]",
           "backward-weight's X gather takes the Y operand's tensor (both gathers read the "
           "same)", CORE_FAST),
    Mutant("core-weight-check-skips-the-row-block-limit", "core",
           "(weight_grad & ((chunks > core.row_block_chunks) |",
           "(weight_grad & ((chunks > 2 * core.row_block_chunks) |",
           "backward-weight accepts a reduction twice as long as the row-block buffer holds",
           CORE_ILLEGAL),
    # --- backward-weight's operand path: BlockTransposer, WindowGather, RowBlockBuffer -----------
    Mutant("transposer-writes-rows-in-both-modes", "transposer",
           "write.addr.eq(Mux(mode, wr, back(b, wr))),", "write.addr.eq(back(b, wr)),",
           "every block is written at mode 0's addresses (element e at address e), so a mode-1 "
           "block overwrites words not yet sent and comes out untransposed", TRANSPOSER),
    Mutant("gather-padding-read-as-data", "window_gather",
           "m.d.sync += [valid1.eq(1), zero1.eq(~inside)]",
           "m.d.sync += [valid1.eq(1), zero1.eq(beyond)]",
           "a padding tap's word is the stale read data, not zero (its mask bit stays clear: "
           "dense and sparse mode issue it all the same, as a zero would be)", GATHER),
    Mutant("gather-mask-ignores-the-window", "window_gather",
           "m.d.comb += mask_next.eq(mask_acc | Mux(inside, Const(1, vec) << i, 0))",
           "m.d.comb += mask_next.eq(mask_acc | Mux(~beyond, Const(1, vec) << i, 0))",
           "the structural mask marks padding taps as elements", GATHER),
    Mutant("row-blocks-sent-once", "row_block_buffer",
           "blk_last.eq(rblk + 1 >= self.blocks),", "blk_last.eq(1),",
           "each row is sent for the first column block only", ROW_BLOCKS),
    Mutant("row-blocks-drop-the-last-chunk", "row_block_buffer",
           "m.d.sync += [live[b][r].eq(1), lastq[b][r].eq(q_cur)]",
           "m.d.sync += [live[b][r].eq(1), lastq[b][r].eq(q_cur - 1)]",
           "a row's last chunk with a structural element is never sent", ROW_BLOCKS),
    Mutant("row-blocks-keep-empty-ignored", "row_block_buffer",
           "m.d.comb += sends.eq(cur_live | self.keep_empty)",
           "m.d.comb += sends.eq(cur_live)",
           "with partial sums a row without a structural chunk is still skipped, so a part "
           "where a tap is all padding writes 0 for its sums instead of the parts before's",
           ROW_BLOCKS + CORE_SPLIT),
    # --- PartialSums (backward-weight's reduction split) -----------------------------------------
    Mutant("partial-sums-not-added", "partial_sums",
           "result.value[t] + Mux(self.add, partial, 0), 0))",
           "result.value[t], 0))",
           "a part after the first ignores the sums of the parts before", PARTIAL_SUMS),
    Mutant("partial-sums-beat-before-its-words", "partial_sums",
           "sums_in = Mux(self.add, full, 1)",
           "sums_in = Mux(self.add, loaded != 0, 1)",
           "a beat leaves once the first of its sums words is in, not all of them (W > 1)",
           PARTIAL_SUMS),
    # --- AxiDma -----------------------------------------------------------------------------------
    Mutant("dma-4k-boundary-off-by-one", "axi_dma",
           "to_boundary.eq(page_words - addr[shift:12]),",
           "to_boundary.eq(page_words + 1 - addr[shift:12]),",
           "a burst may run one beat past a 4 KiB boundary", DMA_COCOTBEXT),
    Mutant("dma-row-pitch-ignored", "axi_dma",
           "next_row.eq(row_start + pitch),",
           "next_row.eq(addr + (beats << shift)),",
           "a 2-D transfer's next row follows the last burst instead of starting pitch bytes "
           "after the row before", ("tests/test_axi_dma.py::test_splitter_2d_bursts_match_the_"
                                    "reference",)),
    Mutant("dma-write-outstanding-off-by-one", "axi_dma",
           "aw_free & (write_outstanding < self._max_outstanding) & w_info.w_rdy & b_info.w_rdy)",
           "aw_free & (write_outstanding < self._max_outstanding + 1) & w_info.w_rdy & "
           "b_info.w_rdy)",
           "one write burst more in flight than max_outstanding (for max_outstanding >= 2 the "
           "info FIFOs, as deep, still hold it back: only max_outstanding = 1 shows it)",
           ("tests/test_axi_dma.py::test_one_outstanding_burst_waits_for_its_completion",)),
    Mutant("dma-read-reservation-freed-on-arrival", "axi_dma",
           "reserved.eq(reserved + Mux(ar_issue, burst.beats, 0) - word_out),",
           "reserved.eq(reserved + Mux(ar_issue, burst.beats, 0) - r_taken),",
           "the read FIFO's room is freed when a word arrives, not when it leaves: bursts are "
           "issued without room for their words", DMA_COCOTBEXT),
    Mutant("dma-done-error-forgets-earlier-bursts", "axi_dma",
           "done.error.eq(command_error | b_error),", "done.error.eq(b_error),",
           "a write command's completion reports only its last burst's response",
           DMA_COCOTBEXT),
    Mutant("dma-read-last-on-every-burst", "axi_dma",
           "word.last.eq(bus.rlast & read_info.r_data[0]),", "word.last.eq(bus.rlast),",
           "`last` on every burst's final word, not only the command's", DMA_COCOTBEXT),
    # --- AddressGenerator -------------------------------------------------------------------------
    Mutant("walker-flipped-first-tap-off-by-one", "address_generator",
           "init_k.eq(Mux(fwd, padding, Mux(e0 > 0, 0, kernel - 1 - padding))),",
           "init_k.eq(Mux(fwd, padding, Mux(e0 > 0, 0, kernel - padding))),",
           "backward-data's first live (flipped) tap of output 0 is one tap late",
           ("tests/test_address_generator.py::test_hand_picked_layers",)),
    Mutant("walker-tail-mask-one-too-wide", "address_generator",
           "tail_mask.eq(Cat(e < tail for e in range(vec))),",
           "tail_mask.eq(Cat(e <= tail for e in range(vec))),",
           "a pixel's last word has one channel too many in its structural mask",
           ("tests/test_address_generator.py::test_hand_picked_layers",)),
    # --- OutputWriter -----------------------------------------------------------------------------
    Mutant("writer-requantize-truncates", "output_writer",
           "rounded.eq((halved >> 1) + halved[0]),", "rounded.eq(halved >> 1),",
           "requantization rounds toward minus infinity instead of half up",
           ("tests/test_output_writer.py::test_shifts_saturation_and_ties",)),
    # --- RegisterFile -----------------------------------------------------------------------------
    Mutant("registers-ro-word-answers-okay", "registers",
           "_WRITABLE = (RW, PULSE, W1C)", "_WRITABLE = (RW, RO, PULSE, W1C)",
           "a write to a read-only word is answered OKAY, as if it had been written",
           ("tests/test_registers.py::test_writes_to_nothing_writable_answer_slverr_and_change_"
            "nothing",)),
    Mutant("registers-clear-wins-over-set", "registers",
           'm.d.sync += value.eq((value & ~clear) | getattr(ports, f"{field.name}_set"))',
           'm.d.sync += value.eq((value | getattr(ports, f"{field.name}_set")) & ~clear)',
           "a w1c bit set by hardware in the cycle software clears it is lost (a done or "
           "error event missed)",
           ("tests/test_registers.py::test_pulse_is_one_cycle_and_a_set_wins_over_a_clear",)),
    # --- AxiRam -----------------------------------------------------------------------------------
    Mutant("ram-bus-write-lost-under-backdoor-write", "axi_ram",
           "bus.wready.eq(wr_active & ~host_write & (~last_beat | b_queue.w_rdy))",
           "bus.wready.eq(wr_active & (~last_beat | b_queue.w_rdy))",
           "a W beat taken in the cycle of a backdoor write is not stored (the port is the "
           "backdoor's)", ("tests/test_axi_ram.py::test_ram_against_axi_master",)),
    Mutant("ram-bus-read-issued-under-backdoor-read", "axi_ram",
           "issue = rd_active & advance & ~host_read", "issue = rd_active & advance",
           "an R beat is issued in the cycle of a backdoor read: it reads the backdoor's address "
           "(the port is the backdoor's)", RAM_SHARED_READ),
    Mutant("ram-r-beat-forgets-its-word", "axi_ram",
           "with m.If(r_keep):", "with m.If(r_keep & ~r_keep):",
           "an R beat waiting for rready when a backdoor read takes the port changes to the "
           "backdoor's word", RAM_SHARED_READ),
    Mutant("ram-backdoor-word-not-held", "axi_ram",
           "self.host.rdata.eq(Mux(host_word_now, read_port.data, host_kept))",
           "self.host.rdata.eq(read_port.data)",
           "the backdoor's word is replaced by the bus's next read instead of held until the "
           "next backdoor read", RAM_SHARED_READ[:1]),
    # --- the UART and the host link -------------------------------------------------------------
    Mutant("uart-rx-samples-at-the-edge", "uart",
           "m.d.sync += timer.eq(self._divisor // 2 - 1)", "m.d.sync += timer.eq(0)",
           "the receiver samples each bit at its start instead of its middle: a sender a few "
           "percent slow is misread", ("tests/test_uart.py",)),
    Mutant("uart-tx-stop-bit-low", "uart",
           "shift.eq(Cat(self.i.payload, Const(1, 1)))",
           "shift.eq(Cat(self.i.payload, Const(0, 1)))",
           "the transmitter sends a low stop bit", ("tests/test_uart.py",)),
    Mutant("host-link-ignores-the-crc", "host_link",
           "with m.If(rx_crc != 0):", "with m.If(rx_crc == 0x1FFFF):",
           "a request is executed whatever its CRC", ("tests/test_host_link.py",)),
    Mutant("host-link-times-out-from-the-sync", "host_link",
           "m.d.sync += idle.eq(0)", "m.d.sync += idle.eq(idle)",
           "the timeout counts from the frame's start, not from its last byte: a long frame "
           "sent slowly is cut off", ("tests/test_host_link.py",)),
    Mutant("host-link-reads-memory-too-early", "host_link",
           "wait.eq(self._mem_read_latency - 1)]", "wait.eq(0)]",
           "a memory read's word is taken one cycle after its address whatever the memory's "
           "latency", ("tests/test_host_link.py",)),
    Mutant("host-link-writes-zero-words", "host_link",
           "with m.If((length < 4 + word_bytes) | misfit):", "with m.If(misfit):",
           "a MEM_WRITE without a word is executed (and writes until its word count wraps)",
           ("tests/test_host_link.py",)),
]

BY_NAME = {mutant.name: mutant for mutant in CATALOGUE}


def mutated_source(mutant: Mutant) -> str:
    return mutant.apply(mutant.path.read_text())


# --- the import hook (installed in the pytest subprocess by scripts/mutant_plugin.py) -------------

class _MutatingLoader:
    """Executes the mutated source of the target module in place of the file's."""

    def __init__(self, mutant: Mutant, origin: str):
        self.mutant, self.origin = mutant, origin

    def create_module(self, spec):
        return None

    def get_source(self, fullname):
        """The mutated source (``InspectLoader``): what generated Verilog's cache key digests
        (``maskprop.flow.verilog``), so that a mutant never reads the original's Verilog."""
        return self.mutant.apply(Path(self.origin).read_text())

    def exec_module(self, module):
        source = self.get_source(module.__name__)
        exec(compile(source, self.origin, "exec"), module.__dict__)
        applied = os.environ.get(ENV_APPLIED)
        if applied:
            Path(applied).write_text(self.mutant.name)


class MutatingFinder:
    """A ``sys.meta_path`` finder that hands the target module to :class:`_MutatingLoader`."""

    def __init__(self, mutant: Mutant):
        self.mutant = mutant

    def find_spec(self, fullname, path, target=None):
        if fullname != self.mutant.module:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                spec.loader = _MutatingLoader(self.mutant, spec.origin)
                spec.cached = None          # never write or read bytecode of a mutant
                return spec
        return None


def install(name: str) -> Mutant:
    """Make the next import of the mutant's module import the mutated source."""
    mutant = BY_NAME.get(name)
    if mutant is None:
        raise MutantError(f"no mutant {name!r}; see scripts/mutants.py --list")
    if mutant.module in sys.modules:
        raise MutantError(f"{mutant.module} was imported before the mutant could be installed")
    mutated_source(mutant)                  # fail now, not at import, if the pattern is gone
    sys.meta_path.insert(0, MutatingFinder(mutant))
    return mutant


# --- running -----------------------------------------------------------------------------------

@dataclass
class Outcome:
    mutant: Mutant
    status: str                # killed | survived | equivalent | error
    detail: str                # the failing test, or what went wrong
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status in ("killed", "equivalent")


def _pytest(tests, env, timeout, basetemp=None):
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    if basetemp is not None:
        command.append(f"--basetemp={basetemp}")
    if env.get(ENV_MUTANT):
        command[3:3] = ["-p", "mutant_plugin"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _environment(mutant: Mutant | None, applied: Path | None) -> dict:
    # COLUMNS: pytest's summary line keeps the whole failure message, for the verdict.
    env = dict(os.environ, PYTHONWARNINGS="error", COLUMNS="1000")
    env.pop(ENV_MUTANT, None)
    if mutant is not None:
        env[ENV_MUTANT] = mutant.name
        env[ENV_APPLIED] = str(applied)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCRIPTS),
                                                          env.get("PYTHONPATH", "")]))
    return env


# A cocotb bench's failure names its log ("see .../sim.log"), which lives in the run's scratch
# directory: the verdict takes the reason from the log instead (a failing RTL assertion's
# message, or the first exception of a failing testcase).
_LOG = re.compile(r"see (\S+\.log)\b")
_RTL_ASSERTION = re.compile(r"^(.*?)\[\d+\] %Error: .*Assertion failed", re.MULTILINE)
_EXCEPTION = re.compile(r"^\s+(?:[\w.]+\.)?(\w+(?:Error|Exception|Failure)\b.*)$", re.MULTILINE)


def _log_reason(why: str) -> str:
    """``why`` with a cocotb log it names replaced by the reason the log gives, if any."""
    found = _LOG.search(why)
    if not found or not Path(found.group(1)).is_file():
        return why
    log = Path(found.group(1)).read_text(errors="replace")
    assertion = _RTL_ASSERTION.search(log)
    if assertion:
        reason = f"RTL assertion: {assertion.group(1).strip()}"
    else:
        exception = _EXCEPTION.search(log)
        if not exception:
            return why
        reason = exception.group(1).strip()
    before = why[:found.start()]
    if re.fullmatch(r"\w+:\s*", before):        # "AssertionError: see ...": the log's reason only
        before = ""
    return f"{before}sim log: {reason}{why[found.end():]}"


def _message_lines(output: str, exception: str) -> str:
    """An exception whose message starts on a new line (NumPy's assertions): its name and the
    message's first lines, from pytest's report (lines ``E   ...``)."""
    lines = [line[1:].strip() for line in output.splitlines() if line.startswith("E ")]
    lines = [line for line in lines if line]
    start = next((i for i, line in enumerate(lines) if line.startswith(exception)), None)
    if start is None:
        return exception
    return "; ".join([exception.rstrip(":") + ":", *lines[start + 1:start + 4]]).replace(":;", ":")


def run_mutant(mutant: Mutant, timeout: float) -> Outcome:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutant-") as scratch:
        applied = Path(scratch) / "applied"
        try:
            result = _pytest(mutant.tests, _environment(mutant, applied), timeout,
                             basetemp=Path(scratch) / "pytest")
        except subprocess.TimeoutExpired:
            return Outcome(mutant, "error", f"no verdict within {timeout:.0f} s (a hang the "
                           f"tests do not detect)", time.monotonic() - started)
        seconds = time.monotonic() - started
        was_applied = applied.exists()
        failed = re.search(r"^FAILED (\S+)(?: - (.*))?$", result.stdout, re.MULTILINE)
        why = _log_reason((failed.group(2) or "").strip()) if failed else ""
        if failed and re.fullmatch(r"[\w.]*(Error|Exception):?", why):
            why = _message_lines(result.stdout, why)
    if not was_applied:
        return Outcome(mutant, "error", f"{mutant.module} was never imported by the tests "
                       f"(exit {result.returncode})", seconds)
    if result.returncode == 1 and failed:
        status = "error" if mutant.equivalent else "killed"
        detail = failed.group(1) + (f": {why[:150]}{'...' if len(why) > 150 else ''}"
                                    if why else "")
        if mutant.equivalent:
            detail = f"listed as equivalent, but {detail} fails: the reasoning is wrong"
        return Outcome(mutant, status, detail, seconds)
    if result.returncode == 0:
        if mutant.equivalent:
            return Outcome(mutant, "equivalent", mutant.equivalent, seconds)
        return Outcome(mutant, "survived", "every selected test passed", seconds)
    tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
    return Outcome(mutant, "error", f"pytest exit {result.returncode}: {' | '.join(tail)}",
                   seconds)


def baseline(mutants, timeout: float):
    """The union of the selections, unmutated: (passed, seconds, output tail)."""
    tests = list(dict.fromkeys(test for mutant in mutants for test in mutant.tests))
    started = time.monotonic()
    result = _pytest(tests, _environment(None, None), timeout)
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
    return result.returncode == 0, time.monotonic() - started, tail


# --- reporting ---------------------------------------------------------------------------------

def summary(outcomes, seconds: float, jobs: int) -> str:
    equivalent = sum(o.mutant.equivalent != "" for o in outcomes)
    killed = sum(o.status == "killed" for o in outcomes)
    real = len(outcomes) - equivalent
    rate = killed / real if real else 1.0
    return (f"{killed} of {real} mutants killed ({rate:.0%}), {equivalent} equivalent; "
            f"{seconds:.0f} s with --jobs {jobs}")


def markdown(outcomes, line: str) -> str:
    rows = ["| mutant | block | the bug | result | caught by / why not |", "|---|---|---|---|---|"]
    for o in outcomes:
        detail = o.detail.replace("|", "\\|")
        rows.append(f"| `{o.mutant.name}` | {o.mutant.block} | {o.mutant.bug.replace('|', '/')}"
                    f" | {o.status} | {detail} |")
    return "\n".join([f"{line}.", "", *rows])


def write_docs(text: str):
    from maskprop.evaluation.doc_tables import DocsError, replace_region
    try:
        replace_region(DOCS, "mutants", ".venv/bin/python scripts/mutants.py --jobs 2 --write-docs",
                       text)
    except DocsError as error:
        raise MutantError(str(error)) from None


def print_table(outcomes, line: str):
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    colours = {"killed": "green", "equivalent": "cyan", "survived": "bold red",
               "error": "bold red"}
    table = Table(title="RTL mutants", title_justify="left")
    for column in ("mutant", "block", "the bug", "result", "caught by / why not", "s"):
        table.add_column(column, justify="right" if column == "s" else "left")
    for o in outcomes:
        colour = colours[o.status]
        table.add_row(o.mutant.name, o.mutant.block, escape(o.mutant.bug),
                      f"[{colour}]{o.status}[/{colour}]", escape(o.detail), f"{o.seconds:.0f}")
    console = Console()
    console.print(table)
    survivors = [o for o in outcomes if not o.ok]
    console.print(escape(line))
    if survivors:
        console.print("[bold red]not killed:[/bold red] " +
                      escape(", ".join(f"{o.mutant.name} ({o.status})" for o in survivors)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the catalogue and exit")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this mutant (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds one mutant's tests may take (default 900)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the unmutated run of the selected tests")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"write the result table into {DOCS.relative_to(ROOT)}")
    args = parser.parse_args(argv)

    for mutant in CATALOGUE:                 # every pattern still fits, before anything runs
        mutated_source(mutant)
    if args.list:
        for mutant in CATALOGUE:
            kind = f"  [equivalent: {mutant.equivalent}]" if mutant.equivalent else ""
            print(f"{mutant.name:42} {mutant.block:18} {mutant.bug}{kind}")
        return 0
    unknown = [name for name in args.only or [] if name not in BY_NAME]
    if unknown:
        parser.error(f"no mutant {', '.join(unknown)}; see --list")
    if args.write_docs and args.only:
        parser.error("--write-docs records the whole catalogue; it cannot go with --only")
    mutants = [BY_NAME[name] for name in args.only] if args.only else CATALOGUE

    started = time.monotonic()
    if not args.no_baseline:
        passed, seconds, tail = baseline(mutants, args.timeout)
        print(f"baseline (unmutated, {seconds:.0f} s): {'pass' if passed else 'FAIL'}")
        if not passed:
            print(tail)
            print("the tests fail without any mutant: no mutant can be judged", file=sys.stderr)
            return 2
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(lambda mutant: run_mutant(mutant, args.timeout), mutants))
    line = summary(outcomes, time.monotonic() - started, args.jobs)
    print_table(outcomes, line)
    if args.write_docs:
        write_docs(markdown(outcomes, line))
        print(f"wrote the table into {DOCS.relative_to(ROOT)}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
