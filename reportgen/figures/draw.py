"""The figures stage: a run's folder, every file its pages show, drawn from its transfer and
analysis results (no network, no torch: it runs in worker processes beside the transfers).

The folder's files are named by :mod:`reportgen.paths`; it is kept as a cache entry and copied
as it is into the site as ``pairs/<run>/`` (``data/pair.json`` is written there, from the stage
results, when the site is built).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reportgen import grams
from reportgen.figures import plots, raster
from reportgen.images import save_png
from reportgen.manifest import FigureOptions, Params
from reportgen.paths import (
    BLEND,
    GRAMS,
    LOSS_CURVES,
    ROLES,
    LayerFiles,
    gram_key,
    image_file,
    reconstruction_file,
    region_file,
    snapshot_file,
    thumbnail_file,
)
from reportgen.stages.arrays import Arrays
from reportgen.stages.jobs import FigureJob
from reportgen.stages.results import (
    AnalysisResult,
    FigureSet,
    LayerFigures,
    blend_target_name,
    contributions_name,
    gram_name,
    pair_tiles_name,
    reconstruction_name,
    snapshot_name,
    style_role,
    tiles_name,
)


def _made(folder: Path, inner: str) -> Path:
    """Where the run-folder file ``inner`` goes in ``folder``, its parent folders made."""
    path = folder / inner
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def draw_run(job: FigureJob) -> FigureSet:
    """Write every image, figure and data file of one run into ``job.folder``, the feature-map
    montages of the layers its options name."""
    started = time.perf_counter()
    layers = draw_piece(job, run_files=True, layers=tuple(job.analysis.layers))
    return FigureSet.of_folder(layers, time.perf_counter() - started, job.folder)


def draw_piece(job: FigureJob, run_files: bool, layers: tuple[str, ...]) -> dict[str, LayerFigures]:
    """Part of :func:`draw_run`, so that several processes can draw one run: the run's own
    files (pictures, curves, Grams) if ``run_files``, and the figures of ``layers``.  Returns
    what the pages need to know of those layers' figures; the files are listed once every
    piece is drawn (:meth:`FigureSet.joined`)."""
    images = job.transfer.images.loaded()
    arrays = job.analysis.arrays.loaded()
    history = job.transfer.losses.as_columns()
    if run_files:
        _draw_run_files(job, images, arrays, history)
    return {
        layer: _draw_layer(
            job.analysis, arrays, images, job.params, job.options, history, job.folder, layer
        )
        for layer in layers
    }


def _draw_run_files(job: FigureJob, images: Arrays, arrays: Arrays, history: dict) -> None:
    """The run's pictures, thumbnails, region overlays, loss curves, snapshots,
    reconstructions and published Grams: everything that is not one layer's."""
    transfer, analysis, folder = job.transfer, job.analysis, job.folder
    roles = [*ROLES, *(style_role(k) for k in range(1, len(transfer.styles)))]
    for role in roles:
        save_png(images[role], _made(folder, image_file(role)))
        raster.thumbnail(images[role], _made(folder, thumbnail_file(role)))
    for k, mask in enumerate(transfer.masks):
        raster.region_overlay(images["content"], mask, _made(folder, region_file(k)))
    plots.loss_curves(
        history, [scale.first_step for scale in transfer.scales[1:]], _made(folder, LOSS_CURVES)
    )
    for snapshot in transfer.snapshots:
        _webp(
            images[snapshot_name(snapshot.step)],
            _made(folder, snapshot_file(snapshot.step)),
            quality=85,
        )
    for item in transfer.reconstructions or ():
        pixels = images[reconstruction_name(item.kind, item.layers[-1])]
        _webp(pixels, _made(folder, reconstruction_file(item.kind, item.layers[-1])), quality=90)
    published: dict[str, Any] = {
        gram_key(role, layer): arrays[gram_name(role, layer)]
        for layer in analysis.layers
        for role in roles
    }
    if analysis.blended:  # per position, as the transfer aimed at it
        published |= {
            gram_key(BLEND, layer): arrays[blend_target_name(layer)] for layer in analysis.layers
        }
    np.savez_compressed(_made(folder, GRAMS), **published)


def _webp(pixels: np.ndarray, path: Path, quality: int) -> None:
    Image.fromarray(pixels, "RGB").save(
        path, format="WEBP", quality=quality, method=raster.WEBP_METHOD
    )


def _draw_layer(
    analysis: AnalysisResult,
    arrays: Arrays,
    images: Arrays,
    params: Params,
    options: FigureOptions,
    history: dict,
    folder: Path,
    layer: str,
) -> LayerFigures:
    """Every figure of one layer; returns the scales the page needs to explain them."""
    info = analysis.layers[layer]
    files = LayerFiles(layer)
    (folder / files.folder).mkdir(parents=True, exist_ok=True)
    # Grams per position, since the style image's size differs from the content's and result's;
    # a blend's result is compared with the target it was optimised towards.
    per_position = {
        "style": arrays[blend_target_name(layer)]
        if analysis.blended
        else grams.per_position(
            arrays[gram_name("style", layer)], math.prod(info.map_sizes["style"])
        ),
        "result": grams.per_position(
            arrays[gram_name("result", layer)], math.prod(info.map_sizes["result"])
        ),
    }
    style_gram = arrays[gram_name("style", layer)]
    quality = {"quality": options.quality} if options.quality else {}
    plots.gram_heatmap(
        style_gram,
        f"Gram matrix of the style image at {layer}",
        folder / files.gram_heatmap,
        **quality,
    )
    if analysis.blended:
        plots.gram_heatmap(
            per_position["style"],
            f"Target Gram per position of the blend at {layer}",
            folder / files.blend_heatmap,
            **quality,
        )
    plots.energy_bars(
        np.diag(per_position["style"]),
        np.diag(per_position["result"]),
        layer,
        folder / files.energy,
        style_label="blend's target" if analysis.blended else "style image",
    )
    if layer in params.style_layer_weights:
        plots.layer_loss_curve(
            history["step"], history["style"][layer], layer, folder / files.loss_curve
        )
    if options.montages_at(layer, params.content_layer):
        for role in ROLES:
            raster.feature_montage(
                arrays[tiles_name(role, layer)],
                info.montages[role],
                folder / files.maps(role),
                **quality,
            )
        if "difference" in info.montages:
            raster.difference_montage(
                arrays[tiles_name("difference", layer)],
                info.montages["difference"],
                folder / files.difference,
                **quality,
            )
    limits = []
    if options.pair_sheets:
        tiles = dict(zip(info.pair_tiles.filters, arrays[pair_tiles_name(layer)], strict=True))
        contributions = {
            role: arrays[contributions_name(role, layer)] for role in ("style", "result")
        }
        for rank, cell in enumerate(info.top_pairs["style"], start=1):
            limit = raster.pair_figure(
                (tiles[cell.i], tiles[cell.j]),
                (images["style"], contributions["style"][rank - 1]),
                (images["optimised"], contributions["result"][rank - 1]),
                folder / files.pair(rank),
                **quality,
            )
            limits.append(limit)
    scale = raster.gram_comparison(
        per_position["style"],
        per_position["result"],
        layer,
        folder / files.gram_comparison,
        **quality,
    )
    placement = raster.correlation_heatmap(
        grams.correlation(style_gram), layer, folder / files.correlation, **quality
    )
    return LayerFigures(scale, placement, tuple(limits))
