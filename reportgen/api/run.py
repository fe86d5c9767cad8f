"""One computed run, as a notebook explores it: the seed's ``StyleTransfer`` object, on the
results the site is built from.

Everything here reads the run's cached transfer and analysis (the same entries a build turns
into pages, so a Gram read here equals the one in the site's ``grams.npz``), except
:meth:`Run.features`, which passes an image through the network again: the analysis keeps of
the maps only what the figures show.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from reportgen import paths
from reportgen.api.progress import in_jupyter_kernel
from reportgen.errors import UsageError
from reportgen.grams import GramCell
from reportgen.layers import LAYER_NAMES, network_order
from reportgen.manifest import Params, RunSpec
from reportgen.paths import ROLES, Role
from reportgen.stages.jobs import FeatureJob
from reportgen.stages.pipeline import Analysed
from reportgen.stages.results import (
    NETWORK_IMAGES,
    AnalysisResult,
    LossHistory,
    StepRecord,
    Stylisation,
    style_role,
)
from reportgen.stages.visualisations import Network

if TYPE_CHECKING:
    from reportgen.api.study import Study
    from reportgen.figures.explore import NotebookFigure

SHOWN_FILTERS = 32  # feature maps a grid shows unless asked for others (the seed's first figure)


class Run:
    """One run of a study (a pair, or one variant of it), computed: its images, losses,
    feature maps and Gram matrices, and the seed notebook's figures of them.

    Get one from :func:`reportgen.transfer` or from a :class:`reportgen.Study` by name.  Roles
    are ``"content"``, ``"style"`` and ``"result"``; layers are named as the paper names them
    (``conv4_2``).
    """

    def __init__(self, study: Study, spec: RunSpec, stages: Analysed):
        self._study = study
        self._spec = spec
        self._stages = stages
        self._features: dict[tuple[str, str], np.ndarray] = {}  # (role, layer) -> maps

    # ---- what it is ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """``pair`` or ``pair/variant``, as the study's pages name it."""
        return self._spec.name

    @property
    def title(self) -> str:
        """The pair's title, and the variant's id after it."""
        return self._spec.title

    @property
    def params(self) -> Params:
        """Every parameter the run was computed with, defaults resolved."""
        return self._spec.params

    @property
    def content_path(self) -> Path:
        """The content image's file (absolute)."""
        return self._spec.pair.content

    @property
    def style_path(self) -> Path:
        """The (first) style image's file (absolute)."""
        return self._spec.pair.styles[0]

    @property
    def style_paths(self) -> list[Path]:
        """Every style image's file (absolute): one, or those of a blend, weighed by
        ``params.blend_weights``."""
        return list(self._spec.pair.styles)

    @property
    def layers(self) -> list[str]:
        """The analysed layers (the seed's six and any other the parameters use), in network
        order: the keys of :meth:`grams`, and of :meth:`features` by default."""
        return list(self._stages.analysis.layers)

    # ---- images and losses --------------------------------------------------------------

    @cached_property
    def content(self) -> Image.Image:
        """The content image as the network was fed it: RGB, its longest side ``params.size``
        (the site's ``content.png``)."""
        return Image.fromarray(self._pixels("content"))

    @cached_property
    def style(self) -> Image.Image:
        """The style image as the network was fed it: RGB, resized as ``style_scale`` says, its
        colours matched to the content's under ``preserve_color: histogram``."""
        return Image.fromarray(self._pixels("style"))

    @cached_property
    def styles(self) -> list[Image.Image]:
        """Every style image as the network was fed it: ``[style]``, or those of a blend in
        the order given."""
        return [
            Image.fromarray(self._pixels(style_role(k))) for k in range(len(self._spec.pair.styles))
        ]

    @cached_property
    def result(self) -> Image.Image:
        """The result as saved, RGB, the content's size: the site's ``result.png``, pixel for
        pixel."""
        return Image.fromarray(self._pixels("result"))

    @cached_property
    def optimised(self) -> Image.Image:
        """The picture the optimiser found: :attr:`result` unless ``preserve_color`` put the
        content's colours back afterwards.  The result's features and Grams are this image's."""
        return Image.fromarray(self._pixels("optimised"))

    def _pixels(self, name: str) -> np.ndarray:
        """(H, W, 3) uint8."""
        return self._stages.transfer.images[name]

    @property
    def losses(self) -> LossHistory:
        """Every step's loss terms, weighted as optimised: ``losses.total[k]`` is the loss before
        step k + 1; ``losses.style`` maps each style layer to its term."""
        return self._stages.transfer.losses

    @property
    def final_loss(self) -> StepRecord:
        """The loss of the saved 8-bit result, term by term."""
        return self._stages.transfer.final

    @property
    def stylisation(self) -> Stylisation:
        """How far the result moved: its Gram distance to the style's at each style layer
        (against the content image's), its map distance to the content's at the content
        layer."""
        return self._stages.analysis.stylisation

    @property
    def analysis(self) -> AnalysisResult:
        """The analysis stage as the site is built from it (every array it keeps)."""
        return self._stages.analysis

    # ---- representations ----------------------------------------------------------------

    def features(
        self, role: Role = "content", layers: Iterable[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The feature maps of ``role``'s image: layer -> (C, H_l, W_l) float32, after the
        ReLU unless ``params.activation`` is ``conv``.  ``layers``: any of VGG19's conv layers
        (default: :attr:`layers`).  Computed on first use with one forward pass, then kept (and
        so read-only: ``.copy()`` one to change it)."""
        self._check_role(role)
        wanted = network_order(self.layers if layers is None else _layer_names(layers))
        missing = [layer for layer in wanted if (role, layer) not in self._features]
        if missing:
            job = FeatureJob(
                Network(self.params.weights, self.params.activation),
                self._pixels(NETWORK_IMAGES[role]),
                tuple(missing),
            )
            for layer, maps in self._study._feature_maps(job).items():
                maps.flags.writeable = False  # kept for later calls: edit a copy
                self._features[role, layer] = maps
        return {layer: self._features[role, layer] for layer in wanted}

    def grams(self, role: Role = "style") -> dict[str, np.ndarray]:
        """The raw Gram matrices F·Fᵀ of ``role``'s image: layer -> (C, C) float32, summed over
        positions as the seed prints them (not divided by H·W); the site's ``grams.npz``."""
        self._check_role(role)
        return {layer: self._stages.analysis.gram(role, layer) for layer in self.layers}

    def gram_cells(self, layer: str, role: Role = "style") -> list[tuple[int, int]]:
        """Every cell (i, j) of ``role``'s Gram at ``layer``, largest value first, both halves
        and the diagonal included: the seed's ``getGramMatrixIndicesSortedDescendingly``
        (``[:20]`` for its top twenty).  C² cells, C the layer's filters."""
        gram = self._gram(layer, role)
        order = np.argsort(-gram, axis=None, kind="stable")
        rows, columns = np.unravel_index(order, gram.shape)
        return list(zip(rows.tolist(), columns.tolist(), strict=True))

    def top_pairs(self, layer: str, role: Role = "style") -> list[GramCell]:
        """The ``params.top_pairs`` largest off-diagonal cells of ``role``'s raw Gram at
        ``layer`` (i < j), as the layer's page lists them: each a ``GramCell(i, j, value)``."""
        self._gram(layer, role)  # checks the layer and the role
        return list(self._stages.analysis.layers[layer].top_pairs[role])

    def _gram(self, layer: str, role: Role) -> np.ndarray:
        """(C, C) float32."""
        self._check_role(role)
        self._check_analysed(layer)
        return self._stages.analysis.gram(role, layer)

    # ---- the seed's figures -------------------------------------------------------------
    # In Jupyter each is shown at once, as the seed's methods and plt.show() show theirs (so
    # that several in one cell, or in a loop, all appear) and None is returned; elsewhere (a
    # script, a terminal) the figure is returned, to save with ``savefig``.

    def show_inputs(self) -> NotebookFigure | None:
        """The content and style images as fed, and the result (the seed's
        ``showInputImages``, with the result beside them)."""
        from reportgen.figures.explore import images_figure

        return _shown(
            images_figure(
                [
                    ("content", self._pixels("content")),
                    ("style", self._pixels("style")),
                    ("result", self._pixels("result")),
                ]
            )
        )

    def show_content_representation(
        self, filters: int | Sequence[int] = SHOWN_FILTERS, role: Role = "content"
    ) -> NotebookFigure | None:
        """The feature maps of the content layer (``params.content_layer``, the seed's conv4_2)
        for the content image: the first ``filters`` of them, or those listed (the seed's
        ``showContentRepresentation``)."""
        return self.show_filters(self.params.content_layer, filters, role)

    def show_style_representations(
        self, layers: Iterable[str] | None = None, role: Role = "style"
    ) -> NotebookFigure | None:
        """Heatmaps of ``role``'s raw Gram matrices at ``layers`` (default: the style layers),
        the seed's ``showStyleRepresentations``."""
        from reportgen.figures.explore import grams_figure

        chosen = list(self.params.style_layer_weights) if layers is None else _names(layers)
        if not chosen:
            raise UsageError("no layer chosen (e.g. ['conv1_1'])")
        grams = [(layer, self._gram(layer, role)) for layer in chosen]
        return _shown(grams_figure(grams, f"the {role} image"))

    def show_filters(
        self, layer: str, filters: int | Sequence[int] = SHOWN_FILTERS, role: Role = "style"
    ) -> NotebookFigure | None:
        """``role``'s feature maps at ``layer``: the first ``filters`` of them, or those listed
        (the seed's ``showStyleFiltersAtLayer``)."""
        from reportgen.figures.explore import maps_figure

        maps = self.features(role, [layer])[layer]
        chosen = _filter_list(filters, maps.shape[0], layer)
        return _shown(maps_figure(maps, chosen, f"{layer} of the {role} image"))

    def show_top_pairs(
        self, layer: str, count: int | None = None, role: Role = "style"
    ) -> NotebookFigure | None:
        """The maps of the filter pairs with the largest Gram cells at ``layer``, side by side
        (the first ``count``; default all of :meth:`top_pairs`): the seed's
        ``showTopMatchedStyleFilters``."""
        from reportgen.figures.explore import pairs_figure

        if count is not None and count < 1:
            raise UsageError(f"count {count}: show at least one pair")
        pairs = self.top_pairs(layer, role)[:count]
        maps = self.features(role, [layer])[layer]
        return _shown(
            pairs_figure(maps, pairs, f"Most correlated filter pairs of {layer} ({role} image)")
        )

    # ---- pages --------------------------------------------------------------------------

    @property
    def page(self) -> Path | None:
        """The run's page in the site last built from its study, if one was."""
        site = self._study.site
        return None if site is None else site / paths.run_page(self.name)

    def _repr_html_(self) -> str:
        from reportgen.api.display import run_html

        return run_html(self)

    def __repr__(self) -> str:
        return f"<reportgen.Run {self.name!r}: {self.params.size} px, {self.params.steps} steps>"

    # ---- checks -------------------------------------------------------------------------

    def _check_role(self, role: str) -> None:
        if role not in ROLES:
            raise UsageError(f"{role!r} is not a role (allowed: {', '.join(ROLES)})")

    def _check_analysed(self, layer: str) -> None:
        if layer not in self._stages.analysis.layers:
            known = "" if layer in LAYER_NAMES else "not a VGG19 layer, and "
            raise UsageError(
                f"{layer!r}: {known}not analysed in run {self.name!r} (its layers: "
                f"{', '.join(self.layers)}; features() takes any of conv1_1..conv5_4)"
            )


def _shown(figure: NotebookFigure) -> NotebookFigure | None:
    """``figure`` displayed now inside a Jupyter kernel (then None: the cell does not show it a
    second time), else returned."""
    if not in_jupyter_kernel():
        return figure
    from IPython.display import display

    display(figure)
    return None


def _names(layers: Iterable[str]) -> list[str]:
    """Layer names given as a list, or as one name."""
    return [layers] if isinstance(layers, str) else list(layers)


def _layer_names(layers: Iterable[str]) -> list[str]:
    chosen = _names(layers)
    for layer in chosen:
        if layer not in LAYER_NAMES:
            raise UsageError(f"unknown layer {layer!r} (allowed: conv1_1..conv5_4, e.g. conv4_2)")
    return chosen


def _filter_list(filters: int | Sequence[int], channels: int, layer: str) -> list[int]:
    chosen = list(range(min(filters, channels))) if isinstance(filters, int) else list(filters)
    wrong = [k for k in chosen if not 0 <= k < channels]
    if not chosen or wrong:
        raise UsageError(
            f"{layer} has filters 0..{channels - 1}; "
            + (f"no filter {wrong[0]}" if wrong else "no filter chosen")
        )
    return chosen
