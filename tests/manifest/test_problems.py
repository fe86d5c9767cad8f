"""Bad manifests: every problem reported at once, each located as file:line:col key.path, by
load_manifest and by `reportgen check`, as a table of cases."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from oddities import (
    PNG_SIGNATURE,
    assert_clean_failure,
    file_state,
    gradient,
    invoke,
    noisy_gradient,
    png_bytes,
    png_header_only,
    write,
)

from reportgen.errors import ManifestError
from reportgen.images import MIN_SIDE
from reportgen.manifest import load_manifest

# --------------------------------------------------------------------------------------------
# 1. Manifests: every problem, each located, in one run (load_manifest and `reportgen check`)
# --------------------------------------------------------------------------------------------

PROBLEM = re.compile(
    r"(?P<file>manifest\.yaml):(?P<line>\d+):(?P<col>\d+)(?: (?P<key>[^\s:]+))?: (?P<message>.+)",
    re.S,
)


@pytest.fixture(scope="module")
def manifest_assets(tmp_path_factory) -> Path:
    """Every file a manifest case may name; copied next to each case's manifest."""
    folder = tmp_path_factory.mktemp("manifest_assets")
    write(folder / "c.png", png_bytes(noisy_gradient(64, 48)))
    write(folder / "s.png", png_bytes(gradient(48, 48)))
    write(folder / "tiny.png", png_bytes(gradient(8, 8)))
    write(folder / "text.png", b"this is not an image\n")
    write(folder / "empty.png", b"")
    write(folder / "header.png", PNG_SIGNATURE + b"\0\0\0\rIHDR\0\0")  # cut inside the header
    write(folder / "bomb.png", png_header_only(20_000, 20_000))  # 400 MP: Pillow's own limit
    write(folder / "big.png", png_header_only(12_000, 12_000))  # 144 MP: reportgen's limit
    (folder / "folder.png").mkdir()
    return folder


def unreadable(folder: Path, monkeypatch) -> None:
    target = folder / "c.png"
    target.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the check see what a user would
        real_access = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda path, mode, **kw: (
                False if Path(path) == target else real_access(path, mode, **kw)
            ),
        )


def fifo(folder: Path, monkeypatch) -> None:
    os.mkfifo(folder / "pipe.png")


def dev_zero(folder: Path, monkeypatch) -> None:
    (folder / "zero.png").symlink_to("/dev/zero")


def M(
    case_id: str,
    text: str | bytes,
    *expected: tuple,
    setup: Callable | None = None,
    exact: bool = True,
    bug: str | None = None,
):
    """A manifest case: its text and every problem expected, as (line, column, key path,
    *fragments).

    ``line=None`` matches a problem without a position; ``exact=False`` allows other problems too.
    """
    marks = [pytest.mark.xfail(reason=f"BUG: {bug}", strict=True)] if bug else []
    return pytest.param(text, expected, setup, exact, id=case_id, marks=marks)


# A valid pair; its body ends on line 4.
P = "pairs:\n  - id: a\n    content: c.png\n    style: s.png\n"

MANIFEST_CASES = [
    # --- structure and keys ---
    M(
        "unknown-top-key",
        "title: t\ncolour: red\n" + P,
        (2, 1, "colour", "unknown key", "allowed", "pairs"),
    ),
    M(
        "typo-in-pair-key",
        P + "    sise: 32\n",
        (5, 5, "pairs[0].sise", "unknown key", "allowed", "size"),
    ),
    M(
        "unknown-defaults-key",
        "defaults:\n  stepz: 3\n" + P,
        (2, 3, "defaults.stepz", "unknown key", "steps"),
    ),
    M("no-pairs", "title: only a title\n", (1, 1, "pairs", "missing")),
    M("empty-file", "", (1, 1, None, "must be a mapping")),
    M("top-level-list", "- c.png\n- s.png\n", (1, 1, None, "must be a mapping")),
    M("pairs-is-a-mapping", "pairs:\n  id: a\n", (2, 3, "pairs", "non-empty list")),
    M("pairs-empty", "pairs: []\n", (1, 8, "pairs", "non-empty list")),
    M("pairs-null", "pairs:\n", (1, 7, "pairs", "non-empty list")),
    M("pair-is-a-string", "pairs:\n  - c.png\n", (2, 5, "pairs[0]", "must be a mapping")),
    M(
        "required-keys-missing",
        "pairs:\n  - id: a\n",
        (2, 5, "pairs[0].content", "missing", "required"),
        (2, 5, "pairs[0].style", "missing", "required"),
    ),
    M("title-is-a-mapping", "title: {a: 1}\n" + P, (1, 8, "title", "must be text")),
    M("defaults-not-a-mapping", "defaults: 5\n" + P, (1, 11, "defaults", "must be a mapping")),
    # --- wrong types and out-of-range numbers ---
    M(
        "size-not-a-number",
        P + "    size: big\n",
        (5, 11, "pairs[0].size", "must be an integer", "'big'", "16..16384"),
    ),
    M(
        "size-boolean",
        P + "    size: yes\n",
        (5, 11, "pairs[0].size", "must be an integer", "boolean", "16..16384"),
    ),
    M(
        "size-fractional",
        P + "    size: 32.5\n",
        (5, 11, "pairs[0].size", "must be an integer", "16..16384"),
    ),
    M(
        "size-out-of-range-both-ends",
        "defaults:\n  size: 15\n" + P + "    size: 16385\n",
        (2, 9, "defaults.size", "15", "out of range", "16..16384"),
        (7, 11, "pairs[0].size", "16385", "out of range", "16..16384"),
    ),
    M(
        "steps-out-of-range-both-ends",
        "defaults:\n  steps: 0\n" + P + "    steps: 100001\n",
        (2, 10, "defaults.steps", "out of range", "1..100000"),
        (7, 12, "pairs[0].steps", "out of range", "1..100000"),
    ),
    M(
        "weights-and-lr-out-of-range",
        P + "    lr: 0\n    content_weight: -1\n    style_weight: .nan\n"
        "  - id: b\n    content: c.png\n    style: s.png\n    lr: -0.5\n    style_weight: .inf\n",
        (5, 9, "pairs[0].lr", "out of range", "> 0"),
        (6, 21, "pairs[0].content_weight", "out of range", "allowed"),
        (7, 19, "pairs[0].style_weight", "out of range", "allowed"),
        (11, 9, "pairs[1].lr", "out of range", "> 0"),
        (12, 19, "pairs[1].style_weight", "out of range", "allowed"),
    ),
    M(
        "both-weights-zero",
        P + "    content_weight: 0\n    style_weight: 0\n",
        (2, 5, "pairs[0]", "both 0"),
    ),
    M(
        "unknown-layers",
        P + "    content_layer: conv6_1\n    style_layers: {conv1_1: 1.0, conv9_9: 0.5}\n",
        (5, 20, "pairs[0].content_layer", "unknown layer", "conv6_1", "allowed"),
        (6, 34, "pairs[0].style_layers.conv9_9", "unknown layer", "allowed"),
    ),
    M(
        "style-layer-weights-zero-or-negative",
        "defaults:\n  style_layers: {conv1_1: 0, conv2_1: 0}\n"
        + P
        + "    style_layers: {conv1_1: -1}\n",
        (2, 17, "defaults.style_layers", "at least one"),
        (7, 29, "pairs[0].style_layers.conv1_1", "out of range"),
    ),
    M(
        "style-layers-a-list",
        P + "    style_layers: [conv1_1, conv2_1]\n",
        (5, 19, "pairs[0].style_layers", "must be a mapping"),
    ),
    M(
        "unknown-choices",
        P + "    optimizer: sgd\n    init: random\n    activation: tanh\n    precision: half\n",
        (5, 16, "pairs[0].optimizer", "'sgd'", "not allowed", "lbfgs, adam"),
        (6, 11, "pairs[0].init", "'random'", "not allowed", "content, noise"),
        (7, 17, "pairs[0].activation", "'tanh'", "not allowed", "relu"),
        (8, 16, "pairs[0].precision", "'half'", "not allowed", "auto, float32, bfloat16"),
    ),
    M(
        "seed-and-top-pairs-out-of-range",
        P + "    seed: -1\n    top_pairs: 0\n",
        (5, 11, "pairs[0].seed", "out of range"),
        (6, 16, "pairs[0].top_pairs", "out of range"),
    ),
    # --- ids ---
    M(
        "id-path-traversal",
        "pairs:\n  - id: ../../x\n    content: c.png\n    style: s.png\n",
        (2, 9, "pairs[0].id", "'../../x'", "not a valid id", "allowed"),
    ),
    M(
        "ids-uppercase-slash-too-long",
        "pairs:\n  - id: Cat\n    content: c.png\n    style: s.png\n"
        "  - id: a/b\n    content: c.png\n    style: s.png\n"
        f"  - id: {'a' * 65}\n    content: c.png\n    style: s.png\n",
        (2, 9, "pairs[0].id", "not a valid id"),
        (5, 9, "pairs[1].id", "not a valid id"),
        (8, 9, "pairs[2].id", "not a valid id"),
    ),
    M(
        "ids-empty-or-leading-dash",
        "pairs:\n  - id: ''\n    content: c.png\n    style: s.png\n  - id: -x\n    content: "
        "c.png\n    style: s.png\n",
        (2, 9, "pairs[0].id", "not a valid id"),
        (5, 9, "pairs[1].id", "not a valid id"),
    ),
    M(
        "duplicate-ids",
        P + "  - id: a\n    content: s.png\n    style: c.png\n",
        (5, 9, "pairs[1].id", "duplicate id 'a'", "line 2"),
    ),
    M(
        "variant-ids-traversal-and-reserved",
        P
        + "    variants:\n      - id: ../x\n        steps: 3\n"
        + "      - id: conv1_1\n        steps: 4\n",
        (6, 13, "pairs[0].variants", "'../x'", "not a valid variant id", "allowed"),
        (8, 13, "pairs[0].variants", "'conv1_1'", "not a valid variant id"),
    ),
    M(
        "sweep-unknown-parameter-and-bad-value",
        P + "    sweep:\n      colour: [1, 2]\n      size: [32, 8]\n",
        (6, 7, "pairs[0].sweep.colour", "cannot sweep", "allowed"),
        (7, 18, "pairs[0].sweep.size[1]", "out of range", "16..16384"),
    ),
    # --- YAML itself ---
    M(
        "duplicate-yaml-key",
        P + "    size: 32\n    size: 64\n",
        (6, 5, "pairs[0].size", "duplicate key 'size'", "line 5"),
    ),
    M(
        "duplicate-top-level-key",
        "title: one\ntitle: two\n" + P,
        (2, 1, "title", "duplicate key 'title'", "line 1"),
    ),
    M(
        "yaml-merge-key",
        "defaults: &base\n  size: 32\npairs:\n  - <<: *base\n    id: a\n    content: c.png\n    "
        "style: s.png\n",
        (4, 5, "pairs[0]", "merge keys"),
    ),
    M("yaml-syntax-error", "pairs: [\n", (2, 1, None, "not valid YAML")),
    M("yaml-tab-indentation", "pairs:\n\t- id: a\n", (2, 1, None, "not valid YAML")),
    M(
        "yaml-python-tag",
        "title: !!python/name:os.system ''\n" + P,
        (1, None, None, "not valid YAML"),
        exact=False,
    ),
    M("yaml-recursive-alias", "title: &loop [*loop]\n" + P, (1, None, None), exact=False),
    M(
        "not-utf8",
        "title: caf\xe9\n".encode("latin-1") + P.encode(),
        (None, None, None, "manifest.yaml", "cannot read"),
    ),
    # --- image files ---
    M(
        "image-missing",
        "pairs:\n  - id: a\n    content: missing.png\n    style: s.png\n",
        (3, 14, "pairs[0].content", "file not found", "missing.png"),
    ),
    M(
        "image-is-a-folder",
        "pairs:\n  - id: a\n    content: folder.png\n    style: s.png\n",
        (3, 14, "pairs[0].content", "not a file", "folder.png"),
    ),
    M(
        "image-is-a-fifo",
        "pairs:\n  - id: a\n    content: c.png\n    style: pipe.png\n",
        (4, 12, "pairs[0].style", "not a file", "pipe.png"),
        setup=fifo,
    ),
    M(
        "image-is-dev-zero",
        "pairs:\n  - id: a\n    content: zero.png\n    style: s.png\n",
        (3, 14, "pairs[0].content", "not a file"),
        setup=dev_zero,
    ),
    M(
        "image-unreadable",
        P,
        (3, 14, "pairs[0].content", "not readable", "c.png"),
        setup=unreadable,
    ),
    M(
        "image-is-text",
        "pairs:\n  - id: a\n    content: text.png\n    style: s.png\n",
        (3, 14, "pairs[0].content", "not an image", "text.png"),
    ),
    M(
        "image-is-empty",
        "pairs:\n  - id: a\n    content: c.png\n    style: empty.png\n",
        (4, 12, "pairs[0].style", "empty.png"),
    ),
    M(
        "image-cut-inside-header",
        "pairs:\n  - id: a\n    content: header.png\n    style: s.png\n",
        (3, 14, "pairs[0].content", "header.png"),
    ),
    M(
        "image-too-small",
        "pairs:\n  - id: a\n    content: tiny.png\n    style: s.png\n",
        (3, 14, "pairs[0].content", "tiny.png", "8x8", f"at least {MIN_SIDE}"),
    ),
    M(
        "image-decompression-bomb",
        "pairs:\n  - id: a\n    content: bomb.png\n    style: s.png\n",
        (3, 14, "pairs[0].content", "bomb.png", "decompression bomb"),
    ),
    M(
        "image-over-max-pixels",
        "pairs:\n  - id: a\n    content: c.png\n    style: big.png\n",
        (4, 12, "pairs[0].style", "big.png", "12000x12000", "megapixels"),
    ),
    M(
        "image-paths-are-urls",
        "pairs:\n  - id: a\n    content: https://example.org/cat.jpg\n    style: file:///etc/passwd\n",
        (3, 14, "pairs[0].content", "is a URL"),
        (4, 12, "pairs[0].style", "is a URL"),
    ),
    M(
        "image-paths-not-text",
        "pairs:\n  - id: a\n    content: 42\n    style: {image: s.png}\n",
        (3, 14, "pairs[0].content", "must be the path"),
        (4, 12, "pairs[0].style", "must be the path", "or a list of them"),
    ),
    M(
        "weights-missing-or-url",
        "defaults:\n  weights: nowhere/vgg19.pth\n"
        + P
        + "    weights: https://example.org/vgg19.pth\n",
        (2, 12, "defaults.weights", "file not found"),
        (7, 14, "pairs[0].weights", "is a URL"),
    ),
    # --- links ---
    M(
        "link-javascript-top-level",
        "links:\n  home: javascript:alert(1)\n" + P,
        (2, 9, "links.home", "not allowed", "http://, https://"),
    ),
    M(
        "links-data-file-protocol-relative-on-pair",
        P
        + '    links:\n      x: "data:text/html,<script>alert(1)</script>"\n'
        + "      y: file:///etc/passwd\n      z: //evil.example\n",
        (6, 10, "pairs[0].links.x", "not allowed"),
        (7, 10, "pairs[0].links.y", "not allowed"),
        (8, 10, "pairs[0].links.z", "not allowed"),
    ),
    M(
        "links-disguised-javascript",
        'links:\n  a: " javascript:alert(1)"\n  b: JaVaScRiPt:alert(1)\n'
        + '  c: "java\\tscript:alert(1)"\n  d: vbscript:msgbox\n'
        + P,
        (2, 6, "links.a", "not allowed"),
        (3, 6, "links.b", "not allowed"),
        (4, 6, "links.c", "not allowed"),
        (5, 6, "links.d", "not allowed"),
    ),
    M(
        "links-backslash-protocol-relative",
        "links:\n  a: '/\\evil.example'\n  b: '\\\\evil.example'\n" + P,
        (2, 6, "links.a", "not allowed"),
        (3, 6, "links.b", "not allowed"),
    ),
    M(
        "links-not-a-mapping",
        "links: [https://example.org]\n" + P,
        (1, 8, "links", "must be a mapping"),
    ),
    # --- the site's figures and data ---
    M(
        "figures-options-out-of-range",
        "figures: {montages: some, quality: 5}\n" + P,
        (1, 21, "figures.montages", "not allowed", "all, content, none"),
        (1, 36, "figures.quality", "out of range", "10..100"),
    ),
    M("figures-not-a-mapping", "figures: compact\n" + P, (1, 10, "figures", "must be a mapping")),
    M(
        "feature-visualisation-unknown-choice",
        "feature_visualisation: some\n" + P,
        (1, 24, "feature_visualisation", "'some'", "not allowed", "none, top, all", "a mapping"),
    ),
    M(
        "feature-visualisation-mapping",
        "feature_visualisation: {filters: every, size: 8, steps: 0, colour: 1}\n" + P,
        (1, 34, "feature_visualisation.filters", "not allowed", "none, top, all"),
        (1, 47, "feature_visualisation.size", "out of range", "16..1024"),
        (1, 57, "feature_visualisation.steps", "out of range"),
        (1, 60, "feature_visualisation.colour", "unknown key", "examples, filters, size, steps"),
    ),
    M(
        "data-url-without-folder",
        "data: {url: 'https://example.org/d'}\n" + P,
        (1, 8, "data.url", "give data.folder"),
    ),
    M(
        "data-folder-a-file-and-url-not-http",
        "data: {folder: c.png, url: 'javascript:alert(1)'}\n" + P,
        (1, 16, "data.folder", "not a folder"),
        (1, 28, "data.url", "not allowed"),
    ),
    # --- everything at once ---
    M(
        "many-problems-in-one-run",
        "title: [x]\ndefaults: {steps: 0}\npairs:\n  - id: ../../x\n    content: missing.png\n    "
        "style: text.png\n"
        '    links: {a: "javascript:alert(1)"}\n    colour: red\n  - id: b\n',
        (1, 8, "title", "must be text"),
        (2, 19, "defaults.steps", "out of range"),
        (4, 9, "pairs[0].id", "not a valid id"),
        (5, 14, "pairs[0].content", "file not found"),
        (6, 12, "pairs[0].style", "not an image"),
        (7, 16, "pairs[0].links.a", "not allowed"),
        (8, 5, "pairs[0].colour", "unknown key"),
        (9, 5, "pairs[1].content", "missing"),
        (9, 5, "pairs[1].style", "missing"),
    ),
]


def _matches(problem: str, expected: tuple) -> bool:
    line, column, key, *fragments = expected
    if line is None:
        return all(fragment in problem for fragment in fragments)
    parsed = PROBLEM.fullmatch(problem)
    if (
        parsed is None
        or int(parsed["line"]) != line
        or (column is not None and int(parsed["col"]) != column)
    ):
        return False
    if column is not None and (parsed["key"] or None) != key:
        return False
    return all(fragment in parsed["message"] for fragment in fragments)


@pytest.mark.parametrize("text, expected, setup, exact", MANIFEST_CASES)
def test_bad_manifest(text, expected, setup, exact, manifest_assets, tmp_path, monkeypatch):
    folder = shutil.copytree(manifest_assets, tmp_path / "study")
    if setup:
        setup(folder, monkeypatch)
    manifest = folder / "manifest.yaml"
    manifest.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    inputs = {
        p.name: file_state(p) for p in folder.iterdir() if p.is_file() and os.access(p, os.R_OK)
    }

    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest)
    problems = caught.value.problems

    # Every located problem reads `manifest.yaml:LINE:COL key.path: message`, in file order.
    located = [PROBLEM.fullmatch(p) for p in problems]
    assert all(located) or any(e[0] is None for e in expected), problems
    positions = [(int(m["line"]), int(m["col"])) for m in located if m]
    assert positions == sorted(positions), problems
    unmatched = list(problems)
    for item in expected:
        found = next((p for p in unmatched if _matches(p, item)), None)
        assert found is not None, f"no problem like {item} in:\n" + "\n".join(problems)
        unmatched.remove(found)
    if exact:
        assert not unmatched, "unexpected problems:\n" + "\n".join(unmatched)

    # `reportgen check` reports the same, with no traceback, and computes nothing.
    result = invoke("check", manifest, env={"REPORTGEN_CACHE_DIR": str(tmp_path / "cache")})
    assert_clean_failure(result, *problems)
    assert not (tmp_path / "cache").exists()
    # Validation only ever reads the files it names.
    assert {name: file_state(folder / name) for name in inputs} == inputs


def test_odd_but_valid_manifest_is_accepted(manifest_assets, tmp_path):
    """The checks refuse what they should and no more: numbers as text, YAML 1.1 floats, every
    allowed kind of link, paths with ./, ids made of digits."""
    folder = shutil.copytree(manifest_assets, tmp_path / "study")
    manifest = folder / "manifest.yaml"
    manifest.write_text(
        "title: 42\n"
        "links:\n  home: https://example.org\n  plain: 'http://example.org/x?y=1#z'\n  up: "
        "../notes/page.html\n"
        "  anchor: '#top'\n  query: '?a=b'\n  colon-later: docs/a:b.html\n"
        "defaults:\n  size: 32.0\n  style_weight: 1e6\n"
        "pairs:\n  - id: 0-a_b\n    content: ./c.png\n    style: s.png\n    links: {paper: 'HTTPS://arxiv.org/abs/1508.06576'}\n"
        "  - id: 7\n    content: s.png\n    style: c.png\n    lr: 1e-3\n",
        encoding="utf-8",
    )
    loaded = load_manifest(manifest)
    assert loaded.title == "42"
    assert [pair.id for pair in loaded.pairs] == ["0-a_b", "7"]
    assert loaded.pairs[0].params.size == 32 and loaded.pairs[0].params.style_weight == 1e6
    assert loaded.pairs[1].params.lr == pytest.approx(1e-3)
    assert [link.url for link in loaded.links] == [
        "https://example.org",
        "http://example.org/x?y=1#z",
        "../notes/page.html",
        "#top",
        "?a=b",
        "docs/a:b.html",
    ]
    result = invoke("check", manifest)
    assert result.exit_code == 0, result.output
    assert "OK, 2 pairs" in result.output
