"""Writing the site so that a failed or interrupted build never leaves a half-written one.

The new site is built in a temporary folder beside the site folder and swapped in at the end with
two renames.  Files in the old site that reportgen did not write (a ``CNAME``, a README) are
carried over.  A lock file refuses a second concurrent build of the same folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path

from reportgen.errors import BuildError

OWN_FILES = ".reportgen-files"  # lists, one per line, the files the last build wrote


@contextlib.contextmanager
def site_lock(site_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``site_dir`` for the duration of a build."""
    site_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = site_dir.parent / f".{site_dir.name}.lock"
    handle = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildError(
                f"another reportgen build is writing {site_dir} (lock {lock_path}); wait for it "
                "to finish"
            ) from None
        yield
    finally:
        # The lock file stays: deleting it would let a build waiting on the old file and a new
        # build on a fresh file both hold "the" lock.
        handle.close()


class SiteWriter:
    """Collects a new site in a staging folder; :meth:`prepare` then :meth:`swap` put it in place
    of the old one.

    Use as a context manager: leaving the block without ``swap`` (an error, Ctrl-C) removes the
    staging folder and leaves the old site exactly as it was.
    """

    def __init__(self, site_dir: Path):
        self.site_dir = site_dir.absolute()
        self.staging: Path | None = None
        self.written: set[str] = set()
        # Site path of a file that was not written because the same bytes already were, -> the
        # path that was written.  Pages link through this (see reportgen.site.render).
        self.aliases: dict[str, str] = {}
        self._by_digest: dict[str, str] = {}
        self._folders: set[str] = set()  # made in the staging folder already

    def __enter__(self) -> SiteWriter:
        if self.site_dir.exists() and not self.site_dir.is_dir():
            raise BuildError(f"{self.site_dir} exists and is not a folder")
        self.site_dir.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(
            tempfile.mkdtemp(dir=self.site_dir.parent, prefix=f".{self.site_dir.name}.building-")
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)

    def path(self, relative: str) -> Path:
        """Where to write ``relative`` (a site-relative POSIX path) in the staging folder."""
        assert self.staging is not None
        # A lexical check is enough: the staging folder holds only what this build put there,
        # and no links to follow until the foreign files are carried over at the end.
        normal = posixpath.normpath(relative)
        if normal.startswith(("/", "../")) or normal in (".", ".."):
            raise BuildError(f"refusing to write outside the site folder: {relative}")
        if relative in self.written:
            raise BuildError(f"two outputs claim the same file: {relative}")
        self.written.add(relative)
        target = self.staging / normal
        folder = posixpath.dirname(normal)
        if folder not in self._folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        return target

    def write(self, relative: str, data: bytes | str) -> None:
        target = self.path(relative)
        target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    def link(self, relative: str, source: Path) -> None:
        """Put the file ``source`` at ``relative``: a hard link where possible (no bytes copied)."""
        target = self.path(relative)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)

    def copy_tree(
        self,
        source: Path,
        relative_dir: str,
        skip: AbstractSet[str] = frozenset(),
        shareable: Callable[[str], bool] = lambda inner: False,
        keep: AbstractSet[str] | None = None,
        digests: dict[str, str] | None = None,
    ) -> None:
        """Copy every file under ``source`` to ``relative_dir``, except the ``skip`` paths
        (relative to ``source``), or only the ``keep`` paths; hard links where possible.
        ``digests`` gives the sha256 of files already hashed (the others are read to hash them).

        A file for which ``shareable(inner path)`` is true and whose bytes were already written
        elsewhere in the site is not written again; it becomes an alias of the first copy (the
        variants of a pair share the content and style image's figures).
        """
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            inner = file.relative_to(source).as_posix()
            if inner in skip or (keep is not None and inner not in keep):
                continue
            relative = f"{relative_dir}/{inner}"
            if shareable(inner):
                digest = (digests or {}).get(inner) or hashlib.sha256(file.read_bytes()).hexdigest()
                if digest in self._by_digest:
                    self.aliases[relative] = self._by_digest[digest]
                    continue
                self._by_digest[digest] = relative
            self.link(relative, file)  # cache and site on one disk: no bytes copied

    def prepare(self) -> None:
        """Everything of a commit that can fail for want of space: the list of this build's
        files, and the foreign files of the old site copied into the new one."""
        assert self.staging is not None
        self.write(OWN_FILES, "\n".join(sorted(self.written | {OWN_FILES})) + "\n")
        if self.site_dir.exists():
            self._carry_foreign_files()

    def swap(self) -> None:
        """Put the prepared staging folder in the old site's place (renames only)."""
        assert self.staging is not None
        if self.site_dir.exists():
            retired = Path(
                tempfile.mkdtemp(dir=self.site_dir.parent, prefix=f".{self.site_dir.name}.old-")
            )
            os.rmdir(retired)
            os.rename(self.site_dir, retired)
            try:
                os.rename(self.staging, self.site_dir)
            except BaseException:
                os.rename(retired, self.site_dir)  # put the old site back
                raise
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(self.staging, self.site_dir)
        self.staging = None

    def _carry_foreign_files(self) -> None:
        assert self.staging is not None
        own_list = self.site_dir / OWN_FILES
        ours = set(own_list.read_text().split()) if own_list.is_file() else set()
        for file in self.site_dir.rglob("*"):
            if file.is_dir():
                continue
            relative = file.relative_to(self.site_dir).as_posix()
            if relative in ours or relative in self.written:
                continue
            target = self.staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target, follow_symlinks=False)
