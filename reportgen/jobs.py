"""The work a device is handed, and what it hands back (torch-free: the build plans with these).

A :class:`DeviceJob` is one or more transfers that may share batched evaluations, each followed
by the analyses its runs need; a transfer already in the cache comes as its result, and then
only its analyses run.  Everything in a job pickles small: images as 8-bit arrays, cached
results as the paths of their arrays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from reportgen import color
from reportgen.images import LoadedImage, load_image, size_estimate
from reportgen.manifest import Params, Run
from reportgen.results import AnalysisResult, TransferResult
from reportgen.settings import transfer_settings


@dataclass(frozen=True)
class RunInputs:
    """A run's images, as read and resized, and as the network is fed them."""

    content: LoadedImage
    style: LoadedImage
    content_fed: np.ndarray  # (H, W, 3) uint8, after colour preservation
    style_fed: np.ndarray
    load_seconds: float


def load_inputs(run: Run) -> RunInputs:
    """Read and resize a run's images; raises :class:`reportgen.errors.ImageError`."""
    started = time.perf_counter()
    params = run.params
    content = load_image(run.pair.content, params.size)
    fitted = content.size if params.style_scale == "content" else None
    style = load_image(run.pair.style, params.style_side(), shape=fitted)
    content_fed, style_fed = color.prepare_inputs(content.pixels, style.pixels, params.preserve_color)
    return RunInputs(content, style, content_fed, style_fed, time.perf_counter() - started)


@dataclass(frozen=True)
class AnalysisTask:
    """One analysis of a transfer: its cache key and the parameters it runs with (runs sharing
    a transfer may differ in ``top_pairs``)."""

    key: str
    params: Params


@dataclass(frozen=True)
class TransferTask:
    """A transfer (computed, or ``cached``) and the analyses to run on it.  ``inputs`` are read
    when the task is handed to a device, not before: a study's images do not all wait in
    memory."""

    key: str
    run: Run  # the first run it serves
    inputs: RunInputs | None  # None while not yet read, and when the transfer is cached
    cached: TransferResult | None
    analyses: tuple[AnalysisTask, ...]

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def params(self) -> Params:
        return self.run.params

    def batch_signature(self) -> tuple:
        """Transfers with equal signatures can be optimised as one batch on a GPU: content
        images of one size (as read, or as their headers promise before they are read), one
        network and one :attr:`TransferSettings.batch_signature`."""
        params = self.params
        size = self.inputs.content.size if self.inputs is not None else size_estimate(self.run.pair.content, params.size)
        settings = transfer_settings(params, params.precision)
        return (size, params.weights, params.activation, settings.batch_signature)


@dataclass(frozen=True)
class DeviceJob:
    tasks: tuple[TransferTask, ...]


@dataclass(frozen=True)
class TaskOutcome:
    """What a device made of one :class:`TransferTask`: the transfer it computed (``None`` if it
    was cached) and each analysis by key; or the one-line ``error`` that stopped it."""

    key: str
    transfer: TransferResult | None = None
    analyses: dict[str, AnalysisResult] | None = None
    error: str | None = None
