"""Builds on a Ray cluster: a local cluster of two nodes of one CPU each, shared by the session.

A Ray build gives the files a local build gives; an actor killed in the middle of a build is
restarted by Ray, its job retried, and nothing is lost; a run that fails by itself is reported,
not retried; without Ray, ``--executor ray`` says how to install it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from studies import make_study, snapshot

from reportgen.build import BuildOptions, build
from reportgen.execute import ExecutorChoice
from reportgen.stages.pipeline import Silent

ray = pytest.importorskip("ray", reason="Ray is an extra: pip install 'reportgen[ray]'")


@pytest.fixture(scope="module")
def cluster():
    """Two nodes of one CPU each; the build's process is the driver."""
    from ray.cluster_utils import Cluster

    nodes = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    nodes.add_node(num_cpus=1)
    ray.init(address=nodes.address, log_to_driver=False)
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


def data_files(site: Path) -> dict[str, bytes]:
    """The exact images and Grams of every run (what must not depend on where it ran)."""
    return {
        path: data
        for path, data in snapshot(site / "pairs").items()
        if path.endswith(("result.png", "content.png", "style.png", "grams.npz"))
    }


def test_a_ray_build_gives_the_files_of_a_local_build(cluster, built_study, tmp_path):
    manifest = make_study(tmp_path / "study")  # the tiny study, built locally by built_study
    on_ray = build(
        manifest,
        BuildOptions(
            tmp_path / "ray", ExecutorChoice(executor="ray"), cache_dir=tmp_path / "ray-cache"
        ),
    )
    assert sorted(on_ray.computed) == ["cat", "cup"] and not on_ray.failed
    assert on_ray.stages_computed == {"transfer": 2, "analysis": 2, "figures": 2}
    files = data_files(tmp_path / "ray")
    assert len(files) == 8 and files == data_files(built_study.site)
    # Every page and figure is there, as a local build writes them.
    assert sorted(snapshot(tmp_path / "ray")) == sorted(snapshot(built_study.site))


def _device_actor_pids() -> list[int]:
    """Processes Ray runs the device actors in (it names them after the actor's class)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ray::_DeviceActor" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class KillAnActor(Silent):
    """Kills the device actor's process when the second run is handed out.

    The build's thread waits here, so the first job has been submitted to the actor and the
    second not yet: whatever the first job is doing then (the actor still starting, computing,
    or done), the build still has work for the actor it kills.  No timer: the kill cannot come
    too late on a fast machine, nor too early on a slow one."""

    def __init__(self):
        self.started, self.killed = 0, []

    def run_started(self, run, position, count, work):
        self.started += 1
        if self.started != 2:
            return
        deadline = time.monotonic() + 120  # the actor's process is started by Ray, asynchronously
        while not self.killed and time.monotonic() < deadline:
            for pid in _device_actor_pids():
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)
            time.sleep(0.05)


def test_an_actor_killed_mid_build_is_restarted_and_a_run_failing_by_itself_is_not_retried(
    cluster, tmp_path, caffe_weights
):
    """Two faults in one build: the device actor's process is killed (Ray restarts it and the
    job is retried: nothing is lost), and a run whose own loss turns NaN is reported once, not
    retried, while the others finish."""
    import torch

    # Weights of the manifest's own, with one NaN: the loss is NaN from the first step.  The file
    # is put into Ray's object store and read by the actor, as any weights file of a manifest.
    state = {key: tensor.clone() for key, tensor in caffe_weights.state_dict.items()}
    state["0.weight"][0, 0, 0, 0] = float("nan")
    study = tmp_path / "study"
    study.mkdir()
    torch.save(state, study / "nan-weights.pth")
    broken = (
        "  - id: broken\n    content: img/cat.png\n    style: img/mosaic.png\n"
        "    weights: nan-weights.pth\n"
    )
    manifest = make_study(study, size=32, steps=2, extra_pairs=broken)
    listener = KillAnActor()
    summary = build(
        manifest,
        BuildOptions(
            tmp_path / "site",
            ExecutorChoice(executor="ray"),
            cache_dir=tmp_path / "cache",
            keep_going=True,
        ),
        progress=listener,
    )
    assert listener.killed, "no device actor was found to kill"
    assert list(summary.failed) == ["broken"] and "the loss became nan" in summary.failed["broken"]
    assert sorted(summary.computed) == ["cat", "cup"]
    assert summary.stages_computed == {"transfer": 2, "analysis": 2, "figures": 2}
    for name in ("cat", "cup"):
        assert (tmp_path / "site" / "pairs" / name / "result.png").is_file()
    index = (tmp_path / "site" / "index.html").read_text()
    assert index.count("the loss became nan") == 1


def test_without_ray_the_ray_executor_says_how_to_install_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from reportgen.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    manifest = make_study(tmp_path / "study", size=32, steps=2)
    result = CliRunner().invoke(
        main,
        [
            "build",
            str(manifest),
            "-d",
            str(tmp_path / "site"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--executor",
            "ray",
        ],
    )
    assert result.exit_code != 0 and "pip install 'reportgen[ray]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "site").exists()


def _descendants(root: int) -> set[int]:
    """Every process below ``root`` (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_when_the_builds_ray_node_dies_it_says_so_and_the_previous_site_stays(
    fresh_study, tmp_path
):
    """Killing the dashboard agent of a Ray node makes its raylet exit: the node dies, and with
    it the build's own process, which is Ray's driver there (Ray ends it with status 1)."""
    import subprocess

    before = snapshot(fresh_study.site)
    text = fresh_study.manifest.read_text().replace("steps: 4", "steps: 100000")  # minutes of work
    fresh_study.manifest.write_text(text)
    command = [
        sys.executable,
        "-m",
        "reportgen",
        "build",
        str(fresh_study.manifest),
        "-d",
        str(fresh_study.site),
    ]
    command += ["--cache-dir", str(tmp_path / "cache"), "--executor", "ray"]
    # A Ray of its own (the session's cluster is announced to child processes in RAY_ADDRESS).
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    build = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment
    )
    try:
        output = []
        for line in build.stderr:  # the build has started once a run is handed out
            output.append(line)
            if "computing" in line:
                break
        killed = []
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for pid in _descendants(build.pid):
                try:
                    if b"ray::DashboardAgent" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                except OSError:
                    continue
            time.sleep(0.1)
        assert killed, "no dashboard agent of the build's Ray was found"
        stdout, stderr = build.communicate(timeout=180)
    finally:
        if build.poll() is None:
            build.kill()
    stderr = "".join(output) + stderr
    assert build.returncode == 1, stderr
    assert "Ray" in stderr and "node" in stderr and "the previous site is unchanged" in stderr
    assert "Traceback" not in stderr and "built " not in stdout
    assert snapshot(fresh_study.site) == before
