"""The manifest: YAML in, frozen dataclasses out, every problem reported at once with its place.

Each problem reads ``manifest.yaml:LINE:COL key.path: what is wrong (what is allowed)``.  Paths
in the manifest are relative to the manifest file.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from reportgen.color import PRESERVE_COLOR
from reportgen.errors import ManifestError
from reportgen.layers import ACTIVATIONS, ANALYSED_LAYERS, LAYER_NAMES, network_order
from reportgen.layout import RESERVED_NAMES, RESERVED_VARIANT_IDS
from reportgen.yamlnodes import Located, Mark, YamlSyntaxError, load_located

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
URL_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
BUILTIN_WEIGHTS = ("caffe", "torchvision")


LOSSES = ("relative", "seed")  # reportgen.ml.losses
# What a weight or step size means depends on the loss and the optimiser, so their defaults do.
DEFAULT_STYLE_WEIGHT = {"relative": 3.0, "seed": 1.0e6}
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
# More would make the pair page a film strip and hold every image in memory until the end.
MAX_SNAPSHOTS = 100  # per scale
# ``coarse_to_fine: true``: the first scale's longest side (style-transfer-pytorch's default).
COARSE_TO_FINE_START = 128


@dataclass(frozen=True)
class Params:
    """The resolved settings of one transfer: built-in defaults < ``defaults:`` < the pair.

    ``style_weight`` and ``lr`` left as ``None`` take the default of the loss and the optimiser
    chosen (:data:`DEFAULT_STYLE_WEIGHT`, :data:`DEFAULT_LR`).
    """

    size: int = 512  # longest side, px, of the content image as fed to the network
    steps: int = 300  # optimisation steps per scale (one loss evaluation each)
    optimizer: str = "lbfgs"  # lbfgs | adam
    lr: float | None = None  # L-BFGS: multiplier of its step; Adam: step size in 0..1 units
    content_weight: float = 1.0  # alpha
    style_weight: float | None = None  # beta
    content_layer: str = "conv4_2"
    # The seed's style layers and weights w_l, in network order.
    style_layers: tuple[tuple[str, float], ...] = (
        ("conv1_1", 1.0), ("conv2_1", 0.8), ("conv3_1", 0.5), ("conv4_1", 0.3), ("conv5_1", 0.1),
    )
    init: str = "content"  # content | noise
    seed: int = 0
    weights: str = "caffe"  # caffe | torchvision | absolute path of a state dict
    activation: str = "relu"  # relu: after the ReLU (the paper); conv: before it
    top_pairs: int = 10  # most-correlated filter pairs listed per layer
    reconstructions: bool = False  # also the paper's Figure 1: images rebuilt from single layers
    # Of the optimisation's network passes: auto is bfloat16 where the device has it natively.
    precision: str = "auto"  # auto | float32 | bfloat16
    loss: str = "relative"  # relative | seed (reportgen.ml.losses)
    tv_weight: float = 0.0  # total variation of the 0..1 image
    # The style image's longest side as a multiple of ``size``, or "content": resized to the
    # content image's exact shape (the seed notebook's way).
    style_scale: float | str = 1.0
    preserve_color: str = "none"  # none | luminance | histogram (reportgen.color)
    coarse_to_fine: int = 0  # longest side of the first of scales growing by √2 to size; 0: off
    snapshot_every: int = 0  # keep the image every this many steps, for the pair page; 0: never
    preset: str | None = None  # the preset these values started from (manifest.PRESETS), if any

    def __post_init__(self) -> None:
        if self.style_weight is None:
            object.__setattr__(self, "style_weight", DEFAULT_STYLE_WEIGHT[self.loss])
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.optimizer])

    @property
    def style_layer_weights(self) -> dict[str, float]:
        return dict(self.style_layers)

    @property
    def analysed_layers(self) -> list[str]:
        """The seed's six layers plus any other layer these parameters use, in network order."""
        return network_order([*ANALYSED_LAYERS, self.content_layer, *self.style_layer_weights])

    def style_side(self) -> int:
        """The style image's longest side, px, unless it takes the content's shape."""
        return round(self.size * self.style_scale) if isinstance(self.style_scale, float) else self.size

    def as_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in PARAM_NAMES}
        values["style_layers"] = self.style_layer_weights
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
    style: Path  # absolute
    params: Params  # the pair's own settings; each variant starts from these
    line: int  # where the pair starts in the manifest, for messages
    links: tuple[Link, ...] = ()
    variants: tuple[Variant, ...] = ()  # empty: the pair is one run with ``params``


@dataclass(frozen=True)
class Run:
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

    @property
    def labels(self) -> dict[str, Any]:
        """What a run's record takes from the manifest as it is now, not from when it was
        computed: renaming or retitling a pair reuses its cached result."""
        return {
            "id": self.pair.id,
            "variant": self.variant.id if self.variant else None,
            "changed": list(self.variant.changed) if self.variant else [],
            "title": self.title,
            "notes": self.pair.notes,
        }


@dataclass(frozen=True)
class FigureOptions:
    """What the figures stage draws for every run (``figures:`` at the top of a manifest): for a
    large study, fewer montages and a lower quality keep the site within a host's limit."""

    montages: str = "all"  # all | content | none: the layers whose feature maps get montages
    pair_sheets: bool = True  # the maps of each layer's top filter pairs, side by side
    quality: int | None = None  # WebP quality of montages, matrices and heatmaps; None: each its own

    def montages_at(self, layer: str, content_layer: str) -> bool:
        return self.montages == "all" or (self.montages == "content" and layer == content_layer)


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

    @property
    def root(self) -> Path:
        return self.path.parent

    def weights_as_written(self, weights: str) -> str:
        """``caffe``/``torchvision``, or a weights file relative to the manifest (never absolute)."""
        return weights if weights in BUILTIN_WEIGHTS else self.relative(Path(weights))

    @property
    def runs(self) -> list[Run]:
        """Every transfer of the study, in manifest order, variants after their pair's position."""
        return [Run(pair, variant) for pair in self.pairs for variant in (pair.variants or (None,))]

    def relative(self, path: Path) -> str:
        """``path`` relative to the manifest's folder (for pages and records: never absolute,
        since pages travel to other machines)."""
        return Path(os.path.relpath(path, self.root)).as_posix()


# --- value checkers: each takes a Located value and returns (value, problem or None) -------------

Checker = Callable[[Located, "_Context"], tuple[Any, str | None]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(low: int, high: int) -> Checker:
    def check(item: Located, _: "_Context") -> tuple[Any, str | None]:
        value = item.value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return None, f"must be an integer, not {_describe(item.value)} (allowed: {low}..{high})"
        if not low <= value <= high:
            return None, f"{value} is out of range (allowed: {low}..{high})"
        return value, None

    return check


def _number(low: float, high: float, positive: bool = False) -> Checker:
    allowed = f"> 0 and <= {high:g}" if positive else f"{low:g}..{high:g}"

    def check(item: Located, _: "_Context") -> tuple[Any, str | None]:
        value = item.value
        if isinstance(value, str):
            try:  # YAML 1.1 reads 1e6 (no dot) as a string; accept what plainly is a number
                value = float(value)
            except ValueError:
                pass
        if not _is_number(value):
            return None, f"must be a number, not {_describe(item.value)} (allowed: {allowed})"
        value = float(value)
        if not math.isfinite(value) or value > high or value < low or (positive and value <= 0):
            return None, f"{value:g} is out of range (allowed: {allowed})"
        return value, None

    return check


def _choice(*choices: str) -> Checker:
    def check(item: Located, _: "_Context") -> tuple[Any, str | None]:
        if item.value not in choices:
            return None, f"{_describe(item.value)} is not allowed (allowed: {', '.join(choices)})"
        return item.value, None

    return check


def _boolean(item: Located, _: "_Context") -> tuple[Any, str | None]:
    if not isinstance(item.value, bool):
        return None, f"must be true or false, not {_describe(item.value)}"
    return item.value, None


def _layer(item: Located, _: "_Context") -> tuple[Any, str | None]:
    if item.value not in LAYER_NAMES:
        return None, f"unknown layer {_describe(item.value)} (allowed: conv1_1..conv5_4, e.g. conv4_2)"
    return item.value, None


def _style_layers(item: Located, context: "_Context") -> tuple[Any, str | None]:
    if not isinstance(item.value, dict) or not item.value:
        return None, "must be a mapping of layer name to weight, e.g. {conv1_1: 1.0, conv2_1: 0.8}"
    weights = {}
    for name, weight_item in item.value.items():
        mark = item.key_marks[name]
        if name not in LAYER_NAMES:
            context.problem(mark, f"{context.path}.{name}", f"unknown layer {name!r} (allowed: conv1_1..conv5_4)")
            continue
        weight, problem = _number(0, 1e12)(weight_item, context)
        if problem:
            context.problem(weight_item.mark, f"{context.path}.{name}", problem)
            continue
        weights[name] = weight
    if len(weights) != len(item.value):
        return None, None  # already reported per layer
    if not any(weights.values()):
        return None, "at least one style layer needs a weight above 0"
    return tuple((name, weights[name]) for name in network_order(weights)), None


def _weights(item: Located, context: "_Context") -> tuple[Any, str | None]:
    value = item.value
    if not isinstance(value, str) or not value:
        return None, f"must be 'caffe', 'torchvision' or a path to a state dict, not {_describe(value)}"
    if value in BUILTIN_WEIGHTS:
        return value, None
    path, problem = context.file(value)
    return (str(path) if path else None), problem


def _text(item: Located, _: "_Context") -> tuple[Any, str | None]:
    if not isinstance(item.value, (str, int, float)) or isinstance(item.value, bool):
        return None, f"must be text, not {_describe(item.value)}"
    return str(item.value), None


def _image_path(item: Located, context: "_Context") -> tuple[Any, str | None]:
    if not isinstance(item.value, str) or not item.value.strip():
        return None, f"must be the path of an image file, not {_describe(item.value)}"
    path, problem = context.file(item.value)
    if problem is None:
        from reportgen.images import probe_image

        problem = probe_image(path)
    return path, problem


def _links(item: Located, context: "_Context") -> tuple[Any, str | None]:
    """``{label: url}``; each URL must be http(s) or relative (no javascript:, data:, file:)."""
    if not isinstance(item.value, dict):
        return None, "must be a mapping of label to URL, e.g. {source: https://example.org/painting}"
    links = []
    for label, url_item in item.value.items():
        url = url_item.value
        scheme = URL_PATTERN.match(url) if isinstance(url, str) else None
        # Browsers read a backslash as a slash, so "\\evil.example" is "//evil.example".
        allowed = isinstance(url, str) and url.strip() == url and url and "\\" not in url and (
            (scheme is None and ":" not in url.split("/")[0] and not url.startswith("//"))
            or url.lower().startswith(("http://", "https://"))
        )
        if not allowed:
            context.problem(url_item.mark, f"{context.path}.{label}", f"{_describe(url)} is not allowed (allowed: http://, https:// or a relative URL)")
            continue
        links.append(Link(str(label), url))
    if len(links) != len(item.value):
        return None, None
    return tuple(links), None


def _style_scale(item: Located, context: "_Context") -> tuple[Any, str | None]:
    if item.value == "content":
        return "content", None
    if isinstance(item.value, str) or not _is_number(item.value):
        return None, f"must be a number or 'content', not {_describe(item.value)} (allowed: 0.05..8, or content)"
    return _number(0.05, 8)(item, context)


def _coarse_to_fine(item: Located, context: "_Context") -> tuple[Any, str | None]:
    """``false`` or 0: off; ``true``: from 128 px; a number: the first scale's longest side."""
    if item.value is False:
        return 0, None
    if item.value is True:
        return COARSE_TO_FINE_START, None
    if item.value == 0 and not isinstance(item.value, bool):
        return 0, None
    value, problem = _integer(32, 4096)(item, context)
    if problem:
        return None, f"{problem.split(' (')[0]} (allowed: false, true (= {COARSE_TO_FINE_START}), or the first scale's longest side in px, 32..4096)"
    return value, None


PARAM_CHECKS: dict[str, Checker] = {
    "size": _integer(16, 4096),
    "steps": _integer(1, 100_000),
    "optimizer": _choice("lbfgs", "adam"),
    "lr": _number(0, 1e4, positive=True),
    "content_weight": _number(0, 1e15),
    "style_weight": _number(0, 1e15),
    "content_layer": _layer,
    "style_layers": _style_layers,
    "init": _choice("content", "noise"),
    "seed": _integer(0, 2**32 - 1),
    "weights": _weights,
    "activation": _choice(*ACTIVATIONS),
    "top_pairs": _integer(1, 1000),
    "reconstructions": _boolean,
    "precision": _choice("auto", "float32", "bfloat16"),
    "loss": _choice(*LOSSES),
    "tv_weight": _number(0, 1e9),
    "style_scale": _style_scale,
    "preserve_color": _choice(*PRESERVE_COLOR),
    "coarse_to_fine": _coarse_to_fine,
    "snapshot_every": _integer(0, 100_000),
    "preset": _choice(*PRESETS),
}


# A step size is meant for one optimiser and a style weight for one loss: a level that changes
# the optimiser (or the loss) without writing the step size (or the weight) gets the default of
# its choice, not a value meant for the other.
_TIED = {"optimizer": "lr", "loss": "style_weight"}


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``overrides`` (one level over another), minding :data:`_TIED`."""
    merged = {**base, **overrides}
    for choice, tied in _TIED.items():
        if choice in overrides and tied not in overrides and overrides[choice] != base.get(choice):
            merged.pop(tied, None)
    return merged


def _with_preset(values: dict[str, Any]) -> dict[str, Any]:
    """Checked values with a ``preset`` expanded: its settings, then the keys written beside it."""
    if "preset" not in values:
        return values
    return _merge(PRESETS[values["preset"]], values)


def _sweep_id(values: dict[str, Any]) -> str:
    """``{style_weight: 1000.0}`` -> ``style_weight-1e3``: a readable, URL-safe variant id."""

    def short(value: Any) -> str:
        if not isinstance(value, float):
            return str(value)
        plain = f"{value:g}"
        mantissa, exponent = f"{value:e}".split("e")
        scientific = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return min(plain, scientific, key=len).replace("+", "").replace(".", "p")

    return "-".join(f"{name}-{short(value)}" for name, value in values.items())


def _variants(item: Located, context: "_Context") -> tuple[Any, str | None]:
    """``variants:`` -> [(id, overrides, mark)], each override checked like a parameter."""
    if not isinstance(item.value, list) or not item.value:
        return None, "must be a non-empty list of {id: ..., parameter: value, ...}"
    base_path = context.path
    variants = []
    for index, variant_item in enumerate(item.value):
        path = f"{base_path}[{index}]"
        if not isinstance(variant_item.value, dict):
            context.problem(variant_item.mark, path, "must be a mapping with an id and the parameters to change")
            continue
        values = _check_mapping(variant_item, {"id": _text, **PARAM_CHECKS}, path, context)
        if "id" not in variant_item.value:
            context.problem(variant_item.mark, f"{path}.id", "missing (required)")
        elif "id" in values:
            variants.append((values.pop("id"), values, variant_item.value["id"].mark))
    return variants, None


def _sweep(item: Located, context: "_Context") -> tuple[Any, str | None]:
    """``sweep: {parameter: [v1, v2, ...]}`` -> [(id, overrides, mark)], the Cartesian product."""
    if not isinstance(item.value, dict) or not item.value:
        return None, "must be a mapping of parameter to a list of values, e.g. {style_weight: [1.0e3, 1.0e4]}"
    axes: dict[str, list[Any]] = {}
    base_path = context.path
    for name, values_item in item.value.items():
        path = f"{base_path}.{name}"
        if name not in PARAM_CHECKS or name == "style_layers":
            context.problem(item.key_marks[name], path, f"cannot sweep over {name!r} (allowed: {', '.join(k for k in PARAM_CHECKS if k != 'style_layers')})")
            continue
        if not isinstance(values_item.value, list) or not values_item.value:
            context.problem(values_item.mark, path, "must be a non-empty list of values")
            continue
        checked = []
        for position, value_item in enumerate(values_item.value):
            context.path = f"{path}[{position}]"
            value, problem = PARAM_CHECKS[name](value_item, context)
            if problem:
                context.problem(value_item.mark, f"{path}[{position}]", problem)
            else:
                checked.append(value)
        axes[name] = checked
    if len(axes) != len(item.value) or any(len(v) != len(item.value[k].value) for k, v in axes.items()):
        return None, None
    combinations = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    return [(_sweep_id(values), values, item.mark) for values in combinations], None


PAIR_CHECKS: dict[str, Checker] = {
    "id": _text, "title": _text, "notes": _text, "content": _image_path, "style": _image_path, "links": _links,
    "variants": _variants, "sweep": _sweep,
}
TOP_KEYS = ("title", "description", "links", "data", "figures", "defaults", "pairs")


def _folder(item: Located, context: "_Context") -> tuple[Any, str | None]:
    """A folder to write into, relative to the manifest (it need not exist yet)."""
    if not isinstance(item.value, str) or not item.value.strip() or URL_PATTERN.match(item.value):
        return None, f"must be the path of a folder, relative to the manifest, not {_describe(item.value)}"
    path = (context.root / os.path.expanduser(item.value)).resolve()
    if path.exists() and not path.is_dir():
        return None, f"{path} exists and is not a folder"
    return path, None


def _base_url(item: Located, _: "_Context") -> tuple[Any, str | None]:
    """Where a folder will be published: http(s), or a path relative to the site's root."""
    value = item.value
    if not isinstance(value, str) or not value.strip() or "\\" in value or value.strip() != value:
        return None, f"must be a URL, not {_describe(value)}"
    scheme = URL_PATTERN.match(value)
    if (scheme and not value.lower().startswith(("http://", "https://"))) or (not scheme and ":" in value.split("/")[0]):
        return None, f"{_describe(value)} is not allowed (allowed: http://, https:// or a path relative to the site)"
    return value.rstrip("/") + "/", None


DATA_CHECKS: dict[str, Checker] = {"grams": _boolean, "archive": _boolean, "folder": _folder, "url": _base_url}
FIGURES_CHECKS: dict[str, Checker] = {"montages": _choice("all", "content", "none"), "pair_sheets": _boolean, "quality": _integer(10, 100)}


def _describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value) if len(value) < 60 else repr(value[:57] + "...")
    return repr(value)


class _Context:
    """Collects problems; knows the manifest's file name and folder."""

    def __init__(self, path: Path):
        self.path_of_file = path
        self.root = path.parent
        self.problems: list[tuple[int, int, str]] = []
        self.path = ""  # the key path being checked, for nested messages

    def problem(self, mark: Mark | None, key_path: str, message: str) -> None:
        line, column = (mark.line, mark.column) if mark else (0, 0)
        where = f"{self.path_of_file.name}:{line}:{column}" if mark else self.path_of_file.name
        self.problems.append((line, column, f"{where} {key_path}: {message}" if key_path else f"{where}: {message}"))

    def file(self, written: str) -> tuple[Path | None, str | None]:
        """Resolve a path written in the manifest; report URLs, missing and unreadable files."""
        if URL_PATTERN.match(written):
            return None, f"{written!r} is a URL; download the file and give its path relative to the manifest"
        path = (self.root / os.path.expanduser(written)).resolve()
        if not path.exists():
            return None, f"file not found: {path}"
        if not path.is_file():
            return None, f"not a file: {path}"
        if not os.access(path, os.R_OK):
            return None, f"file not readable: {path}"
        return path, None


def _check_mapping(
    item: Located, checks: dict[str, Checker], key_path: str, context: _Context, allowed_extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check every key of a mapping; unknown keys are problems.  Returns the valid values."""
    values = {}
    for key, value_item in item.value.items():
        path = f"{key_path}.{key}" if key_path else key
        if key not in checks:
            if key in allowed_extra:
                continue
            allowed = ", ".join(sorted(checks))
            context.problem(item.key_marks[key], path, f"unknown key (allowed: {allowed})")
            continue
        context.path = path
        value, problem = checks[key](value_item, context)
        if problem:
            context.problem(value_item.mark, path, problem)
        elif value is not None:
            values[key] = value
    return values


def load_manifest(path: Path) -> Manifest:
    """Read and validate ``path``.  Raises :class:`ManifestError` listing every problem."""
    path = Path(path).absolute()
    context = _Context(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError([f"{path}: cannot read ({error})"]) from None
    try:
        root, yaml_problems = load_located(text)
    except YamlSyntaxError as error:
        context.problem(error.mark, "", f"not valid YAML: {error.message}")
        raise ManifestError([p for _, _, p in context.problems]) from None
    for mark, key_path, message in yaml_problems:
        context.problem(mark, key_path, message)

    manifest = _validate(root, path, context)
    if context.problems:
        raise ManifestError([message for _, _, message in sorted(context.problems, key=lambda p: (p[0], p[1]))])
    assert manifest is not None
    return manifest


def _validate(root: Located | None, path: Path, context: _Context) -> Manifest | None:
    if root is None or not isinstance(root.value, dict):
        context.problem(root.mark if root else Mark(1, 1), "", "the manifest must be a mapping with a 'pairs:' list")
        return None
    top = root.value
    for key in top:
        if key not in TOP_KEYS:
            context.problem(root.key_marks[key], key, f"unknown key (allowed: {', '.join(TOP_KEYS)})")
    title = _optional_text(top, "title", context) or "Style transfer study"
    description = _optional_text(top, "description", context) or ""
    links: tuple[Link, ...] = ()
    if "links" in top:
        context.path = "links"
        links, problem = _links(top["links"], context)
        if problem:
            context.problem(top["links"].mark, "links", problem)
        links = links or ()

    data: dict[str, Any] = {}
    if "data" in top:
        item = top["data"]
        if isinstance(item.value, dict):
            data = _check_mapping(item, DATA_CHECKS, "data", context)
            if "url" in item.value and "folder" not in item.value:
                context.problem(item.key_marks["url"], "data.url", "says where data.folder is published; give data.folder too")
        else:
            context.problem(item.mark, "data", "must be a mapping, e.g. {grams: false, archive: false}")

    figures: dict[str, Any] = {}
    if "figures" in top:
        item = top["figures"]
        if isinstance(item.value, dict):
            figures = _check_mapping(item, FIGURES_CHECKS, "figures", context)
        else:
            context.problem(item.mark, "figures", "must be a mapping, e.g. {montages: content, quality: 50}")

    defaults: dict[str, Any] = {}
    if "defaults" in top:
        item = top["defaults"]
        if isinstance(item.value, dict):
            defaults = _with_preset(_check_mapping(item, PARAM_CHECKS, "defaults", context))
        elif item.value is not None:
            context.problem(item.mark, "defaults", "must be a mapping of parameter to value")

    pairs_item = top.get("pairs")
    if pairs_item is None:
        context.problem(root.mark, "pairs", "missing: list the (content, style) pairs to study")
        return None
    if not isinstance(pairs_item.value, list) or not pairs_item.value:
        context.problem(pairs_item.mark, "pairs", "must be a non-empty list of pairs")
        return None

    pairs = []
    seen_ids: dict[str, int] = {}
    for index, pair_item in enumerate(pairs_item.value):
        key_path = f"pairs[{index}]"
        if not isinstance(pair_item.value, dict):
            context.problem(pair_item.mark, key_path, "must be a mapping with id, content and style")
            continue
        own = _check_mapping(pair_item, {**PAIR_CHECKS, **PARAM_CHECKS}, key_path, context)
        missing = [key for key in ("id", "content", "style") if key not in pair_item.value]
        for key in missing:
            context.problem(pair_item.mark, f"{key_path}.{key}", "missing (required)")
        pair_id = own.get("id")
        if pair_id is not None:
            id_mark = pair_item.value["id"].mark
            if not ID_PATTERN.fullmatch(pair_id):
                context.problem(
                    id_mark, f"{key_path}.id",
                    f"{pair_id!r} is not a valid id (allowed: lowercase letters, digits, '-' and '_', "
                    "starting with a letter or digit, at most 64 characters; it becomes a URL)",
                )
                pair_id = None
            elif pair_id in seen_ids:
                context.problem(id_mark, f"{key_path}.id", f"duplicate id {pair_id!r} (first used at line {seen_ids[pair_id]})")
                pair_id = None
            else:
                seen_ids[pair_id] = id_mark.line
        if pair_id is None or "content" not in own or "style" not in own:
            continue
        settings = _merge(defaults, _with_preset({k: v for k, v in own.items() if k in PARAM_CHECKS}))
        params = Params(**settings)
        variants = _resolve_variants(own.get("variants", []) + own.get("sweep", []), settings, key_path, context)
        if not variants and not _usable(params, pair_item.mark, key_path, context):
            continue
        pairs.append(
            PairSpec(
                id=pair_id,
                title=own.get("title", pair_id),
                notes=own.get("notes", ""),
                content=own["content"],
                style=own["style"],
                params=params,
                line=pair_item.mark.line,
                links=own.get("links", ()),
                variants=variants,
            )
        )
    return Manifest(
        path=path, title=title, description=description, pairs=tuple(pairs), links=links,
        publish_grams=data.get("grams", True), publish_archive=data.get("archive", True), figures=FigureOptions(**figures),
        data_folder=data.get("folder"), data_url=data.get("url"),
    )


def _resolve_variants(raw: list[tuple[str, dict, Mark]], base: dict[str, Any], key_path: str, context: _Context) -> tuple[Variant, ...]:
    """Turn checked ``variants:``/``sweep:`` entries into :class:`Variant` objects; ids must be
    valid, unique within the pair and not a reserved folder name."""
    variants = []
    seen: set[str] = set()
    for variant_id, overrides, mark in raw:
        if not ID_PATTERN.fullmatch(variant_id) or variant_id in RESERVED_VARIANT_IDS:
            context.problem(mark, f"{key_path}.variants", f"{variant_id!r} is not a valid variant id (allowed: like a pair id, and not a layer name or one of {', '.join(RESERVED_NAMES)})")
            continue
        if variant_id in seen:
            context.problem(mark, f"{key_path}.variants", f"duplicate variant id {variant_id!r}")
            continue
        seen.add(variant_id)
        params = Params(**_merge(base, _with_preset(overrides)))
        if not _usable(params, mark, f"{key_path}.variants", context, f"variant {variant_id!r}: "):
            continue
        variants.append(Variant(variant_id, params, tuple(overrides)))
    return tuple(variants)


def _usable(params: Params, mark: Mark, key_path: str, context: _Context, prefix: str = "") -> bool:
    """Problems of a run's settings taken together (each value alone was checked already)."""
    problems = []
    if params.content_weight == 0 and params.style_weight == 0:
        problems.append("content_weight and style_weight are both 0: nothing to optimise")
    if params.snapshot_every and params.steps / params.snapshot_every > MAX_SNAPSHOTS:
        problems.append(
            f"snapshot_every {params.snapshot_every} keeps {params.steps // params.snapshot_every} images a scale "
            f"(allowed: at most {MAX_SNAPSHOTS}, snapshot_every {math.ceil(params.steps / MAX_SNAPSHOTS)} or more at {params.steps} steps)"
        )
    if not 16 <= params.style_side() <= 4096:
        problems.append(f"style_scale {params.style_scale:g} at size {params.size} gives a {params.style_side()} px style image (allowed: 16..4096)")
    for problem in problems:
        context.problem(mark, key_path, prefix + problem)
    return not problems


def _optional_text(top: dict[str, Located], key: str, context: _Context) -> str | None:
    item = top.get(key)
    if item is None or item.value is None:
        return None
    value, problem = _text(item, context)
    if problem:
        context.problem(item.mark, key, problem)
    return value
