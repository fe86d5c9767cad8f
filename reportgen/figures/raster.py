"""Figures drawn pixel by pixel with numpy and Pillow: montages of feature maps, the filter-pair
sheet, the Gram matrices cell by cell, thumbnails.

Hundreds of feature maps become one montage built from the tiles the analysis kept
(:mod:`reportgen.tiles`; a matplotlib axes grid of 512 maps takes minutes).  Exact pixels (the
network's inputs and the result) are PNG, written by the figures stage itself; montages,
matrices and thumbnails, which only need to look right, are WebP.  matplotlib lends its colour
maps and its symmetric-log scale; it draws nothing here.

The pages have a light and a dark colour scheme and each figure is drawn once for both: what is
not data (the gaps between tiles and panels) is transparent, so that the page shows through.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import matplotlib
import matplotlib.colors
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from reportgen.stages.results import GramScale, HeatmapPlacement
from reportgen.tiles import MontageLayout

MONTAGE_QUALITY = 70
WEBP_METHOD = 1  # encoder effort 0..6: 1 is about 3x faster than 4 for a few percent more bytes
THUMB_SIDE = 320

# (256, 3) uint8 lookup tables of the colormaps the montages and matrices use, made once.
COLOUR_TABLES = {
    name: (matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    for name in ("viridis", "magma", "RdBu_r")
}


def colour_table(name: str = "viridis") -> np.ndarray:
    """(256, 3) uint8 lookup table of one of :data:`COLOUR_TABLES`."""
    return COLOUR_TABLES[name]


def montage_canvas(tiles: np.ndarray, layout: MontageLayout, colours: str) -> np.ndarray:
    """(C, h, w) uint8 tiles -> (height, width, 4) uint8 RGBA image of them in filter order,
    row-major, coloured with ``colours`` and opaque, on transparency, laid out by ``layout``."""
    count = tiles.shape[0]
    coloured = colour_table(colours)[tiles]  # (C, h, w, 3)
    # A grid of tile-plus-gap cells, filled and then unfolded into rows of pixels in one go.
    cell_height, cell_width = layout.tile_height + layout.gap, layout.tile_width + layout.gap
    grid = np.zeros((layout.rows * layout.columns, cell_height, cell_width, 4), dtype=np.uint8)
    grid[:count, : layout.tile_height, : layout.tile_width, :3] = coloured
    grid[:count, : layout.tile_height, : layout.tile_width, 3] = 255
    canvas = grid.reshape(layout.rows, layout.columns, cell_height, cell_width, 4).transpose(
        0, 2, 1, 3, 4
    )
    canvas = canvas.reshape(layout.rows * cell_height, layout.columns * cell_width, 4)
    width_px, height_px = layout.size
    return np.ascontiguousarray(canvas[:height_px, :width_px])


def _write_montage(
    tiles: np.ndarray,
    layout: MontageLayout,
    colours: str,
    path: Path,
    quality: int = MONTAGE_QUALITY,
) -> None:
    """The :func:`montage_canvas` of (C, h, w) uint8 tiles, each tile numbered, as WebP."""
    image = Image.fromarray(montage_canvas(tiles, layout, colours), "RGBA")
    if layout.tile_height >= 24:
        _label_tiles(image, layout)
    image.save(path, format="WEBP", quality=quality, method=WEBP_METHOD)


def feature_montage(
    tiles: np.ndarray, layout: MontageLayout, path: Path, quality: int = MONTAGE_QUALITY
) -> None:
    """Every map of a layer (:func:`reportgen.tiles.feature_tiles`) in one WebP montage."""
    _write_montage(tiles, layout, "viridis", path, quality)


def difference_montage(
    tiles: np.ndarray, layout: MontageLayout, path: Path, quality: int = MONTAGE_QUALITY
) -> None:
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
    label = Image.new("RGBA", (int(right - left), int(bottom - top)), (0, 0, 0, 0))
    ImageDraw.Draw(label).text(
        (-left, -top),
        str(number),
        fill=(255, 255, 255, 255),
        font=font,
        stroke_width=2,
        stroke_fill=(0, 0, 0, 255),
    )
    return label


def _label_tiles(image: Image.Image, layout: MontageLayout) -> None:
    """Put each filter's index in its tile's corner, so a map can be found by its number."""
    size = 10 if layout.tile_height < 48 else 12
    for k in range(layout.count):
        row, column = divmod(k, layout.columns)
        # Composited, not pasted: pasting through the label's own alpha would blend its
        # alpha into the tile's and leave the anti-aliased edges of the digits see-through.
        image.alpha_composite(
            _label(k, size),
            (
                column * (layout.tile_width + layout.gap) + 1,
                row * (layout.tile_height + layout.gap) + 1,
            ),
        )


PAIR_PANEL_MIN = 96  # px: the height of a pair figure's panels, at least ...
PAIR_PANEL_MAX = 200  # ... and at most


def pair_figure(
    maps: tuple[np.ndarray, np.ndarray],
    style: tuple[np.ndarray, np.ndarray],
    result: tuple[np.ndarray, np.ndarray],
    path: Path,
    quality: int = MONTAGE_QUALITY,
) -> float:
    """One top filter pair (i, j) of the style image, as four panels in a row: the style image's
    maps of i and of j (each over its own range), then where the Gram cell G_ij comes from in
    the style image and in the result.

    ``maps`` are the two (h, w) uint8 tiles; ``style`` and ``result`` each an (H, W, 3) uint8
    image with its (h', w') contribution map (:func:`reportgen.tiles.contribution_tiles`).  A
    contribution is shown as its share over the average position's, on one scale for both
    images; returns the share the brightest colour stands for.
    """
    tile_h = maps[0].shape[0]
    height = min(max(tile_h, PAIR_PANEL_MIN), PAIR_PANEL_MAX)
    relative = [share * share.size for _, share in (style, result)]  # 1: an average position
    limit = max(1.0, *(float(np.percentile(r, 99.5)) for r in relative))
    panels = [_enlarged(colour_table()[tile], height) for tile in maps] + [
        _contribution_overlay(image, share, limit, height)
        for (image, _), share in zip((style, result), relative, strict=True)
    ]
    gap = 6
    width = sum(panel.shape[1] for panel in panels) + gap * (len(panels) - 1)
    canvas = np.zeros((height, width, 4), np.uint8)  # transparent gaps between the panels
    left = 0
    for panel in panels:
        canvas[:, left : left + panel.shape[1], :3] = panel
        canvas[:, left : left + panel.shape[1], 3] = 255
        left += panel.shape[1] + gap
    Image.fromarray(canvas, "RGBA").save(path, format="WEBP", quality=quality, method=WEBP_METHOD)
    return limit


def _enlarged(pixels: np.ndarray, height: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (height, w·height/h, 3), nearest neighbour (map cells stay sharp)."""
    h, w = pixels.shape[:2]
    width = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.NEAREST))


def _contribution_overlay(
    image: np.ndarray, relative: np.ndarray, limit: float, height: int
) -> np.ndarray:
    """The image, dimmed and grey, under a heat map of ``relative`` (h, w) shares: transparent
    where a position gives no more than its average share, opaque magma at ``limit``."""
    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    shown = np.asarray(
        Image.fromarray(image).convert("L").resize((width, height), Image.Resampling.LANCZOS),
        dtype=np.float32,
    )
    background = (shown * 0.55 + 40)[..., None].repeat(3, axis=2)
    heat = np.asarray(
        Image.fromarray(relative.astype(np.float32), mode="F").resize(
            (width, height), Image.Resampling.BILINEAR
        )
    )
    level = np.clip(heat / limit, 0, 1)
    colours = colour_table("magma")[(level * 255).round().astype(np.uint8)].astype(np.float32)
    alpha = np.clip((heat - 1) / max(limit - 1, 1e-6), 0, 1)[..., None] ** 0.6
    return (background * (1 - alpha) + colours * alpha).round().astype(np.uint8)


def _matrix_panel(scaled: np.ndarray, colours: str) -> np.ndarray:
    """(C, C) values in 0..1 -> (C, C, 3) uint8, one pixel per cell.  The page enlarges it with
    ``image-rendering: pixelated``, which costs no bytes."""
    indices = np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)
    return colour_table(colours)[indices]


MATRIX_QUALITY = (
    70  # WebP quality of the cell-by-cell matrices (noise-like: bytes grow fast with it)
)
COMPARISON_SIDE = 256  # the Gram comparison shows at most this many rows and columns


def _block_mean(matrix: np.ndarray, block: int) -> np.ndarray:
    """(C, C) -> (C/block, C/block): the mean of each block × block square of cells."""
    if block == 1:
        return matrix
    side = matrix.shape[0] // block
    return (
        matrix[: side * block, : side * block].reshape(side, block, side, block).mean(axis=(1, 3))
    )


def gram_comparison(
    style_gram: np.ndarray,
    result_gram: np.ndarray,
    layer: str,
    path: Path,
    quality: int = MATRIX_QUALITY,
) -> GramScale:
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
    opaque = [np.dstack([panel, np.full(panel.shape[:2], 255, np.uint8)]) for panel in panels]
    gap = np.zeros((panels[0].shape[0], max(2, style_gram.shape[0] // 32), 4), dtype=np.uint8)
    Image.fromarray(np.hstack([opaque[0], gap, opaque[1], gap, opaque[2]]), "RGBA").save(
        path, format="WEBP", quality=quality, method=WEBP_METHOD
    )
    return GramScale(limit, limit * 1e-3, block)


def correlation_heatmap(
    correlation: np.ndarray, layer: str, path: Path, quality: int = MATRIX_QUALITY
) -> HeatmapPlacement:
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


def thumbnail(pixels: np.ndarray, path: Path, side: int = THUMB_SIDE) -> None:
    """(H, W, 3) uint8 -> a WebP no larger than ``side`` on its longer side."""
    image = Image.fromarray(pixels, "RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    image.save(path, format="WEBP", quality=85, method=WEBP_METHOD)


def region_overlay(content: np.ndarray, mask: np.ndarray, path: Path) -> None:
    """(H, W, 3) uint8 content and its (H, W) mask in 0..1 -> a WebP of the content in colour
    inside the region and a dim grey outside, soft edges kept."""
    grey = content.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    outside = np.repeat(grey[..., None] * 0.35 + 40, 3, axis=2)
    weight = mask[..., None]
    shown = content.astype(np.float32) * weight + outside * (1 - weight)
    Image.fromarray(shown.round().clip(0, 255).astype(np.uint8), "RGB").save(
        path, format="WEBP", quality=85, method=WEBP_METHOD
    )


# One example crop to draw: (its box in the image, the receptive field's box, the file to write).
ExampleBoxes = tuple[tuple[int, int, int, int], tuple[int, int, int, int], Path]


def example_crops(source: Path, crops: Sequence[ExampleBoxes], side: int) -> None:
    """Each of ``crops`` of the image file ``source``, shown ``side`` px on its longer side,
    with its receptive field's box (in the image's pixels) outlined when it is smaller than the
    crop.  The image is decoded once for all of them: decoding costs more than a crop."""
    with Image.open(source) as image:
        decoded = image.convert("RGB")
    for crop, field, path in crops:
        _example_crop(decoded, crop, field, side, path)


def _example_crop(
    image: Image.Image,
    crop: tuple[int, int, int, int],
    field: tuple[int, int, int, int],
    side: int,
    path: Path,
) -> None:
    cut = image.crop(crop)
    width, height = cut.size
    scale = side / max(width, height)
    # Enlarged pixels stay sharp: they are the pixels the filter saw.
    resample = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.LANCZOS
    shown = cut.resize((max(1, round(width * scale)), max(1, round(height * scale))), resample)
    left, top = crop[0], crop[1]
    box = [
        (field[0] - left) * scale,
        (field[1] - top) * scale,
        (field[2] - left) * scale - 1,
        (field[3] - top) * scale - 1,
    ]
    if (field[2] - field[0]) < width or (field[3] - field[1]) < height:
        ImageDraw.Draw(shown).rectangle(box, outline=(255, 220, 0), width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    shown.save(path, format="WEBP", quality=85, method=WEBP_METHOD)
