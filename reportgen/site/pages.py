"""The page model: which pages the site has, where each is written, and what it shows.

Pages are computed from the pair records (``data/pair.json``) alone, so a site can be rendered
from cached results without torch.  Templates compute nothing: every path they link to comes
finished from here (named by :mod:`reportgen.paths`), and so does every choice of what a page
shows; templates print values and loop.  What a run's page and its layer pages show is
:mod:`reportgen.site.views`'; this module decides which pages there are and how they link together.
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reportgen import paths
from reportgen.layers import network_order
from reportgen.manifest import Link, Manifest, PairSpec
from reportgen.paths import (
    INDEX,
    NOT_FOUND,
    ROLES,
    LayerFiles,
    cross_pair_page,
    image_file,
    in_run,
    layer_page,
    run_page,
)
from reportgen.site import views
from reportgen.site.archive import Volume
from reportgen.site.distances import StyleComparison
from reportgen.site.filters import FilterAtlas, atlas_view, filter_view, layer_filters
from reportgen.site.record import RunRecord
from reportgen.site.views import LayerFilters, View
from reportgen.stages.visualisations import Network

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


def _page(
    manifest: Manifest,
    path: str,
    template: str,
    title: str,
    crumbs: list[View],
    *,
    summary: str = "",
    image: str | None = None,
    **context: Any,
) -> Page:
    """A page with what ``base.html`` shows on every page: the browser's title, the way home and
    the stylesheet, and the card a link to it previews as in a chat or an e-mail (Open Graph):
    ``summary`` (default: the study's description) and ``image``, a site path."""
    head_title = title if title == manifest.title else f"{title} · {manifest.title}"
    frame = {
        "site_title": manifest.title,
        "title": title,
        "head_title": head_title,
        "home": INDEX,
        "stylesheet": paths.STYLESHEET,
        "favicon": paths.FAVICON,
        "keys_script": paths.KEYS_SCRIPT,
        "theme_script": paths.THEME_SCRIPT,
        "zoom_script": paths.ZOOM_SCRIPT,
        "crumbs": crumbs,
        "preview": {"summary": summary or manifest.description, "image": image},
    }
    return Page(path, template, {**frame, **context})


def _run_summary(record: RunRecord) -> str:
    """A run's line for link previews: what was transferred onto what, and how."""
    content, style = record.inputs["content"].file, record.inputs["style"].file
    width, height = record.inputs["content"].image.size
    return (
        f"{content} in the style of {style}: Gatys et al.'s style transfer on VGG19, "
        f"{width}×{height} px, {record.steps} steps, analysed layer by layer"
    )


def _crumbs(*items: tuple[str, str | None]) -> list[View]:
    return [{"label": label, "href": href} for label, href in items]


def _links(links: tuple[Link, ...]) -> list[View]:
    return [{"label": link.label, "url": link.url} for link in links]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _neighbours(links: list[View], position: int) -> View:
    """The links before and after ``position`` in ``links`` (``None`` at either end)."""
    return {
        "previous": links[position - 1] if position > 0 else None,
        "next": links[position + 1] if position + 1 < len(links) else None,
    }


def _thumbs(name: str) -> dict[str, str]:
    return {role: in_run(name, paths.thumbnail_file(role)) for role in ROLES}


def build_pages(
    manifest: Manifest,
    records: dict[str, RunRecord],
    failed: dict[str, str],
    comparisons: dict[str, StyleComparison],
    downloads: list[Volume],
    data_base: str | None = None,
    atlas: FilterAtlas | None = None,
) -> list[Page]:
    """Every page of the site.

    ``records`` maps run name (``pair`` or ``pair/variant``) -> its record, in manifest order;
    ``failed`` maps the name of each run that could not be computed to why; ``comparisons`` maps
    layer -> how alike the study's style images are there (:mod:`reportgen.site.distances`);
    ``downloads`` are the data archive's volumes; ``data_base`` is where the data files are
    published when not in the site (a URL, or a path from the site's root), else ``None``;
    ``atlas`` holds the filters with pages of their own (:mod:`reportgen.site.filters`).
    """
    pages: list[Page] = []
    atlas = atlas or FilterAtlas({}, {})
    networks = {
        run.name: Network(run.params.weights, run.params.activation) for run in manifest.runs
    }

    def finished(pair: PairSpec) -> list[str]:
        names = [f"{pair.id}/{v.id}" for v in pair.variants] if pair.variants else [pair.id]
        return [name for name in names if name in records]

    # Previous/next links only between pairs that have pages (with --keep-going some may not).
    shown = [pair for pair in manifest.pairs if finished(pair)]
    pair_links = [{"href": run_page(p.id), "label": p.title} for p in shown]
    position = {pair.id: index for index, pair in enumerate(shown)}
    index_entries = []
    for pair in manifest.pairs:
        names = [f"{pair.id}/{v.id}" for v in pair.variants] if pair.variants else [pair.id]
        done = finished(pair)
        failures: list[View] = [
            {"name": name, "error": failed[name]} for name in names if name in failed
        ]
        entry: View = {
            "id": pair.id,
            "title": pair.title,
            "href": run_page(pair.id) if done else None,
            "failed": failures,
            "failed_entirely": not done and any(name in failed for name in names),
            "card": _index_card(pair, done[0], records[done[0]]) if done else None,
            "search": _search_text(manifest, pair),
        }
        index_entries.append(entry)
        if not done:
            continue
        neighbours = _neighbours(pair_links, position[pair.id])
        if pair.variants:
            pages.append(
                _variants_page(
                    manifest,
                    pair,
                    [(name, records[name]) for name in done],
                    failures,
                    neighbours,
                )
            )
        for name in done:
            pages.extend(
                _run_pages(
                    manifest,
                    pair,
                    records[name],
                    neighbours if not pair.variants else None,
                    set(comparisons),
                    data_base,
                    functools.partial(layer_filters, atlas, networks[name]),
                )
            )
    first_result = next(iter(records), None)
    pages.insert(
        0,
        _page(
            manifest,
            INDEX,
            "index.html",
            manifest.title,
            _crumbs(("Study", None)),
            summary=manifest.description
            or f"A style transfer study of {_plural(len(index_entries), 'pair')}",
            image=in_run(first_result, image_file("result")) if first_result else None,
            description=manifest.description,
            links=_links(manifest.links),
            pair_count=_plural(len(index_entries), "pair"),
            entries=index_entries,
            as_table=len(index_entries) > CARDS_UP_TO,
            sort_keys=SORT_KEYS,
            index_script=paths.INDEX_SCRIPT,
            layer_pages=[{"name": layer, "href": cross_pair_page(layer)} for layer in comparisons],
            filter_atlases=_atlas_links(atlas),
            downloads=[
                {
                    "href": (data_base or "") + v.site_path,
                    "label": _download_label(v, len(downloads)),
                }
                for v in downloads
            ],
        ),
    )
    pages.extend(_cross_pair_pages(manifest, records, comparisons))
    pages.extend(_filter_pages(manifest, records, atlas))
    return pages


def _atlas_links(atlas: FilterAtlas) -> list[View]:
    """The study's pages of every filter of a layer, as the index links them."""
    links = []
    for network, layer in atlas.layers():
        name = atlas.network_names.get(network)
        count = sum(1 for key in atlas.entries if key.network == network and key.layer == layer)
        links.append(
            {
                "label": f"{name} {layer}" if name else layer,
                "href": paths.filter_atlas(layer, name),
                "count": _plural(count, "filter"),
            }
        )
    return links


def _filter_pages(
    manifest: Manifest, records: dict[str, RunRecord], atlas: FilterAtlas
) -> list[Page]:
    """A page per filter with a visualisation (``filters/<layer>/<k>.html``), and per layer the
    page of all of them."""
    titles = {name: record.title for name, record in records.items()}
    pages = []
    layers = atlas.layers()
    atlas_links = _atlas_links(atlas)
    for position, (network, layer) in enumerate(layers):
        name = atlas.network_names.get(network)
        label = f"{name} {layer}" if name else layer
        keys = [k for k in atlas.entries if k.network == network and k.layer == layer]
        atlas_page = paths.filter_atlas(layer, name)
        pages.append(
            _page(
                manifest,
                atlas_page,
                "filter_atlas.html",
                f"Filters of {label}",
                _crumbs(("Study", INDEX), (f"Filters of {label}", None)),
                description=LAYER_DESCRIPTIONS.get(layer, ""),
                **atlas_view(atlas, network, layer),
                neighbours=_neighbours(
                    [{"href": link["href"], "label": link["label"]} for link in atlas_links],
                    position,
                ),
            )
        )
        filter_links = [
            {"href": paths.filter_page(layer, key.index, name), "label": f"filter {key.index}"}
            for key in keys
        ]
        for index, key in enumerate(keys):
            pages.append(
                _page(
                    manifest,
                    filter_links[index]["href"],
                    "filter.html",
                    f"{label} · filter {key.index}",
                    _crumbs(
                        ("Study", INDEX),
                        (f"Filters of {label}", atlas_page),
                        (f"filter {key.index}", None),
                    ),
                    summary=f"Filter {key.index} of {label}: the image that excites it most, and "
                    "where it fires in the study's images",
                    image=paths.filter_visualisation(layer, key.index, name)
                    if atlas.entries[key].image
                    else None,
                    description=LAYER_DESCRIPTIONS.get(layer, ""),
                    neighbours=_neighbours(filter_links, index),
                    neighbours_label=f"Other filters of {label}",
                    **filter_view(
                        atlas,
                        atlas.entries[key],
                        titles,
                        manifest.weights_as_written(network.weights),
                    ),
                )
            )
    return pages


def _download_label(volume: Volume, count: int) -> str:
    """A volume's link text: its size, and which runs it holds when there are several."""
    size = f"{volume.bytes / 1e6:.0f} MB" if volume.bytes >= 1e6 else f"{volume.bytes / 1e3:.0f} KB"
    if count == 1:
        return f"{posixpath.basename(volume.site_path)} ({size})"
    held = volume.runs[0] if len(volume.runs) == 1 else f"{volume.runs[0]} … {volume.runs[-1]}"
    runs = _plural(len(volume.runs), "run")
    return f"{posixpath.basename(volume.site_path)} ({size}: {runs}, {held})"


CARDS_UP_TO = 30  # pairs the index shows as cards; a larger study gets a compact table

# What the index can be sorted by (index.js): the key of each item's data attribute, its label,
# and whether larger values come first.
SORT_KEYS = (
    {"key": "loss", "label": "final loss, lowest first", "descending": False},
    {"key": "style", "label": "style distance, lowest first", "descending": False},
    {"key": "content", "label": "content distance, lowest first", "descending": False},
    {"key": "size", "label": "size, largest first", "descending": True},
    {"key": "steps", "label": "steps, most first", "descending": True},
)


def _search_text(manifest: Manifest, pair: PairSpec) -> str:
    """What the index's filter matches a pair by: its id, title, notes and file names."""
    files = (manifest.relative(pair.content), *(manifest.relative(s) for s in pair.styles))
    return " ".join([pair.id, pair.title, pair.notes or "", *files]).lower()


def _index_card(pair: PairSpec, name: str, record: RunRecord) -> View:
    """What the index shows of a pair with pages: its first run's thumbnails, a line about it and
    the numbers it can be sorted by."""
    thumbs = _thumbs(name)
    captions: dict[str, str] = {role: role for role in ROLES}
    if len(pair.styles) > 1:
        captions["style"] = f"style 1 of {len(pair.styles)}"
    final = record.final.total
    if pair.variants:
        captions["result"] = f"result ({record.variant})"
        summary = _plural(len(pair.variants), "variant")
    else:
        summary = f"{record.parameters.steps} steps · final loss {final:.4g}"
    width, height = record.inputs["content"].image.size
    moved = record.stylisation
    ratios = [d.result / d.content for d in moved.style_gram.values() if d.content > 0]
    features = moved.content_features
    measures = {
        "loss": final,
        "style": sum(ratios) / len(ratios) if ratios else None,
        "content": features.result / features.style if features.style > 0 else None,
        "size": width * height,
        "steps": record.steps,
    }
    return {
        "triptych": [
            {"role": role, "src": thumbs[role], "caption": captions[role]} for role in ROLES
        ],
        "size": f"{width}×{height}",
        "summary": summary,
        "measures": measures,
        "shown": {
            "loss": f"{final:.4g}",
            "style": "–" if measures["style"] is None else f"{measures['style']:.2f}",
            "content": "–" if measures["content"] is None else f"{measures['content']:.2f}",
            "size": f"{width}×{height}",
            "steps": str(measures["steps"]),
        },
    }


def _variants_page(
    manifest: Manifest,
    pair: PairSpec,
    runs: list[tuple[str, RunRecord]],
    failed: list[View],
    neighbours: View,
) -> Page:
    """The contact sheet of a pair with variants: each variant's result, losses and changes."""
    first_name, first = runs[0]
    sheet: list[View] = []
    for name, record in runs:
        parameters = record.parameters.as_dict()
        changed = {key: views.format_value(parameters[key]) for key in record.changed}
        sheet.append(
            {
                "name": record.variant,
                "href": run_page(name),
                "result": in_run(name, paths.thumbnail_file("result")),
                "changed": changed,
                "final": {"total": record.final.total, "content": record.final.content},
                "stylisation": views.stylisation_rows(record.stylisation),
                "content_distance": record.stylisation.content_features.result,
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
        summary=pair.notes or f"{pair.title}: {_plural(len(sheet), 'run')} of one pair compared",
        image=in_run(first_name, image_file("result")),
        notes=pair.notes,
        links=_links(pair.links),
        inputs=[
            {"role": role, "src": thumbs[role], "file": first.inputs[role].file}
            for role in ("content", "style")
        ],
        run_count=_plural(len(sheet), "run"),
        sheet=sheet,
        style_layers=style_layers,
        failed=failed,
        neighbours=neighbours,
    )


def _run_pages(
    manifest: Manifest,
    spec: PairSpec,
    record: RunRecord,
    neighbours: View | None,
    compared_layers: set[str],
    data_base: str | None,
    filters: Callable[[str], LayerFilters],
) -> list[Page]:
    """The page of one run (a pair, or one variant) and its layer pages.  ``compared_layers``
    are those with a cross-pair page (layers every run analyses)."""
    name = record.name
    trail: list[tuple[str, str | None]] = [("Study", INDEX), (spec.title, run_page(record.id))]
    if record.variant:
        trail.append((record.variant, run_page(name)))
    layers = views.layer_links(record)
    pages = [
        _page(
            manifest,
            run_page(name),
            "pair.html",
            record.title,
            _crumbs(*trail[:-1], (trail[-1][0], None)),
            summary=spec.notes or _run_summary(record),
            image=in_run(name, image_file("result")),
            neighbours=neighbours or {"previous": None, "next": None},
            links=_links(spec.links),
            **views.run_view(record, layers, manifest.publish_grams, data_base),
        )
    ]
    strip_links = [{"href": other["href"], "label": other["name"]} for other in layers]
    for position, layer in enumerate(layers):
        pages.append(
            _page(
                manifest,
                layer["href"],
                "layer.html",
                f"{layer['name']} · {record.title}",
                _crumbs(*trail, (layer["name"], None)),
                summary=f"{layer['name']} of {record.title}: the style image's and the result's "
                "Gram matrices compared, filter by filter",
                image=in_run(name, LayerFiles(layer["name"]).gram_comparison),
                layer=layer,
                description=LAYER_DESCRIPTIONS.get(layer["name"], ""),
                neighbours=_neighbours(strip_links, position),
                cross_pair=cross_pair_page(layer["name"])
                if layer["name"] in compared_layers
                else None,
                **views.layer_view(record, layers, layer["name"], filters(layer["name"])),
            )
        )
    return pages


TABLE_UP_TO = (
    40  # style images whose distances a layer page shows as a table; more: a clustered image
)


def distances_as_table(comparison: StyleComparison) -> bool:
    """Whether a layer page shows its style images' distances as a table (a small study) or as
    a clustered image with each style's nearest styles."""
    return len(comparison.styles.identities) <= TABLE_UP_TO


def _cross_pair_pages(
    manifest: Manifest, records: dict[str, RunRecord], comparisons: dict[str, StyleComparison]
) -> list[Page]:
    """``layers/<layer>.html``: every run's style Gram and result at one layer, and how alike the
    style images are there: a table of distances for a small study; for a large one, the
    distances as an image ordered by their clustering, and each style's nearest styles."""
    pages = []
    layer_names = list(comparisons)
    for position, (layer, comparison) in enumerate(comparisons.items()):
        rows = [
            {
                "title": record.title,
                "href": layer_page(name, layer),
                "gram": in_run(name, LayerFiles(layer).gram_heatmap),
                "result": in_run(name, paths.thumbnail_file("result")),
                "style": in_run(name, paths.thumbnail_file("style")),
                "distance": _distance(record, layer),
            }
            for name, record in records.items()
            if layer in record.layers
        ]
        as_table = distances_as_table(comparison)
        pages.append(
            _page(
                manifest,
                cross_pair_page(layer),
                "layer_across.html",
                f"{layer} across the study",
                _crumbs(("Study", INDEX), (f"{layer} across pairs", None)),
                summary=f"{layer} across the study's {_plural(len(rows), 'run')}: style Grams, "
                "results, and how alike the style images are",
                image=None if as_table else paths.distances_figure(layer),
                layer=layer,
                description=LAYER_DESCRIPTIONS.get(layer, ""),
                rows=rows,
                style_count=_plural(len(comparison.styles.identities), "style image"),
                labels=comparison.styles.labels if as_table else None,
                distance_rows=_distance_rows(comparison) if as_table else None,
                distances_figure=None if as_table else paths.distances_figure(layer),
                nearest=None if as_table else _nearest_rows(comparison, records),
                neighbours=_neighbours(
                    [{"href": cross_pair_page(other), "label": other} for other in layer_names],
                    position,
                ),
            )
        )
    return pages


DISTANCE_SHADES = 10  # style.css shades the cells of a distance matrix d0 (alike) .. d9


def _distance(record: RunRecord, layer: str) -> View | None:
    gram = record.stylisation.style_gram.get(layer)
    return views.distances(gram) if gram else None


def _distance_rows(comparison: StyleComparison) -> list[View]:
    """The distance matrix between the study's style images, each cell with its shade."""
    return [
        {
            "label": label,
            "cells": [
                {"value": float(value), "shade": f"d{min(int(value * 5), DISTANCE_SHADES - 1)}"}
                for value in row
            ],
        }
        for label, row in zip(comparison.styles.labels, comparison.matrix, strict=True)
    ]


def _nearest_rows(comparison: StyleComparison, records: dict[str, RunRecord]) -> list[View]:
    """Each style image, in the order of the clustering, with its nearest styles; every style
    links to the layer page of the first run that uses it."""
    styles, layer = comparison.styles, comparison.layer

    def link(index: int) -> View:
        name = styles.runs[index]
        return {
            "label": styles.labels[index],
            "title": records[name].title,
            "href": layer_page(name, layer),
        }

    return [
        {
            **link(index),
            "nearest": [
                {**link(other), "distance": float(comparison.matrix[index, other])}
                for other in comparison.nearest(index)
            ],
        }
        for index in comparison.order
    ]


def not_found_page(manifest: Manifest) -> Page:
    """GitHub Pages serves ``404.html`` for any missing path, at that path: the renderer makes
    its links absolute with the base URL (without one they are relative to the site root)."""
    return _page(
        manifest,
        NOT_FOUND,
        "404.html",
        "Page not found",
        _crumbs(("Study", INDEX), ("Not found", None)),
    )


def sitemap(base_url: str, paths: list[str]) -> str:
    """sitemap.xml listing every page under ``base_url``."""
    from xml.sax.saxutils import escape

    root = base_url.rstrip("/") + "/"
    urls = "".join(f"  <url><loc>{escape(root + path)}</loc></url>\n" for path in sorted(paths))
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    namespace = "http://www.sitemaps.org/schemas/sitemap/0.9"
    return f'{head}<urlset xmlns="{namespace}">\n{urls}</urlset>\n'
