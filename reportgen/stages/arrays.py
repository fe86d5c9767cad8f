"""Named arrays of a stage result, in memory or read on demand from the result's ``.npz`` file.

A cached result is loaded for its small part (losses, rankings, layouts: JSON) at every build;
its arrays (pixels, Grams, map tiles) only when a later stage needs them.  A rebuild of a
thousand cached runs therefore reads a thousand small JSON files, not gigabytes, and a result
handed to another process carries either its arrays or only the path they can be read from.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np


class Arrays(Mapping[str, np.ndarray]):
    """A read-only mapping of names to arrays.  ``Arrays(dict)`` holds them;
    ``Arrays.at(path)`` reads each from an ``.npz`` file when it is asked for."""

    def __init__(self, arrays: Mapping[str, np.ndarray] | None = None):
        self._arrays = dict(arrays or {})
        self._path: Path | None = None
        self._names: tuple[str, ...] | None = None

    @classmethod
    def at(cls, path: Path) -> Arrays:
        stored = cls()
        stored._path = Path(path)
        return stored

    @property
    def path(self) -> Path | None:
        """The file the arrays are read from, or ``None`` for arrays held in memory."""
        return self._path

    def _file(self) -> Path:
        assert self._path is not None, "arrays held in memory have no file"
        return self._path

    def _names_in_file(self) -> tuple[str, ...]:
        if self._names is None:
            with np.load(self._file()) as archive:
                self._names = tuple(archive.files)
        return self._names

    def __getitem__(self, name: str) -> np.ndarray:
        if self._path is None:
            return self._arrays[name]
        if name not in self._names_in_file():
            raise KeyError(name)
        with np.load(self._file()) as archive:
            return archive[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays if self._path is None else self._names_in_file())

    def __len__(self) -> int:
        return len(self._arrays) if self._path is None else len(self._names_in_file())

    def loaded(self) -> Arrays:
        """The same arrays held in memory (one read of the file)."""
        if self._path is None:
            return self
        with np.load(self._file()) as archive:
            return Arrays({name: archive[name] for name in archive.files})

    def save(self, path: Path, compress_level: int = 0) -> None:
        """Write every array into ``path`` as an ``.npz`` that ``numpy.load`` reads;
        ``compress_level`` 1..9 deflates its members (0: stored, the fastest to write and read)."""
        compression = zipfile.ZIP_DEFLATED if compress_level else zipfile.ZIP_STORED
        with zipfile.ZipFile(
            path, "w", compression=compression, compresslevel=compress_level or None
        ) as archive:
            for name in self:
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(
                        member, np.ascontiguousarray(self[name]), allow_pickle=False
                    )

    def __reduce__(self) -> tuple[Callable[..., Arrays], tuple[Any, ...]]:
        # A file-backed store travels to another process as its path; a held one as its arrays.
        return (Arrays.at, (self._path,)) if self._path is not None else (Arrays, (self._arrays,))
