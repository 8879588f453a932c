"""scripts/bench_dsp_floor.py: its fixture computes what it claims (the product two cycles
after the operands, the accumulator three), a bad device is a usage error, and (fpga) the
placed fixtures' critical paths run through the DSP, which is what the docs read from them."""

import json
import random

import pytest
from amaranth.sim import Simulator

from maskprop.tb.stimulus import seed_from_env


@pytest.mark.parametrize("width, acc_width", [(16, None), (16, 48), (8, None)])
def test_fixture_is_a_registered_product(script, width, acc_width):
    bench = script("bench_dsp_floor")
    seed = seed_from_env(default=31)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    rng = random.Random(seed)
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    operands = [(rng.randint(low, high), rng.randint(low, high)) for _ in range(50)]
    operands[:2] = [(low, low), (low, high)]      # the extreme products
    dut = bench.RegisteredProduct(width, acc_width)
    latency = 2 if acc_width is None else 3
    seen = []

    async def testbench(ctx):
        for a, b in operands + [(0, 0)] * latency:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            await ctx.tick()
            seen.append(ctx.get(dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    products = [a * b for a, b in operands]
    if acc_width is not None:
        products = [sum(products[:k + 1]) for k in range(len(products))]
    # Output after tick k shows the operands set before tick k - latency + 1.
    assert seen[latency - 1:latency - 1 + len(products)] == products


def test_bad_device_is_a_usage_error(script, capsys):
    bench = script("bench_dsp_floor")
    with pytest.raises(SystemExit) as exit:
        bench.main(["--device", "LFE5U-99F"])
    assert exit.value.code == 2
    assert "--device" in capsys.readouterr().err


@pytest.mark.fpga
@pytest.mark.slow
def test_placed_fixtures_run_through_the_dsp(script, tmp_path):
    bench = script("bench_dsp_floor")
    out = tmp_path / "floor.json"
    assert bench.main(["--device", "LFE5U-25F", "--out", str(tmp_path / "build"),
                       "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["device"] == "LFE5U-25F" and payload["target_mhz"] == bench.TARGET_MHZ
    assert [row["label"] for row in payload["rows"]] == [f[0] for f in bench.FIXTURES]
    for row in payload["rows"]:
        assert row["routed"] and row["dsps"] == 1
        assert row["critical_path"]["through_dsp"]
