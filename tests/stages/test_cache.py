"""The cache of each stage: an image changed between builds is not taken from it, and a damaged
entry of any stage is computed again, with the stages after it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from oddities import noisy_gradient, tree_state, truncated_png, write

from reportgen.build import BuildOptions, build
from reportgen.errors import ReportgenError
from reportgen.execute import ExecutorChoice


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
            for k, v in tree_state(folder).items()
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
