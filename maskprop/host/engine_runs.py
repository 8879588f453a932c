"""Running the one-tile engine on real layers: a pass of a layer, lowered to a masked GEMM,
sparse mode vs dense mode on the same RTL, checked bit-exactly against the golden model.

Output sparsity on one tile is the host's: outputs whose mask bit is clear are never sent (the
tile array of a later issue compacts them in hardware). Dense mode sends every output and sets
the engine's ``dense`` input, so the sparsity-agnostic baseline runs on the same Verilog.
"""

from dataclasses import dataclass

import numpy as np

from maskprop.base.config import Config
from maskprop.sim.cycle_model import engine_cycles
from maskprop.host.driver import ChunkStream, chunk_stream
from maskprop.sim.layer import PASSES as PASS_NAMES
from maskprop.sim.lowering import (LoweredGemm, lower_backward_data, lower_backward_weight,
                                   lower_forward)
from maskprop.flow.toolchain import SimulationError

__all__ = ["PASS_NAMES", "lower_record", "EngineComparison", "compare_on_engine",
           "ideal_speedup"]



def lower_record(record, pass_name: str) -> LoweredGemm:
    """A fixture layer's pass as a masked GEMM (backward-data masked by ``A != 0``)."""
    layer = record.layer
    if pass_name == "forward":
        return lower_forward(layer, record.A, record.W)
    if pass_name == "backward_data":
        return lower_backward_data(layer, record.dZ, record.W, A_mask=record.A)
    if pass_name == "backward_weight":
        return lower_backward_weight(layer, record.dZ, record.A)
    raise ValueError(f"pass must be one of {', '.join(PASS_NAMES)}, not {pass_name!r}")


def ideal_speedup(sparse: ChunkStream, dense: ChunkStream) -> float | None:
    """Dense MACs over the nonzero MACs the sparse pass must do (products with both operands
    nonzero, of the computed outputs).

    Dense MACs are the products the sparsity-agnostic baseline issues on the same RTL: every
    element of every chunk, the zero padding of the last chunk of a reduction included (a layer
    whose reduction is not a multiple of ``vec`` wastes those slots in dense mode too). So
    achieved/ideal is at most 1 and measures only the sparse mode's losses: partly filled
    lanes and the one cycle an all-zero chunk costs. ``None`` when there is no nonzero product:
    no work to speed up, and any number would mislead."""
    must = np.count_nonzero((sparse.x != 0) & (sparse.y != 0))
    return dense.x.size / must if must else None


@dataclass
class EngineComparison:
    label: str
    outputs_dense: int
    outputs_sparse: int
    dense_cycles: int            # measured: the engine's cycles counter, dense mode
    sparse_cycles: int           # measured, sparse mode
    model_dense: int             # cycle model
    model_sparse: int
    ideal: float | None          # None: no nonzero product (no work)
    exact: bool                  # both runs bit-exact against the golden model
    dense_macs: int
    sparse_macs: int
    simulator: str
    seconds: float

    @property
    def agrees(self) -> bool:
        """Bit-exact in both modes and cycle-exact against the model."""
        return (self.exact and self.dense_cycles == self.model_dense
                and self.sparse_cycles == self.model_sparse)

    @property
    def speedup(self) -> float:
        return self.dense_cycles / self.sparse_cycles

    @property
    def efficiency(self) -> float | None:
        return None if self.ideal is None else self.speedup / self.ideal


def _outputs(gemm: LoweredGemm, rows: int | None):
    m_rows = gemm.X.shape[0] if rows is None else min(rows, gemm.X.shape[0])
    every = np.argwhere(np.ones((m_rows, gemm.Y.shape[1]), dtype=bool))
    if gemm.omask is None:
        return every, every
    return every, np.argwhere(gemm.omask[:m_rows])


def compare_on_engine(gemm: LoweredGemm, config: Config, *, rows: int | None = None,
                      build_dir, label: str = "", sim=None, seed=None,
                      engine=None) -> EngineComparison:
    """Run the first ``rows`` GEMM rows of ``gemm`` dense and sparse on the engine's Verilog."""
    from maskprop.hw.engine import SparseDotEngine, counter_layout
    from maskprop.tb.stream_bench import run_stream_bench

    gemm.layer.check_accumulation(config, passes=(gemm.pass_name,))
    every, enabled = _outputs(gemm, rows)
    dense = chunk_stream(gemm.X, gemm.Y, every, config.vec)
    sparse = chunk_stream(gemm.X, gemm.Y, enabled, config.vec)
    golden = gemm.X @ gemm.Y      # equals the direct conv (tests/test_golden.py)
    measured, exact, seconds = {}, True, 0.0
    engine = engine or SparseDotEngine(config)
    for mode, stream in (("dense", dense), ("sparse", sparse)):
        assert np.array_equal(stream.expected, golden[tuple(stream.outputs.T)])
        expected = [{"value": int(v), "overflow": 0} for v in stream.expected]
        # The same Verilog in both modes (built once).
        result = run_stream_bench(engine, "sparse_dot_engine", list(stream.payloads()),
                                  expected, build_dir=build_dir, sim=sim, seed=seed,
                                  drive={"dense": int(mode == "dense"), "clear": 0},
                                  read=["counters"],
                                  run_name=mode)
        if "counters" not in result.counters:
            raise SimulationError(f"the engine's {mode} run ended without results: see "
                                  f"{result.run.log}")
        counters = counter_layout().from_bits(result.counters["counters"])
        measured[mode] = counters
        exact &= result.passed and [r.value for r in result.outputs] == stream.expected.tolist()
        seconds += result.run.seconds
        simulator = result.run.simulator
    return EngineComparison(
        label=label or f"{gemm.layer.name} {gemm.pass_name}",
        outputs_dense=dense.frames, outputs_sparse=sparse.frames,
        dense_cycles=int(measured["dense"].cycles), sparse_cycles=int(measured["sparse"].cycles),
        model_dense=engine_cycles(dense, config.lanes, dense=True),
        model_sparse=engine_cycles(sparse, config.lanes),
        ideal=ideal_speedup(sparse, dense), exact=exact,
        dense_macs=int(measured["dense"].macs), sparse_macs=int(measured["sparse"].macs),
        simulator=simulator, seconds=seconds)
