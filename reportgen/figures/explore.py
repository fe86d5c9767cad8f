"""The figures a notebook shows (``Run.show_*``): the seed notebook's plots, drawn from a run's
arrays into figures that display themselves in Jupyter.

They are :class:`NotebookFigure`\\ s, not pyplot's: nothing is registered globally, so a figure
is shown when it is displayed (``reportgen.api.run`` displays it at once in Jupyter), never a
second time by pyplot's inline backend at the end of the cell, and the figures of a script can
be saved with ``figure.savefig(path)``.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Sequence

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from reportgen.grams import GramCell

MAP_SIDE = 1.6  # inches of the longer side of one feature map in a grid
COLUMNS = 8  # feature maps a row, as the seed lays them out
MAP_COLOURS = "viridis"  # the seed's (matplotlib's default)


class NotebookFigure(Figure):
    """A matplotlib figure that shows itself in Jupyter as a PNG of twice its pixel density
    (sharp on high-density screens, as the seed's ``retina`` setting made it), unless
    matplotlib's inline backend, once pyplot is loaded, draws figures its own way."""

    def _repr_png_(self) -> tuple[bytes, dict[str, int]]:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=2 * self.dpi, bbox_inches="tight")
        data = buffer.getvalue()
        width, height = struct.unpack(">II", data[16:24])  # the PNG's IHDR chunk
        return data, {"width": width // 2, "height": height // 2}


def images_figure(images: Sequence[tuple[str, np.ndarray]]) -> NotebookFigure:
    """Images side by side under their titles; each image (H, W, 3) uint8."""
    figure = NotebookFigure(figsize=(4 * len(images), 4.4), dpi=100)
    for axes, (title, pixels) in zip(figure.subplots(1, len(images)), images, strict=True):
        axes.imshow(pixels)
        axes.set_title(title)
        axes.axis("off")
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92, wspace=0.05)
    return figure


def maps_figure(maps: np.ndarray, filters: Sequence[int], title: str) -> NotebookFigure:
    """A grid of feature maps, ``maps`` (C, H, W) float32, of the ``filters`` asked for, each
    on its own colour scale (as the seed shows them)."""
    height, width = maps.shape[1:]
    tile = (MAP_SIDE * width / max(height, width), MAP_SIDE * height / max(height, width))
    columns = min(COLUMNS, len(filters))
    rows = math.ceil(len(filters) / columns)
    figure = NotebookFigure(
        figsize=(columns * (tile[0] + 0.15), rows * (tile[1] + 0.3) + 0.5), dpi=100
    )
    grid = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    for axes, index in zip(grid, filters, strict=False):
        axes.imshow(maps[index], cmap=MAP_COLOURS)
        axes.set_title(f"filter {index}", fontsize=9)
    for axes in grid:
        axes.axis("off")
    figure.suptitle(title)
    return figure


def grams_figure(grams: Sequence[tuple[str, np.ndarray]], whose: str) -> NotebookFigure:
    """Seaborn heatmaps of raw Gram matrices, one per ``(layer, (C, C) gram)``, as the seed draws
    its style representations; ``whose``: the image they describe."""
    columns = min(2, len(grams))
    rows = math.ceil(len(grams) / columns)
    figure = NotebookFigure(figsize=(6.2 * columns, 5.2 * rows), dpi=100)
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, (layer, gram) in zip(grid, grams, strict=False):
        sns.heatmap(
            gram,
            ax=axes,
            square=True,
            xticklabels=max(1, gram.shape[0] // 8),
            yticklabels=max(1, gram.shape[0] // 8),
            rasterized=True,
        )
        axes.set_title(f"Gram matrix of {whose} at {layer}")
        axes.set_xlabel("filter j")
        axes.set_ylabel("filter i")
    for axes in grid[len(grams) :]:
        axes.axis("off")
    figure.tight_layout()
    return figure


def pairs_figure(maps: np.ndarray, pairs: Sequence[GramCell], title: str) -> NotebookFigure:
    """For each filter pair (i, j), the maps of i and of j side by side, ``maps`` (C, H, W)
    float32; each row says the pair's Gram value."""
    height, width = maps.shape[1:]
    side = 2.6
    tile = (side * width / max(height, width), side * height / max(height, width))
    figure = NotebookFigure(figsize=(2 * tile[0] + 0.6, len(pairs) * (tile[1] + 0.45) + 0.4))
    grid = figure.subplots(len(pairs), 2, squeeze=False)
    for (left, right), cell in zip(grid, pairs, strict=True):
        for axes, index in ((left, cell.i), (right, cell.j)):
            axes.imshow(maps[index], cmap=MAP_COLOURS)
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_title(f"filter {index}", fontsize=9)
        left.set_ylabel(f"G = {cell.value:.4g}", fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
