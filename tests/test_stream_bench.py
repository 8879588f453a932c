# amaranth: UnusedElaboratable=no
"""The cocotb stream bench: it refuses, before building anything, to run a top level whose inputs
it would not all drive (a floating input reads 0 on Verilator and x on Icarus), and its
scoreboard (the one every bench uses) fails a run on generated Verilog that delivers a beat out
of order, or one beat more than expected, even after the last input has gone."""

import random
import re

import pytest
from amaranth import Module
from amaranth.hdl import Assert
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.base.config import Config
from maskprop.flow.verilog import generate_verilog
from maskprop.hw.engine import SparseDotEngine
from maskprop.hw.sparse_pe import SparseGradPE
from maskprop.hw.tile_array import TileArray
from maskprop.tb.runner import run_stream_bench, top_level_inputs
from maskprop.tb.stimulus import random_index_beats, seed_from_env


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
    """The names the testbench checks for x/z are exactly the input ports of the Verilog
    Amaranth emits."""
    config = Config(max_chunks=4, max_cols=8)
    names = top_level_inputs(TileArray(config), "tile_array",
                             streams={"load": [], "rows": [], "x": []},
                             drive={"dense": 0, "clear": 0, "chunk_shift": 0,
                                    "y_half": 0})
    verilog = generate_verilog(TileArray(config), "tile_array")
    top = verilog[verilog.index("module tile_array("):]
    top = top[:top.index("endmodule")]
    inputs = set(re.findall(r"input\s+(?:wire\s+)?(?:\[[^\]]*\]\s*)?\\?(\w+)", top))
    assert set(names) == inputs - {"clk", "rst"}
    with pytest.raises(ValueError, match="x not driven"):
        top_level_inputs(TileArray(config), "tile_array", streams={"load": [], "rows": []},
                         drive={"dense": 0, "clear": 0, "chunk_shift": 0,
                                    "y_half": 0})


@pytest.mark.sim
def test_scoreboard_fails_the_cocotb_bench(tmp_path):
    """The PE's Verilog, correct, run against wrong expectations: the bench must fail a beat
    out of order (at its index, both values shown) and a beat beyond the expected ones that
    comes out after every input has been taken (in the drain window); and pass the right
    expectations."""
    seed = seed_from_env(default=5)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    inputs, expected = random_index_beats(random.Random(seed), vec=8, lanes=3, data_width=8,
                                          count=40)
    dut = SparseGradPE(vec=8, lanes=3, data_width=8)

    def run(want, name, **traffic):
        result = run_stream_bench(dut, "sparse_pe", inputs, want, build_dir=tmp_path,
                                  seed=seed, run_name=name, **traffic)
        return result, result.run.log.read_text()

    result, _ = run(expected, "right", idle=0.3, backpressure=0.4)
    assert result.passed and len(result.outputs) == len(expected)

    swapped = list(expected)
    first, second = next((k, k + 1) for k in range(len(swapped) - 1)
                         if swapped[k] != swapped[k + 1])
    swapped[first], swapped[second] = swapped[second], swapped[first]
    result, log = run(swapped, "reordered", idle=0.3, backpressure=0.4)
    assert not result.passed
    assert re.search(rf"o: beat {first} \(cycle \d+\) is 0x[0-9a-f]+, expected 0x[0-9a-f]+ "
                     rf"\(it is expected beat {second}: reordered", log), log[-3000:]
    assert len(result.outputs) == first + 1       # recorded up to the failing beat

    # Unstalled, the last input goes in the cycle before the second-to-last result comes out:
    # the last result then leaves in the drain window.
    result, log = run(expected[:-1], "surplus")
    assert not result.passed
    assert "into the drain window, after all 39 expected beats" in log, log[-3000:]


class _Forbidding(wiring.Component):
    """A registered stream pass-through with one invariant: its input is never 0xA5."""

    def __init__(self):
        byte = data.StructLayout({"byte": 8})
        super().__init__({"i": In(stream.Signature(byte)), "o": Out(stream.Signature(byte))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        m.d.sync += Assert(~self.i.valid | (self.i.payload.byte != 0xA5), "a forbidden byte")
        return m


@pytest.mark.sim
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_a_failing_rtl_assertion_fails_the_bench(sim, tmp_path):
    """The RTL's Amaranth ``Assert``\\ s are checked in the cocotb benches on both simulators
    (Verilator compiles them only with --assert; Icarus only prints a failing one unless it is
    made fatal): a run whose every beat the scoreboard accepts still fails when one fires."""
    def run(payloads, name):
        beats = [{"byte": byte} for byte in payloads]
        return run_stream_bench(_Forbidding(), "forbidding", beats, beats,
                                build_dir=tmp_path, sim=sim, seed=1, run_name=name)
    assert run([1, 2, 3], "clean").passed
    failed = run([1, 0xA5, 3], "forbidden")
    assert not failed.passed
    assert "a forbidden byte" in failed.run.log.read_text()
