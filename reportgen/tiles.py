"""Feature maps reduced to what the figures show of them: 8-bit tiles at display size.

A run's maps are hundreds of megabytes at 512 px (64 maps of 512×512 at conv1_1, for each of
three images); the figures show each map as a tile of at most a few hundred pixels, stretched
over its own range.  The analysis stage keeps only those tiles, so the figures can be drawn
again (a new figure version) from a cached analysis without the network, in a process that never
imports torch.  numpy and Pillow only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from reportgen.grams import GramCell

MIN_TILE = 32  # smaller maps are enlarged (nearest neighbour) to this many px on their longer side
MONTAGE_PIXELS = 1_200_000  # a montage holds at most this many tile pixels (about 1 MB as WebP)
GAP = 2  # px between montage tiles
PAIR_TILE_MAX = 200  # px: the longest side of a map in the filter-pair sheet ...
PAIR_TILE_MIN = 64  # ... and the smallest maps are enlarged to this (the page scales them up)


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
        return {
            "count": self.count,
            "columns": self.columns,
            "rows": self.rows,
            "tile": [self.tile_width, self.tile_height],
            "gap": self.gap,
            "size": [width, height],
        }

    @classmethod
    def from_dict(cls, values: dict) -> MontageLayout:
        return cls(
            values["count"], values["columns"], values["tile"][0], values["tile"][1], values["gap"]
        )


def montage_layout(count: int, map_height: int, map_width: int) -> MontageLayout:
    """Columns and tile size for ``count`` maps: at most about 1600 px wide and
    :data:`MONTAGE_PIXELS` in all, maps shown at their own size when that fits, and never
    enlarged beyond :data:`MIN_TILE` (the page can zoom; enlarged pixels only cost bytes)."""
    columns = {64: 8, 128: 16, 256: 16, 512: 32}.get(count, max(1, round(math.sqrt(count * 2))))
    map_longest = max(map_height, map_width)
    fits = math.sqrt(MONTAGE_PIXELS / (count * map_height * map_width)) * map_longest
    longest = max(1, min(1600 // columns, max(min(map_longest, int(fits)), MIN_TILE)))
    scale = longest / map_longest
    return MontageLayout(
        count, columns, max(1, round(map_width * scale)), max(1, round(map_height * scale)), GAP
    )


def scaled_to_bytes(maps: np.ndarray) -> np.ndarray:
    """(C, H, W) float -> (C, H, W) uint8, each map stretched over its own min..max.

    Per-map scaling shows each filter's pattern; absolute strengths are what the Gram diagonal
    (each filter's energy) reports.
    """
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    return ((maps - low) / span * 255).round().astype(np.uint8)


def resize_tiles(maps: np.ndarray, width: int, height: int) -> np.ndarray:
    """(C, H, W) uint8 -> (C, height, width): box filter when shrinking, nearest neighbour when
    enlarging.

    Enlarging (sampling at pixel centres, as Pillow's nearest filter does) is one numpy gather for
    the whole stack; only shrinking goes map by map through Pillow.
    """
    _, map_height, map_width = maps.shape
    if (map_height, map_width) == (height, width):
        return maps
    if width < map_width:
        return np.stack(
            [
                np.asarray(Image.fromarray(tile).resize((width, height), Image.Resampling.BOX))
                for tile in maps
            ]
        )
    rows = ((np.arange(height) + 0.5) * map_height / height).astype(np.intp)
    columns = ((np.arange(width) + 0.5) * map_width / width).astype(np.intp)
    return maps[:, rows[:, None], columns[None, :]]


def montage_tiles(scaled: np.ndarray) -> tuple[MontageLayout, np.ndarray]:
    """(C, H, W) uint8 maps -> their montage's layout and the (C, h, w) uint8 tiles it shows."""
    count, height, width = scaled.shape
    layout = montage_layout(count, height, width)
    return layout, resize_tiles(scaled, layout.tile_width, layout.tile_height)


def feature_tiles(maps: np.ndarray) -> tuple[MontageLayout, np.ndarray]:
    """(C, H, W) float feature maps -> the montage of every map, each over its own range."""
    return montage_tiles(scaled_to_bytes(maps))


def difference_tiles(
    content_maps: np.ndarray, result_maps: np.ndarray
) -> tuple[MontageLayout, np.ndarray]:
    """result − content for every map of two (C, H, W) arrays, each map on its own symmetric
    scale (128 where equal, 0 and 255 at its largest difference either way), as montage tiles."""
    difference = result_maps - content_maps
    limits = np.abs(difference).max(axis=(1, 2), keepdims=True)
    scaled = ((difference / np.where(limits > 0, limits, 1.0) + 1) * 127.5).round().astype(np.uint8)
    return montage_tiles(scaled)


@dataclass(frozen=True)
class PairTiles:
    """The maps of the filters in a ranking of filter pairs, at the size the pair sheet shows."""

    filters: tuple[int, ...]  # sorted; tiles[k] is the map of filters[k]
    width: int
    height: int

    def as_dict(self) -> dict:
        return {"filters": list(self.filters), "tile": [self.width, self.height]}

    @classmethod
    def from_dict(cls, values: dict) -> PairTiles:
        return cls(tuple(values["filters"]), values["tile"][0], values["tile"][1])


def pair_tiles(maps: np.ndarray, pairs: list[GramCell]) -> tuple[PairTiles, np.ndarray]:
    """(C, H, W) float maps -> the tiles of every filter in ``pairs``: (K, h, w) uint8, at most
    :data:`PAIR_TILE_MAX` px, small maps enlarged to :data:`PAIR_TILE_MIN`."""
    _, height, width = maps.shape
    tile_w, tile_h = pair_tile_size(height, width)
    needed = sorted({k for cell in pairs for k in (cell.i, cell.j)})
    tiles = (
        resize_tiles(scaled_to_bytes(maps[needed]), tile_w, tile_h)
        if needed
        else np.zeros((0, tile_h, tile_w), np.uint8)
    )
    return PairTiles(tuple(needed), tile_w, tile_h), tiles


def pair_tile_size(height: int, width: int) -> tuple[int, int]:
    """(width, height) of a map of ``height`` × ``width`` in the pair figures: at most
    :data:`PAIR_TILE_MAX` px, small maps enlarged to :data:`PAIR_TILE_MIN`."""
    scale = max(min(PAIR_TILE_MAX, max(height, width)), PAIR_TILE_MIN) / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def contribution_tiles(maps: np.ndarray, pairs: list[GramCell]) -> np.ndarray:
    """(C, H, W) float maps -> (K, h, w) float32: for each pair (i, j) the share of each position
    in the Gram cell, ``F_i·F_j / G_ij`` (summing to 1 over the map; all 0 where the cell is 0),
    at the pair figures' size.

    Resized with a box filter (each tile pixel the mean of the positions it covers), then
    scaled so that the shares still sum to 1.
    """
    _, height, width = maps.shape
    tile_w, tile_h = pair_tile_size(height, width)
    shares = np.zeros((len(pairs), tile_h, tile_w), np.float32)
    for index, cell in enumerate(pairs):
        product = maps[cell.i].astype(np.float64) * maps[cell.j]
        total = product.sum()
        if total == 0:
            continue
        share = (product / total).astype(np.float32)
        resized = np.asarray(
            Image.fromarray(share, mode="F").resize((tile_w, tile_h), Image.Resampling.BOX)
        )
        kept = resized.sum(dtype=np.float64)
        # Resampling to a size that is not a whole multiple moves a little of the total between
        # neighbours; scaled back, the shares sum to 1 as the cell's do.
        shares[index] = resized / kept if kept != 0 else 0.0
    return shares


def peaks(maps: np.ndarray) -> np.ndarray:
    """(C, H, W) float maps -> (C, 3) float32: each map's largest value and where it is (row,
    column, counted from the top left)."""
    count, _, width = maps.shape
    flat = maps.reshape(count, -1)
    where = flat.argmax(axis=1)
    return np.stack([flat[np.arange(count), where], where // width, where % width], axis=1).astype(
        np.float32
    )
