"""Every time formatter is total: a time no date represents shows as such, never raises."""

from __future__ import annotations

import math

import pytest

from monitor.cli.timefmt import clock, format_time, iso, moment
from monitor.report.plots import nice_ticks, time_ticks

UNREPRESENTABLE = [1e18, -1e18, 1e308, -1e308, math.inf, -math.inf, math.nan, 10**400]


def test_representable_times_format_as_before() -> None:
    assert iso(1_764_140_000.25) == "2025-11-26T06:53:20.250Z"
    assert format_time(1_764_140_000.25) == "2025-11-26 06:53:20"
    assert clock(1_764_140_000.25) == "06:53:20"
    assert format_time(None) == "-"
    assert iso(-62_135_596_800) == "0001-01-01T00:00:00.000Z"
    assert format_time(253_402_300_799) == "9999-12-31 23:59:59"


@pytest.mark.parametrize("ts", UNREPRESENTABLE, ids=repr)
def test_unrepresentable_times_say_so(ts: float) -> None:
    assert moment(ts) is None
    for formatter in (iso, format_time, clock):
        shown = formatter(ts)
        assert shown.startswith("out of range ("), shown
    assert iso(1e18) == "out of range (1e+18)"
    assert format_time(math.nan) == "out of range (nan)"


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(1.7e9, 1e18), (-1e308, 1e308), (-math.inf, math.inf), (math.nan, 5.0), (1e18, 1e18 + 60)],
)
def test_time_axis_ticks_stay_few_whatever_the_range(lo: float, hi: float) -> None:
    ticks = time_ticks(lo, hi)
    assert 1 <= len(ticks) <= 12
    for t in ticks:
        clock(t)  # never raises


def test_nice_ticks_survive_a_span_that_overflows() -> None:
    assert nice_ticks(-1e308, 1e308) == [-1e308]
    assert nice_ticks(0.0, 10.0) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
