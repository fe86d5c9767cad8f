"""Odd image files: what load_image and probe_image make of them (orientation, transparency,
ICC profiles, 16-bit grey, animations, bombs, damage), as a table of cases."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from oddities import (
    BLUE,
    RED,
    SWAPPED_PROFILE,
    WHITE,
    exif_jpeg,
    file_state,
    gradient,
    is_colour,
    mean_colour,
    noisy_gradient,
    png_header_only,
    save,
    truncated_png,
    two_bands,
    write,
)
from PIL import Image, ImageCms, ImageFile

import reportgen.images as images_module
from reportgen.errors import ImageError
from reportgen.images import MIN_SIDE, load_image, probe_image

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
