"""One small real transfer ends visibly stylised, by the distances the pair records."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from conftest import IMAGES, STYLE_LAYERS
from reportgen.build import build

MANIFEST = """\
title: Stylisation check
pairs:
  - id: cat-strokes
    content: img/chelsea.png
    style: img/brushstrokes.jpg
    size: 64
    steps: 40
    optimizer: lbfgs
"""


def test_a_real_transfer_is_stylised(tmp_path):
    (tmp_path / "img").mkdir()
    shutil.copyfile(IMAGES / "content" / "chelsea.png", tmp_path / "img" / "chelsea.png")
    shutil.copyfile(IMAGES / "style" / "brushstrokes.jpg", tmp_path / "img" / "brushstrokes.jpg")
    (tmp_path / "manifest.yaml").write_text(MANIFEST)
    site = tmp_path / "site"
    summary = build(tmp_path / "manifest.yaml", site, device="cpu", cache_dir=tmp_path / "cache")
    assert summary.computed == ["cat-strokes"]

    pair = site / "pairs" / "cat-strokes"
    record = json.loads((pair / "data" / "pair.json").read_text())
    grams = record["stylisation"]["style_gram"]
    assert set(grams) == set(STYLE_LAYERS)

    # The result's style (Grams) moved towards the style image: for most style layers its distance
    # is well below the content image's.
    well_below = [layer for layer, d in grams.items() if d["result"] < 0.6 * d["content"]]
    closer = [layer for layer, d in grams.items() if d["result"] < d["content"]]
    assert len(well_below) >= 3, grams
    assert len(closer) >= 4, grams

    # ... while its content (conv4_2 maps) stayed nearer the photograph than the painting is.
    content = record["stylisation"]["content_features"]
    assert content["result"] < 0.8 * content["style"], content
    assert content["result"] > 0  # it did change

    # The losses went down, and the picture visibly changed.
    losses = record["losses"]
    assert losses["final"]["total"] < 0.6 * losses["total"][0]
    before = np.asarray(Image.open(pair / "content.png"), dtype=np.float64)
    after = np.asarray(Image.open(pair / "result.png"), dtype=np.float64)
    assert before.shape == after.shape
    assert np.abs(after - before).mean() > 5
