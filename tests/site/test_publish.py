"""Phase two, publishing: strict builds, a base URL for what relative links cannot serve, the 404
page, sitemap and GitHub Pages files; the data archive in volumes, the site's weight and the
settings that lighten it, the data files in a folder of their own."""

from __future__ import annotations

import re
import shutil
import zipfile

import pytest
from click.testing import CliRunner
from studies import REPO, make_study, snapshot


def test_pages_files_and_base_url(fresh_study, tmp_path):
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    site = tmp_path / "published"
    build(
        fresh_study.manifest,
        BuildOptions(
            site,
            ExecutorChoice(device="cpu"),
            cache_dir=fresh_study.cache,
            base_url="https://someone.github.io/study/",
        ),
    )
    assert (site / ".nojekyll").is_file()
    not_found = (site / "404.html").read_text()
    # 404.html is served at whatever path was missing: its links are absolute under the base URL.
    assert 'href="https://someone.github.io/study/index.html"' in not_found
    assert 'href="https://someone.github.io/study/assets/style.css"' in not_found
    sitemap = (site / "sitemap.xml").read_text()
    assert "<loc>https://someone.github.io/study/pairs/cat/conv4_2.html</loc>" in sitemap
    assert "404.html" not in sitemap
    index = (site / "index.html").read_text()
    assert '<link rel="canonical" href="https://someone.github.io/study/index.html">' in index
    # every other link stays relative
    assert 'href="pairs/cat/index.html"' in index and 'href="assets/style.css"' in index
    # A link sent to a reviewer previews as a card: the page's absolute URL, its title and an
    # image of the site (the result, a layer's Gram comparison, a filter's visualisation).
    base = "https://someone.github.io/study/"
    filter_page = next(site.glob("filters/*/*.html"), None)
    pages = ["index.html", "pairs/cat/index.html", "pairs/cat/conv1_1.html"]
    for page in pages + ([filter_page.relative_to(site).as_posix()] if filter_page else []):
        text = (site / page).read_text()
        assert f'<meta property="og:url" content="{base}{page}">' in text, page
        assert '<meta name="twitter:card" content="summary_large_image">' in text, page
        image = re.search(r'<meta property="og:image" content="([^"]+)">', text)
        assert image and image[1].startswith(base), page
        assert (site / image[1][len(base) :]).is_file(), (page, image[1])
        assert re.search(r'<meta property="og:description" content="[^"]{20,}">', text), page
    pair = (site / "pairs/cat/index.html").read_text()
    assert f'<meta property="og:image" content="{base}pairs/cat/result.png">' in pair


def test_link_previews_without_an_absolute_base_url_leave_urls_out(fresh_study):
    """A relative og:image or og:url is not fetched: without --base-url https://..., a preview
    has a title and a summary only."""
    for page in ("index.html", "pairs/cat/index.html", "pairs/cat/conv1_1.html"):
        text = (fresh_study.site / page).read_text()
        assert '<meta property="og:title"' in text and '<meta name="description"' in text
        assert "og:image" not in text and "og:url" not in text, page
        assert '<meta name="twitter:card" content="summary">' in text


def test_strict_build_fails_on_a_warning_and_keeps_the_previous_site(fresh_study, tmp_path):
    from reportgen.cli import main

    before = snapshot(fresh_study.site)
    # An animated GIF is used (its first frame) with a warning; --strict refuses it.
    from PIL import Image

    frames = [Image.new("RGB", (48, 48), colour) for colour in ((200, 30, 30), (30, 30, 200))]
    frames[0].save(
        fresh_study.manifest.parent / "img" / "cat.png",
        format="GIF",
        save_all=True,
        append_images=frames[1:],
    )
    result = CliRunner().invoke(
        main,
        [
            "build",
            str(fresh_study.manifest),
            "-d",
            str(fresh_study.site),
            "--device",
            "cpu",
            "--cache-dir",
            str(fresh_study.cache),
            "--strict",
            "-q",
        ],
    )
    assert result.exit_code != 0, result.output
    assert (
        "--strict" in result.output
        and "animated" in result.output
        and "Traceback" not in result.output
    )
    assert snapshot(fresh_study.site) == before
    # Without --strict the same build goes through, warning included.
    result = CliRunner().invoke(
        main,
        [
            "build",
            str(fresh_study.manifest),
            "-d",
            str(fresh_study.site),
            "--device",
            "cpu",
            "--cache-dir",
            str(fresh_study.cache),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output


def test_pages_workflow_publishes_hidden_files():
    workflow = (REPO / ".github" / "workflows" / "pages.yml").read_text()
    assert "actions/upload-pages-artifact" in workflow and "actions/deploy-pages" in workflow
    assert "include-hidden-files: true" in workflow
    assert "reportgen build" in workflow and "--strict" in workflow


def test_a_large_archive_comes_in_volumes_and_is_not_rewritten_unchanged(
    tmp_path, session_cache, monkeypatch
):
    """No file over GitHub's 100 MB: volumes of whole runs (here at a limit every run exceeds);
    a rebuild that changes nothing links the volumes it kept and writes none."""
    import reportgen.site.archive
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    monkeypatch.setattr(
        reportgen.site.archive, "VOLUME_BYTES", 1
    )  # every run over it: a volume each
    manifest = make_study(tmp_path / "study")
    manifest.write_text(
        manifest.read_text().replace("defaults:\n", "data: {grams: false}\ndefaults:\n")
    )
    site, cache = tmp_path / "site", tmp_path / "cache"
    shutil.copytree(session_cache, cache)
    build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=cache))
    parts = sorted(site.glob("data-*.zip"))
    assert [p.name for p in parts] == ["data-1-of-2.zip", "data-2-of-2.zip"] and not (
        site / "data.zip"
    ).exists()
    held = []
    for part in parts:
        with zipfile.ZipFile(part) as archive:
            held += sorted({name.split("/")[0] for name in archive.namelist()})
            assert not any(name.endswith("grams.npz") for name in archive.namelist())
    assert held == ["cat", "cup"]
    index = (site / "index.html").read_text()
    assert all(f'href="{p.name}"' in index for p in parts)
    kept = {p: p.stat().st_mtime_ns for p in (cache / "archives").iterdir()}
    build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=cache))
    assert {p: p.stat().st_mtime_ns for p in (cache / "archives").iterdir()} == kept
    # The site's volumes are the kept files themselves (hard links), not copies written anew.
    assert all(any((site / part.name).samefile(kept_file) for kept_file in kept) for part in parts)


def test_fewer_figures_for_a_large_study(tmp_path, session_cache):
    """figures: {montages: content, pair_sheets: false} draws the feature maps of the content
    layer only and no filter-pair sheets; the layer pages say so, link no filter where there are
    no montages, and the site is lighter."""
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    manifest = make_study(tmp_path / "study")
    full = build(
        manifest,
        BuildOptions(tmp_path / "full", ExecutorChoice(device="cpu"), cache_dir=session_cache),
    )
    manifest.write_text(
        "figures: {montages: content, pair_sheets: false, quality: 40}\n" + manifest.read_text()
    )
    site = tmp_path / "site"
    summary = build(
        manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=session_cache)
    )
    assert summary.stages_computed == {"transfer": 0, "analysis": 0, "figures": 2}  # figures only
    cat = site / "pairs" / "cat"
    assert (
        sorted(p.parent.name for p in cat.glob("*/maps-*.webp")) == ["conv4_2"] * 4
    )  # three roles and the difference
    page = (cat / "conv1_1.html").read_text()
    assert (
        "figures: {montages: …}" in page
        and 'href="#f' not in page
        and "maps-content.webp" not in page
    )
    content_page = (cat / "conv4_2.html").read_text()
    assert 'id="f0"' in content_page and 'href="#f' in content_page
    assert not list(cat.glob("*/pair-*.webp")) and "pair_sheets: false" in page
    assert "filter-pair sheets" not in summary.weights and full.weights["filter-pair sheets"] > 0
    assert summary.weights["feature montages"] < full.weights["feature montages"] / 3
    assert (
        summary.site_bytes < full.site_bytes and sum(summary.weights.values()) == summary.site_bytes
    )


def test_a_site_over_the_limit_names_the_settings_that_would_fit(
    tmp_path, session_cache, monkeypatch, caplog
):
    import reportgen.site.publish
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    monkeypatch.setattr(
        reportgen.site.publish, "PAGES_WARNING_BYTES", 1_000_000
    )  # the tiny study weighs a few MB
    manifest = make_study(tmp_path / "study")
    summary = build(
        manifest,
        BuildOptions(tmp_path / "site", ExecutorChoice(device="cpu"), cache_dir=session_cache),
    )
    warning = next(message for message in summary.warnings if "GitHub Pages" in message)
    assert f"{summary.site_bytes / 1e6:.0f} MB" in warning and "Grams" in warning
    for setting in (
        "figures: {montages: content}",
        "figures: {montages: none}",
        "data: {grams: false, archive: false}",
        "data: {folder: ..., url: ...}",
    ):
        assert setting in warning, setting


def test_data_apart_from_the_site_with_links_to_their_url(tmp_path, session_cache):
    """data: {folder, url}: the Grams, records, exact images and archive go to their own folder;
    the pages show thumbnails and link the data where they are published."""
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    manifest = make_study(tmp_path / "study")
    manifest.write_text(
        "data: {folder: ../data-release, url: 'https://example.org/releases/v1'}\n"
        + manifest.read_text()
    )
    site, data = tmp_path / "site", tmp_path / "data-release"
    build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=session_cache))
    for pair_id in ("cat", "cup"):
        for inner in ("data/grams.npz", "data/pair.json", "content.png", "style.png", "result.png"):
            assert (data / "pairs" / pair_id / inner).is_file() and not (
                site / "pairs" / pair_id / inner
            ).exists(), inner
    assert (data / "data.zip").is_file() and not (site / "data.zip").exists()
    page = (site / "pairs" / "cat" / "index.html").read_text()
    assert 'href="https://example.org/releases/v1/pairs/cat/data/grams.npz"' in page
    assert (
        'href="https://example.org/releases/v1/pairs/cat/result.png"' in page
        and 'src="thumbs/result.webp"' in page
    )
    assert 'href="https://example.org/releases/v1/data.zip"' in (site / "index.html").read_text()
    # Without a URL, the pages link the folder where it lies beside the site (file:// works).
    manifest.write_text(
        manifest.read_text().replace(", url: 'https://example.org/releases/v1'", "")
    )
    build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=session_cache))
    page = (site / "pairs" / "cat" / "index.html").read_text()
    assert 'href="../../../data-release/pairs/cat/data/grams.npz"' in page
    assert (
        (site / "pairs" / "cat" / "../../../data-release/pairs/cat/data/grams.npz")
        .resolve()
        .is_file()
    )


def test_a_site_that_cannot_be_swapped_in_leaves_the_data_folder_as_it_was(
    tmp_path, session_cache, monkeypatch
):
    """The data folder and the site change together: when the new site cannot take the old
    site's foreign files (a full disk), neither is replaced."""
    from reportgen.build import BuildOptions, build
    from reportgen.errors import ReportgenError
    from reportgen.execute import ExecutorChoice
    from reportgen.site import writer as writer_module

    manifest = make_study(tmp_path / "study")
    manifest.write_text("data: {folder: ../data-release}\n" + manifest.read_text())
    site, data = tmp_path / "site", tmp_path / "data-release"
    build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=session_cache))
    (site / "CNAME").write_text("study.example.org\n")  # a foreign file: carried into each new site
    before = {
        path: path.read_bytes()
        for folder in (site, data)
        for path in folder.rglob("*")
        if path.is_file()
    }
    real = writer_module.SiteWriter._carry_foreign_files

    def full_disk(self):
        if self.site_dir == site:
            raise OSError(28, "No space left on device")
        real(self)

    monkeypatch.setattr(writer_module.SiteWriter, "_carry_foreign_files", full_disk)
    # A new title: new pages and records, nothing to compute.
    manifest.write_text(manifest.read_text().replace("title: Cat in brush strokes", "title: Cat"))
    with pytest.raises(ReportgenError):
        build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=session_cache))
    after = {
        path: path.read_bytes()
        for folder in (site, data)
        for path in folder.rglob("*")
        if path.is_file()
    }
    assert after == before


def test_data_option_leaves_the_data_files_out(tmp_path, session_cache):
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    manifest = make_study(tmp_path / "study")
    manifest.write_text("data: {grams: false, archive: false}\n" + manifest.read_text())
    site = tmp_path / "site"
    build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=session_cache))
    assert not (site / "data.zip").exists() and not list(site.rglob("grams.npz"))
    assert (site / "pairs" / "cat" / "data" / "pair.json").is_file()
    assert "grams.npz" not in (site / "pairs" / "cat" / "index.html").read_text()
