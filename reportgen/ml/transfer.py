"""Gatys et al.'s style transfer: the optimisation loop, at one scale or coarse to fine.

Departures from the paper, each deliberate:

* Content and style images are resized independently (longest side ``size``, the style's times
  ``style_scale``), so their feature maps differ in size; Grams are compared per position.
* The losses are relative squared errors (see :mod:`reportgen.ml.losses`), so the weights mean
  the same at every size and for every pair.  ``loss="seed"`` is the seed notebook's instead.
* The image is optimised as RGB in 0..1 and kept in that box after every step (the paper's
  L-BFGS ran unconstrained; pixels it pushes out of range are lost when the picture is saved).
* The optimisers are reportgen's own batched L-BFGS and Adam (see :mod:`reportgen.ml.optim`);
  they see the loss summed over the image's positions, so a pixel's gradient does not shrink as
  the image grows and Adam's epsilon stays negligible at every size.
* Coarse to fine (``coarse_to_fine``, as style-transfer-pytorch does it): the transfer runs at
  sizes growing by √2 from the given longest side to ``size``, ``steps`` steps each, every scale
  starting from the previous one's result upsampled.  Large images get their coarse structure
  from the small ones, where it is cheap, and the fine scales only refine it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reportgen.errors import TransferError
from reportgen.images import MIN_SIDE, target_size
from reportgen.ml.losses import GatysObjective, LossTerms
from reportgen.ml.optim import make_optimizer
from reportgen.ml.vgg import FeatureExtractor
from reportgen.stages.results import Scale, StepRecord
from reportgen.stages.settings import TransferSettings


@dataclass(frozen=True)
class Snapshot:
    """The image after ``step`` steps (0: the start), (H, W, 3) uint8 RGB, and its total loss:
    the image evaluated at step ``step + 1``.  The last snapshot is the result."""

    step: int
    pixels: np.ndarray
    total: float


@dataclass(frozen=True)
class TransferOutput:
    result_rgb: torch.Tensor  # (1, 3, H, W) uint8 RGB on the CPU: the picture as saved
    history: list[StepRecord]  # one record per step, the loss *before* that step's update
    final: StepRecord  # the loss of the saved 8-bit picture
    seconds: float
    scales: list[Scale]
    snapshots: list[Snapshot]


# Progress callback: (steps done, steps in all, latest record).
Progress = Callable[[int, int, StepRecord], None]


def scale_sizes(width: int, height: int, first_side: int) -> list[tuple[int, int]]:
    """(width, height) of every scale of a coarse-to-fine transfer of a ``width`` × ``height``
    content image, smallest first, ending at the image's own size.

    Longest sides grow by √2 from ``first_side`` (style-transfer-pytorch's progression); a scale
    at which the content image's shorter side would fall under :data:`MIN_SIDE` is left out,
    since conv5_1 needs one position.  Only the content image decides, so runs of one content
    size always share their scales (and can share a batch).
    """
    longest = max(width, height)
    sides = {longest}
    index = 0
    while first_side and (side := round(longest / 2 ** (index / 2))) >= first_side:
        sides.add(side)
        index += 1
    sizes = [target_size(width, height, side) for side in sorted(sides)]
    return [size for size in sizes if min(size) >= MIN_SIDE or size == (width, height)]


def _resized(rgb: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, height, width) for ``size`` = (width, height); antialiased bicubic."""
    if rgb.shape[-1] == size[0] and rgb.shape[-2] == size[1]:
        return rgb
    return F.interpolate(
        rgb, size=(size[1], size[0]), mode="bicubic", antialias=True, align_corners=False
    )


def _style_size_at(style: torch.Tensor, factor: float) -> tuple[int, int]:
    """(width, height) of a (1, 3, H, W) style image scaled by ``factor`` with its content image,
    but with its shorter side at least :data:`MIN_SIDE` (never above its own size)."""
    height, width = style.shape[-2:]
    factor = min(1.0, max(factor, MIN_SIDE / min(height, width)))
    return max(1, round(width * factor)), max(1, round(height * factor))


def initial_images(content: torch.Tensor, settings: list[TransferSettings]) -> torch.Tensor:
    """(B, 3, H, W) starting points in 0..1: a copy of each content image, or uniform noise.

    ``content`` is (B, 3, H, W) in 0..1.  Noise is drawn on the CPU from its own generator, so a
    seed gives the same start on every device.
    """
    starts = []
    for index, s in enumerate(settings):
        if s.init == "content":
            starts.append(content[index : index + 1])
        else:
            generator = torch.Generator().manual_seed(s.seed)
            starts.append(
                torch.rand((1, *content.shape[1:]), generator=generator).to(
                    content.device, content.dtype
                )
            )
    return torch.cat(starts).contiguous()


def _records(terms: LossTerms) -> list[StepRecord]:
    """One host transfer for every number of a step: a StepRecord per image."""
    total, content, tv, *style = (
        torch.stack(terms.rows()).detach().cpu().tolist()
    )  # (3 + layers, B)
    layers = list(terms.style)
    return [
        StepRecord(
            total[i],
            content[i],
            {layer: row[i] for layer, row in zip(layers, style, strict=True)},
            tv[i],
        )
        for i in range(len(total))
    ]


def evaluate(
    objective: GatysObjective, images: torch.Tensor, positions: int
) -> tuple[LossTerms, list[StepRecord]]:
    """One evaluation of a (B, 3, H, W) batch: its loss terms, their gradient (of the loss summed
    over ``positions``, see the module docstring) in ``images.grad``, and a record per image, the
    step's one synchronisation with the device (every step is recorded)."""
    images.grad = None
    terms = objective(images)
    (terms.total.sum() * positions).backward()
    return terms, _records(terms)


def _as_pixels(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in 0..1 -> (B, 3, H, W) float 0..255, rounded and clipped: the 8-bit picture."""
    return (images.detach() * 255).round().clamp(0, 255)


def run_transfer(
    extractor: FeatureExtractor,
    content_rgb: torch.Tensor,
    style_rgb: torch.Tensor | list[torch.Tensor],
    settings: TransferSettings,
    progress: Progress | None = None,
    masks: list[torch.Tensor] | None = None,
) -> TransferOutput:
    """Optimise an image towards ``content_rgb``'s content and ``style_rgb``'s style (or the
    blend of several styles, weighed by ``settings.style_blend``; or, given ``masks``, each
    style in its region).

    Every image is (1, 3, H, W) RGB in 0..255 on the extractor's device (their sizes may
    differ); masks are (1, 1, H, W) in 0..1 at the content's size.  Raises
    :class:`TransferError` when the loss stops being finite.
    """
    styles = style_rgb if isinstance(style_rgb, list) else [style_rgb]
    regions = [masks] if masks else None
    return run_transfers(extractor, [(content_rgb, styles, settings)], progress, regions)[0]


def run_transfers(
    extractor: FeatureExtractor,
    items: list[tuple[torch.Tensor, list[torch.Tensor], TransferSettings]],
    progress: Progress | None = None,
    masks: list[list[torch.Tensor]] | None = None,
) -> list[TransferOutput]:
    """Several independent transfers whose loss evaluations run as one batch.

    ``items`` are (content, styles, settings): content images all (1, 3, H, W) RGB 0..255 of one
    size, each run's style images (one, or those its ``style_blend`` weighs) of any size,
    settings of one :attr:`TransferSettings.batch_signature`.  ``masks``, where runs have
    regions, gives each item's masks ((1, 1, H, W) in 0..1, one per style image; as many for
    every item).
    Each transfer keeps its own losses and optimiser state, so the results equal those of one
    :func:`run_transfer` per item up to the rounding of batched arithmetic.  This is what fills
    a large GPU; on a CPU one item at a time is as fast.
    """
    started = time.perf_counter()
    settings = [item[2] for item in items]
    if (
        len({s.batch_signature for s in settings}) != 1
        or len({item[0].shape for item in items}) != 1
    ):
        raise ValueError("these transfers cannot share a batch")
    first = settings[0]
    contents = [item[0] / 255 for item in items]
    styles = [[style / 255 for style in item[1]] for item in items]
    regions = masks or [[] for _ in items]
    height, width = contents[0].shape[-2:]
    sizes = scale_sizes(width, height, first.coarse_to_fine)
    device = contents[0].device
    lr = torch.tensor([s.lr for s in settings], device=device)
    histories: list[list[StepRecord]] = [[] for _ in items]
    snapshots: list[list[Snapshot]] = [[] for _ in items]
    scales: list[Scale] = []
    total_steps = first.steps * len(sizes)
    done = 0
    best: torch.Tensor | None = None  # the previous scale's best images, carried to the next
    for size in sizes:
        factor = size[0] / width
        objectives = [
            GatysObjective(
                extractor,
                _resized(content, size),
                [_resized(style, _style_size_at(style, factor)) for style in run_styles],
                s,
                [F.adaptive_avg_pool2d(mask, (size[1], size[0])) for mask in run_masks],
            )
            for content, run_styles, s, run_masks in zip(
                contents, styles, settings, regions, strict=True
            )
        ]
        objective = objectives[0] if len(objectives) == 1 else GatysObjective.stack(objectives)
        if best is None:
            images = initial_images(torch.cat([_resized(c, size) for c in contents]), settings)
        else:
            images = _resized(best, size)
            images = images.clamp(0, 1) if first.bounded else images
        images = images.contiguous().requires_grad_(True)
        optimizer = make_optimizer(first.optimizer, images, lr, first.bounded)
        scales.append(Scale(size[0], size[1], done + 1))
        # The optimisers see the loss summed over positions: see the module docstring.
        positions = size[0] * size[1]
        for _ in range(first.steps):
            terms, records = evaluate(objective, images, positions)
            if first.snapshot_every and done % first.snapshot_every == 0:
                # What this step keeps (a point L-BFGS is about to reject is never shown).
                kept_images, kept_loss = optimizer.kept(terms.total)
                _snapshot(snapshots, kept_images, done, kept_loss.cpu().tolist())
            for index, (record, history) in enumerate(zip(records, histories, strict=True)):
                history.append(record)
                if not math.isfinite(record.total):
                    s = settings[index]
                    raise TransferError(
                        f"the loss became {record.total} at step {done + 1} of {total_steps} "
                        f"(optimizer {s.optimizer}, lr {s.lr:g}, style_weight "
                        f"{s.style_weight:g}); try a smaller lr or style_weight"
                    )
            assert images.grad is not None  # the loss was just differentiated
            optimizer.step(images.grad, terms.total)
            done += 1
            if progress is not None:
                progress(done, total_steps, histories[0][-1])
        best = optimizer.best

    with torch.no_grad():
        # The picture a reviewer sees is 8-bit; its loss, in float32, is the one reported as final.
        assert best is not None  # there is always at least one scale
        results = _as_pixels(best)
        finals = _records(objective(results / 255, exact=True))
    if first.snapshot_every:  # the strip ends with the result itself
        _snapshot(snapshots, results / 255, done, [final.total for final in finals])
    seconds = time.perf_counter() - started
    return [
        TransferOutput(
            results[i : i + 1].to("cpu", torch.uint8),
            histories[i],
            finals[i],
            seconds,
            scales,
            snapshots[i],
        )
        for i in range(len(items))
    ]


def _snapshot(
    snapshots: list[list[Snapshot]], images: torch.Tensor, step: int, totals: list[float]
) -> None:
    """Keep each image of the batch (B, 3, H, W in 0..1), as it is after ``step`` steps, with its
    loss."""
    pixels = _as_pixels(images).to("cpu", torch.uint8).permute(0, 2, 3, 1).numpy()
    for kept, image, total in zip(snapshots, pixels, totals, strict=True):
        kept.append(Snapshot(step, image.copy(), total))
