"""Finished pair results, kept between builds so that an unchanged pair is never recomputed.

An entry is a folder holding exactly what a pair contributes to the site besides its HTML: the
images, figures and ``data/`` files.  Its name is a hash of everything that decides its contents
(see :func:`pair_key`); templates are not part of it, so a template change re-renders pages from
cached entries.  Entries are written to a temporary folder and renamed into place, so an
interrupted computation never leaves a half entry; an entry that fails its check is recomputed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from reportgen.fingerprint import RESULTS_VERSION, digest
from reportgen.layout import RECORD
from reportgen.manifest import Params

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$REPORTGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/reportgen``, else ``~/.cache/reportgen``."""
    if os.environ.get("REPORTGEN_CACHE_DIR"):
        return Path(os.environ["REPORTGEN_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reportgen"


def pair_key(content_sha256: str, style_sha256: str, params: Params, weights_fingerprint: str) -> str:
    """The cache key of one transfer: input bytes, resolved parameters, weights, code version.

    The pair's id and title are not part of it, nor the preset the values came from: renaming a
    pair reuses its result.
    """
    settings = params.as_dict()
    settings["weights"] = weights_fingerprint  # the bytes, not the path they were read from
    del settings["preset"]  # a label of where the values came from; the values are all here
    return digest({"content": content_sha256, "style": style_sha256, "params": settings, "version": RESULTS_VERSION})


class ResultCache:
    """A folder of entries named by key.  ``root=None`` disables caching (``--no-cache``)."""

    def __init__(self, root: Path | None):
        self.root = root
        self._scratch: list[Path] = []

    def lookup(self, key: str) -> Path | None:
        """The entry for ``key`` if it exists and is complete; a damaged entry is removed."""
        if self.root is None:
            return None
        entry = self.root / key
        if not entry.is_dir():
            return None
        try:
            record = json.loads((entry / RECORD).read_text())
            damaged = [name for name, size in record["files"].items() if (entry / name).stat().st_size != size]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            damaged = [RECORD]
        if damaged:
            log.warning("cache entry %s is damaged (%s missing, truncated or unreadable); recomputing", key[:12], damaged[0])
            shutil.rmtree(entry, ignore_errors=True)
            return None
        return entry

    def store(self, key: str, produce: Callable[[Path], None]) -> Path:
        """Run ``produce(folder)`` into a fresh folder and keep it as the entry for ``key``.

        With caching disabled the folder is temporary and removed by :meth:`close`.
        """
        base = self.root if self.root is not None else Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=base, prefix=f".{key[:12]}.partial-"))
        try:
            produce(work)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
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

    def close(self) -> None:
        for folder in self._scratch:
            shutil.rmtree(folder, ignore_errors=True)
        self._scratch.clear()

    def clear(self) -> int:
        """Remove every entry; returns how many there were."""
        if self.root is None or not self.root.is_dir():
            return 0
        count = 0
        for child in self.root.iterdir():
            with contextlib.suppress(OSError):
                if child.is_dir():
                    shutil.rmtree(child)
                    count += not child.name.startswith(".")
                else:
                    child.unlink()
        return count
