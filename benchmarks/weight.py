"""What a run weighs in the site, by kind of file, at 256 and 512 px, and what the settings for
large studies make of a thousand of them.

    python benchmarks/weight.py [--sizes 256 512] [--pairs 3]

Builds ``--pairs`` pairs of the repository's images (one L-BFGS step: the figures do not depend
on how far the optimisation went) at each size, once as the defaults draw it and once with each
setting below, and prints the bytes per run of each kind of file (``reportgen.site.footprint``), and
the weight a 1000-pair study would have.  Writes ``benchmarks/results/<date>-weight.json``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recorded import save_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [
    ("chelsea.png", "brushstrokes.jpg"),
    ("coffee.png", "mosaic.png"),
    ("rocket.jpg", "hubble_deep_field.jpg"),
    ("astronaut.png", "ihc.jpg"),
]
SETTINGS = {
    "defaults": "",
    "montages: content": "figures: {montages: content}\n",
    "montages: content, quality 50, no data": (
        "figures: {montages: content, quality: 50}\ndata: {grams: false, archive: false}\n"
    ),
    "montages: none, data apart": "figures: {montages: none}\ndata: {folder: data-apart}\n",
    "the lightest: montages none, no pair sheets, quality 40, data apart": (
        "figures: {montages: none, pair_sheets: false, quality: 40}\ndata: {folder: data-apart}\n"
    ),
}


def build_weights(size: int, pairs: int, head: str, folder: Path, cache: Path) -> dict:
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    lines = [head + f"defaults: {{size: {size}, steps: 1}}", "pairs:"]
    for index, (content, style) in enumerate(PAIRS[:pairs]):
        lines += [
            f"  - id: pair-{index}",
            f"    content: {ROOT / 'images/content' / content}",
            f"    style: {ROOT / 'images/style' / style}",
        ]
    manifest = folder / "manifest.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    summary = build(
        manifest, BuildOptions(folder / "site", ExecutorChoice(jobs=0), cache_dir=cache)
    )
    return {kind: size / pairs for kind, size in summary.weights.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--pairs", type=int, default=3, choices=range(1, len(PAIRS) + 1))
    args = parser.parse_args()
    results: dict = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "pairs": args.pairs,
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "cache"
        for size in args.sizes:
            results["sizes"][size] = {}
            for name, head in SETTINGS.items():
                folder = Path(scratch) / f"{size}-{len(results['sizes'][size])}"
                folder.mkdir()
                weights = build_weights(size, args.pairs, head, folder, cache)
                results["sizes"][size][name] = weights
                total = sum(weights.values())
                print(
                    f"\n{size} px, {name}: {total / 1e6:.2f} MB a run; a 1000-pair study about "
                    f"{total * 1000 / 1e9:.2f} GB",
                    flush=True,
                )
                for kind, size_bytes in sorted(weights.items(), key=lambda item: -item[1]):
                    print(f"  {kind:22s} {size_bytes / 1e3:9.0f} KB")
    save_results(results, "weight")


if __name__ == "__main__":
    sys.exit(main())
