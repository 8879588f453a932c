# amaranth: UnusedElaboratable=no
# (the probes build components only to convert them)
"""The mutation-testing catalogue (``scripts/mutants.py``) still fits the RTL: every mutant's
pattern occurs exactly once in its module, and every mutant changes the netlist its block
elaborates to (a mutant that changes nothing would "survive" for no reason) - one of them shown
down to the generated Verilog. And, end to end, one real mutant is killed by its tests."""

import importlib.util
import os
import subprocess
import sys
import types
from functools import cache
from pathlib import Path

import pytest
from amaranth import Module, unsigned
from amaranth.back import rtlil, verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from maskprop.base.config import Config, CoreConfig

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load_script():
    spec = importlib.util.spec_from_file_location("mutants_script", SCRIPTS / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mutants = load_script()

def built_with(shared: types.ModuleType, user: str):
    """The probe of block ``user``, built from its real source but importing the module object
    ``shared`` (a real or mutated shared module, such as rank_compaction) in its place."""
    saved = sys.modules.get(shared.__name__)
    sys.modules[shared.__name__] = shared
    try:
        module = real_module(user)
    finally:
        if saved is None:
            del sys.modules[shared.__name__]
        else:
            sys.modules[shared.__name__] = saved
    return PROBES[user](module)


def side_by_side(**blocks):
    """The blocks in one probe, each with its ports on the probe's, so that a mutant of any of
    them changes the netlist."""
    class SideBySide(wiring.Component):
        def __init__(self):
            super().__init__({name: Out(block.signature) for name, block in blocks.items()})

        def elaborate(self, platform):
            m = Module()
            for name, block in blocks.items():
                m.submodules[name] = block
                wiring.connect(m, wiring.flipped(getattr(self, name)), block)
            return m
    return SideBySide()


def index_sources(hw):
    """The decoder and the prefix sequencer of one (real or mutated) module side by side. Two
    selection segments of 4 (a lane each), so that the window's logic is in it; and a
    single-lane decoder (the join lane's find-first-set)."""
    return side_by_side(decoder=hw.ZeroSkipIndexDecoder(vec=8, lanes=2, masks=2, window=4),
                        prefix=hw.PrefixIndexSequencer(vec=8, lanes=2, masks=2, window=4),
                        single=hw.ZeroSkipIndexDecoder(vec=8, lanes=1, masks=2))


JOIN_LANE = dict(window=4, group=2, data_width=8, acc_width=20, word_addr_width=3, max_words=4)

# A small instance of each block, built from a (mutated or real) module of maskprop.hw; a shared
# module (no block of its own) is probed through a block that uses it.
PROBES = {
    "index_decoder": index_sources,
    "sparse_pe": lambda hw: hw.SparseGradPE(vec=8, lanes=2, data_width=8, window=4),
    "accumulation_tree": lambda hw: hw.AccumulationTree(lanes=4, in_width=16, acc_width=20),
    "engine": lambda hw: hw.SparseDotEngine(Config(vec=8, lanes=2, data_width=8,
                                                   acc_width=20)),
    "tile_array": lambda hw: hw.TileArray(Config(vec=4, lanes=2, tiles=2, data_width=8,
                                                 acc_width=17, col_block=4, max_chunks=2,
                                                 max_cols=4)),
    "rank_compaction": lambda hw: built_with(hw, "index_decoder"),
    "counters": lambda hw: built_with(hw, "engine"),
    "core": lambda hw: hw.MaskpropCore(CoreConfig(
        Config(vec=4, lanes=2, tiles=2, data_width=8, acc_width=17, col_block=4, max_chunks=8,
               max_cols=8), x_words=16, max_burst=4, max_outstanding=2)),
    "address_generator": lambda hw: hw.AddressGenerator(
        Config(vec=4, lanes=1, tiles=1, col_block=4, max_chunks=16, max_cols=8), addr_width=8,
        dim_width=4, kernel_width=3, stride_width=2, padding_width=2),
    "output_writer": lambda hw: hw.OutputWriter(Config(vec=4, lanes=2, tiles=2, data_width=8,
                                                       acc_width=17, col_block=4, max_chunks=2,
                                                       max_cols=8)),
    "axi_dma": lambda hw: hw.AxiDma(addr_width=12, data_width=32, max_burst=4,
                                    max_outstanding=2, max_beats_per_command=16),
    "axi_ram": lambda hw: hw.AxiRam(addr_width=12, data_width=16, depth=8, host_port=True),
    "join_lane": lambda hw: hw.JoinLane(**JOIN_LANE),
    "join_tile": lambda hw: hw.JoinTile(lanes=2, queue=2, tag=unsigned(3), **JOIN_LANE),
    "join_array": lambda hw: hw.JoinArray(tiles=2, lanes=2, window=2, group=2, queue=2, ring=2,
                                          max_columns=4, max_chunks=4, data_width=4,
                                          acc_width=10),
    "skid_buffer": lambda hw: hw.SkidBuffer(8),
    "uart": lambda hw: side_by_side(rx=hw.UartRx(4), tx=hw.UartTx(4)),
    "host_link": lambda hw: hw.HostLink(csr_addr_width=8, word_bytes=4, memory_words=16,
                                        max_payload=16, timeout=16, mem_read_latency=2),
    "transposer": lambda hw: hw.BlockTransposer(4, 8),
    "partial_sums": lambda hw: hw.PartialSums(Config(vec=4, lanes=1, tiles=2, col_block=4,
                                                     data_width=8), bus_width=64),
    "window_gather": lambda hw: hw.WindowGather(Config(vec=4, lanes=1, tiles=1, col_block=4,
                                                       data_width=8), addr_width=8,
                                                dim_width=4),
    "row_block_buffer": lambda hw: hw.RowBlockBuffer(Config(vec=4, lanes=1, tiles=1,
                                                            col_block=4, data_width=8,
                                                            max_chunks=4), max_blocks=2),
    # Built from the module's own classes: a map of the real module would bring its own Word.
    "registers": lambda hw: hw.RegisterFile(hw.RegisterMap("probe", [
        hw.Register("CONTROL", [hw.Field("go", 1, "pulse"), hw.Field("mode", 2, "rw")]),
        hw.Register("STATUS", [hw.Field("done", 1, "w1c", cleared_by="go")]),
        hw.Register("COUNT", [hw.Field("count", 40, "ro")], width=64),
        hw.Register("ID", [hw.Field("id", 8, "const", reset=0x5A)]),
    ])),
}


def module_from_source(name: str, path: Path, source: str) -> types.ModuleType:
    """``source`` executed as the module ``name`` of package maskprop.hw, without replacing
    the real module in ``sys.modules`` (its relative imports resolve to the real ones)."""
    module = types.ModuleType(name)
    module.__package__, module.__file__ = "maskprop.hw", str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def real_module(block: str) -> types.ModuleType:
    path = mutants.ROOT / "hw" / f"{block}.py"
    return module_from_source(f"maskprop.hw.{block}", path, path.read_text())


def mutated_module(mutant) -> types.ModuleType:
    return module_from_source(mutant.module, mutant.path, mutants.mutated_source(mutant))


@cache
def real_netlist(block: str) -> str:
    return rtlil.convert(PROBES[block](real_module(block)), name="top", emit_src=False)


def test_catalogue_names_are_unique_and_probed():
    names = [mutant.name for mutant in mutants.CATALOGUE]
    assert len(names) == len(set(names))
    assert {mutant.block for mutant in mutants.CATALOGUE} <= set(PROBES)
    assert all(mutant.tests for mutant in mutants.CATALOGUE)


@pytest.mark.parametrize("name", [mutant.name for mutant in mutants.CATALOGUE])
def test_mutant_fits_the_rtl_and_changes_its_netlist(name):
    mutant = mutants.BY_NAME[name]
    assert mutant.path.read_text().count(mutant.find) == 1, \
        f"{name}: the pattern no longer fits {mutant.path}"
    netlist = rtlil.convert(PROBES[mutant.block](mutated_module(mutant)), name="top",
                            emit_src=False)
    assert netlist != real_netlist(mutant.block)


def test_a_mutant_changes_the_generated_verilog():
    mutant = mutants.BY_NAME["pe-keeps-bubbles"]

    def generated(module):
        return verilog.convert(PROBES[mutant.block](module), name="top", emit_src=False)
    assert generated(mutated_module(mutant)) != generated(real_module(mutant.block))


def test_a_vanished_pattern_fails_loudly():
    mutant = mutants.CATALOGUE[0]
    with pytest.raises(mutants.MutantError, match="occurs 0 times"):
        mutant.apply("nothing to mutate here")
    with pytest.raises(mutants.MutantError, match="occurs 2 times"):
        mutant.apply(mutant.find + mutant.find)


@pytest.mark.sim
def test_a_mutant_is_killed_end_to_end():
    """The whole machinery - subprocess, import hook, mutated RTL, test selection, verdict -
    on the PE that keeps bubbles, which only the handshake reference notices."""
    result = subprocess.run([sys.executable, str(SCRIPTS / "mutants.py"), "--only",
                             "pe-keeps-bubbles", "--no-baseline"],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, COLUMNS="250"))   # no wrapped table cells
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 1 mutants killed" in result.stdout
    assert "test_pe_handshakes[idle+backpressure" in result.stdout


def test_a_mutant_never_reads_the_originals_cached_verilog(monkeypatch):
    """The Verilog cache (``maskprop.flow.verilog``) keys on the RTL's source as imported: the
    mutant loader's ``get_source`` gives the mutated text, so the key changes."""
    import maskprop.flow.verilog as verilog_module
    import maskprop.hw.engine as engine

    verilog_module._generator_digest.cache_clear()
    original = verilog_module._generator_digest()
    mutant = next(m for m in mutants.CATALOGUE if m.module == "maskprop.hw.engine")
    monkeypatch.setattr(engine, "__loader__", mutants._MutatingLoader(mutant, engine.__file__))
    verilog_module._generator_digest.cache_clear()
    try:
        assert verilog_module._generator_digest() not in (None, original)
    finally:
        monkeypatch.undo()
        verilog_module._generator_digest.cache_clear()
