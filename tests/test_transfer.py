"""Gatys et al.'s losses and the optimisation loop, on the real VGG19 at 32 px."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import STYLE_LAYERS
from reportgen.errors import TransferError
from reportgen.ml import transfer
from reportgen.ml.transfer import (
    GatysObjective,
    TransferSettings,
    content_loss,
    initial_image,
    normalised_gram,
    run_transfer,
    style_layer_loss,
)


def settings(**overrides) -> TransferSettings:
    values = dict(
        steps=6,
        optimizer="lbfgs",
        lr=1.0,
        content_weight=1.0,
        style_weight=1e6,
        content_layer="conv4_2",
        style_layers=dict(STYLE_LAYERS),
        init="content",
        seed=0,
    )
    values.update(overrides)
    return TransferSettings(**values)


# --- the losses: known answers -------------------------------------------------------------------


def test_style_loss_against_own_gram_is_zero(transfer_extractor, tiny_pair):
    content, _ = tiny_pair
    features = transfer_extractor(transfer_extractor.preprocessing.to_network(content))
    for layer in STYLE_LAYERS:
        f = features[layer]
        assert f.abs().sum() > 0, layer  # a real, non-trivial response
        assert style_layer_loss(f, normalised_gram(f)).item() == 0.0, layer


def test_objective_is_zero_at_the_target_and_positive_elsewhere(transfer_extractor, tiny_pair):
    content, style = tiny_pair
    prep = transfer_extractor.preprocessing
    same = GatysObjective(transfer_extractor, prep.to_network(content), prep.to_network(content), settings())
    total, content_term, style_terms = same(prep.to_network(content))
    assert total.item() == 0.0 and content_term.item() == 0.0
    assert all(term.item() == 0.0 for term in style_terms.values())
    assert set(style_terms) == set(STYLE_LAYERS)

    other = GatysObjective(transfer_extractor, prep.to_network(content), prep.to_network(style), settings())
    total, content_term, style_terms = other(prep.to_network(content))
    assert content_term.item() == 0.0  # still the content image
    assert all(term.item() > 0 for term in style_terms.values())
    assert total.item() == pytest.approx(sum(t.item() for t in style_terms.values()), rel=1e-6)


def test_style_layer_loss_known_answer():
    # The README's definition: Ĝ = F·Fᵀ / (C·H·W), loss = mean((Ĝ_t − Ĝ_s)²) over the C×C cells.
    result = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # C=2, H=1, W=2: F·Fᵀ = [[5, 11], [11, 25]]
    style_gram = torch.zeros(1, 2, 2)
    expected = ((torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4) ** 2).mean()
    assert style_layer_loss(result, style_gram).item() == pytest.approx(expected.item())


def test_content_loss_known_answer():
    # Σ_channels mean_positions (F_t − F_c)²: channel 0 differs by 1 at both positions, channel 1 by 2 at one.
    a = torch.tensor([[[[1.0, 1.0]], [[2.0, 0.0]]]])
    b = torch.zeros(1, 2, 1, 2)
    assert content_loss(a, b).item() == pytest.approx(1.0 + 2.0)


def test_losses_do_not_grow_with_the_image():
    """A map tiled 2×2 has the same per-position Gram and the same per-position content error."""
    generator = torch.Generator().manual_seed(2)
    f = torch.rand(1, 8, 5, 6, generator=generator, dtype=torch.float64)
    g = torch.rand(1, 8, 5, 6, generator=generator, dtype=torch.float64)
    big_f, big_g = f.repeat(1, 1, 2, 2), g.repeat(1, 1, 2, 2)
    torch.testing.assert_close(normalised_gram(big_f), normalised_gram(f))
    torch.testing.assert_close(style_layer_loss(big_f, normalised_gram(g)), style_layer_loss(f, normalised_gram(g)))
    torch.testing.assert_close(content_loss(big_f, big_g), content_loss(f, g))


def test_weights_scale_their_own_terms(transfer_extractor, tiny_pair):
    content, style = tiny_pair
    prep = transfer_extractor.preprocessing
    noise = initial_image(prep.to_network(content), "noise", 1, prep.to_network)
    base = GatysObjective(transfer_extractor, prep.to_network(content), prep.to_network(style), settings())(noise)
    more_style = GatysObjective(transfer_extractor, prep.to_network(content), prep.to_network(style), settings(style_weight=2e6))(noise)
    assert more_style[1].item() == pytest.approx(base[1].item(), rel=1e-6)
    for layer in STYLE_LAYERS:
        assert more_style[2][layer].item() == pytest.approx(2 * base[2][layer].item(), rel=1e-5)
    one_layer = GatysObjective(
        transfer_extractor, prep.to_network(content), prep.to_network(style), settings(style_layers={"conv2_1": 0.8})
    )(noise)
    assert set(one_layer[2]) == {"conv2_1"}
    assert one_layer[2]["conv2_1"].item() == pytest.approx(base[2]["conv2_1"].item(), rel=1e-5)


# --- the optimisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimisation_lowers_the_total_loss(transfer_extractor, tiny_pair, optimizer):
    content, style = tiny_pair
    calls = []
    out = run_transfer(
        transfer_extractor, content, style, settings(steps=10, optimizer=optimizer), progress=lambda d, t, r: calls.append((d, t))
    )
    assert len(out.history) == 10
    assert calls == [(step, 10) for step in range(1, 11)]
    start = out.history[0]
    assert start.content == 0.0  # starts from the content image
    assert start.total > 0 and all(math.isfinite(r.total) for r in out.history)
    assert out.final.total < 0.9 * start.total, (optimizer, start.total, out.final.total)
    assert out.result_rgb.dtype == torch.uint8 and out.result_rgb.shape == content.shape
    assert not torch.equal(out.result_rgb.float(), content), "the picture did not change"


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_final_loss_is_that_of_the_saved_8bit_picture(transfer_extractor, tiny_pair, precision):
    """Measured in float32 whatever the optimisation's precision, so precisions compare."""
    content, style = tiny_pair
    out = run_transfer(transfer_extractor, content, style, settings(steps=4, optimizer="adam", lr=3.0, precision=precision))
    prep = transfer_extractor.preprocessing
    objective = GatysObjective(transfer_extractor, prep.to_network(content), prep.to_network(style), settings())
    with torch.no_grad():
        total, content_term, _ = objective(prep.to_network(out.result_rgb.float()))
    assert out.final.total == pytest.approx(total.item(), rel=1e-5)
    assert out.final.content == pytest.approx(content_term.item(), rel=1e-5)


@pytest.mark.parametrize(
    "options",
    [dict(optimizer="lbfgs", init="content"), dict(optimizer="adam", init="noise", lr=4.0)],
    ids=["lbfgs-content", "adam-noise"],
)
def test_same_settings_and_seed_are_bit_identical(transfer_extractor, tiny_pair, options):
    content, style = tiny_pair
    first = run_transfer(transfer_extractor, content, style, settings(steps=5, **options))
    second = run_transfer(transfer_extractor, content, style, settings(steps=5, **options))
    assert torch.equal(first.result_rgb, second.result_rgb)
    assert [r.total for r in first.history] == [r.total for r in second.history]
    assert [r.style for r in first.history] == [r.style for r in second.history]
    assert first.final == second.final


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_bfloat16_optimisation_reaches_the_float32_loss(transfer_extractor, optimizer):
    """bfloat16 passes change the path (the content term is no longer exactly 0 at the content
    image: the targets are float32) but not where it ends: final losses within 5%."""
    from reportgen.images import load_image

    from conftest import IMAGES, rgb_tensor

    content = rgb_tensor(load_image(IMAGES / "content" / "chelsea.png", 48).pixels)
    style = rgb_tensor(load_image(IMAGES / "style" / "brushstrokes.jpg", 48).pixels)
    options = dict(steps=20, optimizer=optimizer, lr=4.0 if optimizer == "adam" else 1.0)
    exact = run_transfer(transfer_extractor, content, style, settings(**options))
    low = run_transfer(transfer_extractor, content, style, settings(**options, precision="bfloat16"))
    assert exact.history[0].content == 0.0
    assert low.history[0].content > 0.0, "the network did not run in bfloat16"
    assert low.final.total < 0.5 * low.history[0].total
    assert low.final.total == pytest.approx(exact.final.total, rel=0.05)
    assert all(isinstance(value, float) and math.isfinite(value) for value in low.history[-1].style.values())


def test_auto_precision_is_bfloat16_only_where_the_device_has_it(monkeypatch):
    from reportgen.ml.runtime import Runtime

    runtime = Runtime(torch.device("cpu"))
    assert runtime.precision("float32") == "float32" and runtime.precision("bfloat16") == "bfloat16"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True, "avx512_bf16": False})
    assert runtime.precision("auto") == "float32"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})
    assert runtime.precision("auto") == "bfloat16"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True})
    assert runtime.precision("auto") == "bfloat16"


def test_noise_init_differs_from_content_init(transfer_extractor, tiny_pair):
    content, style = tiny_pair
    prep = transfer_extractor.preprocessing
    x = prep.to_network(content)
    start = initial_image(x, "content", 0, prep.to_network)
    assert torch.equal(start, x) and start.data_ptr() != x.data_ptr()
    noise = initial_image(x, "noise", 0, prep.to_network)
    noise_rgb = prep.from_network(noise)
    assert noise.shape == x.shape
    assert noise_rgb.min() >= -1e-3 and noise_rgb.max() <= 255 + 1e-3
    assert (noise_rgb - content).abs().mean() > 40  # nothing like the photograph
    assert torch.equal(noise, initial_image(x, "noise", 0, prep.to_network))  # seeded
    assert not torch.equal(noise, initial_image(x, "noise", 1, prep.to_network))

    from_content = run_transfer(transfer_extractor, content, style, settings(steps=3))
    from_noise = run_transfer(transfer_extractor, content, style, settings(steps=3, init="noise"))
    assert from_noise.history[0].content > 0 and from_content.history[0].content == 0
    assert (from_noise.result_rgb.float() - from_content.result_rgb.float()).abs().mean() > 20


def test_exploding_adam_raises_transfer_error_naming_the_step(transfer_extractor, tiny_pair):
    content, style = tiny_pair
    with pytest.raises(TransferError) as caught:
        run_transfer(transfer_extractor, content, style, settings(steps=5, optimizer="adam", lr=1e10))
    message = caught.value.message
    assert "step 2 of 5" in message
    assert "adam" in message


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_nan_loss_raises_transfer_error_naming_the_step(transfer_extractor, tiny_pair, monkeypatch, optimizer):
    content, style = tiny_pair
    real = transfer.content_loss
    calls = {"n": 0}

    def poisoned(result_features, content_features):
        calls["n"] += 1  # one objective evaluation per step
        value = real(result_features, content_features)
        return value * float("nan") if calls["n"] >= 3 else value

    monkeypatch.setattr(transfer, "content_loss", poisoned)
    progress = []
    with pytest.raises(TransferError) as caught:
        run_transfer(transfer_extractor, content, style, settings(steps=6, optimizer=optimizer), progress=lambda d, t, r: progress.append(d))
    assert "step 3 of 6" in caught.value.message
    assert "nan" in caught.value.message.lower()
    assert progress == [1, 2]  # stopped at once


def test_batched_transfers_equal_one_at_a_time(transfer_extractor):
    """Several pairs optimised as one batch give each pair's own result.

    Adam works element by element, so the batch matches up to float rounding (one grey level,
    losses within 1e-4, in float32 and in bfloat16 alike).  L-BFGS builds its steps from past gradients and amplifies the different
    rounding of batched convolutions (its early steps overshoot): over ten steps the results stay
    within a few grey levels on average and the losses within 5%.  The batched loss and gradient
    themselves are checked tightly in the next test.
    """
    from reportgen.images import load_image
    from reportgen.ml.transfer import TransferSettings, run_transfer, run_transfers

    from conftest import IMAGES, STYLE_LAYERS, rgb_tensor

    cat = rgb_tensor(load_image(IMAGES / "content" / "chelsea.png", 48).pixels)
    cup = rgb_tensor(load_image(IMAGES / "content" / "coffee.png", 48).pixels)
    strokes = rgb_tensor(load_image(IMAGES / "style" / "brushstrokes.jpg", 48).pixels)
    mosaic = rgb_tensor(load_image(IMAGES / "style" / "mosaic.png", 40).pixels)  # another size: fine
    for optimizer, precision, tolerance, mean_levels in (("adam", "float32", 1e-4, 1.0), ("lbfgs", "float32", 5e-2, 4.0), ("adam", "bfloat16", 1e-4, 1.0)):
        first = TransferSettings(10, optimizer, 1.0, 1.0, 1e6, "conv4_2", STYLE_LAYERS, "content", 0, precision)
        second = TransferSettings(10, optimizer, 2.0, 1.0, 1e5, "conv4_2", STYLE_LAYERS, "content", 3, precision)
        alone = [run_transfer(transfer_extractor, cat, strokes, first), run_transfer(transfer_extractor, cup, mosaic, second)]
        together = run_transfers(transfer_extractor, [(cat, strokes, first), (cup, mosaic, second)])
        for a, b in zip(alone, together):
            difference = (a.result_rgb.int() - b.result_rgb.int()).abs().float()
            assert difference.mean().item() <= mean_levels and (optimizer == "lbfgs" or difference.max().item() <= 1), (optimizer, precision)
            assert b.final.total == pytest.approx(a.final.total, rel=tolerance)
            if optimizer == "adam":
                assert [r.total for r in b.history] == pytest.approx([r.total for r in a.history], rel=tolerance)
        assert together[0].result_rgb.shape == cat.to(dtype=together[0].result_rgb.dtype).shape


def test_stacked_objective_gives_each_image_its_own_loss_and_gradient(transfer_extractor):
    """One batched evaluation equals separate evaluations, loss and gradient, to float rounding."""
    from reportgen.images import load_image
    from reportgen.ml.transfer import GatysObjective, TransferSettings

    from conftest import IMAGES, STYLE_LAYERS, rgb_tensor

    prep = transfer_extractor.preprocessing
    contents = [prep.to_network(rgb_tensor(load_image(IMAGES / "content" / name, 48).pixels)) for name in ("chelsea.png", "coffee.png")]
    styles = [prep.to_network(rgb_tensor(load_image(IMAGES / "style" / name, size).pixels)) for name, size in (("brushstrokes.jpg", 48), ("mosaic.png", 40))]
    settings = [
        TransferSettings(1, "lbfgs", 1.0, 1.0, 1e6, "conv4_2", STYLE_LAYERS, "content", 0),
        TransferSettings(1, "lbfgs", 1.0, 2.0, 1e5, "conv4_2", STYLE_LAYERS, "content", 0),
    ]
    objectives = [GatysObjective(transfer_extractor, c, s, st) for c, s, st in zip(contents, styles, settings)]
    torch.manual_seed(0)
    images = [(c + torch.randn_like(c) * 20).requires_grad_(True) for c in contents]
    separate = []
    for objective, image in zip(objectives, images):
        total = objective(image)[0]
        (gradient,) = torch.autograd.grad(total.sum(), image)
        separate.append((total.item(), gradient))
    batch = torch.cat([image.detach() for image in images]).requires_grad_(True)
    totals = GatysObjective.stack(objectives)(batch)[0]
    (gradients,) = torch.autograd.grad(totals.sum(), batch)
    for index, (total, gradient) in enumerate(separate):
        assert totals[index].item() == pytest.approx(total, rel=1e-4)
        assert torch.allclose(gradients[index : index + 1], gradient, rtol=1e-3, atol=1e-3 * gradient.abs().max().item())


def test_transfers_that_differ_in_steps_do_not_share_a_batch(transfer_extractor, tiny_pair):
    from reportgen.ml.transfer import TransferSettings, run_transfers

    from conftest import STYLE_LAYERS

    content, style = tiny_pair
    a = TransferSettings(2, "adam", 1.0, 1.0, 1e6, "conv4_2", STYLE_LAYERS, "content", 0)
    b = TransferSettings(3, "adam", 1.0, 1.0, 1e6, "conv4_2", STYLE_LAYERS, "content", 0)
    with pytest.raises(ValueError):
        run_transfers(transfer_extractor, [(content, style, a), (content, style, b)])
