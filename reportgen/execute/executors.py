"""The executors of one build: where its device jobs and figures run, each made when first needed
(a build whose transfers all come from the cache never imports torch, nor starts Ray) and all
stopped when the build ends; an error or Ctrl-C cancels what is still running."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal, get_args

from reportgen.devices import check_device_choice
from reportgen.errors import BuildError
from reportgen.execute.local import DeviceWorkers, FigurePool, InProcessDevice, SerialFigures
from reportgen.execute.processes import default_figure_jobs
from reportgen.manifest import Manifest
from reportgen.stages.jobs import Devices, Figures
from reportgen.stages.pipeline import BuildProgress

if TYPE_CHECKING:  # Ray is imported only by a build that uses it
    from reportgen.execute.ray_cluster import RayCluster

ExecutorName = Literal["local", "ray"]
EXECUTORS: tuple[ExecutorName, ...] = get_args(ExecutorName)


@dataclass(frozen=True)
class ExecutorChoice:
    """Where a build's work runs (the command line's ``--executor``, ``--device``, ``--jobs``,
    ``--ray-address`` and ``--ray-gpus``)."""

    executor: ExecutorName = "local"
    device: str = "auto"  # local builds: auto, cpu, cuda, cuda:N or a list (reportgen.devices)
    jobs: int | None = None  # local builds: figure processes (None: the cores not feeding a GPU)
    ray_address: str | None = None  # ray: the cluster (None: a local one for the build)
    ray_gpus: float = 1.0  # ray: GPUs per device worker (0.5: two share a GPU)

    def check(self) -> None:
        """Refuse what names no executor or device before anything is computed."""
        if self.executor not in EXECUTORS:
            raise BuildError(f"--executor {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.executor == "ray":
            if self.device != "auto" or self.jobs is not None:
                raise BuildError(
                    "--device and --jobs choose local devices and processes; on Ray the "
                    "cluster's resources decide (see --ray-gpus)"
                )
            if not 0 < self.ray_gpus <= 64:
                raise BuildError(
                    f"--ray-gpus {self.ray_gpus:g}: GPUs per device worker must be above 0 "
                    "(0.5: two workers share a GPU)"
                )
            from reportgen.execute.ray_cluster import require_ray

            require_ray()
        else:
            check_device_choice(self.device)


class Executors:
    """The device and figure executors of one build, for its phase one
    (:class:`reportgen.stages.pipeline.Gatherer` calls :meth:`devices` and :meth:`figures`)."""

    def __init__(self, choice: ExecutorChoice, manifest: Manifest, listener: BuildProgress):
        self.choice = choice
        self.manifest = manifest
        self.listener = listener
        self.runs = {run.name: run for run in manifest.runs}
        self._devices: Devices | None = None
        self._figures: Figures | None = None
        self._cluster: RayCluster | None = None

    def _ray_cluster(self) -> None:
        if self._cluster is None:
            from reportgen.execute.ray_cluster import RayCluster

            self._cluster = RayCluster(self.choice.ray_address)

    def devices(self) -> Devices:
        if self._devices is None:
            self._devices = (
                self._ray_devices() if self.choice.executor == "ray" else self._local_devices()
            )
        return self._devices

    def _ray_devices(self) -> Devices:
        from reportgen.execute.ray_cluster import RayDevices

        self._ray_cluster()
        return RayDevices(self.manifest, self.choice.ray_gpus)

    def _local_devices(self) -> Devices:
        from reportgen.ml.runtime import resolve_devices  # torch: only when a run is computed

        resolved = [str(device) for device in resolve_devices(self.choice.device)]
        if resolved == ["cpu"]:
            return InProcessDevice("cpu", self._report_phase)
        workers = DeviceWorkers(resolved)
        workers.start()
        return workers

    def _report_phase(self, name: str, phase: str, done: int, total: int) -> None:
        self.listener.phase(self.runs[name], phase, done, total)

    def figures(self) -> Figures:
        if self._figures is None:
            if self.choice.executor == "ray":
                from reportgen.execute.ray_cluster import RayFigures

                self._ray_cluster()
                self._figures = RayFigures()
            else:
                gpu_workers = self._devices.batches if self._devices is not None else 0
                jobs = (
                    self.choice.jobs
                    if self.choice.jobs is not None
                    else default_figure_jobs(gpu_workers)
                )
                pool: Figures = FigurePool(jobs) if jobs > 0 else SerialFigures()
                self._figures = pool
        return self._figures

    def __enter__(self) -> Executors:
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._figures is not None:
                self._figures.close(cancel=error is not None)
            if self._devices is not None:
                self._devices.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
