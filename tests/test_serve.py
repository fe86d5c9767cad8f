"""`reportgen serve`: the preview server rebuilds when an input changes, from the cache."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest


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
