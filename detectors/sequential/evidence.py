"""Sequential evidence per feature: CUSUMs of block statistics against the reference."""

from __future__ import annotations

import math
from collections.abc import Container
from typing import Any

import numpy as np
from scipy.special import ndtri

from detectors.base import DetectorBase, Severity
from detectors.change.base import ChangeEvent
from detectors.codec import decode_array, encode_array
from detectors.reference import CategoricalReference, NumericReference
from detectors.sequential.charts import DOWN, TIERS, ChartBank, thresholds
from detectors.sequential.layout import (
    LOCATION,
    SCALE,
    SHARE,
    Chart,
    bucket_maps,
    numeric_charts,
)
from detectors.sequential.ranks import RankTable

MIN_VALUES = 20  # present values in a block below which its z-score is 0


class FeatureEvidence(DetectorBase):
    """Evidence that accumulates across blocks, per feature, against the reference.

    The stream is cut into blocks of ``block`` events (by event count, so any
    batching gives the same blocks). Per block, each statistic becomes a
    z-score with the null variance read off the reference:

    - numeric feature, *location*: the mean mid-rank ``u`` of the block's
      values in the reference (probability integral transform: distribution
      free, a heavy tail or a discrete feature is no different from a normal
      one), against 1/2;
    - numeric feature, *scale*: the mean of ``|2u - 1|`` against the
      reference's own mean of it (a wider or narrower spread);
    - categorical feature, *share*: the share of each frequent label (and of
      all the rest, unseen labels included) against the reference's.

    Every z-score feeds two two-sided CUSUMs (Page 1954): a *fast* one with
    reference value ``fast_k`` that catches a large shift within a block or
    two, and a *slow* one with ``k = allowance * sqrt(block / n_ref)`` that
    accumulates small persistent shifts. That ``k`` is what the reference's
    own estimation error is measured in: the reference's mean of a statistic
    is off by about ``1 / sqrt(n_ref)`` value standard deviations, which in a
    block's z-units is a persistent drift of ``sqrt(block / n_ref)``. A
    CUSUM's ``k`` must exceed that drift or it walks up steadily on a
    stationary stream; ``allowance`` standard errors make that rare across
    all of a model's charts.

    Thresholds share ``false_alarm_events`` evenly between every one-sided
    chart (Siegmund's approximation of the in-control run length, as for
    :class:`~detectors.change.CUSUM`), allowing for the reference's error: a
    fast chart's threshold makes the false-alarm rate right on average over
    that error (``fast_k`` is many reference errors, so the average is
    dominated by typical references); a slow chart's is computed with its
    ``k`` reduced by two reference errors, so charts whose reference erred by
    up to that much keep their run length (the average would be dominated by
    the rare references off by more than ``k``, which no threshold saves).

    Why not larger references or a single chart: a shift smaller than a few
    reference errors cannot be told from the reference's own error at all, so
    the slow charts find what is a few errors beyond it (a 0.1 standard
    deviation shift is ~10 errors of a 10,000-event reference: found in a few
    thousand events), while a share change of 3 points in a 50% category is
    only ~6 errors: found at the edge of 20,000 events. One chart with a small
    ``k`` would need a high threshold and be slow on large shifts; the fast
    charts keep those within a few hundred events.

    A sum is capped at ``cap`` times its threshold rather than restarted
    after an alarm: while a shift persists it keeps reporting a violation
    every block, and once the stream is back to the reference it falls below
    the threshold within a few windows. A violation reports the chart whose
    sum is furthest above its threshold (one per feature and block), with the
    effect estimated over the sum's current run: a *normal-equivalent* shift
    in reference standard deviations (location: the shift of a normal feature
    whose mean mid-rank moved as much), a scale ratio minus 1 (scale), or the
    change of the label's share (share).

    Parameters
    ----------
    block
        Events per block; each block steps every chart once.
    fast_k
        Reference value of the fast charts, in block z-units: block shifts
        above about ``2 * fast_k`` are caught in one or two blocks.
    allowance
        Reference value of the slow charts, in standard errors of the
        reference's own estimate (``sqrt(block / n_ref)`` block z-units).
    max_categories
        Frequent labels of a categorical feature watched one by one, at most.
    min_expected
        Expected count per block below which a label is not watched on its
        own (it counts in "other"); block counts stay near normal.
    cap
        Sums are capped at ``cap`` times their threshold.
    critical_effect
        Normal-equivalent shift (reference standard deviations) or scale
        change (ratio minus 1, or its reciprocal's) at or above which a
        numeric finding is critical rather than a warning.
    critical_share
        Change of a label's share at or above which a categorical finding is
        critical.
    false_alarm_events
        Events expected between false alarms of all the charts together; the
        suite sets it from its budget when it fits the detector.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.reference import NumericReference
    >>> from detectors.sequential import FeatureEvidence
    >>> rng = np.random.default_rng(0)
    >>> detector = FeatureEvidence()
    >>> detector.fit({"feature:x": NumericReference.build(rng.normal(size=10_000))}, {})
    >>> detector.update({"feature:x": rng.normal(size=20_000)}, {}, 20_000)
    []

    The mean moves up by a tenth of a standard deviation:

    >>> hits = detector.update({"feature:x": rng.normal(0.1, 1, 20_000)}, {}, 20_000)
    >>> signal, first = hits[0]
    >>> print(signal, first.index, first.details["chart"], first.details["direction"])
    feature:x 4399 fast up

    References
    ----------
    .. [1] Page, E. S. (1954). Continuous inspection schemes. *Biometrika*,
       41(1-2), 100-115.
    .. [2] Siegmund, D. (1985). *Sequential Analysis: Tests and Confidence
       Intervals*. Springer, New York.
    """

    name = "evidence"

    def __init__(
        self,
        block: int = 200,
        fast_k: float = 1.5,
        allowance: float = 4.0,
        max_categories: int = 8,
        min_expected: float = 20.0,
        cap: float = 1.5,
        critical_effect: float = 1.0,
        critical_share: float = 0.1,
        false_alarm_events: float = 1e7,
    ) -> None:
        for key, value, low in (
            ("block", block, 10),
            ("max_categories", max_categories, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
        for key, number in (
            ("fast_k", fast_k),
            ("allowance", allowance),
            ("min_expected", min_expected),
            ("critical_effect", critical_effect),
            ("critical_share", critical_share),
        ):
            if not (isinstance(number, int | float) and number > 0 and math.isfinite(number)):
                raise ValueError(f"{key} must be a finite number > 0, got {number!r}")
        if not (isinstance(cap, int | float) and 1 < cap < 100):
            raise ValueError(f"cap must be a number in (1, 100), got {cap!r}; pass e.g. 1.5")
        if not (isinstance(false_alarm_events, int | float) and false_alarm_events > block):
            raise ValueError(
                f"false_alarm_events must exceed block, got {false_alarm_events!r}; pass e.g. 1e7"
            )
        self.block = block
        self.fast_k = fast_k
        self.allowance = allowance
        self.max_categories = max_categories
        self.min_expected = min_expected
        self.cap = cap
        self.critical_effect = critical_effect
        self.critical_share = critical_share
        self.false_alarm_events = false_alarm_events
        self._numeric: list[str] = []
        self._categorical: list[str] = []
        self._table = RankTable.build([])
        self._maps: list[np.ndarray] = []
        self._owner = np.zeros(0, dtype=np.intp)
        self._charts: list[Chart] = []
        self._bank = ChartBank.create(np.zeros((2, 0)), np.zeros((2, 0)), cap)
        self._u = np.zeros((0, block))
        self._buckets = np.zeros((0, block), dtype=np.intp)
        self._fill = 0
        self._index()

    # -- set-up ---------------------------------------------------------
    def fit(
        self,
        numeric: dict[str, NumericReference],
        categorical: dict[str, CategoricalReference],
        false_alarm_events: float | None = None,
    ) -> None:
        """Lay out the charts of these features' references and calibrate them
        to ``false_alarm_events`` (the detector's own when None)."""
        if false_alarm_events is not None:
            self.false_alarm_events = float(false_alarm_events)
        self._numeric = sorted(numeric)
        self._categorical = sorted(categorical)
        nrefs = [numeric[k] for k in self._numeric]
        crefs = [categorical[k] for k in self._categorical]
        self._table = RankTable.build(nrefs)
        charts = numeric_charts(self._numeric, nrefs, self._table)
        self._maps, self._owner, shares = bucket_maps(
            self._categorical, crefs, self.block, self.min_expected, self.max_categories
        )
        self._charts = charts + shares
        self._index()
        self._bank = self._calibrated_bank()
        self._u = np.full((len(self._numeric), self.block), np.nan)
        self._buckets = np.full((len(self._categorical), self.block), -1, dtype=np.intp)
        self._fill = 0

    def _calibrated_bank(self) -> ChartBank:
        n_ref = np.array([c.reference_n for c in self._charts], dtype=np.float64)
        error = np.sqrt(self.block / np.maximum(n_ref, 1.0))
        k = np.stack([np.full(error.shape, float(self.fast_k)), self.allowance * error])
        sides = 2 * k.size
        arl_blocks = self.false_alarm_events / self.block * max(sides, 1)
        return ChartBank.create(k, thresholds(k, error, arl_blocks), self.cap)

    @property
    def charts(self) -> int:
        return len(self._charts)

    # -- stream ---------------------------------------------------------
    def update(
        self,
        numeric: dict[str, np.ndarray],
        categorical: dict[str, np.ndarray],
        size: int,
    ) -> list[tuple[str, ChangeEvent]]:
        """The next ``size`` events: numeric features' values (NaN: missing) and
        categorical features' reference codes (see
        :class:`~detectors.reference.CategoricalReference`); a feature not given
        is missing throughout. Return (signal, detection) pairs, positions into
        these events."""
        if not self._charts:
            return []
        u = self._ranks(numeric, size)
        buckets = self._bucket_ids(categorical, size)
        out: list[tuple[str, ChangeEvent]] = []
        block, pos = self.block, 0
        if self._fill:  # the block begun by earlier events
            pos = min(size, block - self._fill)
            self._u[:, self._fill : self._fill + pos] = u[:, :pos]
            self._buckets[:, self._fill : self._fill + pos] = buckets[:, :pos]
            self._fill += pos
            if self._fill < block:
                return out
            self._fill = 0
            out += self._close_blocks(self._u[:, None], self._buckets[:, None], pos - 1)
        whole = (size - pos) // block
        if whole:  # blocks within these events: read in place, all at once
            stop = pos + whole * block
            out += self._close_blocks(
                u[:, pos:stop].reshape(u.shape[0], whole, block),
                buckets[:, pos:stop].reshape(buckets.shape[0], whole, block),
                pos + block - 1,
            )
            pos = stop
        if pos < size:  # the start of the next block
            self._fill = size - pos
            self._u[:, : self._fill] = u[:, pos:]
            self._buckets[:, : self._fill] = buckets[:, pos:]
        return out

    def _ranks(self, numeric: dict[str, np.ndarray], size: int) -> np.ndarray:
        if not self._numeric:
            return np.zeros((0, size))
        missing = np.full(size, np.nan)
        x = np.stack([np.asarray(numeric.get(k, missing), dtype=np.float64) for k in self._numeric])
        return self._table.transform(x)

    def _bucket_ids(self, categorical: dict[str, np.ndarray], size: int) -> np.ndarray:
        out = np.full((len(self._categorical), size), -1, dtype=np.intp)
        for f, key in enumerate(self._categorical):
            codes = categorical.get(key)
            if codes is not None:
                out[f] = self._maps[f][np.asarray(codes, dtype=np.intp) + 1]
        return out

    def _index(self) -> None:
        """Where each chart's raw sum and count sit among a block's statistics
        (numeric mid-rank sums, then |2u-1| sums, then bucket counts), and its
        null mean and variance, as arrays: a block is then a few numpy steps."""
        fn = len(self._numeric)
        offset = {LOCATION: 0, SCALE: fn, SHARE: 2 * fn}
        self._raw_at = np.array([offset[c.kind] + c.source for c in self._charts], dtype=np.intp)
        self._n_at = np.array(
            [c.source if c.kind != SHARE else fn + self._owner[c.source] for c in self._charts],
            dtype=np.intp,
        )
        self._null_mean = np.array([c.mean for c in self._charts])
        self._null_var = np.array([c.var for c in self._charts])

    def _block_sums(self, u: np.ndarray, buckets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw sum and count of every chart's statistic over each of ``k`` full blocks:
        ``u`` (features x k x block) and ``buckets`` (categorical features x k x block)
        in, (k x charts) out. Each block's row is summed on its own, as a block alone."""
        present = u == u  # not NaN, in one pass
        n_num = present.sum(axis=2).T.astype(np.float64)
        u = np.where(present, u, 0.0)
        a = u * 2
        a -= 1
        np.abs(a, out=a)
        a = np.where(present, a, 0.0)
        k, buckets_n = u.shape[1], self._owner.shape[0]
        seen = buckets >= 0
        # bucket id + buckets_n * the block's number: one count for every block
        ids = (buckets + buckets_n * np.arange(k)[:, None])[seen]
        counts = np.bincount(ids, minlength=k * buckets_n).reshape(k, buckets_n)
        # a categorical feature's count is that of its buckets (integers: exact)
        n_cat = seen.sum(axis=2).T.astype(np.float64)
        raw = np.concatenate([u.sum(axis=2).T, a.sum(axis=2).T, counts], axis=1)[:, self._raw_at]
        return raw, np.concatenate([n_num, n_cat], axis=1)[:, self._n_at]

    def _close_blocks(
        self, u: np.ndarray, buckets: np.ndarray, index: int
    ) -> list[tuple[str, ChangeEvent]]:
        """Step the charts once per full block (see :meth:`_block_sums`), the first
        ending at event ``index``; their findings."""
        raw, n = self._block_sums(u, buckets)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (raw - n * self._null_mean) / np.sqrt(n * self._null_var)
        z = np.where(n >= MIN_VALUES, z, 0.0)
        out: list[tuple[str, ChangeEvent]] = []
        for b, over in enumerate(self._bank.steps(z, raw, n)):
            if over.any():
                out += self._findings(over, index + b * self.block)
        return out

    def _findings(self, over: np.ndarray, index: int) -> list[tuple[str, ChangeEvent]]:
        """One finding per signal over its threshold: its chart furthest above."""
        excess = np.where(over, self._bank.sums / self._bank.h, 0.0)
        best: dict[str, tuple[float, int, int, int]] = {}
        for side, tier, chart in zip(*np.nonzero(over), strict=True):
            signal = self._charts[chart].signal
            score = float(excess[side, tier, chart])
            if signal not in best or score > best[signal][0]:
                best[signal] = (score, int(side), int(tier), int(chart))
        return [(s, self._event(index, *best[s][1:])) for s in sorted(best)]

    def _event(self, index: int, side: int, tier: int, chart: int) -> ChangeEvent:
        c = self._charts[chart]
        observed = self._bank.run_mean(side, tier, chart)
        details: dict[str, Any] = {
            "direction": "down" if side == DOWN else "up",
            "measure": c.kind,
            "chart": TIERS[tier],
            "block": self.block,
            "run_values": int(self._bank.run_n[side, tier, chart]),
        }
        if c.kind == LOCATION:
            effect = math.sqrt(2) * float(ndtri(min(max(observed, 1e-9), 1 - 1e-9)))
            critical = abs(effect) >= self.critical_effect
            details["mean_rank"] = observed
        elif c.kind == SCALE:
            ratio = math.tan(0.5 * math.pi * min(max(observed - c.mean + 0.5, 1e-3), 1 - 1e-3))
            effect = ratio - 1
            critical = max(ratio, 1 / ratio) >= 1 + self.critical_effect
            details["scale_ratio"] = ratio
        else:
            effect = observed - c.mean
            critical = abs(effect) >= self.critical_share
            details.update(category=c.label, share=observed, reference_share=c.mean)
        severity: Severity = "critical" if critical else "warning"
        stat = float(self._bank.sums[side, tier, chart])
        threshold = float(self._bank.h[tier, chart])
        return ChangeEvent(index, stat, threshold, effect, severity, details)

    # -- state ----------------------------------------------------------
    def dump(self, stored: Container[str] = frozenset()) -> dict[str, Any]:
        """Plain data; the rank table named by digest where ``stored`` has it."""
        return {
            "params": self.params(),
            "numeric": list(self._numeric),
            "categorical": list(self._categorical),
            "table": self._table.dump(stored),
            "maps": [encode_array(m) for m in self._maps],
            "owner": encode_array(self._owner),
            "charts": [c.dump() for c in self._charts],
            "bank": self._bank.dump(),
            "u": encode_array(self._u[:, : self._fill]),
            "buckets": encode_array(self._buckets[:, : self._fill]),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> FeatureEvidence:
        det = cls.build(**state["params"])
        det._numeric = list(state["numeric"])
        det._categorical = list(state["categorical"])
        det._table = RankTable.load(state["table"])
        det._maps = [decode_array(m) for m in state["maps"]]
        det._owner = decode_array(state["owner"])
        det._charts = [Chart.load(row) for row in state["charts"]]
        det._index()
        det._bank = ChartBank.load(state["bank"])
        u, buckets = decode_array(state["u"]), decode_array(state["buckets"])
        det._fill = int(u.shape[1])
        det._u = np.full((len(det._numeric), det.block), np.nan)
        det._u[:, : det._fill] = u
        det._buckets = np.full((len(det._categorical), det.block), -1, dtype=np.intp)
        det._buckets[:, : det._fill] = buckets
        return det
