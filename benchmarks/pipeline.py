"""Build throughput: a study's cold build with figures drawn beside the transfers against the same
build drawing them in its own process, in one run.

    python benchmarks/pipeline.py [--pairs 100] [--size 32] [--steps 2] [--figure-sizes 256 512]

1. Writes a study of ``--pairs`` distinct pairs (``benchmarks/study.py``) and builds it cold
   twice, each a fresh ``reportgen build`` process with an empty cache: ``--jobs 0`` (every
   figure drawn in the build's own process, between the transfers, as builds did before the
   stages) and the default (figure processes on the cores not feeding a GPU).  Prints both times
   and their ratio, then the cached rebuild's time.
2. For one pair at each of ``--figure-sizes``: the seconds of the analysis (forward passes,
   rankings, map tiles) and of its figures (every image file of the run), read from the run's
   ``pair.json``.

Writes ``benchmarks/results/<date>-pipeline.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recorded import build_command, save_results  # noqa: E402
from study import write_study  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def timed_build(manifest: Path, site: Path, cache: Path, *options: str) -> float:
    """Seconds of one ``reportgen build`` process (its start-up included)."""
    command = build_command(manifest, site, cache, *options)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def study_builds(pairs: int, size: int, steps: int, device: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        manifest = write_study(folder / "study", pairs, size, steps)
        serial = timed_build(
            manifest,
            folder / "serial-site",
            folder / "serial-cache",
            "--device",
            device,
            "--jobs",
            "0",
        )
        print(f"  cold, figures in the build's process (--jobs 0): {serial:.1f} s", flush=True)
        parallel = timed_build(manifest, folder / "site", folder / "cache", "--device", device)
        print(f"  cold, figure processes (default --jobs):         {parallel:.1f} s", flush=True)
        cached = timed_build(manifest, folder / "site", folder / "cache", "--device", device)
        print(f"  cached rebuild:                                   {cached:.1f} s", flush=True)
    return {
        "pairs": pairs,
        "size": size,
        "steps": steps,
        "serial_s": serial,
        "parallel_s": parallel,
        "cached_s": cached,
        "speedup": serial / parallel,
        "serial_s_per_run": serial / pairs,
        "parallel_s_per_run": parallel / pairs,
    }


def figure_times(sizes: list[int], device: str) -> list[dict]:
    """Analysis and figure seconds of the example's first pair at each size (1 step)."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for size in sizes:
            manifest = folder / f"manifest-{size}.yaml"
            manifest.write_text(
                f"defaults: {{size: {size}, steps: 1}}\n"
                "pairs:\n  - "
                f"{{id: cat, content: {ROOT / 'images/content/chelsea.png'}, "
                f"style: {ROOT / 'images/style/brushstrokes.jpg'}}}\n"
            )
            timed_build(manifest, folder / f"site-{size}", folder / "cache", "--device", device)
            record = json.loads((folder / f"site-{size}" / "pairs/cat/data/pair.json").read_text())
            timings = record["timings"]
            rows.append(
                {"size": size, "analysis_s": timings["analysis"], "figures_s": timings["figures"]}
            )
            print(
                f"  {size} px: analysis {timings['analysis']:.2f} s, figures "
                f"{timings['figures']:.2f} s",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--figure-sizes", type=int, nargs="*", default=[256, 512])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(
        f"{args.pairs} distinct pairs, {args.size} px, {args.steps} steps, on {args.device} "
        f"({os.cpu_count()} cores)",
        flush=True,
    )
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "device": args.device,
        "study": study_builds(args.pairs, args.size, args.steps, args.device),
    }
    print(f"speed-up of the cold build: {results['study']['speedup']:.2f}x", flush=True)
    if args.figure_sizes:
        print("one pair's analysis and figures:", flush=True)
        results["figures"] = figure_times(args.figure_sizes, args.device)
    save_results(results, f"pipeline-{args.device.replace(':', '')}")


if __name__ == "__main__":
    main()
