"""The page model: which pages the site has, where each is written, and what it shows.

Pages are computed from the pair records (``data/pair.json``) alone, so a site can be rendered
from cached results without torch.  Templates compute nothing; everything they show is prepared
here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reportgen.layers import network_order
from reportgen.manifest import Manifest, PairSpec, Params

DEFAULTS = Params()

LAYER_DESCRIPTIONS = {
    "conv1_1": "the first layer: responds to colours and fine edges at full resolution",
    "conv2_1": "half resolution: small blobs, colour transitions and simple textures",
    "conv3_1": "quarter resolution: textures and repeated motifs",
    "conv4_1": "eighth resolution: larger motifs and parts of objects",
    "conv4_2": "eighth resolution, one layer deeper: the paper's content representation",
    "conv5_1": "sixteenth resolution: object parts and arrangements; little texture detail left",
}


NOT_FOUND = "404.html"  # served by GitHub Pages at whatever path was missing


@dataclass(frozen=True)
class Page:
    path: str  # site-relative POSIX path
    template: str
    context: dict[str, Any]


def run_dir(name: str) -> str:
    """Site folder of a run: ``pairs/<id>`` or ``pairs/<id>/<variant>``."""
    return f"pairs/{name}"


def _crumbs(*items: tuple[str, str | None]) -> list[dict]:
    return [{"label": label, "href": href} for label, href in items]


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:g}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _parameter_rows(parameters: dict, changed: list[str]) -> list[dict]:
    """Every resolved parameter; those differing from the built-in defaults (of the run's loss
    and optimiser, whose weights and step sizes differ) or set by the variant are marked."""
    defaults = Params(loss=parameters.get("loss", DEFAULTS.loss), optimizer=parameters["optimizer"]).as_dict()
    return [
        {"name": name, "value": _format(value), "changed": value != defaults.get(name), "variant": name in changed}
        for name, value in parameters.items()
    ]


def _loss_rows(final: dict, parameters: dict) -> list[dict]:
    rows = [{"term": "content", "layer": parameters["content_layer"], "value": final["content"]}]
    rows += [{"term": "style", "layer": layer, "value": value} for layer, value in final["style"].items()]
    if final.get("tv"):
        rows.append({"term": "total variation", "layer": "", "value": final["tv"]})
    rows.append({"term": "total", "layer": "", "value": final["total"]})
    return rows


def _stylisation_rows(stylisation: dict) -> list[dict]:
    return [
        {"layer": layer, "result": d["result"], "content": d["content"], "matched": d["result"] < d["content"]}
        for layer, d in stylisation["style_gram"].items()
    ]


def _neighbours(links: list[dict], position: int) -> dict:
    """The links before and after ``position`` in ``links`` (``None`` at either end)."""
    return {
        "previous": links[position - 1] if position > 0 else None,
        "next": links[position + 1] if position + 1 < len(links) else None,
    }


COLOUR_NOTES = {
    "luminance": (
        "Colour preserved (luminance only): the network saw both images in luminance, the style's "
        "matched to the content's mean and spread (shown here as fed); the result shown joins the "
        "optimised luminance to the content image's colours. Losses, distances and every layer's "
        "figures describe the luminance image the network optimised."
    ),
    "histogram": (
        "Colour preserved (histogram matching): the style image was given the content image's colour "
        "mean and covariance before the transfer; the style image shown is the one the network saw."
    ),
}


def _snapshot_strip(base: str, record: dict) -> list[dict]:
    """The images kept during the optimisation, each with its step, size (when the run had
    several scales) and loss."""
    several_scales = len(record.get("scales", [])) > 1
    return [
        {
            "src": f"{base}/{snapshot['file']}",
            "step": snapshot["step"],
            "label": "start" if snapshot["step"] == 0 else f"step {snapshot['step']}",
            "size": f"{snapshot['size'][0]}×{snapshot['size'][1]}" if several_scales else None,
            "total": snapshot["total"],
        }
        for snapshot in record.get("snapshots", [])
    ]


def _scales_note(record: dict) -> str | None:
    scales = record.get("scales", [])
    if len(scales) < 2:
        return None
    sizes = " → ".join(f"{s['width']}×{s['height']}" for s in scales)
    return f"Coarse to fine: {record['parameters']['steps']} steps at each of {len(scales)} scales, {sizes}, each started from the previous result upsampled."


def _layer_links(base: str, record: dict) -> list[dict]:
    weights = record["parameters"]["style_layers"]
    return [
        {
            "name": layer,
            "href": f"{base}/{layer}.html",
            "channels": info["channels"],
            "role": " and ".join(r for r, on in (("style", info["is_style_layer"]), ("content", info["is_content_layer"])) if on),
            "weight": weights.get(layer),
        }
        for layer, info in record["layers"].items()
    ]


def _thumbs(base: str) -> dict[str, str]:
    return {role: f"{base}/thumbs/{role}.webp" for role in ("content", "style", "result")}


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
    pair_links = [{"href": f"{run_dir(p.id)}/index.html", "label": p.title} for p in shown]
    index_entries = []
    for pair in manifest.pairs:
        names = [f"{pair.id}/{v.id}" for v in pair.variants] if pair.variants else [pair.id]
        done = finished(pair)
        entry = {
            "id": pair.id,
            "title": pair.title,
            "href": f"{run_dir(pair.id)}/index.html" if done else None,
            "thumbs": _thumbs(run_dir(done[0])) if done else None,
            "variants": len(pair.variants),
            "record": records[done[0]] if done else None,
            "failed": [{"name": name, "error": failed[name]} for name in names if name in failed],
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
        Page(
            "index.html",
            "index.html",
            {
                "site_title": manifest.title,
                "title": manifest.title,
                "description": manifest.description,
                "links": [{"label": link.label, "url": link.url} for link in manifest.links],
                "crumbs": _crumbs(("Study", None)),
                "entries": index_entries,
                "layer_pages": [{"name": layer, "href": f"layers/{layer}.html"} for layer in comparisons],
                "archive": ARCHIVE if records and manifest.publish_archive else None,
            },
        ),
    )
    pages.extend(_cross_pair_pages(manifest, records, comparisons))
    return pages


ARCHIVE = "data.zip"


def _variants_page(manifest: Manifest, pair, runs: list[tuple[str, dict]], failed: list[dict], neighbours: dict) -> Page:
    """The contact sheet of a pair with variants: each variant's result, losses and changes."""
    base = run_dir(pair.id)
    first = runs[0][1]
    sheet = []
    for name, record in runs:
        changed = {key: _format(record["parameters"][key]) for key in record["changed"]}
        sheet.append(
            {
                "name": record["variant"],
                "href": f"{run_dir(name)}/index.html",
                "result": f"{run_dir(name)}/thumbs/result.webp",
                "changed": changed,
                "final": record["losses"]["final"],
                "stylisation": _stylisation_rows(record["stylisation"]),
                "content_distance": record["stylisation"]["content_features"]["result"],
            }
        )
    # Columns: every style layer any variant uses (a variant may change style_layers).
    style_layers = network_order(row["layer"] for item in sheet for row in item["stylisation"])
    for item in sheet:
        by_layer = {row["layer"]: row for row in item["stylisation"]}
        item["cells"] = [by_layer.get(layer) for layer in style_layers]
    return Page(
        f"{base}/index.html",
        "variants.html",
        {
            "site_title": manifest.title,
            "title": pair.title,
            "pair": first,
            "notes": pair.notes,
            "links": [{"label": link.label, "url": link.url} for link in pair.links],
            "thumbs": _thumbs(run_dir(runs[0][0])),
            "crumbs": _crumbs(("Study", "index.html"), (pair.title, None)),
            "sheet": sheet,
            "style_layers": style_layers,
            "failed": failed,
            "neighbours": neighbours,
        },
    )


def _run_pages(manifest: Manifest, spec: PairSpec, record: dict, name: str, neighbours: dict | None, compared_layers: set[str]) -> list[Page]:
    """The page of one run (a pair, or one variant) and its layer pages.  ``compared_layers``
    are those with a cross-pair page (layers every run analyses)."""
    base = run_dir(name)
    pair_title = spec.title
    if record["variant"]:
        trail = [("Study", "index.html"), (pair_title, f"{run_dir(record['id'])}/index.html"), (record["variant"], f"{base}/index.html")]
    else:
        trail = [("Study", "index.html"), (pair_title, f"{base}/index.html")]
    layers = _layer_links(base, record)
    common = {"site_title": manifest.title, "pair": record, "base": base, "layers": layers}
    pages = [
        Page(
            f"{base}/index.html",
            "pair.html",
            {
                **common,
                "title": record["title"],
                "crumbs": _crumbs(*trail[:-1], (trail[-1][0], None)),
                "neighbours": neighbours or {"previous": None, "next": None},
                "parameter_rows": _parameter_rows(record["parameters"], record["changed"]),
                "loss_rows": _loss_rows(record["losses"]["final"], record["parameters"]),
                "stylisation_rows": _stylisation_rows(record["stylisation"]),
                "content_distance": record["stylisation"]["content_features"],
                "links": [{"label": link.label, "url": link.url} for link in spec.links],
                "grams_published": manifest.publish_grams,
                "snapshots": _snapshot_strip(base, record),
                "colour_note": COLOUR_NOTES.get(record["parameters"].get("preserve_color", "none")),
                "scales_note": _scales_note(record),
                "total_steps": len(record["losses"]["step"]),
            },
        )
    ]
    for position, layer in enumerate(layers):
        info = record["layers"][layer["name"]]
        pages.append(
            Page(
                layer["href"],
                "layer.html",
                {
                    **common,
                    "title": f"{layer['name']} · {record['title']}",
                    "crumbs": _crumbs(*trail, (layer["name"], None)),
                    "layer": layer,
                    "info": info,
                    "description": LAYER_DESCRIPTIONS.get(layer["name"], ""),
                    "neighbours": _neighbours([{"href": other["href"], "label": other["name"]} for other in layers], position),
                    "figure_dir": f"{base}/{layer['name']}",
                    "distance": record["stylisation"]["style_gram"].get(layer["name"]),
                    "cross_pair": f"layers/{layer['name']}.html" if layer["name"] in compared_layers else None,
                },
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
                "name": name,
                "title": record["title"],
                "href": f"{run_dir(name)}/{layer}.html",
                "gram": f"{run_dir(name)}/{layer}/gram-style.webp",
                "result": f"{run_dir(name)}/thumbs/result.webp",
                "style": f"{run_dir(name)}/thumbs/style.webp",
                "distance": record["stylisation"]["style_gram"].get(layer),
            }
            for name, record in records.items()
            if layer in record["layers"]
        ]
        pages.append(
            Page(
                f"layers/{layer}.html",
                "layer_across.html",
                {
                    "site_title": manifest.title,
                    "title": f"{layer} across the study",
                    "crumbs": _crumbs(("Study", "index.html"), (f"{layer} across pairs", None)),
                    "layer": layer,
                    "description": LAYER_DESCRIPTIONS.get(layer, ""),
                    "rows": rows,
                    "comparison": comparison,
                    "neighbours": _neighbours([{"href": f"layers/{other}.html", "label": other} for other in layer_names], position),
                },
            )
        )
    return pages




def not_found_page(manifest: Manifest) -> Page:
    """GitHub Pages serves ``404.html`` for any missing path, at that path: the renderer makes
    its links absolute with the base URL (without one they are relative to the site root)."""
    return Page(
        NOT_FOUND,
        "404.html",
        {"site_title": manifest.title, "title": "Page not found", "crumbs": _crumbs(("Study", "index.html"), ("Not found", None))},
    )


def sitemap(base_url: str, paths: list[str]) -> str:
    """sitemap.xml listing every page under ``base_url``."""
    from xml.sax.saxutils import escape

    root = base_url.rstrip("/") + "/"
    urls = "".join(f"  <url><loc>{escape(root + path)}</loc></url>\n" for path in sorted(paths))
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{urls}</urlset>\n'
