"""Device workers, one process per device, tried with two CPU "devices": the runs are handed out
as workers free up, each is computed once, and a worker that dies has its runs reported while
the other worker finishes the rest."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from studies import SEEDED_TWINS, make_study

from reportgen.errors import ReportgenError
from reportgen.execute.local import (
    DeviceWorkers,
    FigurePool,
    InProcessDevice,
    SerialFigures,
    _joined,
)
from reportgen.manifest import load_manifest
from reportgen.stages.cache import Caches
from reportgen.stages.jobs import DeviceBusy, DeviceJob, NoDeviceLeft, TransferTask, load_inputs
from reportgen.stages.pipeline import Gatherer, Silent
from reportgen.stages.visualisations import VisualisationJob

RUNS = ["cat", "cup", "cat-again", "cup-again"]


@pytest.fixture
def workers():
    pool = DeviceWorkers(["cpu", "cpu"])
    try:
        yield pool
    finally:
        pool.close()


class KillOnStart(Silent):
    """Kills a worker shortly after the ``nth`` run is handed out (while that run computes)."""

    def __init__(self, pid: int, nth: int):
        self.pid, self.nth, self.seen = pid, nth, 0

    def run_started(self, run, position, count, work):
        self.seen += 1
        if self.seen == self.nth:
            threading.Timer(0.1, os.kill, (self.pid, signal.SIGKILL)).start()


def _gather(tmp_path, workers, listener=None, keep_going=False, extra_pairs=SEEDED_TWINS):
    manifest = load_manifest(
        make_study(tmp_path / "study", size=32, steps=2, extra_pairs=extra_pairs)
    )
    caches = Caches(tmp_path / "cache")
    try:
        listener = listener or Silent()
        return Gatherer(
            manifest, caches, lambda: workers, SerialFigures, listener, keep_going
        ).gather()
    finally:
        caches.close()


def test_each_device_gets_a_worker_and_every_job_is_done_once(tmp_path, workers):
    pids = workers.start()
    assert len(pids) == 2 and len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    manifest = load_manifest(
        make_study(tmp_path / "study", size=32, steps=2, extra_pairs=SEEDED_TWINS)
    )
    jobs = [
        DeviceJob((TransferTask(run.name, run, load_inputs(run), None, ()),))
        for run in manifest.runs
    ]
    # As the build hands them out: whenever a worker is free, to the least busy one.
    handed, futures = {}, []
    for job in jobs:
        assert workers.free()
        future = workers.submit(job)
        handed[job.tasks[0].name] = workers.where(future)
        futures.append(future)
    assert not workers.free()  # two jobs each: one running, one waiting
    outcomes = [outcome for future in futures for outcome in future.result(timeout=120)]
    assert sorted(outcome.key for outcome in outcomes) == sorted(RUNS)  # every run once
    assert all(outcome.error is None and outcome.transfer.losses.total for outcome in outcomes)
    assert (
        len(set(handed.values())) == 2
        and sum(where == handed["cat"] for where in handed.values()) == 2
    )


def test_a_worker_that_dies_has_its_runs_reported_and_the_other_finishes(tmp_path, workers):
    pids = workers.start()
    # Jobs go to the least busy worker, the first worker first: the second run is the second's.
    second = list(pids.values())[1]
    gathered = _gather(tmp_path, workers, KillOnStart(second, nth=2), keep_going=True)
    assert gathered.failed, "the killed worker's runs were not reported"
    assert all(
        f"process {second}" in message and "stopped unexpectedly" in message
        for message in gathered.failed.values()
    )
    # Each run is either finished or reported, never both, and none was computed twice.
    assert sorted([*gathered.failed, *gathered.results]) == sorted(RUNS) and not set(
        gathered.failed
    ) & set(gathered.results)
    assert gathered.stages_computed["transfer"] == len(gathered.results) >= 1


def _stopped(pid: int) -> bool:
    """Gone, or a zombie waiting to be reaped (Linux)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


def test_closing_the_workers_stops_a_running_job_at_once(tmp_path):
    workers = DeviceWorkers(["cpu", "cpu"])
    pids = list(workers.start().values())
    manifest = load_manifest(make_study(tmp_path / "study", size=64, steps=5000))
    run = manifest.runs[0]
    future = workers.submit(DeviceJob((TransferTask(run.name, run, load_inputs(run), None, ()),)))
    time.sleep(3)  # optimising by now: 5000 steps take minutes
    assert not future.done()
    started = time.monotonic()
    workers.close()
    deadline = time.monotonic() + 5
    while not all(_stopped(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_stopped(pid) for pid in pids) and time.monotonic() - started < 5


def test_a_worker_that_cannot_start_is_named_in_one_message():
    workers = DeviceWorkers(["no-such-device"])
    with pytest.raises(ReportgenError, match="no-such-device.*could not start"):
        workers.start()


class _BrokenPool:
    """A worker pool whose process has died: it takes no more jobs."""

    def submit(self, *args, **kwargs):
        raise BrokenProcessPool("a process of the pool was terminated abruptly")

    def shutdown(self, wait=True, cancel_futures=False):
        pass


class _BusyPool(_BrokenPool):
    """A worker pool whose jobs never finish (within the test)."""

    def submit(self, *args, **kwargs):
        return Future()


def test_a_worker_found_dead_while_the_other_is_full_leaves_the_job_waiting():
    workers = DeviceWorkers(["cpu", "cpu"])  # no process starts before a job is submitted
    dead, full = workers.workers
    full.pool = _BusyPool()
    full.futures = [full.pool.submit(), full.pool.submit()]  # two jobs in flight: full
    dead.pool = _BrokenPool()  # its process died; the jobs it held are done (failed) already
    assert workers.free()  # so it looks free
    with pytest.raises(DeviceBusy):
        workers.submit(DeviceJob(()))
    assert not dead.alive and full.alive and workers.capacity == 2
    full.pool, full.futures = _BrokenPool(), []
    with pytest.raises(NoDeviceLeft):
        workers.submit(DeviceJob(()))
    workers.close()


class _DeadWorkerFoundLate:
    """Two workers as :class:`DeviceWorkers` has them, scripted: the first dies holding the first
    job (its future fails), and the build learns it only when it hands that worker the next job
    while the other is busy (``DeviceBusy``).  Jobs are computed for real on the CPU."""

    capacity, batches, lost_errors = 4, 0, (BrokenProcessPool,)

    def __init__(self):
        self.device = InProcessDevice("cpu")
        self.submitted: list[str] = []
        self.busy_once = True

    def free(self):
        return True

    def submit(self, job):
        if isinstance(job, VisualisationJob):  # after the transfers: nothing scripted
            return self.device.submit(job)
        name = job.tasks[0].name
        if not self.submitted:
            self.submitted.append(name)
            future = Future()
            future.set_exception(BrokenProcessPool("a process of the pool was terminated abruptly"))
            return future
        if self.busy_once:
            self.busy_once = False
            raise DeviceBusy("every device worker left is busy")
        self.submitted.append(name)
        return self.device.submit(job)

    def where(self, future):
        return "the worker on cpu (worker 1)"

    def lost(self, future):
        pass

    def close(self):
        pass


def test_the_runs_of_a_worker_found_dead_are_reported_and_the_waiting_job_runs_later(tmp_path):
    devices = _DeadWorkerFoundLate()
    gathered = _gather(tmp_path, devices, keep_going=True, extra_pairs="")
    assert devices.submitted == ["cat", "cup"]
    assert list(gathered.failed) == ["cat"] and "stopped unexpectedly" in gathered.failed["cat"]
    # The job that found every worker busy was handed out again, once, and finished.
    assert list(gathered.results) == ["cup"] and gathered.stages_computed["transfer"] == 1


def _drawn(tmp_path: Path, figures) -> dict:
    """Every run of the tiny study drawn by ``figures``: its figure set and files' bytes."""
    manifest = load_manifest(make_study(tmp_path / "study", size=32, steps=2))
    caches = Caches(tmp_path / "cache")
    try:
        gathered = Gatherer(
            manifest, caches, lambda: InProcessDevice("cpu"), lambda: figures, Silent(), False
        ).gather()
        return {
            name: (
                run.figures.layers,
                run.figures.digests,
                {inner: (run.folder / inner).read_bytes() for inner in run.figures.files},
            )
            for name, run in gathered.results.items()
        }
    finally:
        figures.close()
        caches.close()


def test_a_run_drawn_in_pieces_by_idle_figure_processes_is_the_run_drawn_whole(tmp_path):
    # Two processes and nothing else to draw: the first run is shared out between them, its
    # own files in one piece and each layer in another.
    pool = FigurePool(2)
    split = []
    submit = pool._submit
    pool._submit = lambda function, *args: split.append(args[1:]) or submit(function, *args)
    in_parts = _drawn(tmp_path / "parts", pool)
    assert (True, ()) in split
    layers = [piece[1][0] for piece in split if len(piece) == 2 and piece[1]]
    assert len(layers) == len(set(layers)) >= 2
    whole = _drawn(tmp_path / "whole", SerialFigures())
    assert in_parts.keys() == whole.keys() == {"cat", "cup"}
    for name in whole:
        layers, digests, files = in_parts[name]
        assert list(layers) == list(whole[name][0])  # the analysis's order
        assert layers == whole[name][0] and digests == whole[name][1]
        assert files.keys() == whole[name][2].keys() and files == whole[name][2]


def test_a_part_that_fails_fails_its_run():
    first, second = Future(), Future()
    whole = _joined([first, second], lambda parts: sum(parts))
    first.set_result(1)
    assert not whole.done()
    second.set_exception(BrokenProcessPool("killed"))
    with pytest.raises(BrokenProcessPool):
        whole.result(timeout=0)
    both = _joined([f := Future(), g := Future()], lambda parts: sum(parts))
    f.set_result(1)
    g.set_result(2)
    assert both.result(timeout=0) == 3
