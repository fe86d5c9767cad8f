"""How many processes a build's figures may use, and how they make way for the transfers (shared
by the local executors and Ray's)."""

from __future__ import annotations

import os


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
