"""The fast charts' thresholds (``charts.averaged_threshold``), computed on Python
floats, are the numbers the loop over the nodes' numpy scalars gave, bit for bit."""

from __future__ import annotations

import itertools
import math

from detectors.sequential import charts


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
