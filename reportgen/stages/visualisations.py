"""Feature visualisations as a stage: what one is made with, the jobs that make them and where
they are kept (torch-free: the build plans with these; :mod:`reportgen.ml.visualise` computes
them).

A visualisation is a property of the network, not of a run: it is kept per (weights, activation,
layer, filter, settings) under ``<cache>/visualisations/`` and shared by every run and every
study on the machine.  Each filter's entry is its image, lossless (``<k>.png``), and what making
it measured (``<k>.json``, written last: an entry without it is not there).
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from reportgen.layers import CHANNELS, CONV_INDEX, LAYER_NAMES, Activation
from reportgen.manifest import Manifest, VisualisationOptions
from reportgen.stages.fingerprint import STAGE_VERSIONS, digest, weights_fingerprint
from reportgen.stages.results import AnalysisResult

SEED = 0
# The defaults of a device: on a CPU small enough that a study's top filters take minutes; on a
# GPU Lucid's 128 px and 512 steps.
CPU_DEFAULTS = (64, 64)  # (size, steps)
GPU_DEFAULTS = (128, 512)
# Filters optimised in one batch: a CPU gains nothing from more; a GPU takes a layer at once.
CPU_BATCH = 32
GPU_BATCH = 512


def step_size(steps: int) -> float:
    """Adam's step size on the spectrum for ``steps`` steps: Lucid's 0.05 for its 512 steps,
    larger for fewer (by the square root, as far as 0.1: beyond it colours saturate), so that a
    CPU's short optimisations get as far."""
    return min(0.1, 0.05 * math.sqrt(512 / steps))


@dataclass(frozen=True)
class VisualisationSettings:
    """How a filter's image is optimised: its side in pixels, Adam's steps and step size (by
    default :func:`step_size`), and the seed of its starting noise and random transformations."""

    size: int
    steps: int
    lr: float = math.nan
    seed: int = SEED

    def __post_init__(self) -> None:
        if math.isnan(self.lr):
            object.__setattr__(self, "lr", step_size(self.steps))

    def as_dict(self) -> dict:
        return {"size": self.size, "steps": self.steps, "lr": self.lr, "seed": self.seed}

    @classmethod
    def from_dict(cls, values: dict) -> VisualisationSettings:
        return cls(values["size"], values["steps"], values["lr"], values["seed"])


def resolved_settings(options: VisualisationOptions, on_gpu: bool) -> VisualisationSettings:
    """The settings a device makes visualisations with: the manifest's, or its own defaults."""
    size, steps = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
    return VisualisationSettings(options.size or size, options.steps or steps)


@dataclass(frozen=True, order=True)
class Network:
    """A network as visualisations know it: its weights (``caffe``, ``torchvision`` or a
    file's absolute path) and whether a layer's activation is taken after the ReLU."""

    weights: str
    activation: Activation


@dataclass(frozen=True)
class VisualisationJob:
    """Filters of one layer of one network to visualise together on a device, with
    ``settings``: the manifest's ``options`` resolved for the build's devices (the options as
    written key the cache)."""

    network: Network
    layer: str
    filters: tuple[int, ...]
    options: VisualisationOptions
    settings: VisualisationSettings


@dataclass(frozen=True)
class VisualisationBatch:
    """What a device made of a :class:`VisualisationJob`."""

    images: np.ndarray  # (N, S, S, 3) uint8 RGB, in the order of the job's filters
    activations: np.ndarray  # (N,) each filter's mean activation on its own image
    settings: VisualisationSettings
    seconds: float  # of the whole batch
    device: str


@dataclass(frozen=True)
class FilterImage:
    """One filter's visualisation, as kept."""

    path: Path  # the image, PNG
    activation: float  # the filter's mean activation on it
    settings: VisualisationSettings
    seconds: float  # its share of its batch's time
    device: str


class VisualisationCache:
    """The kept visualisations under ``root``, one folder per network and written settings."""

    def __init__(self, root: Path):
        self.root = root
        self._network_keys: dict[Network, str] = {}  # a study asks for hundreds of filters

    def _folder(self, network: Network, options: VisualisationOptions, layer: str) -> Path:
        if network not in self._network_keys:
            self._network_keys[network] = digest(
                {
                    "weights": weights_fingerprint(network.weights),
                    "activation": network.activation,
                    "version": STAGE_VERSIONS["visualisation"],
                }
            )[:16]
        # As written: "auto" sizes and steps are the device's (the resolved ones are recorded).
        settings_key = digest({"size": options.size, "steps": options.steps, "seed": SEED})
        return self.root / self._network_keys[network] / settings_key[:16] / layer

    def lookup(
        self, network: Network, options: VisualisationOptions, layer: str, filter_index: int
    ) -> FilterImage | None:
        folder = self._folder(network, options, layer)
        try:
            made = json.loads((folder / f"{filter_index}.json").read_text())
        except (OSError, ValueError):
            return None
        path = folder / f"{filter_index}.png"
        if not path.is_file():
            return None
        return FilterImage(
            path,
            made["activation"],
            VisualisationSettings.from_dict(made["settings"]),
            made["seconds"],
            made["device"],
        )

    def store(self, job: VisualisationJob, batch: VisualisationBatch) -> dict[int, FilterImage]:
        """Keep every image of ``batch``; returns them by filter."""
        folder = self._folder(job.network, job.options, job.layer)
        folder.mkdir(parents=True, exist_ok=True)
        share = batch.seconds / max(1, len(job.filters))
        kept = {}
        for k, pixels, activation in zip(job.filters, batch.images, batch.activations, strict=True):
            image = FilterImage(
                folder / f"{k}.png", float(activation), batch.settings, share, batch.device
            )
            _atomic(image.path, functools.partial(_save_png, pixels))
            made = {
                "activation": image.activation,
                "settings": image.settings.as_dict(),
                "seconds": image.seconds,
                "device": image.device,
            }
            # Written last: an entry without it is not there.
            _atomic(folder / f"{k}.json", functools.partial(_save_json, made))
            kept[k] = image
        return kept


def _save_png(pixels: np.ndarray, path: Path) -> None:
    Image.fromarray(pixels).save(path, "PNG")


def _save_json(value: dict, path: Path) -> None:
    path.write_text(json.dumps(value))


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(partial)`` then renamed to ``path``: a reader never sees half a file."""
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    try:
        write(Path(partial))
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class FilterKey:
    """A filter of a network: what gets a visualisation and a page."""

    network: Network
    layer: str
    index: int


def wanted_filters(
    manifest: Manifest, analyses: Iterable[tuple[Network, AnalysisResult]]
) -> list[FilterKey]:
    """The filters a study visualises (``feature_visualisation``), in network and layer order:
    ``top``, every filter in some run's top pairs of the style image; ``all``, every filter of
    every analysed layer."""
    mode = manifest.visualisation.filters
    wanted: set[FilterKey] = set()
    if mode == "none":
        return []
    for network, analysis in analyses:
        for layer, info in analysis.layers.items():
            if mode == "all":
                wanted.update(FilterKey(network, layer, k) for k in range(CHANNELS[layer]))
                continue
            for cell in info.top_pairs["style"]:
                wanted.update(
                    (FilterKey(network, layer, cell.i), FilterKey(network, layer, cell.j))
                )
    return sorted(wanted, key=lambda f: (f.network, CONV_INDEX[f.layer], f.index))


def jobs_for(
    missing: list[FilterKey],
    options: VisualisationOptions,
    settings: VisualisationSettings,
    batch: int,
) -> list[VisualisationJob]:
    """Missing filters into jobs of at most ``batch`` filters of one layer of one network."""
    groups: dict[tuple[Network, str], list[int]] = {}
    for key in missing:
        groups.setdefault((key.network, key.layer), []).append(key.index)
    return [
        VisualisationJob(network, layer, tuple(filters[start : start + batch]), options, settings)
        for (network, layer), filters in groups.items()
        for start in range(0, len(filters), batch)
    ]


# What a visualisation step costs, for the estimate said before they start: the network's
# floating-point operations at a rate, plus the image's own work (its spectrum, transformations
# and update) per pixel.  Measured on a 2-core x86 CPU with benchmarks/visualisation.py (per
# core); for a GPU, a float32 guess.
CPU_FLOPS_PER_CORE = 1.5e11
CPU_SECONDS_PER_PIXEL_PER_CORE = 3e-6
GPU_FLOPS = 2e13
GPU_SECONDS_PER_PIXEL = 1e-9


def forward_flops(layer: str, side: int) -> float:
    """Floating-point operations of VGG19's convolutions up to ``layer`` on a ``side`` px
    square image (each multiply-add two)."""
    flops, channels, current = 0.0, 3, side
    for name in LAYER_NAMES:
        out = CHANNELS[name]
        flops += 2 * 9 * channels * out * current * current
        channels = out
        if name == layer:
            return flops
        if name.endswith(f"_{_CONVS_IN_BLOCK[name[4]]}"):
            current = max(1, current // 2)  # the block's max-pool
    raise ValueError(f"unknown layer {layer!r}")


_CONVS_IN_BLOCK = {"1": 2, "2": 2, "3": 4, "4": 4, "5": 4}


def estimated_seconds(
    filters: list[FilterKey], settings: VisualisationSettings, on_gpu: bool
) -> float:
    """About how long the visualisations of ``filters`` take: a forward and a backward pass (three
    forwards' work) of the padded, transformed image at every step."""
    seen = round(settings.size * 1.1)  # padded and jittered, as the network sees it
    flops = sum(3 * forward_flops(key.layer, seen) for key in filters)
    pixels = len(filters) * seen * seen
    if on_gpu:
        step = flops / GPU_FLOPS + pixels * GPU_SECONDS_PER_PIXEL
    else:
        cores = max(1, os.cpu_count() or 1)
        step = (flops / CPU_FLOPS_PER_CORE + pixels * CPU_SECONDS_PER_PIXEL_PER_CORE) / cores
    return step * settings.steps
