"""Gatys et al.'s losses and the optimisation loop, on the real VGG19 at 32-64 px."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from studies import IMAGES, STYLE_LAYERS, rgb_tensor, transfer_settings

from reportgen.errors import TransferError
from reportgen.images import load_image
from reportgen.ml import losses
from reportgen.ml.losses import GatysObjective, fit_to, gram, normalised_gram, total_variation
from reportgen.ml.transfer import (
    initial_images,
    run_transfer,
    run_transfers,
    scale_sizes,
)

settings = transfer_settings


def image(name: str, size: int) -> torch.Tensor:
    folder = "content" if name in ("chelsea.png", "coffee.png") else "style"
    return rgb_tensor(load_image(IMAGES / folder / name, size).pixels)


def features(extractor, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return extractor(extractor.preprocessing.to_network(rgb))


# --- the losses: known answers -------------------------------------------------------------------


def test_objective_is_zero_at_the_target_and_positive_elsewhere(transfer_extractor, tiny_pair):
    content, style = tiny_pair
    same = GatysObjective(transfer_extractor, content / 255, [content / 255], settings())
    terms = same(content / 255, exact=True)
    assert terms.total.item() == 0.0 and terms.content.item() == 0.0
    assert all(term.item() == 0.0 for term in terms.style.values())
    assert set(terms.style) == set(STYLE_LAYERS)

    other = GatysObjective(transfer_extractor, content / 255, [style / 255], settings())
    terms = other(content / 255, exact=True)
    assert terms.content.item() == 0.0  # still the content image
    assert all(term.item() > 0 for term in terms.style.values())
    assert terms.total.item() == pytest.approx(
        sum(t.item() for t in terms.style.values()), rel=1e-6
    )


def test_relative_loss_known_answer(transfer_extractor, tiny_pair):
    """style per layer β·w_l·(‖Ĝ − A‖ / ‖Ĝ_content − A‖)²; content α·(‖F − P‖ / ‖F_style − P‖)²,
    the style image fitted to the content's shape; Ĝ = F·Fᵀ/(C·H·W)."""
    content, style = tiny_pair
    objective = GatysObjective(
        transfer_extractor, content / 255, [style / 255], settings(content_weight=2.0)
    )
    # At the content image every style term is its weight: "as far as the content image is".
    at_content = objective(content / 255, exact=True)
    for layer, weight in STYLE_LAYERS.items():
        assert at_content.style[layer].item() == pytest.approx(10.0 * weight, rel=1e-5), layer
    noise = initial_images(content / 255, [settings(init="noise", seed=3)])
    terms = objective(noise, exact=True)
    fitted = fit_to(style, content.shape[-2:])
    f, p, s, q = (features(transfer_extractor, x) for x in (noise * 255, content, style, fitted))
    expected_content = (
        2.0
        * (f["conv4_2"] - p["conv4_2"]).square().sum()
        / (q["conv4_2"] - p["conv4_2"]).square().sum()
    )
    assert terms.content.item() == pytest.approx(expected_content.item(), rel=1e-4)
    for layer, weight in STYLE_LAYERS.items():
        a = normalised_gram(s[layer])
        distance = (normalised_gram(p[layer]) - a).square().sum()
        expected = 10.0 * weight * (normalised_gram(f[layer]) - a).square().sum() / distance
        assert terms.style[layer].item() == pytest.approx(expected.item(), rel=1e-4), layer
    # At the style image (fitted) the content term is α: "as far as the style image is".
    assert objective(fitted / 255, exact=True).content.item() == pytest.approx(2.0, rel=1e-4)


def test_seed_loss_known_answer(transfer_extractor, tiny_pair):
    """The notebook's: α·mean((F − P)²) + β·Σ w_l·mean((G − A)²)/(C·H·W), raw Grams, activations
    in ImageNet-standard units."""
    content, style = tiny_pair
    style = fit_to(style, content.shape[-2:])  # the seed fits the style to the content's shape
    noise = initial_images(content / 255, [settings(init="noise", seed=3)])
    terms = GatysObjective(
        transfer_extractor, content / 255, [style / 255], settings(loss="seed", style_weight=1e6)
    )(noise, exact=True)
    unit = transfer_extractor.preprocessing.standard_unit
    f, p, s = (
        {k: v / unit for k, v in features(transfer_extractor, x).items()}
        for x in (noise * 255, content, style)
    )
    assert terms.content.item() == pytest.approx(
        (f["conv4_2"] - p["conv4_2"]).square().mean().item(), rel=1e-4
    )
    for layer, weight in STYLE_LAYERS.items():
        _, channels, height, width = f[layer].shape
        expected = (
            1e6
            * weight
            * (gram(f[layer]) - gram(s[layer])).square().mean()
            / (channels * height * width)
        )
        assert terms.style[layer].item() == pytest.approx(expected.item(), rel=1e-3), layer


def test_relative_loss_does_not_depend_on_the_weights_scale(caffe_weights, tiny_pair):
    """Each term is divided by its target's own magnitude: scaling every activation (as other
    weights or another input range would) changes nothing.  Absolute Gram differences would
    change by the fourth power of the scale."""
    from reportgen.ml.vgg import FeatureExtractor
    from reportgen.ml.weights import LoadedWeights

    content, style = tiny_pair
    # The first kernel and every bias x7: every activation of the network is exactly 7 times larger.
    state = {
        key: value * 7.0 if key == "0.weight" or key.endswith(".bias") else value
        for key, value in caffe_weights.state_dict.items()
    }
    louder = FeatureExtractor(
        LoadedWeights("x7", state, caffe_weights.preprocessing, "", ""),
        ["conv4_2", *STYLE_LAYERS],
        "relu",
    )
    plain = FeatureExtractor(caffe_weights, ["conv4_2", *STYLE_LAYERS], "relu")
    noise = initial_images(content / 255, [settings(init="noise", seed=1)])
    a = GatysObjective(plain, content / 255, [style / 255], settings())(noise, exact=True)
    b = GatysObjective(louder, content / 255, [style / 255], settings())(noise, exact=True)
    assert b.total.item() == pytest.approx(a.total.item(), rel=1e-4)
    seed_a = GatysObjective(plain, content / 255, [style / 255], settings(loss="seed"))(
        noise, exact=True
    )
    seed_b = GatysObjective(louder, content / 255, [style / 255], settings(loss="seed"))(
        noise, exact=True
    )
    assert seed_b.style["conv1_1"].item() == pytest.approx(
        7.0**4 * seed_a.style["conv1_1"].item(), rel=1e-3
    )


def test_weights_scale_their_own_terms(transfer_extractor, tiny_pair):
    content, style = tiny_pair
    noise = initial_images(content / 255, [settings(init="noise", seed=1)])
    base = GatysObjective(transfer_extractor, content / 255, [style / 255], settings())(noise)
    more_style = GatysObjective(
        transfer_extractor, content / 255, [style / 255], settings(style_weight=20.0)
    )(noise)
    assert more_style.content.item() == pytest.approx(base.content.item(), rel=1e-6)
    for layer in STYLE_LAYERS:
        assert more_style.style[layer].item() == pytest.approx(
            2 * base.style[layer].item(), rel=1e-5
        )
    one_layer = GatysObjective(
        transfer_extractor, content / 255, [style / 255], settings(style_layers={"conv2_1": 0.8})
    )(noise)
    assert set(one_layer.style) == {"conv2_1"}
    assert one_layer.style["conv2_1"].item() == pytest.approx(
        base.style["conv2_1"].item(), rel=1e-5
    )


def test_total_variation_known_answer_and_weight(transfer_extractor, tiny_pair):
    corner = torch.zeros(1, 3, 2, 2)
    corner[0, 0] = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    corner[0, 1, 1, 1] = 0.5
    # across: channel 0 rows (1, 0), channel 1 rows (0, 0.5²): (1 + 0.25) / 2; down: the same by
    # columns.
    assert total_variation(corner).item() == pytest.approx(1.25)
    content, style = tiny_pair
    noise = initial_images(content / 255, [settings(init="noise", seed=1)])
    with_tv = GatysObjective(
        transfer_extractor, content / 255, [style / 255], settings(tv_weight=3.0)
    )(noise)
    without = GatysObjective(transfer_extractor, content / 255, [style / 255], settings())(noise)
    assert without.tv.item() == 0.0
    assert with_tv.tv.item() == pytest.approx(3.0 * total_variation(noise).item(), rel=1e-5)
    assert with_tv.total.item() == pytest.approx(without.total.item() + with_tv.tv.item(), rel=1e-5)


# --- the optimisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimisation_lowers_the_total_loss(transfer_extractor, tiny_pair, optimizer):
    content, style = tiny_pair
    calls = []
    out = run_transfer(
        transfer_extractor,
        content,
        style,
        settings(steps=10, optimizer=optimizer, lr=1.0 if optimizer == "lbfgs" else 0.02),
        progress=lambda d, t, r: calls.append((d, t)),
    )
    assert len(out.history) == 10
    assert calls == [(step, 10) for step in range(1, 11)]
    start = out.history[0]
    assert start.content == 0.0  # starts from the content image
    assert start.total > 0 and all(math.isfinite(r.total) for r in out.history)
    assert out.final.total < 0.6 * start.total, (optimizer, start.total, out.final.total)
    assert out.result_rgb.dtype == torch.uint8 and out.result_rgb.shape == content.shape
    assert not torch.equal(out.result_rgb.float(), content), "the picture did not change"


def test_the_saved_picture_keeps_what_the_optimiser_found(transfer_extractor):
    """The image is kept in 0..255 during the optimisation, so saving it as 8-bit loses nothing:
    its loss is the loss the optimisation reached.  (Unconstrained, values wander out of range
    and clipping them at save time cost 70% of the loss at 256 px.)"""
    content, style = image("chelsea.png", 48), image("brushstrokes.jpg", 48)
    out = run_transfer(transfer_extractor, content, style, settings(steps=40))
    assert out.final.total < 1.05 * min(r.total for r in out.history[-5:])
    assert out.final.total < 0.3 * out.history[0].total


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_final_loss_is_that_of_the_saved_8bit_picture(transfer_extractor, tiny_pair, precision):
    """Measured in float32 whatever the optimisation's precision, so precisions compare."""
    content, style = tiny_pair
    out = run_transfer(
        transfer_extractor,
        content,
        style,
        settings(steps=4, optimizer="adam", lr=0.05, precision=precision),
    )
    objective = GatysObjective(transfer_extractor, content / 255, [style / 255], settings())
    with torch.no_grad():
        terms = objective(out.result_rgb.float() / 255, exact=True)
    assert out.final.total == pytest.approx(terms.total.item(), rel=1e-5)
    assert out.final.content == pytest.approx(terms.content.item(), rel=1e-5)


@pytest.mark.parametrize(
    "options",
    [dict(optimizer="lbfgs", init="content"), dict(optimizer="adam", init="noise", lr=0.03)],
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
    image: the targets are float32) but not where it ends: final losses within 10%."""
    content, style = image("chelsea.png", 48), image("brushstrokes.jpg", 48)
    options = dict(steps=20, optimizer=optimizer, lr=0.03 if optimizer == "adam" else 1.0)
    exact = run_transfer(transfer_extractor, content, style, settings(**options))
    low = run_transfer(
        transfer_extractor, content, style, settings(**options, precision="bfloat16")
    )
    assert exact.history[0].content == 0.0
    assert low.history[0].content > 0.0, "the network did not run in bfloat16"
    assert low.final.total < 0.5 * low.history[0].total
    assert low.final.total == pytest.approx(exact.final.total, rel=0.1)
    assert all(
        isinstance(value, float) and math.isfinite(value)
        for value in low.history[-1].style.values()
    )


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
    x = content / 255
    start = initial_images(x, [settings()])
    assert torch.equal(start, x)
    noise = initial_images(x, [settings(init="noise")])
    assert noise.shape == x.shape and noise.min() >= 0 and noise.max() <= 1
    assert (noise * 255 - content).abs().mean() > 40  # nothing like the photograph
    assert torch.equal(noise, initial_images(x, [settings(init="noise")]))  # seeded
    assert not torch.equal(noise, initial_images(x, [settings(init="noise", seed=1)]))

    from_content = run_transfer(transfer_extractor, content, style, settings(steps=3))
    from_noise = run_transfer(transfer_extractor, content, style, settings(steps=3, init="noise"))
    assert from_noise.history[0].content > 0 and from_content.history[0].content == 0
    assert (from_noise.result_rgb.float() - from_content.result_rgb.float()).abs().mean() > 20


def test_exploding_adam_raises_transfer_error_naming_the_step(transfer_extractor, tiny_pair):
    """Only the seed's unconstrained image can run away (a bounded one stays in 0..255)."""
    content, style = tiny_pair
    with pytest.raises(TransferError) as caught:
        run_transfer(
            transfer_extractor,
            content,
            style,
            settings(steps=5, optimizer="adam", lr=1e30, loss="seed", style_weight=1e6),
        )
    message = caught.value.message
    assert "step 2 of 5" in message
    assert "adam" in message


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_nan_loss_raises_transfer_error_naming_the_step(
    transfer_extractor, tiny_pair, monkeypatch, optimizer
):
    content, style = tiny_pair
    real = losses.total_variation
    calls = {"n": 0}

    def poisoned(images):
        calls["n"] += 1  # one objective evaluation per step
        value = real(images)
        return value * float("nan") if calls["n"] >= 3 else value

    monkeypatch.setattr(losses, "total_variation", poisoned)
    progress = []
    with pytest.raises(TransferError) as caught:
        run_transfer(
            transfer_extractor,
            content,
            style,
            settings(steps=6, optimizer=optimizer, tv_weight=1.0),
            progress=lambda d, t, r: progress.append(d),
        )
    assert "step 3 of 6" in caught.value.message
    assert "nan" in caught.value.message.lower()
    assert progress == [1, 2]  # stopped at once


# --- coarse to fine and snapshots ----------------------------------------------------------------


def test_scales_grow_by_root_two_to_the_image_size():
    sides = [max(size) for size in scale_sizes(512, 341, 128)]
    assert sides == [128, 181, 256, 362, 512]
    assert scale_sizes(512, 341, 128)[-1] == (512, 341)
    assert scale_sizes(512, 341, 0) == [(512, 341)]  # off
    assert scale_sizes(100, 60, 128) == [(100, 60)]  # already smaller than the first scale
    # A scale at which the content's shorter side would fall under 16 px is left out.
    assert [min(size) for size in scale_sizes(256, 48, 64)] == [17, 24, 34, 48]


def test_a_small_style_image_keeps_16_px_at_the_first_scale(transfer_extractor):
    """The style image's own scale never decides the scales (so a batch shares them); at a
    coarse scale it is held at 16 px on its shorter side instead."""
    content, style = image("chelsea.png", 64), image("brushstrokes.jpg", 20)
    out = run_transfer(transfer_extractor, content, style, settings(steps=2, coarse_to_fine=32))
    assert [max(s.width, s.height) for s in out.scales] == [32, 45, 64]
    assert all(math.isfinite(r.total) for r in out.history)


def test_coarse_to_fine_runs_each_scale_from_the_last_result(transfer_extractor):
    content, style = image("chelsea.png", 64), image("brushstrokes.jpg", 64)
    progress = []
    out = run_transfer(
        transfer_extractor,
        content,
        style,
        settings(steps=8, coarse_to_fine=32),
        progress=lambda d, t, r: progress.append((d, t)),
    )
    assert [(s.width, s.height) for s in out.scales] == [(32, 22), (45, 30), (64, 43)]
    assert [s.first_step for s in out.scales] == [1, 9, 17]
    assert len(out.history) == 24 and progress[-1] == (24, 24)
    assert out.result_rgb.shape == content.shape
    # Each later scale starts near where the previous one ended, not from the photograph again.
    for scale in out.scales[1:]:
        start = out.history[scale.first_step - 1]
        assert start.content > 0 and start.total < 0.8 * out.history[0].total
    single = run_transfer(transfer_extractor, content, style, settings(steps=8))
    assert out.final.total < single.final.total  # more, and cheaper, steps for the same image


def test_snapshots_show_the_path_and_end_at_the_result(transfer_extractor, tiny_pair):
    content, style = tiny_pair
    out = run_transfer(transfer_extractor, content, style, settings(steps=8, snapshot_every=3))
    assert [s.step for s in out.snapshots] == [0, 3, 6, 8]
    assert (out.snapshots[0].pixels == content[0].permute(1, 2, 0).numpy()).all()  # the start
    assert (out.snapshots[-1].pixels == out.result_rgb[0].permute(1, 2, 0).numpy()).all()
    moved = [
        np.abs(a.pixels.astype(int) - b.pixels).mean() for a, b in itertools.pairwise(out.snapshots)
    ]
    assert moved[0] > 0.5 and moved[1] > 0.5, moved  # the image changes along the way
    assert run_transfer(transfer_extractor, content, style, settings(steps=2)).snapshots == []


def test_tv_weight_smooths_the_result(transfer_extractor):
    content, style = image("chelsea.png", 48), image("brushstrokes.jpg", 48)
    rough = run_transfer(transfer_extractor, content, style, settings(steps=20))
    smooth = run_transfer(transfer_extractor, content, style, settings(steps=20, tv_weight=30.0))
    assert (
        total_variation(smooth.result_rgb.float() / 255).item()
        < 0.7 * total_variation(rough.result_rgb.float() / 255).item()
    )


# --- batches -------------------------------------------------------------------------------------


def test_batched_transfers_equal_one_at_a_time(transfer_extractor):
    """Several pairs optimised as one batch give each pair's own result.

    Each image keeps its own optimiser state, so the batch matches one-at-a-time runs up to the
    rounding of batched convolutions: Adam within two grey levels and 1e-4 in loss at every step
    (1e-3 in bfloat16), and 1e-3 in the loss of the saved 8-bit picture, where a pixel one grey
    level apart counts in full (seen on an AMX Xeon: 1.3e-4); L-BFGS, whose steps are built from
    past gradients and amplify rounding, within a few grey levels on average and 5% in loss.  The
    batched loss and gradient are checked tightly in the next test.
    """
    cat, cup = image("chelsea.png", 48), image("coffee.png", 48)
    strokes, mosaic = image("brushstrokes.jpg", 48), image("mosaic.png", 40)  # another size: fine
    cases = (
        ("adam", "float32", 1e-4, 1e-3, 1.0),
        ("lbfgs", "float32", 5e-2, 5e-2, 4.0),
        ("adam", "bfloat16", 1e-3, 1e-3, 1.0),
    )
    for optimizer, precision, tolerance, saved_tolerance, mean_levels in cases:
        lr = (0.02, 0.04) if optimizer == "adam" else (1.0, 0.8)
        first = settings(steps=10, optimizer=optimizer, lr=lr[0], precision=precision)
        second = settings(
            steps=10,
            optimizer=optimizer,
            lr=lr[1],
            style_weight=3.0,
            tv_weight=0.5,
            seed=3,
            precision=precision,
        )
        alone = [
            run_transfer(transfer_extractor, cat, strokes, first),
            run_transfer(transfer_extractor, cup, mosaic, second),
        ]
        together = run_transfers(
            transfer_extractor, [(cat, [strokes], first), (cup, [mosaic], second)]
        )
        for a, b in zip(alone, together, strict=True):
            difference = (a.result_rgb.int() - b.result_rgb.int()).abs().float()
            assert difference.mean().item() <= mean_levels and (
                optimizer == "lbfgs" or difference.max().item() <= 2
            ), (optimizer, precision)
            assert b.final.total == pytest.approx(a.final.total, rel=saved_tolerance)
            if optimizer == "adam":
                assert [r.total for r in b.history] == pytest.approx(
                    [r.total for r in a.history], rel=tolerance
                )


def test_stacked_objective_gives_each_image_its_own_loss_and_gradient(transfer_extractor):
    """One batched evaluation equals separate evaluations, loss and gradient, to float rounding."""
    contents = [image(name, 48) / 255 for name in ("chelsea.png", "coffee.png")]
    styles = [image("brushstrokes.jpg", 48) / 255, image("mosaic.png", 40) / 255]
    each = [settings(), settings(content_weight=2.0, style_weight=3.0, tv_weight=1.0)]
    objectives = [
        GatysObjective(transfer_extractor, c, [s], st)
        for c, s, st in zip(contents, styles, each, strict=True)
    ]
    torch.manual_seed(0)
    images = [(c + torch.randn_like(c) * 0.08).clamp(0, 1).requires_grad_(True) for c in contents]
    separate = []
    for objective, start in zip(objectives, images, strict=True):
        total = objective(start).total
        (gradient,) = torch.autograd.grad(total.sum(), start)
        separate.append((total.item(), gradient))
    batch = torch.cat([start.detach() for start in images]).requires_grad_(True)
    totals = GatysObjective.stack(objectives)(batch).total
    (gradients,) = torch.autograd.grad(totals.sum(), batch)
    for index, (total, gradient) in enumerate(separate):
        assert totals[index].item() == pytest.approx(total, rel=1e-4)
        assert torch.allclose(
            gradients[index : index + 1],
            gradient,
            rtol=1e-3,
            atol=1e-3 * gradient.abs().max().item(),
        )


def test_transfers_that_differ_in_steps_do_not_share_a_batch(transfer_extractor, tiny_pair):
    content, style = tiny_pair
    with pytest.raises(ValueError):
        run_transfers(
            transfer_extractor,
            [(content, [style], settings(steps=2)), (content, [style], settings(steps=3))],
        )
    with pytest.raises(ValueError):
        run_transfers(
            transfer_extractor,
            [(content, [style], settings(coarse_to_fine=32)), (content, [style], settings())],
        )
