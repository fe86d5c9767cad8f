"""The seconds each phase of a build takes, for its summary."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class PhaseTimes(dict[str, float]):
    """Seconds by phase; a phase timed twice adds up."""

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[phase] = self.get(phase, 0.0) + time.perf_counter() - started
