"""Every registered detector, and the performance estimated without labels:
defaults construct, state round-trips through JSON mid-stream with identical
continuation, runs are deterministic, and findings do not depend on how the
stream is cut into batches. Its class documents its parameters, an example and
references; params() is its constructor's signature; no default is mutable; a
clone, a pickle and a dump/load of it are the same."""

from __future__ import annotations

import copy
import inspect
import json
import pickle
import re
from typing import Any

import numpy as np
import pytest

from detectors import registry
from detectors.base import DetectorBase, Finding
from detectors.performance.estimated import EstimatedPerformance
from detectors.reference import CategoricalReference, NumericReference
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from detectors.window.base import CategoricalWindow
from tests.detectors.detector_streams import Drift, make_stream, split
from tests.detectors.test_det_estimated import binary_stream

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
    sweeper_share=0.02,
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


# Arguments other than the defaults, one set per detector: params() must give them back.
NON_DEFAULT: dict[str, dict[str, Any]] = {
    "ks": {"critical_effect": 0.3, "min_values": 40},
    "chi2": {"critical_effect": 0.3, "min_expected": 4.0, "min_values": 40},
    "missing_rate": {"critical_effect": 0.3},
    "unseen": {"critical_effect": 0.3, "min_effect": 0.02},
    "output_range": {"low": 0.0, "high": 1.0, "margin": 0.1, "critical_effect": 0.1},
    "confidence": {"critical_effect": 0.5, "min_values": 40},
    "psi": {"threshold": 0.2, "critical_effect": 0.3, "bins": 8, "eps": 1e-3, "min_values": 50},
    "jensen_shannon": {"threshold": 0.2, "critical_effect": 0.3, "bins": 8, "min_values": 50},
    "wasserstein": {"threshold": 0.2, "critical_effect": 0.6, "min_values": 50},
    "cramer_von_mises": {"critical_effect": 0.3, "min_values": 40},
    "cusum": {"k": 0.4, "threshold": 6.0, "block": 20, "warmup": 500, "critical_effect": 0.8},
    "page_hinkley": {"delta": 0.4, "lambda_": 7.0, "min_blocks": 5, "false_alarm_events": 1e5},
    "adwin": {"delta": 0.01, "clock": 2, "max_buckets": 4, "min_side": 3, "block": 20},
    "metric_anomaly": {"probation": 50, "flat_run": 20, "false_alarm_events": 1e5},
    "pca_drift": {"variance": 0.8, "critical_effect": 3.0, "min_rows": 100, "max_categories": 2},
    "input_range": {"min_share": 0.01, "critical_effect": 0.1, "min_reference": 50},
    "client_volume": {"window": 300, "min_events": 20, "min_excess": 0.1, "max_clients": 50},
    "client_boundary": {"window": 300, "boundary": 0.3, "band": 0.05, "half_life_windows": 5.0},
    "client_inputs": {"window": 300, "tail": 0.05, "spread_features": 2, "max_features": 8},
    "evidence": {"block": 100, "fast_k": 2.0, "allowance": 3.0, "cap": 2.0, "critical_share": 0.2},
}
IMMUTABLE = (type(None), bool, int, float, str, tuple, frozenset)


def detector_class(name: str) -> type[DetectorBase]:
    cls = type(registry.get(name).factory())
    assert issubclass(cls, DetectorBase)
    return cls


def section(doc: str, title: str) -> str:
    """The text of a numpydoc section (title, dashes underline) of a docstring."""
    match = re.search(rf"^ *{title}\n *-+\n(.*?)(?=^ *\w[\w ]*\n *-+\n|\Z)", doc, re.M | re.S)
    assert match, f"no {title} section"
    return match.group(1)


def exercised(name: str) -> Any:
    """A detector built with non-default arguments and fed data, so it has state."""
    det: Any = registry.get(name).factory(**NON_DEFAULT[name])
    rng = np.random.default_rng(9)
    kind = registry.get(name).kind
    if kind == "change":
        det.calibrate(0.1, 2.0, 2e5, 3000)
        det.update(np.append(rng.normal(0.1, 2.0, 1234), [np.nan, np.inf]))
    elif kind == "metric":
        det.update(50 + rng.normal(0, 2, 177))
    elif kind == "multivariate":
        x = rng.normal(size=600)
        labels = rng.choice(np.array(["u", "v", "w", None], dtype=object), 600)
        ref = CategoricalReference.build(labels, 10)
        det.fit(
            {"a": x, "b": x + rng.normal(size=600), "c": rng.normal(size=600)},
            seed=1,
            categorical={"k": CategoricalWindow(ref.encode(labels), ref)},
        )
    elif kind == "sequential":
        refs = {"x": NumericReference.build(rng.normal(size=3000))}
        cats = {"c": CategoricalReference.build(rng.choice(np.array(["a", "b"]), 3000), 10)}
        det.fit(refs, cats, 1e6)
        det.update({"x": rng.normal(size=1234)}, {"c": rng.integers(-1, 3, 1234)}, 1234)
    elif kind == "client":
        det.calibrate(1e-3)
        keys = np.array(["k1", "k2", "k3", None], dtype=object)
        det.update(rng.choice(keys, 1000), rng.random(1000))
    return det


def test_non_default_arguments_cover_every_detector() -> None:
    assert sorted(NON_DEFAULT) == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_docstring_has_parameters_examples_and_references(name: str) -> None:
    cls = detector_class(name)
    doc = cls.__doc__  # the class's own, never a base class's
    assert doc, f"{cls.__name__} has no docstring"
    documented = re.findall(r"^ {4}(\w+)$", section(doc, "Parameters"), re.M)
    assert documented == list(inspect.signature(cls).parameters), "Parameters, in order"
    assert ">>> " in section(doc, "Examples")
    references = section(doc, "References")
    assert re.search(r"\(\d{4}\)", references), "a reference with its year"


@pytest.mark.parametrize("name", ALL)
def test_params_are_the_constructor_signature(name: str) -> None:
    signature = inspect.signature(detector_class(name))
    defaults = {k: p.default for k, p in signature.parameters.items()}
    assert registry.get(name).factory().params() == defaults
    given = NON_DEFAULT[name]
    assert registry.get(name).factory(**given).params() == {**defaults, **given}


@pytest.mark.parametrize("name", ALL)
def test_no_mutable_default_arguments(name: str) -> None:
    for key, p in inspect.signature(detector_class(name)).parameters.items():
        assert p.default is not p.empty, f"{key} has no default"
        assert isinstance(p.default, IMMUTABLE), f"{key} defaults to a mutable {p.default!r}"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("arguments", ["defaults", "non-default"])
def test_a_clone_dumps_the_same(name: str, arguments: str) -> None:
    det = registry.get(name).factory(**(NON_DEFAULT[name] if arguments == "non-default" else {}))
    clone = type(det)(**det.params())
    assert json_round_trip(clone.dump()) == json_round_trip(det.dump())


@pytest.mark.parametrize("name", ALL)
def test_pickle_round_trip_keeps_the_state(name: str) -> None:
    det = exercised(name)
    again = pickle.loads(pickle.dumps(det))
    assert type(again) is type(det)
    assert json_round_trip(again.dump()) == json_round_trip(det.dump())


@pytest.mark.parametrize("name", ALL)
def test_dump_load_round_trip_keeps_the_state(name: str) -> None:
    det = exercised(name)
    state = json_round_trip(det.dump())
    again = registry.get(name).loader(state)
    assert type(again) is type(det)
    assert json_round_trip(again.dump()) == state


def _estimated_run(events: list[Any], sizes: list[int] | int, cut: int | None = None) -> Any:
    """Findings, window results and state changes of CBPE fed ``events`` in batches."""
    est = EstimatedPerformance(window=500, reference=2000)
    found: list[Finding] = []
    results: list[Any] = []
    changes: list[Any] = []
    for i, part in enumerate(split_list(events, sizes)):
        found += est.observe([copy.copy(e) for e in part])
        results += est.take_results()
        changes += est.take_changes()  # a batch's tests, then its state changes
        if i == cut:
            est = EstimatedPerformance.load(json_round_trip(est.dump()))
    # A run of confirmations is kept as its latest between two takes (AlarmTracker): by design
    # they depend on the batches; the tests and the other changes must not.
    kept = [c for c in changes if c.change != "confirmed"]
    return found, results, sorted(kept, key=lambda c: (c.event_ts, c.change, c.signal))


def split_list(items: list[Any], sizes: list[int] | int) -> list[list[Any]]:
    parts, at, k = [], 0, 0
    while at < len(items):
        size = sizes if isinstance(sizes, int) else sizes[k % len(sizes)]
        parts.append(items[at : at + size])
        at, k = at + size, k + 1
    return parts


def test_estimated_performance_is_deterministic_batch_invariant_and_restorable() -> None:
    events = binary_stream(9000, seed=8, shift_at=6000, delay=700)
    whole = _estimated_run(events, len(events))
    assert whole == _estimated_run(events, len(events)), "not deterministic"
    assert whole == _estimated_run(events, [1, 7, 500, 1999]), "depends on batch boundaries"
    assert whole == _estimated_run(events, 333, cut=4), "dump/load in the reference changed it"
    assert whole == _estimated_run(events, 333, cut=40), "dump/load mid-stream changed it"
    found, results, changes = whole
    assert any(f.signal == "estimated:accuracy" for f in found)
    assert any(r.kind == "realized" for r in results)
    assert any(c.change == "fired" for c in changes)
