"""A generated study of N distinct (content, style) pairs, for measuring builds at scale.

    python benchmarks/study.py FOLDER --pairs 100 [--size 32] [--steps 2]

Writes ``FOLDER/manifest.yaml`` and ``FOLDER/img/``.  Pair ``i`` takes a crop of one of the
repository's content images and a crop of one of its style images, each crop placed and sized by
a generator seeded with ``i``, so every pair has its own content and its own style file (no
two runs share a cache entry, and the study has N distinct style images, as a study of many
styles would).  The same arguments always write the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CONTENTS = sorted((ROOT / "images/content").iterdir())
STYLES = sorted((ROOT / "images/style").iterdir())
CROP_SIDE = 96  # px, longest side of the files written: enough for any tiny study size


def _crop(source: Path, rng: np.random.Generator) -> Image.Image:
    """A crop of 60-100% of ``source``'s sides, at a random place, scaled to CROP_SIDE."""
    image = Image.open(source).convert("RGB")
    width, height = image.size
    fraction = rng.uniform(0.6, 1.0)
    crop_w, crop_h = max(8, int(width * fraction)), max(8, int(height * fraction))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    crop = image.crop((left, top, left + crop_w, top + crop_h))
    crop.thumbnail((CROP_SIDE, CROP_SIDE), Image.Resampling.LANCZOS)
    return crop


def write_study(folder: Path, pairs: int, size: int = 32, steps: int = 2, extra: str = "") -> Path:
    """Write the study into ``folder``; returns the manifest's path.  ``extra`` is added to the
    manifest's ``defaults:`` (indented lines)."""
    images = folder / "img"
    images.mkdir(parents=True, exist_ok=True)
    lines = [
        f"title: Generated study of {pairs} pairs",
        "description: Crops of the repository's sample images, one content and one style file per "
        "pair.",
        "defaults:",
        f"  size: {size}",
        f"  steps: {steps}",
        *(f"  {line}" for line in extra.splitlines() if line.strip()),
        "pairs:",
    ]
    for index in range(pairs):
        rng = np.random.default_rng(index)
        content, style = CONTENTS[index % len(CONTENTS)], STYLES[index % len(STYLES)]
        _crop(content, rng).save(images / f"content-{index:04d}.png")
        _crop(style, rng).save(images / f"style-{index:04d}.png")
        lines += [
            f"  - id: pair-{index:04d}",
            f"    title: {content.stem} in the manner of {style.stem}, crop {index}",
            f"    content: img/content-{index:04d}.png",
            f"    style: img/style-{index:04d}.png",
        ]
    manifest = folder / "manifest.yaml"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    print(write_study(args.folder, args.pairs, args.size, args.steps))


if __name__ == "__main__":
    main()
