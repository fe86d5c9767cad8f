"""Feature visualisation: each filter's image, at a small size and few steps, excites it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from studies import IMAGES

from reportgen.ml.visualise import mean_activations, visualise
from reportgen.stages.visualisations import VisualisationSettings

LAYER = "conv3_1"
FILTERS = [3, 40, 121, 200]


@pytest.fixture(scope="module")
def made(caffe_weights):
    from reportgen.ml.vgg import FeatureExtractor

    extractor = FeatureExtractor(caffe_weights, [LAYER], "relu")
    return extractor, visualise(extractor, LAYER, FILTERS, VisualisationSettings(48, 64))


def _natural_images(side: int = 64) -> torch.Tensor:
    """(N, 3, side, side) in 0..1: the repository's photographs and paintings."""
    from PIL import Image

    files = [IMAGES / "content" / "chelsea.png", IMAGES / "style" / "brushstrokes.jpg"]
    files += [IMAGES / "content" / "coffee.png", IMAGES / "style" / "mosaic.png"]
    pixels = [
        np.asarray(Image.open(f).convert("RGB").resize((side, side), Image.Resampling.LANCZOS))
        for f in files
    ]
    return torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255


def _activations(extractor, images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in 0..1 -> (N, C) each filter's mean activation on each image."""
    with torch.no_grad():
        features = extractor(extractor.preprocessing.to_network(images * 255))[LAYER]
    return features.float().mean(dim=(2, 3))


def test_images_are_8_bit_and_report_their_own_activation(made):
    extractor, batch = made
    assert batch.images.shape == (len(FILTERS), 48, 48, 3) and batch.images.dtype == np.uint8
    pixels = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        again = mean_activations(extractor, LAYER, pixels, torch.tensor(FILTERS))
    np.testing.assert_allclose(batch.activations, again.numpy(), rtol=1e-4)


def test_each_image_excites_its_filter_far_more_than_natural_images_do(made):
    """Three times the filter's mean activation over four photographs and paintings, at least
    (some filters fire broadly on flat colour: a mosaic excites filter 121 nearly as much as any
    image can)."""
    extractor, batch = made
    natural = _activations(extractor, _natural_images())[:, FILTERS]  # (image, filter)
    assert (batch.activations > 3 * natural.mean(dim=0).numpy()).all(), (batch, natural)
    assert (batch.activations > natural.max(dim=0).values.numpy()).all()


def test_each_image_excites_its_own_filter_more_than_nearly_all_others(made):
    extractor, batch = made
    pixels = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 255
    on_images = _activations(extractor, pixels)  # (len(FILTERS), C)
    for row, k in enumerate(FILTERS):
        stronger = int((on_images[row] > on_images[row, k]).sum())
        assert stronger < 0.05 * on_images.shape[1], (k, stronger)


def test_a_filter_is_excited_most_by_its_own_image_among_the_batch(made):
    extractor, batch = made
    pixels = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 255
    on_images = _activations(extractor, pixels)[:, FILTERS]  # (image, filter)
    assert (on_images.argmax(dim=0) == torch.arange(len(FILTERS))).all(), on_images
