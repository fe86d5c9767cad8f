"""Gram maths once numpy (reportgen.grams): distances and rankings of cells, by known answers and
against a full sort."""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.grams import relative_distance, sorted_cells


def test_relative_distance_known_answers():
    b = np.array([[3.0, 0.0], [0.0, 4.0]])
    assert relative_distance(b, b) == 0.0
    assert relative_distance(2 * b, b) == pytest.approx(1.0)
    assert relative_distance(np.zeros_like(b), b) == pytest.approx(1.0)


# --- sorted_cells --------------------------------------------------------------------------------


def _random_symmetric(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n))
    return a + a.T  # continuous values: no ties


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("count", [1, 7, 1000])
def test_sorted_cells_off_diagonal(seed, count):
    g = _random_symmetric(9, seed)
    cells = sorted_cells(g, count, off_diagonal=True)
    assert len(cells) == min(count, 9 * 8 // 2)
    pairs = [(c.i, c.j) for c in cells]
    assert all(i < j for i, j in pairs)
    assert len(set(pairs)) == len(pairs)  # each unordered pair once
    values = [c.value for c in cells]
    assert values == sorted(values, reverse=True)
    assert all(c.value == g[c.i, c.j] for c in cells)
    # The largest ones, not just some sorted ones.
    rows, cols = np.triu_indices(9, k=1)
    assert values == sorted(g[rows, cols].tolist(), reverse=True)[: len(values)]


def test_sorted_cells_with_diagonal():
    g = np.array([[9.0, 1.0, 5.0], [1.0, 2.0, 7.0], [5.0, 7.0, 3.0]])
    cells = [(c.i, c.j, c.value) for c in sorted_cells(g, 4, off_diagonal=False)]
    assert cells == [(0, 0, 9.0), (1, 2, 7.0), (0, 2, 5.0), (2, 2, 3.0)]
    off = [(c.i, c.j, c.value) for c in sorted_cells(g, 10, off_diagonal=True)]
    assert off == [(1, 2, 7.0), (0, 2, 5.0), (0, 1, 1.0)]


def test_sorted_cells_breaks_ties_by_index():
    g = np.array(
        [
            [0.0, 1.0, 4.0, 1.0, 1.0, 2.0],
            [1.0, 0.0, 2.0, 2.0, 3.0, 3.0],
            [4.0, 2.0, 0.0, 1.0, 2.0, 1.0],
            [1.0, 2.0, 1.0, 2.0, 4.0, 2.0],
            [1.0, 3.0, 2.0, 4.0, 4.0, 4.0],
            [2.0, 3.0, 1.0, 2.0, 4.0, 0.0],
        ]
    )
    cells = [(c.i, c.j) for c in sorted_cells(g, 3, off_diagonal=False)]
    # Four cells hold the maximum 4: (0,2), (3,4), (4,4) and (4,5); the first three by (i, j) win.
    assert cells == [(0, 2), (3, 4), (4, 4)]


@pytest.mark.parametrize("count", [1, 10, 20, 200])
def test_sorted_cells_of_a_large_matrix_with_many_ties_equal_a_full_sort(count):
    """Large matrices take a shortcut (only cells reaching the count-th value are sorted); with
    many equal values around that threshold it must still give the full sort's first cells."""
    rng = np.random.default_rng(count)
    g = rng.integers(0, 6, (300, 300)).astype(np.float32)
    g = g + g.T
    for off_diagonal in (True, False):
        rows, cols = np.triu_indices(300, k=1 if off_diagonal else 0)
        values = g[rows, cols]
        order = sorted(range(len(values)), key=lambda k: (-values[k], rows[k], cols[k]))[:count]
        expected = [(int(rows[k]), int(cols[k]), float(values[k])) for k in order]
        assert [(c.i, c.j, c.value) for c in sorted_cells(g, count, off_diagonal)] == expected
