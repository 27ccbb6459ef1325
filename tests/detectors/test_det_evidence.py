"""Sequential evidence per feature (``evidence``): statistical behaviour, seeded.

False alarms on stationary streams, delays on known shifts, accumulation of a
small shift, heavy tails, a persistent shift reported every window, recovery
once the stream is back to the reference. Long runs live in
scripts/bench_drift.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors.base import RowBatch
from detectors.reference import CategoricalReference, NumericReference
from detectors.sequential import FeatureEvidence
from detectors.sequential.ranks import RankTable
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings

REF = 10_000
WINDOW = 2000
COLOURS = np.array(["red", "green", "blue", "black", "white"], dtype=object)
COLOUR_P = (0.4, 0.25, 0.15, 0.12, 0.08)


def numeric_features(
    rng: np.random.Generator, n: int, shift: float = 0.0, scale: float = 1.0
) -> dict[str, np.ndarray]:
    return {
        "feature:normal": shift + scale * rng.normal(0, 1, n),
        "feature:lognormal": rng.lognormal(0, 1, n),
        "feature:poisson": rng.poisson(3, n).astype(np.float64),
        "feature:uniform_int": rng.integers(0, 10, n).astype(np.float64),
        "feature:cauchy": rng.standard_cauchy(n),
    }


def colour_codes(rng: np.random.Generator, n: int, p: tuple[float, ...] = COLOUR_P) -> np.ndarray:
    return rng.choice(5, n, p=np.array(p))  # codes = ranks of the reference labels


def fitted(rng: np.random.Generator, false_alarm_events: float = 1e7) -> FeatureEvidence:
    det = FeatureEvidence()
    refs = {k: NumericReference.build(v) for k, v in numeric_features(rng, REF).items()}
    cats = {"feature:colour": CategoricalReference.build(COLOURS[colour_codes(rng, REF)], 100)}
    det.fit(refs, cats, false_alarm_events)
    return det


def violations(det: FeatureEvidence, num: dict[str, np.ndarray], cat: np.ndarray) -> list[int]:
    """Event positions of the violations (any signal), fed in uneven pieces."""
    out, start, n = [], 0, cat.shape[0]
    for size in [137, 999, 2000, 4321] * (n // 7457 + 1):
        stop = min(start + size, n)
        part = {k: v[start:stop] for k, v in num.items()}
        hits = det.update(part, {"feature:colour": cat[start:stop]}, stop - start)
        out += [start + ev.index for _, ev in hits]
        start = stop
        if start == n:
            break
    return out


def test_mid_ranks_are_exact_for_discrete_features_and_near_for_continuous() -> None:
    rng = np.random.default_rng(1)
    discrete = NumericReference.build(rng.poisson(3, REF).astype(np.float64))
    continuous = NumericReference.build(rng.normal(size=REF))
    table = RankTable.build([discrete, continuous])
    x = np.stack([rng.poisson(3, 500).astype(np.float64), rng.normal(size=500)])
    x[0, :3] = [np.nan, 2.5, 1e9]
    u = table.transform(x)
    for f, ref in enumerate((discrete, continuous)):
        # Mid-ranks among the reference's values, on its grid (the window projected).
        on_grid = ref.project(x[f])
        left = np.searchsorted(ref.grid, on_grid, "left")
        exact = (left + np.searchsorted(ref.grid, on_grid, "right")) / (2 * ref.size)
        tolerance = 1e-12 if f == 0 else 1 / 256
        seen = np.isin(on_grid, ref.grid) if f == 0 else np.isfinite(x[f])
        assert np.all(np.abs(u[f][seen] - exact[seen]) <= tolerance)
    # missing stays missing; a value the reference lacks takes the bin below it
    assert np.isnan(u[0, 0])
    assert u[0, 1] == u[0, np.flatnonzero(x[0] == 2.0)[0]]
    assert u[0, 2] == u[0, np.flatnonzero(x[0] == discrete.high)[0]]


@pytest.mark.parametrize("seed", [3, 4])
def test_stationary_streams_stay_within_a_small_budget(seed: int) -> None:
    # A budget of 2e5 events between false alarms: 1.2M events may bring ~6.
    rng = np.random.default_rng(seed)
    det = fitted(rng, false_alarm_events=2e5)
    n = 1_200_000
    hits = violations(det, numeric_features(rng, n), colour_codes(rng, n))
    # count episodes: a violation more than a window after the previous one
    episodes = sum(1 for i, h in enumerate(hits) if i == 0 or h - hits[i - 1] > WINDOW)
    assert episodes <= 15, f"{episodes} false-alarm episodes, budget ~6"


def test_heavy_tails_missing_values_and_extremes_raise_nothing_at_the_default_budget() -> None:
    rng = np.random.default_rng(5)
    det = FeatureEvidence()

    def heavy(n: int) -> dict[str, np.ndarray]:
        cauchy = rng.standard_cauchy(n) * 1e300  # overflows any raw mean
        t1 = rng.standard_t(1.5, n)
        t1[rng.random(n) < 0.3] = np.nan
        return {
            "feature:cauchy": cauchy,
            "feature:t": t1,
            "feature:lognormal": rng.lognormal(0, 3, n),
        }

    det.fit({k: NumericReference.build(v) for k, v in heavy(REF).items()}, {})
    n = 600_000
    num = heavy(n)
    assert violations(det, num, np.full(n, -1)) == []


@pytest.mark.parametrize(
    ("shift", "scale", "colours", "signal"),
    [
        (0.5, 1.0, COLOUR_P, "feature:normal"),
        (0.0, 1.5, COLOUR_P, "feature:normal"),
        (0.0, 1.0, (0.3, 0.3, 0.15, 0.15, 0.1), "feature:colour"),
    ],
    ids=["mean_0.5sd", "scale_x1.5", "colour_mix"],
)
def test_clear_shifts_are_caught_within_1000_events(
    shift: float, scale: float, colours: tuple[float, ...], signal: str
) -> None:
    delays = []
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        det = fitted(rng)
        onset = 20_000 + 37 * seed  # never aligned to a block
        before = numeric_features(rng, onset)
        after = numeric_features(rng, 3000, shift, scale)
        num = {k: np.concatenate([before[k], after[k]]) for k in before}
        cat = np.concatenate([colour_codes(rng, onset), colour_codes(rng, 3000, colours)])
        out, start = [], 0
        for size in (7000, 5555, 9000, 10_000):
            stop = min(start + size, onset + 3000)
            part = {k: v[start:stop] for k, v in num.items()}
            out += [
                (s, start + ev.index)
                for s, ev in det.update(part, {"feature:colour": cat[start:stop]}, stop - start)
            ]
            start = stop
        assert [i for _, i in out if i < onset] == [], "false alarm before the onset"
        first = [i for s, i in out if s == signal]
        assert first, f"missed: {out}"
        delays.append(first[0] - onset)
    # a category mix moves shares by 0.1, about 3 block standard deviations:
    # near the limit of what 1e7 events between false alarms allows (~700
    # events), so its tail is longer
    assert np.median(delays) <= 1000, delays
    assert max(delays) <= (1000 if signal == "feature:normal" else 2500), delays


def shifted_run(
    seed: int, shift: float, onset: int, end: int, total: int
) -> tuple[FeatureEvidence, list[tuple[str, int]]]:
    """feature:normal shifted by ``shift`` sds from ``onset`` to ``end``; the violations."""
    rng = np.random.default_rng(seed)
    det = fitted(rng)
    num = numeric_features(rng, total)
    num["feature:normal"][onset:end] += shift
    cat = colour_codes(rng, total)
    out: list[tuple[str, int]] = []
    for start in range(0, total, 3000):
        stop = min(start + 3000, total)
        part = {k: v[start:stop] for k, v in num.items()}
        out += [
            (s, start + ev.index)
            for s, ev in det.update(part, {"feature:colour": cat[start:stop]}, stop - start)
        ]
    return det, out


def test_a_small_shift_is_caught_by_accumulation() -> None:
    for seed in (7, 8, 9):
        onset = 10_123
        _, out = shifted_run(seed, 0.1, onset, 40_000, 40_000)
        hits = [i for s, i in out if s == "feature:normal"]
        assert [i for _, i in out if i < onset] == []
        assert hits and hits[0] - onset <= 20_000, hits[:1]


def test_a_persistent_shift_is_reported_every_window_and_stops_after_it_ends() -> None:
    onset, end, total = 10_000, 60_000, 90_000
    _, out = shifted_run(11, 0.3, onset, end, total)
    hits = np.array([i for s, i in out if s == "feature:normal"])
    first = int(hits[0])
    assert first - onset < 2000
    windows = np.arange(first // WINDOW, end // WINDOW)
    reported = set((hits // WINDOW).tolist())
    assert all(int(w) in reported for w in windows), "a window of the shift went unreported"
    after = hits[hits >= end]
    assert after.size == 0 or after.max() - end < 3 * WINDOW, "violations went on after the shift"


def test_findings_carry_statistic_threshold_effect_and_details() -> None:
    rng = np.random.default_rng(12)
    det = fitted(rng)
    num = numeric_features(rng, 8000, shift=0.5)
    hits = det.update(num, {"feature:colour": colour_codes(rng, 8000)}, 8000)
    signal, ev = hits[0]
    assert signal == "feature:normal"
    assert ev.statistic > ev.threshold > 0
    assert 0.3 < ev.effect_size < 0.7  # normal-equivalent shift, in reference sds
    assert ev.details["direction"] == "up" and ev.details["measure"] == "location"
    assert ev.details["block"] == 200
    colour = det.update(
        numeric_features(rng, 4000),
        {"feature:colour": colour_codes(rng, 4000, (0.2, 0.35, 0.15, 0.2, 0.1))},
        4000,
    )
    reds = [ev for s, ev in colour if s == "feature:colour" and ev.details["category"] == "red"]
    assert reds and reds[0].details["direction"] == "down"
    assert -0.3 < reds[0].effect_size < -0.1  # share change 0.4 -> 0.2


def batch(rng: np.random.Generator, n: int, first: int) -> RowBatch:
    return RowBatch(
        ts=1.7e9 + np.arange(first, first + n, dtype=np.float64),
        numeric={k.removeprefix("feature:"): v for k, v in numeric_features(rng, n).items()},
        categorical={"colour": COLOURS[colour_codes(rng, n)]},
        score=rng.random(n),
    )


def test_the_suite_gives_evidence_a_quarter_of_the_budget_and_reports_through_alarm_states() -> (
    None
):
    md = ModelDetectors(SuiteSettings())
    rng = np.random.default_rng(13)
    for first in range(0, 12_000, 2000):
        md.observe_rows(batch(rng, 2000, first))
    assert md._window_level() == pytest.approx(0.5 * 2000 / 1e7)
    assert md._change_budget() == pytest.approx(1e7 / 0.25)
    evidence = md._evidence["evidence"]
    assert isinstance(evidence, FeatureEvidence)
    assert evidence.false_alarm_events == pytest.approx(1e7 / 0.25)  # a quarter of the rate
    drifted = batch(rng, 12_000, 12_000)
    drifted.numeric["normal"] = drifted.numeric["normal"] + 1.0
    out = md.observe_rows(drifted)
    mine = [f for f in out if f.detector == "evidence" and f.signal == "feature:normal"]
    # one alarm (escalated at most once, as its estimated effect grows), then it stays in alarm
    assert [f.details["state"] for f in mine] in (["alarm"], ["alarm", "escalated"])
    assert mine[-1].severity == "critical" and mine[-1].details["event_index"] < 13_000
    assert 12_000 <= mine[0].details["event_index"] < 12_400
