"""Client volume: quiet on steady callers, quick on a new heavy one, exact through a restart."""

from __future__ import annotations

import json

import numpy as np
from scipy import stats

from detectors.client.volume import ClientVolume

CLIENTS = np.array([f"k{i}" for i in range(40)], dtype=object)
SHARES = 1.0 / np.arange(1, 41) ** 0.8
SHARES /= SHARES.sum()


def _traffic(n: int, seed: int, scraper_share: float = 0.0, onset: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clients = CLIENTS[rng.choice(40, n, p=SHARES)]
    late = (np.arange(n) >= onset) & (rng.random(n) < scraper_share)
    clients[late] = "scraper"
    clients[rng.random(n) < 0.05] = None  # events without a caller are skipped
    return clients


def test_steady_callers_raise_nothing_over_a_million_events() -> None:
    det = ClientVolume()
    det.calibrate(1e-4)
    flagged = []
    for chunk in range(10):
        flagged += det.update(_traffic(100_000, seed=chunk))
    assert flagged == []


def test_a_new_caller_taking_a_tenth_of_traffic_is_caught_within_two_windows() -> None:
    det = ClientVolume()
    det.calibrate(1e-4)
    onset = 30_000
    clients = _traffic(60_000, seed=3, scraper_share=0.1, onset=onset)
    flagged = det.update(clients)
    assert flagged, "the scraper went unseen"
    first = flagged[0]
    assert first.client == "scraper" and first.index >= onset
    assert first.index - onset <= 2 * 2000 / 0.95 + 100
    assert {f.client for f in flagged} == {"scraper"}
    assert first.p_value == stats.binom.sf(first.count - 1, 2000, max(first.baseline, 1 / 2000))


def test_state_round_trips_mid_window_with_identical_continuation() -> None:
    clients = _traffic(40_000, seed=8, scraper_share=0.2, onset=20_000)
    whole = ClientVolume()
    expected = whole.update(clients)
    first = ClientVolume()
    got = first.update(clients[:21_111])
    again = ClientVolume.load(json.loads(json.dumps(first.dump(), allow_nan=False)))
    got += [
        type(o)(**{**o.__dict__, "index": o.index + 21_111}) for o in again.update(clients[21_111:])
    ]
    assert got == expected and expected
