"""Performance estimated without labels (CBPE): on data of known calibration the
estimates track the realized metrics, a shift of scores toward uncertainty is
alarmed, stationary streams stay quiet, and the isotonic fit is scipy's."""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from detectors.base import Finding
from detectors.performance import cbpe
from detectors.performance.estimated import (
    EstimatedPerformance,
    Scored,
    ScoredColumns,
    WindowResult,
    normal_isf,
    normal_sf,
    scored_rows,
)

T0 = 1.6e9


def binary_stream(
    n: int, seed: int, shift_at: int | None = None, labels: bool = True, delay: int = 50
) -> list[Scored]:
    """A binary model whose scores are calibrated: P(fraud) ~ Beta(0.6, 0.6) and the label
    ~ Bernoulli(P(fraud)); the score is the confidence in the prediction. From ``shift_at``
    on, P(fraud) ~ Beta(3, 3): scores toward uncertainty. Labels come ``delay`` later."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.6, 0.6, n)
    if shift_at is not None:
        p[shift_at:] = rng.beta(3, 3, n - shift_at)
    fraud = rng.random(n) < p
    events: list[Scored] = []
    for i in range(n + delay):
        if i < n:
            predicted = "fraud" if p[i] >= 0.5 else "ok"
            score = p[i] if predicted == "fraud" else 1 - p[i]
            events.append(Scored(2 * i, T0 + i, f"r{i}", predicted, float(score)))
        j = i - delay
        if labels and j >= 0:
            truth = "fraud" if fraud[j] else "ok"
            events.append(Scored(2 * i + 1, T0 + i + 0.5, f"r{j}", truth=truth))
    return events


def multiclass_stream(n: int, seed: int) -> list[Scored]:
    """Three classes, probabilities ~ Dirichlet, the label drawn from them."""
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c"]
    p = rng.dirichlet([0.7, 0.5, 0.4], n)
    truth = (rng.random(n)[:, None] >= np.cumsum(p, axis=1)).sum(axis=1).clip(0, 2)
    events: list[Scored] = []
    for i in range(n):
        probs = {c: float(p[i, k]) for k, c in enumerate(names)}
        predicted = names[int(np.argmax(p[i]))]
        events.append(Scored(2 * i, T0 + i, f"r{i}", predicted, math.nan, probs))
        events.append(Scored(2 * i + 1, T0 + i + 0.5, f"r{i}", truth=names[truth[i]]))
    return events


def run(
    events: list[Scored], est: EstimatedPerformance | None = None
) -> tuple[list[Finding], list[WindowResult], EstimatedPerformance]:
    est = est or EstimatedPerformance()
    found = est.observe(events)
    return found, est.take_results(), est


def side_by_side(results: list[WindowResult]) -> list[tuple[WindowResult, float]]:
    realized = {(r.window, r.metric): r.value for r in results if r.kind == "realized"}
    return [
        (r, realized[(r.window, r.metric)])
        for r in results
        if r.kind == "estimated" and (r.window, r.metric) in realized
    ]


def test_isotonic_fit_is_the_least_squares_solution_and_interpolates_like_sklearn() -> None:
    rng = np.random.default_rng(1)
    x = rng.random(3000)
    y = (rng.random(3000) < x**2).astype(np.float64)
    xp, fp = cbpe.fit_isotonic(x, y)
    order = np.argsort(x)
    expected = optimize.isotonic_regression(y[order]).x
    assert np.allclose(cbpe.apply_isotonic(xp, fp, x[order]), expected, atol=1e-12)
    assert np.all(np.diff(fp) >= 0)
    # Tied x values share a fitted value; between blocks the fit interpolates linearly.
    xp, fp = cbpe.fit_isotonic(np.array([0.1, 0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 1, 0, 1]))
    assert xp.tolist() == [0.1, 0.3, 0.4, 0.4]  # equal means pool into one block
    assert fp.tolist() == [0.5, 0.5, 1.0, 1.0]
    assert np.allclose(cbpe.apply_isotonic(xp, fp, np.array([0.0, 0.35, 0.9])), [0.5, 0.75, 1])


def test_estimates_fall_in_their_band_of_the_realized_values_binary() -> None:
    found, results, est = run(binary_stream(60_000, seed=2))
    assert est.calibration is not None and est.calibration.source == "confidence"
    assert est.calibration.labels == 10_000
    pairs = side_by_side(results)
    assert len(pairs) == 3 * 22  # windows 0..21 realized, 3 metrics each
    inside = [r.band_low <= v <= r.band_high for r, v in pairs]  # type: ignore[operator]
    assert sum(inside) >= 0.85 * len(pairs), f"{sum(inside)} of {len(pairs)} in their band"
    for metric in cbpe.METRICS:
        gaps = [r.value - v for r, v in pairs if r.metric == metric]
        assert abs(float(np.mean(gaps))) < 0.015, (metric, np.mean(gaps))
    # Beta(0.6, 0.6) confidences: expected accuracy E[max(p, 1 - p)] = 0.800.
    accuracy = [r.value for r, _ in pairs if r.metric == "accuracy"]
    assert abs(float(np.mean(accuracy)) - 0.800) < 0.012
    assert found == []


def test_overconfident_scores_are_calibrated_on_the_reference_labels() -> None:
    events = binary_stream(40_000, seed=7)
    for e in events:  # report 0.5 + sqrt(confidence - 0.5) / sqrt(2): overconfident
        if e.predicted is not None:
            e.score = 0.5 + math.sqrt((e.score - 0.5) / 2)
    _, results, est = run(events)
    assert est.calibration is not None and est.calibration.curves[0] is not None
    pairs = side_by_side(results)
    accuracy = [(r.value, v) for r, v in pairs if r.metric == "accuracy"]
    assert abs(float(np.mean([a - b for a, b in accuracy]))) < 0.01
    # Taken as calibrated, the same scores would claim an accuracy of about 0.87.
    raw = [e.score for e in events if e.predicted is not None]
    assert float(np.mean(raw)) > 0.85 > 0.82 > float(np.mean([a for a, _ in accuracy]))


def test_scores_calibrated_already_are_left_as_they_are() -> None:
    rng = np.random.default_rng(11)
    p = rng.random(10_000)
    y = rng.random(10_000) < p
    assert not cbpe.needs_calibration(p, y, np.random.default_rng(42))
    assert cbpe.needs_calibration(p**3, y, np.random.default_rng(42))


def test_estimates_fall_in_their_band_of_the_realized_values_multiclass() -> None:
    found, results, est = run(multiclass_stream(40_000, seed=3))
    assert est.calibration is not None and est.calibration.source == "probabilities"
    assert est.calibration.classes == ["a", "b", "c"]
    pairs = side_by_side(results)
    assert len(pairs) == 3 * 12
    inside = [r.band_low <= v <= r.band_high for r, v in pairs]  # type: ignore[operator]
    assert sum(inside) >= 0.85 * len(pairs), f"{sum(inside)} of {len(pairs)} in their band"
    assert found == []


def test_a_shift_toward_uncertain_scores_is_alarmed_on_estimated_accuracy() -> None:
    found, _, _ = run(binary_stream(40_000, seed=4, shift_at=24_000))
    accuracy = [f for f in found if f.signal == "estimated:accuracy"]
    assert accuracy, "scores moved toward 0.5 and estimated accuracy raised nothing"
    first = accuracy[0]
    # The shift starts in window 7 (predictions 24,000-25,999 after a 10,000 reference).
    assert 2 * 24_000 <= first.details["event_index"] <= 2 * 26_000
    assert first.details["state"] == "alarm" and first.severity == "critical"
    assert first.details["reference_value"] > 0.78 > 0.70 > first.details["estimated_value"]
    assert first.details["summary"].startswith("estimated accuracy 0.8")
    assert first.details["calibrated"] is True
    low, high = first.details["band"]
    assert low < first.details["estimated_value"] < high
    # Before the shift nothing fired.
    assert all(f.details["event_index"] >= 2 * 24_000 for f in found)


def test_the_signal_confirms_while_the_shift_lasts_and_resolves_after_it() -> None:
    events = binary_stream(40_000, seed=4, shift_at=24_000)
    # Scores back to the reference's from prediction 30,000 on.
    back = binary_stream(40_000, seed=14)
    for e, again in zip(events, back, strict=False):
        if e.predicted is not None and e.seq >= 2 * 30_000:
            e.predicted, e.score = again.predicted, again.score
    est = EstimatedPerformance()
    found = est.observe(events)
    changes = [c for c in est.take_changes() if c.signal == "estimated:accuracy"]
    kinds = [c.change for c in changes if c.change != "tested"]
    assert kinds[0] == "fired" and "resolved" in kinds
    fired = next(c.event_ts for c in changes if c.change == "fired")
    resolved = next(c.event_ts for c in changes if c.change == "resolved")
    # It fires in window 7 (24,000-25,999), breaks through window 9, then 3 clean windows.
    assert T0 + 24_000 <= fired < T0 + 26_000
    assert T0 + 35_000 <= resolved < T0 + 36_000
    assert [f.details["state"] for f in found if f.signal == "estimated:accuracy"] == ["alarm"]
    assert not est.alarms.is_firing("cbpe|estimated:accuracy")


def test_stationary_streams_raise_nothing() -> None:
    alarms = 0
    for seed in range(8):
        found, _, _ = run(binary_stream(60_000, seed=100 + seed))
        alarms += len(found)
    for seed in range(4):
        found, _, _ = run(multiclass_stream(40_000, seed=200 + seed))
        alarms += len(found)
    # 8 x 25 + 4 x 15 windows x 3 metrics at alpha 1e-4: about 0.08 expected.
    assert alarms == 0


def test_without_reference_labels_scores_are_taken_as_calibrated_and_it_says_so() -> None:
    found, results, est = run(binary_stream(40_000, seed=5, shift_at=24_000, labels=False))
    assert est.calibration is not None and est.calibration.labels == 0
    assert not [r for r in results if r.kind == "realized"]
    assert found and found[0].details["calibrated"] is False
    assert "scores taken as calibrated" in found[0].details["calibration"]


def test_the_score_as_a_class_probability_is_recognised() -> None:
    events = binary_stream(16_000, seed=6)
    for e in events:  # the score as P(fraud) instead of the confidence in the prediction
        if e.predicted == "ok":
            e.score = 1 - e.score
    _, results, est = run(events)
    assert est.calibration is not None and est.calibration.source == "score"
    assert est.calibration.classes[est.calibration.score_class] == "fraud"
    accuracy = [r.value for r in results if r.metric == "accuracy" and r.kind == "estimated"]
    assert abs(float(np.mean(accuracy)) - 0.800) < 0.015


def test_hostile_probabilities_are_bounded_and_bad_rows_skipped() -> None:
    est = EstimatedPerformance(window=100, reference=200, max_classes=5)
    many = {f"c{k}": 0.01 for k in range(1000)}
    est.observe([Scored(0, T0, "x", "c1", math.nan, many)])  # too many classes: not kept
    est.observe([Scored(1, T0, "y", "c1", math.nan, None)])  # nothing to estimate from
    assert est.count == 0
    est.observe([Scored(2, T0, "z", "c1", 0.7, {"c1": math.nan, "c2": 2.0, "c3": 10**400})])
    assert est.count == 1
    assert est.dump()["reference"]["probabilities"][0] == [
        ["c1", "nan"],
        ["c2", 2.0],
        ["c3", "inf"],
    ]


def test_a_model_with_one_predicted_class_is_not_estimated() -> None:
    events = [Scored(i, T0 + i, f"r{i}", "ok", 0.9) for i in range(600)]
    # Labels, in the same batch, of predictions whose window is given up with the model.
    events += [Scored(600 + i, T0 + 600, f"r{i}", truth="ok") for i in range(300, 600)]
    est = EstimatedPerformance(window=100, reference=300)
    assert est.observe(events) == []
    assert "exactly two predicted classes" in est.unsupported
    assert est.dump()["windows"] == [] and est.take_results() == []


def mixed_stream(n: int, seed: int) -> list[Scored]:
    """A binary stream with the rows the column path must take one by one: some with
    probabilities, some with an unusable score, some without an id; labels in between,
    some before their prediction's window has closed, some for unknown ids; a shift at 3/4."""
    rng = np.random.default_rng(seed)
    events: list[Scored] = []
    for i in range(n):
        p = rng.beta(0.6, 0.6) if i < 3 * n // 4 else rng.beta(3, 3)
        predicted = "fraud" if p >= 0.5 else "ok"
        confidence = float(p if predicted == "fraud" else 1 - p)
        ident = None if rng.random() < 0.05 else f"r{i}"
        draw = rng.random()
        if draw < 0.03:
            events.append(Scored(len(events), T0 + i, ident, predicted, math.nan))
        elif draw < 0.06:
            probs = {"fraud": float(p), "ok": float(1 - p)}
            events.append(Scored(len(events), T0 + i, ident, predicted, math.nan, probs))
        else:
            events.append(Scored(len(events), T0 + i, ident, predicted, confidence))
        if rng.random() < 0.6:  # a label for a recent prediction, or for none at all
            target = f"r{i - int(rng.integers(0, 300))}" if rng.random() < 0.95 else "nobody"
            truth = "fraud" if rng.random() < 0.5 else "ok"
            events.append(Scored(len(events), T0 + i + 0.5, target, truth=truth))
    return events


def test_columns_in_any_split_give_what_events_one_at_a_time_give() -> None:
    events = mixed_stream(12_000, seed=5)
    one_by_one = EstimatedPerformance(window=500, reference=2000)
    found = [f for e in events for f in one_by_one.observe([e])]
    assert any(f.signal == "estimated:accuracy" for f in found)  # the shift is found
    rng = np.random.default_rng(1)
    cuts = sorted(rng.choice(len(events), 40, replace=False).tolist())
    columns = EstimatedPerformance(window=500, reference=2000)
    found_in_columns = []
    for k, (start, stop) in enumerate(zip([0, *cuts], [*cuts, len(events)], strict=True)):
        part = events[start:stop]
        if k % 2:  # as tuples, as the service buffers them
            found_in_columns += columns.observe_rows(scored_rows(part))
        else:
            found_in_columns += columns.observe_columns(ScoredColumns.of_events(part))
    assert found_in_columns == found
    assert columns.take_results() == one_by_one.take_results()
    assert columns.dump() == one_by_one.dump()


def test_the_normal_tails_are_scipys_numbers() -> None:
    rng = np.random.default_rng(3)
    for z in [*(rng.normal(size=500) * 6).tolist(), 0.0, math.inf, -math.inf, 40.0, -40.0]:
        assert normal_sf(z) == float(stats.norm.sf(z))
    for q in [*rng.random(500).tolist(), 1e-4, 1e-6, 1e-300, 0.0, 1.0]:
        assert normal_isf(q) == float(stats.norm.isf(q))
