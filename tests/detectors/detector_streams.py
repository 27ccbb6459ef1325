"""Seeded synthetic model streams for the detector tests and benchmark."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from detectors.base import RowBatch

NUMERIC = (
    "normal_a", "normal_b", "normal_c", "normal_d", "student_t3", "cauchy_clip",
    "lognormal", "exponential", "poisson", "uniform_int", "zero_inflated", "zero_gamma",
    "binary", "uniform", "gappy_normal", "rounded",
)  # fmt: skip
CATEGORICAL = ("colour", "city", "flag", "device_id")
COLOURS = np.array(["red", "green", "blue", "black", "white"], dtype=object)
COLOUR_P = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
CITIES = np.array([f"city{i}" for i in range(50)], dtype=object)
CITY_P = 1.0 / np.arange(1, 51) ** 1.1
CITY_P /= CITY_P.sum()
DEVICES = np.array([f"dev{i}" for i in range(5000)], dtype=object)
DEVICE_P = 1.0 / np.arange(1, 5001) ** 1.2
DEVICE_P /= DEVICE_P.sum()
CLIENTS = np.array([f"api-key-{i}" for i in range(40)], dtype=object)
CLIENT_P = 1.0 / np.arange(1, 41) ** 0.8
CLIENT_P /= CLIENT_P.sum()
CLASSES = np.array(["cat", "dog", "bird"], dtype=object)


@dataclass(frozen=True)
class Drift:
    """Changes applied from event ``onset`` on."""

    onset: int
    mean_shift: float = 0.0  # in std of normal_a
    variance_factor: float = 1.0  # variance of normal_b multiplied
    colour_p: tuple[float, ...] | None = None  # new colour mix
    missing_share: float = 0.0  # extra share of gappy_normal missing
    unseen_share: float = 0.0  # share of device_id replaced by never-seen ids
    score_drop: float = 0.0  # subtracted from the logit of the score
    score_invalid_share: float = 0.0  # share of scores set to 1.5 (out of range)
    heavy_client_share: float = 0.0  # share of events sent by one new client ("scraper")
    prober_share: float = 0.0  # share sent by a new client ("prober") scoring near 0.5
    extreme_share: float = 0.0  # share of normal_a values multiplied by 1000
    sweeper_share: float = 0.0  # share sent by a new client ("sweeper") drawing numeric
    # inputs uniformly over each feature's range in the chunk: an extraction sweep


def _chunk(rng: np.random.Generator, n: int, first: int, drift: Drift | None) -> RowBatch:
    idx = np.arange(first, first + n)
    after = np.zeros(n, dtype=bool) if drift is None else idx >= drift.onset
    num: dict[str, np.ndarray] = {}
    num["normal_a"] = rng.normal(0, 1, n)
    if drift is not None:
        num["normal_a"] = num["normal_a"] + np.where(after, drift.mean_shift, 0.0)
    sd_b = np.where(after, np.sqrt(drift.variance_factor), 1.0) if drift else np.ones(n)
    num["normal_b"] = 10 + 3 * rng.normal(0, 1, n) * sd_b
    num["normal_c"] = rng.normal(-5, 0.1, n)
    num["normal_d"] = rng.normal(1e3, 50, n)
    num["student_t3"] = rng.standard_t(3, n)
    num["cauchy_clip"] = np.clip(rng.standard_cauchy(n), -1e3, 1e3)
    num["lognormal"] = rng.lognormal(0, 1, n)
    num["exponential"] = rng.exponential(2, n)
    num["poisson"] = rng.poisson(3, n).astype(np.float64)
    num["uniform_int"] = rng.integers(0, 10, n).astype(np.float64)
    num["zero_inflated"] = np.where(rng.random(n) < 0.7, 0.0, rng.gamma(2, 1, n))
    num["zero_gamma"] = np.where(rng.random(n) < 0.2, 0.0, rng.gamma(0.5, 3, n))
    num["binary"] = (rng.random(n) < 0.3).astype(np.float64)
    num["uniform"] = rng.random(n)
    gappy = rng.normal(0, 1, n)
    gappy[rng.random(n) < 0.05] = np.nan
    if drift is not None and drift.missing_share:
        gappy[after & (rng.random(n) < drift.missing_share)] = np.nan
    num["gappy_normal"] = gappy
    num["rounded"] = np.round(rng.normal(50, 2, n))
    cat: dict[str, np.ndarray] = {}
    colour = COLOURS[rng.choice(5, n, p=COLOUR_P)]
    if drift is not None and drift.colour_p is not None:
        drifted = COLOURS[rng.choice(5, n, p=np.array(drift.colour_p))]
        colour = np.where(after, drifted, colour)
    cat["colour"] = colour
    cat["city"] = CITIES[rng.choice(50, n, p=CITY_P)]
    cat["flag"] = np.where(rng.random(n) < 0.5, "true", "false").astype(object)
    dev = DEVICES[rng.choice(5000, n, p=DEVICE_P)]
    dev[rng.random(n) < 0.02] = None
    if drift is not None and drift.unseen_share:
        fresh = after & (rng.random(n) < drift.unseen_share)
        dev[fresh] = np.array([f"new{i}" for i in idx[fresh]], dtype=object)
    cat["device_id"] = dev
    logit = 0.8 * num["normal_a"] - 0.3 * num["normal_b"] + 3 + rng.normal(0, 1, n)
    if drift is not None:
        logit = logit - np.where(after, drift.score_drop, 0.0)
    score = 1 / (1 + np.exp(-logit))
    if drift is not None and drift.score_invalid_share:
        score[after & (rng.random(n) < drift.score_invalid_share)] = 1.5
    pred = CLASSES[np.digitize(score + 0.1 * rng.normal(0, 1, n), [0.4, 0.7])]
    ts = 1.7e9 + idx * 0.01
    # Drawn last, so the columns above are the same with or without clients.
    client = CLIENTS[rng.choice(len(CLIENTS), n, p=CLIENT_P)]
    if drift is not None and drift.heavy_client_share:
        client[after & (rng.random(n) < drift.heavy_client_share)] = "scraper"
    if drift is not None and drift.prober_share:
        probing = after & (rng.random(n) < drift.prober_share)
        client[probing] = "prober"
        score[probing] = 0.5 + rng.uniform(-0.05, 0.05, int(probing.sum()))
    if drift is not None and drift.extreme_share:
        num["normal_a"] = np.where(
            after & (rng.random(n) < drift.extreme_share), num["normal_a"] * 1000, num["normal_a"]
        )
    if drift is not None and drift.sweeper_share:
        sweeping = after & (rng.random(n) < drift.sweeper_share)
        client[sweeping] = "sweeper"
        for x in num.values():
            low, high = np.nanmin(x), np.nanmax(x)
            x[sweeping] = rng.uniform(low, high, int(sweeping.sum()))
    return RowBatch(
        ts=ts, numeric=num, categorical=cat, score=score, prediction=pred, client=client
    )


def stream_chunks(
    n: int, seed: int, drift: Drift | None = None, chunk: int = 100_000
) -> Iterator[RowBatch]:
    """The stream as consecutive chunks (same data whatever the consumer's batching)."""
    for k, first in enumerate(range(0, n, chunk)):
        rng = np.random.default_rng([seed, k])
        yield _chunk(rng, min(chunk, n - first), first, drift)


def make_stream(n: int, seed: int, drift: Drift | None = None) -> RowBatch:
    """The whole stream as one batch."""
    return concat(list(stream_chunks(n, seed, drift)))


def concat(batches: list[RowBatch]) -> RowBatch:
    def cat_opt(arrs: list[np.ndarray | None]) -> np.ndarray | None:
        return None if arrs[0] is None else np.concatenate(arrs)  # type: ignore[arg-type]

    first = batches[0]
    return RowBatch(
        ts=np.concatenate([b.ts for b in batches]),
        numeric={k: np.concatenate([b.numeric[k] for b in batches]) for k in first.numeric},
        categorical={
            k: np.concatenate([b.categorical[k] for b in batches]) for k in first.categorical
        },
        score=cat_opt([b.score for b in batches]),
        prediction=cat_opt([b.prediction for b in batches]),
        prediction_value=cat_opt([b.prediction_value for b in batches]),
        client=cat_opt([b.client for b in batches]),
    )


def slice_batch(b: RowBatch, start: int, stop: int) -> RowBatch:
    def s(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[start:stop]

    return RowBatch(
        ts=b.ts[start:stop],
        numeric={k: v[start:stop] for k, v in b.numeric.items()},
        categorical={k: v[start:stop] for k, v in b.categorical.items()},
        score=s(b.score),
        prediction=s(b.prediction),
        prediction_value=s(b.prediction_value),
        client=s(b.client),
    )


def split(b: RowBatch, sizes: list[int] | int) -> list[RowBatch]:
    """Cut a batch into consecutive pieces of the given size(s) (cycled)."""
    sizes = [sizes] if isinstance(sizes, int) else sizes
    out, start, k = [], 0, 0
    while start < len(b):
        stop = min(len(b), start + sizes[k % len(sizes)])
        out.append(slice_batch(b, start, stop))
        start, k = stop, k + 1
    return out
