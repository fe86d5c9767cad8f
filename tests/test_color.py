"""reportgen.color: colour preservation (Gatys et al. 2017, section 5) on synthetic images.

The images are smooth random (24, 32, 3) uint8 pictures, made by bilinear upsampling of a
small random grid with a fixed seed, and kept away from 0 and 255 so that rounding, not
clipping, is the only loss.  What is checked: YIQ round-trips, the inputs each mode feeds the
network (grey images with matched luminance statistics, or a style recoloured to the content's
colour mean and covariance), the colours put back on the result, and degenerate styles (flat,
greyscale) that must not give NaN.
"""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.color import PRESERVE_COLOR, from_yiq, prepare_inputs, restore_colour, to_yiq

SHAPE = (24, 32)


def smooth_image(seed: int, low: float, high: float, grey: bool = False) -> np.ndarray:
    """(24, 32, 3) uint8: a 4×5 grid of random colours in [low, high], bilinearly upsampled."""
    rng = np.random.default_rng(seed)
    grid = rng.uniform(low, high, size=(4, 5, 1 if grey else 3))
    rows = np.linspace(0, grid.shape[0] - 1, SHAPE[0])
    cols = np.linspace(0, grid.shape[1] - 1, SHAPE[1])
    r0 = np.minimum(rows.astype(int), grid.shape[0] - 2)
    c0 = np.minimum(cols.astype(int), grid.shape[1] - 2)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    image = (
        (1 - fr) * (1 - fc) * grid[r0][:, c0]
        + fr * (1 - fc) * grid[r0 + 1][:, c0]
        + (1 - fr) * fc * grid[r0][:, c0 + 1]
        + fr * fc * grid[r0 + 1][:, c0 + 1]
    )
    return np.repeat(np.round(image), 3 if grey else 1, axis=2).astype(np.uint8)


@pytest.fixture
def content() -> np.ndarray:
    return smooth_image(0, 60, 200)


@pytest.fixture
def style() -> np.ndarray:
    return smooth_image(1, 20, 240)


def luminance(image: np.ndarray) -> np.ndarray:
    return to_yiq(image)[..., 0]


def colour_statistics(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean (3,) and covariance (3, 3) of an RGB image's pixels."""
    pixels = image.reshape(-1, 3).astype(np.float64)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False)


def assert_grey(image: np.ndarray) -> None:
    assert image.dtype == np.uint8 and image.shape == (*SHAPE, 3)
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(
        image[..., 0], image[..., 2]
    )


# --- YIQ ----------------------------------------------------------------------------------------


def test_yiq_round_trip_recovers_rgb_within_one_level():
    """Any uint8 RGB image (noise, and the extremes) comes back from YIQ within one level."""
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, size=(*SHAPE, 3), dtype=np.uint8)
    corners = np.array(
        [[[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)]], dtype=np.uint8
    )
    for image in (noise, corners, smooth_image(4, 0, 255)):
        back = from_yiq(to_yiq(image))
        assert back.dtype == np.uint8 and back.shape == image.shape
        assert np.abs(back.astype(int) - image.astype(int)).max() <= 1


def test_yiq_luminance_of_grey_is_the_grey_level_and_has_no_chroma():
    """A grey pixel v has Y = v and I = Q = 0 (the NTSC rows sum to 1, 0 and 0)."""
    levels = np.arange(256, dtype=np.uint8)
    yiq = to_yiq(np.repeat(levels[None, :, None], 3, axis=2))
    assert np.allclose(yiq[0, :, 0], levels, atol=1e-9)
    assert np.allclose(yiq[0, :, 1:], 0, atol=1e-9)


# --- prepare_inputs ---------------------------------------------------------------------------


def test_modes_are_none_luminance_histogram():
    assert PRESERVE_COLOR == ("none", "luminance", "histogram")


def test_none_passes_both_images_through(content, style):
    """'none' gives the network the content and style exactly as they are."""
    fed_content, fed_style = prepare_inputs(content, style, "none")
    assert np.array_equal(fed_content, content) and np.array_equal(fed_style, style)


def test_luminance_feeds_the_content_as_its_grey_luminance(content, style):
    """'luminance': the content becomes grey (R = G = B), each value its YIQ luminance within a
    level."""
    fed_content, _ = prepare_inputs(content, style, "luminance")
    assert_grey(fed_content)
    assert np.abs(fed_content[..., 0] - luminance(content)).max() <= 1


def test_luminance_feeds_the_style_grey_with_the_contents_luminance_statistics(content, style):
    """'luminance': the style becomes grey, with the content's luminance mean and standard deviation
    (the paper's luminance matching), and keeps its own pattern (correlated with its luminance)."""
    _, fed_style = prepare_inputs(content, style, "luminance")
    assert_grey(fed_style)
    fed = fed_style[..., 0].astype(np.float64)
    assert (
        0 < fed.min() and fed.max() < 255
    )  # no clipping, so the statistics are exact up to rounding
    target = luminance(content)
    assert abs(fed.mean() - target.mean()) < 0.5
    assert abs(fed.std() - target.std()) < 0.5
    assert (
        abs(fed.std() - luminance(style).std()) > 5
    )  # it was rescaled: the style's own spread differs
    assert np.corrcoef(fed.ravel(), luminance(style).ravel())[0, 1] > 0.999


def test_histogram_feeds_the_content_unchanged(content, style):
    fed_content, _ = prepare_inputs(content, style, "histogram")
    assert np.array_equal(fed_content, content)


def test_histogram_gives_the_style_the_contents_colour_mean_and_covariance(content, style):
    """'histogram': the style's pixels are mapped to the content's colour mean (within half a level)
    and 3×3 covariance (within 1% of its largest entry)."""
    _, fed_style = prepare_inputs(content, style, "histogram")
    assert fed_style.dtype == np.uint8 and fed_style.shape == style.shape
    assert 0 < fed_style.min() and fed_style.max() < 255  # no clipping
    content_mean, content_cov = colour_statistics(content)
    style_mean, style_cov = colour_statistics(style)
    fed_mean, fed_cov = colour_statistics(fed_style)
    assert np.abs(fed_mean - content_mean).max() < 0.5
    assert np.abs(fed_cov - content_cov).max() < 0.01 * np.abs(content_cov).max()
    # The style's statistics were different to begin with, so this is a real change.
    assert np.abs(style_cov - content_cov).max() > 0.2 * np.abs(content_cov).max()


@pytest.mark.parametrize("mode", PRESERVE_COLOR)
def test_prepare_inputs_does_not_modify_its_arguments(content, style, mode):
    before = content.copy(), style.copy()
    prepare_inputs(content, style, mode)
    assert np.array_equal(content, before[0]) and np.array_equal(style, before[1])


# --- restore_colour ------------------------------------------------------------------------------


def test_luminance_restore_keeps_the_results_luminance_and_the_contents_chroma(content):
    """'luminance': the picture shown has the optimised result's Y (within a level) and the
    content's I and Q (within 1.5 levels)."""
    result = smooth_image(2, 70, 190)
    shown = restore_colour(result, content, "luminance")
    assert shown.dtype == np.uint8 and shown.shape == result.shape
    assert 0 < shown.min() and shown.max() < 255  # no clipping
    assert np.abs(to_yiq(shown)[..., 0] - luminance(result)).max() <= 1
    assert np.abs(to_yiq(shown)[..., 1:] - to_yiq(content)[..., 1:]).max() <= 1.5


def test_luminance_restore_of_a_grey_result_colours_it(content):
    """A grey result (what the network gives under 'luminance') comes back in colour."""
    result = smooth_image(2, 70, 190, grey=True)
    shown = restore_colour(result, content, "luminance")
    assert np.abs(shown[..., 0].astype(int) - shown[..., 2].astype(int)).max() > 10


@pytest.mark.parametrize("mode", ["none", "histogram"])
def test_other_modes_show_the_result_itself(content, mode):
    result = smooth_image(2, 70, 190)
    assert np.array_equal(restore_colour(result, content, mode), result)


# --- degenerate styles ---------------------------------------------------------------------------


def test_flat_style_under_luminance_is_flat_at_the_contents_mean_luminance(content):
    """A constant style has no spread to scale: it stays flat, at the content's mean luminance."""
    flat = np.full((*SHAPE, 3), (200, 40, 90), dtype=np.uint8)
    _, fed_style = prepare_inputs(content, flat, "luminance")
    assert_grey(fed_style)
    assert np.unique(fed_style).size == 1
    assert abs(int(fed_style[0, 0, 0]) - luminance(content).mean()) <= 0.5


@pytest.mark.parametrize(
    "style_image",
    [smooth_image(5, 30, 220, grey=True), np.full((*SHAPE, 3), 128, dtype=np.uint8)],
    ids=["greyscale", "flat"],
)
def test_degenerate_style_under_histogram_gives_a_finite_image(content, style_image):
    """A style whose colour covariance is singular (greyscale: rank 1; flat: zero) is still mapped:
    a uint8 image of the style's shape, with the content's mean colour, and no exception."""
    with np.errstate(all="raise"):
        _, fed_style = prepare_inputs(content, style_image, "histogram")
    assert fed_style.dtype == np.uint8 and fed_style.shape == style_image.shape
    content_mean, _ = colour_statistics(content)
    fed_mean, _ = colour_statistics(fed_style)
    assert np.abs(fed_mean - content_mean).max() < 2
