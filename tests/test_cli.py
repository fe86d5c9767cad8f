"""The command line, through click's test runner (and one real subprocess)."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner
from studies import IMAGES, make_study

from reportgen import __version__
from reportgen.cli import main


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_help_lists_the_commands(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("build", "check", "clean"):
        assert command in result.output
    assert "style transfer" in result.output


def test_build_help_lists_its_options(runner):
    result = runner.invoke(main, ["build", "--help"])
    assert result.exit_code == 0
    for option in (
        "--site-dir",
        "--device",
        "--jobs",
        "--cache-dir",
        "--no-cache",
        "--keep-going",
        "--quiet",
    ):
        assert option in result.output


def test_version(runner):
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output and "reportgen" in result.output


def test_check_accepts_the_example(runner):
    manifest = IMAGES / "manifest.yaml"
    result = runner.invoke(main, ["check", str(manifest)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "3 pairs" in result.output


def test_check_reports_a_bad_manifest(runner, tmp_path):
    manifest = make_study(tmp_path)
    manifest.write_text(manifest.read_text().replace("  size: 48", "  size: 2"))
    result = runner.invoke(main, ["check", str(manifest)])
    assert result.exit_code != 0
    assert "manifest.yaml:4:" in result.output and "defaults.size" in result.output
    assert "Traceback" not in result.output


def test_build_with_a_bad_manifest_fails_cleanly(runner, tmp_path):
    manifest = make_study(tmp_path / "study")
    text = manifest.read_text().replace(
        "    style: img/mosaic.png\n", "    style: img/mosaic.png\n    steps: lots\n"
    )
    manifest.write_text(text)
    line = text.splitlines().index("    steps: lots") + 1
    site = tmp_path / "site"
    result = runner.invoke(
        main,
        [
            "build",
            str(manifest),
            "-d",
            str(site),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code not in (0, None)
    assert f"manifest.yaml:{line}:" in result.output
    assert "pairs[1].steps" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not site.exists()


def test_build_refuses_an_unknown_device(runner, tmp_path):
    manifest = make_study(tmp_path / "study")
    result = runner.invoke(
        main,
        [
            "build",
            str(manifest),
            "-d",
            str(tmp_path / "site"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--device",
            "tpu",
        ],
    )
    assert result.exit_code != 0
    assert "tpu" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "options, named",
    [
        (["--device", "cpu,tpu"], "tpu"),
        (["--device", "cuda:0"], "no CUDA device"),
        (["--jobs", "-1"], "--jobs"),
    ],
)
def test_build_refuses_bad_devices_and_jobs(runner, tmp_path, options, named):
    if named == "no CUDA device":
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is present")
    manifest = make_study(tmp_path / "study")
    result = runner.invoke(
        main,
        [
            "build",
            str(manifest),
            "-d",
            str(tmp_path / "site"),
            "--cache-dir",
            str(tmp_path / "cache"),
            *options,
        ],
    )
    assert result.exit_code != 0 and named in result.output
    assert "Traceback" not in result.output and not (tmp_path / "site").exists()


def test_clean_empties_the_cache(runner, tmp_path):
    cache = tmp_path / "cache"
    for stage, name in (("transfer", "a" * 64), ("analysis", "b" * 64), ("figures", "c" * 64)):
        (cache / stage / name).mkdir(parents=True)
        (cache / stage / name / "entry.json").write_text("{}")
    (cache / "figures" / ".0123456789ab.partial-x").mkdir()
    (cache / ("d" * 64) / "data").mkdir(parents=True)  # an entry of the layout before stages
    result = runner.invoke(main, ["clean", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert "removed 4 cached results" in result.output
    assert list(cache.iterdir()) == []


def test_clean_uses_reportgen_cache_dir(runner, tmp_path, monkeypatch):
    cache = tmp_path / "env-cache"
    (cache / ("c" * 64)).mkdir(parents=True)
    monkeypatch.setenv("REPORTGEN_CACHE_DIR", str(cache))
    result = runner.invoke(main, ["clean"])
    assert result.exit_code == 0, result.output
    assert "removed 1 cached result " in result.output and str(cache) in result.output
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("command", ["help", "check", "cached build"])
def test_help_check_and_a_cached_build_never_import_torch(command, built_study, tmp_path):
    """Reading help, validating a manifest and rebuilding a site whose results are all cached
    must not pay for loading torch."""
    manifest = make_study(tmp_path / "study")
    arguments = {
        "help": ["--help"],
        "check": ["check", str(manifest)],
        "cached build": ["build", str(manifest), "-d", str(tmp_path / "site")]
        + ["--cache-dir", str(built_study.cache), "--jobs", "0"],
    }[command]
    code = textwrap.dedent(
        f"""
        import sys
        from click.testing import CliRunner
        from reportgen.cli import main
        result = CliRunner().invoke(main, {arguments!r})
        assert result.exit_code == 0, result.output
        print("torch" in sys.modules)
        """
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "False"
    if command == "cached build":
        assert (tmp_path / "site" / "pairs" / "cat" / "index.html").is_file()


@pytest.mark.parametrize(
    "arguments, code, stream, text",
    [
        (["check", str(IMAGES / "manifest.yaml")], 0, "stdout", "OK, 3 pairs"),
        (["check", "missing.yaml"], 2, "stderr", "missing.yaml: file not found"),
        (["build"], 2, "stderr", "Missing argument 'MANIFEST'"),
        (["--version"], 0, "stdout", "reportgen, version"),
    ],
)
def test_the_console_entry_point_keeps_exit_codes_and_output(
    tmp_path, arguments, code, stream, text
):
    """`reportgen` skips the interpreter's teardown (cli.run); nothing it printed may be lost."""
    completed = subprocess.run(
        [sys.executable, "-m", "reportgen", *arguments],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert completed.returncode == code, completed.stderr
    assert text in getattr(completed, stream)


def test_a_build_through_the_console_entry_point_leaves_a_complete_site(tmp_path):
    """The quick exit comes after the site is swapped in and the lock released."""
    manifest = make_study(tmp_path / "study", steps=2, size=32)
    # This process's defaults do not reach the child: the visualisations are small by hand.
    manifest.write_text("feature_visualisation: {size: 16, steps: 2}\n" + manifest.read_text())
    site, cache = tmp_path / "site", tmp_path / "cache"
    command = [
        sys.executable,
        "-m",
        "reportgen",
        "build",
        str(manifest),
        "-d",
        str(site),
        "--cache-dir",
        str(cache),
        "--device",
        "cpu",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "built " in completed.stdout and "2 computed" in completed.stdout
    # Before computing them, the build says how many visualisations and about how long.
    said = re.search(
        r"feature visualisations: (\d+) filters of 6 layers to compute, about ", completed.stderr
    )
    assert said and f"{said.group(1)} filters visualised" in completed.stdout, completed.stderr
    for pair_id in ("cat", "cup"):
        assert (site / "pairs" / pair_id / "index.html").stat().st_size > 0
        assert (site / "pairs" / pair_id / "data" / "pair.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site")] == [".site.lock"], (
        "a staging folder was left behind"
    )
    with open(tmp_path / ".site.lock") as handle:  # released: another build could take it now
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    for stage in ("transfer", "analysis", "figures"):  # two whole entries each, nothing half made
        assert sorted(p.name.startswith(".") for p in (cache / stage).iterdir()) == [
            False,
            False,
        ], stage
