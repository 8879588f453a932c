"""Training the digits CNN with every convolution on the core (maskprop.training.digits,
``maskprop train``): settings refused with their ranges; a batch larger than the board's
memory runs each pass in parts; on the golden model, in the parts the ULX3S board's memory
holds, both variants learn (loss falls, test accuracy at least 0.9 after 200 steps at each
variant's default batch); on the simulated board a step's every pass equals the golden
model's and leaves the same weights, bit for bit; the command's bad input is one line and
exit status 2."""

import numpy as np
import pytest

from maskprop.cli.main import main
from maskprop.flow.board import BOARDS
from maskprop.training.digits import (DEFAULT_BATCH, DeviceConvs, DigitsTrainer, GoldenConvs,
                                      TrainingSettings)

CORE = BOARDS["ulx3s-85f"].core


@pytest.mark.parametrize("field, value, message", [
    ("variant", "resnet", "variant must be one of plain, batchnorm"),
    ("steps", 0, "steps must be in [1, 100000], not 0"),
    ("steps", 2.0, "steps must be an integer in [1, 100000], not 2.0"),
    ("batch", 300, "batch must be in [1, 256], not 300"),
    ("lr", 0.0, "lr must be in (0, 10]"),
    ("beta2", 1.0, "beta2 must be in [0, 1)")])
def test_bad_settings_are_refused(field, value, message):
    with pytest.raises(ValueError) as error:
        TrainingSettings(**{field: value})
    assert message in str(error.value)


class _Recording(GoldenConvs):
    """The golden model, noting each pass's layer, pass and images."""

    def __init__(self):
        self.passes = []

    def run(self, job):
        self.passes.append((job.layer.name, job.pass_name, job.layer.batch))
        return super().run(job)


def test_a_batch_larger_than_the_memory_runs_each_pass_in_parts():
    settings = TrainingSettings(variant="batchnorm", steps=1, batch=5, eval_every=1)
    whole = DigitsTrainer(settings, CORE, _Recording())
    parts = DigitsTrainer(settings, CORE, _Recording(),
                          memory_bytes=BOARDS["ulx3s-85f"].memory_bytes)
    assert (whole.pass_batch, parts.pass_batch) == (5, 2)
    # Each image's forward results are its own: the same loss, whatever the parts.
    assert whole.step().loss == parts.step().loss
    assert [images for *_, images in whole.backend.passes] == [5] * 11
    assert [images for *_, images in parts.backend.passes] == [2, 2, 1] * 11
    assert [name for *name, _ in parts.backend.passes[::3]] == \
        [name for *name, _ in whole.backend.passes]


def test_a_network_larger_than_the_memory_is_refused():
    with pytest.raises(ValueError, match=r"passes need [\d,]+ bytes of memory for one image; "
                                         r"the board has 1,024"):
        DigitsTrainer(TrainingSettings(steps=1, batch=2), CORE, GoldenConvs(), memory_bytes=1024)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["batchnorm", "plain"])
def test_each_variant_learns_on_the_golden_model_at_its_default_batch(variant):
    """What ``maskprop train`` does by default, on the golden model: the ULX3S board's memory
    (passes in parts), 200 steps."""
    settings = TrainingSettings(variant=variant, steps=200, batch=DEFAULT_BATCH[variant],
                                eval_every=200)
    trainer = DigitsTrainer(settings, CORE, GoldenConvs(),
                            memory_bytes=BOARDS["ulx3s-85f"].memory_bytes)
    reports = [trainer.step() for _ in range(200)]
    assert np.mean([r.loss for r in reports[-20:]]) < 0.5 * np.mean([r.loss for r in reports[:20]])
    assert reports[-1].test_accuracy >= 0.9
    # Sparse mode never costs more compute cycles than the dense baseline.
    assert all(r.sparse_cycles <= r.dense_cycles for r in reports)


@pytest.mark.sim
@pytest.mark.parametrize("variant", ["plain", "batchnorm"])
def test_a_step_on_the_simulated_board_is_the_golden_models(variant):
    from maskprop.device import Device, SimulatedBoard
    from maskprop.hw.board_top import BoardTop

    spec = BOARDS["ulx3s-85f"]
    settings = TrainingSettings(variant=variant, steps=1, batch=2, eval_every=1)
    golden = DigitsTrainer(settings, CORE, GoldenConvs())
    expected = golden.step()
    top = BoardTop(spec.core, memory_words=spec.memory_words, divisor=4)
    with SimulatedBoard(top) as board:
        device = DigitsTrainer(settings, CORE, DeviceConvs(Device(board, top.register_map,
                                                                  timeout=300), check=True))
        report = device.step()
    assert report.loss == expected.loss and report.sparse_cycles == expected.sparse_cycles
    assert report.dense_cycles == expected.dense_cycles
    for name, value in golden.params.items():
        np.testing.assert_array_equal(device.params[name], value, err_msg=name)


@pytest.mark.parametrize("argv, message", [
    (["--device", "usb"], "--device must be sim, golden or serial:PORT, not 'usb'"),
    (["--steps", "0"], "steps must be in [1, 100000], not 0"),
    (["--device", "serial:/dev/null", "--baud", "3000000"], "--baud: baud 3000000 is not")])
def test_cli_bad_input(argv, message, capsys):
    assert main(["train", *argv]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_cli_trains_on_the_golden_model(capsys, tmp_path):
    out = tmp_path / "steps.json"
    assert main(["train", "--device", "golden", "--steps", "2", "--variant", "batchnorm",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 steps of 8 images (2 a pass) on golden in " in text and "speedup" in text
    import json
    steps = json.loads(out.read_text())["steps"]
    assert [s["step"] for s in steps] == [1, 2] and steps[-1]["test_accuracy"] is not None
