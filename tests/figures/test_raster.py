"""Figures drawn without a network: montage layout and colouring."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from reportgen import tiles
from reportgen.figures import raster


@pytest.mark.parametrize(
    "count, height, width",
    [
        (64, 40, 56),  # tiles at the maps' own size
        (12, 8, 6),  # enlarged 4x to the minimum tile size (nearest neighbour)
        (64, 341, 512),  # shrunk to fit the montage's pixel budget (box filter)
        (7, 5, 3),  # enlarged 6.4x; a last row left partly empty
    ],
)
def test_montage_puts_each_filter_in_its_tile(count, height, width):
    rng = np.random.default_rng(count)
    scaled = rng.integers(0, 256, (count, height, width), dtype=np.uint8)
    layout, reduced = tiles.montage_tiles(scaled)
    canvas = raster.montage_canvas(reduced, layout, "viridis")
    assert canvas.shape == (layout.size[1], layout.size[0], 4)
    table = raster.colour_table("viridis")
    covered = np.zeros(canvas.shape[:2], dtype=bool)
    for k in range(count):
        row, column = divmod(k, layout.columns)
        top, left = (
            row * (layout.tile_height + layout.gap),
            column * (layout.tile_width + layout.gap),
        )
        tile = canvas[top : top + layout.tile_height, left : left + layout.tile_width]
        method = Image.Resampling.BOX if layout.tile_width < width else Image.Resampling.NEAREST
        expected = table[
            np.asarray(
                Image.fromarray(scaled[k]).resize((layout.tile_width, layout.tile_height), method)
            )
        ]
        # (Enlarging, Pillow and the montage's numpy gather pick the same source pixels except
        # where a tile pixel's centre falls exactly halfway between two; these sizes have none.)
        assert np.array_equal(tile[..., :3], expected) and (tile[..., 3] == 255).all(), k
        covered[top : top + layout.tile_height, left : left + layout.tile_width] = True
    # Everything outside the tiles is transparent: the page, light or dark, shows through.
    assert (canvas[~covered][:, 3] == 0).all()
