"""The manifest: every problem located (file:line:col key.path), all reported at once; defaults
resolve."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest
from PIL import Image
from studies import IMAGES, write_truncated_copy

from reportgen.errors import ManifestError
from reportgen.manifest import DEFAULT_LR, DEFAULT_STYLE_WEIGHT, PRESETS, Params, load_manifest

MARK = "#!"  # the line a problem must be reported on carries this comment


@pytest.fixture
def folder(tmp_path) -> Path:
    """A manifest folder with two good images, a text file named like an image, and a damaged
    PNG."""
    (tmp_path / "img").mkdir()
    shutil.copyfile(IMAGES / "content" / "chelsea.png", tmp_path / "img" / "c.png")
    shutil.copyfile(IMAGES / "style" / "mosaic.png", tmp_path / "img" / "s.png")
    (tmp_path / "img" / "notes.png").write_text("this is not a picture\n")
    Image.new("L", (32, 32), 0).save(tmp_path / "img" / "black.png")
    return tmp_path


def write(folder: Path, text: str, name: str = "manifest.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def marked_line(text: str) -> int:
    lines = [
        number for number, line in enumerate(textwrap.dedent(text).splitlines(), 1) if MARK in line
    ]
    assert len(lines) == 1, "each case marks exactly one line"
    return lines[0]


PAIR = """\
  - id: a
    content: img/c.png
    style: img/s.png
"""

# (case id, manifest, key path named in the message or None, words the message must contain)
BAD_MANIFESTS = [
    ("unknown-top-level-key", "titel: Study  #!\npairs:\n" + PAIR, "titel", "unknown key"),
    ("unknown-pair-key", "pairs:\n" + PAIR + "    stpes: 3  #!\n", "pairs[0].stpes", "unknown key"),
    (
        "wrong-type-steps",
        "pairs:\n" + PAIR + "    steps: many  #!\n",
        "pairs[0].steps",
        "must be an integer",
    ),
    (
        "wrong-type-in-defaults",
        "defaults:\n  size: [48]  #!\npairs:\n" + PAIR,
        "defaults.size",
        "must be an integer",
    ),
    ("boolean-seed", "pairs:\n" + PAIR + "    seed: yes  #!\n", "pairs[0].seed", "boolean"),
    ("size-too-small", "pairs:\n" + PAIR + "    size: 8  #!\n", "pairs[0].size", "out of range"),
    (
        "size-too-large",
        "defaults:\n  size: 20000  #!\npairs:\n" + PAIR,
        "defaults.size",
        "out of range",
    ),
    ("steps-zero", "defaults:\n  steps: 0  #!\npairs:\n" + PAIR, "defaults.steps", "out of range"),
    ("negative-lr", "pairs:\n" + PAIR + "    lr: -1  #!\n", "pairs[0].lr", "out of range"),
    (
        "unknown-optimizer",
        "pairs:\n" + PAIR + "    optimizer: sgd  #!\n",
        "pairs[0].optimizer",
        "not allowed",
    ),
    (
        "unknown-style-layer",
        "pairs:\n" + PAIR + "    style_layers: {conv1_1: 1.0, conv9_9: 0.5}  #!\n",
        "pairs[0].style_layers.conv9_9",
        "unknown layer",
    ),
    (
        "style-layer-weight-not-a-number",
        "defaults:\n  style_layers:\n    conv1_1: heavy  #!\npairs:\n" + PAIR,
        "defaults.style_layers.conv1_1",
        "must be a number",
    ),
    (
        "unknown-content-layer",
        "pairs:\n" + PAIR + "    content_layer: conv4_9  #!\n",
        "pairs[0].content_layer",
        "unknown layer",
    ),
    (
        "id-with-dots",
        "pairs:\n" + PAIR.replace("id: a", "id: ../../x  #!"),
        "pairs[0].id",
        "not a valid id",
    ),
    (
        "id-with-space-and-capitals",
        "pairs:\n" + PAIR.replace("id: a", "id: Bad Id  #!"),
        "pairs[0].id",
        "not a valid id",
    ),
    (
        "duplicate-id",
        "pairs:\n" + PAIR + PAIR.replace("id: a", "id: a  #!"),
        "pairs[1].id",
        "duplicate id",
    ),
    (
        "duplicate-top-level-yaml-key",
        "title: one\ntitle: two  #!\npairs:\n" + PAIR,
        "title",
        "duplicate key 'title'",
    ),
    (
        "duplicate-pair-yaml-key",
        "pairs:\n" + PAIR + "    steps: 3\n    steps: 4  #!\n",
        "pairs[0].steps",
        "duplicate key 'steps'",
    ),
    (
        "missing-image-file",
        "pairs:\n" + PAIR.replace("img/c.png", "img/gone.png  #!"),
        "pairs[0].content",
        "file not found",
    ),
    (
        "url-as-image-path",
        "pairs:\n" + PAIR.replace("img/s.png", "https://example.org/s.png  #!"),
        "pairs[0].style",
        "is a URL",
    ),
    (
        "not-an-image",
        "pairs:\n" + PAIR.replace("img/c.png", "img/notes.png  #!"),
        "pairs[0].content",
        "not an image",
    ),
    (
        "missing-style",
        "pairs:\n" + PAIR.replace("id: a", "id: a  #!").replace("    style: img/s.png\n", ""),
        "pairs[0].style",
        "missing",
    ),
    (
        "missing-weights-file",
        "pairs:\n" + PAIR + "    weights: models/vgg.pth  #!\n",
        "pairs[0].weights",
        "file not found",
    ),
    ("empty-pairs", "title: Study\npairs: []  #!\n", "pairs", "non-empty list"),
    ("pairs-not-a-list", "title: Study\npairs: a and b  #!\n", "pairs", "non-empty list"),
    ("yaml-syntax-error", "pairs:\n" + PAIR + "    title: a: b  #!\n", None, "not valid YAML"),
    ("yaml-tab-indent", "pairs:\n" + PAIR + "\tsteps: 3  #!\n", None, "not valid YAML"),
    (
        "unknown-loss",
        "pairs:\n" + PAIR + "    loss: gram  #!\n",
        "pairs[0].loss",
        "not allowed (allowed: relative, seed)",
    ),
    (
        "unknown-colour-mode",
        "pairs:\n" + PAIR + "    preserve_color: yes  #!\n",
        "pairs[0].preserve_color",
        "allowed: none, luminance, histogram",
    ),
    (
        "style-scale-word",
        "pairs:\n" + PAIR + "    style_scale: big  #!\n",
        "pairs[0].style_scale",
        "or content",
    ),
    (
        "style-scale-too-large",
        "defaults:\n  style_scale: 20  #!\npairs:\n" + PAIR,
        "defaults.style_scale",
        "out of range",
    ),
    (
        "style-image-too-large",
        "pairs:\n" + PAIR.replace("id: a", "id: a  #!") + "    size: 8192\n    style_scale: 4\n",
        "pairs[0]",
        "32768 px style image",
    ),
    (
        "coarse-to-fine-too-small",
        "pairs:\n" + PAIR + "    coarse_to_fine: 8  #!\n",
        "pairs[0].coarse_to_fine",
        "first scale's longest side",
    ),
    (
        "negative-tv-weight",
        "pairs:\n" + PAIR + "    tv_weight: -1  #!\n",
        "pairs[0].tv_weight",
        "out of range",
    ),
    (
        "too-many-snapshots",
        "pairs:\n"
        + PAIR.replace("id: a", "id: a  #!")
        + "    steps: 5000\n    snapshot_every: 1\n",
        "pairs[0]",
        "at most 100, snapshot_every 50",
    ),
    (
        "negative-snapshots",
        "pairs:\n" + PAIR + "    snapshot_every: -5  #!\n",
        "pairs[0].snapshot_every",
        "out of range",
    ),
    (
        "unknown-preset",
        "defaults:\n  preset: neural-style  #!\npairs:\n" + PAIR,
        "defaults.preset",
        "allowed: seed",
    ),
    (
        "blend-weights-not-one-per-style",
        "pairs:\n  - id: a\n    content: img/c.png\n    style: [img/s.png, img/c.png]\n"
        "    style_blend: [1, 2, 3]  #!\n",
        "pairs[0].style_blend",
        "3 weights for 2 style images",
    ),
    (
        "blend-weights-all-zero",
        "pairs:\n" + PAIR + "    style_blend: [0, 0.0]  #!\n",
        "pairs[0].style_blend",
        "all 0",
    ),
    (
        "blend-weight-negative",
        "pairs:\n" + PAIR + "    style_blend: [0.5, -1]  #!\n",
        "pairs[0].style_blend",
        "weights >= 0",
    ),
    (
        "style-list-empty",
        "pairs:\n  - id: a\n    content: img/c.png\n    style: []  #!\n",
        "pairs[0].style",
        "1 to 8 style images",
    ),
    (
        "style-list-names-a-non-image",
        "pairs:\n  - id: a\n    content: img/c.png\n    style: [img/s.png, img/notes.png]  #!\n",
        "pairs[0].style[1]",
        "notes.png",
    ),
    (
        "style-and-regions-both",
        "pairs:\n" + PAIR + "    regions: [{mask: img/s.png, style: img/s.png}]  #!\n",
        "pairs[0].regions",
        "not both",
    ),
    (
        "region-mask-black-everywhere",
        "pairs:\n  - id: a\n    content: img/c.png\n    regions:\n"
        "      - {mask: img/black.png, style: img/s.png}  #!\n",
        "pairs[0].regions[0].mask",
        "black.png is black everywhere",
    ),
    (
        "region-without-style",
        "pairs:\n  - id: a\n    content: img/c.png\n    regions:\n      - {mask: img/s.png}  #!\n",
        "pairs[0].regions[0].style",
        "missing",
    ),
    (
        "regions-with-a-blend",
        "pairs:\n  - id: a\n    content: img/c.png\n"
        "    regions: [{mask: img/s.png, style: img/s.png}]\n    style_blend: [1]  #!\n",
        "pairs[0].style_blend",
        "with regions",
    ),
    (
        "regions-with-the-seed-loss",
        "pairs:\n  - id: a  #!\n    content: img/c.png\n"
        "    regions: [{mask: img/s.png, style: img/s.png}]\n    loss: seed\n",
        "pairs[0]",
        "regions need loss: relative",
    ),
]


@pytest.mark.parametrize(
    "text, key_path, words",
    [case[1:] for case in BAD_MANIFESTS],
    ids=[case[0] for case in BAD_MANIFESTS],
)
def test_bad_manifest_is_located(folder, text, key_path, words):
    path = write(folder, text)
    line = marked_line(text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    error = caught.value
    assert len(error.problems) == 1, error.problems
    problem = error.problems[0]
    if key_path is None:
        assert re.match(rf"manifest\.yaml:{line}:\d+: ", problem), problem
    else:
        assert re.match(rf"manifest\.yaml:{line}:\d+ {re.escape(key_path)}: ", problem), problem
    assert words in problem
    assert problem in error.message  # what the CLI prints


def test_at_least_twelve_kinds_of_bad_manifest():
    assert len(BAD_MANIFESTS) >= 12


@pytest.mark.parametrize(
    "text, key_path",
    [
        ("pairs:\n" + PAIR + "    steps: 3\n    steps: 4  #!\n", "pairs[0].steps"),
        ("title: one\ntitle: two  #!\npairs:\n" + PAIR, "title"),
    ],
    ids=["in-a-pair", "top-level"],
)
def test_duplicate_yaml_key_names_its_key_path(folder, text, key_path):
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(folder, text))
    (problem,) = caught.value.problems
    assert re.match(
        rf"manifest\.yaml:{marked_line(text)}:\d+ {re.escape(key_path)}: duplicate key", problem
    ), problem


def test_every_problem_is_reported_at_once(folder):
    text = """\
    titel: Study
    defaults:
      steps: 0
      content_layer: conv9_1
    pairs:
      - id: Bad Id
        content: img/c.png
        style: img/gone.png
      - id: b
        content: https://example.org/c.png
        style: img/s.png
        size: 99999
    """
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(folder, text))
    problems = caught.value.problems
    expected = [
        (1, "titel"),
        (3, "defaults.steps"),
        (4, "defaults.content_layer"),
        (6, "pairs[0].id"),
        (8, "pairs[0].style"),
        (10, "pairs[1].content"),
        (12, "pairs[1].size"),
    ]
    assert len(problems) == len(expected), problems
    for problem, (line, key_path) in zip(problems, expected, strict=True):  # in file order
        assert re.match(rf"manifest\.yaml:{line}:\d+ {re.escape(key_path)}: ", problem), problem
    assert "7 problems" in caught.value.message


def test_missing_manifest_file_is_named(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert str(path) in caught.value.message and "not found" in caught.value.message


def test_damaged_image_is_not_refused_by_the_manifest(folder):
    """Only the header is read at check time; the damaged pixels are the build's to report (see
    test_build)."""
    write_truncated_copy(IMAGES / "content" / "chelsea.png", folder / "img" / "cut.png")
    manifest = load_manifest(write(folder, "pairs:\n" + PAIR.replace("img/c.png", "img/cut.png")))
    assert manifest.pairs[0].content == (folder / "img" / "cut.png").resolve()


# --- resolution ----------------------------------------------------------------------------------


def test_defaults_then_pair_overrides_then_builtin(folder):
    text = """\
    title: Resolution
    defaults:
      size: 40
      steps: 7
      optimizer: adam
      style_weight: 1e5
      style_layers: {conv2_1: 1.0, conv1_1: 0.5}
    pairs:
      - id: first
        content: img/c.png
        style: img/s.png
        steps: 9
        lr: 2.5
        style_layers: {conv3_1: 1}
      - id: second
        content: img/c.png
        style: img/s.png
    """
    manifest = load_manifest(write(folder, text))
    first, second = manifest.pairs
    builtin = Params()
    # The pair's own value wins over defaults:, which wins over the built-in default.
    assert (first.params.steps, second.params.steps) == (9, 7)
    assert first.params.size == second.params.size == 40
    assert first.params.optimizer == second.params.optimizer == "adam"
    assert (first.params.lr, second.params.lr) == (
        2.5,
        DEFAULT_LR["adam"],
    )  # the default of the optimizer chosen
    assert (
        first.params.style_weight == second.params.style_weight == 1e5
    )  # "1e5" (YAML 1.1 string) read as a number
    assert first.params.style_layer_weights == {"conv3_1": 1.0}
    assert second.params.style_layers == (("conv1_1", 0.5), ("conv2_1", 1.0))  # network order
    assert second.params.content_layer == builtin.content_layer == "conv4_2"
    assert second.params.seed == builtin.seed and second.params.weights == "caffe"
    assert first.title == "first" and manifest.title == "Resolution"


def test_builtin_defaults_are_the_papers():
    params = Params()
    assert (
        params.content_layer == "conv4_2"
        and params.activation == "relu"
        and params.weights == "caffe"
    )
    assert params.style_layer_weights == {
        "conv1_1": 1.0,
        "conv2_1": 0.8,
        "conv3_1": 0.5,
        "conv4_1": 0.3,
        "conv5_1": 0.1,
    }
    assert params.loss == "relative" and params.optimizer == "lbfgs" and params.lr == 1.0
    assert params.content_weight == 1.0 and params.style_weight == DEFAULT_STYLE_WEIGHT["relative"]
    assert (
        params.style_scale,
        params.preserve_color,
        params.tv_weight,
        params.coarse_to_fine,
        params.snapshot_every,
    ) == (1.0, "none", 0.0, 0, 0)


def test_weight_and_step_defaults_follow_the_loss_and_optimizer(folder):
    """A variant that switches to Adam or to the seed's loss gets their defaults, not the values
    meant for L-BFGS and the relative loss; values written always win."""
    text = """    pairs:
      - id: a
        content: img/c.png
        style: img/s.png
        variants:
          - {id: adam, optimizer: adam}
          - {id: seed-loss, loss: seed}
          - {id: both-set, optimizer: adam, lr: 0.5, loss: seed, style_weight: 3}
    """
    adam, seed_loss, both = (v.params for v in load_manifest(write(folder, text)).pairs[0].variants)
    assert (adam.lr, adam.style_weight) == (DEFAULT_LR["adam"], DEFAULT_STYLE_WEIGHT["relative"])
    assert (seed_loss.lr, seed_loss.style_weight) == (DEFAULT_LR["lbfgs"], 1e6)
    assert (both.lr, both.style_weight) == (0.5, 3.0)


def test_the_seed_preset_sets_the_notebooks_recipe_and_written_keys_override_it(folder):
    text = """    defaults:
      size: 96
      preset: seed
      steps: 200
    pairs:
      - id: a
        content: img/c.png
        style: img/s.png
      - id: b
        content: img/c.png
        style: img/s.png
        lr: 0.01
        variants:
          - {id: ours, preset: seed, loss: relative, style_weight: 5}
    """
    a, b = load_manifest(write(folder, text)).pairs
    seed = a.params
    assert (
        seed.preset == "seed"
        and seed.loss == "seed"
        and seed.optimizer == "adam"
        and seed.lr == 0.003
    )
    assert seed.style_weight == 1e6 and seed.content_weight == 1.0 and seed.style_scale == "content"
    assert (
        seed.precision == "float32" and seed.init == "content" and seed.content_layer == "conv4_2"
    )
    assert seed.steps == 200 and seed.size == 96  # written beside the preset, and untouched by it
    assert (
        b.params.lr == 0.01 and b.params.loss == "seed"
    )  # the pair's own key over defaults' preset
    ours = b.variants[0]
    # A variant's preset applies at the variant, over the pair's values; its own keys win again.
    assert (
        ours.params.lr == 0.003
        and ours.params.loss == "relative"
        and ours.params.style_weight == 5.0
    )
    assert ours.changed == ("preset", "loss", "style_weight")
    assert PRESETS["seed"]["steps"] == 5000


def test_a_step_size_or_weight_meant_for_another_optimizer_or_loss_is_not_carried_over(folder):
    """lr belongs to an optimiser and style_weight to a loss: a level that switches either
    without writing its value gets the new choice's default."""
    text = """\
    defaults:
      preset: seed
    pairs:
      - id: a
        content: img/c.png
        style: img/s.png
        variants:
          - {id: lbfgs, optimizer: lbfgs}
          - {id: ours, loss: relative}
          - {id: kept, optimizer: adam}
      - id: b
        content: img/c.png
        style: img/s.png
        optimizer: lbfgs
        lr: 0.5
        variants:
          - {id: adam, optimizer: adam}
    """
    a, b = load_manifest(write(folder, text)).pairs
    lbfgs, ours, kept = (v.params for v in a.variants)
    assert lbfgs.lr == DEFAULT_LR["lbfgs"] and lbfgs.style_weight == 1e6
    assert ours.style_weight == DEFAULT_STYLE_WEIGHT["relative"] and ours.lr == 0.003
    assert kept.lr == 0.003  # the same optimizer: the preset's step size stays
    assert b.params.lr == 0.5 and b.variants[0].params.lr == DEFAULT_LR["adam"]


@pytest.mark.parametrize("written, resolved", [("false", 0), ("0", 0), ("true", 128), ("96", 96)])
def test_coarse_to_fine_values(folder, written, resolved):
    manifest = load_manifest(write(folder, "pairs:\n" + PAIR + f"    coarse_to_fine: {written}\n"))
    assert manifest.pairs[0].params.coarse_to_fine == resolved


def test_style_scale_and_colour_and_snapshots_are_read(folder):
    text = (
        "pairs:\n"
        + PAIR
        + "    style_scale: 0.5\n    preserve_color: luminance\n"
        + "    snapshot_every: 25\n    tv_weight: 2\n"
    )
    params = load_manifest(write(folder, text)).pairs[0].params
    assert (
        params.style_scale,
        params.style_side(),
        params.preserve_color,
        params.snapshot_every,
        params.tv_weight,
    ) == (0.5, 256, "luminance", 25, 2.0)
    fitted = (
        load_manifest(write(folder, "pairs:\n" + PAIR + "    style_scale: content\n"))
        .pairs[0]
        .params
    )
    assert fitted.style_scale == "content"


def test_relative_paths_resolve_against_the_manifest_folder(folder, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "img").mkdir(parents=True)
    # A decoy with the same relative name in the working folder must not be picked.
    (elsewhere / "img" / "c.png").write_text("decoy")
    monkeypatch.chdir(elsewhere)
    manifest_path = write(folder, "pairs:\n" + PAIR)
    manifest = load_manifest(manifest_path)
    pair = manifest.pairs[0]
    assert pair.content == (folder / "img" / "c.png").resolve()
    assert pair.styles == ((folder / "img" / "s.png").resolve(),)
    assert manifest.path == manifest_path.resolve()
    assert manifest.relative(pair.content) == "img/c.png"
    # The manifest named by a path relative to the working folder finds the same files.
    assert folder == elsewhere.parent
    via_relative = load_manifest(Path("..") / "manifest.yaml")
    assert via_relative.pairs[0].content == pair.content
    assert via_relative.pairs[0].styles == pair.styles


def test_input_files_are_recorded_relative_when_the_manifest_is_named_via_dotdot(
    folder, tmp_path, monkeypatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    write(folder, "pairs:\n" + PAIR)
    manifest = load_manifest(Path("..") / "manifest.yaml")
    # What pair.json and the pair page show: as written, never an absolute local path.
    assert manifest.relative(manifest.pairs[0].content) == "img/c.png"
    assert manifest.relative(manifest.pairs[0].styles[0]) == "img/s.png"


def test_the_example_manifest_is_valid():
    manifest = load_manifest(IMAGES / "manifest.yaml")
    assert len(manifest.pairs) == 3
    assert all(pair.content.is_file() and pair.styles[0].is_file() for pair in manifest.pairs)
    assert all(pair.params.size == 128 and pair.params.steps == 60 for pair in manifest.pairs)
    assert all(IMAGES in pair.content.parents for pair in manifest.pairs)


@pytest.mark.parametrize(
    ("written", "filters", "size", "steps", "examples"),
    [
        ("", "top", None, None, 8),  # the default: the top pairs' filters, the device's sizes
        ("feature_visualisation: none\n", "none", None, None, 8),
        ("feature_visualisation: all\n", "all", None, None, 8),
        ("feature_visualisation: {size: 96, steps: 128}\n", "top", 96, 128, 8),
        ("feature_visualisation: {filters: all, examples: 4}\n", "all", None, None, 4),
    ],
)
def test_feature_visualisation_short_and_long_forms(
    folder, written, filters, size, steps, examples
):
    pair = "pairs:\n  - {id: cat, content: img/c.png, style: img/s.png}\n"
    options = load_manifest(write(folder, written + pair)).visualisation
    assert (options.filters, options.size, options.steps, options.examples) == (
        filters,
        size,
        steps,
        examples,
    )


def test_a_blend_s_weights_are_normalised_and_equal_when_left_out(folder):
    path = write(
        folder,
        """\
        defaults:
          size: 64
        pairs:
          - id: equal
            content: img/c.png
            style: [img/s.png, img/c.png]
          - id: weighed
            content: img/c.png
            style: [img/s.png, img/c.png]
            style_blend: [7, 3]
          - id: one
            content: img/c.png
            style: [img/s.png]
            style_blend: [2]
          - id: walk
            content: img/c.png
            style: [img/s.png, img/c.png]
            sweep:
              style_blend: [[1, 0], [0.5, 0.5], [0, 1]]
        """,
    )
    equal, weighed, one, walk = load_manifest(path).pairs
    assert equal.styles == (
        (folder / "img" / "s.png").resolve(),
        (folder / "img" / "c.png").resolve(),
    )
    assert equal.params.style_blend == (0.5, 0.5)
    assert weighed.params.style_blend == (0.7, 0.3)
    assert one.styles == equal.styles[:1] and one.params.style_blend == ()
    assert one.params.blend_weights == (1.0,)
    assert [v.id for v in walk.variants] == [
        "style_blend-1_0",
        "style_blend-0p5_0p5",
        "style_blend-0_1",
    ]
    assert [v.params.style_blend for v in walk.variants] == [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]


def test_a_blend_in_defaults_must_fit_every_pair(folder):
    path = write(
        folder,
        """\
        defaults:
          style_blend: [0.7, 0.3]
        pairs:
          - id: two
            content: img/c.png
            style: [img/s.png, img/c.png]
          - id: single
            content: img/c.png
            style: img/s.png
        """,
    )
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    (problem,) = caught.value.problems
    assert problem.startswith("manifest.yaml:7:") and "pairs[1]" in problem
    assert "2 weights for 1 style image" in problem


def test_regions_give_each_mask_its_style(folder):
    Image.new("L", (40, 30), 255).save(folder / "img" / "white.png")
    path = write(
        folder,
        """\
        pairs:
          - id: split
            content: img/c.png
            regions:
              - mask: img/white.png
                style: img/s.png
              - {mask: img/s.png, style: img/c.png}
        """,
    )
    (pair,) = load_manifest(path).pairs
    img = (folder / "img").resolve()
    assert pair.masks == (img / "white.png", img / "s.png")
    assert pair.styles == (img / "s.png", img / "c.png")
    assert pair.params.style_blend == ()
