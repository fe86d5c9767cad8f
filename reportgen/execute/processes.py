"""How many processes a build's figures may use, how they make way for the transfers (shared
by the local executors and Ray's), and how they start without the caller's script."""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections.abc import Iterator


def available_cores() -> int:
    """The cores this process may run on (a container's or a job scheduler's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def default_figure_jobs(gpu_workers: int) -> int:
    """Figure processes when ``--jobs`` is not given: the cores not busy feeding the GPUs."""
    return max(1, available_cores() - gpu_workers)


def yield_to_transfers() -> None:
    """Make this process draw only with what the transfers leave of the CPU.

    On a CPU build both want every core: at equal priority torch's threads wait on each other
    whenever a figure process holds a core (a 32 px transfer took ten times as long), while
    fewer torch threads would change the transfer's rounding, and a result would depend on what
    else was running.  Linux's idle scheduling class gives a process the cores no one else
    wants; elsewhere, the lowest priority."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, 0, 19)


@contextlib.contextmanager
def main_script_left_out() -> Iterator[None]:
    """Processes spawned in this block do not run the caller's main module again.

    A spawned child runs the parent's main script or module (as ``__mp_main__``) before its
    work, so that functions defined there can be found: a script that calls
    ``reportgen.transfer`` or ``Study.build`` without an ``if __name__ == "__main__":`` guard
    would compute again in every worker, and fail there.  Everything reportgen's processes run
    lives in reportgen's modules, so for the moment processes start, ``__main__`` is an empty
    module: the child has nothing to run.  (The swap is brief and done by the thread that
    starts the processes.)
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main
