"""A run's record: made from stage results and the manifest's labels as they are now, written as
pair.json and read back unchanged; no torch and no build."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from records import make_manifest, make_record, pair_spec, reconstructions, snapshots

from reportgen.site.record import RECORD_FORMAT, RunRecord
from reportgen.stages.arrays import Arrays
from reportgen.stages.results import (
    AnalysisResult,
    FigureSet,
    LayerAnalysis,
    LayerFigures,
    TransferResult,
)
from reportgen.tiles import PairTiles


def test_a_record_survives_pair_json_unchanged():
    record = make_record(reconstructions=reconstructions(), snapshots=snapshots())
    text = json.dumps(record.as_json(), indent=1)
    assert RunRecord.from_json(json.loads(text)) == record


def test_pair_json_names_a_layers_data_as_the_analysis_does():
    data = make_record().as_json()
    assert data["format"] == RECORD_FORMAT
    layer = data["layers"]["conv1_1"]
    assert {"map_sizes", "montages"} <= set(layer) and not {"map_size", "montage"} & set(layer)
    assert layer["map_sizes"]["style"] == [16, 16] and layer["montages"]["content"]["columns"] == 8


def test_a_record_of_another_format_is_refused():
    data = make_record().as_json() | {"format": 3}  # older than any this reads
    with pytest.raises(ValueError, match="format"):
        RunRecord.from_json(data)


def test_a_variants_record_names_its_folder_and_what_it_changed():
    record = make_record(variant="strong", changed=("style_weight",))
    assert record.name == "cat/strong" and record.title.endswith("· strong")
    assert record.as_json()["changed"] == ["style_weight"]


def _stage_results(record: RunRecord) -> tuple[TransferResult, AnalysisResult, FigureSet]:
    """The stage results a build would have made the record from."""
    transfer = TransferResult(
        content=record.inputs["content"].image,
        styles=(record.inputs["style"].image,),
        weights=record.weights,
        precision=record.precision,
        device=record.device,
        losses=record.losses,
        final=record.final,
        scales=record.scales,
        snapshots=record.snapshots,
        reconstructions=record.reconstructions,
        timings={"load": 0.0123, "transfer": 0.98765},
        batch_size=1,
        peak_memory=record.peak_memory,
        images=Arrays(),
    )
    layers = {
        name: LayerAnalysis(
            name,
            info.channels,
            info.map_sizes,
            info.top_cells,
            info.top_pairs,
            info.top_pairs_normalised,
            info.montages,
            PairTiles((1, 3, 4, 7), 16, 16),
        )
        for name, info in record.layers.items()
    }
    analysis = AnalysisResult(layers, record.stylisation, 0.3333, Arrays())
    figures = {
        name: LayerFigures(info.gram_scale, info.correlation_heatmap)
        for name, info in record.layers.items()
    }
    return transfer, analysis, FigureSet(figures, 1.25, record.files)


def test_a_record_takes_its_labels_from_the_manifest_as_it_is_now(tmp_path):
    """Titles, notes, file names and weights are the manifest's at build time: renaming a pair
    or moving an image changes the record, not the stages' results."""
    made = make_record()
    pair = dataclasses.replace(
        pair_spec("renamed", "A new title"),
        notes="Retitled after the run.",
        content=Path("/study/photos/cat.png"),
    )
    manifest = make_manifest(pair)
    record = RunRecord.of(manifest.runs[0], manifest, *_stage_results(made))
    assert (record.id, record.title, record.notes) == (
        "renamed",
        "A new title",
        "Retitled after the run.",
    )
    assert record.inputs["content"].file == "photos/cat.png"  # relative to the manifest
    assert record.parameters.weights == "caffe"
    # Phases in the order they run, to the millisecond.
    assert record.timings == {"load": 0.012, "transfer": 0.988, "analysis": 0.333, "figures": 1.25}
    assert record.layers["conv4_2"].is_content_layer and not record.layers["conv4_2"].is_style_layer
    assert record.layers["conv1_1"].is_style_layer
