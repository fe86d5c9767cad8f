"""The one layout table: every file a run's folder holds is named there, templates build no paths
of their own, and the filter links rely only on grids the stylesheet has."""

from __future__ import annotations

import json
import re

from studies import REPO, STUDY_IDS

from reportgen import paths as layout
from reportgen.site import views

TEMPLATES = REPO / "templates"


def _expected_run_files(record: dict) -> set[str]:
    """The run-folder paths the layout gives a run with this record."""
    files = {layout.RECORD, layout.GRAMS, layout.LOSS_CURVES}
    files |= {
        name
        for role in layout.ROLES
        for name in (layout.image_file(role), layout.thumbnail_file(role))
    }
    files |= {snapshot["file"] for snapshot in record["snapshots"]}
    files |= {item["file"] for made in (record["reconstructions"] or {}).values() for item in made}
    for layer, info in record["layers"].items():
        figures = layout.LayerFiles(layer)
        files |= {
            figures.gram_heatmap,
            figures.gram_comparison,
            figures.correlation,
            figures.energy,
        }
        files |= {figures.pair(rank) for rank in range(1, len(info["top_pairs"]["style"]) + 1)}
        files |= {figures.maps(role) for role in layout.ROLES}
        files |= {figures.loss_curve} if info["is_style_layer"] else set()
        files |= {figures.difference} if info["is_content_layer"] else set()
    return files


def test_every_file_of_a_run_folder_is_named_by_the_layout(built_study):
    site = built_study.site
    for run in STUDY_IDS:
        folder = site / layout.run_dir(run)
        record = json.loads((folder / layout.RECORD).read_text())
        written = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        pages = {layout.INDEX, *(layout.layer_page_name(layer) for layer in record["layers"])}
        assert written == _expected_run_files(record) | pages, run
        assert set(record["files"]) == _expected_run_files(record) - {layout.RECORD}, run


# A Jinja2 expression or statement: {{ ... }} or {% ... %}.
JINJA_CODE = re.compile(r"{{(.*?)}}|{%(.*?)%}", re.S)
# A quoted string that names a file (has an extension) or a folder of the site.
PATH_LITERAL = re.compile(
    r"""['"][^'"]*(\.(html|png|webp|json|npz|zip|css|js)|\b(pairs|layers|assets|thumbs|data)/)[^'"]*['"]"""
)


def test_templates_build_no_paths():
    """Paths come finished from the page model: no string joins (``~``), no literal file names,
    and ``url()`` is only ever given a value of the context."""
    for template in sorted(TEMPLATES.glob("*.html")):
        for match in JINJA_CODE.finditer(template.read_text()):
            code = match.group(1) or match.group(2)
            if code.strip().startswith(("extends", "from", "import")):
                continue  # names of templates, not of the site
            where = f"{template.name}: {{{code.strip()}}}"
            assert "~" not in code, where
            assert not PATH_LITERAL.search(code), where
            assert not re.search(r"url\(\s*['\"]", code), where


def test_filter_links_rely_only_on_grids_the_stylesheet_has():
    stylesheet = (TEMPLATES / "static" / "style.css").read_text()
    assert {int(n) for n in re.findall(r"\.cols-(\d+)\s*{", stylesheet)} == set(
        views.LINKED_GRID_COLUMNS
    )
    assert {int(n) for n in re.findall(r"\.rows-(\d+)\s*{", stylesheet)} == set(
        views.LINKED_GRID_ROWS
    )
