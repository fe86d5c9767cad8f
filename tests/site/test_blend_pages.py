"""Blends of two styles and a style per region, built end to end: records, pages, published
Grams."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from studies import IMAGES

from reportgen.build import BuildOptions, build
from reportgen.execute import ExecutorChoice


@pytest.fixture(scope="module")
def blend_site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("blend")
    (folder / "img").mkdir()
    for source, name in (
        (IMAGES / "content" / "coffee.png", "cup.png"),
        (IMAGES / "style" / "hubble_deep_field.jpg", "hubble.jpg"),
        (IMAGES / "style" / "brick.png", "brick.png"),
    ):
        shutil.copyfile(source, folder / "img" / name)
    left = np.zeros((40, 60), np.uint8)
    left[:, :30] = 255
    Image.fromarray(left).save(folder / "img" / "left.png")
    Image.fromarray(255 - left).save(folder / "img" / "right.png")
    manifest = folder / "manifest.yaml"
    manifest.write_text(
        textwrap.dedent(
            """\
            defaults:
              size: 32
              steps: 8
            pairs:
              - id: mixed
                content: img/cup.png
                style: [img/hubble.jpg, img/brick.png]
                style_blend: [3, 1]
              - id: walk
                content: img/cup.png
                style: [img/hubble.jpg, img/brick.png]
                sweep:
                  style_blend: [[1, 0], [0, 1]]
              - id: plain
                content: img/cup.png
                style: img/hubble.jpg
              - id: halves
                content: img/cup.png
                regions:
                  - {mask: img/left.png, style: img/hubble.jpg}
                  - {mask: img/right.png, style: img/brick.png}
            """
        )
    )
    site = folder / "site"
    build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=folder / "cache"))
    return site


def test_a_blend_s_record_has_every_style_its_weights_and_distances(blend_site):
    record = json.loads((blend_site / "pairs" / "mixed" / "data" / "pair.json").read_text())
    assert record["inputs"]["style"]["file"] == "img/hubble.jpg"
    assert record["inputs"]["style2"]["file"] == "img/brick.png"
    assert record["parameters"]["style_blend"] == [0.75, 0.25]
    per_style = record["stylisation"]["per_style"]
    assert set(per_style) == set(record["stylisation"]["style_gram"])
    assert all(len(row) == 2 for row in per_style.values())
    plain = json.loads((blend_site / "pairs" / "plain" / "data" / "pair.json").read_text())
    assert "style2" not in plain["inputs"] and "per_style" not in plain["stylisation"]
    assert plain["parameters"]["style_blend"] == []


def test_a_blend_s_pages_show_every_style_and_the_target_gram(blend_site):
    run = blend_site / "pairs" / "mixed"
    page = (run / "index.html").read_text()
    assert "A blend of 2 styles" in page
    assert "img/hubble.jpg" in page and "img/brick.png" in page
    assert "weight 0.75" in page and "weight 0.25" in page
    assert (run / "style2.png").is_file() and (run / "thumbs" / "style2.webp").is_file()
    layer = (run / "conv2_1.html").read_text()
    assert "the blend&#39;s target" in layer or "the blend's target" in layer
    assert (run / "conv2_1" / "gram-blend.webp").is_file()
    plain = blend_site / "pairs" / "plain"
    assert "A blend of" not in (plain / "index.html").read_text()
    assert not (plain / "conv2_1" / "gram-blend.webp").exists()


def test_a_blend_s_published_grams_hold_each_style_and_the_target(blend_site):
    with np.load(blend_site / "pairs" / "mixed" / "data" / "grams.npz") as grams:
        style, other, target = (
            grams["style/conv1_1"],
            grams["style2/conv1_1"],
            grams["blend/conv1_1"],
        )
    assert style.shape == other.shape == target.shape == (64, 64)
    record = json.loads((blend_site / "pairs" / "mixed" / "data" / "pair.json").read_text())
    sizes = record["layers"]["conv1_1"]["map_sizes"]
    expected = 0.75 * style / np.prod(sizes["style"]) + 0.25 * other / np.prod(sizes["style2"])
    assert np.allclose(target, expected, rtol=1e-5)


def test_a_sweep_walks_from_one_style_to_the_other(blend_site):
    walk = blend_site / "pairs" / "walk"
    first = json.loads((walk / "style_blend-1_0" / "data" / "pair.json").read_text())
    last = json.loads((walk / "style_blend-0_1" / "data" / "pair.json").read_text())
    assert first["parameters"]["style_blend"] == [1.0, 0.0]
    assert last["parameters"]["style_blend"] == [0.0, 1.0]

    # Along the walk the result leaves the first style for the second: its distances to each,
    # weighed by layer as the loss weighs them (a few steps at 32 px do not settle every layer).
    def summed(record: dict, style: int) -> float:
        weights = record["parameters"]["style_layers"]
        rows = record["stylisation"]["per_style"]
        return sum(weights[layer] * row[style]["result"] for layer, row in rows.items())

    assert summed(first, 0) < summed(last, 0)
    assert summed(last, 1) < summed(first, 1)


def test_regions_are_recorded_and_shown_with_their_masks(blend_site):
    run = blend_site / "pairs" / "halves"
    record = json.loads((run / "data" / "pair.json").read_text())
    assert record["regions"] == [
        {"mask": "img/left.png", "style": "style"},
        {"mask": "img/right.png", "style": "style2"},
    ]
    assert record["inputs"]["style2"]["file"] == "img/brick.png"
    shares = record["stylisation"]["region_shares"]
    assert shares == pytest.approx([0.5, 0.5], abs=0.02)
    assert all(len(row) == 2 for row in record["stylisation"]["per_region"].values())
    page = (run / "index.html").read_text()
    assert "A style per region" in page and "img/left.png" in page and "img/right.png" in page
    for k in (1, 2):
        overlay = np.asarray(Image.open(run / "regions" / f"region-{k}.webp").convert("L"))
        left, right = overlay[:, : overlay.shape[1] // 3], overlay[:, -overlay.shape[1] // 3 :]
        inside, outside = (left, right) if k == 1 else (right, left)
        assert inside.std() > outside.std()  # the region keeps the picture, the rest is dimmed
