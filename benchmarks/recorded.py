"""Where the benchmark scripts keep what they measured: ``benchmarks/results/<date>-<name>.json``
(ignored by git; RESULTS.md quotes them)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def save_results(results: dict, name: str) -> Path:
    """Write ``results`` as today's ``<name>`` file and say where."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{datetime.date.today().isoformat()}-{name}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
    return path
