"""The host's split of a pass into core commands (``maskprop/host/split.py``): the commands tile
the pass's output exactly (every output pixel and channel once), each fits the core, bands
have the geometry the walker needs, and every forward and backward-data pass of the five
networks runs on the default and the FPGA core; backward-weight's parts cover its reduction
once per output-channel group, chained by their partial sums, and every backward-weight pass
of the five networks runs on both cores. The RTL runs of split passes are in
tests/test_core.py and tests/test_core_model.py."""

import dataclasses

import numpy as np
import pytest

from maskprop.base.config import CORE_DEFAULT, FPGA_CORE, Config, CoreConfig
from maskprop.host.memory_layout import channel_words
from maskprop.host.split import plan_pass, row_band
from maskprop.hw.core import MaskpropCore
from maskprop.sim.data_movement import command_traffic
from maskprop.sim.layer import ConvLayer
from maskprop.tb.stimulus import seed_from_env
from maskprop.workloads.networks import NETWORK_NAMES, network

PASSES = ("forward", "backward_data")


def seeded(default: int) -> int:
    seed = seed_from_env(default=default)
    print(f"seed={seed} (rerun with MASKPROP_SEED={seed})")
    return seed


def random_layers(rng: np.random.Generator, count: int):
    """``count`` random layers for a small core: kernels 1-5, strides 1-3, padding up to the
    kernel and beyond, images up to 29 rows, channel counts that are multiples of nothing."""
    for _ in range(count):
        kernel, stride = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        size = int(rng.integers(kernel, 30))
        yield ConvLayer(int(rng.integers(1, 4)), int(rng.integers(1, 9)), size,
                        int(rng.integers(kernel, 12)), int(rng.integers(1, 40)), kernel,
                        stride, int(rng.integers(0, kernel + 2)))


def check_plan(layer: ConvLayer, pass_name: str, core: CoreConfig) -> list:
    """The plan's commands cover every output (image, row, channel) of the pass once (a command
    computes whole rows of its images), and each command fits the core."""
    commands = plan_pass(layer, pass_name, core)
    forward = pass_name == "forward"

    def chunks(command):
        fields = command.layer_fields(layer)
        reduced = fields["layer_c"] if forward else fields["layer_k"]
        return layer.kernel * layer.kernel * channel_words(reduced, vec)

    cols = layer.out_channels if forward else layer.in_channels
    rows = layer.out_height if forward else layer.height
    covered = np.zeros((layer.batch, rows, cols), dtype=np.int64)
    config, vec = core.array, core.array.vec
    held = [None, None]          # the columns whose weights each half of the Y buffer holds
    for index, command in enumerate(commands):
        band, columns = command.band, command.columns
        # A command keeps weights exactly when a half of the Y buffer holds its columns (the
        # core's rule: a load fills half 0 and empties half 1, a kept group runs from its
        # half, a prefetch fills the other), its input when the same images and band.
        last = commands[index - 1] if index else None
        assert command.keep_weights == (columns in held), command
        run = held.index(columns) if command.keep_weights else 0
        if not command.keep_weights:
            held = [None, None]
        held[run] = columns
        assert command.keep_input == (last is not None and
                                      (last.images, last.band) == (command.images, band))
        # A prefetch loads the next command's group, as wide as this one's, into the other
        # half; both fit a half. The next command keeps them.
        if command.prefetch is not None:
            following = commands[index + 1]
            assert command.prefetch == following.columns, command
            assert following.columns not in held, command
            assert len(command.prefetch) == len(columns), command
            held[1 - run] = command.prefetch
        if command.prefetch is not None or run == 1:
            assert config.y_fits(len(columns), chunks(command), half=True), command
        covered[command.images.start:command.images.stop, band.out_start:band.out_stop,
                columns.start:columns.stop] += 1
        assert config.y_fits(len(columns), chunks(command)), command
        words = {t.role: t.words for t in
                 command_traffic(layer, command, config, dense=True).tensors}
        assert words["X scratchpad"] <= core.x_words, command
        # A group starts on a memory word; only the last may end inside one.
        assert columns.start % vec == 0, command
        fields = command.layer_fields(layer)
        assert max(fields["pad_top"], fields["pad_bottom"]) <= 255, command
    assert (covered == 1).all(), (layer, pass_name)
    # Groups outer (each group's weights read once, the input once per group) or parts
    # (images and bands) outer (the input read once, the weights at most once per part). The
    # plan costs no more, in memory-word cycles (words read, plus the weight loads the core
    # waits for, plus a check per command), than either order of the widest groups without
    # prefetches, the plans before the Y buffer had halves, and computes the same column blocks.
    read = {role: sum(t.words for command in commands for t in
                      command_traffic(layer, command, config, dense=True).tensors
                      if t.role == role) for role in ("X scratchpad", "Y buffer")}
    groups = {command.columns: command for command in commands}
    parts = {(command.images, command.band): command for command in commands}
    reduced = layer.in_channels if forward else layer.out_channels
    weights = cols * layer.kernel * layer.kernel * channel_words(reduced, vec)
    inputs = sum(dataclasses.replace(command, keep_input=False).x_words(layer, vec)
                 for command in parts.values())
    assert read["X scratchpad"] in (inputs, inputs * len(groups))
    assert weights <= read["Y buffer"] <= weights * len(parts)
    check = MaskpropCore.CHECK_CYCLES
    waited = sum(command.y_words(layer, vec) for command in commands)
    cost = sum(read.values()) + waited + check * len(commands)
    # The widest groups without halves: all columns, or the most whole words that fit the
    # whole Y buffer (whole column blocks where wider than one).
    reduction = chunks(commands[0])
    width = cols if config.y_fits(cols, reduction) else max(
        g for g in range(vec, cols, vec) if config.y_fits(g, reduction))
    if width < cols and width >= config.col_block:
        width = width // config.col_block * config.col_block
    full_groups = -(-cols // width)
    # Backward-data's narrower groups never make more column blocks (the tile array's X passes
    # per row, which its output mask makes cost compute).
    block = config.col_block
    if not forward:
        assert sum(-(-len(g) // block) for g in groups) == sum(
            -(-min(width, cols - c0) // block) for c0 in range(0, cols, width))
    assert cost <= min(inputs * full_groups + 2 * weights,
                       inputs + 2 * weights * len(parts)) + check * full_groups * len(parts)
    return commands


@pytest.mark.parametrize("batch", [1, 32])
def test_every_pass_of_the_five_networks_runs(batch):
    """docs/architecture.md section 8.1: every forward and backward-data pass of the five
    networks, at batch 1 and 32, splits into commands CORE_DEFAULT runs. FPGA_CORE's smaller
    Y buffer (2048 words) holds no whole memory word of columns for reductions of more than
    128 chunks at their power-of-two stride: those passes, and only those, are refused."""
    passes = split = 0
    refused = []
    for name in NETWORK_NAMES:
        for net_layer in network(name).layers:
            layer = dataclasses.replace(net_layer.conv, batch=batch)
            for pass_name in PASSES:
                passes += 1
                split += len(check_plan(layer, pass_name, CORE_DEFAULT)) > 1
                try:
                    check_plan(layer, pass_name, FPGA_CORE)
                except ValueError as error:
                    assert "fit the Y buffer (y_words = 2048" in str(error), error
                    reduced = layer.in_channels if pass_name == "forward" else \
                        layer.out_channels
                    assert layer.kernel ** 2 * channel_words(reduced, 16) > 128, error
                    refused.append(error)
    assert passes == 296 and split > 0
    assert len(refused) == 61


def check_weight_plan(layer: ConvLayer, core: CoreConfig, operand: str = "a") -> list:
    """Backward-weight's commands: per output-channel group (whole memory words, only the last
    may end inside one; ``dZ`` broadcast: one group of every column), parts whose output
    pixels cover the reduction once, in order; the first part writes raw sums, the last
    requantizes, the ones between do both, all at the group's own partial-sum words; each
    command fits the core."""
    commands = plan_pass(layer, "backward_weight", core, operand=operand)
    config, vec = core.array, core.array.vec
    pixels = layer.batch * layer.out_height * layer.out_width
    rows, cols = (layer.kernel ** 2 * layer.in_channels, layer.out_channels)
    groups = {}
    for command in commands:
        groups.setdefault(command.columns, []).append(command)
    assert [c for group in groups.values() for c in group] == commands, "groups not outer"
    starts = sorted(columns.start for columns in groups)
    assert starts == [columns.start for columns in groups]
    covered = np.zeros(layer.out_channels, dtype=np.int64)
    regions = []
    for columns, parts in groups.items():
        covered[columns.start:columns.stop] += 1
        if operand == "dz":
            assert columns == range(layer.out_channels)
        assert columns.start % vec == 0, columns
        reduction = [p for part in parts for p in part.reduction_pixels(layer)]
        assert reduction == list(range(pixels)), (layer, columns)
        last = len(parts) - 1
        for index, part in enumerate(parts):
            assert (part.psum_in, part.psum_out) == (index > 0, index < last), (index, part)
            assert part.psum_offset == parts[0].psum_offset
            # Whole images, or a band of one image.
            assert len(part.images) == 1 or (part.band.out_start, part.band.out_stop) == (
                0, layer.out_height), part
            chunks = -(-part.pixels(layer) // vec)
            assert chunks <= core.row_block_chunks, part
            assert config.y_fits(len(columns) if operand == "a" else rows, chunks), part
            assert part.x_words(layer, vec) <= core.x_words, part
            assert part.pixels(layer) <= config.max_reduction(), part
            assert max(part.band.pad_top, part.band.pad_bottom) <= 255, part
        if last:
            regions.append((parts[0].psum_offset,
                            parts[0].sum_words(layer, config.tiles, core.bus_bytes)))
    assert (covered == 1).all()
    for (first, words), (second, _) in zip(regions, regions[1:]):
        assert first + words <= second, regions
    if len(commands) == 1:
        assert not (commands[0].psum_in or commands[0].psum_out)
    return commands


@pytest.mark.parametrize("batch", [1, 32])
def test_every_backward_weight_of_the_five_networks_runs(batch):
    """Broadcasting A, every backward-weight pass of the five networks splits into commands
    that CORE_DEFAULT and FPGA_CORE run: output-channel groups as wide as the Y buffer holds
    at a part's chunks, parts as large as the row-block buffer, the Y buffer and the
    scratchpad allow (at batch 32 ResNet-50's conv1 reduces over 401,408 output pixels)."""
    passes = split = 0
    for name in NETWORK_NAMES:
        for net_layer in network(name).layers:
            layer = dataclasses.replace(net_layer.conv, batch=batch)
            passes += 1
            split += len(check_weight_plan(layer, CORE_DEFAULT)) > 1
            check_weight_plan(layer, FPGA_CORE)
    assert passes == 148 and split > 100


def test_random_backward_weights_cover_their_reduction():
    """Random layers on a small core, both operands: every plan covers the reduction once per
    group with chained partial sums, or is refused naming what to raise."""
    seed = seeded(41)
    rng = np.random.default_rng(seed)
    core = CoreConfig(Config(vec=4, lanes=2, tiles=2, col_block=4, max_chunks=64, max_cols=16,
                             y_words=256, data_width=16), x_words=128, row_block_chunks=4)
    assert core.partial_sums
    planned = split = 0
    for layer in random_layers(rng, 300):
        for operand in ("a", "dz"):
            try:
                split += len(check_weight_plan(layer, core, operand)) > 1
                planned += 1
            except ValueError as error:       # only what no split can fit
                assert any(f"raise {name}" in str(error) for name in (
                    "x_words", "y_words or max_cols", "row_block_chunks")), error
    assert planned > 300 and split > 100


def test_random_layers_tile_their_output():
    """Random layers on a small core (every split kind, strides 1-3, padding up to the kernel
    and beyond): each plan covers the pass's output once and each command fits."""
    seed = seeded(40)
    rng = np.random.default_rng(seed)
    core = CoreConfig(Config(vec=4, lanes=2, tiles=2, col_block=4, max_chunks=64, max_cols=16,
                             y_words=256), x_words=128)
    planned = 0
    for layer in random_layers(rng, 300):
        for pass_name in PASSES:
            try:
                check_plan(layer, pass_name, core)
                planned += 1
            except ValueError as error:       # only what a split cannot fit
                assert any(f"raise {name}" in str(error)
                           for name in ("x_words", "y_words", "max_chunks")), error
    assert planned > 400


def test_bands_keep_the_layers_windows():
    """A band's geometry: its rows as a layer with its own padding give exactly its windows
    (forward: its output rows; backward-data: the dZ rows it reads)."""
    layer = ConvLayer(1, 3, 23, 5, 4, 5, 3, 3)
    for pass_name, rows in (("forward", layer.out_height), ("backward_data", layer.height)):
        for start in range(rows):
            for stop in range(start + 1, rows + 1):
                try:
                    band = row_band(layer, pass_name, start, stop)
                except ValueError as error:
                    assert "only" in str(error) and pass_name == "forward", error
                    continue
                height = band.in_rows if pass_name == "forward" else band.out_rows
                windows = (height + band.pad_top + band.pad_bottom - layer.kernel) \
                    // layer.stride + 1
                assert windows == (band.out_rows if pass_name == "forward" else band.in_rows)


def test_refusals_name_the_parameter():
    with pytest.raises(ValueError, match="raise max_chunks"):
        plan_pass(ConvLayer(1, 1000, 4, 4, 8, 3), "forward", CORE_DEFAULT)
    with pytest.raises(ValueError, match="x_words = 4,096; raise x_words"):
        plan_pass(ConvLayer(1, 16, 3, 5000, 4, 3), "forward", CORE_DEFAULT)
    # Backward-weight: split over its reduction and output channels, but one output row of
    # one group must fit: its result columns the Y buffer (broadcasting dZ: 3 x 3 x 600 >
    # max_cols, which no group splits), its pixels the row-block buffer (a row of 600 output
    # pixels: 38 chunks), A and dZ the scratchpad.
    with pytest.raises(ValueError, match="5400 result columns of 1 chunks do not fit the Y "
                                         "buffer"):
        plan_pass(ConvLayer(1, 600, 3, 3, 4, 3, 1, 1), "backward_weight", CORE_DEFAULT,
                  operand="dz")
    with pytest.raises(ValueError, match="one output row over 600 output pixels takes 38 "
                                         "chunks, but the row-block buffer holds "
                                         "row_block_chunks = 32; raise row_block_chunks"):
        plan_pass(ConvLayer(1, 16, 2, 600, 4, 1), "backward_weight", CORE_DEFAULT)
    with pytest.raises(ValueError, match="for one output row, A and dZ take 7,710 words, more "
                                         "than the X scratchpad's x_words = 4,096; raise "
                                         "x_words"):
        plan_pass(ConvLayer(1, 2048, 10, 30, 16, 3, 1, 1), "backward_weight", CORE_DEFAULT)
    # A core whose bus is narrower than a partial sum cannot split the reduction.
    narrow = CoreConfig(Config(vec=4, lanes=2, tiles=2, data_width=8, col_block=4,
                               max_chunks=8, max_cols=16), x_words=1024, row_block_chunks=8)
    with pytest.raises(ValueError, match="this core has no partial sums .they need a memory "
                                         "bus of 64 bits or more, it has 32"):
        plan_pass(ConvLayer(1, 4, 10, 10, 4, 3, 1, 1), "backward_weight", narrow)
    with pytest.raises(ValueError, match="operand must be one of a, dz, not 'x'"):
        plan_pass(ConvLayer(1, 16, 3, 5, 4, 3), "backward_weight", CORE_DEFAULT, operand="x")
    with pytest.raises(ValueError, match="is not within the"):
        row_band(ConvLayer(1, 16, 3, 5, 4, 3, 1, 1), "forward", 2, 9)
