"""The orchestrator: manifest -> every pair computed or taken from the cache -> pages -> site.

Two phases, as static site generators do it: first gather every pair's results (computing only
what the cache lacks), then write the whole site into a staging folder and swap it in.  Nothing
touches the site folder before the second phase succeeds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from reportgen.compare import style_distances
from reportgen.cache import ResultCache, default_cache_dir, pair_key
from reportgen.errors import BuildError, ReportgenError
from reportgen.fingerprint import file_sha256, weights_fingerprint
from reportgen.layout import ARCHIVE, GRAMS, NO_JEKYLL, NOT_FOUND, RECORD, ROLES, SITEMAP, image_file, in_run, run_dir, shared_between_runs
from reportgen.manifest import Manifest, Run, load_manifest
from reportgen.render import Renderer
from reportgen.site import build_pages, not_found_page, sitemap
from reportgen.writer import SiteWriter, site_lock

log = logging.getLogger(__name__)

PAGES_WARNING_BYTES = 800_000_000  # GitHub Pages publishes sites of up to 1 GB


class BuildProgress(Protocol):
    """What the CLI hears of a build (library code never prints)."""

    def run_started(self, run: Run, position: int, count: int, cached: bool) -> None: ...

    def phase(self, run: Run, phase: str, done: int, total: int) -> None: ...

    def run_finished(self, run: Run, cached: bool, seconds: float, error: str | None) -> None: ...


class _Silent:
    def run_started(self, run: Run, position: int, count: int, cached: bool) -> None:
        pass

    def phase(self, run: Run, phase: str, done: int, total: int) -> None:
        pass

    def run_finished(self, run: Run, cached: bool, seconds: float, error: str | None) -> None:
        pass


@dataclass
class BuildSummary:
    site_dir: Path
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pages: int = 0
    site_bytes: int = 0
    seconds: float = 0.0


class _LazyRuntime:
    """Imports torch and loads networks only when a pair actually has to be computed."""

    def __init__(self, device: str):
        self.device_choice = device
        self._runtime = None

    def get(self):
        if self._runtime is None:
            from reportgen.ml.runtime import Runtime, resolve_device

            self._runtime = Runtime(resolve_device(self.device_choice))
        return self._runtime


def build(
    manifest_path: Path,
    site_dir: Path | None = None,
    *,
    device: str = "auto",
    cache_dir: Path | None = None,
    use_cache: bool = True,
    keep_going: bool = False,
    strict: bool = False,
    base_url: str | None = None,
    progress: BuildProgress | None = None,
) -> BuildSummary:
    """Build the site of ``manifest_path`` into ``site_dir`` (default: ``site/`` in the working folder).

    ``strict`` turns every warning logged during the build into a failure (before anything is
    written); ``base_url`` (``https://user.github.io/repo/`` or ``/repo/``) is used only where
    relative links cannot serve: ``404.html``, canonical links and ``sitemap.xml``.
    """
    started = time.perf_counter()
    manifest = load_manifest(manifest_path)
    site_dir = (site_dir or Path("site")).absolute()
    listener = progress or _Silent()
    summary = BuildSummary(site_dir)
    cache = ResultCache((cache_dir or default_cache_dir()) if use_cache else None)
    runtime = _LazyRuntime(device)
    warnings = _WarningCounter()
    logging.getLogger("reportgen").addHandler(warnings)
    try:
        with _os_errors_reported(), site_lock(site_dir):
            entries = _gather(manifest, cache, runtime, listener, keep_going, summary)
            _write_site(manifest, entries, summary, base_url, lambda: _refuse_warnings(warnings) if strict else None)
    finally:
        logging.getLogger("reportgen").removeHandler(warnings)
        cache.close()
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


def _gather(manifest: Manifest, cache: ResultCache, runtime: _LazyRuntime, listener: BuildProgress, keep_going: bool, summary: BuildSummary) -> dict[str, Path]:
    """Phase one: a finished entry folder for every run (pair or variant) that did not fail."""
    entries: dict[str, Path] = {}
    runs = manifest.runs
    keys = {
        run.name: pair_key(file_sha256(run.pair.content), file_sha256(run.pair.style), run.params, weights_fingerprint(run.params.weights))
        for run in runs
    }
    found = {run.name: cache.lookup(keys[run.name]) for run in runs}
    # Runs with equal keys (a pair listed twice, a variant that changes nothing) are computed once.
    first_of_key: dict[str, Run] = {}
    for run in runs:
        if found[run.name] is None:
            first_of_key.setdefault(keys[run.name], run)
    batched = _batched_transfers(list(first_of_key.values()), runtime, listener)
    computed: dict[str, Path] = {}
    failed: dict[str, str] = {}  # key -> message, so a duplicate of a failed run is not retried
    for position, run in enumerate(runs):
        key = keys[run.name]
        entry = found[run.name] or computed.get(key)
        listener.run_started(run, position, len(runs), entry is not None)
        started = time.perf_counter()
        if entry is not None:
            summary.cached.append(run.name)
            entries[run.name] = entry
            listener.run_finished(run, True, time.perf_counter() - started, None)
            continue
        try:
            if key in failed:
                raise ReportgenError(failed[key])
            entries[run.name] = computed[key] = cache.store(key, lambda folder, run=run: _compute(run, manifest, runtime, listener, folder, batched))
        except ReportgenError as error:
            failed[key] = error.message
            listener.run_finished(run, False, time.perf_counter() - started, error.message)
            if not keep_going:
                raise ReportgenError(f"pair '{run.name}' (line {run.pair.line}): {error.message}") from None
            summary.failed[run.name] = error.message
            continue
        summary.computed.append(run.name)
        listener.run_finished(run, False, time.perf_counter() - started, None)
    return entries


MAX_BATCH = 16  # runs optimised together on a GPU; more rarely pays and risks running out of memory


def _batched_transfers(pending: list[Run], runtime: _LazyRuntime, listener: BuildProgress) -> dict[str, tuple]:
    """On a GPU, the transfers of pending runs that can share a batch, computed together.

    Returns ``{run name: (prepared run, transfer output, batch size)}``.  On the CPU batching
    gains nothing, so nothing is done here; a batch that fails is left to the runs one by one,
    which report their own errors.
    """
    if len(pending) < 2:
        return {}
    live = runtime.get()
    if live.device.type != "cuda":
        return {}
    from reportgen.ml.pair import out_of_memory_reported, prepare_run, transfer_runs

    groups: dict[tuple, list] = {}
    for run in pending:
        try:
            prepared = prepare_run(run, live)
        except ReportgenError:
            continue  # reported when the run is computed on its own
        groups.setdefault(prepared.batch_key, []).append(prepared)
    done: dict[str, tuple] = {}
    for group in groups.values():
        for start in range(0, len(group), MAX_BATCH):
            batch = group[start : start + MAX_BATCH]
            if len(batch) < 2:
                continue
            listener.phase(batch[0].run, f"transfer of {len(batch)} runs at once", 0, batch[0].settings.steps)
            try:
                with out_of_memory_reported(batch[0].run, len(batch)):
                    outputs = transfer_runs(batch, live, lambda phase, done_steps, total: listener.phase(batch[0].run, phase, done_steps, total))
            except ReportgenError as error:
                log.warning("a batch of %d runs failed (%s); computing them one at a time", len(batch), error.message)
                continue
            for prepared, output in zip(batch, outputs):
                done[prepared.run.name] = (prepared, output, len(batch))
    return done


def _compute(run: Run, manifest: Manifest, runtime: _LazyRuntime, listener: BuildProgress, folder: Path, batched: dict[str, tuple]) -> None:
    from reportgen.ml.pair import compute_run, finish_run

    from reportgen.ml.pair import out_of_memory_reported

    report = lambda phase, done, total: listener.phase(run, phase, done, total)  # noqa: E731
    with out_of_memory_reported(run):
        if run.name in batched:
            prepared, output, batch_size = batched.pop(run.name)
            finish_run(prepared, output, manifest, runtime.get(), folder, report, batch_size)
        else:
            compute_run(run, manifest, runtime.get(), folder, report)


def _write_site(manifest: Manifest, entries: dict[str, Path], summary: BuildSummary, base_url: str | None, before_commit: Callable[[], None]) -> None:
    """Phase two: stage every file of the new site, then swap it in."""
    records = {}
    for run in manifest.runs:
        if run.name not in entries:
            continue
        record = json.loads((entries[run.name] / RECORD).read_text())
        record.update(run.labels)  # names and notes as the manifest has them now
        # The same bytes under another name hit the cache: show the names the manifest uses now.
        record["inputs"]["content"]["file"] = manifest.relative(run.pair.content)
        record["inputs"]["style"]["file"] = manifest.relative(run.pair.style)
        record["parameters"]["weights"] = manifest.weights_as_written(run.params.weights)
        records[run.name] = record
    renderer = Renderer()
    comparisons = style_distances(records, entries)
    pages = build_pages(manifest, records, summary.failed, comparisons)
    pages.append(not_found_page(manifest))
    with SiteWriter(summary.site_dir) as writer:
        for name, entry in entries.items():
            # The record is written as this build labels it; the Grams only when published.
            skip = {RECORD} if manifest.publish_grams else {RECORD, GRAMS}
            writer.copy_tree(entry, run_dir(name), skip=skip, shareable=shared_between_runs)
            writer.write(in_run(name, RECORD), json.dumps(records[name], indent=1))
        for site_path, source in renderer.static_files():
            writer.write(site_path, source.read_bytes())
        for page in pages:
            writer.write(page.path, renderer.render(page.template, page.path, page.context, writer.aliases, base_url))
        writer.write(NO_JEKYLL, "")
        if base_url and base_url.startswith(("http://", "https://")):  # a sitemap needs absolute URLs
            writer.write(SITEMAP, sitemap(base_url, [page.path for page in pages if page.path != NOT_FOUND]))
        if records and manifest.publish_archive:
            writer.write(ARCHIVE, _data_archive(entries, records, manifest.publish_grams))
        summary.site_bytes = writer.staged_bytes()
        if summary.site_bytes > PAGES_WARNING_BYTES:
            log.warning(
                "the site weighs %.0f MB; GitHub Pages refuses sites over 1 GB. "
                "'data: {grams: false, archive: false}' in the manifest leaves the data files out",
                summary.site_bytes / 1e6,
            )
        before_commit()
        writer.commit()
    summary.pages = len(pages)


def _data_archive(entries: dict[str, Path], records: dict[str, dict], with_grams: bool) -> bytes:
    """A zip of every run's data files (Grams, record) and exact images, for download."""
    import io
    import zipfile

    buffer = io.BytesIO()
    # The .npz files are compressed already; storing keeps the build fast.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, entry in entries.items():
            if with_grams:
                archive.write(entry / GRAMS, f"{name}/{GRAMS}")
            archive.writestr(f"{name}/{RECORD}", json.dumps(records[name], indent=1))
            for role in ROLES:
                archive.write(entry / image_file(role), f"{name}/{image_file(role)}")
    return buffer.getvalue()
