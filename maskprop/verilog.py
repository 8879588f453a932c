"""Verilog generation for maskprop blocks.

Amaranth's Verilog has no parameters: every configuration is its own generated module, and
port paths are flattened with ``__`` (``i__payload``, ``o__valid``).
"""

from pathlib import Path

from amaranth.back import verilog

__all__ = ["generate_verilog", "write_verilog"]


def generate_verilog(component, name: str) -> str:
    """Return the Verilog text of a ``wiring.Component`` as a top module called ``name``."""
    return verilog.convert(component, name=name, emit_src=False)


def write_verilog(component, name: str, path) -> Path:
    """Write the Verilog of ``component`` to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generate_verilog(component, name))
    return path
