"""scripts/iso_resource.py, the comparison at equal FPGA: its search for the largest array that
places and routes (with the flow replaced by a rule, so every size's outcome is known), its
training-step cycles against the cycle model, and the table it renders."""

from types import SimpleNamespace

import pytest
from amaranth.hdl import Fragment

from maskprop.base.config import FPGA_ICE40
from maskprop.evaluation import doc_tables as tables
from maskprop.evaluation.evaluate import network_lowerings, published_inputs
from maskprop.sim.cycle_model import (decoupled_tile_cycles, fastest, join_array_cycles,
                                      join_word_costs, wanted_outputs)


@pytest.fixture(scope="module")
def iso(script):
    return script("iso_resource")


@pytest.mark.parametrize("limit, max_tiles, expected", [(1, 64, 1), (4, 64, 4), (5, 64, 5),
                                                        (23, 64, 23), (64, 64, 64),
                                                        (40, 16, 16)])
def test_largest_finds_the_most_tiles_that_fit(iso, monkeypatch, limit, max_tiles, expected,
                                               tmp_path):
    """Sizes up to ``limit`` fit: the search returns exactly the largest (or ``max_tiles``),
    trying each size once, and never one above twice the answer."""
    calls = []

    def flow(config, design, target, device, workdir):
        calls.append(config.tiles)
        assert config.col_block >= config.tiles
        return SimpleNamespace(tiles=config.tiles) if config.tiles <= limit else None

    monkeypatch.setattr(iso, "try_flow", flow)
    tiles, report, tried = iso.largest(FPGA_ICE40, "sparse", "ice40", "iCE40UP5K", tmp_path,
                                       max_tiles)
    assert tiles == report.tiles == expected
    assert len(calls) == len(set(calls))
    assert max(calls) <= min(max_tiles, 2 * expected)
    assert tried == {t: t <= limit for t in sorted(calls)}


def test_a_part_that_holds_no_tile_is_said(iso, monkeypatch, tmp_path):
    monkeypatch.setattr(iso, "try_flow", lambda *args: None)
    with pytest.raises(SystemExit, match="not even one tile of the dense-only design"):
        iso.largest(FPGA_ICE40, "dense-only", "ice40", "iCE40UP5K", tmp_path, 8)


def test_step_cycles_are_the_cycle_models(iso):
    """The zero-skipping design's training step is the sum of each pass's fastest sparse
    lowering; the dense-only one's is at least the zero-skipping array's dense mode (the prefix
    sequencer sends at least the structure) and equal to it where every chunk's structure is a
    prefix, as on the digits CNN."""
    net, source = published_inputs("digits")
    config = FPGA_ICE40.for_evaluation()
    sparse = dense_mode = 0
    for _, _, gemms in network_lowerings(net, source, "batchnorm", config):
        sparse += fastest(gemms, config, dense=False).cycles
        dense_mode += fastest(gemms, config, dense=True).cycles
    assert iso.step_cycles(FPGA_ICE40, "sparse", net, source, "batchnorm") == sparse
    assert iso.step_cycles(FPGA_ICE40, "dense-only", net, source, "batchnorm") == dense_mode


def test_join_step_cycles_are_exact_or_bounded(iso):
    """The join array's training step: the sum of each pass's fastest exact schedule with
    ``exact``, of the unbounded-queue bound without, which is the smaller; the array is built
    from the tile array's preset (the same multipliers: a lane a segment)."""
    net, source = published_inputs("digits")
    config = FPGA_ICE40.for_evaluation()
    join = iso.JOIN["ice40"]
    exact = bound = 0
    for _, _, gemms in network_lowerings(net, source, "no-batchnorm", config):
        exact += min(join_array_cycles(g, config, group=join.group, queue=join.queue,
                                       ring=join.ring) for g in gemms)
        bound += min(decoupled_tile_cycles(join_word_costs(g, config, join.group),
                                           wanted_outputs(g, dense=False), config.tiles)
                     for g in gemms)
    exact_step = iso.step_cycles(FPGA_ICE40, "join", net, source, "no-batchnorm", exact=True)
    assert exact_step == exact and type(exact_step) is int      # it goes into the JSON
    assert iso.step_cycles(FPGA_ICE40, "join", net, source, "no-batchnorm") == bound < exact
    array, name = iso.build("join", FPGA_ICE40, iso.JOIN["ice40"])
    Fragment.get(array, None)       # it elaborates (and is used, for Amaranth's check)
    assert name == "join_array"
    assert array.tiles * array.lanes == FPGA_ICE40.tiles * FPGA_ICE40.lanes
    assert (array.lane.group, array.queue, array.ring) == (join.group, join.queue, join.ring)


def test_the_table_shows_both_designs_and_each_networks_speedup():
    report = dict(luts=1593, dsps=8, brams=17, fmax_mhz=34.3)
    payload = {"target": "ice40", "device": "iCE40UP5K", "designs": {
        "sparse": {"tiles": 4, "config": {"lanes": 2}, "tried": {"1": True, "8": False},
                   "report": report},
        "dense-only": {"tiles": 4, "config": {"lanes": 2}, "tried": {"4": True},
                       "report": dict(report, luts=1484, fmax_mhz=30.9)}},
        "rows": [{"network": "Net", "scenario": "batchnorm", "sparse_us": 3940.2,
                  "dense-only_us": 5970.0, "sparse_cycles": 135_149,
                  "dense-only_cycles": 184_473, "speedup": 5970.0 / 3940.2}]}
    text = tables.iso_resource_tables(payload)
    assert "| sparse | 4 x 2 | 1,593 | 8 | 17 | 34.3 MHz | 1, 8 (no) |" in text
    assert "| dense-only | 4 x 2 | 1,484 | 8 | 17 | 30.9 MHz | 4 |" in text
    assert "| Net | batchnorm | 5,970 | 3,940 | 1.36x | 1.52x |" in text
    # A join design adds its columns; its time is marked where it is a bound.
    payload["designs"]["join"] = {"tiles": 2, "config": {"lanes": 2}, "tried": {"2": True},
                                  "report": dict(report, luts=4000, fmax_mhz=30.0),
                                  "join": {"group": 2, "queue": 4, "ring": 2}}
    payload["rows"][0].update({"join_us": 2985.0, "join_cycles": 89_550,
                               "join_speedup": 5970.0 / 2985.0, "join_exact": False})
    text = tables.iso_resource_tables(payload)
    assert "| join | 2 x 2 | 4,000 | 8 | 17 | 30.0 MHz | 2 |" in text
    assert "| Net | batchnorm | 5,970 | 3,940 | 1.36x | 1.52x | 2,985 (bound) | 2.06x | 2.00x |" \
        in text
    assert "join: look-ahead (chunks a mask word) 2, queue 4, ring 2" in text
