"""Training the digits CNN with every convolution on the core (docs/host_link.md, "Training").

The network is :data:`maskprop.workloads.digits.NETWORK` (four convolutions without bias, each
followed by BatchNorm in the ``batchnorm`` variant and by ReLU, global average pooling, a linear
layer, cross-entropy). Every convolution pass of every step - forward, backward-data (all but
the first layer, whose input gradient is not needed) and backward-weight - is a
:class:`~maskprop.host.core_driver.CoreJob` in the core's fixed-point format (16-bit operands
with a power-of-two scale per tensor, the result requantized by the core's shift), run by a
*backend*: the golden model (:class:`GoldenConvs`) or a board through :mod:`maskprop.device`
(:class:`DeviceConvs`, the simulated board or a real one). Everything between the
convolutions - BatchNorm, ReLU, pooling, the linear layer, the loss and Adam on float
master weights - runs on the host in float64 (Adam on float master weights), the same for every backend, so a run on a
board whose every pass equals the golden model's is the golden model's run bit for bit
(``check``).

Scales: an operand's scale is chosen from its values (:func:`~maskprop.workloads.digits.
choose_frac_bits`); a result's scale must be chosen before the core computes it (it sets the
shift), so it comes from the same tensor's peak in the step before, with one bit of headroom
(the first step's from a float computation on the host); the core saturates what still does
not fit. The backward passes run in sparse mode (backward-data with the ReLU's output mask);
each pass's dense compute cycles come from the cycle model (exact against the RTL), the sparse
ones from the board's counters (or the model on the golden backend).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from maskprop.base.config import check_range
from maskprop.host.core_driver import CoreJob
from maskprop.sim.golden import conv_backward_data, conv_backward_weight, conv_forward
from maskprop.sim.layer import ConvLayer
from maskprop.workloads.digits import (BN_EPS, NETWORK, VARIANTS, choose_frac_bits, dequantize,
                                       initial_weights, load_digits_data, quantize,
                                       split_indices, upsample2x)

__all__ = ["TrainingSettings", "GoldenConvs", "DeviceConvs", "StepReport", "DigitsTrainer",
           "DEFAULT_BATCH"]

ADAM_EPS = 1e-8

#: Images a step that take each variant past 0.9 test accuracy in 200 steps at Adam's 0.01
#: (the golden model's run on the ULX3S board's memory; docs/host_link.md, "Training"). Without
#: BatchNorm the network learns far more slowly at small batches (0.81 at 32 images a step),
#: in float PyTorch too.
DEFAULT_BATCH = {"plain": 64, "batchnorm": 8}


@dataclass(frozen=True)
class TrainingSettings:
    """A training run: the variant, steps, batch, Adam's rate and decays (as the fixture's
    PyTorch training, ``maskprop.workloads.digits``), the seed of the initial weights, the split
    and the batches, and how often the test set is scored."""
    variant: str = "plain"
    steps: int = 200
    batch: int = 8
    lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    seed: int = 0
    test_fraction: float = 0.2
    eval_every: int = 50

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not "
                             f"{self.variant!r}")
        for name, low, high in (("steps", 1, 100_000), ("batch", 1, 256),
                                ("eval_every", 1, 100_000)):
            check_range(name, getattr(self, name), low, high)
        if not 0 < self.lr <= 10:
            raise ValueError(f"lr must be in (0, 10], not {self.lr!r}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), not {getattr(self, name)!r}")


class GoldenConvs:
    """Each pass by the golden model (:meth:`CoreJob.golden`, in the core's memory image and
    back, exactly what a board must return); no counters (the trainer takes the cycle
    model's)."""
    name = "golden"

    def run(self, job: CoreJob):
        return job.result(job.expected_image()), None


class DeviceConvs:
    """Each pass on a board (a :class:`~maskprop.device.Device`); ``check``: each result
    compared with the golden model's, and the compute cycles with the cycle model's."""
    name = "device"

    def __init__(self, device, *, check: bool = False):
        self.device = device
        self.check = check

    def run(self, job: CoreJob):
        done = self.device.run_job(job)
        cycles = done.counters["compute_cycles"]
        if self.check:
            expected = job.result(job.expected_image())
            if not np.array_equal(done.result, expected):
                wrong = int(np.count_nonzero(done.result != expected))
                raise AssertionError(f"{job.layer.name} {job.pass_name}: {wrong} of "
                                     f"{expected.size} results differ from the golden model")
            if not job.split and cycles != job.array_pass().model_cycles(job.dense):
                raise AssertionError(f"{job.layer.name} {job.pass_name}: {cycles} compute "
                                     f"cycles, the cycle model says "
                                     f"{job.array_pass().model_cycles(job.dense)}")
        return done.result, cycles


@dataclass
class StepReport:
    """One step: its loss, the batch's accuracy, the sparse (run) and dense (model) compute
    cycles of its passes, and the test accuracy when it was scored."""
    step: int
    loss: float
    batch_accuracy: float
    sparse_cycles: int
    dense_cycles: int
    test_accuracy: float | None = None

    @property
    def speedup(self) -> float:
        return self.dense_cycles / self.sparse_cycles if self.sparse_cycles else math.inf


@dataclass
class _Scales:
    """The peak of each result tensor in the step before: ``{(layer, tensor): peak}``."""
    peaks: dict = field(default_factory=dict)

    def frac(self, key, first) -> int:
        """The scale for tensor ``key``: its last peak, or ``first()``'s (the first step)."""
        peak = self.peaks[key] if key in self.peaks else _peak(first())
        return choose_frac_bits(np.array([2.0 * peak]))     # one bit of headroom


class DigitsTrainer:
    """The run: data, float master weights, the backend and the core's configuration.

    ``memory_bytes``: the board's memory. A pass runs on at most :attr:`pass_batch` images,
    the most for which every pass of the network fits that memory: a larger batch runs each
    pass over the batch in parts of that many images, the forward and backward-data results
    joined (each image's are its own, so the same as one pass over the batch) and the
    backward-weight results added on the host (each part's requantized by the core at its own
    scale, from the same part's peak in the step before). Backends given the same
    ``memory_bytes`` run the same parts, so their runs are comparable bit for bit. A pass the
    core cannot run is refused before the first step
    (:func:`~maskprop.host.core_driver.check_core_pass`), and so is a network whose passes do
    not fit the memory even one image at a time."""

    def __init__(self, settings: TrainingSettings, core, backend, *,
                 memory_bytes: int | None = None):
        self.settings = settings
        self.core = core
        self.backend = backend
        self.batchnorm = settings.variant == "batchnorm"
        images, labels = load_digits_data()
        rng = np.random.default_rng(settings.seed)
        train, test = split_indices(len(labels), settings.test_fraction, rng)
        self.train_x, self.train_y = upsample2x(images[train])[:, None], labels[train]
        self.test_x, self.test_y = upsample2x(images[test])[:, None], labels[test]
        self.order = np.random.default_rng(settings.seed + 1)
        self.params = initial_weights(rng, self.batchnorm)
        self.moment1 = {name: np.zeros_like(value) for name, value in self.params.items()}
        self.moment2 = {name: np.zeros_like(value) for name, value in self.params.items()}
        self.scales = _Scales()
        self.step_count = 0
        self.pass_batch = _pass_batch(core, settings.batch, memory_bytes)

    @staticmethod
    def layer(index: int, batch: int) -> ConvLayer:
        """Conv layer ``index`` of the network on ``batch`` images."""
        spec = NETWORK[index]
        return ConvLayer(batch, spec.in_channels, *DigitsTrainer._input_hw(index),
                         spec.out_channels, spec.kernel, spec.stride, spec.padding, spec.name)

    @staticmethod
    def _input_hw(index: int) -> tuple:
        size = 16
        for spec in NETWORK[:index]:
            size = (size + 2 * spec.padding - spec.kernel) // spec.stride + 1
        return size, size

    # --- one pass on the backend ----------------------------------------------------------
    def _parts(self, batch: int) -> list:
        """``(low, high)``: the images of each part a pass over ``batch`` images runs in."""
        return [(low, min(low + self.pass_batch, batch))
                for low in range(0, batch, self.pass_batch)]

    def _conv(self, index, pass_name, A, W, dZ, shifts, cycles) -> list:
        """Layer ``index``'s pass in sparse mode on the backend, a job for each of
        :meth:`_parts`, with its shift from ``shifts``; the parts' results. The compute cycles
        (the backend's, else the cycle model's) and the dense baseline's (the cycle model's)
        are added to ``cycles``."""
        results = []
        for (low, high), shift in zip(self._parts(len(A)), shifts, strict=True):
            job = CoreJob(self.layer(index, high - low), pass_name, self.core, A=A[low:high],
                          W=W, dZ=dZ[low:high], shift=shift)
            result, sparse = self.backend.run(job)
            lowered = job.array_pass()
            cycles[0] += lowered.model_cycles(False) if sparse is None else sparse
            cycles[1] += lowered.model_cycles(True)
            results.append(result)
        return results

    def step(self) -> StepReport:
        """One SGD step on the next batch."""
        settings = self.settings
        pick = self.order.choice(len(self.train_y), settings.batch, replace=False)
        x, y = self.train_x[pick], self.train_y[pick]
        cycles = [0, 0]
        # --- forward ----------------------------------------------------------------------
        a = x
        saved = []
        for index, spec in enumerate(NETWORK):
            w = self.params[f"{spec.name}.weight"]
            fa, fw = choose_frac_bits(a), choose_frac_bits(w)
            qa, qw = quantize(a, fa), quantize(w, fw)
            key = (spec.name, "Z")
            fz = self.scales.frac(key, lambda: conv_forward(a, w, spec.stride, spec.padding))
            shift, fz = _shift(fa + fw, fz)
            qz = np.concatenate(self._conv(
                index, "forward", qa, qw, np.zeros(self.layer(index, len(a)).output_shape,
                                                   np.int64),
                [shift] * len(self._parts(len(a))), cycles))
            z = dequantize(qz, fz)
            self.scales.peaks[key] = _peak(z)
            pre, bn = (_bn_forward(z, self.params[f"{spec.name}.bn.weight"],
                                   self.params[f"{spec.name}.bn.bias"])
                       if self.batchnorm else (z, None))
            out = np.maximum(pre, 0.0)
            saved.append(dict(a=a, qa=qa, fa=fa, qw=qw, fw=fw, bn=bn, out=out))
            a = out
        pooled = a.mean(axis=(2, 3))
        logits = pooled @ self.params["fc.weight"].T + self.params["fc.bias"]
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        loss = float(-np.mean(np.log(probs[np.arange(len(y)), y])))
        accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
        # --- backward ---------------------------------------------------------------------
        grads = {}
        dlogits = probs.copy()
        dlogits[np.arange(len(y)), y] -= 1.0
        dlogits /= len(y)
        grads["fc.weight"] = dlogits.T @ pooled
        grads["fc.bias"] = dlogits.sum(axis=0)
        dpooled = dlogits @ self.params["fc.weight"]
        h, w_ = a.shape[2:]
        dout = np.broadcast_to(dpooled[:, :, None, None] / (h * w_), a.shape).copy()
        for index in reversed(range(len(NETWORK))):
            spec, s = NETWORK[index], saved[index]
            dpre = dout * (s["out"] > 0)
            if self.batchnorm:
                dz, dgamma, dbeta = _bn_backward(dpre, s["bn"])
                grads[f"{spec.name}.bn.weight"], grads[f"{spec.name}.bn.bias"] = dgamma, dbeta
            else:
                dz = dpre
            fdz = choose_frac_bits(dz)
            qdz = quantize(dz, fdz)
            # Each part's weight gradient at its own scale (a part's share of the sum may be
            # far below the sum's peak), added in float.
            fdws, shifts = [], []
            for part, (low, high) in enumerate(self._parts(len(dz))):
                fdw = self.scales.frac((spec.name, "dW", part), lambda: conv_backward_weight(
                    dz[low:high], s["a"][low:high], spec.kernel, spec.stride, spec.padding))
                shift, fdw = _shift(s["fa"] + fdz, fdw)
                fdws.append(fdw)
                shifts.append(shift)
            parts = [dequantize(q, fdw) for q, fdw in zip(self._conv(
                index, "backward_weight", s["qa"], s["qw"], qdz, shifts, cycles), fdws)]
            for part, dw in enumerate(parts):
                self.scales.peaks[(spec.name, "dW", part)] = _peak(dw)
            grads[f"{spec.name}.weight"] = sum(parts[1:], parts[0])
            if index == 0:
                break
            key = (spec.name, "dA")
            fda = self.scales.frac(key, lambda: conv_backward_data(
                dz, self.params[f"{spec.name}.weight"], s["a"].shape[2:], spec.stride,
                spec.padding, omask=s["a"]))
            shift, fda = _shift(fdz + s["fw"], fda)
            qda = np.concatenate(self._conv(index, "backward_data", s["qa"], s["qw"], qdz,
                                            [shift] * len(self._parts(len(dz))), cycles))
            dout = dequantize(qda, fda)
            self.scales.peaks[key] = _peak(dout)
        # --- update (Adam) -----------------------------------------------------------------
        self.step_count += 1
        beta1, beta2 = settings.beta1, settings.beta2
        for name, grad in grads.items():
            self.moment1[name] = beta1 * self.moment1[name] + (1 - beta1) * grad
            self.moment2[name] = beta2 * self.moment2[name] + (1 - beta2) * grad * grad
            unbiased1 = self.moment1[name] / (1 - beta1 ** self.step_count)
            unbiased2 = self.moment2[name] / (1 - beta2 ** self.step_count)
            self.params[name] = self.params[name] - settings.lr * unbiased1 / (
                np.sqrt(unbiased2) + ADAM_EPS)
        report = StepReport(self.step_count, loss, accuracy, cycles[0], cycles[1])
        if self.step_count % settings.eval_every == 0 or self.step_count == settings.steps:
            report.test_accuracy = self.test_accuracy()
        return report

    def test_accuracy(self) -> float:
        """The test set's accuracy with the current weights, in float on the host (the
        network as trained; BatchNorm with the test batch's own statistics)."""
        a = self.test_x
        for spec in NETWORK:
            z = conv_forward(a, self.params[f"{spec.name}.weight"], spec.stride, spec.padding)
            if self.batchnorm:
                z, _ = _bn_forward(z, self.params[f"{spec.name}.bn.weight"],
                                   self.params[f"{spec.name}.bn.bias"])
            a = np.maximum(z, 0.0)
        logits = a.mean(axis=(2, 3)) @ self.params["fc.weight"].T + self.params["fc.bias"]
        return float(np.mean(np.argmax(logits, axis=1) == self.test_y))


def _pass_batch(core, batch: int, memory_bytes: int | None) -> int:
    """The most images, at most ``batch``, on which every pass of the network runs on ``core``
    within ``memory_bytes`` (``batch`` without a limit); ``ValueError`` if a pass does not fit
    even one image at a time, or the core cannot run it
    (:func:`~maskprop.host.core_driver.check_core_pass`, in :class:`CoreJob`)."""
    def needs(images: int) -> int:
        most = 0
        for index in range(len(NETWORK)):
            layer = DigitsTrainer.layer(index, images)
            for pass_name in ("forward", "backward_data", "backward_weight"):
                job = CoreJob(layer, pass_name, core, A=np.zeros(layer.input_shape, np.int64),
                              W=np.zeros(layer.weight_shape, np.int64),
                              dZ=np.zeros(layer.output_shape, np.int64))
                most = max(most, job.memory_bytes)
        return most

    for images in range(batch, 0, -1):
        needed = needs(images)
        if memory_bytes is None or needed <= memory_bytes:
            if batch % images:          # the last part's passes are smaller: runnable too
                needs(batch % images)
            return images
    raise ValueError(f"the network's passes need {needed:,} bytes of memory for one image; "
                     f"the board has {memory_bytes:,}")


def _peak(x) -> float:
    return float(np.max(np.abs(x))) if np.size(x) else 0.0


def _shift(product_frac: int, result_frac: int) -> tuple:
    """The core's shift from the product's scale to the result's, and the result's scale it
    gives: a shift below 0 is not possible (the result keeps the product's scale), nor above
    63."""
    shift = min(max(product_frac - result_frac, 0), 63)
    return shift, product_frac - shift


def _bn_forward(z, gamma, beta):
    mean = z.mean(axis=(0, 2, 3), keepdims=True)
    var = z.var(axis=(0, 2, 3), keepdims=True)
    inv = 1.0 / np.sqrt(var + BN_EPS)
    norm = (z - mean) * inv
    return gamma[None, :, None, None] * norm + beta[None, :, None, None], (norm, inv, gamma)


def _bn_backward(dout, cache):
    norm, inv, gamma = cache
    count = dout.shape[0] * dout.shape[2] * dout.shape[3]
    dgamma = (dout * norm).sum(axis=(0, 2, 3))
    dbeta = dout.sum(axis=(0, 2, 3))
    dnorm = dout * gamma[None, :, None, None]
    dz = inv / count * (count * dnorm - dnorm.sum(axis=(0, 2, 3), keepdims=True)
                        - norm * (dnorm * norm).sum(axis=(0, 2, 3), keepdims=True))
    return dz, dgamma, dbeta
