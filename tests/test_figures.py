"""Figures drawn without a network: montage layout and colouring, and the plot thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from reportgen import figures


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
    canvas, layout = figures.montage_canvas(scaled, "viridis")
    assert canvas.shape == (layout.size[1], layout.size[0], 3)
    table = figures.colour_table("viridis")
    covered = np.zeros(canvas.shape[:2], dtype=bool)
    for k in range(count):
        row, column = divmod(k, layout.columns)
        top, left = row * (layout.tile_height + layout.gap), column * (layout.tile_width + layout.gap)
        tile = canvas[top : top + layout.tile_height, left : left + layout.tile_width]
        method = Image.Resampling.BOX if layout.tile_width < width else Image.Resampling.NEAREST
        expected = table[np.asarray(Image.fromarray(scaled[k]).resize((layout.tile_width, layout.tile_height), method))]
        # (Enlarging, Pillow and the montage's numpy gather pick the same source pixels except
        # where a tile pixel's centre falls exactly halfway between two; these sizes have none.)
        assert np.array_equal(tile, expected), k
        covered[top : top + layout.tile_height, left : left + layout.tile_width] = True
    # Everything outside the tiles is the white background.
    assert (canvas[~covered] == 255).all()


def test_plot_thread_runs_plots_in_order_on_one_thread_and_reports_failures():
    seen = []

    def plot(label):
        seen.append((label, threading.current_thread().name))

    with figures.PlotThread() as plots:
        for label in range(5):
            plots.submit(plot, label)
    assert [label for label, _ in seen] == list(range(5))
    assert len({name for _, name in seen}) == 1 and seen[0][1] != threading.current_thread().name

    def broken():
        raise ValueError("no such colormap")

    seen.clear()
    with pytest.raises(ValueError, match="no such colormap"):
        with figures.PlotThread() as plots:
            plots.submit(broken)
            plots.submit(plot, "after")
    assert [label for label, _ in seen] == ["after"]  # a failed plot does not stop the others


def test_an_error_in_the_block_wins_and_drops_the_plots_not_yet_started():
    started = threading.Event()
    release = threading.Event()
    seen = []

    def slow():
        started.set()
        release.wait(10)
        seen.append("slow")

    with pytest.raises(KeyError):
        with figures.PlotThread() as plots:
            plots.submit(slow)
            plots.submit(seen.append, "never")
            started.wait(10)
            release.set()
            raise KeyError("montage failed")
    assert seen == ["slow"]
