"""The report a reviewer reads: variants and sweeps, per-layer comparisons that agree with the
exported data, correlation rankings, filter anchors, cross-pair layer pages, reconstructions,
and every text of the manifest escaped."""

from __future__ import annotations

import functools
import json
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from studies import ANALYSED, make_study

SWEEP = "    sweep:\n      style_weight: [1.0e3, 1.0e6]\n"
VARIANTS = [f"style_weight-1e{k}" for k in (3, 6)]


@pytest.fixture(scope="module")
def swept(tmp_path_factory, session_cache):
    """The tiny study (its two pairs from the session's cache) with a third pair whose two
    variants come from a sweep."""
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    folder = tmp_path_factory.mktemp("swept")
    manifest = make_study(
        folder,
        extra_pairs="  - id: cat-sweep\n    title: Cat, two betas\n    content: img/cat.png\n    "
        "style: img/mosaic.png\n" + SWEEP,
    )
    site = folder / "site"
    summary = build(
        manifest, BuildOptions(site, ExecutorChoice(device="cpu", jobs=2), cache_dir=session_cache)
    )  # figures in two processes
    return site, summary


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            if attrs.get(name):
                self.links.append(attrs[name])


@functools.cache  # layer pages link to their own filters hundreds of times
def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text())
    return parser


def test_sweep_expands_into_variant_runs_with_their_own_pages(swept):
    site, summary = swept
    assert {f"cat-sweep/{v}" for v in VARIANTS} <= set(summary.computed) | set(summary.cached)
    sheet = (site / "pairs" / "cat-sweep" / "index.html").read_text()
    for variant in VARIANTS:
        folder = site / "pairs" / "cat-sweep" / variant
        for name in [
            "index.html",
            "result.png",
            "data/grams.npz",
            "data/pair.json",
            *[f"{layer}.html" for layer in ANALYSED],
        ]:
            assert (folder / name).is_file(), f"{variant}/{name}"
        record = json.loads((folder / "data" / "pair.json").read_text())
        assert record["variant"] == variant and record["changed"] == ["style_weight"]
        assert f'href="{variant}/index.html"' in sheet  # the contact sheet links every variant
    weights = [
        json.loads((site / "pairs" / "cat-sweep" / v / "data" / "pair.json").read_text())[
            "parameters"
        ]["style_weight"]
        for v in VARIANTS
    ]
    assert weights == [1e3, 1e6]
    # Pairs without variants keep the paths of a plain pair.
    assert (site / "pairs" / "cat" / "result.png").is_file()


def test_every_link_and_fragment_resolves_and_nothing_leaves_the_site(swept):
    site, _ = swept
    for page in site.rglob("*.html"):
        parsed = _parse(page)
        for link in parsed.links:
            assert not re.match(r"^[a-z]+:", link) or link.startswith(("http://", "https://")), (
                page,
                link,
            )
            assert not link.startswith("/"), (page, link)
            if link.startswith(("http://", "https://")):
                continue
            target, _, fragment = link.partition("#")
            resolved = (page.parent / target).resolve() if target else page
            assert resolved.is_file(), (page.relative_to(site), link)
            if fragment and resolved.suffix == ".html":
                assert fragment in _parse(resolved).ids, (page.relative_to(site), link)
        # No stylesheet, script or image from anywhere else (the pages must work offline).
        html = page.read_text()
        assert not re.search(
            r'(src|href)="(https?:)?//[^"]*\.(css|js|png|webp|jpg|svg|woff2?)"', html
        ), page


def test_pair_table_agrees_with_the_exported_grams(swept):
    """The per-layer Gram distances on the page are recomputed from data/grams.npz."""
    site, _ = swept
    for run in ["cat", *[f"cat-sweep/{v}" for v in VARIANTS]]:
        folder = site / "pairs" / run
        record = json.loads((folder / "data" / "pair.json").read_text())
        grams = np.load(folder / "data" / "grams.npz")
        page = (folder / "index.html").read_text()
        for layer, shown in record["stylisation"]["style_gram"].items():
            sizes = record["layers"][layer]["map_sizes"]
            per_position = {
                role: grams[f"{role}/{layer}"].astype(np.float64)
                / (sizes[role][0] * sizes[role][1])
                for role in ("style", "result", "content")
            }
            style_norm = np.linalg.norm(per_position["style"])
            for role in ("result", "content"):
                expected = np.linalg.norm(per_position[role] - per_position["style"]) / style_norm
                assert shown[role] == pytest.approx(expected, rel=1e-4), (run, layer, role)
            # and the page prints those numbers in the row of that layer
            row = re.search(rf"<tr><td>{layer}</td><td>([^<]+)</td><td>([^<]+)</td>", page)
            assert row, (run, layer)
            assert float(row.group(1)) == pytest.approx(shown["result"], rel=1e-3)
            assert float(row.group(2)) == pytest.approx(shown["content"], rel=1e-3)


def test_layer_pages_show_both_rankings_and_every_filter_has_an_anchor(swept):
    from reportgen.grams import correlation, sorted_cells

    site, _ = swept
    folder = site / "pairs" / "cat"
    record = json.loads((folder / "data" / "pair.json").read_text())
    grams = np.load(folder / "data" / "grams.npz")
    for layer in ANALYSED:
        info = record["layers"][layer]
        style = grams[f"style/{layer}"]
        assert info["top_pairs"]["style"] == [
            c.as_list()
            for c in sorted_cells(style, len(info["top_pairs"]["style"]), off_diagonal=True)
        ]
        expected = sorted_cells(
            correlation(style), len(info["top_pairs_normalised"]), off_diagonal=True
        )
        assert [c[:2] for c in info["top_pairs_normalised"]] == [[c.i, c.j] for c in expected]
        assert all(-1.0001 <= c[2] <= 1.0001 for c in info["top_pairs_normalised"])
        page = folder / f"{layer}.html"
        html = page.read_text()
        assert "ranked by raw G_ij" in html and "ranked by normalised G_ij" in html
        ids = _parse(page).ids
        assert {f"f{k}" for k in range(info["channels"])} <= ids, layer
        # (montages identical to another run's are stored once and linked there, so they are not
        # looked up by name; every image link resolving is checked above)
        for figure in ("grams-compare.webp", "correlation-style.webp", "energy.png"):
            assert f'src="{layer}/{figure}"' in html and (folder / layer / figure).is_file(), (
                layer,
                figure,
            )
        assert html.count("maps-") >= 3
    # the content layer also shows the difference of its maps
    assert "maps-difference.webp" in (folder / "conv4_2.html").read_text()
    # style layers show their loss over the steps
    assert "loss.png" in (folder / "conv1_1.html").read_text()


def test_cross_pair_layer_pages_compare_every_style_image(swept):
    site, _ = swept
    for layer in ANALYSED:
        page = (site / "layers" / f"{layer}.html").read_text()
        # two distinct style images in the study: a 2x2 matrix with zeros on the diagonal
        cells = re.findall(r'<td class="d\d">([0-9.]+)</td>', page)
        assert len(cells) == 4, layer
        values = [float(v) for v in cells]
        assert values[0] == 0 and values[3] == 0 and values[1] == values[2] > 0
        for run in ("cat", "cup", "cat-sweep/style_weight-1e3"):
            assert f"pairs/{run}/{layer}.html" in page


def test_variants_share_their_content_and_style_figures(swept):
    """A variant changes the result only: the inputs' montages are stored once for the pair."""
    site, _ = swept
    resolved = set()
    for variant in VARIANTS:
        page = site / "pairs" / "cat-sweep" / variant / "conv1_1.html"
        link = re.search(r'src="([^"]*maps-style\.webp)"', page.read_text()).group(1)
        resolved.add((page.parent / link).resolve())
    assert len(resolved) == 1 and next(iter(resolved)).is_file()


def test_index_links_an_archive_of_the_data(swept):
    site, _ = swept
    assert 'href="data.zip"' in (site / "index.html").read_text()
    with zipfile.ZipFile(site / "data.zip") as archive:
        names = set(archive.namelist())
    assert {
        "cat/data/grams.npz",
        "cat/data/pair.json",
        "cat/result.png",
        "cat-sweep/style_weight-1e6/data/pair.json",
    } <= names


def test_provenance_card_has_what_reproduction_needs(swept):
    site, _ = swept
    record = json.loads((site / "pairs" / "cat" / "data" / "pair.json").read_text())
    page = (site / "pairs" / "cat" / "index.html").read_text()
    for value in (
        record["inputs"]["content"]["sha256"],
        record["inputs"]["style"]["sha256"],
        record["weights"]["sha256"],
        record["versions"]["torch"],
    ):
        assert value in page
    assert "peak memory" in page and record["device"] in page
    # "precision: auto" in the manifest; the record and the page say what it meant here.
    from reportgen.ml.runtime import Runtime

    assert record["parameters"]["precision"] == "auto"
    assert record["precision"] == Runtime(torch.device("cpu")).precision("auto")
    assert f"optimisation in {record['precision']}" in page


def test_reconstructions_show_what_each_representation_keeps(tmp_path, session_cache):
    """The paper's Figure 1, on request: five content and five style reconstructions from noise."""
    from PIL import Image

    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    manifest = make_study(tmp_path / "study", steps=3, size=32)
    manifest.write_text(
        manifest.read_text().replace(
            "    style: img/strokes.jpg\n",
            "    style: img/strokes.jpg\n    reconstructions: true\n",
            1,
        )
    )
    site = tmp_path / "site"
    build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=session_cache))
    record = json.loads((site / "pairs" / "cat" / "data" / "pair.json").read_text())
    made = record["reconstructions"]
    assert [item["layers"][-1] for item in made["content"]] == [
        "conv1_2",
        "conv2_2",
        "conv3_2",
        "conv4_2",
        "conv5_2",
    ]
    assert [len(item["layers"]) for item in made["style"]] == [1, 2, 3, 4, 5]
    page = (site / "pairs" / "cat" / "index.html").read_text()
    for item in made["content"] + made["style"]:
        image = Image.open(site / "pairs" / "cat" / item["file"])
        assert image.size == tuple(record["inputs"]["content"]["size"])
        assert item["file"] in page
    # Rebuilt from noise: no two reconstructions are the same picture.
    pixels = {
        Image.open(site / "pairs" / "cat" / item["file"]).tobytes()
        for item in made["content"] + made["style"]
    }
    assert len(pixels) == 10
    assert (
        json.loads((site / "pairs" / "cup" / "data" / "pair.json").read_text())["reconstructions"]
        is None
    )


def test_manifest_text_is_escaped_in_every_page(base):
    pages = {p.relative_to(base.site).as_posix(): p.read_text() for p in base.site.rglob("*.html")}
    assert "index.html" in pages and "pairs/good/index.html" in pages
    for name, html in pages.items():
        assert "<script>alert" not in html and "<img src=x" not in html, name
        # The only scripts are the site's own: its JSON data blocks and its files under assets/.
        for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I):
            attributes, body = match.groups()
            assert 'type="application/json"' in attributes or re.search(
                r'src="[./]*assets/[\w.-]+\.js"', attributes
            ), (name, attributes)
            assert "alert(" not in body, name
        assert html.lower().count("<script") == len(
            re.findall(r"<script\b[^>]*>.*?</script>", html, re.S | re.I)
        ), name
    index = pages["index.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;" in index
    assert (
        '"><script>' not in index
        and 'href="https://example.org/?q=&#34;&gt;&lt;script&gt;' in index
    )
    pair_page = pages["pairs/good/index.html"]
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in pair_page
    assert "&lt;img src=x onerror=alert(3)&gt;" in pair_page
    assert "a&#39;b&#34;c" in pair_page  # the pair's link keeps its quotes inside the attribute
