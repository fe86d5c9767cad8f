"""A page per filter across the study: its visualisation, the study's images where it fires most
(checked against the network run here on the images as published), the pairs it is in, and the
links to it from the layer pages."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reportgen.build import BuildOptions, build
from reportgen.execute import ExecutorChoice
from reportgen.layers import receptive_field

LAYER = "conv2_1"


def _made_images(folder: Path) -> dict[str, Path]:
    """Four 48 px images unlike each other: noise, stripes, a checkerboard, colour patches."""
    rng = np.random.default_rng(7)
    side = 48
    y, x = np.mgrid[:side, :side]
    stripes = np.where((x // 3) % 2 == 0, 230, 20)
    checker = np.where(((x // 6) + (y // 6)) % 2 == 0, 250, 5)
    patches = np.zeros((side, side, 3))
    patches[:24, :24] = (220, 30, 30)
    patches[24:, 24:] = (30, 30, 220)
    patches[:24, 24:] = (30, 200, 40)
    pixels = {
        "noise.png": rng.integers(0, 256, (side, side, 3)),
        "stripes.png": np.stack([stripes, stripes, stripes], axis=2),
        "checker.png": np.stack([checker, checker // 2, 255 - checker], axis=2),
        "patches.png": patches,
    }
    paths = {}
    for name, array in pixels.items():
        paths[name] = folder / name
        Image.fromarray(array.astype(np.uint8)).save(paths[name])
    return paths


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("filter-pages")
    images = _made_images(folder)
    manifest = folder / "manifest.yaml"
    manifest.write_text(
        textwrap.dedent(
            f"""\
            title: Filters
            feature_visualisation: {{filters: top, size: 16, steps: 2, examples: 3}}
            defaults: {{size: 48, steps: 2, top_pairs: 3}}
            pairs:
              - id: one
                content: {images["noise.png"]}
                style: {images["checker.png"]}
              - id: two
                content: {images["stripes.png"]}
                style: {images["patches.png"]}
            """
        ),
        encoding="utf-8",
    )
    options = BuildOptions(
        folder / "site", ExecutorChoice(device="cpu"), cache_dir=folder / "cache"
    )
    summary = build(manifest, options)
    assert not summary.failed, summary
    return manifest, options, summary


def _record(site: Path) -> dict:
    return json.loads((site / "filters" / "filters.json").read_text())


def test_every_filter_of_a_top_pair_has_a_page_with_its_visualisation(study):
    manifest, options, summary = study
    site = options.site_dir
    wanted = set()
    for run in ("one", "two"):
        record = json.loads((site / "pairs" / run / "data" / "pair.json").read_text())
        for layer, info in record["layers"].items():
            wanted |= {(layer, k) for cell in info["top_pairs"]["style"] for k in cell[:2]}
    listed = {(item["layer"], item["filter"]) for item in _record(site)["filters"]}
    assert listed == wanted
    assert summary.visualised == len(wanted)
    for layer, k in wanted:
        assert (site / "filters" / layer / f"{k}.html").is_file()
        with Image.open(site / "filters" / layer / f"{k}.png") as image:
            assert image.format == "PNG" and image.size == (16, 16)


def test_examples_are_the_studys_true_top_activations(study, caffe_weights):
    """Each filter's examples, recomputed here: the network run on every image of the study as
    published, each image's largest activation of the filter, the three largest first."""
    from reportgen.ml.vgg import FeatureExtractor

    _, options, _ = study
    site = options.site_dir
    extractor = FeatureExtractor(caffe_weights, [LAYER], "relu")
    maps = {}
    for run in ("one", "two"):
        for role in ("content", "style", "result"):
            pixels = np.asarray(Image.open(site / "pairs" / run / f"{role}.png").convert("RGB"))
            rgb = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float()
            with torch.no_grad():
                features = extractor(extractor.preprocessing.to_network(rgb))[LAYER][0]
            maps[(run, role)] = features.float().numpy()  # (C, h, w)
    checked = 0
    side, stride = receptive_field(LAYER)
    for item in _record(site)["filters"]:
        if item["layer"] != LAYER:
            continue
        k = item["filter"]
        peaks = {image: float(found[k].max()) for image, found in maps.items()}
        expected = sorted(peaks, key=peaks.get, reverse=True)[:3]
        listed = [(example["run"], example["role"]) for example in item["examples"]]
        assert listed == expected, (k, peaks)
        for example in item["examples"]:
            found = maps[(example["run"], example["role"])][k]
            assert example["activation"] == pytest.approx(found.max(), rel=1e-3)
            row, column = np.unravel_index(found.argmax(), found.shape)
            left, top = column * stride, row * stride  # the field of that position, uncut
            field = example["receptive_field"]
            assert abs(field[0] - max(0, left - side // 2 + stride // 2)) <= 1, (field, left)
            assert abs(field[1] - max(0, top - side // 2 + stride // 2)) <= 1, (field, top)
        checked += 1
    assert checked >= 3


def test_layer_pages_link_every_top_pair_filter_to_its_page(study):
    _, options, _ = study
    site = options.site_dir
    page = (site / "pairs" / "one" / f"{LAYER}.html").read_text()
    record = json.loads((site / "pairs" / "one" / "data" / "pair.json").read_text())
    for cell in record["layers"][LAYER]["top_pairs"]["style"]:
        for k in cell[:2]:
            assert f'href="../../filters/{LAYER}/{k}.html"' in page, k
    for link in re.findall(r'href="(\.\./\.\./filters/[^"#]+)"', page):
        assert (site / "pairs" / "one" / link).resolve().is_file(), link
    index = (site / "index.html").read_text()
    assert f'href="filters/{LAYER}/index.html"' in index


def test_a_rebuild_takes_every_visualisation_from_the_cache(study):
    manifest, options, _ = study
    again = build(manifest, options)
    assert again.visualised == 0
    assert (options.site_dir / "filters" / LAYER / "index.html").is_file()


def test_none_visualises_nothing_and_links_no_filter_page(study, tmp_path):
    manifest, options, _ = study
    text = manifest.read_text().replace("filters: top,", "filters: none,")
    quiet = tmp_path / "manifest.yaml"
    quiet.write_text(text)
    summary = build(quiet, BuildOptions(tmp_path / "site", options.executors, options.cache_dir))
    assert summary.visualised == 0
    assert not (tmp_path / "site" / "filters" / LAYER).exists()
    assert "filters/" not in (tmp_path / "site" / "pairs" / "one" / f"{LAYER}.html").read_text()
