"""A run's memory: the estimate against the peak a fresh process measures, and a device's jobs
batched only as far as its memory allows."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import pytest
import torch
from studies import IMAGES, REPO

import reportgen.ml.stages as stages_module
from reportgen.manifest.model import PairSpec, Params, RunSpec
from reportgen.ml.runtime import Runtime
from reportgen.ml.stages import run_job
from reportgen.stages import memory
from reportgen.stages.jobs import AnalysisTask, DeviceJob, TransferTask, load_inputs


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_estimate_is_within_a_quarter_of_the_measured_peak(precision):
    # benchmarks/memory.py's own measurement: a fresh process, its peak resident memory while
    # it transfers and analyses one pair at 128 px, above its baseline with the network loaded.
    finished = subprocess.run(
        [sys.executable, "benchmarks/memory.py", "--child", "128", "3", precision, "lbfgs", "cpu"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    row = json.loads(finished.stdout.strip().splitlines()[-1])
    assert row["image"] == [128, 85]
    # 0.90-0.93x the estimate at 128 px, where small fixed costs weigh most.  The measurement
    # leaves out the pages of the libraries' code the run maps (22 MB here), whose number
    # depended on the page cache: with them it measured 1.12-1.15x alone and 1.25x late in a
    # full run of the suite.
    assert 0.75 <= row["measured"] / row["estimate"] <= 1.25, row


def _task(key: str, seed: int, size: int = 32, steps: int = 2) -> TransferTask:
    params = Params(size=size, steps=steps, seed=seed, precision="float32", lr=1.0, top_pairs=1)
    pair = PairSpec(
        key,
        key,
        "",
        IMAGES / "content" / "chelsea.png",
        (IMAGES / "style" / "brushstrokes.jpg",),
        params,
        0,
    )
    run = RunSpec(pair)
    return TransferTask(key, run, load_inputs(run), None, (AnalysisTask(key + "-a", params),))


def test_a_job_is_batched_only_as_far_as_the_memory_allows(monkeypatch):
    tasks = [_task(f"run{i}", seed=i) for i in range(3)]
    runtime = Runtime(torch.device("cpu"))
    shape = memory.run_shape(
        tasks[0].params,
        tasks[0].fed.content.size,
        tuple(s.size for s in tasks[0].fed.styles),
        "float32",
    )

    # Room for two of the three at once, not three: a batch of two, then one alone.
    two = memory.estimate(memory.batched(shape, 2)).peak * (1 + memory.SAFETY_MARGIN)
    monkeypatch.setattr(stages_module, "device_memory", lambda device: int(two) + 1)
    outcomes = run_job(DeviceJob(tuple(tasks)), runtime)
    assert [o.error for o in outcomes] == [None, None, None]
    sizes = [o.transfer.batch_size for o in outcomes if o.transfer is not None]
    assert sizes == [2, 2, 1]


def test_a_run_too_large_is_refused_naming_a_size_that_fits(monkeypatch):
    # 300 steps (it never runs): L-BFGS's history is full, as much again as the network.
    task = _task("large", seed=0, size=256, steps=300)
    runtime = Runtime(torch.device("cpu"))
    available = 150_000_000
    monkeypatch.setattr(stages_module, "device_memory", lambda device: available)
    (outcome,) = run_job(DeviceJob((task,)), runtime)
    assert outcome.transfer is None and outcome.error is not None
    assert "size 256 needs about" in outcome.error and "cpu has 0.1 GB available" in outcome.error
    match = re.search(r"size (\d+) would fit", outcome.error)
    assert match, outcome.error
    shape = memory.run_shape(
        task.params, task.fed.content.size, tuple(s.size for s in task.fed.styles), "float32"
    )
    named = int(match.group(1))
    assert 16 < named < 256
    assert memory.fits(memory.resized(shape, named), available)
    assert not memory.fits(memory.resized(shape, named + 1), available)
    # L-BFGS's working vectors against Adam's two moments: the message names Adam's size too.
    adam = re.search(r"\((\d+) with optimizer: adam", outcome.error)
    assert adam, outcome.error
    with_adam = dataclasses.replace(shape, optimizer="adam")
    assert int(adam.group(1)) > named
    assert memory.fits(memory.resized(with_adam, int(adam.group(1))), available)
