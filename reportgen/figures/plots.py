"""Figures that are plots, drawn with matplotlib and seaborn: the Gram heatmap as the seed shows
it, each filter's energy, the loss curves and the clustered distances between a study's styles.

matplotlib is not thread-safe: the figures of a run are drawn by one thread, and runs are drawn
in parallel by processes (:mod:`reportgen.execute`), never by threads of one process.  Every
figure is a ``Figure`` of its own, not pyplot's: no global registry is shared.

The pages have a light and a dark colour scheme, and each plot is drawn once for both (a copy
per scheme would double what plots weigh in a study's site): its background is transparent, so
the page shows through, and its text, axes and lines have colours of middle lightness that read
on the light page and on the dark one (:data:`EITHER_SCHEME`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import matplotlib
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from reportgen.figures.raster import WEBP_METHOD

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

# Text, ticks, spines and neutral lines: a grey of 4.2:1 contrast with the light page's
# background (#fdfdfc) and with the dark page's (#15171b), the most one colour can have on both.
INK = "#7a7a7a"
# Data colours of middle lightness (3.7:1 or more on either page); seaborn's defaults run from
# near black to near white, one of which always vanishes into one of the two backgrounds.
TOTAL_COLOUR = INK
CONTENT_COLOUR = "#1f77b4"
STYLE_LIGHTNESS = 0.52  # of the HUSL palette of the style layers' curves
STYLE_ENERGY_COLOUR = "#4c72b0"
RESULT_ENERGY_COLOUR = "#d4703a"
LAYER_LOSS_COLOUR = "#c44e52"
EITHER_SCHEME: dict[RcKeyType, Any] = {
    "figure.facecolor": "none",
    "axes.facecolor": "none",
    "savefig.facecolor": "none",
    "savefig.transparent": True,
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": INK,
    "axes.titlecolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "grid.color": INK,
    "legend.labelcolor": INK,
}

_Args = ParamSpec("_Args")
_Result = TypeVar("_Result")


def _for_either_scheme(draw: Callable[_Args, _Result]) -> Callable[_Args, _Result]:
    """Draw with :data:`EITHER_SCHEME`'s colours: matplotlib reads them when each artist is made
    and when the figure is saved, so the whole function runs inside them."""

    @functools.wraps(draw)
    def drawn(*args: _Args.args, **kwargs: _Args.kwargs) -> _Result:
        with matplotlib.rc_context(EITHER_SCHEME):
            return draw(*args, **kwargs)

    return drawn


# Heatmaps of 512x512 matrices look like noise to a lossless coder (600 KB as PNG); as WebP
# they keep their look at a tenth of the size.
HEATMAP_QUALITY = 72
# Fixed plot margins (fractions of the figure), as tight_layout computes them for these figures,
# with a little room to spare for wider tick labels; tight_layout itself measures every text
# and costs a third of each plot's time.  Checked over values from 1e-9 to 1e12.
HEATMAP_MARGINS = {"left": 0.095, "right": 0.977, "bottom": 0.091, "top": 0.953}
ENERGY_MARGINS = {"left": 0.12, "right": 0.979, "bottom": 0.183, "top": 0.891}
LAYER_LOSS_MARGINS = {"left": 0.14, "right": 0.975, "bottom": 0.223, "top": 0.866}
LOSS_MARGINS = {"left": 0.115, "right": 0.979, "bottom": 0.145, "top": 0.962}
# Plot titles at a fixed height: placed automatically, matplotlib measures every tick label to
# look for overlaps that these plots never have.
TITLE_SIZE = 11


@_for_either_scheme
def gram_heatmap(gram: np.ndarray, title: str, path: Path, quality: int = HEATMAP_QUALITY) -> None:
    """A seaborn heatmap of a raw (C, C) Gram matrix, as the seed draws its style representation."""
    channels = gram.shape[0]
    figure = Figure(figsize=(6.4, 5.4), dpi=100)  # not pyplot's: no global registry to share
    axes = figure.subplots()
    tick_step = max(1, channels // 8)
    sns.heatmap(
        gram,
        ax=axes,
        square=True,
        xticklabels=tick_step,
        yticklabels=tick_step,
        cbar_kws={"shrink": 0.8},
        rasterized=True,
    )
    axes.set_title(title, fontsize=TITLE_SIZE, y=1.0)
    axes.set_xlabel("filter j")
    axes.set_ylabel("filter i")
    figure.subplots_adjust(**HEATMAP_MARGINS)
    figure.savefig(path, format="webp", pil_kwargs={"quality": quality, "method": WEBP_METHOD})


@_for_either_scheme
def energy_bars(
    style_energy: np.ndarray,
    result_energy: np.ndarray,
    layer: str,
    path: Path,
    style_label: str = "style image",
) -> None:
    """Each filter's energy G_ii / positions, sorted by the style's (``style_label``: the style
    image's, or a blend's target), with the result's energy for the same filters on top."""
    order = np.argsort(-style_energy, kind="stable")
    ranks = np.arange(len(order))
    figure = Figure(figsize=(7.2, 3.2), dpi=100)  # not pyplot's: no global registry to share
    axes = figure.subplots()
    # One filled staircase, not 512 bar artists: the same picture in a tenth of the time.
    axes.stairs(
        style_energy[order],
        np.arange(len(order) + 1) - 0.5,
        fill=True,
        color=STYLE_ENERGY_COLOUR,
        label=style_label,
    )
    axes.plot(
        ranks,
        result_energy[order],
        ".",
        markersize=2.5,
        color=RESULT_ENERGY_COLOUR,
        label="result (same filter)",
    )
    # Log above a power of ten well below the typical energy, linear below it, so silent filters
    # (energy 0) still show.  Ticks at 0 and at the decades from that power up: left to itself the
    # locator also puts decades inside the linear part, where their labels overlap the 0.
    exponent = math.floor(
        math.log10(max(float(style_energy[order][len(order) // 2]) * 1e-3, 1e-12))
    )
    top = max(float(style_energy.max()), float(result_energy.max()), 10.0**exponent)
    axes.set_yscale("symlog", linthresh=10.0**exponent)
    axes.yaxis.set_major_locator(
        FixedLocator([0.0, *(10.0**k for k in range(exponent, math.ceil(math.log10(top)) + 1))])
    )
    axes.set_ylim(0, top * 2)
    axes.set_xlim(-1, len(order))
    axes.set_xlabel(f"filters, sorted by the {style_label}'s energy")
    axes.set_ylabel("G_ii / positions")
    axes.set_title(f"Filter energy at {layer}", fontsize=TITLE_SIZE, y=1.0)
    axes.legend(fontsize=8, frameon=False)
    figure.subplots_adjust(**ENERGY_MARGINS)
    figure.savefig(path, format="png")


@_for_either_scheme
def layer_loss_curve(steps: list[int], values: list[float], layer: str, path: Path) -> None:
    """One style layer's weighted loss over the optimisation."""
    array = np.asarray(values, dtype=float)
    figure = Figure(figsize=(6.0, 2.6), dpi=100)  # not pyplot's: no global registry to share
    axes = figure.subplots()
    axes.plot(steps, np.where(array > 0, array, np.nan), color=LAYER_LOSS_COLOUR, linewidth=1.6)
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("β·w·E")
    axes.set_title(f"Style loss at {layer}", fontsize=TITLE_SIZE, y=1.0)
    axes.grid(True, alpha=0.3)
    figure.subplots_adjust(**LAYER_LOSS_MARGINS)
    figure.savefig(path, format="png")


@_for_either_scheme
def loss_curves(history: dict, scale_starts: list[int], path: Path) -> None:
    """Total, content, per-layer style and (when used) total-variation loss, weighted, over the
    optimisation, log scale.  ``history`` has the columns of a record's ``losses``; a dotted
    line marks the first step of each later scale of a coarse-to-fine run."""

    def positive(values: list[float]) -> np.ndarray:
        # A log axis cannot show 0 (the content loss at step 1 when starting from the content
        # image).
        array = np.asarray(values, dtype=float)
        return np.where(array > 0, array, np.nan)

    steps = history["step"]
    figure = Figure(figsize=(7.2, 4.0), dpi=100)  # not pyplot's: no global registry to share
    axes = figure.subplots()
    axes.plot(steps, positive(history["total"]), color=TOTAL_COLOUR, linewidth=2, label="total")
    axes.plot(
        steps,
        positive(history["content"]),
        color=CONTENT_COLOUR,
        linewidth=1.6,
        label="content (α·L_content)",
    )
    palette = sns.husl_palette(len(history["style"]), l=STYLE_LIGHTNESS)
    for colour, (layer, values) in zip(palette, history["style"].items(), strict=True):
        axes.plot(
            steps, positive(values), color=colour, linewidth=1.2, label=f"style {layer} (β·w·E)"
        )
    if any(history.get("tv", ())):
        axes.plot(
            steps,
            positive(history["tv"]),
            color="#2ca02c",
            linewidth=1.2,
            linestyle="--",
            label="total variation",
        )
    for start in scale_starts:
        axes.axvline(start - 0.5, color="#777777", linewidth=0.8, linestyle=":")
    axes.set_yscale("log")
    axes.set_xlabel("step" + (" (dotted: a new, larger scale begins)" if scale_starts else ""))
    axes.set_ylabel("weighted loss")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, ncols=2, frameon=False)
    figure.subplots_adjust(**LOSS_MARGINS)
    figure.savefig(path, format="png")


@_for_either_scheme
def distance_clustermap(
    matrix: np.ndarray, order: list[int], merges: np.ndarray, layer: str, path: Path
) -> None:
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
    image = axes.imshow(
        shown,
        cmap="viridis_r",
        interpolation="nearest",
        aspect="auto",
        vmin=0,
        vmax=max(float(shown.max()), 1e-12),
    )
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_xlabel(
        f"{count} style images, in the order of the clustering (nearest styles side by side)"
    )
    axes.set_title(
        f"Distances between the study's style Grams at {layer}", fontsize=TITLE_SIZE, y=1.0
    )
    figure.colorbar(image, cax=bar, label="distance between the Grams (0: the same)")
    if len(merges):
        tree_lines = dendrogram(merges, orientation="left", no_plot=True)
        # scipy puts the k-th leaf of ``order`` at 5 + 10·k: the image's row k, counted from the
        # top.
        segments = [
            np.column_stack([dcoord, np.asarray(icoord) / 10])
            for icoord, dcoord in zip(tree_lines["icoord"], tree_lines["dcoord"], strict=True)
        ]
        tree.add_collection(LineCollection(segments, colors=INK, linewidths=0.6))
        tree.set_ylim(count, 0)
        tree.set_xlim(max(float(merges[:, 2].max()), 1e-12) * 1.02, 0)
    tree.axis("off")
    figure.savefig(path, format="webp", pil_kwargs={"quality": 80, "method": WEBP_METHOD})
