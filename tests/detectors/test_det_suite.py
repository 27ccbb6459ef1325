"""ModelDetectors, the service's entry point: the invariants the service relies on."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest

from detectors.base import Finding, RowBatch
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from tests.detectors.detector_streams import Drift, make_stream, slice_batch, split

DRIFT = Drift(
    onset=15_000,
    mean_shift=0.7,
    variance_factor=2.5,
    colour_p=(0.2, 0.2, 0.2, 0.2, 0.2),
    missing_share=0.2,
    unseen_share=0.1,
    score_drop=1.0,
)
SETTINGS = SuiteSettings(window=1000, reference_size=5000)
STREAM = make_stream(30_000, seed=11, drift=DRIFT)


def strict_json(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(state, allow_nan=False))  # type: ignore[no-any-return]


def run(sizes: list[int] | int, cuts: tuple[int, ...] = (), seed: int = 0) -> list[Finding]:
    md = ModelDetectors(SETTINGS, seed=seed)
    out: list[Finding] = []
    for i, part in enumerate(split(STREAM, sizes)):
        out += md.observe_rows(part)
        if i in cuts:
            md = ModelDetectors.load(strict_json(md.dump()))
    return out


@pytest.fixture(scope="module")
def whole() -> list[Finding]:
    return run(len(STREAM))


def test_finds_the_drift_after_onset_only(whole: list[Finding]) -> None:
    assert whole
    assert all(f.details["event_index"] >= DRIFT.onset for f in whole)
    signals = {(f.detector, f.signal) for f in whole}
    for expected in [
        ("ks", "feature:normal_a"),
        ("ks", "feature:normal_b"),
        ("chi2", "feature:colour"),
        ("missing_rate", "feature:gappy_normal"),
        ("unseen", "feature:device_id"),
        ("confidence", "score"),
    ]:
        assert expected in signals


def test_each_finding_is_raised_once_per_alarm(whole: list[Finding]) -> None:
    keys = [(f.detector, f.signal) for f in whole if f.details["state"] == "alarm"]
    assert len(keys) == len(set(keys)), "a persisting drift re-alarmed"


def test_event_ts_is_the_ts_of_the_deciding_event(whole: list[Finding]) -> None:
    for f in whole:
        assert f.event_ts == STREAM.ts[f.details["event_index"]]


@pytest.mark.parametrize("sizes", [1, 7, 500, [3, 1000, 1, 4999]])
def test_batch_invariance(whole: list[Finding], sizes: list[int] | int) -> None:
    assert run(sizes) == whole


@pytest.mark.parametrize("cuts", [(0,), (9,), (31,), (45, 46, 59)])
def test_dump_load_mid_stream_continues_identically(
    whole: list[Finding], cuts: tuple[int, ...]
) -> None:
    assert run(500, cuts=cuts) == whole


def test_deterministic_and_json_exact() -> None:
    a, b = ModelDetectors(SETTINGS, seed=4), ModelDetectors(SETTINGS, seed=4)
    part = slice_batch(STREAM, 0, 7_777)
    assert a.observe_rows(part) == b.observe_rows(part)
    state = a.dump()
    assert strict_json(state) == state, "dump is not plain data that survives JSON exactly"
    assert strict_json(ModelDetectors.load(strict_json(state)).dump()) == state


def test_findings_carry_plain_details(whole: list[Finding]) -> None:
    for f in whole:
        assert f.severity in ("info", "warning", "critical")
        assert math.isfinite(f.statistic)
        assert f.p_value is not None or f.threshold is not None
        assert f.effect_size is not None
        assert json.loads(json.dumps(f.details, allow_nan=False)) == f.details


def test_state_is_bounded_whatever_the_stream_length() -> None:
    md = ModelDetectors(SuiteSettings())
    sizes = []
    for k, start in enumerate(range(0, 30_000, 500)):
        md.observe_rows(slice_batch(STREAM, start, start + 500))
        if k % 20 == 19:
            sizes.append(len(json.dumps(md.dump())))
    md2 = ModelDetectors(SuiteSettings())
    md2.observe_rows(make_stream(12_000, seed=3))
    for _ in range(4):
        md2.observe_rows(make_stream(20_000, seed=3))
    assert max(sizes) < 5_000_000
    assert len(json.dumps(md2.dump())) <= max(sizes) * 1.2


def test_explicit_reference_skips_the_warm_up() -> None:
    reference = make_stream(20_000, seed=12)  # larger than reference_size: subsampled
    md = ModelDetectors(SETTINGS)
    md.set_reference(reference)
    assert md.has_reference
    out = md.observe_rows(slice_batch(STREAM, 14_000, 20_000))
    assert any(f.signal == "feature:normal_a" for f in out)
    again = ModelDetectors(SETTINGS)
    again.set_reference(reference)  # same seed, same subsample, same findings
    assert again.observe_rows(slice_batch(STREAM, 14_000, 20_000)) == out


def test_features_that_come_and_go() -> None:
    md = ModelDetectors(SETTINGS)
    first = slice_batch(STREAM, 0, 3000)
    first.numeric = {k: v for k, v in first.numeric.items() if k != "uniform"}
    md.observe_rows(first)
    md.observe_rows(slice_batch(STREAM, 3000, 9000))
    later = slice_batch(STREAM, 9000, 14_000)
    later.numeric = {k: v for k, v in later.numeric.items() if k != "poisson"}
    out = md.observe_rows(later)
    assert [(f.detector, f.signal) for f in out] == [("missing_rate", "feature:poisson")]


def test_metric_series_are_independent_streams() -> None:
    rng = np.random.default_rng(2)
    ts = np.arange(3000.0)
    values = 100 + rng.normal(0, 5, 3000)
    values[2000] = 400
    md = ModelDetectors(SETTINGS)
    out = md.observe_metric("latency_ms", ts, values)
    # a spike is confirmed by the point after it (the series came back)
    assert [(f.detector, f.signal, f.event_ts) for f in out] == [
        ("metric_anomaly", "metric:latency_ms", 2001.0)
    ]
    assert md.observe_metric("qps", ts, values[::-1].copy())
    with pytest.raises(ValueError, match="equal length"):
        md.observe_metric("qps", ts, values[:10])


def test_rows_with_no_score_or_prediction() -> None:
    batch = RowBatch(ts=STREAM.ts[:12_000], numeric={"x": STREAM.numeric["normal_a"][:12_000]})
    md = ModelDetectors(SETTINGS)
    assert md.observe_rows(batch) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window", 0),
        ("reference_size", 10),
        ("false_alarm_events", 5.0),
        ("false_alarm_events", float("nan")),
        ("detectors", ("ks", "metric_anomaly")),
        ("detectors", ("ks", "ks")),
        ("metric_detectors", ("ks",)),
        ("options", {"ks": {"no_such_argument": 1}}),
        ("options", {"ks": {"critical_effect": -1}}),
        ("max_categories", 1),
        ("recover_windows", 0),
    ],
)
def test_bad_settings_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field if field != "options" else "options|critical"):
        dataclasses.replace(SuiteSettings(), **{field: value})


def test_settings_accept_lists_from_toml() -> None:
    s = dataclasses.replace(SuiteSettings(), detectors=["ks", "psi"], metric_detectors=["cusum"])  # type: ignore[arg-type]
    assert s.detectors == ("ks", "psi")
    assert SuiteSettings.load(strict_json(s.dump())) == s


def test_a_drift_that_recovers_and_returns_alarms_twice() -> None:
    def piece(n: int, seed: int, shift: float, first: int) -> RowBatch:
        b = make_stream(n, seed=seed, drift=Drift(0, mean_shift=shift) if shift else None)
        b.ts = 1.7e9 + (first + np.arange(n)) * 0.01
        return b

    parts = [(8000, 0.0), (5000, 1.0), (6000, 0.0), (5000, 1.0)]
    md = ModelDetectors(SETTINGS)  # recovery after 3 quiet windows of 1000
    out: list[Finding] = []
    first = 0
    for k, (n, shift) in enumerate(parts):
        out += md.observe_rows(piece(n, 40 + k, shift, first))
        first += n
    alarms = [f for f in out if (f.detector, f.signal) == ("ks", "feature:normal_a")]
    assert [f.details["state"] for f in alarms][:1] == ["alarm"]
    starts = [f.details["event_index"] for f in alarms if f.details["state"] == "alarm"]
    assert len(starts) == 2
    assert 8000 <= starts[0] < 10_000 and 19_000 <= starts[1] < 21_000
