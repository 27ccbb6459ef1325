"""Boundary probing: quiet on steady callers and on drift, quick on a low-volume prober."""

from __future__ import annotations

import json

import numpy as np
from scipy import stats

from detectors.client.boundary import ClientBoundary

CLIENTS = np.array([f"k{i}" for i in range(40)], dtype=object)
SHARES = 1.0 / np.arange(1, 41) ** 0.8
SHARES /= SHARES.sum()


def _traffic(
    n: int,
    seed: int,
    prober_share: float = 0.0,
    onset: int = 0,
    collapse_at: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Callers and scores: Beta(2, 5) scores (about 11% within 0.1 of 0.5) per caller.

    A prober sends ``prober_share`` of the requests from ``onset`` on, all scoring
    within 0.08 of 0.5; from ``collapse_at`` every score is pulled towards 0.5.
    """
    rng = np.random.default_rng(seed)
    clients = CLIENTS[rng.choice(40, n, p=SHARES)]
    scores = rng.beta(2, 5, n)
    probing = (np.arange(n) >= onset) & (rng.random(n) < prober_share)
    clients[probing] = "prober"
    scores[probing] = 0.5 + rng.uniform(-0.08, 0.08, int(probing.sum()))
    if collapse_at is not None:
        late = np.arange(n) >= collapse_at
        scores[late] = 0.5 + (scores[late] - 0.5) * 0.15
    clients[rng.random(n) < 0.05] = None  # events without a caller are skipped
    scores[rng.random(n) < 0.02] = np.nan  # and events without a score
    return clients, scores


def test_steady_callers_raise_nothing_over_a_million_events() -> None:
    det = ClientBoundary()
    det.calibrate(1e-4)
    flagged = []
    for chunk in range(10):
        flagged += det.update(*_traffic(100_000, seed=chunk))
    assert flagged == []


def test_scores_drifting_to_the_boundary_for_everyone_are_not_probing() -> None:
    det = ClientBoundary()
    det.calibrate(1e-4)
    assert det.update(*_traffic(200_000, seed=11, collapse_at=50_000)) == []


def test_a_prober_sending_one_percent_of_requests_is_caught_within_three_windows() -> None:
    det = ClientBoundary()
    det.calibrate(1e-4)
    onset = 30_000
    clients, scores = _traffic(80_000, seed=3, prober_share=0.01, onset=onset)
    flagged = det.update(clients, scores)
    assert flagged, "the prober went unseen"
    first = flagged[0]
    assert first.client == "prober" and first.index >= onset
    # 1% of ~1,860 requests counted per window is ~18, above min_events (10).
    assert first.index - onset <= 3 * 2000 / 0.93 + 100
    assert {f.client for f in flagged} == {"prober"}
    near = round(first.share * first.count)
    expected = stats.binom.sf(near - 1, first.count, max(first.baseline, 1 / first.count))
    assert first.p_value == expected
    assert first.severity == "critical"  # all of its requests sit at the boundary


def test_state_round_trips_mid_window_with_identical_continuation() -> None:
    clients, scores = _traffic(60_000, seed=8, prober_share=0.02, onset=20_000)
    expected = ClientBoundary().update(clients, scores)
    first = ClientBoundary()
    got = first.update(clients[:31_111], scores[:31_111])
    again = ClientBoundary.load(json.loads(json.dumps(first.dump(), allow_nan=False)))
    got += [
        type(o)(**{**o.__dict__, "index": o.index + 31_111})
        for o in again.update(clients[31_111:], scores[31_111:])
    ]
    assert got == expected and expected


def test_without_scores_nothing_is_counted() -> None:
    det = ClientBoundary()
    clients, _ = _traffic(10_000, seed=2)
    assert det.update(clients, None) == []
    assert det.dump()["fill"] == 0
