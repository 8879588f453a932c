"""Finding the simulators: Verilator >= 5.036 (default) or Icarus Verilog, chosen with ``SIM=``.

``scripts/setup.sh`` provisions both; this module only locates them and puts them on ``PATH`` for
the cocotb runner, so that a Verilator built into the cache works without any shell setup.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["SIMULATORS", "MIN_VERILATOR", "ToolchainError", "SimulationError",
           "selected_simulator",
           "cache_dir", "build_cache", "find_verilator", "activate_simulator"]

SIMULATORS = ("verilator", "icarus")
MIN_VERILATOR = (5, 36)


class ToolchainError(RuntimeError):
    """A simulator or tool is missing or too old; the message says how to provision it."""


class SimulationError(RuntimeError):
    """A testbench run ended without its results (it crashed, timed out or found the DUT's
    inputs undriven); the message names the log to read."""


def cache_dir() -> Path:
    return Path(os.environ.get("MASKPROP_CACHE", Path.home() / ".cache" / "maskprop"))


def build_cache() -> Path:
    """Where generated Verilog and simulator builds are cached by content:
    ``$MASKPROP_BUILD_CACHE``, else ``build-cache`` in :func:`cache_dir`."""
    return Path(os.environ.get("MASKPROP_BUILD_CACHE", cache_dir() / "build-cache")).resolve()


def selected_simulator(sim: str | None = None) -> str:
    """``sim``, else ``$SIM``, else Verilator; ``ValueError`` for anything else."""
    sim = sim or os.environ.get("SIM") or "verilator"
    if sim not in SIMULATORS:
        raise ValueError(f"SIM must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    return sim


def _verilator_version(executable, env=None) -> tuple[int, int] | None:
    try:
        text = subprocess.run([str(executable), "--version"], capture_output=True, text=True,
                              env=env, timeout=60).stdout
    except OSError:
        return None
    match = re.search(r"Verilator (\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def find_verilator() -> tuple[Path, bool]:
    """Return ``(bin_dir, needs_root)`` of a Verilator >= 5.036.

    One on ``PATH`` wins; else the newest build under :func:`cache_dir` made by
    ``scripts/provision-verilator.sh`` (which runs from its build tree, so ``VERILATOR_ROOT``
    must point at it).
    """
    on_path = shutil.which("verilator")
    if on_path and (_verilator_version(on_path) or (0, 0)) >= MIN_VERILATOR:
        return Path(on_path).parent, False
    builds = sorted(cache_dir().glob("verilator-*/.maskprop-built"),
                    key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)],
                    reverse=True)
    for marker in builds:
        root = marker.parent
        env = dict(os.environ, VERILATOR_ROOT=str(root))
        if (_verilator_version(root / "bin" / "verilator", env) or (0, 0)) >= MIN_VERILATOR:
            return root / "bin", True
    raise ToolchainError(
        "no Verilator >= {}.{:03d} on PATH or in {}: run scripts/setup.sh "
        "(or scripts/provision-verilator.sh), or use SIM=icarus".format(*MIN_VERILATOR,
                                                                        cache_dir()))


def activate_simulator(sim: str | None = None) -> str:
    """Make ``sim``'s executables visible to the cocotb runner (this process's ``PATH``)."""
    sim = selected_simulator(sim)
    if sim == "verilator":
        bin_dir, needs_root = find_verilator()
        if needs_root:
            os.environ["VERILATOR_ROOT"] = str(bin_dir.parent)
        if str(bin_dir) not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    elif not (shutil.which("iverilog") and shutil.which("vvp")):
        raise ToolchainError("Icarus Verilog (iverilog, vvp) not found: run scripts/setup.sh "
                             "or apt-get install iverilog")
    return sim


def verilator_executable() -> Path:
    """The ``verilator`` to call directly (lint), with the environment activated."""
    activate_simulator("verilator")
    return Path(shutil.which("verilator"))
