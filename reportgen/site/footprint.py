"""What a site weighs, by kind of file, and which setting would make it fit a host's limit.

GitHub Pages publishes sites of up to 1 GB.  At 256 px a run's pages and figures weigh a few
megabytes, most of it the montages of its feature maps, and its data (Grams, archive) several
more: a study of a thousand pairs needs the settings these figures point to.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from pathlib import Path

from reportgen.paths import ARCHIVE, ASSETS_DIR, CROSS_PAIR_DIR, GRAMS, RECORD, RUNS_DIR

LIMIT_BYTES = 1_000_000_000  # GitHub Pages
DATA_KINDS = ("Grams", "records", "archive")  # what `data: {...}` leaves out of the site

_MONTAGE = re.compile(r"/maps-(content|style|result)\.webp$")
_KINDS = (
    ("pages", lambda path: path.endswith(".html")),
    ("feature montages", lambda path: bool(_MONTAGE.search(path))),
    ("difference montages", lambda path: path.endswith("/maps-difference.webp")),
    ("filter-pair sheets", lambda path: "/pair-" in path and path.endswith(".webp")),
    ("Gram comparisons", lambda path: path.endswith("/grams-compare.webp")),
    ("correlation heatmaps", lambda path: path.endswith("/correlation-style.webp")),
    ("Gram heatmaps", lambda path: path.endswith("/gram-style.webp")),
    (
        "plots",
        lambda path: (
            path.endswith((".png",))
            and posixpath.basename(path) in ("energy.png", "loss.png", "losses.png")
        ),
    ),
    (
        "exact images",
        lambda path: (
            path.startswith(f"{RUNS_DIR}/")
            and posixpath.basename(path) in ("content.png", "style.png", "result.png")
        ),
    ),
    ("thumbnails", lambda path: "/thumbs/" in path),
    ("snapshots", lambda path: "/snapshots/" in path),
    ("reconstructions", lambda path: "/reconstructions/" in path),
    ("Grams", lambda path: path.endswith(GRAMS)),
    ("records", lambda path: path.endswith(RECORD)),
    (
        "archive",
        lambda path: path == ARCHIVE or (path.startswith("data-") and path.endswith(".zip")),
    ),
    ("study-wide figures", lambda path: path.startswith(f"{CROSS_PAIR_DIR}/")),
    ("assets", lambda path: path.startswith(f"{ASSETS_DIR}/")),
)


def kind_of(path: str) -> str:
    """The kind of the file at site path ``path``."""
    return next((kind for kind, matches in _KINDS if matches(path)), "other")


def weigh(root: Path, content_layers: dict[str, str]) -> tuple[Counter, int]:
    """Bytes of each kind of file under ``root`` (a site), and the bytes of the feature-map
    montages outside each run's content layer (``content_layers``: run folder -> layer)."""
    weights: Counter = Counter()
    beyond_content = 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        kind, size = kind_of(relative), path.stat().st_size
        weights[kind] += size
        if kind in ("feature montages", "difference montages"):
            folder, layer = posixpath.split(posixpath.dirname(relative))
            if content_layers.get(folder) != layer:
                beyond_content += size
    return weights, beyond_content


def advice(weights: Counter, beyond_content: int) -> list[str]:
    """What each setting would leave of the site's weight, largest saving first."""
    total = sum(weights.values())
    montages = weights["feature montages"] + weights["difference montages"]
    data = sum(weights[kind] for kind in DATA_KINDS)
    sheets = weights["filter-pair sheets"]
    options = [
        ("figures: {montages: content}", total - beyond_content),
        ("figures: {montages: none}", total - montages),
        ("data: {grams: false, archive: false}", total - weights["Grams"] - weights["archive"]),
        ("data: {folder: ..., url: ...}", total - data),
        ("figures: {montages: none} and data: {folder: ..., url: ...}", total - montages - data),
        (
            "figures: {montages: none, pair_sheets: false, quality: 40} and data: {folder: ..., "
            "url: ...}",
            total - montages - data - sheets - _lower_quality_saving(weights),
        ),
    ]
    return [
        f"{setting} leaves about {left / 1e6:.0f} MB"
        for setting, left in sorted(options, key=lambda item: item[1])
        if left < total
    ]


# What quality 40 leaves of the WebP matrices and heatmaps that default to 70-72: 0.73 at 256 px
# and 0.74 at 512 px (benchmarks/weight.py, benchmarks/RESULTS.md); an estimate for the advice.
QUALITY_40_SHARE = 0.73


def _lower_quality_saving(weights: Counter) -> float:
    return (1 - QUALITY_40_SHARE) * sum(
        weights[kind] for kind in ("correlation heatmaps", "Gram comparisons", "Gram heatmaps")
    )


def describe(weights: Counter) -> str:
    """The largest kinds, as a line: ``feature montages 412 MB, Grams 220 MB, ...``."""
    return ", ".join(f"{kind} {size / 1e6:.0f} MB" for kind, size in weights.most_common(4) if size)
