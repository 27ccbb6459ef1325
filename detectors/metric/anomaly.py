"""Anomalies of a serving-metric series, judged point by point in event time."""

from __future__ import annotations

import functools
import math
from typing import Any, Self

import numpy as np
from scipy import special

from detectors.base import DetectorBase, Severity
from detectors.change.base import ChangeEvent
from detectors.codec import decode_float, encode_float
from detectors.metric.bursts import MAX_WAIT, Bursts
from detectors.metric.drift import WINDOW as DRIFT_WINDOW
from detectors.metric.drift import Drift
from detectors.metric.flat_phases import FlatPhases
from detectors.metric.levelnoise import LevelNoise
from detectors.metric.season import BUCKET_SECONDS, SeasonBuckets
from detectors.metric.season import DAY as DAY_BUCKETS
from detectors.metric.tail import TailThreshold
from detectors.metric.variance import VarianceRise

INIT = 10  # points before the model starts (its first level and scale)
FIRST_ALERT = 15  # points before the first alert (when the probation is longer)
WARM_WEIGHT = 5  # points the warm-up's scale (a median of 9 differences) is worth
OVERLAP_DF = 1.5  # degrees of freedom per window of a variance of overlapping window sums
ALPHA = 0.05  # level gain of a (Huber-clipped) error
TREND_GAIN = 0.05  # share of the level gain that goes to the slope
HUBER = 2.0  # errors beyond this many noise units move the level no further
SCALE_RATE = 0.01
CLIP_MEAN = 0.9707  # E[min(Z^2, 9)] for a standard normal Z
SHORT, LONG = 10, 60  # points of the persistence windows
SUM_RATE = 0.005  # weight of a new window sum in its own variance
ONSET_SPAN = 240  # values a slope's onset is fitted over (a gentle ramp's starts far back)
SPREAD_RATE = 0.05  # weight of a new 60-point window in the spread's mean and variance
SAME_RATE = 0.01  # weight of a new point in the rate of repeated values
HOLD = 120  # quiet points that end an episode
SPIKE_RUN = 3  # same-side outliers in a row that are a level shift, not spikes
RETURN = 3.0  # noise scales within which a shift went back to the level before the last
RETURN_SECONDS = 86400.0  # event time within which such a return ends an episode
CALM = 1.5  # median |score| of the last 10 points below which an outlier is a spike
# (a noisier stretch, where outliers come often, is a variance change instead)
LEGACY_PARAMS = ("history", "recent")  # of the windowed detector this one replaced
DEFAULT_CADENCE = 60.0  # seconds between points fed without timestamps
MIN_SPREAD = 1e-2  # the smallest median absolute score the spread takes
RESOLUTION = 1e-3  # the smallest noise scale, relative to the level
WEEK_SECONDS = 7 * 86400.0  # event time before a step within the day's swing may alert
SEASON_SECONDS = 86400.0  # event time before a level or spread change may alert
SEASON_POINTS = 2000  # ... where a day spans at most this many points (a cadence >= 43 s)
# (before a day is seen, a step may be the day's own season: a square wave's
# first edge; spikes, flat-lines and gaps are judged from the start)


def _weaker(a: float, b: float) -> float:
    """The deviation closer to zero; zero where the signs disagree."""
    if a * b <= 0:
        return 0.0
    return a if abs(a) < abs(b) else b


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def _push(ring: list[float], value: float, size: int) -> None:
    ring.append(value)
    if len(ring) > size:
        del ring[0]


@functools.lru_cache(maxsize=64)
def _normal_quantile(n: float) -> float:
    """Two-sided standard-normal quantile exceeded once in ``n`` points."""
    return float(-special.ndtri(0.5 / max(n, 2.0)))


@functools.lru_cache(maxsize=1024)
def _short_history(df: float, n: float) -> float:
    """How much wider the two-sided Student t quantile of ``df`` degrees of
    freedom exceeded once in ``n`` points is than the normal one: a score
    divided by a scale estimated from few points."""
    df = max(round(df, 1), 1.0)
    return float(-special.stdtrit(df, 0.5 / max(n, 2.0))) / _normal_quantile(n)


def _ramp_beats_step(y: np.ndarray) -> tuple[bool, float, float, int]:
    """Whether ``y`` is better fitted by a level then a ramp (a hinge) than by
    a level then another level (a step); the fit's last value, its slope
    (0 for a step), and where the fitted change starts (the index in ``y``
    of the first point past the step or the bend)."""
    n = y.shape[0]
    c, c2 = np.cumsum(y), np.cumsum(y * y)
    k = np.arange(1, n)  # points before the step
    left = c2[:-1] - c[:-1] ** 2 / k
    right = (c2[-1] - c2[:-1]) - (c[-1] - c[:-1]) ** 2 / (n - k)
    step_at = int(np.argmin(left + right))
    step_sse = float(left[step_at] + right[step_at])
    best_sse, best_fit, start = _hinge(y)
    if best_sse < step_sse:
        return True, *best_fit, start
    return False, float(np.median(y[step_at + 1 :])), 0.0, step_at + 1


def _hinge(y: np.ndarray) -> tuple[float, tuple[float, float], int]:
    """The least-squares fit of a level then a ramp to ``y``: its sum of
    squared errors, its last value and slope, and where the ramp starts
    (the index of its first point off the level: the one past the bend)."""
    n = y.shape[0]
    idx = np.arange(n, dtype=np.float64)
    best_sse, best_fit, best_bend = math.inf, (0.0, 0.0), 0
    for bend in range(0, n - 3):
        design = np.column_stack([np.ones(n), np.maximum(idx - bend, 0.0)])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        sse = float(np.sum((y - design @ coef) ** 2))
        if sse < best_sse:
            best_sse, best_bend = sse, bend
            best_fit = (float(coef[0] + coef[1] * (n - 1 - bend)), float(coef[1]))
    return best_sse, best_fit, min(best_bend + 1, n - 1)


def _variance_onset(scores: list[float]) -> int:
    """How many points before the newest of ``scores`` (absolute) a rise of
    their spread started: the split that maximises the likelihood of two
    zero-mean normal stretches, the later one wider (0 for fewer than 8)."""
    n = len(scores)
    if n < 8:
        return 0
    sq = np.square(np.array(scores)) + 1e-12
    c = np.cumsum(sq)
    k = np.arange(2, n - 1)  # points before the split
    left, right = c[k - 1] / k, (c[-1] - c[k - 1]) / (n - k)
    cost = k * np.log(left) + (n - k) * np.log(right)
    cost[right <= left] = np.inf
    if not np.isfinite(cost).any():
        return 0
    return n - 1 - int(k[int(np.argmin(cost))])


class MetricAnomaly(DetectorBase):
    """Anomalies of a serving-metric series (latency, QPS, error rate, CPU,
    queue depth): spike, dip, level_shift, trend_change, variance_change,
    flat_line and gap (the metric stopped arriving), named in ``details.kind``.

    Each point is forecast by a robust Holt model (level and slope, updated by
    Huber-clipped errors, so outliers barely move it) whose error is scaled by
    a robust running noise scale. When the series follows a day or a week
    (found by autocorrelation of half-hour bucket means in event time, at any
    cadence), the point must also be unusual against its bucket one period
    back (a seasonal-naive forecast): a daily square wave's edges or a
    morning ramp are then expected. Thresholds are calibrated, not fixed: the
    tail of each series' own recent scores (peaks over threshold, an
    exponential tail) sets the point threshold, and the window sums of
    scores are judged against their own running variance (as an anomaly
    likelihood; above the normal quantile by the tail's excess over it, less
    for longer windows), so ``false_alarm_events`` holds at any scale and noise.
    Where the noise grows with the level (counts, latency), the noise scales
    are of the noise at the series' typical level and a point is judged in
    the noise at the level expected for it (:mod:`detectors.metric.levelnoise`).

    - spike / dip: one point beyond the threshold, the next back inside
      (reported at that next point); with a season, its score in the noise
      of one seasonal forecast's errors (the median one's) beyond that
      score's own tail too; in a series that makes excursions of
      its own (bursts that come back, as cloud CPU at each cron job) only
      one beyond what they reach (:mod:`detectors.metric.bursts`), and a run
      of outliers as long as twice its longest burst is waited for before
      it is a level shift;
    - level_shift / trend_change: ``SPIKE_RUN`` outliers in a row on one side,
      or a persistent sum of errors over 10 or 60 points; a fit of the last 60
      values (less the slow seasonal forecast) names it: a level then a ramp,
      or a level then another level; the baseline then restarts from the fit
      (re-baselining: one alert, then quiet); also a mean deviation of 60
      points from a slow reference level (plus the seasonal offset that
      fits best) beyond what its windows have done, learnt late in a noise
      scale of before (:mod:`detectors.metric.drift`: a gentle new slope the
      forecast would learn in silence), with a season only where a ramp fits
      the last 60 values better than a step and no episode's echo is due
      (its onset fitted over the last 240 values); a shift back to the level before
      the previous one, within a day of it, is no new anomaly (a recovery, or
      a square wave's edge before its season is known);
    - variance_change: the median absolute score of the last 60 points far above its
      usual (judged every 10 points), or a CUSUM of log squared errors less
      their own slow running mean beyond the threshold of the budget's run
      length (:mod:`detectors.metric.variance`), unless those errors keep to
      one side (then a level shift or trend change);
    - flat_line: a run of identical values improbable at the series' own rate
      of repeated values, and at least ``flat_run`` long, unless it recurs at
      its phase of the day or week (:mod:`detectors.metric.flat_phases`); flat_line_end at
      the first value that differs after a flat-line that was alerted (the
      end of a stuck metric is a change point of its own);
    - gap: a point arrives after far more than the series' cadence (the median
      of its recent spacings) would make probable.

    Before a season can be known a step may be the season itself: level
    shifts, trend changes and variance changes re-baseline without an alert
    in the first day of event time (where a day spans at most
    :data:`SEASON_POINTS` points), and, in a daily series' first week, a step
    within the day's own swing is held as a weekday/weekend step may be.

    One alert per episode: an episode lasts until ``HOLD`` quiet points pass.
    In the first ``probation`` points the noise scale (a running mean there)
    and the window sums' variance are estimates from few points: level
    shifts, trend and variance changes may alert from the
    :data:`FIRST_ALERT`-th point where they beat the Student t quantile of
    those estimates' degrees of freedom (the baseline follows what the
    normal quantile finds meanwhile, but from the 30th point a shift or ramp
    beyond it only is waited for, the baseline learning nothing, rather than
    restarted from in silence); gaps too; spikes and flat-lines wait for
    the probation (a heavy tail, a rate of repeats, not learnt yet).
    Level shifts, trend changes, variance changes and flat-lines give
    ``details.onset_points_back``: how many points before the alert's the
    change is estimated to have started.
    Points carry event times (``update_at``); ``update`` takes them one
    minute apart.

    Parameters
    ----------
    probation
        Points over which thresholds allow for a short history (the baseline
        learns); no spike or flat-line alerts in them.
    flat_run
        The shortest run of identical values that is a flat-line.
    false_alarm_events
        Points expected between false alarms; the suite sets it from its budget.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.metric import MetricAnomaly
    >>> rng = np.random.default_rng(0)
    >>> latency = MetricAnomaly()
    >>> latency.update(50 + rng.normal(0, 2, 300))
    []
    >>> events = latency.update(np.array([51.0, 49.5, 400.0, 50.5]))
    >>> [(e.index, e.details["kind"], e.severity) for e in events]
    [(3, 'spike', 'critical')]

    References
    ----------
    .. [1] Gelper, S., Fried, R., & Croux, C. (2010). Robust forecasting with
       exponential and Holt-Winters smoothing. *Journal of Forecasting*,
       29(3), 285-300.
    .. [2] Siffer, A., Fouque, P.-A., Termier, A., & Largouet, C. (2017).
       Anomaly detection in streams with extreme value theory. *KDD*, 1067-1075.
    .. [3] Ahmad, S., Lavin, A., Purdy, S., & Agha, Z. (2017). Unsupervised
       real-time anomaly detection for streaming data. *Neurocomputing*, 262,
       134-147.
    """

    name = "metric_anomaly"

    def __init__(
        self, probation: int = 100, flat_run: int = 30, false_alarm_events: float = 1e7
    ) -> None:
        if not isinstance(probation, int) or probation < INIT:
            raise ValueError(
                f"probation must be an integer >= {INIT}, got {probation!r}; pass e.g. 100"
            )
        if not isinstance(flat_run, int) or flat_run < 3:
            raise ValueError(f"flat_run must be an integer >= 3, got {flat_run!r}; pass e.g. 30")
        if not false_alarm_events > 10:
            raise ValueError(
                f"false_alarm_events must be > 10, got {false_alarm_events!r}; pass e.g. 1e7"
            )
        self.probation = probation
        self.flat_run = flat_run
        self.false_alarm_events = false_alarm_events
        self._n = 0
        self._t = -math.inf  # event time of the newest point
        self._spacings: list[float] = []  # the last 32 positive spacings
        self._warm: list[float] = []
        self._level = self._trend = 0.0
        self._slow = 0.0  # a level of about a day's memory, the seasonal forecast's base
        self._prior = math.nan  # the level before the last confirmed shift
        self._prior_t = -math.inf  # the event time of that shift
        self._scale = self._scale2 = 0.0
        self._scale1 = 0.0  # the noise of the median seasonal forecast's errors
        self._early = 0.0  # the noise scale as a running mean over the probation
        self._n2 = 0  # errors against the seasonal reference seen
        self._tail = TailThreshold()
        self._point_tail = TailThreshold()  # of ``z_point``: a point in one forecast's noise
        self._zs: list[float] = []  # last LONG clipped scores
        # last LONG absolute scores (in noise units: a level forecast's noise
        # widens after each edge of a known season, the scores do not)
        self._abs: list[float] = []
        # last ONSET_SPAN values less the slow (seasonal) forecast
        self._values: list[float] = []
        self._base = 0.0  # the slow (seasonal) forecast of the newest point
        self._var_short = self._var_long = 1.0
        self._spread = [0.0, 0.0, 0.0]  # running mean, variance, count of the log spread
        self._same = 0.0
        self._run = 0
        self._run_p = 1.0
        self._last = math.nan
        self._flat_told = False  # the current run was told as a flat-line
        self._flat_phases = FlatPhases()  # where in its season the series sits flat
        self._pending = 0  # signed count of outliers in a row not yet reported
        self._pending_z = 0.0
        self._pending_point = 0.0  # their largest score in one forecast's noise
        self._hold = 0
        self._fired = [False, False]  # in this episode: a point alert, a persistent one
        self._season = SeasonBuckets()
        self._noisier = VarianceRise()
        self._noisier_lag = 0  # the season whose forecast errors it sees
        self._bursts = Bursts()
        self._prior_n, self._prior_stat = -(10**12), 0.0  # point count and size of that shift
        self._level_noise = LevelNoise()
        self._drift = Drift()  # a slow reference a new slope leaves for good
        self._episode_t = -math.inf  # event time of the last point in an episode
        self._unit = 1.0  # the noise at the newest point's expected level over the typical

    @classmethod
    def build(cls, **kwargs: Any) -> Self:
        for key in LEGACY_PARAMS:
            kwargs.pop(key, None)
        return super().build(**kwargs)

    # -- feeding --------------------------------------------------------------
    def update(self, values: np.ndarray) -> list[ChangeEvent]:
        x = np.asarray(values, dtype=np.float64)
        start = max(self._t, 0.0) if math.isfinite(self._t) else 0.0
        ts = start + DEFAULT_CADENCE * np.arange(1, x.shape[0] + 1)
        return self.update_at(ts, x)

    def update_at(self, ts: np.ndarray, values: np.ndarray) -> list[ChangeEvent]:
        """Consecutive points with their event times (seconds); NaN/inf values
        skipped, a missing or earlier time taken as the newest one seen."""
        x = np.asarray(values, dtype=np.float64)
        t = np.asarray(ts, dtype=np.float64)
        out: list[ChangeEvent] = []
        for i in np.flatnonzero(np.isfinite(x)).tolist():
            ti = float(t[i])
            ti = ti if math.isfinite(ti) and ti > self._t else self._t
            for kind, stat, thr, details in self._step(ti, float(x[i])):
                out.append(self._event(i, kind, stat, thr, details))
        return out

    def _event(
        self, index: int, kind: str, stat: float, thr: float, details: dict[str, Any]
    ) -> ChangeEvent:
        severity: Severity = "critical" if abs(stat) >= 2 * thr else "warning"
        return ChangeEvent(index, stat, thr, stat, severity, {"kind": kind, **details})

    # -- one point --------------------------------------------------------------
    def _step(self, t: float, x: float) -> list[tuple[str, float, float, dict[str, Any]]]:
        if self._n < INIT:
            self._season.add(t, x, x)
        out: list[tuple[str, float, float, dict[str, Any]]] = []
        # point, two persistence windows, spread, variance CUSUM
        n_checks = self.false_alarm_events / 5.0
        # shifts, trend and variance changes and gaps may alert from FIRST_ALERT
        # (their thresholds carry a short history); spikes and flat-lines
        # once the probation has taught the noise's tail and rate of repeats
        alerting = self._n >= min(self.probation, FIRST_ALERT)
        gap = self._gap(t, n_checks)
        if gap is not None and alerting:
            out.append(gap)
        flat = self._flat(x, n_checks)
        self._flat_phases.see(t, x, self._run, self.flat_run)
        if flat is not None and flat[0] == "flat_line_end":
            if self._flat_told:  # the end of a flat-line that was told
                out.append(flat)
            self._flat_told = False
        elif flat is not None:
            # (a flat run that recurs at its phase of the season is the series' own)
            expected = self._flat_phases.recurs(t, x)
            if self._n >= self.probation and not self._fired[1] and not expected:
                out.append(flat)
                self._flat_told = True
            self._fired[1] = True  # the flat-line's end is no new anomaly
            self._hold = HOLD
        self._n += 1
        if self._n <= INIT:
            self._warm.append(x)
            if self._n == INIT:
                self._start()
            return out
        out += self._judge(t, x, n_checks, alerting)
        if any(self._fired) or self._flat_told:  # (a flat-line's episode may end before it)
            self._episode_t = t
        if self._hold > 0:
            self._hold -= 1
            if self._hold == 0:
                self._fired = [False, False]
        return out

    def _start(self) -> None:
        warm = np.array(self._warm)
        self._level = self._slow = float(np.median(warm))
        spread = 1.4826 * float(np.median(np.abs(np.diff(warm)))) / math.sqrt(2.0)
        self._scale = spread or float(warm.std()) or 1e-6 * (1.0 + abs(self._level))
        self._early = self._scale
        self._drift.rebase(self._level)
        self._warm = []

    def _gap(self, t: float, n_checks: float) -> tuple[str, float, float, dict[str, Any]] | None:
        found = None
        if math.isfinite(self._t):
            dt = t - self._t
            # exponential spacings (the most irregular a steady stream is)
            # exceed c times their median with probability 2^-c
            factor = max(10.0, math.log2(n_checks))
            # (beyond c times the shortest spacing first: the median is dearer)
            if len(self._spacings) >= 8 and dt > factor * min(self._spacings):
                cadence = _median(self._spacings)
                if dt > factor * cadence:
                    details = {"gap_seconds": dt, "cadence_seconds": cadence}
                    found = ("gap", dt / cadence, factor, details)
            if dt > 0:
                _push(self._spacings, dt, 32)
        self._t = t
        return found

    def _flat(self, x: float, n_checks: float) -> tuple[str, float, float, dict[str, Any]] | None:
        """A flat-line when a run of identical values reaches the length its
        rate makes improbable; its end (``flat_line_end``, at the first value
        that differs: a change point of its own) when such a run breaks."""
        same = x == self._last
        ended = None
        if same:
            self._run += 1
        else:
            need = self._flat_need(n_checks)
            if self._run >= need and self._scale > 0:
                details = {"value": x, "flat_value": self._last, "run": self._run}
                ended = ("flat_line_end", float(self._run), float(need), details)
            self._run = 1
            self._run_p = min(max(self._same, 0.02), 0.999)
        self._same += SAME_RATE * (float(same) - self._same)
        self._last = x
        need = self._flat_need(n_checks)
        if self._run == need and self._scale > 0:
            # (the run counts the last value before it stuck: the first repeat is one later)
            details = {"value": x, "onset_points_back": self._run - 2}
            return ("flat_line", float(self._run), float(need), details)
        return ended

    def _flat_need(self, n_checks: float) -> int:
        """The shortest run of identical values that is a flat-line, at the
        rate of repeated values before the run began."""
        if self._run_p >= 1.0:  # no run has ended yet
            return self.flat_run
        return max(self.flat_run, 1 + math.ceil(math.log(n_checks) / -math.log(self._run_p)))

    def _judge(
        self, t: float, x: float, n_checks: float, alerting: bool
    ) -> list[tuple[str, float, float, dict[str, Any]]]:
        # noise below a thousandth of the level is no noise a metric carries
        # (a noiseless series: its forecast's rounding would be an anomaly)
        floor = max(1e-9 * (1.0 + abs(self._level)), RESOLUTION * abs(self._slow))
        forecast = self._level + self._trend
        err = x - forecast
        offsets = self._season.offsets(t)
        # noise scales are of the noise at the series' typical level: where
        # its noise grows with its level (counts, latency) a point's errors
        # are judged in the noise at the level expected for it
        self._level_noise.see(x)
        expected = self._slow + offsets[0] if offsets else forecast
        unit = self._unit = self._level_noise.unit(expected)
        floor /= unit
        scale = max(self._scale, floor)
        z = z_point = err / (unit * scale)
        near = err  # the error nearest zero of the forecasts in force
        self._season.add(t, x, self._slow)
        slow_err = x - self._slow - (offsets[0] if offsets else 0.0)
        clip = HUBER * unit * max(scale, self._scale2)
        self._slow += self._slow_rate() * max(-clip, min(clip, slow_err))
        if offsets:
            # with a season: unusual against each seasonal forecast (the slow
            # level plus the series' offset from it one period back)
            errs = [x - self._slow - o for o in offsets]

            if self._n2 >= 30:
                scale2 = unit * max(self._scale2, floor)
                z = errs[0] / scale2
                for e in errs[1:]:
                    z = _weaker(z, e / scale2)
                z_point = z * scale2 / (unit * max(self._scale1 or self._scale2, floor))
            near = min(errs, key=abs)
            self._scale1 = self._robust_scale(
                self._scale1 or self._scale2 or scale, _median(errs) / unit
            )
            self._scale2 = self._robust_scale(self._scale2 or scale, near / unit)
            self._n2 += 1
        # from the slope's reference plus the season's offset that fits best
        # (a season's edge may fall a little early or late)
        drift_err = x - self._drift.level - ((x - self._slow - near) if offsets else 0.0)
        # (a stuck run teaches the slope's reference nothing either: a value
        # stuck while the season moves on is a flat-line, not a new slope;
        # nor does an episode's echo a period later)
        stuck = (self._run >= 3 and self._run_p <= 0.5) or self._echo(t)
        if not stuck:
            self._drift.follow(drift_err, clip, self._slow_rate())
        limit = self._tail.threshold(n_checks, _normal_quantile(n_checks))
        z_limit = _normal_quantile(n_checks)
        # a spike or dip is told only when its score in the noise of one
        # seasonal forecast's errors (the median forecast's) is beyond that
        # score's own tail too: the weakest error's noise (``z``'s) is about
        # half of it on a smooth day, and where the forecasts agree the
        # weakest error is one forecast's, which the tail learnt from all
        # points' weakest errors let through at 4 of its standard deviations
        point_limit = widen_point_limit = self._point_tail.threshold(n_checks, z_limit)
        widen_point = widen_sums = 1.0
        if self._n < self.probation:
            # (a point's evidence in the early scale's units: ``widen_point``
            # is for a scale of known degrees of freedom)
            # a short history: the noise scale and the sums' variance are
            # estimates from few points, and a threshold on scores divided by
            # them is a Student t quantile, not a normal one; the model
            # follows what the normal one finds, an alert needs the wider one
            early = _short_history(self._n - INIT + WARM_WEIGHT, n_checks)
            widen_point = early * max(self._early, floor) / scale
            widen_sums = _short_history(OVERLAP_DF * (self._n - INIT) / SHORT, n_checks)
            widen_point_limit = widen_point * point_limit
        out: list[tuple[str, float, float, dict[str, Any]]] = []
        details = {"value": x, "expected": forecast, "period": self._period()}
        outlier = abs(z) > limit
        side = 1 if z > 0 else -1
        wait = self._bursts.wait()  # outliers in a row that may be one more burst
        if outlier and self._pending * side >= 0:
            self._pending += side
            self._pending_z = max(self._pending_z, abs(z)) * side
            self._pending_point = max(self._pending_point, abs(z_point))
        else:
            if self._pending:
                bar = max(self._bursts.bar(limit, n_checks, self._n), widen_point * limit)
                # a spike in the probation may be the noise's own tail, not yet learnt
                # (``_n`` counts this point: past the probation as ``_step`` counts it)
                bars = (bar, widen_point_limit)
                excursion = self._excursion_ended(bars, self._n > self.probation, details)
                if excursion is not None:
                    out.append(excursion)
            self._pending, self._pending_z = (side, abs(z) * side) if outlier else (0, 0.0)
            self._pending_point = abs(z_point) if outlier else 0.0
        clipped = max(-6.0, min(6.0, z))
        _push(self._zs, clipped, LONG)
        _push(self._abs, abs(z), LONG)
        self._base = self._slow + (offsets[0] if offsets else 0.0)
        _push(self._values, x - self._base, ONSET_SPAN)
        if outlier and 0 < abs(self._pending) <= wait:
            # as long as the series' own bursts last: no shift, no noise yet
            self._hold = HOLD
            return out
        if self._season.lag != self._noisier_lag:  # the errors change forecast
            self._noisier_lag = self._season.lag
            self._noisier.restart()
            self._drift.restart(self._slow)
        # (the variance CUSUM keeps the errors as they are: its slow running
        # mean follows a level's noise through the day, and errors divided by
        # the level's unit made it fire on clean Poisson counts)
        noisier = self._noisier.add(near, scale * unit, n_checks)
        drift_scale = max(self._scale2, floor) if offsets and self._n2 >= 30 else scale
        drift_bar = z_limit + (max(z_limit, limit) - z_limit) / math.sqrt(DRIFT_WINDOW)
        # (its variance is learnt from a few dozen windows: a Student t bar)
        drift_bar *= _short_history(self._drift.degrees(), n_checks)
        drift = None if stuck else self._drift.add(drift_err / unit, drift_scale, drift_bar)
        # the sums are judged above the normal quantile where the scores' own
        # tail raised the point threshold: the scores of a heavy-tailed or
        # seasonal series follow each other, and their sums keep some of the tail
        # a step or a wider spread before a day is seen may be the day itself
        settled = alerting and self._day_seen(t)
        found, strong = self._persistent(z_limit, max(z_limit, limit), widen_sums)
        slope = not found and drift is not None and settled and self._slope_told()
        if slope:
            # a slope the forecast learnt; judged from the drift's fifth
            # window: past any probation
            found = strong = True
        run = abs(self._pending) >= SPIKE_RUN
        if found or run:
            sure = strong or (run and abs(self._pending_z) > widen_point * limit)
            early = settled and not sure and not self._fired[1] and self._n < self.probation
            # (once the sums' variance has learnt from 10 sums: before, the
            # first sums of dependent noise are beyond a variance of 1, and
            # a wait would leave it there until the 60-point sum confirmed it)
            if early and self._n >= INIT + 2 * SHORT:
                # a short history's wider bar not beaten yet: wait for more
                # evidence rather than restart the baseline in silence (which
                # would spend the episode: a series of a few dozen points has
                # no other); the baseline learns nothing meanwhile
                return out
            kind, stat, back, weekly, onset_back = self._rebaseline()
            if slope and kind == "trend_change":
                onset_back = self._slope_onset()
            if settled and sure and not self._fired[1] and not back and not weekly:
                out.append((kind, stat, z_limit, {**details, "onset_points_back": onset_back}))
            self._fired[1] = True
            self._hold = HOLD
            return out
        if noisier and self._one_sided(2 * SHORT):
            # larger errors all on one side: a shift or a ramp, not more noise
            kind, stat, _, weekly, onset_back = self._rebaseline()
            if settled and not self._fired[1] and not weekly:
                out.append((kind, stat, z_limit, {**details, "onset_points_back": onset_back}))
            self._fired[1] = True
            self._hold = HOLD
            return out
        scores = self._abs  # (a spread change starts a new list)
        spread = self._spread_change(z_limit)
        if spread is None and noisier:
            spread = self._noisier_rebaseline()
        if spread is not None:
            if settled and not self._fired[1]:
                onset_back = _variance_onset(scores)
                details = {**details, "onset_points_back": onset_back}
                out.append(("variance_change", spread, z_limit, details))
            self._fired[1] = True
            self._hold = HOLD
            return out
        if outlier:
            self._hold = HOLD
            return out
        if self._run < 3 or self._run_p > 0.5:  # a stuck run teaches nothing
            self._learn(err, abs(z), scale, unit)
            self._point_tail.learn(abs(z_point))
            if x != 0.0:
                # (a zero's error is the expected level itself: counts that
                # are mostly zeros would show noise growing with the level
                # as it wanders, and judge their next 2 against none)
                self._level_noise.learn(expected, near, unit * scale)
        return out

    def _excursion_ended(
        self, bars: tuple[float, float], alerting: bool, details: dict[str, Any]
    ) -> tuple[str, float, float, dict[str, Any]] | None:
        """A run of outliers came back before it was confirmed as a shift: a
        spike or dip when it was short, the scores quiet before it and its
        peak beyond ``bars[0]`` (what the series' own excursions reach) and,
        in the noise of one seasonal forecast, beyond ``bars[1]``; kept as
        one of them, and, in a series that makes excursions, its scores taken
        out of the window sums (it came back: no persistent change)."""
        run = abs(self._pending)
        if self._bursts.known():  # a series that makes excursions: not this one's sums
            self._zs[-run:] = [0.0] * min(run, len(self._zs))
        if self._n - run >= self.probation:
            # one per episode (a noisier stretch makes many), none while the
            # model learns its noise
            self._bursts.add(self._n - run, self._pending_z, run)
        found = None
        short = run < SPIKE_RUN and not any(self._fired)
        beyond = abs(self._pending_z) > bars[0] and self._pending_point > bars[1]
        if short and self._calm() and beyond:
            kind = "spike" if self._pending > 0 else "dip"
            if alerting:
                found = (kind, self._pending_z, bars[0], details)
            self._fired[0] = True
            self._hold = HOLD
        return found

    def _day_seen(self, t: float) -> bool:
        """Whether a level or spread change may alert: a day of event time has
        passed since the first point, or a day spans more than
        :data:`SEASON_POINTS` points at the series' cadence (a 5-second series
        is not held for 17,280 points) or they have come anyway."""
        if self._n >= SEASON_POINTS or t - self._season.first * BUCKET_SECONDS >= SEASON_SECONDS:
            return True
        cadence = self._cadence()
        return cadence * SEASON_POINTS < SEASON_SECONDS

    def _noisier_rebaseline(self) -> float:
        """After a confirmed variance rise: the noise scales follow the recent
        errors; the statistic is the rise's factor."""
        recent = [abs(v) for v in self._zs[-SHORT * 2 :]]
        factor = max(_median(recent) / 0.6745, 1.0) if recent else 1.0
        self._scale *= factor
        self._scale2 *= factor
        self._scale1 *= factor
        self._noisier.reset()
        return factor

    def _calm(self) -> bool:
        """Whether the last scores were quiet (an outlier there is a spike)."""
        # (of the scores as they came: an excursion's are taken out of the sums only)
        return not self._abs or _median(self._abs[-SHORT:]) < CALM

    def _cadence(self) -> float:
        """The series' usual spacing of points, in seconds (the median of the last few)."""
        return _median(self._spacings) if self._spacings else DEFAULT_CADENCE

    def _slow_rate(self) -> float:
        """The slow level's gain: a memory of about a day of points, so that it
        follows level changes, not the daily season."""
        cadence = self._cadence()
        return min(max(cadence / 86400.0, 0.0005), 0.05)

    def _robust_scale(self, scale: float, err: float, rate: float = SCALE_RATE) -> float:
        """The scale after one more error (Huber-type: errors clipped at 3 scales)."""
        sq = min(err * err, 9.0 * scale * scale) / CLIP_MEAN
        return math.sqrt(scale * scale + rate * (sq - scale * scale))

    def _learn(self, err: float, score: float, scale: float, unit: float) -> None:
        psi = max(-HUBER * scale * unit, min(HUBER * scale * unit, err))
        self._level += self._trend + ALPHA * psi
        self._trend += ALPHA * TREND_GAIN * psi
        err /= unit  # the scales are of the noise at the typical level
        self._scale = self._robust_scale(scale, err)
        if self._n < self.probation:
            # a running mean of the clipped squares, the warm-up's estimate
            # weighing WARM_WEIGHT points: its degrees of freedom are known
            # (the model's own scale, exponentially weighted from the warm-up,
            # stays about as uncertain as a median of 9 differences)
            rate = 1.0 / (self._n - INIT + WARM_WEIGHT)
            self._early = self._robust_scale(self._early, err, rate)
        self._tail.learn(score)

    def _window_sums(self) -> tuple[float, float]:
        short = sum(self._zs[-SHORT:]) / math.sqrt(SHORT)
        long = sum(self._zs) / math.sqrt(LONG) if len(self._zs) == LONG else 0.0
        return short, long

    def _persistent(self, z_limit: float, limit: float, widen: float) -> tuple[bool, bool]:
        """Whether the errors of the last 10 or 60 points sum beyond what their
        own running variance allows (and are consistently on one side): in
        their standard deviations, beyond ``z_limit`` plus the excess of the
        point threshold ``limit`` over it divided by the square root of the
        window (a sum of independent heavy-tailed scores loses its tail as
        the window grows, of dependent ones less; dividing by the window's
        length instead doubled false alarms on clean weekly series). Also
        whether they sum beyond that bar times ``widen`` (a short history)."""
        if len(self._zs) < SHORT:
            return False, False
        short, long = self._window_sums()
        found = strong = False
        for size, total, var in ((SHORT, short, self._var_short), (LONG, long, self._var_long)):
            bar = z_limit + (limit - z_limit) / math.sqrt(size)
            if abs(total) > bar * math.sqrt(var) and self._one_sided(size):
                # consistently on one side: a noisier stretch sums high too
                found = True
                strong = strong or abs(total) > widen * bar * math.sqrt(var)
        if not found:
            rate = max(SUM_RATE, 1.0 / (self._n - INIT))
            self._var_short += rate * (short * short - self._var_short)
            if len(self._zs) == LONG:
                self._var_long += rate * (long * long - self._var_long)
        return found, strong

    def _one_sided(self, size: int) -> bool:
        """Whether the last ``size`` scores keep to one side of zero (a shift
        or a ramp), not merely spread wider (a noisier stretch)."""
        recent = np.array(self._zs[-size:])
        if recent.shape[0] < 3:
            return False
        sd = float(recent.std(ddof=1)) or 1e-9
        return abs(float(recent.mean())) * math.sqrt(recent.shape[0]) / sd > 4.0

    def _rebaseline(self) -> tuple[str, float, bool, bool, int]:
        """Name a confirmed shift from a fit of the recent values; restart the
        baseline from that fit. Also whether it went back to the level before
        the previous shift (the end of an episode, or a season not yet known,
        as a square wave's edges: no new anomaly), whether it may be a
        weekly season not yet seen (:meth:`_weekly_step`), and how many
        points before the newest the fitted change starts (the step's first
        point past the split of least squares, or the ramp's past its bend:
        where change-point benchmarks look for it; the alert itself is
        raised at the point where the evidence was enough)."""
        # deviations from the slow (seasonal) forecast: a shift is a step in
        # them, a trend change a ramp, whatever the season does meanwhile
        devs = np.array(self._values[-LONG:])
        base = self._base
        offset = base - self._slow  # the season's, where one is known
        stat = self._pending_z or sum(self._zs[-SHORT:]) / math.sqrt(SHORT)
        if devs.shape[0] >= 8:
            is_line, level, _, start = _ramp_beats_step(devs)
            onset_back = devs.shape[0] - 1 - start
        else:
            is_line, level = False, float(np.median(devs[-SPIKE_RUN:]))
            onset_back = max(abs(self._pending), 1) - 1
        self._noisier.reset()
        step = level  # in deviations from the seasonal forecast, about 0 before the step
        level += base
        if self._season.lag:
            # the seasonal forecast follows a confirmed shift; before a season
            # is found the slow level stays slow, so that the offsets it gives
            # hold a square wave's edges when the season is found
            self._slow += level - (self._level + self._trend)
        before = self._level + self._trend
        # (within a day of that shift: a level left days ago and met again
        # is a new shift, not the end of an episode or a square wave's edge)
        recent = self._t - self._prior_t <= RETURN_SECONDS
        near = abs(level - self._prior) < RETURN * self._unit * max(self._scale, 1e-300)
        back = not is_line and recent and near
        # a step that may be the week's season is no new anomaly either
        weekly = not is_line and self._weekly_step(step)
        if back and self._n - self._prior_n <= MAX_WAIT and self._prior_n >= self.probation:
            # up and back within a few points: one of the series' own bursts
            self._bursts.add(self._prior_n, self._prior_stat, self._n - self._prior_n)
        self._prior, self._prior_t = before, self._t
        self._prior_n, self._prior_stat = self._n, stat
        self._level = level  # the slope is left to the forecast: a fitted one overshoots
        self._drift.rebase(level - offset)
        self._zs, self._abs = [], []
        self._pending, self._pending_z, self._pending_point = 0, 0.0, 0.0
        kind = "trend_change" if is_line else "level_shift"
        return kind, stat, back, weekly, onset_back

    def _slope_told(self) -> bool:
        """Whether a new slope the drift found may be told: always where no
        season is known; in a seasonal series where a ramp fits the last
        values better than a step (a step in the residue may be a week not
        yet seen)."""
        return not self._season.lag or _ramp_beats_step(np.array(self._values[-LONG:]))[0]

    def _slope_onset(self) -> int:
        """How many points back a change the drift found started: the bend
        of a level then a ramp, or the split of a step, whichever fits the
        last :data:`ONSET_SPAN` values better (it is found a hundred points
        or more after its start, before the last 60 values the shift's fit
        sees: a gentle ramp's residue, or a step the sums missed, whose last
        60 values rise as the seasonal forecasts catch up with it)."""
        values = np.array(self._values)
        return int(values.shape[0]) - 1 - _ramp_beats_step(values)[3]

    def _echo(self, t: float) -> bool:
        """Whether an episode was in force within a period of event time in a
        seasonal series: the season's buckets then hold the episode's
        points, and their echo a period later is one-sided too (a
        flat-line's, a spike's), as a ramp's residue is."""
        if not self._season.lag or self._episode_t == -math.inf:
            return False
        # (the echo lasts a period and the twin's neighbouring bucket after
        # the episode, and then fills the drift's window)
        cadence = self._cadence()
        echo = (self._season.lag + 1) * BUCKET_SECONDS + DRIFT_WINDOW * cadence
        return t - self._episode_t <= echo

    def _weekly_step(self, step: float) -> bool:
        """Whether a step may be the week's own season, not yet seen: the
        series follows a day, a week of event time has not passed since its
        first point, and the step is within the day's own swing (a
        weekday/weekend step is; a shift beyond it alerts)."""
        if self._season.lag != DAY_BUCKETS:
            return False
        if self._t - self._season.first * BUCKET_SECONDS >= WEEK_SECONDS:
            return False
        return abs(step) < self._season.swing()

    def _spread_change(self, z_limit: float) -> float | None:
        """How far the log median error of the last 60 points rose above its
        own running mean, in its running standard deviations (never below the
        sampling error of a log median of 60), when beyond ``z_limit``. A rise
        re-baselines the noise scale; a fall is left to flat-line detection.
        Judged every ``SHORT`` points (a median of 60 moves little in fewer;
        the variance CUSUM answers within the points between)."""
        if len(self._abs) < LONG or self._n % SHORT:
            return None
        # (scores of 0 where seasonal forecasts disagree in sign: a median of
        # them is floored, or its log would run to -690 and a rise overflow)
        spread = math.log(max(_median(self._abs), MIN_SPREAD))
        mean, var, count = self._spread
        if count >= 3:
            d = (spread - mean) / max(math.sqrt(var), 1.166 / math.sqrt(LONG))
            if d > z_limit:
                self._scale *= math.exp(spread - mean)
                self._scale2 *= math.exp(spread - mean)
                self._spread = [spread, var, count]
                self._abs = []
                return d
        if self._n % LONG == 0:  # learn from disjoint windows: overlapping ones agree
            rate = max(SPREAD_RATE, 1.0 / (count + 1.0))
            delta = spread - mean if count else 0.0
            mean = spread if not count else mean + rate * delta
            var = (1.0 - rate) * (var + rate * delta * delta)
            self._spread = [mean, var, count + 1.0]
        return None

    def _period(self) -> str:
        return {0: "none", 48: "day", 336: "week"}.get(self._season.lag, "none")

    # -- state --------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {
            "params": self.params(),
            "n": self._n,
            "t": encode_float(self._t),
            "spacings": self._spacings,
            "warm": self._warm,
            "model": [self._level, self._trend, self._slow, self._scale, self._scale2],
            "prior": encode_float(self._prior),
            "prior_t": encode_float(self._prior_t),
            "n2": self._n2,
            "tail": self._tail.dump(),
            "zs": self._zs,
            "abs": self._abs,
            "abs_unit": "score",
            "values": self._values,
            "base": self._base,
            "sums": [self._var_short, self._var_long],
            "spread": self._spread,
            "repeats": [
                self._same,
                self._run,
                self._run_p,
                encode_float(self._last),
                self._flat_told,
            ],
            "pending": [self._pending, self._pending_z],
            "episode": [self._hold, *self._fired],
            "season": self._season.dump(),
            "noisier": [self._noisier.dump(), self._noisier_lag],
            "bursts": [self._bursts.dump(), self._prior_n, self._prior_stat],
            "early_scale": self._early,
            "point": [self._scale1, self._point_tail.dump(), self._pending_point],
            "level_noise": self._level_noise.dump(),
            "drift": self._drift.dump(),
            "episode_t": encode_float(self._episode_t),
            "flat_phases": self._flat_phases.dump(),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> MetricAnomaly:
        det = cls.build(**state["params"])
        if "past" in state:
            # A state of the windowed detector this one replaced: its window of
            # values carries no event times, so the series restarts its probation.
            return det
        det._n, det._t = int(state["n"]), decode_float(state["t"])
        det._spacings = [float(v) for v in state["spacings"]]
        det._warm = [float(v) for v in state["warm"]]
        level, trend, slow, scale, scale2 = (float(v) for v in state["model"])
        det._level, det._trend, det._slow, det._scale, det._scale2 = (
            level,
            trend,
            slow,
            scale,
            scale2,
        )
        det._prior = decode_float(state["prior"])
        # states saved before returns expired: the last shift counts as recent
        det._prior_t = decode_float(state.get("prior_t", encode_float(det._t)))
        det._n2 = int(state["n2"])
        det._tail = TailThreshold.load(state["tail"])
        det._zs = [float(v) for v in state["zs"]]
        det._abs = [float(v) for v in state["abs"]]
        det._values = [float(v) for v in state["values"]]
        det._base = float(state["base"])
        det._var_short, det._var_long = (float(v) for v in state["sums"])
        det._spread = [float(v) for v in state["spread"]]
        if state.get("abs_unit") != "score" and det._scale > 0:
            # saved when the spread was of errors (scores times the level
            # forecast's noise): the same spread in scores
            det._abs = [v / det._scale for v in det._abs]
            if det._spread[2]:  # a learnt mean
                det._spread[0] -= math.log(det._scale)
        same, run, run_p, last = state["repeats"][:4]
        # (a fifth, whether the run was told, is absent from states saved before ends were)
        det._flat_told = bool(state["repeats"][4]) if len(state["repeats"]) > 4 else False
        det._same, det._run, det._run_p = float(same), int(run), float(run_p)
        det._last = decode_float(last)
        det._pending, det._pending_z = int(state["pending"][0]), float(state["pending"][1])
        hold, point_fired, shift_fired = state["episode"]
        det._hold, det._fired = int(hold), [bool(point_fired), bool(shift_fired)]
        det._season = SeasonBuckets.load(state["season"])
        if "noisier" in state:  # absent from states saved before the variance CUSUM
            det._noisier = VarianceRise.load(state["noisier"][0])
            det._noisier_lag = int(state["noisier"][1])
        # absent from states saved before early alerts: the model's scale
        det._early = float(state.get("early_scale", det._scale))
        if "point" in state:
            det._scale1 = float(state["point"][0])
            det._point_tail = TailThreshold.load(state["point"][1])
            det._pending_point = float(state["point"][2])
        else:
            # saved before a point was judged in one forecast's noise too:
            # judged as then (in the weakest error's noise, by the sums' tail)
            # until it learns its own
            det._point_tail = TailThreshold.load(state["tail"])
            det._pending_point = abs(det._pending_z)
        if "bursts" in state:  # absent from states saved before excursions were kept
            det._bursts = Bursts.load(state["bursts"][0])
            det._prior_n, det._prior_stat = int(state["bursts"][1]), float(state["bursts"][2])
        if "level_noise" in state:  # absent from states saved before noise followed the level
            det._level_noise = LevelNoise.load(state["level_noise"])
        # absent from states saved before slopes were watched: it starts from the slow level
        det._drift = Drift.load(state["drift"]) if "drift" in state else Drift(det._slow)
        # absent from states saved before slopes were told with a season: none known
        det._episode_t = decode_float(state.get("episode_t", encode_float(-math.inf)))
        if "flat_phases" in state:  # absent from states saved before flat runs recurred
            det._flat_phases = FlatPhases.load(state["flat_phases"])
        return det
