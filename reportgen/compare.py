"""Comparisons across the runs of a study, computed from their exported data (numpy only)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from reportgen.layout import GRAMS, gram_key
from reportgen.results import per_position


def symmetric_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ over the mean of ‖a‖ and ‖b‖ (Frobenius): 0 for equal Grams, at most 2."""
    scale = (np.linalg.norm(a) + np.linalg.norm(b)) / 2
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


def style_distances(records: dict[str, dict], entries: dict[str, Path]) -> dict[str, dict]:
    """For each layer analysed in every run: how alike the study's style images are there.

    Style images are told apart by their file's hash, the size they were fed at, the weights and
    the activation (the same file at another size is another representation).  Returns
    ``{layer: {"labels": [...], "matrix": [[d, ...], ...]}}`` with :func:`symmetric_distance`
    between Grams divided by their number of positions.
    """
    if not records:
        return {}
    layers = [layer for layer in next(iter(records.values()))["layers"] if all(layer in r["layers"] for r in records.values())]
    styles: dict[tuple, tuple[str, str]] = {}  # identity -> (label, run name holding its Grams)
    for name, record in records.items():
        style = record["inputs"]["style"]
        identity = (style["sha256"], tuple(style["size"]), record["weights"]["sha256"], record["activation"])
        if identity not in styles:
            label = Path(style["file"]).name
            if any(existing == label for existing, _ in styles.values()):
                label = f"{label} ({style['size'][0]}×{style['size'][1]}, {record['activation']})"
            styles[identity] = (label, name)
    comparisons = {}
    archives = {name: np.load(entries[name] / GRAMS) for _, name in styles.values()}
    try:
        for layer in layers:
            grams = [
                per_position(archives[name][gram_key("style", layer)], math.prod(records[name]["layers"][layer]["map_size"]["style"]))
                for _, name in styles.values()
            ]
            matrix = [[symmetric_distance(a, b) for b in grams] for a in grams]
            comparisons[layer] = {"labels": [label for label, _ in styles.values()], "matrix": matrix}
    finally:
        for archive in archives.values():
            archive.close()
    return comparisons
