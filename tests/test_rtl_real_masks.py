"""The engine's Verilog on rows of the lowered GEMMs of real layers (digits-CNN fixture, one
training step's ReLU masks), every pass, with and without BatchNorm: bit-exact against the
golden model in sparse and dense mode, and measured cycles equal to the cycle model."""

import pytest

from maskprop.base.config import Config
from maskprop.host.runs import compare_on_engine
from maskprop.sim.layer import PASSES as PASS_NAMES
from maskprop.sim.lowering import lower_pass
from maskprop.workloads.digits import load_fixture

pytestmark = pytest.mark.sim

CASES = [(variant, layer, pass_name) for variant in ("plain", "batchnorm")
         for layer in ("conv2", "conv3") for pass_name in PASS_NAMES]


@pytest.fixture(scope="module")
def fixture():
    return load_fixture()


@pytest.mark.parametrize("variant, layer, pass_name", CASES,
                         ids=["-".join(case) for case in CASES])
def test_engine_on_real_layer(fixture, variant, layer, pass_name, tmp_path):
    config = Config()
    record = fixture[variant][layer]
    gemm = lower_pass(record.layer, pass_name, A=record.A, W=record.W, dZ=record.dZ)
    result = compare_on_engine(gemm, config, rows=24, build_dir=tmp_path, seed=1)
    print(result)
    assert result.exact
    assert result.dense_cycles == result.model_dense
    assert result.sparse_cycles == result.model_sparse
    assert result.outputs_sparse <= result.outputs_dense
    if pass_name == "backward_data":
        # Output sparsity: only outputs whose input activation is nonzero are computed.
        assert result.outputs_sparse < result.outputs_dense
    assert 1.0 <= result.speedup <= result.ideal
