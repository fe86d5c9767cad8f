"""The study's data as downloads: every run's record, Grams and exact images in zip volumes.

A volume holds whole runs and stays under :data:`VOLUME_BYTES` (GitHub refuses files over
100 MB); a study that fits in one keeps the single ``data.zip`` it always had.  Each volume is
kept in the cache under a hash of what it holds, so a rebuild that changes nothing writes no
archive: the site links the kept file.  A new volume is written into the new site and kept only
once the site is swapped in: a failed build leaves the cache as it was.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reportgen.paths import ARCHIVE, GRAMS, RECORD, ROLES, archive_volume, image_file

VOLUME_BYTES = 95_000_000


@dataclass(frozen=True)
class ArchivedRun:
    """One run's share of the archive: its name, its folder of files (a figures entry, whose
    contents its key fixes) and its record as written into the site."""

    name: str
    folder: Path
    record: str

    def files(self, with_grams: bool) -> list[str]:
        """Run-folder paths of the files archived besides the record."""
        return ([GRAMS] if with_grams else []) + [image_file(role) for role in ROLES]

    def size(self, with_grams: bool) -> int:
        return len(self.record) + sum(
            (self.folder / inner).stat().st_size for inner in self.files(with_grams)
        )

    def identity(self, with_grams: bool) -> list[str]:
        """What decides this run's bytes in a volume: the entry its files come from, the record."""
        return [
            self.name,
            self.folder.parent.name,
            hashlib.sha256(self.record.encode()).hexdigest(),
            str(with_grams),
        ]


@dataclass(frozen=True)
class Volume:
    site_path: str  # where it goes in the site
    file: Path  # where it is now: kept from an earlier build, or just written (``new``)
    kept: Path  # where it is kept for later builds
    new: bool
    runs: tuple[str, ...]
    bytes: int


def volumes(
    runs: list[ArchivedRun], with_grams: bool, keep_in: Path, place: Callable[[str], Path]
) -> list[Volume]:
    """The archive's volumes: those kept in ``keep_in`` by an earlier build, the others written
    where ``place(site path)`` says (the new site: they are kept once it is swapped in)."""
    groups: list[list[ArchivedRun]] = [[]]
    filled = 0
    for run in runs:
        size = run.size(with_grams)
        if groups[-1] and filled + size > VOLUME_BYTES:
            groups.append([])
            filled = 0
        groups[-1].append(run)
        filled += size
    made = []
    for number, group in enumerate(groups, start=1):
        key = hashlib.sha256(
            "\n".join(" ".join(run.identity(with_grams)) for run in group).encode()
        ).hexdigest()
        kept = keep_in / f"{key}.zip"
        site_path = ARCHIVE if len(groups) == 1 else archive_volume(number, len(groups))
        new = not kept.is_file()
        file = place(site_path) if new else kept
        if new:
            _write(group, with_grams, file)
        made.append(
            Volume(
                site_path, file, kept, new, tuple(run.name for run in group), file.stat().st_size
            )
        )
    return made


def _write(group: list[ArchivedRun], with_grams: bool, target: Path) -> None:
    """One volume, written beside ``target`` and renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".volume-", suffix=".partial")
    os.close(handle)
    try:
        # The .npz files are compressed already, the PNGs too: stored, the archive is fast.
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as archive:
            for run in group:
                if with_grams:
                    archive.write(run.folder / GRAMS, f"{run.name}/{GRAMS}")
                archive.writestr(f"{run.name}/{RECORD}", run.record)
                for role in ROLES:
                    archive.write(run.folder / image_file(role), f"{run.name}/{image_file(role)}")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(partial, 0o666 & ~mask)  # mkstemp's 0600 would go into the site with the hard link
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
