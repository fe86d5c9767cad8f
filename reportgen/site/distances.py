"""How alike a study's style images are, layer by layer: distances between their Grams, the
order a hierarchical clustering puts them in, and each one's nearest styles (numpy and scipy).

Distances are computed as matrix products over the Grams of many styles at once, and kept in
the cache for the study's set of styles: a rebuild computes none, and a study grown by one pair
computes the N distances of its new style, not N².
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reportgen.manifest import Manifest
from reportgen.stages.fingerprint import file_sha256

if TYPE_CHECKING:
    from reportgen.stages.pipeline import RunResults

DISTANCES_VERSION = 1  # of the cached distance matrices
NEAREST = 5  # nearest styles listed for each style
TILE_BYTES = (
    128 << 20
)  # the Grams multiplied at once, in float64: 64 styles × 512² (4× as many columns)
IN_MEMORY_BYTES = (
    2 << 30
)  # a layer's stacked Grams in float64 up to this (1000 × 512²); float32 beyond


@dataclass(frozen=True)
class StudyStyles:
    """The study's distinct style images: as fed (the same file at another size is another
    representation), with the same weights and activation."""

    identities: list[str]
    labels: list[str]  # the file's name, with how it was fed where names repeat
    runs: list[str]  # a run whose analysis holds the style's Grams (the first to use it)
    study: str = ""  # whose styles: studies sharing a cache keep their distances apart

    def kept_file(self, keep_in: Path, layer: str) -> Path:
        """Where the distances of these styles at ``layer`` are kept between builds."""
        return keep_in / f"{self.study or 'study'}-{layer}-v{DISTANCES_VERSION}.npz"


@dataclass(frozen=True)
class StyleComparison:
    """One layer: the symmetric distance between every two styles' Grams per position
    (‖a − b‖ over the mean of ‖a‖ and ‖b‖: 0 for equal Grams, at most 2)."""

    layer: str
    styles: StudyStyles
    matrix: np.ndarray  # (N, N) float64, in the study's order
    order: list[int]  # the styles in the order of their clustering (average linkage)
    merges: np.ndarray  # (N - 1, 4) scipy linkage of that clustering; empty for one style

    def nearest(self, index: int, count: int = NEAREST) -> list[int]:
        """The ``count`` styles nearest style ``index``, nearest first (ties by study order)."""
        closest = np.argsort(self.matrix[index], kind="stable")[: count + 1]  # itself among them
        return [int(k) for k in closest if k != index][:count]


def study_styles(manifest: Manifest, results: dict[str, RunResults]) -> StudyStyles:
    runs = {run.name: run for run in manifest.runs}
    seen: set[str] = set()
    identities, labels, holders = [], [], []
    for name, run_results in results.items():
        transfer, params = run_results.transfer, runs[name].params
        # A blend is a style of its own: its images, their sizes and its weights.
        fed_as = [
            *(style.sha256 for style in transfer.styles),
            *(list(style.size) for style in transfer.styles),
            transfer.weights.sha256,
            params.activation,
        ]
        if len(transfer.styles) > 1:
            fed_as.append(list(params.blend_weights))
        fed_as += [file_sha256(mask) for mask in runs[name].pair.masks]
        if params.preserve_color != "none":  # the style was fed in the content's colours
            fed_as += [params.preserve_color, transfer.content.sha256]
        identity = json.dumps(fed_as)
        if identity in seen:
            continue
        seen.add(identity)
        identities.append(identity)
        pair = runs[name].pair
        labels.append(
            style_label(pair.styles, params.blend_weights)
            if not pair.masks
            else " | ".join(style.name for style in pair.styles) + " (regions)"
        )
        holders.append(name)
    study = hashlib.sha256(str(manifest.path).encode()).hexdigest()[:16]
    return StudyStyles(identities, _distinct(labels, holders, runs, results), holders, study)


def style_label(styles: tuple[Path, ...], blend: tuple[float, ...]) -> str:
    """``hubble.jpg``, or a blend's ``hubble.jpg 70% + strokes.jpg 30%``."""
    if len(styles) == 1:
        return styles[0].name
    return " + ".join(
        f"{path.name} {weight:.0%}" for path, weight in zip(styles, blend, strict=True)
    )


def _distinct(
    labels: list[str], holders: list[str], runs: dict, results: dict[str, RunResults]
) -> list[str]:
    """The file names, with how the style was fed where a name stands for several styles."""
    repeated = {label for label, count in Counter(labels).items() if count > 1}
    shown = []
    for label, name in zip(labels, holders, strict=True):
        if label in repeated:
            params, size = runs[name].params, results[name].transfer.styles[0].size
            how = [f"{size[0]}×{size[1]}", params.activation]
            if params.preserve_color != "none":
                how.append(f"{params.preserve_color} of {Path(runs[name].pair.content).name}")
            label = f"{label} ({', '.join(how)})"
        shown.append(label)
    return shown


def style_comparisons(
    manifest: Manifest, results: dict[str, RunResults], keep_in: Path | None
) -> dict[str, StyleComparison]:
    """For each layer every run analyses: how alike the study's style images are there.
    ``keep_in`` holds the distances of the last build (``None``: nothing kept); :func:`keep`
    keeps these."""
    if not results:
        return {}
    analyses = [r.analysis for r in results.values()]
    layers = [layer for layer in analyses[0].layers if all(layer in a.layers for a in analyses)]
    styles = study_styles(manifest, results)
    comparisons = {}
    for layer in layers:
        matrix = _distances(styles, results, layer, keep_in)
        order, merges = _clustering(matrix)
        comparisons[layer] = StyleComparison(layer, styles, matrix, order, merges)
    return comparisons


def _distances(
    styles: StudyStyles, results: dict[str, RunResults], layer: str, keep_in: Path | None
) -> np.ndarray:
    """(N, N) distances at ``layer``: those of styles the last build had from the cache, the
    others computed."""
    count = len(styles.identities)
    matrix = np.full((count, count), np.nan)
    kept = styles.kept_file(keep_in, layer) if keep_in is not None else None
    if kept is not None and kept.is_file():
        try:
            with np.load(kept) as stored:
                known = {identity: k for k, identity in enumerate(stored["identities"].tolist())}
                old_matrix = stored["matrix"]
            here = [
                (k, known[identity])
                for k, identity in enumerate(styles.identities)
                if identity in known
            ]
            if here:
                new_index, old_index = map(np.array, zip(*here, strict=True))
                matrix[np.ix_(new_index, new_index)] = old_matrix[np.ix_(old_index, old_index)]
        except (OSError, ValueError, KeyError):
            pass  # a damaged file: everything is computed again
    # Styles the kept distances do not cover: their rows (and columns) are computed.
    missing = np.flatnonzero(np.isnan(np.diag(matrix)))
    if len(missing):
        present = np.flatnonzero(~np.isnan(np.diag(matrix)))
        order = np.concatenate([present, missing])  # the styles to compute last
        stacked = _stacked_grams([styles.runs[k] for k in order], results, layer)
        computed = _distances_of_the_last(stacked, len(present))
        reordered = np.ix_(order, order)
        matrix[reordered] = np.where(np.isnan(computed), matrix[reordered], computed)
        np.fill_diagonal(matrix, 0.0)
    return matrix


def _stacked_grams(runs: list[str], results: dict[str, RunResults], layer: str) -> np.ndarray:
    """(N, D) the Gram of each run's style at ``layer``, a row each: float64 unless a large
    study's would not fit in memory (the analysis computed them in float32, so float32 loses
    nothing; only the products need float64)."""
    first = results[runs[0]].analysis.target_gram(layer)
    dtype = np.float64 if len(runs) * first.size * 8 <= IN_MEMORY_BYTES else np.float32
    stacked = np.empty((len(runs), first.size), dtype)
    for row, name in enumerate(runs):
        stacked[row] = results[name].analysis.target_gram(layer).ravel()
    return stacked


def _distances_of_the_last(stacked: np.ndarray, known: int) -> np.ndarray:
    """(N, N) distances between the rows of ``stacked`` (N, D) wherever one of the two is past
    its first ``known`` rows (NaN elsewhere). Each pair is computed once, in tiles large enough
    for the matrix product to run at full speed and small enough to convert to float64: a tile
    of rows against the known rows, then against the unknown ones from the tile on."""
    count, size = stacked.shape
    tile = max(1, TILE_BYTES // (size * 8))
    norms = np.sqrt(np.einsum("nd,nd->n", stacked, stacked, dtype=np.float64))
    computed = np.full((count, count), np.nan)
    for start in range(known, count, tile):
        stop = min(start + tile, count)
        rows = stacked[start:stop].astype(np.float64, copy=False)
        for span_start, span_stop in ((0, known), (start, count)):
            for first in range(span_start, span_stop, 4 * tile):
                columns = slice(first, min(first + 4 * tile, span_stop))
                distances = _symmetric_distances(
                    rows,
                    stacked[columns].astype(np.float64, copy=False),
                    norms[start:stop],
                    norms[columns],
                )
                computed[start:stop, columns] = distances
                computed[columns, start:stop] = distances.T
    return computed


def _symmetric_distances(
    a: np.ndarray, b: np.ndarray, a_norms: np.ndarray, b_norms: np.ndarray
) -> np.ndarray:
    """‖a_i − b_j‖ / ((‖a_i‖ + ‖b_j‖) / 2) for every row i of ``a`` (M, D) and j of ``b`` (K, D),
    from one matrix product: ‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b."""
    squared = a_norms[:, None] ** 2 + b_norms[None, :] ** 2 - 2 * (a @ b.T)
    scale = (a_norms[:, None] + b_norms[None, :]) / 2
    return np.divide(
        np.sqrt(np.clip(squared, 0, None)), scale, out=np.zeros_like(scale), where=scale > 0
    )


def keep(comparisons: dict[str, StyleComparison], keep_in: Path) -> None:
    """Keep each layer's distances for the next build (after this one's site is swapped in)."""
    for layer, comparison in comparisons.items():
        _keep(
            comparison.styles.kept_file(keep_in, layer),
            comparison.styles.identities,
            comparison.matrix,
        )


def _keep(path: Path, identities: list[str], matrix: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=".distances-", suffix=".npz", delete=False
    ) as handle:
        np.savez(handle, identities=np.array(identities), matrix=matrix)
    Path(handle.name).replace(path)


def _clustering(matrix: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Average-linkage clustering of the styles by their distances (as seaborn's clustermap
    does): the order of its leaves, and the merges for a dendrogram."""
    count = len(matrix)
    if count < 3:
        return list(range(count)), np.zeros((0, 4))
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    condensed = squareform((matrix + matrix.T) / 2, checks=False)
    merges = linkage(condensed, method="average")
    if count <= 400:  # neighbours side by side within clusters too (cubic: small studies only)
        merges = optimal_leaf_ordering(merges, condensed)
    return [int(k) for k in leaves_list(merges)], merges


def digest(comparison: StyleComparison) -> str:
    """What a layer's figure of distances depends on: its styles and their distances."""
    payload = json.dumps(
        [comparison.layer, comparison.styles.identities, comparison.styles.labels]
    ).encode()
    return hashlib.sha256(payload + comparison.matrix.round(6).tobytes()).hexdigest()[:24]
