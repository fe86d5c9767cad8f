"""What the pages of one run show, from its record alone: the run's page and its layer pages.

Every value a template prints is prepared here from a :class:`~reportgen.site.record.RunRecord`:
links as finished site paths (names from :mod:`reportgen.paths`), choices of wording as finished
text.  :mod:`reportgen.site.pages` decides which pages there are and joins these views to their
frame.  The views are dicts: they are the Jinja2 context.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from reportgen import paths
from reportgen.grams import GramCell
from reportgen.manifest import Params
from reportgen.paths import ROLES, LayerFiles, in_run, layer_page
from reportgen.site.record import LayerRecord, RunRecord
from reportgen.site.render import relative_url
from reportgen.stages.results import GramDistances, StepRecord, Stylisation, style_role
from reportgen.tiles import MontageLayout

View = dict[str, Any]


def format_value(value: Any) -> str:
    """A parameter's value as the tables show it."""
    if value is None:
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:g}" for k, v in value.items())
    if isinstance(value, (list, tuple)):  # a blend's weights
        return ", ".join(f"{v:.4g}" for v in value) or "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _parameter_rows(parameters: Params, changed: tuple[str, ...]) -> list[View]:
    """Every resolved parameter; those differing from the built-in defaults (of the run's loss
    and optimiser, whose weights and step sizes differ) or set by the variant are marked."""
    defaults = Params(loss=parameters.loss, optimizer=parameters.optimizer).as_dict()
    rows = []
    for name, value in parameters.as_dict().items():
        by_variant, not_default = name in changed, value != defaults.get(name)
        note = (
            "(set by this variant)" if by_variant else "(not the default)" if not_default else None
        )
        rows.append(
            {
                "name": name,
                "value": format_value(value),
                "marked": by_variant or not_default,
                "note": note,
            }
        )
    return rows


def _loss_rows(final: StepRecord, content_layer: str) -> list[View]:
    rows: list[View] = [{"term": "content", "layer": content_layer, "value": final.content}]
    rows += [
        {"term": "style", "layer": layer, "value": value} for layer, value in final.style.items()
    ]
    if final.tv:
        rows.append({"term": "total variation", "layer": "", "value": final.tv})
    rows.append({"term": "total", "layer": "", "value": final.total})
    return rows


def distances(gram: GramDistances) -> View:
    """A layer's Gram distances as the pages print them."""
    return {"result": gram.result, "content": gram.content}


def stylisation_rows(stylisation: Stylisation) -> list[View]:
    """Each style layer's Gram distances, and whether the result came closer to the style."""
    return [
        {"layer": layer, **distances(gram), "closer": "yes" if gram.closer else "no"}
        for layer, gram in stylisation.style_gram.items()
    ]


COLOUR_NOTES = {
    "luminance": (
        "Colour preserved (luminance only): the network saw both images in luminance, the style's "
        "matched to the content's mean and spread (shown here as fed); the result shown joins the "
        "optimised luminance to the content image's colours. Losses, distances and every layer's "
        "figures describe the luminance image the network optimised."
    ),
    "histogram": (
        "Colour preserved (histogram matching): the style image was given the content image's "
        "colour mean and covariance before the transfer; the style image shown is the one the "
        "network saw."
    ),
}

# When the optimisation ran at a lower precision.
PRECISION_NOTE = " (targets, Grams, losses and analysis in float32)"
LOSS_NORMALISATIONS = {"relative": "relative squared errors"}  # else the seed's
SEED_NORMALISATION = "the seed notebook's normalisation"


def _images(record: RunRecord, data_base: str | None) -> list[View]:
    """The exact images of a run, each with the width it was fed at and (inputs) its file; with
    the data apart from the site, the page shows the thumbnail and links the exact image there."""
    name, inputs = record.name, record.inputs
    shown = paths.thumbnail_file if data_base else paths.image_file
    return [
        {
            "role": role,
            "src": in_run(name, shown(role)),
            "href": (data_base or "") + in_run(name, paths.image_file(role)),
            "width": inputs["style" if role == "style" else "content"].image.size[0],
            "file": inputs[role].file if role in inputs else None,
        }
        for role in ROLES
    ]


def _blend(record: RunRecord) -> View | None:
    """A blend's style images with their weights, and per style layer the Gram distances of
    the result and the content image to the blend's target and to each style image."""
    weights = record.parameters.blend_weights
    if len(weights) == 1:
        return None
    roles = [style_role(k) for k in range(len(weights))]
    stylisation = record.stylisation
    return {
        "styles": [
            {
                "role": role,
                "number": k + 1,
                "weight": weight,
                "file": record.inputs[role].file,
                "size": "×".join(map(str, record.inputs[role].image.size)),
                "src": in_run(record.name, paths.thumbnail_file(role)),
                "href": in_run(record.name, paths.image_file(role)),
            }
            for k, (role, weight) in enumerate(zip(roles, weights, strict=True))
        ],
        "rows": [
            {
                "layer": layer,
                "blend": distances(stylisation.style_gram[layer]),
                "styles": [distances(gram) for gram in row],
                # The style the result ended nearest to (the blend aims between them).
                "nearest": 1 + min(range(len(row)), key=lambda k: row[k].result),
            }
            for layer, row in stylisation.per_style.items()
        ],
    }


def _regions(record: RunRecord) -> View | None:
    """Each region: its mask over the content image, its style, its share of the masked area;
    and per style layer the Gram distance inside each region (the result's, the content
    image's) to the region's style."""
    if not record.masks:
        return None
    stylisation, name = record.stylisation, record.name
    return {
        "regions": [
            {
                "number": k + 1,
                "mask": mask,
                "style": record.inputs[style_role(k)].file,
                "share": stylisation.region_shares[k] if stylisation.region_shares else 1.0,
                "overlay": in_run(name, paths.region_file(k)),
                "style_src": in_run(name, paths.thumbnail_file(style_role(k))),
                "style_href": in_run(name, paths.image_file(style_role(k))),
            }
            for k, mask in enumerate(record.masks)
        ],
        "rows": [
            {"layer": layer, "regions": [distances(gram) for gram in row]}
            for layer, row in stylisation.per_region.items()
        ],
    }


def _snapshot_strip(record: RunRecord) -> list[View]:
    """The images kept during the optimisation, each with its step, size (when the run had
    several scales) and loss."""
    several_scales = len(record.scales) > 1

    def after(step: int) -> str:
        return "at the start" if step == 0 else f"after {step} step{'' if step == 1 else 's'}"

    return [
        {
            "src": in_run(record.name, paths.snapshot_file(shot.step)),
            "alt": f"The image {after(shot.step)}",
            "label": "start" if shot.step == 0 else f"step {shot.step}",
            "size": f"{shot.size[0]}×{shot.size[1]}" if several_scales else None,
            "total": shot.total,
        }
        for shot in record.snapshots
    ]


def _snapshot_interval(every: int) -> str:
    return "at every step" if every == 1 else f"every {every} steps"


def _scales_note(record: RunRecord) -> str | None:
    if len(record.scales) < 2:
        return None
    sizes = " → ".join(f"{scale.width}×{scale.height}" for scale in record.scales)
    return (
        f"Coarse to fine: {record.parameters.steps} steps at each of {len(record.scales)} scales, "
        f"{sizes}, each started from the previous result upsampled."
    )


def _reconstruction_rows(record: RunRecord) -> list[list[View]]:
    """The paper's Figure 1, when the run has it: a row of content reconstructions (one layer
    each), then a row of style reconstructions (a growing set of layers)."""
    if not record.reconstructions:
        return []
    rows = []
    for kind, label in (("content", "content at"), ("style", "style up to")):
        row = []
        for item in (made for made in record.reconstructions if made.kind == kind):
            deepest = item.layers[-1]
            rebuilt = f"at {deepest}" if kind == "content" else f"of {', '.join(item.layers)}"
            row.append(
                {
                    "src": in_run(record.name, paths.reconstruction_file(kind, deepest)),
                    "alt": f"Image rebuilt from the {kind} representation {rebuilt}",
                    "caption": f"{label} {deepest}",
                }
            )
        rows.append(row)
    return rows


def _data_files(name: str, grams_published: bool, data_base: str | None) -> View:
    """The run's data files linked from its page (the Grams only when published), each with its
    file name; ``data_base`` prefixes them when they are published apart from the site."""

    def link(inner: str) -> View:
        return {"href": (data_base or "") + in_run(name, inner), "name": posixpath.basename(inner)}

    return {"grams": link(paths.GRAMS) if grams_published else None, "record": link(paths.RECORD)}


def _provenance(record: RunRecord) -> View:
    """Where the run's inputs, weights and numbers come from, each as finished text."""
    device = record.device
    files: dict[str, View] = {
        role: {
            "file": item.file,
            "size": f"{item.image.original_size[0]}×{item.image.original_size[1]}",
            "sha256": item.image.sha256,
        }
        for role, item in record.inputs.items()
    }
    return {
        **files,
        "weights": {**record.weights.as_dict(), "activation": record.parameters.activation},
        "device": device.device,
        "device_name": device.device_name,
        "threads": device.threads,
        "precision": record.precision,
        "precision_note": PRECISION_NOTE if record.precision != "float32" else "",
        "versions": ", ".join(
            f"{package} {version if version else '–'}"
            for package, version in device.versions.items()
        ),
        "timings": ", ".join(
            f"{phase} {seconds:.1f} s" for phase, seconds in record.timings.items()
        ),
        "peak_memory": "".join(
            f"{count / 1e6:.0f} MB ({kind.replace('_', ' ')})"
            for kind, count in record.peak_memory.items()
        ),
        "seed": record.parameters.seed,
        "reportgen": device.versions.get("reportgen"),
        "stage_versions": ", ".join(
            f"{stage} {version}" for stage, version in record.stage_versions.items()
        ),
    }


def run_view(
    record: RunRecord, layers: list[View], grams_published: bool, data_base: str | None = None
) -> View:
    """What the page of a run shows besides its frame and navigation; ``layers`` are the links
    to its layer pages (:func:`layer_links`)."""
    parameters = record.parameters
    return {
        "notes": record.notes,
        "size": parameters.size,
        "steps": parameters.steps,
        "content_layer": parameters.content_layer,
        "layers": layers,
        "images": _images(record, data_base),
        "compare_script": paths.COMPARE_SCRIPT,
        "input_notes": [
            {"role": role, "note": note}
            for role, item in record.inputs.items()
            for note in item.image.notes
        ],
        "colour_note": COLOUR_NOTES.get(parameters.preserve_color),
        "snapshots": _snapshot_strip(record),
        "snapshot_interval": _snapshot_interval(parameters.snapshot_every),
        "total_steps": record.steps,
        "reconstruction_rows": _reconstruction_rows(record),
        "loss_curves": in_run(record.name, paths.LOSS_CURVES),
        "curves_include_tv": bool(parameters.tv_weight),
        "loss_normalisation": LOSS_NORMALISATIONS.get(parameters.loss, SEED_NORMALISATION),
        "scales_note": _scales_note(record),
        "loss_rows": _loss_rows(record.final, parameters.content_layer),
        "stylisation_rows": stylisation_rows(record.stylisation),
        "blend": _blend(record),
        "regions": _regions(record),
        "content_distance": {
            "result": record.stylisation.content_features.result,
            "style": record.stylisation.content_features.style,
        },
        "parameter_rows": _parameter_rows(parameters, record.changed),
        "provenance": _provenance(record),
        "data_files": _data_files(record.name, grams_published, data_base),
    }


def layer_links(record: RunRecord) -> list[View]:
    """The run's layer pages, each with its size, its role in the transfer and its style weight."""
    weights = record.parameters.style_layer_weights
    return [
        {
            "name": layer,
            "href": layer_page(record.name, layer),
            "channels": info.channels,
            "role": " and ".join(
                r
                for r, on in (("style", info.is_style_layer), ("content", info.is_content_layer))
                if on
            ),
            "weight": f"{weights[layer]:g}" if layer in weights else None,
        }
        for layer, info in record.layers.items()
    ]


# style.css lays the filter links over a montage with grid classes for these sizes only; a
# montage of another shape (an unusual layer) has no links to its tiles.
LINKED_GRID_COLUMNS = (8, 16, 32)
LINKED_GRID_ROWS = (4, 8, 16, 32)
LINKED_MONTAGE = "content"  # an id names one element: the filter anchors sit on one montage only


@dataclass(frozen=True)
class LayerFilters:
    """The filter pages of one layer of a run's network (:mod:`reportgen.site.filters`)."""

    pages: dict[int, str] = field(default_factory=dict)  # filter -> the site path of its page
    images: dict[int, str] = field(default_factory=dict)  # filter -> its visualisation's
    atlas: str | None = None  # the page of every filter of the layer with a page


def _pair_rows(
    cells: tuple[GramCell, ...], linked: bool, filters: LayerFilters = LayerFilters()
) -> list[View]:
    """A ranking of Gram cells, each filter linked to its page, or else to its tile when the
    page has montages to show it in."""

    def href(k: int) -> str | None:
        if k in filters.pages:
            return filters.pages[k]
        return f"#{paths.filter_anchor(k)}" if linked else None

    return [
        {
            "rank": rank,
            "i": cell.i,
            "j": cell.j,
            "value": cell.value,
            "i_href": href(cell.i),
            "j_href": href(cell.j),
        }
        for rank, cell in enumerate(cells, start=1)
    ]


def _tile_links(montage: MontageLayout) -> View | None:
    """A link over every tile of the montage that carries the filter anchors, when the stylesheet
    has a grid of its shape."""
    if montage.columns not in LINKED_GRID_COLUMNS or montage.rows not in LINKED_GRID_ROWS:
        return None
    tiles = [
        {"id": paths.filter_anchor(k), "href": f"#{paths.filter_anchor(k)}", "label": f"filter {k}"}
        for k in range(montage.count)
    ]
    return {"grid": f"cols-{montage.columns} rows-{montage.rows}", "tiles": tiles}


def _montages(name: str, info: LayerRecord, files: LayerFiles, drawn: set[str]) -> list[View]:
    """Every feature map of each image, one montage per role (none where the study's figure
    options leave this layer's montages out)."""
    montages = []
    for role in (role for role in ROLES if files.maps(role) in drawn):
        montage, (width, height) = info.montages[role], info.map_sizes[role]
        montages.append(
            {
                "role": role,
                "id": f"maps-{role}",
                "src": in_run(name, files.maps(role)),
                "columns": montage.columns,
                "map_size": f"{width}×{height}",
                "shown_at": f"{montage.tile_width}×{montage.tile_height}"
                if montage.tile_width < width
                else None,
                "tile_links": _tile_links(montage) if role == LINKED_MONTAGE else None,
            }
        )
    return montages


def _pair_figures(
    record: RunRecord, layer: str, drawn: set[str], filters: LayerFilters
) -> list[View]:
    """Each of the style image's top pairs: its filters (linked to their pages, with their
    visualisations), the two Gram values, and the figure of its maps and contribution maps."""
    info, files = record.layers[layer], LayerFiles(layer)
    in_result = info.style_pairs_in_result
    rows = []
    for rank, cell in enumerate(info.top_pairs["style"], start=1):
        figure = files.pair(rank)
        rows.append(
            {
                "rank": rank,
                "filters": [
                    {"k": k, "href": filters.pages.get(k), "image": filters.images.get(k)}
                    for k in (cell.i, cell.j)
                ],
                "value": cell.value,
                "in_result": in_result[rank - 1] if rank <= len(in_result) else None,
                "figure": in_run(record.name, figure) if figure in drawn else None,
                "limit": info.pair_limits[rank - 1] if rank <= len(info.pair_limits) else None,
            }
        )
    return rows


def layer_view(
    record: RunRecord, layers: list[View], layer: str, filters: LayerFilters = LayerFilters()
) -> View:
    """What the page of ``layer`` of a run shows besides its frame and navigation: figures,
    legends, rankings with their filter links, montages and the data of the filter viewer;
    ``layers`` are the links to the run's layer pages, ``filters`` the layer's filter pages."""
    name, info = record.name, record.layers[layer]
    files = LayerFiles(layer)
    scale = info.gram_scale
    drawn = set(record.files)
    montages = _montages(name, info, files, drawn)
    gram = record.stylisation.style_gram.get(layer)
    style_width, style_height = info.map_sizes["style"]
    return {
        "run_title": record.title,
        "channels": info.channels,
        "is_style_layer": info.is_style_layer,
        "is_content_layer": info.is_content_layer,
        "steps": record.parameters.steps,
        "style_map_size": f"{style_width}×{style_height}",
        "activation_note": "after the ReLU"
        if record.parameters.activation == "relu"
        else "before the ReLU",
        "layer_strip": [
            {"name": other["name"], "href": other["href"], "current": other["name"] == layer}
            for other in layers
        ],
        "distance": distances(gram) if gram else None,
        # What the result's Grams are compared with: the style image's, or a blend's target.
        "target": "the style image"
        if record.style_count == 1
        else "the regions' styles, weighed by area,"
        if record.masks
        else "the blend's target",
        "styles_blended": record.style_count,
        "figures": {
            "gram_comparison": in_run(name, files.gram_comparison),
            "loss_curve": in_run(name, files.loss_curve) if info.is_style_layer else None,
            "difference": in_run(name, files.difference) if files.difference in drawn else None,
            "gram_heatmap": in_run(name, files.gram_heatmap),
            "blend_heatmap": in_run(name, files.blend_heatmap)
            if files.blend_heatmap in drawn
            else None,
            "correlation": in_run(name, files.correlation),
            "energy": in_run(name, files.energy),
        },
        "gram_legend": {
            "square": f"the mean of {scale.block}×{scale.block} cells"
            if scale.block > 1
            else "one cell",
            "low": -scale.limit,
            "high": scale.limit,
            "linear_below": scale.linear_below,
            "scale": paths.DIVERGING_SCALE,
        },
        "correlation_legend": {"low": info.correlation_heatmap.low, "scale": paths.MAGMA_SCALE},
        "rankings": {
            "style_cells": _pair_rows(info.top_cells["style"], bool(montages), filters),
            **{
                f"{role}_pairs": _pair_rows(info.top_pairs[role], bool(montages), filters)
                for role in ROLES
            },
            "style_pairs_normalised": _pair_rows(
                info.top_pairs_normalised, bool(montages), filters
            ),
        },
        "pair_figures": _pair_figures(record, layer, drawn, filters),
        "filter_atlas": filters.atlas,
        "top_pair_count": len(info.top_pairs["style"]),
        "montage_columns": info.montages["style"].columns,
        "filter_link_prefix": f"{paths.layer_page_name(layer)}#{paths.FILTER_ANCHOR_PREFIX}",
        "montages": montages,
        "layer_data": {
            "channels": info.channels,
            "montage": {kind: montage.as_dict() for kind, montage in info.montages.items()},
            "heatmap": info.correlation_heatmap.as_dict(),
            "roles": [montage["role"] for montage in montages],
            # Filter -> its page, as a link from this page (the viewer and the heatmap link them).
            "filter_pages": {
                str(k): relative_url(page, layer_page(name, layer))
                for k, page in filters.pages.items()
            },
        },
        "filter_script": paths.FILTER_SCRIPT,
    }
