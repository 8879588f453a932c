"""``maskprop profile``: measure a sparsity profile of your own PyTorch model on one batch.

    maskprop profile --model FILE.py[:FUNC] --batch FILE.npz -o PROFILE.json
                     [--network NAME] [--description TEXT]

``FILE.py`` defines ``FUNC`` (default ``model``), called without arguments, returning a
``torch.nn.Module`` in train mode (BatchNorm on batch statistics, as in training). ``FILE.npz``
holds ``inputs`` (the batch, e.g. ``N x 3 x 224 x 224``) and optionally ``targets`` (class
indices; the loss is then the cross-entropy, else the sum of the outputs). One forward and one
backward pass run with hooks on every ``torch.nn.Conv2d``
(:func:`maskprop.sim.profiles.measure_profile`); the per-layer densities of the conv inputs
(``A``), of the ReLU outputs (``Y``, where the ReLU is an ``nn.ReLU`` module) and of the output
gradients (``dZ``) are printed and written as a ``maskprop-profile/1`` JSON file. They are the
densities of that batch at that point of training.

Bad input raises ``ValueError`` with a one-line message; a missing PyTorch raises
``ImportError`` saying how to install it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

__all__ = ["add_parser", "run", "load_model", "load_batch", "format_table"]

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
                             "maskprop.sim.networks.NETWORKS when the layer names match that "
                             "network; default: the model file's name)")
    parser.add_argument("--description", default=None, metavar="TEXT",
                        help="how the model and batch were obtained (e.g. 'torchvision "
                             "resnet50, ImageNet weights, 32 training images')")
    return parser


def _split_model_spec(spec: str) -> tuple[Path, str]:
    path, sep, func = str(spec).rpartition(":")
    # "C:\models\net.py" or a spec without ":FUNC": the whole text is the file.
    if not sep or not path or not func.isidentifier():
        return Path(spec), "model"
    return Path(path), func


def load_model(spec: str):
    """Import ``FILE.py`` and call its ``FUNC`` (default ``model``); returns the module."""
    path, func = _split_model_spec(spec)
    if path.suffix != ".py":
        raise ValueError(f"--model must be FILE.py[:FUNC], not {spec!r}")
    if not path.is_file():
        raise ValueError(f"--model: {path} not found")
    name = f"_maskprop_profile_model_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    factory = getattr(module, func, None)
    if not callable(factory):
        raise ValueError(f"--model: {path} defines no function {func!r}")
    return factory()


def load_batch(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(inputs, targets or None)`` from an ``.npz`` file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "inputs" not in npz.files:
                raise ValueError(f"--batch {path}: no array 'inputs' (it has "
                                 f"{', '.join(npz.files) or 'none'})")
            inputs = np.asarray(npz["inputs"])
            targets = np.asarray(npz["targets"]) if "targets" in npz.files else None
    except (OSError, EOFError) as error:
        raise ValueError(f"--batch {path}: cannot read it as .npz ({error})") from None
    if not (np.issubdtype(inputs.dtype, np.number) and inputs.ndim >= 2 and inputs.shape[0]):
        raise ValueError(f"--batch {path}: 'inputs' must be a numeric array with a batch "
                         f"dimension, not {inputs.dtype} of shape {inputs.shape}")
    if targets is not None:
        if targets.shape[:1] != inputs.shape[:1]:
            raise ValueError(f"--batch {path}: 'targets' has {targets.shape[:1] or 'no'} "
                             f"entries, 'inputs' {inputs.shape[0]}")
        if np.issubdtype(targets.dtype, np.integer):
            targets = targets.astype(np.int64)
        elif np.issubdtype(targets.dtype, np.floating):
            targets = targets.astype(np.float32)      # class probabilities
        else:
            raise ValueError(f"--batch {path}: 'targets' must be class indices (integers) or "
                             f"probabilities, not {targets.dtype}")
    return inputs.astype(np.float32, copy=False), targets


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


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def run(args) -> int:
    """Run ``maskprop profile`` for parsed ``args``; returns the exit status (0)."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(TORCH_MISSING) from exc
    from maskprop.sim.profiles import measure_profile

    inputs, targets = load_batch(args.batch)
    model = load_model(args.model)
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"--model {args.model} returned {type(model).__name__}, not a "
                         f"torch.nn.Module")
    if not model.training:
        raise ValueError(f"--model {args.model} returned a model in eval mode; return it in "
                         f"train mode (model.train()) to measure training densities")
    path, func = _split_model_spec(args.model)
    network = args.network or path.stem
    description = args.description or (f"PyTorch model {path.name}:{func}() on the batch "
                                        f"{Path(args.batch).name}")
    try:
        profile = measure_profile(model, torch.from_numpy(np.ascontiguousarray(inputs)),
                                  None if targets is None else torch.from_numpy(targets),
                                  network_name=network, description=description)
    except RuntimeError as error:                 # shape or dtype mismatch inside the model
        raise ValueError(f"running the model on --batch {args.batch} (inputs "
                         f"{tuple(inputs.shape)}) failed: {_one_line(error)}") from None
    print(f"{network}: densities (fraction nonzero) on a batch of {profile.batch}, one forward "
          f"+ backward pass")
    print(format_table(profile))
    written = profile.save(args.output)
    print(f"wrote {written}")
    return 0
