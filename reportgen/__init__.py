"""reportgen: neural style transfer studies as static HTML reports, and their analysis in Python.

``reportgen.transfer(content, style, **parameters)`` computes one pair, ``reportgen.Study(path)``
a manifest's runs and site (:mod:`reportgen.api`).  They are imported when first used, so that
``import reportgen`` (and the command line, and every worker process) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # "X as X": re-exported, for type checkers and editors
    from reportgen.api import Run as Run
    from reportgen.api import Study as Study
    from reportgen.api import transfer as transfer
    from reportgen.build import BuildSummary as BuildSummary
    from reportgen.errors import (
        ManifestError as ManifestError,
    )
    from reportgen.errors import (
        ParameterError as ParameterError,
    )
    from reportgen.errors import (
        ReportgenError as ReportgenError,
    )
    from reportgen.errors import (
        RunNotFound as RunNotFound,
    )
    from reportgen.errors import (
        UsageError as UsageError,
    )
    from reportgen.grams import GramCell as GramCell
    from reportgen.manifest import Params as Params
    from reportgen.stages.results import (
        LossHistory as LossHistory,
    )
    from reportgen.stages.results import (
        StepRecord as StepRecord,
    )
    from reportgen.stages.results import (
        Stylisation as Stylisation,
    )

# name -> the module it comes from
_PUBLIC = {
    "transfer": "reportgen.api",
    "Study": "reportgen.api",
    "Run": "reportgen.api",
    "BuildSummary": "reportgen.build",
    "Params": "reportgen.manifest",
    "GramCell": "reportgen.grams",
    "LossHistory": "reportgen.stages.results",
    "StepRecord": "reportgen.stages.results",
    "Stylisation": "reportgen.stages.results",
    "ReportgenError": "reportgen.errors",
    "ManifestError": "reportgen.errors",
    "ParameterError": "reportgen.errors",
    "RunNotFound": "reportgen.errors",
    "UsageError": "reportgen.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'reportgen' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
