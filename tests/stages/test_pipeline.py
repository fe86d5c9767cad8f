"""Each stage of a run is cached under its own key: a change to one stage's code, to an analysis
parameter, to a template or to a label recomputes what it must and nothing more."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from studies import REPO, STUDY_IDS, snapshot

from reportgen.build import BuildOptions, build
from reportgen.execute import ExecutorChoice
from reportgen.stages.fingerprint import STAGE_VERSIONS

NOTHING = {"transfer": 0, "analysis": 0, "figures": 0}
RECORD = "data/pair.json"


def rebuild(study, jobs=None):
    return build(
        study.manifest,
        BuildOptions(study.site, ExecutorChoice(device="cpu", jobs=jobs), cache_dir=study.cache),
    )


def files_of_runs(site) -> dict[str, bytes]:
    """Every file of every run's folder but its record (whose timings differ between builds)."""
    return {
        path: data
        for path, data in snapshot(site / "pairs").items()
        if not path.endswith(RECORD) and not path.endswith(".html")
    }


@pytest.mark.parametrize(
    "stage, recomputed",
    [
        ("figures", {"transfer": 0, "analysis": 0, "figures": 2}),
        ("analysis", {"transfer": 0, "analysis": 2, "figures": 2}),
    ],
)
def test_a_new_stage_version_recomputes_that_stage_and_those_after_it(
    stage, recomputed, fresh_study, no_optimisation, monkeypatch
):
    before = files_of_runs(fresh_study.site)
    monkeypatch.setitem(STAGE_VERSIONS, stage, STAGE_VERSIONS[stage] + 1)
    summary = rebuild(fresh_study, jobs=2)
    assert summary.stages_computed == recomputed and sorted(summary.computed) == sorted(STUDY_IDS)
    # Drawn again from the cached transfers, the figures are the same files.
    assert files_of_runs(fresh_study.site) == before
    record = json.loads((fresh_study.site / "pairs" / "cat" / RECORD).read_text())
    assert record["stage_versions"][stage] == STAGE_VERSIONS[stage]
    # And the new entries serve the next build whole.
    assert rebuild(fresh_study).stages_computed == NOTHING


def test_changing_top_pairs_runs_the_analysis_again_and_no_transfer(fresh_study, no_optimisation):
    text = fresh_study.manifest.read_text()
    fresh_study.manifest.write_text(text + "    top_pairs: 3\n")  # the last pair's, cup's
    summary = rebuild(fresh_study)
    assert summary.stages_computed == {"transfer": 0, "analysis": 1, "figures": 1}
    assert summary.computed == ["cup"] and summary.cached == ["cat"]
    record = json.loads((fresh_study.site / "pairs" / "cup" / RECORD).read_text())
    assert record["parameters"]["top_pairs"] == 3
    assert all(len(info["top_pairs"]["style"]) == 3 for info in record["layers"].values())
    page = (fresh_study.site / "pairs" / "cup" / "conv3_1.html").read_text()
    assert "The 3 largest off-diagonal cells of the raw style Gram" in page
    assert page.count('<li id="pair-') == 3


def test_a_template_change_renders_the_pages_and_computes_nothing(
    fresh_study, no_optimisation, monkeypatch, tmp_path
):
    import reportgen.site.render

    templates = shutil.copytree(REPO / "templates", tmp_path / "templates")
    base = templates / "base.html"
    base.write_text(
        base.read_text().replace("</body>", "<p id=changed-template>a changed template</p></body>")
    )
    monkeypatch.setattr(reportgen.site.render, "templates_dir", lambda: templates)
    summary = rebuild(fresh_study)
    assert summary.stages_computed == NOTHING and sorted(summary.cached) == sorted(STUDY_IDS)
    pages = [p for p in fresh_study.site.rglob("*.html") if p.name != "404.html"]
    assert pages and all("changed-template" in p.read_text() for p in pages)


def test_labels_changed_in_the_manifest_show_without_any_recompute(fresh_study, no_optimisation):
    images = fresh_study.manifest.parent / "img"
    (images / "cat.png").rename(images / "kitten.png")
    text = fresh_study.manifest.read_text()
    text = text.replace("id: cat\n", "id: kitten\n").replace(
        "Cat in brush strokes", "A kitten, retitled"
    )
    text = text.replace("img/cat.png", "img/kitten.png").replace(
        "    style: img/strokes.jpg\n",
        "    style: img/strokes.jpg\n    notes: Now with notes.\n",
        1,
    )
    fresh_study.manifest.write_text(text)
    summary = rebuild(fresh_study)
    assert summary.stages_computed == NOTHING and sorted(summary.cached) == ["cup", "kitten"]
    record = json.loads((fresh_study.site / "pairs" / "kitten" / RECORD).read_text())
    assert (record["id"], record["title"], record["notes"]) == (
        "kitten",
        "A kitten, retitled",
        "Now with notes.",
    )
    assert record["inputs"]["content"]["file"] == "img/kitten.png"
    page = (fresh_study.site / "pairs" / "kitten" / "index.html").read_text()
    assert "A kitten, retitled" in page and "Now with notes." in page and "img/kitten.png" in page
    assert not (fresh_study.site / "pairs" / "cat").exists()


def test_the_figures_stage_never_imports_torch():
    modules = "reportgen.figures.draw, reportgen.execute.local, reportgen.stages.pipeline"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False"
