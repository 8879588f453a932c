"""Sparsity profiles: how dense each conv layer's operands are, and where the numbers come from.

A profile says, per conv layer of a network, what fraction of the layer's input activation ``A``
is nonzero (the forward and backward-weight operand and the backward-data output mask,
docs/architecture.md section 1), optionally the density of its output after the ReLU (``Y``) and of
the gradient at its conv output (``dZ``), and always how those numbers were obtained. Four
sources produce the same format:

=============== ============================================================================
``measured``    :func:`measure_profile` (and ``maskprop profile``): PyTorch hooks on a user's
                model, one forward + backward of one batch. The densities are those *of that
                batch at that point of training*: they change as the network trains.
``digits``      :func:`digits_profile`: the committed digits-CNN fixture (real ReLU masks of a
                small CNN trained on scikit-learn's digits, :mod:`maskprop.workloads.digits`).
``literature``  :func:`literature_profile`: densities published for a network, each with its
                citation (JSON files shipped in ``maskprop/workloads/data/profiles/``).
``synthetic``   :func:`synthetic_profile`: one density chosen by the user, no measurement.
=============== ============================================================================

JSON format ``maskprop-profile/1``
----------------------------------

::

    {
      "format": "maskprop-profile/1",
      "network": "resnet50",             # a key of maskprop.workloads.networks.NETWORKS, or "digits"
                                         # (a measured profile of a custom model: its own name)
      "source": "measured",              # "measured" | "literature" | "synthetic" | "digits"
      "description": "...",              # required, free text: how the numbers/masks were made
      "batch": 32,                       # images the numbers were measured on; null if unknown
      "layers": {                        # layer name (as in maskprop.workloads.networks) -> entry
        "conv1":          {"A": 1.0, "source": "network input (image), dense"},
        "layer1.0.conv1": {"A": 0.52, "Y": 0.47, "dZ": 1.0}
      },
      "default": {"A": 0.56, "source": "..."},   # optional: for layers not listed in "layers"
      "masks": "resnet50_masks.npz",     # optional: .npz next to the JSON (relative path)
      "mask_model": "clustered"          # optional: "iid" | "clustered", to synthesise masks
    }

Entry keys (every one optional except as noted; no other keys are accepted):

- ``"A"``: density (fraction of nonzeros, in ``[0, 1]``) of the layer's input activation;
- ``"Y"``: density of the layer's output after its ReLU (after BatchNorm and ReLU where a
  BatchNorm sits between); usually the next layer's ``A`` before any max-pool;
- ``"dZ"``: measured density of the gradient of the loss at the conv output (dense when a
  BatchNorm sits between conv and ReLU);
- ``"source"``: text citing where the numbers come from; required in every entry (and in
  ``default``) of a ``literature`` profile.

:meth:`Profile.density` looks a key up in the layer's entry, then in the masks file, then in
``default``, and raises a ``ValueError`` naming the layer when none has it. The masks file holds
boolean arrays named ``"<layer>/A"`` (shape of the layer's input, NCHW) and ``"<layer>/dZ"``
(shape of its output); when present they are used instead of densities (:meth:`Profile.mask`);
otherwise :meth:`Profile.mask` synthesises a mask of the profile's density with
:func:`synthesize_mask` and ``mask_model`` (default ``"iid"``).

NumPy only at import time; :func:`measure_profile` needs PyTorch (``pip install -e '.[torch]'``).
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from maskprop.workloads.networks import NETWORK_NAMES

__all__ = [
    "FORMAT", "SOURCES", "ENTRY_KEYS", "DENSITY_KEYS", "MASK_KEYS", "MASK_MODELS",
    "LITERATURE_DIR",
    "Profile", "load_profile", "save_masks", "synthesize_mask", "npz_headers", "read_npz",
    "MASK_DTYPE_KINDS", "check_mask_array",
    "measure_profile", "digits_profile", "digits_density_history", "DigitsDensityHistory",
    "literature_profile", "synthetic_profile",
]

#: The ``format`` value of every profile JSON file this module reads and writes.
FORMAT = "maskprop-profile/1"
#: Kinds of profile (the ``source`` field).
SOURCES = ("measured", "literature", "synthetic", "digits")
#: Density keys of a layer entry.
DENSITY_KEYS = ("A", "Y", "dZ")
#: All keys a layer entry (or ``default``) may have.
ENTRY_KEYS = DENSITY_KEYS + ("source",)
#: Keys for which a masks file may hold arrays.
MASK_KEYS = ("A", "dZ")
#: How masks are synthesised from densities.
MASK_MODELS = ("iid", "clustered")
#: Default correlation length (pixels) of :func:`synthesize_mask`'s ``"clustered"`` model.
CORRELATION_LENGTH = 2.0

_TOP_KEYS = ("format", "network", "source", "description", "batch", "layers", "default",
             "masks", "mask_model")

#: Where the literature profiles are shipped (package data of ``maskprop.workloads``): one
#: ``<network>_literature.json`` for every network of
#: :data:`maskprop.workloads.networks.NETWORK_NAMES`.
LITERATURE_DIR = Path(resources.files("maskprop.workloads") / "data" / "profiles")

_TORCH_MISSING = "measuring a profile needs PyTorch: pip install -e '.[torch]'"


# --- validation -------------------------------------------------------------------------------

def _check_density(where: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where} must be a number in [0, 1], not {value!r}")
    try:
        value = float(value)
    except OverflowError:                   # an integer beyond any float, e.g. from JSON
        raise ValueError(f"{where} must be a density (fraction nonzero) in [0, 1], not an "
                         f"integer of {int(value).bit_length()} bits") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{where} must be a density (fraction nonzero) in [0, 1], not {value}")
    return value


def _check_entry(where: str, entry, *, need_source: bool) -> dict:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be an object with keys from {', '.join(ENTRY_KEYS)}, "
                         f"not {entry!r}")
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(ENTRY_KEYS)}")
    out = {}
    for key in DENSITY_KEYS:
        if key in entry:
            out[key] = _check_density(f"{where} {key!r}", entry[key])
    if "source" in entry:
        if not isinstance(entry["source"], str) or not entry["source"].strip():
            raise ValueError(f"{where} 'source' must be non-empty text, not {entry['source']!r}")
        out["source"] = entry["source"]
    elif need_source:
        raise ValueError(f"{where} needs a 'source' citing where its numbers come from "
                         f"(required in a literature profile)")
    return out


def _check_mask_model(model) -> str:
    if model not in MASK_MODELS:
        raise ValueError(f"mask model must be one of {', '.join(MASK_MODELS)}, not {model!r}")
    return model


# --- .npz files -------------------------------------------------------------------------------

#: NumPy dtype kinds a mask may have (boolean, signed and unsigned integer, floating point): its
#: nonzeros are the mask. Text, bytes, objects, dates and records have no meaningful zero.
MASK_DTYPE_KINDS = "biuf"

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"
# What a damaged or truncated archive raises while its members are read: zip structure, deflate
# stream, short reads, and NumPy's header parser (ValueError); encrypted or exotic members raise
# RuntimeError / NotImplementedError.
_NPZ_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
                    NotImplementedError)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def npz_headers(path, where: str) -> dict:
    """``{name: (shape, dtype)}`` of every array in the ``numpy.savez`` archive ``path``, from
    the arrays' headers alone: no array data is read, so a caller can refuse a wrong shape or
    dtype before allocating anything.

    Anything else raises ``ValueError`` starting with ``where`` (e.g. ``"--masks m.npz"``) and
    saying, in the user's terms, what the file is instead: missing, a directory, empty, a single
    ``.npy`` array, not an archive at all, or a truncated or damaged archive.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise ValueError(f"{where}: is a directory, not an .npz file")
        with open(path, "rb") as file:
            head = file.read(len(_NPY_MAGIC))
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file") from None
    except NotADirectoryError:
        raise ValueError(f"{where}: no such file (a directory in its path is a file)") from None
    except OSError as error:
        raise ValueError(f"{where}: cannot read it ({error.strerror or error})") from None
    if not head:
        raise ValueError(f"{where}: is empty, not an .npz file (numpy.savez archive)")
    if head == _NPY_MAGIC:
        raise ValueError(f"{where}: is a single .npy array, not an .npz archive; write the "
                         f"arrays by name with numpy.savez(FILE, NAME=array, ...)")
    if not head.startswith(_ZIP_MAGIC):
        raise ValueError(f"{where}: is not an .npz file (numpy.savez archive)")
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    # Format 3.0 differs from 2.0 only in the header's text encoding.
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(member)
                headers[info.filename[:-len(".npy")]] = (tuple(shape), dtype)
    except _NPZ_READ_ERRORS as error:
        raise ValueError(f"{where}: is a truncated or damaged .npz archive "
                         f"({_first_line(error)})") from None
    return headers


def read_npz(path, where: str, names) -> dict:
    """``{name: array}`` of ``names`` from an archive that :func:`npz_headers` accepted (and
    whose shapes and dtypes the caller checked there); ``ValueError`` starting with ``where``
    when the data turns out truncated or damaged."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: np.asarray(npz[name]) for name in names}
    except _NPZ_READ_ERRORS as error:
        raise ValueError(f"{where}: is a truncated or damaged .npz archive "
                         f"({_first_line(error)})") from None


def check_mask_array(where: str, dtype, array: np.ndarray | None = None) -> None:
    """Refuse a mask whose nonzero pattern is undefined: a dtype other than boolean, integer or
    floating point (checked from the header, before reading), or NaN elements (``array``)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in MASK_DTYPE_KINDS:
        raise ValueError(f"{where} has dtype {dtype}; a mask must be boolean, integer or "
                         f"floating point (nonzero = kept)")
    if array is not None and dtype.kind == "f" and np.isnan(array).any():
        raise ValueError(f"{where} holds NaN, which is neither zero nor nonzero")


@dataclass(frozen=True)
class Profile:
    """Per-layer densities of one network and where they come from (format: module docstring).

    ``layers`` maps layer names to entries ``{"A", "Y", "dZ", "source"}`` (all optional);
    ``default`` is the entry for layers not listed. ``masks`` is the masks file's path as written
    in the JSON (relative to ``base_dir``, the JSON file's directory, unless absolute).
    Construction validates everything and raises ``ValueError`` with a clear message.
    """

    network: str
    source: str
    description: str
    layers: dict = field(default_factory=dict)
    batch: int | None = None
    default: dict | None = None
    masks: str | None = None
    mask_model: str | None = None
    base_dir: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.network, str) or not self.network.strip():
            raise ValueError(f"profile 'network' must be a network name (a key of "
                             f"maskprop.workloads.networks.NETWORKS or 'digits'), not {self.network!r}")
        if self.source not in SOURCES:
            raise ValueError(f"profile 'source' must be one of {', '.join(SOURCES)}, "
                             f"not {self.source!r}")
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError("profile needs a 'description' saying how its densities or masks "
                             "were obtained")
        if self.batch is not None and (isinstance(self.batch, bool)
                                       or not isinstance(self.batch, (int, np.integer))
                                       or self.batch < 1):
            raise ValueError(f"profile 'batch' must be a positive integer or null, "
                             f"not {self.batch!r}")
        if not isinstance(self.layers, Mapping):
            raise ValueError(f"profile 'layers' must map layer names to entries, "
                             f"not {type(self.layers).__name__}")
        literature = self.source == "literature"
        layers = {}
        for name, entry in self.layers.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"profile layer names must be non-empty strings, not {name!r}")
            layers[name] = _check_entry(f"layer {name!r}", entry, need_source=literature)
        default = None
        if self.default is not None:
            default = _check_entry("'default'", self.default, need_source=literature)
        if self.masks is not None and (not isinstance(self.masks, str) or not self.masks):
            raise ValueError(f"profile 'masks' must be the path of an .npz file, "
                             f"not {self.masks!r}")
        if self.mask_model is not None:
            _check_mask_model(self.mask_model)
        if not layers and default is None and self.masks is None:
            raise ValueError("profile has no 'layers', no 'default' and no 'masks': "
                             "it describes no layer")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "batch", None if self.batch is None else int(self.batch))
        if self.base_dir is not None:
            object.__setattr__(self, "base_dir", Path(self.base_dir))

    # --- lookup ---------------------------------------------------------------------------------

    @property
    def layer_names(self) -> list[str]:
        """The layers listed explicitly (not the ones covered by ``default``)."""
        return list(self.layers)

    def entry(self, layer_name: str) -> dict:
        """The layer's entry merged over ``default`` (the layer's own keys win)."""
        return {**(self.default or {}), **self.layers.get(layer_name, {})}

    def density(self, layer_name: str, key: str = "A") -> float:
        """Density of ``key`` (``"A"``, ``"Y"`` or ``"dZ"``) for a layer.

        Looked up in the layer's entry, then the masks file (``A``/``dZ``), then ``default``.
        """
        if key not in DENSITY_KEYS:
            raise ValueError(f"density key must be one of {', '.join(DENSITY_KEYS)}, "
                             f"not {key!r}")
        own = self.layers.get(layer_name, {})
        if key in own:
            return own[key]
        if key in MASK_KEYS and self.masks is not None:
            mask = self._stored_mask(layer_name, key)
            if mask is not None:
                return float(np.count_nonzero(mask)) / mask.size if mask.size else 0.0
        if self.default is not None and key in self.default:
            return self.default[key]
        where = "listed" if layer_name in self.layers else "not listed"
        raise ValueError(f"profile for {self.network!r} ({self.source}) has no {key!r} density "
                         f"for layer {layer_name!r} (layer {where}; no default {key!r})")

    def has(self, layer_name: str, key: str) -> bool:
        """Whether :meth:`density` finds ``key`` for the layer."""
        try:
            self.density(layer_name, key)
        except ValueError:
            return False
        return True

    def cite(self, layer_name: str) -> str | None:
        """The ``source`` text that applies to a layer (its own, else the default's)."""
        return self.entry(layer_name).get("source")

    def check_layers(self, layer_names, keys=("A",)) -> None:
        """Raise ``ValueError`` if a listed layer is not in ``layer_names`` (a naming mismatch)
        or if one of ``layer_names`` has no density for one of ``keys``."""
        names = list(layer_names)
        unknown = [name for name in self.layers if name not in set(names)]
        if unknown:
            raise ValueError(f"profile for {self.network!r} lists layer(s) "
                             f"{', '.join(map(repr, unknown))} that the network does not have")
        for name in names:
            for key in keys:
                self.density(name, key)

    # --- masks ----------------------------------------------------------------------------------

    @property
    def masks_path(self) -> Path | None:
        """The masks file, resolved against the JSON file's directory (against the current
        directory for a profile built in memory)."""
        if self.masks is None:
            return None
        path = Path(self.masks)
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def _stored_mask(self, layer_name: str, key: str) -> np.ndarray | None:
        path = self.masks_path
        if path is None:
            return None
        name = f"{layer_name}/{key}"
        where = f"profile masks file {path}"
        headers = npz_headers(path, where)
        if name not in headers:
            return None
        check_mask_array(f"{where}: {name}", headers[name][1])
        array = read_npz(path, where, [name])[name]
        check_mask_array(f"{where}: {name}", array.dtype, array)
        return array != 0

    def check_masks(self, shapes: Mapping) -> None:
        """Refuse, from the masks file's headers alone (no mask is read), a file that is not a
        readable ``.npz`` or a stored mask ``"<layer>/<key>"`` whose shape is not
        ``shapes["<layer>/<key>"]`` or whose dtype has no zero. Nothing to do without a masks
        file."""
        path = self.masks_path
        if path is None:
            return
        where = f"profile masks file {path}"
        for name, (shape, dtype) in npz_headers(path, where).items():
            check_mask_array(f"{where}: {name}", dtype)
            wanted = shapes.get(name)
            if wanted is not None and shape != tuple(wanted):
                raise ValueError(f"{where}: {name} has shape {shape}, the layer needs "
                                 f"{tuple(wanted)}")

    def mask(self, layer_name: str, key: str, shape, rng=None, *,
             correlation_length: float = CORRELATION_LENGTH) -> np.ndarray:
        """Boolean nonzero mask of ``key`` (``"A"`` or ``"dZ"``) for a layer, shape ``shape``.

        The masks file's array when it has one (its shape must equal ``shape``); otherwise
        :func:`synthesize_mask` of :meth:`density` with ``mask_model`` (default ``"iid"``) and
        ``rng`` (a ``numpy.random.Generator`` or a seed).
        """
        if key not in MASK_KEYS:
            raise ValueError(f"mask key must be one of {', '.join(MASK_KEYS)}, not {key!r}")
        shape = tuple(int(s) for s in shape)
        stored = self._stored_mask(layer_name, key)
        if stored is not None:
            if stored.shape != shape:
                raise ValueError(f"profile masks {self.masks_path}: {layer_name}/{key} has "
                                 f"shape {stored.shape}, the layer needs {shape}")
            return stored
        return synthesize_mask(shape, self.density(layer_name, key), rng,
                               self.mask_model or "iid", correlation_length=correlation_length)

    # --- storage --------------------------------------------------------------------------------

    def to_dict(self, *, masks: str | None = None) -> dict:
        """The JSON object (``masks`` overrides the stored masks path)."""
        out = {"format": FORMAT, "network": self.network, "source": self.source,
               "description": self.description, "batch": self.batch}
        masks = self.masks if masks is None else masks
        if masks is not None:
            out["masks"] = masks
        if self.mask_model is not None:
            out["mask_model"] = self.mask_model
        if self.default is not None:
            out["default"] = dict(self.default)
        out["layers"] = {name: dict(entry) for name, entry in self.layers.items()}
        return out

    @classmethod
    def from_dict(cls, data, *, base_dir=None) -> Profile:
        """Validate and build a profile from its JSON object."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a profile must be a JSON object, not {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(f"profile 'format' must be {FORMAT!r}, not {data.get('format')!r}")
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            raise ValueError(f"profile has unknown key(s) {', '.join(map(repr, unknown))}; "
                             f"allowed: {', '.join(_TOP_KEYS)}")
        for key in ("network", "source", "description"):
            if key not in data:
                raise ValueError(f"profile is missing {key!r}")
        return cls(network=data["network"], source=data["source"],
                   description=data["description"], layers=data.get("layers", {}),
                   batch=data.get("batch"), default=data.get("default"),
                   masks=data.get("masks"), mask_model=data.get("mask_model"),
                   base_dir=base_dir)

    def to_json(self, *, masks: str | None = None) -> str:
        """The JSON text: one line per layer entry."""
        data = self.to_dict(masks=masks)
        layers = data.pop("layers")
        lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in data.items()]
        if layers:
            width = max(len(json.dumps(name)) for name in layers)
            body = ",\n".join(f"    {json.dumps(name) + ':':<{width + 1}} {json.dumps(entry)}"
                              for name, entry in layers.items())
            lines.append('  "layers": {\n' + body + "\n  }")
        else:
            lines.append('  "layers": {}')
        return "{\n" + "\n".join(lines) + "\n}\n"

    def save(self, path) -> Path:
        """Write the profile as JSON. A relative masks path of a loaded profile is rewritten
        relative to ``path``'s directory, so the saved file still finds the same masks file; a
        profile built in memory (``base_dir=None``) keeps its masks path as given, i.e. relative
        to the file it is saved as."""
        path = Path(path)
        masks = None
        if (self.masks is not None and self.base_dir is not None
                and not Path(self.masks).is_absolute()):
            target = self.masks_path.resolve()
            try:
                masks = Path(os.path.relpath(target, path.resolve().parent)).as_posix()
            except ValueError:                       # another drive (Windows)
                masks = str(target)
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(masks=masks))
        return path


def load_profile(path) -> Profile:
    """Read and validate a profile JSON file (format ``maskprop-profile/1``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read profile {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValueError(f"profile {path} is not a text file (a profile is UTF-8 JSON)") from None
    try:
        data = json.loads(text)
    except ValueError as error:         # JSONDecodeError, or an integer of > 4300 digits
        raise ValueError(f"profile {path} is not valid JSON: {_first_line(error)}") from None
    except RecursionError:
        raise ValueError(f"profile {path} is not a profile: its JSON is nested too deeply") \
            from None
    try:
        return Profile.from_dict(data, base_dir=path.resolve().parent)
    except ValueError as error:
        raise ValueError(f"profile {path}: {error}") from None


def save_masks(path, masks: Mapping) -> Path:
    """Write a masks file for a profile's ``masks`` field: ``masks`` maps ``"<layer>/A"`` and
    ``"<layer>/dZ"`` to arrays whose nonzeros are the mask (stored as booleans)."""
    arrays = {}
    for name, array in masks.items():
        layer, sep, key = str(name).rpartition("/")
        if not sep or not layer or key not in MASK_KEYS:
            raise ValueError(f"mask names must be '<layer>/A' or '<layer>/dZ', not {name!r}")
        arrays[name] = np.asarray(array) != 0
    path = Path(path)
    np.savez_compressed(path, **arrays)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


# --- synthetic masks --------------------------------------------------------------------------

#: Elements of float32 scratch per chunk of the clustered model (bounds memory, not results).
_CHUNK_ELEMENTS = 1 << 22


def _rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a numpy.random.Generator or an integer seed, not {rng!r}")


def synthesize_mask(shape, density: float, rng=None, model: str = "iid", *,
                    correlation_length: float = CORRELATION_LENGTH) -> np.ndarray:
    """A boolean ``(N, C, H, W)`` nonzero mask of a given density.

    ``model="iid"``: every element independently nonzero with probability ``density``
    (Bernoulli; the realised fraction fluctuates around ``density``).

    ``model="clustered"``: per ``(n, c)`` plane a Gaussian random field (white noise filtered,
    via FFT, with a Gaussian kernel of standard deviation ``correlation_length`` pixels, on a
    torus padded by ``3 * correlation_length`` so the plane's edges are not correlated with each
    other) is thresholded at the plane's own quantile: exactly ``round(density * H * W)``
    elements of every plane are nonzero, i.e. each plane's density is within ``1 / (2 H W)`` of
    ``density``. Nonzeros form blobs about ``correlation_length`` across, like ReLU outputs of
    natural images.

    Deterministic for a given ``rng`` state (a ``numpy.random.Generator`` or an integer seed) and
    shape.
    """
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"shape must be (N, C, H, W), not {shape!r}") from None
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"shape must be (N, C, H, W) of positive sizes, not {shape}")
    density = _check_density("density", density)
    _check_mask_model(model)
    rng = _rng(rng)
    n, c, h, w = shape
    if model == "iid":
        out = np.empty(shape, dtype=bool)
        flat = out.reshape(n * c, h * w)
        step = max(1, _CHUNK_ELEMENTS // (h * w))
        for start in range(0, n * c, step):
            rows = flat[start:start + step]
            np.less(rng.random(rows.shape, dtype=np.float32), np.float32(density), out=rows)
        return out
    if not (isinstance(correlation_length, (int, float)) and correlation_length > 0
            and math.isfinite(correlation_length)):
        raise ValueError(f"correlation_length must be a positive number of pixels, "
                         f"not {correlation_length!r}")
    return _clustered(shape, density, rng, float(correlation_length))


def _clustered(shape, density, rng, sigma):
    n, c, h, w = shape
    planes, size = n * c, h * w
    k = int(round(density * size))
    if k == 0:
        return np.zeros(shape, dtype=bool)
    if k == size:
        return np.ones(shape, dtype=bool)
    pad = int(math.ceil(3 * sigma))
    hp, wp = h + pad, w + pad
    # Gaussian low-pass as a transfer function (Fourier transform of a unit-sum Gaussian kernel).
    fy = np.fft.fftfreq(hp).astype(np.float32)
    fx = np.fft.rfftfreq(wp).astype(np.float32)
    gain = (np.exp(-2 * np.pi**2 * sigma**2 * fy**2)[:, None]
            * np.exp(-2 * np.pi**2 * sigma**2 * fx**2)[None, :]).astype(np.float32)
    out = np.zeros((planes, size), dtype=bool)
    step = max(1, _CHUNK_ELEMENTS // (hp * wp))
    for start in range(0, planes, step):
        m = min(step, planes - start)
        noise = rng.standard_normal((m, hp, wp), dtype=np.float32)
        field_ = np.fft.irfft2(np.fft.rfft2(noise) * gain, s=(hp, wp))[:, :h, :w]
        field_ = field_.reshape(m, size)
        top = np.argpartition(field_, size - k, axis=1)[:, size - k:]
        np.put_along_axis(out[start:start + m], top, True, axis=1)
    return out.reshape(shape)


# --- measured (PyTorch hooks) -----------------------------------------------------------------

def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError(_TORCH_MISSING) from exc
    return torch


class _Count:
    """Nonzeros and elements seen (a module may run more than once per forward)."""

    __slots__ = ("nonzero", "total")

    def __init__(self):
        self.nonzero = 0
        self.total = 0

    def add(self, tensor):
        self.nonzero += int(tensor.count_nonzero())
        self.total += tensor.numel()

    @property
    def density(self) -> float:
        return self.nonzero / self.total if self.total else 0.0


def measure_profile(model, inputs, targets=None, *, loss=None, network_name: str,
                    description: str) -> Profile:
    """Measure per-layer densities of ``model`` on one batch with PyTorch hooks.

    Runs one forward and one backward pass of ``model`` (in whatever mode it is in: put it in
    train mode to measure training, where BatchNorm uses batch statistics) on ``inputs`` and
    records, for every ``torch.nn.Conv2d`` (named by its qualified name in
    ``model.named_modules()``, e.g. ``"layer1.0.conv1"`` as torchvision and
    :mod:`maskprop.workloads.networks` name them):

    - ``A``: density of the conv's input, by a forward hook;
    - ``dZ``: density of the gradient of the loss at the conv's output, by a tensor hook;
    - ``Y``: density after the ReLU that follows the conv (directly or through a BatchNorm),
      when that ReLU is a ``torch.nn.ReLU`` module; omitted when the model calls a functional
      ReLU.

    A module run several times per forward pass contributes all its calls. The loss is
    ``loss(output, targets)`` (``loss(output)`` without targets) when given, else the
    cross-entropy of the output against ``targets``, else the sum of the output (then the
    gradient at the output is dense). The model's parameters, their ``.grad`` and its buffers
    (BatchNorm running statistics) are left as they were.

    The numbers are those of *this batch at this point of training* (initial weights give other
    densities than a trained network); the profile's description says so.
    """
    torch = _import_torch()
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if not isinstance(description, str) or not description.strip():
        raise ValueError("measure_profile needs a description of the model and batch")
    if not isinstance(network_name, str) or not network_name.strip():
        raise ValueError(f"network_name must be a non-empty string, not {network_name!r}")

    x = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(np.asarray(inputs))
    if not isinstance(inputs, torch.Tensor) or not x.is_floating_point():
        # NumPy (float64 by default) or integer input: the dtype of the model's parameters.
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()),
                     torch.get_default_dtype())
        x = x.to(dtype)
    if targets is not None and not isinstance(targets, torch.Tensor):
        targets = torch.as_tensor(np.asarray(targets))
    batch = int(x.shape[0]) if x.dim() else None

    convs = [(name, module) for name, module in model.named_modules()
             if isinstance(module, torch.nn.Conv2d)]
    if not convs:
        raise ValueError("model has no torch.nn.Conv2d layer: nothing to measure")
    a_count = {name: _Count() for name, _ in convs}
    dz_count = {name: _Count() for name, _ in convs}
    y_count: dict[str, _Count] = {}
    produced: dict[int, tuple] = {}      # id(tensor) -> (conv name, tensor kept alive)
    handles = []

    def conv_hook(name):
        def hook(module, args, output):
            a_count[name].add(args[0].detach())
            if output.requires_grad:
                output.register_hook(lambda grad: dz_count[name].add(grad.detach()))
            produced[id(output)] = (name, output)
        return hook

    def passthrough_hook(module, args, output):      # BatchNorm between conv and ReLU
        hit = produced.get(id(args[0])) if args else None
        if hit is not None and hit[1] is args[0] and isinstance(output, torch.Tensor):
            produced[id(output)] = (hit[0], output)

    def relu_hook(module, args, output):
        hit = produced.get(id(args[0])) if args else None
        if hit is not None and hit[1] is args[0]:
            y_count.setdefault(hit[0], _Count()).add(output.detach())

    params = [p for p in model.parameters() if p.requires_grad]
    saved_grads = [p.grad for p in params]
    saved_buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        for name, module in convs:
            handles.append(module.register_forward_hook(conv_hook(name)))
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                handles.append(module.register_forward_hook(passthrough_hook))
            elif isinstance(module, torch.nn.ReLU):
                handles.append(module.register_forward_hook(relu_hook))
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)       # every conv output needs a gradient
            output = model(leaf)
            value = _loss_value(torch, output, targets, loss)
            torch.autograd.grad(value, [leaf] + params, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
        produced.clear()
        with torch.no_grad():
            for buffer, copy in saved_buffers:
                buffer.copy_(copy)
        for p, g in zip(params, saved_grads):
            p.grad = g

    layers = {}
    for name, _ in convs:
        if not a_count[name].total:
            continue                                      # not used in this forward pass
        entry = {"A": a_count[name].density}
        if name in y_count:
            entry["Y"] = y_count[name].density
        if dz_count[name].total:
            entry["dZ"] = dz_count[name].density
        layers[name] = entry
    if not layers:
        raise ValueError("no torch.nn.Conv2d of the model ran in its forward pass")
    note = (f"Measured with PyTorch hooks (maskprop.workloads.profiles.measure_profile): one forward + "
            f"backward pass on one batch of {batch}, model in "
            f"{'train' if model.training else 'eval'} mode; the densities are those of this "
            f"batch at this point of training.")
    return Profile(network=network_name, source="measured",
                   description=f"{description.strip()} {note}", layers=layers, batch=batch)


def _loss_value(torch, output, targets, loss):
    if loss is not None:
        value = loss(output, targets) if targets is not None else loss(output)
    elif targets is not None:
        logits = output if isinstance(output, torch.Tensor) else output[0]
        value = torch.nn.functional.cross_entropy(logits, targets)
    else:
        tensors = [output] if isinstance(output, torch.Tensor) else \
            [t for t in output if isinstance(t, torch.Tensor)]
        value = sum(t.sum() for t in tensors)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ValueError("the loss must be a scalar tensor")
    return value.reshape(())


# --- the digits fixture -----------------------------------------------------------------------

def _digits_fixture():
    from maskprop.workloads.digits import load_fixture
    return load_fixture()


def _check_variant(fixture, variant):
    if variant not in fixture.variants:
        raise ValueError(f"digits variant must be one of {', '.join(fixture.variants)}, "
                         f"not {variant!r}")
    return fixture[variant]


def digits_profile(variant: str = "plain", step: int | None = None) -> Profile:
    """The digits CNN's densities from the committed fixture (:mod:`maskprop.workloads.digits`).

    ``step=None``: the captured training step of the trained network (batch of
    ``capture_batch`` images): ``A`` and ``dZ`` of every conv layer exactly as the fixture's
    records (``density_A``, ``density_dZ``). ``step=S``: the density history recorded after
    ``S`` updates on the fixture's probe batch (``S`` one of the recorded steps). ``Y`` of a
    layer is the next layer's ``A`` (the network has no pooling between convs).
    """
    fixture = _digits_fixture()
    record = _check_variant(fixture, variant)
    settings = fixture.metadata["settings"]
    names = [r.name for r in record.layers]
    if step is None:
        a = {r.name: r.density_A for r in record.layers}
        dz = {r.name: r.density_dZ for r in record.layers}
        batch = settings["capture_batch"]
        when = (f"the captured training step (forward + backward, no update) of the trained "
                f"network after {fixture.steps} Adam updates, on a batch of {batch} training "
                f"images")
    else:
        history = record.history
        if step not in history.steps:
            raise ValueError(f"digits density history has steps {history.steps}, not {step!r}")
        i = history.steps.index(step)
        a = {name: float(history.density_A[name][i]) for name in names}
        dz = {name: float(history.density_dZ[name][i]) for name in names}
        batch = settings["probe_batch"]
        when = (f"the density history after {step} of {fixture.steps} Adam updates, on the "
                f"fixed probe batch of {batch} training images")
    layers = {}
    for i, name in enumerate(names):
        entry = {"A": a[name]}
        if i + 1 < len(names):
            entry["Y"] = a[names[i + 1]]
        entry["dZ"] = dz[name]
        layers[name] = entry
    bn = "conv -> BatchNorm2d -> ReLU (dZ dense)" if record.batchnorm else \
        "conv -> ReLU, no BatchNorm (dZ zero where the conv output is <= 0)"
    description = (f"Real ReLU masks of the small digits CNN ({variant} variant: {bn}) trained "
                   f"with PyTorch on scikit-learn's 8x8 digits upsampled to 16x16 "
                   f"({fixture.steps} training steps, test accuracy "
                   f"{record.test_accuracy:.4f}); densities from {when} "
                   f"(maskprop/workloads/data/digits_cnn.npz, maskprop.workloads.digits).")
    return Profile(network="digits", source="digits", description=description, layers=layers,
                   batch=batch)


@dataclass(frozen=True)
class DigitsDensityHistory:
    """How the digits CNN's densities evolve in training: after ``steps[i]`` updates, layer
    ``l`` had ``A[l][i]`` and ``dZ[l][i]`` (probe batch of ``batch`` images)."""

    variant: str
    steps: tuple
    A: dict
    dZ: dict
    batch: int
    test_accuracy: float

    def series(self, layer_name: str, key: str = "A") -> tuple[tuple, tuple]:
        """``(steps, values)`` of one layer's ``"A"`` or ``"dZ"`` density."""
        if key not in MASK_KEYS:
            raise ValueError(f"key must be one of {', '.join(MASK_KEYS)}, not {key!r}")
        values = getattr(self, key)
        if layer_name not in values:
            raise ValueError(f"digits CNN has no layer {layer_name!r}; layers are "
                             f"{', '.join(values)}")
        return self.steps, values[layer_name]


def digits_density_history(variant: str = "plain") -> DigitsDensityHistory:
    """Per-layer ``A`` and ``dZ`` density of the digits CNN along training (from the fixture)."""
    fixture = _digits_fixture()
    record = _check_variant(fixture, variant)
    h = record.history
    return DigitsDensityHistory(
        variant=variant, steps=tuple(h.steps),
        A={k: tuple(float(v) for v in vs) for k, vs in h.density_A.items()},
        dZ={k: tuple(float(v) for v in vs) for k, vs in h.density_dZ.items()},
        batch=int(fixture.metadata["settings"]["probe_batch"]),
        test_accuracy=record.test_accuracy)


# --- literature and synthetic -----------------------------------------------------------------

def literature_profile(network_name: str) -> Profile:
    """The shipped literature profile of a network
    (``maskprop/workloads/data/profiles/<name>_literature.json``)."""
    if network_name not in NETWORK_NAMES:
        raise ValueError(f"literature profiles exist for {', '.join(NETWORK_NAMES)}, "
                         f"not {network_name!r}")
    return load_profile(LITERATURE_DIR / f"{network_name}_literature.json")


IMAGE_SOURCE = "network input (image), dense"


def _first_layers(network_name: str) -> tuple[list, list]:
    """``(all layer names, names of layers whose input is the image)``."""
    if network_name == "digits":
        from maskprop.workloads.digits import NETWORK
        return [spec.name for spec in NETWORK], [NETWORK[0].name]
    from maskprop.workloads.networks import network
    net = network(network_name)
    return ([layer.name for layer in net.layers],
            [layer.name for layer in net.layers if not layer.relu_input])


def synthetic_profile(network_name: str, density: float, model: str = "iid", *,
                      dZ: float | None = None) -> Profile:
    """Every conv input of ``network_name`` at one chosen ``density`` (source ``"synthetic"``).

    The layers that read the image get ``A = 1.0`` (the image is dense). ``dZ``, when given, is
    the gradient density of every layer; otherwise none is stated (a consumer derives it from
    the network's BatchNorm placement). Masks are synthesised with ``model``
    (:func:`synthesize_mask`).
    """
    density = _check_density("density", density)
    _check_mask_model(model)
    _, image_layers = _first_layers(network_name)
    default = {"A": density, "source": "synthetic: chosen by the user"}
    if dZ is not None:
        default["dZ"] = _check_density("dZ", dZ)
    layers = {name: {"A": 1.0, "source": IMAGE_SOURCE} for name in image_layers}
    description = (f"Synthetic, not measured: every conv input of {network_name} has density "
                   f"{density:g} (the image-reading layer{'s' if len(image_layers) > 1 else ''} "
                   f"{', '.join(image_layers)}: 1.0)"
                   + (f", every conv output gradient dZ {dZ:g}" if dZ is not None else "")
                   + f"; masks drawn with the {model!r} model "
                   + ("(i.i.d. Bernoulli)." if model == "iid" else
                      "(spatially clustered Gaussian random field, thresholded per channel)."))
    return Profile(network=network_name, source="synthetic", description=description,
                   layers=layers, default=default, mask_model=model)
