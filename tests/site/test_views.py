"""What a reviewer reads, from records made in the test: the run page, a layer page, the index and
a contact sheet of variants, as views and as rendered HTML; no torch and no build."""

from __future__ import annotations

import dataclasses
import re

import pytest
from records import drawn_files, make_manifest, make_record, pair_spec, reconstructions, snapshots

from reportgen.manifest import Params
from reportgen.site import views
from reportgen.site.pages import Page, build_pages
from reportgen.site.render import Renderer
from reportgen.stages.results import Scale, StepRecord


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def render(renderer: Renderer, page: Page) -> str:
    return renderer.render(page.template, page.path, page.context)


def pages_of(*records, failed=None, pairs=None) -> dict[str, Page]:
    pairs = pairs or [pair_spec(record.id, record.title) for record in records]
    manifest = make_manifest(*pairs)
    built = build_pages(manifest, {r.name: r for r in records}, failed or {}, {}, [])
    return {page.path: page for page in built}


def test_parameters_say_which_were_set_by_the_variant_and_which_differ_from_the_defaults():
    params = Params(size=48, steps=3, style_weight=10.0)
    record = make_record(variant="strong", changed=("style_weight",), params=params)
    rows = {row["name"]: row for row in views.run_view(record, [], True)["parameter_rows"]}
    assert (
        rows["style_weight"]["note"] == "(set by this variant)"
        and rows["style_weight"]["value"] == "10"
    )
    assert rows["size"]["note"] == "(not the default)" and rows["size"]["marked"]
    assert rows["optimizer"]["note"] is None and not rows["optimizer"]["marked"]
    assert rows["style_layers"]["value"].startswith("conv1_1 1, conv2_1 0.8")


def test_the_loss_table_shows_total_variation_only_when_it_was_used():
    without = views.run_view(make_record(), [], True)["loss_rows"]
    assert [row["term"] for row in without] == ["content", *["style"] * 5, "total"]
    final = StepRecord(2.0, 0.4, {"conv1_1": 1.0}, tv=0.6)
    with_tv = views.run_view(make_record(final=final), [], True)["loss_rows"]
    assert [row["term"] for row in with_tv] == ["content", "style", "total variation", "total"]


def test_with_the_data_apart_the_page_shows_thumbnails_and_links_the_exact_images_there():
    base = "https://example.org/data/"
    images = {
        image["role"]: image for image in views.run_view(make_record(), [], True, base)["images"]
    }
    assert images["result"]["src"] == "pairs/cat/thumbs/result.webp"
    assert images["result"]["href"] == base + "pairs/cat/result.png"
    assert images["style"]["width"] == 48 and images["content"]["file"] == "img/cat.png"
    here = {image["role"]: image for image in views.run_view(make_record(), [], True)["images"]}
    assert here["result"]["src"] == here["result"]["href"] == "pairs/cat/result.png"


def test_the_run_page_tells_where_everything_came_from(renderer):
    record = make_record(
        notes="Seen by the reviewer.", snapshots=snapshots(), reconstructions=reconstructions()
    )
    html = render(renderer, pages_of(record)["pairs/cat/index.html"])
    assert "<h1>Cat in brush strokes</h1>" in html and "Seen by the reviewer." in html
    assert "longest side 48 px" in html
    assert (
        "<code>img/cat.png</code>, 451×300 px" in html
        and "<code>img/strokes.jpg</code>, 640×640 px" in html
    )
    assert "caffe (caffe preprocessing)" in html and "activations relu" in html
    assert "cpu (x86_64), 2 threads; optimisation in float32" in html
    assert "python 3.11.7, torch 2.14.1, cuda –" in html  # an absent version is a dash
    assert "load 0.0 s, transfer 0.2 s, analysis 0.3 s, figures 1.5 s" in html
    # The path of the optimisation and the paper's Figure 1, when the run has them.
    assert html.count('src="snapshots/step-') == 3 and "after 3 steps" in html
    assert "content at conv4_2" in html and "style up to conv2_1" in html


def test_a_coarse_to_fine_run_says_which_scales_it_took():
    record = make_record(scales=(Scale(32, 21, 1), Scale(48, 32, 4)))
    note = views.run_view(record, [], True)["scales_note"]
    assert note.startswith("Coarse to fine: 3 steps at each of 2 scales, 32×21 → 48×32")
    assert views.run_view(make_record(), [], True)["scales_note"] is None


def test_a_layer_page_links_each_ranked_filter_to_its_map(renderer):
    html = render(renderer, pages_of(make_record())["pairs/cat/conv3_1.html"])
    # The two filters of the top pair, linked to their tiles of the montage (on this page).
    assert '<a href="conv3_1.html#f3">3</a>' in html and '<a href="conv3_1.html#f7">7</a>' in html
    assert 'id="f63"' in html  # every filter of the 8×8 montage has its anchor
    assert "A style layer of this transfer, weight w = 0.5." in html
    assert "style image's 16×16 maps" in html


def test_filters_with_pages_are_linked_to_them_from_tables_pair_figures_and_the_viewer(renderer):
    """Filter 3 has a page, filter 7 does not: 3 links its page everywhere it is named, 7 its
    tile of the montage."""
    record = make_record()
    filters = views.LayerFilters(
        pages={3: "filters/conv3_1/3.html"},
        images={3: "filters/conv3_1/3.png"},
        atlas="filters/conv3_1/index.html",
    )
    layers = views.layer_links(record)
    view = views.layer_view(record, layers, "conv3_1", filters)
    top = view["pair_figures"][0]
    assert [f["href"] for f in top["filters"]] == ["filters/conv3_1/3.html", None]
    assert top["filters"][0]["image"] == "filters/conv3_1/3.png"
    assert top["figure"] == "pairs/cat/conv3_1/pair-01.webp"
    assert (top["value"], top["in_result"], top["limit"]) == (2.5, 0.5, 4.0)
    assert view["layer_data"]["filter_pages"] == {"3": "../../filters/conv3_1/3.html"}
    page = Page(
        "pairs/cat/conv3_1.html",
        "layer.html",
        {**pages_of(record)["pairs/cat/conv3_1.html"].context, **view},
    )
    html = render(renderer, page)
    assert '<a href="../../filters/conv3_1/3.html">3</a>' in html
    assert '<a href="conv3_1.html#f7">7</a>' in html
    assert 'src="../../filters/conv3_1/3.png"' in html
    assert 'href="../../filters/conv3_1/index.html"' in html


def test_without_montages_the_rankings_name_filters_without_links(renderer):
    layers = list(Params().analysed_layers)
    record = make_record(files=drawn_files(layers, montages=False, pair_sheets=False))
    html = render(renderer, pages_of(record)["pairs/cat/conv3_1.html"])
    assert '<a href="#f3">' not in html and 'id="f3"' not in html
    assert "figures: {montages: …}" in html and "figures: {pair_sheets: false}" in html


def test_only_the_content_layer_shows_the_difference_of_the_maps():
    record = make_record()
    layers = views.layer_links(record)
    content = views.layer_view(record, layers, "conv4_2")
    style = views.layer_view(record, layers, "conv1_1")
    assert content["figures"]["difference"] == "pairs/cat/conv4_2/maps-difference.webp"
    assert style["figures"]["difference"] is None and style["figures"]["loss_curve"]
    assert content["figures"]["loss_curve"] is None  # conv4_2 is no style layer here


def test_a_large_gram_is_shown_in_blocks_and_the_legend_says_so():
    record = make_record()
    info = dataclasses.replace(
        record.layers["conv5_1"],
        gram_scale=dataclasses.replace(record.layers["conv5_1"].gram_scale, block=2),
    )
    record = dataclasses.replace(record, layers={**record.layers, "conv5_1": info})
    legend = views.layer_view(record, views.layer_links(record), "conv5_1")["gram_legend"]
    assert legend["square"] == "the mean of 2×2 cells" and legend["low"] == -legend["high"]


def test_the_index_and_the_pair_pages_link_each_other_in_manifest_order(renderer):
    cat, cup = make_record("cat"), make_record("cup", title="Cup as a mosaic")
    pages = pages_of(cat, cup)
    index = render(renderer, pages["index.html"])
    assert index.index("Cat in brush strokes") < index.index("Cup as a mosaic")
    cat_page = render(renderer, pages["pairs/cat/index.html"])
    assert re.search(r'<a rel="next" href="../cup/index.html">Cup as a mosaic →</a>', cat_page)
    assert 'rel="prev"' not in cat_page


def test_a_pair_with_variants_gets_a_contact_sheet_and_its_failures_are_listed(renderer):
    pair = pair_spec("cat", "Cat", variants=("plain", "strong", "broken"))
    plain = make_record(variant="plain", title="Cat")
    stronger = Params(size=48, steps=3, style_weight=10.0)
    strong = make_record(variant="strong", changed=("style_weight",), title="Cat", params=stronger)
    failed = {"cat/broken": "the loss became nan at step 2"}
    pages = pages_of(plain, strong, failed=failed, pairs=[pair])
    sheet = render(renderer, pages["pairs/cat/index.html"])
    assert 'href="plain/index.html"' in sheet and 'href="strong/index.html"' in sheet
    assert "<code>style_weight</code> = 10" in sheet and "the pair's settings" in sheet
    assert "Failed: <code>cat/broken</code>: the loss became nan at step 2" in sheet
    assert "pairs/cat/strong/conv1_1.html" in pages


def test_every_text_of_the_manifest_is_escaped(renderer):
    record = make_record(title="<script>alert(1)</script>", notes="<b>bold</b>")
    pages = pages_of(record)
    for path in ("index.html", "pairs/cat/index.html", "pairs/cat/conv1_1.html"):
        html = render(renderer, pages[path])
        assert "<script>alert(1)" not in html and "<b>bold" not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in render(
        renderer, pages["pairs/cat/index.html"]
    )
