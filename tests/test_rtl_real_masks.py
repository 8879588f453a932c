"""The engine's Verilog on rows of the lowered GEMMs of real layers (digits-CNN fixture, one
training step's ReLU masks), every pass, with and without BatchNorm: every result bit-exact
against the lowered GEMM (the bench's scoreboard) and against the golden model's direct
convolution, in sparse and dense mode, and measured cycles equal to the cycle model."""

import numpy as np
import pytest

from maskprop.base.config import Config
from maskprop.host.runs import compare_on_engine
from maskprop.sim.layer import PASSES
from maskprop.sim.lowering import lower_pass
from maskprop.tb.conv_reference import direct_conv, in_gemm_order
from maskprop.workloads.digits import load_fixture

pytestmark = pytest.mark.sim

CASES = [(variant, layer, pass_name) for variant in ("plain", "batchnorm")
         for layer in ("conv2", "conv3") for pass_name in PASSES]
ROWS = 24


@pytest.fixture(scope="module")
def fixture():
    return load_fixture()


@pytest.mark.parametrize("variant, layer, pass_name", CASES,
                         ids=["-".join(case) for case in CASES])
def test_engine_on_real_layer(fixture, variant, layer, pass_name, tmp_path):
    config = Config()
    record = fixture[variant][layer]
    gemm = lower_pass(record.layer, pass_name, A=record.A, W=record.W, dZ=record.dZ)
    result = compare_on_engine(gemm, config, rows=ROWS, build_dir=tmp_path, seed=1)
    print(result)
    assert result.exact
    assert result.dense_cycles == result.model_dense
    assert result.sparse_cycles == result.model_sparse
    # Each mode's results, in the order the host sent the outputs (row-major over the GEMM's
    # first rows: all of them dense, the output mask's sparse), against the direct convolution.
    rows = min(ROWS, gemm.X.shape[0])
    for run in (result.dense, result.sparse):
        reference = in_gemm_order(gemm, direct_conv(gemm, record.A, record.W, record.dZ,
                                                    dense=run.dense, config=config))[:rows]
        wanted = (np.ones_like(reference, dtype=bool) if run.dense or gemm.omask is None
                  else gemm.omask[:rows])
        assert [beat.value for beat in run.bench.outputs] == reference[wanted].tolist()
        assert not reference[~wanted].any()
    assert result.outputs_sparse <= result.outputs_dense
    if pass_name == "backward_data":
        # Output sparsity: only outputs whose input activation is nonzero are computed.
        assert result.outputs_sparse < result.outputs_dense
    assert 1.0 <= result.speedup <= result.ideal
