"""The value checks of the manifest's schema: each takes a located YAML value and returns the
value as the model holds it, or a problem (``(None, "what is wrong (what is allowed)")``).

Problems of nested values are reported through the :class:`CheckContext`, which also knows the
manifest's folder (paths in a manifest are relative to it).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reportgen.images import MAX_SIDE
from reportgen.layers import LAYER_NAMES, network_order
from reportgen.manifest.model import BUILTIN_WEIGHTS, Link
from reportgen.manifest.yamlnodes import Located, Mark

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
URL_PATTERN = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# ``coarse_to_fine: true``: the first scale's longest side (style-transfer-pytorch's default).
COARSE_TO_FINE_START = 128

Checker = Callable[[Located, "CheckContext"], tuple[Any, str | None]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(low: int, high: int) -> Checker:
    def check(item: Located, _: CheckContext) -> tuple[Any, str | None]:
        value = item.value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return None, f"must be an integer, not {describe(item.value)} (allowed: {low}..{high})"
        if not low <= value <= high:
            return None, f"{value} is out of range (allowed: {low}..{high})"
        return value, None

    return check


def number(low: float, high: float, positive: bool = False) -> Checker:
    allowed = f"> 0 and <= {high:g}" if positive else f"{low:g}..{high:g}"

    def check(item: Located, _: CheckContext) -> tuple[Any, str | None]:
        value = item.value
        if isinstance(value, str):
            try:  # YAML 1.1 reads 1e6 (no dot) as a string; accept what plainly is a number
                value = float(value)
            except ValueError:
                pass
        if not _is_number(value):
            return None, f"must be a number, not {describe(item.value)} (allowed: {allowed})"
        value = float(value)
        if not math.isfinite(value) or value > high or value < low or (positive and value <= 0):
            return None, f"{value:g} is out of range (allowed: {allowed})"
        return value, None

    return check


def choice(*choices: str) -> Checker:
    def check(item: Located, _: CheckContext) -> tuple[Any, str | None]:
        if item.value not in choices:
            return None, f"{describe(item.value)} is not allowed (allowed: {', '.join(choices)})"
        return item.value, None

    return check


def boolean(item: Located, _: CheckContext) -> tuple[Any, str | None]:
    if not isinstance(item.value, bool):
        return None, f"must be true or false, not {describe(item.value)}"
    return item.value, None


def layer(item: Located, _: CheckContext) -> tuple[Any, str | None]:
    if item.value not in LAYER_NAMES:
        return (
            None,
            f"unknown layer {describe(item.value)} (allowed: conv1_1..conv5_4, e.g. conv4_2)",
        )
    return item.value, None


def style_layers(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    if not isinstance(item.value, dict) or not item.value:
        return None, "must be a mapping of layer name to weight, e.g. {conv1_1: 1.0, conv2_1: 0.8}"
    weights = {}
    for name, weight_item in item.value.items():
        mark = item.key_marks[name]
        if name not in LAYER_NAMES:
            context.problem(
                mark,
                f"{context.path}.{name}",
                f"unknown layer {name!r} (allowed: conv1_1..conv5_4)",
            )
            continue
        weight, problem = number(0, 1e12)(weight_item, context)
        if problem:
            context.problem(weight_item.mark, f"{context.path}.{name}", problem)
            continue
        weights[name] = weight
    if len(weights) != len(item.value):
        return None, None  # already reported per layer
    if not any(weights.values()):
        return None, "at least one style layer needs a weight above 0"
    return tuple((name, weights[name]) for name in network_order(weights)), None


def weights(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    value = item.value
    if not isinstance(value, str) or not value:
        return (
            None,
            f"must be 'caffe', 'torchvision' or a path to a state dict, not {describe(value)}",
        )
    if value in BUILTIN_WEIGHTS:
        return value, None
    path, problem = context.file(value)
    return (str(path) if path else None), problem


def text(item: Located, _: CheckContext) -> tuple[Any, str | None]:
    if not isinstance(item.value, (str, int, float)) or isinstance(item.value, bool):
        return None, f"must be text, not {describe(item.value)}"
    return str(item.value), None


def image_path(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    if not isinstance(item.value, str) or not item.value.strip():
        return None, f"must be the path of an image file, not {describe(item.value)}"
    path, problem = context.file(item.value)
    if path is not None:
        from reportgen.images import probe_image

        problem = probe_image(path)
    return path, problem


# Styles blended in one run: each adds a forward pass and a Gram per layer to the run's setup,
# and a column to its pages.
MAX_STYLES = 8


def style_images(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    """``style: a.jpg``, or ``style: [a.jpg, b.jpg]`` for a blend -> a tuple of paths."""
    if not isinstance(item.value, list):
        path, problem = image_path(item, context)
        if problem and not isinstance(item.value, str):
            problem = (
                f"must be the path of an image file, or a list of them for a blend, not "
                f"{describe(item.value)}"
            )
        return (None, problem) if problem else ((path,), None)
    if not 1 <= len(item.value) <= MAX_STYLES:
        return None, f"must list 1 to {MAX_STYLES} style images, not {len(item.value)}"
    base_path, paths = context.path, []
    for index, element in enumerate(item.value):
        path, problem = image_path(element, context)
        if problem:
            context.problem(element.mark, f"{base_path}[{index}]", problem)
        paths.append(path)
    return (tuple(paths), None) if None not in paths else (None, None)


# A mask covering less than this share of the content image leaves its style almost nothing.
MIN_MASK_COVERAGE = 0.001


def mask_path(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    """A region's mask: an image file whose white part is not (nearly) empty."""
    path, problem = image_path(item, context)
    if problem:
        return None, problem
    from reportgen.errors import ImageError
    from reportgen.images import load_mask

    try:
        coverage = float(load_mask(path, (64, 64)).mean())
    except ImageError as error:
        return None, error.message
    if coverage < MIN_MASK_COVERAGE:
        return None, (
            f"{path} is black everywhere (it covers {coverage:.2%} of the image); a mask is "
            "white where its region's style applies"
        )
    return path, None


def regions(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    """``regions: [{mask: sky.png, style: hubble.jpg}, ...]`` -> ((mask, style), ...)."""
    example = "e.g. [{mask: masks/sky.png, style: style/hubble.jpg}, ...]"
    if not isinstance(item.value, list) or not 1 <= len(item.value) <= MAX_STYLES:
        return None, f"must be a list of 1 to {MAX_STYLES} regions, {example}"
    base_path, found = context.path, []
    for index, region in enumerate(item.value):
        path = f"{base_path}[{index}]"
        if not isinstance(region.value, dict):
            context.problem(
                region.mark, path, f"must be a mapping with a mask and a style, {example}"
            )
            continue
        values = {}
        for key, value_item in region.value.items():
            if key not in ("mask", "style"):
                context.problem(
                    region.key_marks[key], f"{path}.{key}", "unknown key (allowed: mask, style)"
                )
                continue
            context.path = f"{path}.{key}"
            value, problem = (mask_path if key == "mask" else image_path)(value_item, context)
            if problem:
                context.problem(value_item.mark, f"{path}.{key}", problem)
            values[key] = value
        for key in ("mask", "style"):
            if key not in region.value:
                context.problem(region.mark, f"{path}.{key}", "missing (required)")
        found.append((values.get("mask"), values.get("style")))
    if any(None in pair for pair in found) or len(found) != len(item.value):
        return None, None
    return tuple(found), None


def style_blend(item: Located, _: CheckContext) -> tuple[Any, str | None]:
    """``style_blend: [0.7, 0.3]``: a weight (>= 0) per style image, not all 0."""
    allowed = "a list of weights >= 0, one per style image, e.g. [0.7, 0.3]"
    weights = item.value
    if not isinstance(weights, list) or not 1 <= len(weights) <= MAX_STYLES:
        return None, f"must be {allowed}, not {describe(weights)}"
    values = [element.value for element in weights]
    if not all(_is_number(v) and math.isfinite(v) and v >= 0 for v in values):
        return None, f"{describe(values)} is not allowed (allowed: {allowed})"
    if not any(values):
        return None, "the weights are all 0: no style to aim at (allowed: " + allowed + ")"
    return tuple(float(v) for v in values), None


def links(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    """``{label: url}``; each URL must be http(s) or relative (no javascript:, data:, file:)."""
    if not isinstance(item.value, dict):
        return (
            None,
            "must be a mapping of label to URL, e.g. {source: https://example.org/painting}",
        )
    links = []
    for label, url_item in item.value.items():
        url = url_item.value
        scheme = URL_PATTERN.match(url) if isinstance(url, str) else None
        # Browsers read a backslash as a slash, so "\\evil.example" is "//evil.example".
        allowed = (
            isinstance(url, str)
            and url.strip() == url
            and url
            and "\\" not in url
            and (
                (scheme is None and ":" not in url.split("/")[0] and not url.startswith("//"))
                or url.lower().startswith(("http://", "https://"))
            )
        )
        if not allowed:
            context.problem(
                url_item.mark,
                f"{context.path}.{label}",
                f"{describe(url)} is not allowed (allowed: http://, https:// or a relative URL)",
            )
            continue
        links.append(Link(str(label), url))
    if len(links) != len(item.value):
        return None, None
    return tuple(links), None


def style_scale(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    if item.value == "content":
        return "content", None
    if isinstance(item.value, str) or not _is_number(item.value):
        return (
            None,
            f"must be a number or 'content', not {describe(item.value)} (allowed: 0.05..8, or "
            "content)",
        )
    return number(0.05, 8)(item, context)


def coarse_to_fine(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    """``false`` or 0: off; ``true``: from 128 px; a number: the first scale's longest side."""
    if item.value is False:
        return 0, None
    if item.value is True:
        return COARSE_TO_FINE_START, None
    if item.value == 0 and not isinstance(item.value, bool):
        return 0, None
    value, problem = integer(32, MAX_SIDE)(item, context)
    if problem:
        return (
            None,
            f"{problem.split(' (')[0]} (allowed: false, true (= {COARSE_TO_FINE_START}), or the "
            f"first scale's longest side in px, 32..{MAX_SIDE})",
        )
    return value, None


def folder(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    """A folder to write into, relative to the manifest (it need not exist yet)."""
    if not isinstance(item.value, str) or not item.value.strip() or URL_PATTERN.match(item.value):
        return (
            None,
            f"must be the path of a folder, relative to the manifest, not {describe(item.value)}",
        )
    path = (context.root / os.path.expanduser(item.value)).resolve()
    if path.exists() and not path.is_dir():
        return None, f"{path} exists and is not a folder"
    return path, None


def base_url(item: Located, _: CheckContext) -> tuple[Any, str | None]:
    """Where a folder will be published: http(s), or a path relative to the site's root."""
    value = item.value
    if not isinstance(value, str) or not value.strip() or "\\" in value or value.strip() != value:
        return None, f"must be a URL, not {describe(value)}"
    scheme = URL_PATTERN.match(value)
    if (scheme and not value.lower().startswith(("http://", "https://"))) or (
        not scheme and ":" in value.split("/")[0]
    ):
        return (
            None,
            f"{describe(value)} is not allowed (allowed: http://, https:// or a path relative to "
            "the site)",
        )
    return value.rstrip("/") + "/", None


def describe(value: Any) -> str:
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


class CheckContext:
    """Collects problems; knows the manifest's file name and folder.

    Values given in Python (the API's keywords) have no place in a file: their marks are
    :data:`NOWHERE`, and their problems are located by ``label`` (``reportgen.transfer()``).
    """

    def __init__(self, path: Path, label: str | None = None):
        self.path_of_file = path
        self.root = path.parent
        self.label = label or path.name
        self.problems: list[tuple[int, int, str]] = []
        self.path = ""  # the key path being checked, for nested messages

    def problem(self, mark: Mark | None, key_path: str, message: str) -> None:
        line, column = (mark.line, mark.column) if mark else (0, 0)
        where = f"{self.label}:{line}:{column}" if line else self.label
        self.problems.append(
            (line, column, f"{where} {key_path}: {message}" if key_path else f"{where}: {message}")
        )

    def file(self, written: str) -> tuple[Path | None, str | None]:
        """Resolve a path written in the manifest; report URLs, missing and unreadable files."""
        if URL_PATTERN.match(written):
            return (
                None,
                f"{written!r} is a URL; download the file and give its path relative to the "
                "manifest",
            )
        path = (self.root / os.path.expanduser(written)).resolve()
        if not path.exists():
            return None, f"file not found: {path}"
        if not path.is_file():
            return None, f"not a file: {path}"
        if not os.access(path, os.R_OK):
            return None, f"file not readable: {path}"
        return path, None
