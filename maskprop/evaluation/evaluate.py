"""Network-level evaluation: every conv layer and pass of a network on the tile array, from the
RTL-exact cycle model, dense mode against sparse mode.

Two BatchNorm scenarios are evaluated for every network, whatever it was built with:
``batchnorm`` (a BatchNorm between each conv and its ReLU: the output gradient ``dZ`` is dense)
and ``no-batchnorm`` (``dZ = dA * (Z > 0)``: as sparse as the layer's ReLU output). Output
sparsity of backward-data (the input activation's mask) holds in both. The first layer's
backward-data is never computed (its input is the image).
"""

import abc
import csv
import io
import json
import zlib
from dataclasses import asdict, dataclass, replace

import numpy as np

from maskprop.base.config import Config
from maskprop.host.driver import gemm_shapes
from maskprop.base.metrics import NO_WORK, Totals, totals
from maskprop.sim.cycle_model import PassEstimate, pass_estimate
from maskprop.sim.layer import PASSES, pass_label

__all__ = ["SCENARIOS", "SEED_BACKWARD", "SEED_TRAINING", "CYCLE_MODEL_LIMIT",
           "LayerPass", "Evaluation", "MaskSource", "ProfileMasks", "ExplicitMasks",
           "checked_profile", "own_scenario", "digits_evaluation_inputs", "check_evaluable",
           "evaluate"]

SCENARIOS = ("batchnorm", "no-batchnorm")
# The seed paper's reported ranges over five ImageNet CNNs (docs/references.md): backward-pass speedup
# over dense, and forward + backward over the sparsity-agnostic baseline.
SEED_BACKWARD = (1.69, 5.43)
SEED_TRAINING = (1.68, 3.30)
#: Most elements of one lowered operand (``X``, ``Y`` or the output) of a layer pass that the
#: cycle model takes: it keeps several working copies of each, about 9 bytes per element in all
#: (VGG-16 at batch 4, 115 million, peaks at 1 GB), so this bounds a pass near 1.2 GB. VGG-16 at
#: batch 1 needs 29 million.
CYCLE_MODEL_LIMIT = 1 << 27


@dataclass(frozen=True)
class LayerPass(PassEstimate):
    """One layer pass of a network in one BatchNorm scenario: the cycle model's estimate and the
    densities of the masks it ran on."""
    network: str
    scenario: str
    a_density: float
    dz_density: float

    def as_dict(self) -> dict:
        fields = asdict(self)
        return {"network": fields.pop("network"), "scenario": fields.pop("scenario"), **fields,
                "speedup": self.speedup, "ideal": self.ideal, "efficiency": self.efficiency}


TOTALS = {"forward": ("forward",), "backward": ("backward_data", "backward_weight"),
          "training step": PASSES}


@dataclass
class Evaluation:
    network: str
    profile: str
    config: Config
    rows: list

    def total(self, scenario: str, which: str) -> Totals:
        """The layer passes of ``scenario`` that ``which`` (a key of :data:`TOTALS`) covers."""
        return totals(r for r in self.rows
                      if r.scenario == scenario and r.pass_name in TOTALS[which])

    def summary(self) -> list[dict]:
        return [{"network": self.network, "profile": self.profile, "scenario": scenario,
                 "totals": which, "dense_cycles": t.dense_cycles,
                 "sparse_cycles": t.sparse_cycles, "speedup": t.speedup, "ideal": t.ideal,
                 "efficiency": t.efficiency}
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
        """The layer passes of :meth:`csv_text` plus the totals; ``null`` where undefined."""
        return json.dumps({
            "network": self.network, "profile": self.profile, "config": self.config.as_dict(),
            "totals": self.summary(), "layers": [r.as_dict() for r in self.rows]}, indent=2)


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


def check_evaluable(net, config: Config, *, limit: int = CYCLE_MODEL_LIMIT) -> None:
    """Refuse (``ValueError``), from shapes alone, a network the evaluation cannot do: a layer
    whose reduction could overflow ``acc_width`` (backward-weight sums over the whole batch),
    as the host driver would refuse it on the RTL, or a layer pass whose lowered operands have
    more than ``limit`` elements (they grow with the batch; the message says which batch fits).
    """
    for net_layer in net.layers:
        net_layer.conv.check_accumulation(config)
    passes = [(net_layer.conv, pass_name) for net_layer in net.layers
              for pass_name in _evaluated_passes(net_layer)]
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


def evaluate(net, source: MaskSource, config: Config, *, scenarios=SCENARIOS,
             progress=None) -> Evaluation:
    """Every layer, pass and scenario of ``net`` through the cycle model.

    ``progress(advance)`` is called once per layer (for a progress bar). What
    :func:`check_evaluable` refuses is refused before anything is computed.
    """
    rows = []
    layers = list(net.layers)
    check_evaluable(net, config)
    for index, net_layer in enumerate(layers):
        next_layer = layers[index + 1] if index + 1 < len(layers) else None
        conv = net_layer.conv
        for scenario in scenarios:
            a, dz = source.masks(net_layer, scenario, next_layer)
            for pass_name in _evaluated_passes(net_layer):
                estimate = pass_estimate(conv, pass_name, a, dz, config)
                row = LayerPass(**asdict(estimate), network=net.name, scenario=scenario,
                                a_density=float(a.mean()), dz_density=float(dz.mean()))
                rows.append(row)
        if progress is not None:
            progress(1)
    return Evaluation(net.name, source.label, config, rows)
