"""The page model: which pages the site has, where each is written, and what it shows.

Pages are computed from the pair records (``data/pair.json``) alone, so a site can be rendered
from cached results without torch.  Templates compute nothing; everything they show is prepared
here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reportgen.manifest import Manifest, Params

DEFAULTS = Params()

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


def pair_dir(pair_id: str) -> str:
    return f"pairs/{pair_id}"


def _crumbs(*items: tuple[str, str | None]) -> list[dict]:
    return [{"label": label, "href": href} for label, href in items]


def _parameter_rows(parameters: dict) -> list[dict]:
    rows = []
    defaults = DEFAULTS.as_dict()
    for name, value in parameters.items():
        if name == "style_layers":
            shown = ", ".join(f"{layer} {weight:g}" for layer, weight in value.items())
        elif isinstance(value, float):
            shown = f"{value:g}"
        else:
            shown = str(value)
        rows.append({"name": name, "value": shown, "changed": value != defaults.get(name)})
    return rows


def _loss_rows(final: dict, parameters: dict) -> list[dict]:
    rows = [{"term": "content", "layer": parameters["content_layer"], "value": final["content"]}]
    rows += [{"term": "style", "layer": layer, "value": value} for layer, value in final["style"].items()]
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


def _layer_links(pair_id: str, record: dict) -> list[dict]:
    weights = record["parameters"]["style_layers"]
    return [
        {
            "name": layer,
            "href": f"{pair_dir(pair_id)}/{layer}.html",
            "channels": info["channels"],
            "role": ("style" if info["is_style_layer"] else "") + (" content" if info["is_content_layer"] else ""),
            "weight": weights.get(layer),
        }
        for layer, info in record["layers"].items()
    ]


def build_pages(manifest: Manifest, records: dict[str, dict], failed: dict[str, str]) -> list[Page]:
    """Every page of the site.  ``records`` maps pair id -> record, in manifest order;
    ``failed`` maps the id of each pair that could not be computed to why."""
    ids = list(records)
    index_entries = []
    pages = []
    for position, (pair_id, record) in enumerate(records.items()):
        base = pair_dir(pair_id)
        neighbours = _neighbours(
            [{"href": f"{pair_dir(other)}/index.html", "label": records[other]["title"]} for other in ids], position
        )
        layers = _layer_links(pair_id, record)
        final = record["losses"]["final"]
        index_entries.append(
            {
                "id": pair_id,
                "title": record["title"],
                "href": f"{base}/index.html",
                "thumbs": {role: f"{base}/thumbs/{role}.webp" for role in ("content", "style", "result")},
                "size": record["inputs"]["content"]["size"],
                "steps": record["parameters"]["steps"],
                "final_total": final["total"],
            }
        )
        spec = next(p for p in manifest.pairs if p.id == pair_id)
        common = {"site_title": manifest.title, "pair": record, "base": base, "layers": layers}
        pages.append(
            Page(
                f"{base}/index.html",
                "pair.html",
                {
                    **common,
                    "title": record["title"],
                    "crumbs": _crumbs(("Study", "index.html"), (record["title"], None)),
                    "neighbours": neighbours,
                    "parameter_rows": _parameter_rows(record["parameters"]),
                    "loss_rows": _loss_rows(final, record["parameters"]),
                    "stylisation_rows": _stylisation_rows(record["stylisation"]),
                    "content_distance": record["stylisation"]["content_features"],
                    "links": [{"label": link.label, "url": link.url} for link in spec.links],
                },
            )
        )
        for layer_position, layer in enumerate(layers):
            info = record["layers"][layer["name"]]
            pages.append(
                Page(
                    layer["href"],
                    "layer.html",
                    {
                        **common,
                        "title": f"{layer['name']} · {record['title']}",
                        "crumbs": _crumbs(("Study", "index.html"), (record["title"], f"{base}/index.html"), (layer["name"], None)),
                        "layer": layer,
                        "info": info,
                        "description": LAYER_DESCRIPTIONS.get(layer["name"], ""),
                        "neighbours": _neighbours([{"href": other["href"], "label": other["name"]} for other in layers], layer_position),
                        "figure_dir": f"{base}/{layer['name']}",
                    },
                )
            )
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
                "failed": [{"id": pair.id, "title": pair.title, "error": failed[pair.id]} for pair in manifest.pairs if pair.id in failed],
            },
        ),
    )
    return pages
