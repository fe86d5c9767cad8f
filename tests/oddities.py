"""Odd inputs made on the spot: image files (with numpy and Pillow, ICC profiles written by hand),
and the helpers the tests of failures share (what a folder holds, a clean CLI failure, a small
shared study whose result is in a cache)."""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from reportgen.cli import main
from reportgen.manifest import load_manifest

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


def tree_state(path: Path) -> dict[str, bytes | None]:
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


# top_pairs: 1: fewer figure rows, a faster build.
TINY = "defaults:\n  size: 32\n  steps: 2\n  top_pairs: 1\n"
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
        from reportgen.stages.cache import run_keys
        from reportgen.stages.fingerprint import file_sha256, weights_fingerprint

        run = next(run for run in load_manifest(self.manifest).runs if run.name == "good")
        keys = run_keys(
            file_sha256(run.pair.content),
            tuple(file_sha256(style) for style in run.pair.styles),
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
