"""A user's own PyTorch model and batch, for measuring a sparsity profile (``maskprop profile``).

:func:`load_model` imports a ``FILE.py[:FUNC]`` and calls ``FUNC``; :func:`load_batch` reads an
``.npz`` batch; :func:`run_user_code` runs the user's code so that whatever it raises (even
``sys.exit``) becomes a one-line ``ValueError``. Messages name the command-line options
(``--model``, ``--batch``) since that is where the user gave them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

__all__ = ["split_model_spec", "run_user_code", "load_model", "load_batch", "MAX_BATCH_ELEMENTS"]


def split_model_spec(spec: str) -> tuple[Path, str]:
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


def run_user_code(what: str, call):
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
    path, func = split_model_spec(spec)
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
        run_user_code(f"--model {path}: importing it",
                       lambda: module_spec.loader.exec_module(module))
    finally:
        sys.modules.pop(name, None)
    factory = getattr(module, func, None)
    if not callable(factory):
        raise ValueError(f"--model: {path} defines no function {func!r}")
    return run_user_code(f"--model {spec}: calling {func}()", factory)


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
