"""Board builds (maskprop.flow.board, ``maskprop build``): the UART's divisor from a board's
clock, every board's design builds its parameters, bad input refused in one line before any
work, and (fpga) a board whose part is too small stops after synthesis with what it lacks and
no bitstream."""

import re

import pytest

from maskprop.cli.main import main
from maskprop.flow.board import BOARDS, build_board, uart_divisor
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
                   divisor=uart_divisor(spec.clock_hz, 115_200))
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
