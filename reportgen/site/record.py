"""A run's record: what its pages show and its ``data/pair.json`` says, as one frozen value.

Made once per build from the run's stage results and its labels as the manifest has them now
(id, title, notes, the file names and weights as written), never patched: the stages' cache keys
know nothing of labels, so renaming a pair reuses every stage.  The pages are built from this
same value (:mod:`reportgen.site.views`), so what a page shows and what its data file says
cannot disagree; :meth:`RunRecord.from_json` reads a published ``pair.json`` back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from reportgen.grams import GramCell
from reportgen.manifest import Manifest, Params, RunSpec
from reportgen.paths import reconstruction_file, snapshot_file
from reportgen.stages.fingerprint import STAGE_VERSIONS
from reportgen.stages.results import (
    AnalysisResult,
    DeviceInfo,
    FigureSet,
    GramScale,
    HeatmapPlacement,
    InputImage,
    LossHistory,
    Reconstruction,
    Scale,
    SnapshotInfo,
    StepRecord,
    Stylisation,
    TransferResult,
    WeightsUsed,
    style_role,
)
from reportgen.tiles import MontageLayout

# 5: a blend's "style2", "style3"... inputs, "parameters.style_blend" and "stylisation.per_style";
# regions' "regions" and "stylisation.per_region"
# (a record of format 4 reads as a run of one style image).
# 4: a layer's "style_pairs_in_result" and "pair_limits" (the contribution maps of its pair
# figures).  3: a layer's "map_sizes" and "montages", as the analysis names them (2: "map_size",
# "montage").
RECORD_FORMAT = 5
READABLE_FORMATS = (4, 5)
# The order of a record's timings, as the phases ran before they were stages.
TIMINGS_ORDER = ("load", "transfer", "analysis", "figures", "reconstructions")


@dataclass(frozen=True)
class InputRecord:
    """One input image: its file as the manifest names it, and as the network was fed it."""

    file: str  # relative to the manifest
    image: InputImage


@dataclass(frozen=True)
class LayerRecord:
    """One analysed layer of a run: its analysis and the scales its figures were drawn on."""

    channels: int
    map_sizes: dict[str, tuple[int, int]]  # role -> (width, height) of its feature maps
    montages: dict[str, MontageLayout]  # role (and "difference" at the content layer) -> layout
    top_pairs: dict[str, tuple[GramCell, ...]]  # role -> largest off-diagonal cells of its Gram
    top_cells: dict[str, tuple[GramCell, ...]]  # role -> largest cells, diagonal included
    top_pairs_normalised: tuple[GramCell, ...]  # the style image's, ranked by correlation
    gram_scale: GramScale
    correlation_heatmap: HeatmapPlacement
    is_style_layer: bool
    is_content_layer: bool
    # The result's raw G_ij at each of the style image's top pairs, and the share each pair's
    # contribution maps show at their brightest (over the average position's; none without them).
    style_pairs_in_result: tuple[float, ...] = ()
    pair_limits: tuple[float, ...] = ()


@dataclass(frozen=True)
class RunRecord:
    """Everything known of one run (a pair, or one variant of a pair)."""

    id: str  # the pair's
    variant: str | None
    changed: tuple[str, ...]  # the parameters the variant sets itself
    title: str
    notes: str
    # content, style, and a blend's other style images (style2, ...: results.style_role)
    inputs: dict[str, InputRecord]
    parameters: Params  # as resolved; weights as the manifest writes them
    weights: WeightsUsed
    precision: str  # of the optimisation's network passes, as resolved on the device that ran it
    device: DeviceInfo
    timings: dict[str, float]  # seconds of each phase, in TIMINGS_ORDER
    batch_size: int  # runs optimised together; transfer time and peak memory are shared
    peak_memory: dict[str, int]
    losses: LossHistory
    final: StepRecord  # of the saved 8-bit picture, in float32
    scales: tuple[Scale, ...]
    snapshots: tuple[SnapshotInfo, ...]
    stylisation: Stylisation
    layers: dict[str, LayerRecord]  # in network order
    reconstructions: tuple[Reconstruction, ...] | None  # None: not asked for
    files: dict[str, int]  # every file of the run's folder and its size (the Grams' too)
    stage_versions: dict[str, int]
    # ``regions:``: each region's mask file (relative to the manifest); its style is the input
    # of the same position (results.style_role).  Empty without regions.
    masks: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``pair`` or ``pair/variant``: the run's folder under ``pairs/``."""
        return f"{self.id}/{self.variant}" if self.variant else self.id

    @property
    def style_count(self) -> int:
        """The run's style images: one, a blend's, or one per region."""
        return len(self.inputs) - 1

    @property
    def steps(self) -> int:
        """Steps taken in all (every scale's)."""
        return len(self.losses.total)

    @classmethod
    def of(
        cls,
        run: RunSpec,
        manifest: Manifest,
        transfer: TransferResult,
        analysis: AnalysisResult,
        figures: FigureSet,
    ) -> RunRecord:
        params = run.params
        timings = {**transfer.timings, "analysis": analysis.seconds, "figures": figures.seconds}
        layers = {
            layer: LayerRecord(
                channels=info.channels,
                map_sizes=info.map_sizes,
                montages=info.montages,
                top_pairs=info.top_pairs,
                top_cells=info.top_cells,
                top_pairs_normalised=info.top_pairs_normalised,
                gram_scale=figures.layers[layer].gram_scale,
                correlation_heatmap=figures.layers[layer].correlation,
                is_style_layer=layer in params.style_layer_weights,
                is_content_layer=layer == params.content_layer,
                style_pairs_in_result=info.style_pairs_in_result,
                pair_limits=figures.layers[layer].pair_limits,
            )
            for layer, info in analysis.layers.items()
        }
        return cls(
            id=run.pair.id,
            variant=run.variant.id if run.variant else None,
            changed=run.variant.changed if run.variant else (),
            title=run.title,
            notes=run.pair.notes,
            inputs={
                "content": InputRecord(manifest.relative(run.pair.content), transfer.content),
                **{
                    style_role(k): InputRecord(manifest.relative(path), image)
                    for k, (path, image) in enumerate(
                        zip(run.pair.styles, transfer.styles, strict=True)
                    )
                },
            },
            parameters=dataclasses.replace(
                params, weights=manifest.weights_as_written(params.weights)
            ),
            weights=transfer.weights,
            precision=transfer.precision,
            device=transfer.device,
            timings={key: round(timings[key], 3) for key in TIMINGS_ORDER if key in timings},
            batch_size=transfer.batch_size,
            peak_memory=transfer.peak_memory,
            losses=transfer.losses,
            final=transfer.final,
            scales=transfer.scales,
            snapshots=transfer.snapshots,
            stylisation=analysis.stylisation,
            layers=layers,
            reconstructions=transfer.reconstructions,
            files=figures.files,
            stage_versions=dict(STAGE_VERSIONS),
            masks=tuple(manifest.relative(mask) for mask in run.pair.masks),
        )

    def as_json(self) -> dict[str, Any]:
        """The content of ``data/pair.json``."""
        return {
            "format": RECORD_FORMAT,
            "stage_versions": self.stage_versions,
            "id": self.id,
            "variant": self.variant,
            "changed": list(self.changed),
            "title": self.title,
            "notes": self.notes,
            "inputs": {
                role: {"file": item.file, **item.image.as_dict()}
                for role, item in self.inputs.items()
            },
            "parameters": self.parameters.as_dict(),
            "weights": self.weights.as_dict(),
            "activation": self.parameters.activation,
            "precision": self.precision,
            **self.device.as_dict(),
            "timings": self.timings,
            "batch_size": self.batch_size,
            "peak_memory": self.peak_memory,
            "losses": {**self.losses.as_columns(), "final": self.final.as_dict()},
            "scales": [scale.as_dict() for scale in self.scales],
            "snapshots": [
                {
                    "step": shot.step,
                    "file": snapshot_file(shot.step),
                    "size": list(shot.size),
                    "total": shot.total,
                }
                for shot in self.snapshots
            ],
            "stylisation": self.stylisation.as_dict(),
            "layers": {layer: _layer_json(info) for layer, info in self.layers.items()},
            "reconstructions": _reconstructions_json(self.reconstructions),
            "files": self.files,
            **(
                {
                    "regions": [
                        {"mask": mask, "style": style_role(k)} for k, mask in enumerate(self.masks)
                    ]
                }
                if self.masks
                else {}
            ),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """A record read back from a ``pair.json`` of this format."""
        if data.get("format") not in READABLE_FORMATS:
            raise ValueError(f"a record of format {data.get('format')}, not {RECORD_FORMAT}")
        parameters = dict(data["parameters"])
        parameters["style_layers"] = tuple(parameters["style_layers"].items())
        parameters["style_blend"] = tuple(parameters.get("style_blend", ()))
        losses = data["losses"]
        return cls(
            id=data["id"],
            variant=data["variant"],
            changed=tuple(data["changed"]),
            title=data["title"],
            notes=data["notes"],
            inputs={role: _input(item) for role, item in data["inputs"].items()},
            parameters=Params(**parameters),
            weights=WeightsUsed.from_dict(data["weights"]),
            precision=data["precision"],
            device=DeviceInfo.from_dict(data),
            timings=data["timings"],
            batch_size=data["batch_size"],
            peak_memory=data["peak_memory"],
            losses=LossHistory.from_columns(losses),
            final=StepRecord.from_dict(losses["final"]),
            scales=tuple(Scale(**scale) for scale in data["scales"]),
            snapshots=tuple(
                SnapshotInfo(s["step"], (s["size"][0], s["size"][1]), s["total"])
                for s in data["snapshots"]
            ),
            stylisation=Stylisation.from_dict(data["stylisation"]),
            layers={layer: _layer(info) for layer, info in data["layers"].items()},
            reconstructions=_reconstructions(data["reconstructions"]),
            files=data["files"],
            stage_versions=data["stage_versions"],
            masks=tuple(region["mask"] for region in data.get("regions", [])),
        )


def _cells(cells: tuple[GramCell, ...]) -> list[list[Any]]:
    return [cell.as_list() for cell in cells]


def _layer_json(info: LayerRecord) -> dict[str, Any]:
    return {
        "channels": info.channels,
        "map_sizes": {role: list(size) for role, size in info.map_sizes.items()},
        "montages": {kind: montage.as_dict() for kind, montage in info.montages.items()},
        "top_pairs": {role: _cells(cells) for role, cells in info.top_pairs.items()},
        "top_cells": {role: _cells(cells) for role, cells in info.top_cells.items()},
        "top_pairs_normalised": _cells(info.top_pairs_normalised),
        "gram_scale": info.gram_scale.as_dict(),
        "correlation_heatmap": info.correlation_heatmap.as_dict(),
        "is_style_layer": info.is_style_layer,
        "is_content_layer": info.is_content_layer,
        "style_pairs_in_result": list(info.style_pairs_in_result),
        "pair_limits": list(info.pair_limits),
    }


def _layer(values: dict[str, Any]) -> LayerRecord:
    def cells(listed: list[list[Any]]) -> tuple[GramCell, ...]:
        return tuple(GramCell.from_list(cell) for cell in listed)

    heatmap = values["correlation_heatmap"]
    return LayerRecord(
        channels=values["channels"],
        map_sizes={role: (size[0], size[1]) for role, size in values["map_sizes"].items()},
        montages={
            kind: MontageLayout.from_dict(layout) for kind, layout in values["montages"].items()
        },
        top_pairs={role: cells(listed) for role, listed in values["top_pairs"].items()},
        top_cells={role: cells(listed) for role, listed in values["top_cells"].items()},
        top_pairs_normalised=cells(values["top_pairs_normalised"]),
        gram_scale=GramScale(**values["gram_scale"]),
        correlation_heatmap=HeatmapPlacement(
            (heatmap["size"][0], heatmap["size"][1]),
            tuple(heatmap["axes"]),
            heatmap["channels"],
            heatmap["low"],
        ),
        is_style_layer=values["is_style_layer"],
        is_content_layer=values["is_content_layer"],
        style_pairs_in_result=tuple(values["style_pairs_in_result"]),
        pair_limits=tuple(values["pair_limits"]),
    )


def _input(values: dict[str, Any]) -> InputRecord:
    return InputRecord(values["file"], InputImage.from_dict(values))


def _reconstructions_json(
    made: tuple[Reconstruction, ...] | None,
) -> dict[str, list[dict[str, Any]]] | None:
    if made is None:
        return None
    kinds: dict[str, list[dict[str, Any]]] = {"content": [], "style": []}
    for item in made:
        file = reconstruction_file(item.kind, item.layers[-1])
        kinds[item.kind].append({"layers": list(item.layers), "file": file, "loss": item.loss})
    return kinds


def _reconstructions(
    values: dict[str, list[dict[str, Any]]] | None,
) -> tuple[Reconstruction, ...] | None:
    if values is None:
        return None
    return tuple(
        Reconstruction(
            "content" if kind == "content" else "style", tuple(item["layers"]), item["loss"]
        )
        for kind, items in values.items()
        for item in items
    )
