"""Where a build's work runs: device jobs on the build's own device or on one worker process per
device, figures in a pool of processes beside them.

Every executor returns :class:`concurrent.futures.Future`\\ s, so the build waits on device jobs
and figures alike (:mod:`reportgen.stages.pipeline`).  Worker processes are spawned, or forked
from a fresh server process, never from the build's (a forked copy of a process that has
started torch's threads or CUDA is not safe), ignore Ctrl-C (the build cancels them and leaves
the previous site as it was) and import torch only where they drive a device: the figure
processes never do.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any

from reportgen.errors import ReportgenError
from reportgen.execute.processes import (
    available_cores,
    main_script_left_out,
    yield_to_transfers,
)
from reportgen.stages.jobs import (
    DeviceBusy,
    DeviceJob,
    DeviceWork,
    FigureJob,
    NoDeviceLeft,
    WorkDone,
)
from reportgen.stages.results import FigureSet, LayerFigures

if TYPE_CHECKING:
    from reportgen.ml.runtime import Runtime

JOBS_PER_WORKER = 2  # in flight per device worker: one running, the next already waiting


def _done(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _failed(error: BaseException) -> Future:
    future: Future = Future()
    future.set_exception(error)
    return future


def _start_figure_process() -> None:
    _ignore_interrupts()
    yield_to_transfers()
    atexit.register(_exit_without_teardown)


def _exit_without_teardown() -> None:
    """A figure process's last act once its pool is shut down: exit before the interpreter
    tears down matplotlib's, pandas' and scipy's modules (0.3 s the build would wait for, as the
    command line's own :func:`reportgen.cli.run` skips it).  By then each result has been sent
    and every file written and closed; only the streams are left to flush."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group; the build alone decides what happens then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# ---- devices --------------------------------------------------------------------------------


class InProcessDevice:
    """The build's own process drives the device (the CPU build, as it always was): a job runs
    when it is submitted, with the transfer's progress reported step by step."""

    capacity = 1
    batches = 0  # batching gains nothing on a CPU
    lost_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, device: str, progress: Callable[[str, str, int, int], None] | None = None):
        self.device = device
        self.progress = progress  # (run name, phase, done, total) -> None
        self._runtime: Runtime | None = None

    def runtime(self) -> Runtime:
        if self._runtime is None:
            from reportgen.ml.runtime import Runtime, resolve_device

            self._runtime = Runtime(resolve_device(self.device))
        return self._runtime

    def submit(self, job: DeviceWork) -> Future:
        from reportgen.ml.stages import run_work

        runtime = self.runtime()
        progress = self.progress
        report = None
        if progress is not None and isinstance(job, DeviceJob):
            name = job.tasks[0].name
            report = lambda phase, done, total: progress(name, phase, done, total)  # noqa: E731
        try:
            return _done(run_work(job, runtime, report))
        except Exception as error:  # a defect: re-raised where the future is read
            return _failed(error)

    def free(self) -> bool:
        return True

    def where(self, future: Future) -> str:
        return self.device

    def lost(self, future: Future) -> None:
        pass

    def close(self) -> None:
        pass


_worker_runtime: Runtime | None = None


def _start_device_worker(device: str, threads: int) -> None:
    """In a device worker process: its runtime, on its device."""
    _ignore_interrupts()
    global _worker_runtime
    from reportgen.ml.runtime import worker_runtime

    _worker_runtime = worker_runtime(device, threads)


def _device_job(job: DeviceWork) -> WorkDone:
    from reportgen.ml.stages import run_work

    assert _worker_runtime is not None
    return run_work(job, _worker_runtime)


def _pid() -> int:
    return os.getpid()


@dataclass
class _Worker:
    device: str
    label: str
    pool: ProcessPoolExecutor
    pid: int | None = None
    futures: list[Future] = field(default_factory=list)
    alive: bool = True

    def in_flight(self) -> int:
        self.futures = [future for future in self.futures if not future.done()]
        return len(self.futures)


class DeviceWorkers:
    """One worker process per device (a device may be listed twice to run two workers on it),
    each running its jobs one after another; jobs go to whichever worker has the fewest."""

    lost_errors: tuple[type[BaseException], ...] = (BrokenProcessPool,)

    def __init__(self, devices: list[str]):
        context = multiprocessing.get_context("spawn")
        cpu_workers = sum(device == "cpu" for device in devices)
        # CPU workers share the cores; a CUDA worker needs one thread to feed its GPU.
        threads = {"cpu": max(1, available_cores() // max(cpu_workers, 1))}
        self.workers = []
        for index, device in enumerate(devices):
            pool = ProcessPoolExecutor(
                1,
                mp_context=context,
                initializer=_start_device_worker,
                initargs=(device, threads.get(device, 0)),
            )
            label = device if devices.count(device) == 1 else f"{device} (worker {index + 1})"
            self.workers.append(_Worker(device, label, pool))
        self._owner: dict[Future, _Worker] = {}

    @property
    def capacity(self) -> int:
        return JOBS_PER_WORKER * sum(worker.alive for worker in self.workers)

    @property
    def batches(self) -> int:
        """Workers whose devices batch transfers: the GPUs'."""
        return sum(worker.alive and worker.device.startswith("cuda") for worker in self.workers)

    def start(self) -> dict[str, int]:
        """Start every worker (importing torch there); returns each one's process id."""
        pids = {}
        for worker in self.workers:
            try:
                with main_script_left_out():  # the pool starts its process here
                    started = worker.pool.submit(_pid)
                worker.pid = pids[worker.label] = started.result()
            except BrokenProcessPool:  # its initializer failed: no torch, no such device, ...
                self.close()
                raise ReportgenError(
                    f"the worker process for {worker.label} could not start (its error is shown "
                    "above)"
                ) from None
        return pids

    def free(self) -> bool:
        return any(worker.alive and worker.in_flight() < JOBS_PER_WORKER for worker in self.workers)

    def submit(self, job: DeviceWork) -> Future:
        for worker in sorted((w for w in self.workers if w.alive), key=_Worker.in_flight):
            if worker.in_flight() >= JOBS_PER_WORKER:
                break
            try:
                with main_script_left_out():  # a pool may start a process in submit
                    future = worker.pool.submit(_device_job, job)
            except BrokenProcessPool:
                # Its process died since its last job: the jobs it still held fail with it and
                # are reported from their futures.  (Those futures are done, so it counted as
                # the least busy worker.)
                worker.alive = False
                continue
            worker.futures.append(future)
            self._owner[future] = worker
            return future
        if not any(worker.alive for worker in self.workers):
            raise NoDeviceLeft("every device worker has stopped")
        raise DeviceBusy("every device worker left is busy")

    def where(self, future: Future) -> str:
        worker = self._owner.get(future)
        if worker is None:
            return "a device worker"
        return f"the worker on {worker.label}" + (f" (process {worker.pid})" if worker.pid else "")

    def lost(self, future: Future) -> None:
        """``future``'s worker stopped: give it no more jobs."""
        if future in self._owner:
            self._owner[future].alive = False

    def close(self) -> None:
        for worker in self.workers:
            _shut_down_now(worker.pool)


def _shut_down_now(pool: ProcessPoolExecutor) -> None:
    """Cancel a pool's queued work and stop its processes now: a cancelled build does not wait
    for a running job. (The processes are listed first: ``shutdown`` forgets them.)"""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


# ---- figures --------------------------------------------------------------------------------

_DRAWING = "reportgen.figures.draw"  # what a figure process imports


def _draw(job: FigureJob) -> FigureSet:
    from reportgen.figures.draw import draw_run

    return draw_run(job)


def _draw_piece(
    job: FigureJob, run_files: bool, layers: tuple[str, ...]
) -> dict[str, LayerFigures]:
    from reportgen.figures.draw import draw_piece

    return draw_piece(job, run_files, layers)


def _figure_context() -> BaseContext:
    """How figure processes start: forked from a server process that has imported what
    drawing needs, where the platform has one (Linux, macOS), so that the import (1.4 s of
    CPU, which the first transfer would otherwise share its cores with) is paid once, not once
    per process.  The server is a fresh interpreter that never imports torch, so the forks are
    safe; elsewhere each process is spawned and imports for itself."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([_DRAWING])  # read when the server starts, at the first pool
    return context


def _warm_up() -> None:
    """Import what drawing needs (matplotlib, seaborn, PIL: a second or two), so that a figure
    process started early has it ready when the first run's results arrive."""
    import reportgen.figures.draw  # noqa: F401


def _joined(parts: list[Future], join: Callable[[list[Any]], Any]) -> Future:
    """One future for several: ``join`` of their results once all are done, or the first
    part's error (a cancelled part cancels the whole)."""
    whole: Future = Future()
    remaining = [len(parts)]

    def part_done(_: Future) -> None:
        remaining[0] -= 1
        if remaining[0] or whole.cancelled():  # cancelled: the build stopped waiting for it
            return
        if any(part.cancelled() for part in parts):
            whole.cancel()
            return
        errors = [part.exception() for part in parts if part.exception() is not None]
        if errors:
            whole.set_exception(errors[0])
            return
        try:
            whole.set_result(join([part.result() for part in parts]))
        except Exception as error:
            whole.set_exception(error)

    for part in parts:
        part.add_done_callback(part_done)
    return whole


class SerialFigures:
    """``--jobs 0``: figures drawn in the build's own process, when submitted."""

    lost_errors: tuple[type[BaseException], ...] = ()

    def start(self) -> None:
        pass  # the build's process imports what drawing needs at its first figure

    def submit(self, job: FigureJob) -> Future:
        try:
            return _done(_draw(job))
        except Exception as error:
            return _failed(error)

    def close(self, cancel: bool = False) -> None:
        pass


class FigurePool:
    """``jobs`` processes drawing the figures of finished runs, in the order submitted.

    A run submitted while processes would otherwise wait is drawn in pieces (its own files, and
    each layer's figures), which the idle processes take as each finishes its last: the last run
    of a build, or its only one, then takes a fraction of the time, while a queue of runs is
    drawn a run per process.
    """

    lost_errors: tuple[type[BaseException], ...] = (BrokenProcessPool,)

    def __init__(self, jobs: int):
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None
        self._pending: set[Future] = set()  # runs and pieces submitted and not yet drawn

    def start(self) -> None:
        """Have what drawing needs imported now, beside the work that comes before the first
        figures: by the fork server, which imports it as it starts (the processes are forked
        from it when the first figures are submitted, ready to draw), or else by every process,
        started now at idle priority."""
        if _figure_context().get_start_method() == "forkserver":
            # Not the processes themselves: a process forked from the server is started only
            # once the server's import is done, and the build would wait for that.
            with main_script_left_out():
                multiprocessing.forkserver.ensure_running()
            return
        for _ in range(self.jobs):
            self._submit(_warm_up)

    def submit(self, job: FigureJob) -> Future:
        if self.jobs - len(self._pending) < 2 or not job.analysis.layers:
            return self._submit(_draw, job)
        # A piece per layer rather than one per process: the layers' figures take from half a
        # second to a second each, and pieces that even out as they are taken leave no
        # process waiting long for the one still drawing.
        started = time.perf_counter()
        pieces = [self._submit(_draw_piece, job, True, ())] + [
            self._submit(_draw_piece, job, False, (layer,)) for layer in job.analysis.layers
        ]
        return _joined(
            pieces,
            lambda drawn: FigureSet.joined(
                drawn, job.analysis.layers, time.perf_counter() - started, job.folder
            ),
        )

    def _submit(self, function: Callable[..., Any], *args: Any) -> Future:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.jobs, mp_context=_figure_context(), initializer=_start_figure_process
            )
        try:
            with main_script_left_out():  # a pool starts its processes in submit
                future = self._pool.submit(function, *args)
        except BrokenProcessPool:
            # A figure process was killed: the runs it had are reported by their futures; the
            # runs after them get a fresh pool.
            self._pool = None
            return self._submit(function, *args)
        if function is not _warm_up:
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)
        return future

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            if cancel:
                _shut_down_now(self._pool)
            else:
                self._pool.shutdown(wait=True)
            self._pool = None
