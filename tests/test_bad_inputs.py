"""Bad and odd inputs: manifests, image files and builds, mostly as tables of cases.

Every helper and fixture this file needs is defined here (nothing from conftest.py).  Builds run
the real network, so they are tiny (32 px, 2 steps) and share one previous site and one result
cache, built once for the module: a case copies the site and, where its pair is the shared one,
takes the result from the cache instead of computing it again.

Cases where the package does not meet the behaviour it promises are kept in the tables, marked
``xfail(strict=True)`` with a reason starting ``BUG:``.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import re
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms, ImageFile

import reportgen.images as images_module
import reportgen.site.publish as publish_module
import reportgen.site.writer as writer_module
from reportgen.build import BuildOptions, build
from reportgen.cli import main
from reportgen.errors import BuildError, ImageError, ManifestError, ReportgenError
from reportgen.execute import ExecutorChoice
from reportgen.images import MIN_SIDE, load_image, probe_image
from reportgen.manifest import load_manifest
from reportgen.site.writer import site_lock

# --------------------------------------------------------------------------------------------
# Image files, made with numpy and Pillow
# --------------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def gradient(width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8: red grows to the right, green downwards, blue along the diagonal."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [
            x * 255 // max(width - 1, 1),
            y * 255 // max(height - 1, 1),
            (x + y) * 255 // max(width + height - 2, 1),
        ],
        -1,
    ).astype(np.uint8)


def noisy_gradient(width: int, height: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-40, 41, (height, width, 3))
    return np.clip(gradient(width, height).astype(int) + noise, 0, 255).astype(np.uint8)


def two_bands(width: int, height: int, top=RED, bottom=BLUE) -> Image.Image:
    """Top half ``top``, bottom half ``bottom``: which way it was turned is plain to see."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2] = top
    pixels[height // 2 :] = bottom
    return Image.fromarray(pixels)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but holds a few bytes of pixels: only its header
    reads."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def truncated_png(pixels: np.ndarray) -> bytes:
    """A PNG cut a few bytes into its pixel data: the header (size, mode) reads, the pixels do
    not."""
    data = png_bytes(pixels)
    return data[: data.index(b"IDAT") + 24]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


# An ICC v2 RGB matrix/TRC profile, written by hand: Pillow's ImageCms only creates sRGB, and a
# profile that is not sRGB is what shows whether colours are converted at all.


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _curve_tag(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode() + b"\0"
    return (
        b"desc"
        + bytes(4)
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + bytes(4 + 4 + 2 + 1 + 67)
    )


def rgb_icc_profile(
    red_xyz, green_xyz, blue_xyz, gamma: float = 2.2, name: str = "test RGB"
) -> bytes:
    tags = [
        (b"desc", _desc_tag(name)),
        (b"wtpt", _xyz_tag(0.9642, 1.0, 0.8249)),
        (b"rXYZ", _xyz_tag(*red_xyz)),
        (b"gXYZ", _xyz_tag(*green_xyz)),
        (b"bXYZ", _xyz_tag(*blue_xyz)),
        (b"rTRC", _curve_tag(gamma)),
        (b"gTRC", _curve_tag(gamma)),
        (b"bTRC", _curve_tag(gamma)),
        (b"cprt", b"text" + bytes(4) + b"none" + bytes(4)),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (
        struct.pack(">I", offset + len(data))
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntr"
        + b"RGB "
        + b"XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(24)
        + bytes(4)
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
        + bytes(48)
    )
    return header + struct.pack(">I", len(tags)) + table + data


# sRGB's primaries adapted to D50, as an ICC profile states them.
SRGB_RED, SRGB_GREEN, SRGB_BLUE = (
    (0.4361, 0.2225, 0.0139),
    (0.3851, 0.7169, 0.0971),
    (0.1431, 0.0606, 0.7141),
)
# A profile whose "red" is sRGB's blue and whose "blue" is sRGB's red.
SWAPPED_PROFILE = rgb_icc_profile(SRGB_BLUE, SRGB_GREEN, SRGB_RED, name="red and blue swapped")


def exif_jpeg(path: Path, image: Image.Image, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, format="JPEG", quality=95, exif=exif)
    return path


def mean_colour(pixels: np.ndarray) -> np.ndarray:
    return pixels.reshape(-1, 3).mean(axis=0)


def is_colour(pixels: np.ndarray, colour, tolerance: float = 40) -> bool:
    return bool(np.all(np.abs(mean_colour(pixels) - np.array(colour)) <= tolerance))


# --------------------------------------------------------------------------------------------
# Folders and sites
# --------------------------------------------------------------------------------------------


def snapshot(path: Path) -> dict[str, bytes | None]:
    """Every file under ``path`` (or ``path`` itself when it is a file) and its bytes; folders map
    to None."""
    if not path.exists():
        return {}
    if path.is_file():
        return {".": path.read_bytes()}
    result: dict[str, bytes | None] = {}
    for item in sorted(path.rglob("*")):
        relative = item.relative_to(path).as_posix()
        result[relative] = None if item.is_dir() else item.read_bytes()
    return result


def leftovers(site: Path) -> list[str]:
    """Temporary folders a build may leave beside ``site``."""
    return sorted(
        p.name
        for pattern in (f".{site.name}.building-*", f".{site.name}.old-*")
        for p in site.parent.glob(pattern)
    )


def file_state(path: Path) -> tuple[bytes, int, int]:
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, stat.st_mode


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=True)


def assert_clean_failure(result, *fragments: str) -> None:
    """Non-zero exit, a message, and no Python exception or traceback reaching the user."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    assert isinstance(result.exception, SystemExit), (
        f"uncaught {result.exception!r}\n{result.output}"
    )
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} not in:\n{result.output}"


TINY = "defaults:\n  size: 32\n  steps: 2\n  top_pairs: 1\n"  # top_pairs: fewer figure rows, a faster build
GOOD_PAIR = "  - id: good\n    content: content.png\n    style: style.png\n"


@dataclass
class Base:
    """The module's shared inputs: a folder of images, a manifest, its built site and its cache."""

    folder: Path
    manifest: Path
    site: Path
    cache: Path
    content_bytes: bytes
    style_bytes: bytes

    def study(
        self, folder: Path, pairs: str = GOOD_PAIR, head: str = "title: Study\n" + TINY
    ) -> Path:
        """A fresh study in ``folder``: copies of the shared images (so the shared pair comes from
        the cache) and a manifest of ``head`` and ``pairs``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "content.png").write_bytes(self.content_bytes)
        (folder / "style.png").write_bytes(self.style_bytes)
        manifest = folder / "manifest.yaml"
        manifest.write_text(head + "pairs:\n" + pairs, encoding="utf-8")
        return manifest

    def previous_site(self, target: Path) -> Path:
        shutil.copytree(self.site, target, symlinks=True)
        return target

    def cache_entries(self, cache: Path) -> dict[str, Path]:
        """The shared pair's entry of each stage in (a copy of) the shared cache."""
        from reportgen.manifest import load_manifest
        from reportgen.stages.cache import run_keys
        from reportgen.stages.fingerprint import file_sha256, weights_fingerprint

        run = next(run for run in load_manifest(self.manifest).runs if run.name == "good")
        keys = run_keys(
            file_sha256(run.pair.content),
            file_sha256(run.pair.style),
            run.params,
            weights_fingerprint(run.params.weights),
        )
        entries = {
            stage: cache / stage / getattr(keys, stage)
            for stage in ("transfer", "analysis", "figures")
        }
        assert all(entry.is_dir() for entry in entries.values()), entries
        return entries


BASE_MANIFEST = """\
title: "<script>alert(1)</script>"
description: '<b>bold</b> & "quoted"'
links:
  source: 'https://example.org/?q="><script>alert(4)</script>'
  local: notes/readme.html
defaults:
  size: 32
  steps: 2
  top_pairs: 1
pairs:
  - id: good
    title: "<script>alert(2)</script>"
    notes: "<img src=x onerror=alert(3)>"
    content: content.png
    style: style.png
    links:
      painting: "https://example.org/a'b\\"c"
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    """One real build, reused by every build case: the previous site and a cache holding its
    pair."""
    root = tmp_path_factory.mktemp("bad_inputs_base")
    folder = root / "study"
    folder.mkdir()
    content = png_bytes(noisy_gradient(64, 48, seed=1))
    style_pixels = np.zeros((48, 48, 3), np.uint8)
    style_pixels[:, ::6] = (200, 60, 20)
    style_pixels[::6, :] = (20, 60, 200)
    style = png_bytes(style_pixels)
    (folder / "content.png").write_bytes(content)
    (folder / "style.png").write_bytes(style)
    manifest = folder / "manifest.yaml"
    manifest.write_text(BASE_MANIFEST, encoding="utf-8")
    before = {
        name: file_state(folder / name) for name in ("content.png", "style.png", "manifest.yaml")
    }
    site, cache = root / "site", root / "cache"
    summary = build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=cache))
    assert summary.computed == ["good"] and not summary.failed
    assert (site / "pairs" / "good" / "result.png").is_file()
    # The build read its inputs and wrote nothing beside them.
    assert {name: file_state(folder / name) for name in before} == before
    assert sorted(p.name for p in folder.iterdir()) == ["content.png", "manifest.yaml", "style.png"]
    return Base(folder, manifest, site, cache, content, style)


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
    """A manifest case: its text and every problem expected, as (line, column, key path, *fragments).

    ``line=None`` matches a problem without a position; ``exact=False`` allows other problems too.
    """
    marks = [pytest.mark.xfail(reason=f"BUG: {bug}", strict=True)] if bug else []
    return pytest.param(text, expected, setup, exact, id=case_id, marks=marks)


P = "pairs:\n  - id: a\n    content: c.png\n    style: s.png\n"  # a valid pair; its body ends on line 4

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
        (5, 11, "pairs[0].size", "must be an integer", "'big'", "16..4096"),
    ),
    M(
        "size-boolean",
        P + "    size: yes\n",
        (5, 11, "pairs[0].size", "must be an integer", "boolean", "16..4096"),
    ),
    M(
        "size-fractional",
        P + "    size: 32.5\n",
        (5, 11, "pairs[0].size", "must be an integer", "16..4096"),
    ),
    M(
        "size-out-of-range-both-ends",
        "defaults:\n  size: 15\n" + P + "    size: 4097\n",
        (2, 9, "defaults.size", "15", "out of range", "16..4096"),
        (7, 11, "pairs[0].size", "4097", "out of range", "16..4096"),
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
        + "    variants:\n      - id: ../x\n        steps: 3\n      - id: conv1_1\n        steps: 4\n",
        (6, 13, "pairs[0].variants", "'../x'", "not a valid variant id", "allowed"),
        (8, 13, "pairs[0].variants", "'conv1_1'", "not a valid variant id"),
    ),
    M(
        "sweep-unknown-parameter-and-bad-value",
        P + "    sweep:\n      colour: [1, 2]\n      size: [32, 8]\n",
        (6, 7, "pairs[0].sweep.colour", "cannot sweep", "allowed"),
        (7, 18, "pairs[0].sweep.size[1]", "out of range", "16..4096"),
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
        "pairs:\n  - id: a\n    content: 42\n    style: [s.png]\n",
        (3, 14, "pairs[0].content", "must be the path"),
        (4, 12, "pairs[0].style", "must be the path"),
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
        + '    links:\n      x: "data:text/html,<script>alert(1)</script>"\n      y: file:///etc/passwd\n      z: //evil.example\n',
        (6, 10, "pairs[0].links.x", "not allowed"),
        (7, 10, "pairs[0].links.y", "not allowed"),
        (8, 10, "pairs[0].links.z", "not allowed"),
    ),
    M(
        "links-disguised-javascript",
        'links:\n  a: " javascript:alert(1)"\n  b: JaVaScRiPt:alert(1)\n  c: "java\\tscript:alert(1)"\n  d: vbscript:msgbox\n'
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


# --------------------------------------------------------------------------------------------
# 2. Image files: load_image and probe_image
# --------------------------------------------------------------------------------------------


def _rgba_left_transparent(folder: Path) -> Path:
    pixels = np.zeros((48, 64, 4), np.uint8)
    pixels[..., :3] = RED
    pixels[:, 32:, 3] = 255  # left half fully transparent (and red underneath)
    return save(Image.fromarray(pixels, "RGBA"), folder / "rgba.png")


def _rgba_half_alpha(folder: Path) -> Path:
    pixels = np.zeros((48, 64, 4), np.uint8)
    pixels[..., :3] = RED
    pixels[..., 3] = 128
    return save(Image.fromarray(pixels, "RGBA"), folder / "rgba-half.png")


def _la_left_transparent(folder: Path) -> Path:
    pixels = np.zeros((48, 64, 2), np.uint8)  # black
    pixels[:, 32:, 1] = 255
    return save(Image.fromarray(pixels, "LA"), folder / "la.png")


def _palette_transparent(folder: Path) -> Path:
    image = Image.new("P", (64, 48), 0)
    image.putpalette([*RED, 0, 200, 0] + [0] * 762)
    image.paste(1, (32, 0, 64, 48))  # right half: entry 1, green
    return save(
        image, folder / "palette.png", transparency=0
    )  # entry 0 (red, left half) transparent


def _gray_colour_key(folder: Path) -> Path:
    pixels = np.full((48, 64), 128, np.uint8)
    pixels[:, :32] = 0
    return save(Image.fromarray(pixels, "L"), folder / "gray-trns.png", transparency=0)


def _rgb_colour_key(folder: Path) -> Path:
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, 32:] = RED
    return save(Image.fromarray(pixels), folder / "rgb-trns.png", transparency=(0, 0, 0))


def _cmyk(fmt: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        return save(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), folder / f"cmyk.{fmt}")

    return make


def _with_profile(profile: bytes, name: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        return save(Image.new("RGB", (64, 48), RED), folder / name, icc_profile=profile)

    return make


def _gray_levels(
    mode: str, low: float, high: float, suffix: str, nan: bool = False
) -> Callable[[Path], Path]:
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]

    def make(folder: Path) -> Path:
        values = (
            np.linspace(low, high, 64)[None, :].repeat(48, axis=0).astype(dtype)
        )  # rising to the right
        if nan:
            values[0, 0] = np.nan
        image = Image.fromarray(values)
        assert image.mode == mode, image.mode
        path = save(image, folder / f"gray.{suffix}")
        assert Image.open(path).mode == mode
        return path

    return make


def _animated(fmt: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        frames = [Image.new("RGB", (64, 48), RED), Image.new("RGB", (64, 48), BLUE)]
        path = folder / f"animated.{fmt}"
        options = {"lossless": True} if fmt == "webp" else {}
        frames[0].save(
            path, save_all=True, append_images=frames[1:], duration=100, loop=0, **options
        )
        assert getattr(Image.open(path), "n_frames", 1) == 2
        return path

    return make


def _truncated_jpeg(folder: Path) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(noisy_gradient(64, 48)).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    return write(folder / "cut.jpg", data[: len(data) * 2 // 3])


def _image(name: str, pixels_or_image, **options) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        image = (
            pixels_or_image
            if isinstance(pixels_or_image, Image.Image)
            else Image.fromarray(pixels_or_image)
        )
        return save(image, folder / name, **options)

    return make


# --- checks on a LoadedImage ---


def rotated_clockwise(image) -> None:
    # Orientation 6: the file's top (red) is shown on the right, its bottom (blue) on the left.
    assert image.pixels.shape == (64, 48, 3) and image.original_size == (48, 64)
    assert is_colour(image.pixels[:, :20], BLUE) and is_colour(image.pixels[:, 28:], RED)


def rotated_anticlockwise(image) -> None:
    assert image.pixels.shape == (64, 48, 3) and image.original_size == (48, 64)
    assert is_colour(image.pixels[:, :20], RED) and is_colour(image.pixels[:, 28:], BLUE)


def rotated_then_downscaled(image) -> None:
    assert image.pixels.shape == (60, 30, 3) and image.original_size == (120, 240)
    assert is_colour(image.pixels[:, :12], BLUE) and is_colour(image.pixels[:, 18:], RED)


def not_rotated(image) -> None:
    assert image.pixels.shape == (48, 64, 3)
    assert is_colour(image.pixels[:20], RED) and is_colour(image.pixels[28:], BLUE)


def left_white_right(colour, tolerance=3) -> Callable:
    def check(image) -> None:
        assert image.pixels.shape == (48, 64, 3)
        assert is_colour(image.pixels[:, :32], WHITE, tolerance), mean_colour(image.pixels[:, :32])
        assert is_colour(image.pixels[:, 32:], colour, tolerance), mean_colour(image.pixels[:, 32:])

    return check


def pink(image) -> None:  # red at alpha 128 over white
    assert is_colour(image.pixels, (255, 127, 127), 3), mean_colour(image.pixels)
    assert any("white" in note for note in image.notes)


def red(image) -> None:
    assert image.pixels.shape == (48, 64, 3) and image.pixels.dtype == np.uint8
    assert is_colour(image.pixels, RED, 30), mean_colour(image.pixels)


def red_first_frame(image) -> None:
    red(image)
    assert any("first frame" in note for note in image.notes), image.notes


def blue_after_icc(image) -> None:
    # "Red" in the swapped profile is sRGB's blue: the pixels must have been converted.
    assert is_colour(image.pixels, BLUE, 40), mean_colour(image.pixels)
    assert any("ICC" in note for note in image.notes), image.notes


def unchanged_red_with_note(word: str) -> Callable:
    def check(image) -> None:
        assert is_colour(image.pixels, RED, 3), mean_colour(image.pixels)
        assert any(word in note for note in image.notes), image.notes

    return check


def rescaled_ramp(image) -> None:
    """min -> 0, max -> 255, in between a ramp: rescaled, not clipped (clipping makes it all
    255)."""
    gray = image.pixels[..., 0].astype(int)
    assert np.array_equal(gray, image.pixels[..., 1]) and np.array_equal(gray, image.pixels[..., 2])
    row = gray[10]
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0), row
    assert abs(int(row[32]) - 129) <= 3, row
    assert any("rescaled" in note for note in image.notes), image.notes


def ramp_despite_nan(image) -> None:
    assert image.pixels[10, -1, 0] == 255 and image.pixels[10, 1, 0] <= 5, image.pixels[10, :, 0]


def uniform(image) -> None:
    assert image.pixels.shape == (48, 64, 3) and len(np.unique(image.pixels)) == 1


def downscaled(image) -> None:
    assert image.pixels.shape == (32, 48, 3) and image.original_size == (300, 200)


def shape(height: int, width: int) -> Callable:
    def check(image) -> None:
        assert image.pixels.shape == (height, width, 3) and image.pixels.dtype == np.uint8

    return check


def IMG(
    case_id: str,
    make: Callable[[Path], Path],
    side: int,
    check: Callable | None = None,
    *,
    error: tuple[str, ...] = (),
    probe: tuple[str, ...] | None = None,
    max_pixels: int | None = None,
    bug: str | None = None,
):
    """An image case: ``check`` the loaded image, or expect an ImageError holding ``error`` (and the
    file's name).  ``probe``: what probe_image must say (``()``: nothing)."""
    marks = [pytest.mark.xfail(reason=f"BUG: {bug}", strict=True)] if bug else []
    return pytest.param(make, side, check, error, probe, max_pixels, id=case_id, marks=marks)


IMAGE_CASES = [
    IMG(
        "exif-orientation-6",
        lambda f: exif_jpeg(f / "o6.jpg", two_bands(64, 48), 6),
        64,
        rotated_clockwise,
        probe=(),
    ),
    IMG(
        "exif-orientation-8",
        lambda f: exif_jpeg(f / "o8.jpg", two_bands(64, 48), 8),
        64,
        rotated_anticlockwise,
    ),
    IMG(
        "exif-orientation-then-downscale",
        lambda f: exif_jpeg(f / "o6big.jpg", two_bands(240, 120), 6),
        60,
        rotated_then_downscaled,
    ),
    IMG(
        "exif-orientation-invalid-value",
        lambda f: exif_jpeg(f / "o9.jpg", two_bands(64, 48), 9),
        64,
        not_rotated,
    ),
    IMG("rgba-transparent-on-white", _rgba_left_transparent, 64, left_white_right(RED)),
    IMG("rgba-half-alpha-on-white", _rgba_half_alpha, 64, pink),
    IMG("la-transparent-on-white", _la_left_transparent, 64, left_white_right((0, 0, 0))),
    IMG(
        "palette-transparent-index-on-white",
        _palette_transparent,
        64,
        left_white_right((0, 200, 0)),
    ),
    IMG("gray-png-colour-key-on-white", _gray_colour_key, 64, left_white_right((128, 128, 128))),
    IMG("rgb-png-colour-key-on-white", _rgb_colour_key, 64, left_white_right(RED)),
    IMG("cmyk-jpeg", _cmyk("jpg"), 64, red),
    IMG("cmyk-tiff", _cmyk("tif"), 64, red),
    IMG("icc-profile-not-srgb", _with_profile(SWAPPED_PROFILE, "swapped.png"), 64, blue_after_icc),
    IMG(
        "icc-profile-srgb",
        _with_profile(
            ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(), "srgb.png"
        ),
        64,
        unchanged_red_with_note("ICC"),
    ),
    IMG(
        "icc-profile-garbage",
        _with_profile(b"not a profile" * 16, "garbage-icc.png"),
        64,
        unchanged_red_with_note("unreadable"),
    ),
    IMG("gray-16-bit", _gray_levels("I;16", 1000, 3000, "png"), 64, rescaled_ramp),
    IMG("gray-32-bit-int", _gray_levels("I", -100_000, 100_000, "tif"), 64, rescaled_ramp),
    IMG("gray-32-bit-float", _gray_levels("F", -5.0, 5.0, "tif"), 64, rescaled_ramp),
    IMG(
        "gray-16-bit-constant",
        lambda f: save(Image.fromarray(np.full((48, 64), 2000, np.uint16)), f / "flat.png"),
        64,
        uniform,
    ),
    IMG("gray-float-with-nan", _gray_levels("F", -5.0, 5.0, "tif", nan=True), 64, ramp_despite_nan),
    IMG("animated-gif", _animated("gif"), 64, red_first_frame),
    IMG("animated-png", _animated("png"), 64, red_first_frame),
    IMG("animated-webp", _animated("webp"), 64, red_first_frame),
    IMG(
        "bilevel",
        _image("bilevel.png", Image.fromarray(gradient(64, 48)).convert("1")),
        64,
        shape(48, 64),
    ),
    IMG(
        "png-named-jpg", _image("really-png.jpg", gradient(64, 48), format="PNG"), 64, shape(48, 64)
    ),
    IMG("large-downscaled", _image("large.png", noisy_gradient(300, 200)), 48, downscaled),
    IMG(
        "truncated-png-after-header",
        lambda f: write(f / "truncated.png", truncated_png(noisy_gradient(64, 48))),
        64,
        error=("truncated",),
        probe=(),
    ),
    IMG("truncated-jpeg", _truncated_jpeg, 64, error=("truncated",)),
    IMG(
        "text-file",
        lambda f: write(f / "notes.png", b"just some text\n" * 20),
        64,
        error=("not an image",),
        probe=("not an image", "notes.png"),
    ),
    IMG(
        "empty-file",
        lambda f: write(f / "empty.png", b""),
        64,
        error=("not an image",),
        probe=("empty.png",),
    ),
    IMG(
        "html-file",
        lambda f: write(f / "page.jpg", b"<!doctype html><title>x</title>"),
        64,
        error=("not an image",),
    ),
    IMG(
        "bomb-over-pillow-limit",
        lambda f: write(f / "bomb.png", png_header_only(20_000, 20_000)),
        64,
        error=("decompression bomb",),
        probe=("bomb.png", "decompression bomb"),
    ),
    IMG(
        "bomb-over-max-pixels",
        lambda f: write(f / "big.png", png_header_only(12_000, 12_000)),
        64,
        error=("12000x12000", "megapixels"),
        probe=("big.png", "megapixels"),
    ),
    IMG(
        "max-pixels-lowered",
        _image("normal.png", gradient(64, 48)),
        64,
        error=("megapixels",),
        probe=("normal.png",),
        max_pixels=1000,
    ),
    IMG(
        "shorter-side-too-small",
        _image("strip.png", gradient(64, 10)),
        64,
        error=("64x10", f"at least {MIN_SIDE} px"),
        probe=("strip.png", f"at least {MIN_SIDE}"),
    ),
    IMG(
        "too-small-once-resized",
        _image("band.png", gradient(200, 20)),
        64,
        error=("at size 64", f"at least {MIN_SIDE} px"),
        probe=(),
    ),
]


@pytest.mark.parametrize("make, side, check, error, probe, max_pixels", IMAGE_CASES)
def test_odd_image(make, side, check, error, probe, max_pixels, tmp_path, monkeypatch, caplog):
    path = make(tmp_path)
    before = file_state(path)
    if max_pixels is not None:
        monkeypatch.setattr(images_module, "MAX_PIXELS", max_pixels)
    decoded: list[str] = []
    if max_pixels is not None or "decompression bomb" in error or "megapixels" in error:
        # Refused before decoding: no pixel data may be read.
        real_load = ImageFile.ImageFile.load
        monkeypatch.setattr(
            ImageFile.ImageFile, "load", lambda self: decoded.append("load") or real_load(self)
        )
    caplog.set_level(logging.INFO, logger="reportgen")

    if probe is not None:
        problem = probe_image(path)
        if probe:
            assert problem is not None and all(fragment in problem for fragment in probe), problem
        else:
            assert problem is None, problem

    if error:
        with pytest.raises(ImageError) as caught:
            load_image(path, side)
        message = caught.value.message
        assert path.name in message and all(fragment in message for fragment in error), message
        assert not decoded, "pixels were decoded before the image was refused"
    else:
        image = load_image(path, side)
        assert (
            image.pixels.dtype == np.uint8 and image.pixels.ndim == 3 and image.pixels.shape[2] == 3
        )
        assert max(image.pixels.shape[:2]) == side
        check(image)
        if "first frame" in " ".join(image.notes):
            assert any(
                r.levelno == logging.WARNING and "first frame" in r.getMessage()
                for r in caplog.records
            )
    assert file_state(path) == before, "the input file was modified"


# --------------------------------------------------------------------------------------------
# 3. Failed builds: a clean message, the previous site untouched, no temporary folders
# --------------------------------------------------------------------------------------------


@dataclass
class BuildCase:
    tmp: Path
    base: Base
    monkeypatch: pytest.MonkeyPatch
    stack: contextlib.ExitStack
    manifest: Path
    site: Path
    env: dict[str, str]
    cache: Path | None  # --cache-dir, or None for the default (REPORTGEN_CACHE_DIR)
    device: str = "cpu"


def _invalid_manifest(case: BuildCase) -> tuple[str, ...]:
    case.base.study(
        case.tmp / "study",
        GOOD_PAIR + "    size: 15\n  - id: two\n    content: missing.png\n    style: style.png\n",
    )
    return "manifest.yaml:", "pairs[0].size", "missing.png"


def _truncated_content(case: BuildCase) -> tuple[str, ...]:
    folder = case.tmp / "study"
    case.base.study(
        folder, GOOD_PAIR + "  - id: bad\n    content: broken.png\n    style: style.png\n"
    )
    write(folder / "broken.png", truncated_png(noisy_gradient(64, 48, seed=5)))
    return "'bad'", "broken.png", "truncated"


def _site_locked(case: BuildCase) -> tuple[str, ...]:
    case.base.study(case.tmp / "study")
    case.stack.enter_context(site_lock(case.site))
    return ("another reportgen build",)


def _unknown_device(case: BuildCase) -> tuple[str, ...]:
    case.base.study(
        case.tmp / "study", GOOD_PAIR + "    steps: 3\n"
    )  # not in the cache: a device is needed
    case.device = "abacus"
    return ("abacus",)


def _weights_not_a_state_dict(case: BuildCase) -> tuple[str, ...]:
    folder = case.tmp / "study"
    case.base.study(folder, GOOD_PAIR + "    weights: notweights.pth\n")
    write(folder / "notweights.pth", b"these are not weights\n")
    return ("notweights.pth",)


def _manifest_missing(case: BuildCase) -> tuple[str, ...]:
    case.manifest = case.tmp / "nowhere.yaml"
    return ("nowhere.yaml",)


def _manifest_is_a_folder(case: BuildCase) -> tuple[str, ...]:
    case.manifest = case.tmp / "folder.yaml"
    case.manifest.mkdir()
    return ("folder.yaml",)


def _site_is_a_file(case: BuildCase) -> tuple[str, ...]:
    case.base.study(case.tmp / "study")
    shutil.rmtree(case.site)
    case.site.write_text("not a folder\n")
    return ("site", "is a file")


def _site_inside_a_file(case: BuildCase) -> tuple[str, ...]:
    case.base.study(case.tmp / "study")
    shutil.rmtree(case.site)
    blocker = case.tmp / "blocker"
    blocker.write_text("a file, not a folder\n")
    case.site = blocker / "site"
    return ("blocker",)


def _cache_dir_is_a_file(case: BuildCase) -> tuple[str, ...]:
    case.base.study(case.tmp / "study")
    cache_file = case.tmp / "cachefile"
    cache_file.write_text("a file, not a folder\n")
    case.env["REPORTGEN_CACHE_DIR"] = str(cache_file)
    case.cache = None  # the default: from the environment
    return ("cachefile",)


def _recursive_alias(case: BuildCase) -> tuple[str, ...]:
    case.base.study(case.tmp / "study", head="title: &loop [*loop]\n" + TINY)
    return ("manifest.yaml",)


def _interrupted_while_writing(case: BuildCase) -> tuple[str, ...]:
    case.base.study(case.tmp / "study")
    real_write = publish_module._RenderedPages.write  # rendered, or linked from the cache
    calls = []

    def write(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_write(self, *args, **kwargs)

    case.monkeypatch.setattr(publish_module._RenderedPages, "write", write)
    return ("interrupted", "unchanged")


def _disk_full_at_swap(case: BuildCase) -> tuple[str, ...]:
    case.base.study(case.tmp / "study")
    real_rename = os.rename
    site = case.site

    def rename(source, target, *args, **kwargs):
        if ".building-" in str(source) and Path(target) == site:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real_rename(source, target, *args, **kwargs)

    case.monkeypatch.setattr(writer_module.os, "rename", rename)
    return ("No space left on device",)


def B(case_id: str, setup: Callable[[BuildCase], tuple[str, ...]], bug: str | None = None):
    marks = [pytest.mark.xfail(reason=f"BUG: {bug}", strict=True)] if bug else []
    return pytest.param(setup, id=case_id, marks=marks)


BUILD_CASES = [
    B("invalid-manifest", _invalid_manifest),
    B("truncated-content-without-keep-going", _truncated_content),
    B("site-locked-by-another-build", _site_locked),
    B("unknown-device", _unknown_device),
    B("weights-file-not-a-state-dict", _weights_not_a_state_dict),
    B("manifest-missing", _manifest_missing),
    B("manifest-is-a-folder", _manifest_is_a_folder),
    B("site-dir-is-a-file", _site_is_a_file),
    B("interrupted-while-writing-pages", _interrupted_while_writing),
    B("site-dir-inside-a-file", _site_inside_a_file),
    B("cache-dir-is-a-file", _cache_dir_is_a_file),
    B("disk-full-when-swapping-the-site-in", _disk_full_at_swap),
    B("manifest-with-recursive-alias", _recursive_alias),
]


@pytest.mark.parametrize("setup", BUILD_CASES)
def test_failed_build_leaves_previous_site(setup, base, tmp_path, monkeypatch):
    site = base.previous_site(tmp_path / "site")
    with contextlib.ExitStack() as stack:
        case = BuildCase(
            tmp_path,
            base,
            monkeypatch,
            stack,
            tmp_path / "study" / "manifest.yaml",
            site,
            {"REPORTGEN_CACHE_DIR": str(tmp_path / "default-cache")},
            base.cache,
        )
        fragments = setup(case)
        options = ["--device", case.device] + (
            ["--cache-dir", str(case.cache)] if case.cache else []
        )
        watched = case.site if case.site.exists() else case.site.parent
        before = snapshot(watched)
        cache_before = snapshot(base.cache)
        result = invoke("build", case.manifest, "--site-dir", case.site, *options, env=case.env)
    assert snapshot(watched) == before, "the previous site changed"
    assert leftovers(case.site) == []
    assert snapshot(base.cache) == cache_before, "a failed build changed the cache"
    assert_clean_failure(result, *fragments)


def test_site_lock_refuses_a_concurrent_build(base, tmp_path):
    manifest = base.study(tmp_path / "study")
    site = base.previous_site(tmp_path / "site")
    before = snapshot(site)
    with site_lock(site):
        with pytest.raises(BuildError, match="another reportgen build"):
            build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=base.cache))
    assert snapshot(site) == before and leftovers(site) == []
    # Once the lock is released, the same build goes through.
    summary = build(
        manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=base.cache)
    )
    assert summary.cached == ["good"] and (site / "pairs" / "good" / "index.html").is_file()


def test_site_lock_survives_a_lock_file_handover(tmp_path, monkeypatch):
    site = tmp_path / "site"
    first = site_lock(site)
    first.__enter__()
    real_flock = writer_module.fcntl.flock
    state = {"first_done": False}

    def flock(handle, flags):
        if not state["first_done"]:  # the second build has opened the lock file; the first ends now
            state["first_done"] = True
            first.__exit__(None, None, None)
        return real_flock(handle, flags)

    monkeypatch.setattr(writer_module.fcntl, "flock", flock)
    with site_lock(site):  # the second build: the first has finished, so it may run
        monkeypatch.setattr(writer_module.fcntl, "flock", real_flock)
        with pytest.raises(BuildError, match="another reportgen build"):
            with site_lock(site):  # the third build, while the second runs
                pass


def test_keep_going_builds_the_good_pair_and_lists_the_bad(base, tmp_path):
    folder = tmp_path / "study"
    manifest = base.study(
        folder,
        GOOD_PAIR
        + "  - id: bad\n    title: Broken input\n    content: broken.png\n    style: style.png\n",
    )
    write(folder / "broken.png", truncated_png(noisy_gradient(64, 48, seed=7)))
    assert probe_image(folder / "broken.png") is None  # only decoding finds the damage
    inputs = {p.name: file_state(p) for p in folder.iterdir()}

    # Without --keep-going: the build fails and the previous site stays as it was.
    site = base.previous_site(tmp_path / "site")
    before = snapshot(site)
    with pytest.raises(ReportgenError, match="broken.png"):
        build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=base.cache))
    assert snapshot(site) == before and leftovers(site) == []

    # With it: the good pair is written, the bad one is listed on the index page.
    summary = build(
        manifest,
        BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=base.cache, keep_going=True),
    )
    assert summary.cached == ["good"] and list(summary.failed) == ["bad"]
    assert "broken.png" in summary.failed["bad"]
    assert (site / "pairs" / "good" / "index.html").is_file()
    assert (site / "pairs" / "good" / "result.png").read_bytes() == (
        base.site / "pairs" / "good" / "result.png"
    ).read_bytes()
    assert not (site / "pairs" / "bad").exists()
    index = (site / "index.html").read_text()
    assert "Broken input" in index and "<code>bad</code>" in index and "broken.png" in index
    assert leftovers(site) == []

    # The CLI does the same and still exits non-zero.
    cli_site = base.previous_site(tmp_path / "cli-site")
    result = invoke(
        "build",
        manifest,
        "-d",
        cli_site,
        "--cache-dir",
        base.cache,
        "--device",
        "cpu",
        "--keep-going",
    )
    assert_clean_failure(result, "bad")
    assert (cli_site / "pairs" / "good" / "index.html").is_file() and "broken.png" in (
        cli_site / "index.html"
    ).read_text()
    assert {p.name: file_state(p) for p in folder.iterdir()} == inputs


def test_an_image_changed_between_builds_is_not_taken_from_the_cache(base, tmp_path):
    folder = tmp_path / "study"
    manifest = base.study(folder)
    site = tmp_path / "site"
    assert build(
        manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=base.cache)
    ).cached == ["good"]
    write(folder / "content.png", truncated_png(noisy_gradient(64, 48, seed=9)))
    with pytest.raises(ReportgenError, match="content.png"):
        build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=base.cache))


@pytest.mark.parametrize("failure", ["rename-fails", "interrupted"])
def test_failure_while_writing_keeps_the_previous_site(failure, base, tmp_path, monkeypatch):
    manifest = base.study(tmp_path / "study")
    site = base.previous_site(tmp_path / "site")
    (site / "CNAME").write_text("example.org\n")  # a file of the user's, not reportgen's
    before = snapshot(site)
    if failure == "rename-fails":
        real_rename = os.rename

        def rename(source, target, *args, **kwargs):
            if ".building-" in str(source):
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            return real_rename(source, target, *args, **kwargs)

        monkeypatch.setattr(writer_module.os, "rename", rename)
        expected: type[BaseException] = BuildError  # the OSError, told as a message
    else:

        def write(self, *args, **kwargs):  # the first page, rendered or from the cache
            raise KeyboardInterrupt

        monkeypatch.setattr(publish_module._RenderedPages, "write", write)
        expected = KeyboardInterrupt
    with pytest.raises(expected):
        build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=base.cache))
    assert snapshot(site) == before, "the previous site changed"
    assert leftovers(site) == []


# --------------------------------------------------------------------------------------------
# 4. What a good build must also get right
# --------------------------------------------------------------------------------------------


def test_manifest_text_is_escaped_in_every_page(base):
    pages = {p.relative_to(base.site).as_posix(): p.read_text() for p in base.site.rglob("*.html")}
    assert "index.html" in pages and "pairs/good/index.html" in pages
    for name, html in pages.items():
        assert "<script>alert" not in html and "<img src=x" not in html, name
        # The only scripts are the site's own: its JSON data blocks and its files under assets/.
        for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I):
            attributes, body = match.groups()
            assert 'type="application/json"' in attributes or re.search(
                r'src="[./]*assets/[\w.-]+\.js"', attributes
            ), (name, attributes)
            assert "alert(" not in body, name
        assert html.lower().count("<script") == len(
            re.findall(r"<script\b[^>]*>.*?</script>", html, re.S | re.I)
        ), name
    index = pages["index.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;" in index
    assert (
        '"><script>' not in index
        and 'href="https://example.org/?q=&#34;&gt;&lt;script&gt;' in index
    )
    pair_page = pages["pairs/good/index.html"]
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in pair_page
    assert "&lt;img src=x onerror=alert(3)&gt;" in pair_page
    assert "a&#39;b&#34;c" in pair_page  # the pair's link keeps its quotes inside the attribute


def test_same_manifest_and_seed_give_identical_result_on_cpu(base, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("REPORTGEN_CACHE_DIR", str(tmp_path / "cache"))
    site = tmp_path / "site"
    summary = build(
        base.manifest, BuildOptions(site, ExecutorChoice(device="cpu"), use_cache=False)
    )
    assert summary.computed == ["good"]
    first = (base.site / "pairs" / "good" / "result.png").read_bytes()
    assert (site / "pairs" / "good" / "result.png").read_bytes() == first
    assert not (tmp_path / "cache").exists(), "--no-cache wrote a cache"
    assert list(scratch.iterdir()) == [], "--no-cache left its scratch folder"


def _delete(relative: str) -> Callable[[Path], None]:
    return lambda entry: (entry / relative).unlink()


def _truncate(relative: str) -> Callable[[Path], None]:
    def damage(entry: Path) -> None:
        path = entry / relative
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])

    return damage


def _replace(relative: str, data: bytes) -> Callable[[Path], None]:
    return lambda entry: (entry / relative).write_bytes(data)


def _empty(entry: Path) -> None:
    for child in entry.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()


# What a damaged entry of each stage costs: that stage and the stages after it.
RECOMPUTED = {
    "transfer": {"transfer": 1, "analysis": 1, "figures": 1},
    "analysis": {"transfer": 0, "analysis": 1, "figures": 1},
    "figures": {"transfer": 0, "analysis": 0, "figures": 1},
}


@pytest.mark.parametrize(
    "stage, damage",
    [
        pytest.param("transfer", _truncate("images.npz"), id="transfer-images-truncated"),
        pytest.param("transfer", _empty, id="transfer-emptied"),
        pytest.param("analysis", _truncate("arrays.npz"), id="analysis-arrays-truncated"),
        pytest.param("analysis", _replace("entry.json", b"{"), id="analysis-file-list-unreadable"),
        pytest.param("figures", _delete("run/result.png"), id="figures-result-deleted"),
        pytest.param("figures", _replace("figures.json", b"[]"), id="figures-record-not-a-mapping"),
    ],
)
def test_corrupt_cache_entry_is_recomputed(stage, damage, base, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(base.cache, cache)
    damage(base.cache_entries(cache)[stage])
    site = tmp_path / "site"
    summary = build(
        base.manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=cache)
    )
    assert summary.computed == ["good"] and not summary.failed
    assert summary.stages_computed == RECOMPUTED[stage]

    # The same files as the first build (the record and the pages show its timings).
    def files(folder: Path) -> dict[str, bytes]:
        return {
            k: v
            for k, v in snapshot(folder).items()
            if k != "data/pair.json" and not k.endswith(".html")
        }

    assert files(site / "pairs" / "good") == files(base.site / "pairs" / "good")
    # The damaged entry was replaced by a whole one: the next build takes everything from the cache.
    again = build(
        base.manifest,
        BuildOptions(tmp_path / "site2", ExecutorChoice(device="cpu"), cache_dir=cache),
    )
    assert again.cached == ["good"] and again.stages_computed == {
        "transfer": 0,
        "analysis": 0,
        "figures": 0,
    }
