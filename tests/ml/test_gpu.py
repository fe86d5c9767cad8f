"""The CUDA path: only where a GPU is present (skipped elsewhere; the same code runs on the CPU
in the other tests, with the device set)."""

from __future__ import annotations

import json

import pytest
import torch
from studies import IMAGES, STYLE_LAYERS, make_study, rgb_tensor

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_batched_transfers_on_the_gpu_equal_one_at_a_time():
    from reportgen.images import load_image
    from reportgen.ml.runtime import Runtime
    from reportgen.ml.transfer import TransferSettings, run_transfer, run_transfers

    runtime = Runtime(torch.device("cuda"))
    extractor = runtime.extractor("caffe", "relu", ["conv4_2", *STYLE_LAYERS])
    precision = runtime.precision("auto")
    assert precision == ("bfloat16" if torch.cuda.get_device_capability() >= (8, 0) else "float32")
    cat, cup = (
        rgb_tensor(load_image(IMAGES / "content" / name, 64).pixels).cuda()
        for name in ("chelsea.png", "coffee.png")
    )
    strokes = rgb_tensor(load_image(IMAGES / "style" / "brushstrokes.jpg", 64).pixels).cuda()
    settings = [
        TransferSettings(
            10, "adam", lr, 1.0, beta, "conv4_2", STYLE_LAYERS, "content", 0, precision
        )
        for lr, beta in ((0.02, 3.0), (0.04, 10.0))
    ]
    alone = [
        run_transfer(extractor, image, strokes, s)
        for image, s in zip((cat, cup), settings, strict=True)
    ]
    together = run_transfers(
        extractor, [(cat, [strokes], settings[0]), (cup, [strokes], settings[1])]
    )
    for a, b in zip(alone, together, strict=True):
        assert b.final.total == pytest.approx(a.final.total, rel=1e-2)
        assert (a.result_rgb.int() - b.result_rgb.int()).abs().float().mean().item() <= 2.0
    # L-BFGS, the default: batched runs keep their own histories on the GPU too.
    lbfgs = [
        TransferSettings(
            20, "lbfgs", 1.0, 1.0, beta, "conv4_2", STYLE_LAYERS, "content", 0, precision
        )
        for beta in (3.0, 10.0)
    ]
    alone = [
        run_transfer(extractor, image, strokes, s)
        for image, s in zip((cat, cup), lbfgs, strict=True)
    ]
    together = run_transfers(extractor, [(cat, [strokes], lbfgs[0]), (cup, [strokes], lbfgs[1])])
    for a, b in zip(alone, together, strict=True):
        assert b.final.total == pytest.approx(a.final.total, rel=0.05)
        assert b.final.total < 0.5 * b.history[0].total


def test_auto_means_every_visible_gpu():
    from reportgen.ml.runtime import resolve_devices

    assert resolve_devices("auto") == [
        torch.device("cuda", index) for index in range(torch.cuda.device_count())
    ]
    assert resolve_devices("cuda") == resolve_devices("auto")


def test_a_gpu_build_records_its_device_and_memory_and_matches_the_cpu(tmp_path):
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    finals = {}
    for device in ("cpu", "cuda"):
        manifest = make_study(tmp_path / device, steps=10, size=48)
        manifest.write_text(
            manifest.read_text().replace(
                "  steps: 10\n", "  steps: 10\n  optimizer: adam\n  precision: float32\n"
            )
        )
        build(
            manifest,
            BuildOptions(
                tmp_path / device / "site", ExecutorChoice(device=device), use_cache=False
            ),
        )
        record = json.loads(
            (tmp_path / device / "site" / "pairs" / "cat" / "data" / "pair.json").read_text()
        )
        finals[device] = record["losses"]["final"]["total"]
        if device == "cuda":  # computed by a device worker process
            assert (
                record["device"].startswith("cuda:") and record["peak_memory"]["device_bytes"] > 0
            )
    assert finals["cuda"] == pytest.approx(finals["cpu"], rel=1e-3)
