"""Plots of network evaluations (matplotlib), rendered as PNG bytes for the caller to write."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from maskprop.evaluation.evaluate import SEED_BACKWARD, SEED_TRAINING  # noqa: E402
from maskprop.sim.layer import PASSES, pass_label  # noqa: E402

__all__ = ["layers_png", "summary_png"]

PASS_LABELS = {p: pass_label(p) for p in PASSES}


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    return buffer.getvalue()


def _ticks(xs, ideals):
    """The ideal ticks that exist: a pass with no work has none (its ideal is ``None``)."""
    kept = [(x, ideal) for x, ideal in zip(xs, ideals) if ideal is not None]
    return [x for x, _ in kept], [ideal for _, ideal in kept]


def layers_png(evaluation, scenario: str) -> bytes:
    """Per-layer speedup over dense mode, one bar per pass, and each layer's ideal as a tick."""
    layers = list(dict.fromkeys(r.layer for r in evaluation.rows if r.scenario == scenario))
    by_key = {(r.layer, r.pass_name): r for r in evaluation.rows if r.scenario == scenario}
    width = 0.27
    figure, axis = plt.subplots(figsize=(max(8, 0.32 * len(layers) + 3), 4.8))
    for offset, pass_name in enumerate(PASSES):
        xs, speedups, ideals = [], [], []
        for index, layer in enumerate(layers):
            row = by_key.get((layer, pass_name))
            if row is not None:
                xs.append(index + (offset - 1) * width)
                speedups.append(row.speedup)
                ideals.append(row.ideal)
        bars = axis.bar(xs, speedups, width, label=PASS_LABELS[pass_name])
        axis.scatter(*_ticks(xs, ideals), marker="_", s=60, color=bars.patches[0].get_facecolor()
                     if bars.patches else None, zorder=3)
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_xticks(range(len(layers)), layers, rotation=90, fontsize=7)
    axis.set_ylabel("speedup over dense mode (bars); ideal (ticks)")
    axis.set_title(f"{evaluation.network}, {scenario}: per-layer speedup on the tile array "
                   f"({evaluation.profile})", fontsize=10)
    axis.legend()
    figure.tight_layout()
    return _png(figure)


def summary_png(evaluations) -> bytes:
    """Backward and training-step speedup of each network in both BatchNorm scenarios, with the
    ideal as a tick and the seed paper's reported ranges shaded."""
    names = [e.network for e in evaluations]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for axis, which, band, title in (
            (axes[0], "backward", SEED_BACKWARD, "backward pass (backward-data + -weight)"),
            (axes[1], "training step", SEED_TRAINING, "training step (forward + backward)")):
        for offset, scenario in enumerate(("batchnorm", "no-batchnorm")):
            totals = [e.total(scenario, which) for e in evaluations]
            xs = [i + (offset - 0.5) * 0.38 for i in range(len(names))]
            axis.bar(xs, [t.speedup for t in totals], 0.38,
                     label=f"{scenario}: achieved", alpha=0.9)
            axis.scatter(*_ticks(xs, [t.ideal for t in totals]), marker="_", s=120, color="black",
                         zorder=3, label="ideal" if offset == 0 else None)
        axis.axhspan(*band, color="tab:green", alpha=0.15,
                     label=f"seed paper's range {band[0]}-{band[1]}x")
        axis.axhline(1.0, color="black", linewidth=0.8)
        axis.set_xticks(range(len(names)), names, rotation=20)
        axis.set_title(title, fontsize=10)
    axes[0].set_ylabel("speedup over the dense baseline (same RTL)")
    for axis in axes:
        axis.legend(fontsize=8, loc="upper right")
    figure.suptitle(f"maskprop tile array, cycle model ({evaluations[0].profile})", fontsize=10)
    figure.tight_layout()
    return _png(figure)
