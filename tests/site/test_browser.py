"""The built site in a real browser: Chromium, driven by Playwright, over HTTP under a sub-path.

A tiny two-pair study (one pair with a two-value sweep, so the variant pages exist) is built once
on the real network and served from a background thread under ``/study/``, as GitHub Pages serves
a project site.  Every page of it is loaded once; what the browser saw (console errors, failed or
foreign requests, broken images and links, headings, contrast, keyboard focus) is recorded, and
each test below asserts one aspect of it, over every page.

Needs the ``playwright`` Python package and a Chromium binary (Debian's ``/usr/bin/chromium``, or
the one named by ``REPORTGEN_CHROMIUM``).  Playwright's own browser download is never used: the
module is skipped when either is missing.
"""

from __future__ import annotations

import functools
import itertools
import re
import textwrap
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from browsing import (
    LOAD_IMAGES_JS,
    PREFIX,
    PlaywrightError,
    Server,
    Visit,
    chromium,
    open_page,
    serving,
)
from studies import IMAGES

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SWEEP = ("style_weight-1", "style_weight-10")
# A layer page of a pair without variants, for the screenshots and the script.
LAYER_PAGE = "pairs/cat/conv1_1.html"
SCRIPT_PAGE = "pairs/cat/conv2_1.html"
MIN_CONTRAST = 4.5
# Representative text whose contrast is checked, by CSS selector; every element of each is measured
# and each distinct (colour, background) reported once.  The distance matrix of the cross-pair
# layer pages, coloured by value, is checked on its own.
CONTRAST_SELECTORS = (
    "body",
    "a",
    ".meta",
    "figcaption",
    "table caption",
    "th, td:not(table.matrix td)",
    "code",
    "summary",
    "h1 .subtitle",
    ".site-footer",
)
MATRIX_CELLS = "table.matrix td"
# Tab presses per page: enough to cover every focusable element of the small pages, and the header,
# breadcrumbs, layer strip and first tables of the layer pages.
MAX_TABS = 30


# --- the study, built once ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The tiny study, built for real: two pairs at 48 px and 3 steps, one coarse to fine with
    every step kept (the snapshot strip), one swept over style_weight."""
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    folder = tmp_path_factory.mktemp("browser-study")
    manifest = folder / "manifest.yaml"
    manifest.write_text(
        textwrap.dedent(
            f"""\
            title: Browser study
            description: Two tiny pairs, built for the browser tests.
            defaults:
              size: 48
              steps: 3
            pairs:
              - id: cat
                title: Cat in brush strokes
                content: {IMAGES / "content" / "chelsea.png"}
                style: {IMAGES / "style" / "brushstrokes.jpg"}
                coarse_to_fine: 32
                snapshot_every: 1
              - id: cup
                title: Cup as a mosaic
                content: {IMAGES / "content" / "coffee.png"}
                style: {IMAGES / "style" / "mosaic.png"}
                sweep: {{style_weight: [1, 10]}}
            """
        ),
        encoding="utf-8",
    )
    site_dir = folder / "site"
    summary = build(
        manifest,
        BuildOptions(site_dir, ExecutorChoice(device="cpu", jobs=2), cache_dir=folder / "cache"),
    )  # figures in two processes
    assert not summary.failed, summary
    assert (
        (site_dir / "index.html").is_file()
        and (site_dir / LAYER_PAGE).is_file()
        and (site_dir / SCRIPT_PAGE).is_file()
    )
    # Two scales of 3 steps: steps 0-5 and the result (an image equal to an earlier one is one
    # file).
    strip = (
        (site_dir / "pairs" / "cat" / "index.html")
        .read_text(encoding="utf-8")
        .count('src="snapshots/step-')
    )
    assert strip == 3 * 2 + 1, strip
    for variant in SWEEP:
        assert (site_dir / "pairs" / "cup" / variant / "index.html").is_file(), variant
    return site_dir


def html_pages(site: Path) -> list[str]:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def server(site):
    with serving(site) as running:
        yield running


# --- the browser ----------------------------------------------------------------------------------

PAGE_FACTS_JS = """() => ({
  lang: document.documentElement.getAttribute("lang"),
  images: Array.from(document.images).map((img) => ({
    src: img.getAttribute("src"), alt: img.getAttribute("alt"),
  })),
  headings: Array.from(document.querySelectorAll("h1, h2, h3, h4, h5, h6")).map((h) => ({
    level: Number(h.tagName[1]), text: h.textContent.trim().slice(0, 60),
  })),
  links: Array.from(document.querySelectorAll("a[href]")).map((a) => a.getAttribute("href")),
})"""

CONTRAST_JS = """(selectors) => {
  function parse(colour) {
    const m = /rgba?\\(([\\d.]+)[, ]+([\\d.]+)[, ]+([\\d.]+)(?:[,/ ]+([\\d.]+%?))?\\)/.exec(colour);
    if (!m) throw new Error("cannot read the colour " + colour);
    const alpha = m[4] === undefined
      ? 1
      : (m[4].endsWith("%") ? parseFloat(m[4]) / 100 : parseFloat(m[4]));
    return [Number(m[1]), Number(m[2]), Number(m[3]), alpha];
  }
  function over(top, bottom) {  // top composited on an opaque bottom
    return [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  }
  function background(element) {
    const layers = [];
    for (let node = element; node; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour[3] > 0) {
        layers.push(colour);
        if (colour[3] >= 1) break;
      }
    }
    // The canvas behind everything: white in the light scheme, Chromium's dark canvas otherwise.
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    let result = dark ? [18, 18, 18, 1] : [255, 255, 255, 1];
    for (const layer of layers.reverse()) result = over(layer, result);
    return result;
  }
  function luminance(c) {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  function describe(element) {
    const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
      + Array.from(e.classList).map((c) => "." + c).join("");
    return (element.parentElement ? name(element.parentElement) + " > " : "") + name(element);
  }
  // Text a reader sees: a non-blank text node in a rendered box larger than a pixel (not the
  // visually-hidden labels of the filter links, not the content of closed <details>).
  function visibleText(element) {
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const parent = node.parentElement;
      if (!node.textContent.trim() || !parent.checkVisibility({visibilityProperty: true})) continue;
      const box = parent.getBoundingClientRect();
      if (box.width > 1 && box.height > 1) return node.textContent.trim().slice(0, 40);
    }
    return null;
  }
  const results = [];
  for (const selector of selectors) {
    const seen = new Map();
    for (const element of document.querySelectorAll(selector)) {
      const text = visibleText(element);
      if (text === null) continue;
      const style = getComputedStyle(element);
      const bg = background(element);
      const fg = over(parse(style.color), bg);
      const key = style.color + " on " + bg.join(",");
      if (seen.has(key)) { seen.get(key).count += 1; continue; }
      const [l1, l2] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
      const measured = {selector, element: describe(element), text, color: style.color,
                        background: "rgb(" + bg.slice(0, 3).map(Math.round).join(", ") + ")",
                        ratio: (l1 + 0.05) / (l2 + 0.05), count: 1};
      seen.set(key, measured);
      results.push(measured);
    }
  }
  return results;
}"""

TABBABLE_JS = """() => {
  const selector = 'a[href], area[href], button, input:not([type="hidden"]), select, textarea, '
    + 'summary, iframe, [tabindex], [contenteditable="true"]';
  return Array.from(document.querySelectorAll(selector))
    .filter((e) => !e.disabled && e.getAttribute("tabindex") !== "-1" && e.checkVisibility()
      && e.getClientRects().length > 0)
    .map((e, i) => { e.dataset.tabOrder = String(i); return i; }).length;
}"""

ACTIVE_JS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body || e === document.documentElement) return null;
  return {tag: e.tagName.toLowerCase(),
          order: e.dataset.tabOrder === undefined ? null : Number(e.dataset.tabOrder),
          label: (e.getAttribute("href") || "") + " " + e.textContent.trim().slice(0, 30)};
}"""


@dataclass
class PageReport:
    path: str
    visit: Visit
    broken_images: list[str]
    facts: dict
    contrast: dict[str, list[dict]]  # scheme -> measurements
    tab_sequence: list[dict | None]
    tabbable: int
    error: str | None = None


def _kind(page_path: str) -> str:
    """Pages of one kind share a template and differ in data: the run pages of two pairs, the
    pages of two layers, of two variants."""
    kind = re.sub(r"style_weight-\d+", "V", re.sub(r"conv\d_\d", "L", page_path))
    return re.sub(r"/\d+\.html$", "/K.html", kind)  # a filter's page


def _inspect(context, server: Server, page_path: str, thorough: bool) -> PageReport:
    """What the browser saw of a page; ``thorough``: its contrast in both colour schemes and
    where the Tab key takes the focus too (measured on one page of each kind: they depend on
    the template and the stylesheet, and take most of the time)."""
    visit = Visit()
    page = open_page(context, server, page_path, visit)
    try:
        images = page.evaluate(LOAD_IMAGES_JS)
        broken = [
            f"{img['src']} (complete={img['complete']}, naturalWidth={img['width']})"
            for img in images
            if not img["complete"] or img["width"] <= 0
        ]
        facts = page.evaluate(PAGE_FACTS_JS)
        if not thorough:
            return PageReport(page_path, visit, broken, facts, {}, [], -1)
        contrast = {}
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            contrast[scheme] = page.evaluate(CONTRAST_JS, [*CONTRAST_SELECTORS, MATRIX_CELLS])
        page.emulate_media(color_scheme="light")
        tabbable = page.evaluate(TABBABLE_JS)
        page.evaluate(
            "() => { window.scrollTo(0, 0); document.activeElement && "
            "document.activeElement.blur(); }"
        )
        sequence = []
        for _ in range(min(tabbable, MAX_TABS)):
            page.keyboard.press("Tab")
            sequence.append(page.evaluate(ACTIVE_JS))
        return PageReport(page_path, visit, broken, facts, contrast, sequence, tabbable)
    finally:
        page.close()


def _crawled(pages: list[str]) -> list[str]:
    """Every page, except that of the filter pages (one template, dozens of pages whose files
    tests/test_build.py checks on disk) only the first of each layer is loaded."""
    kept, layers_seen = [], set()
    for page_path in pages:
        if re.fullmatch(r"filters/.+/\d+\.html", page_path):
            layer = page_path.rsplit("/", 1)[0]
            if layer in layers_seen:
                continue
            layers_seen.add(layer)
        kept.append(page_path)
    return kept


@pytest.fixture(scope="module")
def crawl(browser, server) -> dict[str, PageReport]:
    """Every .html page of the site, loaded once at desktop size and inspected."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="light", reduced_motion="reduce")
    reports = {}
    kinds_seen: set[str] = set()
    try:
        for page_path in _crawled(html_pages(server.site)):
            thorough = _kind(page_path) not in kinds_seen
            kinds_seen.add(_kind(page_path))
            try:
                reports[page_path] = _inspect(context, server, page_path, thorough)
            except PlaywrightError as error:
                reports[page_path] = PageReport(
                    page_path, Visit(), [], {}, {}, [], 0, error=f"{type(error).__name__}: {error}"
                )
    finally:
        context.close()
    assert len(reports) >= 2 + 6 + 1 + 2 * 7 + 6, sorted(
        reports
    )  # index, cat's pages, cup's contact sheet and variants, layers
    return reports


def _problems(crawl: dict[str, PageReport], what) -> dict[str, list]:
    """``{page: problems}`` for the pages where ``what(report)`` found any."""
    found = {}
    for page, report in crawl.items():
        problems = [f"could not inspect the page: {report.error}"] if report.error else what(report)
        if problems:
            found[page] = problems
    return found


def _lines(found: dict[str, list]) -> str:
    return "\n".join(
        f"{page}: {problem}" for page, problems in found.items() for problem in problems
    )


# --- loading: console, requests, images, links
# ------------------------------------------------------


def test_every_page_loads_without_console_errors(crawl):
    found = _problems(crawl, lambda r: r.visit.console_errors)
    assert not found, _lines(found)


def test_every_request_succeeds_and_stays_under_the_sub_path(crawl):
    found = _problems(
        crawl,
        lambda r: (
            r.visit.failed_requests + [f"left {PREFIX}: {url}" for url in r.visit.foreign_requests]
        ),
    )
    assert not found, _lines(found)


def test_every_image_loads(crawl):
    found = _problems(crawl, lambda r: [f"image did not load: {src}" for src in r.broken_images])
    assert not found, _lines(found)
    assert sum(len(r.facts["images"]) for r in crawl.values()) > 50  # the pages do show images


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value is not None:
                self.ids.add(value)


@functools.cache
def _ids_of(file: Path) -> frozenset[str]:
    parser = _Ids()
    parser.feed(file.read_text(encoding="utf-8"))
    return frozenset(parser.ids)


def _broken_links(server: Server, page_path: str, links: list[str]) -> list[str]:
    """Relative links that do not lead to a file of the site under /study/, or to a missing #id."""
    page_url = server.url(page_path)
    broken = []
    for href in links:
        if urlsplit(href).scheme:  # absolute URLs leave the site on purpose (the manifest's links)
            continue
        resolved = urlsplit(urljoin(page_url, href))
        target_path = unquote(resolved.path)
        if f"{resolved.scheme}://{resolved.netloc}" != server.origin or not target_path.startswith(
            PREFIX
        ):
            broken.append(f"{href!r} leaves {PREFIX}: {urljoin(page_url, href)}")
            continue
        target = server.site / target_path[len(PREFIX) :]
        if not target.is_file():
            broken.append(f"{href!r} -> {target_path}: no such file in the site")
            continue
        if (
            resolved.fragment
            and target.suffix == ".html"
            and unquote(resolved.fragment) not in _ids_of(target)
        ):
            broken.append(f"{href!r}: no element with id {resolved.fragment!r} on {target_path}")
    return broken


def test_every_relative_link_and_fragment_resolves(crawl, server):
    found = _problems(crawl, lambda r: _broken_links(server, r.path, r.facts["links"]))
    assert not found, _lines(found)
    links = [href for r in crawl.values() for href in r.facts.get("links", [])]
    assert any(href.startswith("#f") for href in links), (
        "the layer pages link to their filters (#f123)"
    )


# --- accessibility basics -------------------------------------------------------------------------


def test_every_page_declares_its_language(crawl):
    found = _problems(
        crawl,
        lambda r: (
            []
            if (r.facts.get("lang") or "").strip()
            else [f"<html> has no lang attribute (lang={r.facts.get('lang')!r})"]
        ),
    )
    assert not found, _lines(found)


def test_every_image_has_alt_text(crawl):
    found = _problems(
        crawl,
        lambda r: [
            f"<img src={img['src']!r}> alt={img['alt']!r}"
            for img in r.facts["images"]
            if not (img["alt"] or "").strip()
        ],
    )
    assert not found, _lines(found)


def _heading_problems(headings: list[dict]) -> list[str]:
    problems = []
    ones = [h for h in headings if h["level"] == 1]
    if len(ones) != 1:
        problems.append(f"{len(ones)} <h1> elements: {[h['text'] for h in ones]}")
    if headings and headings[0]["level"] != 1:
        problems.append(
            f"the first heading is <h{headings[0]['level']}> {headings[0]['text']!r}, not <h1>"
        )
    for before, after in itertools.pairwise(headings):
        if after["level"] > before["level"] + 1:
            problems.append(
                f"<h{before['level']}> {before['text']!r} is followed by <h{after['level']}> "
                f"{after['text']!r}: a level is skipped"
            )
    return problems


def test_headings_one_h1_and_no_skipped_levels(crawl):
    found = _problems(crawl, lambda r: _heading_problems(r.facts["headings"]))
    assert not found, _lines(found)


def _contrast_problems(report: PageReport, scheme: str, selectors) -> list[str]:
    return [
        f"{m['selector']!r}: {m['element']} {m['text']!r} (and {m['count'] - 1} more alike): "
        f"{m['color']} on {m['background']} = {m['ratio']:.2f}:1 < {MIN_CONTRAST}:1"
        for m in report.contrast.get(scheme, [])
        if m["selector"] in selectors and m["ratio"] < MIN_CONTRAST
    ]


def _measured(crawl: dict[str, PageReport], scheme: str) -> set[str]:
    return {m["selector"] for r in crawl.values() for m in r.contrast.get(scheme, [])}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_and_link_contrast(crawl, scheme):
    """Body text, links, captions, meta lines and table text: at least 4.5:1 on their background."""
    found = _problems(crawl, lambda r: _contrast_problems(r, scheme, CONTRAST_SELECTORS))
    assert not found, _lines(found)
    assert _measured(crawl, scheme) >= set(
        CONTRAST_SELECTORS
    )  # every kind of text was measured somewhere
    thorough = [r for r in crawl.values() if not r.error and r.contrast]
    assert {_kind(r.path) for r in thorough} == {_kind(page) for page in crawl}  # each kind once
    assert all(any(m["selector"] == "body" for m in r.contrast[scheme]) for r in thorough)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_distance_matrix_contrast(crawl, scheme):
    """The cross-pair distance matrix, whose cells are coloured by value, keeps its numbers
    legible."""
    assert MATRIX_CELLS in _measured(crawl, scheme)
    found = _problems(crawl, lambda r: _contrast_problems(r, scheme, {MATRIX_CELLS}))
    assert not found, _lines(found)


def _focus_problems(report: PageReport) -> list[str]:
    if report.tabbable < 0:
        return []  # not measured: a page of a kind measured elsewhere
    if report.tabbable == 0:
        return ["nothing on the page can take the keyboard focus"]
    problems = []
    for press, active in enumerate(report.tab_sequence, start=1):
        if active is None:
            problems.append(f"Tab #{press}: the focus is on nothing (body)")
        elif active["order"] != press - 1:
            problems.append(
                f"Tab #{press}: focus on <{active['tag']}> {active['label']!r} (focusable "
                f"#{active['order']}), expected focusable #{press - 1} in document order"
            )
    return problems[:5]


def test_keyboard_focus_moves_through_the_links_in_order(crawl):
    """Tab moves the focus from one focusable element to the next, in document order, never
    stuck."""
    found = _problems(crawl, _focus_problems)
    assert not found, _lines(found)
    tags = {a["tag"] for r in crawl.values() for a in r.tab_sequence if a}
    assert "a" in tags, tags


# --- screenshots ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
@pytest.mark.parametrize("page_path", ["index.html", LAYER_PAGE])
def test_screenshot_is_not_blank(browser, server, tmp_path, page_path, size):
    import numpy as np
    from PIL import Image

    context = browser.new_context(viewport=size, device_scale_factor=1, color_scheme="light")
    visit = Visit()
    try:
        page = open_page(context, server, page_path, visit)
        page.evaluate(LOAD_IMAGES_JS)
        shot = tmp_path / f"{page_path.replace('/', '_')}-{size['width']}x{size['height']}.png"
        page.screenshot(path=str(shot))
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    finally:
        context.close()
    with Image.open(shot) as image:
        assert image.size == (size["width"], size["height"])
        pixels = np.asarray(image.convert("RGB"))
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert colours > 50, f"{shot}: only {colours} distinct colours"
    assert pixels.std() > 20, f"{shot}: pixel standard deviation {pixels.std():.1f}"
    assert not visit.console_errors and not visit.failed_requests and not visit.foreign_requests, (
        visit
    )
    assert overflow <= 0, (
        f"{page_path} at {size['width']} px is {overflow} px wider than the window (horizontal "
        "scrolling)"
    )


# --- the layer page's script ----------------------------------------------------------------------


def test_filter_viewer_and_heatmap_tip(browser, server):
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    visit = Visit()
    try:
        page = open_page(context, server, SCRIPT_PAGE + "#f5", visit)
        viewer = page.locator("#filter-viewer")
        viewer.wait_for(state="visible", timeout=10_000)
        assert viewer.locator("canvas").count() == 3
        assert "Filter 5" in viewer.locator("h3").inner_text()
        # Each canvas shows its tile of a montage once the montage has loaded: not transparent.
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll('#filter-viewer canvas')).every((c) => {
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
                 return false; })""",
            timeout=10_000,
        )
        heatmap = page.locator("figure#correlation-map img.heatmap-image")
        heatmap.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => { const i = document.querySelector('figure#correlation-map "
            "img.heatmap-image'); return i.complete && i.naturalWidth > 0; }",
            timeout=10_000,
        )
        tip = page.locator("figure#correlation-map .heatmap-tip")
        assert tip.is_hidden()
        box = heatmap.bounding_box()
        assert box and box["width"] > 50 and box["height"] > 50, box
        heatmap.hover(position={"x": box["width"] / 2, "y": box["height"] / 2})
        tip.wait_for(state="visible", timeout=5_000)
        assert "filters" in tip.inner_text() and tip.locator("canvas").count() == 2
        page.mouse.move(1, 1)  # leaving the heatmap hides the tip again
        tip.wait_for(state="hidden", timeout=5_000)
    finally:
        context.close()
    assert not visit.console_errors and not visit.failed_requests and not visit.foreign_requests, (
        visit
    )


# --- filter pages -----------------------------------------------------------------------------


def test_from_a_top_pair_to_the_filter_page_and_back(browser, server):
    """A reviewer on a layer page clicks a filter of the top-pair table, lands on that filter's
    page (its visualisation, its examples, the pairs it is in, all loaded), follows its link
    back to the pair's layer page, and goes back in the browser's history."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    visit = Visit()
    try:
        page = open_page(context, server, SCRIPT_PAGE, visit)
        _settle(page)
        table = page.locator("table.numbers").filter(has_text="Top filter pairs of the style image")
        first = table.first.locator("tbody tr").first.locator("td").nth(1).locator("a")
        k = first.inner_text()
        first.click()
        page.wait_for_url(re.compile(rf"/filters/conv2_1/{k}\.html$"), timeout=10_000)
        assert page.locator("h1").inner_text().startswith(f"conv2_1 · filter {k}")
        images = page.evaluate(LOAD_IMAGES_JS)
        assert images and all(img["complete"] and img["width"] > 0 for img in images), images
        assert page.locator("figure.visualisation img").count() == 1
        assert page.locator("ul.examples img").count() >= 1
        _settle(page)
        in_pairs = page.locator("section[aria-labelledby=pairs] table a")
        back_to_pair = in_pairs.filter(has_text="Cat in brush strokes").first
        back_to_pair.click()
        page.wait_for_url(re.compile(r"/pairs/cat/conv2_1\.html#pairs$"), timeout=10_000)
        _settle(page)
        page.go_back()
        page.wait_for_url(re.compile(rf"/filters/conv2_1/{k}\.html$"), timeout=10_000)
        _settle(page)
        page.go_back()
        page.wait_for_url(re.compile(r"/pairs/cat/conv2_1\.html$"), timeout=10_000)
        _settle(page)
    finally:
        context.close()
    assert not visit.console_errors and not visit.failed_requests and not visit.foreign_requests, (
        visit
    )


def test_the_filter_viewer_links_the_filter_page(browser, server):
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    visit = Visit()
    try:
        page = open_page(context, server, SCRIPT_PAGE, visit)
        _settle(page)
        pair = page.locator(".pair-rows li").first.locator("figcaption a").first
        k = pair.inner_text().removeprefix("filter ")
        page.goto(page.url.split("#")[0] + f"#f{k}")
        link = page.locator("#filter-viewer .viewer-link a")
        link.wait_for(state="visible", timeout=10_000)
        link.click()
        page.wait_for_url(re.compile(rf"/filters/conv2_1/{k}\.html$"), timeout=10_000)
        _settle(page)
    finally:
        context.close()
    assert not visit.console_errors and not visit.failed_requests, visit


def _settle(page) -> None:
    """Every image of the page loaded (lazy ones too) and the network quiet: leaving a page
    earlier aborts its requests, which the visit would count as failures."""
    page.evaluate(LOAD_IMAGES_JS)
    page.wait_for_load_state("networkidle")


PRINT_JS = """() => {
  const shown = (selector) => [...document.querySelectorAll(selector)].map(
    (element) => getComputedStyle(element).display !== "none");
  return {
    navigation: shown(".crumbs, .site-footer, .neighbours, .layer-strip"),
    title: shown(".site-title"),
    images: shown("main img"),
    background: getComputedStyle(document.body).backgroundColor,
    text: getComputedStyle(document.body).color,
  };
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_printed_pair_page_is_a_report_without_navigation(browser, server, scheme):
    """Reviewers print: the breadcrumbs, the layer strip, the previous/next links and the footer
    are left out, the figures stay, and the page is black on white whatever the screen's
    scheme; on screen the navigation is there."""
    context = browser.new_context(viewport=DESKTOP, color_scheme=scheme)
    visit = Visit()
    try:
        page = open_page(context, server, "pairs/cat/index.html", visit)
        on_screen = page.evaluate(PRINT_JS)
        assert on_screen["navigation"] and all(on_screen["navigation"]), on_screen
        page.emulate_media(media="print")
        printed = page.evaluate(PRINT_JS)
        assert printed["navigation"] and not any(printed["navigation"]), printed
        assert all(printed["title"]) and printed["images"] and all(printed["images"]), printed
        assert printed["background"] == "rgb(255, 255, 255)", printed
        assert printed["text"] == "rgb(0, 0, 0)", printed
        assert not (visit.console_errors or visit.failed_requests or visit.foreign_requests)
    finally:
        context.close()


def test_keys_move_between_layers_and_pairs_and_show_their_help(browser, server):
    """← and → go to the previous and next layer on a layer page and the previous and next pair
    on a pair page; "/" puts the cursor in the index's filter, where arrows stay the field's;
    "?" shows the keys and Esc closes them."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    visit = Visit()
    try:
        page = open_page(context, server, "pairs/cat/conv2_1.html", visit)
        page.keyboard.press("ArrowRight")
        page.wait_for_url(re.compile(r"/pairs/cat/conv3_1\.html$"), timeout=10_000)
        page.keyboard.press("ArrowLeft")
        page.wait_for_url(re.compile(r"/pairs/cat/conv2_1\.html$"), timeout=10_000)
        page.goto(server.url("pairs/cat/index.html"))
        page.keyboard.press("ArrowRight")
        page.wait_for_url(re.compile(r"/pairs/cup/index\.html$"), timeout=10_000)
        page.goto(server.url("index.html"))
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.id") == "index-filter"
        page.keyboard.type("cup")
        page.keyboard.press("ArrowLeft")  # the field's: the cursor moves, the page stays
        assert page.url.endswith("/index.html")
        page.evaluate("document.activeElement.blur()")
        assert page.locator(".keys-hint kbd").inner_text() == "?"
        page.keyboard.press("?")
        dialog = page.locator("dialog.keys-help")
        assert dialog.is_visible() and "previous and next layer" in dialog.inner_text()
        page.keyboard.press("Escape")
        assert not dialog.is_visible()
        # Leaving a page at once aborts its images still loading: that is no failure.
        failed = [line for line in visit.failed_requests if "ERR_ABORTED" not in line]
        assert not (visit.console_errors or failed or visit.foreign_requests), visit
    finally:
        context.close()


AXE_PAGES = ["index.html", "pairs/cat/index.html", "pairs/cat/conv1_1.html", "layers/conv1_1.html"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_accessibility_violation(browser, server, scheme):
    """axe-core (the engine of the browsers' accessibility audits) on the index, a pair page, a
    layer page, a cross-pair page and a filter page, in both colour schemes: nothing it rates
    serious or critical."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    filter_page = next(server.site.glob("filters/*/*.html")).relative_to(server.site).as_posix()
    context = browser.new_context(viewport=DESKTOP, color_scheme=scheme)
    try:
        page = context.new_page()
        found = {}
        for page_path in [*AXE_PAGES, filter_page]:
            page.goto(server.url(page_path))
            violations = axe.run(page).response["violations"]
            found[page_path] = [
                f"{v['id']} ({v['impact']}, {len(v['nodes'])} elements): {v['help']}"
                for v in violations
                if v["impact"] in ("serious", "critical")
            ]
        assert not any(found.values()), found
    finally:
        context.close()


SPLIT_JS = """() => getComputedStyle(document.querySelector(".compare-frame"))
  .getPropertyValue("--split").trim()"""


def test_the_compare_slider_moves_by_keys_and_by_dragging(browser, server):
    """On a pair page the result lies over the content image, split where the reader puts it:
    the arrow keys on the slider (which a screen reader names) and a drag across the picture
    move the split; the style image can take the content's place."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    visit = Visit()
    try:
        page = open_page(context, server, "pairs/cat/index.html", visit)
        slider = page.locator(".compare-slider")
        slider.wait_for()
        assert slider.get_attribute("aria-label") == (
            "Split between the content image (left) and the result (right)"
        )
        assert page.evaluate(SPLIT_JS) == "50%"
        slider.focus()
        for _ in range(5):
            page.keyboard.press("ArrowRight")
        assert slider.input_value() == "55" and page.evaluate(SPLIT_JS) == "55%"
        assert page.url.endswith("/pairs/cat/index.html")  # the arrows were the slider's
        frame = page.locator(".compare-frame")
        box = frame.bounding_box()
        assert box and box["height"] > 20, box
        middle = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] * 0.3, middle)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.8, middle, steps=4)
        page.mouse.up()
        assert abs(int(slider.input_value()) - 80) <= 2, slider.input_value()
        page.locator(".compare select").select_option("style")
        over = page.locator(".compare-over").get_attribute("src")
        style = page.locator('[data-compare-role="style"] img').get_attribute("src")
        assert over and style and over.endswith(style.split("/")[-1])
        assert "style image" in (slider.get_attribute("aria-valuetext") or "")
        assert not (visit.console_errors or visit.failed_requests or visit.foreign_requests)
    finally:
        context.close()


def test_without_javascript_the_pair_images_stay_side_by_side(browser, server):
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(server.url("pairs/cat/index.html"))
        assert page.locator(".compare").count() == 0
        assert page.locator("[data-compare-role] img").count() == 3
    finally:
        context.close()


# --- the colour scheme and the figures ----------------------------------------------------------

PAGE_BACKGROUND_JS = "() => getComputedStyle(document.body).backgroundColor"
# The energy plot of a layer page: a matplotlib figure, its margins transparent.
PLOT = "section[aria-labelledby=correlation] figure.plot:not(.heatmap) img"


def _luminance(rgb) -> float:
    channels = [c / 255 for c in rgb]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _shown_plot(page, shot: Path) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The page's background and the colour of the plot's top left corner (a margin of the
    plot) as the screen shows them, from a screenshot saved at ``shot``."""
    from PIL import Image

    plot = page.locator(PLOT)
    plot.scroll_into_view_if_needed()
    page.wait_for_function(
        "(s) => { const i = document.querySelector(s); return i.complete && i.naturalWidth; }",
        arg=PLOT,
    )
    plot.screenshot(path=str(shot))
    with Image.open(shot) as image:
        corner = image.convert("RGB").getpixel((2, 2))
    return _page_background(page), corner


def _page_background(page) -> tuple[int, int, int]:
    red, green, blue = re.findall(r"\d+", page.evaluate(PAGE_BACKGROUND_JS))[:3]
    return int(red), int(green), int(blue)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_figures_backgrounds_follow_the_colour_scheme(browser, server, tmp_path, scheme):
    """The system's scheme gives the page its background, and a plot shows that background
    through its margins: no white panel on the dark page (screenshots kept in tmp_path)."""
    context = browser.new_context(viewport=DESKTOP, color_scheme=scheme, device_scale_factor=1)
    visit = Visit()
    try:
        page = open_page(context, server, SCRIPT_PAGE, visit)
        background, corner = _shown_plot(page, tmp_path / f"plot-{scheme}.png")
        page.screenshot(path=str(tmp_path / f"layer-{scheme}.png"), full_page=False)
    finally:
        context.close()
    dark = _luminance(background) < 0.2
    assert dark == (scheme == "dark"), background
    assert all(abs(a - b) <= 2 for a, b in zip(corner, background, strict=True)), (
        corner,
        background,
    )
    assert not (visit.console_errors or visit.failed_requests or visit.foreign_requests), visit


def test_the_colour_scheme_switch_is_remembered_on_every_page(browser, server, tmp_path):
    """The header's button goes from the system's scheme to light, dark and back; the choice
    holds on the next page and after a reload, and the figures follow it."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="light", device_scale_factor=1)
    visit = Visit()
    try:
        page = open_page(context, server, SCRIPT_PAGE, visit)
        switch = page.locator("button.scheme-switch")
        assert switch.inner_text().split()[-1] == "System"
        assert "light now" in (switch.get_attribute("title") or "")
        switch.click()
        assert switch.inner_text().split()[-1] == "Light"
        assert _luminance(_shown_plot(page, tmp_path / "a.png")[0]) > 0.8
        switch.click()
        assert switch.inner_text().split()[-1] == "Dark"
        background, corner = _shown_plot(page, tmp_path / "chosen-dark.png")
        assert _luminance(background) < 0.05 and _luminance(corner) < 0.05, (background, corner)
        page.goto(server.url("pairs/cup/index.html"))  # another page: still dark
        assert page.locator("html").get_attribute("data-scheme") == "dark"
        assert _luminance(_page_background(page)) < 0.05
        page.goto(server.url(SCRIPT_PAGE))
        page.reload()
        assert page.locator("button.scheme-switch").inner_text().split()[-1] == "Dark"
        page.locator("button.scheme-switch").click()  # back to the system's: light here
        assert page.locator("html").get_attribute("data-scheme") is None
        assert _luminance(_shown_plot(page, tmp_path / "b.png")[0]) > 0.8
        page.emulate_media(color_scheme="dark")  # and it follows the system's
        assert _luminance(_shown_plot(page, tmp_path / "c.png")[0]) < 0.05
    finally:
        context.close()
    # Leaving a page at once aborts what it still loads: that is no failure.
    failed = [line for line in visit.failed_requests if "ERR_ABORTED" not in line]
    assert not (visit.console_errors or failed or visit.foreign_requests), visit


# --- the figure viewer --------------------------------------------------------------------------

VIEWER_IMAGE_JS = """() => {
  const img = document.querySelector("dialog.zoom .zoom-image");
  return {width: img.getBoundingClientRect().width, natural: img.naturalWidth,
          rendering: getComputedStyle(img).imageRendering, scale: document.querySelector(
            "dialog.zoom .zoom-scale").textContent};
}"""


def test_a_figure_opens_at_full_size_pixel_for_pixel_and_esc_closes_it(browser, server):
    """The correlation heatmap's button opens it in the viewer, enlarged by a whole number
    without smoothing; pointing names the two filters of the cell; + enlarges it; the arrow keys
    stay the viewer's; Esc closes it.  A click on a montage's tile in the viewer opens that
    filter, and axe finds nothing serious in the open viewer."""
    from axe_playwright_python.sync_playwright import Axe

    context = browser.new_context(viewport=DESKTOP, color_scheme="light")
    visit = Visit()
    try:
        page = open_page(context, server, SCRIPT_PAGE, visit)
        _settle(page)
        page.locator("#correlation-map").scroll_into_view_if_needed()
        page.locator("#correlation-map .zoom-open").click()
        dialog = page.locator("dialog.zoom")
        assert dialog.is_visible()
        shown = page.evaluate(VIEWER_IMAGE_JS)
        # conv2_1's 128×128 matrix, a pixel a cell: enlarged to fit the window, by a whole
        # number, without smoothing.
        channels = shown["natural"]
        assert channels == 128 and shown["width"] % channels == 0, shown
        assert shown["width"] > channels and shown["rendering"] == "pixelated", shown
        box = page.locator("dialog.zoom .zoom-image").bounding_box()
        cell = box["width"] / channels
        page.mouse.move(box["x"] + cell * 5.5, box["y"] + cell * 9.5)  # row 9, column 5
        assert (
            page.locator(".zoom-reading")
            .inner_text()
            .startswith("row 9, column 5: filters 9 and 5")
        )
        page.keyboard.press("+")
        larger = page.evaluate(VIEWER_IMAGE_JS)
        assert larger["width"] > shown["width"] and larger["width"] % channels == 0, larger
        page.keyboard.press("ArrowRight")  # scrolls the viewer: no other page
        assert page.url.endswith(SCRIPT_PAGE)
        violations = Axe().run(page).response["violations"]
        serious = [v["id"] for v in violations if v["impact"] in ("serious", "critical")]
        assert not serious, serious
        page.keyboard.press("Escape")
        assert not dialog.is_visible()
        # A montage, from its button: a tile clicked in the viewer opens that filter's maps.
        montage = page.locator("figure.montage").first
        montage.scroll_into_view_if_needed()
        montage.locator(".zoom-open").click()
        assert dialog.is_visible()
        box = page.locator("dialog.zoom .zoom-image").bounding_box()
        page.mouse.move(box["x"] + 3, box["y"] + 3)
        assert page.locator(".zoom-reading").inner_text().startswith("filter 0 (")
        page.mouse.click(box["x"] + 3, box["y"] + 3)
        page.wait_for_url(re.compile(r"#f0$"))
        assert not dialog.is_visible() and page.locator("#filter-viewer").is_visible()
    finally:
        context.close()
    assert not (visit.console_errors or visit.failed_requests or visit.foreign_requests), visit


def test_a_plot_opens_on_click_and_a_linked_image_keeps_its_link(browser, server):
    """A plot opens in the viewer by a click on it; the result on the pair page opens in the
    viewer from its button, and a click on the image itself still opens the file."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="dark")
    visit = Visit()
    try:
        page = open_page(context, server, "pairs/cat/index.html", visit)
        _settle(page)
        plot = page.locator("section[aria-labelledby=losses] figure img")
        plot.scroll_into_view_if_needed()
        plot.click()
        dialog = page.locator("dialog.zoom")
        assert dialog.is_visible()
        shown = page.evaluate(VIEWER_IMAGE_JS)
        assert shown["width"] == shown["natural"] and shown["scale"] == "×1", shown
        link = page.locator("dialog.zoom a.zoom-file").get_attribute("href")
        assert link and link.endswith("losses.png"), link
        page.keyboard.press("Escape")
        assert not dialog.is_visible()
        result = page.locator('[data-compare-role="result"]')
        result.scroll_into_view_if_needed()
        result.locator(".zoom-open").click()
        assert dialog.is_visible()
        assert page.evaluate(VIEWER_IMAGE_JS)["natural"] == 48
        page.keyboard.press("Escape")
        result.locator("a img").click()
        page.wait_for_url(re.compile(r"/pairs/cat/result\.png$"))
    finally:
        context.close()
    assert not (visit.console_errors or visit.foreign_requests), visit
