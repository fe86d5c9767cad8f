"""The controls users ask for, through a real build: colour preservation, coarse to fine, total
variation, the style image's scale, snapshots and the seed notebook's recipe.  Each must work in
a variant, reach pair.json and the pair page, and be part of the cache key."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from PIL import Image
from studies import make_study

from reportgen.build import BuildOptions, build
from reportgen.color import to_yiq
from reportgen.execute import ExecutorChoice
from reportgen.manifest import PRESETS, Params
from reportgen.stages.cache import run_keys

VARIANTS = textwrap.dedent(
    """\
        variants:
          - {id: plain}
          - {id: own-colours, preserve_color: luminance}
          - {id: matched-colours, preserve_color: histogram}
          - {id: scales, coarse_to_fine: 32, snapshot_every: 2, tv_weight: 2, style_scale: 0.5}
          - {id: notebook, preset: seed, steps: 4}
    """
)


@pytest.fixture(scope="module")
def controls_site(tmp_path_factory, session_cache):
    folder = tmp_path_factory.mktemp("controls")
    manifest = make_study(folder, size=48, steps=4, cup_extra=textwrap.indent(VARIANTS, "    "))
    site = folder / "site"
    summary = build(
        manifest, BuildOptions(site, ExecutorChoice(device="cpu", jobs=2), cache_dir=session_cache)
    )  # figures in two processes
    assert not summary.failed, summary
    return site


def run(site, variant):
    folder = site / "pairs" / "cup" / variant
    record = json.loads((folder / "data" / "pair.json").read_text())
    pixels = {
        role: np.asarray(Image.open(folder / f"{role}.png").convert("RGB"))
        for role in ("content", "style", "result")
    }
    return folder, record, pixels


def test_every_control_is_recorded_and_shown_on_the_pair_page(controls_site):
    expected = {
        "own-colours": {"preserve_color": "luminance"},
        "matched-colours": {"preserve_color": "histogram"},
        "scales": {"coarse_to_fine": 32, "snapshot_every": 2, "tv_weight": 2.0, "style_scale": 0.5},
        "notebook": {key: value for key, value in PRESETS["seed"].items() if key != "style_layers"}
        | {"steps": 4, "preset": "seed"},
    }
    for variant, values in expected.items():
        folder, record, _ = run(controls_site, variant)
        page = (folder / "index.html").read_text()
        for key, value in values.items():
            assert record["parameters"][key] == value, (variant, key)
            assert f"<code>{key}</code>" in page, (variant, key)
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            assert shown in page, (variant, key, shown)


def test_luminance_keeps_the_content_images_colours(controls_site):
    _, record, pixels = run(controls_site, "own-colours")
    # The network saw grey images; the result has the content's chroma and its own luminance.
    assert (pixels["content"][..., 0] == pixels["content"][..., 1]).all() and (
        pixels["style"][..., 1] == pixels["style"][..., 2]
    ).all()
    _, _, plain = run(controls_site, "plain")
    original = to_yiq(plain["content"])
    result = to_yiq(pixels["result"])
    assert np.abs(result[..., 1:] - original[..., 1:]).mean() < 2.0  # I and Q, within rounding
    assert (
        np.abs(result[..., 0] - to_yiq(pixels["content"])[..., 0]).mean() > 3
    )  # the luminance was restyled
    assert (
        "luminance" in (controls_site / "pairs" / "cup" / "own-colours" / "index.html").read_text()
    )


def test_histogram_matching_gives_the_style_the_contents_colours(controls_site):
    _, _, pixels = run(controls_site, "matched-colours")
    _, _, plain = run(controls_site, "plain")
    content_mean = pixels["content"].reshape(-1, 3).mean(axis=0)
    assert np.abs(pixels["style"].reshape(-1, 3).mean(axis=0) - content_mean).max() < 3
    assert (
        np.abs(plain["style"].reshape(-1, 3).mean(axis=0) - content_mean).max() > 10
    )  # it was not so before
    assert (pixels["content"] == plain["content"]).all()


def test_scales_snapshots_and_style_scale_reach_the_page(controls_site):
    folder, record, pixels = run(controls_site, "scales")
    assert [max(s["width"], s["height"]) for s in record["scales"]] == [34, 48]
    assert len(record["losses"]["step"]) == 8 and any(record["losses"]["tv"])
    assert max(pixels["style"].shape[:2]) == 24  # style_scale 0.5 of 48 px
    steps = [shot["step"] for shot in record["snapshots"]]
    assert steps == [0, 2, 4, 6, 8]
    page = (folder / "index.html").read_text()
    for shot in record["snapshots"]:
        assert (folder / shot["file"]).is_file() and shot["file"] in page
    assert "The optimisation, step by step" in page and "Coarse to fine" in page
    last = np.asarray(Image.open(folder / record["snapshots"][-1]["file"]).convert("RGB")).astype(
        int
    )
    # The strip ends with the result (as WebP, so up to its compression).
    assert (
        np.abs(last - pixels["result"]).mean()
        < 0.3 * np.abs(pixels["content"].astype(int) - pixels["result"]).mean()
    )


def test_the_seed_recipe_fits_the_style_to_the_content_and_runs_unbounded_adam(controls_site):
    _, record, pixels = run(controls_site, "notebook")
    assert pixels["style"].shape == pixels["content"].shape  # style_scale: content
    assert record["parameters"]["optimizer"] == "adam" and record["parameters"]["loss"] == "seed"
    assert record["precision"] == "float32"
    losses = record["losses"]
    assert losses["total"][0] > 1e3  # the seed's raw-Gram scale, not the relative one
    assert losses["final"]["total"] < losses["total"][0]


def test_every_control_is_part_of_the_cache_key():
    base = run_keys("c", ("s",), Params(), "w")
    changes = {
        "loss": "seed",
        "tv_weight": 1.0,
        "style_scale": 0.5,
        "preserve_color": "luminance",
        "coarse_to_fine": 128,
        "snapshot_every": 10,
    }
    for name, value in changes.items():
        keys = run_keys("c", ("s",), Params(**{name: value}), "w")
        assert keys.transfer != base.transfer and keys.figures != base.figures, name
    assert run_keys("c", ("s",), Params(style_scale="content"), "w").transfer != base.transfer
    # An analysis parameter leaves the transfer as it is.
    ranked = run_keys("c", ("s",), Params(top_pairs=5), "w")
    assert (
        ranked.transfer == base.transfer
        and ranked.analysis != base.analysis
        and ranked.figures != base.figures
    )
    # Where the values came from is a label: the same values under a preset's name are the same run.
    assert run_keys("c", ("s",), Params(preset="seed"), "w") == base


def test_a_blend_s_images_and_weights_are_part_of_the_cache_key():
    single = run_keys("c", ("s",), Params(), "w")
    blend = run_keys("c", ("s", "t"), Params(style_blend=(0.5, 0.5)), "w")
    assert blend.transfer != single.transfer
    assert run_keys("c", ("s", "t"), Params(style_blend=(0.7, 0.3)), "w") != blend
    assert run_keys("c", ("t", "s"), Params(style_blend=(0.5, 0.5)), "w") != blend
    # A run of one style image keeps the key it had before blends (this one's, computed by the
    # code of the day before), so caches made then stay valid.
    assert single.transfer == "2fea399846882533c172f54f60b25b975adac709d4ace5980235766b93e0c786"
