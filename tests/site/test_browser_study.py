"""A generated study in a real browser, with the layouts of a large study: the index as a table
that filters and sorts, layer pages whose style distances are a clustered image with each style's
nearest styles.  The thresholds for those layouts are lowered so that a study small enough for
the suite gets them (the same pages a 1000-pair study gets; `benchmarks/scale.py` builds one).
"""

from __future__ import annotations

import importlib.util
import re

import pytest
from browsing import LOAD_IMAGES_JS, Visit, chromium, open_page, serving
from studies import REPO

PAIRS = 4  # more than the lowered thresholds of 3: the large-study layouts


def _study_writer():
    spec = importlib.util.spec_from_file_location("study", REPO / "benchmarks" / "study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_study


@pytest.fixture(scope="module")
def study_site(tmp_path_factory):
    import reportgen.site.pages
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    folder = tmp_path_factory.mktemp("generated-study")
    manifest = _study_writer()(folder / "study", PAIRS, size=32, steps=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reportgen.site.pages, "CARDS_UP_TO", 3)
        patch.setattr(reportgen.site.pages, "TABLE_UP_TO", 3)
        summary = build(
            manifest,
            BuildOptions(
                folder / "site", ExecutorChoice(device="cpu", jobs=2), cache_dir=folder / "cache"
            ),
        )
    assert len(summary.computed) == PAIRS and not summary.failed
    return folder / "site"


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def study_server(study_site):
    with serving(study_site) as running:
        yield running


def _loaded(browser, server, page_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    visit = Visit()
    page = open_page(context, server, page_path, visit)
    images = page.evaluate(LOAD_IMAGES_JS)
    return context, page, visit, images


def test_the_index_filters_and_sorts_its_table(browser, study_server):
    context, page, visit, images = _loaded(browser, study_server, "index.html")
    try:
        rows = page.locator("#index-items > tr")
        assert rows.count() == PAIRS and page.locator("#index-tools").is_visible()
        assert page.locator("#index-count").text_content() == f"{PAIRS} pairs"
        # Filter: the crops of one style file (every seventh pair's) by a word of their file names.
        page.fill("#index-filter", "style-0003")
        visible = [row for row in rows.all() if row.is_visible()]
        assert len(visible) == 1 and "crop 3" in visible[0].text_content()
        assert page.locator("#index-count").text_content() == f"1 of {PAIRS} pairs"
        page.fill("#index-filter", "")
        # Sort by final loss: the rows in ascending order of the number they show.
        page.select_option("#index-sort", "loss")
        losses = [float(row.get_attribute("data-loss")) for row in rows.all()]
        assert losses == sorted(losses) and len(losses) == PAIRS
        page.select_option("#index-sort", "size")
        sizes = [float(row.get_attribute("data-size")) for row in rows.all()]
        assert sizes == sorted(sizes, reverse=True)
        assert all(image["complete"] and image["width"] > 0 for image in images), images
        assert (
            not visit.console_errors and not visit.failed_requests and not visit.foreign_requests
        ), visit
    finally:
        context.close()


def test_a_layer_page_shows_the_clustered_distances_and_links_each_styles_nearest(
    browser, study_server
):
    context, page, visit, images = _loaded(browser, study_server, "layers/conv3_1.html")
    try:
        figure = page.locator("figure.clustermap img")
        assert figure.count() == 1 and figure.evaluate("(img) => img.naturalWidth") > 0
        assert page.locator("table.matrix").count() == 0  # the table is for small studies
        rows = page.locator("table.nearest tbody tr")
        assert rows.count() == PAIRS
        first = rows.first.locator("td a")
        assert first.count() == min(5, PAIRS - 1)
        # A nearest style's link opens its pair's page of the layer.
        href = first.first.get_attribute("href")
        assert re.fullmatch(r"\.\./pairs/pair-\d{4}/conv3_1\.html", href), href
        first.first.click()
        page.wait_for_load_state("load")
        assert page.url.endswith("/conv3_1.html") and "/pairs/pair-" in page.url
        assert all(image["complete"] and image["width"] > 0 for image in images), images
        assert (
            not visit.console_errors and not visit.failed_requests and not visit.foreign_requests
        ), visit
    finally:
        context.close()
