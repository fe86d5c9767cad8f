"""The orchestrator: manifest -> every pair computed or taken from the cache -> pages -> site.

Two phases, as static site generators do it: first gather every pair's results (computing only
what the cache lacks), then write the whole site into a staging folder and swap it in.  Nothing
touches the site folder before the second phase succeeds.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reportgen.cache import RECORD, ResultCache, default_cache_dir, pair_key
from reportgen.errors import ReportgenError
from reportgen.fingerprint import file_sha256, weights_fingerprint
from reportgen.manifest import Manifest, PairSpec, load_manifest
from reportgen.render import Renderer
from reportgen.site import build_pages, pair_dir
from reportgen.writer import SiteWriter, site_lock

log = logging.getLogger(__name__)


class BuildProgress(Protocol):
    """What the CLI hears of a build (library code never prints)."""

    def pair_started(self, pair: PairSpec, position: int, count: int, cached: bool) -> None: ...

    def phase(self, pair: PairSpec, phase: str, done: int, total: int) -> None: ...

    def pair_finished(self, pair: PairSpec, cached: bool, seconds: float, error: str | None) -> None: ...


class _Silent:
    def pair_started(self, pair: PairSpec, position: int, count: int, cached: bool) -> None:
        pass

    def phase(self, pair: PairSpec, phase: str, done: int, total: int) -> None:
        pass

    def pair_finished(self, pair: PairSpec, cached: bool, seconds: float, error: str | None) -> None:
        pass


@dataclass
class BuildSummary:
    site_dir: Path
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
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
    progress: BuildProgress | None = None,
) -> BuildSummary:
    """Build the site of ``manifest_path`` into ``site_dir`` (default: ``site/`` in the working folder)."""
    started = time.perf_counter()
    manifest = load_manifest(manifest_path)
    site_dir = (site_dir or Path("site")).absolute()
    listener = progress or _Silent()
    summary = BuildSummary(site_dir)
    cache = ResultCache((cache_dir or default_cache_dir()) if use_cache else None)
    runtime = _LazyRuntime(device)
    try:
        with site_lock(site_dir):
            entries = _gather(manifest, cache, runtime, listener, keep_going, summary)
            _write_site(manifest, entries, summary)
    finally:
        cache.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _gather(manifest: Manifest, cache: ResultCache, runtime: _LazyRuntime, listener: BuildProgress, keep_going: bool, summary: BuildSummary) -> dict[str, Path]:
    """Phase one: a finished entry folder for every pair that did not fail."""
    entries: dict[str, Path] = {}
    for position, pair in enumerate(manifest.pairs):
        key = pair_key(file_sha256(pair.content), file_sha256(pair.style), pair.params, weights_fingerprint(pair.params.weights))
        entry = cache.lookup(key)
        listener.pair_started(pair, position, len(manifest.pairs), entry is not None)
        pair_started = time.perf_counter()
        if entry is not None:
            summary.cached.append(pair.id)
            entries[pair.id] = entry
            listener.pair_finished(pair, True, time.perf_counter() - pair_started, None)
            continue
        try:
            entries[pair.id] = cache.store(key, lambda folder, pair=pair: _compute(pair, manifest, runtime, listener, folder))
        except ReportgenError as error:
            listener.pair_finished(pair, False, time.perf_counter() - pair_started, error.message)
            if not keep_going:
                raise ReportgenError(f"pair '{pair.id}' (line {pair.line}): {error.message}") from None
            summary.failed[pair.id] = error.message
            continue
        summary.computed.append(pair.id)
        listener.pair_finished(pair, False, time.perf_counter() - pair_started, None)
    return entries


def _compute(pair: PairSpec, manifest: Manifest, runtime: _LazyRuntime, listener: BuildProgress, folder: Path) -> None:
    from reportgen.ml.pair import compute_pair

    compute_pair(pair, manifest, runtime.get(), folder, lambda phase, done, total: listener.phase(pair, phase, done, total))


def _write_site(manifest: Manifest, entries: dict[str, Path], summary: BuildSummary) -> None:
    """Phase two: stage every file of the new site, then swap it in."""
    records = {}
    for pair in manifest.pairs:
        if pair.id not in entries:
            continue
        record = json.loads((entries[pair.id] / RECORD).read_text())
        # Names and notes come from the manifest as it is now: renaming a pair reuses its result.
        record.update(id=pair.id, title=pair.title, notes=pair.notes)
        records[pair.id] = record
    renderer = Renderer()
    pages = build_pages(manifest, records, summary.failed)
    with SiteWriter(summary.site_dir) as writer:
        for pair_id, entry in entries.items():
            writer.copy_tree(entry, pair_dir(pair_id), skip={RECORD})
            writer.write(f"{pair_dir(pair_id)}/{RECORD}", json.dumps(records[pair_id], indent=1))
        for site_path, source in renderer.static_files():
            writer.write(site_path, source.read_bytes())
        for page in pages:
            writer.write(page.path, renderer.render(page.template, page.path, page.context))
        writer.write(".nojekyll", "")  # GitHub Pages: serve the files as they are
        writer.commit()
    summary.pages = len(pages)
    summary.site_bytes = sum(p.stat().st_size for p in summary.site_dir.rglob("*") if p.is_file())
