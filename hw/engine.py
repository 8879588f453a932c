"""One-tile sparse dot-product engine: decoder -> PE -> accumulation tree."""

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, flipped

from maskprop.base.config import Config

from maskprop.hw.accumulation_tree import AccumulationTree, tree_result_layout
from maskprop.hw.counters import event_counter
from maskprop.hw.index_decoder import DenseIndexSequencer, ZeroSkipIndexDecoder
from maskprop.hw.layouts import chunk_layout, chunk_pair_layout
from maskprop.hw.sparse_pe import SparseGradPE

__all__ = ["SparseDotEngine", "engine_input_layout", "COUNTERS", "counter_layout"]

COUNTERS = ("cycles", "stalls", "beats", "macs", "chunks", "chunks_skipped", "outputs")
COUNTER_WIDTH = 32


def counter_layout() -> data.StructLayout:
    """Performance counters (all count up from ``clear``, wrapping at 2**32, one cycle behind
    the events they count):

    - ``cycles``: cycles in which the decoder held a chunk;
    - ``stalls``: of those, cycles in which the decoder had a beat the PE could not take
      (output backpressure): ``cycles - stalls`` is what the cycle model predicts;
    - ``beats``: index beats issued to the PE;
    - ``macs``: multiplies issued (valid lanes of those beats);
    - ``chunks``: chunks consumed; ``chunks_skipped``: of those, all-zero ones;
    - ``outputs``: results delivered on ``o``.
    """
    return data.StructLayout({name: COUNTER_WIDTH for name in COUNTERS})


def engine_input_layout(vec: int, data_width: int) -> data.StructLayout:
    """One chunk pair: operand chunks, their nonzero masks and the output framing."""
    return data.StructLayout({
        "x": chunk_layout(vec, data_width),
        "y": chunk_layout(vec, data_width),
        "x_mask": vec,
        "y_mask": vec,
        "first": 1,
        "last": 1,
    })


class SparseDotEngine(wiring.Component):
    """``Out = sum_i X[i] * Y[i]`` over a framed stream of chunk pairs, skipping zero products.

    Parameters
    ----------
    config : Config
        ``vec``, ``lanes``, ``select_window``, ``data_width``, ``acc_width`` and
        ``tree_stages`` are used.
    zero_skipping : bool
        ``True``: a :class:`ZeroSkipIndexDecoder` on ``x_mask & y_mask`` issues only nonzero
        products. ``False``: the dense-only engine, a :class:`DenseIndexSequencer` in its
        place (no decoder hardware), the baseline whose area the sparse engine is compared with.

    Ports
    -----
    i : In(stream.Signature(engine_input_layout(vec, data_width)))
        Chunk pairs; bit ``e`` of ``x_mask``/``y_mask`` must be set exactly when element ``e``
        of ``x``/``y`` is nonzero (data format: docs/architecture.md section 3.1). ``first`` and
        ``last`` frame the chunks of one output.
    o : Out(stream.Signature(tree_result_layout(acc_width)))
        One exact sum per frame (with the accumulator's overflow flag).
    dense : In(1)
        Treat every mask as all ones: the sparsity-agnostic baseline on the same RTL.
    clear : In(1)
        Zero the performance counters.
    counters : Out(counter_layout())
        Performance counters, see :func:`counter_layout`.

    Timing
    ------
    Unstalled, a chunk with ``n`` nonzero products occupies the decoder for
    ``max(1, ceil(n / lanes))`` cycles (with a selection window, its busiest segment's:
    :func:`~maskprop.hw.index_decoder.chunk_cycles`; ``ceil(vec / lanes)`` in dense mode) and
    consecutive chunks follow without bubbles: chunk ``k`` is accepted in cycle
    ``sum(costs[:k])`` and a frame's result is offered in cycle
    ``sum(costs[:k_last + 1]) - 1 + latency`` (see :attr:`latency`).
    """

    def __init__(self, config: Config, *, zero_skipping: bool = True):
        self._config = config
        self._zero_skipping = bool(zero_skipping)
        super().__init__({
            "i": In(stream.Signature(engine_input_layout(config.vec, config.data_width))),
            "o": Out(stream.Signature(tree_result_layout(config.acc_width))),
            "dense": In(1),
            "clear": In(1),
            "counters": Out(counter_layout()),
        })

    config = property(lambda self: self._config)
    zero_skipping = property(lambda self: self._zero_skipping)

    @property
    def generator_key(self):
        """Everything the generated Verilog depends on (it caches by this)."""
        return (type(self).__qualname__, self._config, self._zero_skipping)

    @property
    def latency(self) -> int:
        """Cycles from the cycle in which a frame's last chunk finishes (its final decoder
        cycle, unstalled) to its result, counted like a single-cycle chunk's: accepted in
        ``t``, result in ``t + latency``."""
        source = ZeroSkipIndexDecoder if self._zero_skipping else DenseIndexSequencer
        return (source.latency + SparseGradPE.latency +
                AccumulationTree.latency_for(self._config.tree_stages))

    def elaborate(self, platform):
        m = Module()
        c = self._config
        side = chunk_pair_layout(c.vec, c.data_width)
        source_class = ZeroSkipIndexDecoder if self._zero_skipping else DenseIndexSequencer
        m.submodules.decoder = decoder = source_class.from_config(c, masks=2, side=side)
        m.submodules.pe = pe = SparseGradPE.from_config(c)
        m.submodules.tree = tree = AccumulationTree.from_config(c)

        chunk = self.i.payload
        m.d.comb += [
            decoder.i.valid.eq(self.i.valid),
            self.i.ready.eq(decoder.i.ready),
            decoder.i.payload.mask.eq(chunk.x_mask | self.dense.replicate(c.vec)),
            decoder.i.payload.mask_b.eq(chunk.y_mask | self.dense.replicate(c.vec)),
            decoder.i.payload.first.eq(chunk.first),
            decoder.i.payload.last.eq(chunk.last),
            decoder.i.payload.side.x.eq(chunk.x),
            decoder.i.payload.side.y.eq(chunk.y),
        ]
        wiring.connect(m, decoder.o, pe.i)
        wiring.connect(m, pe.o, tree.i)
        wiring.connect(m, tree.o, flipped(self.o))

        # Performance counters: each adds its increment in every cycle.
        beat_taken = decoder.o.valid & decoder.o.ready
        chunk_taken = self.i.valid & self.i.ready
        zero_chunk = (decoder.i.payload.mask & decoder.i.payload.mask_b) == 0
        macs_issued = Signal(range(c.lanes + 1))
        m.d.comb += macs_issued.eq(sum(decoder.o.payload.lane_valid[j] for j in range(c.lanes)))
        increments = {
            "cycles": decoder.busy,
            "stalls": decoder.o.valid & ~decoder.o.ready,
            "beats": beat_taken,
            "macs": Mux(beat_taken, macs_issued, 0),
            "chunks": chunk_taken,
            # The dense sequencer skips nothing, whatever the masks say.
            "chunks_skipped": chunk_taken & zero_chunk if self._zero_skipping else 0,
            "outputs": self.o.valid & self.o.ready,
        }
        # The increments are registered first (hw/counters.py): the counters lag the events by
        # one cycle.
        for name, increment in increments.items():
            event_counter(m, getattr(self.counters, name), increment, self.clear, name=name,
                          shape=range(c.lanes + 1) if name == "macs" else 1)
        return m
