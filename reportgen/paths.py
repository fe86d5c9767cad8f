"""The one table of file names: what a run's folder holds, and where each file of the site is.

A run's folder is written once by the figures stage (:mod:`reportgen.figures.draw`), kept as a cache
entry and copied as it is into the site as ``pairs/<run>/`` (``<run>`` is a pair id, or
``<pair id>/<variant id>``).  Every name below is a contract: of the cache (entries written by
earlier builds), of the published site (links people keep) and of ``data/`` (read by other
tools).  Renaming a file of a run's folder is therefore a change of the figures stage
(``fingerprint.STAGE_VERSIONS``), so that no cached folder is read under names it was not
written with.

Paths are POSIX and relative: run-folder paths to the run's folder, site paths to the site root.
No numpy, no torch: everyone may import this, down to the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from reportgen.layers import LAYER_NAMES

# The three images of a run, and of every layer's figures.
Role = Literal["content", "style", "result"]
ROLES: tuple[Role, ...] = get_args(Role)

# ---- a run's folder -------------------------------------------------------------------------

INDEX = "index.html"  # a run's page, a pair's page (of its variants) and the study's page
DATA_DIR = "data"
RECORD = f"{DATA_DIR}/pair.json"  # everything the pages are rendered from
GRAMS = f"{DATA_DIR}/grams.npz"  # raw Gram matrices, keyed by gram_key()
THUMBS_DIR = "thumbs"
SNAPSHOTS_DIR = "snapshots"
RECONSTRUCTIONS_DIR = "reconstructions"
LOSS_CURVES = "losses.png"


def image_file(role: str) -> str:
    """The exact image of ``role`` (the network's inputs, the saved result), lossless."""
    return f"{role}.png"


def thumbnail_file(role: str) -> str:
    return f"{THUMBS_DIR}/{role}.webp"


def region_file(index: int) -> str:
    """The content image with region ``index`` (from 0) in colour and the rest dimmed."""
    return f"regions/region-{index + 1}.webp"


def snapshot_file(step: int) -> str:
    """The image kept after ``step`` steps of the optimisation."""
    return f"{SNAPSHOTS_DIR}/step-{step:06d}.webp"


def reconstruction_file(kind: str, deepest_layer: str) -> str:
    """The image rebuilt from the ``kind`` (content or style) representation up to
    ``deepest_layer``."""
    return f"{RECONSTRUCTIONS_DIR}/{kind}-{deepest_layer}.webp"


BLEND = "blend"  # a blend's target Grams (per position) in GRAMS, beside each image's


def gram_key(role: str, layer: str) -> str:
    """The key of ``role``'s Gram matrix at ``layer`` in :data:`GRAMS` (raw; ``BLEND``'s per
    position)."""
    return f"{role}/{layer}"


@dataclass(frozen=True)
class LayerFiles:
    """The figures of one analysed layer, in the run-folder folder named after the layer."""

    layer: str

    @property
    def folder(self) -> str:
        return self.layer

    @property
    def gram_heatmap(self) -> str:
        """The style image's raw Gram matrix."""
        return f"{self.folder}/gram-style.webp"

    @property
    def gram_comparison(self) -> str:
        """The style image's and the result's Grams per position and their difference."""
        return f"{self.folder}/grams-compare.webp"

    @property
    def blend_heatmap(self) -> str:
        """A blend's target: the weighted mean of its style images' Grams per position."""
        return f"{self.folder}/gram-blend.webp"

    @property
    def correlation(self) -> str:
        """The style image's normalised Gram matrix."""
        return f"{self.folder}/correlation-style.webp"

    @property
    def energy(self) -> str:
        return f"{self.folder}/energy.png"

    @property
    def loss_curve(self) -> str:
        """The layer's style loss over the optimisation (style layers only)."""
        return f"{self.folder}/loss.png"

    def pair(self, rank: int) -> str:
        """The style image's ``rank``-th top filter pair (from 1): the two filters' maps, and
        where in the style image and in the result the Gram cell comes from."""
        return f"{self.folder}/pair-{rank:02d}.webp"

    @property
    def difference(self) -> str:
        """Result − content, map by map (the content layer only)."""
        return f"{self.folder}/maps-difference.webp"

    def maps(self, role: str) -> str:
        """The montage of every feature map of ``role``'s image."""
        return f"{self.folder}/maps-{role}.webp"


def shared_between_runs(inner: str) -> bool:
    """Whether the file at run-folder path ``inner`` may be stored once for several runs with the
    same bytes (variants of a pair share the content and style image's figures).  The files at
    the top of the folder and its data are contract paths that are always written in place."""
    return "/" in inner and not inner.startswith(f"{DATA_DIR}/")


# ---- the site -------------------------------------------------------------------------------

NOT_FOUND = "404.html"  # served by GitHub Pages at whatever path was missing
ARCHIVE = "data.zip"  # every run's data files and exact images, when they fit in one volume


def archive_volume(number: int, count: int) -> str:
    """Volume ``number`` (from 1) of an archive of ``count`` volumes (each under 100 MB)."""
    return f"data-{number:0{len(str(count))}d}-of-{count}.zip"


SITEMAP = "sitemap.xml"
NO_JEKYLL = ".nojekyll"  # GitHub Pages: serve the files as they are
ASSETS_DIR = "assets"  # templates/static/, copied as it is
RUNS_DIR = "pairs"
CROSS_PAIR_DIR = "layers"


def asset(name: str) -> str:
    return f"{ASSETS_DIR}/{name}"


STYLESHEET = asset("style.css")
FAVICON = asset("favicon.svg")  # declared on every page: browsers ask the host's root otherwise
FILTER_SCRIPT = asset("filters.js")  # the filter viewer of the layer pages
INDEX_SCRIPT = asset("index.js")  # the index's filter and sort
COMPARE_SCRIPT = asset("compare.js")  # the pair page's slider between content or style and result
KEYS_SCRIPT = asset("keys.js")  # every page's keys: previous and next page, the filter, help
THEME_SCRIPT = asset("theme.js")  # every page's colour scheme: the system's, light or dark
ZOOM_SCRIPT = asset("zoom.js")  # every page's figures, opened at full size
DIVERGING_SCALE = asset("scale-diverging.png")  # the legend of the Gram comparison
MAGMA_SCALE = asset("scale-magma.png")  # the legend of the correlation heatmap


def run_dir(run: str) -> str:
    """The site folder of a run: ``pairs/<id>`` or ``pairs/<id>/<variant>``; a pair with variants
    has its page of variants in ``pairs/<id>`` too."""
    return f"{RUNS_DIR}/{run}"


def in_run(run: str, inner: str) -> str:
    """The site path of the file at run-folder path ``inner``."""
    return f"{run_dir(run)}/{inner}"


def run_page(run: str) -> str:
    return in_run(run, INDEX)


def layer_page_name(layer: str) -> str:
    """The file name of a run's page of ``layer``, beside the run's page."""
    return f"{layer}.html"


def layer_page(run: str, layer: str) -> str:
    return in_run(run, layer_page_name(layer))


def cross_pair_page(layer: str) -> str:
    """Every run's style Gram and result at ``layer``."""
    return f"{CROSS_PAIR_DIR}/{layer}.html"


def distances_figure(layer: str) -> str:
    """The distances between the study's style images at ``layer``, clustered (large studies)."""
    return f"{CROSS_PAIR_DIR}/{layer}-distances.webp"


FILTERS_DIR = "filters"
FILTERS_RECORD = f"{FILTERS_DIR}/filters.json"  # every filter page's data, for other tools


def filters_folder(layer: str, network: str | None = None) -> str:
    """The folder of ``layer``'s filter pages; ``network`` names the network in front when a
    study uses several."""
    return f"{FILTERS_DIR}/{network}/{layer}" if network else f"{FILTERS_DIR}/{layer}"


def filter_page(layer: str, filter_index: int, network: str | None = None) -> str:
    """The page of one filter across the study: a stable path, for links people keep."""
    return f"{filters_folder(layer, network)}/{filter_index}.html"


def filter_visualisation(layer: str, filter_index: int, network: str | None = None) -> str:
    """The filter's feature visualisation, lossless."""
    return f"{filters_folder(layer, network)}/{filter_index}.png"


def filter_example(layer: str, filter_index: int, rank: int, network: str | None = None) -> str:
    """The ``rank``-th (from 1) of the study's image crops where the filter fires most."""
    return f"{filters_folder(layer, network)}/{filter_index}/example-{rank:02d}.webp"


def filter_atlas(layer: str, network: str | None = None) -> str:
    """Every filter of ``layer`` with a page, by its visualisation."""
    return f"{filters_folder(layer, network)}/index.html"


FILTER_ANCHOR_PREFIX = "f"  # also parsed by filters.js: #f12 opens filter 12, #f12-f40 a pair


def filter_anchor(filter_index: int) -> str:
    """The id of filter ``filter_index``'s tile on a layer page: ``<layer>.html#f12`` links to
    it."""
    return f"{FILTER_ANCHOR_PREFIX}{filter_index}"


# Variant ids become folders in their pair's folder, where a pair without variants keeps its
# figure folders (named after layers), data and thumbnails; nor may they look like the site's own.
RESERVED_NAMES = (
    DATA_DIR,
    THUMBS_DIR,
    SNAPSHOTS_DIR,
    RECONSTRUCTIONS_DIR,
    INDEX.removesuffix(".html"),
    CROSS_PAIR_DIR,
    ASSETS_DIR,
)
RESERVED_VARIANT_IDS = frozenset({*LAYER_NAMES, *RESERVED_NAMES})
