"""Colour preservation (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style
Transfer", section 5): the result keeps the content image's colours and takes only the style's
textures.  numpy only; images are (H, W, 3) uint8 RGB.

``luminance``
    The transfer runs on luminance alone: both images are turned grey, the style's luminance is
    shifted and scaled to the content's mean and standard deviation (the paper's luminance
    matching), and the result's luminance is joined to the content's chroma (YIQ).
``histogram``
    The style image's colours are mapped onto the content's before the transfer: the affine map
    that gives the style's pixels the content's mean and covariance, with symmetric matrix
    square roots (the paper's colour histogram matching, as in Image Analogies).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

PreserveColor = Literal["none", "luminance", "histogram"]
PRESERVE_COLOR: tuple[PreserveColor, ...] = get_args(PreserveColor)

# RGB -> YIQ (NTSC 1953, as the paper uses), and its inverse.
_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)
_RGB = np.linalg.inv(_YIQ)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def to_yiq(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB 0..255 -> (H, W, 3) float64 YIQ (Y in 0..255)."""
    return pixels.astype(np.float64) @ _YIQ.T


def from_yiq(yiq: np.ndarray) -> np.ndarray:
    """(H, W, 3) YIQ -> (H, W, 3) uint8 RGB, rounded and clipped."""
    return _to_uint8(yiq @ _RGB.T)


def grey(luminance: np.ndarray) -> np.ndarray:
    """(H, W) luminance -> (H, W, 3) uint8, the same value in R, G and B."""
    return np.repeat(_to_uint8(luminance)[:, :, None], 3, axis=2)


def match_luminance(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style's luminance (H, W), shifted and scaled to the content's mean and standard
    deviation."""
    style_y, content_y = to_yiq(style)[..., 0], to_yiq(content)[..., 0]
    spread = style_y.std()
    scale = content_y.std() / spread if spread > 1e-6 else 1.0  # a flat style stays flat
    return (style_y - style_y.mean()) * scale + content_y.mean()


def _symmetric_power(matrix: np.ndarray, power: float, floor: float = 1e-2) -> np.ndarray:
    """matrix^power of a symmetric positive semi-definite (3, 3) matrix.  Eigenvalues under
    ``floor`` times the largest (a greyscale image has two near 0) are raised to it, so that a
    negative power exists and a near-grey image's noise is not blown up into colour."""
    values, vectors = np.linalg.eigh(matrix)
    smallest = max(floor * float(values.max()), 1e-6)
    return (vectors * np.maximum(values, smallest) ** power) @ vectors.T


def match_histogram(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the style image with the content image's colour mean and covariance."""
    source = style.reshape(-1, 3).astype(np.float64)
    target = content.reshape(-1, 3).astype(np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    transform = _symmetric_power(np.cov(target, rowvar=False), 0.5) @ _symmetric_power(
        np.cov(source, rowvar=False), -0.5
    )
    mapped = (source - source_mean) @ transform.T + target_mean
    return _to_uint8(mapped).reshape(style.shape)


def prepare_inputs(
    content: np.ndarray, style: np.ndarray, mode: PreserveColor
) -> tuple[np.ndarray, np.ndarray]:
    """(content, style) as the network is to be fed them under colour preservation ``mode``."""
    if mode == "luminance":
        return grey(to_yiq(content)[..., 0]), grey(match_luminance(style, content))
    if mode == "histogram":
        return content, match_histogram(style, content)
    return content, style


def restore_colour(result: np.ndarray, content: np.ndarray, mode: PreserveColor) -> np.ndarray:
    """The picture to show for an optimised ``result``: under ``luminance`` its luminance joined
    to the chroma of ``content`` (the original content image, resized to the result's shape by
    the caller); otherwise ``result`` itself."""
    if mode != "luminance":
        return result
    yiq = to_yiq(content)
    yiq[..., 0] = to_yiq(result)[..., 0]
    return from_yiq(yiq)
