"""The orchestrator: manifest -> every pair computed or taken from the cache -> pages -> site.

Two phases, as static site generators do it: first gather every run's stage results, computing
only what the cache lacks (:mod:`reportgen.pipeline`, on the executors of
:mod:`reportgen.executors`), then write the whole site into a staging folder and swap it in.
Nothing touches the site folder before the second phase succeeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from reportgen.archive import ArchivedRun, volumes
from reportgen.cache import default_cache_dir
from reportgen.compare import StyleComparison, digest as comparison_digest, keep as keep_comparisons, style_comparisons
from reportgen.errors import BuildError
from reportgen.executors import DeviceWorkers, check_device_choice, FigurePool, InProcessDevice, SerialFigures, default_figure_jobs
from reportgen.fingerprint import STAGE_VERSIONS
from reportgen.layout import GRAMS, NO_JEKYLL, NOT_FOUND, RECORD, ROLES, SITEMAP, distances_figure, image_file, in_run, run_dir, shared_between_runs
from reportgen.manifest import Manifest, load_manifest
from reportgen.pipeline import BuildProgress, Caches, Gathered, Gatherer, Silent
from reportgen.record import run_record
from reportgen.render import Renderer
from reportgen.site import build_pages, distances_as_table, not_found_page, sitemap
from reportgen.weight import LIMIT_BYTES, advice, describe as describe_weights, weigh
from reportgen.writer import SiteWriter, site_lock

log = logging.getLogger(__name__)

PAGES_WARNING_BYTES = 800_000_000  # GitHub Pages publishes sites of up to 1 GB


@dataclass
class BuildSummary:
    site_dir: Path
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stages_computed: dict[str, int] = field(default_factory=dict)  # stage -> entries computed
    phases: dict[str, float] = field(default_factory=dict)  # seconds of each phase of the build
    weights: dict[str, int] = field(default_factory=dict)  # bytes of the site, by kind of file
    warnings: list[str] = field(default_factory=list)
    pages: int = 0
    site_bytes: int = 0
    seconds: float = 0.0


def build(
    manifest_path: Path,
    site_dir: Path | None = None,
    *,
    device: str = "auto",
    jobs: int | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    ray_gpus: float = 1.0,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    keep_going: bool = False,
    strict: bool = False,
    base_url: str | None = None,
    progress: BuildProgress | None = None,
) -> BuildSummary:
    """Build the site of ``manifest_path`` into ``site_dir`` (default: ``site/`` in the working folder).

    ``device`` is ``auto`` (every CUDA device, else the CPU), ``cpu``, ``cuda`` (every CUDA
    device), ``cuda:N`` or a comma-separated list; ``jobs`` the number of processes drawing
    figures beside the transfers (default: the cores not feeding a GPU; 0: the build's own
    process).  ``executor="ray"`` runs transfers and figures on the Ray cluster at
    ``ray_address`` (default: a local one), ``ray_gpus`` GPUs per device worker.  ``strict`` turns every warning logged during the build into a failure (before
    anything is written); ``base_url`` (``https://user.github.io/repo/`` or ``/repo/``) is used only
    where relative links cannot serve: ``404.html``, canonical links and ``sitemap.xml``.
    """
    started = time.perf_counter()
    choice = ExecutorChoice(executor, device, jobs, ray_address, ray_gpus)
    choice.check()
    site_dir = (site_dir or Path("site")).absolute()
    summary = BuildSummary(site_dir)
    with _timed(summary, "manifest"):
        manifest = load_manifest(manifest_path)
    listener = progress or Silent()
    caches = Caches((cache_dir or default_cache_dir()) if use_cache else None)
    warnings = _WarningCounter()
    logging.getLogger("reportgen").addHandler(warnings)
    try:
        with _os_errors_reported(), site_lock(site_dir), _data_folder_lock(manifest, site_dir):
            # The executors are stopped (a Ray of the build's own shut down) before the site is
            # written: once it is swapped in, the build is done.
            with _timed(summary, "stages"), Executors(choice, manifest, listener) as executors:
                gathered = Gatherer(manifest, caches, executors.devices, executors.figures, listener, keep_going).gather()
            summary.computed, summary.cached, summary.failed = gathered.computed, gathered.cached, gathered.failed
            summary.stages_computed = gathered.stages_computed
            _write_site(manifest, gathered, caches, summary, base_url, lambda: _refuse_warnings(warnings) if strict else None)
    finally:
        logging.getLogger("reportgen").removeHandler(warnings)
        caches.close()
    summary.warnings = warnings.messages
    summary.seconds = time.perf_counter() - started
    return summary


@contextlib.contextmanager
def _os_errors_reported():
    """A file system error (a path that is a file, a full disk) becomes a one-line message."""
    try:
        yield
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        raise BuildError(f"{where}{error.strerror or error}; the previous site is unchanged") from None


class _WarningCounter(logging.Handler):
    """Remembers every warning logged under ``reportgen`` during one build (for ``--strict``)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _refuse_warnings(warnings: _WarningCounter) -> None:
    if warnings.messages:
        count = len(warnings.messages)
        raise BuildError(f"--strict: {count} warning{'s' if count != 1 else ''}; the previous site is unchanged:\n  " + "\n  ".join(warnings.messages))


@dataclass(frozen=True)
class ExecutorChoice:
    """Where a build's work runs (the command line's ``--executor``, ``--device``, ``--jobs``,
    ``--ray-address`` and ``--ray-gpus``)."""

    executor: str = "local"  # local | ray
    device: str = "auto"  # local builds: auto, cpu, cuda, cuda:N or a list
    jobs: int | None = None  # local builds: figure processes (None: the cores not feeding a GPU)
    ray_address: str | None = None  # ray: the cluster (None: a local one for the build)
    ray_gpus: float = 1.0  # ray: GPUs per device worker (0.5: two share a GPU)

    def check(self) -> None:
        """Refuse what names no executor or device before anything is computed."""
        if self.executor not in EXECUTORS:
            raise BuildError(f"--executor {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.executor == "ray":
            if self.device != "auto" or self.jobs is not None:
                raise BuildError("--device and --jobs choose local devices and processes; on Ray the cluster's resources decide (see --ray-gpus)")
            if not 0 < self.ray_gpus <= 64:
                raise BuildError(f"--ray-gpus {self.ray_gpus:g}: GPUs per device worker must be above 0 (0.5: two workers share a GPU)")
            from reportgen.ray_executor import require_ray

            require_ray()
        else:
            check_device_choice(self.device)


EXECUTORS = ("local", "ray")


class Executors:
    """The device and figure executors of one build, each made when first needed (a build whose
    transfers all come from the cache never imports torch, nor starts Ray), all stopped when the
    build ends; an error or Ctrl-C cancels what is still running."""

    def __init__(self, choice: ExecutorChoice, manifest: Manifest, listener: BuildProgress):
        self.choice = choice
        self.manifest = manifest
        self.listener = listener
        self.runs = {run.name: run for run in manifest.runs}
        self._devices = None
        self._figures = None
        self._cluster = None

    def _ray(self):
        from reportgen import ray_executor

        if self._cluster is None:
            self._cluster = ray_executor.RayCluster(self.choice.ray_address)
        return ray_executor

    def devices(self):
        if self._devices is None:
            if self.choice.executor == "ray":
                self._devices = self._ray().RayDevices(self.manifest, self.choice.ray_gpus)
                return self._devices
            from reportgen.ml.runtime import resolve_devices

            resolved = [str(d) for d in resolve_devices(self.choice.device)]
            if resolved == ["cpu"]:
                report = lambda name, phase, done, total: self.listener.phase(self.runs[name], phase, done, total)  # noqa: E731
                self._devices = InProcessDevice("cpu", report)
            else:
                self._devices = DeviceWorkers(resolved)
                self._devices.start()
        return self._devices

    def figures(self):
        if self._figures is None:
            if self.choice.executor == "ray":
                self._figures = self._ray().RayFigures()
                return self._figures
            gpu_workers = self._devices.batches if self._devices is not None else 0
            jobs = self.choice.jobs if self.choice.jobs is not None else default_figure_jobs(gpu_workers)
            self._figures = FigurePool(jobs) if jobs > 0 else SerialFigures()
        return self._figures

    def __enter__(self) -> "Executors":
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        try:
            if self._figures is not None:
                self._figures.close(cancel=error is not None)
            if self._devices is not None:
                self._devices.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


def _write_site(manifest: Manifest, gathered: Gathered, caches: Caches, summary: BuildSummary, base_url: str | None, before_commit: Callable[[], None]) -> None:
    """Phase two: stage every file of the new site (and of its data folder, with
    ``data: {folder: ...}``), then swap them in.

    Pages, archive volumes and figures of distances that an earlier build made for the same
    inputs are linked from the cache; those made now are kept in the cache once the site is
    swapped in, so a failed build leaves the cache as it was."""
    runs = {run.name: run for run in manifest.runs}
    with _timed(summary, "records"):
        records = {name: run_record(runs[name], manifest, r.transfer, r.analysis, r.figures) for name, r in gathered.results.items()}
        record_files = {name: json.dumps(record, indent=1) for name, record in records.items()}  # data/pair.json
    renderer = Renderer()
    with _timed(summary, "comparisons"):
        comparisons = style_comparisons(manifest, gathered.results, caches.distances())
    # (a file of the new site or data folder, where to keep it), once they are in place
    to_keep: list[tuple[Path, Path]] = []
    apart = manifest.data_folder is not None
    data_dir = manifest.data_folder if apart else summary.site_dir
    # The files of a run's folder that are data: with a data folder, they go there.
    data_files = {image_file(role) for role in ROLES} | ({GRAMS} if manifest.publish_grams else set()) if apart else set()
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(SiteWriter(summary.site_dir))
        data = stack.enter_context(SiteWriter(manifest.data_folder)) if apart else writer
        with _timed(summary, "files"):
            for name, results in gathered.results.items():
                # The Grams are in every run's folder; they are published only when asked for.
                skip = {GRAMS} | data_files if apart or not manifest.publish_grams else set()
                writer.copy_tree(results.folder, run_dir(name), skip=skip, shareable=shared_between_runs, digests=results.figures.digests)
                if apart:
                    data.copy_tree(results.folder, run_dir(name), keep=data_files)
                data.write(in_run(name, RECORD), record_files[name])
        downloads = []
        with _timed(summary, "archive"):
            if records and manifest.publish_archive:
                archived = [ArchivedRun(name, results.folder, record_files[name]) for name, results in gathered.results.items()]
                downloads = volumes(archived, manifest.publish_grams, caches.archives(), data.path)
                for volume in downloads:
                    if volume.new:
                        to_keep.append((data_dir / volume.site_path, volume.kept))
                    else:
                        data.link(volume.site_path, volume.file)
        with _timed(summary, "comparisons"):
            to_keep += [(summary.site_dir / path, kept) for path, kept in _distance_figures(comparisons, caches.distances(), writer)]
        with _timed(summary, "pages"):
            for site_path, source in renderer.static_files():
                writer.write(site_path, source.read_bytes())
            pages = build_pages(manifest, records, summary.failed, comparisons, downloads, _data_base(manifest, summary.site_dir))
            pages.append(not_found_page(manifest))
            rendered = _RenderedPages(renderer, writer.aliases, base_url, caches.pages())
            for page in pages:
                to_keep += [(summary.site_dir / path, kept) for path, kept in rendered.write(page, writer)]
            writer.write(NO_JEKYLL, "")
            if base_url and base_url.startswith(("http://", "https://")):  # a sitemap needs absolute URLs
                writer.write(SITEMAP, sitemap(base_url, [page.path for page in pages if page.path != NOT_FOUND]))
        with _timed(summary, "commit"):
            _weigh(manifest, writer, summary)
            before_commit()
            # Both prepared before either is swapped in: a full disk leaves both as they were.
            for prepared in (data, writer) if apart else (writer,):
                prepared.prepare()
            if apart:
                data.swap()
            writer.swap()
    summary.pages = len(pages)
    if caches.root is not None:
        with _timed(summary, "commit"):
            keep_comparisons(comparisons, caches.distances())
            for written, kept in to_keep:
                _keep_file(written, kept)


def _data_base(manifest: Manifest, site_dir: Path) -> str | None:
    """Where the pages link the data files when they are not in the site: the manifest's
    ``data.url``, or the data folder's path from the site's root."""
    if manifest.data_folder is None:
        return None
    return manifest.data_url or Path(os.path.relpath(manifest.data_folder, site_dir)).as_posix() + "/"


def _weigh(manifest: Manifest, writer: SiteWriter, summary: BuildSummary) -> None:
    """What the staged site weighs, by kind; a warning, with the settings that would help, when
    it nears GitHub Pages' limit."""
    content_layers = {run_dir(run.name): run.params.content_layer for run in manifest.runs}
    summary.weights, beyond_content = weigh(writer.staging, content_layers)
    summary.site_bytes = sum(summary.weights.values())
    if summary.site_bytes > PAGES_WARNING_BYTES:
        log.warning(
            "the site weighs %.0f MB (%s); GitHub Pages publishes up to %.0f MB. In the manifest: %s",
            summary.site_bytes / 1e6, describe_weights(summary.weights), LIMIT_BYTES / 1e6, "; ".join(advice(summary.weights, beyond_content)),
        )


@contextlib.contextmanager
def _timed(summary: BuildSummary, phase: str):
    """Add the seconds of the block to ``summary.phases[phase]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        summary.phases[phase] = summary.phases.get(phase, 0.0) + time.perf_counter() - started


@contextlib.contextmanager
def _data_folder_lock(manifest: Manifest, site_dir: Path):
    """The data folder's own lock, when the data go apart from the site (not inside it)."""
    folder = manifest.data_folder
    if folder is None:
        yield
        return
    if folder == site_dir or folder.is_relative_to(site_dir) or site_dir.is_relative_to(folder):
        raise BuildError(f"data.folder {folder} and the site folder {site_dir} must be apart, neither inside the other")
    with site_lock(folder):
        yield


def _keep_file(source: Path, kept: Path) -> None:
    """Keep a file of the new site in the cache (a hard link where possible); a cache that
    cannot take it only costs the next build the time to make it again."""
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        partial = kept.with_name(f".{kept.name}.partial")
        try:
            os.link(source, partial)
        except OSError:
            shutil.copy2(source, partial)
        partial.replace(kept)
    except OSError as error:
        log.info("could not keep %s in the cache: %s", kept.name, error)


class _RenderedPages:
    """Pages rendered once and kept: a page whose template files, context, links to shared files
    and base URL are those of a page rendered before is taken from the cache (a rebuild of a
    large study renders only the pages that changed; rendering is most of its time)."""

    def __init__(self, renderer: Renderer, aliases: dict[str, str], base_url: str | None, keep_in: Path):
        self.renderer, self.aliases, self.base_url, self.keep_in = renderer, aliases, base_url, keep_in
        self.common = json.dumps([renderer.digest(), sorted(aliases.items()), base_url])

    def write(self, page, writer: SiteWriter) -> list[tuple[str, Path]]:
        """Put ``page`` into the site; returns what to keep once the site is in place."""
        payload = json.dumps([self.common, page.template, page.path, page.context], sort_keys=True, default=str)
        kept = self.keep_in / f"{hashlib.sha256(payload.encode()).hexdigest()}.html"
        if kept.is_file():
            writer.link(page.path, kept)
            return []
        writer.write(page.path, self.renderer.render(page.template, page.path, page.context, self.aliases, self.base_url))
        return [(page.path, kept)]


def _distance_figures(comparisons: dict[str, StyleComparison], keep_in: Path, writer: SiteWriter) -> list[tuple[str, Path]]:
    """The clustered distance figure of each layer whose page shows one (a study of more style
    images than a table can show): linked from the cache for these styles and distances, or
    drawn; returns what to keep once the site is in place."""
    to_keep = []
    for layer, comparison in comparisons.items():
        if distances_as_table(comparison):
            continue
        site_path = distances_figure(layer)
        # Drawn by the figures' code: a new version of it draws them again.
        kept = keep_in / f"{layer}-{comparison_digest(comparison)}-figures{STAGE_VERSIONS['figures']}.webp"
        if kept.is_file():
            writer.link(site_path, kept)
            continue
        from reportgen.figures import distance_clustermap  # matplotlib, only when drawing

        distance_clustermap(comparison.matrix, comparison.order, comparison.merges, layer, writer.path(site_path))
        to_keep.append((site_path, kept))
    return to_keep
