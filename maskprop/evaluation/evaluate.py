"""Network-level evaluation: every conv layer and pass of a network on the tile array, from the
RTL-exact cycle model, dense mode against sparse mode, with the data movement and energy of
MaskpropCore (:mod:`maskprop.sim.data_movement`).

Two BatchNorm scenarios are evaluated for every network, whatever it was built with:
``batchnorm`` (a BatchNorm between each conv and its ReLU: the output gradient ``dZ`` is dense)
and ``no-batchnorm`` (``dZ = dA * (Z > 0)``: as sparse as the layer's ReLU output). Output
sparsity of backward-data (the input activation's mask) holds in both. The first layer's
backward-data is never computed (its input is the image).

Each layer pass reports, per mode: compute cycles (the cycle model's), the DRAM bytes the core
moves, the memory-bound cycles at a stated bandwidth (bytes per cycle; default one bus word per
cycle, ``CoreConfig.bus_bytes``), both ways of composing them (``overlapped``: the larger,
``serial``: the sum, no overlap; the core is between the two), the counted events and the energy
they take (:data:`maskprop.sim.data_movement.HOROWITZ_45NM`); the totals add the speedups and
energy ratios with data movement. Every pass moves what it moves on the evaluation's core
(:func:`evaluation_core`: CORE_DEFAULT's buffers), as the commands the host splits it into
where it does not fit (:func:`maskprop.host.split.plan_pass`): forward and backward-data into
row bands, images and output-channel groups, backward-weight into output-channel groups and
parts of its reduction chained by 64-bit partial sums, each mode in the fastest of its
orientations that the core runs. :data:`maskprop.sim.data_movement.ASSUMPTIONS` says what
these assume.
"""

import abc
import csv
import io
import json
import zlib
from dataclasses import asdict, dataclass, replace

import numpy as np

from maskprop.base.config import (CORE_ARRAY, Config, CoreConfig, JoinSettings,
                                  check_join_lanes)
from maskprop.host.core_driver import runnable_operands
from maskprop.host.driver import gemm_shapes
from maskprop.host.split import plan_pass
from maskprop.host.memory_layout import word_bytes
from maskprop.base.metrics import NO_WORK, Totals, totals
from maskprop.sim.cycle_model import (PassEstimate, candidate_lowerings, join_pass_cycles,
                                      mode_estimates)
from maskprop.sim.data_movement import (ASSUMPTIONS, HOROWITZ_45NM, EnergyTable, ModeCost,
                                        memory_cycles, mode_cost)
from maskprop.sim.layer import PASSES, pass_label
from maskprop.sim.lowering import ORIENTATIONS, lower_pass

__all__ = ["SCENARIOS", "SEED_BACKWARD", "SEED_TRAINING", "CYCLE_MODEL_LIMIT",
           "LayerPass", "MovementTotals", "Evaluation", "MaskSource", "ProfileMasks",
           "ExplicitMasks", "checked_profile", "own_scenario", "digits_evaluation_inputs",
           "published_inputs", "network_lowerings",
           "check_evaluable", "default_bandwidth", "evaluation_core", "pass_costs", "evaluate"]

SCENARIOS = ("batchnorm", "no-batchnorm")
# The seed paper's reported ranges over five ImageNet CNNs (docs/references.md): backward-pass
# speedup over dense, and forward + backward over the sparsity-agnostic baseline.
SEED_BACKWARD = (1.69, 5.43)
SEED_TRAINING = (1.68, 3.30)
#: Most elements of one lowered operand (``X``, ``Y`` or the output) of a layer pass that the
#: cycle model takes: it keeps several working copies of each, about 9 bytes per element in all
#: (VGG-16 at batch 4, 115 million, peaks at 1 GB), so this bounds a pass near 1.2 GB. VGG-16 at
#: batch 1 needs 29 million.
CYCLE_MODEL_LIMIT = 1 << 27


def _ratio(dense, sparse) -> float | None:
    return dense / sparse if sparse else None


def _mode_columns(cost: ModeCost) -> dict:
    """The columns of one mode of a layer pass (prefixed ``dense_`` or ``sparse_``)."""
    events, traffic, energy = cost.events, cost.traffic, cost.energy
    return {"bytes_read": traffic.read_bytes, "bytes_written": traffic.written_bytes,
            "bytes": traffic.total_bytes, "mask_bytes": traffic.mask_bytes,
            "bytes_with_bitmap": traffic.total_bytes_with_bitmap,
            "memory_cycles": cost.memory, "overlapped_cycles": cost.overlapped,
            "serial_cycles": cost.serial, "commands": traffic.commands,
            "macs_issued": events.macs, "chunks": events.chunks,
            "x_reads": events.x_reads, "row_buffer_writes": events.row_buffer_writes,
            "row_buffer_reads": events.row_buffer_reads, "y_reads": events.y_reads,
            "outputs": events.outputs, "x_fill_words": events.x_fill_words,
            "y_fill_words": events.y_fill_words, "output_words": events.output_words,
            "energy_pj": energy.total, "energy_compute_pj": energy.compute,
            "energy_x_buffer_pj": energy.x_buffer, "energy_row_buffer_pj": energy.row_buffer,
            "energy_y_buffer_pj": energy.y_buffer, "energy_dram_pj": energy.dram}


@dataclass(frozen=True)
class LayerPass(PassEstimate):
    """One layer pass of a network in one BatchNorm scenario: the cycle model's estimate, the
    densities of the masks it ran on, and each mode's data movement, events and energy on the
    evaluation's core (``dense_cost``, ``sparse_cost``)."""
    network: str
    scenario: str
    a_density: float
    dz_density: float
    dense_cost: ModeCost
    sparse_cost: ModeCost
    #: The join array's cycles on the pass (compute only) and whether they are its exact
    #: schedule (else the bound of unbounded queues): ``None`` unless the evaluation models it.
    join_cycles: int | None = None
    join_exact: bool | None = None

    @property
    def join(self) -> "JoinTerms | None":
        """The join array's terms against this pass's dense baseline, if modelled."""
        return None if self.join_cycles is None else JoinTerms.of([self])

    @property
    def bandwidth(self) -> float:
        return self.sparse_cost.bandwidth

    @property
    def speedup_overlapped(self) -> float | None:
        """Dense over sparse cycles with data movement overlapping compute."""
        return _ratio(self.dense_cost.overlapped, self.sparse_cost.overlapped)

    @property
    def speedup_serial(self) -> float | None:
        """Dense over sparse cycles with data movement before compute (no overlap)."""
        return _ratio(self.dense_cost.serial, self.sparse_cost.serial)

    @property
    def energy_ratio(self) -> float | None:
        """Dense energy over sparse energy."""
        return _ratio(self.dense_cost.energy.total, self.sparse_cost.energy.total)

    def as_dict(self) -> dict:
        """One flat record (a CSV row): the estimate's fields and ratios, then each mode's
        data movement, events and energy, then the ratios with data movement."""
        fields = {f.name: getattr(self, f.name) for f in PassEstimate.__dataclass_fields__.values()}
        return {"network": self.network, "scenario": self.scenario, **fields,
                "a_density": self.a_density, "dz_density": self.dz_density,
                "speedup": self.speedup, "ideal": self.ideal, "efficiency": self.efficiency,
                "bandwidth_bytes_per_cycle": self.bandwidth,
                **{f"dense_{k}": v for k, v in _mode_columns(self.dense_cost).items()},
                **{f"sparse_{k}": v for k, v in _mode_columns(self.sparse_cost).items()},
                "speedup_overlapped": self.speedup_overlapped,
                "speedup_serial": self.speedup_serial, "energy_ratio": self.energy_ratio,
                **({} if self.join is None else self.join.as_dict())}


@dataclass(frozen=True)
class JoinTerms(Totals):
    """The join array on several layer passes (compute only, no data movement): its cycles as
    ``sparse_cycles`` against the tile array's dense baseline (the same multipliers: a lane
    per selection segment, the same tiles), so ``speedup``, ``ideal`` and ``efficiency``
    mean what they mean for the tile array (:mod:`maskprop.base.metrics`); ``exact``: every
    pass's cycles from the exact schedule."""
    exact: bool

    @classmethod
    def of(cls, rows) -> "JoinTerms":
        rows = list(rows)
        return cls(sum(r.dense_cycles for r in rows), sum(r.join_cycles for r in rows),
                   sum(r.dense_slots for r in rows), sum(r.nonzero_macs for r in rows),
                   all(r.join_exact for r in rows))

    def as_dict(self) -> dict:
        return {"join_cycles": self.sparse_cycles, "join_speedup": self.speedup,
                "join_efficiency": self.efficiency, "join_exact": self.exact}


@dataclass(frozen=True)
class MovementTotals:
    """Data movement and energy summed over several layer passes, per mode: DRAM ``bytes``
    (and ``bytes_with_bitmap``, the output masks read as bitmaps), ``memory`` cycles, the
    per-pass ``overlapped`` and ``serial`` cycles summed, energy in pJ (total and its compute,
    SRAM and DRAM parts); the ratios dense over sparse."""
    dense_bytes: int
    sparse_bytes: int
    sparse_bytes_with_bitmap: int
    dense_memory_cycles: int
    sparse_memory_cycles: int
    dense_overlapped_cycles: int
    sparse_overlapped_cycles: int
    dense_serial_cycles: int
    sparse_serial_cycles: int
    dense_energy_pj: float
    sparse_energy_pj: float
    dense_energy_compute_pj: float
    sparse_energy_compute_pj: float
    dense_energy_sram_pj: float
    sparse_energy_sram_pj: float
    dense_energy_dram_pj: float
    sparse_energy_dram_pj: float

    @classmethod
    def of(cls, rows) -> "MovementTotals":
        rows = list(rows)

        def total(mode, value):
            return sum(value(getattr(r, f"{mode}_cost")) for r in rows)
        return cls(
            total("dense", lambda c: c.traffic.total_bytes),
            total("sparse", lambda c: c.traffic.total_bytes),
            total("sparse", lambda c: c.traffic.total_bytes_with_bitmap),
            *(total(mode, lambda c: c.memory) for mode in ("dense", "sparse")),
            *(total(mode, lambda c: c.overlapped) for mode in ("dense", "sparse")),
            *(total(mode, lambda c: c.serial) for mode in ("dense", "sparse")),
            *(total(mode, lambda c: c.energy.total) for mode in ("dense", "sparse")),
            *(total(mode, lambda c: c.energy.compute) for mode in ("dense", "sparse")),
            *(total(mode, lambda c: c.energy.sram) for mode in ("dense", "sparse")),
            *(total(mode, lambda c: c.energy.dram) for mode in ("dense", "sparse")))

    @property
    def speedup_overlapped(self) -> float | None:
        return _ratio(self.dense_overlapped_cycles, self.sparse_overlapped_cycles)

    @property
    def speedup_serial(self) -> float | None:
        return _ratio(self.dense_serial_cycles, self.sparse_serial_cycles)

    @property
    def energy_ratio(self) -> float | None:
        return _ratio(self.dense_energy_pj, self.sparse_energy_pj)

    def as_dict(self) -> dict:
        return {**asdict(self), "speedup_overlapped": self.speedup_overlapped,
                "speedup_serial": self.speedup_serial, "energy_ratio": self.energy_ratio}


TOTALS = {"forward": ("forward",), "backward": ("backward_data", "backward_weight"),
          "training step": PASSES}


@dataclass
class Evaluation:
    network: str
    profile: str
    config: Config
    rows: list
    bandwidth: float = None
    energy: EnergyTable = HOROWITZ_45NM
    core: CoreConfig | None = None
    #: The join array's settings if it is modelled beside the tile array.
    join: JoinSettings | None = None

    def _rows(self, scenario: str, which: str) -> list:
        return [r for r in self.rows if r.scenario == scenario and r.pass_name in TOTALS[which]]

    def total(self, scenario: str, which: str) -> Totals:
        """The layer passes of ``scenario`` that ``which`` (a key of :data:`TOTALS`) covers."""
        return totals(self._rows(scenario, which))

    def join_total(self, scenario: str, which: str) -> JoinTerms | None:
        """The join array on the same layer passes as :meth:`total`, if modelled."""
        return None if self.join is None else JoinTerms.of(self._rows(scenario, which))

    def join_worst_pass(self, scenario: str) -> tuple[str, float] | None:
        """The pass (forward, backward-data or backward-weight, over every layer) in which the
        join array's achieved/ideal is lowest, and that value; ``None`` if not modelled or no
        pass has work."""
        if self.join is None:
            return None
        passes = [(JoinTerms.of(r for r in self.rows if r.scenario == scenario
                                and r.pass_name == name).efficiency, name) for name in PASSES]
        passes = [(efficiency, name) for efficiency, name in passes if efficiency is not None]
        return None if not passes else min(passes)[::-1]

    def movement_total(self, scenario: str, which: str) -> MovementTotals:
        """Data movement and energy of the same layer passes as :meth:`total`."""
        return MovementTotals.of(self._rows(scenario, which))

    def summary(self) -> list[dict]:
        """Per scenario and totals: cycles and speedups compute-only, then with data movement
        at :attr:`bandwidth` (bytes, memory cycles, both compositions, energy and ratios)."""
        return [{"network": self.network, "profile": self.profile, "scenario": scenario,
                 "totals": which, "dense_cycles": t.dense_cycles,
                 "sparse_cycles": t.sparse_cycles, "speedup": t.speedup, "ideal": t.ideal,
                 "efficiency": t.efficiency, "bandwidth_bytes_per_cycle": self.bandwidth,
                 "energy_source": self.energy.source,
                 **self.movement_total(scenario, which).as_dict(),
                 **({} if self.join is None else self.join_total(scenario, which).as_dict())}
                for scenario in SCENARIOS for which in TOTALS
                for t in [self.total(scenario, which)]]

    def csv_text(self) -> str:
        """Every layer pass, one CSV row each; ``no work`` where ideal and achieved/ideal are
        undefined (``None``)."""
        rows = [{k: NO_WORK if v is None else v for k, v in r.as_dict().items()}
                for r in self.rows]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return text.getvalue()

    def json_text(self) -> str:
        """The layer passes of :meth:`csv_text` plus the totals, the bandwidth, the energy
        table and the assumptions; ``null`` where undefined."""
        return json.dumps({
            "network": self.network, "profile": self.profile, "config": self.config.as_dict(),
            "core": None if self.core is None else {
                "x_words": self.core.x_words, "y_words": self.core.array.y_words,
                "max_cols": self.core.array.max_cols},
            "bandwidth_bytes_per_cycle": self.bandwidth, "energy_table": self.energy.as_dict(),
            "join": None if self.join is None else asdict(self.join),
            "assumptions": list(ASSUMPTIONS), "totals": self.summary(),
            "layers": [r.as_dict() for r in self.rows]}, indent=2)


class MaskSource(abc.ABC):
    """Where a layer's masks come from: ``masks(net_layer, scenario)`` -> ``(A != 0, dZ != 0)``
    as boolean arrays of the layer's input and output shapes."""

    label = ""

    @abc.abstractmethod
    def masks(self, net_layer, scenario, next_layer=None):
        """``(A != 0, dZ != 0)`` of ``net_layer`` in ``scenario``."""


class ProfileMasks(MaskSource):
    """Masks from a profile (:mod:`maskprop.workloads.profiles`): its stored masks where it has
    them, else synthesised from its densities with its mask model, seeded per layer.

    Without BatchNorm, ``dZ``'s density is the profile's measured ``dZ`` when the network itself
    has no BatchNorm (a measured ``dZ`` of a BatchNorm network is dense and says nothing about
    the other scenario), else that of the layer's ReLU output: the profile's ``Y``, or the next
    layer's input density when ``Y`` is not given.
    """

    def __init__(self, profile, *, seed: int = 0):
        self.profile = profile
        self.seed = seed
        self.label = f"{profile.source} profile, {profile.mask_model or 'iid'} masks"

    def _density(self, layer_name, key):
        return self.profile.density(layer_name, key) if self.profile.has(layer_name, key) \
            else None

    def masks(self, net_layer, scenario, next_layer=None):
        conv = net_layer.conv
        rng = np.random.default_rng([self.seed, zlib.crc32(conv.name.encode())])
        a = self.profile.mask(conv.name, "A", conv.input_shape, rng)
        if scenario == "batchnorm":
            return a, np.ones(conv.output_shape, dtype=bool)
        density = self._density(conv.name, "dZ") if not net_layer.batchnorm else None
        if density is None:
            density = self._density(conv.name, "Y")
        if density is None and next_layer is not None:
            density = self.profile.density(next_layer.conv.name, "A")
        if density is None:
            density = self.profile.density(conv.name, "A")
        from maskprop.workloads.profiles import synthesize_mask
        return a, synthesize_mask(conv.output_shape, density, rng,
                                  self.profile.mask_model or "iid")


class ExplicitMasks(MaskSource):
    """Masks given per scenario and layer: ``{scenario: {layer name: (A, dZ)}}`` (arrays whose
    nonzeros are the masks), e.g. the digits CNN's real ones, trained without and with
    BatchNorm."""

    def __init__(self, masks: dict, *, label: str = "explicit masks"):
        self._masks = masks
        self.label = label

    def masks(self, net_layer, scenario, next_layer=None):
        a, dz = self._masks[scenario][net_layer.name]
        return np.asarray(a) != 0, np.asarray(dz) != 0


def checked_profile(path, network_name: str, net):
    """The profile file ``path`` of network ``network_name``, with everything that evaluating
    ``net`` will look up looked up now (``ValueError`` naming what is missing or wrong): stored
    masks of the right shapes and dtypes (from the archive's headers) and an ``A`` density for
    every layer."""
    from maskprop.workloads.profiles import load_profile

    profile = load_profile(path)
    if profile.network != network_name:
        raise ValueError(f"profile {path} is of network {profile.network!r}, not "
                         f"{network_name!r}")
    profile.check_masks({f"{layer.conv.name}/{key}": shape for layer in net.layers
                         for key, shape in (("A", layer.conv.input_shape),
                                            ("dZ", layer.conv.output_shape))})
    for layer in net.layers:
        profile.density(layer.conv.name, "A")
    return profile


def digits_evaluation_inputs():
    """The digits CNN as a network and its real masks: the plain network's for the
    no-BatchNorm scenario, the BatchNorm-trained network's for the BatchNorm one."""
    from maskprop.workloads.digits import load_fixture
    from maskprop.workloads.networks import NetLayer, Network

    fixture = load_fixture()
    layers = tuple(NetLayer(record.layer, batchnorm=False, relu_input=index > 0)
                   for index, record in enumerate(fixture["plain"].layers))
    masks = {scenario: {r.name: (r.A, r.dZ) for r in fixture[variant].layers}
             for scenario, variant in (("no-batchnorm", "plain"), ("batchnorm", "batchnorm"))}
    return Network("digits CNN", layers), ExplicitMasks(
        masks, label="real masks of one training step (digits CNN, plain and BatchNorm-trained)")


def published_inputs(name: str, *, seed: int = 0):
    """``(network, masks)`` for ``name``: ``"digits"``, the digits CNN with its real masks
    (:func:`digits_evaluation_inputs`), or a network of :data:`NETWORK_NAMES
    <maskprop.workloads.networks.NETWORK_NAMES>` with its literature profile's masks drawn
    with ``seed`` - what the scripts that compare designs on the same masks evaluate."""
    from maskprop.workloads import profiles
    from maskprop.workloads.networks import network

    if name == "digits":
        return digits_evaluation_inputs()
    return network(name), ProfileMasks(profiles.literature_profile(name), seed=seed)


def network_lowerings(net, source: "MaskSource", scenario: str, config: Config):
    """Every evaluated pass of ``net`` with ``source``'s masks of ``scenario``, in layer order:
    ``(layer, pass_name, gemms)``, ``gemms`` the pass's candidate lowerings on the array of
    ``config`` (:func:`~maskprop.sim.cycle_model.candidate_lowerings`), built from the masks
    alone (one byte per element, the weights dense). The first layer's backward-data is not
    evaluated (its input is the image)."""
    for layer in net.layers:
        a, dz = source.masks(layer, scenario)
        weights = np.ones(layer.conv.weight_shape, dtype=np.uint8)
        for pass_name in _evaluated_passes(layer):
            yield layer, pass_name, candidate_lowerings(
                layer.conv, pass_name, A=np.asarray(a, dtype=bool).view(np.uint8), W=weights,
                dZ=np.asarray(dz, dtype=bool).view(np.uint8), config=config)


def own_scenario(net) -> str:
    """The scenario ``net`` was built with: ``batchnorm`` when any of its layers has a BatchNorm
    between conv and ReLU, else ``no-batchnorm``."""
    return SCENARIOS[0] if any(layer.batchnorm for layer in net.layers) else SCENARIOS[1]


def _evaluated_passes(net_layer):
    # The first layer's input gradient is never needed: its backward-data is not evaluated.
    return [p for p in PASSES if p != "backward_data" or net_layer.relu_input]


def _operand_sizes(conv, pass_name: str, vec: int) -> list:
    """Elements of the lowered ``X``, ``Y`` and output of a pass aligned to chunks of ``vec``
    (the same for both backward-weight orientations)."""
    shape = gemm_shapes(conv, pass_name, vec)[0]
    return [shape.rows * shape.reduction, shape.reduction * shape.cols, shape.rows * shape.cols]


def _largest_batch(conv, pass_name: str, vec: int, limit: int) -> int | None:
    """The largest batch at which every operand of the pass (aligned to ``vec``) has at most
    ``limit`` elements (0: none; ``None``: any). Unaligned, each size is linear in the batch or
    constant, which gives an upper bound; alignment (backward-weight's pixels padded to a
    multiple of ``vec``) can only lower it, by a step or two."""
    one = _operand_sizes(replace(conv, batch=1), pass_name, 1)
    two = _operand_sizes(replace(conv, batch=2), pass_name, 1)
    largest = None
    for size_one, size_two in zip(one, two):
        per_image = size_two - size_one
        fixed = size_one - per_image
        fits = (limit - fixed) // per_image if per_image else (None if fixed <= limit else 0)
        if fits is not None:
            largest = max(0, fits) if largest is None else min(largest, max(0, fits))

    def too_big(batch):
        return max(_operand_sizes(replace(conv, batch=batch), pass_name, vec)) > limit
    if largest is None:
        return None if not too_big(1) else 0
    while largest > 0 and too_big(largest):
        largest -= 1
    return largest


def check_evaluable(net, config: Config, *, limit: int = CYCLE_MODEL_LIMIT,
                    core: CoreConfig | None = None) -> None:
    """Refuse (``ValueError``), from shapes alone, a network the evaluation cannot do: a layer
    whose forward or backward-data reduction could overflow ``acc_width``, as the host driver
    would refuse it on the RTL (backward-weight's, over the whole batch, is split into parts
    with 64-bit partial sums: :func:`~maskprop.host.split.plan_pass` refuses one it cannot
    hold), a pass the host cannot split to fit ``core`` (default :func:`evaluation_core`;
    backward-weight in neither orientation: the message gives both reasons), or a layer pass
    whose lowered operands have more than ``limit`` elements (they grow with the batch; the
    message says which batch fits).
    """
    for net_layer in net.layers:
        net_layer.conv.check_accumulation(config, passes=("forward", "backward_data"))
    passes = [(net_layer.conv, pass_name) for net_layer in net.layers
              for pass_name in _evaluated_passes(net_layer)]
    core = evaluation_core(config) if core is None else core
    for conv, pass_name in passes:
        if pass_name == "backward_weight":
            runnable_operands(conv, core)
        else:
            plan_pass(conv, pass_name, core)
    elements, conv, pass_name = max(((max(_operand_sizes(c, p, config.vec)), c, p)
                                     for c, p in passes), key=lambda largest: largest[0])
    if elements <= limit:
        return
    fitting = [_largest_batch(c, p, config.vec, limit) for c, p in passes]
    fits = min(f for f in fitting if f is not None)
    raise ValueError(
        f"{net.name} layer {conv.name!r} {pass_label(pass_name)} at batch {conv.batch} "
        f"lowers to operands of {elements:,} elements; the cycle model takes at most "
        f"{limit:,}: " + (f"use a batch of at most {fits}" if fits else "no batch fits"))


def default_bandwidth(config: Config) -> int:
    """Bytes per cycle of the core's memory port: one chunk per cycle (``CoreConfig.bus_bytes``
    for a core on ``config``)."""
    return word_bytes(config.vec, config.data_width)


def evaluation_core(config: Config) -> CoreConfig:
    """The core whose buffers an evaluation on the tile array ``config`` splits its passes for:
    ``CoreConfig``'s X scratchpad and ``CORE_ARRAY``'s Y buffer and ``max_cols`` (the core
    ``maskprop sim`` builds, CORE_DEFAULT), with ``config``'s row buffer (an evaluation's
    ``max_chunks`` is as long as any forward or backward-data reduction, which the core never
    splits) and ``CoreConfig``'s row-block buffer and memory bus (backward-weight's reduction
    is split into parts of at most ``row_block_chunks`` chunks, with 64-bit partial sums)."""
    return CoreConfig(replace(config, max_cols=CORE_ARRAY.max_cols, y_words=CORE_ARRAY.y_words))


def pass_costs(conv, pass_name: str, a_nonzero, dz_nonzero, config: Config, *, bandwidth,
               energy: EnergyTable = HOROWITZ_45NM, core: CoreConfig | None = None):
    """``(PassEstimate, dense ModeCost, sparse ModeCost)`` of a layer's pass from masks alone,
    on ``core`` (default :func:`evaluation_core`).

    The estimate is :func:`maskprop.sim.cycle_model.pass_estimate`'s, computed the same way
    (each mode in the lowering with the fewest cycles, the first on a tie:
    :func:`~maskprop.sim.cycle_model.estimate_lowerings`), but among the lowerings ``core``
    runs: backward-weight only in the orientations :func:`~maskprop.host.split.plan_pass`
    accepts on ``core`` (:func:`~maskprop.host.core_driver.runnable_operands`; ``ValueError``
    with both reasons if none), so where both run the two are equal (tests hold them so).
    Each lowering's chunks are counted once for a mode's cycles and its costs
    (:func:`maskprop.sim.data_movement.mode_cost`: the commands of the pass on ``core``), on
    the lowering that mode runs in (:func:`~maskprop.sim.cycle_model.mode_estimates`: dense mode on
    the fair baseline, as every estimate counts it).
    """
    def pattern(nonzero):     # one byte per element: the lowered operands stay small
        return np.asarray(nonzero, dtype=bool).view(np.uint8)

    core = evaluation_core(config) if core is None else core
    if pass_name == "backward_weight":
        runnable = runnable_operands(conv, core)
        orientations = [o for o in ORIENTATIONS if o in runnable]   # the cycle model's order
    else:
        orientations = ["dz"]
    a, w, dz = (pattern(a_nonzero), np.ones(conv.weight_shape, dtype=np.uint8),
                pattern(dz_nonzero))
    gemms = [lower_pass(conv, pass_name, A=a, W=w, dZ=dz, x_operand=orientation,
                        vec=config.vec) for orientation in orientations]
    modes = mode_estimates(gemms, config)
    costs = [mode_cost(mode.gemm, config, dense=dense, cycles=mode.cycles, bandwidth=bandwidth,
                       table=energy, issued=mode.issued, core=core)
             for dense, mode in zip((True, False), modes)]
    return PassEstimate.of(*modes, config), *costs


def evaluate(net, source: MaskSource, config: Config, *, scenarios=SCENARIOS,
             bandwidth=None, energy: EnergyTable = HOROWITZ_45NM, core: CoreConfig | None = None,
             join: JoinSettings | None = None, progress=None) -> Evaluation:
    """Every layer, pass and scenario of ``net`` through the cycle model, with each pass's
    data movement at ``bandwidth`` bytes per cycle (default :func:`default_bandwidth`) on
    ``core`` (default :func:`evaluation_core`) and its energy from ``energy``; with ``join``,
    also the join array of those settings with ``config``'s multipliers, compute only, in
    each pass's faster lowering
    (:func:`~maskprop.sim.cycle_model.join_pass_cycles`: its exact schedule on small passes,
    else the bound of unbounded queues).

    ``progress(advance)`` is called once per layer (for a progress bar). What
    :func:`check_evaluable` (and with ``join``,
    :func:`~maskprop.base.config.check_join_lanes`) refuses is refused before anything is
    computed.
    """
    rows = []
    layers = list(net.layers)
    core = evaluation_core(config) if core is None else core
    check_evaluable(net, config, core=core)
    if join is not None:
        check_join_lanes(config)
    bandwidth = default_bandwidth(config) if bandwidth is None else bandwidth
    memory_cycles(0, bandwidth)                       # refuses a bandwidth that is not one
    for index, net_layer in enumerate(layers):
        next_layer = layers[index + 1] if index + 1 < len(layers) else None
        conv = net_layer.conv
        for scenario in scenarios:
            a, dz = source.masks(net_layer, scenario, next_layer)
            for pass_name in _evaluated_passes(net_layer):
                estimate, dense, sparse = pass_costs(conv, pass_name, a, dz, config,
                                                     bandwidth=bandwidth, energy=energy,
                                                     core=core)
                join_cycles = join_exact = None
                if join is not None:
                    gemms = candidate_lowerings(
                        conv, pass_name, A=np.asarray(a, dtype=bool).view(np.uint8),
                        W=np.ones(conv.weight_shape, dtype=np.uint8),
                        dZ=np.asarray(dz, dtype=bool).view(np.uint8), config=config)
                    join_cycles, join_exact = join_pass_cycles(gemms, config, join)
                row = LayerPass(**asdict(estimate), network=net.name, scenario=scenario,
                                a_density=float(a.mean()), dz_density=float(dz.mean()),
                                dense_cost=dense, sparse_cost=sparse, join_cycles=join_cycles,
                                join_exact=join_exact)
                rows.append(row)
        if progress is not None:
            progress(1)
    return Evaluation(net.name, source.label, config, rows, bandwidth, energy, core, join)
