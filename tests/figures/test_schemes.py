"""Figures drawn once for the pages' light and dark colour schemes: what is not data is
transparent, and the plots' text reads on either page."""

from __future__ import annotations

import numpy as np
from PIL import Image

from reportgen import tiles
from reportgen.figures import plots, raster

LIGHT_PAGE = (0xFD, 0xFD, 0xFC)  # style.css's --bg of each scheme
DARK_PAGE = (0x15, 0x17, 0x1B)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    channels = rgb.astype(np.float64) / 255
    linear = np.where(channels <= 0.03928, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def _contrast(a: np.ndarray, b: tuple[int, int, int]) -> np.ndarray:
    la, lb = _luminance(a), _luminance(np.array(b))
    return (np.maximum(la, lb) + 0.05) / (np.minimum(la, lb) + 0.05)


def _rgba(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA"))


def _history(steps: int = 30) -> dict:
    rng = np.random.default_rng(1)
    curve = np.geomspace(1e5, 1e2, steps)
    return {
        "step": list(range(1, steps + 1)),
        "total": list(curve * 3),
        "content": list(np.geomspace(1.0, 1e3, steps)),
        "style": {f"conv{k}_1": list(curve * rng.uniform(0.5, 2)) for k in range(1, 6)},
    }


def _drawn_plots(folder) -> dict:
    rng = np.random.default_rng(0)
    features = rng.random((32, 200)).astype(np.float32)
    energy = np.sort(rng.random(32))[::-1]
    paths = {name: folder / name for name in ("losses.png", "energy.png", "gram.webp", "loss.png")}
    plots.loss_curves(_history(), [], paths["losses.png"])
    plots.energy_bars(energy, energy * 0.8, "conv1_1", paths["energy.png"])
    plots.gram_heatmap(features @ features.T, "Gram matrix of the style image", paths["gram.webp"])
    plots.layer_loss_curve(
        list(range(1, 31)), _history()["style"]["conv1_1"], "conv1_1", paths["loss.png"]
    )
    return paths


def test_plots_are_transparent_with_text_that_reads_on_both_schemes(tmp_path):
    for name, path in _drawn_plots(tmp_path).items():
        pixels = _rgba(path)
        alpha = pixels[..., 3]
        # The page shows through the margins: no white (or any) panel around the plot.
        assert (alpha[:3, :] == 0).all() and (alpha[:, :3] == 0).all(), name
        assert (alpha == 0).mean() > 0.3, name
        # The opaque pixels that are neither data nor anti-aliasing: text, ticks and axes, one
        # grey.  It has 4:1 contrast or more on the light page and on the dark one.
        opaque = pixels[alpha == 255][:, :3].astype(int)
        grey = opaque[(np.ptp(opaque, axis=1) <= 2)]
        assert len(grey) > 200, name
        ink = np.median(grey, axis=0)
        for page in (LIGHT_PAGE, DARK_PAGE):
            assert _contrast(ink, page) >= 4.0, (name, ink, page)


def test_montages_sheets_and_matrices_leave_their_gaps_transparent(tmp_path):
    rng = np.random.default_rng(2)
    layout, reduced = tiles.montage_tiles(rng.integers(0, 256, (10, 30, 30), dtype=np.uint8))
    raster.feature_montage(reduced, layout, tmp_path / "maps.webp")
    maps = _rgba(tmp_path / "maps.webp")
    # The last row is partly empty (10 maps, more columns than that in two rows): transparent.
    assert maps[-1, -1, 3] == 0 and maps[0, 0, 3] == 255
    gram = rng.random((64, 64))
    raster.gram_comparison(gram, gram * 0.9, "conv1_1", tmp_path / "grams.webp")
    grams = _rgba(tmp_path / "grams.webp")
    gaps = np.flatnonzero((grams[..., 3] == 0).all(axis=0))
    assert len(gaps) >= 4 and (grams[:, 64 - 1, 3] == 255).all()
    tile = rng.integers(0, 256, (12, 12), dtype=np.uint8)
    image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    share = rng.random((12, 12)).astype(np.float32)
    raster.pair_figure((tile, tile), (image, share), (image, share), tmp_path / "pair.webp")
    pair = _rgba(tmp_path / "pair.webp")
    columns = (pair[..., 3] == 0).all(axis=0)
    assert columns.sum() == 3 * 6  # three gaps of 6 px between four panels
    assert (pair[..., 3][:, ~columns] == 255).all()
