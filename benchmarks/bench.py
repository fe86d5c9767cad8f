"""reportgen's speed, measured against pastiche and against the hardware, in one run.

    python benchmarks/bench.py [--sizes 128 256 512] [--iterations 5] [--rounds 7] [--device cpu]

Prints a table and writes benchmarks/results/<date>-<device>.json.  Every speed is a ratio of
times measured in this same process, so that it holds on a shared machine whose speed drifts
(another process, the clock): torch's threads are pinned (``--threads``), each implementation
runs a few untimed iterations first (``--warmup``), then ``--rounds`` rounds time every
implementation in turn, in an order reversed from one round to the next, with the garbage
collector held off; each ratio is taken within a round and the median over the rounds is
reported, with its spread ((largest - smallest) / median).  What it measures:

* seconds per optimisation iteration (one forward to conv5_1 plus the input-gradient backward)
  for reportgen in float32, for reportgen at the precision ``auto`` picks on this device (when
  that is not float32), and for pastiche: same weights, layers, optimiser and image size;
* the arithmetic floor of an iteration: its convolution FLOPs over the matrix-product rate
  measured here (float32, and bfloat16 where used), and the fraction of it each reaches; and the
  same FLOPs over the rate of one of the iteration's 3x3 convolutions, timed alone in every
  round beside the iterations;
* what bfloat16 does to the final losses (float32 and bfloat16 runs from the same start);
* several runs optimised as one batch against one at a time: throughput and peak memory;
* seconds to write the figures and pages of one pair, and one pair's whole build against
  pastiche's transfer alone, each a fresh process, in interleaved rounds, with the build's
  time by part (transfer, analysis, figures, the rest);
* cold and warm (cached) build time of the example manifest, in a subprocess each.

``benchmarks/iteration_profile.py`` says where an iteration's time goes.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from recorded import build_command

from reportgen.layers import CHANNELS, CONV_INDEX
from reportgen.manifest import Loss, Params
from reportgen.ml.losses import GatysObjective
from reportgen.ml.optim import make_optimizer
from reportgen.ml.runtime import Runtime, resolve_device
from reportgen.ml.transfer import evaluate
from reportgen.stages.settings import TransferSettings, transfer_settings

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "images/content/chelsea.png"
STYLE = ROOT / "images/style/brushstrokes.jpg"
PASTICHE_LAYERS = {
    "conv1_1": "block1_relu1",
    "conv2_1": "block2_relu1",
    "conv3_1": "block3_relu1",
    "conv4_1": "block4_relu1",
    "conv5_1": "block5_relu1",
    "conv4_2": "block4_relu2",
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fastest(call: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``call``: on a shared machine a short burst
    of another process's work lands on some of them, and the fastest is the call's own time."""
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        call()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def matmul_rate(
    device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 10
) -> float:
    """FLOP/s of a square matrix product in ``dtype``, best of ``repeats``."""
    probe = MatmulProbe(device, dtype, n)
    return probe.flops / probe.seconds(repeats)


class MatmulProbe:
    """One ``n`` x ``n`` matrix product in ``dtype``, its operands and its output allocated
    once: a product that allocates its output pays for fresh pages at every call, which moved
    its rate by a tenth from one round to the next here."""

    def __init__(self, device: torch.device, dtype: torch.dtype, n: int = 2048):
        self.device = device
        self.a = torch.randn(n, n, device=device, dtype=dtype)
        self.b = torch.randn(n, n, device=device, dtype=dtype)
        self.out = torch.empty(n, n, device=device, dtype=dtype)
        self.flops = 2 * n**3
        self.seconds(1)  # the first call only chooses kernels

    def seconds(self, repeats: int = 10) -> float:
        """The fastest of ``repeats`` calls."""
        return fastest(lambda: torch.matmul(self.a, self.b, out=self.out), self.device, repeats)


class ConvolutionProbe:
    """One 3x3 convolution as an iteration runs its conv3 layers: ``channels`` in and out at a
    quarter of the image's resolution, channels-last, forward plus the input-gradient backward,
    in ``dtype`` (bfloat16 through autocast, as the transfer runs it)."""

    def __init__(
        self, device: torch.device, dtype: torch.dtype, height: int, width: int, channels: int = 256
    ):
        self.device, self.dtype = device, dtype
        self.conv = (
            torch.nn.Conv2d(channels, channels, 3, padding=1, device=device)
            .requires_grad_(False)
            .to(memory_format=torch.channels_last)
        )
        h, w = max(1, height // 4), max(1, width // 4)
        self.input = (
            torch.randn(1, channels, h, w, device=device)
            .contiguous(memory_format=torch.channels_last)
            .requires_grad_(True)
        )
        self.flops = 2 * 2 * channels * channels * 9 * h * w
        self.seconds(1)  # the first call only chooses kernels

    def seconds(self, repeats: int = 5) -> float:
        """The fastest of ``repeats`` calls."""
        return fastest(self._call, self.device, repeats)

    def _call(self) -> None:
        low = self.dtype == torch.bfloat16
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=low):
            y = self.conv(self.input)
        y.float().sum().backward()


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


def load_pair(size: int, style_path: Path = STYLE) -> tuple[torch.Tensor, torch.Tensor]:
    from reportgen.images import load_image

    content = load_image(CONTENT, size).pixels
    style = load_image(style_path, size).pixels
    as_tensor = lambda p: torch.from_numpy(p).permute(2, 0, 1)[None].float().contiguous()  # noqa: E731
    return as_tensor(content), as_tensor(style)


def default_settings(steps: int, optimizer: str, precision: str) -> TransferSettings:
    """The built-in defaults, with ``steps``, ``optimizer`` and a resolved ``precision``."""
    return transfer_settings(Params(steps=steps, optimizer=optimizer), precision)


class ReportgenIterations:
    """Steps of reportgen's own objective and optimiser, one at a time, as the transfer runs
    them."""

    def __init__(
        self,
        runtime: Runtime,
        content: torch.Tensor,
        style: torch.Tensor,
        optimizer: str,
        precision: str,
        loss: Loss = "relative",
        bounded: bool = True,
    ):
        """``bounded=False`` drops the box constraint from the optimiser (the seed's loss always
        drops it, as the transfer does)."""
        params = Params()
        extractor = runtime.extractor(
            "caffe", "relu", [params.content_layer, *params.style_layer_weights]
        )
        device = runtime.device
        settings = transfer_settings(Params(steps=1, optimizer=optimizer, loss=loss), precision)
        self.objective = GatysObjective(
            extractor, content.to(device) / 255, [style.to(device) / 255], settings
        )
        self.image = (content.to(device) / 255).clone().requires_grad_(True)
        self.positions = content.shape[-1] * content.shape[-2]
        self.optimizer = make_optimizer(
            optimizer,
            self.image,
            torch.tensor([settings.lr], device=device),
            bounded and settings.bounded,
        )

    def step(self) -> None:
        terms, _ = evaluate(self.objective, self.image, self.positions)  # the transfer's own
        assert self.image.grad is not None
        self.optimizer.step(self.image.grad, terms.total)


class PasticheIterations:
    """pastiche's PasticheArtist with the same image sizes, layers, weights and optimiser."""

    def __init__(
        self, content_path: Path, style_path: Path, size: int, optimizer: str, device: str
    ):
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


def interleaved(measure: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each measurement ``rounds`` times, interleaved: every round runs them all, in an order
    reversed from one round to the next, so that a drift in the machine's speed (another
    process, the clock) falls on all of them alike.  The garbage collector is held off while a
    measurement runs."""
    names = list(measure)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            gc.collect()
            gc.disable()
            try:
                samples[name].append(measure[name]())
            finally:
                gc.enable()
    return samples


def ratio_samples(samples: dict[str, list[float]], reference: str) -> dict[str, list[float]]:
    """Each round's time of every other measurement over ``reference``'s in the same round."""
    return {
        name: [ours / theirs for ours, theirs in zip(values, samples[reference], strict=True)]
        for name, values in samples.items()
        if name != reference
    }


def spread(values: list[float]) -> float:
    """(largest - smallest) / median: how far apart the rounds of one figure landed."""
    return (max(values) - min(values)) / statistics.median(values)


def per_iteration(size: int, args, runtime: Runtime) -> dict:
    content, style = load_pair(size)
    runners = {"float32": ReportgenIterations(runtime, content, style, args.optimizer, "float32")}
    auto = runtime.precision("auto")
    if auto != "float32":
        runners[auto] = ReportgenIterations(runtime, content, style, args.optimizer, auto)
    runners["pastiche"] = PasticheIterations(
        CONTENT, STYLE, size, args.optimizer, str(runtime.device)
    )
    for runner in runners.values():  # warm-up, untimed: allocator, oneDNN/cuDNN kernel choice
        for _ in range(args.warmup):
            runner.step()
    height, width = content.shape[2:]
    # A tighter floor than the matrix product's on CPUs, where 3x3 convolutions beat it: the
    # iteration's FLOPs at the rate of one of its own convolutions, timed alone in every round.
    probes = {
        precision: ConvolutionProbe(runtime.device, getattr(torch, precision), height, width)
        for precision in {"float32", *runners} - {"pastiche"}
    }
    measure: dict[str, Callable[[], float]] = {
        name: lambda runner=runner: time_steps(runner, args.iterations, runtime.device)
        for name, runner in runners.items()
    }
    measure |= {f"conv {name}": probe.seconds for name, probe in probes.items()}
    # The matrix product's rate, the floor the issue first defined, in every round as well.
    products = {name: MatmulProbe(runtime.device, getattr(torch, name)) for name in probes}
    measure |= {f"matmul {name}": product.seconds for name, product in products.items()}
    samples = interleaved(measure, args.rounds)
    timings = {name: samples[name] for name in runners}
    seconds = {name: statistics.median(values) for name, values in timings.items()}
    # The ratio of a round's times, measured a few seconds apart, holds better than the ratio of
    # medians taken over minutes of a machine whose speed drifts.
    ratios = ratio_samples(timings, "pastiche")
    flops = iteration_flops(height, width)
    # pastiche runs in float32; each of reportgen's precisions is held to its own floors.
    own = {name: "bfloat16" if name == "bfloat16" else "float32" for name in runners}
    probe_flops = {
        "matmul": {name: product.flops for name, product in products.items()},
        "conv": {name: probe.flops for name, probe in probes.items()},
    }

    def rates(kind: str) -> dict[str, float]:
        """FLOP/s of the ``kind`` probe in each precision, from its median over the rounds."""
        return {
            name: flops_of_probe / statistics.median(samples[f"{kind} {name}"])
            for name, flops_of_probe in probe_flops[kind].items()
        }

    def fractions(kind: str) -> dict[str, list[float]]:
        """Each runner's fraction of the iteration's FLOPs at the rate of the ``kind`` probe of
        its precision, round by round (the probe ran in the same round)."""
        return {
            name: [
                flops * probe / probe_flops[kind][own[name]] / iteration
                for probe, iteration in zip(
                    samples[f"{kind} {own[name]}"], timings[name], strict=True
                )
            ]
            for name in runners
        }

    matmul_rates, conv_rates = rates("matmul"), rates("conv")
    matmul_fractions, conv_fractions = fractions("matmul"), fractions("conv")
    return {
        "size": size,
        "image": [int(width), int(height)],
        "seconds": seconds,
        "ratio_to_pastiche": {name: statistics.median(values) for name, values in ratios.items()},
        "ratio_spread": {name: spread(values) for name, values in ratios.items()},
        "floor_s": {name: flops / matmul_rates[own[name]] for name in runners},
        "matmul_flops": matmul_rates,
        "fraction_of_floor": {
            name: statistics.median(values) for name, values in matmul_fractions.items()
        },
        "floor_spread": {name: spread(values) for name, values in matmul_fractions.items()},
        "convolution_flops": conv_rates,
        "convolution_floor_s": {name: flops / conv_rates[own[name]] for name in runners},
        "fraction_of_convolution_rate": {
            name: statistics.median(values) for name, values in conv_fractions.items()
        },
        "convolution_rate_spread": {
            name: spread(values) for name, values in conv_fractions.items()
        },
        "samples": timings,
    }


def precision_effect(runtime: Runtime, size: int, steps: int) -> list[dict]:
    """Final losses (float32, of the saved picture) of float32 and bfloat16 runs from one start."""
    from reportgen.ml.transfer import run_transfer

    params = Params()
    extractor = runtime.extractor(
        "caffe", "relu", [params.content_layer, *params.style_layer_weights]
    )
    rows = []
    for style_path in (STYLE, ROOT / "images/style/mosaic.png"):
        content, style = load_pair(size, style_path)
        row = {"style": style_path.name, "size": size, "steps": steps}
        for precision in ("float32", "bfloat16"):
            started = time.perf_counter()
            output = run_transfer(
                extractor,
                content.to(runtime.device),
                style.to(runtime.device),
                default_settings(steps, "lbfgs", precision),
            )
            row[precision] = {
                "total": output.final.total,
                "content": output.final.content,
                "style": sum(output.final.style.values()),
                "seconds": time.perf_counter() - started,
            }
        row["relative_difference"] = row["bfloat16"]["total"] / row["float32"]["total"] - 1
        rows.append(row)
    return rows


def batch_throughput(runtime: Runtime, size: int, batch: int, precision: str) -> dict:
    """Seconds per run and iteration with ``batch`` runs optimised together, against one alone.

    Each is timed at two step counts and the difference taken, so the fixed costs (targets, the
    final evaluation) drop out.  Peak device memory (CUDA only) is divided among the runs.
    """
    from reportgen.ml.transfer import run_transfers

    params = Params()
    extractor = runtime.extractor(
        "caffe", "relu", [params.content_layer, *params.style_layer_weights]
    )
    content, style = (t.to(runtime.device) for t in load_pair(size))
    run_transfers(
        extractor, [(content, [style], default_settings(1, "lbfgs", precision))]
    )  # warm-up

    def timed(count: int, steps: int) -> float:
        items = [(content, [style], default_settings(steps, "lbfgs", precision))] * count
        sync(runtime.device)
        started = time.perf_counter()
        run_transfers(extractor, items)
        sync(runtime.device)
        return time.perf_counter() - started

    low, high = 2, 6
    per_run_iteration, peak = {}, {}
    for count in (1, batch):
        if runtime.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(runtime.device)
        per_run_iteration[count] = (timed(count, high) - timed(count, low)) / (high - low) / count
        if runtime.device.type == "cuda":
            peak[count] = torch.cuda.max_memory_allocated(runtime.device) / count
    return {
        "size": size,
        "batch": batch,
        "precision": precision,
        "seconds_per_run_iteration": {str(k): v for k, v in per_run_iteration.items()},
        "throughput_gain": per_run_iteration[1] / per_run_iteration[batch],
        "peak_bytes_per_run": {str(k): v for k, v in peak.items()},
    }


def figure_time(size: int, runtime: Runtime, repeats: int) -> dict:
    """Seconds for the analysis and the figures (and data files) of one pair at ``size``, after
    a 1-step transfer: the median of ``repeats``, interleaved."""
    import dataclasses

    from reportgen.figures.draw import draw_run
    from reportgen.manifest import RunSpec, load_manifest
    from reportgen.ml.stages import analysis_stage, transfer_stage
    from reportgen.stages.jobs import FigureJob, TransferTask, load_inputs

    manifest = load_manifest(ROOT / "images/manifest.yaml")
    pair = manifest.pairs[0]
    run = RunSpec(
        dataclasses.replace(pair, params=dataclasses.replace(pair.params, size=size, steps=1))
    )
    transfer = transfer_stage([TransferTask("bench", run, load_inputs(run), None, ())], runtime)[0]

    def analysis() -> float:
        return analysis_stage(run.params, transfer, runtime).seconds

    result = analysis_stage(run.params, transfer, runtime)

    def figures() -> float:
        with tempfile.TemporaryDirectory() as folder:
            job = FigureJob(transfer, result, run.params, manifest.figures, Path(folder))
            return draw_run(job).seconds

    samples = interleaved({"analysis": analysis, "figures": figures}, repeats)
    return {
        "size": size,
        "figures_s": statistics.median(samples["figures"]),
        "analysis_s": statistics.median(samples["analysis"]),
        "spread": {name: spread(values) for name, values in samples.items()},
    }


def page_time(runtime: Runtime, cache: Path, repeats: int) -> dict:
    """Seconds to render and write every page of the example site from cached results (the
    first build fills ``cache``): the median of ``repeats``."""
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    with tempfile.TemporaryDirectory() as folder:
        options = BuildOptions(
            Path(folder) / "site", ExecutorChoice(device=str(runtime.device)), cache_dir=cache
        )
        build(ROOT / "images/manifest.yaml", options)

        def pages() -> float:
            start = time.perf_counter()
            build(ROOT / "images/manifest.yaml", options)
            return time.perf_counter() - start

        samples = interleaved({"pages": pages}, repeats)["pages"]
    return {"pages_s": statistics.median(samples), "spread": spread(samples)}


def reportgen_command(manifest: Path, site: Path, cache: Path, device: str) -> list[str]:
    return build_command(manifest, site, cache, "--device", device)


def pastiche_command(size: int, steps: int, device: str, output: Path) -> list[str]:
    params = Params()
    return [
        sys.executable,
        "-m",
        "pastiche",
        "--device",
        device,
        "--optimizer",
        "lbfgs",
        "--num-steps",
        str(steps),
        "--size",
        str(size),
        "--style-size",
        str(size),
        "--no-verbose",
        "--style-layers",
        *[PASTICHE_LAYERS[layer] for layer in params.style_layer_weights],
        "--style-layer-weights",
        *[str(w) for w in params.style_layer_weights.values()],
        "--content",
        str(CONTENT),
        "--styles",
        str(STYLE),
        "--output",
        str(output),
    ]


def whole_job(size: int, steps: int, device: str, rounds: int, threads: int) -> dict:
    """One pair end to end, each tool as a fresh process: reportgen's full build (transfer,
    analysis, every figure and page) against pastiche's transfer alone, same settings.

    Feature visualisations depend on the network alone and are kept for every study on the
    machine, so only a machine's first build computes them: they are made by an untimed build
    first (its time is reported), and every timed build starts from a cache holding them and
    nothing of the pair.  Both tools get ``threads`` threads."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        manifest = folder / "manifest.yaml"
        manifest.write_text(
            f"defaults: {{size: {size}, steps: {steps}, optimizer: lbfgs}}\n"
            f"pairs:\n  - {{id: job, content: {CONTENT}, style: {STYLE}}}\n"
        )
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        warm = folder / "warm"
        started = time.perf_counter()
        command = reportgen_command(manifest, folder / "site", warm, device)
        subprocess.run(command, check=True, env=env, capture_output=True)
        first_build_s = time.perf_counter() - started
        parts: list[dict[str, float]] = []

        def ours() -> float:
            cache = folder / f"cache-{len(parts)}"
            shutil.copytree(warm / "visualisations", cache / "visualisations")
            site = folder / f"site-{len(parts)}"
            start = time.perf_counter()
            command = reportgen_command(manifest, site, cache, device)
            subprocess.run(command, check=True, env=env, capture_output=True)
            elapsed = time.perf_counter() - start
            record = json.loads((site / "pairs/job/data/pair.json").read_text())
            parts.append(record["timings"])
            return elapsed

        def theirs() -> float:
            start = time.perf_counter()
            command = pastiche_command(size, steps, device, folder / "pastiche.png")
            subprocess.run(command, check=True, env=env, capture_output=True)
            return time.perf_counter() - start

        samples = interleaved({"reportgen": ours, "pastiche": theirs}, rounds)
    ratios = ratio_samples(samples, "pastiche")["reportgen"]
    wall = statistics.median(samples["reportgen"])
    by_part = {name: statistics.median(p[name] for p in parts) for name in parts[0]}
    by_part["outside the stages"] = wall - sum(by_part.values())
    return {
        "size": size,
        "steps": steps,
        "reportgen_full_build_s": wall,
        "pastiche_transfer_s": statistics.median(samples["pastiche"]),
        "ratio": statistics.median(ratios),
        "ratio_spread": spread(ratios),
        "first_build_s": first_build_s,
        "parts_s": by_part,
        "samples": samples,
    }


def example_build(device: str) -> dict:
    """Cold and warm build of the example manifest, each a fresh `reportgen build` process."""
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, REPORTGEN_CACHE_DIR=str(Path(folder) / "cache"))
        command = [
            sys.executable,
            "-m",
            "reportgen",
            "build",
            str(ROOT / "images/manifest.yaml"),
            "-d",
            str(Path(folder) / "site"),
            "--device",
            device,
            "-q",
        ]
        times = []
        for _ in range(2):
            start = time.perf_counter()
            subprocess.run(command, check=True, env=env, capture_output=True)
            times.append(time.perf_counter() - start)
    return {"cold_s": times[0], "warm_s": times[1], "warm_over_cold": times[1] / times[0]}


def _logged(row: dict) -> dict:
    """Print a measurement as soon as it is made (the whole run takes minutes)."""
    timings = ", ".join(f"{name} {seconds:.3f}" for name, seconds in row["seconds"].items())
    print(f"  measured {row['size']} px, s/iteration: {timings}", flush=True)
    return row


def _report(results: dict) -> None:
    print(
        f"{results['device_name']} ({results['device']}, {results['threads']} threads), torch "
        f"{results['torch']}, optimiser {results['optimizer']}"
    )
    names = list(results["iterations"][0]["seconds"])
    ours = [name for name in names if name != "pastiche"]
    header = f"{'size':>5} {'image':>9} " + " ".join(f"{name + ' s/it':>16}" for name in names)
    header += (
        " "
        + " ".join(f"{name + '/pastiche':>17}" for name in ours)
        + " "
        + " ".join(f"{name + '/floor':>15}" for name in names)
    )
    header += " " + " ".join(f"{name + '/conv rate':>19}" for name in names)
    print(header)
    spreads = []
    for row in results["iterations"]:
        line = f"{row['size']:>5} {row['image'][0]:>4}x{row['image'][1]:<4} " + " ".join(
            f"{row['seconds'][name]:>16.3f}" for name in names
        )
        line += " " + " ".join(f"{row['ratio_to_pastiche'][name]:>17.2f}" for name in ours)
        line += " " + " ".join(f"{row['fraction_of_floor'][name]:>15.0%}" for name in names)
        line += " " + " ".join(
            f"{row['fraction_of_convolution_rate'][name]:>19.0%}" for name in names
        )
        print(line)
        spreads += [
            f"{row['size']} px {name}/pastiche {row['ratio_spread'][name]:.1%}" for name in ours
        ]
        spreads += [
            f"{row['size']} px {name}/conv rate {row['convolution_rate_spread'][name]:.1%}"
            for name in ours
        ]
        spreads += [
            f"{row['size']} px {name}/floor {row['floor_spread'][name]:.1%}" for name in ours
        ]
    print(
        f"spread over {results['rounds']} rounds ((largest - smallest) / median): "
        + ", ".join(spreads)
    )
    for row in results["iterations"]:
        print(
            f"  3x3 convolution alone at {row['size']} px: "
            + ", ".join(
                f"{name} {rate / 1e9:.0f} GFLOP/s"
                for name, rate in row["convolution_flops"].items()
            )
            + "; matrix product: "
            + ", ".join(
                f"{name} {rate / 1e9:.0f} GFLOP/s" for name, rate in row["matmul_flops"].items()
            )
        )
    fastest = ours[-1]
    for row in results["iterations"]:
        if row["size"] == 512:
            print(f"500 iterations at 512 px ({fastest}): {500 * row['seconds'][fastest]:.1f} s")
    for row in results.get("precision_effect", []):
        print(
            f"bfloat16 vs float32, {row['style']} at {row['size']} px, {row['steps']} L-BFGS "
            "steps: final loss "
            f"{row['bfloat16']['total']:.4g} vs {row['float32']['total']:.4g} "
            f"({row['relative_difference']:+.1%}), "
            f"{row['bfloat16']['seconds']:.1f} s vs {row['float32']['seconds']:.1f} s"
        )
    if "batch" in results:
        batch = results["batch"]
        per = batch["seconds_per_run_iteration"]
        memory = batch["peak_bytes_per_run"]
        print(
            f"{batch['batch']} runs at once at {batch['size']} px ({batch['precision']}): "
            f"{per[str(batch['batch'])]:.4f} s per run-iteration "
            f"vs {per['1']:.4f} alone, throughput x{batch['throughput_gain']:.2f}"
            + (
                f", peak memory per run {memory[str(batch['batch'])] / 1e6:.0f} MB (alone "
                f"{memory['1'] / 1e6:.0f} MB)"
                if memory
                else ""
            )
        )
    for row in results["figures"]:
        print(
            f"figures and data of one pair at {row['size']} px: {row['figures_s']:.2f} s "
            f"(analysis {row['analysis_s']:.2f} s; spread {row['spread']['figures']:.1%}, "
            f"{row['spread']['analysis']:.1%})"
        )
    pages = results["pages"]
    print(
        f"pages of the example site from the cache: {pages['pages_s']:.2f} s "
        f"(spread {pages['spread']:.1%})"
    )
    if "whole_job" in results:
        job = results["whole_job"]
        print(
            f"one pair at {job['size']} px, {job['steps']} L-BFGS steps: reportgen full build "
            f"{job['reportgen_full_build_s']:.1f} s, "
            f"pastiche transfer only {job['pastiche_transfer_s']:.1f} s, ratio {job['ratio']:.2f} "
            f"(spread {job['ratio_spread']:.1%}); by part: "
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in job["parts_s"].items())
            + f"; the machine's first build, feature visualisations included: "
            f"{job['first_build_s']:.1f} s"
        )
    if "example_build" in results:
        build = results["example_build"]
        print(
            f"example build: cold {build['cold_s']:.1f} s, warm {build['warm_s']:.1f} s "
            f"({build['warm_over_cold']:.1%} of cold)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--iterations", type=int, default=5, help="iterations per timed block")
    parser.add_argument(
        "--rounds", type=int, default=7, help="interleaved blocks per implementation"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed iterations of each before the rounds"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch's CPU threads, pinned (default: the cores this process may use)",
    )
    parser.add_argument(
        "--build-rounds", type=int, default=3, help="interleaved rounds of the whole-job builds"
    )
    parser.add_argument("--optimizer", choices=["lbfgs", "adam"], default="adam")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--batch",
        type=int,
        default=8,
        help="runs optimised together in the batch measurement (0: skip)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="image size of the batch measurement (default: 512 on a GPU, 128 on a CPU)",
    )
    parser.add_argument(
        "--precision-steps",
        type=int,
        default=100,
        help="L-BFGS steps of the precision comparison (0: skip)",
    )
    parser.add_argument(
        "--skip-build", action="store_true", help="skip the whole-job and example-manifest builds"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    runtime = Runtime(resolve_device(args.device))
    runtime.weights("caffe")
    auto = runtime.precision("auto")
    device_name = (
        torch.cuda.get_device_name(runtime.device)
        if runtime.device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    results = {
        "date": datetime.date.today().isoformat(),
        "device": str(runtime.device),
        "device_name": device_name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "optimizer": args.optimizer,
        "rounds": args.rounds,
        "auto_precision": auto,
        "iterations": [_logged(per_iteration(size, args, runtime)) for size in args.sizes],
    }
    if args.precision_steps:
        results["precision_effect"] = precision_effect(runtime, 256, args.precision_steps)
    if args.batch > 1:
        results["batch"] = batch_throughput(
            runtime,
            args.batch_size or (512 if runtime.device.type == "cuda" else 128),
            args.batch,
            auto,
        )
    results["figures"] = [figure_time(size, runtime, 5) for size in (256, 512)]
    with tempfile.TemporaryDirectory() as cache:
        results["pages"] = page_time(runtime, Path(cache), 5)
    if not args.skip_build:
        results["whole_job"] = whole_job(256, 30, args.device, args.build_rounds, args.threads)
        results["example_build"] = example_build(args.device)
    _report(results)

    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"{results['date']}-{runtime.device.type}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
