"""Worker processes start without running the caller's script again: a script that calls
reportgen without an ``if __name__ == "__main__":`` guard (as a notebook's code pasted into a
file is) must not compute again, or fail, in every worker it starts."""

from __future__ import annotations

import subprocess
import sys
import textwrap

UNGUARDED_SCRIPT = textwrap.dedent(
    """\
    import multiprocessing, os
    from concurrent.futures import ProcessPoolExecutor

    from reportgen.execute.processes import main_script_left_out

    print("the script ran", flush=True)
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    with main_script_left_out():
        started = pool.submit(os.getpid)
    print("worker", started.result() != os.getpid(), flush=True)
    pool.shutdown()
    """
)


def test_a_script_without_a_main_guard_runs_once_when_workers_start(tmp_path):
    script = tmp_path / "explore.py"
    script.write_text(UNGUARDED_SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["the script ran", "worker True"], done.stdout


def test_the_script_is_run_again_without_it(tmp_path):
    """The same script with processes started the usual way: the worker runs the script (and,
    trying to start a process of its own while it is being imported, fails), which is what
    ``main_script_left_out`` prevents."""
    script = tmp_path / "explore.py"
    script.write_text(
        UNGUARDED_SCRIPT.replace("with main_script_left_out():", "if True:"), encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.stdout.count("the script ran") >= 2 or done.returncode != 0, done.stdout
