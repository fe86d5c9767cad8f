"""Phase one of a build: every stage of every run, taken from the cache or computed.

Runs are looked up stage by stage (:mod:`reportgen.stages.cache`); what is missing becomes work:

* device jobs (:mod:`reportgen.stages.jobs`): transfers, batched where a GPU can share them, and the
  analyses of their results; a transfer found in the cache is sent along so that only its
  analyses run;
* figure tasks: a run's folder drawn from its transfer and analysis, in the figure processes,
  as soon as both are at hand, while the devices go on with the next transfers.

A stage computed anew makes every later stage of its runs computed anew too: a cached analysis
is only trusted beside the cached transfer it was made from.  Runs that share a key (a pair
listed twice, variants differing only in ``top_pairs``) share the work.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reportgen.errors import ReportgenError
from reportgen.manifest import Manifest, RunSpec
from reportgen.stages.cache import STAGES, Caches, RunKeys, run_keys
from reportgen.stages.fingerprint import file_sha256, weights_fingerprint
from reportgen.stages.jobs import (
    AnalysisTask,
    DeviceBusy,
    DeviceJob,
    Devices,
    FigureJob,
    Figures,
    NoDeviceLeft,
    TaskOutcome,
    TransferTask,
    load_inputs,
)
from reportgen.stages.results import AnalysisResult, FigureSet, TransferResult
from reportgen.stages.visualisations import (
    CPU_BATCH,
    GPU_BATCH,
    FilterImage,
    FilterKey,
    Network,
    VisualisationBatch,
    VisualisationCache,
    VisualisationJob,
    estimated_seconds,
    jobs_for,
    resolved_settings,
    wanted_filters,
)

log = logging.getLogger(__name__)

RUN_FOLDER = "run"  # inside a figures entry: the run's folder as it is copied into the site
MAX_BATCH = 16  # runs optimised together on a GPU; more rarely pays and risks running out of memory


class BuildProgress(Protocol):
    """What the CLI hears of a build (library code never prints).  ``work`` is the first stage a
    run computes (``transfer``, ``analysis`` or ``figures``), or ``cached``."""

    def run_started(self, run: RunSpec, position: int, count: int, work: str) -> None: ...

    def phase(self, run: RunSpec, phase: str, done: int, total: int) -> None: ...

    def run_finished(self, run: RunSpec, work: str, seconds: float, error: str | None) -> None: ...

    def visualisations(self, filters: int, layers: int, estimate: float) -> None:
        """``filters`` of ``layers`` layers are about to be visualised, in about ``estimate``
        seconds."""
        ...

    def visualised(self, done: int, total: int) -> None: ...


class Silent:
    def run_started(self, run: RunSpec, position: int, count: int, work: str) -> None:
        pass

    def phase(self, run: RunSpec, phase: str, done: int, total: int) -> None:
        pass

    def run_finished(self, run: RunSpec, work: str, seconds: float, error: str | None) -> None:
        pass

    def visualisations(self, filters: int, layers: int, estimate: float) -> None:
        pass

    def visualised(self, done: int, total: int) -> None:
        pass


@dataclass(frozen=True)
class Analysed:
    """A run's transfer and analysis: all a notebook reads (the figures come with a site)."""

    transfer: TransferResult
    analysis: AnalysisResult


@dataclass(frozen=True)
class RunResults:
    """Every stage of one run, and its folder of files for the site."""

    transfer: TransferResult
    analysis: AnalysisResult
    figures: FigureSet
    folder: Path


@dataclass
class Gathered:
    """What phase one leaves for phase two."""

    results: dict[str, RunResults]  # run name -> its stages, for every run that did not fail
    computed: list[str]  # runs with at least one stage computed in this build
    # runs taken whole from the cache (or from a run of this build with equal keys)
    cached: list[str]
    failed: dict[str, str]  # run name -> why
    stages_computed: dict[str, int]  # stage -> entries computed in this build
    # Every filter the study visualises, and its image (None: it could not be made).
    filters: dict[FilterKey, FilterImage | None] = dataclasses.field(default_factory=dict)
    visualised: int = 0  # filters visualised in this build (the others came from the cache)
    # Every run that did not fail, whether or not its figures were drawn (see Gatherer's draw).
    analysed: dict[str, Analysed] = dataclasses.field(default_factory=dict)


@dataclass
class _Analysis:
    """One analysis key, the runs it serves and what is known of it."""

    key: str
    keys: RunKeys
    runs: list[RunSpec]
    result: AnalysisResult | None = None
    figures: tuple[FigureSet, Path] | None = None


@dataclass
class _Transfer:
    """One transfer key and its analyses."""

    key: str
    analyses: dict[str, _Analysis]
    result: TransferResult | None = None

    @property
    def runs(self) -> list[RunSpec]:
        return [run for analysis in self.analyses.values() for run in analysis.runs]


class Gatherer:
    """Runs phase one for one manifest; see the module docstring.

    ``draw`` False stops after the analyses: no figures and no feature visualisations, as a
    notebook wants them (a site built later draws them from the same cached stages).
    """

    def __init__(
        self,
        manifest: Manifest,
        caches: Caches,
        devices: Callable[[], Devices],
        figures: Callable[[], Figures],
        listener: BuildProgress,
        keep_going: bool,
        draw: bool = True,
    ):
        self.manifest = manifest
        self.draw = draw
        self.caches = caches
        self.devices = (
            devices  # made when first called: a build with nothing to compute loads no network
        )
        self.figures = figures
        self.listener = listener
        self.keep_going = keep_going
        self.positions = {run.name: position for position, run in enumerate(manifest.runs)}
        self.started: dict[str, float] = {}
        self.work: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self.finished: set[str] = set()
        self.stages_computed = dict.fromkeys(STAGES, 0)
        self.visualised = 0
        self.visualisation_cache = VisualisationCache(caches.visualisations())
        self.filters: dict[FilterKey, FilterImage | None] = {}

    # ---- planning ---------------------------------------------------------------------------

    def _plan(self) -> list[_Transfer]:
        transfers: dict[str, _Transfer] = {}
        for run in self.manifest.runs:
            keys = run_keys(
                file_sha256(run.pair.content),
                tuple(file_sha256(style) for style in run.pair.styles),
                run.params,
                weights_fingerprint(run.params.weights),
                self.manifest.figures,
                tuple(file_sha256(mask) for mask in run.pair.masks),
            )
            transfer = transfers.setdefault(keys.transfer, _Transfer(keys.transfer, {}))
            transfer.analyses.setdefault(
                keys.analysis, _Analysis(keys.analysis, keys, [])
            ).runs.append(run)
        for transfer in transfers.values():
            cached_transfer = self.caches.transfer.lookup(transfer.key)
            transfer.result = cached_transfer[1] if cached_transfer else None
            for analysis in transfer.analyses.values():
                if transfer.result is None:
                    continue  # a new transfer: its analyses and figures are made anew
                cached_analysis = self.caches.analysis.lookup(analysis.key)
                analysis.result = cached_analysis[1] if cached_analysis else None
                if analysis.result is not None:
                    drawn = self.caches.figures.lookup(analysis.keys.figures)
                    analysis.figures = (drawn[1], drawn[0] / RUN_FOLDER) if drawn else None
        return list(transfers.values())

    # ---- the run ----------------------------------------------------------------------------

    def gather(self) -> Gathered:
        plan = self._plan()
        count = len(self.manifest.runs)
        tasks: list[TransferTask] = []
        figure_work: list[tuple[_Transfer, _Analysis]] = []
        for transfer in plan:
            missing = [a for a in transfer.analyses.values() if a.result is None]
            for analysis in transfer.analyses.values():
                first_stage = (
                    "transfer"
                    if transfer.result is None
                    else "analysis"
                    if analysis.result is None
                    else "figures"
                    if analysis.figures is None and self.draw
                    else "cached"
                )
                for run in analysis.runs:
                    self.work[run.name] = first_stage
            if transfer.result is None or missing:
                tasks.append(self._task(transfer, missing))
            figure_work += [
                (transfer, a)
                for a in transfer.analyses.values()
                if a.result is not None and a.figures is None and self.draw
            ]
        # Runs with nothing to compute are reported first, in manifest order.
        for run in self.manifest.runs:
            if self.work[run.name] == "cached":
                self.listener.run_started(run, self.positions[run.name], count, "cached")
                self._finish(run, None)
        self._transfers = {transfer.key: transfer for transfer in plan}
        self._figure_futures: dict[Future, tuple[_Analysis, Path]] = {}  # -> the folder it draws in
        if self.draw and (tasks or figure_work):
            self.figures().start()  # figure processes get ready while the first transfer runs
        for transfer, analysis in figure_work:
            self._draw(transfer, analysis)
        try:
            if tasks:
                self._run_jobs(deque(self._jobs(tasks)))
            if self.draw:
                self._visualise(plan)
            self._wait_for_figures(block=True)
        except BaseException:
            # A failed or interrupted build keeps nothing half drawn: the drawing stops first,
            # so that no figure process writes into a folder after it is removed.
            if self._figure_futures:
                self.figures().close(cancel=True)
            for future, (_, folder) in self._figure_futures.items():
                future.cancel()
                self.caches.figures.discard(folder)
            raise
        return self._gathered(plan)

    def _task(self, transfer: _Transfer, missing: list[_Analysis]) -> TransferTask:
        analyses = tuple(AnalysisTask(a.key, a.runs[0].params) for a in missing)
        return TransferTask(transfer.key, transfer.runs[0], None, transfer.result, analyses)

    def _with_inputs(self, job: DeviceJob) -> DeviceJob | None:
        """``job`` with its images read; a task whose images cannot be used fails here (its
        runs are reported) and the others go on.  ``None`` if no task is left."""
        tasks = []
        for task in job.tasks:
            if task.cached is not None or task.inputs is not None:  # nothing to read, or read
                tasks.append(task)
                continue
            try:
                tasks.append(dataclasses.replace(task, inputs=load_inputs(task.run)))
            except ReportgenError as error:
                self._fail(self._transfers[task.key].runs, error.message)
        return DeviceJob(tuple(tasks)) if tasks else None

    def _jobs(self, tasks: list[TransferTask]) -> list[DeviceJob]:
        """Tasks into device jobs: on GPUs, transfers that can share a batch go together, in
        batches small enough that every worker gets some."""
        workers = self.devices().batches
        if not workers:
            return [DeviceJob((task,)) for task in tasks]
        groups: dict[tuple, list[TransferTask]] = {}
        for task in tasks:
            signature = task.batch_signature() if task.cached is None else ("analysis only",)
            groups.setdefault(signature, []).append(task)
        jobs = []
        for group in groups.values():
            # Small enough that every worker gets a batch, large enough to fill a GPU.
            size = max(1, min(MAX_BATCH, math.ceil(len(group) / workers)))
            jobs += [
                DeviceJob(tuple(group[start : start + size]))
                for start in range(0, len(group), size)
            ]
        return jobs

    def _run_jobs(self, pending: deque[DeviceJob]) -> None:
        devices = self.devices()
        running: dict[Future, DeviceJob] = {}
        while pending or running:
            while pending and len(running) < devices.capacity and devices.free():
                planned = pending.popleft()
                self._start(self._runs_of(planned))
                job = self._with_inputs(planned)
                if job is None:
                    continue
                try:
                    running[devices.submit(job)] = job
                except NoDeviceLeft as error:
                    pending.appendleft(job)
                    self._fail_all(pending, str(error))
                except DeviceBusy:
                    pending.appendleft(job)  # handed out again once a running job is done
                    break
            if not running:
                self._fail_all(pending, "every device worker has stopped")
                break
            done, _ = wait([*running, *self._figure_futures], return_when=FIRST_COMPLETED)
            for future in done:
                if future in running:
                    self._job_done(running.pop(future), future)
            self._wait_for_figures(block=False)

    # ---- feature visualisations -------------------------------------------------------------

    def _visualise(self, plan: list[_Transfer]) -> None:
        """Every filter the study visualises: from the cache, or made on the devices (in jobs of
        one layer each) while the figures are drawn."""
        options = self.manifest.visualisation
        analysed = [
            (Network(analysis.runs[0].params.weights, analysis.runs[0].params.activation), result)
            for transfer in plan
            for analysis in transfer.analyses.values()
            if (result := analysis.result) is not None
        ]
        missing = []
        for key in wanted_filters(self.manifest, analysed):
            found = self.visualisation_cache.lookup(key.network, options, key.layer, key.index)
            self.filters[key] = found
            if found is None:
                missing.append(key)
        if not missing:
            return
        devices = self.devices()
        on_gpu = bool(devices.batches)
        settings = resolved_settings(options, on_gpu)
        jobs = deque(jobs_for(missing, options, settings, GPU_BATCH if on_gpu else CPU_BATCH))
        self.listener.visualisations(
            len(missing),
            len({(key.network, key.layer) for key in missing}),
            estimated_seconds(missing, settings, on_gpu),
        )
        done = 0
        running: dict[Future, VisualisationJob] = {}
        while jobs or running:
            while jobs and len(running) < devices.capacity and devices.free():
                job = jobs.popleft()
                try:
                    running[devices.submit(job)] = job
                except DeviceBusy:
                    jobs.appendleft(job)
                    break
                except NoDeviceLeft as error:
                    jobs.appendleft(job)
                    self._visualisations_failed(list(jobs), str(error))
                    jobs.clear()
            if not running:
                # As for the transfers: jobs no worker can take are said, not dropped.
                self._visualisations_failed(list(jobs), "every device worker has stopped")
                break
            finished, _ = wait([*running, *self._figure_futures], return_when=FIRST_COMPLETED)
            for future in finished:
                if future not in running:
                    continue
                job = running.pop(future)
                try:
                    batch: VisualisationBatch = future.result()
                except devices.lost_errors:
                    where = devices.where(future)
                    devices.lost(future)
                    self._visualisations_failed([job], f"{where} stopped unexpectedly")
                    continue
                except ReportgenError as error:
                    self._visualisations_failed([job], error.message)
                    continue
                for k, image in self.visualisation_cache.store(job, batch).items():
                    self.filters[FilterKey(job.network, job.layer, k)] = image
                self.visualised += len(job.filters)
                done += len(job.filters)
                self.listener.visualised(done, len(missing))
            self._wait_for_figures(block=False)

    def _visualisations_failed(self, jobs: list[VisualisationJob], why: str) -> None:
        """Pages go without these visualisations; the build says so (a warning: ``--strict``
        refuses it)."""
        for job in jobs:
            log.warning(
                "could not visualise %d filter%s of %s: %s; their pages show none",
                len(job.filters),
                "s" if len(job.filters) != 1 else "",
                job.layer,
                why,
            )

    def _runs_of(self, job: DeviceJob) -> list[RunSpec]:
        return [run for task in job.tasks for run in self._transfers[task.key].runs]

    def _fail_all(self, pending: deque[DeviceJob], message: str) -> None:
        while pending:
            job = pending.popleft()
            self._start(self._runs_of(job))
            self._fail(self._runs_of(job), message)

    def _job_done(self, job: DeviceJob, future: Future) -> None:
        devices = self.devices()
        try:
            outcomes = future.result()
        except devices.lost_errors:
            where = devices.where(future)
            devices.lost(future)
            outcomes = [
                TaskOutcome(
                    task.key,
                    error=f"{where} stopped unexpectedly (killed, or out of memory) before "
                    "finishing it",
                )
                for task in job.tasks
            ]
        for outcome in outcomes:
            transfer = self._transfers[outcome.key]
            if outcome.error is not None:
                self._fail(transfer.runs, outcome.error)
                continue
            # Kept from here on as their entries, whose arrays are read when a stage needs them:
            # a study's pixels and tiles do not all stay in this process's memory.
            if outcome.transfer is not None:
                entry = self.caches.transfer.store(transfer.key, outcome.transfer.save)
                self.stages_computed["transfer"] += 1
                transfer.result = TransferResult.load(entry)
            for key, result in (outcome.analyses or {}).items():
                entry = self.caches.analysis.store(key, result.save)
                self.stages_computed["analysis"] += 1
                analysis = transfer.analyses[key]
                analysis.result = AnalysisResult.load(entry)
                if self.draw:
                    self._draw(transfer, analysis)
                else:
                    for run in analysis.runs:
                        self._finish(run, None)

    def _draw(self, transfer: _Transfer, analysis: _Analysis) -> None:
        assert transfer.result is not None and analysis.result is not None  # drawn from both
        folder = self.caches.figures.reserve(analysis.keys.figures)
        (folder / RUN_FOLDER).mkdir()
        self._start(analysis.runs)
        job = FigureJob(
            transfer.result,
            analysis.result,
            analysis.runs[0].params,
            self.manifest.figures,
            folder / RUN_FOLDER,
        )
        future = self.figures().submit(job)
        self._figure_futures[future] = (analysis, folder)

    def _wait_for_figures(self, block: bool) -> None:
        while self._figure_futures:
            done, _ = wait(
                list(self._figure_futures),
                timeout=None if block else 0,
                return_when=FIRST_COMPLETED,
            )
            if not done:
                return
            for future in done:
                analysis, work = self._figure_futures.pop(future)
                try:
                    figures = future.result()
                except self.figures().lost_errors:
                    self.caches.figures.discard(work)
                    self._fail(
                        analysis.runs,
                        "a figure process stopped unexpectedly (killed, or out of memory) while "
                        "drawing it",
                    )
                    continue
                except ReportgenError as error:
                    self.caches.figures.discard(work)
                    self._fail(analysis.runs, error.message)
                    continue
                except BaseException:
                    self.caches.figures.discard(work)
                    raise
                figures.save(work)
                entry = self.caches.figures.commit(analysis.keys.figures, work)
                self.stages_computed["figures"] += 1
                analysis.figures = (figures, entry / RUN_FOLDER)
                for run in analysis.runs:
                    self._finish(run, None)

    # ---- bookkeeping ------------------------------------------------------------------------

    def _start(self, runs: list[RunSpec]) -> None:
        for run in runs:
            if run.name not in self.started:
                self.started[run.name] = time.perf_counter()
                self.listener.run_started(
                    run, self.positions[run.name], len(self.positions), self.work[run.name]
                )

    def _finish(self, run: RunSpec, error: str | None) -> None:
        if run.name in self.finished:
            return
        self.finished.add(run.name)
        seconds = time.perf_counter() - self.started.get(run.name, time.perf_counter())
        self.listener.run_finished(run, self.work[run.name], seconds, error)

    def _fail(self, runs: list[RunSpec], message: str) -> None:
        for run in runs:
            self.failed[run.name] = message
            self._finish(run, message)
        if not self.keep_going:
            run = runs[0]
            # A pair given in Python (reportgen.transfer) has no line.
            line = f" (line {run.pair.line})" if run.pair.line else ""
            raise ReportgenError(f"pair '{run.name}'{line}: {message}")

    def _gathered(self, plan: list[_Transfer]) -> Gathered:
        results: dict[str, RunResults] = {}
        analysed: dict[str, Analysed] = {}
        shared_with: dict[str, str] = {}  # run name -> its analysis key (equal keys: one entry)
        for transfer in plan:
            for analysis in transfer.analyses.values():
                if transfer.result is not None and analysis.result is not None:
                    for run in analysis.runs:
                        if run.name not in self.failed:
                            analysed[run.name] = Analysed(transfer.result, analysis.result)
                            shared_with[run.name] = analysis.key
                if analysis.figures is None:
                    continue
                figures, folder = analysis.figures
                assert transfer.result is not None and analysis.result is not None  # drawn from
                for run in analysis.runs:
                    results[run.name] = RunResults(
                        transfer.result, analysis.result, figures, folder
                    )
        computed, cached = [], []
        folders_seen: set[Path | str] = set()
        for run in self.manifest.runs:
            if run.name not in (results if self.draw else analysed):
                continue
            # Runs with equal keys share their stages (and their folder): computed once.
            shared = results[run.name].folder if self.draw else shared_with[run.name]
            if self.work[run.name] != "cached" and shared not in folders_seen:
                computed.append(run.name)
            else:
                cached.append(run.name)
            folders_seen.add(shared)
        ordered = {run.name: results[run.name] for run in self.manifest.runs if run.name in results}
        return Gathered(
            ordered,
            computed,
            cached,
            dict(self.failed),
            self.stages_computed,
            dict(self.filters),
            self.visualised,
            {run.name: analysed[run.name] for run in self.manifest.runs if run.name in analysed},
        )
