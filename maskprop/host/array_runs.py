"""Running a conv layer's pass on the tile array's Verilog: dense and sparse mode on one build,
each checked bit-exactly against the golden model and against the cycle model."""

from dataclasses import dataclass

import numpy as np

from maskprop.base.config import Config
from maskprop.host.driver import ArrayPass
from maskprop.flow.toolchain import SimulationError

__all__ = ["ArrayRun", "PassComparison", "run_on_array", "compare_on_array"]


@dataclass
class ArrayRun:
    dense: bool
    cycles: int              # the array's cycles - stalls counter
    model: int               # the cycle model's prediction
    exact: bool              # every output beat and the reassembled tensor equal the golden model
    counters: dict
    tensor: np.ndarray
    seconds: float
    simulator: str
    seed: int
    # The bench's record (a StreamBenchResult): every handshake's cycle and, cycle by cycle,
    # the traffic, for the handshake reference (maskprop.tb.handshake_model).
    bench: object = None


@dataclass
class PassComparison:
    label: str
    dense: ArrayRun
    sparse: ArrayRun
    ideal: float

    @property
    def dense_cycles(self) -> int:
        return self.dense.cycles

    @property
    def sparse_cycles(self) -> int:
        return self.sparse.cycles

    @property
    def outputs_dense(self) -> int:
        return self.dense.counters["outputs"]

    @property
    def outputs_sparse(self) -> int:
        return self.sparse.counters["outputs"]

    @property
    def speedup(self) -> float:
        return self.dense.cycles / self.sparse.cycles

    @property
    def efficiency(self) -> float | None:
        """Achieved over ideal speedup; ``None`` when the pass has no work (no ideal)."""
        return None if self.ideal is None else self.speedup / self.ideal

    @property
    def agrees(self) -> bool:
        """Bit-exact in both modes and cycle-exact against the model."""
        return (self.dense.exact and self.sparse.exact and self.dense.cycles == self.dense.model
                and self.sparse.cycles == self.sparse.model)


def run_on_array(array_pass: ArrayPass, *, dense: bool, build_dir, sim=None, seed=None,
                 idle=0.0, backpressure=0.0, run_name="", component=None, clear=(),
                 watch=()) -> ArrayRun:
    """One pass on the array's Verilog (``component``: a TileArray of the pass's config);
    ``clear`` pulses the counters' clear in those cycles, ``watch`` names ports the bench
    records in every cycle (see :func:`~maskprop.tb.stream_bench.run_stream_bench`)."""
    from maskprop.hw.tile_array import ARRAY_COUNTERS, TileArray, array_counter_layout
    from maskprop.tb.stream_bench import run_stream_bench

    expected = list(array_pass.expected_results(dense))
    result = run_stream_bench(
        component or TileArray(array_pass.config), "tile_array", array_pass.inputs(), expected,
        phases=[["load"], ["rows", "x"]], build_dir=build_dir, sim=sim, seed=seed, idle=idle,
        backpressure=backpressure,
        drive={"n_chunks": array_pass.chunks, "dense": int(dense), "clear": 0},
        read=["counters"], run_name=run_name, pulses={"clear": clear}, watch=watch)
    if "counters" not in result.counters:
        raise SimulationError(f"the tile array's {'dense' if dense else 'sparse'} run ended "
                              f"without results: see {result.run.log}")
    counters = array_counter_layout().from_bits(result.counters["counters"])
    exact = result.passed and len(result.outputs) == len(expected)
    tensor = np.zeros(0)
    if exact:
        tensor = array_pass.assemble(result.outputs, dense)
        exact = np.array_equal(tensor, array_pass.golden(dense))
    return ArrayRun(dense, int(counters.cycles - counters.stalls),
                    array_pass.model_cycles(dense), exact,
                    {name: int(getattr(counters, name)) for name in ARRAY_COUNTERS},
                    tensor, result.run.seconds, result.run.simulator, result.run.seed, result)


def compare_on_array(array_pass: ArrayPass, *, build_dir, label="", sim=None, seed=None,
                     idle=0.0, backpressure=0.0) -> PassComparison:
    """Dense mode then sparse mode of one pass, on the same Verilog (one build)."""
    from maskprop.hw.tile_array import TileArray

    component = TileArray(array_pass.config)
    runs = {mode: run_on_array(array_pass, dense=mode == "dense", build_dir=build_dir, sim=sim,
                               seed=seed, idle=idle, backpressure=backpressure,
                               run_name=mode, component=component)
            for mode in ("dense", "sparse")}
    gemm = array_pass.gemm
    return PassComparison(label or f"{gemm.layer.label} {gemm.pass_name}", runs["dense"],
                          runs["sparse"], array_pass.ideal_speedup())
