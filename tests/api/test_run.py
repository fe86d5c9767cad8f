"""reportgen.Run as a notebook explores it: feature maps that reproduce the stored Gram matrices,
the Gram's cells and top pairs, the losses, and the seed's figures.

One real transfer (32 px, 3 steps, on the CPU) is shared by the whole module.  It keeps the
content's colours (``preserve_color: luminance``), so that the picture the network optimised
differs from the saved result and the tests can tell which of the two a method reads.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from studies import ANALYSED, IMAGES, rgb_tensor

import reportgen
from reportgen.layers import CHANNELS, network_order

CONTENT = IMAGES / "content" / "chelsea.png"
STYLE = IMAGES / "style" / "brick.png"
ROLES = ("content", "style", "result")
STEPS = 3
TOP_PAIRS = 6  # not the default (10): the run's own parameter decides how many pairs it lists


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> reportgen.Run:
    return reportgen.transfer(
        CONTENT,
        STYLE,
        device="cpu",
        progress=False,
        cache_dir=tmp_path_factory.mktemp("run-cache"),
        size=32,
        steps=STEPS,
        preserve_color="luminance",
        top_pairs=TOP_PAIRS,
    )


def network_maps(extractor, image) -> dict[str, np.ndarray]:
    """An image's feature maps computed outside the API: layer -> (C, H, W) float32."""
    import torch

    with torch.no_grad():
        maps = extractor(extractor.preprocessing.to_network(rgb_tensor(np.array(image))))
    return {layer: m[0].float().numpy() for layer, m in maps.items()}


def close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> bool:
    return np.allclose(actual, expected, rtol=rtol, atol=rtol * float(np.abs(expected).max()))


def mapped_axes(figure) -> list:
    """The axes of a figure that show one image (a feature map)."""
    return [axes for axes in figure.axes if len(axes.images) == 1]


# --- feature maps and Gram matrices ---------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_feature_maps_reproduce_the_stored_gram_matrices(run, role):
    """F·Fᵀ of the maps a notebook gets must be the Gram the run's pages and grams.npz show:
    otherwise a user re-deriving a figure gets other numbers than the report."""
    features = run.features(role)
    grams = run.grams(role)
    assert run.layers == list(ANALYSED)
    assert list(features) == list(grams) == run.layers
    for layer in run.layers:
        maps, gram = features[layer], grams[layer]
        channels = CHANNELS[layer]
        assert maps.dtype == np.float32 and maps.ndim == 3 and maps.shape[0] == channels, layer
        assert gram.dtype == np.float32 and gram.shape == (channels, channels), layer
        flat = maps.reshape(channels, -1).astype(np.float64)
        assert close(flat @ flat.T, gram), f"{role} {layer}"


def test_feature_maps_have_the_channels_of_their_layer_and_the_size_of_their_image(run):
    content = run.features("content")
    assert content["conv1_1"].shape == (64, run.content.height, run.content.width)
    assert content["conv4_2"].shape[0] == 512
    style = run.features("style", ["conv1_1"])
    assert style["conv1_1"].shape == (64, run.style.height, run.style.width)


def test_kept_feature_maps_cannot_be_changed_by_accident(run):
    """features() hands out the arrays it keeps for later calls (and the figures): an
    in-place edit would change what they show."""
    maps = run.features("style")["conv1_1"]
    with pytest.raises(ValueError, match="read-only"):
        maps *= 2
    edited = maps.copy()
    edited *= 2
    assert np.array_equal(run.features("style")["conv1_1"] * 2, edited)


def test_features_of_a_layer_the_run_did_not_analyse_are_computed_on_demand(run):
    """features() takes any of VGG19's conv layers, not only those with pages."""
    assert "conv3_2" not in run.layers
    maps = run.features("style", ["conv3_2", "conv1_1"])
    assert list(maps) == network_order(["conv3_2", "conv1_1"])
    assert maps["conv3_2"].shape[0] == CHANNELS["conv3_2"] == 256
    assert maps["conv3_2"].shape[1:] == run.features("style")["conv3_1"].shape[1:]


def test_result_features_are_those_of_the_optimised_picture(run, transfer_extractor):
    """With the content's colours put back, the saved result is not what the network saw: the
    result's maps (and Grams) are the optimised picture's, as the analysis computed them."""
    assert not np.array_equal(np.asarray(run.result), np.asarray(run.optimised))
    ours = run.features("result")
    optimised = network_maps(transfer_extractor, run.optimised)
    saved = network_maps(transfer_extractor, run.result)
    for layer in transfer_extractor.layers:
        assert close(ours[layer], optimised[layer]), layer
    assert not close(ours["conv1_1"], saved["conv1_1"])


def test_unknown_roles_and_layers_are_refused_with_a_message(run):
    with pytest.raises(reportgen.UsageError, match="'painting' is not a role"):
        run.features("painting")
    with pytest.raises(reportgen.UsageError, match="'painting' is not a role"):
        run.grams("painting")
    with pytest.raises(reportgen.UsageError, match="unknown layer 'conv9_1'"):
        run.features("content", ["conv9_1"])


# --- Gram cells and top pairs ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["style", "content"])
def test_gram_cells_list_every_cell_by_value_descending(run, role):
    """The seed's getGramMatrixIndicesSortedDescendingly: all C² cells, both halves and the
    diagonal, largest first."""
    gram = run.grams(role)["conv1_1"]
    cells = run.gram_cells("conv1_1", role)
    assert len(cells) == 64 * 64
    assert set(cells) == {(i, j) for i in range(64) for j in range(64)}
    rows, columns = np.array(cells).T
    assert np.all(np.diff(gram[rows, columns]) <= 0)
    i, j = next((i, j) for i, j in cells if i != j)
    assert (j, i) in cells


@pytest.mark.parametrize("layer", ["conv1_1", "conv4_2"])
def test_top_pairs_are_the_largest_off_diagonal_cells(run, layer):
    gram = run.grams("style")[layer]
    pairs = run.top_pairs(layer)
    assert len(pairs) == run.params.top_pairs == TOP_PAIRS
    assert all(isinstance(cell, reportgen.GramCell) and cell.i < cell.j for cell in pairs)
    assert len({(cell.i, cell.j) for cell in pairs}) == TOP_PAIRS
    values = [cell.value for cell in pairs]
    assert values == sorted(values, reverse=True)
    assert values == pytest.approx([float(gram[cell.i, cell.j]) for cell in pairs], rel=1e-6)
    upper = gram[np.triu_indices_from(gram, k=1)]
    largest = np.sort(upper)[::-1][:TOP_PAIRS]
    assert values == pytest.approx(largest.tolist(), rel=1e-6)


def test_cells_of_a_layer_the_run_did_not_analyse_are_refused(run):
    for call in (run.gram_cells, run.top_pairs):
        with pytest.raises(reportgen.UsageError, match="'conv3_2': not analysed") as info:
            call("conv3_2")
        assert "conv4_2" in str(info.value)  # it lists the layers that are
    with pytest.raises(reportgen.UsageError, match="not a VGG19 layer"):
        run.gram_cells("pool1")
    with pytest.raises(reportgen.UsageError, match="is not a role"):
        run.top_pairs("conv1_1", "painting")


# --- losses and images ----------------------------------------------------------------------------


def test_losses_have_one_entry_per_step_and_a_finite_final_value(run):
    losses = run.losses
    assert len(losses.total) == len(losses.content) == len(losses.tv) == STEPS
    assert set(losses.style) == set(run.params.style_layer_weights)
    assert all(len(terms) == STEPS for terms in losses.style.values())
    assert all(math.isfinite(value) for value in losses.total)
    assert math.isfinite(run.final_loss.total) and run.final_loss.total > 0
    assert losses.total[-1] < losses.total[0]  # three steps of L-BFGS lower the loss


def test_result_has_the_size_of_the_content_image(run):
    assert run.result.size == run.optimised.size == run.content.size
    assert max(run.content.size) == 32 and max(run.style.size) == 32
    assert all(image.mode == "RGB" for image in (run.content, run.style, run.result))


# --- the seed's figures ---------------------------------------------------------------------------


def assert_png(figure) -> None:
    data, size = figure._repr_png_()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert size["width"] > 0 and size["height"] > 0


def test_inputs_figure_shows_content_style_and_result(run):
    figure = run.show_inputs()
    assert [axes.get_title() for axes in mapped_axes(figure)] == ["content", "style", "result"]
    assert_png(figure)


def test_content_representation_shows_the_first_32_maps_of_the_content_layer(run):
    figure = run.show_content_representation()
    shown = mapped_axes(figure)
    assert len(shown) == 32
    assert [axes.get_title() for axes in shown[:2]] == ["filter 0", "filter 1"]
    assert run.params.content_layer in figure.get_suptitle()
    assert_png(figure)


def test_style_representations_show_one_gram_per_style_layer(run):
    figure = run.show_style_representations()
    titles = [axes.get_title() for axes in figure.axes if axes.get_title()]
    assert len(titles) == len(run.params.style_layer_weights) == 5
    layers = list(run.params.style_layer_weights)
    assert titles == [f"Gram matrix of the style image at {layer}" for layer in layers]
    one = run.show_style_representations(["conv1_1"])
    assert [axes.get_title() for axes in one.axes if axes.get_title()] == [
        "Gram matrix of the style image at conv1_1"
    ]
    assert_png(one)


def test_filters_figure_draws_the_maps_asked_for(run):
    eight = run.show_filters("conv1_1", 8)
    assert len(mapped_axes(eight)) == 8
    assert_png(eight)
    chosen = run.show_filters("conv2_1", [3, 5], role="result")
    assert [axes.get_title() for axes in mapped_axes(chosen)] == ["filter 3", "filter 5"]
    assert "conv2_1 of the result image" in chosen.get_suptitle()


def test_top_pairs_figure_draws_both_maps_of_each_pair(run):
    figure = run.show_top_pairs("conv1_1", 2)
    shown = mapped_axes(figure)
    assert len(shown) == 4
    expected = [f"filter {k}" for cell in run.top_pairs("conv1_1")[:2] for k in (cell.i, cell.j)]
    assert [axes.get_title() for axes in shown] == expected
    assert_png(figure)


@pytest.mark.parametrize(
    ("draw", "message"),
    [
        (lambda run: run.show_filters("conv1_1", [64]), r"filters 0\.\.63; no filter 64"),
        (lambda run: run.show_filters("conv1_1", [-1]), "no filter -1"),
        (lambda run: run.show_filters("conv1_1", []), "no filter chosen"),
        (lambda run: run.show_filters("conv1_1", 8, role="painting"), "is not a role"),
        (lambda run: run.show_content_representation(role="painting"), "is not a role"),
        (lambda run: run.show_filters("conv9_9"), "unknown layer 'conv9_9'"),
        (lambda run: run.show_top_pairs("conv3_2"), "'conv3_2': not analysed"),
        (lambda run: run.show_style_representations(["conv3_2"]), "'conv3_2': not analysed"),
    ],
    ids=[
        "filter-past-the-last",
        "negative-filter",
        "no-filter",
        "bad-role",
        "bad-role-content",
        "unknown-layer",
        "unanalysed-top-pairs",
        "unanalysed-grams",
    ],
)
def test_figures_refuse_bad_arguments_with_a_usage_error(run, draw, message):
    with pytest.raises(reportgen.UsageError, match=message):
        draw(run)
