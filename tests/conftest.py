"""Shared fixtures: the repository's scripts (scripts/*.py) imported as modules."""

import importlib
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def import_script(name: str):
    """``scripts/<name>.py`` as a module (its directory on ``sys.path`` while it is imported,
    as when it runs, so its own imports of its neighbours resolve)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SCRIPTS))


@pytest.fixture(scope="module")
def script():
    """:func:`import_script`, for tests of a script's functions."""
    return import_script
