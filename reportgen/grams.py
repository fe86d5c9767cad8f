"""The maths of Gram matrices once they are numpy: normalisations, rankings, distances.

Torch-free, so the analysis (on the device), the figures (in worker processes) and the study-wide
comparisons (in the build) share one definition of each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GramCell:
    """One cell (i, j) of a Gram matrix and its value; i ≤ j."""

    i: int
    j: int
    value: float

    def as_list(self) -> list:
        return [self.i, self.j, self.value]

    @classmethod
    def from_list(cls, cell: list) -> GramCell:
        i, j, value = cell
        return cls(int(i), int(j), float(value))


def per_position(gram: np.ndarray, positions: int) -> np.ndarray:
    """A raw (C, C) Gram divided by its number of positions H·W (float64), so that Grams of
    images of different sizes can be compared."""
    return gram.astype(np.float64) / positions


def correlation(gram: np.ndarray) -> np.ndarray:
    """(C, C) raw Gram -> G_ij / sqrt(G_ii·G_jj): the cosine between two filters' maps.

    The raw Gram ranks loud filters first; this ranks filters that fire *together* first, whatever
    their strength.  A silent filter (G_ii = 0) correlates with nothing: its row is 0.
    """
    energy = np.sqrt(np.clip(np.diag(gram).astype(np.float64), 0, None))
    scale = np.outer(energy, energy)
    return np.divide(gram, scale, out=np.zeros(gram.shape, dtype=np.float64), where=scale > 0)


def sorted_cells(gram: np.ndarray, count: int, off_diagonal: bool) -> list[GramCell]:
    """The ``count`` largest cells of a symmetric (C, C) matrix, each unordered pair once (i ≤ j).

    With ``off_diagonal`` the diagonal is left out (i < j): the seed's "top matched filters".
    Ties are broken by (i, j) so the order is stable.
    """
    rows, cols = np.triu_indices(gram.shape[0], k=1 if off_diagonal else 0)
    values = gram[rows, cols]
    if count < len(values):
        # Only cells at least as large as the count-th largest can be among the first ``count``
        # (ties included): sorting those few instead of all C²/2 cells is what makes this cheap.
        threshold = np.partition(values, len(values) - count)[len(values) - count]
        if not np.isnan(threshold):  # NaNs partition as largest; then sort everything, as before
            keep = np.flatnonzero(values >= threshold)
            rows, cols, values = rows[keep], cols[keep], values[keep]
    # lexsort's last key sorts first: value descending, then i, then j.
    order = np.lexsort((cols, rows, -values))[:count]
    return [GramCell(int(rows[k]), int(cols[k]), float(values[k])) for k in order]


def relative_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ / ‖b‖ (Frobenius), the distance used to say how far one representation is from
    another."""
    return float(np.linalg.norm(a - b)) / max(float(np.linalg.norm(b)), 1e-30)
