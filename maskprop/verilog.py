"""Verilog generation for maskprop blocks.

Amaranth's Verilog has no parameters: every configuration is its own generated module, and
port paths are flattened with ``__`` (``i__payload``, ``o__valid``).
"""

from pathlib import Path

from amaranth.back import verilog

__all__ = ["generate_verilog", "write_verilog"]


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
