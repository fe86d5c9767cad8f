"""What drawing figures for both colour schemes costs: each figure of built runs, with its
transparent background, against the same figure on the white background it had before.

    python benchmarks/schemes.py SITE/pairs/RUN [SITE/pairs/RUN ...]

For every figure of each run's folder (plots, heatmaps, montages, pair sheets, Gram comparisons),
the file is decoded and encoded again twice with the figures stage's own settings: as it is
(RGBA, transparent where it is not data) and composited over white (RGB, as the figures were
drawn before).  Both are second encodings of the same pixels, so the difference is what the
transparency costs.  Prints the bytes of each kind, both ways.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import defaultdict
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reportgen.figures.plots import HEATMAP_QUALITY  # noqa: E402
from reportgen.figures.raster import MATRIX_QUALITY, MONTAGE_QUALITY, WEBP_METHOD  # noqa: E402

# File name prefix -> (kind, WebP quality or None for PNG), as the figures stage writes them.
KINDS = {
    "maps-": ("montages", MONTAGE_QUALITY),
    "pair-": ("pair sheets", MONTAGE_QUALITY),
    "grams-compare": ("Gram comparisons", MATRIX_QUALITY),
    "gram-style": ("Gram heatmaps (plot)", HEATMAP_QUALITY),
    "energy": ("plots (PNG)", None),
    "loss": ("plots (PNG)", None),
}


def _encoded(image: Image.Image, quality: int | None) -> int:
    buffer = io.BytesIO()
    if quality is None:
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="WEBP", quality=quality, method=WEBP_METHOD)
    return len(buffer.getvalue())


def measure(folders: list[Path]) -> dict[str, list[int]]:
    """kind -> [bytes transparent, bytes on white, files]."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            kind = next((k for prefix, k in KINDS.items() if path.name.startswith(prefix)), None)
            if kind is None or path.suffix not in (".png", ".webp"):
                continue
            name, quality = kind
            with Image.open(path) as opened:
                image = opened.convert("RGBA")
            white = Image.new("RGBA", image.size, (255, 255, 255, 255))
            white.alpha_composite(image)
            totals[name][0] += _encoded(image, quality)
            totals[name][1] += _encoded(white.convert("RGB"), quality)
            totals[name][2] += 1
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="run folders of a built site")
    folders = parser.parse_args().runs
    totals = measure(folders)
    print(f"{len(folders)} run(s): KB per run, transparent / on white (change)")
    for name, (clear, white, files) in sorted(totals.items()):
        per_run = [value / len(folders) / 1024 for value in (clear, white)]
        print(
            f"  {name:24} {per_run[0]:8.1f} / {per_run[1]:8.1f}  ({clear / white - 1:+.1%}), "
            f"{files} files"
        )
    clear, white = (sum(t[k] for t in totals.values()) for k in (0, 1))
    print(
        f"  {'all':24} {clear / len(folders) / 1024:8.1f} / {white / len(folders) / 1024:8.1f}"
        f"  ({clear / white - 1:+.1%})"
    )


if __name__ == "__main__":
    main()
