"""How alike a study's style images are: distances against a direct computation, kept between
builds so that one more style costs N distances, and a clustering that puts alike styles side by
side."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from reportgen.site import distances as compare
from reportgen.site.distances import StudyStyles, _distances


@dataclass
class FakeAnalysis:
    """Stands for an analysis: only the style target's Grams per position are read."""

    grams: dict[str, np.ndarray]
    reads: list

    def target_gram(self, layer: str) -> np.ndarray:
        self.reads.append(layer)
        return self.grams[layer]


@dataclass
class FakeResults:
    analysis: FakeAnalysis


def styles_and_results(count: int, seed: int = 0, reads: list | None = None):
    rng = np.random.default_rng(seed)
    reads = [] if reads is None else reads
    results, identities = {}, []
    for k in range(count):
        cluster = k % 3  # three families of styles
        base = np.full((8, 8), float(cluster + 1))
        gram = base + 0.05 * rng.standard_normal((8, 8))
        results[f"run-{k}"] = FakeResults(FakeAnalysis({"conv1_1": gram @ gram.T}, reads))
        identities.append(f"style-{seed}-{k}")
    styles = StudyStyles(identities, [f"s{k}.png" for k in range(count)], list(results))
    return styles, results


def direct(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / ((np.linalg.norm(a) + np.linalg.norm(b)) / 2))


def test_distances_equal_a_direct_computation():
    styles, results = styles_and_results(7)
    matrix = _distances(styles, results, "conv1_1", None)
    grams = [results[name].analysis.grams["conv1_1"] for name in styles.runs]
    expected = np.array([[direct(a, b) for b in grams] for a in grams])
    assert np.allclose(matrix, expected, rtol=1e-9, atol=1e-12) and np.all(np.diag(matrix) == 0)
    assert np.array_equal(matrix, matrix.T)


def test_distances_computed_in_many_tiles_and_partly_kept_equal_a_direct_computation(
    tmp_path: Path, monkeypatch
):
    # Tiles of three styles: rows against kept styles, unknown ones and their own tile.
    monkeypatch.setattr(compare, "TILE_BYTES", 3 * 64 * 8)
    styles, results = styles_and_results(11)
    first = _distances(styles, results, "conv1_1", None)
    compare.keep(
        {
            "conv1_1": compare.StyleComparison(
                "conv1_1", styles, first, list(range(11)), np.zeros((0, 4))
            )
        },
        tmp_path,
    )
    grown, grown_results = styles_and_results(17)
    matrix = _distances(grown, grown_results, "conv1_1", tmp_path)
    grams = [grown_results[name].analysis.grams["conv1_1"] for name in grown.runs]
    expected = np.array([[direct(a, b) for b in grams] for a in grams])
    assert np.allclose(first, expected[:11, :11], rtol=1e-9, atol=1e-12)
    assert np.allclose(matrix, expected, rtol=1e-9, atol=1e-12) and np.array_equal(matrix, matrix.T)


def test_kept_distances_are_reused_and_one_more_style_costs_n(tmp_path: Path, monkeypatch):
    computed = []
    real = compare._symmetric_distances

    def counting(a, b, *args):
        computed.append(a.shape[0] * b.shape[0])
        return real(a, b, *args)

    monkeypatch.setattr(compare, "_symmetric_distances", counting)
    styles, results = styles_and_results(12)
    first = _distances(styles, results, "conv1_1", tmp_path)
    compare.keep(
        {
            "conv1_1": compare.StyleComparison(
                "conv1_1", styles, first, list(range(12)), np.zeros((0, 4))
            )
        },
        tmp_path,
    )
    assert sum(computed) == 12 * 12
    computed.clear()
    assert (
        np.array_equal(_distances(styles, results, "conv1_1", tmp_path), first) and computed == []
    )
    # One more style: its row of distances, nothing else.
    grown, grown_results = styles_and_results(13)
    grown_matrix = _distances(grown, grown_results, "conv1_1", tmp_path)
    assert sum(computed) == 13 and np.array_equal(grown_matrix[:12, :12], first)


def test_the_clustering_puts_alike_styles_side_by_side():
    styles, results = styles_and_results(9)
    matrix = _distances(styles, results, "conv1_1", None)
    order, merges = compare._clustering(matrix)
    assert sorted(order) == list(range(9)) and merges.shape == (8, 4)
    families = [k % 3 for k in order]
    assert families == sorted(families, key=families.index)  # each family one contiguous run
    comparison = compare.StyleComparison("conv1_1", styles, matrix, order, merges)
    assert all(other % 3 == 0 for other in comparison.nearest(0, count=2))


def test_studies_sharing_a_cache_keep_their_distances_apart(tmp_path: Path):
    styles, results = styles_and_results(5)
    first = _distances(styles, results, "conv1_1", tmp_path)
    compare.keep(
        {
            "conv1_1": compare.StyleComparison(
                "conv1_1", styles, first, list(range(5)), np.zeros((0, 4))
            )
        },
        tmp_path,
    )
    # Another study, the same style files, other Grams (its own weights, say): nothing of the
    # first's is taken.
    other, other_results = styles_and_results(5, seed=0)
    other = dataclasses.replace(other, study="another")
    for run in other_results.values():
        run.analysis.grams["conv1_1"] = run.analysis.grams["conv1_1"] * 2 + 1
    grams = [other_results[name].analysis.grams["conv1_1"] for name in other.runs]
    expected = np.array([[direct(a, b) for b in grams] for a in grams])
    assert np.allclose(
        _distances(other, other_results, "conv1_1", tmp_path), expected, rtol=1e-9, atol=1e-12
    )


def _run(style: str, content: str, preserve_color: str):
    params = SimpleNamespace(activation="relu", preserve_color=preserve_color, blend_weights=(1.0,))
    run = SimpleNamespace(
        params=params,
        pair=SimpleNamespace(
            styles=(Path(f"images/{style}"),), content=f"images/{content}", masks=()
        ),
    )
    image = lambda name: SimpleNamespace(sha256=f"sha-{name}", size=(32, 24))  # noqa: E731
    transfer = SimpleNamespace(
        styles=(image(style),), content=image(content), weights=SimpleNamespace(sha256="w")
    )
    return run, SimpleNamespace(transfer=transfer)


def test_a_style_fed_in_each_contents_colours_is_a_style_per_content():
    for preserve_color, count in (("none", 1), ("luminance", 2), ("histogram", 2)):
        runs = {
            "a": _run("waves.png", "cat.png", preserve_color),
            "b": _run("waves.png", "cup.png", preserve_color),
        }
        for name, (run, _) in runs.items():
            run.name = name
        manifest = SimpleNamespace(
            runs=[run for run, _ in runs.values()], path=Path("/study/manifest.yaml")
        )
        styles = compare.study_styles(
            manifest, {name: results for name, (_, results) in runs.items()}
        )
        assert len(styles.identities) == count
        if count == 2:
            assert styles.labels == [
                f"waves.png (32×24, relu, {preserve_color} of cat.png)",
                f"waves.png (32×24, relu, {preserve_color} of cup.png)",
            ]
