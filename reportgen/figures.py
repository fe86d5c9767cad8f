"""Results -> image files.

Hundreds of feature maps become one montage built with numpy and Pillow (a matplotlib axes grid
of 512 maps takes minutes); matplotlib and seaborn draw only what is a plot: the Gram heatmaps and
the loss curves.  Exact pixels (the network's inputs and the result) are PNG; montages and
thumbnails, which only need to look right, are WebP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from reportgen.results import GramCell  # noqa: E402

MONTAGE_QUALITY = 75
WEBP_METHOD = 1  # encoder effort 0..6: 1 is about 3x faster than 4 for a few percent more bytes
MIN_TILE = 32  # smaller maps are enlarged (nearest neighbour) to this many px on their longer side
THUMB_SIDE = 320
GAP = 2  # px between montage tiles
BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class MontageLayout:
    """Where filter ``k`` sits in a montage: row ``k // columns``, column ``k % columns``."""

    count: int
    columns: int
    tile_width: int
    tile_height: int
    gap: int

    @property
    def rows(self) -> int:
        return math.ceil(self.count / self.columns)

    @property
    def size(self) -> tuple[int, int]:
        return (
            self.columns * self.tile_width + (self.columns - 1) * self.gap,
            self.rows * self.tile_height + (self.rows - 1) * self.gap,
        )

    def as_dict(self) -> dict:
        width, height = self.size
        return {"count": self.count, "columns": self.columns, "rows": self.rows, "tile": [self.tile_width, self.tile_height], "gap": self.gap, "size": [width, height]}


@lru_cache(maxsize=4)
def colour_table(name: str = "viridis") -> np.ndarray:
    """(256, 3) uint8 lookup table of a matplotlib colormap."""
    return (matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def montage_layout(count: int, map_height: int, map_width: int) -> MontageLayout:
    """Columns and tile size for ``count`` maps: at most about 1600 px wide, tiles never enlarged
    beyond :data:`MIN_TILE` (the page can zoom; enlarged pixels only cost bytes)."""
    columns = {64: 8, 128: 16, 256: 16, 512: 32}.get(count, max(1, round(math.sqrt(count * 2))))
    map_longest = max(map_height, map_width)
    longest = max(1, min(1600 // columns, max(map_longest, MIN_TILE)))
    scale = longest / map_longest
    return MontageLayout(count, columns, max(1, round(map_width * scale)), max(1, round(map_height * scale)), GAP)


def _scaled_to_bytes(maps: np.ndarray) -> np.ndarray:
    """(C, H, W) float -> (C, H, W) uint8, each map stretched over its own min..max.

    Per-map scaling shows each filter's pattern; absolute strengths are what the Gram diagonal
    (each filter's energy) reports.
    """
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    return ((maps - low) / span * 255).round().astype(np.uint8)


def _resize_tile(tile: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W) uint8 -> (height, width): box filter when shrinking, nearest when enlarging."""
    if tile.shape == (height, width):
        return tile
    shrinking = width < tile.shape[1]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(tile).resize((width, height), method))


def feature_montage(maps: np.ndarray, path: Path, label: bool = True) -> MontageLayout:
    """Write every map of a (C, H, W) array into one WebP montage, in filter order, row-major."""
    count, height, width = maps.shape
    layout = montage_layout(count, height, width)
    canvas = np.full((layout.size[1], layout.size[0]), 255, dtype=np.uint8)
    indices = np.zeros_like(canvas)
    mask = np.zeros(canvas.shape, dtype=bool)
    scaled = _scaled_to_bytes(maps)
    for k in range(count):
        row, column = divmod(k, layout.columns)
        top = row * (layout.tile_height + layout.gap)
        left = column * (layout.tile_width + layout.gap)
        indices[top : top + layout.tile_height, left : left + layout.tile_width] = _resize_tile(scaled[k], layout.tile_width, layout.tile_height)
        mask[top : top + layout.tile_height, left : left + layout.tile_width] = True
    rgb = np.where(mask[..., None], colour_table()[indices], np.array(BACKGROUND, dtype=np.uint8))
    image = Image.fromarray(rgb.astype(np.uint8), "RGB")
    if label and layout.tile_height >= 24:
        _label_tiles(image, layout)
    image.save(path, format="WEBP", quality=MONTAGE_QUALITY, method=WEBP_METHOD)
    return layout


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


def filter_pairs_figure(maps: np.ndarray, pairs: list[GramCell], path: Path) -> None:
    """The seed's "top matched filters": for each pair (i, j), maps i and j side by side."""
    _, height, width = maps.shape
    scale = 200 / max(height, width)
    tile_w, tile_h = max(1, round(width * scale)), max(1, round(height * scale))
    caption = 22
    pad = 8
    sheet = Image.new("RGB", (2 * tile_w + 3 * pad, len(pairs) * (tile_h + caption + pad) + pad), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(13)
    needed = sorted({k for cell in pairs for k in (cell.i, cell.j)})
    scaled = dict(zip(needed, _scaled_to_bytes(maps[needed])))
    for row, cell in enumerate(pairs):
        top = pad + row * (tile_h + caption + pad)
        for column, k in enumerate((cell.i, cell.j)):
            left = pad + column * (tile_w + pad)
            tile = colour_table()[_resize_tile(scaled[k], tile_w, tile_h)]
            sheet.paste(Image.fromarray(tile, "RGB"), (left, top + caption))
            draw.text((left, top + 3), f"#{row + 1}  filter {k}" + (f"   G = {cell.value:.4g}" if column == 0 else ""), fill=(20, 20, 20), font=font)
    sheet.save(path, format="WEBP", quality=MONTAGE_QUALITY, method=WEBP_METHOD)


def gram_heatmap(gram: np.ndarray, title: str, path: Path) -> None:
    """A seaborn heatmap of a raw (C, C) Gram matrix, as the seed draws its style representation."""
    channels = gram.shape[0]
    figure, axes = plt.subplots(figsize=(6.4, 5.4), dpi=100)
    tick_step = max(1, channels // 8)
    sns.heatmap(gram, ax=axes, square=True, xticklabels=tick_step, yticklabels=tick_step, cbar_kws={"shrink": 0.8}, rasterized=True)
    axes.set_title(title, fontsize=11)
    axes.set_xlabel("filter j")
    axes.set_ylabel("filter i")
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


def loss_curves(steps: list[int], total: list[float], content: list[float], style: dict[str, list[float]], path: Path) -> None:
    """Total, content and per-layer style loss (weighted) over the optimisation, log scale."""
    def positive(values: list[float]) -> np.ndarray:
        # A log axis cannot show 0 (the content loss at step 1 when starting from the content image).
        array = np.asarray(values, dtype=float)
        return np.where(array > 0, array, np.nan)

    figure, axes = plt.subplots(figsize=(7.2, 4.0), dpi=100)
    axes.plot(steps, positive(total), color="black", linewidth=2, label="total")
    axes.plot(steps, positive(content), color="#1f77b4", linewidth=1.6, label="content (α·L_content)")
    palette = sns.color_palette("flare", len(style))
    for colour, (layer, values) in zip(palette, style.items()):
        axes.plot(steps, positive(values), color=colour, linewidth=1.2, label=f"style {layer} (β·w·E)")
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("weighted loss")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, ncols=2, frameon=False)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


def thumbnail(pixels: np.ndarray, path: Path, side: int = THUMB_SIDE) -> None:
    """(H, W, 3) uint8 -> a WebP no larger than ``side`` on its longer side."""
    image = Image.fromarray(pixels, "RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    image.save(path, format="WEBP", quality=85, method=WEBP_METHOD)
