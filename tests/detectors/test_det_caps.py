"""Caps on the names a model tracks: feature names in the warm-up, metric series."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from detectors.base import Finding, RowBatch
from detectors.suite.caps import NameCap, StreamCaps, admit_columns
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from tests.detectors.detector_streams import make_stream, slice_batch, split

SETTINGS = SuiteSettings(window=500, reference_size=1000, max_features=50, max_metric_series=10)


def strict_json(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(state, allow_nan=False))  # type: ignore[no-any-return]


def hostile_stream(n: int, names: int, seed: int = 0) -> RowBatch:
    """A normal stream whose events each also carry one of ``names`` junk features:
    event i has ``junk{i % names}`` valued, every other junk column missing."""
    base = make_stream(n, seed=seed)
    rng = np.random.default_rng(seed)
    numeric = dict(base.numeric)
    for j in range(names):
        column = np.full(n, np.nan)
        column[j::names] = rng.normal(0, 1, column[j::names].shape[0])
        numeric[f"junk{j}"] = column
    base.numeric = numeric
    return base


def test_name_cap_admits_the_first_names_offered() -> None:
    cap = NameCap(3)
    assert cap.admit("a") and cap.admit("b") and cap.admit("a")
    cap.admit_all(["c", "d", "e"])
    assert cap.full and cap.dump() == ["a", "b", "c"]
    assert not cap.admit("d") and cap.admit("c")


def test_warm_up_keeps_the_first_names_and_counts_the_rest() -> None:
    stream = hostile_stream(3000, names=200)
    real = len(stream.numeric) + len(stream.categorical) - 200
    md = ModelDetectors(SETTINGS)
    md.observe_rows(stream)
    admitted = md.caps.features.names
    assert len(admitted) == 50
    # The real features come first in each event, then junk0, junk1, ... by event.
    assert admitted == set(stream.categorical) | {
        k for k in stream.numeric if not k.startswith("junk")
    } | {f"junk{j}" for j in range(50 - real)}
    refused = [k for k in stream.numeric if k not in admitted]
    assert md.caps.features_dropped == sum(
        int(np.count_nonzero(~np.isnan(stream.numeric[k]))) for k in refused
    )
    assert md.has_reference
    assert md.feature_filter <= admitted
    watched = {f.removeprefix("feature:") for f in md.dump()["numeric"]}
    assert watched <= admitted | {"score"}


@pytest.mark.parametrize("sizes", [1, 7, 333, [999, 2, 1999]])
def test_admission_does_not_depend_on_batches(sizes: list[int] | int) -> None:
    stream = hostile_stream(3000, names=200, seed=4)
    whole = ModelDetectors(SETTINGS)
    expected = whole.observe_rows(stream)
    md = ModelDetectors(SETTINGS)
    out: list[Finding] = []
    for i, part in enumerate(split(stream, sizes)):
        out += md.observe_rows(part)
        if i in (1, 4, 900):
            md = ModelDetectors.load(strict_json(md.dump()))
    assert out == expected
    assert md.caps.features.names == whole.caps.features.names
    assert strict_json(md.dump()) == strict_json(whole.dump())


def test_a_feature_first_seen_after_the_warm_up_is_not_admitted() -> None:
    stream = make_stream(2000, seed=2)
    md = ModelDetectors(SETTINGS)
    md.observe_rows(slice_batch(stream, 0, 1000))
    late = slice_batch(stream, 1000, 2000)
    late.numeric = {**late.numeric, "late": np.ones(1000)}
    md.observe_rows(late)
    assert "late" not in md.caps.features.names
    assert md.caps.features_dropped == 1000


def test_admit_columns_leaves_an_admitted_batch_alone() -> None:
    stream = make_stream(100, seed=1)
    cap = NameCap(100, [*stream.numeric, *stream.categorical])
    kept, dropped = admit_columns(stream, cap, 100)
    assert kept is stream and dropped == 0


def test_metric_series_beyond_the_cap_are_dropped() -> None:
    md = ModelDetectors(SETTINGS)
    ts = np.arange(20.0)
    for i in range(1000):
        md.observe_metric(f"m{i}", ts, np.full(20, 1.0 + i))
    assert md.caps.metrics.dump() == sorted(f"m{i}" for i in range(10))
    assert len(md.dump()["metrics"]) == 10
    assert md.caps.metric_points_dropped == 990 * 20
    again = ModelDetectors.load(strict_json(md.dump()))
    assert again.observe_metric("m999", ts, np.ones(20)) == []
    assert again.caps.metric_points_dropped == 20
    assert "m999" not in again.dump()["metrics"]


def test_states_saved_before_the_caps_admit_what_they_track() -> None:
    md = ModelDetectors(SETTINGS)
    stream = make_stream(1500, seed=3)
    md.observe_rows(slice_batch(stream, 0, 600))
    md.observe_metric("latency", np.arange(5.0), np.ones(5))
    for state in (md.dump(), ModelDetectors.load(md.dump()).dump()):
        old = {k: v for k, v in strict_json(state).items() if not k.endswith("_names")}
        caps = StreamCaps.load(SETTINGS, old)
        assert caps.features.names == set(stream.numeric) | set(stream.categorical)
        assert caps.metrics.names == {"latency"}
        assert ModelDetectors.load(old).dump() == md.dump()
    md.observe_rows(slice_batch(stream, 600, 1500))  # the reference: its names are admitted
    old = {k: v for k, v in strict_json(md.dump()).items() if not k.endswith("_names")}
    assert StreamCaps.load(SETTINGS, old).features.names == md.feature_filter


def test_settings_saved_before_the_caps_get_the_default_caps() -> None:
    saved = SuiteSettings(window=500).dump()
    del saved["max_features"], saved["max_metric_series"]
    assert SuiteSettings.load(saved) == SuiteSettings(window=500)


@pytest.mark.parametrize("field", ["max_features", "max_metric_series"])
def test_caps_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SuiteSettings(**{field: 0})  # type: ignore[arg-type]
