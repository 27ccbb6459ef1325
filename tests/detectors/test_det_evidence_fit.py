"""The sequential evidence's one-time fit, computed faster, gives the same numbers bit
for bit: the fast charts' thresholds (``charts.averaged_threshold``) on Python floats
as on the nodes' numpy scalars; the reference's null moments counting the distinct
mid-ranks of the bins hit instead of sorting every value."""

from __future__ import annotations

import itertools
import math

import numpy as np

from detectors.reference import NumericReference
from detectors.sequential import charts
from detectors.sequential.ranks import RankTable


def averaged_threshold_on_numpy_scalars(arl: float, k: float, error: float) -> float:
    """``averaged_threshold`` as it was: ``sum`` over the nodes' numpy scalars."""

    def rate(h: float) -> float:
        pairs = zip(charts._NODES, charts._WEIGHTS, strict=True)
        return float(sum(w / charts._run_length(x * error - k, h) for x, w in pairs))

    return charts.threshold_of_rate(rate, arl)


def test_averaged_thresholds_equal_those_summed_over_numpy_scalars() -> None:
    grid = itertools.product(
        [20.0, 1e3, 1e5, 3.7e6],  # block run lengths
        [0.05, 0.3, 0.5, 1.0, 2.5],  # k
        [0.0, 1e-12, 0.01, 0.1, 0.5, 2.0],  # the reference's error, in block z-units
    )
    found = set()
    for arl, k, error in grid:
        expected = averaged_threshold_on_numpy_scalars(arl, k, error)
        got = charts.averaged_threshold(arl, k, error)
        assert got == expected and math.copysign(1, got) == math.copysign(1, expected)
        found.add(got)
    assert len(found) > 100  # thresholds that differ: the grid tells the cases apart


def test_null_moments_count_the_distinct_mid_ranks_as_np_unique_of_every_value() -> None:
    rng = np.random.default_rng(4)
    columns = [
        rng.normal(size=5000),  # continuous: quantile edges
        np.round(rng.normal(size=5000), 1),  # ties, few distinct values
        rng.poisson(3, 5000).astype(np.float64),
        np.zeros(5000),  # one value
        np.array([]),  # no reference
    ]
    built = [NumericReference.build(c) for c in columns]
    table = RankTable.build(built)
    # And values other than the table's own: they hit fewer of its bins.
    moved = [c * 1.7 + 0.35 for c in columns]
    shifted = [NumericReference.build(c) for c in moved]
    for refs, raw in ((built, columns), (shifted, moved)):
        got = table.null_moments(refs)["bins"]
        # The edges are thresholds that bin raw values as their grid values.
        expected = [
            float(np.unique(table.ranks[f][np.searchsorted(table.edges[f], r, "right")]).size)
            if r.size
            else 0.0
            for f, r in enumerate(raw)
        ]
        assert got.tolist() == expected
    assert table.null_moments(shifted)["bins"][1] < table.null_moments(built)["bins"][1]
