"""Saved state keeps its format: stores written by earlier versions load, and the
dumps of today's code are, key for key and in the same order, those of
``saved_states.json``, a fixture written once by the code that stores exist from.

The changes since: the parameter ``arl_events`` of the change and metric
detectors is called ``false_alarm_events`` now, in the same place; states and
options that name it the old way still load. ``pca_drift`` tests categorical
features too now: its states gained ``max_categories`` and ``categorical`` (old
ones load with no categorical features and keep testing their numeric ones as
before). ADWIN and Page-Hinkley run on River now: a state of the hand-written
ones loads with its calibration and River's detector started afresh (ADWIN's
``max_window`` is gone, ``max_buckets`` came).
``metric_anomaly`` judges points in event time now (a robust seasonal
forecast): a state of the windowed detector before it (``past``, ``run``,
``last``; parameters ``history`` and ``recent``) loads as a fresh detector with
its ``flat_run`` and ``false_alarm_events``, which restarts its probation.
A numeric reference keeps its values on a float32 grid now (with ``center``,
``factor`` and its exact ``low``, ``high``, ``mean``, ``std`` and ``var``); one
of exact float64 values loads into it.

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
from detectors.change import ADWIN, PageHinkley
from detectors.change.base import BlockChangeDetector
from detectors.metric.anomaly import MetricAnomaly
from detectors.performance.estimated import EstimatedPerformance
from detectors.reference import NumericReference
from detectors.suite.error_rate import ErrorRate
from detectors.suite.error_stream import JoinedLabels
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings

FIXTURE = Path(__file__).with_name("saved_states.json")
# Detectors registered since the fixture was written; a default among them joins
# the clients of a default suite's state when it loads.
NEW_SINCE = ("client_inputs",)
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
        detectors=tuple(
            n for n in registry.names() if registry.get(n).kind in row_kinds and n not in NEW_SINCE
        ),
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
            "detectors": {
                name: registry.get(name).factory().dump()
                for name in registry.names()
                if name not in NEW_SINCE
            },
            "suite_defaults": ModelDetectors().dump(),
            "suite_small": _small_suite().dump(),
        }
    )


def _fixture() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())  # type: ignore[no-any-return]


def _on_river(state: dict[str, Any]) -> dict[str, Any]:
    """A hand-written ADWIN's or Page-Hinkley's state as River's detector of
    today holds it after loading: same calibration, River's detector fresh."""
    params, extra = dict(state["params"]), state["extra"]
    cls: type[BlockChangeDetector]
    if "max_window" in params:
        cls = ADWIN
        del params["max_window"]
        params = {**params, "max_buckets": 5}
    elif "up_since_n" in extra:
        cls = PageHinkley
    else:
        return state
    det = cls.build(**params)
    if state["mean"] is not None:
        det.calibrate(state["mean"], state["std"], None, state["reference_size"])
    return {**state, "params": params, "extra": det._dump_extra()}


def _as_written_today(state: Any) -> Any:
    """``state`` with the format changes since the fixture: renamed detector
    parameters; ADWIN and Page-Hinkley on River; the caps on feature names and
    metric series (two settings, and the names a suite admitted, which an old
    state takes from what it tracks); the error stream's own alarm states;
    ``pca_drift``'s categorical features (a parameter, ``max_categories``, and
    the one-hot blocks it fitted: none in a state saved before); the sequential
    evidence's state (empty in a suite saved before it); ``metric_anomaly``'s
    windowed states, which load as a fresh detector of today; the label join,
    moved out of the detectors; the performance estimated without labels (a
    setting, ``estimated_window``, and its state, fresh in a suite saved before);
    numeric references on a float32 grid (their exact float64 values before)."""
    if isinstance(state, list):
        return [_as_written_today(v) for v in state]
    if not isinstance(state, dict):
        return state
    out = {k: _as_written_today(v) for k, v in state.items()}
    if isinstance(out.get("params"), dict):
        out["params"] = {RENAMED_PARAMS.get(k, k): v for k, v in out["params"].items()}
        if isinstance(out.get("extra"), dict):
            out = _on_river(out)
    if "past" in out and "history" in out.get("params", {}):  # windowed metric_anomaly
        out = MetricAnomaly.load(out).dump()
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
    if "version" in out and out["settings"]["detectors"] is None:
        fresh = ModelDetectors().dump()["clients"]
        out["clients"] = {**out["clients"], **{k: fresh[k] for k in NEW_SINCE if k in fresh}}
    if "version" in out and "window_clients" not in out:
        # the callers of the current window (for attribution): unknown in a state saved before
        keys = list(out)
        at = keys.index("fill") + 1
        fill = {"window_clients": [None] * out["fill"]}
        out = {k: out[k] for k in keys[:at]} | fill | {k: out[k] for k in keys[at:]}
    if "version" in out and "error_rate" not in out["errors"]:
        # the error rate of class labels starts afresh in a state saved before it ran
        budget = out["settings"]["false_alarm_events"]
        errors = out["errors"]
        out["errors"] = {
            "detectors": errors["detectors"],
            "error_rate": ErrorRate(budget).dump(),
            **{k: v for k, v in errors.items() if k != "detectors"},
        }
    if "version" in out and "sequential" not in out:
        # the sequential evidence's state, after the multivariate detectors'; a
        # suite saved before it existed runs it from its next reference on
        keys = list(out)
        at = keys.index("multivariate") + 1
        out = {k: out[k] for k in keys[:at]} | {"sequential": {}} | {k: out[k] for k in keys[at:]}
    if {"n", "missing", "values"} <= set(out) and "center" not in out:
        # A numeric reference of exact float64 values: today's keeps them on a float32
        # grid around its median, with its exact extremes and moments.
        out = NumericReference.load(out).dump()
    if "version" in out and "estimated" not in out:
        settings = {**out["settings"], "estimated_window": 2000}
        size = settings["reference_size"]
        recover = settings["recover_windows"]
        fresh = EstimatedPerformance(min(2000, size), size, recover_windows=recover).dump()
        out = {**out, "settings": settings, "estimated": fresh}
    return out


def _river_state_elided(state: Any) -> Any:
    """``state`` with the extras of River-backed detectors elided: fed the same
    values, River's detector holds other state than the hand-written one did
    (exact persistence of River's is tested in test_det_conformance)."""
    if isinstance(state, list):
        return [_river_state_elided(v) for v in state]
    if not isinstance(state, dict):
        return state
    out = {k: _river_state_elided(v) for k, v in state.items()}
    extra = out.get("extra")
    if isinstance(extra, dict) and ("adwin" in extra or "page_hinkley" in extra):
        out["extra"] = sorted(extra)
    return out


# Detectors registered after the fixture was written: no store holds their state.
NEWER = ("evidence",)


def _change_budget_as_calibrated_today(suite: dict[str, Any]) -> None:
    """The change detectors' run length as a fresh reference calibrates it now:
    their share of the false-alarm *rate* (events between false alarms divided
    by the share, times the instances sharing it), where the fixture's code
    divided the events instead. A saved suite keeps what it was calibrated with."""
    instances = sum(len(v) for v in suite["change"].values())
    events = suite["settings"]["false_alarm_events"] / 0.5 * instances
    for dets in suite["change"].values():
        for state in dets.values():
            state["params"]["false_alarm_events"] = events


def _metric_restarted(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with its small suite's ``metric_anomaly`` restarted and its
    metric alarms cleared: the fixture's detector predates today's and loads as
    a fresh one, while the generated one has learned from its series; and the
    fixture's raised a spike alarm on that noise (point 84) that today's does
    not. Everything else of the series (its points, its other detectors) is
    compared as it is."""
    series = state["suite_small"]["metrics"]["latency_ms"]
    params = series["detectors"]["metric_anomaly"]["params"]
    series["detectors"]["metric_anomaly"] = MetricAnomaly.build(**params).dump()
    series["alarms"]["active"] = []
    return state


def test_dumps_are_those_of_the_fixture_key_for_key_in_order() -> None:
    today = _river_state_elided(_metric_restarted(generate()))
    today["detectors"] = {k: v for k, v in today["detectors"].items() if k not in NEWER}
    written = _metric_restarted(_as_written_today(_fixture()))
    _change_budget_as_calibrated_today(written["suite_small"])
    today, written = _since_fixture_elided(today), _since_fixture_elided(written)
    assert json.dumps(today) == json.dumps(_river_state_elided(written))


def _since_fixture_elided(state: dict[str, Any]) -> dict[str, Any]:
    """The suites' states with what the fixture cannot hold reduced to its shape: the
    current window's callers (None in a state saved before) and the error rate's
    state (fresh in a state saved before)."""
    out = dict(state)
    for key in ("suite_defaults", "suite_small"):
        suite = dict(out[key])
        suite["window_clients"] = len(suite["window_clients"])
        suite["errors"] = {**suite["errors"], "error_rate": sorted(suite["errors"]["error_rate"])}
        out[key] = suite
    return out


def test_a_windowed_metric_anomaly_state_restarts_its_probation() -> None:
    old = _fixture()["suite_small"]["metrics"]["latency_ms"]["detectors"]["metric_anomaly"]
    det = MetricAnomaly.load(old)
    assert det.params() == {"probation": 100, "flat_run": 30, "false_alarm_events": 2500.0}
    assert det.dump() == MetricAnomaly(flat_run=30, false_alarm_events=2500.0).dump()


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
