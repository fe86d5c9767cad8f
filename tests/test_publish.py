"""Publishing habits: strict builds, a base URL for what relative links cannot serve, 404 page,
sitemap, GitHub Pages files, and `serve` picking up edits without recomputing."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import snapshot


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


def test_serve_rebuilds_an_edited_title_without_recomputing(fresh_study, monkeypatch):
    from reportgen import serve as serve_module
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    builds = []

    def rebuild():
        builds.append(
            build(
                fresh_study.manifest,
                BuildOptions(
                    fresh_study.site, ExecutorChoice(device="cpu"), cache_dir=fresh_study.cache
                ),
            )
        )

    stop = threading.Event()
    urls: list[str] = []
    thread = threading.Thread(
        target=serve_module.serve,
        kwargs=dict(
            manifest_path=fresh_study.manifest,
            site_dir=fresh_study.site,
            rebuild=rebuild,
            port=0,
            base_url="/study/",
            on_ready=urls.append,
            stop=stop,
        ),
        daemon=True,
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not urls and time.monotonic() < deadline:
            time.sleep(0.05)
        base = urls[0]
        assert base.endswith("/study/")
        with urllib.request.urlopen(base + "index.html") as response:
            assert "Tiny study" in response.read().decode()
        # Outside the base path: not found.
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base.replace("/study/", "/elsewhere.html"))
        text = fresh_study.manifest.read_text().replace(
            "title: Tiny study", "title: Edited while serving"
        )
        time.sleep(0.05)
        fresh_study.manifest.write_text(text)
        deadline = time.monotonic() + 20
        page = ""
        # The new site is swapped in before build() returns: wait for both.
        while time.monotonic() < deadline and ("Edited while serving" not in page or not builds):
            time.sleep(0.3)
            with urllib.request.urlopen(base + "index.html") as response:
                page = response.read().decode()
        assert "Edited while serving" in page
        assert builds and all(b.computed == [] for b in builds)  # taken from the cache
    finally:
        stop.set()
        thread.join(timeout=10)


def test_pages_workflow_publishes_hidden_files():
    workflow = (
        Path(__file__).resolve().parents[1] / ".github" / "workflows" / "pages.yml"
    ).read_text()
    assert "actions/upload-pages-artifact" in workflow and "actions/deploy-pages" in workflow
    assert "include-hidden-files: true" in workflow
    assert "reportgen build" in workflow and "--strict" in workflow
