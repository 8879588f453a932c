"""The wheel is self-contained: it holds every module and the data read at run time (the digits-CNN
fixture, the literature profiles, the Verilator waivers), nothing from tests/, and ``maskprop``
installed from it runs outside the checkout.

Everything runs offline: the wheel is built with this environment's setuptools
(``--no-build-isolation --no-index``), and the fresh environment gets only the wheel
(``--no-deps``) plus a ``.pth`` line pointing at this environment's site-packages for the
dependencies. A plain path in a ``.pth`` file does not run the ``.pth`` files of that directory,
so this environment's editable install (an import hook into the checkout) stays out of the new one.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Source directory -> the package it is installed as (pyproject.toml's package-dir).
PACKAGE_DIRS = {"maskprop": "maskprop", "hw": "maskprop/hw", "sim": "maskprop/sim",
                "tb": "maskprop/tb"}
FIXTURE = "maskprop/workloads/data/digits_cnn"
PROFILES = "maskprop/workloads/data/profiles"
WAIVERS = "maskprop/tb/verilator_waivers.vlt"
#: Checkout entries that are not sources: never copied into the build tree.
NOT_SOURCES = {".git", ".venv", "build", "dist", "out", ".pytest_cache", ".hypothesis"}


def _pip(*args, python=None):
    """Run this environment's pip offline (pip's own deprecation warnings are not ours, so
    without ``PYTHONWARNINGS=error``)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    target = ["--python", str(python)] if python else []
    subprocess.run([sys.executable, "-m", "pip", *target, *args, "-q", "--no-index",
                    "--disable-pip-version-check"], env=env, check=True)


def _ignore(directory, names):
    root = Path(directory) == REPO
    return {n for n in names if n == "__pycache__" or n.endswith(".egg-info")
            or (root and n in NOT_SOURCES)}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel .`` of a copy of the checkout (so that concurrent builds and a stale build/
    in the checkout cannot interfere)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=_ignore, symlinks=True)
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(source))
    (built,) = (tmp / "dist").glob("maskprop-*.whl")
    return built


def _sources(directory: Path, suffix: str) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob(f"*{suffix}")
            if "__pycache__" not in p.parts}


def test_wheel_contents(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        read = zf.read

        # every module of hw/, sim/, tb/ and maskprop/, under the one maskprop package
        for directory, package in PACKAGE_DIRS.items():
            modules = _sources(REPO / directory, ".py")
            assert modules, directory
            missing = sorted(m for m in modules if f"{package}/{m}" not in names)
            assert not missing, f"{directory}/ modules missing from the wheel: {missing}"

        # the data read at run time, byte for byte as committed
        profiles = _sources(REPO / PROFILES, ".json")
        assert len(profiles) == 5
        data = {f"{FIXTURE}.npz": REPO / f"{FIXTURE}.npz",
                f"{FIXTURE}.json": REPO / f"{FIXTURE}.json",
                WAIVERS: REPO / "tb" / Path(WAIVERS).name,
                **{f"{PROFILES}/{p}": REPO / PROFILES / p for p in profiles}}
        for name, source in data.items():
            assert name in names, name
            assert read(name) == source.read_bytes(), name

        # nothing from tests/ or anything else outside the package
        top = {name.split("/")[0] for name in names}
        dist_info = {t for t in top if t.endswith(".dist-info")}
        assert top - dist_info == {"maskprop"}, sorted(top)
        assert not [n for n in names if "tests/" in n or Path(n).name.startswith("test_")]
        (info,) = dist_info
        assert "maskprop = maskprop.cli.main:main" in read(f"{info}/entry_points.txt").decode()


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its directory."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    _pip("install", "--no-deps", str(wheel), python=python)
    # The dependencies (amaranth, numpy, cocotb, rich) come from this environment, after the new
    # environment's own site-packages; added only now, so that pip did not see the editable
    # maskprop there as already installed.
    site = subprocess.run([str(python), "-c",
                           "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(site) / "_maskprop_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    return venv


def _run(venv: Path, cwd: Path, *argv: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{output}"
    return output


@pytest.mark.slow
@pytest.mark.sim
def test_installed_wheel_runs_outside_the_checkout(installed, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert not outside.resolve().is_relative_to(REPO)
    venv = installed.resolve()

    where = _run(venv, outside, str(venv / "bin" / "python"), "-c",
                 "import maskprop, maskprop.cli.main, maskprop.workloads.digits as d, "
                 "maskprop.workloads.profiles as p, maskprop.tb.runner as r\n"
                 "for path in (maskprop.__file__, maskprop.cli.main.__file__, d.FIXTURE_PATH, "
                 "p.LITERATURE_DIR, r.WAIVERS): print(path)").splitlines()
    assert len(where) == 5
    for path in where:
        assert Path(path).resolve().is_relative_to(venv), path
        assert not Path(path).resolve().is_relative_to(REPO), path

    maskprop = str(venv / "bin" / "maskprop")
    output = _run(venv, outside, maskprop, "sim", "--layer", "1,3,5,6,5,3,2,1",
                  "--pass", "bwd-data", "--density", "0.5")
    assert "PASS" in output, output
    # The demo on the digits fixture (package data), kept small: the whole default demo takes
    # over ten minutes on Icarus (SIM=icarus), and this test is about the package, not the
    # simulator; tests/test_cli.py runs the default demo.
    output = _run(venv, outside, maskprop, "demo", "--engine", "--rows", "8")
    assert "PASS" in output and "conv2" in output, output
    assert (outside / "out").is_dir()
