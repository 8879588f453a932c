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
                             "maskprop.workloads.networks.NETWORKS when the layer names match that "
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


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _failure(error: BaseException) -> str:
    """What the user's code raised, in one line: ``sys.exit(3)`` or ``TypeError: ...``."""
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    return f"{type(error).__name__}: {_one_line(error)}"


def _run_user_code(what: str, call):
    """``call()``, the user's model code; anything it raises, ``sys.exit`` (``SystemExit``) and
    other ``BaseException`` subclasses included, is an error of the model, reported as a
    ``ValueError`` saying that ``what`` failed and how. Only Ctrl-C (``KeyboardInterrupt``) is
    the user's own wish, and propagates."""
    try:
        return call()
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        raise ValueError(f"{what} failed: {_failure(error)}") from None


def load_model(spec: str):
    """Import ``FILE.py`` and call its ``FUNC`` (default ``model``); returns the module."""
    path, func = _split_model_spec(spec)
    if path.suffix != ".py":
        raise ValueError(f"--model must be FILE.py[:FUNC], not {spec!r}")
    if path.is_dir():
        raise ValueError(f"--model {path}: is a directory, not a Python file")
    if not path.is_file():
        raise ValueError(f"--model: {path} not found")
    name = f"_maskprop_profile_model_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        _run_user_code(f"--model {path}: importing it",
                       lambda: module_spec.loader.exec_module(module))
    finally:
        sys.modules.pop(name, None)
    factory = getattr(module, func, None)
    if not callable(factory):
        raise ValueError(f"--model: {path} defines no function {func!r}")
    return _run_user_code(f"--model {spec}: calling {func}()", factory)


#: Most elements of ``inputs`` ``maskprop profile`` reads (float32: 512 MB); checked from the
#: file's header, before the data is read, since a compressed file can hold far more.
MAX_BATCH_ELEMENTS = 1 << 27
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def load_batch(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(inputs, targets or None)`` from an ``.npz`` file; ``ValueError`` naming ``--batch``
    and the problem for anything else (headers are checked before any data is read)."""
    from maskprop.workloads.profiles import npz_headers, read_npz

    where = f"--batch {path}"
    headers = npz_headers(path, where)
    if "inputs" not in headers:
        raise ValueError(f"{where}: no array 'inputs' (it has "
                         f"{', '.join(headers) or 'none'})")
    shape, dtype = headers["inputs"]
    # Booleans, integers and reals become float32; complex numbers, text and objects do not.
    if dtype.kind not in "biuf" or len(shape) < 2 or not shape[0]:
        raise ValueError(f"{where}: 'inputs' must be a numeric array with a batch "
                         f"dimension, not {dtype} of shape {shape}")
    elements = int(np.prod(shape, dtype=object))
    if elements > MAX_BATCH_ELEMENTS:
        raise ValueError(f"{where}: 'inputs' has {elements:,} elements; maskprop profile takes "
                         f"at most {MAX_BATCH_ELEMENTS:,} (use fewer or smaller images)")
    names = ["inputs"]
    if "targets" in headers:
        t_shape, t_dtype = headers["targets"]
        if t_shape[:1] != shape[:1]:
            raise ValueError(f"{where}: 'targets' has {t_shape[:1] or 'no'} entries, 'inputs' "
                             f"{shape[0]}")
        if t_dtype.kind not in "iuf":
            raise ValueError(f"{where}: 'targets' must be class indices (integers) or "
                             f"probabilities, not {t_dtype}")
        if int(np.prod(t_shape, dtype=object)) > MAX_BATCH_ELEMENTS:
            raise ValueError(f"{where}: 'targets' has more than {MAX_BATCH_ELEMENTS:,} elements")
        names.append("targets")
    arrays = read_npz(path, where, names)
    inputs, targets = arrays["inputs"], arrays.get("targets")
    if inputs.dtype.kind == "f":
        if not np.isfinite(inputs).all():
            raise ValueError(f"{where}: 'inputs' holds NaN or infinity")
        if inputs.size and np.abs(inputs).max() > _FLOAT32_MAX:
            raise ValueError(f"{where}: 'inputs' holds values beyond float32's range")
    if targets is not None:
        if targets.dtype.kind == "f":
            if not np.isfinite(targets).all():
                raise ValueError(f"{where}: 'targets' holds NaN or infinity")
            targets = targets.astype(np.float32)      # class probabilities
        else:
            if targets.size and (targets.min() < 0 or targets.max() > np.iinfo(np.int64).max):
                raise ValueError(f"{where}: 'targets' holds class indices below 0 or beyond "
                                 f"int64")
            targets = targets.astype(np.int64)
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
    path, func = _split_model_spec(args.model)
    network = args.network or path.stem
    description = args.description or (f"PyTorch model {path.name}:{func}() on the batch "
                                        f"{Path(args.batch).name}")
    profile = _run_user_code(
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
