"""Feature visualisations: seconds per filter by layer, and whether each image excites its filter.

    python benchmarks/visualisation.py [--filters 16] [--size 64] [--steps 64] [--lr LR]
        [--device cpu] [--layers conv1_1 ...] [--batch N] [--weights caffe] [--activation relu]
        [--pair-size 256] [--natural content/chelsea.png ...] [--no-sheets | --figures DIR]
        [--json PATH]

For each layer (default: the six analysed layers), ``--filters`` filters spread evenly over the
layer (0: every filter) are visualised by :func:`reportgen.ml.visualise.visualise`, at most
``--batch`` to a batch (default: 32 on a CPU, 512 on a GPU, as the build does).  Before a
layer's first batch is timed, the same batch runs one step, so that one-time set-up (oneDNN's
primitives, cuDNN's plans, the weights' first touch) is not counted.  Measured in one run:

* **seconds per filter**: the layer's batch seconds over its filters (the final measurement of
  each image included, the warm-up step not).  On a CPU the table gives the timing's **CPU
  share** too, the process's CPU seconds over wall seconds times torch's threads: well under
  100%, something else had the cores;
* **ratio**: a filter's mean activation on its own visualisation (the saved 8-bit image, by
  :func:`reportgen.ml.visualise.mean_activations`) over its largest mean activation on natural
  images it was not made from (``--natural``, 2 photographs and 2 paintings by default, longest
  side ``--pair-size``); infinite where the filter is silent on all of them.  Goal: >= 5 for
  every filter.  At conv1_1 the highest ratio any image could reach is known (the filter's best
  response to one 3x3 patch over its natural maximum) and filters for which it is below 5 are
  listed;
* **own first**: whether, of all the layer's visualisations, the filter's own excites it most.
  Goal: >= 80% of the filters.

Prints a table, writes a contact sheet per layer (each visualisation scaled to 128 px with
nearest-neighbour, its filter number in a corner) to ``benchmarks/figures/visualisations-
<layer>.webp`` unless ``--no-sheets`` (a run at other settings writes over the recorded sheets
unless given ``--figures`` elsewhere), and with ``--json`` every number, written again after
each layer.  A quick check that it runs: ``--filters 0 --size 32 --steps 2 --layers conv1_1
--no-sheets``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from reportgen.layers import ACTIVATIONS, ANALYSED_LAYERS, CHANNELS, CONV_INDEX, network_order
from reportgen.ml.runtime import Runtime, resolve_device
from reportgen.ml.vgg import FeatureExtractor
from reportgen.ml.visualise import mean_activations, visualise
from reportgen.stages.visualisations import CPU_BATCH, GPU_BATCH, VisualisationSettings

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "images"
FIGURES = ROOT / "benchmarks" / "figures"
# Natural images the visualisations were not made from: two photographs, two paintings.
NATURAL = (
    "content/chelsea.png",
    "content/astronaut.png",
    "style/brushstrokes.jpg",
    "style/mosaic.png",
)
RATIO_GOAL = 5.0
OWN_FIRST_GOAL = 0.8
TILE = 128  # px, a visualisation's side on the contact sheet
GAP = 4  # px between tiles


@dataclass
class LayerResult:
    """What one layer's visualisations measured; per-filter lists are in ``filters``' order."""

    layer: str
    channels: int
    filters: list[int]
    batches: int
    seconds: float  # all batches, warm-up steps excluded
    seconds_per_filter: float
    # On a CPU, the process's CPU seconds over (wall seconds x torch's threads): well under 1,
    # the timing shared the cores with something else.
    cpu_share: float | None
    peak_gib: float | None  # CUDA's peak allocated memory over the layer's batches
    own: list[float]  # mean activation of each filter on its own visualisation
    natural_max: list[float]  # its largest mean activation on the natural images
    ratios: list[float]  # own / natural_max (inf where natural_max <= 0 < own)
    own_first: list[bool]  # whether its own visualisation excites it most of the layer's
    # First layer only: the highest ratio any image could reach (see ``first_layer_ceiling``).
    ceilings: list[float] | None = None
    sheet: str | None = None

    @property
    def share_ratio_met(self) -> float:
        return float(np.mean([r >= RATIO_GOAL for r in self.ratios]))

    @property
    def share_own_first(self) -> float:
        return float(np.mean(self.own_first))


def spread(channels: int, count: int) -> list[int]:
    """``count`` filter indices evenly spaced over ``0..channels-1`` (every one for 0 or
    ``count >= channels``)."""
    if count <= 0 or count >= channels:
        return list(range(channels))
    return [round(i * (channels - 1) / (count - 1)) for i in range(count)] if count > 1 else [0]


def load_natural(paths: list[str], side: int) -> dict[str, torch.Tensor]:
    """Each image (a path under images/) as a (1, 3, H, W) RGB tensor in 0..1, its longest side
    ``side``."""
    images = {}
    for name in paths:
        with Image.open(IMAGES / name) as opened:
            image = opened.convert("RGB")
        scale = side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        pixels = np.array(image.resize(size, Image.Resampling.LANCZOS))
        images[name] = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    return images


def channel_means(
    extractor: FeatureExtractor, layer: str, rgb: torch.Tensor, batch: int
) -> torch.Tensor:
    """(N, 3, H, W) RGB in 0..1 -> (N, C): every filter's mean activation at ``layer`` on each
    image, ``batch`` images to a forward pass (as :func:`mean_activations` measures one)."""
    device = next(extractor.parameters()).device
    rows = []
    with torch.no_grad():
        for start in range(0, len(rgb), batch):
            x = rgb[start : start + batch].to(device)
            features = extractor(extractor.preprocessing.to_network(x * 255.0))[layer]
            rows.append(features.float().mean(dim=(2, 3)).cpu())
    return torch.cat(rows)


def visualise_layer(
    extractor: FeatureExtractor,
    layer: str,
    filters: list[int],
    settings: VisualisationSettings,
    batch: int,
) -> tuple[np.ndarray, float, float | None, float | None]:
    """Visualise ``filters`` at ``layer``, ``batch`` to a batch: (images (N, S, S, 3) uint8,
    seconds of the timed batches, their CPU share on a CPU, CUDA peak memory in GiB)."""
    device = next(extractor.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    images, seconds, cpu_seconds = [], 0.0, 0.0
    chunks = [filters[i : i + batch] for i in range(0, len(filters), batch)]
    for number, chunk in enumerate(chunks, 1):
        if number == 1 or len(chunk) != len(chunks[0]):  # a new batch shape: set up untimed
            visualise(extractor, layer, chunk, replace(settings, steps=1))
        started = time.process_time()
        made = visualise(extractor, layer, chunk, settings)
        cpu_seconds += time.process_time() - started
        images.append(made.images)
        seconds += made.seconds
        print(
            f"  {layer} batch {number}/{len(chunks)}: {len(chunk)} filters in {made.seconds:.1f} s",
            flush=True,
        )
    if device.type == "cuda":
        share, peak = None, torch.cuda.max_memory_allocated(device) / 2**30
    else:
        share, peak = cpu_seconds / (seconds * torch.get_num_threads()), None
    return np.concatenate(images), seconds, share, peak


def ratio(own: float, natural: float) -> float:
    """``own / natural``; where ``natural <= 0``, infinite if ``own > 0``, else NaN."""
    if natural > 0:
        return own / natural
    return math.inf if own > 0 else math.nan


def first_layer_ceiling(extractor: FeatureExtractor, filters: list[int]) -> torch.Tensor:
    """(N,): each filter of the network's first convolution at its highest possible response
    at one position, the best 3x3 patch of pixels in 0..255.  Since its mean over an image is no
    higher, this over the filter's response to a natural image bounds the ratio any image can
    reach (the network's input is an affine function of the pixels, channel by channel)."""
    conv = extractor.features[0]
    assert isinstance(conv, torch.nn.Conv2d) and conv.bias is not None
    device = conv.weight.device
    corners = torch.tensor([0.0, 255.0], device=device).view(2, 1, 1, 1).expand(2, 3, 1, 1)
    low, high = extractor.preprocessing.to_network(corners).flatten(1)  # (3,) each
    weight = conv.weight.float()[filters]  # (N, 3, 3, 3)
    best = torch.maximum(weight * low.view(1, 3, 1, 1), weight * high.view(1, 3, 1, 1))
    return (best.sum(dim=(1, 2, 3)) + conv.bias.float()[filters]).cpu()


def quality(
    extractor: FeatureExtractor,
    layer: str,
    filters: list[int],
    images: np.ndarray,
    natural: dict[str, torch.Tensor],
    batch: int,
) -> tuple[list[float], list[float], list[float], list[bool]]:
    """(own, natural_max, ratios, own_first) of each filter: see the module docstring."""
    device = next(extractor.parameters()).device
    rgb = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255  # the saved 8-bit images
    wanted = torch.tensor(filters)
    with torch.no_grad():
        own = torch.cat(
            [
                mean_activations(
                    extractor,
                    layer,
                    rgb[i : i + batch].to(device),
                    wanted[i : i + batch].to(device),
                ).cpu()
                for i in range(0, len(filters), batch)
            ]
        )
    across = channel_means(extractor, layer, rgb, batch)[:, wanted]  # (N images, N filters)
    if not torch.allclose(across.diagonal(), own, rtol=1e-3, atol=1e-3):
        raise AssertionError(f"{layer}: two measurements of the same activations differ")
    natural_max = (
        torch.cat([channel_means(extractor, layer, x, 1) for x in natural.values()])[:, wanted]
        .amax(dim=0)
        .tolist()
    )
    ratios = [ratio(a, b) for a, b in zip(own.tolist(), natural_max, strict=True)]
    own_first = (across.argmax(dim=0) == torch.arange(len(filters))).tolist()
    return own.tolist(), natural_max, ratios, own_first


def contact_sheet(images: np.ndarray, filters: list[int], path: Path) -> None:
    """The visualisations in a near-square grid, each scaled to ``TILE`` px (nearest-neighbour)
    with its filter number in the top-left corner, saved as WebP."""
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    step = TILE + GAP
    sheet = Image.new("RGB", (columns * step - GAP, rows * step - GAP), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (pixels, k) in enumerate(zip(images, filters, strict=True)):
        x, y = (index % columns) * step, (index // columns) * step
        tile = Image.fromarray(pixels).resize((TILE, TILE), Image.Resampling.NEAREST)
        sheet.paste(tile, (x, y))
        label = str(k)
        left, top, right, bottom = draw.textbbox((x + 3, y + 2), label)
        draw.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill="black")
        draw.text((x + 3, y + 2), label, fill="white")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, "WEBP", quality=85, method=6)


def _ratio_text(values: list[float], pick: str) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "–"
    value = min(finite) if pick == "min" else float(np.median(finite))
    return "inf" if math.isinf(value) else f"{value:.1f}"


def report(results: list[LayerResult], settings: VisualisationSettings, device: str) -> None:
    """Print the table of a run."""
    print(
        f"\n{settings.size} px, {settings.steps} steps, Adam step {settings.lr:.3g}, {device}: "
        "seconds per filter, and how strongly each visualisation excites its filter"
    )
    on_gpu = any(r.peak_gib is not None for r in results)
    print(
        "\n| layer | filters | batches | seconds | s/filter | s for all filters | "
        + ("peak GiB | " if on_gpu else "CPU share | ")
        + f"median ratio | min ratio | ratio >= {RATIO_GOAL:g} | own first |"
    )
    print("| --- " + "| ---: " * 10 + "|")
    for r in results:
        use = r.peak_gib if on_gpu else r.cpu_share
        used = "–" if use is None else f"{use:.1f}" if on_gpu else f"{use:.0%}"
        print(
            f"| {r.layer} | {len(r.filters)}/{r.channels} | {r.batches} | {r.seconds:.1f} | "
            f"{r.seconds_per_filter:.3f} | {r.seconds_per_filter * r.channels:.1f} | {used} | "
            f"{_ratio_text(r.ratios, 'median')} | {_ratio_text(r.ratios, 'min')} | "
            f"{r.share_ratio_met:.0%} | {r.share_own_first:.0%} |"
        )
    every = [value for r in results for value in r.ratios]
    first = [flag for r in results for flag in r.own_first]
    print(
        f"\nall layers: ratio >= {RATIO_GOAL:g} for {np.mean([v >= RATIO_GOAL for v in every]):.0%}"
        f" of {len(every)} filters (goal: every one); own visualisation first for "
        f"{np.mean(first):.0%} (goal: >= {OWN_FIRST_GOAL:.0%})"
    )
    for r in results:
        pairs = zip(r.ratios, r.filters, strict=True)
        weakest = sorted(pairs, key=lambda pair: -math.inf if math.isnan(pair[0]) else pair[0])[:3]
        missed = [k for k, first in zip(r.filters, r.own_first, strict=True) if not first]
        shown = ", ".join(map(str, missed[:12])) + (", ..." if len(missed) > 12 else "")
        print(
            f"  {r.layer}: weakest ratios "
            + ", ".join(f"{v:.1f} (filter {k})" for v, k in weakest)
            + f"; own not first for {len(missed)}: {shown or 'none'}"
        )
        if r.ceilings is not None:
            out_of_reach = [k for k, c in zip(r.filters, r.ceilings, strict=True) if c < RATIO_GOAL]
            print(
                f"  {r.layer}: no image could reach {RATIO_GOAL:g} for {len(out_of_reach)} of "
                f"{len(r.filters)} filters (highest possible ratio below it): {out_of_reach}"
            )


def _shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved)


def _finite(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def write_record(path: Path, header: dict, results: list[LayerResult], complete: bool) -> None:
    """Every number of the layers done so far as JSON (a ratio that is not finite as null:
    ``own``, or the ceiling's bound, and ``natural_max`` say which it was)."""
    layers = [
        {
            **asdict(r),
            "ratios": _finite(r.ratios),
            "ceilings": None if r.ceilings is None else _finite(r.ceilings),
            "share_ratio_met": r.share_ratio_met,
            "share_own_first": r.share_own_first,
        }
        for r in results
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**header, "complete": complete, "layers": layers}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--filters", type=int, default=16, help="filters per layer, evenly spread (0: every one)"
    )
    parser.add_argument("--size", type=int, default=64, help="side of a visualisation in px")
    parser.add_argument("--steps", type=int, default=64, help="Adam steps")
    parser.add_argument(
        "--lr", type=float, help="Adam's step size (default: reportgen's for the steps)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--layers",
        nargs="+",
        default=list(ANALYSED_LAYERS),
        choices=sorted(CHANNELS),
        metavar="LAYER",
    )
    parser.add_argument(
        "--batch",
        type=int,
        help=f"most filters in one batch (default: {CPU_BATCH} on a CPU, {GPU_BATCH} on a GPU)",
    )
    parser.add_argument("--weights", choices=["caffe", "torchvision"], default="caffe")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    parser.add_argument(
        "--pair-size", type=int, default=256, help="longest side of the natural images in px"
    )
    parser.add_argument(
        "--natural",
        nargs="+",
        default=list(NATURAL),
        metavar="PATH",
        help="natural images to compare with, under images/",
    )
    parser.add_argument("--no-sheets", action="store_true", help="write no contact sheets")
    parser.add_argument("--figures", type=Path, default=FIGURES, help="folder of the sheets")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every number here")
    args = parser.parse_args()

    runtime = Runtime(resolve_device(args.device))
    batch = args.batch or (GPU_BATCH if runtime.device.type == "cuda" else CPU_BATCH)
    settings = VisualisationSettings(args.size, args.steps)
    if args.lr is not None:
        settings = replace(settings, lr=args.lr)
    natural = load_natural(args.natural, args.pair_size)
    device = runtime.describe()
    header = {
        "argv": sys.argv[1:],
        "date": datetime.date.today().isoformat(),
        "device": device.device,
        "device_name": device.device_name,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "settings": settings.as_dict(),
        "batch": batch,
        "weights": args.weights,
        "activation": args.activation,
        "natural": args.natural,
        "pair_size": args.pair_size,
    }
    results: list[LayerResult] = []
    layers = network_order(args.layers)
    for layer in layers:
        extractor = runtime.extractor(args.weights, args.activation, [layer])
        filters = spread(CHANNELS[layer], args.filters)
        images, seconds, share, peak = visualise_layer(extractor, layer, filters, settings, batch)
        own, natural_max, ratios, own_first = quality(
            extractor, layer, filters, images, natural, batch
        )
        result = LayerResult(
            layer=layer,
            channels=CHANNELS[layer],
            filters=filters,
            batches=math.ceil(len(filters) / batch),
            seconds=seconds,
            seconds_per_filter=seconds / len(filters),
            cpu_share=share,
            peak_gib=peak,
            own=own,
            natural_max=natural_max,
            ratios=ratios,
            own_first=own_first,
        )
        if CONV_INDEX[layer] == 0:
            bound = first_layer_ceiling(extractor, filters)
            result.ceilings = [
                ratio(a, b) for a, b in zip(bound.tolist(), natural_max, strict=True)
            ]
        if not args.no_sheets:
            path = args.figures / f"visualisations-{layer}.webp"
            contact_sheet(images, filters, path)
            result.sheet = _shown(path)
            print(f"  wrote {result.sheet} ({path.stat().st_size / 1024:.0f} KB)", flush=True)
        results.append(result)
        if args.json:  # after every layer: a run stopped at a time limit keeps what it finished
            write_record(args.json, header, results, complete=len(results) == len(layers))

    report(results, settings, str(runtime.device))
    if args.json:
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
