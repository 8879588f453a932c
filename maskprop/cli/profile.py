"""``maskprop profile``: measure a sparsity profile of your own PyTorch model on one batch.

    maskprop profile --model FILE.py[:FUNC] --batch FILE.npz -o PROFILE.json
                     [--network NAME] [--description TEXT]

``FILE.py`` defines ``FUNC`` (default ``model``), called without arguments, returning a
``torch.nn.Module`` in train mode (BatchNorm on batch statistics, as in training). ``FILE.npz``
holds ``inputs`` (the batch, e.g. ``N x 3 x 224 x 224``) and optionally ``targets`` (class
indices; the loss is then the cross-entropy, else the sum of the outputs). One forward and one
backward pass run with hooks on every ``torch.nn.Conv2d``
(:func:`maskprop.workloads.profiles.measure_profile`); the per-layer densities of the conv inputs
(``A``), of the ReLU outputs (``Y``, where the ReLU is an ``nn.ReLU`` module) and of the output
gradients (``dZ``) are printed and written as a ``maskprop-profile/1`` JSON file. They are the
densities of that batch at that point of training.

Bad input raises ``ValueError`` with a one-line message naming the option, before the model runs
and before anything is written: an unreadable batch file, an unusable output path, and a model
that fails at import, construction or in its forward or backward pass (any exception, or
``sys.exit``) are all bad input. A missing PyTorch raises ``ImportError`` saying how to install
it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from maskprop.workloads.user_model import (load_batch, load_model, run_user_code,
                                           split_model_spec)

__all__ = ["add_parser", "run", "format_table"]

TORCH_MISSING = "maskprop profile needs PyTorch: pip install -e '.[torch]'"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``profile`` command to an ``argparse`` subparsers object; returns its parser."""
    parser = subparsers.add_parser(
        "profile", help="measure per-layer activation and gradient densities of a PyTorch "
                        "model on one batch (forward + backward hooks); write a profile JSON",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, metavar="FILE.py[:FUNC]",
                        help="Python file whose FUNC (default: model) returns a "
                             "torch.nn.Module in train mode")
    parser.add_argument("--batch", required=True, type=Path, metavar="FILE.npz",
                        help="arrays 'inputs' and optionally 'targets' (class indices)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="PROFILE.json")
    parser.add_argument("--network", default=None, metavar="NAME",
                        help="network name recorded in the profile (a key of "
                             "maskprop.workloads.networks.NETWORKS when the layer names match that "
                             "network; default: the model file's name)")
    parser.add_argument("--description", default=None, metavar="TEXT",
                        help="how the model and batch were obtained (e.g. 'torchvision "
                             "resnet50, ImageNet weights, 32 training images')")
    return parser


def format_table(profile) -> str:
    """Per-layer table: name, A, Y and dZ densities (``-`` where not measured)."""
    names = list(profile.layers)
    width = max([len("layer")] + [len(n) for n in names])
    lines = [f"{'layer':<{width}}  {'A':>7}  {'Y':>7}  {'dZ':>7}"]
    for name in names:
        entry = profile.layers[name]
        cells = [f"{entry[k]:7.4f}" if k in entry else f"{'-':>7}" for k in ("A", "Y", "dZ")]
        lines.append(f"{name:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def _check_text(option: str, value) -> None:
    if value is not None and not value.strip():
        raise ValueError(f"{option} must be non-empty text, not {value!r}")


def run(args) -> int:
    """Run ``maskprop profile`` for parsed ``args``; returns the exit status (0).

    Everything the user gave is checked before the model runs: the output path (nothing is
    written or created before the profile is complete, and then atomically), the texts, the
    batch file, the model file.
    """
    from maskprop.cli.main import check_output_file, write_outputs

    check_output_file(args.output, "-o")
    _check_text("--network", args.network)
    _check_text("--description", args.description)
    try:
        import torch
    except ImportError as exc:
        raise ImportError(TORCH_MISSING) from exc
    from maskprop.workloads.profiles import measure_profile

    inputs, targets = load_batch(args.batch)
    model = load_model(args.model)
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"--model {args.model} returned {type(model).__name__}, not a "
                         f"torch.nn.Module")
    if not model.training:
        raise ValueError(f"--model {args.model} returned a model in eval mode; return it in "
                         f"train mode (model.train()) to measure training densities")
    path, func = split_model_spec(args.model)
    network = args.network or path.stem
    description = args.description or (f"PyTorch model {path.name}:{func}() on the batch "
                                        f"{Path(args.batch).name}")
    profile = run_user_code(
        f"running --model {args.model} on --batch {args.batch} (inputs {tuple(inputs.shape)})",
        lambda: measure_profile(model, torch.from_numpy(np.ascontiguousarray(inputs)),
                                None if targets is None else torch.from_numpy(targets),
                                network_name=network, description=description))
    print(f"{network}: densities (fraction nonzero) on a batch of {profile.batch}, one forward "
          f"+ backward pass")
    print(format_table(profile))
    written, = write_outputs({Path(args.output): profile.to_json()}, "-o")
    print(f"wrote {written}")
    return 0
