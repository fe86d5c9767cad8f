"""The seed notebook's analyses: feature maps, raw Grams, their largest cells and filter pairs.

Everything leaves here as numpy, so figures, pages and the cache never touch torch.
"""

from __future__ import annotations

import numpy as np
import torch

from reportgen.ml.losses import fit_to, gram
from reportgen.ml.vgg import FeatureExtractor
from reportgen.results import GramCell, LayerAnalysis


def raw_gram(features: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (C, C) float32: F·Fᵀ summed over positions, as the seed prints it."""
    return gram(features.float().unsqueeze(0))[0]


def correlation(gram: np.ndarray) -> np.ndarray:
    """(C, C) raw Gram -> G_ij / sqrt(G_ii·G_jj): the cosine between two filters' maps.

    The raw Gram ranks loud filters first; this ranks filters that fire *together* first, whatever
    their strength.  A silent filter (G_ii = 0) correlates with nothing: its row is 0.
    """
    energy = np.sqrt(np.clip(np.diag(gram).astype(np.float64), 0, None))
    scale = np.outer(energy, energy)
    return np.divide(gram, scale, out=np.zeros(gram.shape, dtype=np.float64), where=scale > 0)


def sorted_cells(gram: np.ndarray, count: int, off_diagonal: bool) -> list[GramCell]:
    """The ``count`` largest cells of a symmetric (C, C) matrix, each unordered pair once (i ≤ j).

    With ``off_diagonal`` the diagonal is left out (i < j): the seed's "top matched filters".
    Ties are broken by (i, j) so the order is stable.
    """
    rows, cols = np.triu_indices(gram.shape[0], k=1 if off_diagonal else 0)
    values = gram[rows, cols]
    if count < len(values):
        # Only cells at least as large as the count-th largest can be among the first ``count``
        # (ties included): sorting those few instead of all C²/2 cells is what makes this cheap.
        threshold = np.partition(values, len(values) - count)[len(values) - count]
        if not np.isnan(threshold):  # NaNs partition as largest; then sort everything, as before
            keep = np.flatnonzero(values >= threshold)
            rows, cols, values = rows[keep], cols[keep], values[keep]
    # lexsort's last key sorts first: value descending, then i, then j.
    order = np.lexsort((cols, rows, -values))[:count]
    return [GramCell(int(rows[k]), int(cols[k]), float(values[k])) for k in order]


def relative_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ / ‖b‖ (Frobenius), the distance used to say how far one representation is from another."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@torch.no_grad()
def analyse(
    extractor: FeatureExtractor,
    images: dict[str, torch.Tensor],
    top_count: int,
    cells_count: int = 20,
) -> dict[str, LayerAnalysis]:
    """Feature maps and Grams of each image at each of the extractor's layers.

    ``images`` maps a role (``content``, ``style``, ``result``) to a (1, 3, H, W) RGB tensor in
    0..255 on the extractor's device.  Returns ``{layer: LayerAnalysis}``.
    """
    per_image = {role: extractor(extractor.preprocessing.to_network(rgb.float())) for role, rgb in images.items()}
    analyses = {}
    for layer in extractor.layers:
        maps, grams = {}, {}
        for role, features in per_image.items():
            layer_features = features[layer][0]  # (C, H, W)
            grams[role] = raw_gram(layer_features).float().cpu().numpy()
            maps[role] = layer_features.float().contiguous().cpu().numpy()  # (C, H, W), C-ordered for numpy
        analyses[layer] = LayerAnalysis(
            layer=layer,
            maps=maps,
            grams=grams,
            top_cells={role: sorted_cells(g, cells_count, off_diagonal=False) for role, g in grams.items()},
            top_pairs={role: sorted_cells(g, top_count, off_diagonal=True) for role, g in grams.items()},
        )
    return analyses


@torch.no_grad()
def stylisation_distances(
    extractor: FeatureExtractor,
    analyses: dict[str, LayerAnalysis],
    content: torch.Tensor,
    style: torch.Tensor,
    style_layers: list[str],
    content_layer: str,
) -> dict[str, dict]:
    """How far the result moved from the content towards the style.

    Returns ``{"style_gram": {layer: {"result": d, "content": d}}, "content_features":
    {"result": d, "style": d}}`` where each ``d`` is a :func:`relative_distance`: Grams (divided
    by positions, since the style image's size differs) against the style image's, and
    ``content_layer`` maps against the content image's.  For the latter the style image
    (``style``, (1, 3, H, W) RGB 0..255) is resized to the content's shape (``content``), as the
    seed does; that is the one forward pass this needs beyond ``analyses``.
    """
    style_gram = {}
    for layer in style_layers:
        analysis = analyses[layer]
        target = analysis.gram_per_position("style")
        style_gram[layer] = {role: relative_distance(analysis.gram_per_position(role), target) for role in ("result", "content")}
    style_features = extractor(extractor.preprocessing.to_network(fit_to(style, content.shape[2:])))[content_layer][0]
    content_maps = analyses[content_layer].maps
    target = content_maps["content"].astype(np.float64)
    content_features = {
        "result": relative_distance(content_maps["result"].astype(np.float64), target),
        "style": relative_distance(style_features.double().cpu().numpy(), target),
    }
    return {"style_gram": style_gram, "content_features": content_features}
