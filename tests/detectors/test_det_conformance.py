"""Every registered detector: defaults construct, state round-trips through JSON
mid-stream with identical continuation, runs are deterministic, and findings do
not depend on how the stream is cut into batches."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from detector_streams import Drift, make_stream, split

from detectors import registry
from detectors.base import Finding
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings

ALL = registry.names()
SMALL = {"window": 500, "reference_size": 2000, "false_alarm_events": 1e6}
DRIFT = Drift(
    onset=6000,
    mean_shift=1.0,
    variance_factor=3.0,
    colour_p=(0.1, 0.1, 0.1, 0.2, 0.5),
    missing_share=0.3,
    unseen_share=0.3,
    score_drop=2.0,
    score_invalid_share=0.05,
    heavy_client_share=0.3,
    prober_share=0.05,
)


def json_round_trip(state: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(state, allow_nan=False)  # strict JSON: no NaN/inf literals
    return json.loads(text)  # type: ignore[no-any-return]


def metric_series(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    values = 50 + 10 * np.sin(2 * np.pi * t / 1440) + rng.lognormal(0, 0.3, n)
    values[n // 2 : n // 2 + 300] += 40  # level shift
    values[n // 3] = 500.0  # spike
    values[2 * n // 3 : 2 * n // 3 + 60] = 42.0  # flat-line
    return 1.7e9 + 60 * t, values


def settings_for(name: str) -> SuiteSettings:
    if registry.get(name).kind == "metric":
        return SuiteSettings(**SMALL, detectors=(), metric_detectors=(name,))  # type: ignore[arg-type]
    if registry.get(name).kind == "change":
        return SuiteSettings(**SMALL, detectors=(name,), metric_detectors=(name,))  # type: ignore[arg-type]
    return SuiteSettings(**SMALL, detectors=(name,), metric_detectors=())  # type: ignore[arg-type]


ROWS = make_stream(12_000, seed=5, drift=DRIFT)
METRIC = metric_series(4000, seed=6)


def run(
    settings: SuiteSettings, row_sizes: list[int] | int, metric_size: int, cut: int | None = None
) -> list[Finding]:
    md = ModelDetectors(settings, seed=3)
    out: list[Finding] = []
    row_parts = split(ROWS, row_sizes)
    ts, values = METRIC
    for i, part in enumerate(row_parts):
        out += md.observe_rows(part)
        if i == cut:
            md = ModelDetectors.load(json_round_trip(md.dump()))
    for start in range(0, len(ts), metric_size):
        stop = start + metric_size
        out += md.observe_metric("latency_ms", ts[start:stop], values[start:stop])
        if cut is not None and start // metric_size == cut:
            md = ModelDetectors.load(json_round_trip(md.dump()))
    return out


@pytest.mark.parametrize("name", ALL)
def test_defaults_construct_and_dump(name: str) -> None:
    det = registry.get(name).factory()
    state = json_round_trip(det.dump())
    again = registry.get(name).loader(state)
    assert json_round_trip(again.dump()) == state


@pytest.mark.parametrize("name", ALL)
def test_fires_on_drift_and_is_batch_invariant_and_restorable(name: str) -> None:
    settings = settings_for(name)
    whole = run(settings, 12_000, 4000)
    assert whole == run(settings, 12_000, 4000), "not deterministic"
    assert whole == run(settings, [1, 7, 500, 1999], 13), "depends on batch boundaries"
    assert whole == run(settings, 333, 97, cut=4), "dump/load during warm-up changed findings"
    assert whole == run(settings, 333, 97, cut=25), "dump/load mid-stream changed findings"
    assert all(f.detector == name for f in whole)
    assert whole, f"{name} missed a large drift"


@pytest.mark.parametrize("name", ALL)
def test_bad_arguments_raise_value_error(name: str) -> None:
    factory = registry.get(name).factory
    bad: dict[str, Any] = {
        "critical_effect": -1.0,
        "false_alarm_events": -5.0,
        "history": 1,
        "variance": 2.0,
        "min_events": 0,
    }
    params = registry.get(name).factory().dump()["params"]
    key = next(k for k in bad if k in params)
    with pytest.raises(ValueError, match=key):
        factory(**{key: bad[key]})


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"choose from: .*ks"):
        registry.get("kolmogorov")
    with pytest.raises(ValueError, match="unknown detector"):
        SuiteSettings(detectors=("ks", "nope"))


def test_a_spec_asked_for_by_kind_must_be_of_that_kind() -> None:
    assert registry.get("cusum", "change").kind == "change"
    with pytest.raises(ValueError, match="'ks' is a window detector, not a change one"):
        registry.get("ks", "change")
    assert registry.series_spec("cusum").kind == "change"
    assert registry.series_spec("metric_anomaly").kind == "metric"
    with pytest.raises(ValueError, match="cannot watch a metric series"):
        registry.series_spec("ks")
