"""Tensors for one conv layer's pass when no trained network supplies them: random fixed-point
values on nonzero patterns that are either i.i.d. at a density or read from a masks file."""

from pathlib import Path

import numpy as np

from maskprop.base.config import Config
from maskprop.sim.layer import ConvLayer

__all__ = ["DEFAULT_DENSITY", "read_layer_masks", "synthetic_tensors"]

#: Nonzero fraction of ``A`` and ``dZ`` when neither a density nor masks are given.
DEFAULT_DENSITY = 0.5


def read_layer_masks(path: Path, layer: ConvLayer, *, where: str = ""):
    """``(A != 0, dZ != 0 or None)`` of ``layer`` from the ``.npz`` file ``path`` (arrays ``A``
    and, optionally, ``dZ``; boolean or numeric). Shapes and dtypes are checked from the
    archive's headers before any array is read; ``ValueError`` messages start with ``where``
    (default: the path)."""
    from maskprop.workloads.profiles import check_mask_array, npz_headers, read_npz

    where = where or str(path)
    headers = npz_headers(path, where)
    if "A" not in headers:
        raise ValueError(f"{where}: no array 'A' (it holds "
                         f"{', '.join(map(repr, headers)) or 'no arrays'})")
    names = [name for name in ("A", "dZ") if name in headers]
    for name in names:
        shape, dtype = headers[name]
        wanted = tuple(layer.input_shape if name == "A" else layer.output_shape)
        if shape != wanted:
            raise ValueError(f"{where}: {name} has shape {shape}, the layer needs {wanted}")
        check_mask_array(f"{where}: {name}", dtype)
    arrays = read_npz(path, where, names)
    for name, array in arrays.items():
        check_mask_array(f"{where}: {name}", array.dtype, array)
    dz = arrays.get("dZ")
    return np.asarray(arrays["A"]) != 0, None if dz is None else np.asarray(dz) != 0


def synthetic_tensors(layer: ConvLayer, config: Config, seed: int, *, density: float | None = None,
                      masks=None, dense_dz: bool = False) -> dict:
    """``{"A", "W", "dZ"}``: random values of ``config``'s data range, seeded by ``seed``.

    The nonzero patterns of ``A`` and ``dZ`` are ``masks`` (``(A != 0, dZ != 0 or None)``, as
    :func:`read_layer_masks` returns them; a missing ``dZ`` is dense) or, without masks, i.i.d.
    at ``density`` (default :data:`DEFAULT_DENSITY`). ``dense_dz``: ``dZ`` dense whatever the
    patterns say (a BatchNorm between the conv and its ReLU). Every value on a pattern's
    nonzero is nonzero, and ``A`` is positive (a ReLU's output); ``W`` is dense.
    """
    if masks is not None and density is not None:
        raise ValueError("give masks or a density, not both")
    if density is not None and not 0.0 <= density <= 1.0:       # NaN fails this too
        raise ValueError(f"density must be in [0, 1], not {density}")
    rng = np.random.default_rng(seed)
    if masks is not None:
        a_nonzero, dz_nonzero = masks
        if dz_nonzero is None:
            dz_nonzero = np.ones(layer.output_shape, dtype=bool)
    else:
        density = DEFAULT_DENSITY if density is None else density
        a_nonzero = rng.random(layer.input_shape) < density
        dz_nonzero = rng.random(layer.output_shape) < density
    if dense_dz:
        dz_nonzero = np.ones(layer.output_shape, dtype=bool)

    def values(shape, low):
        return rng.integers(low, config.data_max + 1, size=shape)
    A = np.where(a_nonzero, np.maximum(1, values(layer.input_shape, 0)), 0)
    dZ = np.where(dz_nonzero, values(layer.output_shape, config.data_min), 0)
    dZ = np.where(dz_nonzero & (dZ == 0), 1, dZ)
    W = values(layer.weight_shape, config.data_min)
    return dict(A=A, W=W, dZ=dZ)
