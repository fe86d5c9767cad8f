"""What each stage of a run hands to the next: frozen, numpy-only, each with its own save/load.

    transfer  -> TransferResult   the images as fed and as saved, per-step losses, provenance
    analysis  -> AnalysisResult   Grams, rankings, distances, the map tiles the figures show
    figures   -> FigureSet        what the figures stage measured while drawing (scales, files)

A result is saved as one JSON file (its small part) and, where it has arrays, one ``.npz``
(:class:`reportgen.stages.arrays.Arrays`, read on demand).  Nothing here names a pair, a title or a
file as the manifest writes it: those labels are joined when pages are built, so renaming a pair
or moving an image reuses every stage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reportgen.grams import GramCell, per_position
from reportgen.manifest import ResolvedPrecision
from reportgen.paths import shared_between_runs
from reportgen.stages.arrays import Arrays
from reportgen.tiles import MontageLayout, PairTiles


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1))


def _cells(cells: list) -> tuple[GramCell, ...]:
    return tuple(GramCell.from_list(cell) for cell in cells)


def _lists(cells: tuple[GramCell, ...]) -> list[list]:
    return [cell.as_list() for cell in cells]


# ---- transfer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRecord:
    """Loss terms at one evaluation, already multiplied by their weights (alpha, beta·w_l, tv)."""

    total: float
    content: float
    style: dict[str, float]
    tv: float = 0.0

    def as_dict(self) -> dict:
        return {
            "total": self.total,
            "content": self.content,
            "style": dict(self.style),
            "tv": self.tv,
        }

    @classmethod
    def from_dict(cls, values: dict) -> StepRecord:
        return cls(values["total"], values["content"], dict(values["style"]), values["tv"])


@dataclass(frozen=True)
class LossHistory:
    """Every step's loss terms, as columns (step k is index k − 1)."""

    total: tuple[float, ...]
    content: tuple[float, ...]
    style: dict[str, tuple[float, ...]]  # layer -> its weighted term at each step
    tv: tuple[float, ...]

    @classmethod
    def of(cls, records: list[StepRecord]) -> LossHistory:
        layers = list(records[0].style) if records else []
        return cls(
            tuple(r.total for r in records),
            tuple(r.content for r in records),
            {layer: tuple(r.style[layer] for r in records) for layer in layers},
            tuple(r.tv for r in records),
        )

    @property
    def steps(self) -> list[int]:
        return list(range(1, len(self.total) + 1))

    def as_columns(self) -> dict:
        """The columns of a record's ``losses``: step, total, content, style (by layer), tv."""
        return {
            "step": self.steps,
            "total": list(self.total),
            "content": list(self.content),
            "style": {layer: list(values) for layer, values in self.style.items()},
            "tv": list(self.tv),
        }

    @classmethod
    def from_columns(cls, columns: dict) -> LossHistory:
        return cls(
            tuple(columns["total"]),
            tuple(columns["content"]),
            {k: tuple(v) for k, v in columns["style"].items()},
            tuple(columns["tv"]),
        )


@dataclass(frozen=True)
class Scale:
    """One scale of a coarse-to-fine transfer: the image's size there and its first step
    (1-based)."""

    width: int
    height: int
    first_step: int

    def as_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "first_step": self.first_step}


@dataclass(frozen=True)
class InputImage:
    """One input image as the network was fed it (its file name is a label: not here)."""

    sha256: str
    original_size: tuple[int, int]  # (width, height) of the file, EXIF orientation applied
    size: tuple[int, int]  # (width, height) fed to the network
    notes: tuple[str, ...]  # what was done to make it usable (alpha flattened, first frame, ...)

    def as_dict(self) -> dict:
        return {
            "sha256": self.sha256,
            "original_size": list(self.original_size),
            "size": list(self.size),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, values: dict) -> InputImage:
        return cls(
            values["sha256"],
            tuple(values["original_size"]),
            tuple(values["size"]),
            tuple(values["notes"]),
        )


@dataclass(frozen=True)
class WeightsUsed:
    """The VGG19 weights a transfer ran with (their file as the manifest names it is a label)."""

    name: str  # caffe, torchvision, or the file's name
    sha256: str
    preprocessing: str  # caffe | torchvision

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256, "preprocessing": self.preprocessing}

    @classmethod
    def from_dict(cls, values: dict[str, str]) -> WeightsUsed:
        return cls(values["name"], values["sha256"], values["preprocessing"])


@dataclass(frozen=True)
class DeviceInfo:
    """Where a transfer ran, and the versions it ran with."""

    device: str  # cpu, cuda:0, ...
    device_name: str
    threads: int
    versions: dict[str, str | None]  # package -> version (None: not installed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "device_name": self.device_name,
            "threads": self.threads,
            "versions": dict(self.versions),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DeviceInfo:
        return cls(
            values["device"], values["device_name"], values["threads"], dict(values["versions"])
        )


@dataclass(frozen=True)
class SnapshotInfo:
    """The image after ``step`` steps (0: the start), of ``size`` (width, height), and its total
    loss; its pixels are ``TransferResult.images[snapshot_name(step)]``."""

    step: int
    size: tuple[int, int]
    total: float


@dataclass(frozen=True)
class Reconstruction:
    """An image rebuilt from noise out of one representation (the paper's Figure 1): ``kind``
    content at ``layers[-1]``, or style over ``layers``; its pixels are
    ``TransferResult.images[reconstruction_name(kind, layers[-1])]``."""

    kind: Literal["content", "style"]
    layers: tuple[str, ...]
    loss: float


# The image of each role as the network saw it, in ``TransferResult.images``: for the result, the
# picture it optimised (under luminance-only transfer, the colours joined to the saved result
# afterwards are none of its doing).  The analysis and a notebook's feature maps both read these.
NETWORK_IMAGES: dict[str, str] = {"content": "content", "style": "style", "result": "optimised"}


def style_role(index: int) -> str:
    """The name of a run's ``index``-th style image (from 0) among its images and Grams:
    ``style`` for the first (the analyses' style role), ``style2``, ``style3``... for the
    others of a blend."""
    return "style" if index == 0 else f"style{index + 1}"


def mask_name(index: int) -> str:
    """The mask of a run's ``index``-th region (from 0): (H, W) float32 in 0..1, the content's
    size, as the transfer weighed its style's Grams."""
    return f"mask/{index + 1}"


def snapshot_name(step: int) -> str:
    return f"snapshot/{step}"


def reconstruction_name(kind: str, deepest_layer: str) -> str:
    return f"reconstruction/{kind}/{deepest_layer}"


@dataclass(frozen=True)
class TransferResult:
    """The transfer stage of one run.

    ``images`` holds (H, W, 3) uint8 RGB arrays: ``content`` and each style image
    (:func:`style_role`) as the network was fed them, ``optimised`` (the picture the optimiser
    found) and ``result`` (as saved and shown: under luminance-only transfer, the optimised
    luminance in the content image's colours), and
    the snapshots' and reconstructions' pixels (:func:`snapshot_name`, :func:`reconstruction_name`).
    """

    content: InputImage
    styles: tuple[InputImage, ...]  # one, or those of a blend in the manifest's order
    weights: WeightsUsed
    precision: ResolvedPrecision  # of the optimisation's network passes, as resolved there
    device: DeviceInfo
    losses: LossHistory  # one entry per step, the loss *before* that step's update
    final: StepRecord  # the loss of the saved 8-bit picture, in float32
    scales: tuple[Scale, ...]
    snapshots: tuple[SnapshotInfo, ...]
    reconstructions: tuple[Reconstruction, ...] | None
    timings: dict[str, float]  # seconds: load, transfer (and reconstructions)
    batch_size: int  # runs optimised together; their transfer time and peak memory are shared
    peak_memory: dict[str, int]
    images: Arrays

    FILE = "transfer.json"
    ARRAYS = "images.npz"

    @property
    def style(self) -> InputImage:
        """The first style image: the one the analyses' ``style`` role shows."""
        return self.styles[0]

    @property
    def masks(self) -> list[np.ndarray]:
        """Each region's mask, (H, W) float32 in 0..1 (:func:`mask_name`); empty when the
        styles covered the whole image."""
        return (
            [self.images[mask_name(k)] for k in range(len(self.styles))]
            if (mask_name(0) in self.images)
            else []
        )

    def save(self, folder: Path) -> None:
        self.images.save(folder / self.ARRAYS)
        _write_json(folder / self.FILE, self._json())

    def _json(self) -> dict:
        styles: dict[str, Any] = {"style": self.style.as_dict()}
        if len(self.styles) > 1:  # a single style's entry reads as before blends
            styles["more_styles"] = [style.as_dict() for style in self.styles[1:]]
        return {
            "content": self.content.as_dict(),
            **styles,
            "weights": self.weights.as_dict(),
            "precision": self.precision,
            "device": self.device.as_dict(),
            "losses": self.losses.as_columns(),
            "final": self.final.as_dict(),
            "scales": [scale.as_dict() for scale in self.scales],
            "snapshots": [
                {"step": s.step, "size": list(s.size), "total": s.total} for s in self.snapshots
            ],
            "reconstructions": None
            if self.reconstructions is None
            else [
                {"kind": r.kind, "layers": list(r.layers), "loss": r.loss}
                for r in self.reconstructions
            ],
            "timings": self.timings,
            "batch_size": self.batch_size,
            "peak_memory": self.peak_memory,
        }

    @classmethod
    def load(cls, folder: Path) -> TransferResult:
        data = json.loads((folder / cls.FILE).read_text())
        return cls(
            content=InputImage.from_dict(data["content"]),
            styles=tuple(
                InputImage.from_dict(style)
                for style in [data["style"], *data.get("more_styles", [])]
            ),
            weights=WeightsUsed.from_dict(data["weights"]),
            precision=data["precision"],
            device=DeviceInfo.from_dict(data["device"]),
            losses=LossHistory.from_columns(data["losses"]),
            final=StepRecord.from_dict(data["final"]),
            scales=tuple(Scale(**scale) for scale in data["scales"]),
            snapshots=tuple(
                SnapshotInfo(s["step"], tuple(s["size"]), s["total"]) for s in data["snapshots"]
            ),
            reconstructions=None
            if data["reconstructions"] is None
            else tuple(
                Reconstruction(r["kind"], tuple(r["layers"]), r["loss"])
                for r in data["reconstructions"]
            ),
            timings=data["timings"],
            batch_size=data["batch_size"],
            peak_memory=data["peak_memory"],
            images=Arrays.at(folder / cls.ARRAYS),
        )


# ---- analysis -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerAnalysis:
    """One analysed layer: per role (``content``, ``style``, ``result``) its maps' size, its
    Gram's largest cells and filter pairs, and how its montage lays the maps out."""

    layer: str
    channels: int
    map_sizes: dict[str, tuple[int, int]]  # role -> (width, height) of the feature maps
    top_cells: dict[str, tuple[GramCell, ...]]  # role -> largest cells, diagonal included
    top_pairs: dict[str, tuple[GramCell, ...]]  # role -> largest off-diagonal cells (i < j)
    top_pairs_normalised: tuple[GramCell, ...]  # the style image's, ranked by correlation
    montages: dict[str, MontageLayout]  # role (and "difference" at the content layer) -> layout
    pair_tiles: PairTiles  # the style maps of the filters in top_pairs["style"]
    # The result's raw G_ij at each of the style image's top pairs, in their order.
    style_pairs_in_result: tuple[float, ...] = ()

    def as_dict(self) -> dict:
        return {
            "channels": self.channels,
            "map_sizes": {role: list(size) for role, size in self.map_sizes.items()},
            "top_cells": {role: _lists(cells) for role, cells in self.top_cells.items()},
            "top_pairs": {role: _lists(cells) for role, cells in self.top_pairs.items()},
            "top_pairs_normalised": _lists(self.top_pairs_normalised),
            "montages": {kind: layout.as_dict() for kind, layout in self.montages.items()},
            "pair_tiles": self.pair_tiles.as_dict(),
            "style_pairs_in_result": list(self.style_pairs_in_result),
        }

    @classmethod
    def from_dict(cls, layer: str, values: dict) -> LayerAnalysis:
        return cls(
            layer=layer,
            channels=values["channels"],
            map_sizes={role: tuple(size) for role, size in values["map_sizes"].items()},
            top_cells={role: _cells(cells) for role, cells in values["top_cells"].items()},
            top_pairs={role: _cells(cells) for role, cells in values["top_pairs"].items()},
            top_pairs_normalised=_cells(values["top_pairs_normalised"]),
            montages={
                kind: MontageLayout.from_dict(layout) for kind, layout in values["montages"].items()
            },
            pair_tiles=PairTiles.from_dict(values["pair_tiles"]),
            style_pairs_in_result=tuple(values["style_pairs_in_result"]),
        )


@dataclass(frozen=True)
class GramDistances:
    """At one style layer: the result's and the content image's Gram distance to the style
    image's (:func:`reportgen.grams.relative_distance`)."""

    result: float
    content: float

    @property
    def closer(self) -> bool:
        """Whether the result's Gram is closer to the style's than the content image's is."""
        return self.result < self.content


@dataclass(frozen=True)
class MapDistances:
    """At the content layer: the result's and the style image's (resized to the content's
    shape) map distance to the content image's."""

    result: float
    style: float


@dataclass(frozen=True)
class Stylisation:
    """How far the result moved: towards the style target (the style image's Grams, or the
    blend of several) at each style layer, away from the content at the content layer; and,
    for a blend, towards each of its style images."""

    style_gram: dict[str, GramDistances]  # style layer -> distances to the target
    content_features: MapDistances
    # A blend's: style layer -> the distances to each style image's Gram, in the run's order.
    per_style: dict[str, tuple[GramDistances, ...]] = dataclasses.field(default_factory=dict)
    # Regions': style layer -> each region's Gram (guided by its mask) against its style's, and
    # each region's share of the masks' area (which weighs the styles into the target above).
    per_region: dict[str, tuple[GramDistances, ...]] = dataclasses.field(default_factory=dict)
    region_shares: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "style_gram": {layer: _distances(d) for layer, d in self.style_gram.items()},
            "content_features": {
                "result": self.content_features.result,
                "style": self.content_features.style,
            },
        }
        if self.per_style:  # a single style's entry reads as before blends
            values["per_style"] = {
                layer: [_distances(d) for d in row] for layer, row in self.per_style.items()
            }
        if self.per_region:
            values["per_region"] = {
                layer: [_distances(d) for d in row] for layer, row in self.per_region.items()
            }
            values["region_shares"] = list(self.region_shares)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Stylisation:
        style_gram = {
            layer: GramDistances(d["result"], d["content"])
            for layer, d in values["style_gram"].items()
        }

        def rows(key: str) -> dict[str, tuple[GramDistances, ...]]:
            return {
                layer: tuple(GramDistances(d["result"], d["content"]) for d in row)
                for layer, row in values.get(key, {}).items()
            }

        features = values["content_features"]
        return cls(
            style_gram,
            MapDistances(features["result"], features["style"]),
            rows("per_style"),
            rows("per_region"),
            tuple(values.get("region_shares", ())),
        )


def _distances(distances: GramDistances) -> dict[str, float]:
    return {"result": distances.result, "content": distances.content}


def gram_name(role: str, layer: str) -> str:
    return f"gram/{role}/{layer}"


def blend_target_name(layer: str) -> str:
    """A blend's target at ``layer``: the weighted mean of its style images' Grams per position
    ((C, C) float32)."""
    return f"blend/{layer}"


def tiles_name(kind: str, layer: str) -> str:
    """``kind``: a role, or ``difference`` (result − content, at the content layer)."""
    return f"tiles/{kind}/{layer}"


def pair_tiles_name(layer: str) -> str:
    return f"pair_tiles/{layer}"


def contributions_name(role: str, layer: str) -> str:
    """Each position's share in the Gram cells of the style image's top pairs, in ``role``'s
    image ((K, h, w) float32, :func:`reportgen.tiles.contribution_tiles`)."""
    return f"contributions/{role}/{layer}"


def peaks_name(role: str, layer: str) -> str:
    """Each filter's largest activation in ``role``'s image and where it is ((C, 3) float32:
    value, row, column of the map, :func:`reportgen.tiles.peaks`)."""
    return f"peaks/{role}/{layer}"


@dataclass(frozen=True)
class AnalysisResult:
    """The analysis stage of one run.

    ``arrays`` holds each role's raw Gram ``F·Fᵀ`` at each layer ((C, C) float32,
    :func:`gram_name`; a blend's other style images too, by :func:`style_role`, and its
    target, :func:`blend_target_name`), the montage tiles of every map ((C, h, w) uint8,
    :func:`tiles_name`),
    the pair figures' tiles ((K, h, w) uint8, :func:`pair_tiles_name`) and contribution maps
    (:func:`contributions_name`, for the style image and the result), and each filter's peak in
    each image (:func:`peaks_name`).
    """

    layers: dict[str, LayerAnalysis]  # in network order
    stylisation: Stylisation
    seconds: float
    arrays: Arrays

    FILE = "analysis.json"
    ARRAYS = "arrays.npz"

    def gram(self, role: str, layer: str) -> np.ndarray:
        return self.arrays[gram_name(role, layer)]

    def gram_per_position(self, role: str, layer: str) -> np.ndarray:
        """``role``'s Gram at ``layer`` divided by the number of positions of its maps."""
        width, height = self.layers[layer].map_sizes[role]
        return per_position(self.gram(role, layer), width * height)

    @property
    def blended(self) -> bool:
        """Whether the run's style target is a blend of several style images."""
        return bool(self.stylisation.per_style)

    def target_gram(self, layer: str) -> np.ndarray:
        """(C, C) the Gram per position the transfer aimed at, at ``layer``: the style image's,
        or the blend of the run's style images."""
        if self.blended:
            return self.arrays[blend_target_name(layer)]
        return self.gram_per_position("style", layer)

    def save(self, folder: Path) -> None:
        self.arrays.save(folder / self.ARRAYS)
        _write_json(
            folder / self.FILE,
            {
                "layers": {layer: analysis.as_dict() for layer, analysis in self.layers.items()},
                "stylisation": self.stylisation.as_dict(),
                "seconds": self.seconds,
            },
        )

    @classmethod
    def load(cls, folder: Path) -> AnalysisResult:
        data = json.loads((folder / cls.FILE).read_text())
        return cls(
            layers={
                layer: LayerAnalysis.from_dict(layer, values)
                for layer, values in data["layers"].items()
            },
            stylisation=Stylisation.from_dict(data["stylisation"]),
            seconds=data["seconds"],
            arrays=Arrays.at(folder / cls.ARRAYS),
        )


# ---- figures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GramScale:
    """The colour scale of a layer's Gram comparison: symmetric log beyond ``linear_below``, up
    to ``limit``; each pixel the mean of ``block`` × ``block`` cells."""

    limit: float
    linear_below: float
    block: int

    def as_dict(self) -> dict:
        return {"limit": self.limit, "linear_below": self.linear_below, "block": self.block}


@dataclass(frozen=True)
class HeatmapPlacement:
    """Where a matrix sits in its heatmap image (pixels from the top left), so that the page can
    tell which cell the pointer is over, and the value its darkest colour stands for."""

    size: tuple[int, int]
    axes: tuple[int, int, int, int]
    channels: int
    low: float

    def as_dict(self) -> dict:
        return {
            "size": list(self.size),
            "axes": list(self.axes),
            "channels": self.channels,
            "low": self.low,
        }


@dataclass(frozen=True)
class LayerFigures:
    gram_scale: GramScale
    correlation: HeatmapPlacement
    # Per top pair of the style image: the share of the Gram cell, over the average position's,
    # that the brightest colour of its contribution maps stands for (none without pair figures).
    pair_limits: tuple[float, ...] = ()


@dataclass(frozen=True)
class FigureSet:
    """The figures stage of one run: its folder (named by :mod:`reportgen.paths`) holds every
    image and figure file the run's pages show; this is what drawing them measured."""

    layers: dict[str, LayerFigures]
    seconds: float
    files: dict[str, int]  # every file of the run's folder (run-folder path) and its size
    # sha256 of the files runs may share (reportgen.paths.shared_between_runs), hashed while
    # their bytes were at hand: the site writer stores files with equal bytes once.
    digests: dict[str, str] = dataclasses.field(default_factory=dict)

    FILE = "figures.json"

    @classmethod
    def of_folder(cls, layers: dict[str, LayerFigures], seconds: float, folder: Path) -> FigureSet:
        """The set of a run whose figures are all in ``folder``: its files listed and hashed."""
        files = {
            p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        digests = {
            inner: hashlib.sha256((folder / inner).read_bytes()).hexdigest()
            for inner in files
            if shared_between_runs(inner)
        }
        return cls(layers, seconds, files, digests)

    @classmethod
    def joined(
        cls,
        pieces: Iterable[dict[str, LayerFigures]],
        order: Iterable[str],
        seconds: float,
        folder: Path,
    ) -> FigureSet:
        """The set of a run drawn in pieces into ``folder``, in ``seconds`` from the first
        piece's start to the last one's end: the pieces' layers in ``order`` (the analysis's),
        and every file they wrote."""
        drawn = {layer: figures for piece in pieces for layer, figures in piece.items()}
        return cls.of_folder({layer: drawn[layer] for layer in order}, seconds, folder)

    def save(self, folder: Path) -> None:
        _write_json(
            folder / self.FILE,
            {
                "layers": {
                    layer: {
                        "gram_scale": f.gram_scale.as_dict(),
                        "correlation": f.correlation.as_dict(),
                        "pair_limits": list(f.pair_limits),
                    }
                    for layer, f in self.layers.items()
                },
                "seconds": self.seconds,
                "files": self.files,
                "digests": self.digests,
            },
        )

    @classmethod
    def load(cls, folder: Path) -> FigureSet:
        data = json.loads((folder / cls.FILE).read_text())
        layers = {}
        for layer, values in data["layers"].items():
            heatmap = values["correlation"]
            layers[layer] = LayerFigures(
                GramScale(**values["gram_scale"]),
                HeatmapPlacement(
                    tuple(heatmap["size"]),
                    tuple(heatmap["axes"]),
                    heatmap["channels"],
                    heatmap["low"],
                ),
                tuple(values["pair_limits"]),
            )
        return cls(layers, data["seconds"], data["files"], data.get("digests", {}))
