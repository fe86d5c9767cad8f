"""The network and the Gram matrices: exported Grams against an independent VGG19, and known
answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from studies import ANALYSED, CAFFE_MEAN_BGR, STUDY_IDS, pastiche_name

from reportgen.ml.analysis import raw_gram
from reportgen.ml.losses import gram, normalised_gram


def reference_features(pastiche_vgg64, png_path, layers):
    """float64 features of an 8-bit PNG from pastiche's own VGG19, Caffe preprocessing written out
    here."""
    pixels = np.asarray(Image.open(png_path).convert("RGB"), dtype=np.float64)  # (H, W, 3) RGB
    bgr = pixels[:, :, ::-1] - np.array(CAFFE_MEAN_BGR)
    x = torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None]  # (1, 3, H, W) float64
    with torch.no_grad():
        out = pastiche_vgg64.forward(x, [pastiche_name(layer) for layer in layers])
    return {layer: out[pastiche_name(layer)][0] for layer in layers}


@pytest.mark.parametrize("pair_id", STUDY_IDS)
@pytest.mark.parametrize("image", ["style", "content", "result"])
def test_exported_grams_match_pastiche_vgg19(built_study, pastiche_vgg64, pair_id, image):
    pair = built_study.site / "pairs" / pair_id
    grams = np.load(pair / "data" / "grams.npz")
    features = reference_features(pastiche_vgg64, pair / f"{image}.png", ANALYSED)
    for layer in ANALYSED:
        f = features[layer]
        flat = f.reshape(f.shape[0], -1)
        expected = (flat @ flat.T).numpy()  # float64 reference Gram
        exported = grams[f"{image}/{layer}"]
        assert exported.shape == expected.shape, layer
        error = np.abs(exported.astype(np.float64) - expected).max() / np.abs(expected).max()
        assert error < 1e-4, f"{image}/{layer}: relative error {error:.2e}"


def test_extractor_features_match_pastiche(caffe_weights, pastiche_vgg):
    """Our feature extractor and pastiche's network agree on every analysed layer, both
    activations."""
    from reportgen.ml.vgg import FeatureExtractor

    generator = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, 40, 36, generator=generator) * 255
    x = caffe_weights.preprocessing.to_network(rgb)
    for activation in ("relu", "conv"):
        ours = FeatureExtractor(caffe_weights, ANALYSED, activation)(x)
        with torch.no_grad():
            theirs = pastiche_vgg.forward(
                x, [pastiche_name(layer, activation) for layer in ANALYSED]
            )
        for layer in ANALYSED:
            reference = theirs[pastiche_name(layer, activation)]
            torch.testing.assert_close(
                ours[layer], reference, rtol=1e-4, atol=1e-3 * reference.abs().max().item()
            )
        if activation == "conv":
            assert (ours["conv1_1"] < 0).any()  # before the ReLU: negative responses survive
        else:
            assert (ours["conv1_1"] >= 0).all()


def test_extractor_is_frozen(transfer_extractor):
    assert all(not p.requires_grad for p in transfer_extractor.parameters())
    # Cut after the deepest requested layer: conv5_1's ReLU is features[29].
    assert len(transfer_extractor.features) == 30


def test_the_bfloat16_network_computes_what_autocast_does_bit_for_bit(transfer_extractor):
    # The transfer's bfloat16 passes run on a bfloat16 copy of the network instead of autocast
    # (which casts every weight at every call): same features and same image gradient.
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 40, 56, generator=generator) * 255
    network_input = transfer_extractor.preprocessing.to_network(image).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = transfer_extractor(network_input)
    twin = transfer_extractor.in_bfloat16()
    ours = twin(network_input.to(torch.bfloat16))
    assert twin is transfer_extractor.in_bfloat16()  # made once
    assert not any(p.requires_grad for p in twin.parameters())
    assert all(p.dtype == torch.float32 for p in transfer_extractor.parameters())  # untouched
    for layer, features in expected.items():
        assert ours[layer].dtype == torch.bfloat16 and torch.equal(ours[layer], features), layer

    def gradient(features):
        loss = sum(value.float().square().mean() for value in features.values())
        return torch.autograd.grad(loss, network_input)[0]

    assert torch.equal(gradient(ours), gradient(expected))


# --- known answers -------------------------------------------------------------------------------


def test_gram_of_ones_is_number_of_positions():
    features = torch.ones(1, 3, 4, 5)
    g = gram(features)
    assert g.shape == (1, 3, 3)
    assert torch.equal(g, torch.full((1, 3, 3), 20.0))
    assert torch.allclose(normalised_gram(features), torch.full((1, 3, 3), 20.0 / (3 * 20)))
    r = raw_gram(torch.ones(3, 4, 5))
    assert r.shape == (3, 3)
    assert torch.equal(r.double(), torch.full((3, 3), 20.0, dtype=torch.float64))


def test_gram_known_small_matrix():
    # Two channels at two positions: F = [[1, 2], [3, 4]] -> F·Fᵀ = [[5, 11], [11, 25]].
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[5.0, 11.0], [11.0, 25.0]])
    assert torch.equal(gram(features)[0], expected)
    assert torch.equal(raw_gram(features[0]).double(), expected.double())
    assert torch.allclose(normalised_gram(features)[0], expected / 4)  # C·H·W = 2·1·2


def test_gram_is_symmetric_and_matches_einsum():
    generator = torch.Generator().manual_seed(5)
    features = torch.rand(2, 6, 3, 7, generator=generator, dtype=torch.float64)
    g = gram(features)
    torch.testing.assert_close(g, torch.einsum("bchw,bdhw->bcd", features, features))
    torch.testing.assert_close(g, g.transpose(1, 2))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_and_its_gradient_equal_autograd_through_f_ft(layout):
    """gram() has a hand-written backward (one product instead of two); it must agree with
    autograd differentiating F·Fᵀ directly, for the extractor's channels-last features too."""
    torch.manual_seed(0)
    features = (
        torch.randn(2, 6, 5, 4, dtype=torch.float64)
        .contiguous(memory_format=layout)
        .requires_grad_(True)
    )
    weights = torch.randn(2, 6, 6, dtype=torch.float64)
    (ours,) = torch.autograd.grad((gram(features) * weights).sum(), features)
    flat = features.flatten(2)
    (reference,) = torch.autograd.grad(((flat @ flat.transpose(1, 2)) * weights).sum(), features)
    assert torch.allclose(gram(features), flat @ flat.transpose(1, 2))
    assert torch.allclose(ours, reference)
    assert torch.autograd.gradcheck(gram, (features,))
