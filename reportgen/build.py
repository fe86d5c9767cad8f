"""The orchestrator: manifest -> every run computed or taken from the cache -> pages -> site.

Two phases, as static site generators do it: first gather every run's stage results, computing
only what the cache lacks (:mod:`reportgen.stages.pipeline`, on the executors of
:mod:`reportgen.execute`), then write the whole site into a staging folder and swap it in
(:mod:`reportgen.site.publish`).  Nothing touches the site folder before the second phase
succeeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reportgen.errors import BuildError, os_errors_reported
from reportgen.execute import ExecutorChoice, Executors
from reportgen.manifest import Manifest, load_manifest
from reportgen.site.distances import StyleComparison
from reportgen.site.publish import ExampleBoxes, data_folder_lock, publish
from reportgen.site.writer import site_lock
from reportgen.stages.cache import Caches, default_cache_dir
from reportgen.stages.pipeline import BuildProgress, Gatherer, Silent
from reportgen.timing import PhaseTimes


@dataclass(frozen=True)
class BuildOptions:
    """How to build (the command line's options of ``build`` and ``serve``)."""

    site_dir: Path = Path("site")  # relative paths are taken from the working folder
    executors: ExecutorChoice = ExecutorChoice()  # where transfers and figures run
    cache_dir: Path | None = None  # None: $REPORTGEN_CACHE_DIR, else ~/.cache/reportgen
    use_cache: bool = True  # False: compute everything and keep nothing
    keep_going: bool = False  # build the other runs when one fails (the index lists it)
    strict: bool = False  # a warning fails the build, before anything is written
    # Where the site will be published (https://user.github.io/repo/ or /repo/): used only where
    # relative links cannot serve, in 404.html, canonical links and sitemap.xml.
    base_url: str | None = None

    def __post_init__(self) -> None:
        # Paths given as text (from a notebook, say) are paths.
        object.__setattr__(self, "site_dir", Path(self.site_dir))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))


@dataclass
class BuildSummary:
    """What a build did: the runs it computed, took from the cache or lost (run name -> why),
    the entries each stage computed, the pages and bytes it wrote, its warnings and seconds."""

    site_dir: Path
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stages_computed: dict[str, int] = field(default_factory=dict)  # stage -> entries computed
    visualised: int = 0  # filters visualised (feature visualisations made, not from the cache)
    phases: PhaseTimes = field(default_factory=PhaseTimes)  # seconds of each phase of the build
    weights: dict[str, int] = field(default_factory=dict)  # bytes of the site, by kind of file
    warnings: list[str] = field(default_factory=list)
    pages: int = 0
    site_bytes: int = 0
    seconds: float = 0.0


def build(
    manifest: Path | Manifest,
    options: BuildOptions = BuildOptions(),
    progress: BuildProgress | None = None,
) -> BuildSummary:
    """Build the site of ``manifest`` (its file, or as loaded) as ``options`` say; ``progress``
    hears of each run."""
    started = time.perf_counter()
    options.executors.check()
    site_dir = options.site_dir.absolute()
    summary = BuildSummary(site_dir)
    if not isinstance(manifest, Manifest):
        with summary.phases.timed("manifest"):
            manifest = load_manifest(manifest)
    listener = progress or Silent()
    caches = Caches((options.cache_dir or default_cache_dir()) if options.use_cache else None)
    warnings = _WarningCounter()
    logging.getLogger("reportgen").addHandler(warnings)
    try:
        with (
            os_errors_reported("; the previous site is unchanged", BuildError),
            site_lock(site_dir),
            data_folder_lock(manifest, site_dir),
        ):
            # The executors are stopped (a Ray of the build's own shut down) before the site is
            # written: once it is swapped in, the build is done.
            with (
                summary.phases.timed("stages"),
                Executors(options.executors, manifest, listener) as executors,
            ):
                gatherer = Gatherer(
                    manifest,
                    caches,
                    executors.devices,
                    executors.figures,
                    listener,
                    options.keep_going,
                )
                gathered = gatherer.gather()
            summary.computed, summary.cached, summary.failed = (
                gathered.computed,
                gathered.cached,
                gathered.failed,
            )
            summary.stages_computed = gathered.stages_computed
            summary.visualised = gathered.visualised
            published = publish(
                manifest,
                gathered,
                caches,
                site_dir,
                options.base_url,
                times=summary.phases,
                draw_distances=_draw_distances,
                draw_examples=_draw_examples,
                before_commit=(lambda: _refuse_warnings(warnings))
                if options.strict
                else (lambda: None),
            )
            summary.pages, summary.weights, summary.site_bytes = (
                published.pages,
                published.weights,
                published.site_bytes,
            )
    finally:
        logging.getLogger("reportgen").removeHandler(warnings)
        caches.close()
    summary.warnings = warnings.messages
    summary.seconds = time.perf_counter() - started
    return summary


def _draw_distances(comparison: StyleComparison, path: Path) -> None:
    from reportgen.figures.plots import distance_clustermap  # matplotlib, only when drawing

    distance_clustermap(
        comparison.matrix, comparison.order, comparison.merges, comparison.layer, path
    )


def _draw_examples(source: Path, crops: Sequence[ExampleBoxes], side: int) -> None:
    from reportgen.figures.raster import example_crops

    example_crops(source, crops, side)


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
        raise BuildError(
            f"--strict: {count} warning{'s' if count != 1 else ''}; the previous site is "
            "unchanged:\n  " + "\n  ".join(warnings.messages)
        )
