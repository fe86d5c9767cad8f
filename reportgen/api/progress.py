"""Progress of the Python API's long work as tqdm bars: widgets in a Jupyter notebook (when
ipywidgets is installed), text in a terminal or in a notebook without it.

One bar counts the runs of a computation, another the feature visualisations of a build.  The
steps of the transfer running in this process (transfers on GPU workers report when they
finish, not step by step) get a bar of their own under the runs' where bars are widgets; as
text, where a second line cannot be redrawn in a notebook, they are the runs bar's last words.
:meth:`Bars.close` is called however the work ends, Ctrl-C included, so no bar is left half
drawn.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import std

from reportgen.manifest import RunSpec


def in_jupyter_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (not a script, not terminal IPython)."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has it loaded
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _bar_type() -> type[std.tqdm]:
    """tqdm's notebook bar inside a Jupyter kernel that can draw widgets, else its text bar
    (tqdm.auto would fall back too, but with a warning in every cell)."""
    if not in_jupyter_kernel():
        return std.tqdm
    try:
        import ipywidgets  # noqa: F401  (the notebook bar draws with it)
        from tqdm.notebook import tqdm as notebook_tqdm
    except ImportError:
        return std.tqdm
    return notebook_tqdm


class Bars:
    """A :class:`reportgen.stages.pipeline.BuildProgress` drawing tqdm bars."""

    def __init__(self) -> None:
        self._bar_type = _bar_type()
        self._nested = self._bar_type is not std.tqdm  # widgets: a bar for the steps too
        self._runs: std.tqdm | None = None
        self._steps: std.tqdm | None = None
        self._steps_of: tuple[str, str] | None = None  # (run, phase) of the steps bar
        self._filters: std.tqdm | None = None

    def _bar(self, **options: Any) -> std.tqdm:
        return self._bar_type(dynamic_ncols=True, **options)

    def run_started(self, run: RunSpec, position: int, count: int, work: str) -> None:
        if self._runs is None:
            self._runs = self._bar(total=count, desc="runs", unit="run")
        if work != "cached":
            self._runs.set_postfix_str(f"{run.name}: {work}", refresh=True)

    def phase(self, run: RunSpec, phase: str, done: int, total: int) -> None:
        if not self._nested:
            if self._runs is not None:
                self._runs.set_postfix_str(f"{run.name}: {phase} {done}/{total}", refresh=True)
            return
        if self._steps_of != (run.name, phase):
            self._close_steps()
            self._steps = self._bar(total=total, desc=f"{run.name} {phase}", unit="step")
            self._steps_of = (run.name, phase)
        assert self._steps is not None
        self._steps.update(done - self._steps.n)
        if done >= total:
            self._close_steps()

    def run_finished(self, run: RunSpec, work: str, seconds: float, error: str | None) -> None:
        self._close_steps()
        if self._runs is not None:
            self._runs.set_postfix_str("", refresh=False)
            self._runs.update(1)
        if error:
            std.tqdm.write(f"{run.name}: FAILED: {error}", file=sys.stderr)

    def visualisations(self, filters: int, layers: int, estimate: float) -> None:
        self._filters = self._bar(total=filters, desc="feature visualisations", unit="filter")

    def visualised(self, done: int, total: int) -> None:
        if self._filters is not None:
            self._filters.update(done - self._filters.n)

    def _close_steps(self) -> None:
        if self._steps is not None:
            self._steps.close()
        self._steps, self._steps_of = None, None

    def close(self) -> None:
        """Close every bar (the work is over, or was interrupted)."""
        self._close_steps()
        for bar in (self._runs, self._filters):
            if bar is not None:
                bar.close()
        self._runs = self._filters = None
