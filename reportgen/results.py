"""Numpy-only results passed from the computation to figures and pages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def per_position(gram: np.ndarray, positions: int) -> np.ndarray:
    """A raw (C, C) Gram divided by its number of positions H·W (float64), so that Grams of
    images of different sizes can be compared."""
    return gram.astype(np.float64) / positions


@dataclass(frozen=True)
class GramCell:
    """One cell (i, j) of a Gram matrix and its value; i ≤ j."""

    i: int
    j: int
    value: float

    def as_list(self) -> list:
        return [self.i, self.j, self.value]


@dataclass(frozen=True)
class LayerAnalysis:
    """One layer of one pair: per role (``content``, ``style``, ``result``)."""

    layer: str
    maps: dict[str, np.ndarray]  # role -> (C, H, W) float32 feature maps
    grams: dict[str, np.ndarray]  # role -> (C, C) float32 raw Gram F·Fᵀ
    top_cells: dict[str, list[GramCell]]  # role -> largest cells, diagonal included
    top_pairs: dict[str, list[GramCell]]  # role -> largest off-diagonal cells (i < j)

    @property
    def channels(self) -> int:
        return next(iter(self.grams.values())).shape[0]

    def gram_per_position(self, role: str) -> np.ndarray:
        """``role``'s Gram divided by the number of positions of its maps."""
        _, height, width = self.maps[role].shape
        return per_position(self.grams[role], height * width)
