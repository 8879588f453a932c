"""A conv layer's pass on the generated Verilog, dense mode against sparse mode on one build,
each mode checked bit-exactly against the golden model and cycle-exactly against the cycle model:
on the tile array (the whole pass) or on the one-tile engine (some rows of it).

Both give one :class:`Comparison`. Output sparsity on the engine is the host's: outputs whose
mask bit is clear are never sent (the tile array skips them in hardware). Dense mode sends every
output and sets the block's ``dense`` input, so the sparsity-agnostic baseline runs on the same
Verilog.
"""

from dataclasses import dataclass

import numpy as np

from maskprop.base.config import Config
from maskprop.base.metrics import Speedups, multiplier_slots, nonzero_products
from maskprop.flow.toolchain import SimulationError
from maskprop.host.driver import ArrayPass, chunk_stream
from maskprop.sim.cycle_model import engine_cycles, estimate_lowerings
from maskprop.sim.lowering import LoweredGemm

__all__ = ["ModeRun", "Comparison", "run_on_array", "compare_on_array", "compare_on_engine"]


@dataclass
class ModeRun:
    """One mode (dense or sparse) of a pass on the Verilog."""
    dense: bool
    cycles: int              # the block's cycles - stalls counter
    model: int               # the cycle model's prediction of it
    exact: bool              # every output (and the reassembled tensor) equals the golden model
    counters: dict           # every counter of the block, by name
    seconds: float
    simulator: str
    seed: int
    # The tile array's pass reassembled from its output beats (empty when not exact); the
    # engine runs rows of a GEMM, no whole tensor, so None.
    tensor: np.ndarray | None = None
    # The bench's record (a maskprop.tb.traffic.BenchRecord): every handshake's cycle and,
    # cycle by cycle, the traffic, for the handshake reference (maskprop.tb.timing_reference).
    bench: object = None


@dataclass
class Comparison(Speedups):
    """Dense against sparse mode of one pass on one build; speedup, ideal and efficiency as
    :mod:`maskprop.base.metrics` defines them, from the measured cycles."""
    label: str
    dense: ModeRun
    sparse: ModeRun
    dense_slots: int         # multiplier slots of dense mode, from the cycle model
    nonzero_macs: int        # products sparse mode must do

    @property
    def dense_cycles(self) -> int:
        return self.dense.cycles

    @property
    def sparse_cycles(self) -> int:
        return self.sparse.cycles

    @property
    def model_dense(self) -> int:
        return self.dense.model

    @property
    def model_sparse(self) -> int:
        return self.sparse.model

    @property
    def outputs_dense(self) -> int:
        return self.dense.counters["outputs"]

    @property
    def outputs_sparse(self) -> int:
        return self.sparse.counters["outputs"]

    @property
    def exact(self) -> bool:
        """Bit-exact against the golden model in both modes."""
        return self.dense.exact and self.sparse.exact

    @property
    def agrees(self) -> bool:
        """Bit-exact in both modes and cycle-exact against the model."""
        return (self.exact and self.dense.cycles == self.dense.model
                and self.sparse.cycles == self.sparse.model)


def _counters(result, layout, names, block: str, mode: str) -> dict:
    if "counters" not in result.counters:
        raise SimulationError(f"the {block}'s {mode} run ended without results: see "
                              f"{result.run.log}")
    counters = layout.from_bits(result.counters["counters"])
    return {name: int(getattr(counters, name)) for name in names}


def run_on_array(array_pass: ArrayPass, *, dense: bool, build_dir, sim=None, seed=None,
                 idle=0.0, backpressure=0.0, run_name="", component=None, clear=(),
                 watch=()) -> ModeRun:
    """One pass on the array's Verilog (``component``: a TileArray of the pass's config);
    ``clear`` pulses the counters' clear in those cycles, ``watch`` names ports the bench
    records in every cycle (see :func:`~maskprop.tb.runner.run_stream_bench`)."""
    from maskprop.hw.tile_array import ARRAY_COUNTERS, TileArray, array_counter_layout
    from maskprop.tb.runner import run_stream_bench

    expected = list(array_pass.expected_results(dense))
    result = run_stream_bench(
        component or TileArray(array_pass.config), "tile_array", array_pass.inputs(dense),
        expected, phases=[["load"], ["rows", "x"]], build_dir=build_dir, sim=sim, seed=seed,
        idle=idle, backpressure=backpressure, drive={"dense": int(dense), "clear": 0},
        read=["counters"], run_name=run_name, pulses={"clear": clear}, watch=watch)
    counters = _counters(result, array_counter_layout(), ARRAY_COUNTERS, "tile array",
                         "dense" if dense else "sparse")
    exact = result.passed and len(result.outputs) == len(expected)
    tensor = np.zeros(0)
    if exact:
        tensor = array_pass.assemble(result.outputs, dense)
        exact = np.array_equal(tensor, array_pass.golden(dense))
    return ModeRun(dense, counters["cycles"] - counters["stalls"],
                   array_pass.model_cycles(dense), exact, counters, result.run.seconds,
                   result.run.simulator, result.run.seed, tensor, result)


def compare_on_array(passes, *, build_dir, label="", sim=None, seed=None,
                     idle=0.0, backpressure=0.0) -> Comparison:
    """Dense mode then sparse mode of one pass on the tile array's Verilog (one build).

    ``passes``: each mode's :class:`ArrayPass` (the dict of
    :func:`~maskprop.host.driver.mode_passes`, each mode in its fastest lowering), or one
    ArrayPass that both modes run."""
    from maskprop.hw.tile_array import TileArray

    if isinstance(passes, ArrayPass):
        passes = {"dense": passes, "sparse": passes}
    config = passes["sparse"].config
    component = TileArray(config)
    runs = {mode: run_on_array(passes[mode], dense=mode == "dense", build_dir=build_dir,
                               sim=sim, seed=seed, idle=idle, backpressure=backpressure,
                               run_name=mode, component=component)
            for mode in ("dense", "sparse")}
    gemm = passes["sparse"].gemm
    estimate = estimate_lowerings([passes["dense"].gemm, gemm], config)
    return Comparison(label or f"{gemm.layer.label} {gemm.pass_name}", runs["dense"],
                      runs["sparse"], estimate.dense_slots, estimate.nonzero_macs)


def compare_on_engine(gemm: LoweredGemm, config: Config, *, rows: int | None = None,
                      build_dir, label: str = "", sim=None, seed=None,
                      engine=None) -> Comparison:
    """The first ``rows`` GEMM rows of ``gemm`` (default: all), dense then sparse, on the
    one-tile engine's Verilog (one build)."""
    from maskprop.hw.engine import COUNTERS, SparseDotEngine, counter_layout
    from maskprop.tb.runner import run_stream_bench

    gemm.layer.check_accumulation(config, passes=(gemm.pass_name,))
    m_rows = gemm.X.shape[0] if rows is None else min(rows, gemm.X.shape[0])
    every = np.ones((m_rows, gemm.Y.shape[1]), dtype=bool)
    enabled = every if gemm.omask is None else np.asarray(gemm.omask[:m_rows], dtype=bool)
    golden = gemm.X @ gemm.Y      # equals the direct conv (tests/test_golden.py)
    engine = engine or SparseDotEngine(config)
    runs = {}
    for mode, wanted in (("dense", every), ("sparse", enabled)):
        dense = mode == "dense"
        stream = chunk_stream(gemm.X, gemm.Y, np.argwhere(wanted), config.vec)
        assert np.array_equal(stream.expected, golden[tuple(stream.outputs.T)])
        expected = [{"value": int(v), "overflow": 0} for v in stream.expected]
        result = run_stream_bench(engine, "sparse_dot_engine", list(stream.payloads()),
                                  expected, build_dir=build_dir, sim=sim, seed=seed,
                                  drive={"dense": int(dense), "clear": 0},
                                  read=["counters"], run_name=mode)
        counters = _counters(result, counter_layout(), COUNTERS, "engine", mode)
        exact = (result.passed
                 and [r.value for r in result.outputs] == stream.expected.tolist())
        runs[mode] = ModeRun(dense, counters["cycles"] - counters["stalls"],
                             engine_cycles(stream, config.lanes, dense=dense), exact, counters,
                             result.run.seconds, result.run.simulator, result.run.seed,
                             bench=result)
    return Comparison(
        label or f"{gemm.layer.name} {gemm.pass_name}", runs["dense"], runs["sparse"],
        multiplier_slots(runs["dense"].model, config.lanes),
        nonzero_products(gemm.X[:m_rows] != 0, gemm.Y != 0, enabled))
