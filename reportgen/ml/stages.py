"""The two stages of a run that need the network: the transfer and the analysis.

:func:`run_job` is what a device does with a :class:`reportgen.stages.jobs.DeviceJob`, in the
build's own process or in a worker process of its own: optimise the job's transfers (as one batch
where they can share it), then analyse each result.  Everything it returns is numpy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import resource
import sys
import time
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
import torch

from reportgen import color
from reportgen.color import PreserveColor
from reportgen.errors import ReportgenError, TransferError
from reportgen.images import LoadedImage
from reportgen.manifest import DEFAULT_STYLE_WEIGHT, Params
from reportgen.ml.analysis import analyse
from reportgen.ml.runtime import Runtime
from reportgen.ml.transfer import TransferOutput, run_transfers
from reportgen.stages import memory
from reportgen.stages.arrays import Arrays
from reportgen.stages.jobs import (
    DeviceJob,
    DeviceWork,
    FeatureJob,
    RunInputs,
    TaskOutcome,
    TransferTask,
    WorkDone,
)
from reportgen.stages.results import (
    NETWORK_IMAGES,
    AnalysisResult,
    InputImage,
    LossHistory,
    Reconstruction,
    SnapshotInfo,
    TransferResult,
    WeightsUsed,
    mask_name,
    reconstruction_name,
    snapshot_name,
    style_role,
)
from reportgen.stages.settings import TransferSettings, transfer_settings
from reportgen.stages.visualisations import VisualisationBatch, VisualisationJob

log = logging.getLogger(__name__)

# (phase, done, total) -> None; phases are "transfer", "reconstructions".
PhaseProgress = Callable[[str, int, int], None]


def mask_tensor(mask: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W) float32 in 0..1 -> (1, 1, H, W) on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None, None].to(device)


def as_tensor(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in 0..255 on ``device``."""
    return (
        torch.from_numpy(np.ascontiguousarray(pixels))
        .permute(2, 0, 1)
        .unsqueeze(0)
        .to(device, torch.float32)
        .contiguous()
    )


def run_work(work: DeviceWork, runtime: Runtime, progress: PhaseProgress | None = None) -> WorkDone:
    """What a device does with any work it is handed."""
    if isinstance(work, VisualisationJob):
        return visualisation_stage(work, runtime)
    if isinstance(work, FeatureJob):
        return feature_maps(work, runtime)
    return run_job(work, runtime, progress)


@torch.no_grad()
def feature_maps(job: FeatureJob, runtime: Runtime) -> dict[str, np.ndarray]:
    """``job``'s image through the network, as the analysis passes it: layer -> (C, H_l, W_l)
    float32 maps."""
    network = job.network
    extractor = runtime.extractor(network.weights, network.activation, list(job.layers))
    with out_of_memory_reported("the feature maps", max(job.image.shape[:2])):
        pixels = as_tensor(job.image, runtime.device)  # (1, 3, H, W)
        maps = extractor(extractor.preprocessing.to_network(pixels))
        return {layer: maps[layer][0].float().cpu().numpy() for layer in job.layers}


def visualisation_stage(job: VisualisationJob, runtime: Runtime) -> VisualisationBatch:
    """The filters of ``job`` visualised together; a batch too large for the device's memory
    is split in halves until it fits."""
    from reportgen.ml.visualise import visualise

    settings = job.settings
    network = job.network
    extractor = runtime.extractor(network.weights, network.activation, [job.layer])

    def made(filters: list[int]) -> tuple[list[np.ndarray], list[np.ndarray], float]:
        try:
            batch = visualise(extractor, job.layer, filters, settings)
        except torch.OutOfMemoryError:
            if len(filters) == 1:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = len(filters) // 2
            first, second = made(filters[:half]), made(filters[half:])
            return first[0] + second[0], first[1] + second[1], first[2] + second[2]
        return [batch.images], [batch.activations], batch.seconds

    with out_of_memory_reported(f"the visualisations of {job.layer}", settings.size):
        images, activations, seconds = made(list(job.filters))
    info = runtime.describe()
    return VisualisationBatch(
        images=np.concatenate(images),
        activations=np.concatenate(activations),
        settings=settings,
        seconds=seconds,
        device=f"{info.device} ({info.device_name})",
    )


def run_job(
    job: DeviceJob, runtime: Runtime, progress: PhaseProgress | None = None
) -> list[TaskOutcome]:
    """Every transfer and analysis of ``job``; a task that fails gets an outcome with its error
    and the others go on.  A batch that fails as a whole is tried again one transfer at a time,
    so that each task reports its own error."""
    pending = [task for task in job.tasks if task.cached is None]
    transfers: dict[str, TransferResult | str] = {}
    batches: dict[tuple, list[TransferTask]] = {}
    for task in pending:  # the job was planned from image headers; the images as read decide
        batches.setdefault(task.batch_signature(), []).append(task)
    available = device_memory(runtime.device)
    for task in pending:  # refused before anything of theirs is allocated
        if (refusal := memory_refusal(task, runtime, available)) is not None:
            transfers[task.key] = refusal
    for batch in (
        b for b in _fitting_batches(batches, transfers, runtime, available) if len(b) > 1
    ):
        try:
            with out_of_memory_reported(batch[0].name, batch[0].params.size, len(batch)):
                transfers.update(
                    zip(
                        (t.key for t in batch),
                        transfer_stage(batch, runtime, progress),
                        strict=True,
                    )
                )
        except ReportgenError as error:
            log.warning(
                "a batch of %d runs failed (%s); computing them one at a time",
                len(batch),
                error.message,
            )
    for task in pending:
        if task.key not in transfers:
            try:
                with out_of_memory_reported(task.name, task.params.size):
                    transfers[task.key] = transfer_stage([task], runtime, progress)[0]
            except ReportgenError as error:
                transfers[task.key] = error.message
    outcomes = []
    for task in job.tasks:
        transfer = task.cached or transfers[task.key]
        if isinstance(transfer, str):
            outcomes.append(TaskOutcome(task.key, error=transfer))
            continue
        try:
            with out_of_memory_reported(task.name, task.params.size):
                analyses = {
                    analysis.key: analysis_stage(analysis.params, transfer, runtime)
                    for analysis in task.analyses
                }
        except ReportgenError as error:
            outcomes.append(TaskOutcome(task.key, error=error.message))
            continue
        outcomes.append(TaskOutcome(task.key, None if task.cached else transfer, analyses))
    return outcomes


def device_memory(device: torch.device) -> int:
    """Bytes a run may still allocate on ``device``: on a GPU what the driver reports free plus
    what torch's allocator holds unused in this process; on the CPU what the host has available
    (:func:`reportgen.stages.memory.host_available`)."""
    if device.type != "cuda":
        return memory.host_available()
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def _shape(tasks: list[TransferTask], runtime: Runtime) -> memory.RunShape:
    """The memory shape of ``tasks`` optimised as one batch (their images as read)."""
    inputs = tasks[0].fed
    params = tasks[0].params
    return memory.run_shape(
        params,
        inputs.content.size,
        tuple(style.size for style in inputs.styles),
        runtime.precision(params.precision),
        batch=len(tasks),
    )


def memory_refusal(task: TransferTask, runtime: Runtime, available: int) -> str | None:
    """Why ``task`` cannot run on this device for lack of memory, in one line naming the size
    that would fit; ``None`` when it fits."""
    shape = _shape([task], runtime)
    if memory.fits(shape, available):
        return None
    peak = memory.estimate(shape).peak
    largest = memory.largest_side(shape, available)
    fitting = (
        f"size {largest} would fit"
        if largest is not None
        else "no size fits; close other programs or use another device"
    )
    if shape.optimizer == "lbfgs":
        # neural-style's advice: Adam keeps two image-sized vectors where L-BFGS keeps its
        # history, at the price of more steps for a result as converged.
        with_adam = memory.largest_side(dataclasses.replace(shape, optimizer="adam"), available)
        if with_adam is not None and with_adam > (largest or 0):
            fitting += f" ({with_adam} with optimizer: adam, whose state is smaller)"
    margin = memory.SAFETY_MARGIN
    return (
        f"size {task.params.size} needs about {memory.gigabytes(peak)} at its peak "
        f"({runtime.precision(task.params.precision)}, {task.params.optimizer}; "
        f"{memory.gigabytes(int(peak * (1 + margin)))} with a {margin:.0%} margin) and "
        f"{runtime.device} has {memory.gigabytes(available)} available; {fitting}"
    )


def _fitting_batches(
    batches: dict[tuple, list[TransferTask]],
    refused: dict[str, TransferResult | str],
    runtime: Runtime,
    available: int,
) -> list[list[TransferTask]]:
    """Each batch without its refused tasks, split into batches small enough to fit."""
    fitting = []
    for batch in batches.values():
        admitted = [task for task in batch if task.key not in refused]
        if not admitted:
            continue
        size = memory.largest_batch(_shape(admitted, runtime), available, len(admitted))
        fitting += [admitted[start : start + size] for start in range(0, len(admitted), size)]
    return fitting


@contextlib.contextmanager
def out_of_memory_reported(name: str, size: int, count: int = 1) -> Iterator[None]:
    """Device memory running out anywhere in a run (transfer, analysis, reconstructions) becomes
    a :class:`TransferError` naming the size that failed."""
    try:
        yield
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        together = f" ({count} runs at once)" if count > 1 else ""
        raise TransferError(
            f"out of memory computing {name} at size {size}{together}; lower size, or build with "
            "--device cpu"
        ) from None


def transfer_stage(
    tasks: list[TransferTask], runtime: Runtime, progress: PhaseProgress | None = None
) -> list[TransferResult]:
    """The transfers of ``tasks`` (one task, or several sharing a batch signature) as one batch."""
    report = progress or (lambda phase, done, total: None)
    device = runtime.device
    params = tasks[0].params
    extractor = runtime.extractor(
        params.weights, params.activation, [params.content_layer, *params.style_layer_weights]
    )
    settings = [
        transfer_settings(task.params, runtime.precision(task.params.precision)) for task in tasks
    ]
    items = [
        (
            as_tensor(task.fed.content_fed, device),
            [as_tensor(style, device) for style in task.fed.styles_fed],
            s,
        )
        for task, s in zip(tasks, settings, strict=True)
    ]
    masks = [[mask_tensor(mask, device) for mask in task.fed.masks] for task in tasks]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    outputs = run_transfers(
        extractor,
        items,
        progress=lambda done, total, _: report("transfer", done, total),
        masks=masks if any(masks) else None,
    )
    results = []
    for task, setting, output in zip(tasks, settings, outputs, strict=True):
        images, snapshots = _transfer_images(task.fed, task.params.preserve_color, output)
        timings = {"load": task.fed.load_seconds, "transfer": output.seconds}
        reconstructions = None
        if task.params.reconstructions:
            started = time.perf_counter()
            reconstructions = _reconstructions(
                task.fed, task.params, setting, runtime, images, report
            )
            timings["reconstructions"] = time.perf_counter() - started
        weights = runtime.weights(task.params.weights)
        results.append(
            TransferResult(
                content=_input(task.fed.content),
                styles=tuple(_input(style) for style in task.fed.styles),
                weights=WeightsUsed(weights.name, weights.sha256, weights.preprocessing.name),
                precision=setting.precision,
                device=runtime.describe(),
                losses=LossHistory.of(output.history),
                final=output.final,
                scales=tuple(output.scales),
                snapshots=snapshots,
                reconstructions=reconstructions,
                timings=timings,
                batch_size=len(tasks),
                peak_memory=_peak_memory(device),
                images=Arrays(images),
            )
        )
    return results


def analysis_stage(params: Params, transfer: TransferResult, runtime: Runtime) -> AnalysisResult:
    """Analyse the images of a finished transfer: the images as the network saw them, and the
    image it optimised (under luminance-only transfer, the colours joined to the result afterwards
    are none of the network's doing)."""
    extractor = runtime.extractor(params.weights, params.activation, params.analysed_layers)
    images = transfer.images
    names = {
        **NETWORK_IMAGES,
        **{style_role(k): style_role(k) for k in range(len(transfer.styles))},
    }
    tensors = {role: as_tensor(images[name], runtime.device) for role, name in names.items()}
    return analyse(
        extractor,
        tensors,
        params.top_pairs,
        params.content_layer,
        list(params.style_layer_weights),
        params.blend_weights,
        [mask_tensor(mask, runtime.device) for mask in transfer.masks],
    )


def _input(image: LoadedImage) -> InputImage:
    return InputImage(image.sha256, image.original_size, image.size, image.notes)


def _transfer_images(
    inputs: RunInputs, preserve_color: PreserveColor, output: TransferOutput
) -> tuple[dict[str, np.ndarray], tuple[SnapshotInfo, ...]]:
    """The images a transfer leaves: inputs as fed, the optimised picture, the picture as saved
    (colours restored) and the snapshots, shown in the colours the result will have."""
    optimised = output.result_rgb[0].permute(1, 2, 0).numpy()  # (H, W, 3) uint8
    content = inputs.content.pixels
    images = {
        "content": inputs.content_fed,
        **{style_role(k): pixels for k, pixels in enumerate(inputs.styles_fed)},
        **{mask_name(k): mask for k, mask in enumerate(inputs.masks)},
        "optimised": optimised,
        "result": color.restore_colour(optimised, content, preserve_color),
    }
    snapshots = []
    for snapshot in output.snapshots:
        pixels = snapshot.pixels
        if preserve_color == "luminance":
            height, width = pixels.shape[:2]
            chroma = (
                content
                if content.shape[:2] == (height, width)
                else _resized(content, width, height)
            )
            pixels = color.restore_colour(pixels, chroma, preserve_color)
        images[snapshot_name(snapshot.step)] = pixels
        snapshots.append(
            SnapshotInfo(snapshot.step, (pixels.shape[1], pixels.shape[0]), snapshot.total)
        )
    return images, tuple(snapshots)


def _resized(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS))


# The paper's Figure 1: what the content representation keeps at increasing depth, and what the
# style representation keeps as more layers are added.
CONTENT_RECONSTRUCTION_LAYERS = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
STYLE_RECONSTRUCTION_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def _reconstructions(
    inputs: RunInputs,
    params: Params,
    settings: TransferSettings,
    runtime: Runtime,
    images: dict[str, np.ndarray],
    report: PhaseProgress,
) -> tuple[Reconstruction, ...]:
    """Images rebuilt from white noise out of one representation each (content at one layer, or
    style over a growing set of layers), with the run's optimiser, steps and seed; their pixels
    go into ``images``."""
    device = runtime.device
    content = as_tensor(inputs.content_fed, device)
    styles = [as_tensor(style, device) for style in inputs.styles_fed]
    masks = [[mask_tensor(mask, device) for mask in inputs.masks]] if inputs.masks else None
    # (kind, layers, content weight, style weight)
    jobs: list[tuple[Literal["content", "style"], tuple[str, ...], float, float]] = [
        ("content", (layer,), 1.0, 0.0) for layer in CONTENT_RECONSTRUCTION_LAYERS
    ]
    # The style jobs have no content term, so the style weight's size does not matter (both
    # optimisers ignore the loss's scale); the loss's own default keeps the numbers familiar.
    style_weight = DEFAULT_STYLE_WEIGHT[params.loss]
    jobs += [
        ("style", STYLE_RECONSTRUCTION_LAYERS[: count + 1], 0.0, style_weight)
        for count in range(len(STYLE_RECONSTRUCTION_LAYERS))
    ]
    made = []
    for index, (kind, layers, content_weight, style_weight) in enumerate(jobs):
        report("reconstructions", index, len(jobs))
        job_settings = TransferSettings(
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
            precision=settings.precision,
            style_blend=settings.style_blend,
        )
        extractor = runtime.extractor(
            params.weights,
            params.activation,
            [job_settings.content_layer, *job_settings.style_layers],
        )
        # Both start from noise of the content image's size (the seed's noise): content jobs match
        # its maps at one layer, style jobs the style's Grams (their content term is off).
        output = run_transfers(extractor, [(content, styles, job_settings)], masks=masks)[0]
        images[reconstruction_name(kind, layers[-1])] = (
            output.result_rgb[0].permute(1, 2, 0).numpy()
        )
        made.append(Reconstruction(kind, tuple(layers), output.final.total))
    report("reconstructions", len(jobs), len(jobs))
    return tuple(made)


def _peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"device_bytes": int(torch.cuda.max_memory_allocated(device))}
    # ru_maxrss is KiB on Linux, bytes on macOS; it is the process's peak, not this run's.
    scale = 1 if sys.platform == "darwin" else 1024
    return {"process_rss_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale)}
