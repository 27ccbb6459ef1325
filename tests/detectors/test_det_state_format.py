"""Saved state keeps its format: stores written by earlier versions load, and the
dumps of today's code are, key for key and in the same order, those of
``saved_states.json``, a fixture written once by the code that stores exist from.

The parameter ``arl_events`` of the change and metric detectors is called
``false_alarm_events`` now, in the same place; states and options that name it
the old way still load. ``pca_drift`` tests categorical features too now: its
states gained ``max_categories`` and ``categorical`` (old ones load with no
categorical features and keep testing their numeric ones as before).

Never regenerate the fixture: it stands for stores written in the field. A
deliberate format change adds its rewrite to ``_as_written_today``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from detectors import registry
from detectors.base import RENAMED_PARAMS, RowBatch
from detectors.suite.error_stream import JoinedLabels
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings

FIXTURE = Path(__file__).with_name("saved_states.json")
OPTIONS: dict[str, dict[str, Any]] = {
    "ks": {"critical_effect": 0.3},
    "cusum": {"k": 0.4},
    "page_hinkley": {"min_blocks": 12},
    "adwin": {"clock": 5},
    "metric_anomaly": {"history": 60},
    "pca_drift": {"variance": 0.8},
    "client_volume": {"window": 100, "warmup_windows": 2},
    "client_boundary": {"window": 100, "boundary": 0.3},
}


def _strict_json(state: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(state, allow_nan=False))  # type: ignore[no-any-return]


def _small_suite() -> ModelDetectors:
    """Every registered detector in one suite, fed rows, labels and a metric series."""
    row_kinds = ("window", "change", "multivariate", "client")
    settings = SuiteSettings(
        window=50,
        reference_size=200,
        false_alarm_events=1e4,
        detectors=tuple(n for n in registry.names() if registry.get(n).kind in row_kinds),
        metric_detectors=tuple(
            n for n in registry.names() if registry.get(n).kind in ("change", "metric")
        ),
        options=OPTIONS,
    )
    md = ModelDetectors(settings, seed=7)
    rng = np.random.default_rng(11)
    n = 630
    seq = np.arange(n, dtype=np.int64) * 2  # a label may sit between two predictions
    score = rng.beta(2, 5, n)
    batch = RowBatch(
        ts=1.7e9 + seq * 0.5,
        numeric={"amount": rng.lognormal(3, 1, n), "age": rng.normal(40, 9, n)},
        categorical={"country": rng.choice(np.array(["DE", "FR", "PL"], dtype=object), n)},
        score=score,
        prediction=np.where(score > 0.5, "fraud", "ok").astype(object),
        client=rng.choice(np.array(["k1", "k2", "k3"], dtype=object), n),
        ids=np.array([f"r{i}" for i in range(n)], dtype=object),
        seq=seq,
    )
    for start in range(0, n, 97):
        stop = min(n, start + 97)
        part = RowBatch(
            ts=batch.ts[start:stop],
            numeric={k: v[start:stop] for k, v in batch.numeric.items()},
            categorical={k: v[start:stop] for k, v in batch.categorical.items()},
            score=score[start:stop],
            prediction=batch.prediction[start:stop],  # type: ignore[index]
            client=batch.client[start:stop],  # type: ignore[index]
            ids=batch.ids[start:stop],  # type: ignore[index]
            seq=seq[start:stop],
        )
        md.observe_rows(part)
        label_seq = seq[start:stop] + 1
        labels: list[object] = ["ok" if rng.random() < 0.8 else "fraud" for _ in label_seq]
        # Each label joins the prediction just before it (the service's join).
        predicted = [str(p) for p in part.prediction]  # type: ignore[union-attr]
        md.observe_labels(
            JoinedLabels(
                label_seq, 1.7e9 + label_seq * 0.5, predicted, labels, part.ts, score[start:stop]
            )
        )
    t = np.arange(150, dtype=np.float64)
    md.observe_metric("latency_ms", 1.7e9 + 60 * t, 50 + rng.lognormal(0, 0.3, 150))
    return md


def generate() -> dict[str, Any]:
    """The states the fixture holds, made by the code under test."""
    return _strict_json(
        {
            "detectors": {name: registry.get(name).factory().dump() for name in registry.names()},
            "suite_defaults": ModelDetectors().dump(),
            "suite_small": _small_suite().dump(),
        }
    )


def _fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())  # type: ignore[no-any-return]


def _as_written_today(state: Any) -> Any:
    """``state`` with the format changes since the fixture: renamed detector
    parameters; the caps on feature names and metric series (two settings, and
    the names a suite admitted, which an old state takes from what it tracks);
    the error stream's own alarm states; ``pca_drift``'s categorical features
    (a parameter, ``max_categories``, and the one-hot blocks it fitted: none in
    a state saved before); the label join, moved out of the detectors."""
    if isinstance(state, list):
        return [_as_written_today(v) for v in state]
    if not isinstance(state, dict):
        return state
    out = {k: _as_written_today(v) for k, v in state.items()}
    if isinstance(out.get("params"), dict):
        out["params"] = {RENAMED_PARAMS.get(k, k): v for k, v in out["params"].items()}
    if "components" in out and "categorical" not in out:  # pca_drift before categoricals
        out["params"] = {**out["params"], "max_categories": 10}
        out["categorical"] = []
    if "version" in out and "max_features" not in out["settings"]:
        out["settings"] = {**out["settings"], "max_features": 500, "max_metric_series": 100}
        signals = out["warmup"] or out
        keys = [*signals["numeric"], *signals["categorical"]]
        features = [k.removeprefix("feature:") for k in keys if k.startswith("feature:")]
        out["feature_names"] = sorted(features)
        out["metric_names"] = sorted(out["metrics"])
    if "version" in out and "alarms" not in out["errors"]:
        # The error stream's alarm states, once among the model's, are its own.
        errors_recover = out["settings"]["recover_windows"] * out["settings"]["window"]
        active = out["alarms"]["active"]
        out["alarms"] = {
            **out["alarms"],
            "active": [a for a in active if not a[0].endswith("|error")],
        }
        mine = [a for a in active if a[0].endswith("|error")]
        out["errors"] = {
            **out["errors"],
            "alarms": {"recover_after": errors_recover, "active": mine},
        }
    if "version" in out and "join" in out["errors"]:
        # Labels are joined to predictions by the service, durably, not in detector memory.
        out["errors"] = {k: v for k, v in out["errors"].items() if k != "join"}
    return out


def test_dumps_are_those_of_the_fixture_key_for_key_in_order() -> None:
    assert json.dumps(generate()) == json.dumps(_as_written_today(_fixture()))


def test_saved_suites_load_and_dump_as_today() -> None:
    fixture = _fixture()
    for key in ("suite_defaults", "suite_small"):
        state = fixture[key]
        again = _strict_json(ModelDetectors.load(state).dump())
        assert json.dumps(again) == json.dumps(_as_written_today(state))


def test_saved_detectors_load_and_dump_as_today() -> None:
    for name, state in _fixture()["detectors"].items():
        again = _strict_json(registry.get(name).loader(state).dump())
        assert json.dumps(again) == json.dumps(_as_written_today(state)), name


def test_options_may_name_a_renamed_parameter_the_old_way() -> None:
    settings = SuiteSettings(options={"cusum": {"arl_events": 1e6}, "metric_anomaly": {}})
    assert cast(Any, settings.build("cusum")).false_alarm_events == 1e6
    metric: Any = registry.get("metric_anomaly").factory(arl_events=1e5)
    assert metric.false_alarm_events == 1e5
    with pytest.raises(ValueError, match="two names of one argument"):
        SuiteSettings(options={"adwin": {"arl_events": 1e6, "false_alarm_events": 1e6}})
    with pytest.raises(ValueError, match="bad arguments for 'ks'"):
        SuiteSettings(options={"ks": {"arl_events": 1e6}})
