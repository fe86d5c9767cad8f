"""The work handed to the executors, what comes back, and what an executor promises
(torch-free: the build plans with these).

A :class:`DeviceJob` is one or more transfers that may share batched evaluations, each followed
by the analyses its runs need; a transfer already in the cache comes as its result, and then
only its analyses run.  A :class:`FeatureJob` is one forward pass, for a notebook.  A
:class:`FigureJob` is the drawing of one run's folder.  Everything in
a job pickles small: images as 8-bit arrays, cached results as the paths of their arrays.

The executors themselves (a worker per device, figure processes, Ray) are
:mod:`reportgen.execute`'s; :class:`Devices` and :class:`Figures` say what the pipeline needs of
them.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from reportgen import color
from reportgen.images import LoadedImage, load_image, load_mask, size_estimate
from reportgen.manifest import FigureOptions, Params, RunSpec
from reportgen.stages.results import AnalysisResult, TransferResult
from reportgen.stages.settings import transfer_settings
from reportgen.stages.visualisations import Network, VisualisationBatch, VisualisationJob


@dataclass(frozen=True)
class RunInputs:
    """A run's images, as read and resized, and as the network is fed them: the content image
    and each style image of the pair, in the manifest's order."""

    content: LoadedImage
    styles: tuple[LoadedImage, ...]
    content_fed: np.ndarray  # (H, W, 3) uint8, after colour preservation
    styles_fed: tuple[np.ndarray, ...]
    load_seconds: float
    # A region's mask per style image, (H, W) float32 in 0..1 at the content's size; () when
    # the styles cover the whole image.
    masks: tuple[np.ndarray, ...] = ()


def load_inputs(run: RunSpec) -> RunInputs:
    """Read and resize a run's images; raises :class:`reportgen.errors.ImageError`."""
    started = time.perf_counter()
    params = run.params
    content = load_image(run.pair.content, params.size)
    fitted = content.size if params.style_scale == "content" else None
    styles = tuple(load_image(path, params.style_side(), shape=fitted) for path in run.pair.styles)
    # Colour preservation fits each style to the content; the content comes out the same each time.
    fed = [
        color.prepare_inputs(content.pixels, style.pixels, params.preserve_color)
        for style in styles
    ]
    masks = tuple(load_mask(path, content.size) for path in run.pair.masks)
    return RunInputs(
        content,
        styles,
        fed[0][0],
        tuple(style_fed for _, style_fed in fed),
        time.perf_counter() - started,
        masks,
    )


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
    run: RunSpec  # the first run it serves
    inputs: RunInputs | None  # None while not yet read, and when the transfer is cached
    cached: TransferResult | None
    analyses: tuple[AnalysisTask, ...]

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def fed(self) -> RunInputs:
        """The task's images, read: a task reaches a device with them."""
        if self.inputs is None:
            raise ValueError(f"the images of {self.name} were not read")
        return self.inputs

    @property
    def params(self) -> Params:
        return self.run.params

    def batch_signature(self) -> tuple:
        """Transfers with equal signatures can be optimised as one batch on a GPU: content
        images of one size (as read, or as their headers promise before they are read), one
        network and one :attr:`TransferSettings.batch_signature`."""
        params = self.params
        size = (
            self.inputs.content.size
            if self.inputs is not None
            else size_estimate(self.run.pair.content, params.size)
        )
        # The precision as written ("auto" resolves alike for every run of one device); the
        # settings' own is a stand-in.
        settings = transfer_settings(params, "float32")
        return (
            size,
            params.weights,
            params.activation,
            params.precision,
            settings.batch_signature,
            len(self.run.pair.masks),  # regions batch with runs of as many regions
        )


@dataclass(frozen=True)
class DeviceJob:
    tasks: tuple[TransferTask, ...]


@dataclass(frozen=True)
class FeatureJob:
    """The feature maps of one image at some layers of a network: what a notebook asks of a
    finished run (``Run.features``).  ``image`` is (H, W, 3) uint8 RGB, as the network was fed
    it; the device hands back each layer's maps, (C, H_l, W_l) float32."""

    network: Network
    image: np.ndarray
    layers: tuple[str, ...]


# What a device is handed: transfers and their analyses, filters to visualise, or an image to
# look at; and what it hands back for each.
DeviceWork = DeviceJob | VisualisationJob | FeatureJob
WorkDone = list["TaskOutcome"] | VisualisationBatch | dict[str, np.ndarray]


@dataclass(frozen=True)
class TaskOutcome:
    """What a device made of one :class:`TransferTask`: the transfer it computed (``None`` if it
    was cached) and each analysis by key; or the one-line ``error`` that stopped it."""

    key: str
    transfer: TransferResult | None = None
    analyses: dict[str, AnalysisResult] | None = None
    error: str | None = None


@dataclass(frozen=True)
class FigureJob:
    """The figures stage of one analysis: every file of the run's folder drawn into ``folder``
    from its transfer and analysis, the montages the study's ``options`` ask for."""

    transfer: TransferResult
    analysis: AnalysisResult
    params: Params
    options: FigureOptions
    folder: Path


class NoDeviceLeft(Exception):
    """Every device worker has stopped."""


class DeviceBusy(Exception):
    """No worker can take a job now: the one that looked free turned out to have died, and the
    others are busy.  The job waits until a running one finishes (or its failure is reported)."""


class Devices(Protocol):
    """Where device jobs run (:mod:`reportgen.execute`): the build's own process, a worker
    process per device, or Ray actors."""

    @property
    def capacity(self) -> int:
        """Jobs it takes at once."""
        ...

    @property
    def batches(self) -> int:
        """Workers that batch transfers (GPUs); 0: one transfer a job."""
        ...

    lost_errors: tuple[type[BaseException], ...]  # what a job's future raises when its worker died

    def free(self) -> bool: ...

    def submit(self, job: DeviceWork) -> Future:
        """Start ``job`` (its future's result is a :data:`WorkDone`); raises
        :class:`NoDeviceLeft` when every worker has stopped, :class:`DeviceBusy` when none can
        take it now (one that looked free had died and the others are busy)."""
        ...

    def where(self, future: Future) -> str:
        """Which worker runs the job of ``future``, for messages."""
        ...

    def lost(self, future: Future) -> None:
        """The worker of ``future`` died: give it no more jobs."""
        ...

    def close(self) -> None: ...


class Figures(Protocol):
    """Where figure jobs run: the build's own process, figure processes, or Ray tasks."""

    lost_errors: tuple[type[BaseException], ...]

    def start(self) -> None:
        """Get ready to draw (start processes, import what drawing needs); before any submit."""
        ...

    def submit(self, job: FigureJob) -> Future: ...

    def close(self, cancel: bool = False) -> None: ...
