"""Change detection on the 0/1 error stream of joined class labels, at one false-alarm budget.

Compares River's binary detectors (``river.drift.binary``: DDM, EDDM, HDDMA,
HDDMW, FHDDM), fed one label at a time, with the windowed test of realized
performance (``performance:accuracy``: a one-sided two-proportion test of each
window of 2,000 labels against the first 5,000) on streams built here:

- stationary: Bernoulli errors at 5.6% and 17.4% (false alarms);
- ``census``: the error rate rises from 17.4% to 24.2% for a block of 1,714
  labels, then returns (the block starts at a random label in 10,000-20,000);
- ``car_loan``: accuracy drops from 0.944 to 0.915 for good (same start).

Each detector's parameter is calibrated by simulation (bisection on common
random streams) so that at most ``--budget`` of stationary streams of
``--length`` labels raise an alarm at either error rate; the windowed test's
``alpha`` is calibrated the same way. Then, per scenario, the share of streams
where the change is caught (an alarm at or after the change starts, by the end
of the block plus one window for ``census``) and the delay, in labels, from the
change to the first alarm.

Then (``calibration``) the labels between false alarms of the adopted detector,
``error_rate`` (River's ADWIN on blocks of 50 labels, detections of a rise),
per unit of ADWIN's nominal ``false_alarm_events``, on stationary streams of
``--labels`` labels; and (``service``) the two signals as the service runs
them, at its default budget.

    PYTHONPATH=. .venv/bin/python scripts/bench_error_stream.py [--streams 200]
        [--length 25000] [--budget 0.05] [--workers 2] [--labels 1e8]
        [--parts compare,calibration,service] [--only windowed,adwin,...]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from river.drift import binary
from scipy import stats

from detectors.change import ADWIN, CUSUM
from detectors.performance.watch import PerformanceWatch
from detectors.suite.error_rate import BLOCK, WARMUP, ErrorRate, nominal_events
from detectors.suite.error_stream import JoinedLabels

REFERENCE, WINDOW = 5000, 2000  # the windowed test's reference period and window, in labels
RATES = (0.056, 0.174)
CENSUS = (0.174, 0.242, 1714)
CAR_LOAN = (0.056, 0.085)
CALIBRATION_RATES = (0.01, 0.056, 0.174, 0.4)


@dataclass(frozen=True)
class Candidate:
    """A detector with one parameter to calibrate; larger ``param`` = more alarms iff ``rising``."""

    name: str
    lo: float  # search range of the parameter (log scale when ``log``)
    hi: float
    rising: bool  # do false alarms rise with the parameter?
    log: bool = True


CANDIDATES = [
    Candidate("windowed", 1e-7, 1e-1, rising=True),
    # the error stream's block-mean change detectors (signal ``error``), by their budget
    Candidate("cusum", 1e2, 1e9, rising=False),
    Candidate("adwin", 1e2, 1e9, rising=False),
    Candidate("DDM", 2.0, 12.0, rising=False, log=False),
    Candidate("EDDM", 0.3, 0.95, rising=True, log=False),
    Candidate("HDDMA", 1e-6, 0.5, rising=True),
    Candidate("HDDMW", 1e-6, 0.5, rising=True),
    Candidate("FHDDM", 1e-9, 0.5, rising=True),
]


def build(name: str, param: float) -> Any:
    if name == "DDM":
        return binary.DDM(warm_start=1000, warning_threshold=param - 0.5, drift_threshold=param)
    if name == "EDDM":
        return binary.EDDM(warm_start=100, alpha=min(param + 0.04, 0.99), beta=param)
    if name == "HDDMA":
        return binary.HDDMA(drift_confidence=param, warning_confidence=min(0.5, 5 * param))
    if name == "HDDMW":
        return binary.HDDMW(
            drift_confidence=param, warning_confidence=min(0.5, 5 * param), lambda_val=0.002
        )
    if name == "FHDDM":
        return binary.FHDDM(sliding_window_size=WINDOW, confidence_level=param)
    raise ValueError(name)


def river_alarms(name: str, param: float, errors: np.ndarray, start: int, stop: int) -> int:
    """Label of the first alarm at or after ``start`` (before ``stop``), -1 for none."""
    det = build(name, param)
    # FHDDM watches the share of 1s for a drop: it is fed "correct" (1 - error).
    values = (1 - errors if name == "FHDDM" else errors).tolist()
    for i, x in enumerate(values[:stop]):
        det.update(x)
        if det.drift_detected and i >= start:
            return i
    return -1


def windowed_alarms(alpha: float, errors: np.ndarray, start: int, stop: int) -> int:
    """As ``performance:accuracy`` (detectors.performance.watch): first window closing
    at or after ``start`` whose accuracy is below the reference's at p < alpha."""
    ref_n = REFERENCE
    ref_err = int(errors[:ref_n].sum())
    n_win = (min(stop, len(errors)) - ref_n) // WINDOW
    if n_win <= 0:
        return -1
    win_err = errors[ref_n : ref_n + n_win * WINDOW].reshape(n_win, WINDOW).sum(axis=1)
    pooled = (ref_err + win_err) / (ref_n + WINDOW)
    var = pooled * (1 - pooled) * (1 / ref_n + 1 / WINDOW)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, (win_err / WINDOW - ref_err / ref_n) / np.sqrt(var), 0.0)
    ends = ref_n + (np.arange(n_win) + 1) * WINDOW - 1
    hit = np.flatnonzero((stats.norm.sf(z) < alpha) & (ends >= start))
    return int(ends[hit[0]]) if len(hit) else -1


def realized_alarms(errors: np.ndarray, start: int, stop: int, signal: str) -> int:
    """As the service runs realized performance (``PerformanceWatch``, its defaults):
    the labels of a binary classifier (30% positive) whose errors are ``errors``;
    the first label at or after ``start`` (before ``stop``) where ``signal`` alarms,
    or any ``performance:*`` signal when ``signal`` is empty. The joint test adjusts
    every metric of a window together (Benjamini-Hochberg), so this is what a user
    gets, not the accuracy test alone."""
    n = min(stop, len(errors))
    rng = np.random.default_rng([n, int(errors[:n].sum())])
    positive = rng.random(n) < 0.3
    predicted = np.where(errors[:n] == 1, ~positive, positive)
    seq = np.arange(n, dtype=np.int64)
    joined = JoinedLabels(
        seq=seq,
        ts=seq.astype(np.float64),
        predicted=["fraud" if p else "ok" for p in predicted],
        truth=["fraud" if p else "ok" for p in positive],
    )
    hits = [
        int(f.event_ts)
        for f in PerformanceWatch().observe(joined)
        if f.event_ts >= start and (f.signal == signal or not signal)
    ]
    return hits[0] if hits else -1


def block_alarms(name: str, param: float, errors: np.ndarray, start: int, stop: int) -> int:
    """As the ``error`` signal's detectors (detectors.suite.error_stream): blocks of 50
    labels, calibrated on their first 1,000, nominal ``false_alarm_events`` ``param``;
    rising errors only (``adwin`` so is ``error_rate``)."""
    det = CUSUM(false_alarm_events=param) if name == "cusum" else ADWIN(false_alarm_events=param)
    found = det.update(errors[:stop].astype(np.float64))
    hits = [e.index for e in found if e.index >= start and e.details.get("direction") == "up"]
    return hits[0] if hits else -1


def first_alarm(name: str, param: float, errors: np.ndarray, start: int, stop: int) -> int:
    if name == "windowed":
        return windowed_alarms(param, errors, start, stop)
    if name in ("cusum", "adwin"):
        return block_alarms(name, param, errors, start, stop)
    return river_alarms(name, param, errors, start, stop)


def scenario(kind: str, k: int, length: int) -> tuple[np.ndarray, int, int]:
    """Stream ``k`` of a scenario: errors, the label where the change starts, where to stop."""
    rng = np.random.default_rng([hash_kind(kind), k])
    if kind.startswith("stationary"):
        p = float(kind.split(":")[1])
        return (rng.random(length) < p).astype(np.int64), 0, length
    start = int(rng.integers(10_000, 20_000))
    if kind == "census":
        base, high, size = CENSUS
        p = np.full(start + size + 4 * WINDOW, base)
        p[start : start + size] = high
        return (rng.random(len(p)) < p).astype(np.int64), start, start + size + WINDOW
    base, low_acc = CAR_LOAN
    p = np.full(start + 8 * WINDOW, base)
    p[start:] = low_acc
    return (rng.random(len(p)) < p).astype(np.int64), start, len(p)


def hash_kind(kind: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(kind))


Runner = Callable[[str, float, int, str], list[int]]


def runner(pool: ProcessPoolExecutor, workers: int, length: int) -> Runner:
    def run(name: str, param: float, streams: int, kind: str) -> list[int]:
        if name == "windowed":
            return _range_job((name, param, 0, streams, kind, length))
        per = math.ceil(streams / workers)  # each worker takes its own range of streams
        bounds = [(w * per, min(streams, (w + 1) * per)) for w in range(workers)]
        futures = [pool.submit(_range_job, (name, param, *b, kind, length)) for b in bounds]
        out: list[int] = []
        for f in futures:
            out += f.result()
        return out

    return run


def _range_job(args: tuple[str, float, int, int, str, int]) -> list[int]:
    name, param, lo, hi, kind, length = args
    return [first_alarm(name, param, *scenario(kind, k, length)) for k in range(lo, hi)]


def false_alarm_share(run: Runner, name: str, param: float, streams: int) -> float:
    return max(
        np.mean([a >= 0 for a in run(name, param, streams, f"stationary:{p}")]) for p in RATES
    )


def calibrate(
    run: Runner, c: Candidate, streams: int, budget: float, steps: int
) -> tuple[float, float]:
    """The most sensitive parameter whose false-alarm share is within ``budget``."""
    lo, hi = (math.log(c.lo), math.log(c.hi)) if c.log else (c.lo, c.hi)
    # ``safe`` end: few alarms; ``loud`` end: many
    safe, loud = (lo, hi) if c.rising else (hi, lo)
    best = (math.exp(safe) if c.log else safe), 0.0
    for _ in range(steps):
        mid = (safe + loud) / 2
        param = math.exp(mid) if c.log else mid
        share = false_alarm_share(run, c.name, param, streams)
        if share <= budget:
            safe, best = mid, (param, share)
        else:
            loud = mid
    return best


def compare(args: argparse.Namespace) -> None:
    chosen = [c for c in CANDIDATES if not args.only or c.name in args.only.split(",")]
    print(
        f"budget: at most {args.budget:.0%} of {args.streams} stationary streams of "
        f"{args.length} labels (error rates {RATES}) raise an alarm"
    )
    with ProcessPoolExecutor(args.workers) as pool:
        run = runner(pool, args.workers, args.length)
        for c in chosen:
            t0 = time.perf_counter()
            param, share = calibrate(run, c, args.streams, args.budget, args.steps)
            line = [f"{c.name:9s} param {param:.3g} (false alarms {share:.1%})"]
            for kind in ("census", "car_loan"):
                line.append(delays(kind, run(c.name, param, args.streams, kind), args.length))
            print("; ".join(line), f"[{time.perf_counter() - t0:.0f} s]", flush=True)


def delays(kind: str, alarms: list[int], length: int) -> str:
    """Share caught and median delay (labels from the change to the first alarm)."""
    caught = [a - scenario(kind, k, length)[1] for k, a in enumerate(alarms) if a >= 0]
    med = f"{np.median(caught):.0f}" if caught else "-"
    return f"{kind}: caught {len(caught) / len(alarms):.0%}, median delay {med}"


def _stationary_alarms(args: tuple[float, float, int]) -> tuple[float, float, int]:
    """Rising-error detections of ``error_rate`` with nominal events ``param`` in
    ``labels`` stationary labels at error rate ``p``."""
    param, p, labels = args
    det = ErrorRate(1.0)
    det.adwin = ADWIN(block=BLOCK, warmup=WARMUP, false_alarm_events=param)
    rng = np.random.default_rng([int(param), int(p * 1000)])
    n = 0
    for _ in range(labels // 1_000_000):
        n += len(det.update((rng.random(1_000_000) < p).astype(np.float64)))
    return param, p, n


def calibration(args: argparse.Namespace) -> None:
    """Labels between false alarms of ``error_rate`` per unit of ADWIN's nominal
    ``false_alarm_events``, at several error rates and nominal values."""
    jobs = [(param, p, args.labels) for param in (1e3, 1e4, 5e4) for p in CALIBRATION_RATES]
    print(f"error_rate on {args.labels:.0e} stationary labels per row:")
    with ProcessPoolExecutor(args.workers) as pool:
        for param, p, n in pool.map(_stationary_alarms, jobs):
            per = args.labels / n if n else math.inf
            print(
                f"  nominal {param:.0e}, error rate {p}: {n} false alarms, "
                f"{per:.3g} labels each ({per / param:.0f} per nominal event)",
                flush=True,
            )


def service(args: argparse.Namespace) -> None:
    """As the service runs them: ``error_rate`` at the model's budget (1e7 labels) and
    realized performance (``PerformanceWatch``: alpha 1e-4 per window of 2,000, every
    metric of a window adjusted together)."""
    budget, alpha = 1e7, 1e-4

    def rate_alarm(kind: str, k: int) -> int:
        errors, start, stop = scenario(kind, k, args.length)
        hits = [e.index for e in ErrorRate(budget).update(errors[:stop].astype(np.float64))]
        return next((i for i in hits if i >= start), -1)

    print(
        f"as configured ({args.streams} streams each): error_rate budget {budget:.0e} labels "
        f"(ADWIN's nominal false_alarm_events {nominal_events(budget):.3g}),"
    )
    print(f"  realized performance: alpha {alpha} per window of {WINDOW}, metrics tested together")
    for kind in ("census", "car_loan"):
        rate = [rate_alarm(kind, k) for k in range(args.streams)]
        streams = [scenario(kind, k, args.length) for k in range(args.streams)]
        accuracy = [realized_alarms(*s, "performance:accuracy") for s in streams]
        anything = [realized_alarms(*s, "") for s in streams]
        print(f"  error_rate           {delays(kind, rate, args.length)}")
        print(f"  performance:accuracy {delays(kind, accuracy, args.length)}")
        print(f"  performance:* (any)  {delays(kind, anything, args.length)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--length", type=int, default=25_000)
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--labels", type=float, default=1e8, help="labels per calibration row")
    parser.add_argument("--only", default="", help="comma-separated candidates (default: all)")
    parser.add_argument("--parts", default="compare,calibration,service")
    args = parser.parse_args()
    args.labels = int(args.labels)
    parts = {"compare": compare, "calibration": calibration, "service": service}
    for name in args.parts.split(","):
        if name not in parts:
            parser.error(f"unknown part {name!r}; choose from {', '.join(parts)}")
        parts[name](args)


if __name__ == "__main__":
    main()
