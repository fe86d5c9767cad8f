"""The one table of VGG19 layer names and their places in torchvision's ``vgg19().features``.

Names follow the paper and the seed notebook (``conv4_2`` is the second convolution of the fourth
block).  Whether a name means the convolution's output or the ReLU after it is decided by the
``activation`` setting, never by the name.  This module imports no torch so that the manifest can
be validated without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

# Convolutions per block in VGG19 (configuration "E" of Simonyan & Zisserman).
_CONVS_PER_BLOCK = (2, 2, 4, 4, 4)


def _build_tables() -> tuple[dict[str, int], dict[str, int]]:
    """Index of every conv module in ``features`` and its number of output channels."""
    conv_index: dict[str, int] = {}
    channels: dict[str, int] = {}
    index = 0
    for block, (n_convs, width) in enumerate(
        zip(_CONVS_PER_BLOCK, (64, 128, 256, 512, 512), strict=True), 1
    ):
        for conv in range(1, n_convs + 1):
            name = f"conv{block}_{conv}"
            conv_index[name] = index
            channels[name] = width
            index += 2  # the conv and its ReLU
        index += 1  # the max-pool closing the block
    return conv_index, channels


CONV_INDEX, CHANNELS = _build_tables()
LAYER_NAMES: tuple[str, ...] = tuple(CONV_INDEX)
# Whether a layer name means the ReLU after the convolution (the paper) or the convolution.
Activation = Literal["relu", "conv"]
ACTIVATIONS: tuple[Activation, ...] = get_args(Activation)

# The layers the seed notebook analyses, in network order: its five style layers and its
# content layer.  Every pair gets a page for each of these, plus any other layer its
# parameters use.
ANALYSED_LAYERS: tuple[str, ...] = (
    "conv1_1",
    "conv2_1",
    "conv3_1",
    "conv4_1",
    "conv4_2",
    "conv5_1",
)


def module_index(layer: str, activation: Activation) -> int:
    """Index in ``vgg19().features`` of the module whose output *is* ``layer``.

    ``activation="conv"`` is the convolution itself, ``"relu"`` the ReLU that follows it (the
    paper's choice: its feature responses are rectified).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
    return CONV_INDEX[layer] + (1 if activation == "relu" else 0)


def network_order(layers: Iterable[str]) -> list[str]:
    """The given layer names, deduplicated, sorted by depth in the network."""
    return sorted(set(layers), key=CONV_INDEX.__getitem__)


def receptive_field(layer: str) -> tuple[int, int]:
    """(side, stride) in input pixels of one position of ``layer``: the square of the image it
    sees (3×3 convolutions and 2×2 max-pools all the way down), and how far apart neighbouring
    positions' squares are."""
    side, stride = 1, 1
    for name in LAYER_NAMES:
        side += 2 * stride  # a 3×3 convolution
        if name == layer:
            return side, stride
        block, conv = (int(part) for part in name.removeprefix("conv").split("_"))
        if conv == _CONVS_PER_BLOCK[block - 1]:  # the block's max-pool
            side += stride
            stride *= 2
    raise ValueError(f"unknown layer {layer!r}")
