"""Computing one pair: transfer, analysis, figures and data files, written into one folder.

The folder becomes a cache entry and is copied into the site as ``pairs/<id>/``; its files are
named by :mod:`reportgen.layout`, and its record (``data/pair.json``) is what the pages are
rendered from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from reportgen import color, figures
from reportgen.errors import TransferError
from reportgen.fingerprint import RESULTS_VERSION
from reportgen.images import LoadedImage, load_image, save_png
from reportgen.layout import GRAMS, LOSS_CURVES, RECORD, ROLES, LayerFigures, gram_key, image_file, reconstruction_file, snapshot_file, thumbnail_file
from reportgen.manifest import DEFAULT_STYLE_WEIGHT, Manifest, Params, Run
from reportgen.ml.analysis import analyse, correlation, sorted_cells, stylisation_distances
from reportgen.ml.runtime import Runtime
from reportgen.ml.transfer import StepRecord, TransferOutput, TransferSettings, run_transfers
from reportgen.results import LayerAnalysis

log = logging.getLogger(__name__)

RECORD_FORMAT = 1

# (phase, done, total) -> None; phases are "transfer", "analysis", "figures".
PhaseProgress = Callable[[str, int, int], None]


def as_tensor(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in 0..255 on ``device``."""
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).to(device, torch.float32).contiguous()


def _history_columns(history: list[StepRecord]) -> dict:
    layers = list(history[0].style) if history else []
    return {
        "step": list(range(1, len(history) + 1)),
        "total": [r.total for r in history],
        "content": [r.content for r in history],
        "style": {layer: [r.style[layer] for r in history] for layer in layers},
        "tv": [r.tv for r in history],
    }


def _made(folder: Path, inner: str) -> Path:
    """Where the run-folder file ``inner`` goes in ``folder``, its parent folders made."""
    path = folder / inner
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _input_record(manifest: Manifest, image: LoadedImage) -> dict:
    return {
        "file": manifest.relative(image.path),
        "sha256": image.sha256,
        "original_size": list(image.original_size),
        "size": list(image.size),
        "notes": list(image.notes),
    }


def _layer_figures(analysis: LayerAnalysis, params: Params, history: dict, folder: Path, plots: figures.PlotThread) -> dict:
    """Every figure of one layer into the run's ``folder`` (the plots through ``plots``); returns
    what the layer page needs to show them."""
    layer = analysis.layer
    style_layers = params.style_layer_weights
    files = LayerFigures(layer)
    (folder / files.folder).mkdir(exist_ok=True)
    # Grams per position, since the style image's size differs from the content's and result's.
    per_position = {role: analysis.gram_per_position(role) for role in ROLES}
    plots.submit(figures.gram_heatmap, analysis.grams["style"], f"Gram matrix of the style image at {layer}", folder / files.gram_heatmap)
    plots.submit(figures.energy_bars, np.diag(per_position["style"]), np.diag(per_position["result"]), layer, folder / files.energy)
    if layer in style_layers:
        plots.submit(figures.layer_loss_curve, history["step"], history["style"][layer], layer, folder / files.loss_curve)
    montages = {role: figures.feature_montage(analysis.maps[role], folder / files.maps(role)).as_dict() for role in ROLES}
    figures.filter_pairs_figure(analysis.maps["style"], analysis.top_pairs["style"], folder / files.top_pairs)
    comparison = figures.gram_comparison(per_position["style"], per_position["result"], layer, folder / files.gram_comparison)
    correlations = correlation(analysis.grams["style"])
    heatmap = figures.correlation_heatmap(correlations, layer, folder / files.correlation)
    if layer == params.content_layer:
        montages["difference"] = figures.difference_montage(analysis.maps["content"], analysis.maps["result"], folder / files.difference).as_dict()
    return {
        "channels": analysis.channels,
        "map_size": {role: [int(analysis.maps[role].shape[2]), int(analysis.maps[role].shape[1])] for role in ROLES},
        "montage": montages,
        "top_pairs": {role: [cell.as_list() for cell in analysis.top_pairs[role]] for role in ROLES},
        "top_cells": {role: [cell.as_list() for cell in analysis.top_cells[role]] for role in ROLES},
        "top_pairs_normalised": [cell.as_list() for cell in sorted_cells(correlations, params.top_pairs, off_diagonal=True)],
        "gram_scale": comparison,
        "correlation_heatmap": heatmap,
        "is_style_layer": layer in style_layers,
        "is_content_layer": layer == params.content_layer,
    }


# The paper's Figure 1: what the content representation keeps at increasing depth, and what the
# style representation keeps as more layers are added.
CONTENT_RECONSTRUCTION_LAYERS = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
STYLE_RECONSTRUCTION_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def _reconstructions(prepared: PreparedRun, runtime: Runtime, folder: Path, report: PhaseProgress) -> dict:
    """Images rebuilt from white noise out of one representation each (content at one layer, or
    style over a growing set of layers), with the run's optimiser, steps and seed."""
    params, device = prepared.run.params, runtime.device
    content = as_tensor(prepared.content_fed, device)
    style = as_tensor(prepared.style_fed, device)
    jobs = [("content", (layer,), 1.0, 0.0) for layer in CONTENT_RECONSTRUCTION_LAYERS]
    # The style jobs have no content term, so the style weight's size does not matter (both
    # optimisers ignore the loss's scale); the loss's own default keeps the numbers familiar.
    style_weight = DEFAULT_STYLE_WEIGHT[params.loss]
    jobs += [("style", STYLE_RECONSTRUCTION_LAYERS[: count + 1], 0.0, style_weight) for count in range(len(STYLE_RECONSTRUCTION_LAYERS))]
    made: dict[str, list] = {"content": [], "style": []}
    for index, (kind, layers, content_weight, style_weight) in enumerate(jobs):
        report("reconstructions", index, len(jobs))
        settings = TransferSettings(
            steps=params.steps,
            optimizer=params.optimizer,
            lr=params.lr,
            content_weight=content_weight,
            style_weight=style_weight,
            loss=params.loss,
            # For style jobs the (unweighted) content layer is the deepest style layer, so the
            # network is not run deeper than the reconstruction needs.
            content_layer=layers[-1],
            style_layers={layer: 1.0 for layer in layers} if kind == "style" else {},
            init="noise",
            seed=params.seed,
            precision=prepared.settings.precision,
        )
        extractor = runtime.extractor(params.weights, params.activation, [settings.content_layer, *settings.style_layers])
        # Both start from noise of the content image's size (the seed's noise): content jobs match
        # its maps at one layer, style jobs the style image's Grams (their content term is off).
        output = run_transfers(extractor, [(content, style, settings)])[0]
        name = reconstruction_file(kind, layers[-1])
        pixels = output.result_rgb[0].permute(1, 2, 0).numpy()
        Image.fromarray(pixels, "RGB").save(_made(folder, name), format="WEBP", quality=90, method=figures.WEBP_METHOD)
        made[kind].append({"layers": list(layers), "file": name, "loss": output.final.total})
    report("reconstructions", len(jobs), len(jobs))
    return made


def _peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"device_bytes": int(torch.cuda.max_memory_allocated(device))}
    # ru_maxrss is KiB on Linux, bytes on macOS; it is the process's peak, not this pair's.
    scale = 1 if sys.platform == "darwin" else 1024
    return {"process_rss_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)}


def _snapshots(output: TransferOutput, content: np.ndarray, preserve_color: str, folder: Path) -> list[dict]:
    """The images kept during the optimisation as WebP files; returns their records, each with
    that image's total loss."""
    made = []
    for snapshot in output.snapshots:
        pixels = snapshot.pixels
        if preserve_color == "luminance":  # shown in the colours the result will have
            height, width = pixels.shape[:2]
            chroma = content if content.shape[:2] == (height, width) else np.asarray(Image.fromarray(content).resize((width, height), Image.Resampling.LANCZOS))
            pixels = color.restore_colour(pixels, chroma, preserve_color)
        name = snapshot_file(snapshot.step)
        Image.fromarray(pixels, "RGB").save(_made(folder, name), format="WEBP", quality=85, method=figures.WEBP_METHOD)
        made.append({"step": snapshot.step, "file": name, "size": [pixels.shape[1], pixels.shape[0]], "total": snapshot.total})
    return made


@dataclass(frozen=True)
class PreparedRun:
    """A run with its images loaded, as fed to the network, and its transfer settings resolved."""

    run: Run
    content: LoadedImage  # as read and resized
    style: LoadedImage
    content_fed: np.ndarray  # (H, W, 3) uint8: what the network is fed (after colour preservation)
    style_fed: np.ndarray
    settings: TransferSettings
    load_seconds: float

    @property
    def batch_key(self) -> tuple:
        """Runs with equal keys can be optimised as one batch (see :func:`run_transfers`)."""
        p = self.run.params
        return (self.content.size, p.weights, p.activation, self.settings.batch_signature)


def transfer_settings(params: Params, precision: str) -> TransferSettings:
    """The optimisation's share of a run's parameters, ``precision`` resolved on the device."""
    return TransferSettings(
        steps=params.steps,
        optimizer=params.optimizer,
        lr=params.lr,
        content_weight=params.content_weight,
        style_weight=params.style_weight,
        content_layer=params.content_layer,
        style_layers=params.style_layer_weights,
        init=params.init,
        seed=params.seed,
        precision=precision,
        loss=params.loss,
        tv_weight=params.tv_weight,
        coarse_to_fine=params.coarse_to_fine,
        snapshot_every=params.snapshot_every,
    )


def prepare_run(run: Run, runtime: Runtime) -> PreparedRun:
    started = time.perf_counter()
    params = run.params
    content = load_image(run.pair.content, params.size)
    fitted = content.size if params.style_scale == "content" else None
    style = load_image(run.pair.style, params.style_side(), shape=fitted)
    content_fed, style_fed = color.prepare_inputs(content.pixels, style.pixels, params.preserve_color)
    runtime.weights(params.weights)
    settings = transfer_settings(params, runtime.precision(params.precision))
    return PreparedRun(run, content, style, content_fed, style_fed, settings, time.perf_counter() - started)


def transfer_runs(prepared: list[PreparedRun], runtime: Runtime, progress: PhaseProgress | None = None) -> list[TransferOutput]:
    """The transfers of runs sharing a :attr:`PreparedRun.batch_key`, as one batch."""
    report = progress or (lambda phase, done, total: None)
    device = runtime.device
    params = prepared[0].run.params
    extractor = runtime.extractor(params.weights, params.activation, [params.content_layer, *params.style_layer_weights])
    items = [(as_tensor(p.content_fed, device), as_tensor(p.style_fed, device), p.settings) for p in prepared]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return run_transfers(extractor, items, progress=lambda done, total, _: report("transfer", done, total))


@contextlib.contextmanager
def out_of_memory_reported(run: Run, count: int = 1):
    """Device memory running out anywhere in a run (transfer, analysis, reconstructions) becomes
    a :class:`TransferError` naming the size that failed."""
    try:
        yield
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        together = f" ({count} runs at once)" if count > 1 else ""
        raise TransferError(
            f"out of memory computing {run.name} at size {run.params.size}{together}; "
            "lower size, or build with --device cpu"
        ) from None


def compute_run(run: Run, manifest: Manifest, runtime: Runtime, folder: Path, progress: PhaseProgress | None = None) -> dict:
    """Compute everything of ``run`` into ``folder``; returns the record also saved in it (``layout.RECORD``)."""
    prepared = prepare_run(run, runtime)
    output = transfer_runs([prepared], runtime, progress)[0]
    return finish_run(prepared, output, manifest, runtime, folder, progress)


def finish_run(
    prepared: PreparedRun, output: TransferOutput, manifest: Manifest, runtime: Runtime, folder: Path, progress: PhaseProgress | None = None, batch_size: int = 1
) -> dict:
    """Analyse a finished transfer and write its figures and data files into ``folder``."""
    report = progress or (lambda phase, done, total: None)
    run, content, style = prepared.run, prepared.content, prepared.style
    params, device = run.params, runtime.device
    style_layers = params.style_layer_weights
    weights = runtime.weights(params.weights)
    analysis_extractor = runtime.extractor(params.weights, params.activation, params.analysed_layers)
    timings = {"load": prepared.load_seconds, "transfer": output.seconds}
    optimised = output.result_rgb[0].permute(1, 2, 0).numpy()  # (H, W, 3) uint8
    shown = color.restore_colour(optimised, content.pixels, params.preserve_color)  # result.png

    started = time.perf_counter()
    report("analysis", 0, 1)
    # The images as the network saw them and the image it optimised: under luminance-only
    # transfer the colours joined to the result afterwards are none of the network's doing.
    pixels = {"content": prepared.content_fed, "style": prepared.style_fed, "result": optimised}
    tensors = {role: as_tensor(pixels[role], device) for role in ROLES}
    analyses = analyse(analysis_extractor, tensors, params.top_pairs)
    distances = stylisation_distances(
        analysis_extractor, analyses, tensors["content"], tensors["style"], list(style_layers), params.content_layer
    )
    timings["analysis"] = time.perf_counter() - started
    report("analysis", 1, 1)

    started = time.perf_counter()
    history = _history_columns(output.history)
    layers_record = {}
    with figures.PlotThread() as plots:
        scale_starts = [scale.first_step for scale in output.scales[1:]]
        plots.submit(figures.loss_curves, history, scale_starts, _made(folder, LOSS_CURVES))
        for index, (layer, analysis) in enumerate(analyses.items()):
            report("figures", index, len(analyses))
            layers_record[layer] = _layer_figures(analysis, params, history, folder, plots)
        saved = {**pixels, "result": shown}
        for role in ROLES:
            save_png(saved[role], _made(folder, image_file(role)))
            figures.thumbnail(saved[role], _made(folder, thumbnail_file(role)))
        snapshots = _snapshots(output, content.pixels, params.preserve_color, folder)
        np.savez_compressed(
            _made(folder, GRAMS),
            **{gram_key(role, layer): analysis.grams[role] for layer, analysis in analyses.items() for role in ROLES},
        )
    report("figures", len(analyses), len(analyses))
    timings["figures"] = time.perf_counter() - started
    if params.reconstructions:
        started_reconstructions = time.perf_counter()
        reconstructions = _reconstructions(prepared, runtime, folder, report)
        timings["reconstructions"] = time.perf_counter() - started_reconstructions
    else:
        reconstructions = None

    final = output.final
    record = {
        "format": RECORD_FORMAT,
        "results_version": RESULTS_VERSION,
        **run.labels,
        "inputs": {"content": _input_record(manifest, content), "style": _input_record(manifest, style)},
        "parameters": params.as_dict() | {"weights": manifest.weights_as_written(params.weights)},
        "weights": {"name": weights.name, "sha256": weights.sha256, "preprocessing": weights.preprocessing.name},
        "activation": params.activation,
        "precision": prepared.settings.precision,  # as resolved on this device
        **runtime.describe(),
        "timings": {key: round(value, 3) for key, value in timings.items()},
        "batch_size": batch_size,  # runs optimised together; transfer time and peak memory are shared
        "peak_memory": _peak_memory(device),
        "losses": {**history, "final": {"total": final.total, "content": final.content, "style": final.style, "tv": final.tv}},
        "scales": [{"width": scale.width, "height": scale.height, "first_step": scale.first_step} for scale in output.scales],
        "snapshots": snapshots,
        "stylisation": distances,
        "layers": layers_record,
        "reconstructions": reconstructions,
    }
    # Every file and its size, so the cache can tell a damaged entry (see ResultCache.lookup).
    record["files"] = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    _made(folder, RECORD).write_text(json.dumps(record, indent=1))
    return record
