"""What the pages of one run show, from its record alone: the run's page and its layer pages.

Every value a template prints is prepared here, links as finished site paths (names from
:mod:`reportgen.paths`), choices of wording as finished text; :mod:`reportgen.site.pages` decides which
pages there are and joins these views to their frame.
"""

from __future__ import annotations

import posixpath
from typing import Any

from reportgen import paths
from reportgen.paths import ROLES, LayerFiles, in_run, layer_page
from reportgen.manifest import Params

DEFAULTS = Params()


def format_value(value: Any) -> str:
    """A parameter's value as the tables show it."""
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
    rows = []
    for name, value in parameters.items():
        by_variant, not_default = name in changed, value != defaults.get(name)
        note = "(set by this variant)" if by_variant else "(not the default)" if not_default else None
        rows.append({"name": name, "value": format_value(value), "marked": by_variant or not_default, "note": note})
    return rows


def _loss_rows(final: dict, parameters: dict) -> list[dict]:
    rows = [{"term": "content", "layer": parameters["content_layer"], "value": final["content"]}]
    rows += [{"term": "style", "layer": layer, "value": value} for layer, value in final["style"].items()]
    if final.get("tv"):
        rows.append({"term": "total variation", "layer": "", "value": final["tv"]})
    rows.append({"term": "total", "layer": "", "value": final["total"]})
    return rows


def stylisation_rows(stylisation: dict) -> list[dict]:
    return [
        {"layer": layer, "result": d["result"], "content": d["content"], "closer": "yes" if d["result"] < d["content"] else "no"}
        for layer, d in stylisation["style_gram"].items()
    ]


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

PRECISION_NOTE = " (targets, Grams, losses and analysis in float32)"  # when the optimisation ran at a lower precision
LOSS_NORMALISATIONS = {"relative": "relative squared errors"}  # else the seed's
SEED_NORMALISATION = "the seed notebook's normalisation"


def _images(name: str, record: dict, data_base: str | None) -> list[dict]:
    """The exact images of a run, each with the width it was fed at and (inputs) its file; with
    the data apart from the site, the page shows the thumbnail and links the exact image there."""
    inputs = record["inputs"]
    return [
        {
            "role": role,
            "src": in_run(name, paths.thumbnail_file(role)) if data_base else in_run(name, paths.image_file(role)),
            "href": (data_base or "") + in_run(name, paths.image_file(role)),
            "width": (inputs["style"] if role == "style" else inputs["content"])["size"][0],
            "file": inputs[role]["file"] if role in inputs else None,
        }
        for role in ROLES
    ]


def _snapshot_strip(name: str, record: dict) -> list[dict]:
    """The images kept during the optimisation, each with its step, size (when the run had
    several scales) and loss."""
    several_scales = len(record.get("scales", [])) > 1

    def after(step: int) -> str:
        return "at the start" if step == 0 else f"after {step} step{'' if step == 1 else 's'}"

    return [
        {
            "src": in_run(name, snapshot["file"]),
            "alt": f"The image {after(snapshot['step'])}",
            "label": "start" if snapshot["step"] == 0 else f"step {snapshot['step']}",
            "size": f"{snapshot['size'][0]}×{snapshot['size'][1]}" if several_scales else None,
            "total": snapshot["total"],
        }
        for snapshot in record.get("snapshots", [])
    ]


def _snapshot_interval(every: int) -> str:
    return "at every step" if every == 1 else f"every {every} steps"


def _scales_note(record: dict) -> str | None:
    scales = record.get("scales", [])
    if len(scales) < 2:
        return None
    sizes = " → ".join(f"{s['width']}×{s['height']}" for s in scales)
    return f"Coarse to fine: {record['parameters']['steps']} steps at each of {len(scales)} scales, {sizes}, each started from the previous result upsampled."


def _reconstruction_rows(name: str, record: dict) -> list[list[dict]]:
    """The paper's Figure 1, when the run has it: a row of content reconstructions (one layer
    each), then a row of style reconstructions (a growing set of layers)."""
    if not record.get("reconstructions"):
        return []
    rows = []
    for kind, label in (("content", "content at"), ("style", "style up to")):
        rows.append(
            [
                {
                    "src": in_run(name, item["file"]),
                    "alt": f"Image rebuilt from the {kind} representation " + (f"at {item['layers'][-1]}" if kind == "content" else f"of {', '.join(item['layers'])}"),
                    "caption": f"{label} {item['layers'][-1]}",
                }
                for item in record["reconstructions"][kind]
            ]
        )
    return rows


def _data_files(name: str, grams_published: bool, data_base: str | None) -> dict:
    """The run's data files linked from its page (the Grams only when published), each with its
    file name; ``data_base`` prefixes them when they are published apart from the site."""

    def link(inner: str) -> dict:
        return {"href": (data_base or "") + in_run(name, inner), "name": posixpath.basename(inner)}

    return {"grams": link(paths.GRAMS) if grams_published else None, "record": link(paths.RECORD)}


def _provenance(record: dict) -> dict:
    """The run's versions, timings, peak memory and stage versions as one line each."""
    return {
        "precision_note": PRECISION_NOTE if record["precision"] != "float32" else "",
        "versions": ", ".join(f"{package} {version if version else '–'}" for package, version in record["versions"].items()),
        "timings": ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in record["timings"].items()),
        "peak_memory": "".join(f"{count / 1e6:.0f} MB ({kind.replace('_', ' ')})" for kind, count in record["peak_memory"].items()),
        "stage_versions": ", ".join(f"{stage} {version}" for stage, version in record["stage_versions"].items()),
    }


def run_view(name: str, record: dict, layers: list[dict], grams_published: bool, data_base: str | None = None) -> dict:
    """What the page of run ``name`` shows besides its frame and navigation; ``layers`` are the
    links to its layer pages (:func:`layer_links`)."""
    parameters = record["parameters"]
    return {
        "pair": record,
        "layers": layers,
        "images": _images(name, record, data_base),
        "input_notes": [{"role": role, "note": note} for role in ("content", "style") for note in record["inputs"][role]["notes"]],
        "colour_note": COLOUR_NOTES.get(parameters.get("preserve_color", "none")),
        "snapshots": _snapshot_strip(name, record),
        "snapshot_interval": _snapshot_interval(parameters["snapshot_every"]),
        "total_steps": len(record["losses"]["step"]),
        "reconstruction_rows": _reconstruction_rows(name, record),
        "loss_curves": in_run(name, paths.LOSS_CURVES),
        "curves_include_tv": bool(parameters["tv_weight"]),
        "loss_normalisation": LOSS_NORMALISATIONS.get(parameters["loss"], SEED_NORMALISATION),
        "scales_note": _scales_note(record),
        "loss_rows": _loss_rows(record["losses"]["final"], parameters),
        "stylisation_rows": stylisation_rows(record["stylisation"]),
        "content_distance": record["stylisation"]["content_features"],
        "parameter_rows": _parameter_rows(parameters, record["changed"]),
        "provenance": _provenance(record),
        "data_files": _data_files(name, grams_published, data_base),
    }


def layer_links(name: str, record: dict) -> list[dict]:
    weights = record["parameters"]["style_layers"]
    return [
        {
            "name": layer,
            "href": layer_page(name, layer),
            "channels": info["channels"],
            "role": " and ".join(r for r, on in (("style", info["is_style_layer"]), ("content", info["is_content_layer"])) if on),
            "weight": weights.get(layer),
        }
        for layer, info in record["layers"].items()
    ]


# style.css lays the filter links over a montage with grid classes for these sizes only; a
# montage of another shape (an unusual layer) has no links to its tiles.
LINKED_GRID_COLUMNS = (8, 16, 32)
LINKED_GRID_ROWS = (4, 8, 16, 32)
LINKED_MONTAGE = "content"  # an id names one element: the filter anchors sit on one montage only


def _pair_rows(cells: list, linked: bool) -> list[dict]:
    """A ranking of Gram cells ``[i, j, value]``, each filter linked to its tile when the page
    has montages to show it in."""

    def href(k: int) -> str | None:
        return f"#{paths.filter_anchor(k)}" if linked else None

    return [{"rank": rank, "i": i, "j": j, "value": value, "i_href": href(i), "j_href": href(j)} for rank, (i, j, value) in enumerate(cells, start=1)]


def _tile_links(montage: dict) -> dict | None:
    """A link over every tile of the montage that carries the filter anchors, when the stylesheet
    has a grid of its shape."""
    if montage["columns"] not in LINKED_GRID_COLUMNS or montage["rows"] not in LINKED_GRID_ROWS:
        return None
    tiles = [{"id": paths.filter_anchor(k), "href": f"#{paths.filter_anchor(k)}", "label": f"filter {k}"} for k in range(montage["count"])]
    return {"grid": f"cols-{montage['columns']} rows-{montage['rows']}", "tiles": tiles}


def _montages(name: str, info: dict, files: LayerFiles, drawn: set[str]) -> list[dict]:
    """Every feature map of each image, one montage per role (none where the study's figure
    options leave this layer's montages out)."""
    montages = []
    for role in (role for role in ROLES if files.maps(role) in drawn):
        montage, (width, height) = info["montage"][role], info["map_size"][role]
        tile_width, tile_height = montage["tile"]
        montages.append(
            {
                "role": role,
                "id": f"maps-{role}",
                "src": in_run(name, files.maps(role)),
                "columns": montage["columns"],
                "map_size": f"{width}×{height}",
                "shown_at": f"{tile_width}×{tile_height}" if tile_width < width else None,
                "tile_links": _tile_links(montage) if role == LINKED_MONTAGE else None,
            }
        )
    return montages


def layer_view(name: str, record: dict, layers: list[dict], layer: str) -> dict:
    """What the page of ``layer`` of run ``name`` shows besides its frame and navigation:
    figures, legends, rankings with their filter links, montages and the data of the filter
    viewer; ``layers`` are the links to the run's layer pages."""
    info = record["layers"][layer]
    files = LayerFiles(layer)
    scale = info["gram_scale"]
    block = scale["block"]
    drawn = set(record["files"])
    montages = _montages(name, info, files, drawn)
    return {
        "pair": record,
        "info": info,
        "activation_note": "after the ReLU" if record["activation"] == "relu" else "before the ReLU",
        "layer_strip": [{"name": other["name"], "href": other["href"], "current": other["name"] == layer} for other in layers],
        "distance": record["stylisation"]["style_gram"].get(layer),
        "figures": {
            "gram_comparison": in_run(name, files.gram_comparison),
            "loss_curve": in_run(name, files.loss_curve) if info["is_style_layer"] else None,
            "difference": in_run(name, files.difference) if files.difference in drawn else None,
            "gram_heatmap": in_run(name, files.gram_heatmap),
            "correlation": in_run(name, files.correlation),
            "energy": in_run(name, files.energy),
            "top_pairs": in_run(name, files.top_pairs) if files.top_pairs in drawn else None,
        },
        "gram_legend": {
            "square": f"the mean of {block}×{block} cells" if block > 1 else "one cell",
            "low": -scale["limit"],
            "high": scale["limit"],
            "linear_below": scale["linear_below"],
            "scale": paths.DIVERGING_SCALE,
        },
        "correlation_legend": {"low": info["correlation_heatmap"]["low"], "scale": paths.MAGMA_SCALE},
        "rankings": {
            "style_cells": _pair_rows(info["top_cells"]["style"], bool(montages)),
            **{f"{role}_pairs": _pair_rows(info["top_pairs"][role], bool(montages)) for role in ROLES},
            "style_pairs_normalised": _pair_rows(info["top_pairs_normalised"], bool(montages)),
        },
        "top_pair_count": len(info["top_pairs"]["style"]),
        "montage_columns": info["montage"]["style"]["columns"],
        "filter_link_prefix": f"{paths.layer_page_name(layer)}#{paths.FILTER_ANCHOR_PREFIX}",
        "montages": montages,
        "layer_data": {"channels": info["channels"], "montage": info["montage"], "heatmap": info["correlation_heatmap"], "roles": [m["role"] for m in montages]},
        "filter_script": paths.FILTER_SCRIPT,
    }
