"""The manifest's data model: frozen specs of a study, its pairs and their runs, resolved
parameters and named presets.  Nothing here reads YAML (:mod:`reportgen.manifest.load` does)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from reportgen.color import PreserveColor
from reportgen.layers import ANALYSED_LAYERS, Activation, network_order

BUILTIN_WEIGHTS = ("caffe", "torchvision")

Optimizer = Literal["lbfgs", "adam"]
Loss = Literal["relative", "seed"]  # reportgen.ml.losses
Init = Literal["content", "noise"]
Precision = Literal["auto", "float32", "bfloat16"]
# What a device runs an optimisation in: "auto" resolved (reportgen.ml.runtime).
ResolvedPrecision = Literal["float32", "bfloat16"]
Montages = Literal["all", "content", "none"]
# Which filters get a feature visualisation and a page: none, those in some run's top pairs, or
# every filter of the analysed layers (an atlas).
FilterPages = Literal["none", "top", "all"]
OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)
LOSSES: tuple[Loss, ...] = get_args(Loss)
INITS: tuple[Init, ...] = get_args(Init)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
MONTAGES: tuple[Montages, ...] = get_args(Montages)
FILTER_PAGES: tuple[FilterPages, ...] = get_args(FilterPages)

# What a weight or step size means depends on the loss and the optimiser, so their defaults do.
DEFAULT_STYLE_WEIGHT: dict[Loss, float] = {"relative": 3.0, "seed": 1.0e6}
DEFAULT_LR: dict[Optimizer, float] = {"lbfgs": 1.0, "adam": 0.02}
# Stands for "the default of the loss (or optimiser) chosen" in Params; never a valid value.
OF_THE_CHOICE = math.nan


@dataclass(frozen=True)
class Params:
    """The resolved settings of one transfer: built-in defaults < ``defaults:`` < the pair.

    ``style_weight`` and ``lr`` left out take the default of the loss and the optimiser chosen
    (:data:`DEFAULT_STYLE_WEIGHT`, :data:`DEFAULT_LR`).
    """

    size: int = 512  # longest side, px, of the content image as fed to the network
    steps: int = 300  # optimisation steps per scale (one loss evaluation each)
    optimizer: Optimizer = "lbfgs"
    lr: float = OF_THE_CHOICE  # L-BFGS: multiplier of its step; Adam: step size in 0..1 units
    content_weight: float = 1.0  # alpha
    style_weight: float = OF_THE_CHOICE  # beta
    content_layer: str = "conv4_2"
    # The seed's style layers and weights w_l, in network order.
    style_layers: tuple[tuple[str, float], ...] = (
        ("conv1_1", 1.0),
        ("conv2_1", 0.8),
        ("conv3_1", 0.5),
        ("conv4_1", 0.3),
        ("conv5_1", 0.1),
    )
    init: Init = "content"
    seed: int = 0
    weights: str = "caffe"  # caffe | torchvision | absolute path of a state dict
    activation: Activation = "relu"  # relu: after the ReLU (the paper); conv: before it
    top_pairs: int = 10  # most-correlated filter pairs listed per layer
    reconstructions: bool = False  # also the paper's Figure 1: images rebuilt from single layers
    # Of the optimisation's network passes: auto is bfloat16 where the device has it natively.
    precision: Precision = "auto"
    loss: Loss = "relative"
    tv_weight: float = 0.0  # total variation of the 0..1 image
    # The style image's longest side as a multiple of ``size``, or "content": resized to the
    # content image's exact shape (the seed notebook's way).
    style_scale: float | Literal["content"] = 1.0
    preserve_color: PreserveColor = "none"
    coarse_to_fine: int = 0  # longest side of the first of scales growing by √2 to size; 0: off
    snapshot_every: int = 0  # keep the image every this many steps, for the pair page; 0: never
    # The weight of each of the pair's style images in the target Grams, normalised to sum 1
    # when the pair is read (equal when left out); () for a pair with one style image.
    style_blend: tuple[float, ...] = ()
    preset: str | None = None  # the preset these values started from (PRESETS), if any

    def __post_init__(self) -> None:
        if math.isnan(self.style_weight):
            object.__setattr__(self, "style_weight", DEFAULT_STYLE_WEIGHT[self.loss])
        if math.isnan(self.lr):
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])

    @property
    def style_layer_weights(self) -> dict[str, float]:
        return dict(self.style_layers)

    @property
    def analysed_layers(self) -> list[str]:
        """The seed's six layers plus any other layer these parameters use, in network order."""
        return network_order([*ANALYSED_LAYERS, self.content_layer, *self.style_layer_weights])

    @property
    def blend_weights(self) -> tuple[float, ...]:
        """Each style image's share of the target Grams, summing to 1: (1.0,) for one style."""
        return self.style_blend or (1.0,)

    def style_side(self) -> int:
        """The style image's longest side, px, unless it takes the content's shape."""
        return (
            round(self.size * self.style_scale)
            if isinstance(self.style_scale, float)
            else self.size
        )

    def as_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in PARAM_NAMES}
        values["style_layers"] = self.style_layer_weights
        values["style_blend"] = list(self.style_blend)
        return values


# Named recipes: ``preset: seed`` in ``defaults:``, a pair or a variant sets these values there,
# and keys written beside it override them.
PRESETS: dict[str, dict[str, Any]] = {
    # The seed notebook's recipe: its loss on raw Grams, the style image fitted to the content's
    # shape, Adam at 0.003 on 0..1 images for 5000 steps, its layers and weights, float32.
    "seed": {
        "loss": "seed",
        "optimizer": "adam",
        "lr": 0.003,
        "steps": 5000,
        "content_weight": 1.0,
        "style_weight": 1.0e6,
        "content_layer": "conv4_2",
        "style_layers": Params.style_layers,
        "style_scale": "content",
        "init": "content",
        "activation": "relu",
        "precision": "float32",
        "tv_weight": 0.0,
        "coarse_to_fine": 0,
        "preserve_color": "none",
    },
}


PARAM_NAMES = tuple(Params.__dataclass_fields__)


@dataclass(frozen=True)
class Link:
    """A link given in the manifest: only http, https or a relative URL (checked on load)."""

    label: str
    url: str


@dataclass(frozen=True)
class Variant:
    """One run of a pair with some parameters changed (``variants:`` or ``sweep:``)."""

    id: str
    params: Params
    changed: tuple[str, ...]  # the parameters this variant sets itself, in the order given


@dataclass(frozen=True)
class PairSpec:
    id: str
    title: str
    notes: str
    content: Path  # absolute
    # Absolute; several are blended by ``Params.style_blend`` (their Grams' weighted mean is the
    # target).  The first is the one the analyses' ``style`` role shows.
    styles: tuple[Path, ...]
    params: Params  # the pair's own settings; each variant starts from these
    line: int  # where the pair starts in the manifest, for messages
    links: tuple[Link, ...] = ()
    variants: tuple[Variant, ...] = ()  # empty: the pair is one run with ``params``
    # ``regions:``, absolute: style k applies where mask k is white (guided Grams); empty for a
    # pair whose style (or blend) covers the whole image.
    masks: tuple[Path, ...] = ()


@dataclass(frozen=True)
class RunSpec:
    """One transfer to compute and show: a pair without variants, or one variant of a pair."""

    pair: PairSpec
    variant: Variant | None = None

    @property
    def params(self) -> Params:
        return self.variant.params if self.variant else self.pair.params

    @property
    def name(self) -> str:
        """``pair`` or ``pair/variant``: unique in a manifest, and the run's folder under pairs/."""
        return f"{self.pair.id}/{self.variant.id}" if self.variant else self.pair.id

    @property
    def title(self) -> str:
        return f"{self.pair.title} · {self.variant.id}" if self.variant else self.pair.title


@dataclass(frozen=True)
class FigureOptions:
    """What the figures stage draws for every run (``figures:`` at the top of a manifest): for a
    large study, fewer montages and a lower quality keep the site within a host's limit."""

    montages: Montages = "all"  # the layers whose feature maps get montages
    pair_sheets: bool = True  # the maps of each layer's top filter pairs, side by side
    quality: int | None = (
        None  # WebP quality of montages, matrices and heatmaps; None: each its own
    )

    def montages_at(self, layer: str, content_layer: str) -> bool:
        return self.montages == "all" or (self.montages == "content" and layer == content_layer)


@dataclass(frozen=True)
class VisualisationOptions:
    """``feature_visualisation:`` at the top of a manifest: which filters get an image optimised
    to excite them and a page of their own, and how the images are made.  Study-wide: a
    visualisation is the network's, not a pair's.  ``None`` sizes and steps are the device's
    defaults (small on a CPU, Lucid's on a GPU)."""

    filters: FilterPages = "top"
    size: int | None = None  # side of the image, px
    steps: int | None = None  # Adam steps
    examples: int = 8  # the study's image crops where each filter fires most, on its page


@dataclass(frozen=True)
class Manifest:
    path: Path  # absolute
    title: str
    description: str
    pairs: tuple[PairSpec, ...] = field(default=())
    links: tuple[Link, ...] = ()
    publish_grams: bool = True  # data.grams: write each run's data/grams.npz into the site
    publish_archive: bool = True  # data.archive: write data.zip with every run's data
    # data.folder: write the data files (Grams, records, exact images, archive) there, not into
    # the site; data.url: where that folder is published (default: its path from the site).
    data_folder: Path | None = None
    data_url: str | None = None
    figures: FigureOptions = FigureOptions()
    visualisation: VisualisationOptions = VisualisationOptions()

    @property
    def root(self) -> Path:
        return self.path.parent

    def weights_as_written(self, weights: str) -> str:
        """``caffe``/``torchvision``, or a weights file relative to the manifest (never
        absolute)."""
        return weights if weights in BUILTIN_WEIGHTS else self.relative(Path(weights))

    @property
    def runs(self) -> list[RunSpec]:
        """Every transfer of the study, in manifest order, variants after their pair's position."""
        return [
            RunSpec(pair, variant) for pair in self.pairs for variant in (pair.variants or (None,))
        ]

    def only(self, names: Iterable[str]) -> Manifest:
        """This study cut to the runs ``names`` (``pair`` or ``pair/variant``), in its order."""
        wanted = set(names)
        pairs = []
        for pair in self.pairs:
            if pair.variants:
                kept = tuple(v for v in pair.variants if f"{pair.id}/{v.id}" in wanted)
                if kept:
                    pairs.append(replace(pair, variants=kept))
            elif pair.id in wanted:
                pairs.append(pair)
        return replace(self, pairs=tuple(pairs))

    def relative(self, path: Path) -> str:
        """``path`` relative to the manifest's folder (for pages and records: never absolute,
        since pages travel to other machines)."""
        return Path(os.path.relpath(path, self.root)).as_posix()
