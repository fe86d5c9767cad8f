"""Records and manifests made in the test, without torch, images or a build: what the site phase
takes, so that a view or a page can be checked on its own."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from reportgen.grams import GramCell
from reportgen.layers import ANALYSED_LAYERS
from reportgen.manifest import Manifest, PairSpec, Params, Variant
from reportgen.paths import ROLES, LayerFiles, image_file, thumbnail_file
from reportgen.site.record import InputRecord, LayerRecord, RunRecord
from reportgen.stages.results import (
    DeviceInfo,
    GramDistances,
    GramScale,
    HeatmapPlacement,
    InputImage,
    LossHistory,
    MapDistances,
    Reconstruction,
    Scale,
    SnapshotInfo,
    StepRecord,
    Stylisation,
    WeightsUsed,
)
from reportgen.tiles import MontageLayout

CHANNELS = 64  # a montage of 8 columns and 8 rows: a grid the stylesheet links
STYLE_WEIGHTS = dict(Params().style_layers)


def layer_record(layer: str, params: Params, *, block: int = 1) -> LayerRecord:
    montage = MontageLayout(CHANNELS, 8, 12, 9, 2)
    montages = {role: montage for role in ROLES}
    if layer == params.content_layer:
        montages["difference"] = montage
    pairs = (GramCell(3, 7, 2.5), GramCell(1, 4, 1.25))
    return LayerRecord(
        channels=CHANNELS,
        map_sizes={"content": (12, 9), "style": (16, 16), "result": (12, 9)},
        montages=montages,
        top_pairs={role: pairs for role in ROLES},
        top_cells={role: (GramCell(3, 3, 9.0), *pairs) for role in ROLES},
        top_pairs_normalised=(GramCell(2, 5, 0.97),),
        gram_scale=GramScale(12.0, 0.012, block),
        correlation_heatmap=HeatmapPlacement(
            (CHANNELS, CHANNELS), (0, 0, CHANNELS, CHANNELS), 64, -0.1
        ),
        is_style_layer=layer in params.style_layer_weights,
        is_content_layer=layer == params.content_layer,
        style_pairs_in_result=(0.5, 0.25),
        pair_limits=(4.0, 3.5),
    )


def drawn_files(
    name_layers: list[str],
    *,
    montages: bool = True,
    pair_sheets: bool = True,
    content_layer: str = "conv4_2",
) -> dict[str, int]:
    """A run folder's files, as the figures stage lists them."""
    files = {image_file(role): 100 for role in ROLES} | {thumbnail_file(role): 10 for role in ROLES}
    for layer in name_layers:
        names = LayerFiles(layer)
        files |= {
            names.gram_heatmap: 1,
            names.gram_comparison: 1,
            names.correlation: 1,
            names.energy: 1,
        }
        if montages:
            files |= {names.maps(role): 1 for role in ROLES}
            if layer == content_layer:
                files[names.difference] = 1
        if pair_sheets:
            files |= {names.pair(rank): 1 for rank in (1, 2)}
    return files


def make_record(
    pair_id: str = "cat",
    *,
    variant: str | None = None,
    changed: tuple[str, ...] = (),
    title: str = "Cat in brush strokes",
    params: Params | None = None,
    files: dict[str, int] | None = None,
    **fields: Any,
) -> RunRecord:
    """A plausible record of one run: 64 filters a layer, three steps, no snapshots."""
    params = params or Params(size=48, steps=3)
    layers = {layer: layer_record(layer, params) for layer in params.analysed_layers}
    style = dict(params.style_layers)
    losses = LossHistory(
        total=(9.0, 4.0, 2.0),
        content=(0.0, 0.5, 0.4),
        style={layer: (w * 3, w * 1.2, w * 0.5) for layer, w in style.items()},
        tv=(0.0, 0.0, 0.0),
    )
    record = RunRecord(
        id=pair_id,
        variant=variant,
        changed=changed,
        title=f"{title} · {variant}" if variant else title,
        notes="",
        inputs={
            "content": InputRecord("img/cat.png", InputImage("c" * 64, (451, 300), (48, 32), ())),
            "style": InputRecord("img/strokes.jpg", InputImage("s" * 64, (640, 640), (48, 48), ())),
        },
        parameters=params,
        weights=WeightsUsed("caffe", "w" * 64, "caffe"),
        precision="float32",
        device=DeviceInfo(
            "cpu", "x86_64", 2, {"python": "3.11.7", "torch": "2.14.1", "cuda": None}
        ),
        timings={"load": 0.01, "transfer": 0.2, "analysis": 0.3, "figures": 1.5},
        batch_size=1,
        peak_memory={"process_rss_bytes": 900_000_000},
        losses=losses,
        final=StepRecord(1.9, 0.4, {layer: w * 0.5 for layer, w in style.items()}),
        scales=(Scale(48, 32, 1),),
        snapshots=(),
        stylisation=Stylisation(
            {layer: GramDistances(0.2, 0.9) for layer in style}, MapDistances(0.4, 1.0)
        ),
        layers=layers,
        reconstructions=None,
        files=files if files is not None else drawn_files(list(layers)),
        stage_versions={"transfer": 9, "analysis": 9, "figures": 9},
    )
    return dataclasses.replace(record, **fields)


def reconstructions() -> tuple[Reconstruction, ...]:
    content = [Reconstruction("content", (layer,), 0.1) for layer in ("conv1_2", "conv4_2")]
    layers = ("conv1_1", "conv2_1")
    style = [Reconstruction("style", layers[: count + 1], 0.2) for count in range(2)]
    return (*content, *style)


def snapshots() -> tuple[SnapshotInfo, ...]:
    return (
        SnapshotInfo(0, (48, 32), 9.0),
        SnapshotInfo(1, (48, 32), 4.0),
        SnapshotInfo(3, (48, 32), 1.9),
    )


def make_manifest(*pairs: PairSpec, title: str = "Study") -> Manifest:
    return Manifest(Path("/study/manifest.yaml"), title, "", pairs)


def pair_spec(pair_id: str, title: str = "", variants: tuple[str, ...] = ()) -> PairSpec:
    params = Params(size=48, steps=3)
    return PairSpec(
        id=pair_id,
        title=title or pair_id,
        notes="",
        content=Path("/study/img/cat.png"),
        styles=(Path("/study/img/strokes.jpg"),),
        params=params,
        line=3,
        variants=tuple(
            Variant(v, dataclasses.replace(params, style_weight=10.0), ("style_weight",))
            for v in variants
        ),
    )


assert set(ANALYSED_LAYERS) <= set(Params().analysed_layers)
