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
import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from maskprop.config import Config
from maskprop.sim.cycle_model import Speedups, pass_estimate

__all__ = ["SCENARIOS", "PASSES", "SEED_BACKWARD", "SEED_TRAINING", "LayerPass", "Evaluation",
           "MaskSource", "ProfileMasks", "ExplicitMasks", "digits_evaluation_inputs",
           "evaluate"]

SCENARIOS = ("batchnorm", "no-batchnorm")
PASSES = ("forward", "backward_data", "backward_weight")
# The seed paper's reported ranges over five ImageNet CNNs (REFERENCES.md): backward-pass speedup
# over dense, and forward + backward over the sparsity-agnostic baseline.
SEED_BACKWARD = (1.69, 5.43)
SEED_TRAINING = (1.68, 3.30)


@dataclass(frozen=True)
class LayerPass(Speedups):
    network: str
    scenario: str
    layer: str
    pass_name: str
    dense_cycles: int
    sparse_cycles: int
    dense_macs: int
    nonzero_macs: int
    a_density: float
    dz_density: float

    def as_dict(self) -> dict:
        return {**asdict(self), "speedup": self.speedup, "ideal": self.ideal,
                "efficiency": self.efficiency}


@dataclass
class Total(Speedups):
    dense_cycles: int
    sparse_cycles: int
    dense_macs: int
    nonzero_macs: int


TOTALS = {"forward": ("forward",), "backward": ("backward_data", "backward_weight"),
          "training step": PASSES}


@dataclass
class Evaluation:
    network: str
    profile: str
    config: Config
    rows: list

    def total(self, scenario: str, which: str) -> Total:
        picked = [r for r in self.rows if r.scenario == scenario and r.pass_name in TOTALS[which]]
        return Total(*(sum(getattr(r, f) for r in picked) for f in
                       ("dense_cycles", "sparse_cycles", "dense_macs", "nonzero_macs")))

    def summary(self) -> list[dict]:
        return [{"network": self.network, "profile": self.profile, "scenario": scenario,
                 "totals": which, "dense_cycles": t.dense_cycles,
                 "sparse_cycles": t.sparse_cycles, "speedup": t.speedup, "ideal": t.ideal,
                 "efficiency": t.efficiency}
                for scenario in SCENARIOS for which in TOTALS
                for t in [self.total(scenario, which)]]

    def write(self, directory: Path, stem: str) -> list[Path]:
        """``<stem>.csv`` (every layer pass) and ``<stem>.json`` (the same plus totals)."""
        directory.mkdir(parents=True, exist_ok=True)
        rows = [r.as_dict() for r in self.rows]
        csv_path = directory / f"{stem}.csv"
        with open(csv_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        json_path = directory / f"{stem}.json"
        json_path.write_text(json.dumps({
            "network": self.network, "profile": self.profile, "config": self.config.as_dict(),
            "totals": self.summary(), "layers": rows}, indent=2))
        return [csv_path, json_path]


class MaskSource(abc.ABC):
    """Where a layer's masks come from: ``masks(net_layer, scenario)`` -> ``(A != 0, dZ != 0)``
    as boolean arrays of the layer's input and output shapes."""

    label = ""

    @abc.abstractmethod
    def masks(self, net_layer, scenario, next_layer=None):
        """``(A != 0, dZ != 0)`` of ``net_layer`` in ``scenario``."""


class ProfileMasks(MaskSource):
    """Masks from a profile (:mod:`maskprop.sim.profiles`): its stored masks where it has them,
    else synthesised from its densities with its mask model, seeded per layer.

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
        from maskprop.sim.profiles import synthesize_mask
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


def digits_evaluation_inputs():
    """The digits CNN as a network and its real masks: the plain network's for the
    no-BatchNorm scenario, the BatchNorm-trained network's for the BatchNorm one."""
    from maskprop.sim.digits import load_fixture
    from maskprop.sim.networks import NetLayer, Network

    fixture = load_fixture()
    layers = tuple(NetLayer(record.layer, batchnorm=False, relu_input=index > 0)
                   for index, record in enumerate(fixture["plain"].layers))
    masks = {scenario: {r.name: (r.A, r.dZ) for r in fixture[variant].layers}
             for scenario, variant in (("no-batchnorm", "plain"), ("batchnorm", "batchnorm"))}
    return Network("digits CNN", layers), ExplicitMasks(
        masks, label="real masks of one training step (digits CNN, plain and BatchNorm-trained)")


def evaluate(net, source: MaskSource, config: Config, *, scenarios=SCENARIOS,
             progress=None) -> Evaluation:
    """Every layer, pass and scenario of ``net`` through the cycle model.

    ``progress(advance)`` is called once per layer (for a progress bar). A layer whose reduction
    could overflow ``acc_width`` (backward-weight sums over the whole batch) is refused before
    anything is computed, as the host driver would refuse it on the RTL.
    """
    rows = []
    layers = list(net.layers)
    for net_layer in layers:
        net_layer.conv.check_accumulation(config)
    for index, net_layer in enumerate(layers):
        next_layer = layers[index + 1] if index + 1 < len(layers) else None
        conv = net_layer.conv
        for scenario in scenarios:
            a, dz = source.masks(net_layer, scenario, next_layer)
            for pass_name in PASSES:
                if pass_name == "backward_data" and not net_layer.relu_input:
                    continue            # the first layer's input gradient is never needed
                estimate = pass_estimate(conv, pass_name, a, dz, config)
                row = LayerPass(net.name, scenario, conv.name, pass_name,
                                estimate.dense_cycles, estimate.sparse_cycles,
                                estimate.dense_macs, estimate.nonzero_macs,
                                float(a.mean()), float(dz.mean()))
                rows.append(row)
        if progress is not None:
            progress(1)
    return Evaluation(net.name, source.label, config, rows)
