"""Comparisons across the runs of a study, from their analyses (numpy only)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reportgen.grams import symmetric_distance
from reportgen.manifest import Manifest

if TYPE_CHECKING:
    from reportgen.pipeline import RunResults


def style_distances(manifest: Manifest, results: dict[str, "RunResults"]) -> dict[str, dict]:
    """For each layer analysed in every run: how alike the study's style images are there.

    Style images are told apart by their file's hash, the size they were fed at, the weights and
    the activation (the same file at another size is another representation).  Returns
    ``{layer: {"labels": [...], "matrix": [[d, ...], ...]}}`` with
    :func:`reportgen.grams.symmetric_distance` between Grams divided by their number of positions.
    """
    if not results:
        return {}
    runs = {run.name: run for run in manifest.runs}
    analyses = [r.analysis for r in results.values()]
    layers = [layer for layer in analyses[0].layers if all(layer in a.layers for a in analyses)]
    styles: dict[tuple, tuple[str, str]] = {}  # identity -> (label, run name holding its Grams)
    for name, run_results in results.items():
        style, activation = run_results.transfer.style, runs[name].params.activation
        identity = (style.sha256, style.size, run_results.transfer.weights["sha256"], activation)
        if identity not in styles:
            label = Path(runs[name].pair.style).name
            if any(existing == label for existing, _ in styles.values()):
                label = f"{label} ({style.size[0]}×{style.size[1]}, {activation})"
            styles[identity] = (label, name)
    comparisons = {}
    for layer in layers:
        grams = [results[name].analysis.gram_per_position("style", layer) for _, name in styles.values()]
        matrix = [[symmetric_distance(a, b) for b in grams] for a in grams]
        comparisons[layer] = {"labels": [label for label, _ in styles.values()], "matrix": matrix}
    return comparisons
