"""Generate two painterly style images for neural style transfer tests.

Writes, next to this script:

    style/brushstrokes.jpg  short curved brush strokes following a swirling flow field
    style/mosaic.png        stained-glass mosaic of Voronoi cells with dark lead lines

Only numpy and Pillow are needed. The random generators are seeded, so running
the script again gives the same images:

    python images/make_style_images.py
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 512
OUT_DIR = Path(__file__).resolve().parent / "style"


def smooth_noise(rng, size, cells):
    """Smooth random field in [0, 1]: a coarse random grid upscaled bicubically."""
    coarse = (rng.random((cells, cells)) * 255).astype(np.uint8)
    field = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    return np.asarray(field, dtype=np.float32) / 255.0


# --------------------------------------------------------------------------
# Brush strokes
# --------------------------------------------------------------------------

# Bold night-sky palette: deep blues, cobalt, turquoise, chrome yellow, orange.
STROKE_PALETTE = np.array(
    [
        (18, 38, 110),  # ultramarine
        (30, 80, 170),  # cobalt
        (60, 140, 210),  # cerulean
        (40, 170, 170),  # turquoise
        (250, 210, 40),  # chrome yellow
        (245, 140, 25),  # orange
        (235, 240, 200),  # pale cream
    ],
    dtype=np.float32,
)


def flow_angle(rng, size):
    """Angle field made of a few vortices plus smooth noise, for a swirling look."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = (smooth_noise(rng, size, 5) - 0.5) * 2.0 * np.pi
    for _ in range(5):
        cx, cy = rng.uniform(0, size, 2)
        radius = rng.uniform(0.12, 0.25) * size
        spin = rng.choice([-1.0, 1.0])
        dx, dy = x - cx, y - cy
        weight = np.exp(-(dx * dx + dy * dy) / (2 * radius * radius))
        tangent = np.arctan2(dy, dx) + spin * np.pi / 2
        # Blend the vortex direction in via unit vectors to avoid angle wrap issues.
        vx = (1 - weight) * np.cos(angle) + weight * np.cos(tangent)
        vy = (1 - weight) * np.sin(angle) + weight * np.sin(tangent)
        angle = np.arctan2(vy, vx)
    return angle


def draw_stroke(draw, points, fill, width):
    """Polyline with round joints and round end caps (Pillow's lines end square)."""
    draw.line(points, fill=fill, width=width, joint="curve")
    r = width / 2
    for px, py in (points[0], points[-1]):
        draw.ellipse((px - r, py - r, px + r, py + r), fill=fill)


def make_brushstrokes(seed=7, n_strokes=4200, scale=2):
    """Draw curved polyline strokes along a flow field, supersampled by `scale`."""
    rng = np.random.default_rng(seed)
    big = SIZE * scale
    angle = flow_angle(rng, SIZE)
    # Which palette colour dominates where: a smooth field gives colour zones.
    zone = smooth_noise(rng, SIZE, 4)

    canvas = Image.new("RGB", (big, big), (22, 42, 96))  # dark blue ground
    draw = ImageDraw.Draw(canvas)

    for _ in range(n_strokes):
        x, y = rng.uniform(0, SIZE, 2)
        length = rng.integers(8, 18)
        step = rng.uniform(2.0, 3.5)
        points = []
        for _ in range(length):
            points.append((x * scale, y * scale))
            a = angle[int(y) % SIZE, int(x) % SIZE]
            x += step * np.cos(a)
            y += step * np.sin(a)

        # Pick a palette entry near the local zone value, then jitter it.
        z = zone[int(points[0][1] / scale), int(points[0][0] / scale)]
        idx = int(np.clip(z * len(STROKE_PALETTE) + rng.normal(0, 1.0), 0, len(STROKE_PALETTE) - 1))
        colour = STROKE_PALETTE[idx] + rng.normal(0, 14, 3)
        colour = tuple(int(c) for c in np.clip(colour, 0, 255))
        dark = tuple(int(c * 0.55) for c in colour)
        light = tuple(int(min(255, c * 1.25 + 30)) for c in colour)

        width = int(rng.uniform(6, 14) * scale)
        # Dark rim, body, then a thin highlight ridge: reads as a loaded brush.
        draw_stroke(draw, points, dark, width + 2 * scale)
        draw_stroke(draw, points, colour, width)
        draw_stroke(draw, points[1:-1], light, max(scale, width // 5))

    return canvas.resize((SIZE, SIZE), Image.LANCZOS)


# --------------------------------------------------------------------------
# Stained-glass mosaic
# --------------------------------------------------------------------------

GLASS_PALETTE = np.array(
    [
        (220, 30, 40),  # ruby
        (250, 170, 20),  # amber
        (250, 225, 60),  # lemon
        (30, 150, 70),  # emerald
        (20, 90, 200),  # sapphire
        (40, 190, 220),  # sky
        (140, 50, 170),  # amethyst
        (240, 100, 30),  # orange
    ],
    dtype=np.float32,
)


def make_mosaic(seed=11, grid=13, border=5.0):
    """Voronoi cells (jittered grid of seeds) in flat glass colours with lead lines."""
    rng = np.random.default_rng(seed)
    cell = SIZE / grid
    gy, gx = np.mgrid[0:grid, 0:grid].astype(np.float32)
    seeds_x = ((gx + rng.uniform(0.1, 0.9, gx.shape)) * cell).ravel()
    seeds_y = ((gy + rng.uniform(0.1, 0.9, gy.shape)) * cell).ravel()

    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    # Running nearest and second-nearest distance, one seed at a time (low memory).
    d1 = np.full((SIZE, SIZE), np.inf, dtype=np.float32)
    d2 = np.full((SIZE, SIZE), np.inf, dtype=np.float32)
    owner = np.zeros((SIZE, SIZE), dtype=np.int32)
    for i, (sx, sy) in enumerate(zip(seeds_x, seeds_y, strict=True)):
        d = np.hypot(x - sx, y - sy)
        closer = d < d1
        d2 = np.where(closer, d1, np.minimum(d2, d))
        owner = np.where(closer, i, owner)
        d1 = np.where(closer, d, d1)

    colours = GLASS_PALETTE[rng.integers(0, len(GLASS_PALETTE), len(seeds_x))]
    colours = np.clip(colours + rng.normal(0, 12, colours.shape), 0, 255)
    img = colours[owner]

    # Glass shading: a little brighter at the cell centre, darker near the lead.
    shade = 1.15 - 0.35 * np.clip(d1 / cell, 0, 1)
    img = img * shade[..., None]

    # Lead lines where the two nearest seeds are almost equally far away.
    # Smoothstep over one pixel for anti-aliased edges.
    t = np.clip((d2 - d1 - border) / 1.5, 0, 1)
    edge = t * t * (3 - 2 * t)
    lead = np.array([25, 22, 28], dtype=np.float32)
    img = img * edge[..., None] + lead * (1 - edge[..., None])

    # Faint grain so the glass is not perfectly flat.
    img += rng.normal(0, 4, img.shape) * edge[..., None]
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return out.filter(ImageFilter.SMOOTH)


def save_small(img, stem, limit=400_000):
    """Save as PNG, falling back to JPEG (quality 90) if the PNG exceeds `limit`."""
    png = OUT_DIR / f"{stem}.png"
    jpg = OUT_DIR / f"{stem}.jpg"
    img.save(png, optimize=True)
    if png.stat().st_size > limit:
        png.unlink()
        img.save(jpg, quality=90, optimize=True)
        return jpg
    jpg.unlink(missing_ok=True)
    return png


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for stem, make in (("brushstrokes", make_brushstrokes), ("mosaic", make_mosaic)):
        path = save_small(make(), stem)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
