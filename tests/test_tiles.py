"""Contribution maps and peaks: what the pair figures and the filter pages are drawn from."""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.grams import GramCell
from reportgen.tiles import contribution_tiles, pair_tile_size, peaks


@pytest.mark.parametrize("side", [5, 48, 333])  # enlarged, kept, shrunk
def test_contribution_maps_sum_to_one_at_every_size(side):
    maps = np.random.default_rng(side).random((6, side, side + 3)).astype(np.float32)
    pairs = [GramCell(0, 1, 0.0), GramCell(2, 5, 0.0)]
    shares = contribution_tiles(maps, pairs)
    width, height = pair_tile_size(side, side + 3)
    assert shares.shape == (2, height, width)
    assert shares.sum(axis=(1, 2)) == pytest.approx([1.0, 1.0], abs=1e-4)
    assert (shares >= 0).all()


def test_contribution_map_shows_where_the_cell_comes_from():
    """Two filters that are strong together only in the top-left quarter: all of G_ij is there."""
    maps = np.zeros((2, 64, 64), np.float32)
    maps[0, :32, :32] = 1.0
    maps[1, :32, :] = 2.0  # filter 1 also fires top right, where filter 0 is silent
    share = contribution_tiles(maps, [GramCell(0, 1, 0.0)])[0]
    h, w = share.shape
    assert share[: h // 2, : w // 2].sum() == pytest.approx(1.0, abs=1e-5)


def test_a_cell_that_is_zero_has_no_contribution_map():
    maps = np.zeros((2, 16, 16), np.float32)
    maps[0, 0, 0] = 1.0
    assert not contribution_tiles(maps, [GramCell(0, 1, 0.0)]).any()


def test_peaks_are_each_maps_largest_value_and_its_place():
    maps = np.zeros((3, 7, 9), np.float32)
    maps[0, 2, 5] = 4.0
    maps[1, 6, 0] = 1.5
    found = peaks(maps)
    assert found[0].tolist() == [4.0, 2, 5]
    assert found[1].tolist() == [1.5, 6, 0]
    assert found[2, 0] == 0.0
