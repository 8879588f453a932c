# amaranth: UnusedElaboratable=no
"""The cocotb stream bench refuses, before building anything, to run a top level whose inputs it
would not all drive (a floating input reads 0 on Verilator and x on Icarus)."""

import pytest

from maskprop.base.config import Config
from maskprop.hw.engine import SparseDotEngine
from maskprop.hw.tile_array import TileArray
from maskprop.tb.stream_bench import run_stream_bench, top_level_inputs


def test_bench_refuses_an_undriven_input(tmp_path):
    """Every input of a top level must be driven: forgetting one is refused before any build."""
    with pytest.raises(ValueError, match="input port\\(s\\) clear not driven"):
        run_stream_bench(SparseDotEngine(Config()), "sparse_dot_engine", [], [],
                         build_dir=tmp_path, drive={"dense": 0})
    with pytest.raises(ValueError, match="has no input port\\(s\\) bogus"):
        run_stream_bench(SparseDotEngine(Config()), "sparse_dot_engine", [], [],
                         build_dir=tmp_path, drive={"dense": 0, "clear": 0, "bogus": 1})
    assert not list(tmp_path.iterdir())


def test_every_top_level_input_is_named():
    """The names the testbench checks for x/z are the Verilog ports Amaranth emits."""
    config = Config(max_chunks=4, max_cols=8)
    names = top_level_inputs(TileArray(config), "tile_array",
                             streams={"load": [], "rows": [], "x": []},
                             drive={"n_chunks": 1, "dense": 0, "clear": 0})
    assert sorted(names) == sorted(["load__valid", "load__payload", "rows__valid",
                                    "rows__payload", "x__valid", "x__payload", "o__ready",
                                    "n_chunks", "dense", "clear"])
    with pytest.raises(ValueError, match="x not driven"):
        top_level_inputs(TileArray(config), "tile_array", streams={"load": [], "rows": []},
                         drive={"n_chunks": 1, "dense": 0, "clear": 0})
