"""scripts/bench_join.py on the digits CNN without synthesis: every case's rows, the exact
schedule never below the unbounded-queue bound, the two unbuilt lanes' bounds ordered by the
floor they drop, and the join faster than today's array where it skips what today's array
cannot (backward-weight without BatchNorm)."""

import json


def test_digits_rows(script, tmp_path):
    bench = script("bench_join")
    out = tmp_path / "join.json"
    bench.main(["--network", "digits", "--no-area", "--group", "4", "--queue", "8",
                "--json", str(out)])
    payload = json.loads(out.read_text())
    assert payload["area"] == payload["arrays"] == {} and payload["queue"] == 8
    rows = payload["rows"]
    assert {(r["scenario"], r["pass"]) for r in rows} == {
        (s, p) for s in ("batchnorm", "no-batchnorm")
        for p in ("forward", "backward_data", "backward_weight", "training step")}
    for row in rows:
        assert row["join g4 exact"] >= row["join g4"] > 0
        # The lanes that are not built pay less of the floor, never more.
        assert row["join g4"] >= row["join g4, empty words free"] >= \
            row["join g4, products only"] > 0
    weight = next(r for r in rows if r["scenario"] == "no-batchnorm"
                  and r["pass"] == "backward_weight")
    assert weight["join g4 exact"] < weight["today"]


def test_bad_arguments_are_usage_errors(script, capsys):
    bench = script("bench_join")
    for argv, message in ((["--group", "3", "--no-area"], "group must be a power of two"),
                          (["--queue", "0", "--no-area"], "queue must be in [1, 64]")):
        try:
            bench.main(argv)
        except SystemExit as exit:
            assert exit.code == 2
        else:
            raise AssertionError(f"{argv} accepted")
        assert message in capsys.readouterr().err
