"""Failed builds: a clean message naming the file, line or key, the previous site untouched, no
temporary folders left; a lock refuses a second build of one folder; --keep-going builds the
rest."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from oddities import (
    GOOD_PAIR,
    TINY,
    Base,
    assert_clean_failure,
    file_state,
    invoke,
    leftovers,
    noisy_gradient,
    tree_state,
    truncated_png,
    write,
)

import reportgen.site.publish as publish_module
import reportgen.site.writer as writer_module
import reportgen.stages.memory as memory_module
from reportgen.build import BuildOptions, build
from reportgen.errors import BuildError, ReportgenError
from reportgen.execute import ExecutorChoice
from reportgen.images import probe_image
from reportgen.site.writer import site_lock

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


def _larger_than_the_memory(case: BuildCase) -> tuple[str, ...]:
    # The device has 300 MB to give (as a busy machine might): 1024 px needs gigabytes.
    case.base.study(
        case.tmp / "study",
        GOOD_PAIR + "  - id: big\n    content: content.png\n"
        "    style: style.png\n    size: 1024\n    steps: 3\n",
    )
    case.monkeypatch.setattr(memory_module, "host_available", lambda: 300_000_000)
    return "'big'", "size 1024 needs about", "cpu has 0.3 GB available", "would fit"


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
    B("larger-than-the-device-memory", _larger_than_the_memory),
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
        before = tree_state(watched)
        cache_before = tree_state(base.cache)
        result = invoke("build", case.manifest, "--site-dir", case.site, *options, env=case.env)
    assert tree_state(watched) == before, "the previous site changed"
    assert leftovers(case.site) == []
    assert tree_state(base.cache) == cache_before, "a failed build changed the cache"
    assert_clean_failure(result, *fragments)


def test_site_lock_refuses_a_concurrent_build(base, tmp_path):
    manifest = base.study(tmp_path / "study")
    site = base.previous_site(tmp_path / "site")
    before = tree_state(site)
    with site_lock(site):
        with pytest.raises(BuildError, match="another reportgen build"):
            build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=base.cache))
    assert tree_state(site) == before and leftovers(site) == []
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
    before = tree_state(site)
    with pytest.raises(ReportgenError, match="broken.png"):
        build(manifest, BuildOptions(site, ExecutorChoice(device="cpu"), cache_dir=base.cache))
    assert tree_state(site) == before and leftovers(site) == []

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


@pytest.mark.parametrize("failure", ["rename-fails", "interrupted"])
def test_failure_while_writing_keeps_the_previous_site(failure, base, tmp_path, monkeypatch):
    manifest = base.study(tmp_path / "study")
    site = base.previous_site(tmp_path / "site")
    (site / "CNAME").write_text("example.org\n")  # a file of the user's, not reportgen's
    before = tree_state(site)
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
    assert tree_state(site) == before, "the previous site changed"
    assert leftovers(site) == []
