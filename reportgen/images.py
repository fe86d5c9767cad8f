"""Reading the manifest's images into the exact 8-bit RGB arrays the network is fed.

Every decision about odd files lives here, and each is stated:

* EXIF orientation is applied before resizing, so the picture is upright as a viewer shows it.
* Transparency (RGBA, LA, P with a transparent colour) is composited on white.
* CMYK and images with an embedded ICC profile are converted to sRGB.
* 16- and 32-bit grayscale (I;16, I, F) is rescaled from its own min..max to 0..255, not clipped.
* Animated GIF/WebP/PNG: the first frame is used, with a warning.
* Decompression bombs: files of more than ``MAX_PIXELS`` pixels are refused before decoding.
* Large JPEGs are decoded at a reduced scale (``Image.draft``) so memory stays near the output size.
* Images whose shorter side would be under ``MIN_SIDE`` px are refused: VGG19 halves the
  resolution four times before conv5_1, which then needs at least one position.

A file named by the manifest is only ever opened for reading.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from reportgen.errors import ImageError

log = logging.getLogger(__name__)

MAX_PIXELS = 100_000_000  # 100 megapixels: a 10000 x 10000 photo passes, a bomb does not
MIN_SIDE = 16
# The largest side a manifest may ask for: a sanity bound only.  Below it, the device's memory
# decides what fits (reportgen.stages.memory refuses a run that does not, before it starts).
MAX_SIDE = 16384
BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class LoadedImage:
    """An input image as fed to the network: ``pixels`` is (H, W, 3) uint8 RGB."""

    path: Path
    pixels: np.ndarray
    sha256: str
    original_size: tuple[int, int]  # (width, height) after EXIF orientation
    notes: tuple[str, ...] = field(default=())

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as fed to the network."""
        return self.pixels.shape[1], self.pixels.shape[0]


def target_size(width: int, height: int, longest_side: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is ``longest_side``."""
    scale = longest_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """Any Pillow mode -> RGB, by the rules in the module docstring."""
    icc = image.info.get("icc_profile")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.any():
            raise ValueError("no finite pixel values")
        values = np.where(
            finite, values, np.nanmin(np.where(finite, values, np.nan))
        )  # NaN/inf count as the minimum
        low, high = float(values.min()), float(values.max())
        span = high - low if high > low else 1.0
        gray = np.round((values - low) / span * 255).astype(np.uint8)
        notes.append(f"{image.mode} grayscale rescaled from [{low:g}, {high:g}] to 0..255")
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode in ("P", "L", "RGB") and "transparency" in image.info:
        image = image.convert("RGBA")  # a palette or a single colour (tRNS) marked transparent
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        if int(np.asarray(rgba.getchannel("A")).min()) < 255:
            notes.append("transparent pixels composited on white")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        image = Image.alpha_composite(background, rgba)
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            mode = image.mode if image.mode in ("RGB", "CMYK", "L") else "RGB"
            converted = ImageCms.profileToProfile(
                image.convert(mode), source, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            assert converted is not None  # not converted in place: a new image is returned
            image = converted
            notes.append("converted from its ICC profile to sRGB")
        except (ImageCms.PyCMSError, OSError):
            notes.append("embedded ICC profile unreadable; colours taken as sRGB")
    return image.convert("RGB")


def load_image(path: Path, longest_side: int, shape: tuple[int, int] | None = None) -> LoadedImage:
    """Read ``path`` and resize it so its longer side is ``longest_side`` px, or, given ``shape``
    (width, height), to exactly that shape whatever its own aspect ratio (as the seed notebook
    fits the style image to the content's).

    Raises :class:`ImageError` naming the file for anything that cannot be used.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror or error})") from None
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 megapixels; the explicit limit below decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"{path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, over the "
                    f"limit of {MAX_PIXELS / 1e6:.0f} (refused as a possible decompression bomb)"
                )
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                notes.append(f"animated ({frames} frames): the first frame is used")
                log.warning("%s: %s", path, notes[-1])
            if image.format == "JPEG":
                # Decode at 1/2, 1/4 or 1/8 scale when that still leaves at least twice the output.
                swapped = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
                want = (
                    target_size(height, width, longest_side)
                    if swapped
                    else target_size(width, height, longest_side)
                )
                if shape is not None:
                    want = (shape[1], shape[0]) if swapped else shape
                image.draft("RGB", (want[0] * 2, want[1] * 2))
            image.load()
            oriented = ImageOps.exif_transpose(image)
            original_size = _oriented_size(width, height, image)
            rgb = _to_rgb(oriented, notes)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(
            f"{path}: refused as a possible decompression bomb (over {MAX_PIXELS / 1e6:.0f} "
            "megapixels)"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{path}: damaged or truncated image ({error})") from None

    if min(original_size) < MIN_SIDE:
        raise ImageError(
            f"{path}: {original_size[0]}x{original_size[1]} is too small; the shorter side must "
            f"be at least {MIN_SIDE} px"
        )
    size = shape or target_size(*rgb.size, longest_side)
    if min(size) < MIN_SIDE:
        raise ImageError(
            f"{path}: at size {longest_side} it becomes {size[0]}x{size[1]}; the shorter side "
            "must be at "
            f"least {MIN_SIDE} px (raise size, or crop the image)"
        )
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    for note in notes:
        log.info("%s: %s", path, note)
    return LoadedImage(
        path,
        np.asarray(rgb, dtype=np.uint8).copy(),
        hashlib.sha256(data).hexdigest(),
        original_size,
        tuple(notes),
    )


def _oriented_size(width: int, height: int, image: Image.Image) -> tuple[int, int]:
    """Full-resolution (width, height) after EXIF orientation, whatever draft mode decoded."""
    if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
        return height, width
    return width, height


def size_estimate(path: Path, longest_side: int) -> tuple[int, int] | None:
    """The (width, height) :func:`load_image` will most likely give ``path``, from its header
    alone (a JPEG decoded in draft mode may come out a pixel off); ``None`` if it cannot tell."""
    try:
        with Image.open(path) as image:
            return target_size(*_oriented_size(*image.size, image), longest_side)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def keep_as_file(image: Image.Image, folder: Path, prefix: str) -> Path:
    """An image given in memory kept as a PNG file in ``folder``, named by a hash of its bytes
    (the same pixels: the same file, so the same cache keys), written atomically.  EXIF
    orientation is applied first, as it is to files when they are read."""
    oriented = ImageOps.exif_transpose(image)
    buffer = io.BytesIO()
    oriented.save(buffer, format="PNG")
    data = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{prefix}-{hashlib.sha256(data).hexdigest()[:16]}.png"
    if not path.is_file():
        handle, partial = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=".png")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(partial, path)
    return path


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Write (H, W, 3) uint8 RGB losslessly."""
    Image.fromarray(pixels, "RGB").save(path, format="PNG", optimize=False, compress_level=6)


# ITU-R BT.601 luma weights: a colour mask reads as the grey a viewer sees.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def load_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 in 0..1: the image at ``path`` as a mask fitted to ``shape`` (width,
    height) whatever its own aspect ratio: its luminance, 1 (white) inside, 0 outside, grey
    for soft edges.  Raises :class:`ImageError` as :func:`load_image` does."""
    pixels = load_image(path, max(shape), shape=shape).pixels
    return (pixels.astype(np.float32) @ LUMA) / 255


def probe_image(path: Path) -> str | None:
    """Cheap check of an image file without decoding its pixels; returns a problem or ``None``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except UnidentifiedImageError:
        return f"not an image Pillow can read: {path}"
    except Image.DecompressionBombError:
        return (
            f"{path}: refused as a possible decompression bomb "
            f"(over {MAX_PIXELS / 1e6:.0f} megapixels)"
        )
    except (OSError, SyntaxError, ValueError) as error:
        return f"cannot read image {path} ({error})"
    if width * height > MAX_PIXELS:
        return (
            f"{path}: {width}x{height} is over the limit of {MAX_PIXELS / 1e6:.0f} megapixels "
            "(a possible decompression bomb)"
        )
    if min(width, height) < MIN_SIDE:
        return (
            f"{path}: {width}x{height} is too small; the shorter side must be "
            f"at least {MIN_SIDE} px"
        )
    return None
