"""The manifest: a YAML study read into frozen specs.

:mod:`~reportgen.manifest.model` holds the specs, :mod:`~reportgen.manifest.checks` the checks of
single values, :mod:`~reportgen.manifest.load` the walk over the schema that reports every problem
at once.  What the rest of reportgen uses is re-exported here.
"""

from reportgen.manifest.load import load_manifest
from reportgen.manifest.model import (
    BUILTIN_WEIGHTS,
    DEFAULT_LR,
    DEFAULT_STYLE_WEIGHT,
    FILTER_PAGES,
    PARAM_NAMES,
    PRESETS,
    FigureOptions,
    FilterPages,
    Init,
    Link,
    Loss,
    Manifest,
    Montages,
    Optimizer,
    PairSpec,
    Params,
    Precision,
    ResolvedPrecision,
    RunSpec,
    Variant,
    VisualisationOptions,
)

__all__ = [
    "BUILTIN_WEIGHTS",
    "DEFAULT_LR",
    "DEFAULT_STYLE_WEIGHT",
    "FILTER_PAGES",
    "PARAM_NAMES",
    "PRESETS",
    "FigureOptions",
    "FilterPages",
    "Init",
    "Link",
    "Loss",
    "Manifest",
    "Montages",
    "Optimizer",
    "PairSpec",
    "Params",
    "Precision",
    "ResolvedPrecision",
    "RunSpec",
    "Variant",
    "VisualisationOptions",
    "load_manifest",
]
