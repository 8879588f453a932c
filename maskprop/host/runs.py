"""A conv layer's pass on the generated Verilog, dense mode against sparse mode on one build,
each mode checked bit-exactly against the golden model and cycle-exactly against the cycle model:
on the tile array (the whole pass) or on the one-tile engine (some rows of it).

Both give one :class:`Comparison`. Output sparsity on the engine is the host's: outputs whose
mask bit is clear are never sent (the tile array skips them in hardware). Dense mode sends every
output and sets the block's ``dense`` input, so the sparsity-agnostic baseline runs on the same
Verilog.

On the accelerator core (:func:`compare_on_core`, a :class:`CoreComparison`) a pass runs memory
to memory through the core's registers (:func:`run_core_jobs`), and what the core counted -
cycles busy, compute cycles, bytes read and written - is held to the core's cycle model
(:mod:`maskprop.sim.core_model`).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from maskprop.base.config import Config
from maskprop.base.metrics import Speedups, Totals, multiplier_slots, nonzero_products
from maskprop.flow.toolchain import SimulationError
from maskprop.host.driver import ArrayPass, check_tensor_elements, chunk_stream
from maskprop.sim.cycle_model import engine_cycles, estimate_lowerings
from maskprop.sim.lowering import LoweredGemm

if TYPE_CHECKING:                       # the model imports the RTL: only when a core runs
    from maskprop.sim.core_model import CoreCycles

__all__ = ["ModeRun", "Comparison", "run_on_array", "compare_on_array", "compare_on_engine",
           "CommandRuns", "CoreRun", "sum_counters", "run_core_jobs", "core_bench_offsets", "decode_status",
           "CoreModeRun", "CoreComparison", "check_core_run", "unsaturated_shift", "compare_on_core",
           "job_model", "fastest_operand"]


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
    # The fair dense baseline's cycles (cycle model: the full selection window,
    # maskprop.sim.cycle_model.dense_baseline); None where the block's dense mode is the baseline.
    baseline_cycles: int | None = None

    @property
    def dense_cycles(self) -> int:
        return self.dense.cycles

    @property
    def sparse_cycles(self) -> int:
        return self.sparse.cycles

    @property
    def over_baseline(self) -> Totals | None:
        """The speedups with the fair dense baseline's cycles as dense mode's (None where the
        block's dense mode is the baseline)."""
        if self.baseline_cycles is None:
            return None
        return Totals(self.baseline_cycles, self.sparse_cycles, self.dense_slots,
                      self.nonzero_macs)

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
    """One pass on the array's Verilog (``component``: a TileArray of the pass's config, the
    zero-skipping one by default; on a dense-only one, dense mode only); ``clear`` pulses the counters' clear in those cycles, ``watch`` names ports the bench
    records in every cycle (see :func:`~maskprop.tb.runner.run_stream_bench`)."""
    from maskprop.hw.tile_array import ARRAY_COUNTERS, TileArray, array_counter_layout
    from maskprop.tb.runner import run_stream_bench

    component = component or TileArray(array_pass.config)
    zero_skipping = component.zero_skipping          # the dense-only array runs dense mode
    if not (zero_skipping or dense):
        raise ValueError("the dense-only array runs dense mode only")
    expected = list(array_pass.expected_results(dense))
    result = run_stream_bench(
        component, "tile_array", array_pass.inputs(dense),
        expected, phases=[["load"], ["rows", "x"]], build_dir=build_dir, sim=sim, seed=seed,
        idle=idle, backpressure=backpressure, drive=array_pass.drive(dense),
        read=["counters"], run_name=run_name, pulses={"clear": clear}, watch=watch)
    counters = _counters(result, array_counter_layout(), ARRAY_COUNTERS, "tile array",
                         "dense" if dense else "sparse")
    exact = result.passed and len(result.outputs) == len(expected)
    tensor = np.zeros(0)
    if exact:
        tensor = array_pass.assemble(result.outputs, dense)
        exact = np.array_equal(tensor, array_pass.golden(dense))
    return ModeRun(dense, counters["cycles"] - counters["stalls"],
                   array_pass.model_cycles(dense, zero_skipping=zero_skipping), exact, counters,
                   result.run.seconds, result.run.simulator, result.run.seed, tensor, result)


def compare_on_array(passes, *, build_dir, label="", sim=None, seed=None,
                     idle=0.0, backpressure=0.0) -> Comparison:
    """Dense mode then sparse mode of one pass on the tile array's Verilog (one build).

    ``passes``: each mode's :class:`ArrayPass` (the dict of
    :func:`~maskprop.host.driver.mode_passes`, each mode in the lowering the estimates run it
    in), or one ArrayPass that both modes run. The comparison's ``dense_slots`` and
    ``baseline_cycles`` are the fair dense baseline's among the lowerings given (with
    ``mode_passes``' dict, the baseline's own)."""
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
                      runs["sparse"], estimate.dense_slots, estimate.nonzero_macs,
                      estimate.dense_cycles)


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
                             engine_cycles(stream, config, dense=dense), exact, counters,
                             result.run.seconds, result.run.simulator, result.run.seed,
                             bench=result)
    return Comparison(
        label or f"{gemm.layer.name} {gemm.pass_name}", runs["dense"], runs["sparse"],
        multiplier_slots(runs["dense"].model, config.lanes),
        nonzero_products(gemm.X[:m_rows] != 0, gemm.Y != 0, enabled))


# --- the accelerator core ----------------------------------------------------------------------

@dataclass
class CommandRuns:
    """A job of one or more core commands (a split pass: several), as a bench reported it:
    each command's ``statuses`` (STATUS fields: busy, done, error, error_code, an ErrorCode
    name) and ``command_counters`` (every performance counter, by name). ``status`` is the
    last command's (the benches stop at the first error), ``counters`` their sums."""
    statuses: list
    command_counters: list

    @property
    def status(self) -> dict:
        return self.statuses[-1]

    @property
    def counters(self) -> dict:
        return sum_counters(self.command_counters)

    @property
    def done(self) -> bool:
        """Every command finished without an error."""
        return all(status["done"] and not status["error"] for status in self.statuses)


@dataclass
class CoreRun(CommandRuns):
    """One job on the core's Verilog: what the host read back (:class:`CommandRuns`; the byte
    counts are sums over the commands)."""
    result: bytes            # the bytes at the job's output address afterwards
    bytes_read: dict         # per tensor (name -> bytes), as the AXI checker counted them
    bytes_written: dict
    total_read: int          # every byte the memory port moved during the job
    total_written: int
    seed: int = 0
    simulator: str = ""


def sum_counters(counters: list) -> dict:
    """Counters of several commands, counter by counter (every one of them counts events)."""
    return {name: sum(c[name] for c in counters) for name in counters[0]}


def core_bench_offsets(register_map) -> dict:
    """Where the bench finds what it writes and reads in the core's register map."""
    status = register_map.register("STATUS")
    bit = {field.name: field.lsb for field in status.fields}
    return {
        "CONTROL": register_map.word("CONTROL").offset,
        "start_bit": register_map.field("start").lsb,
        "clear_bit": register_map.field("clear_counters").lsb,
        "STATUS": register_map.word("STATUS").offset,
        "clear_mask": 1 << bit["done"] | 1 << bit["error"],
        "busy_bit": bit["busy"],
        "error_bit": bit["error"],
        "counters": [(field.name, register_map.register_of(field.name).offset)
                     for field in register_map.fields
                     if register_map.register_of(field.name).width == 64
                     and field.access == "ro"],
    }


def decode_status(register_map, value: int) -> dict:
    from maskprop.hw.core_registers import ErrorCode
    status = {field.name: value >> field.lsb & ((1 << field.width) - 1)
              for field in register_map.register("STATUS").fields}
    status["error_code"] = ErrorCode(status["error_code"]).name
    return status


def run_core_jobs(jobs, *, build_dir, component, sim=None, seed=None, pause=0.3,
                  timeout_cycles=2_000_000, run_name="") -> list[CoreRun]:
    """Run ``jobs`` one after the other on ``component`` (a MaskpropCore) as generated Verilog:
    each job is a dict with ``memory`` (``[(address, bytes)]`` to write first), ``commands``
    (per command, ``[(offset, value)]`` register words before its start; the next command
    starts once the one before is done), ``out`` (``(address, bytes)`` to read
    back), ``ranges`` (``[(name, lo, hi)]`` address ranges whose traffic is counted), optionally
    ``timeout_cycles`` and ``start_again`` (write start a second time while it runs);
    :meth:`~maskprop.host.core_driver.CoreJob.bench_job` makes one from a pass."""
    import json
    from pathlib import Path

    from maskprop.tb.runner import run_testbench

    register_map = component.register_map
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    memory_bytes = max(max((address + len(image) for address, image in job["memory"]),
                           default=0) for job in jobs)
    memory_bytes = max(memory_bytes, max(sum(job["out"]) for job in jobs),
                       max((hi for job in jobs for _, _, hi in job["ranges"]), default=0))
    spec = {
        "memory_bytes": memory_bytes, "pause": pause, "timeout_cycles": timeout_cycles,
        "max_outstanding": component.core.max_outstanding,
        "offsets": core_bench_offsets(register_map),
        "jobs": [{"memory": [(address, bytes(image).hex()) for address, image in job["memory"]],
                  "commands": [[list(write) for write in writes] for writes in job["commands"]],
                  "out": list(job["out"]),
                  "timeout_cycles": job.get("timeout_cycles", timeout_cycles),
                  "start_again": job.get("start_again", False),
                  "ranges": [list(r) for r in job["ranges"]]} for job in jobs],
    }
    path = build_dir / (f"jobs-{run_name}.json" if run_name else "jobs.json")
    path.write_text(json.dumps(spec))
    run = run_testbench(component, "maskprop_core", "maskprop.tb.bench_core",
                        params={"jobs": str(path)}, sim=sim, build_dir=build_dir, seed=seed,
                        run_name=run_name)
    report = run.report.get("core")
    if not run.passed or report is None:
        raise SimulationError(f"the core's bench failed: see {run.log}")
    runs = []
    for job in report["jobs"]:
        commands = job["commands"]
        runs.append(CoreRun([decode_status(register_map, c["status"]) for c in commands],
                            [c["counters"] for c in commands], bytes.fromhex(job["result"]),
                            sum_counters([c["bytes_read"] for c in commands]),
                            sum_counters([c["bytes_written"] for c in commands]),
                            job["total_read"], job["total_written"], run.seed, run.simulator))
    return runs


# --- dense against sparse on the core ----------------------------------------------------------

@dataclass
class CoreModeRun:
    """One mode of a pass on the core's Verilog (:func:`compare_on_core`) beside what the models
    say its counters must be."""
    dense: bool
    run: CoreRun
    exact: bool              # done without error, the result in memory the golden model's bytes
    model: "CoreCycles"      # the core's model of its commands, summed (total_cycles)
    operand: str = ""        # backward-weight's broadcast operand ("a" or "dz")

    @property
    def counters(self) -> dict:
        return self.run.counters

    @property
    def agrees(self) -> bool:
        """Exact, and the busy and compute cycles and the bytes moved as the core's model says
        (the bench's memory answers without pauses, as the model's default memory does)."""
        counters, model = self.run.counters, self.model
        return (self.exact and counters["cycles_busy"] == model.total
                and counters["compute_cycles"] == model.compute
                and counters["bytes_read"] == model.traffic.read_bytes
                and counters["bytes_written"] == model.traffic.written_bytes)


@dataclass
class CoreComparison:
    """Dense against sparse mode of one pass on the core's Verilog. Two speedups: over the
    cycles the core is busy (start to done: loading the buffers, computing, writing the result
    back) and over its compute cycles (those of the tile array alone, as the tile array's runs
    measure them); the ideal is the same for both, the tile array's (:mod:`maskprop.base.metrics`:
    dense multiplier slots over nonzero MACs), so achieved/ideal says how much of it the whole
    pass keeps and how much its compute keeps. ``shift``: the requantization shift the pass
    ran with."""
    label: str
    shift: int
    dense: CoreModeRun
    sparse: CoreModeRun
    dense_slots: int
    nonzero_macs: int

    def _terms(self, counter: str) -> Totals:
        return Totals(self.dense.counters[counter], self.sparse.counters[counter],
                      self.dense_slots, self.nonzero_macs)

    @property
    def busy(self) -> Totals:
        """Speedup, ideal and achieved/ideal over ``cycles_busy``."""
        return self._terms("cycles_busy")

    @property
    def compute(self) -> Totals:
        """Speedup, ideal and achieved/ideal over ``compute_cycles``."""
        return self._terms("compute_cycles")

    @property
    def exact(self) -> bool:
        return self.dense.exact and self.sparse.exact

    @property
    def agrees(self) -> bool:
        return self.dense.agrees and self.sparse.agrees


def check_core_run(layer, pass_name: str, core) -> None:
    """Refuse (``ValueError`` naming what to change), from ``layer``'s shape and ``core`` (a
    :class:`~maskprop.base.config.CoreConfig`) alone, everything :func:`compare_on_core` would
    refuse: what :func:`~maskprop.host.core_driver.check_core_pass` refuses, tensors too large
    for one RTL run (:data:`~maskprop.host.driver.SIM_ELEMENT_LIMIT` elements each: the core
    splits any layer, but a simulation of one takes as long as its work), and tensors beyond
    what the memory port's ``addr_width`` reaches; ``ImportError`` without cocotbext-axi, which
    the core's bench needs (a test extra, not a dependency of maskprop itself). Call it before
    making tensors."""
    import importlib.util

    from maskprop.host.core_driver import CoreJob, check_core_pass, runnable_operands

    try:
        bench_memory = importlib.util.find_spec("cocotbext.axi")
    except ModuleNotFoundError:                 # no cocotbext namespace at all
        bench_memory = None
    if bench_memory is None:
        raise ImportError("the core's testbench (tb/bench_core.py) needs cocotbext-axi, in "
                          "maskprop's test extra: pip install 'maskprop[test]' (scripts/setup.sh "
                          "installs it)")
    # What the core cannot run, even split (backward-weight: in either operand).
    if pass_name == "backward_weight":
        operands = runnable_operands(layer, core)
    else:
        check_core_pass(layer, pass_name, core)
        operands = ["a"]
    check_tensor_elements(layer, pass_name)     # first: it bounds the tensors made below
    # The memory layout depends on the shapes only: zeros place the tensors as real ones would.
    for operand in operands:
        CoreJob(layer, pass_name, core, A=np.zeros(layer.input_shape, dtype=np.int64),
                W=np.zeros(layer.weight_shape, dtype=np.int64),
                dZ=np.zeros(layer.output_shape, dtype=np.int64), operand=operand)


def unsaturated_shift(accumulators, data_width: int) -> int:
    """The smallest requantization shift that brings every one of ``accumulators`` (exact
    outputs) into ``data_width`` bits: the result the core writes then keeps each output's top
    bits rather than saturating most of them, so comparing it with the golden model tests
    every output (rounding can still lift the largest to saturation)."""
    largest = int(np.abs(np.asarray(accumulators, dtype=np.int64)).max(initial=0))
    return max(0, largest.bit_length() - (data_width - 1))


def job_model(job):
    """The core's model (:func:`maskprop.sim.core_model.job_cycles`, summed) of ``job`` (a
    :class:`~maskprop.host.core_driver.CoreJob`): every command, the default memory."""
    from maskprop.sim.core_model import job_cycles, total_cycles

    return total_cycles(job_cycles(job.array_pass(), job.core, dense=job.dense,
                                   bases=job.bases))


def fastest_operand(layer, core, *, A, W, dZ, dense: bool) -> str:
    """Backward-weight's broadcast operand (``"a"`` or ``"dz"``) in which the core, in mode
    ``dense``, is busy for fewer cycles by its model (``"a"`` on a tie), among those it runs
    ``layer`` in (:func:`~maskprop.host.core_driver.runnable_operands`)."""
    from maskprop.host.core_driver import CoreJob, runnable_operands

    return min(runnable_operands(layer, core), key=lambda operand: job_model(CoreJob(
        layer, "backward_weight", core, A=A, W=W, dZ=dZ, dense=dense, operand=operand)).total)


def compare_on_core(layer, pass_name: str, core, *, A, W, dZ, build_dir, label: str = "",
                    shift: int | None = None, sim=None, seed=None,
                    component=None) -> CoreComparison:
    """Dense mode then sparse mode of ``pass_name`` of ``layer`` on the core's Verilog (one
    build, one simulation), each through its registers with the tensors in memory
    (:class:`~maskprop.host.core_driver.CoreJob`); ``component``: a MaskpropCore of ``core``
    (default: made here).

    The bench is :func:`run_core_jobs`' (``tb/bench_core.py``): any memory size, the AXI
    protocol checked, and no pauses, so that the memory answers as fast as the core asks and
    the busy cycles are the core's own. Each mode's result must be the golden model's
    requantized by ``shift`` (default :func:`unsaturated_shift` of the pass's outputs) byte for
    byte; its busy and compute cycles and its bytes are held to the core's model
    (:func:`maskprop.sim.core_model.core_cycles`). :func:`check_core_run` says beforehand what
    is refused.

    Backward-weight runs each mode with the broadcast operand in which the core's model says
    it finishes sooner (:func:`fastest_operand`): the dense baseline takes its own best
    orientation, not the sparse run's."""
    from maskprop.host.core_driver import CoreJob
    from maskprop.hw.core import MaskpropCore

    # The whole pass, which the core may run split (each command fits its buffers).
    array_pass = ArrayPass.lower(layer, pass_name, core.array, A=A, W=W, dZ=dZ, check_fit=False)
    if shift is None:
        shift = unsaturated_shift(array_pass.exact(), core.array.data_width)
    jobs = []
    for dense in (True, False):
        operand = (fastest_operand(layer, core, A=A, W=W, dZ=dZ, dense=dense)
                   if pass_name == "backward_weight" else "a")
        jobs.append(CoreJob(layer, pass_name, core, A=A, W=W, dZ=dZ, dense=dense, shift=shift,
                            operand=operand))
    component = component or MaskpropCore(core)
    runs = run_core_jobs([job.bench_job(component.register_map) for job in jobs],
                         build_dir=build_dir, component=component, sim=sim, seed=seed,
                         pause=0.0)
    modes = []
    for job, run in zip(jobs, runs):
        exact = (len(run.statuses) == len(job.commands) and run.done
                 and run.result == job.expected_image())
        modes.append(CoreModeRun(job.dense, run, exact, job_model(job),
                                 job.operand if pass_name == "backward_weight" else ""))
    estimate = array_pass.estimate()
    return CoreComparison(label or f"{layer.label} {pass_name}", shift, *modes,
                          estimate.dense_slots, estimate.nonzero_macs)
