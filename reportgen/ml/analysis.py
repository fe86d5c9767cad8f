"""The seed notebook's analyses of one run, on the device: feature maps, raw Grams, their largest
cells and filter pairs, how far the result moved; everything leaves as numpy.

Of the feature maps only what the figures show is kept (:mod:`reportgen.tiles`): at 512 px the
maps of one run are hundreds of megabytes, their montage tiles a few.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from reportgen import tiles
from reportgen.grams import GramCell, correlation, per_position, relative_distance, sorted_cells
from reportgen.ml.losses import fit_to, gram
from reportgen.ml.vgg import FeatureExtractor
from reportgen.paths import ROLES
from reportgen.stages.arrays import Arrays
from reportgen.stages.results import (
    AnalysisResult,
    GramDistances,
    LayerAnalysis,
    MapDistances,
    Stylisation,
    blend_target_name,
    contributions_name,
    gram_name,
    pair_tiles_name,
    peaks_name,
    style_role,
    tiles_name,
)
from reportgen.tiles import MontageLayout

TOP_CELLS = 20  # largest Gram cells listed per role and layer


def raw_gram(features: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (C, C) float32: F·Fᵀ summed over positions, as the seed prints it."""
    return gram(features.float().unsqueeze(0))[0]


@torch.no_grad()
def analyse(
    extractor: FeatureExtractor,
    images: dict[str, torch.Tensor],
    top_pairs: int,
    content_layer: str,
    style_layers: list[str],
    blend: tuple[float, ...] = (1.0,),
    masks: list[torch.Tensor] | None = None,
) -> AnalysisResult:
    """Every analysis of one run at each of the extractor's layers.

    ``images`` maps each role (``content``, ``style``, ``result``) to a (1, 3, H, W) RGB tensor in
    0..255 on the extractor's device, and a blend's other style images by
    :func:`~reportgen.stages.results.style_role`, weighed by ``blend``; ``top_pairs`` filter pairs
    are ranked per role and layer.  A blend's other styles get their Grams and the distances to
    them; the maps and rankings are the first style's.  Given ``masks`` ((1, 1, H, W) in 0..1,
    one per style image: regions), the styles are weighed by their regions' areas, and each
    region of the result and of the content image is measured against its own style.
    """
    if masks:
        areas = [float(mask.sum()) for mask in masks]
        blend = tuple(area / max(sum(areas), 1e-12) for area in areas)
    other_styles = [style_role(k) for k in range(1, len(blend))]
    started = time.perf_counter()
    features = {
        role: extractor(extractor.preprocessing.to_network(rgb.float()))
        for role, rgb in images.items()
    }
    arrays: dict[str, np.ndarray] = {}
    layers: dict[str, LayerAnalysis] = {}
    content_maps: dict[str, np.ndarray] = {}
    for layer in extractor.layers:
        maps: dict[str, np.ndarray] = {  # role -> (C, H, W)
            role: features[role][layer][0].float().contiguous().cpu().numpy() for role in ROLES
        }
        grams = {role: raw_gram(features[role][layer][0]).cpu().numpy() for role in ROLES}  # (C, C)
        map_sizes: dict[str, tuple[int, int]] = {
            role: (maps[role].shape[2], maps[role].shape[1]) for role in ROLES
        }
        for role in other_styles:
            arrays[gram_name(role, layer)] = raw_gram(features[role][layer][0]).cpu().numpy()
            map_sizes[role] = (features[role][layer].shape[3], features[role][layer].shape[2])
        montages: dict[str, MontageLayout] = {}
        for role in ROLES:
            montages[role], arrays[tiles_name(role, layer)] = tiles.feature_tiles(maps[role])
            arrays[gram_name(role, layer)] = grams[role]
        if layer == content_layer:
            montages["difference"], arrays[tiles_name("difference", layer)] = (
                tiles.difference_tiles(maps["content"], maps["result"])
            )
            content_maps = maps
        ranked: dict[str, tuple[GramCell, ...]] = {
            role: tuple(sorted_cells(grams[role], top_pairs, off_diagonal=True)) for role in ROLES
        }
        style_pairs = list(ranked["style"])
        pair_tiles, arrays[pair_tiles_name(layer)] = tiles.pair_tiles(maps["style"], style_pairs)
        for role in ROLES:
            arrays[peaks_name(role, layer)] = tiles.peaks(maps[role])
        for role in ("style", "result"):
            arrays[contributions_name(role, layer)] = tiles.contribution_tiles(
                maps[role], style_pairs
            )
        layers[layer] = LayerAnalysis(
            layer=layer,
            channels=grams["style"].shape[0],
            map_sizes=map_sizes,
            top_cells={
                role: tuple(sorted_cells(grams[role], TOP_CELLS, off_diagonal=False))
                for role in ROLES
            },
            top_pairs=ranked,
            top_pairs_normalised=tuple(
                sorted_cells(correlation(grams["style"]), top_pairs, off_diagonal=True)
            ),
            montages=montages,
            pair_tiles=pair_tiles,
            style_pairs_in_result=tuple(float(grams["result"][c.i, c.j]) for c in style_pairs),
        )
    stylisation = _stylisation(
        extractor, layers, arrays, content_maps, images, style_layers, content_layer, blend
    )
    if masks:
        stylisation = dataclasses.replace(
            stylisation,
            per_region=_per_region(features, masks, layers, arrays, style_layers),
            region_shares=blend,
        )
    return AnalysisResult(layers, stylisation, time.perf_counter() - started, Arrays(arrays))


def _per_region(
    features: dict[str, dict[str, torch.Tensor]],
    masks: list[torch.Tensor],
    layers: dict[str, LayerAnalysis],
    arrays: dict[str, np.ndarray],
    style_layers: list[str],
) -> dict[str, tuple[GramDistances, ...]]:
    """Per style layer and region: the result's and the content image's Gram inside the region
    (guided by its mask, per masked position) against the region's style's Gram per position."""

    def guided(role: str, layer: str, mask: torch.Tensor) -> np.ndarray:
        maps = features[role][layer].float()  # (1, C, h, w)
        weights = F.adaptive_avg_pool2d(mask, (maps.shape[-2], maps.shape[-1]))
        positions = float(weights.square().sum().clamp_min(1e-12))
        return (raw_gram((maps * weights)[0]) / positions).cpu().numpy()

    rows = {}
    for layer in style_layers:
        row = []
        for k, mask in enumerate(masks):
            role = style_role(k)
            width, height = layers[layer].map_sizes[role]
            target = per_position(arrays[gram_name(role, layer)], width * height)
            row.append(
                GramDistances(
                    result=relative_distance(guided("result", layer, mask), target),
                    content=relative_distance(guided("content", layer, mask), target),
                )
            )
        rows[layer] = tuple(row)
    return rows


def _stylisation(
    extractor: FeatureExtractor,
    layers: dict[str, LayerAnalysis],
    arrays: dict[str, np.ndarray],
    content_maps: dict[str, np.ndarray],
    images: dict[str, torch.Tensor],
    style_layers: list[str],
    content_layer: str,
    blend: tuple[float, ...],
) -> Stylisation:
    """How far the result moved from the content towards the style: Grams (divided by positions,
    since the style image's size differs) against the style target, and ``content_layer`` maps
    against the content image's.  For the latter each style image is resized to the content's
    shape, as the seed does; that is the one forward pass (per style) this needs beyond the
    analysis.  A blend's target, the weighted mean of its styles' Grams, is kept in ``arrays``
    at every layer, and the result's distance to each style is measured too."""

    def gram_per_position(role: str, layer: str) -> np.ndarray:
        width, height = layers[layer].map_sizes[role]
        return per_position(arrays[gram_name(role, layer)], width * height)

    roles = [style_role(k) for k in range(len(blend))]

    def target_of(layer: str) -> np.ndarray:
        if len(blend) == 1:
            return gram_per_position("style", layer)
        target = sum(w * gram_per_position(r, layer) for w, r in zip(blend, roles, strict=True))
        arrays[blend_target_name(layer)] = np.asarray(target, np.float32)
        return arrays[blend_target_name(layer)]

    targets = {layer: target_of(layer) for layer in layers}

    def distances(layer: str, target: np.ndarray) -> GramDistances:
        return GramDistances(
            result=relative_distance(gram_per_position("result", layer), target),
            content=relative_distance(gram_per_position("content", layer), target),
        )

    style_gram = {layer: distances(layer, targets[layer]) for layer in style_layers}
    per_style = (
        {
            layer: tuple(distances(layer, gram_per_position(role, layer)) for role in roles)
            for layer in style_layers
        }
        if len(blend) > 1
        else {}
    )
    content = images["content"]
    target = content_maps["content"].astype(np.float64)
    style_distances = []
    for role in roles:
        style_features = extractor(
            extractor.preprocessing.to_network(fit_to(images[role].float(), content.shape[2:]))
        )[content_layer][0]
        style_distances.append(relative_distance(style_features.double().cpu().numpy(), target))
    content_features = MapDistances(
        result=relative_distance(content_maps["result"].astype(np.float64), target),
        # A blend's: the styles' squared distances weighed as in the blend, as the content
        # term's normaliser takes them.
        style=style_distances[0]
        if len(blend) == 1
        else math.sqrt(sum(w * d**2 for w, d in zip(blend, style_distances, strict=True))),
    )
    return Stylisation(style_gram, content_features, per_style)
