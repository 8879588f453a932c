"""The join array's Verilog on the digits CNN's real layers (one training step's tensors and
ReLU masks, every pass, with and without BatchNorm, both layers), through cocotb on Verilator:
every wanted output bit-exact against the golden model's direct convolution (the scoreboard,
in the pass's order), both operands' zeros skipped, and, with the inputs never idle and ``o``
never back-pressured, every handshake in the cycle of the model
(:func:`~maskprop.sim.cycle_model.join_array_schedule`); with random idle cycles and
backpressure still bit-exact and in order."""

import numpy as np
import pytest

from maskprop.hw.join_array import JoinArray
from maskprop.sim.cycle_model import wanted_outputs
from maskprop.sim.layer import PASSES
from maskprop.sim.lowering import lower_pass
from maskprop.tb.conv_reference import direct_conv, in_gemm_order
from maskprop.tb.join_banks import ArrayPass
from maskprop.tb.runner import run_stream_bench
from maskprop.tb.stimulus import seed_from_env
from maskprop.workloads.digits import load_fixture

pytestmark = pytest.mark.sim

#: The evaluation's multipliers (4 tiles of 4 lanes, window 4, vec 16) with the core's operand
#: and sum widths; Y and the reduction as large as the digits CNN's largest pass (144 columns
#: of backward-weight, 9 chunks of 16): one Verilator build for every case.
ARRAY = dict(tiles=4, lanes=4, window=4, group=4, queue=8, ring=4, max_columns=144,
             max_chunks=9, data_width=16, acc_width=48)
STREAMING = (0.0, 0.0)
#: Every pass of each variant streaming (the model's cycles), the plain variant on conv2 and
#: the BatchNorm one on conv3; the other layer of each with random idle cycles and
#: backpressure (a run takes 20-30 s, so not every combination).
CASES = [("plain", "conv2", pass_name, STREAMING) for pass_name in PASSES] + [
    ("batchnorm", "conv3", pass_name, STREAMING) for pass_name in PASSES] + [
    ("plain", "conv3", "backward_weight", (0.2, 0.3)),
    ("batchnorm", "conv2", "backward_data", (0.2, 0.3)),
]


@pytest.mark.parametrize("variant, layer, pass_name, traffic", CASES,
                         ids=["-".join(c[:3]) + ("" if c[3] == STREAMING else "-idle+bp")
                              for c in CASES])
def test_join_array_on_real_layer(variant, layer, pass_name, traffic, tmp_path):
    record = load_fixture()[variant][layer]
    gemm = lower_pass(record.layer, pass_name, A=record.A, W=record.W, dZ=record.dZ)
    wanted = wanted_outputs(gemm, dense=False)
    passes = ArrayPass(gemm.X, gemm.Y, gemm.X != 0, gemm.Y != 0, wanted)
    array = JoinArray(**ARRAY)
    expected = passes.results(array)
    reference = in_gemm_order(gemm, direct_conv(gemm, record.A, record.W, record.dZ,
                                                dense=False))
    values = [value for beat in expected for k, value in enumerate(beat["value"])
              if beat["valid"] >> k & 1]
    assert values == reference[wanted].tolist()
    assert not reference[~wanted].any()
    seed = seed_from_env(default=len(CASES) + int(traffic[0] * 10))
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    run = run_stream_bench(array, "join_array", passes.streams(array), expected,
                           build_dir=tmp_path, phases=[["y"], ["x", "rows"]],
                           idle=traffic[0], backpressure=traffic[1], seed=seed, fast=True)
    assert run.passed
    if traffic == STREAMING:
        start = run.port_cycles["x"][0]
        x, rows, out = passes.schedule(array)
        assert [c - start for c in run.port_cycles["x"]] == x
        assert [c - start for c in run.port_cycles["rows"]] == rows
        assert [c - start for c in run.out_cycles] == out
        products = int(((gemm.X != 0).astype(np.int64) @ (gemm.Y != 0).astype(np.int64))
                       [wanted].sum())
        print(f"{variant} {layer} {pass_name}: {len(values)} outputs, {products} products in "
              f"{out[-1] + 1} cycles")
