"""Reading a manifest: YAML in, :class:`~reportgen.manifest.model.Manifest` out, every problem
reported at once with its place.

Each problem reads ``manifest.yaml:LINE:COL key.path: what is wrong (what is allowed)``.  The
walk follows the schema's tables below; the value checks are :mod:`reportgen.manifest.checks`.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reportgen.color import PRESERVE_COLOR
from reportgen.errors import ManifestError, ParameterError
from reportgen.images import MAX_SIDE
from reportgen.layers import ACTIVATIONS
from reportgen.manifest import checks
from reportgen.manifest.checks import ID_PATTERN, CheckContext, Checker
from reportgen.manifest.model import (
    FILTER_PAGES,
    INITS,
    LOSSES,
    MONTAGES,
    OPTIMIZERS,
    PRECISIONS,
    PRESETS,
    FigureOptions,
    Link,
    Manifest,
    PairSpec,
    Params,
    Variant,
    VisualisationOptions,
)
from reportgen.manifest.yamlnodes import (
    NOWHERE,
    Located,
    Mark,
    YamlSyntaxError,
    load_located,
    located,
)
from reportgen.paths import RESERVED_NAMES, RESERVED_VARIANT_IDS

# More would make the pair page a film strip and hold every image in memory until the end.
MAX_SNAPSHOTS = 100  # per scale

PARAM_CHECKS: dict[str, Checker] = {
    "size": checks.integer(16, MAX_SIDE),
    "steps": checks.integer(1, 100_000),
    "optimizer": checks.choice(*OPTIMIZERS),
    "lr": checks.number(0, 1e4, positive=True),
    "content_weight": checks.number(0, 1e15),
    "style_weight": checks.number(0, 1e15),
    "content_layer": checks.layer,
    "style_layers": checks.style_layers,
    "init": checks.choice(*INITS),
    "seed": checks.integer(0, 2**32 - 1),
    "weights": checks.weights,
    "activation": checks.choice(*ACTIVATIONS),
    "top_pairs": checks.integer(1, 1000),
    "reconstructions": checks.boolean,
    "precision": checks.choice(*PRECISIONS),
    "loss": checks.choice(*LOSSES),
    "tv_weight": checks.number(0, 1e9),
    "style_scale": checks.style_scale,
    "preserve_color": checks.choice(*PRESERVE_COLOR),
    "coarse_to_fine": checks.coarse_to_fine,
    "snapshot_every": checks.integer(0, 100_000),
    "style_blend": checks.style_blend,
    "preset": checks.choice(*PRESETS),
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
        if isinstance(value, tuple):  # a blend's weights: style_blend-0p7_0p3
            return "_".join(short(element) for element in value)
        if not isinstance(value, float):
            return str(value)
        plain = f"{value:g}"
        mantissa, exponent = f"{value:e}".split("e")
        scientific = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return min(plain, scientific, key=len).replace("+", "").replace(".", "p")

    return "-".join(f"{name}-{short(value)}" for name, value in values.items())


def _variants(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    """``variants:`` -> [(id, overrides, mark)], each override checked like a parameter."""
    if not isinstance(item.value, list) or not item.value:
        return None, "must be a non-empty list of {id: ..., parameter: value, ...}"
    base_path = context.path
    variants = []
    for index, variant_item in enumerate(item.value):
        path = f"{base_path}[{index}]"
        if not isinstance(variant_item.value, dict):
            context.problem(
                variant_item.mark, path, "must be a mapping with an id and the parameters to change"
            )
            continue
        values = _check_mapping(variant_item, {"id": checks.text, **PARAM_CHECKS}, path, context)
        if "id" not in variant_item.value:
            context.problem(variant_item.mark, f"{path}.id", "missing (required)")
        elif "id" in values:
            variants.append((values.pop("id"), values, variant_item.value["id"].mark))
    return variants, None


def _sweep(item: Located, context: CheckContext) -> tuple[Any, str | None]:
    """``sweep: {parameter: [v1, v2, ...]}`` -> [(id, overrides, mark)], the Cartesian product."""
    if not isinstance(item.value, dict) or not item.value:
        return (
            None,
            "must be a mapping of parameter to a list of values, e.g. {style_weight: [1.0e3, "
            "1.0e4]}",
        )
    axes: dict[str, list[Any]] = {}
    base_path = context.path
    for name, values_item in item.value.items():
        path = f"{base_path}.{name}"
        if name not in PARAM_CHECKS or name == "style_layers":
            context.problem(
                item.key_marks[name],
                path,
                f"cannot sweep over {name!r} (allowed: "
                f"{', '.join(k for k in PARAM_CHECKS if k != 'style_layers')})",
            )
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
    if len(axes) != len(item.value) or any(
        len(v) != len(item.value[k].value) for k, v in axes.items()
    ):
        return None, None
    combinations = [
        dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())
    ]
    return [(_sweep_id(values), values, item.mark) for values in combinations], None


PAIR_CHECKS: dict[str, Checker] = {
    "id": checks.text,
    "title": checks.text,
    "notes": checks.text,
    "content": checks.image_path,
    "style": checks.style_images,
    "regions": checks.regions,
    "links": checks.links,
    "variants": _variants,
    "sweep": _sweep,
}
TOP_KEYS = (
    "title",
    "description",
    "links",
    "data",
    "figures",
    "feature_visualisation",
    "defaults",
    "pairs",
)


DATA_CHECKS: dict[str, Checker] = {
    "grams": checks.boolean,
    "archive": checks.boolean,
    "folder": checks.folder,
    "url": checks.base_url,
}
FIGURES_CHECKS: dict[str, Checker] = {
    "montages": checks.choice(*MONTAGES),
    "pair_sheets": checks.boolean,
    "quality": checks.integer(10, 100),
}
VISUALISATION_CHECKS: dict[str, Checker] = {
    "filters": checks.choice(*FILTER_PAGES),
    "size": checks.integer(16, 1024),
    "steps": checks.integer(1, 10_000),
    "examples": checks.integer(0, 100),
}


def _check_mapping(
    item: Located,
    checks: dict[str, Checker],
    key_path: str,
    context: CheckContext,
    allowed_extra: tuple[str, ...] = (),
    kind: str = "key",
) -> dict[str, Any]:
    """Check every key of a mapping; unknown keys are problems (an unknown ``kind``: key, or
    keyword for the API's).  Returns the valid values."""
    values = {}
    for key, value_item in item.value.items():
        path = f"{key_path}.{key}" if key_path else key
        if key not in checks:
            if key in allowed_extra:
                continue
            allowed = ", ".join(sorted(checks))
            context.problem(item.key_marks[key], path, f"unknown {kind} (allowed: {allowed})")
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
    context = CheckContext(path)
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
        raise ManifestError(
            [message for _, _, message in sorted(context.problems, key=lambda p: (p[0], p[1]))]
        )
    assert manifest is not None
    return manifest


def pair_manifest(
    content: str,
    style: str | list[str] | None,
    parameters: dict[str, Any],
    label: str,
    root: Path | None = None,
    regions: list[dict[str, str]] | None = None,
) -> Manifest:
    """A study of one pair given in Python (``reportgen.transfer``): ``content`` and ``style``
    (one, or a list to blend) are image paths, relative to ``root`` (default: the working
    folder), or ``regions`` ({"mask": path, "style": path} each) stand in for ``style``;
    ``parameters`` are any of the manifest's parameters, checked as a manifest's are.
    Problems are located by ``label`` and keyword; raises :class:`ParameterError` listing them
    all."""
    root = (root or Path.cwd()).absolute()
    context = CheckContext(root / "manifest.yaml", label)
    given = {"style": style, "regions": regions}
    item = located(
        {"content": content, **{k: v for k, v in given.items() if v is not None}, **parameters}
    )
    own = _check_mapping(
        item,
        {
            "content": checks.image_path,
            "style": checks.style_images,
            "regions": checks.regions,
            **PARAM_CHECKS,
        },
        "",
        context,
        kind="keyword",
    )
    if (style is None) == (regions is None):
        context.problem(NOWHERE, "", "give style (one image, or a list to blend) or regions")
    params = Params(**_with_preset({k: v for k, v in own.items() if k in PARAM_CHECKS}))
    masks = tuple(mask for mask, _ in own.get("regions", ()))
    styles = own.get("style") or tuple(style for _, style in own.get("regions", ()))
    shape = _PairShape(len(styles), bool(masks))
    blended = _blended(params, shape, NOWHERE, "", context) if styles else None
    usable = _usable(params, shape, NOWHERE, "", context)
    if context.problems or not usable or blended is None:
        raise ParameterError([message for _, _, message in context.problems])
    pair_id = pair_id_of(own["content"], styles[0])
    pair = PairSpec(
        id=pair_id,
        title=f"{own['content'].name} × {' + '.join(style.name for style in styles)}",
        notes="",
        content=own["content"],
        styles=styles,
        params=blended,
        line=0,
        masks=masks,
    )
    return Manifest(path=context.path_of_file, title=pair.title, description="", pairs=(pair,))


def pair_id_of(content: Path, style: Path) -> str:
    """A pair id made of its images' names: ``chelsea-brick`` for chelsea.png and brick.png."""
    words = re.sub(r"[^a-z0-9]+", "-", f"{content.stem}-{style.stem}".lower()).strip("-_")
    return (words or "pair")[:64].rstrip("-_")


def _validate(root: Located | None, path: Path, context: CheckContext) -> Manifest | None:
    if root is None or not isinstance(root.value, dict):
        context.problem(
            root.mark if root else Mark(1, 1),
            "",
            "the manifest must be a mapping with a 'pairs:' list",
        )
        return None
    top = root.value
    for key in top:
        if key not in TOP_KEYS:
            context.problem(
                root.key_marks[key], key, f"unknown key (allowed: {', '.join(TOP_KEYS)})"
            )
    title = _optional_text(top, "title", context) or "Style transfer study"
    description = _optional_text(top, "description", context) or ""
    links: tuple[Link, ...] = ()
    if "links" in top:
        context.path = "links"
        links, problem = checks.links(top["links"], context)
        if problem:
            context.problem(top["links"].mark, "links", problem)
        links = links or ()

    data = _top_mapping(
        top, "data", DATA_CHECKS, context, "must be a mapping, e.g. {grams: false, archive: false}"
    )
    written = top["data"].value if "data" in top else None
    if isinstance(written, dict) and "url" in written and "folder" not in written:
        context.problem(
            top["data"].key_marks["url"],
            "data.url",
            "says where data.folder is published; give data.folder too",
        )
    figures = _top_mapping(
        top,
        "figures",
        FIGURES_CHECKS,
        context,
        "must be a mapping, e.g. {montages: content, quality: 50}",
    )
    visualisation = _visualisation_options(top.get("feature_visualisation"), context)
    defaults = _with_preset(
        _top_mapping(
            top, "defaults", PARAM_CHECKS, context, "must be a mapping of parameter to value", True
        )
    )

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
            context.problem(
                pair_item.mark, key_path, "must be a mapping with id, content and style"
            )
            continue
        own = _check_mapping(pair_item, {**PAIR_CHECKS, **PARAM_CHECKS}, key_path, context)
        missing = [key for key in ("id", "content") if key not in pair_item.value]
        for key in missing:
            context.problem(pair_item.mark, f"{key_path}.{key}", "missing (required)")
        written = pair_item.value
        if "style" not in written and "regions" not in written:
            context.problem(
                pair_item.mark,
                f"{key_path}.style",
                "missing (required: a style image, a list of them to blend, or regions: with a "
                "style per mask)",
            )
        elif "style" in written and "regions" in written:
            context.problem(
                written["regions"].mark,
                f"{key_path}.regions",
                "give style or regions, not both (regions name a style per mask)",
            )
            continue
        pair_id = own.get("id")
        if pair_id is not None:
            id_mark = pair_item.value["id"].mark
            if not ID_PATTERN.fullmatch(pair_id):
                context.problem(
                    id_mark,
                    f"{key_path}.id",
                    f"{pair_id!r} is not a valid id (allowed: lowercase letters, digits, '-' and "
                    "'_', "
                    "starting with a letter or digit, at most 64 characters; it becomes a URL)",
                )
                pair_id = None
            elif pair_id in seen_ids:
                context.problem(
                    id_mark,
                    f"{key_path}.id",
                    f"duplicate id {pair_id!r} (first used at line {seen_ids[pair_id]})",
                )
                pair_id = None
            else:
                seen_ids[pair_id] = id_mark.line
        if pair_id is None or "content" not in own or ("style" not in own and "regions" not in own):
            continue
        settings = _merge(
            defaults, _with_preset({k: v for k, v in own.items() if k in PARAM_CHECKS})
        )
        if "regions" in own:
            masks = tuple(mask for mask, _ in own["regions"])
            styles = tuple(style for _, style in own["regions"])
        else:
            masks, styles = (), own["style"]
        shape = _PairShape(len(styles), bool(masks))
        blend_item = pair_item.value.get("style_blend")
        params = _blended(
            Params(**settings),
            shape,
            blend_item.mark if blend_item else pair_item.mark,
            f"{key_path}.style_blend" if blend_item else key_path,
            context,
        )
        variants = _resolve_variants(
            own.get("variants", []) + own.get("sweep", []), settings, shape, key_path, context
        )
        if params is None or (
            not variants and not _usable(params, shape, pair_item.mark, key_path, context)
        ):
            continue
        pairs.append(
            PairSpec(
                id=pair_id,
                title=own.get("title", pair_id),
                notes=own.get("notes", ""),
                content=own["content"],
                styles=styles,
                params=params,
                line=pair_item.mark.line,
                links=own.get("links", ()),
                variants=variants,
                masks=masks,
            )
        )
    return Manifest(
        path=path,
        title=title,
        description=description,
        pairs=tuple(pairs),
        links=links,
        publish_grams=data.get("grams", True),
        publish_archive=data.get("archive", True),
        figures=FigureOptions(**figures),
        visualisation=visualisation,
        data_folder=data.get("folder"),
        data_url=data.get("url"),
    )


def _visualisation_options(item: Located | None, context: CheckContext) -> VisualisationOptions:
    """``feature_visualisation: top`` (none, top or all), or the mapping form with its size,
    steps and examples."""
    key = "feature_visualisation"
    if item is None:
        return VisualisationOptions()
    if isinstance(item.value, dict):
        return VisualisationOptions(**_check_mapping(item, VISUALISATION_CHECKS, key, context))
    context.path = key
    value, problem = VISUALISATION_CHECKS["filters"](item, context)
    if problem:
        context.problem(
            item.mark, key, f"{problem}; or a mapping, e.g. {{filters: all, size: 96, steps: 128}}"
        )
        return VisualisationOptions()
    return VisualisationOptions(filters=value)


def _top_mapping(
    top: dict[str, Located],
    key: str,
    checks: dict[str, Checker],
    context: CheckContext,
    wrong: str,
    may_be_empty: bool = False,
) -> dict[str, Any]:
    """The checked values of the mapping at ``key`` of the manifest's top: empty when it is left
    out (or, ``may_be_empty``, written with nothing), and with the ``wrong`` problem when it is
    not a mapping."""
    item = top.get(key)
    if item is None or (may_be_empty and item.value is None):
        return {}
    if not isinstance(item.value, dict):
        context.problem(item.mark, key, wrong)
        return {}
    return _check_mapping(item, checks, key, context)


def _resolve_variants(
    raw: list[tuple[str, dict, Mark]],
    base: dict[str, Any],
    shape: _PairShape,
    key_path: str,
    context: CheckContext,
) -> tuple[Variant, ...]:
    """Turn checked ``variants:``/``sweep:`` entries into :class:`Variant` objects; ids must be
    valid, unique within the pair and not a reserved folder name."""
    variants = []
    seen: set[str] = set()
    for variant_id, overrides, mark in raw:
        if not ID_PATTERN.fullmatch(variant_id) or variant_id in RESERVED_VARIANT_IDS:
            context.problem(
                mark,
                f"{key_path}.variants",
                f"{variant_id!r} is not a valid variant id (allowed: like a pair id, and not a "
                f"layer name or one of {', '.join(RESERVED_NAMES)})",
            )
            continue
        if variant_id in seen:
            context.problem(mark, f"{key_path}.variants", f"duplicate variant id {variant_id!r}")
            continue
        seen.add(variant_id)
        prefix = f"variant {variant_id!r}: "
        params = _blended(
            Params(**_merge(base, _with_preset(overrides))),
            shape,
            mark,
            f"{key_path}.variants",
            context,
            prefix,
        )
        if params is None or not _usable(
            params, shape, mark, f"{key_path}.variants", context, prefix
        ):
            continue
        variants.append(Variant(variant_id, params, tuple(overrides)))
    return tuple(variants)


@dataclass(frozen=True)
class _PairShape:
    """What a pair's parameters are checked against: its number of style images, and whether
    each has a region of its own."""

    styles: int
    regions: bool


def _blended(
    params: Params,
    shape: _PairShape,
    mark: Mark,
    key_path: str,
    context: CheckContext,
    prefix: str = "",
) -> Params | None:
    """``params`` with ``style_blend`` resolved for a pair of ``shape.styles`` style images:
    normalised to sum 1, equal where left out, () for one image or for regions; None, with the
    problem reported, when the weights are not one per image or the styles have regions."""
    written, style_count = params.style_blend, shape.styles
    if written and shape.regions:
        context.problem(
            mark,
            key_path,
            f"{prefix}style_blend weighs style images over the whole picture; with regions each "
            "style has its mask (leave style_blend out)",
        )
        return None
    if shape.regions:
        return params
    if written and len(written) != style_count:
        context.problem(
            mark,
            key_path,
            f"{prefix}style_blend gives {len(written)} weights for {style_count} style "
            f"image{'s' if style_count > 1 else ''} (allowed: one weight per style image)",
        )
        return None
    if style_count == 1:
        return replace(params, style_blend=())
    weights = written or (1.0,) * style_count
    return replace(params, style_blend=tuple(weight / sum(weights) for weight in weights))


def _usable(
    params: Params,
    shape: _PairShape,
    mark: Mark,
    key_path: str,
    context: CheckContext,
    prefix: str = "",
) -> bool:
    """Problems of a run's settings taken together (each value alone was checked already)."""
    problems = []
    if shape.regions and params.loss == "seed":
        problems.append(
            "regions need loss: relative (the seed notebook's loss has no guided Grams)"
        )
    if params.content_weight == 0 and params.style_weight == 0:
        problems.append("content_weight and style_weight are both 0: nothing to optimise")
    if params.snapshot_every and params.steps / params.snapshot_every > MAX_SNAPSHOTS:
        problems.append(
            f"snapshot_every {params.snapshot_every} keeps "
            f"{params.steps // params.snapshot_every} images a scale "
            f"(allowed: at most {MAX_SNAPSHOTS}, snapshot_every "
            f"{math.ceil(params.steps / MAX_SNAPSHOTS)} or more at {params.steps} steps)"
        )
    if not 16 <= params.style_side() <= MAX_SIDE:
        problems.append(
            f"style_scale {params.style_scale:g} at size {params.size} gives a "
            f"{params.style_side()} px style image (allowed: 16..{MAX_SIDE})"
        )
    for problem in problems:
        context.problem(mark, key_path, prefix + problem)
    return not problems


def _optional_text(top: dict[str, Located], key: str, context: CheckContext) -> str | None:
    item = top.get(key)
    if item is None or item.value is None:
        return None
    value, problem = checks.text(item, context)
    if problem:
        context.problem(item.mark, key, problem)
    return value
