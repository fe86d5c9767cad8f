"""reportgen's speed, measured against pastiche and against the hardware, in one run.

    python benchmarks/bench.py [--sizes 128 256 512] [--iterations 5] [--rounds 3] [--device cpu]

Prints a table and writes benchmarks/results/<date>-<device>.json.  Every speed is reported as a
ratio of times measured in this same process, alternating between the two implementations, so
the numbers hold on a shared, noisy machine:

* seconds per optimisation iteration (one forward to conv5_1 plus the input-gradient backward)
  for reportgen and for pastiche, same weights, layers, optimiser and image size;
* the arithmetic floor of an iteration: its convolution FLOPs over the float32 matrix-product
  rate measured here, and the fraction of it each implementation reaches;
* seconds to write the figures and pages of one pair;
* cold and warm (cached) build time of the example manifest, in a subprocess each.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from reportgen.layers import CHANNELS, CONV_INDEX, module_index
from reportgen.manifest import Params
from reportgen.ml.runtime import Runtime, resolve_device
from reportgen.ml.transfer import GatysObjective, TransferSettings

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "images/content/chelsea.png"
STYLE = ROOT / "images/style/brushstrokes.jpg"
PASTICHE_LAYERS = {"conv1_1": "block1_relu1", "conv2_1": "block2_relu1", "conv3_1": "block3_relu1", "conv4_1": "block4_relu1", "conv5_1": "block5_relu1", "conv4_2": "block4_relu2"}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """float32 FLOP/s of a square matrix product, best of ``repeats``."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def iteration_flops(height: int, width: int, deepest: str = "conv5_1") -> float:
    """Convolution FLOPs of one iteration: forward to ``deepest`` plus the input-gradient backward
    (the same FLOPs again; no weight gradients are needed)."""
    flops = 0.0
    in_channels, h, w = 3, height, width
    for name, index in CONV_INDEX.items():
        if index > CONV_INDEX[deepest]:
            break
        if name.endswith("_1") and name != "conv1_1":
            h, w = h // 2, w // 2  # the max-pool before each block
        flops += 2 * in_channels * CHANNELS[name] * 9 * h * w
        in_channels = CHANNELS[name]
    return 2 * flops


def load_pair(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from reportgen.images import load_image

    content = load_image(CONTENT, size).pixels
    style = load_image(STYLE, size).pixels
    as_tensor = lambda p: torch.from_numpy(p).permute(2, 0, 1)[None].float().contiguous()  # noqa: E731
    return as_tensor(content), as_tensor(style)


class ReportgenIterations:
    """Steps of reportgen's own objective and optimiser, one at a time."""

    def __init__(self, runtime: Runtime, content: torch.Tensor, style: torch.Tensor, optimizer: str):
        params = Params()
        extractor = runtime.extractor("caffe", "relu", [params.content_layer, *params.style_layer_weights])
        settings = TransferSettings(1, optimizer, 1.0, 1.0, 1e6, params.content_layer, params.style_layer_weights, "content", 0)
        prep = extractor.preprocessing
        device = runtime.device
        self.objective = GatysObjective(extractor, prep.to_network(content.to(device)), prep.to_network(style.to(device)), settings)
        self.image = prep.to_network(content.to(device)).clone().requires_grad_(True)
        self.optimizer = (
            torch.optim.LBFGS([self.image], lr=1.0, max_iter=1, history_size=50) if optimizer == "lbfgs" else torch.optim.Adam([self.image], lr=1.0)
        )

    def step(self) -> None:
        def closure():
            self.optimizer.zero_grad(set_to_none=True)
            total = self.objective(self.image)[0].sum()
            total.backward()
            return total

        self.optimizer.step(closure)


class PasticheIterations:
    """pastiche's PasticheArtist with the same image sizes, layers, weights and optimiser."""

    def __init__(self, content_path: Path, style_path: Path, size: int, optimizer: str, device: str):
        from pastiche.pastiche import PasticheArtist

        params = Params()
        layer_weights = params.style_layer_weights
        self.artist = PasticheArtist(
            str(content_path),
            [str(style_path)],
            optimizer=optimizer,
            device=device,
            content_layers=[PASTICHE_LAYERS[params.content_layer]],
            style_layers=[PASTICHE_LAYERS[layer] for layer in layer_weights],
            style_layer_weights=list(layer_weights.values()),
            size=size,
            style_size=size,
        )

    def step(self) -> None:
        self.artist.draw()


def time_steps(runner, iterations: int, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(iterations):
        runner.step()
    sync(device)
    return (time.perf_counter() - start) / iterations


def per_iteration(size: int, args, runtime: Runtime, rate: float) -> dict:
    content, style = load_pair(size)
    ours = ReportgenIterations(runtime, content, style, args.optimizer)
    theirs = PasticheIterations(CONTENT, STYLE, size, args.optimizer, str(runtime.device))
    ours.step(), theirs.step()  # warm-up: allocator, oneDNN/cuDNN kernel choice
    timings = {"reportgen": [], "pastiche": []}
    for _ in range(args.rounds):  # alternate, so drifts in machine load hit both alike
        timings["reportgen"].append(time_steps(ours, args.iterations, runtime.device))
        timings["pastiche"].append(time_steps(theirs, args.iterations, runtime.device))
    ours_s, theirs_s = (statistics.median(timings[k]) for k in ("reportgen", "pastiche"))
    height, width = content.shape[2:]
    floor = iteration_flops(height, width) / rate
    return {
        "size": size,
        "image": [int(width), int(height)],
        "reportgen_s": ours_s,
        "pastiche_s": theirs_s,
        "ratio": ours_s / theirs_s,
        "floor_s": floor,
        "reportgen_fraction_of_floor": floor / ours_s,
        "pastiche_fraction_of_floor": floor / theirs_s,
        "samples": timings,
    }


def figure_time(size: int, runtime: Runtime) -> dict:
    """Seconds for the figures (and data files) of one pair at ``size``, after a 1-step transfer."""
    import dataclasses

    from reportgen.manifest import Run, load_manifest
    from reportgen.ml.pair import compute_run

    manifest = load_manifest(ROOT / "images/manifest.yaml")
    pair = manifest.pairs[0]
    pair = dataclasses.replace(pair, params=dataclasses.replace(pair.params, size=size, steps=1))
    with tempfile.TemporaryDirectory() as folder:
        record = compute_run(Run(pair), manifest, runtime, Path(folder))
    return {"size": size, "figures_s": record["timings"]["figures"], "analysis_s": record["timings"]["analysis"]}


def page_time(runtime: Runtime) -> float:
    """Seconds to render and write every page of the example site from cached results."""
    from reportgen.build import build

    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder) / "cache"
        build(ROOT / "images/manifest.yaml", Path(folder) / "site", device=str(runtime.device), cache_dir=cache)
        start = time.perf_counter()
        build(ROOT / "images/manifest.yaml", Path(folder) / "site", device=str(runtime.device), cache_dir=cache)
        return time.perf_counter() - start


def whole_job(size: int, steps: int, device: str) -> dict:
    """One pair end to end, each tool as a fresh process: reportgen's full build (transfer,
    analysis, every figure and page) against pastiche's transfer alone, same settings."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        manifest = folder / "manifest.yaml"
        manifest.write_text(
            f"defaults: {{size: {size}, steps: {steps}, optimizer: lbfgs}}\n"
            f"pairs:\n  - {{id: job, content: {CONTENT}, style: {STYLE}}}\n"
        )
        env = dict(os.environ, REPORTGEN_CACHE_DIR=str(folder / "cache"))
        ours = [sys.executable, "-m", "reportgen.cli", "build", str(manifest), "-d", str(folder / "site"), "--device", device, "--no-cache", "-q"]
        params = Params()
        theirs = [
            sys.executable, "-m", "pastiche", "--device", device, "--optimizer", "lbfgs", "--num-steps", str(steps),
            "--size", str(size), "--style-size", str(size), "--no-verbose",
            "--style-layers", *[PASTICHE_LAYERS[layer] for layer in params.style_layer_weights],
            "--style-layer-weights", *[str(w) for w in params.style_layer_weights.values()],
            "--content", str(CONTENT), "--styles", str(STYLE), "--output", str(folder / "pastiche.png"),
        ]
        times: dict[str, list[float]] = {"reportgen": [], "pastiche": []}
        for _ in range(2):
            for name, command in (("reportgen", ours), ("pastiche", theirs)):
                start = time.perf_counter()
                subprocess.run(command, check=True, env=env, capture_output=True)
                times[name].append(time.perf_counter() - start)
    ours_s, theirs_s = min(times["reportgen"]), min(times["pastiche"])
    return {"size": size, "steps": steps, "reportgen_full_build_s": ours_s, "pastiche_transfer_s": theirs_s, "ratio": ours_s / theirs_s, "samples": times}


def example_build(device: str) -> dict:
    """Cold and warm build of the example manifest, each a fresh `reportgen build` process."""
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, REPORTGEN_CACHE_DIR=str(Path(folder) / "cache"))
        command = [sys.executable, "-m", "reportgen.cli", "build", str(ROOT / "images/manifest.yaml"), "-d", str(Path(folder) / "site"), "--device", device, "-q"]
        times = []
        for _ in range(2):
            start = time.perf_counter()
            subprocess.run(command, check=True, env=env, capture_output=True)
            times.append(time.perf_counter() - start)
    return {"cold_s": times[0], "warm_s": times[1], "warm_over_cold": times[1] / times[0]}


def _logged(row: dict) -> dict:
    """Print a measurement as soon as it is made (the whole run takes minutes)."""
    print(f"  measured {row['size']} px: reportgen {row['reportgen_s']:.3f} s/it, pastiche {row['pastiche_s']:.3f} s/it", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--iterations", type=int, default=5, help="iterations per timed block")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per implementation")
    parser.add_argument("--optimizer", choices=["lbfgs", "adam"], default="adam")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-build", action="store_true", help="skip the example-manifest builds")
    args = parser.parse_args()

    runtime = Runtime(resolve_device(args.device))
    runtime.weights("caffe")
    rate = matmul_rate(runtime.device)
    device_name = torch.cuda.get_device_name(runtime.device) if runtime.device.type == "cuda" else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    results = {
        "date": datetime.date.today().isoformat(),
        "device": str(runtime.device),
        "device_name": device_name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "optimizer": args.optimizer,
        "matmul_flops": rate,
        "iterations": [_logged(per_iteration(size, args, runtime, rate)) for size in args.sizes],
        "figures": [figure_time(size, runtime) for size in (256, 512)],
        "pages_s": page_time(runtime),
    }
    if not args.skip_build:
        results["whole_job"] = whole_job(256, 30, args.device)
        results["example_build"] = example_build(args.device)

    print(f"{results['device_name']} ({results['device']}, {results['threads']} threads), torch {results['torch']}, "
          f"float32 matmul {rate / 1e9:.0f} GFLOP/s, optimiser {args.optimizer}")
    print(f"{'size':>5} {'image':>9} {'reportgen s/it':>15} {'pastiche s/it':>14} {'ratio':>6} {'floor s':>8} {'ours/floor':>10} {'theirs/floor':>12}")
    for row in results["iterations"]:
        print(f"{row['size']:>5} {row['image'][0]:>4}x{row['image'][1]:<4} {row['reportgen_s']:>15.3f} {row['pastiche_s']:>14.3f} {row['ratio']:>6.2f} "
              f"{row['floor_s']:>8.3f} {row['reportgen_fraction_of_floor']:>10.0%} {row['pastiche_fraction_of_floor']:>12.0%}")
    for row in results["figures"]:
        print(f"figures and data of one pair at {row['size']} px: {row['figures_s']:.2f} s (analysis {row['analysis_s']:.2f} s)")
    print(f"pages of the example site from the cache: {results['pages_s']:.2f} s")
    if "whole_job" in results:
        job = results["whole_job"]
        print(f"one pair at {job['size']} px, {job['steps']} L-BFGS steps: reportgen full build {job['reportgen_full_build_s']:.1f} s, "
              f"pastiche transfer only {job['pastiche_transfer_s']:.1f} s, ratio {job['ratio']:.2f}")
    if "example_build" in results:
        build = results["example_build"]
        print(f"example build: cold {build['cold_s']:.1f} s, warm {build['warm_s']:.1f} s ({build['warm_over_cold']:.1%} of cold)")

    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"{results['date']}-{runtime.device.type}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
