"""The study's filters: which have a page, and what each page shows.

A filter's page (``filters/<layer>/<k>.html``, as OpenAI Microscope gives every unit of a network
its own) shows its feature visualisation, the study's images where it fires most (each the crop
around its strongest position, as large as its receptive field: Microscope's "dataset
examples"), and the runs where it is in a top pair of the style image, with its partners.

Everything here is read from the stages' results: the visualisations
(:mod:`reportgen.stages.visualisations`) and each run's peaks (its analysis); the crops are drawn
when the site is written (:mod:`reportgen.site.publish`).  A filter's examples compare one
number per image and filter, so a study of a thousand runs ranks them in a blink.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reportgen import paths
from reportgen.layers import CONV_INDEX, receptive_field
from reportgen.manifest import Manifest
from reportgen.paths import Role, image_file
from reportgen.site.views import LayerFilters, View
from reportgen.stages.pipeline import Gathered, RunResults
from reportgen.stages.results import peaks_name
from reportgen.stages.visualisations import FilterImage, FilterKey, Network

# A crop is never smaller than this many pixels of its image (conv1_1 sees 3): around a small
# receptive field the crop shows some context, with the field outlined.
MIN_CROP = 32
EXAMPLE_SIDE = 112  # px of a crop as the page shows it


@dataclass(frozen=True)
class Example:
    """One of the study's images where a filter fires strongly: the crop around its strongest
    position."""

    run: str  # the first run whose image it is
    role: Role
    activation: float  # the filter's largest activation in the image
    source: Path  # the image file, in the run's folder
    crop: tuple[int, int, int, int]  # (left, top, right, bottom) in the image's pixels
    field: tuple[int, int, int, int]  # the receptive field of the strongest position, the same


@dataclass(frozen=True)
class Appearance:
    """A run where a filter is in one of the style image's top pairs."""

    run: str
    rank: int  # from 1
    partner: int
    value: float  # the raw G_ij of the style image


@dataclass(frozen=True)
class FilterEntry:
    """Everything a filter's page shows."""

    key: FilterKey
    image: FilterImage | None  # None: it could not be made
    examples: tuple[Example, ...]
    appearances: tuple[Appearance, ...]


@dataclass(frozen=True)
class FilterAtlas:
    """Every filter of the study with a page, and how each network is named in their paths."""

    entries: dict[FilterKey, FilterEntry]  # in network, layer and filter order
    network_names: dict[Network, str | None]  # None: the study uses one network
    # (network, layer) -> its filter pages, made once (every layer page and filter page asks).
    _by_layer: dict[tuple[Network, str], LayerFilters] = field(
        default_factory=dict, repr=False, compare=False
    )

    def page(self, network: Network, layer: str, filter_index: int) -> str | None:
        """The site path of the filter's page, if it has one."""
        if FilterKey(network, layer, filter_index) not in self.entries:
            return None
        return paths.filter_page(layer, filter_index, self.network_names.get(network))

    def layers(self) -> list[tuple[Network, str]]:
        """Every (network, layer) with filter pages, in order."""
        seen: dict[tuple[Network, str], None] = {}
        for key in self.entries:
            seen[(key.network, key.layer)] = None
        return list(seen)


def _network_names(manifest: Manifest, networks: set[Network]) -> dict[Network, str | None]:
    """Names for paths when a study uses several networks: the weights as written (a file by
    its stem), with the activation when it differs between them."""
    if len(networks) <= 1:
        return dict.fromkeys(networks)
    activations = {network.activation for network in networks}
    names: dict[Network, str | None] = {}
    for network in networks:
        written = manifest.weights_as_written(network.weights)
        name = Path(written).stem if "/" in written or "." in written else written
        names[network] = f"{name}-{network.activation}" if len(activations) > 1 else name
    return names


def filter_atlas(manifest: Manifest, gathered: Gathered) -> FilterAtlas:
    """The pages of every filter the study visualised (``feature_visualisation``)."""
    runs = {run.name: run for run in manifest.runs}
    keys = sorted(gathered.filters, key=lambda key: (key.network, CONV_INDEX[key.layer], key.index))
    appearances: dict[FilterKey, list[Appearance]] = {key: [] for key in keys}
    candidates: dict[tuple[Network, str], list[_Image]] = {}
    seen_images: set[tuple] = set()
    for name, results in gathered.results.items():
        params = runs[name].params
        network = Network(params.weights, params.activation)
        for layer, info in results.analysis.layers.items():
            for rank, cell in enumerate(info.top_pairs["style"], start=1):
                for k, partner in ((cell.i, cell.j), (cell.j, cell.i)):
                    found = appearances.get(FilterKey(network, layer, k))
                    if found is not None:
                        found.append(Appearance(name, rank, partner, cell.value))
            for role in ("content", "style", "result"):
                # An image shared by runs (a pair's variants share their inputs; runs with equal
                # keys, their folder) is one example.
                identity = _identity(results, role, params.preserve_color)
                if (identity, layer) in seen_images:
                    continue
                seen_images.add((identity, layer))
                candidates.setdefault((network, layer), []).append(
                    _Image(name, role, results, layer)
                )
    entries = {}
    count = manifest.visualisation.examples
    # Each image's peaks read once per layer (from its analysis's file), not once per filter.
    stacked: dict[tuple[Network, str], np.ndarray] = {}
    for key in keys:
        images = candidates.get((key.network, key.layer), [])
        if images and (key.network, key.layer) not in stacked:
            stacked[(key.network, key.layer)] = np.stack([image.peaks() for image in images])
        peaks = stacked.get((key.network, key.layer))
        entries[key] = FilterEntry(
            key,
            gathered.filters[key],
            _examples(images, peaks, key, count),
            tuple(appearances[key]),
        )
    return FilterAtlas(entries, _network_names(manifest, {key.network for key in keys}))


@dataclass(frozen=True)
class _Image:
    """One image of the study at one layer, and where its peaks are."""

    run: str
    role: Role
    results: RunResults  # its analysis holds the peaks, its folder the image
    layer: str

    def peaks(self) -> np.ndarray:
        """(C, 3): each filter's largest activation, and its row and column."""
        return self.results.analysis.arrays[peaks_name(self.role, self.layer)]

    def image_size(self) -> tuple[int, int]:
        transfer = self.results.transfer
        return (transfer.style if self.role == "style" else transfer.content).size

    def source(self) -> Path:
        return self.results.folder / image_file(self.role)


def _identity(results: RunResults, role: Role, preserve_color: str) -> tuple:
    """What makes an image the same image for the examples: an input's bytes and the size and
    colours it was fed at; a result is its run's folder's."""
    if role == "result":
        return (role, str(results.folder))
    transfer = results.transfer
    image = transfer.style if role == "style" else transfer.content
    return (role, image.sha256, image.size, preserve_color)


def _examples(
    images: list[_Image], stacked: np.ndarray | None, key: FilterKey, count: int
) -> tuple[Example, ...]:
    """The ``count`` of ``images`` where filter ``key`` fires most, strongest first;
    ``stacked`` holds their peaks, (N, C, 3)."""
    if stacked is None or count == 0:
        return ()
    peaks = stacked[:, key.index]  # (N, 3): value, row, column
    order = np.argsort(-peaks[:, 0], kind="stable")[:count]
    side, stride = receptive_field(key.layer)
    examples = []
    for index in order:
        image = images[index]
        value, row, column = peaks[index]
        if value <= 0:
            break  # the filter is silent in the rest
        width, height = image.image_size()
        # The centre of the position's receptive field, in image pixels.
        centre = ((column + 0.5) * stride - 0.5, (row + 0.5) * stride - 0.5)
        field = _square(centre, side, width, height, clamp=False)
        crop = _square(centre, max(side, MIN_CROP), width, height, clamp=True)
        examples.append(Example(image.run, image.role, float(value), image.source(), crop, field))
    return tuple(examples)


def _square(
    centre: tuple[float, float], side: int, width: int, height: int, clamp: bool
) -> tuple[int, int, int, int]:
    """The square of ``side`` around ``centre`` in a ``width`` × ``height`` image: cut at the
    image's edges, or (``clamp``) moved inside it whole where the image is large enough."""
    half = side / 2
    left, top = round(centre[0] - half + 0.5), round(centre[1] - half + 0.5)
    if clamp:
        left = min(max(0, left), max(0, width - side))
        top = min(max(0, top), max(0, height - side))
    return (max(0, left), max(0, top), min(width, left + side), min(height, top + side))


# ---- what the pages show ----------------------------------------------------------------------


def layer_filters(atlas: FilterAtlas, network: Network, layer: str) -> LayerFilters:
    """The filter pages of ``layer`` of ``network``, for the layer pages that link them."""
    if (network, layer) not in atlas._by_layer:
        atlas._by_layer[(network, layer)] = _layer_filters(atlas, network, layer)
    return atlas._by_layer[(network, layer)]


def _layer_filters(atlas: FilterAtlas, network: Network, layer: str) -> LayerFilters:
    name = atlas.network_names.get(network)
    pages, images = {}, {}
    for key, entry in atlas.entries.items():
        if key.network == network and key.layer == layer:
            pages[key.index] = paths.filter_page(layer, key.index, name)
            if entry.image is not None:
                images[key.index] = paths.filter_visualisation(layer, key.index, name)
    return LayerFilters(pages, images, paths.filter_atlas(layer, name) if pages else None)


def example_path(atlas: FilterAtlas, key: FilterKey, rank: int) -> str:
    """The site path of the ``rank``-th (from 1) example crop of filter ``key``."""
    return paths.filter_example(key.layer, key.index, rank, atlas.network_names.get(key.network))


def filter_view(
    atlas: FilterAtlas, entry: FilterEntry, titles: dict[str, str], weights_as_written: str
) -> View:
    """What a filter's page shows; ``titles`` are the runs' titles by name."""
    key = entry.key
    name = atlas.network_names.get(key.network)
    image = entry.image
    partners = layer_filters(atlas, key.network, key.layer)
    anchor = paths.filter_anchor(key.index)
    return {
        "layer": key.layer,
        "index": key.index,
        "network": name,
        "weights": weights_as_written,
        "activation_note": "after the ReLU" if key.network.activation == "relu" else "before it",
        "visualisation": None
        if image is None
        else {
            "src": paths.filter_visualisation(key.layer, key.index, name),
            "size": image.settings.size,
            "steps": image.settings.steps,
            "lr": image.settings.lr,
            "seed": image.settings.seed,
            "activation": image.activation,
            "device": image.device,
            "seconds": image.seconds,
        },
        "examples": [
            {
                "src": example_path(atlas, key, rank),
                "href": f"{paths.layer_page(example.run, key.layer)}#{anchor}",
                "title": titles[example.run],
                "role": example.role,
                "activation": example.activation,
            }
            for rank, example in enumerate(entry.examples, start=1)
        ],
        "field": receptive_field(key.layer)[0],
        "appearances": [
            {
                "title": titles[seen.run],
                "href": paths.layer_page(seen.run, key.layer) + "#pairs",
                "rank": seen.rank,
                "partner": seen.partner,
                "partner_href": partners.pages.get(seen.partner),
                "partner_image": partners.images.get(seen.partner),
                "value": seen.value,
            }
            for seen in entry.appearances
        ],
        "atlas": partners.atlas,
    }


def atlas_view(atlas: FilterAtlas, network: Network, layer: str) -> View:
    """What the page of every filter of a layer with a page shows."""
    filters = layer_filters(atlas, network, layer)
    return {
        "layer": layer,
        "network": atlas.network_names.get(network),
        "filters": [
            {"k": k, "href": href, "image": filters.images.get(k)}
            for k, href in filters.pages.items()
        ],
    }
