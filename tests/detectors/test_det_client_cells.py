"""The grid cells of :class:`InputProfile` agree with a binary search per feature."""

from __future__ import annotations

import numpy as np

from detectors.client.input_profile import GRID, InputProfile


def searched_cells(profile: InputProfile, x: np.ndarray) -> np.ndarray:
    """The cell hashes as a search of each feature's cut points gives them."""
    cells = np.empty(x.shape, dtype=np.uint64)
    for j in range(x.shape[1]):
        cells[:, j] = np.searchsorted(profile.cuts[4:, j], x[:, j], side="left")
    cells[np.isnan(x)] = np.uint64(len(GRID) + 1)
    with np.errstate(over="ignore"):
        hashed: np.ndarray = (cells * profile._weights).sum(axis=1, dtype=np.uint64)
    return hashed


def test_cells_match_the_search_on_cut_points_values_and_missing_inputs() -> None:
    rng = np.random.default_rng(5)
    reference = {f"x{j}": rng.normal(0, 1, 2000) for j in range(6)}
    reference["x5"] = rng.integers(0, 3, 2000).astype(float)  # repeated cut points
    profile = InputProfile.fit(reference, 0.025, 0.001, 3, 32)
    x = rng.normal(0, 1.5, (700, 6))
    for j in range(6):  # exactly on cut points
        x[:50, j] = profile.cuts[4 + rng.integers(0, 9, 50), j]
    x[50:100, 5] = rng.integers(0, 3, 50)  # on the cut points themselves
    x[rng.random(x.shape) < 0.05] = np.nan
    np.testing.assert_array_equal(profile.flags(x).cell, searched_cells(profile, x))


def test_cut_points_out_of_order_keep_the_search() -> None:
    rng = np.random.default_rng(6)
    cuts = np.sort(rng.normal(0, 1, (13, 4)), axis=0)
    cuts[4:] = cuts[4:][::-1]  # descending grid: a hand-edited state
    profile = InputProfile(("a", "b", "c", "d"), cuts, 2)
    x = rng.normal(0, 1, (300, 4))
    np.testing.assert_array_equal(profile.flags(x).cell, searched_cells(profile, x))
