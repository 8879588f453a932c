"""Network-level validation: for the digits CNN, ``maskprop eval``'s cycle-model totals equal the
sum of the tile array RTL's cycle counters over every layer and pass, in both BatchNorm scenarios
(the plain and the BatchNorm-trained network, each with its real masks); every pass's results
bit-exact against the lowered GEMM and against the golden model's direct convolution."""

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.evaluation.evaluate import TOTALS, digits_evaluation_inputs, evaluate
from maskprop.host.driver import mode_passes
from maskprop.host.runs import compare_on_array
from maskprop.sim.layer import PASSES
from maskprop.tb.conv_reference import direct_conv
from maskprop.workloads.digits import load_fixture

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("scenario, variant", [("no-batchnorm", "plain"),
                                               ("batchnorm", "batchnorm")])
def test_network_totals_equal_the_rtl(scenario, variant, tmp_path):
    config = Config()
    net, masks = digits_evaluation_inputs()
    evaluation = evaluate(net, masks, config, scenarios=(scenario,))
    rtl = {}
    for index, record in enumerate(load_fixture()[variant].layers):
        for pass_name in PASSES:
            if pass_name == "backward_data" and index == 0:
                continue
            # Each mode in its faster lowering (backward-weight's orientation), as the
            # evaluation counts it.
            modes = mode_passes(record.layer, pass_name, config, A=record.A, W=record.W,
                                dZ=record.dZ)
            comparison = compare_on_array(modes, build_dir=tmp_path / record.name / pass_name,
                                          seed=1)
            assert comparison.agrees, comparison.label
            # On the digits CNN the array's own dense mode is the fair baseline.
            assert comparison.baseline_cycles == comparison.dense.cycles, comparison.label
            for mode, run in (("dense", comparison.dense), ("sparse", comparison.sparse)):
                assert np.array_equal(run.tensor, direct_conv(
                    modes[mode].gemm, record.A, record.W, record.dZ, dense=run.dense,
                    config=config)), f"{comparison.label}: differs from the direct convolution"
            rtl[record.name, pass_name] = comparison
    model_rows = {(r.layer, r.pass_name): r for r in evaluation.rows}
    assert set(model_rows) == set(rtl)
    for which, passes in TOTALS.items():
        model = evaluation.total(scenario, which)
        picked = [c for (_, p), c in rtl.items() if p in passes]
        assert model.dense_cycles == sum(c.dense_cycles for c in picked), which
        assert model.sparse_cycles == sum(c.sparse_cycles for c in picked), which
        print(f"{scenario} {which}: model = RTL = {model.dense_cycles} dense, "
              f"{model.sparse_cycles} sparse cycles")
