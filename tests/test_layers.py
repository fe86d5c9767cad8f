"""reportgen.layers names the same modules as torchvision's vgg19().features."""

from __future__ import annotations

import pytest
from torch import nn

from reportgen.layers import (
    ANALYSED_LAYERS,
    CHANNELS,
    CONV_INDEX,
    LAYER_NAMES,
    module_index,
    network_order,
)


@pytest.fixture(scope="module")
def tv_features() -> nn.Sequential:
    from torchvision.models import vgg19

    return vgg19(weights=None).features


def test_sixteen_conv_layers_in_network_order():
    expected = [
        f"conv{b}_{c}"
        for b, n in zip(range(1, 6), (2, 2, 4, 4, 4), strict=True)
        for c in range(1, n + 1)
    ]
    assert list(LAYER_NAMES) == expected
    assert list(CONV_INDEX) == expected
    assert set(CHANNELS) == set(expected)


def test_every_conv_of_torchvision_is_named_once(tv_features):
    conv_positions = [i for i, module in enumerate(tv_features) if isinstance(module, nn.Conv2d)]
    assert sorted(CONV_INDEX.values()) == conv_positions


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_conv_index_and_channels_match_torchvision(tv_features, layer):
    index = CONV_INDEX[layer]
    conv = tv_features[index]
    assert isinstance(conv, nn.Conv2d), f"{layer}: features[{index}] is {conv}"
    assert conv.out_channels == CHANNELS[layer]
    assert conv.kernel_size == (3, 3) and conv.padding == (1, 1)
    # The ReLU that makes the layer's rectified response comes right after the conv.
    assert isinstance(tv_features[index + 1], nn.ReLU)


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_module_index_relu_and_conv(tv_features, layer):
    assert module_index(layer, "conv") == CONV_INDEX[layer]
    assert isinstance(tv_features[module_index(layer, "conv")], nn.Conv2d)
    assert module_index(layer, "relu") == CONV_INDEX[layer] + 1
    assert isinstance(tv_features[module_index(layer, "relu")], nn.ReLU)


def test_known_indices():
    # torchvision's vgg19().features: 0 conv1_1, 2 conv1_2, 4 pool, 5 conv2_1, ..., 21 conv4_2, 28
    # conv5_1.
    assert (CONV_INDEX["conv1_1"], CONV_INDEX["conv2_1"], CONV_INDEX["conv3_1"]) == (0, 5, 10)
    assert (
        CONV_INDEX["conv4_1"],
        CONV_INDEX["conv4_2"],
        CONV_INDEX["conv5_1"],
        CONV_INDEX["conv5_4"],
    ) == (19, 21, 28, 34)
    assert module_index("conv4_2", "relu") == 22


def test_module_index_refuses_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        module_index("conv1_1", "sigmoid")


def test_channel_widths_per_block():
    assert [CHANNELS[f"conv{b}_1"] for b in range(1, 6)] == [64, 128, 256, 512, 512]


def test_analysed_layers_are_the_seed_layers():
    assert ANALYSED_LAYERS == ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1")


def test_network_order_sorts_by_depth_and_deduplicates():
    assert network_order(["conv5_1", "conv1_1", "conv4_2", "conv1_1", "conv3_4"]) == [
        "conv1_1",
        "conv3_4",
        "conv4_2",
        "conv5_1",
    ]


def test_build_features_has_torchvision_structure(tv_features):
    from reportgen.ml.vgg import build_features

    ours = build_features(len(tv_features))
    assert len(ours) == len(tv_features)
    for index, (mine, theirs) in enumerate(zip(ours, tv_features, strict=True)):
        assert type(mine) is type(theirs), index
        if isinstance(theirs, nn.Conv2d):
            assert (mine.in_channels, mine.out_channels, mine.kernel_size, mine.padding) == (
                theirs.in_channels,
                theirs.out_channels,
                theirs.kernel_size,
                theirs.padding,
            ), index
        if isinstance(theirs, nn.MaxPool2d):
            assert (mine.kernel_size, mine.stride) == (theirs.kernel_size, theirs.stride)
