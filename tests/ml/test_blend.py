"""Blends of several style images: the target is the weighted mean of their Grams."""

from __future__ import annotations

import dataclasses

import torch
from studies import IMAGES, STYLE_LAYERS, rgb_tensor, transfer_settings

from reportgen.images import load_image
from reportgen.ml.losses import GatysObjective, normalised_gram
from reportgen.ml.transfer import run_transfer
from reportgen.stages.settings import TransferSettings


def settings(**overrides) -> TransferSettings:
    return transfer_settings(**{"steps": 12, **overrides})


def image(folder: str, name: str, size: int) -> torch.Tensor:
    return rgb_tensor(load_image(IMAGES / folder / name, size).pixels)


def gram_distance(extractor, result: torch.Tensor, style: torch.Tensor) -> float:
    """Σ over the style layers of ‖Ĝ_result − Ĝ_style‖ / ‖Ĝ_style‖ (Grams per position)."""
    with torch.no_grad():
        ours = extractor(extractor.preprocessing.to_network(result.float()))
        theirs = extractor(extractor.preprocessing.to_network(style.float()))
    total = 0.0
    for layer in STYLE_LAYERS:
        target = normalised_gram(theirs[layer])
        total += ((normalised_gram(ours[layer]) - target).norm() / target.norm()).item()
    return total


def test_a_blend_with_all_its_weight_on_one_style_is_that_style_s_run(transfer_extractor):
    content = image("content", "chelsea.png", 32)
    strokes, mosaic = image("style", "brushstrokes.jpg", 32), image("style", "mosaic.png", 40)
    for loss in ("relative", "seed"):
        alone = run_transfer(transfer_extractor, content, strokes, settings(steps=4, loss=loss))
        blended = run_transfer(
            transfer_extractor,
            content,
            [strokes, mosaic],
            settings(steps=4, loss=loss, style_blend=(1.0, 0.0)),
        )
        assert torch.equal(alone.result_rgb, blended.result_rgb), loss
        assert [r.total for r in alone.history] == [r.total for r in blended.history], loss


def test_the_target_is_the_weighted_mean_of_the_styles_grams(transfer_extractor):
    content = image("content", "coffee.png", 32) / 255
    styles = [image("style", "brick.png", 32) / 255, image("style", "retina.jpg", 32) / 255]
    blend = GatysObjective(transfer_extractor, content, styles, settings(style_blend=(0.25, 0.75)))
    each = [GatysObjective(transfer_extractor, content, [s], settings()) for s in styles]
    for layer in STYLE_LAYERS:
        expected = 0.25 * each[0].style_targets[layer] + 0.75 * each[1].style_targets[layer]
        assert torch.allclose(blend.style_targets[layer], expected, rtol=1e-6, atol=0)


def test_a_blend_lands_between_its_styles(transfer_extractor):
    """The 50/50 blend's result is nearer each style than the other style's own run is."""
    content = image("content", "astronaut.png", 48)
    first, second = image("style", "hubble_deep_field.jpg", 48), image("style", "brick.png", 48)
    base = settings(steps=30)
    only_first = run_transfer(transfer_extractor, content, first, base)
    only_second = run_transfer(transfer_extractor, content, second, base)
    half = run_transfer(
        transfer_extractor,
        content,
        [first, second],
        dataclasses.replace(base, style_blend=(0.5, 0.5)),
    )
    result = half.result_rgb.float()
    assert gram_distance(transfer_extractor, result, first) < gram_distance(
        transfer_extractor, only_second.result_rgb.float(), first
    )
    assert gram_distance(transfer_extractor, result, second) < gram_distance(
        transfer_extractor, only_first.result_rgb.float(), second
    )


def test_a_guided_gram_with_a_full_mask_is_the_normalised_gram(transfer_extractor):
    from reportgen.ml.losses import guided_gram

    features = torch.rand(2, 8, 5, 7)
    ones = torch.ones(2, 1, 20, 28)
    assert torch.allclose(guided_gram(features, ones), normalised_gram(features), rtol=1e-5)
    # A mask whose edge falls on a boundary of the layer's positions: the Gram of the columns
    # inside it, per position.
    inside = ones.clone()
    inside[..., 16:] = 0
    expected = normalised_gram(features[..., :4].contiguous())
    assert torch.allclose(guided_gram(features, inside), expected, rtol=1e-5)


def test_with_two_half_masks_each_half_moves_towards_its_own_style(transfer_extractor):
    content = image("content", "astronaut.png", 48)
    first, second = image("style", "hubble_deep_field.jpg", 48), image("style", "brick.png", 48)
    height, width = content.shape[-2:]
    left = torch.zeros(1, 1, height, width)
    left[..., : width // 2] = 1
    right = 1 - left
    output = run_transfer(
        transfer_extractor, content, [first, second], settings(steps=30), masks=[left, right]
    )
    result = output.result_rgb.float()
    halves = {
        "left": (slice(None), slice(0, width // 2)),
        "right": (slice(None), slice(width // 2, None)),
    }

    def moved(side: str, style: torch.Tensor) -> float:
        """The half's distance to ``style`` after the transfer, over the content's before."""
        rows, columns = halves[side]
        return gram_distance(transfer_extractor, result[..., rows, columns], style) / (
            gram_distance(transfer_extractor, content[..., rows, columns], style)
        )

    assert moved("left", first) < moved("left", second)
    assert moved("right", second) < moved("right", first)
