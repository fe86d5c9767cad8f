"""The manifest: every problem located (file:line:col key.path), all reported at once; defaults resolve."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from conftest import IMAGES, write_truncated_copy
from reportgen.errors import ManifestError
from reportgen.manifest import Params, load_manifest

MARK = "#!"  # the line a problem must be reported on carries this comment


@pytest.fixture
def folder(tmp_path) -> Path:
    """A manifest folder with two good images, a text file named like an image, and a damaged PNG."""
    (tmp_path / "img").mkdir()
    shutil.copyfile(IMAGES / "content" / "chelsea.png", tmp_path / "img" / "c.png")
    shutil.copyfile(IMAGES / "style" / "mosaic.png", tmp_path / "img" / "s.png")
    (tmp_path / "img" / "notes.png").write_text("this is not a picture\n")
    return tmp_path


def write(folder: Path, text: str, name: str = "manifest.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def marked_line(text: str) -> int:
    lines = [number for number, line in enumerate(textwrap.dedent(text).splitlines(), 1) if MARK in line]
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
    ("wrong-type-steps", "pairs:\n" + PAIR + "    steps: many  #!\n", "pairs[0].steps", "must be an integer"),
    ("wrong-type-in-defaults", "defaults:\n  size: [48]  #!\npairs:\n" + PAIR, "defaults.size", "must be an integer"),
    ("boolean-seed", "pairs:\n" + PAIR + "    seed: yes  #!\n", "pairs[0].seed", "boolean"),
    ("size-too-small", "pairs:\n" + PAIR + "    size: 8  #!\n", "pairs[0].size", "out of range"),
    ("size-too-large", "defaults:\n  size: 5000  #!\npairs:\n" + PAIR, "defaults.size", "out of range"),
    ("steps-zero", "defaults:\n  steps: 0  #!\npairs:\n" + PAIR, "defaults.steps", "out of range"),
    ("negative-lr", "pairs:\n" + PAIR + "    lr: -1  #!\n", "pairs[0].lr", "out of range"),
    ("unknown-optimizer", "pairs:\n" + PAIR + "    optimizer: sgd  #!\n", "pairs[0].optimizer", "not allowed"),
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
    ("unknown-content-layer", "pairs:\n" + PAIR + "    content_layer: conv4_9  #!\n", "pairs[0].content_layer", "unknown layer"),
    ("id-with-dots", "pairs:\n" + PAIR.replace("id: a", "id: ../../x  #!"), "pairs[0].id", "not a valid id"),
    ("id-with-space-and-capitals", "pairs:\n" + PAIR.replace("id: a", "id: Bad Id  #!"), "pairs[0].id", "not a valid id"),
    ("duplicate-id", "pairs:\n" + PAIR + PAIR.replace("id: a", "id: a  #!"), "pairs[1].id", "duplicate id"),
    ("duplicate-top-level-yaml-key", "title: one\ntitle: two  #!\npairs:\n" + PAIR, "title", "duplicate key 'title'"),
    ("duplicate-pair-yaml-key", "pairs:\n" + PAIR + "    steps: 3\n    steps: 4  #!\n", "pairs[0].steps", "duplicate key 'steps'"),
    ("missing-image-file", "pairs:\n" + PAIR.replace("img/c.png", "img/gone.png  #!"), "pairs[0].content", "file not found"),
    (
        "url-as-image-path",
        "pairs:\n" + PAIR.replace("img/s.png", "https://example.org/s.png  #!"),
        "pairs[0].style",
        "is a URL",
    ),
    ("not-an-image", "pairs:\n" + PAIR.replace("img/c.png", "img/notes.png  #!"), "pairs[0].content", "not an image"),
    ("missing-style", "pairs:\n" + PAIR.replace("id: a", "id: a  #!").replace("    style: img/s.png\n", ""), "pairs[0].style", "missing"),
    ("missing-weights-file", "pairs:\n" + PAIR + "    weights: models/vgg.pth  #!\n", "pairs[0].weights", "file not found"),
    ("empty-pairs", "title: Study\npairs: []  #!\n", "pairs", "non-empty list"),
    ("pairs-not-a-list", "title: Study\npairs: a and b  #!\n", "pairs", "non-empty list"),
    ("yaml-syntax-error", "pairs:\n" + PAIR + "    title: a: b  #!\n", None, "not valid YAML"),
    ("yaml-tab-indent", "pairs:\n" + PAIR + "\tsteps: 3  #!\n", None, "not valid YAML"),
]


@pytest.mark.parametrize("text, key_path, words", [case[1:] for case in BAD_MANIFESTS], ids=[case[0] for case in BAD_MANIFESTS])
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
    assert re.match(rf"manifest\.yaml:{marked_line(text)}:\d+ {re.escape(key_path)}: duplicate key", problem), problem


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
        size: 9999
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
    for problem, (line, key_path) in zip(problems, expected):  # in file order
        assert re.match(rf"manifest\.yaml:{line}:\d+ {re.escape(key_path)}: ", problem), problem
    assert "7 problems" in caught.value.message


def test_missing_manifest_file_is_named(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert str(path) in caught.value.message and "not found" in caught.value.message


def test_damaged_image_is_not_refused_by_the_manifest(folder):
    """Only the header is read at check time; the damaged pixels are the build's to report (see test_build)."""
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
    assert (first.params.lr, second.params.lr) == (2.5, builtin.lr)
    assert first.params.style_weight == second.params.style_weight == 1e5  # "1e5" (YAML 1.1 string) read as a number
    assert first.params.style_layer_weights == {"conv3_1": 1.0}
    assert second.params.style_layers == (("conv1_1", 0.5), ("conv2_1", 1.0))  # network order
    assert second.params.content_layer == builtin.content_layer == "conv4_2"
    assert second.params.seed == builtin.seed and second.params.weights == "caffe"
    assert first.title == "first" and manifest.title == "Resolution"


def test_builtin_defaults_are_the_papers():
    params = Params()
    assert params.content_layer == "conv4_2" and params.activation == "relu" and params.weights == "caffe"
    assert params.style_layer_weights == {"conv1_1": 1.0, "conv2_1": 0.8, "conv3_1": 0.5, "conv4_1": 0.3, "conv5_1": 0.1}
    assert params.content_weight == 1.0 and params.style_weight == 1e6


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
    assert pair.style == (folder / "img" / "s.png").resolve()
    assert manifest.path == manifest_path.resolve()
    assert manifest.relative(pair.content) == "img/c.png"
    # The manifest named by a path relative to the working folder finds the same files.
    assert folder == elsewhere.parent
    via_relative = load_manifest(Path("..") / "manifest.yaml")
    assert via_relative.pairs[0].content == pair.content
    assert via_relative.pairs[0].style == pair.style


def test_input_files_are_recorded_relative_when_the_manifest_is_named_via_dotdot(folder, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    write(folder, "pairs:\n" + PAIR)
    manifest = load_manifest(Path("..") / "manifest.yaml")
    # What pair.json and the pair page show: as written, never an absolute local path.
    assert manifest.relative(manifest.pairs[0].content) == "img/c.png"
    assert manifest.relative(manifest.pairs[0].style) == "img/s.png"


def test_the_example_manifest_is_valid():
    manifest = load_manifest(IMAGES / "manifest.yaml")
    assert len(manifest.pairs) == 3
    assert all(pair.content.is_file() and pair.style.is_file() for pair in manifest.pairs)
    assert all(pair.params.size == 128 and pair.params.steps == 60 for pair in manifest.pairs)
    assert all(IMAGES in pair.content.parents for pair in manifest.pairs)
