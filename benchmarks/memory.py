"""A run's peak memory: reportgen's estimate (``reportgen.stages.memory``) against what a fresh
process measures, on the CPU (or on a GPU with ``--device cuda``).

    python benchmarks/memory.py [--sizes 256 512 1024 2048] [--steps 4] [--precision auto]
                                [--optimizer lbfgs] [--device cpu]
    python benchmarks/memory.py --device cuda --largest [--precision bfloat16] [--json FILE]

Each size runs in a process of its own, one after the other (a large size alone may take
gigabytes): it loads the network and reads the images, then clears the kernel's record of its
peak resident memory (``/proc/self/clear_refs``) and notes its resident memory, computes the
run as a build's device does (``run_job``: transfer and analysis), and reports its peak resident
memory above that baseline, less the pages of the libraries' code the run mapped meanwhile (on
CUDA: ``torch.cuda.max_memory_allocated``).  The parent prints
the estimate beside it.  ``--largest`` asks the estimate for the largest size that fits the
device's free memory, runs it, and prints its peak and seconds per step.

Writes ``benchmarks/results/<date>-memory.json``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
CONTENT = ROOT / "images" / "content" / "coffee.png"  # 600 × 400: a landscape photograph
STYLE = ROOT / "images" / "style" / "brushstrokes.jpg"


def _resident(field: str) -> int:
    """``VmRSS``, ``VmHWM`` (peak) or ``RssFile`` (pages of mapped files) of this process,
    bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak(device: str) -> int:
    """Forget the peak so far; the memory in use now, bytes."""
    import torch

    if device == "cpu":
        # Freed memory the allocator still holds goes back to the system first: it would be
        # reused unseen by the run and hide part of its peak.
        ctypes.CDLL(None).malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # the kernel forgets VmHWM
        return _resident("VmRSS")
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def _peak(device: str) -> int:
    import torch

    return _resident("VmHWM") if device == "cpu" else torch.cuda.max_memory_allocated()


def _mapped_files(device: str) -> int:
    """On the CPU, this process's resident pages of mapped files: the libraries' code (torch's
    alone is hundreds of megabytes), which a run maps as it first calls a kernel.  They count in
    the resident peak but are not the run's memory, and how many a first call brings in depends
    on what the page cache holds (late in a full test run, up to 10 MB more at 128 px)."""
    return _resident("RssFile") if device == "cpu" else 0


def measure(size: int, steps: int, precision: str, optimizer: str, device: str) -> dict:
    """One run in this process: its estimate and its measured peak above the baseline."""
    import torch

    from reportgen.manifest.model import PairSpec, Params, RunSpec
    from reportgen.ml.runtime import Runtime
    from reportgen.ml.stages import analysis_stage, device_memory, transfer_stage
    from reportgen.stages import memory
    from reportgen.stages.jobs import AnalysisTask, TransferTask, load_inputs

    params = Params(size=size, steps=steps, precision=precision, optimizer=optimizer, lr=1.0)
    if optimizer == "adam":
        params = Params(size=size, steps=steps, precision=precision, optimizer="adam", lr=0.02)
    pair = PairSpec("bench", "bench", "", CONTENT, (STYLE,), params, 0)
    run = RunSpec(pair)
    task = TransferTask(
        "transfer", run, load_inputs(run), None, (AnalysisTask("analysis", params),)
    )
    runtime = Runtime(torch.device(device))
    # The network is loaded before the baseline: a run's estimate is what it adds to a process
    # that already holds the network, as a build's device does after its first run.
    runtime.extractor(
        params.weights, params.activation, [params.content_layer, *params.style_layer_weights]
    )
    runtime.extractor(params.weights, params.activation, params.analysed_layers)
    resolved = runtime.precision(precision)
    shape = memory.run_shape(
        params, task.fed.content.size, tuple(s.size for s in task.fed.styles), resolved
    )
    estimate = memory.estimate(shape)
    available = device_memory(runtime.device)
    started = time.perf_counter()
    # The transfer, then the analysis, as run_job does them, each peak measured on its own.
    # The pages of mapped files a phase brings in are taken off its peak (see _mapped_files).
    first = _reset_peak(device)
    files = _mapped_files(device)
    transfer = transfer_stage([task], runtime)[0]
    transfer_files = _mapped_files(device) - files
    transfer_peak = _peak(device) - first - transfer_files
    second = _reset_peak(device)
    analysis_stage(params, transfer, runtime)
    analysis_files = _mapped_files(device) - files
    # Above the first baseline: the transfer's result stays.
    analysis_peak = _peak(device) - first - analysis_files
    seconds = time.perf_counter() - started
    transfer_seconds = transfer.timings["transfer"]
    return {
        "size": size,
        "image": list(task.fed.content.size),
        "style": list(task.fed.styles[0].size),
        "precision": resolved,
        "optimizer": optimizer,
        "steps": steps,
        "estimate": estimate.peak,
        "estimate_phases": {
            "targets": estimate.targets + estimate.kept,
            "step": estimate.step + estimate.kept + estimate.optimiser,
            "analysis": estimate.analysis,
        },
        "measured": max(transfer_peak, analysis_peak),
        "measured_phases": {"transfer": transfer_peak, "analysis": analysis_peak},
        "mapped_files_left_out": {"transfer": transfer_files, "analysis": analysis_files},
        "kept_between": second - first,
        "available": available,
        "seconds": seconds,
        "seconds_per_step": transfer_seconds / steps,
        "threads": torch.get_num_threads(),
    }


def in_child(size: int, steps: int, precision: str, optimizer: str, device: str) -> dict:
    """:func:`measure` in a fresh process of its own."""
    command = [sys.executable, __file__, "--child", str(size), str(steps), precision, optimizer]
    finished = subprocess.run(
        [*command, device], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if finished.returncode != 0:
        raise SystemExit(f"size {size}: {finished.stderr.strip()[-2000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def _gb(count: int) -> str:
    return f"{count / 1e9:.2f}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        size, steps, precision, optimizer, device = sys.argv[2:7]
        print(json.dumps(measure(int(size), int(steps), precision, optimizer, device)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--precision", nargs="+", default=["auto"])
    parser.add_argument("--optimizer", default="lbfgs", choices=["lbfgs", "adam"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--largest", action="store_true")
    parser.add_argument("--json", type=Path, help="write the results here (default: results/)")
    args = parser.parse_args()
    from recorded import save_results

    rows = []
    sizes = args.sizes
    if args.largest:
        sizes = [_largest(args.steps, args.precision[0], args.optimizer, args.device)]
        print(f"largest size that fits by the estimate: {sizes[0]}")
    print("size | image | precision | estimate GB | measured GB | measured / estimate | s/step")
    for size in sizes:
        for precision in args.precision:
            row = in_child(size, args.steps, precision, args.optimizer, args.device)
            rows.append(row)
            print(
                f"{size} | {row['image'][0]}×{row['image'][1]} | {row['precision']} | "
                f"{_gb(row['estimate'])} | {_gb(row['measured'])} | "
                f"{row['measured'] / row['estimate']:.2f} | {row['seconds_per_step']:.2f}",
                flush=True,
            )
    results = {"device": args.device, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    else:
        save_results(results, "memory")


def _largest(steps: int, precision: str, optimizer: str, device: str) -> int:
    """The largest size that fits ``device`` by the estimate, asked of a fresh process."""
    code = (
        "import json, torch; from reportgen.manifest.model import Params;"
        "from reportgen.ml.runtime import Runtime; from reportgen.ml.stages import device_memory;"
        "from reportgen.stages import memory; from reportgen.images import size_estimate;"
        f"p = Params(steps={steps}, precision={precision!r}, optimizer={optimizer!r}, lr=1.0);"
        f"r = Runtime(torch.device({device!r}));"
        f"shape = memory.run_shape(p, size_estimate({str(CONTENT)!r}, 512),"
        f" (size_estimate({str(STYLE)!r}, 512),), r.precision(p.precision));"
        "print(memory.largest_side(shape, device_memory(r.device)))"
    )
    finished = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return int(finished.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
