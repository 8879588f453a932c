"""The generated tables of docs/*.md: the marker regions, the renderers, and scripts/make_docs.py
end to end on a small case (AlexNet only, a few seconds)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from maskprop.evaluation import doc_tables as tables

ROOT = Path(__file__).resolve().parent.parent
MAKE_DOCS = ROOT / "scripts" / "make_docs.py"


def region(name, command="cmd", body="old table"):
    return f"{tables.begin_marker(name, command)}\n{body}\n{tables.END}"


# The prose quotes an end marker inline (as docs/usage.md does): only a marker on a line of its
# own counts.
PAGE = ("# A page\n\nProse before, with a | pipe, <!-- a comment --> and a quoted "
        f"`{tables.END}`.\n\n"
        f"{region('first')}\n\nProse between.\n\n{region('second')}\n\nProse after.\n")


def test_replace_region_rewrites_that_region_only(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    assert tables.replace_region(page, "first", "new command --x", "| a |\n|---|\n| 1 |")
    text = page.read_text()
    expected = PAGE.replace(region("first"),
                            region("first", "new command --x", "| a |\n|---|\n| 1 |"))
    assert text == expected
    assert tables.regions(text)["first"][2] == "new command --x"
    # Idempotent: the same table again changes nothing, not even the file's bytes.
    assert not tables.replace_region(page, "first", "new command --x", "| a |\n|---|\n| 1 |")
    assert page.read_text() == expected


@pytest.mark.parametrize("content, message", [
    ("# no markers at all\n", "has no generated region 'first'"),
    (f"{region('second')}\n", "has no generated region 'first'"),
    (f"{region('first')}\n{region('first')}\n", "region 'first' twice"),
    (f"{tables.begin_marker('first', 'c')}\nno end\n", "has no <!-- end generated -->"),
    (f"{tables.begin_marker('first', 'c')}\n{region('second')}\n", "region 'first' has no"),
    (f"{tables.END}\n{region('first')}\n", "without a begin marker"),
    (f"{region('first')}\n{tables.END}\n", "without a begin marker"),
])
def test_a_page_without_its_region_is_refused(tmp_path, content, message):
    page = tmp_path / "page.md"
    page.write_text(content)
    with pytest.raises(tables.DocsError, match=re.escape(message)) as error:
        tables.replace_region(page, "first", "cmd", "table")
    assert "\n" not in str(error.value)
    assert page.read_text() == content


def test_marker_names_and_commands_are_checked():
    with pytest.raises(tables.DocsError, match="lower-case"):
        tables.begin_marker("Eval", "cmd")
    with pytest.raises(tables.DocsError, match="one line"):
        tables.begin_marker("eval", "a -->")


def numbers(cell: str) -> list:
    return [float(n.replace(",", "")) for n in re.findall(r"-?\d[\d,]*\.?\d*", cell)]


def to_cents(values) -> list:
    """``values`` as the tables print them, to two decimals: compared exactly, since
    ``round(v, 2)`` is the double nearest the printed decimal, as ``float("1.23")`` is."""
    return [round(v, 2) for v in values]


def table_rows(text: str, header_start: str) -> list:
    """The body rows of the first table whose header starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_bench_digits_table_shows_the_json():
    row = dict(variant="plain", layer="conv2", pass_name="backward_data", outputs_dense=4096,
               outputs_sparse=2172, dense_cycles=36864, sparse_cycles=6850, speedup=36864 / 6850,
               ideal=20.44, efficiency=36864 / 6850 / 20.44)
    empty = dict(row, layer="conv9", outputs_sparse=0, sparse_cycles=10, speedup=3686.4,
                 ideal=None, efficiency=None)
    total = dict(variant="plain", passes="training_step", dense_cycles=130304,
                 sparse_cycles=42592, speedup=130304 / 42592, ideal=5.59,
                 efficiency=130304 / 42592 / 5.59)
    payload = dict(block="array", config=dict(vec=16, lanes=4, tiles=4), simulator="verilator",
                   seconds=40.2, rows=[dict(row, **{"pass": "backward-data"}),
                                       dict(empty, **{"pass": "backward-data"})],
                   totals=[total])
    text = tables.bench_digits_table(payload)
    assert text.startswith("array: 4 tiles x 4 lanes, vec 16; 40 s on Verilator\n")
    rows = table_rows(text, "| network | layer | pass |")
    assert rows[0][:4] == ["plain", "conv2", "backward-data", "2172 of 4096"]
    assert numbers(" ".join(rows[0][4:])) == to_cents(
        [36864, 6850, row["speedup"], 20.44, row["efficiency"]])
    assert rows[1][-2:] == ["no work", "no work"]
    assert rows[2][:3] == ["plain", "all", "**training step**"]
    assert numbers(" ".join(rows[2][4:])) == to_cents(
        [130304, 42592, total["speedup"], 5.59, total["efficiency"]])
    assert len(rows) == 3


def test_bench_digits_table_of_the_core_shows_busy_compute_bytes_and_operands():
    row = dict(variant="plain", layer="conv2", pass_name="backward_weight", outputs_dense=1152,
               outputs_sparse=1152, dense_cycles=10059, sparse_cycles=6213,
               speedup=10059 / 6213, ideal=5.11, efficiency=10059 / 6213 / 5.11,
               dense_compute=8832, sparse_compute=3954, compute_speedup=8832 / 3954,
               dense_bytes=22784, sparse_bytes=23040, operands=["a", "dz"])
    data = dict(row, pass_name="backward_data", operands=["", ""])
    total = dict(variant="plain", passes="backward", dense_cycles=18861, sparse_cycles=10037,
                 speedup=18861 / 10037, ideal=4.9, efficiency=18861 / 10037 / 4.9,
                 dense_compute=17296, sparse_compute=7254, compute_speedup=17296 / 7254,
                 dense_bytes=29184, sparse_bytes=62208)
    payload = dict(block="core", config=dict(vec=16, lanes=4, tiles=4), x_words=4096,
                   simulator="verilator", seconds=61.0,
                   rows=[dict(row, **{"pass": "backward-weight"}),
                         dict(data, **{"pass": "backward-data"})], totals=[total])
    text = tables.bench_digits_table(payload)
    assert text.startswith("core: 4 tiles x 4 lanes, vec 16, X scratchpad 4096 words, memory on "
                           "chip without pauses; 61 s on Verilator\n")
    rows = table_rows(text, "| network | layer | pass |")
    assert rows[0][:4] == ["plain", "conv2", "backward-weight", "1152 of 1152"]
    assert numbers(" ".join(rows[0][4:-1])) == to_cents(
        [10059, 6213, row["speedup"], 8832, 3954, row["compute_speedup"], 22784, 23040, 5.11,
         row["efficiency"]])
    assert rows[0][-1] == "A / dZ" and rows[1][-1] == ""
    assert rows[2][:3] == ["plain", "all", "**backward**"]
    assert numbers(" ".join(rows[2][4:-1])) == to_cents(
        [18861, 10037, total["speedup"], 17296, 7254, total["compute_speedup"], 29184, 62208,
         4.9, total["efficiency"]])
    assert len(rows) == 3


def flow_report(**fields):
    report = dict(target="ecp5", device="LFE5U-25F", package="CABGA381", speed=6, luts=100,
                  ffs=50, dsps=4, brams=0, lutrams=0, fmax_mhz=100.0, seed=1, method="harness",
                  wall_seconds=30.0)
    return {**report, **fields}


def test_flow_tables_show_the_reports_and_their_ratios():
    sparse = flow_report(luts=4432, ffs=1267, fmax_mhz=90.4)
    dense = flow_report(luts=792, ffs=618, fmax_mhz=129.0)
    rows = table_rows(tables.flow_compare_table(sparse, dense), "| engine |")
    assert rows[0] == ["sparse (zero-skipping decoder)", "4432", "1267", "4", "0", "0",
                       "90.4 MHz"]
    assert rows[1] == ["dense-only (no decoder)", "792", "618", "4", "0", "0", "129.0 MHz"]
    assert rows[2] == ["ratio sparse / dense-only", "×5.60", "×2.05", "same", "same", "same",
                       "×0.70"]
    ice40 = flow_report(target="ice40", device="iCE40UP5K", package="SG48", speed=None,
                        fmax_mhz=None)
    rows = table_rows(tables.flow_table([("tree", sparse), ("tree", ice40)]), "| block |")
    assert rows[0][:3] == ["tree", "ecp5", "LFE5U-25F-6 CABGA381"]
    assert rows[1][:3] == ["tree", "ice40", "iCE40UP5K SG48"]
    assert rows[1][-2] == "no clock"
    synthesized = flow_report(routed=False, fmax_mhz=None)
    rows = table_rows(tables.flow_table([("core", synthesized)]), "| block |")
    assert rows[0][-2] == "not routed"


def test_dsp_floor_table_shows_each_fixture_and_says_whether_the_target_is_reached():
    path = dict(delay_ns=7.03, logic_ns=4.45, routing_ns=2.58, through_dsp=True)
    rows = [flow_report(label="16-bit product", device="LFE5U-85F", luts=0, ffs=64, dsps=1,
                        fmax_mhz=142.2, routed=True, critical_path=path),
            flow_report(label="8-bit product", device="LFE5U-85F", luts=0, ffs=32, dsps=1,
                        fmax_mhz=142.3, routed=True, critical_path=dict(path, routing_ns=2.57))]
    text = tables.dsp_floor_table({"device": "LFE5U-85F", "target_mhz": 150.0, "rows": rows})
    assert text.startswith("ecp5 LFE5U-85F-6 CABGA381, nextpnr seed 1, harness\n")
    assert table_rows(text, "| between registers |") == [
        ["16-bit product", "0", "64", "1", "142.2 MHz", "7.03 ns", "4.45 ns", "2.58 ns", "yes"],
        ["8-bit product", "0", "32", "1", "142.3 MHz", "7.03 ns", "4.45 ns", "2.57 ns", "yes"]]
    assert text.endswith("The fastest, 8-bit product, stays below 150 MHz (6.67 ns): 142.3 MHz.")
    text = tables.dsp_floor_table({"device": "LFE5U-85F", "target_mhz": 140.0, "rows": rows})
    assert "8-bit product, reaches 140 MHz (7.14 ns)" in text
    with pytest.raises(tables.DocsError, match="placed and routed"):
        tables.dsp_floor_table({"target_mhz": 150.0, "rows": [dict(rows[0], routed=False)]})


def test_board_table_shows_each_board_against_its_part():
    fits = dict(board="ulx3s-85f", device="LFE5U-85F", clock_mhz=25.0, overflow={},
                resources=dict(luts=31448, ffs=14259, dsps=20, brams=164, lutrams=533),
                fmax_mhz=27.5, timing_met=True, bitstream="b.bit", wall_seconds=1800.4)
    small = dict(board="icebreaker", device="iCE40UP5K", clock_mhz=12.0,
                 overflow={"luts": [20560, 5280]}, fmax_mhz=None, timing_met=None,
                 resources=dict(luts=20560, ffs=10287, dsps=4, brams=56, lutrams=0),
                 bitstream=None, wall_seconds=150.0)
    slow = dict(fits, fmax_mhz=21.0, timing_met=False)
    synthesized = dict(fits, synth_only=True, fmax_mhz=None, bitstream=None)
    rows = table_rows(tables.board_table([fits, small, slow, synthesized]), "| board |")
    assert rows[3][6:8] == ["not placed (synthesis only)", "none"]
    assert rows[0] == ["ulx3s-85f", "LFE5U-85F", "31,448 / 83,640", "14,259 / 83,640",
                       "20 / 156", "164 / 208", "27.5 MHz (meets 25 MHz)", "yes", "1800 s"]
    assert rows[1] == ["icebreaker", "iCE40UP5K", "20,560 / 5,280", "10,287 / 5,280", "4 / 8",
                       "56 / 30", "not placed (does not fit)", "none", "150 s"]
    assert rows[2][6] == "21.0 MHz (misses 25 MHz)"
    pll = dict(fits, clock_mhz=20.0, pll=dict(clock_hz=25_000_000, input=5, feedback=4,
                                                output=20))
    assert table_rows(tables.board_table([pll]), "| board |")[0][6] == "27.5 MHz (meets 20 MHz PLL)"


def test_training_table_shows_each_run():
    def run(device, steps, seconds, check=False):
        return dict(device=device, check=check, pass_batch=2, load_1min=1.5, cpus=2,
                    settings=dict(variant="batchnorm", batch=8),
                    steps=[dict(loss=2.0 - step / steps, sparse_cycles=100, dense_cycles=150,
                                seconds=seconds, test_accuracy=0.5 + step / (2 * steps))
                           for step in range(1, steps + 1)])
    rows = table_rows(tables.training_table([run("golden", 200, 0.1),
                                             run("sim", 2, 60.0, check=True)]), "| backend |")
    assert rows[0] == ["golden", "batchnorm", "200", "8 (2)", "1.947 -> 1.047", "1.000",
                       "1.50x", "0.1 s", "0.3 min", "1.5 on 2"]
    assert rows[1][0] == "sim (checked)" and rows[1][7:9] == ["60.0 s", "200.0 min (projected)"]


def test_board_sim_table_shows_each_pass_and_the_step():
    rows = [dict(layer="conv1", pass_="forward", seconds=5.02, run_seconds=0.02,
                 bytes_sent=36114, bytes_received=17054, cycles_busy=6982),
            dict(layer="conv2", pass_="backward_data", seconds=4.69, run_seconds=0.02,
                 bytes_sent=23694, bytes_received=16970, cycles_busy=5091)]
    rows = [{("pass" if k == "pass_" else k): v for k, v in row.items()} for row in rows]
    payload = dict(rows=rows, variant="plain", divisor=4, step_seconds=9.71, run_seconds=0.04,
                   bytes_sent=59808, bytes_received=34024, cycles=1_000_000,
                   cycles_per_second=450_000.0, machine=dict(load_1min=1.0, cpus=2))
    text = tables.board_sim_table(payload)
    assert table_rows(text, "| layer |") == [
        ["conv1", "forward", "5.02 s", "0.02 s", "36,114", "17,054", "6,982"],
        ["conv2", "backward-data", "4.69 s", "0.02 s", "23,694", "16,970", "5,091"]]
    assert text.endswith("One training step's passes (plain variant, batch 2, UART at 4 cycles "
                         "a bit): 9.7 s, of which RUN 0.0 s (0 %); 59,808 bytes sent and "
                         "34,024 received; 1,000,000 board cycles at 450,000 cycles per second "
                         "(load average 1.0 on 2 CPUs).")


def shown_scaled(cell: str, value: float, unit: float) -> bool:
    """Whether ``cell`` shows ``value / unit`` as the tables print it: one decimal from 1 up,
    three significant digits below."""
    shown, scaled = numbers(cell)[0], value / unit
    return shown == (round(scaled, 1) if scaled >= 1 else float(f"{scaled:.3g}"))


def check_movement_row(row: list, step: dict) -> None:
    """A row of the data-movement table shows its training-step totals."""
    assert numbers(" ".join(row[2:5])) == to_cents(
        [step["speedup"], step["speedup_overlapped"], step["speedup_serial"]])
    assert shown_scaled(row[5], step["dense_bytes"], 1e6)                # MB
    sparse, bitmap = row[6].split("(")
    assert shown_scaled(sparse, step["sparse_bytes"], 1e6)
    assert shown_scaled(bitmap, step["sparse_bytes_with_bitmap"], 1e6)
    assert shown_scaled(row[7], step["dense_energy_pj"], 1e9)            # mJ
    assert shown_scaled(row[8], step["sparse_energy_pj"], 1e9)
    assert numbers(row[9]) == to_cents([step["energy_ratio"]])
    energy = step["sparse_energy_pj"]
    assert numbers(row[10]) == [round(100 * step[f"sparse_energy_{part}_pj"] / energy)
                                for part in ("compute", "sram", "dram")]


def summary_rows(network, scenario, **values):
    """The three totals of ``maskprop eval``'s summary.json for one network and scenario."""
    base = dict(network=network, profile="test profile", scenario=scenario, speedup=2.0,
                ideal=3.0, efficiency=2 / 3, speedup_overlapped=1.9, speedup_serial=1.8,
                dense_bytes=2_345_678, sparse_bytes=2_500_000, sparse_bytes_with_bitmap=2_400_000,
                dense_energy_pj=1.5e12, sparse_energy_pj=1.0e12, energy_ratio=1.5,
                sparse_energy_compute_pj=0.1e12, sparse_energy_sram_pj=0.6e12,
                sparse_energy_dram_pj=0.3e12, bandwidth_bytes_per_cycle=32,
                energy_source="A. Author, a table (2014)")
    return [dict(base, totals=t, **values) for t in ("forward", "backward", "training step")]


def test_eval_tables_show_the_summary_with_data_movement():
    summary = (summary_rows("Net A", "batchnorm") + summary_rows("Net A", "no-batchnorm",
                                                                    speedup=3.0)
               + summary_rows("Small", "batchnorm", speedup=9.0, speedup_serial=8.0,
                              dense_bytes=12_345, sparse_bytes=23_456,
                              sparse_bytes_with_bitmap=20_000, dense_energy_pj=4.26e7,
                              sparse_energy_pj=4.5e7, sparse_energy_compute_pj=0.5e6,
                              sparse_energy_sram_pj=4.5e6, sparse_energy_dram_pj=4e7)
               + summary_rows("Small", "no-batchnorm", speedup=0.5, energy_ratio=0.25))
    own = {"Net A": "no-batchnorm", "Small": "batchnorm"}
    text = tables.eval_tables(summary, own, (1.0, 2.0), (1.5, 2.5), compared=["Net A"])
    rows = table_rows(text, "| network | BatchNorm | speedup | overlapped |")
    assert [row[:2] for row in rows] == [["Net A", "batchnorm"], ["Net A", "no-batchnorm"],
                                         ["Small", "batchnorm"], ["Small", "no-batchnorm"]]
    for row in rows:
        check_movement_row(row, next(r for r in summary if r["network"] == row[0] and
                                     r["scenario"] == row[1] and r["totals"] == "training step"))
    assert rows[0][5:7] == ["2.3", "2.5 (2.4)"] and rows[2][5:7] == ["0.0123", "0.0235 (0.02)"]
    assert rows[0][7:] == ["1,500.0", "1,000.0", "1.50x", "10 / 60 / 30"]
    assert rows[2][7:9] == ["0.0426", "0.045"] and rows[2][10] == "1 / 10 / 89"
    assert "at 32 bytes per cycle" in text and "A. Author, a table (2014)" in text
    # The seed comparison spans the compared networks only, in their own setting.
    last = text.splitlines()[-1]
    assert last.startswith("Over Net A in their own BatchNorm setting: backward 3.00x-3.00x, "
                           "training step 3.00x-3.00x (with data movement, serial: backward "
                           "1.80x-1.80x, training step 1.80x-1.80x; energy ratio, training "
                           "step 1.50x-1.50x)")
    assert last.endswith("the seed paper reports backward 1.00x-2.00x and forward + backward "
                         "1.50x-2.50x.")
    everything = tables.eval_tables(summary, own, (1.0, 2.0), (1.5, 2.5))
    assert "Over these networks" in everything and "backward 3.00x-9.00x" in everything


def test_eval_tables_show_the_join_array_when_measured():
    """With ``--join`` the summary's join totals get their own table (speedup, achieved/ideal,
    exact or bound) and the lowest achieved/ideal is named; without, no such table."""
    join = dict(join_speedup=2.5, join_efficiency=0.9, join_exact=True)
    summary = (summary_rows("Net A", "batchnorm", **join)
               + summary_rows("Net A", "no-batchnorm", **dict(join, join_efficiency=0.8,
                                                               join_exact=False)))
    summary[4]["join_efficiency"] = 0.75                 # no-batchnorm backward
    text = tables.eval_tables(summary, {"Net A": "batchnorm"}, (1.0, 2.0), (1.5, 2.5))
    rows = table_rows(text, "| network | BatchNorm | forward | backward | training step | cycles |")
    assert rows == [["Net A", "batchnorm", "2.50x (0.90)", "2.50x (0.90)", "2.50x (0.90)",
                     "exact"],
                    ["Net A", "no-batchnorm", "2.50x (0.80)", "2.50x (0.75)", "2.50x (0.80)",
                     "bound"]]
    assert "Lowest achieved/ideal of the join array: 0.75 (Net A, no-batchnorm, backward)." \
        in text
    plain = tables.eval_tables(summary_rows("Net A", "batchnorm"), {"Net A": "batchnorm"},
                               (1.0, 2.0), (1.5, 2.5))
    assert "join array" not in plain
    with pytest.raises(tables.DocsError, match="for some rows only"):
        tables.eval_tables(summary[:3] + summary_rows("Net A", "no-batchnorm"),
                           {"Net A": "batchnorm"}, (1.0, 2.0), (1.5, 2.5))


@pytest.mark.parametrize("change, message", [
    (lambda rows: [dict(r, bandwidth_bytes_per_cycle=16) if r["scenario"] == "batchnorm"
                   else r for r in rows], "disagree on bandwidth_bytes_per_cycle"),
    (lambda rows: [{k: v for k, v in r.items() if k != "energy_ratio"} for r in rows],
     "have no energy_ratio: measure again"),
    (lambda rows: [r for r in rows if r["totals"] != "backward"], "no backward totals"),
])
def test_eval_tables_refuse_an_incomplete_summary(change, message):
    summary = change(summary_rows("Net A", "batchnorm") + summary_rows("Net A", "no-batchnorm"))
    with pytest.raises(tables.DocsError, match=message):
        tables.eval_tables(summary, {"Net A": "batchnorm"}, (1.0, 2.0), (1.5, 2.5))


def test_eval_tables_refuse_unknown_networks():
    with pytest.raises(tables.DocsError, match="no BatchNorm setting known for network"):
        tables.eval_tables(summary_rows("Net A", "batchnorm"), {}, (1.0, 2.0), (1.5, 2.5))
    with pytest.raises(tables.DocsError, match="none of the networks"):
        tables.eval_tables(summary_rows("Net A", "batchnorm"), {"Net A": "batchnorm"},
                           (1.0, 2.0), (1.5, 2.5), compared=["Other"])


def run_make_docs(*args):
    return subprocess.run([sys.executable, str(MAKE_DOCS), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_make_docs_writes_measured_tables_and_nothing_else(tmp_path):
    docs, work = tmp_path / "docs", tmp_path / "work"
    docs.mkdir()
    before = ("# Results\n\nHand-written prose stays.\n\n"
              f"{region('eval', 'old command', 'stale | table')}\n\nMore prose.\n\n"
              f"{region('cycle-model', 'old', 'stale')}\n\nThe end.\n")
    (docs / "results.md").write_text(before)
    result = run_make_docs("--only", "eval", "--only", "cycle-model", "--quick",
                           "--work", work, "--docs", docs)
    assert result.returncode == 0, result.stderr
    text = (docs / "results.md").read_text()
    found = tables.regions(text)
    assert set(found) == {"eval", "cycle-model"}
    # Outside the regions, every byte is as it was.
    outside = text[:found["eval"][0]] + text[found["eval"][1]:found["cycle-model"][0]] + \
        text[found["cycle-model"][1]:]
    expected = before[:before.index("<!--")] + "\n\nMore prose.\n\n" + "\n\nThe end.\n"
    assert outside == expected
    eval_region = text[found["eval"][0]:found["eval"][1]]
    assert found["eval"][2].startswith(".venv/bin/maskprop eval --join --out ")
    assert found["eval"][2].endswith("--network alexnet")
    assert f"Measured by `{found['eval'][2]}`" in eval_region
    assert "stale" not in text

    # The numbers are the summary.json's of that run.
    summary = json.loads((work / "eval" / "summary.json").read_text())
    rows = table_rows(eval_region.split("Both scenarios:")[1], "| network | BatchNorm |")
    assert [row[:2] for row in rows] == [["AlexNet", "batchnorm"], ["AlexNet", "no-batchnorm"]]
    for row in rows:
        totals = {r["totals"]: r for r in summary if r["scenario"] == row[1]}
        shown = numbers(" ".join(row[2:]))
        wanted = [v for t in ("forward", "backward", "training step")
                  for v in (totals[t]["speedup"], totals[t]["ideal"])]
        assert shown == to_cents(wanted + [totals["training step"]["efficiency"]])
    own = table_rows(eval_region, "| network | BatchNorm |")[0]
    assert own[:2] == ["AlexNet", "no"]                 # AlexNet has no BatchNorm
    # The training step with data movement and energy: the same run's totals.
    rows = table_rows(eval_region, "| network | BatchNorm | speedup | overlapped |")
    assert [row[:2] for row in rows] == [["AlexNet", "batchnorm"], ["AlexNet", "no-batchnorm"]]
    for row in rows:
        step = next(r for r in summary if r["scenario"] == row[1]
                    and r["totals"] == "training step")
        check_movement_row(row, step)
    assert f"at {step['bandwidth_bytes_per_cycle']} bytes per cycle" in eval_region
    assert step["energy_source"] in eval_region and "Horowitz" in step["energy_source"]
    assert (docs / "eval_summary.png").read_bytes() == (work / "eval" / "summary.png").read_bytes()
    # The join array's table, from the same run.
    rows = table_rows(eval_region, "| network | BatchNorm | forward | backward | training "
                                   "step | cycles |")
    assert [row[:2] for row in rows] == [["AlexNet", "batchnorm"], ["AlexNet", "no-batchnorm"]]
    for row in rows:
        totals = {r["totals"]: r for r in summary if r["scenario"] == row[1]}
        assert numbers(" ".join(row[2:5])) == to_cents(
            [v for t in ("forward", "backward", "training step")
             for v in (totals[t]["join_speedup"], totals[t]["join_efficiency"])])

    model = json.loads((work / "cycle-model" / "result.json").read_text())
    row = table_rows(text[found["cycle-model"][0]:], "| network | batch |")[0]
    assert row[0] == "AlexNet" and model["network"] == "AlexNet"
    assert numbers(row[6])[0] == model["dense_cycles"]
    assert numbers(row[7])[0] == model["sparse_cycles"]
    assert numbers(row[8])[0] == round(model["speedup"], 2)

    # Rendering again from the same measurements is idempotent.
    result = run_make_docs("--only", "eval", "--only", "cycle-model", "--render-only",
                           "--work", work, "--docs", docs)
    assert result.returncode == 0, result.stderr
    assert "unchanged" in result.stdout
    assert (docs / "results.md").read_text() == text


def test_make_docs_refuses_a_page_without_the_region_before_measuring(tmp_path):
    docs, work = tmp_path / "docs", tmp_path / "work"
    docs.mkdir()
    (docs / "results.md").write_text("# Results\n\nno markers here\n")
    result = run_make_docs("--only", "eval", "--quick", "--work", work, "--docs", docs)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert "has no generated region 'eval'" in error and "results.md" in error
    assert (docs / "results.md").read_text() == "# Results\n\nno markers here\n"
    assert not work.exists()                              # nothing was measured


def test_make_docs_options_are_checked(tmp_path):
    result = run_make_docs("--only", "digits-array", "--quick", "--docs", tmp_path)
    assert result.returncode == 2 and "has no small form" in result.stderr
    result = run_make_docs("--only", "mutants", "--render-only")
    assert result.returncode == 2 and "by its own command" in result.stderr
    result = run_make_docs("--only", "eval", "--render-only", "--work", tmp_path / "none",
                           "--docs", ROOT / "docs")
    assert result.returncode == 1 and "missing" in result.stderr


def test_fpga_options_are_the_presets(script):
    """The fpga-array, fpga-array-ice40 and fpga-core parts place FPGA_SMALL, FPGA_ICE40 and
    FPGA_CORE: their command-line options say the same."""
    from maskprop.base.config import FPGA_CORE, FPGA_ICE40, FPGA_SMALL, Config
    make_docs = script("make_docs")

    def config(options):
        return Config(**{name.removeprefix("--").replace("-", "_"): value
                         for name, value in zip(options[::2], options[1::2])})

    assert config(make_docs.FPGA_ARRAY) == FPGA_SMALL
    assert config(make_docs.FPGA_ICE40) == FPGA_ICE40
    assert config(make_docs.FPGA_CORE) == FPGA_CORE.array
    assert FPGA_CORE == FPGA_CORE.__class__(array=FPGA_CORE.array)   # the core's own defaults


def test_every_committed_region_is_a_generated_part_and_filled(script):
    """Each region in docs/ is one make_docs knows, and holds a table: not left empty."""
    make_docs = script("make_docs")
    seen = {}
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        for name, (start, end, command) in tables.regions(text, str(page)).items():
            assert name in make_docs.BY_NAME, f"{page.name}: unknown region {name!r}"
            assert make_docs.BY_NAME[name].page == page.name, f"{name} is not in {page.name}"
            assert name not in seen, f"region {name} in {seen.get(name)} and {page.name}"
            seen[name] = page.name
            assert "\n|---" in text[start:end] or "\n```" in text[start:end], \
                f"{page.name}: region {name} holds no table: run scripts/make_docs.py --only {name}"
    assert set(seen) == set(make_docs.BY_NAME), "parts without a region in docs/"


def test_engine_time_per_pass_combines_speedups_and_fmax():
    sparse, dense = flow_report(fmax_mhz=90.0), flow_report(fmax_mhz=120.0)
    bench = dict(rows=[dict(speedup=2.0), dict(speedup=1.2)])
    line = tables.engine_time_line(sparse, dense, bench)
    assert "2 passes" in line and "ratio 0.75" in line
    assert "0.90x-1.50x: slower on 1 of 2 passes" in line
    assert tables.engine_time_line(sparse, dense, dict(rows=[dict(speedup=1.5)])).endswith(
        "1.12x-1.12x: sooner on every pass.")
    with pytest.raises(tables.DocsError, match="no Fmax"):
        tables.engine_time_line(flow_report(fmax_mhz=None), dense, bench)


def test_packing_table_shows_each_schemes_step_and_worst_pass():
    config = dict(vec=16, lanes=4, tiles=4, col_block=32, select_window=4)
    rows = [dict(network="Net", scenario="batchnorm", **row) for row in (
        {"pass": "forward", "macs": 160, "today": 20, "fast": 10},
        {"pass": "backward_weight", "macs": 80, "today": 10, "fast": 8},
        {"pass": "backward_data", "macs": 0, "today": 1, "fast": 1},   # no work: not a pass
        {"pass": "training step", "macs": 240, "today": 31, "fast": 19})]
    text = tables.packing_table({"config": config, "schemes": ["today", "fast"], "rows": rows})
    assert text.startswith("4 tiles x 4 lanes, vec 16, selection window 4")
    cells = table_rows(text, "| scheme |")
    assert cells[0] == ["today", "0.48", "0.50 (forward)"]      # 240 / (31 * 16); 160 / 320
    assert cells[1] == ["fast", "0.79", "0.62 (backward-weight)"]      # 80 / (8 * 16)


def test_join_tables_show_area_per_look_ahead_and_a_dash_where_a_case_has_no_figure():
    config = dict(vec=16, lanes=4, tiles=4, select_window=4, data_width=16, acc_width=48,
                  max_chunks=64, max_cols=128)
    rows = [dict(network="Small", scenario="batchnorm", **row) for row in (
        {"pass": "forward", "macs": 160, "today": 20, "join g4": 10, "join g4 exact": 11},
        {"pass": "training step", "macs": 160, "today": 20, "join g4": 10,
         "join g4 exact": 11})]
    rows += [dict(network="Big", scenario="batchnorm", **row) for row in (
        {"pass": "forward", "macs": 64, "today": 8, "join g4": 4},
        {"pass": "training step", "macs": 64, "today": 8, "join g4": 4})]
    text = tables.join_tables({"config": config, "queue": 8, "rows": rows,
                               "area": {"4": {"lane_luts": 453, "tile_luts": 2162,
                                              "tile_fmax_mhz": 115.84, "tile_critical_path": {
                                                  "delay_ns": 8.6, "logic_ns": 4.4,
                                                  "logic_steps": 1, "routing_ns": 4.2,
                                                  "through_dsp": True,
                                                  "signals": ["a", "b", "c"]}}}})
    assert table_rows(text, "| look-ahead (chunks) |")[0] == ["4 (16 mask bits a word)", "453",
                                                              "2,162", "115.8 MHz"]
    assert "Look-ahead 4: the tile's critical path 8.60 ns" in text and "a -> c" in text
    cells = table_rows(text, "| scheme |")
    assert [row[0] for row in cells] == ["today", "join g4", "join g4 exact"]
    assert cells[1] == ["join g4", "1.00", "1.00 (forward)", "1.00", "1.00 (forward)"]
    assert cells[2] == ["join g4 exact", "0.91", "0.91 (forward)", "-", "-"]   # 160 / (11 * 16)
    assert "at queue 8" in text
    assert "LUT4" not in tables.join_tables({"config": config, "queue": 8, "rows": rows,
                                             "area": {}})


def test_join_tables_show_the_whole_arrays_side_by_side():
    config = dict(vec=16, lanes=4, tiles=4, select_window=4, data_width=16, acc_width=48,
                  max_chunks=64, max_cols=128)
    rows = [{"network": "Small", "scenario": "batchnorm", "pass": name, "macs": 16, "today": 2}
            for name in ("forward", "training step")]
    report = dict(device="LFE5U-85F", ffs=900, lutrams=0, wall_seconds=60.0)
    arrays = {"config": {"tiles": 4, "lanes": 4, "max_chunks": 16, "max_cols": 32, "group": 4},
              "today": dict(report, luts=9000, dsps=16, brams=9, fmax_mhz=72.94,
                            critical_path=None, router="router1"),
              "join": dict(report, luts=31000, dsps=16, brams=40, fmax_mhz=61.04,
                           router="router2",
                           critical_path={"delay_ns": 16.4, "logic_ns": 9.0, "logic_steps": 20,
                                          "routing_ns": 7.4, "through_dsp": False,
                                          "signals": ["dealer", "tile0"]})}
    text = tables.join_tables({"config": config, "queue": 8, "ring": 4, "rows": rows,
                               "area": {}, "arrays": arrays})
    assert table_rows(text, "| array |") == [
        ["today's tile array", "9,000", "900", "16", "9", "72.9 MHz", "router1"],
        ["join array, look-ahead 4", "31,000", "900", "16", "40", "61.0 MHz", "router2"]]
    assert "on the LFE5U-85F (speed 6)" in text and "32 columns x 16 chunks" in text
    assert "a ring of 4 rows, queues of 8" in text
    assert "Join array, look-ahead 4: critical path 16.40 ns" in text
    assert "dealer -> tile0" in text
