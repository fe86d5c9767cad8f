"""reportgen.transfer and reportgen.Study: one cache shared with builds both ways, runs computed
on demand and only those asked for, errors told in one message, summaries for Jupyter, Ctrl-C.

Real transfers of the repository's images at 32 px, on the CPU.  The module shares one cache
(a transfer computed once is reused by the tests that need it), and tests that count the cache's
entries use a cache of their own.  Sites draw no feature visualisations, montages or pair
sheets: those are the build's tests', and each would cost seconds here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from studies import ANALYSED, IMAGES

import reportgen
from reportgen.api.progress import Bars

CONTENT = IMAGES / "content" / "chelsea.png"
OTHER_CONTENT = IMAGES / "content" / "coffee.png"
STYLE = IMAGES / "style" / "brick.png"
ROLES = ("content", "style", "result")
QUICK = {"device": "cpu", "progress": False}
SITE_OPTIONS = """\
feature_visualisation: none
figures:
  montages: none
  pair_sheets: false
"""


def pair_text(pair_id: str, content: Path, style: Path, extra: str = "") -> str:
    """One entry of ``pairs:``, its images by absolute path (quoted: JSON is YAML)."""
    return (
        f"  - id: {pair_id}\n"
        f"    content: {json.dumps(str(content))}\n"
        f"    style: {json.dumps(str(style))}\n" + extra
    )


def write_manifest(folder: Path, pairs: str, *, steps: int = 3, title: str = "API study") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.yaml"
    manifest.write_text(
        f"title: {json.dumps(title)}\n{SITE_OPTIONS}"
        f"defaults:\n  size: 32\n  steps: {steps}\npairs:\n{pairs}",
        encoding="utf-8",
    )
    return manifest


def entries(cache: Path, stage: str = "transfer") -> list[str]:
    """Every name in a stage's folder of the cache, hidden (partial) ones included."""
    folder = cache / stage
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def stored(cache: Path, stage: str = "transfer") -> list[str]:
    """The stage's complete entries (a partial one is produced in a hidden folder)."""
    return [name for name in entries(cache, stage) if not name.startswith(".")]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("api-cache")


@pytest.fixture(scope="module")
def direct_run(cache) -> reportgen.Run:
    """chelsea × brick, 32 px, 3 steps, computed by reportgen.transfer into the shared cache."""
    return reportgen.transfer(CONTENT, STYLE, cache_dir=cache, size=32, steps=3, **QUICK)


@pytest.fixture(scope="module")
def cat_manifest(tmp_path_factory) -> Path:
    """A study of the same pair with the same parameters, under a label of its own."""
    return write_manifest(tmp_path_factory.mktemp("cat-study"), pair_text("cat", CONTENT, STYLE))


@pytest.fixture
def variants_manifest(tmp_path) -> Path:
    pairs = pair_text(
        "cat",
        CONTENT,
        STYLE,
        "    variants:\n"
        "      - {id: few, steps: 2}\n"
        "      - {id: own-colours, preserve_color: luminance}\n",
    ) + pair_text("cup", OTHER_CONTENT, STYLE)
    return write_manifest(tmp_path / "study", pairs, title="Cats & <bricks>")


# --- one cache for the API and the builds ---------------------------------------------------------


def test_a_transfer_is_a_cache_hit_for_a_study_of_the_same_pair(
    direct_run, cache, cat_manifest, tmp_path
):
    """A notebook's run is the build's: the site is made of the very same result and Grams,
    neither optimised nor analysed again (pair labels are no part of the cache key)."""
    study = reportgen.Study(cat_manifest, cache_dir=cache, **QUICK)
    summary = study.build(tmp_path / "site")
    assert summary.stages_computed["transfer"] == 0
    assert summary.stages_computed["analysis"] == 0
    pair = tmp_path / "site" / "pairs" / "cat"
    assert np.array_equal(pixels(pair / "result.png"), np.asarray(direct_run.result))
    with np.load(pair / "data" / "grams.npz") as grams:
        assert {f"{role}/{layer}" for role in ROLES for layer in ANALYSED} <= set(grams.files)
        for key in grams.files:
            role, layer = key.split("/")
            np.testing.assert_array_equal(grams[key], direct_run.grams(role)[layer], err_msg=key)


def test_a_built_study_is_a_cache_hit_for_its_runs_and_for_transfer(cache, tmp_path, request):
    """The other way round: after a build, asking the study (or a new one, or transfer()) for
    the run optimises nothing and adds no cache entry, and gives the site's pixels."""
    manifest = write_manifest(tmp_path, pair_text("cup", OTHER_CONTENT, STYLE), steps=2)
    study = reportgen.Study(manifest, cache_dir=cache, **QUICK)
    summary = study.build(tmp_path / "site")
    assert summary.stages_computed["transfer"] == 1
    before = {stage: stored(cache, stage) for stage in ("transfer", "analysis")}
    request.getfixturevalue("no_optimisation")  # from here, an optimisation step raises

    runs = [
        study["cup"],
        reportgen.Study(manifest, cache_dir=cache, **QUICK)["cup"],
        reportgen.transfer(OTHER_CONTENT, STYLE, cache_dir=cache, size=32, steps=2, **QUICK),
    ]
    assert {stage: stored(cache, stage) for stage in before} == before
    site_result = pixels(tmp_path / "site" / "pairs" / "cup" / "result.png")
    for run in runs:
        assert np.array_equal(np.asarray(run.result), site_result), run.name
        for role in ROLES:
            np.testing.assert_array_equal(
                run.grams(role)["conv4_2"], runs[0].grams(role)["conv4_2"]
            )
    assert runs[2].name == "coffee-brick"  # transfer() names the pair after its images


def test_images_given_as_pixels_give_the_result_of_their_file(direct_run, cache):
    """A PIL image or a uint8 array holding a file's pixels is the same input as the file."""
    with Image.open(CONTENT) as content, Image.open(STYLE) as style:
        from_pil = reportgen.transfer(content, style, cache_dir=cache, size=32, steps=3, **QUICK)
        from_arrays = reportgen.transfer(
            np.array(content.convert("RGB")),
            np.array(style.convert("RGB")),
            cache_dir=cache,
            size=32,
            steps=3,
            **QUICK,
        )
    expected = np.asarray(direct_run.result)
    for run in (from_pil, from_arrays):
        assert np.array_equal(np.asarray(run.content), np.asarray(direct_run.content))
        assert np.array_equal(np.asarray(run.result), expected)


# --- runs by name ---------------------------------------------------------------------------------


def test_a_variant_asked_for_by_name_is_the_only_run_computed(variants_manifest, tmp_path):
    cache = tmp_path / "cache"
    study = reportgen.Study(variants_manifest, cache_dir=cache, **QUICK)
    assert study.names == ["cat/few", "cat/own-colours", "cup"]
    assert len(study) == 3 and "cat/own-colours" in study and "cat" not in study
    assert stored(cache) == []  # opening a study computes nothing

    run = study["cat/few"]
    assert run.name == "cat/few" and run.params.steps == 2 and len(run.losses.total) == 2
    assert len(stored(cache)) == 1 and len(stored(cache, "analysis")) == 1
    assert study["cat/few"] is run  # asked again: the same object, nothing recomputed
    assert len(stored(cache)) == 1
    # Like a mapping, a study iterates over its names; computing them all is compute()'s.
    assert list(study) == study.names and len(stored(cache)) == 1


def test_an_image_moved_after_the_study_was_read_is_named_in_one_message(tmp_path):
    """A study lives for a notebook session: its files may move meanwhile."""
    image = tmp_path / "content.png"
    image.write_bytes(CONTENT.read_bytes())
    manifest = write_manifest(tmp_path / "study", pair_text("moved", image, STYLE))
    study = reportgen.Study(manifest, cache_dir=tmp_path / "cache", **QUICK)
    image.unlink()
    with pytest.raises(reportgen.ReportgenError, match="content.png"):
        study["moved"]


def test_an_unknown_run_name_is_a_key_error_naming_the_runs(variants_manifest, tmp_path):
    cache = tmp_path / "cache"
    study = reportgen.Study(variants_manifest, cache_dir=cache, **QUICK)
    assert "nope" not in study
    with pytest.raises(reportgen.RunNotFound) as info:
        study["nope"]
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "'nope'" in message and "manifest.yaml" in message
    assert all(name in message for name in study.names)
    # A typo in a list computes nothing, not even the names spelt right.
    with pytest.raises(reportgen.RunNotFound, match="'cat/none'"):
        study.compute(["cup", "cat/none"])
    assert stored(cache) == []


# --- errors told in one message -------------------------------------------------------------------


def test_bad_transfer_arguments_are_all_reported_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(reportgen.ParameterError) as info:
        reportgen.transfer(
            "missing.png", STYLE, size=5, colour=1, cache_dir=tmp_path / "cache", **QUICK
        )
    assert isinstance(info.value, reportgen.ManifestError)
    problems = info.value.problems
    assert len(problems) == 3, problems
    assert all(problem.startswith("reportgen.transfer() ") for problem in problems)
    message = str(info.value)
    assert "content: file not found" in message and "missing.png" in message
    assert "size: 5 is out of range (allowed: 16..16384)" in message
    assert "colour: unknown key" in message
    assert not (tmp_path / "cache").exists()  # nothing computed, nothing stored


@pytest.mark.parametrize("keyword", ["variants", "sweep"])
def test_transfer_takes_no_variants(keyword, tmp_path):
    with pytest.raises(reportgen.ParameterError, match=f"{keyword}: unknown key"):
        reportgen.transfer(
            CONTENT, STYLE, cache_dir=tmp_path, **QUICK, **{keyword: [{"id": "a", "steps": 2}]}
        )


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((40, 40, 3), np.float32),
        np.zeros((40, 40), np.uint8),
        np.zeros((40, 40, 2), np.uint8),
        7,
    ],
    ids=["float-array", "grey-array", "two-channels", "a-number"],
)
def test_an_image_of_the_wrong_kind_is_a_parameter_error_naming_its_role(image, tmp_path):
    with pytest.raises(reportgen.ParameterError, match=r"reportgen\.transfer\(\) style: "):
        reportgen.transfer(CONTENT, image, cache_dir=tmp_path / "cache", size=32, **QUICK)
    assert not (tmp_path / "cache").exists()


def test_a_bad_manifest_is_a_manifest_error_naming_its_lines(tmp_path):
    manifest = write_manifest(
        tmp_path, pair_text("cat", CONTENT, STYLE, "    size: 5\n    stpes: 3\n")
    )
    with pytest.raises(reportgen.ManifestError) as info:
        reportgen.Study(manifest, cache_dir=tmp_path / "cache", **QUICK)
    assert not isinstance(info.value, reportgen.ParameterError)
    lines = manifest.read_text(encoding="utf-8").splitlines()
    size_line, typo_line = lines.index("    size: 5") + 1, lines.index("    stpes: 3") + 1
    message = str(info.value)
    assert f"manifest.yaml:{size_line}:" in message
    assert "pairs[0].size: 5 is out of range" in message
    assert f"manifest.yaml:{typo_line}:" in message and "pairs[0].stpes: unknown key" in message
    with pytest.raises(reportgen.ManifestError, match="file not found"):
        reportgen.Study(tmp_path / "absent.yaml", **QUICK)


def test_images_of_more_than_8_bits_a_channel_are_refused_not_clipped(tmp_path):
    deep = Image.fromarray(np.full((40, 40), 40000, np.uint16))
    with pytest.raises(reportgen.ParameterError, match="content: a I;16 image"):
        reportgen.transfer(deep, STYLE, cache_dir=tmp_path, size=32, **QUICK)


def test_a_torch_device_is_taken_as_its_name(variants_manifest, tmp_path):
    import torch

    study = reportgen.Study(variants_manifest, cache_dir=tmp_path, device=torch.device("cpu"))
    assert study.device == "cpu"


def test_an_unknown_device_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(reportgen.ReportgenError, match="'tpu' is not a device"):
        reportgen.transfer(CONTENT, STYLE, device="tpu", cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


# --- summaries in Jupyter -------------------------------------------------------------------------


def test_a_study_summary_lists_every_run_before_any_is_computed(variants_manifest, tmp_path):
    study = reportgen.Study(variants_manifest, cache_dir=tmp_path / "cache", **QUICK)
    html = study._repr_html_()
    assert all(f">{name}<" in html for name in study.names)
    assert html.count("not computed yet") == 3
    assert "Cats &amp; &lt;bricks&gt;" in html and "<bricks>" not in html  # text is escaped
    assert "<a " not in html  # no site yet


def test_summaries_link_the_site_and_the_run_page_once_built(
    cat_manifest, cache, tmp_path, monkeypatch
):
    """Links are relative to the notebook's folder (the kernel's working folder)."""
    monkeypatch.chdir(tmp_path)
    study = reportgen.Study(cat_manifest, cache_dir=cache, **QUICK)
    run = study["cat"]
    assert run.page is None
    assert "<a " not in run._repr_html_() and "<a " not in study._repr_html_()
    assert "not computed yet" not in study._repr_html_()  # the run's result is shown

    study.build(tmp_path / "site")
    assert study.site == tmp_path / "site"
    assert run.page == tmp_path / "site" / "pairs" / "cat" / "index.html" and run.page.is_file()
    assert 'href="site/pairs/cat/index.html"' in run._repr_html_()
    html = study._repr_html_()
    assert 'href="site/index.html"' in html and 'href="site/pairs/cat/index.html"' in html


# --- Ctrl-C ---------------------------------------------------------------------------------------


def test_an_interrupted_transfer_leaves_the_cache_consistent(tmp_path, monkeypatch):
    """Ctrl-C in the middle of the optimisation (raised from the progress bar, after its first
    step) propagates, and leaves no entry, whole or partial; the next call computes it."""
    cache = tmp_path / "cache"
    steps_seen = []

    def interrupt(self, run, phase, done, total):
        steps_seen.append((phase, done, total))
        if done >= 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Bars, "phase", interrupt)
        with pytest.raises(KeyboardInterrupt):
            reportgen.transfer(
                CONTENT, STYLE, device="cpu", progress=True, cache_dir=cache, size=32, steps=3
            )
    assert steps_seen[-1] == ("transfer", 1, 3)
    assert entries(cache) == [] and entries(cache, "analysis") == []

    run = reportgen.transfer(CONTENT, STYLE, cache_dir=cache, size=32, steps=3, **QUICK)
    assert len(run.losses.total) == 3
    assert len(entries(cache)) == len(stored(cache)) == 1
    assert len(entries(cache, "analysis")) == len(stored(cache, "analysis")) == 1


def test_transfer_blends_a_list_of_styles_and_takes_regions_in_place_of_style(tmp_path):
    other = IMAGES / "style" / "mosaic.png"
    blend = reportgen.transfer(
        CONTENT, [STYLE, other], style_blend=[3, 1], cache_dir=tmp_path, size=32, steps=2, **QUICK
    )
    assert blend.params.style_blend == (0.75, 0.25)
    assert len(blend.styles) == 2 and blend.style_paths == [STYLE, other]
    assert set(blend.stylisation.per_style) == set(blend.params.style_layer_weights)

    left = np.zeros((32, 48), bool)
    left[:, :24] = True
    split = reportgen.transfer(
        CONTENT,
        regions=[(left, STYLE), (~left, other)],
        cache_dir=tmp_path,
        size=32,
        steps=2,
        **QUICK,
    )
    assert split.params.style_blend == () and len(split.styles) == 2
    assert split.stylisation.region_shares == pytest.approx((0.5, 0.5), abs=0.02)
    with pytest.raises(reportgen.ParameterError, match="give style .* or regions"):
        reportgen.transfer(CONTENT, STYLE, regions=[(left, other)], cache_dir=tmp_path, **QUICK)
