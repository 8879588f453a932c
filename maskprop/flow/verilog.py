"""Verilog generation for maskprop blocks.

Amaranth's Verilog has no parameters: every configuration is its own generated module, and
port paths are flattened with ``__`` (``i__payload``, ``o__valid``).
"""

import subprocess
import tempfile
from pathlib import Path

from amaranth.back import verilog

__all__ = ["BLOCKS", "build_block", "generate_verilog", "write_verilog", "lint_verilog",
           "LintError"]


#: The blocks that can be generated on their own, by the name the CLI and the flow use.
BLOCKS = ("tree", "decoder", "pe", "engine", "array")


def build_block(block: str, config, *, dense_only: bool = False):
    """The Amaranth component of ``block`` (one of :data:`BLOCKS`) for ``config``, and the name of
    its generated Verilog module. ``dense_only`` builds the engine without its zero-skipping
    decoder (the area baseline). The hardware modules are imported here, on demand, so that
    the flow's other helpers do not pull in every block."""
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")
    if dense_only and block != "engine":
        raise ValueError(f"--dense-only applies to the engine only (dense_only for block {block!r})")
    if block == "tree":
        from maskprop.hw.accumulation_tree import AccumulationTree
        return AccumulationTree.from_config(config), "accumulation_tree"
    if block == "decoder":
        from maskprop.hw.index_decoder import ZeroSkipIndexDecoder
        return ZeroSkipIndexDecoder.from_config(config, masks=2), "index_decoder"
    if block == "pe":
        from maskprop.hw.sparse_pe import SparseGradPE
        return SparseGradPE.from_config(config), "sparse_pe"
    if block == "array":
        from maskprop.hw.tile_array import TileArray
        return TileArray(config), "tile_array"
    from maskprop.hw.engine import SparseDotEngine
    return (SparseDotEngine(config, zero_skipping=not dense_only),
            "dense_dot_engine" if dense_only else "sparse_dot_engine")


_cache: dict = {}


def generate_verilog(component, name: str) -> str:
    """Return the Verilog text of a ``wiring.Component`` as a top module called ``name``.

    A component with a ``generator_key`` (everything its RTL depends on) is generated once per
    process: large buffers make Amaranth's conversion take seconds, and the tests and benches
    build the same configurations again and again. (A cached component is never elaborated;
    it is marked used, so Amaranth does not warn about it.)
    """
    key = getattr(component, "generator_key", None)
    if key is None:
        return verilog.convert(component, name=name, emit_src=False)
    if (key, name) not in _cache:
        _cache[key, name] = verilog.convert(component, name=name, emit_src=False)
    else:
        component._MustUse__used = True
    return _cache[key, name]


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
