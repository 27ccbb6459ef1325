"""The labelled corpus of scripts/bench_metrics.py, generated (seeded).

Two parts. The synthetic setups: series at cadences from 10 seconds to an
hour with daily and weekly seasonality, noise levels and scales from 1e-2 to
1e4, trend, irregular and jittered timestamps with missing points, and
injected anomalies of every kind (spike, dip, level_shift, trend_change,
variance_change, flat_line, gap), plus clean series (sine, square wave,
Poisson counts, bursty tweet-like counts, log-normal latency, CPU with a
half-week step or a calendar weekday/weekend pattern, a trend, white noise).

Then families that resemble operations data, each with labels where an
operator would call an anomaly and none on what is normal for it: short
change-point series (60 to 700 points, hourly to monthly, a change in the
first third), cloud CPU with normal bursts, overdispersed tweet volumes with
normal bursts, sparse hourly ad prices with heavy tails, and a slowly
drifting machine temperature with a failure. None of them is taken from a
public corpus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DAY = 86400.0
KINDS = ("spike", "dip", "level_shift", "trend_change", "variance_change", "flat_line", "gap")
T0 = 1.7e9


@dataclass
class Series:
    name: str
    ts: np.ndarray
    values: np.ndarray
    onsets: list[float] = field(default_factory=list)  # event times of true anomalies
    kinds: list[str] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)  # event times where an anomaly stops
    family: str = "synthetic"  # which family of the corpus it belongs to


def base_series(rng: np.random.Generator, shape: str, n: int, cadence: float) -> Series:
    """A clean series of ``shape`` with ``n`` points ``cadence`` seconds apart."""
    ts = T0 + cadence * np.arange(n, dtype=np.float64)
    day = 2 * np.pi * (ts - T0) / DAY
    week = 2 * np.pi * (ts - T0) / (7 * DAY)
    scale = 10 ** rng.uniform(-2, 4)
    if shape == "sine":
        v = 100 + 30 * np.sin(day) + rng.normal(0, 3, n)
    elif shape == "square":
        v = 100 + 30 * np.sign(np.sin(day)) + rng.normal(0, 3, n)
    elif shape == "poisson":
        v = rng.poisson(40 + 30 * np.sin(day)).astype(float)
    elif shape == "tweets":  # bursty counts: a gamma-mixed Poisson with a daily cycle
        mean = 20 * (1.5 + np.sin(day)) * rng.gamma(4, 0.25, n)
        v = rng.poisson(mean).astype(float)
    elif shape == "latency":
        v = (80 + 30 * np.sin(day)) * rng.lognormal(0, 0.15, n)
    elif shape == "weekly":  # CPU: a weekday/weekend pattern over the daily one
        v = 50 + 15 * np.sin(day) + 10 * np.sign(np.sin(week)) + rng.normal(0, 2, n)
    elif shape == "weekday":  # five weekdays, then a weekend lower, from midnight (UTC)
        weekend = np.isin(np.floor(ts / DAY) % 7, (2, 3))  # 1970-01-01 was a Thursday
        v = 50 + 15 * np.sin(day) - 8 * weekend + rng.normal(0, 2, n)
    elif shape == "trend":
        v = 100 + 20 * np.sin(day) + np.linspace(0, 40, n) + rng.normal(0, 3, n)
    else:  # "noise": no season at all
        v = 100 + rng.normal(0, 5, n)
    return Series(shape, ts, v * scale)


def irregular(rng: np.random.Generator, s: Series, cadence: float) -> Series:
    """Jittered timestamps (±40% of the cadence) and 10% of the points missing."""
    keep = rng.random(s.ts.shape[0]) > 0.1
    ts = s.ts + rng.uniform(-0.4, 0.4, s.ts.shape[0]) * cadence
    return Series(s.name + "+irregular", ts[keep], s.values[keep])


def inject(rng: np.random.Generator, s: Series, kind: str, at: int) -> None:
    v, n = s.values, s.values.shape[0]
    noise = float(np.median(np.abs(np.diff(v)))) / 0.95 + 1e-12
    level = float(np.median(np.abs(v))) + noise
    if kind == "spike":
        v[at] += max(12 * noise, 0.8 * level)
    elif kind == "dip":
        v[at] -= max(12 * noise, 0.6 * level)
    elif kind == "level_shift":
        v[at:] += max(6 * noise, 0.4 * level) * rng.choice([-1, 1])
    elif kind == "trend_change":
        ramp = np.arange(n - at) * max(6 * noise, 0.4 * level) / 200
        v[at:] += ramp
    elif kind == "variance_change":
        end = min(n, at + 600)
        v[at:end] += rng.normal(0, 5 * noise, end - at)
        if end < n:
            s.ends.append(float(s.ts[end]))
    elif kind == "flat_line":
        end = min(n, at + 240)
        v[at:end] = v[at - 1]
        if end < n:
            s.ends.append(float(s.ts[end]))
    s.onsets.append(float(s.ts[at]))
    s.kinds.append(kind)


def make_corpus(seed: int) -> tuple[list[Series], list[Series]]:
    """(clean series, series with anomalies): the synthetic setups, then the
    real-looking families."""
    rng = np.random.default_rng(seed)
    setups = [  # shape, cadence (s), points
        ("sine", 60.0, 14_400),
        ("square", 60.0, 14_400),
        ("poisson", 300.0, 4032),
        ("tweets", 300.0, 4032),
        ("latency", 10.0, 25_920),
        ("weekly", 3600.0, 1008),
        ("weekly", 600.0, 6048),
        ("weekday", 600.0, 4032),
        ("trend", 60.0, 8640),
        ("noise", 60.0, 3000),
        ("noise", 5.0, 300),
    ]
    clean, dirty = [], []
    for shape, cadence, n in setups:
        clean.append(base_series(rng, shape, n, cadence))
        clean.append(irregular(rng, base_series(rng, shape, n, cadence), cadence))
        for kind in KINDS:
            s = base_series(rng, shape, n, cadence)
            positions = sorted(rng.choice(np.arange(int(0.4 * n), n - 60), 2, replace=False))
            if kind == "gap":
                s = with_gaps(s, [int(p) for p in positions], cadence)
            else:
                for p in positions:
                    inject(rng, s, kind, int(p))
            s.name = f"{shape}@{cadence:g}s:{kind}"
            dirty.append(s)
    more_clean, more_dirty = real_looking(seed)
    return clean + more_clean, dirty + more_dirty


def with_gaps(s: Series, positions: list[int], cadence: float) -> Series:
    """The series with a pause of 60 cadences before each position (points dropped)."""
    keep = np.ones(s.ts.shape[0], dtype=bool)
    gap = 60
    onsets = []
    for p in positions:
        keep[max(p - gap, 0) : p] = False
        onsets.append(float(s.ts[p]))
    out = Series(s.name, s.ts[keep], s.values[keep], onsets, ["gap"] * len(onsets))
    return out


def _ar_noise(
    rng: np.random.Generator, n: int, sd: float, phi: float, df: float = 0.0
) -> np.ndarray:
    """AR(1) noise of marginal standard deviation ``sd`` (Student-t innovations
    of ``df`` degrees of freedom where ``df`` > 0: heavier tails)."""
    shocks = rng.standard_t(df, n) * math.sqrt((df - 2) / df) if df > 2 else rng.normal(0, 1, n)
    out = np.empty(n)
    prev = 0.0
    gain = math.sqrt(1 - phi * phi)
    for i in range(n):
        prev = phi * prev + gain * shocks[i]
        out[i] = prev
    return sd * out


def _jittered(
    rng: np.random.Generator, ts: np.ndarray, cadence: float, missing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which points to keep (a share ``missing`` dropped) and the times jittered by ±30%."""
    return ts + rng.uniform(-0.3, 0.3, ts.shape[0]) * cadence, rng.random(ts.shape[0]) >= missing


SHORT_CADENCES = (3600.0, DAY, 7 * DAY, 30.4 * DAY)  # hourly, daily, weekly, monthly
SHORT_KINDS = ("level_shift", "level_shift", "trend_change", "variance_change")


def short_change_series(rng: np.random.Generator, index: int, changes: bool) -> Series:
    """A short series (60 to 700 points, hourly to monthly, jittered, 5% of
    points missing) of a level with AR(1), heavy-tailed noise and sometimes a
    gentle trend: with ``changes``, a change (a level shift of 4 to 8 noise
    standard deviations, a new slope, or a noise 3 to 4 times wider) in the
    first third of the series but after its 15th point, and in half of them
    a second one later."""
    n = int(rng.integers(60, 701))
    cadence = float(rng.choice(SHORT_CADENCES))
    level = 10 ** rng.uniform(0, 3)
    sd = level * rng.uniform(0.01, 0.08)
    v = level + _ar_noise(rng, n, sd, rng.uniform(0.0, 0.6), df=5.0)
    if rng.random() < 0.3:
        v += np.arange(n) * sd * rng.uniform(-0.01, 0.01)
    s = Series("", T0 + cadence * np.arange(n, dtype=np.float64), v, family="short_change")
    if changes:
        first = int(rng.integers(15, max(n // 3, 16)))
        at = [first]
        if rng.random() < 0.5 and n - first > 80:
            at.append(int(rng.integers(first + 40, n - 20)))
        for p in at:
            kind = str(
                rng.choice(["level_shift", "level_shift", "trend_change", "variance_change"])
            )
            if kind == "level_shift":
                v[p:] += sd * rng.uniform(4, 8) * rng.choice([-1, 1])
            elif kind == "trend_change":  # 6 to 12 noise sds over the next 40 points
                v[p:] += np.arange(n - p) * sd * rng.uniform(0.15, 0.3) * rng.choice([-1, 1])
            else:
                v[p:] = v[p:] + _ar_noise(rng, n - p, sd * rng.uniform(2.8, 3.8), 0.0)
            s.onsets.append(float(s.ts[p]))
            s.kinds.append(kind)
    ts, keep = _jittered(rng, s.ts, cadence, 0.05)
    keep[0] = True
    s.ts, s.values = ts[keep], v[keep]
    s.name = f"short{index}@{_cadence_name(cadence)}:{'+'.join(s.kinds) or 'none'}"
    return s


def _cadence_name(cadence: float) -> str:
    return {3600.0: "1h", DAY: "1d", 7 * DAY: "1w"}.get(cadence, "1mo")


def cloud_cpu(rng: np.random.Generator, kind: str, jitter: bool) -> Series:
    """CPU % of a cloud instance at 5 minutes over 14 days: a level with AR(1)
    noise, a faint day, and bursts that are normal (every ~300 points, 1 to 6
    points, 15 to 50 points higher: a cron job, a deploy, a GC storm).
    ``kind`` "level_shift": a sustained rise of 25 to 40 points from some
    time after 40% of the series to its end; "outage": the instance idles
    near 0 for 150 points, then comes back (a level shift and its end)."""
    n, cadence = 4032, 300.0
    ts = T0 + cadence * np.arange(n, dtype=np.float64)
    v = rng.uniform(10, 40) + 3 * np.sin(2 * np.pi * (ts - T0) / DAY)
    v = v + _ar_noise(rng, n, rng.uniform(1.0, 3.0), 0.5)
    i = 0
    while True:
        i += int(rng.exponential(300)) + 1
        if i >= n:
            break
        width = int(rng.geometric(1 / 3))
        v[i : i + width] += rng.uniform(15, 50)
    s = Series(f"cloud_cpu:{kind}", ts, v, family="cloud_cpu")
    if kind != "clean":
        at = int(rng.integers(int(0.4 * n), int(0.85 * n)))
        if kind == "level_shift":
            v[at:] += rng.uniform(25, 40)
        else:
            v[at : at + 150] = 0.5 + np.abs(rng.normal(0, 0.3, 150))
            s.ends.append(float(ts[at + 150]))
        s.onsets.append(float(ts[at]))
        s.kinds.append("level_shift")
    s.values = np.clip(v, 0.0, 100.0)
    if jitter:
        ts2, keep = _jittered(rng, ts, cadence, 0.05)
        s.ts, s.values, s.name = ts2[keep], s.values[keep], s.name + "+irregular"
    return s


def tweet_volume(rng: np.random.Generator, anomalies: int, jitter: bool) -> Series:
    """Mentions per 5 minutes over 28 days: a daily cycle and weekdays busier,
    gamma-mixed Poisson counts (overdispersed), and normal bursts (every ~400
    points, 1 to 12 points, the mean 1.5 to 4 times higher, decaying). Each
    anomaly: a news burst, the mean 8 to 15 times higher for 2 to 6 points."""
    n, cadence = 8064, 300.0
    ts = T0 + cadence * np.arange(n, dtype=np.float64)
    day, week = 2 * np.pi * (ts - T0) / DAY, np.floor((ts - T0) / DAY) % 7
    mean = rng.uniform(5, 80) * (1.3 + np.sin(day)) * np.where(week >= 5, 0.7, 1.0)
    boost = np.ones(n)
    i = 0
    while True:
        i += int(rng.exponential(400)) + 1
        if i >= n:
            break
        width = int(rng.integers(1, 13))
        boost[i : i + width] *= 1 + rng.uniform(0.5, 3.0) * 0.7 ** np.arange(min(width, n - i))
    s = Series(f"tweets:{anomalies}", ts, np.zeros(n), family="tweets")
    for at in sorted(rng.choice(np.arange(int(0.3 * n), n - 50), anomalies, replace=False)):
        width = int(rng.integers(2, 7))
        boost[at : at + width] *= rng.uniform(8, 15) * 0.8 ** np.arange(width)
        s.onsets.append(float(ts[at]))
        s.kinds.append("spike")
    s.values = rng.poisson(mean * boost * rng.gamma(3.0, 1 / 3.0, n)).astype(float)
    if jitter:
        ts2, keep = _jittered(rng, ts, cadence, 0.05)
        s.ts, s.values, s.name = ts2[keep], s.values[keep], s.name + "+irregular"
    return s


def ad_price(rng: np.random.Generator, kind: str) -> Series:
    """An hourly price (cost per click) over 62 days with 25% of hours
    missing (no auction), jittered: a slowly wandering log level, a faint
    day and log-normal noise with heavy tails (one point in 50 off by a
    factor up to 2.5, normal for an auction). ``kind`` "level_shift": the
    price 2 to 3 times higher or lower from some point on; "spike": two
    single prices 6 to 10 times the level."""
    n, cadence = 1488, 3600.0
    ts = T0 + cadence * np.arange(n, dtype=np.float64)
    log_level = math.log(rng.uniform(0.05, 5.0)) + np.cumsum(rng.normal(0, 0.005, n))
    log_v = log_level + 0.1 * np.sin(2 * np.pi * (ts - T0) / DAY) + rng.normal(0, 0.12, n)
    odd = rng.random(n) < 0.02
    log_v[odd] += rng.normal(0, 0.45, int(odd.sum()))
    s = Series(f"ad_price:{kind}", ts, np.zeros(n), family="ad_price")
    if kind == "level_shift":
        at = int(rng.integers(int(0.4 * n), int(0.85 * n)))
        log_v[at:] += math.log(rng.uniform(2, 3)) * rng.choice([-1, 1])
        s.onsets.append(float(ts[at]))
        s.kinds.append("level_shift")
    elif kind == "spike":
        for at in sorted(rng.choice(np.arange(int(0.3 * n), n - 50), 2, replace=False)):
            log_v[at] += math.log(rng.uniform(6, 10))
            s.onsets.append(float(ts[at]))
            s.kinds.append("spike")
    ts2, keep = _jittered(rng, ts, cadence, 0.25)
    for t in s.onsets:  # the anomaly's own point is kept
        keep[int(np.searchsorted(ts, t))] = True
    s.onsets = [float(ts2[int(np.searchsorted(ts, t))]) for t in s.onsets]
    s.ts, s.values = ts2[keep], np.exp(log_v)[keep]
    return s


def machine_temperature(rng: np.random.Generator, failure: bool, jitter: bool) -> Series:
    """A machine's temperature at 5 minutes over 28 days: a slowly drifting
    level (a smoothed random walk), a faint day, sensor noise. With
    ``failure``: from some point after 50% of the series the temperature
    slides 8 to 12 degrees over 300 points (the onset: a trend change),
    then crashes to about a third of its level (a level shift) for 200
    points, and is repaired (the end of that shift)."""
    n, cadence = 8064, 300.0
    ts = T0 + cadence * np.arange(n, dtype=np.float64)
    walk = np.cumsum(rng.normal(0, 0.05, n))
    drift = np.convolve(walk, np.ones(288) / 288, mode="same")
    v = 85 + drift + 1.0 * np.sin(2 * np.pi * (ts - T0) / DAY) + rng.normal(0, 0.5, n)
    s = Series("temperature:" + ("failure" if failure else "clean"), ts, v, family="temperature")
    if failure:
        at = int(rng.integers(int(0.5 * n), int(0.8 * n)))
        slide = rng.uniform(8, 12) * np.arange(300) / 300
        v[at : at + 300] -= slide
        crash = at + 300
        v[crash : crash + 200] = 30 + rng.normal(0, 2.0, 200)
        s.onsets += [float(ts[at]), float(ts[crash])]
        s.kinds += ["trend_change", "level_shift"]
        s.ends.append(float(ts[crash + 200]))
    if jitter:
        ts2, keep = _jittered(rng, ts, cadence, 0.05)
        s.ts, s.values, s.name = ts2[keep], v[keep], s.name + "+irregular"
    return s


def real_looking(seed: int) -> tuple[list[Series], list[Series]]:
    """(clean, with anomalies) series of the families that resemble operations
    data (short change-point series, cloud CPU, tweet volumes, ad prices,
    machine temperature); their own generator, so the synthetic corpus above
    is the same with or without them."""
    rng = np.random.default_rng(seed + 1000)
    clean, dirty = [], []
    for i in range(30):
        dirty.append(short_change_series(rng, i, changes=True))
    for i in range(30, 36):
        clean.append(short_change_series(rng, i, changes=False))
    for jitter in (False, True):
        clean.append(cloud_cpu(rng, "clean", jitter))
        dirty += [cloud_cpu(rng, "level_shift", jitter), cloud_cpu(rng, "outage", jitter)]
        clean.append(tweet_volume(rng, 0, jitter))
        dirty += [tweet_volume(rng, 2, jitter), tweet_volume(rng, 2, jitter)]
        clean.append(machine_temperature(rng, False, jitter))
        dirty += [machine_temperature(rng, True, jitter), machine_temperature(rng, True, jitter)]
    clean += [ad_price(rng, "clean"), ad_price(rng, "clean")]
    dirty += [ad_price(rng, k) for k in ("level_shift", "level_shift", "spike", "spike")]
    return clean, dirty
