"""Board builds (maskprop.flow.board, ``maskprop build``): the UART's divisor from a board's
clock, the ECP5 PLL's dividers within the part's ranges and in the build plan, every board's
design builds its parameters, bad input refused in one line before any work, and (fpga) the
ULX3S design synthesizes into its part while a board whose part is too small stops after
synthesis with what it lacks and no bitstream."""

import re

import pytest

from maskprop.cli.main import main
from maskprop.flow.board import BOARDS, board_clock, build_board, ecp5_pll, uart_divisor
from maskprop.hw.board_top import BoardTop


@pytest.mark.parametrize("clock, baud, divisor", [(25_000_000, 115_200, 217),
                                                  (12_000_000, 115_200, 104),
                                                  (12_000_000, 3_000_000, 4)])
def test_uart_divisor(clock, baud, divisor):
    assert uart_divisor(clock, baud) == divisor


@pytest.mark.parametrize("clock, baud, message", [
    (25_000_000, 3_000_000, "25000000 / 8 cycles a bit is 3125000 baud (4.2 % off"),
    (12_000_000, 6_000_000, "at least 4 cycles a bit"),
    (25_000_000, 100, "baud must be in [1200, 12000000]")])
def test_unreachable_baud_is_refused(clock, baud, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        uart_divisor(clock, baud)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_board_has_a_buildable_design(name):
    spec = BOARDS[name]
    top = BoardTop(spec.core, memory_words=spec.memory_words,
                   divisor=uart_divisor(board_clock(spec, None)[0], 115_200))
    assert top.info.memory_words == spec.memory_words
    assert top.info.word_bytes == spec.core.bus_bytes
    assert spec.platform_class()().default_clk_frequency == spec.clock_hz
    top._MustUse__used = True                  # checked, not elaborated


def test_cli_refuses_bad_input_in_one_line(capsys, tmp_path):
    assert main(["build", "--board", "ulx3s-85f", "--baud", "3000000",
                 "--out", str(tmp_path / "b")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("maskprop: error: --baud: baud 3000000 is not reachable")
    assert error.count("\n") == 1
    assert not (tmp_path / "b").exists()


@pytest.mark.fpga
@pytest.mark.slow
def test_a_board_too_small_for_the_core_stops_after_synthesis(tmp_path, capsys):
    """The iCEBreaker's UP5K: the smallest core is several times its logic; the report says
    what the part lacks and there is no bitstream (exit status 1)."""
    report = build_board(BOARDS["icebreaker"], tmp_path / "ice")
    assert report.overflow["luts"][1] == 5280 and report.overflow["luts"][0] > 5280
    assert report.bitstream is None and report.fmax_mhz is None
    assert "DOES NOT FIT the iCE40UP5K" in report.format()


def test_board_sim_bench_refuses_a_bad_divisor(script, capsys):
    bench = script("bench_board_sim")
    with pytest.raises(SystemExit) as exit:
        bench.main(["--divisor", "3"])
    assert exit.value.code == 2
    assert "--divisor must be in [4, 65535], not 3" in capsys.readouterr().err


@pytest.mark.fpga
@pytest.mark.slow
def test_synth_only_stops_after_yosys(tmp_path, capsys):
    """``--synth-only`` on a design that does not fit either: the resources and what the part
    lacks, no Fmax, no bitstream, exit status 1; the JSON report says synth_only."""
    out = tmp_path / "report.json"
    assert main(["build", "--board", "icebreaker", "--synth-only", "--out",
                 str(tmp_path / "ice"), "--json", str(out)]) == 1
    import json
    report = json.loads(out.read_text())
    assert report["synth_only"] and report["overflow"] and report["bitstream"] is None
    assert "DOES NOT FIT the iCE40UP5K" in capsys.readouterr().out


@pytest.mark.parametrize("target_mhz", [12.5, 20, 30, 40, 50, 100])
def test_ecp5_pll_makes_the_clock_within_the_parts_ranges(target_mhz):
    pll = ecp5_pll(25_000_000, round(target_mhz * 1e6))
    assert pll.out_hz == target_mhz * 1e6          # these are all exact from 25 MHz
    assert 400e6 <= pll.vco_hz <= 800e6
    assert 3.125e6 <= pll.clock_hz / pll.input <= 400e6
    assert all(1 <= div <= 128 for div in (pll.input, pll.feedback, pll.output))


@pytest.mark.parametrize("spec, clock_hz, message", [
    ("ulx3s-85f", 500_000_000, "the PLL's clock must be in [3.125, 400] MHz, not 500"),
    ("ulx3s-85f", 1_000_000, "the PLL's clock must be in [3.125, 400] MHz, not 1"),
    ("icebreaker", 20_000_000, "a PLL clock is built for the ECP5 boards only, not icebreaker")])
def test_an_impossible_clock_is_refused(spec, clock_hz, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        board_clock(BOARDS[spec], clock_hz)

@pytest.mark.fpga
@pytest.mark.slow
def test_the_ulx3s_design_synthesizes_into_the_part(tmp_path):
    """The ULX3S's BoardTop through the board build's synthesis (abc for abc9, whose
    assertion it otherwise fails): it fits the 85F, its tensor memory once (104 DP16KD; the
    link's port as a separate read port made it 136)."""
    report = build_board(BOARDS["ulx3s-85f"], tmp_path / "ulx3s", synth_only=True)
    assert not report.overflow
    assert report.resources["brams"] == 104 and report.resources["dsps"] == 20
    assert report.bitstream is None and report.fmax_mhz is None


def test_each_board_has_its_default_clock():
    """The ULX3S runs on 20 MHz from its PLL unless told (its design's Fmax is under the
    oscillator's 25); its oscillator's frequency asked for needs no PLL; the iCEBreaker runs
    on its oscillator."""
    hz, pll = board_clock(BOARDS["ulx3s-85f"], None)
    assert hz == 20_000_000 and (pll.input, pll.feedback, pll.output) == (5, 4, 20)
    assert board_clock(BOARDS["ulx3s-85f"], 25_000_000) == (25_000_000, None)
    assert board_clock(BOARDS["icebreaker"], None) == (12_000_000, None)


def test_a_pll_clock_drives_the_design_in_the_build_plan():
    """The plan's netlist: the EHXPLLL with the dividers, its output the design's clock."""
    from maskprop.flow.board import _OnBoard
    spec = BOARDS["ulx3s-85f"]
    _, pll = board_clock(spec, 20_000_000)
    top = BoardTop(spec.core, memory_words=spec.memory_words, divisor=uart_divisor(20_000_000,
                                                                                   115_200))
    plan = spec.platform_class()().build(_OnBoard(top, spec.leds, pll), name="t",
                                         do_build=False)
    rtlil = plan.files["t.il"]
    assert "cell \\EHXPLLL" in rtlil
    for name, value in (("CLKI_DIV", 5), ("CLKFB_DIV", 4), ("CLKOP_DIV", 20)):
        assert re.search(rf"parameter \\{name} {value}\b", rtlil), name
    assert 'attribute \\FREQUENCY_PIN_CLKOP "20"' in rtlil


def test_cli_refuses_an_impossible_clock_in_one_line(capsys, tmp_path):
    assert main(["build", "--board", "icebreaker", "--clock-mhz", "20",
                 "--out", str(tmp_path / "b")]) == 2
    error = capsys.readouterr().err
    assert error == ("maskprop: error: --clock-mhz: a PLL clock is built for the ECP5 boards "
                     "only, not icebreaker\n")
    assert not (tmp_path / "b").exists()
