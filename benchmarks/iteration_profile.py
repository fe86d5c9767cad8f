"""Where one iteration of the transfer spends its time, by part, beside its arithmetic floor.

    python benchmarks/iteration_profile.py [--sizes 256 512] [--precisions float32 bfloat16]
        [--optimizers adam lbfgs] [--steps 5] [--device cpu]

Each configuration runs the transfer's own step (``reportgen.ml.transfer.evaluate`` and the
optimiser's step) on the example's first pair, a few steps untimed, then ``--steps`` steps under
``torch.profiler``.  Every operator's own time (its self time: CPU on a CPU, kernel time on a
GPU) is given to one part, by what it is and where it was called from (the ``reportgen::``
scopes of the network, the Grams, the optimiser and the box constraint, and autograd's
backward nodes):

* network forward, network backward (convolutions, ReLUs, pooling, both ways);
* Grams (the product and its backward);
* loss norms (differences from the targets, squares, sums and weights, both ways);
* copies and casts (``to``/``copy_``/``clone`` anywhere, bfloat16 to float32 and back);
* optimiser step, and the box constraint inside it;
* other (the losses' transfer to the host, gradient bookkeeping).

The profiler's own overhead inflates parts made of many small operators, so the step is also
timed without it ("step s"); "floor" is the convolutions' FLOPs (forward to conv5_1 and the
input-gradient backward) and the Grams' over the rate of one 3x3 convolution and of the matrix
product, each measured here in the step's precision.  A second table times variants of the step
against the default, interleaved: the seed's loss in place of the relative one, and an
optimiser without the box, i.e. what the relative loss and the bounded optimisers cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (  # noqa: E402
    ConvolutionProbe,
    ReportgenIterations,
    interleaved,
    iteration_flops,
    load_pair,
    matmul_rate,
    spread,
    sync,
    time_steps,
)
from recorded import save_results  # noqa: E402

from reportgen.layers import CHANNELS  # noqa: E402
from reportgen.manifest import Params  # noqa: E402
from reportgen.ml.runtime import Runtime, resolve_device  # noqa: E402

PARTS = (
    "network forward",
    "network backward",
    "Grams",
    "loss norms",
    "copies and casts",
    "optimiser step",
    "box constraint",
    "other",
)
COPIES = {"aten::_to_copy", "aten::copy_", "aten::clone", "aten::contiguous", "aten::to"}
NETWORK_BACKWARD = ("ConvolutionBackward", "ReluBackward", "ThresholdBackward", "MaxPool2D")
SCOPES = {
    "reportgen::box": "box constraint",
    "reportgen::optimiser": "optimiser step",
    "reportgen::gram": "Grams",
    "reportgen::network": "network forward",
    "reportgen::loss": "loss norms",
}


def part_of(event: FunctionEvent) -> str:
    """The part an operator's own time belongs to: a copy or cast wherever it runs, else the
    innermost backward node or reportgen scope it was called from."""
    if event.name in COPIES:
        return "copies and casts"
    node: FunctionEvent | None = event
    while node is not None:
        name = node.name
        if name in SCOPES:
            return SCOPES[name]
        if "Backward" in name:
            if any(kind in name for kind in NETWORK_BACKWARD):
                return "network backward"
            if "_PositionsGram" in name:
                return "Grams"
            if "ToCopyBackward" in name:
                return "copies and casts"
            return "loss norms"
        node = node.cpu_parent
    return "other"


class ScopedLoss:
    """The objective with its call marked as the loss, so that what it runs outside the network
    and the Grams counts as the loss's norms."""

    def __init__(self, objective):
        self.objective = objective

    def __call__(self, images: torch.Tensor, exact: bool = False):
        with torch.profiler.record_function("reportgen::loss"):
            return self.objective(images, exact)


def gram_flops(height: int, width: int, layers: list[str]) -> float:
    """FLOPs of the style layers' Grams in one iteration: Fᵀ·F forward and one product back."""
    flops = 0.0
    for layer in layers:
        halvings = int(layer[4]) - 1  # conv<k>_1 follows k - 1 max-pools
        positions = (height >> halvings) * (width >> halvings)
        flops += 2 * 2 * positions * CHANNELS[layer] ** 2
    return flops


def profile_step(runner: ReportgenIterations, steps: int, device: torch.device) -> dict:
    """Milliseconds per step of each part, from ``steps`` profiled steps."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    runner.objective = ScopedLoss(runner.objective)
    sync(device)
    with profile(activities=activities) as profiler:
        for _ in range(steps):
            runner.step()
        sync(device)
    runner.objective = runner.objective.objective
    totals: dict[str, float] = defaultdict(float)
    for event in profiler.events():
        own = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
        if own:
            totals[part_of(event)] += own / 1000 / steps  # microseconds -> ms per step
    return {part: totals.get(part, 0.0) for part in PARTS}


def configuration(
    runtime: Runtime, size: int, precision: str, optimizer: str, args, rates: dict
) -> dict:
    content, style = load_pair(size)
    runner = ReportgenIterations(runtime, content, style, optimizer, precision)
    for _ in range(args.warmup):
        runner.step()
    parts = profile_step(runner, args.steps, runtime.device)
    height, width = content.shape[2:]
    probe = ConvolutionProbe(runtime.device, getattr(torch, precision), height, width)
    samples = interleaved(
        {
            "step": lambda: time_steps(runner, args.steps, runtime.device),
            "convolution": probe.seconds,
        },
        args.rounds,
    )
    step_s = statistics.median(samples["step"])
    layers = list(Params().style_layer_weights)
    network_floor = (
        iteration_flops(height, width) * statistics.median(samples["convolution"]) / probe.flops
    )
    gram_floor = gram_flops(height, width, layers) / rates[precision]  # Grams run in it too
    return {
        "size": size,
        "image": [int(width), int(height)],
        "precision": precision,
        "optimizer": optimizer,
        "step_s": step_s,
        "step_spread": spread(samples["step"]),
        "parts_ms": parts,
        "network_floor_s": network_floor,
        "gram_floor_s": gram_floor,
    }


def variants(runtime: Runtime, size: int, precision: str, optimizer: str, args) -> dict:
    """Seconds per step of the default against the seed's loss and against no box, interleaved,
    as ratios to the default round by round."""
    content, style = load_pair(size)
    runners = {
        "default": ReportgenIterations(runtime, content, style, optimizer, precision),
        "no box": ReportgenIterations(runtime, content, style, optimizer, precision, bounded=False),
        "seed loss, no box": ReportgenIterations(
            runtime, content, style, optimizer, precision, loss="seed"
        ),
    }
    for runner in runners.values():
        for _ in range(args.warmup):
            runner.step()
    samples = interleaved(
        {
            name: lambda runner=runner: time_steps(runner, args.steps, runtime.device)
            for name, runner in runners.items()
        },
        args.rounds,
    )
    ratios = {
        name: [value / default for value, default in zip(values, samples["default"], strict=True)]
        for name, values in samples.items()
        if name != "default"
    }
    return {
        "size": size,
        "precision": precision,
        "optimizer": optimizer,
        "default_s": statistics.median(samples["default"]),
        "ratio": {name: statistics.median(values) for name, values in ratios.items()},
        "spread": {name: spread(values) for name, values in ratios.items()},
    }


def report(results: dict) -> None:
    print(
        f"{results['device_name']}, {results['threads']} threads, torch {results['torch']}; "
        f"{results['steps']} profiled steps, timed over {results['rounds']} rounds"
    )
    short = {
        "network forward": "net fwd",
        "network backward": "net bwd",
        "Grams": "Grams",
        "loss norms": "norms",
        "copies and casts": "casts",
        "optimiser step": "optim",
        "box constraint": "box",
        "other": "other",
    }
    header = f"{'size':>5} {'precision':>9} {'optim':>6} " + " ".join(
        f"{short[part]:>8}" for part in PARTS
    )
    header += f" {'sum':>8} {'step':>8} {'spread':>7} {'net flr':>8} {'Gram flr':>8} {'of step':>8}"
    print(header)
    for row in results["configurations"]:
        parts = row["parts_ms"]
        network, gram = row["network_floor_s"] * 1000, row["gram_floor_s"] * 1000
        line = f"{row['size']:>5} {row['precision']:>9} {row['optimizer']:>6} "
        line += " ".join(f"{parts[part]:>8.1f}" for part in PARTS)
        line += f" {sum(parts.values()):>8.1f} {row['step_s'] * 1000:>8.1f}"
        line += f" {row['step_spread']:>7.1%} {network:>8.1f} {gram:>8.1f}"
        line += f" {(network + gram) / (row['step_s'] * 1000):>8.0%}"
        print(line)
    print(
        "ms per step; each part by the profiler, 'step' timed without it (median of the rounds, "
        "spread: (largest - smallest) / median); floors: the convolutions' FLOPs at one 3x3 "
        "convolution's rate, the Grams' at the matrix product's, both measured here"
    )
    for row in results["variants"]:
        print(
            f"{row['size']} px {row['precision']} {row['optimizer']}: default "
            f"{row['default_s'] * 1000:.1f} ms a step; "
            + ", ".join(
                f"{name} x{ratio:.3f} (spread {row['spread'][name]:.1%})"
                for name, ratio in row["ratio"].items()
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["float32", "bfloat16"],
        default=None,
        help="default: float32, and bfloat16 where the device has it natively",
    )
    parser.add_argument(
        "--optimizers", nargs="+", choices=["adam", "lbfgs"], default=["adam", "lbfgs"]
    )
    parser.add_argument("--steps", type=int, default=5, help="steps profiled, and per timing")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-variants", action="store_true", help="skip the variants table")
    args = parser.parse_args()

    runtime = Runtime(resolve_device(args.device))
    precisions = args.precisions or (
        ["float32", "bfloat16"] if runtime.has_native_bfloat16 else ["float32"]
    )
    rates = {
        precision: matmul_rate(runtime.device, getattr(torch, precision))
        for precision in precisions
    }
    device_name = (
        torch.cuda.get_device_name(runtime.device)
        if runtime.device.type == "cuda"
        else f"CPU ({'native' if runtime.has_native_bfloat16 else 'no native'} bfloat16)"
    )
    results = {
        "device": str(runtime.device),
        "device_name": device_name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "steps": args.steps,
        "rounds": args.rounds,
        "configurations": [
            configuration(runtime, size, precision, optimizer, args, rates)
            for size in args.sizes
            for precision in precisions
            for optimizer in args.optimizers
        ],
        "variants": []
        if args.no_variants
        else [
            variants(runtime, size, precisions[-1], optimizer, args)
            for size in args.sizes[:1]
            for optimizer in args.optimizers
        ],
    }
    report(results)
    save_results(results, f"profile-{runtime.device.type}")


if __name__ == "__main__":
    main()
