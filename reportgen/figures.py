"""Stage results -> image files.

Hundreds of feature maps become one montage built with numpy and Pillow from the tiles the
analysis kept (:mod:`reportgen.tiles`; a matplotlib axes grid of 512 maps takes minutes);
matplotlib and seaborn draw only what is a plot: the Gram heatmap, the energy and the loss curves.
Exact pixels (the network's inputs and the result) are PNG; montages and thumbnails, which only
need to look right, are WebP.

matplotlib is not thread-safe: the figures of a run are drawn by one thread, and runs are drawn
in parallel by processes (:mod:`reportgen.executors`), never by threads of one process.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import matplotlib
import matplotlib.colors

matplotlib.use("Agg")  # no display; must precede pyplot, which seaborn imports

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FixedLocator  # noqa: E402
import seaborn as sns  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from reportgen.grams import GramCell  # noqa: E402
from reportgen.results import GramScale, HeatmapPlacement  # noqa: E402
from reportgen.tiles import MontageLayout, PairTiles  # noqa: E402

MONTAGE_QUALITY = 70
WEBP_METHOD = 1  # encoder effort 0..6: 1 is about 3x faster than 4 for a few percent more bytes
# Heatmaps of 512x512 matrices look like noise to a lossless coder (600 KB as PNG); as WebP
# they keep their look at a tenth of the size.
HEATMAP_QUALITY = 72
THUMB_SIDE = 320
# Fixed plot margins (fractions of the figure), as tight_layout computes them for these figures,
# with a little room to spare for wider tick labels; tight_layout itself measures every text
# and costs a third of each plot's time.  Checked over values from 1e-9 to 1e12.
HEATMAP_MARGINS = {"left": 0.095, "right": 0.977, "bottom": 0.091, "top": 0.953}
ENERGY_MARGINS = {"left": 0.12, "right": 0.979, "bottom": 0.183, "top": 0.891}
LAYER_LOSS_MARGINS = {"left": 0.14, "right": 0.975, "bottom": 0.223, "top": 0.866}
LOSS_MARGINS = {"left": 0.115, "right": 0.979, "bottom": 0.145, "top": 0.962}
BACKGROUND = (255, 255, 255)
# Plot titles at a fixed height: placed automatically, matplotlib measures every tick label to
# look for overlaps that these plots never have.
TITLE = {"fontsize": 11, "y": 1.0}


# (256, 3) uint8 lookup tables of the colormaps the montages and matrices use, made once.
COLOUR_TABLES = {
    name: (matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    for name in ("viridis", "magma", "RdBu_r")
}


def colour_table(name: str = "viridis") -> np.ndarray:
    """(256, 3) uint8 lookup table of one of :data:`COLOUR_TABLES`."""
    return COLOUR_TABLES[name]


def montage_canvas(tiles: np.ndarray, layout: MontageLayout, colours: str) -> np.ndarray:
    """(C, h, w) uint8 tiles -> (height, width, 3) uint8 image of them in filter order, row-major,
    coloured with ``colours`` on a white background, laid out by ``layout``."""
    count = tiles.shape[0]
    coloured = colour_table(colours)[tiles]  # (C, h, w, 3)
    # A grid of tile-plus-gap cells, filled and then unfolded into rows of pixels in one go.
    cell_height, cell_width = layout.tile_height + layout.gap, layout.tile_width + layout.gap
    grid = np.empty((layout.rows * layout.columns, cell_height, cell_width, 3), dtype=np.uint8)
    grid[...] = BACKGROUND
    grid[:count, : layout.tile_height, : layout.tile_width] = coloured
    canvas = grid.reshape(layout.rows, layout.columns, cell_height, cell_width, 3).transpose(0, 2, 1, 3, 4)
    canvas = canvas.reshape(layout.rows * cell_height, layout.columns * cell_width, 3)
    width_px, height_px = layout.size
    return np.ascontiguousarray(canvas[:height_px, :width_px])


def _write_montage(tiles: np.ndarray, layout: MontageLayout, colours: str, path: Path, quality: int = MONTAGE_QUALITY) -> None:
    """The :func:`montage_canvas` of (C, h, w) uint8 tiles, each tile numbered, as WebP."""
    image = Image.fromarray(montage_canvas(tiles, layout, colours), "RGB")
    if layout.tile_height >= 24:
        _label_tiles(image, layout)
    image.save(path, format="WEBP", quality=quality, method=WEBP_METHOD)


def feature_montage(tiles: np.ndarray, layout: MontageLayout, path: Path, quality: int = MONTAGE_QUALITY) -> None:
    """Every map of a layer (:func:`reportgen.tiles.feature_tiles`) in one WebP montage."""
    _write_montage(tiles, layout, "viridis", path, quality)


def difference_montage(tiles: np.ndarray, layout: MontageLayout, path: Path, quality: int = MONTAGE_QUALITY) -> None:
    """result − content for every map (:func:`reportgen.tiles.difference_tiles`): blue lower,
    red higher, white equal, laid out like :func:`feature_montage`."""
    _write_montage(tiles, layout, "RdBu_r", path, quality)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=2048)
def _label(number: int, size: int) -> Image.Image:
    """White digits with a black outline on transparency; drawn once, pasted into every montage."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(str(number), stroke_width=2)
    label = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    ImageDraw.Draw(label).text((-left, -top), str(number), fill=(255, 255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0, 255))
    return label


def _label_tiles(image: Image.Image, layout: MontageLayout) -> None:
    """Put each filter's index in its tile's corner, so a map can be found by its number."""
    size = 10 if layout.tile_height < 48 else 12
    for k in range(layout.count):
        row, column = divmod(k, layout.columns)
        label = _label(k, size)
        image.paste(label, (column * (layout.tile_width + layout.gap) + 1, row * (layout.tile_height + layout.gap) + 1), label)


def filter_pairs_figure(placement: PairTiles, tiles: np.ndarray, pairs: tuple[GramCell, ...], path: Path, quality: int = MONTAGE_QUALITY) -> None:
    """The seed's "top matched filters": for each pair (i, j), maps i and j side by side, from
    the tiles of :func:`reportgen.tiles.pair_tiles`."""
    tile_w, tile_h = placement.width, placement.height
    caption = 22
    pad = 8
    font = _font(13)
    captions = [(f"#{row + 1}  filter {cell.i}   G = {cell.value:.4g}", f"#{row + 1}  filter {cell.j}") for row, cell in enumerate(pairs)]
    # A column is as wide as its widest caption when the maps are small (deep layers), so that
    # the left caption does not run into the right one.
    column_w = max([tile_w, *(math.ceil(font.getlength(text)) + pad for texts in captions for text in texts)])
    sheet = Image.new("RGB", (2 * column_w + 3 * pad, len(pairs) * (tile_h + caption + pad) + pad), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    coloured = dict(zip(placement.filters, colour_table()[tiles]))
    for row, cell in enumerate(pairs):
        top = pad + row * (tile_h + caption + pad)
        for column, k in enumerate((cell.i, cell.j)):
            left = pad + column * (column_w + pad)
            sheet.paste(Image.fromarray(coloured[k], "RGB"), (left, top + caption))
            draw.text((left, top + 3), captions[row][column], fill=(20, 20, 20), font=font)
    sheet.save(path, format="WEBP", quality=quality, method=WEBP_METHOD)


def gram_heatmap(gram: np.ndarray, title: str, path: Path, quality: int = HEATMAP_QUALITY) -> None:
    """A seaborn heatmap of a raw (C, C) Gram matrix, as the seed draws its style representation."""
    channels = gram.shape[0]
    figure = Figure(figsize=(6.4, 5.4), dpi=100)  # not pyplot's: no global registry to share
    axes = figure.subplots()
    tick_step = max(1, channels // 8)
    sns.heatmap(gram, ax=axes, square=True, xticklabels=tick_step, yticklabels=tick_step, cbar_kws={"shrink": 0.8}, rasterized=True)
    axes.set_title(title, **TITLE)
    axes.set_xlabel("filter j")
    axes.set_ylabel("filter i")
    figure.subplots_adjust(**HEATMAP_MARGINS)
    figure.savefig(path, format="webp", pil_kwargs={"quality": quality, "method": WEBP_METHOD})


def _matrix_panel(scaled: np.ndarray, colours: str) -> np.ndarray:
    """(C, C) values in 0..1 -> (C, C, 3) uint8, one pixel per cell.  The page enlarges it with
    ``image-rendering: pixelated``, which costs no bytes."""
    indices = np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)
    return colour_table(colours)[indices]


MATRIX_QUALITY = 70  # WebP quality of the cell-by-cell matrices (noise-like: bytes grow fast with it)
COMPARISON_SIDE = 256  # the Gram comparison shows at most this many rows and columns


def _block_mean(matrix: np.ndarray, block: int) -> np.ndarray:
    """(C, C) -> (C/block, C/block): the mean of each block × block square of cells."""
    if block == 1:
        return matrix
    side = matrix.shape[0] // block
    return matrix[: side * block, : side * block].reshape(side, block, side, block).mean(axis=(1, 3))


def gram_comparison(style_gram: np.ndarray, result_gram: np.ndarray, layer: str, path: Path, quality: int = MATRIX_QUALITY) -> GramScale:
    """Style Gram, result Gram and result − style side by side, on one colour scale.

    Both are (C, C) and already divided by their number of positions (the images differ in
    size).  One diverging scale centred on 0, linear up to a thousandth of the largest magnitude
    and logarithmic beyond (a few cells are orders of magnitude above the rest), serves all three
    panels, so a colour means the same value everywhere.  Drawn cell by cell with numpy, a pixel
    square per cell: a plotting library adds nothing here but seconds.  Returns the scale.
    """
    # Above 256 filters, blocks of cells are averaged: three 512x512 panels of noise-like values
    # are a megabyte per layer as WebP, and the cell-level view is the correlation map's job.
    block = max(1, style_gram.shape[0] // COMPARISON_SIDE)
    matrices = [_block_mean(m, block) for m in (style_gram, result_gram, result_gram - style_gram)]
    limit = float(max(np.abs(m).max() for m in matrices) or 1.0)
    norm = matplotlib.colors.SymLogNorm(linthresh=limit * 1e-3, vmin=-limit, vmax=limit)
    panels = [_matrix_panel(np.asarray(norm(matrix)), "RdBu_r") for matrix in matrices]
    gap = np.full((panels[0].shape[0], max(2, style_gram.shape[0] // 32), 3), 255, dtype=np.uint8)
    Image.fromarray(np.hstack([panels[0], gap, panels[1], gap, panels[2]]), "RGB").save(path, format="WEBP", quality=quality, method=WEBP_METHOD)
    return GramScale(limit, limit * 1e-3, block)


def correlation_heatmap(correlation: np.ndarray, layer: str, path: Path, quality: int = MATRIX_QUALITY) -> HeatmapPlacement:
    """The normalised Gram G_ij / sqrt(G_ii·G_jj) of the style image (cosine of filter pairs), a
    pixel square per cell, dark 0 (or below) to light 1.

    Returns where the matrix sits in the image (pixels from the top left) so that the page can
    tell which cell the pointer is over.
    """
    channels = correlation.shape[0]
    low = min(0.0, float(correlation.min()))
    panel = _matrix_panel((correlation - low) / (1.0 - low), "magma")
    Image.fromarray(panel, "RGB").save(path, format="WEBP", quality=quality, method=WEBP_METHOD)
    side = channels
    return HeatmapPlacement((side, side), (0, 0, side, side), channels, low)


def energy_bars(style_energy: np.ndarray, result_energy: np.ndarray, layer: str, path: Path) -> None:
    """Each filter's energy G_ii / positions, sorted by the style image's, with the result's
    energy for the same filters on top."""
    order = np.argsort(-style_energy, kind="stable")
    ranks = np.arange(len(order))
    figure = Figure(figsize=(7.2, 3.2), dpi=100)  # not pyplot's: no global registry to share
    axes = figure.subplots()
    # One filled staircase, not 512 bar artists: the same picture in a tenth of the time.
    axes.stairs(style_energy[order], np.arange(len(order) + 1) - 0.5, fill=True, color="#4c72b0", label="style image")
    axes.plot(ranks, result_energy[order], ".", markersize=2.5, color="#dd8452", label="result (same filter)")
    # Log above a power of ten well below the typical energy, linear below it, so silent filters
    # (energy 0) still show.  Ticks at 0 and at the decades from that power up: left to itself the
    # locator also puts decades inside the linear part, where their labels overlap the 0.
    exponent = math.floor(math.log10(max(float(style_energy[order][len(order) // 2]) * 1e-3, 1e-12)))
    top = max(float(style_energy.max()), float(result_energy.max()), 10.0**exponent)
    axes.set_yscale("symlog", linthresh=10.0**exponent)
    axes.yaxis.set_major_locator(FixedLocator([0.0, *(10.0**k for k in range(exponent, math.ceil(math.log10(top)) + 1))]))
    axes.set_ylim(0, top * 2)
    axes.set_xlim(-1, len(order))
    axes.set_xlabel("filters, sorted by the style image's energy")
    axes.set_ylabel("G_ii / positions")
    axes.set_title(f"Filter energy at {layer}", **TITLE)
    axes.legend(fontsize=8, frameon=False)
    figure.subplots_adjust(**ENERGY_MARGINS)
    figure.savefig(path, format="png")


def layer_loss_curve(steps: list[int], values: list[float], layer: str, path: Path) -> None:
    """One style layer's weighted loss over the optimisation."""
    array = np.asarray(values, dtype=float)
    figure = Figure(figsize=(6.0, 2.6), dpi=100)  # not pyplot's: no global registry to share
    axes = figure.subplots()
    axes.plot(steps, np.where(array > 0, array, np.nan), color="#c44e52", linewidth=1.6)
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("β·w·E")
    axes.set_title(f"Style loss at {layer}", **TITLE)
    axes.grid(True, alpha=0.3)
    figure.subplots_adjust(**LAYER_LOSS_MARGINS)
    figure.savefig(path, format="png")


def loss_curves(history: dict, scale_starts: list[int], path: Path) -> None:
    """Total, content, per-layer style and (when used) total-variation loss, weighted, over the
    optimisation, log scale.  ``history`` has the columns of a record's ``losses``; a dotted
    line marks the first step of each later scale of a coarse-to-fine run."""
    def positive(values: list[float]) -> np.ndarray:
        # A log axis cannot show 0 (the content loss at step 1 when starting from the content image).
        array = np.asarray(values, dtype=float)
        return np.where(array > 0, array, np.nan)

    steps = history["step"]
    figure = Figure(figsize=(7.2, 4.0), dpi=100)  # not pyplot's: no global registry to share
    axes = figure.subplots()
    axes.plot(steps, positive(history["total"]), color="black", linewidth=2, label="total")
    axes.plot(steps, positive(history["content"]), color="#1f77b4", linewidth=1.6, label="content (α·L_content)")
    palette = sns.color_palette("flare", len(history["style"]))
    for colour, (layer, values) in zip(palette, history["style"].items()):
        axes.plot(steps, positive(values), color=colour, linewidth=1.2, label=f"style {layer} (β·w·E)")
    if any(history.get("tv", ())):
        axes.plot(steps, positive(history["tv"]), color="#2ca02c", linewidth=1.2, linestyle="--", label="total variation")
    for start in scale_starts:
        axes.axvline(start - 0.5, color="#777777", linewidth=0.8, linestyle=":")
    axes.set_yscale("log")
    axes.set_xlabel("step" + (" (dotted: a new, larger scale begins)" if scale_starts else ""))
    axes.set_ylabel("weighted loss")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, ncols=2, frameon=False)
    figure.subplots_adjust(**LOSS_MARGINS)
    figure.savefig(path, format="png")


def thumbnail(pixels: np.ndarray, path: Path, side: int = THUMB_SIDE) -> None:
    """(H, W, 3) uint8 -> a WebP no larger than ``side`` on its longer side."""
    image = Image.fromarray(pixels, "RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    image.save(path, format="WEBP", quality=85, method=WEBP_METHOD)


def distance_clustermap(matrix: np.ndarray, order: list[int], merges: np.ndarray, layer: str, path: Path) -> None:
    """The distances between a study's style images (N, N) as an image, rows and columns in the
    order of their clustering (``order``, from the scipy linkage ``merges``), with its dendrogram
    on the left, as seaborn's clustermap draws it (drawn here directly: seaborn's mesh of a
    million cells takes seconds)."""
    from matplotlib.collections import LineCollection
    from scipy.cluster.hierarchy import dendrogram

    count = len(order)
    figure = Figure(figsize=(9.0, 7.4), dpi=100)
    tree = figure.add_axes((0.02, 0.08, 0.16, 0.84))
    axes = figure.add_axes((0.19, 0.08, 0.68, 0.84))
    bar = figure.add_axes((0.89, 0.08, 0.02, 0.84))
    shown = matrix[np.ix_(order, order)]
    image = axes.imshow(shown, cmap="viridis_r", interpolation="nearest", aspect="auto", vmin=0, vmax=max(float(shown.max()), 1e-12))
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_xlabel(f"{count} style images, in the order of the clustering (nearest styles side by side)")
    axes.set_title(f"Distances between the study's style Grams at {layer}", **TITLE)
    figure.colorbar(image, cax=bar, label="distance between the Grams (0: the same)")
    if len(merges):
        tree_lines = dendrogram(merges, orientation="left", no_plot=True)
        # scipy puts the k-th leaf of ``order`` at 5 + 10·k: the image's row k, counted from the top.
        segments = [np.column_stack([dcoord, np.asarray(icoord) / 10]) for icoord, dcoord in zip(tree_lines["icoord"], tree_lines["dcoord"])]
        tree.add_collection(LineCollection(segments, colors="#444444", linewidths=0.6))
        tree.set_ylim(count, 0)
        tree.set_xlim(max(float(merges[:, 2].max()), 1e-12) * 1.02, 0)
    tree.axis("off")
    figure.savefig(path, format="webp", pil_kwargs={"quality": 80, "method": WEBP_METHOD})
