"""What building on Ray costs per run, against the local executor, in one run.

    python benchmarks/ray_overhead.py [--pairs 12] [--size 128] [--steps 60]
        [--gpu-shares 1 0.5 0.25]

1. Writes a study of ``--pairs`` distinct pairs (``benchmarks/study.py``) at the example's 128 px
   and 60 steps, and builds it cold with the local executor (a fresh ``reportgen build`` process,
   empty cache).
2. Starts a Ray cluster on this machine (``ray start --head``, timed apart) and builds the same
   study cold with ``--executor ray --ray-address auto``, again a fresh process and cache.
3. Prints the Ray executor's overhead per run, ``(ray - local) / pairs``, and that as a fraction of
   the local build's seconds per run (the goal: under 10%).
4. Where the cluster has GPUs: the Ray build's runs per second with each of ``--gpu-shares``
   GPUs per device actor (0.5: two actors share a GPU).

Writes ``benchmarks/results/<date>-ray-overhead.json``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recorded import build_command, save_results  # noqa: E402
from study import write_study  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def build(manifest: Path, folder: Path, name: str, *options: str) -> float:
    return timed(
        build_command(manifest, folder / f"{name}-site", folder / f"{name}-cache", *options)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--gpu-shares", type=float, nargs="*", default=[1.0, 0.5, 0.25])
    args = parser.parse_args()
    results: dict = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "pairs": args.pairs,
        "size": args.size,
        "steps": args.steps,
    }
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        manifest = write_study(folder / "study", args.pairs, args.size, args.steps)
        local = build(manifest, folder, "local", "--device", "auto")
        print(f"local executor, cold: {local:.1f} s ({local / args.pairs:.2f} s a run)", flush=True)
        started = time.perf_counter()
        subprocess.run(
            [RAY, "start", "--head", "--include-dashboard=false", "--disable-usage-stats"],
            check=True,
            capture_output=True,
        )
        results["ray_start_s"] = time.perf_counter() - started
        print(f"ray start --head: {results['ray_start_s']:.1f} s", flush=True)
        try:
            on_ray = build(manifest, folder, "ray", "--executor", "ray", "--ray-address", "auto")
            print(
                f"Ray executor, cold: {on_ray:.1f} s ({on_ray / args.pairs:.2f} s a run)",
                flush=True,
            )
            overhead = (on_ray - local) / args.pairs
            results.update(
                {
                    "local_s": local,
                    "ray_s": on_ray,
                    "overhead_s_per_run": overhead,
                    "overhead_fraction": overhead / (local / args.pairs),
                }
            )
            print(
                f"overhead: {overhead:+.2f} s a run, {results['overhead_fraction']:+.1%} of a "
                "local run",
                flush=True,
            )
            gpus = _cluster_gpus()
            if gpus:
                results["gpu_shares"] = []
                for share in args.gpu_shares:
                    seconds = build(
                        manifest,
                        folder,
                        f"share-{share}",
                        "--executor",
                        "ray",
                        "--ray-address",
                        "auto",
                        "--ray-gpus",
                        str(share),
                    )
                    results["gpu_shares"].append(
                        {
                            "gpus_per_actor": share,
                            "seconds": seconds,
                            "runs_per_s": args.pairs / seconds,
                        }
                    )
                    print(
                        f"  {share:g} GPU per actor: {args.pairs / seconds:.2f} runs/s", flush=True
                    )
        finally:
            subprocess.run([RAY, "stop", "--force"], capture_output=True)
    save_results(results, "ray-overhead")


def _cluster_gpus() -> float:
    code = (
        "import ray; ray.init(address='auto', logging_level='ERROR'); "
        "print(ray.cluster_resources().get('GPU', 0))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    try:
        return float(shown.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 0.0


if __name__ == "__main__":
    main()
