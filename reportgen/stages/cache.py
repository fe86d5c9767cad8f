"""Stage results kept between builds, so that nothing is computed twice.

Each stage has its own entries, ``<cache>/<stage>/<key>/``, keyed by everything that decides
their contents and chained: a transfer by the input images' bytes, the transfer's parameters, the
weights and the transfer code's version; an analysis by its transfer's key, the analysis
parameters and the analysis version; figures by their analysis's key and the figures version.  A
new figure version therefore redraws figures from cached analyses, a new ``top_pairs`` runs
forward passes only, and a template change re-renders pages from cached figures.  Labels (ids,
titles, file names as written) are in no key: renaming a pair or moving an image reuses it all.

An entry is produced in a temporary folder beside it and renamed into place with a list of its
files and their sizes, so an interrupted computation never leaves half an entry; an entry whose
files do not match that list, or that does not load, is removed and computed anew.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from reportgen.manifest import FigureOptions, Params
from reportgen.stages.fingerprint import STAGE_VERSIONS, digest
from reportgen.stages.results import AnalysisResult, FigureSet, TransferResult

log = logging.getLogger(__name__)

STAGES = ("transfer", "analysis", "figures")
# Kept beside the stages' entries: a study's archives, distances and pages, and the network's
# feature visualisations (reportgen.stages.visualisations).
# The images a notebook handed over as pixels, kept as files so that runs can name them.
STUDY_FILES = ("archives", "distances", "pages", "examples", "visualisations", "inputs")
ENTRY_FILES = "entry.json"  # an entry's files and their sizes, written last
ANALYSIS_PARAMETERS = ("top_pairs",)  # parameters that change the analysis, not the transfer

Result = TypeVar("Result")


def default_cache_dir() -> Path:
    """``$REPORTGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/reportgen``, else ``~/.cache/reportgen``."""
    if os.environ.get("REPORTGEN_CACHE_DIR"):
        return Path(os.environ["REPORTGEN_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reportgen"


@dataclass(frozen=True)
class RunKeys:
    """The cache key of each stage of one run."""

    transfer: str
    analysis: str
    figures: str


def run_keys(
    content_sha256: str,
    style_sha256: tuple[str, ...],
    params: Params,
    weights_fingerprint: str,
    figures: FigureOptions = FigureOptions(),
    mask_sha256: tuple[str, ...] = (),
) -> RunKeys:
    """The keys of a run's three stages (``figures``: the manifest's choice of what to draw).

    The preset a run's values came from is in none of them (the values are), nor are labels.
    ``style_sha256`` has a hash per style image, ``mask_sha256`` one per region; a run of one
    style image has the keys it had before blends and regions, so caches made then stay valid.
    """
    settings = params.as_dict()
    settings["weights"] = weights_fingerprint  # the bytes, not the path they were read from
    del settings["preset"]
    if not params.style_blend:
        del settings["style_blend"]
    for name in ANALYSIS_PARAMETERS:
        del settings[name]
    transfer = digest(
        {
            "stage": "transfer",
            "content": content_sha256,
            "style": style_sha256[0] if len(style_sha256) == 1 else list(style_sha256),
            **({"masks": list(mask_sha256)} if mask_sha256 else {}),
            "params": settings,
            "version": STAGE_VERSIONS["transfer"],
        }
    )
    analysis = digest(
        {
            "stage": "analysis",
            "transfer": transfer,
            "params": {name: getattr(params, name) for name in ANALYSIS_PARAMETERS},
            "layers": params.analysed_layers,
            "version": STAGE_VERSIONS["analysis"],
        }
    )
    drawn = digest(
        {
            "stage": "figures",
            "analysis": analysis,
            "options": dataclasses.asdict(figures),
            "version": STAGE_VERSIONS["figures"],
        }
    )
    return RunKeys(transfer, analysis, drawn)


# What a damaged entry can raise while it is read.
DAMAGE = (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile)


class StageCache(Generic[Result]):
    """The entries of one stage under ``root`` (``root=None``: ``--no-cache``, entries live in
    temporary folders until :meth:`close`).  ``load`` reads an entry's result from its folder."""

    def __init__(self, root: Path | None, stage: str, load: Callable[[Path], Result]):
        self.root = root / stage if root is not None else None
        self.stage = stage
        self._load = load
        self._scratch: list[Path] = []

    def lookup(self, key: str) -> tuple[Path, Result] | None:
        """The entry for ``key`` and its result, if it is there and whole; a damaged entry is
        removed (and so computed anew)."""
        if self.root is None:
            return None
        entry = self.root / key
        if not entry.is_dir():
            return None
        try:
            sizes = json.loads((entry / ENTRY_FILES).read_text())
            damaged = next(
                (name for name, size in sizes.items() if (entry / name).stat().st_size != size),
                None,
            )
            result = self._load(entry) if damaged is None else None
        except DAMAGE:
            damaged, result = ENTRY_FILES, None
        if result is None:
            log.warning(
                "cached %s %s is damaged (%s missing, truncated or unreadable); computing it again",
                self.stage,
                key[:12],
                damaged,
            )
            shutil.rmtree(entry, ignore_errors=True)
            return None
        return entry, result

    def reserve(self, key: str) -> Path:
        """A fresh folder to produce the entry for ``key`` in; then :meth:`commit` or
        :meth:`discard` it."""
        base = self.root if self.root is not None else Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=base, prefix=f".{key[:12]}.partial-"))

    def commit(self, key: str, work: Path) -> Path:
        """Keep the finished folder ``work`` as the entry for ``key``; returns where it is."""
        sizes = {
            p.relative_to(work).as_posix(): p.stat().st_size
            for p in sorted(work.rglob("*"))
            if p.is_file()
        }
        (work / ENTRY_FILES).write_text(json.dumps(sizes, indent=0))
        if self.root is None:
            self._scratch.append(work)
            return work
        entry = self.root / key
        try:
            os.rename(work, entry)
        except OSError:
            if not entry.is_dir():
                raise
            # Another build (of another site, sharing this cache) finished the same work first.
            shutil.rmtree(work, ignore_errors=True)
        return entry

    def discard(self, work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)

    def store(self, key: str, save: Callable[[Path], None]) -> Path:
        """``save(folder)`` into a fresh folder, kept as the entry for ``key``."""
        work = self.reserve(key)
        try:
            save(work)
        except BaseException:
            self.discard(work)
            raise
        return self.commit(key, work)

    def close(self) -> None:
        for folder in self._scratch:
            shutil.rmtree(folder, ignore_errors=True)
        self._scratch.clear()


@dataclass
class Caches:
    """One :class:`StageCache` per stage, under one root (``None``: nothing kept)."""

    root: Path | None
    transfer: StageCache[TransferResult] = field(init=False)
    analysis: StageCache[AnalysisResult] = field(init=False)
    figures: StageCache[FigureSet] = field(init=False)
    _scratch: Path | None = field(
        default=None, init=False
    )  # archives and distances, without a cache

    def __post_init__(self) -> None:
        self.transfer = StageCache(self.root, "transfer", TransferResult.load)
        self.analysis = StageCache(self.root, "analysis", AnalysisResult.load)
        self.figures = StageCache(self.root, "figures", FigureSet.load)

    def archives(self) -> Path:
        """Where the data archive's volumes are kept (:mod:`reportgen.site.archive`)."""
        return self._folder("archives")

    def pages(self) -> Path:
        """Where rendered pages are kept, by a hash of all they depend on."""
        return self._folder("pages")

    def distances(self) -> Path:
        """Where the distances between the study's style images and their figures are kept."""
        return self._folder("distances")

    def examples(self) -> Path:
        """Where the filter pages' example crops are kept."""
        return self._folder("examples")

    def visualisations(self) -> Path:
        """Where feature visualisations are kept, for every study on the machine."""
        return self._folder("visualisations")

    def inputs(self) -> Path:
        """Where images given as pixels (not files) are kept as PNG files, by their hash."""
        return self._folder("inputs")

    def _folder(self, name: str) -> Path:
        if self.root is not None:
            return self.root / name
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="reportgen-scratch-"))
        return self._scratch / name

    def close(self) -> None:
        for stage in STAGES:
            getattr(self, stage).close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def clear_cache(root: Path) -> int:
    """Remove everything under ``root``; returns how many entries there were (of every stage,
    and of the single-entry layout before stages)."""
    if not root.is_dir():
        return 0
    count = 0
    for child in root.iterdir():
        with contextlib.suppress(OSError):
            if child.is_dir() and child.name in STAGES:
                count += sum(1 for entry in child.iterdir() if not entry.name.startswith("."))
                shutil.rmtree(child)
            elif child.is_dir() and child.name in STUDY_FILES:
                shutil.rmtree(child)
            elif child.is_dir():
                count += not child.name.startswith(".")
                shutil.rmtree(child)
            else:
                child.unlink()
    return count
