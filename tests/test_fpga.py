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


#: nextpnr's utilisation kinds that count each of DEVICE_CAPACITY's kinds.
PNR_KINDS = {"ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "dsps": "MULT18X18D",
                      "brams": "DP16KD"},
             "ice40": {"luts": "ICESTORM_LC", "ffs": "ICESTORM_LC", "dsps": "ICESTORM_DSP",
                       "brams": "ICESTORM_RAM"}}


def _check_capacity(report):
    """The device's capacity as the flow knows it is what nextpnr says it has."""
    assert report.capacity == fpga.DEVICE_CAPACITY[report.device]
    assert report.overflow == {}
    seen = 0
    for kind, pnr_kind in PNR_KINDS[report.target].items():
        if pnr_kind in report.pnr_utilisation:
            assert report.pnr_utilisation[pnr_kind]["available"] == report.capacity[kind], kind
            seen += 1
    assert seen >= 2


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
    _check_capacity(report)
    # nextpnr's critical path of the clk domain is the period its Fmax is computed from.
    path = report.critical_path
    assert path["clock"] == report.clock
    assert path["delay_ns"] == pytest.approx(1000 / report.fmax_mhz, abs=0.01)
    assert path["logic_ns"] + path["routing_ns"] == pytest.approx(path["delay_ns"], abs=0.002)
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
    report = fpga.run_flow(MulAdd(), "muladd", "ecp5", tmp_path, seed=1, router="router2")
    _check_common(report, "ecp5", tmp_path)
    assert report.router == "router2" and "--router" in report.commands[1]
    assert report.commands[1][report.commands[1].index("--router") + 1] == "router2"
    assert "seed 1, router2" in report.format()
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


def test_a_design_larger_than_the_device_is_not_placed(tmp_path, capsys):
    """Ten 16 x 16 multipliers on the UP5K's eight DSPs: refused after synthesis, before
    nextpnr, naming what is missing; synthesis alone reports the overflow."""
    report = fpga.run_flow(MulAdd(lanes=10), "muladd", "ice40", tmp_path,
                           place_and_route=False)
    assert report.overflow == {"dsps": [10, 8]}
    assert "DOES NOT FIT the iCE40UP5K: SB_MAC16 10 > 8" in report.format()
    # Placing it is refused: on the command line one line of what is missing, exit status 1
    # (a tool's failure, not bad input); here with a PE of 10 lanes.
    status = main(["flow", "pe", "--target", "ice40", "--vec", "10", "--lanes", "10",
                   "--out", str(tmp_path / "pe")])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("maskprop: flow failed: sparse_pe does not fit the iCE40UP5K "
                          "(SB_MAC16 10 of 8; Yosys counts")
    assert len(err.splitlines()) == 1
    assert (tmp_path / "pe" / "sparse_pe_ice40_stat.json").is_file()
    assert not list((tmp_path / "pe").glob("*nextpnr*"))


def test_unknown_target(tmp_path):
    dut = MulAdd()
    with pytest.raises(ValueError, match=r"target.*'ecp5'.*'ice40'.*'gowin'"):
        fpga.run_flow(dut, "muladd", "gowin", tmp_path)
    with pytest.raises(ValueError, match=r"unknown ecp5 device 'LFE5U-99F'"):
        fpga.run_flow(dut, "muladd", "ecp5", tmp_path, device="LFE5U-99F")
    with pytest.raises(ValueError, match=r"router must be one of router1, router2, not 'maze'"):
        fpga.run_flow(dut, "muladd", "ecp5", tmp_path, router="maze")
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


#: A small core (2 tiles of 2 lanes, 4 x 8-bit chunks: a 32-bit memory port), as small as the
#: core goes: what is left is its fixed control (registers, DMA, address generator, command
#: check), about 4,000 LUT4 and 26 DSPs on ECP5.
SMALL_CORE = ["--vec", "4", "--lanes", "2", "--tiles", "2", "--data-width", "8", "--acc-width",
              "20", "--col-block", "2", "--max-chunks", "4", "--max-cols", "8", "--x-words", "64",
              "--addr-width", "16", "--max-burst", "4", "--max-outstanding", "2"]


@pytest.mark.slow
def test_cli_flow_core(tmp_path, capsys):
    """``maskprop flow core`` end to end through Yosys, for the LFE5U-85F (the core's device on
    ecp5) on a small configuration, synthesis only: placing and routing even this one takes
    nextpnr several minutes on the 85F (docs/fpga.md has the full run of the FPGA preset).
    The report says what was built, that it fits, and where each memory went: the X
    scratchpad and the tile array's Y buffer in RAM, not registers."""
    report_path = tmp_path / "report.json"
    status = main(["flow", "core", "--target", "ecp5", "--synth-only", *SMALL_CORE,
                   "--out", str(tmp_path / "work"), "--json", str(report_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    report = json.loads(report_path.read_text())
    assert report["block"] == "core" and report["top"] == "maskprop_core"
    assert report["config"]["x_words"] == 64 and report["config"]["addr_width"] == 16
    assert report["config"]["array"]["tiles"] == 2 and report["config"]["array"]["vec"] == 4
    assert report["device"] == "LFE5U-85F" and report["method"] == "harness"
    assert report["router"] == "router1"                 # nextpnr's default, not asked for
    assert not report["routed"] and report["fmax_mhz"] is None
    assert report["capacity"] == fpga.DEVICE_CAPACITY["LFE5U-85F"] and report["overflow"] == {}
    assert report["luts"] > 0 and report["ffs"] > 0
    assert report["dsps"] >= 2 * 2                     # at least the tiles' multipliers
    memories = report["memories"]
    assert memories["x_pad"] in ("DP16KD", "PDPW16KD", "TRELLIS_DPR16X4")
    assert memories["array.y_buffer"] in ("DP16KD", "PDPW16KD", "TRELLIS_DPR16X4")
    assert report["brams"] + report["lutrams"] > 0
    # The harness: every port bit but clk and rst in one of its shift chains.
    assert report["harness"]["ffs"] == report["port_bits"] - 2
    assert "maskprop_core on ecp5 LFE5U-85F" in out and "synthesis only" in out
    assert "x_pad " in out


def _doc_report(**fields):
    """A ``maskprop flow core --json`` report with the fields docs/fpga.md's table reads."""
    report = dict(block="core", config={"array": {"max_cols": 128}, "x_words": 4096},
                  target="ecp5", device="LFE5U-85F", package="CABGA381", speed=6,
                  method="harness", seed=1, top="maskprop_core", luts=20000, ffs=8000, dsps=38,
                  brams=182, lutrams=342, routed=True, router="router2", fmax_mhz=41.25,
                  wall_seconds=3600.4,
                  capacity=fpga.DEVICE_CAPACITY["LFE5U-85F"], overflow={},
                  critical_path=dict(delay_ns=24.24, logic_ns=9.01, routing_ns=14.5,
                                     logic_steps=31, through_dsp=True,
                                     signals=[f"s{k}" for k in range(10)]))
    report.update(fields)
    return report


@pytest.mark.parametrize("cell, signal", [
    ("dut.o__payload_TRELLIS_FF_Q_DI_CCU2C_S0_B0_LUT4_Z", "o__payload"),
    ("\\$8_TRELLIS_FF_Q_7", "$8"),
    ("dut.x_pad.0.36", "x_pad"),
    ("dut.x_pad.0.7_DOB8_LUT4_C_Z_PFUMX_BLUT_Z_PFUMX_Z_2_ALUT_LUT4_Z", "x_pad"),
    ("dut.array.x_buffer.0.64_DI_LUT4_B", "array.x_buffer"),
    ("dut.array.x_buffer.0.178$DPRAM_COMB3", "array.x_buffer"),
    ("dut.array.x__payload.last_LUT4_A_1_Z_LUT4_Z_1", "array.x__payload.last"),
    ("dut.array.pe0.$18_MULT18X18D_P9", "array.pe0.$18"),
    ("dut.array.tile0.DOUT_TRELLIS_FF_Q", "array.tile0.DOUT"),
])
def test_critical_path_cells_are_named_after_their_signals(cell, signal):
    """nextpnr names a packed cell after the net it drives or reads, with what Yosys and
    nextpnr appended; the summary names the design's signal."""
    assert fpga._signal(cell) == signal


def test_device_table_for_the_docs():
    """docs/fpga.md's table of the core (scripts/make_docs.py part fpga-core): each report a row
    labelled by how its configuration differs from the defaults, counts with their share of
    the device (bold where it does not fit), Fmax or why there is none; then each placed
    configuration's critical path, with the ECP5 DSP caveat."""
    default = _doc_report(config={"array": {"max_cols": 128, "vec": 16}, "x_words": 4096},
                          routed=False, fmax_mhz=None, brams=530, overflow={"brams": [530, 208]},
                          critical_path=None, wall_seconds=1092.8)
    preset = _doc_report(config={"array": {"max_cols": 32, "vec": 16}, "x_words": 2048})
    text = fpga.device_table([default, preset])
    lines = text.splitlines()
    assert lines[0] == ("ecp5 LFE5U-85F-6 CABGA381 (83,640 LUT4, 156 MULT18X18D, 208 DP16KD), "
                        "harness, nextpnr seed 1 (router2)")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines
            if line.startswith("| ") and not line.startswith("| configuration")]
    assert rows[0] == ["default", "20,000 (24 %)", "8,000 (10 %)", "38 (24 %)",
                       "**530 (255 %)**", "342", "does not fit (synthesis only)", "1093 s"]
    assert rows[1] == ["max_cols 32, x_words 2048", "20,000 (24 %)", "8,000 (10 %)",
                       "38 (24 %)", "182 (88 %)", "342", "41.2 MHz", "3600 s"]
    path = lines[-1]
    assert path.startswith("Critical path of max_cols 32, x_words 2048: 24.2 ns, 9.0 ns of logic "
                           "in 31 cell delays and 14.5 ns of routing, through `s0` → `s1`")
    assert "`s6` → … → `s9`" in path and "`s7`" not in path
    assert "MULT18X18D" in path and "lower bound" in path
    with pytest.raises(ValueError, match="different devices"):
        fpga.device_table([default, _doc_report(device="LFE5U-25F")])
