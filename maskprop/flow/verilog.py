"""Verilog generation for maskprop blocks.

Amaranth's Verilog has no parameters: every configuration is its own generated module, and
port paths are flattened with ``__`` (``i__payload``, ``o__valid``).
"""

import subprocess
import tempfile
from pathlib import Path

from amaranth.back import verilog

__all__ = ["generate_verilog", "write_verilog", "lint_verilog", "LintError"]


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
