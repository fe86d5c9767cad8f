"""The example notebook (images/notebook.ipynb) runs from its first cell to its last, in a real
Jupyter kernel, so it can never go stale; it is committed without outputs.

Its ``parameters`` cell is overridden as papermill does it (a cell injected after it), with a
tiny size and few steps: every other cell runs as a user runs it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLE = Path(__file__).parents[2] / "images" / "notebook.ipynb"


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_example_notebook_is_committed_without_outputs():
    notebook = nbformat.read(EXAMPLE, as_version=4)
    nbformat.validate(notebook)
    for cell in _code_cells(notebook):
        assert not cell.outputs and cell.execution_count is None, cell.source


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> nbformat.NotebookNode:
    notebook = nbformat.read(EXAMPLE, as_version=4)
    position = next(
        index
        for index, cell in enumerate(notebook.cells)
        if "parameters" in cell.metadata.get("tags", [])
    )
    injected = nbformat.v4.new_code_cell("size = 32\nsteps = 3")
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(position + 1, injected)
    with pytest.MonkeyPatch.context() as patch:
        # The kernel inherits the environment: its cache is the test's own.
        patch.setenv("REPORTGEN_CACHE_DIR", str(tmp_path_factory.mktemp("notebook-cache")))
        NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(EXAMPLE.parent)}},
        ).execute()
    return notebook


def test_every_cell_of_the_example_notebook_runs_without_an_error(executed):
    for cell in _code_cells(executed):
        assert all(output.output_type != "error" for output in cell.outputs), cell.source


def test_the_notebook_shows_the_seeds_figures_and_values(executed):
    cells = {cell.source.strip(): cell for cell in _code_cells(executed)}

    def shown(source: str) -> list[str]:
        """The MIME types the cell whose last line is ``source`` displayed."""
        cell = next(cell for text, cell in cells.items() if text.split("\n")[-1] == source)
        return [kind for output in cell.outputs for kind in output.get("data", {})]

    for figure in (
        "run.show_inputs()",
        "run.show_content_representation()",
        "run.show_style_representations()",
        'run.show_filters("conv1_1")',
        'run.show_top_pairs("conv1_1", 4)',
    ):
        assert "image/png" in shown(figure), figure
    assert "text/html" in shown("run")  # the run's own summary
    assert "text/html" in shown("study")
    # The deeper layers' loop displays two figures a layer.
    loop = next(cell for text, cell in cells.items() if text.startswith("for layer in"))
    assert sum("image/png" in output.get("data", {}) for output in loop.outputs) == 8
    # The seed's sorted Gram cells: twenty (i, j) pairs, printed.
    sorted_cells = next(cell for text, cell in cells.items() if "gram_cells" in text)
    printed = sorted_cells.outputs[0]["data"]["text/plain"]
    assert printed.count("(") == 20
