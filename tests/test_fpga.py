"""Open-source FPGA flow (maskprop.flow.fpga): Yosys + nextpnr from YoWASP on a small test block."""

import json
from pathlib import Path

import pytest
from amaranth.hdl import Fragment, Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from maskprop.flow import fpga
from maskprop.cli.main import main

pytestmark = pytest.mark.fpga

LANES = 4
WIDTH = 16
OUT_WIDTH = 2 * WIDTH + 2          # sum of 4 signed 16x16 products


class MulAdd(wiring.Component):
    """Registered 4-lane 16x16 signed multiply-add: ``o = sum(a[k] * b[k])``, two stages.

    ``i.payload`` packs a[0..3] then b[0..3] (16 bits each); the pipeline stalls as a whole
    when the output is valid and not accepted.
    """

    def __init__(self, lanes=LANES, width=WIDTH):
        self.lanes = lanes
        self.width = width
        super().__init__({
            "i": In(stream.Signature(unsigned(2 * lanes * width))),
            "o": Out(stream.Signature(signed(2 * width + 2))),
        })

    def elaborate(self, platform):
        m = Module()
        w, n = self.width, self.lanes
        a = [self.i.payload[k * w:(k + 1) * w].as_signed() for k in range(n)]
        b = [self.i.payload[(n + k) * w:(n + k + 1) * w].as_signed() for k in range(n)]
        products = [Signal(signed(2 * w), name=f"product{k}") for k in range(n)]
        products_valid = Signal()
        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)
        with m.If(advance):
            m.d.sync += products_valid.eq(self.i.valid)
            m.d.sync += [p.eq(x * y) for p, x, y in zip(products, a, b)]
            m.d.sync += self.o.valid.eq(products_valid)
            m.d.sync += self.o.payload.eq(sum(products))
        return m


# Port bits of MulAdd: clk, rst, i (128 + valid + ready), o (34 + valid + ready).
PORT_BITS = 2 + (2 * LANES * WIDTH + 2) + (OUT_WIDTH + 2)


def _check_common(report, target, tmp_path):
    assert report.target == target
    assert report.top == "muladd"
    assert report.luts > 0
    assert report.ffs > 0
    # Registers: 4 products (32 bit) + their valid + the output payload and valid.
    assert report.ffs >= LANES * 2 * WIDTH + OUT_WIDTH + 2
    assert report.fmax_mhz is not None and 0 < report.fmax_mhz < 1000
    assert report.fmax_by_clock[report.clock] == report.fmax_mhz
    assert report.timing_met == (report.fmax_mhz >= report.freq_target_mhz)
    assert report.port_bits == PORT_BITS
    assert report.brams == 0
    assert len(report.commands) == 2
    assert report.routed
    # nextpnr's critical path of the clk domain is the period its Fmax is computed from.
    path = report.critical_path
    assert path["clock"] == report.clock
    assert path["delay_ns"] == pytest.approx(1000 / report.fmax_mhz, abs=0.01)
    assert path["logic_ns"] + path["routing_ns"] <= path["delay_ns"]
    assert path["logic_steps"] >= 1 and path["nets"] and path["signals"]
    assert path["from"] and path["to"]
    for log in report.logs.values():
        assert Path(log).is_file() and Path(log).is_relative_to(tmp_path.resolve())
    assert report.wall_seconds > 0
    # Machine-readable and human-readable forms.
    data = json.loads(json.dumps(report.as_dict()))
    assert data["luts"] == report.luts and data["fmax_mhz"] == report.fmax_mhz
    text = str(report)
    assert "muladd" in text and target in text and "MHz" in text
    assert text == report.format()


def test_ecp5_out_of_context(tmp_path):
    report = fpga.run_flow(MulAdd(), "muladd", "ecp5", tmp_path, seed=1, harness=False)
    _check_common(report, "ecp5", tmp_path)
    assert report.device == "LFE5U-25F" and report.package == "CABGA381" and report.speed == 6
    assert report.method == "out-of-context"
    assert report.pins == 0 and report.harness is None
    assert report.clock == "clk"
    assert report.freq_target_mhz == 200
    # One MULT18X18D per 16x16 lane; the yosys numbers agree with what nextpnr placed.
    assert report.dsps == LANES
    assert report.pnr_utilisation["MULT18X18D"]["used"] == report.dsps
    assert report.pnr_utilisation["TRELLIS_FF"]["used"] == report.ffs
    assert report.luts == report.cells.get("LUT4", 0) + 2 * report.cells.get("CCU2C", 0)
    # Out of context the input ports are untimed, so the DSPs (fed from them) are off the
    # path: it is the products' sum into the output register, named after Amaranth's signals
    # and defined in the block's generated Verilog.
    path = report.critical_path
    assert not path["through_dsp"]
    assert path["signals"][-1] == "o__payload"
    assert any(line.startswith("muladd.v:") for line in path["verilog"])
    assert "critical path" in report.format() and "-> o__payload" in report.format()


def test_ecp5_harness_is_the_default(tmp_path):
    report = fpga.run_flow(MulAdd(), "muladd", "ecp5", tmp_path, seed=1)
    _check_common(report, "ecp5", tmp_path)
    assert report.method == "harness" and report.pins == 5
    assert report.dsps == LANES and report.harness["ffs"] == PORT_BITS - 2


def test_ice40_harness(tmp_path):
    report = fpga.run_flow(MulAdd(), "muladd", "ice40", tmp_path, seed=1)
    _check_common(report, "ice40", tmp_path)
    assert report.device == "iCE40UP5K" and report.package == "sg48" and report.speed is None
    assert report.method == "harness" and report.pnr_top == "muladd_harness"
    assert report.pins == 5                          # clk, rst, si, ld, so
    assert report.freq_target_mhz == 100
    assert report.dsps == LANES                      # SB_MAC16 on the UltraPlus
    assert report.pnr_utilisation["ICESTORM_DSP"]["used"] == report.dsps
    # The harness registers every data port bit (not clk/rst) and is not counted in the block.
    assert report.harness["ffs"] == PORT_BITS - 2
    assert report.harness["dsps"] == 0
    assert report.pnr_utilisation["ICESTORM_LC"]["used"] >= report.luts + report.harness["luts"]


def test_synth_only(tmp_path):
    """``place_and_route=False``: the same Yosys resources, no nextpnr run, no Fmax."""
    report = fpga.run_flow(MulAdd(), "muladd", "ice40", tmp_path, place_and_route=False)
    assert not report.routed
    assert report.dsps == LANES and report.luts > 0
    assert report.ffs >= LANES * 2 * WIDTH + OUT_WIDTH + 2
    assert report.fmax_mhz is None and report.critical_path is None
    assert report.timing_met is None and report.pnr_utilisation == {} and report.pins == 0
    assert len(report.commands) == 1 and "nextpnr" not in report.step_seconds
    assert set(report.logs) == {"yosys", "yosys_stat"}
    assert not list(tmp_path.glob("*nextpnr*"))
    assert "not placed and routed (synthesis only)" in report.format()
    assert json.loads(json.dumps(report.as_dict()))["routed"] is False


def test_assertion_messages_are_not_synthesised(tmp_path):
    """An Amaranth ``Assert`` with a message becomes an assertion (dropped by -noassert) and a
    $write of the message, which Yosys keeps as a $print cell, and with it the logic of the
    condition; the flow deletes them."""
    from amaranth.hdl import Assert

    class Checked(MulAdd):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.sync += Assert(self.i.payload[:8] != 0xA5, "a forbidden byte")
            return m
    report = fpga.run_flow(Checked(), "muladd", "ice40", tmp_path, place_and_route=False)
    assert "$write" in (tmp_path / "muladd.v").read_text()
    assert not any(cell.startswith("$") for cell in report.cells), report.cells
    plain = fpga.run_flow(MulAdd(), "muladd", "ice40", tmp_path / "plain",
                          place_and_route=False)
    assert report.luts == plain.luts and report.ffs == plain.ffs


def test_unknown_target(tmp_path):
    dut = MulAdd()
    with pytest.raises(ValueError, match=r"target.*'ecp5'.*'ice40'.*'gowin'"):
        fpga.run_flow(dut, "muladd", "gowin", tmp_path)
    with pytest.raises(ValueError, match=r"unknown ecp5 device 'LFE5U-99F'"):
        fpga.run_flow(dut, "muladd", "ecp5", tmp_path, device="LFE5U-99F")
    assert not any(tmp_path.iterdir())        # rejected before anything was generated
    Fragment.get(dut, None)                   # still elaboratable (and no UnusedElaboratable)


@pytest.mark.parametrize("target", ["ecp5", "ice40"])
def test_cli_flow_tree(target, tmp_path, capsys):
    """``maskprop flow tree`` end to end on a small accumulation tree."""
    report_path = tmp_path / "report.json"
    status = main(["flow", "tree", "--target", target, "--lanes", "2", "--data-width", "8",
                   "--acc-width", "20", "--out", str(tmp_path / "work"),
                   "--json", str(report_path)])
    assert status == 0
    report = json.loads(report_path.read_text())
    assert report["top"] == "accumulation_tree" and report["target"] == target
    # 2 lanes of 16-bit products, one registered tree level: the 17-bit sum + valid/first/last;
    # then the 20-bit accumulator + overflow + o.valid.
    assert report["ffs"] == 17 + 3 + 20 + 2
    assert report["luts"] > 0 and report["fmax_mhz"] > 0
    assert "accumulation_tree on " + target in capsys.readouterr().out


def test_cli_flow_engine_compare_dense(tmp_path, capsys):
    """The cost of zero skipping as a measured ratio: sparse and dense-only engine, one run."""
    report_path = tmp_path / "report.json"
    status = main(["flow", "engine", "--target", "ecp5", "--compare-dense", "--vec", "8",
                   "--lanes", "2", "--data-width", "8", "--acc-width", "24",
                   "--out", str(tmp_path / "work"), "--json", str(report_path)])
    assert status == 0
    sparse, dense = json.loads(report_path.read_text())
    assert (sparse["top"], dense["top"]) == ("sparse_dot_engine", "dense_dot_engine")
    # Both have the same multipliers; the decoder and its chunk register cost logic.
    assert sparse["dsps"] == dense["dsps"] == 2
    assert sparse["luts"] > dense["luts"] and sparse["ffs"] > dense["ffs"]
    assert "zero-skipping cost: LUT4 x" in capsys.readouterr().out


def test_cli_flow_array_with_its_assertions(tmp_path, capsys):
    """The tile array states its lockstep invariants as Amaranth ``Assert``s; they reach the
    Verilog as SystemVerilog assertions, which synthesis must read (and drop) rather than fail on.
    A small array so that place and route take seconds."""
    report_path = tmp_path / "report.json"
    status = main(["flow", "array", "--target", "ice40", "--vec", "4", "--lanes", "2",
                   "--tiles", "2", "--data-width", "8", "--acc-width", "20", "--col-block", "2",
                   "--max-chunks", "4", "--max-cols", "8", "--out", str(tmp_path / "work"),
                   "--json", str(report_path)])
    assert status == 0, capsys.readouterr().err
    verilog = (tmp_path / "work" / "tile_array.v").read_text()
    assert "assert" in verilog           # the case this test exists for
    report = json.loads(report_path.read_text())
    assert report["top"] == "tile_array" and report["target"] == "ice40"
    assert report["luts"] > 0 and report["ffs"] > 0 and report["fmax_mhz"] > 0
    assert "tile_array on ice40" in capsys.readouterr().out
