"""Generated Verilog is cached on disk by content: read back by a later process (here: with the
in-process cache emptied), keyed by the component's parameters; a module whose source is unknown
disables it. (That a mutant, which exists only in memory, gets its own key is tested in
``tests/test_mutants.py``.)"""

import sys

import pytest

import maskprop.flow.verilog as verilog_module
from maskprop.base.config import Config
from maskprop.flow.verilog import generate_verilog
from maskprop.hw.engine import SparseDotEngine

SMALL = Config(vec=4, lanes=2, tiles=1, col_block=1, data_width=4, acc_width=12, max_chunks=2,
               max_cols=2)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty build cache, an empty in-process cache and a digest computed anew."""
    monkeypatch.setenv("MASKPROP_BUILD_CACHE", str(tmp_path))
    monkeypatch.setattr(verilog_module, "_cache", {})
    verilog_module._generator_digest.cache_clear()
    yield tmp_path / "verilog"
    verilog_module._generator_digest.cache_clear()


def test_verilog_is_read_back_from_the_build_cache(fresh_cache, monkeypatch):
    text = generate_verilog(SparseDotEngine(SMALL), "engine")
    [stored] = fresh_cache.iterdir()
    assert stored.read_text() == text and "module engine" in text
    # A later process (an empty in-process cache) reads the file instead of generating.
    stored.write_text("// from the cache\n")
    monkeypatch.setattr(verilog_module, "_cache", {})
    assert generate_verilog(SparseDotEngine(SMALL), "engine") == "// from the cache\n"
    # Other parameters, another name: other files.
    generate_verilog(SparseDotEngine(SMALL, zero_skipping=False), "engine")
    generate_verilog(SparseDotEngine(SMALL), "other_name")
    assert len(list(fresh_cache.iterdir())) == 3


def test_nothing_is_stored_when_a_module_source_is_unknown(fresh_cache, monkeypatch):
    engine = sys.modules["maskprop.hw.engine"]
    monkeypatch.setattr(engine, "__loader__", object())       # a loader without get_source
    verilog_module._generator_digest.cache_clear()
    assert verilog_module._generator_digest() is None
    assert "module engine" in generate_verilog(SparseDotEngine(SMALL), "engine")
    assert not fresh_cache.exists()
