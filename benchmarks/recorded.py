"""What the benchmark scripts share: where they keep what they measured
(``benchmarks/results/<date>-<name>.json``, ignored by git; RESULTS.md quotes them), and the
``reportgen build`` command they time."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def save_results(results: dict, name: str) -> Path:
    """Write ``results`` as today's ``<name>`` file and say where."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{datetime.date.today().isoformat()}-{name}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
    return path


def build_command(manifest: Path, site: Path, cache: Path, *options: str) -> list[str]:
    """``reportgen build`` of ``manifest`` into ``site`` with ``cache``, quiet, as a fresh
    process of this interpreter."""
    return [
        sys.executable,
        "-m",
        "reportgen",
        "build",
        str(manifest),
        "-d",
        str(site),
        "--cache-dir",
        str(cache),
        "-q",
        *options,
    ]
