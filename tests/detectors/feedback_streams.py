"""Seeded labelled streams of a 20-feature classifier, with or without poisoned feedback.

Features: 15 numeric (normal; ``x0`` also sets how often the model is wrong:
3% of labels below 0, 7% above, so segments differ in their honest rates) and
5 categorical, among them ``merchant`` (30 values, Zipf-like shares) whose value
``m07`` holds ``segment_share`` (3%) of the traffic. Predictions are ``approve`` (a share
``approve_share``, 70% by default) or ``decline``. From ``poison_at`` on, labels of predictions of
``approve`` at merchant ``m07`` say ``decline`` with probability ``poisoned``
(30%) instead of the honest rate; with ``ramp``, the probability rises linearly from 5%
to ``poisoned`` over that many labels. ``error_rates`` sets the honest rates (x0 below and
above 0); from ``rise_at`` on, the model is wrong everywhere at ``risen_rates`` instead
(a global rise of its error, as drift or a bad release make).

Heterogeneity that is not poisoning: ``country_rates`` multiplies the honest rates per
country (FR, DE, US, BR); ``drift_shares`` moves the merchants' shares linearly from
the Zipf-like ones to ``drift_shares`` over the stream (traffic that drifts).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.base import RowBatch
from detectors.performance.segments import SegmentLayout
from detectors.reference import CategoricalReference, NumericReference
from detectors.suite.error_stream import JoinedLabels

NUMERIC = tuple(f"x{i}" for i in range(15))
CATEGORICAL = ("merchant", "country", "channel", "device", "tier")
TARGET = "m07"
CLASSES = np.array(["approve", "decline"], dtype=object)


def merchant_shares(segment_share: float = 0.03) -> np.ndarray:
    shares = 1 / np.arange(1, 31)  # Zipf-like: m07 is the eighth largest
    shares[7] = 0
    shares *= (1 - segment_share) / shares.sum()
    shares[7] = segment_share
    return shares


def rows(
    n: int, seed: int, segment_share: float = 0.03, drift_shares: np.ndarray | None = None
) -> RowBatch:
    rng = np.random.default_rng([seed, 1])
    numeric = {name: rng.normal(size=n) for name in NUMERIC}
    merchants = np.array([f"m{i:02d}" for i in range(30)], dtype=object)
    shares = merchant_shares(segment_share)
    if drift_shares is None:
        chosen = rng.choice(30, n, p=shares)
    else:  # each row's shares: from ``shares`` at the first to ``drift_shares`` at the last
        along = np.linspace(0, 1, n)
        draws = rng.random(n)
        chosen = np.empty(n, np.int64)
        for a in range(0, n, 65_536):  # (rows x 30) at a time
            t = along[a : a + 65_536, None]
            cdf = (1 - t) * np.cumsum(shares) + t * np.cumsum(drift_shares)
            chosen[a : a + 65_536] = (draws[a : a + 65_536, None] > cdf).sum(axis=1)
        chosen = np.minimum(chosen, 29)
    categorical = {
        "merchant": merchants[chosen],
        "country": np.array(["FR", "DE", "US", "BR"], dtype=object)[rng.integers(0, 4, n)],
        "channel": np.array(["web", "app"], dtype=object)[rng.integers(0, 2, n)],
        "device": np.array([f"d{i}" for i in range(50)], dtype=object)[rng.integers(0, 50, n)],
        "tier": np.array(["gold", "silver", "bronze"], dtype=object)[rng.integers(0, 3, n)],
    }
    return RowBatch(ts=np.zeros(n), numeric=numeric, categorical=categorical)


def layout_of(batch: RowBatch) -> SegmentLayout:
    """The layout a model whose reference is ``batch`` would have."""
    refs: dict[str, NumericReference | CategoricalReference] = {
        k: NumericReference.build(v) for k, v in batch.numeric.items()
    }
    refs.update({k: CategoricalReference.build(v, 1000) for k, v in batch.categorical.items()})
    return SegmentLayout.build(refs)


def labelled(
    n: int,
    seed: int,
    poison_at: int | None = None,
    poisoned: float = 0.30,
    ramp: int = 0,
    segment_share: float = 0.03,
    layout: SegmentLayout | None = None,
    approve_share: float = 0.7,
    error_rates: tuple[float, float] = (0.03, 0.07),
    rise_at: int | None = None,
    risen_rates: tuple[float, float] = (0.37, 0.43),
    country_rates: tuple[float, float, float, float] | None = None,
    drift_shares: np.ndarray | None = None,
) -> tuple[JoinedLabels, SegmentLayout]:
    """``n`` joined labels (one per prediction, stream positions 0, 2, 4, ...) and the layout
    their keys were made with (by default, from the first 10,000 rows of another seed)."""
    batch = rows(n, seed, segment_share, drift_shares)
    if layout is None:
        layout = layout_of(rows(10_000, seed + 10_000, segment_share))
    rng = np.random.default_rng([seed, 2])
    predicted = (rng.random(n) >= approve_share).astype(np.int64)  # 0: approve
    above = batch.numeric["x0"] > 0
    rates = np.where(above, error_rates[1], error_rates[0])
    if rise_at is not None:
        rates[rise_at:] = np.where(above, risen_rates[1], risen_rates[0])[rise_at:]
    if country_rates is not None:
        country = np.searchsorted(np.array(["BR", "DE", "FR", "US"]), batch.categorical["country"])
        rates = rates * np.array(country_rates)[[3, 1, 0, 2]][country]  # sorted: BR DE FR US
    wrong = rng.random(n) < rates
    if poison_at is not None:
        target = (batch.categorical["merchant"] == TARGET) & (predicted == 0)
        target[:poison_at] = False
        # From the onset the flipped share rises linearly from 5% to ``poisoned`` over
        # ``ramp`` labels (0: at once).
        since = np.arange(n) - poison_at
        share = 0.05 + (poisoned - 0.05) * np.clip((since + 1) / max(ramp, 1), 0, 1)
        wrong = np.where(target, rng.random(n) < share, wrong)
    truth = np.where(wrong, 1 - predicted, predicted)
    keys = layout.keys(batch, list(range(n)))
    seq = np.arange(n, dtype=np.int64) * 2 + 1
    joined = JoinedLabels(
        seq=seq,
        ts=1.6e9 + seq.astype(np.float64),
        predicted=CLASSES[predicted].tolist(),
        truth=CLASSES[truth].tolist(),
        predicted_ts=1.6e9 + seq.astype(np.float64) - 1,
        score=np.full(n, np.nan),
        segments=keys,
    )
    return joined, layout


def heterogeneous() -> dict[str, Any]:
    """Options of ``labelled`` for heterogeneity that is not poisoning: honest rates by
    country (FR x1, DE x0.6, US x1.6, BR x3), 90% approvals (a rarer class), and the
    merchants' shares drifting over the stream (m00 from 25% to 8%, m07 from 3% to 8%,
    m20 from 1% to 6%)."""
    drifted = merchant_shares()
    rest = np.ones(30, bool)
    rest[[0, 7, 20]] = False
    drifted[rest] *= (1 - 0.08 - 0.08 - 0.06) / drifted[rest].sum()
    drifted[[0, 7, 20]] = 0.08, 0.08, 0.06
    return {"country_rates": (1.0, 0.6, 1.6, 3.0), "approve_share": 0.9, "drift_shares": drifted}


def cut(joined: JoinedLabels, a: int, b: int) -> JoinedLabels:
    return JoinedLabels(
        joined.seq[a:b],
        joined.ts[a:b],
        list(joined.predicted[a:b]),
        list(joined.truth[a:b]),
        joined.predicted_ts[a:b],
        joined.score[a:b],
        list(joined.segments[a:b]),
    )
