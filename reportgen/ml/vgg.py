"""A frozen VGG19 feature extractor: image batch in, ``{layer name: activation}`` out.

The network is cut after the deepest layer asked for, its parameters never require gradients
(style transfer differentiates with respect to the image only), and it is built on the ``meta``
device before the real weights are assigned, so no time is spent on a random initialisation that
would be overwritten at once.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from reportgen.layers import CHANNELS, CONV_INDEX, Activation, module_index, network_order
from reportgen.ml.weights import LoadedWeights, Preprocessing


def build_features(depth: int) -> nn.Sequential:
    """The first ``depth`` modules of torchvision's ``vgg19().features``, same indices, on ``meta``.

    Built here rather than through torchvision so that importing torchvision (about a second) and
    initialising weights that are about to be replaced are both avoided.  ReLUs are not in-place:
    a tapped convolution output must survive the ReLU after it.
    """
    modules: list[nn.Module] = []
    in_channels = 3
    conv_at = {index: name for name, index in CONV_INDEX.items()}
    while len(modules) < depth:
        index = len(modules)
        if index in conv_at:
            out_channels = CHANNELS[conv_at[index]]
            modules.append(nn.Conv2d(in_channels, out_channels, 3, padding=1, device="meta"))
            in_channels = out_channels
        elif index - 1 in conv_at:
            modules.append(nn.ReLU())
        else:
            modules.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*modules)


class FeatureExtractor(nn.Module):
    """VGG19 ``features`` up to the deepest requested layer.

    ``forward(x)`` takes a (B, 3, H, W) network-space batch (see :class:`Preprocessing`) and returns
    ``{layer: (B, C_layer, H_layer, W_layer)}`` for each requested layer.
    """

    def __init__(self, weights: LoadedWeights, layers: Iterable[str], activation: Activation):
        super().__init__()
        self.layers = network_order(layers)
        self.activation = activation
        self.preprocessing: Preprocessing = weights.preprocessing
        self._taps = {module_index(layer, activation): layer for layer in self.layers}
        depth = max(self._taps) + 1
        features = build_features(depth)
        # Only the modules kept after the cut have entries to load.
        state = {k: v for k, v in weights.state_dict.items() if int(k.split(".")[0]) < depth}
        features.load_state_dict(state, assign=True)
        self.features = features.eval().requires_grad_(False)
        self.__dict__["_bfloat16"] = None  # not a submodule: no state of this network's own

    def in_bfloat16(self) -> FeatureExtractor:
        """This network with its weights in bfloat16, made on first use and kept.

        It computes what the float32 network does under bfloat16 autocast, without casting
        every weight at every call as autocast does (its cache keeps only the casts of weights
        that require gradients): 1.5% of a bfloat16 step at 256 px (benchmarks/RESULTS.md).
        Feed it bfloat16 input.
        """
        twin = self.__dict__["_bfloat16"]
        if twin is None:
            twin = copy.deepcopy(self).to(torch.bfloat16)  # keeps the channels-last layout
            self.__dict__["_bfloat16"] = twin
        return twin

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs: dict[str, torch.Tensor] = {}
        # Channels-last, like the kernels the Runtime loads: 5-10% faster on oneDNN, and what
        # cuDNN's tensor-core kernels want.  The outputs keep that layout.
        x = x.contiguous(memory_format=torch.channels_last)
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self._taps:
                outputs[self._taps[index]] = x
        return outputs
