"""The Gatys loss of a batch of images, under reportgen's normalisation or the seed notebook's.

``relative`` (the default)
    Every term is a squared distance relative to the pair's own, so the weights mean the same
    for every pair, every size and every set of weights:

    * style, per layer: ``β · w_l · (‖Ĝ − A‖ / ‖Ĝ_content − A‖)²``, the result's Gram distance
      to the style image's as a fraction of the content image's own (Ĝ = F·Fᵀ / (C·H·W), per
      channel and position, so images of different sizes compare);
    * content: ``α · (‖F − P‖ / ‖F_style − P‖)²`` at the content layer, the result's distance
      to the content image's maps as a fraction of the style image's (fitted to the content's
      shape).

    At the content image the style terms sum to ``β · Σ w_l`` and the content term is 0; 1 in a
    term means "as far as the other image is".  These are the ratios the pages report for how
    far the result moved.  Normalising by the target's magnitude alone (‖A‖) leaves the balance
    to the pair: a greyscale texture, far from a colour photograph in every Gram, then wiped
    the photograph out at weights that barely touched a painting (benchmarks/RESULTS.md).  With
    absolute differences (as before) a term scales with the fourth power of its activations,
    and α and β had to be found again for each pair and size.
``seed``
    The seed notebook's loss, exactly: ``α · mean((F − P)²) + β · Σ w_l · mean((G − A)²) / (C·H·W)``
    with raw Grams ``G = F·Fᵀ`` (the style image fitted to the content's shape, as the notebook
    and ``preset: seed`` do; a style image of another size has its Gram counted as if it had
    the result's number of positions).  Its activations are measured as for
    ImageNet-standardised input (see :attr:`Preprocessing.standard_unit`), the input the
    notebook's torchvision weights take, so its α and β keep their balance on the original Caffe
    weights.  Its style term grows with
    the number of positions, so its balance changes with the image size.

Several style images (a blend, ``style_blend``) make one target per layer: the weighted mean of
their Grams, as neural-style blends its styles.  The mean of Grams is the Gram statistics of an
image drawn from each style in proportion to its weight; it is what the optimisation can reach
as one texture, where a weighted sum of separate style losses would pull towards each style's
own Gram and settle in a compromise none of the terms describe.  Under ``relative`` the content
term's normaliser is the blend's mean squared distance of the styles from the content.

Regions (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer"): style k
applies where mask k is white.  Its term compares the result's *guided* Gram in that region,
``(F·m)(F·m)ᵀ / (C·Σm²)`` with the mask ``m`` averaged down to each layer's positions, with the
style image's Gram per position; each region's terms are normalised as above (by the content
image's guided Gram distance) and weighed by the region's share of the masks' area, so that the
style terms still sum to ``β · Σ w_l`` at the content image.  Pixels outside every mask answer
to the content term alone.  Regions use the relative loss only.

Both may add ``tv_weight · mean((Δx)² + (Δy)²)``, the squared total variation of the 0..1 image
(Mahendran & Vedaldi's regulariser), which smooths high-frequency noise.

Precision: with ``precision="bfloat16"`` the network's passes run in bfloat16 (on its bfloat16
copy, :meth:`FeatureExtractor.in_bfloat16`, which computes what autocast would), and so do the
Grams of its bfloat16 features (the product accumulates in float32; its result is
rounded to bfloat16 once, a smaller error than the features' own rounding, and its backward
feeds a bfloat16 network anyway).  Everything after the Grams, the content term and the targets
are float32.  In float32 the Grams took a seventh of a bfloat16 step at 256 px, for no gain in
the result (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from reportgen.ml.vgg import FeatureExtractor

if TYPE_CHECKING:
    from reportgen.stages.settings import TransferSettings


class _PositionsGram(torch.autograd.Function):
    """(B, N, C) -> (B, C, C): Xᵀ·X, with the backward as one product, dX = X·(dG + dGᵀ).

    Autograd would differentiate through both operands of Xᵀ·X separately: two products where
    one does, in a step where the Grams cost as much as the convolutions' forward pass.
    """

    @staticmethod
    def forward(ctx: Any, positions: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(positions)
        if positions.dtype == torch.bfloat16:
            # A product per image: in bfloat16 on a CPU, a batched product copies its transposed
            # operand first (at 512 px, 23 ms of conv1_1's 28), where a 2-D one reads it in
            # place.  In float32 the two are as fast, and the batched one needs less memory.
            return torch.stack([image.t() @ image for image in positions])
        return positions.transpose(1, 2) @ positions

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (positions,) = ctx.saved_tensors
        return positions @ (grad + grad.transpose(1, 2))


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C): the raw Gram matrix F·Fᵀ, summed over the H·W positions."""
    batch, channels, height, width = features.shape
    # (B, H·W, C): a view, not a copy, of channels-last features (the extractor's layout).
    positions = features.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
    with record_function("reportgen::gram"):
        return _PositionsGram.apply(positions)


def normalised_gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) float32: the Gram divided by C·H·W (channels times positions)."""
    _, channels, height, width = features.shape
    return gram(features).float() / (channels * height * width)


def guided_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) features and a (B, 1, H, W) mask in 0..1 -> (B, C, C): the Gram of the
    features weighed by the mask (averaged down to h × w), divided by C·Σm², the masked
    positions; a mask of ones gives :func:`normalised_gram`."""
    batch, channels, height, width = features.shape
    weights = F.adaptive_avg_pool2d(mask, (height, width))  # (B, 1, h, w)
    positions = weights.square().sum(dim=(1, 2, 3)).clamp_min(1e-12)  # (B,)
    return gram(features * weights) / (channels * positions).view(batch, 1, 1)


def fit_to(style: torch.Tensor, shape: torch.Size | tuple[int, int]) -> torch.Tensor:
    """(1, 3, h, w) RGB 0..255 -> (1, 3, H, W) for ``shape`` (H, W): the style image resized to
    the content's shape (antialiased bilinear, rounded to 8-bit levels), as the content term's
    normaliser and the pages' "how far the result moved" both take it."""
    resized = F.interpolate(
        style.float(), size=tuple(shape), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round().clamp(0, 255)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B,): mean over positions of the squared differences to the right and
    below neighbours, summed over channels."""
    across = (images[..., :, 1:] - images[..., :, :-1]).square().sum(dim=1).mean(dim=(1, 2))
    down = (images[..., 1:, :] - images[..., :-1, :]).square().sum(dim=1).mean(dim=(1, 2))
    return across + down


def _accumulate(sums: dict[str, torch.Tensor], key: str, term: torch.Tensor) -> None:
    """``sums[key] += term``, starting from ``term`` itself: 1·G is exact and so is G + 0·G', so
    a blend with weight 1 on one style has that style's own target, bit for bit."""
    sums[key] = sums[key] + term if key in sums else term


@dataclass
class RegionTerms:
    """One region's share of a style loss: its mask, its style's Gram per position at each
    style layer, and each layer's weight over the content image's guided distance."""

    mask: torch.Tensor  # (B, 1, H, W) in 0..1, the content image's size
    targets: dict[str, torch.Tensor]  # layer -> (B, C, C)
    scales: dict[str, torch.Tensor]  # layer -> (B,)


@dataclass(frozen=True)
class LossTerms:
    """Each weighted term of a batch's loss, float32 (B,) tensors."""

    total: torch.Tensor
    content: torch.Tensor
    style: dict[str, torch.Tensor]
    tv: torch.Tensor

    def rows(self) -> list[torch.Tensor]:
        """[total, content, tv, *style] as one list, for a single transfer to the host."""
        return [self.total, self.content, self.tv, *self.style.values()]


class GatysObjective:
    """The weighted loss of an image against one content target and its style targets (one
    style image, the blend of several, or a style per region), computed once."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        settings: TransferSettings,
        masks: Sequence[torch.Tensor] = (),
    ):
        """``content`` and each of ``styles`` are (1, 3, H, W) RGB in 0..1 (their sizes may
        differ); ``settings.style_blend`` weighs the styles' Grams into the target, or, given
        ``masks`` ((1, 1, H, W) in 0..1 at the content's size, one per style), style k applies
        where mask k is white."""
        self.extractor = extractor
        self.settings = settings
        self.loss = settings.loss
        layers = settings.style_layers
        blend = settings.style_blend
        if masks and (len(masks) != len(styles) or self.loss != "relative"):
            raise ValueError("regions need a mask per style image and the relative loss")
        if not masks and len(blend) != len(styles):
            raise ValueError(f"{len(styles)} style images for {len(blend)} blend weights")
        with torch.no_grad():
            own_features = self._features(content, exact=True)  # the content image's, every layer
        self.content_target = own_features[settings.content_layer]
        device = content.device
        self.regions: list[RegionTerms] = []
        # Without regions: layer -> the target Gram (B, C, C), and its term's weight (B,).
        self.style_targets: dict[str, torch.Tensor] = {}
        self.style_scales: dict[str, torch.Tensor] = {}
        if masks:
            self._regions(own_features, content, styles, masks)
        elif self.loss == "relative":
            content_distance = torch.zeros((), device=device)
            for style, weight in zip(styles, blend, strict=True):
                with torch.no_grad():
                    features = self._features(style, exact=True)
                    for layer in layers:
                        _accumulate(
                            self.style_targets, layer, weight * normalised_gram(features[layer])
                        )
                    fitted = fit_to(style * 255, content.shape[-2:]) / 255
                    fitted_content = self._features(fitted, exact=True)[settings.content_layer]
                # The style image's distance from the content's maps, weighed as in the blend.
                content_distance = (
                    content_distance
                    + weight * (fitted_content - self.content_target).square().sum()
                )
            # The pair's own distances: the style images' from the content's maps, and the
            # content image's Grams from the style target.
            content_distance = content_distance.clamp_min(1e-30)
            self.content_scale = (
                torch.tensor([settings.content_weight], device=device) / content_distance
            )
            self.style_scales = {}
            for (layer, weight), target in zip(
                layers.items(), self.style_targets.values(), strict=True
            ):
                style_distance = (
                    (normalised_gram(own_features[layer]) - target).square().sum().clamp_min(1e-30)
                )
                self.style_scales[layer] = (
                    torch.tensor([settings.style_weight * weight], device=device) / style_distance
                )
        else:
            # The seed's: activations in ImageNet-standard units, raw Grams, means of squares.
            unit = extractor.preprocessing.standard_unit
            # Raw Grams sum over positions: a style image of another size (the notebook always
            # fitted it to the content's shape) is counted as if it had the result's positions.
            self.style_targets = {}
            for style, weight in zip(styles, blend, strict=True):
                with torch.no_grad():
                    features = self._features(style, exact=True)
                for layer in layers:
                    positions = own_features[layer][0, 0].numel() / features[layer][0, 0].numel()
                    _accumulate(
                        self.style_targets, layer, weight * gram(features[layer]) * positions
                    )
            self.content_scale = torch.tensor([settings.content_weight / unit**2], device=device)
            self.style_scales = {
                layer: torch.tensor([settings.style_weight * weight / unit**4], device=device)
                for layer, weight in layers.items()
            }
        self.tv_weight = torch.tensor([settings.tv_weight], device=device)
        self.uses_tv = settings.tv_weight > 0  # known here, so a step never asks the device

    def _regions(
        self,
        own_features: dict[str, torch.Tensor],
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor],
    ) -> None:
        """The content scale and each region's terms (see the module's docstring)."""
        settings, device = self.settings, content.device
        areas = torch.stack([mask.sum() for mask in masks])
        shares = (areas / areas.sum().clamp_min(1e-12)).tolist()
        content_distance = torch.zeros((), device=device)
        for style, mask, share in zip(styles, masks, shares, strict=True):
            with torch.no_grad():
                features = self._features(style, exact=True)
                fitted = fit_to(style * 255, content.shape[-2:]) / 255
                fitted_content = self._features(fitted, exact=True)[settings.content_layer]
            content_distance = (
                content_distance + share * (fitted_content - self.content_target).square().sum()
            )
            targets = {layer: normalised_gram(features[layer]) for layer in settings.style_layers}
            scales = {}
            for layer, weight in settings.style_layers.items():
                own = guided_gram(own_features[layer], mask)
                distance = (own - targets[layer]).square().sum().clamp_min(1e-30)
                scales[layer] = (
                    torch.tensor([settings.style_weight * weight * share], device=device) / distance
                )
            self.regions.append(RegionTerms(mask, targets, scales))
        self.content_scale = torch.tensor(
            [settings.content_weight], device=device
        ) / content_distance.clamp_min(1e-30)

    def _features(self, images: torch.Tensor, exact: bool) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) RGB 0..1 -> features, bfloat16 where the settings ask for it unless
        ``exact``, else float32."""
        network_input = self.extractor.preprocessing.to_network(images * 255)
        with record_function("reportgen::network"):
            if self.settings.precision == "bfloat16" and not exact:
                return self.extractor.in_bfloat16()(network_input.to(torch.bfloat16))
            return self.extractor(network_input)

    @classmethod
    def stack(cls, objectives: list[GatysObjective]) -> GatysObjective:
        """One objective for a batch: the i-th image of a batch is scored by ``objectives[i]``.

        Targets are stacked along the batch dimension and the weights become (B,) vectors; the
        objectives must share their :attr:`TransferSettings.batch_signature`.
        """
        first = objectives[0]
        stacked = cls.__new__(cls)
        stacked.extractor, stacked.settings, stacked.loss = (
            first.extractor,
            first.settings,
            first.loss,
        )
        stacked.content_scale = torch.cat([o.content_scale for o in objectives])
        stacked.style_scales = {
            layer: torch.cat([o.style_scales[layer] for o in objectives])
            for layer in first.style_scales
        }
        stacked.tv_weight = torch.cat([o.tv_weight for o in objectives])
        stacked.uses_tv = any(o.uses_tv for o in objectives)
        stacked.content_target = torch.cat([o.content_target for o in objectives])  # (B, C, H, W)
        stacked.style_targets = {
            layer: torch.cat([o.style_targets[layer] for o in objectives])
            for layer in first.style_targets
        }  # (B, C, C)
        # Region k of every image together (the objectives have as many regions each).
        stacked.regions = [
            RegionTerms(
                torch.cat([o.regions[k].mask for o in objectives]),
                {
                    layer: torch.cat([o.regions[k].targets[layer] for o in objectives])
                    for layer in region.targets
                },
                {
                    layer: torch.cat([o.regions[k].scales[layer] for o in objectives])
                    for layer in region.scales
                },
            )
            for k, region in enumerate(first.regions)
        ]
        return stacked

    def __call__(self, images: torch.Tensor, exact: bool = False) -> LossTerms:
        """(B, 3, H, W) RGB in 0..1 -> the weighted terms of each image's loss.

        The network runs at the settings' precision unless ``exact``; the losses are float32.
        """
        features = self._features(images, exact)
        result = features[self.settings.content_layer].float()
        if self.regions:
            content = self.content_scale * (result - self.content_target).square().sum(
                dim=(1, 2, 3)
            )
            style: dict[str, torch.Tensor] = {}
            for region in self.regions:
                for layer, scale in region.scales.items():
                    difference = guided_gram(features[layer], region.mask) - region.targets[layer]
                    _accumulate(style, layer, scale * difference.square().sum(dim=(1, 2)))
        elif self.loss == "relative":
            content = self.content_scale * (result - self.content_target).square().sum(
                dim=(1, 2, 3)
            )
            style = {
                layer: scale
                * (normalised_gram(features[layer]) - self.style_targets[layer])
                .square()
                .sum(dim=(1, 2))
                for layer, scale in self.style_scales.items()
            }
        else:
            content = self.content_scale * (result - self.content_target).square().mean(
                dim=(1, 2, 3)
            )
            style = {}
            for layer, scale in self.style_scales.items():
                _, channels, height, width = features[layer].shape
                difference = gram(features[layer]).float() - self.style_targets[layer]
                style[layer] = (
                    scale * difference.square().mean(dim=(1, 2)) / (channels * height * width)
                )
        tv = self.tv_weight * total_variation(images) if self.uses_tv else torch.zeros_like(content)
        return LossTerms(content + sum(style.values()) + tv, content, style, tv)
