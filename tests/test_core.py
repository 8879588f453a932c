"""MaskpropCore as generated Verilog under cocotb, programmed only through its registers
(cocotbext-axi's AXI4-Lite master) with its memory served by cocotbext-axi's AxiRam, random
pauses on every channel of both buses and the AXI protocol checker on the memory port:

- every pass it runs leaves in memory exactly the golden model's direct convolution,
  requantized, with 0 wherever an output is not computed, dense and sparse;
- its compute-cycle counter equals the cycle model, and the bytes it moves per tensor are exactly
  the tensors' sizes (each read once, the result written once);
- every illegal command sets its error code and leaves the core ready for the next one.
"""

import numpy as np
import pytest

from maskprop.base.config import Config, CoreConfig
from maskprop.host.core_driver import CoreJob, register_words, runnable_operands
from maskprop.hw.core import MaskpropCore
from maskprop.host.runs import run_core_jobs
from maskprop.sim.core_model import job_cycles, total_cycles
from maskprop.sim.layer import ConvLayer
from maskprop.tb.stimulus import random_conv_tensors, seed_from_env
from maskprop.workloads.digits import load_fixture

pytestmark = pytest.mark.sim

# Small buffers keep the build short; every test shares this one build.
CORE = CoreConfig(Config(vec=16, lanes=4, tiles=4, col_block=8, max_chunks=64, max_cols=32),
                  x_words=1024, row_block_chunks=32)


@pytest.fixture(scope="module")
def core():
    return MaskpropCore(CORE)


def seeded(default: int) -> int:
    seed = seed_from_env(default=default)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    return seed


def check_jobs(core, jobs, tmp_path, *, pause=0.3, name=""):
    """Run ``jobs`` (CoreJob) on the Verilog; each result exact, counters and traffic as the
    models say. Returns the runs."""
    runs = run_core_jobs([job.bench_job(core.register_map) for job in jobs], component=core,
                         build_dir=tmp_path, pause=pause, run_name=name)
    for job, run in zip(jobs, runs):
        label = (f"{job.layer.label} {job.pass_name} {'dense' if job.dense else 'sparse'}"
             + (f" broadcasting {job.operand}" if job.pass_name == "backward_weight" else ""))
        assert run.status["done"] and not run.status["error"], (label, run.status)
        np.testing.assert_array_equal(job.result(run.result), job.golden(), err_msg=label)
        assert run.result == job.expected_image(), label
        model = total_cycles(job_cycles(job.array_pass(), CORE, dense=job.dense,
                                        bases=job.bases))
        assert len(run.statuses) == len(job.commands), label
        # Compute cycles: the tile array's, as the cycle model counts them for each command.
        assert run.counters["compute_cycles"] == model.compute, label
        # Data movement, per tensor: what each command reads and writes, as the model says.
        names = {"A": "a", "W": "w", "Wt": "w", "dZ": "dz", "Z": "out", "dA": "out",
                 "dW": "out", "dW sums": "psum"}
        expected_read = dict.fromkeys(("a", "w", "dz", "psum"), 0)
        expected_written = dict.fromkeys(("out", "psum"), 0)
        for tensor, moved in model.bytes_read.items():
            expected_read[names[tensor]] += moved
        for tensor, moved in model.bytes_written.items():
            expected_written[names[tensor]] += moved
        assert {name: run.bytes_read.get(name, 0) for name in expected_read} == expected_read, \
            label
        assert {name: run.bytes_written.get(name, 0) for name in expected_written} == \
            expected_written, label
        assert run.total_written == sum(expected_written.values()), label
        assert run.total_read == sum(expected_read.values()), label
        if not job.split:
            # One command: every tensor the pass needs read once, the result written once.
            images = dict.fromkeys(("a", "w", "dz", "psum"), b"") | job.images()
            reads = {"forward": ("a", "w"), "backward_data": ("dz", "w"),
                     "backward_weight": ("a", "dz")}[job.pass_name]
            if job.pass_name == "backward_data" and job.output_mask and not job.dense:
                reads += ("a",)
            assert expected_read == {name: len(images[name]) if name in reads else 0
                                     for name in images}, label
            assert run.total_written == job.out_bytes, label
        assert run.counters["bytes_read"] == run.total_read, label
        assert run.counters["bytes_written"] == run.total_written, label
    return runs


def random_job(seed: int, index: int, *, dense: bool):
    rng = np.random.default_rng(seed + index)
    kernel = int(rng.choice([1, 3, 5]))
    batch, in_channels = int(rng.integers(1, 3)), int(rng.integers(1, 20))
    height, width = int(rng.integers(3, 8)), int(rng.integers(3, 8))
    out_channels, stride = int(rng.integers(1, 20)), int(rng.choice([1, 2, 3]))
    padding = int(rng.integers(0, kernel + 1))
    if min(height, width) + 2 * padding < kernel:        # the kernel must fit the padded image
        height = width = 7
    layer = ConvLayer(batch=batch, in_channels=in_channels, height=height, width=width,
                      out_channels=out_channels, kernel=kernel, stride=stride, padding=padding,
                      name=f"random{index}")
    A, W, dZ = random_conv_tensors(rng, layer, float(rng.choice([0.2, 0.5, 0.8])))
    pass_name = ("forward", "backward_data", "backward_weight")[index % 3]
    operand = "a"
    if pass_name == "backward_weight":      # either operand the core runs the layer in
        operand = str(rng.choice(runnable_operands(layer, CORE)))
    return CoreJob(layer, pass_name, CORE, A=A, W=W, dZ=dZ, dense=dense,
                   shift=int(rng.integers(0, 12)), operand=operand)


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_random_layers(core, dense, tmp_path):
    """Random layers (kernels 1/3/5, strides 1-3, paddings up to the kernel, channel counts
    that are multiples of nothing), the three passes (backward-weight in a random operand the
    core runs it in), one after the other on one core."""
    seed = seeded(300)
    check_jobs(core, [random_job(seed, index, dense=dense) for index in range(24)], tmp_path)


def layer_jobs(seed: int, layers, *, dense: bool, weight: bool = True) -> list:
    """Every pass of each ``(layer, density)`` in ``layers`` (backward-weight in each operand the
    core runs it in; none with ``weight=False``), random tensors of that density and a random
    requantization shift."""
    rng = np.random.default_rng(seed)
    jobs = []
    for layer, density in layers:
        A, W, dZ = random_conv_tensors(rng, layer, density)
        passes = [("forward", "a"), ("backward_data", "a")]
        if weight:
            passes += [("backward_weight", operand)
                       for operand in runnable_operands(layer, CORE)]
        for pass_name, operand in passes:
            jobs.append(CoreJob(layer, pass_name, CORE, A=A, W=W, dZ=dZ, dense=dense,
                                shift=int(rng.integers(0, 12)), operand=operand))
    return jobs


# The corner cases, named: (layer, density of A and dZ).
CORNERS = [
    (ConvLayer(2, 16, 5, 5, 16, 1, 1, 0, "1x1"), 0.5),
    (ConvLayer(1, 7, 9, 9, 9, 3, 2, 1, "stride 2"), 0.5),
    (ConvLayer(1, 5, 10, 11, 6, 3, 3, 0, "stride 3, padding 0"), 0.5),
    (ConvLayer(1, 3, 5, 4, 4, 5, 1, 3, "padding 3"), 0.5),
    (ConvLayer(1, 19, 5, 5, 13, 3, 1, 1, "19 to 13 channels"), 0.5),
    (ConvLayer(2, 6, 6, 6, 5, 3, 1, 1, "all-zero activations"), 0.0),
]


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_corner_cases(core, dense, tmp_path):
    """1x1, stride 2 and 3, padding 0 and 3, channel counts that are multiples of nothing, and
    all-zero activations and gradients (sparse mode then computes nothing and writes zeros),
    each in all three passes (backward-weight in each operand that fits)."""
    jobs = layer_jobs(seeded(700), CORNERS, dense=dense)
    assert all(not job.A.any() and not job.dZ.any() for job in jobs
               if job.layer.name == "all-zero activations")
    runs = check_jobs(core, jobs, tmp_path)
    for job, run in zip(jobs, runs):
        if not job.A.any() and not dense:
            assert run.counters["macs"] == 0, job.layer.name


# Layers the test core's buffers cannot hold, each split by the host into commands
# (maskprop/host/split.py): output-channel groups (more columns than max_cols), row bands (an
# image larger than the X scratchpad), both, and backward-data's stride phase in row bands;
# backward-weight in groups of output channels and parts of its reduction (images or row
# bands) chained by partial sums.
SPLITS = [
    (ConvLayer(2, 36, 6, 6, 40, 3, 1, 1, "36 to 40 channels: column groups"), 0.5),
    (ConvLayer(1, 20, 24, 22, 20, 3, 1, 1, "24x22: row bands"), 0.5),
    (ConvLayer(1, 33, 25, 19, 37, 3, 2, 1, "stride 2: bands and groups"), 0.5),
    (ConvLayer(1, 10, 26, 26, 112, 3, 2, 1, "stride 2, 112 channels"), 0.5),
    (ConvLayer(1, 5, 40, 40, 112, 3, 3, 0, "stride 3, padding 0"), 0.3),
]


# On this bench (CI's time budget) sparse mode leaves out the fourth layer, the costliest
# (27 % of the five's simulated cycles) and a second case of the third's kind of split (row
# bands and column groups at stride 2), and dense mode runs the first three: every kind of
# split (column groups, row bands, both with stride 2), at a third of the five's cycles. All
# five run in both modes on the RTL's fast bench, every command's cycles and bytes exact
# (tests/test_core_model.py::test_split_passes_exact_per_command); what this bench adds, the
# AXI protocol checks under random pauses, does not depend on the layer's shape or the mode.
SPARSE_SPLITS = SPLITS[:3] + SPLITS[4:]
DENSE_SPLITS = SPLITS[:3]


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_split_layers(core, dense, tmp_path):
    """Layers the buffers cannot hold run as several commands, each a row band and an
    output-channel group (backward-weight: a group and a part of its reduction, with partial
    sums): the result in memory is exactly the whole layer's, all three passes; the counters
    and the bytes of every tensor, partial sums included, summed over the commands, are the
    core model's. The layers of :data:`SPARSE_SPLITS` and :data:`DENSE_SPLITS`."""
    layers = DENSE_SPLITS if dense else SPARSE_SPLITS
    jobs = layer_jobs(seeded(800), layers, dense=dense)
    assert all(job.split for job in jobs)
    weight = [job for job in jobs if job.pass_name == "backward_weight"]
    assert len(weight) >= len(layers)
    assert any(command.psum_in and command.psum_out for job in weight
               for command in job.commands), "no part between the first and the last"
    check_jobs(core, jobs, tmp_path)


def test_digits_cnn_layers(core, tmp_path):
    """The digits CNN's real tensors, plain and with BatchNorm, every pass of training
    (conv1's backward-data is not needed: its input is the image), in both modes;
    backward-weight in each operand the core runs it in."""
    jobs = []
    for variant in ("plain", "batchnorm"):
        for index, record in enumerate(load_fixture()[variant].layers):
            passes = [("forward", "a")] + [("backward_data", "a")] * (index > 0) + [
                ("backward_weight", operand)
                for operand in runnable_operands(record.layer, CORE)]
            for pass_name, operand in passes:
                for dense in (False, True):
                    jobs.append(CoreJob(record.layer, pass_name, CORE, A=record.A, W=record.W,
                                        dZ=record.dZ, dense=dense, shift=8, operand=operand))
    check_jobs(core, jobs, tmp_path, pause=0.1)


def small_job() -> CoreJob:
    """A small legal forward pass, the same every call."""
    layer = ConvLayer(1, 3, 4, 4, 5, 3, 1, 1, "small")
    rng = np.random.default_rng(1)
    return CoreJob(layer, "forward", CORE, *random_conv_tensors(rng, layer, 0.5))


def illegal(core, **fields):
    """A job whose register writes are ``fields`` over :func:`small_job`."""
    job = small_job()
    bench = job.bench_job(core.register_map)
    bench["commands"] = [register_words(core.register_map, {**job.fields(), **fields})]
    return bench


def test_illegal_commands_report_their_error_and_never_hang(core, tmp_path):
    from maskprop.hw.core_registers import Operand, Pass
    cases = {
        "ZERO_DIM": [{"layer_n": 0}, {"layer_c": 0}, {"layer_k": 0}, {"stride": 0},
                     {"kernel": 0}, {"kernel": 9, "padding": 1},
                     # a kernel larger than the padded image in one dimension only: the
                     # columns (padding), the rows (pad_top + pad_bottom, one of them 0)
                     {"kernel": 5, "padding": 0, "layer_h": 9},
                     {"kernel": 5, "pad_top": 0, "pad_bottom": 0, "layer_w": 9},
                     {"kernel": 6, "pad_top": 1, "pad_bottom": 0, "layer_w": 9}],
        # partial sums are backward-weight's only
        "BAD_PASS": [{"pass_kind": 3}, {"psum_in": 1}, {"psum_out": 1},
                     {"pass_kind": Pass.BACKWARD_DATA, "psum_in": 1},
                     # a weight prefetch is forward's and backward-data's
                     {"pass_kind": Pass.BACKWARD_WEIGHT, "prefetch": 1}],
        "UNALIGNED": [{"a_base": 4}, {"out_base": 0x1010}, {"psum_base": 0x1008},
                      {"prefetch": 1, "next_w_base": 0x1004}],
        "SHAPE_TOO_LARGE": [{"layer_k": CORE.array.max_cols + 1},
                            {"layer_c": 16 * (CORE.array.max_chunks // 9 + 1)},
                            {"layer_h": 64, "layer_w": 64},
                            # backward-weight: 1x1 with padding 1 on 21 x 21, 23 x 23 output
                            # pixels, 34 chunks of 16, beyond the row-block buffer's 32 (A and
                            # dZ fit the scratchpad: 441 + 529 words)
                            {"pass_kind": Pass.BACKWARD_WEIGHT, "kernel": 1, "layer_h": 21,
                             "layer_w": 21},
                            # its columns broadcasting dZ: 3 x 3 x 4 > max_cols = 32
                            {"pass_kind": Pass.BACKWARD_WEIGHT, "bw_operand": Operand.DZ,
                             "layer_c": 4},
                            # a prefetch whose weights do not fit half the Y buffer: 32 columns
                            # at a stride of 64 chunks (36: 3 x 3 x 64 channels) fill it all
                            {"prefetch": 1, "layer_k": 32, "layer_c": 64}],
        # an output pitch below the output's words per pixel (K = 20: two words)
        "BAD_PITCH": [{"layer_k": 20, "out_pitch": 1}],
        # keeping weights or input no command has loaded (every command before failed its
        # check)
        "NOT_HELD": [{"keep_weights": 1}, {"keep_input": 1},
                     # backward-weight keeps nothing
                     {"pass_kind": Pass.BACKWARD_WEIGHT, "keep_input": 1}],
    }
    jobs = [(code, illegal(core, **fields)) for code, variants in cases.items()
            for fields in variants]
    legal = illegal(core)
    # After the legal pass, its weights and input are held: keeping the weights for another
    # W_BASE, pass, column count or reduction, or the input for another base or size, is
    # refused; for the same command it runs, reading neither.
    held = {"keep_weights": 1, "keep_input": 1}
    after = [("NOT_HELD", illegal(core, **held, w_base=0x20000)),
             ("NOT_HELD", illegal(core, **held, pass_kind=Pass.BACKWARD_DATA)),
             ("NOT_HELD", illegal(core, **held, layer_k=6)),
             ("NOT_HELD", illegal(core, keep_weights=1, kernel=1, padding=0)),
             ("NOT_HELD", illegal(core, keep_input=1, a_base=0x20000)),
             ("NOT_HELD", illegal(core, keep_input=1, layer_w=3)),
             # backward-weight reads A and dZ into the scratchpad, never keeps them
             ("NOT_HELD", illegal(core, keep_input=1, pass_kind=Pass.BACKWARD_WEIGHT)),
             # a prefetch that was refused left nothing in the other half
             ("NOT_HELD", illegal(core, keep_weights=1, w_base=0x20000))]
    # Then the same pass keeping its weights and input; the pass again, loading its weights
    # into half 0 and prefetching a copy of them at another address into half 1; the pass
    # keeping that copy (run from half 1), and the original (still in half 0).
    copy_base = 0x30000
    prefetching = illegal(core, prefetch=1, next_w_base=copy_base)
    weights = dict(prefetching["memory"])[small_job().bases["w"]]
    prefetching["memory"].append((copy_base, weights))
    prefetching["ranges"].append(("w copy", copy_base, copy_base + len(weights)))
    kept_copy = illegal(core, **held, w_base=copy_base)
    ran = [illegal(core, **held), prefetching, kept_copy, illegal(core, **held)]
    runs = run_core_jobs([job for _, job in jobs] + [legal] + [job for _, job in after] + ran,
                         component=core, build_dir=tmp_path, pause=0.2)
    refused = runs[:len(jobs)] + runs[len(jobs) + 1:len(jobs) + 1 + len(after)]
    for (code, _), run in zip(jobs + after, refused):
        assert run.status["error"] and not run.status["done"], (code, run.status)
        assert run.status["error_code"] == code, (code, run.status)
        assert run.total_read == run.total_written == 0, code
    # And the core still runs a legal pass afterwards, and the same pass keeping its weights
    # and input (a refused command leaves them held): the same result, reading nothing.
    first = runs[len(jobs)]
    kept, prefetched, from_copy, kept_again = runs[-len(ran):]
    for run in (first, kept, prefetched, from_copy, kept_again):
        assert run.status["done"] and not run.status["error"], run.status
        assert run.result == first.result
    assert first.bytes_read["w"] > 0 and first.bytes_read["a"] > 0
    for run in (kept, from_copy, kept_again):
        assert run.total_read == 0 and run.total_written == first.total_written
    assert prefetched.bytes_read["w"] == prefetched.bytes_read["w copy"] == len(weights)


def test_start_while_busy_is_refused_and_the_pass_goes_on(core, tmp_path):
    layer = ConvLayer(2, 5, 6, 6, 7, 3, 1, 1, "busy")
    job = CoreJob(layer, "forward", CORE, *random_conv_tensors(np.random.default_rng(2), layer,
                                                               0.5))
    bench = {**job.bench_job(core.register_map), "start_again": True}
    (run,) = run_core_jobs([bench], component=core, build_dir=tmp_path, pause=0.0)
    assert run.status["done"] and run.status["error"] and run.status["error_code"] == "BUSY"
    assert run.result == job.expected_image()
