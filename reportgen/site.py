"""The page model: which pages the site has, where each is written, and what it shows.

Pages are computed from the pair records (``data/pair.json``) alone, so a site can be rendered
from cached results without torch.  Templates compute nothing: every path they link to comes
finished from here (named by :mod:`reportgen.layout`), and so does every choice of what a page
shows; templates print values and loop.  What a run's page and its layer pages show is
:mod:`reportgen.views`'; this module decides which pages there are and how they link together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reportgen import layout, views
from reportgen.layers import network_order
from reportgen.layout import INDEX, NOT_FOUND, ROLES, LayerFigures, cross_pair_page, in_run, layer_page, run_page
from reportgen.manifest import Manifest, PairSpec

LAYER_DESCRIPTIONS = {
    "conv1_1": "the first layer: responds to colours and fine edges at full resolution",
    "conv2_1": "half resolution: small blobs, colour transitions and simple textures",
    "conv3_1": "quarter resolution: textures and repeated motifs",
    "conv4_1": "eighth resolution: larger motifs and parts of objects",
    "conv4_2": "eighth resolution, one layer deeper: the paper's content representation",
    "conv5_1": "sixteenth resolution: object parts and arrangements; little texture detail left",
}


@dataclass(frozen=True)
class Page:
    path: str  # site-relative POSIX path
    template: str
    context: dict[str, Any]


def _page(manifest: Manifest, path: str, template: str, title: str, crumbs: list[dict], **context: Any) -> Page:
    """A page with what ``base.html`` shows on every page: the browser's title, the way home and
    the stylesheet."""
    head_title = title if title == manifest.title else f"{title} · {manifest.title}"
    frame = {"site_title": manifest.title, "title": title, "head_title": head_title, "home": INDEX, "stylesheet": layout.STYLESHEET, "crumbs": crumbs}
    return Page(path, template, {**frame, **context})


def _crumbs(*items: tuple[str, str | None]) -> list[dict]:
    return [{"label": label, "href": href} for label, href in items]


def _links(links) -> list[dict]:
    return [{"label": link.label, "url": link.url} for link in links]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _neighbours(links: list[dict], position: int) -> dict:
    """The links before and after ``position`` in ``links`` (``None`` at either end)."""
    return {
        "previous": links[position - 1] if position > 0 else None,
        "next": links[position + 1] if position + 1 < len(links) else None,
    }


def _thumbs(name: str) -> dict[str, str]:
    return {role: in_run(name, layout.thumbnail_file(role)) for role in ROLES}


def build_pages(manifest: Manifest, records: dict[str, dict], failed: dict[str, str], comparisons: dict[str, dict]) -> list[Page]:
    """Every page of the site.

    ``records`` maps run name (``pair`` or ``pair/variant``) -> record, in manifest order;
    ``failed`` maps the name of each run that could not be computed to why; ``comparisons`` maps
    layer -> the cross-pair comparison of :func:`reportgen.compare.style_distances`.
    """
    pages: list[Page] = []

    def finished(pair) -> list[str]:
        names = [f"{pair.id}/{v.id}" for v in pair.variants] if pair.variants else [pair.id]
        return [name for name in names if name in records]

    # Previous/next links only between pairs that have pages (with --keep-going some may not).
    shown = [pair for pair in manifest.pairs if finished(pair)]
    pair_links = [{"href": run_page(p.id), "label": p.title} for p in shown]
    index_entries = []
    for pair in manifest.pairs:
        names = [f"{pair.id}/{v.id}" for v in pair.variants] if pair.variants else [pair.id]
        done = finished(pair)
        entry = {
            "id": pair.id,
            "title": pair.title,
            "href": run_page(pair.id) if done else None,
            "failed": [{"name": name, "error": failed[name]} for name in names if name in failed],
            "failed_entirely": not done and any(name in failed for name in names),
            "card": _index_card(pair, done[0], records[done[0]]) if done else None,
        }
        index_entries.append(entry)
        if not done:
            continue
        neighbours = _neighbours(pair_links, shown.index(pair))
        if pair.variants:
            pages.append(_variants_page(manifest, pair, [(name, records[name]) for name in done], entry["failed"], neighbours))
        for name in done:
            pages.extend(_run_pages(manifest, pair, records[name], name, neighbours if not pair.variants else None, set(comparisons)))
    pages.insert(
        0,
        _page(
            manifest,
            INDEX,
            "index.html",
            manifest.title,
            _crumbs(("Study", None)),
            description=manifest.description,
            links=_links(manifest.links),
            pair_count=_plural(len(index_entries), "pair"),
            entries=index_entries,
            layer_pages=[{"name": layer, "href": cross_pair_page(layer)} for layer in comparisons],
            archive=layout.ARCHIVE if records and manifest.publish_archive else None,
        ),
    )
    pages.extend(_cross_pair_pages(manifest, records, comparisons))
    return pages


def _index_card(pair, name: str, record: dict) -> dict:
    """What the index shows of a pair with pages: its first run's thumbnails and a line about it."""
    thumbs = _thumbs(name)
    captions = {role: role for role in ROLES}
    if pair.variants:
        captions["result"] = f"result ({record['variant']})"
        summary = _plural(len(pair.variants), "variant")
    else:
        summary = f"{record['parameters']['steps']} steps · final loss {record['losses']['final']['total']:.4g}"
    width, height = record["inputs"]["content"]["size"]
    return {
        "triptych": [{"role": role, "src": thumbs[role], "caption": captions[role]} for role in ROLES],
        "size": f"{width}×{height}",
        "summary": summary,
    }


def _variants_page(manifest: Manifest, pair, runs: list[tuple[str, dict]], failed: list[dict], neighbours: dict) -> Page:
    """The contact sheet of a pair with variants: each variant's result, losses and changes."""
    first_name, first = runs[0]
    sheet = []
    for name, record in runs:
        changed = {key: views.format_value(record["parameters"][key]) for key in record["changed"]}
        sheet.append(
            {
                "name": record["variant"],
                "href": run_page(name),
                "result": in_run(name, layout.thumbnail_file("result")),
                "changed": changed,
                "final": record["losses"]["final"],
                "stylisation": views.stylisation_rows(record["stylisation"]),
                "content_distance": record["stylisation"]["content_features"]["result"],
            }
        )
    # Columns: every style layer any variant uses (a variant may change style_layers).
    style_layers = network_order(row["layer"] for item in sheet for row in item["stylisation"])
    for item in sheet:
        by_layer = {row["layer"]: row for row in item["stylisation"]}
        item["cells"] = [by_layer.get(layer) for layer in style_layers]
    thumbs = _thumbs(first_name)
    return _page(
        manifest,
        run_page(pair.id),
        "variants.html",
        pair.title,
        _crumbs(("Study", INDEX), (pair.title, None)),
        notes=pair.notes,
        links=_links(pair.links),
        inputs=[{"role": role, "src": thumbs[role], "file": first["inputs"][role]["file"]} for role in ("content", "style")],
        run_count=_plural(len(sheet), "run"),
        sheet=sheet,
        style_layers=style_layers,
        failed=failed,
        neighbours=neighbours,
    )


def _run_pages(manifest: Manifest, spec: PairSpec, record: dict, name: str, neighbours: dict | None, compared_layers: set[str]) -> list[Page]:
    """The page of one run (a pair, or one variant) and its layer pages.  ``compared_layers``
    are those with a cross-pair page (layers every run analyses)."""
    pair_title = spec.title
    if record["variant"]:
        trail = [("Study", INDEX), (pair_title, run_page(record["id"])), (record["variant"], run_page(name))]
    else:
        trail = [("Study", INDEX), (pair_title, run_page(name))]
    layers = views.layer_links(name, record)
    pages = [
        _page(
            manifest,
            run_page(name),
            "pair.html",
            record["title"],
            _crumbs(*trail[:-1], (trail[-1][0], None)),
            neighbours=neighbours or {"previous": None, "next": None},
            links=_links(spec.links),
            **views.run_view(name, record, layers, manifest.publish_grams),
        )
    ]
    strip_links = [{"href": other["href"], "label": other["name"]} for other in layers]
    for position, layer in enumerate(layers):
        pages.append(
            _page(
                manifest,
                layer["href"],
                "layer.html",
                f"{layer['name']} · {record['title']}",
                _crumbs(*trail, (layer["name"], None)),
                layer=layer,
                description=LAYER_DESCRIPTIONS.get(layer["name"], ""),
                neighbours=_neighbours(strip_links, position),
                cross_pair=cross_pair_page(layer["name"]) if layer["name"] in compared_layers else None,
                **views.layer_view(name, record, layers, layer["name"]),
            )
        )
    return pages


def _cross_pair_pages(manifest: Manifest, records: dict[str, dict], comparisons: dict[str, dict]) -> list[Page]:
    """``layers/<layer>.html``: every run's style Gram and result at one layer, and how alike the
    style images are there."""
    pages = []
    layer_names = list(comparisons)
    for position, (layer, comparison) in enumerate(comparisons.items()):
        rows = [
            {
                "title": record["title"],
                "href": layer_page(name, layer),
                "gram": in_run(name, LayerFigures(layer).gram_heatmap),
                "result": in_run(name, layout.thumbnail_file("result")),
                "style": in_run(name, layout.thumbnail_file("style")),
                "distance": record["stylisation"]["style_gram"].get(layer),
            }
            for name, record in records.items()
            if layer in record["layers"]
        ]
        pages.append(
            _page(
                manifest,
                cross_pair_page(layer),
                "layer_across.html",
                f"{layer} across the study",
                _crumbs(("Study", INDEX), (f"{layer} across pairs", None)),
                layer=layer,
                description=LAYER_DESCRIPTIONS.get(layer, ""),
                rows=rows,
                labels=comparison["labels"],
                distance_rows=_distance_rows(comparison),
                neighbours=_neighbours([{"href": cross_pair_page(other), "label": other} for other in layer_names], position),
            )
        )
    return pages


DISTANCE_SHADES = 10  # style.css shades the cells of a distance matrix d0 (alike) .. d9


def _distance_rows(comparison: dict) -> list[dict]:
    """The distance matrix between the study's style images, each cell with its shade."""
    return [
        {"label": label, "cells": [{"value": value, "shade": f"d{min(int(value * 5), DISTANCE_SHADES - 1)}"} for value in row]}
        for label, row in zip(comparison["labels"], comparison["matrix"])
    ]


def not_found_page(manifest: Manifest) -> Page:
    """GitHub Pages serves ``404.html`` for any missing path, at that path: the renderer makes
    its links absolute with the base URL (without one they are relative to the site root)."""
    return _page(manifest, NOT_FOUND, "404.html", "Page not found", _crumbs(("Study", INDEX), ("Not found", None)))


def sitemap(base_url: str, paths: list[str]) -> str:
    """sitemap.xml listing every page under ``base_url``."""
    from xml.sax.saxutils import escape

    root = base_url.rstrip("/") + "/"
    urls = "".join(f"  <url><loc>{escape(root + path)}</loc></url>\n" for path in sorted(paths))
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{urls}</urlset>\n'
