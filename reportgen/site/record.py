"""A run's record, ``data/pair.json``: its stage results joined to its labels as the manifest has
them now.

Written once per build from the typed results, never patched: the labels (id, title, notes, the
file names and weights as written) come from the manifest at build time, everything else from the
stages, whose cache keys know nothing of labels.  The pages are rendered from this same record,
so what a page shows and what its data file says cannot disagree.
"""

from __future__ import annotations

from typing import Any

from reportgen.stages.fingerprint import STAGE_VERSIONS
from reportgen.paths import reconstruction_file, snapshot_file
from reportgen.manifest import Manifest, Run
from reportgen.stages.results import AnalysisResult, FigureSet, TransferResult

RECORD_FORMAT = 2  # 2: "stage_versions" in place of "results_version"


def run_record(run: Run, manifest: Manifest, transfer: TransferResult, analysis: AnalysisResult, figures: FigureSet) -> dict[str, Any]:
    params = run.params
    files = {"content": manifest.relative(run.pair.content), "style": manifest.relative(run.pair.style)}
    timings = {**transfer.timings, "analysis": analysis.seconds, "figures": figures.seconds}
    # The order of a record's timings, as the phases ran before they were stages.
    order = ("load", "transfer", "analysis", "figures", "reconstructions")
    return {
        "format": RECORD_FORMAT,
        "stage_versions": dict(STAGE_VERSIONS),
        **run.labels,
        "inputs": {role: {"file": files[role], **image.as_dict()} for role, image in (("content", transfer.content), ("style", transfer.style))},
        "parameters": params.as_dict() | {"weights": manifest.weights_as_written(params.weights)},
        "weights": transfer.weights,
        "activation": params.activation,
        "precision": transfer.precision,  # as resolved on the device that ran it
        **transfer.device,
        "timings": {key: round(timings[key], 3) for key in order if key in timings},
        "batch_size": transfer.batch_size,  # runs optimised together; transfer time and peak memory are shared
        "peak_memory": transfer.peak_memory,
        "losses": {**transfer.losses.as_columns(), "final": transfer.final.as_dict()},
        "scales": [scale.as_dict() for scale in transfer.scales],
        "snapshots": [
            {"step": s.step, "file": snapshot_file(s.step), "size": list(s.size), "total": s.total} for s in transfer.snapshots
        ],
        "stylisation": analysis.stylisation.as_dict(),
        "layers": _layers(run, analysis, figures),
        "reconstructions": _reconstructions(transfer),
        # Every file of the run's folder and its size (the Grams' even where they are not published).
        "files": figures.files,
    }


def _layers(run: Run, analysis: AnalysisResult, figures: FigureSet) -> dict[str, dict]:
    params = run.params
    layers = {}
    for layer, info in analysis.layers.items():
        drawn = figures.layers[layer]
        layers[layer] = {
            "channels": info.channels,
            "map_size": {role: list(size) for role, size in info.map_sizes.items()},
            "montage": {kind: montage.as_dict() for kind, montage in info.montages.items()},
            "top_pairs": {role: [cell.as_list() for cell in cells] for role, cells in info.top_pairs.items()},
            "top_cells": {role: [cell.as_list() for cell in cells] for role, cells in info.top_cells.items()},
            "top_pairs_normalised": [cell.as_list() for cell in info.top_pairs_normalised],
            "gram_scale": drawn.gram_scale.as_dict(),
            "correlation_heatmap": drawn.correlation.as_dict(),
            "is_style_layer": layer in params.style_layer_weights,
            "is_content_layer": layer == params.content_layer,
        }
    return layers


def _reconstructions(transfer: TransferResult) -> dict | None:
    if transfer.reconstructions is None:
        return None
    made: dict[str, list] = {"content": [], "style": []}
    for item in transfer.reconstructions:
        made[item.kind].append({"layers": list(item.layers), "file": reconstruction_file(item.kind, item.layers[-1]), "loss": item.loss})
    return made

