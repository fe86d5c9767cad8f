"""How a build's cost grows with the study: tiny studies of 100, 300 and 1000 distinct pairs, each
built cold once and then again from its cache, with the seconds per run of every phase.

    python benchmarks/scale.py [--pairs 100 300 1000] [--size 32] [--steps 2]

Each build is a fresh process calling ``reportgen.build.build`` (start-up included in the
total), with an empty cache for the cold one; the studies come from ``benchmarks/study.py``, so
the smaller ones are the first pairs of the larger.  Phases (``BuildSummary.phases``): manifest
(reading and checking it), stages (cache lookups and every computation), records (``pair.json``
of every run), comparisons (the distances between the style images, their clustering and
figures), files (the runs' folders into the site), archive (the data volumes), pages (rendered,
or taken from the cache), commit (the site swapped in, new files kept in the cache).

Prints a table per build kind, the ratio of the largest study's time per run to the smallest's
for each phase (linear cost: within 1.25), the site's weight per run, and writes
``benchmarks/results/<date>-scale.json``.  Each study's folders are removed after its builds
(1000 tiny pairs take some 30 GB of cache).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recorded import save_results  # noqa: E402
from study import write_study  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUILD = """
import json, sys, time
started = time.perf_counter()
from pathlib import Path
from reportgen.build import BuildOptions, build
summary = build(Path(sys.argv[1]), BuildOptions(Path(sys.argv[2]), cache_dir=Path(sys.argv[3])))
print(json.dumps({
    "phases": summary.phases, "seconds": time.perf_counter() - started,
    "site_bytes": summary.site_bytes, "computed": len(summary.computed),
    "cached": len(summary.cached), "failed": len(summary.failed),
}))
"""


def timed_build(manifest: Path, site: Path, cache: Path) -> dict:
    shown = subprocess.run(
        [sys.executable, "-c", BUILD, str(manifest), str(site), str(cache)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(shown.stdout.strip().splitlines()[-1])


def _table(title: str, rows: dict[int, dict]) -> None:
    phases = list(next(iter(rows.values()))["phases"])
    print(f"\n{title}: seconds per run")
    print("pairs  " + "  ".join(f"{phase:>11}" for phase in phases) + "        total")
    for pairs, row in rows.items():
        cells = "  ".join(f"{row['phases'][phase] / pairs:11.4f}" for phase in phases)
        print(f"{pairs:5d}  {cells}  {row['seconds'] / pairs:11.4f}")
    small, large = min(rows), max(rows)
    ratios = {
        phase: (rows[large]["phases"][phase] / large)
        / max(rows[small]["phases"][phase] / small, 1e-9)
        for phase in phases
    }
    ratios["total"] = (rows[large]["seconds"] / large) / (rows[small]["seconds"] / small)
    print(
        f"{large} against {small}: "
        + ", ".join(f"{phase} {ratio:.2f}" for phase, ratio in ratios.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument(
        "--keep", type=Path, help="keep the largest study's folder here (its site, for the browser)"
    )
    args = parser.parse_args()
    results: dict = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "size": args.size,
        "steps": args.steps,
        "cold": {},
        "cached": {},
    }
    for pairs in sorted(args.pairs):
        folder = Path(tempfile.mkdtemp(prefix=f"scale-{pairs}-"))
        try:
            manifest = write_study(folder / "study", pairs, args.size, args.steps)
            for kind in ("cold", "cached"):
                row = timed_build(manifest, folder / "site", folder / "cache")
                results[kind][pairs] = row
                print(
                    f"{pairs} pairs, {kind}: {row['seconds']:.1f} s, site "
                    f"{row['site_bytes'] / 1e6:.0f} MB "
                    f"({row['computed']} computed, {row['failed']} failed)",
                    flush=True,
                )
            if args.keep and pairs == max(args.pairs):
                shutil.rmtree(args.keep, ignore_errors=True)
                shutil.copytree(
                    folder / "site", args.keep, copy_function=os.link
                )  # no bytes copied
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    for kind in ("cold", "cached"):
        _table(kind, results[kind])
    for pairs, row in results["cold"].items():
        print(f"site weight, {pairs} pairs: {row['site_bytes'] / pairs / 1e6:.2f} MB a run")
    save_results(results, "scale")


if __name__ == "__main__":
    main()
