"""Seeded streams of a 20-feature model for the drift benchmark: stationary, or with
one feature shifted from an onset on.

Features: 8 normal, 4 lognormal, 4 integer-valued (Poisson 3, Poisson 20,
uniform 0..9, binomial 10 x 0.3) and 4 categorical (a two-way split 0.52 /
0.48, five colours, 20 cities and 500 devices with Zipf-like shares). The
events also carry a score, a predicted class and a caller, so every default
detector has its signal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from detectors.base import RowBatch

NORMAL = tuple(f"normal_{i}" for i in range(8))
LOGNORMAL = tuple(f"lognormal_{i}" for i in range(4))
INTEGER = ("poisson_3", "poisson_20", "uniform_int", "binomial")
CATEGORICAL = ("segment", "colour", "city", "device")
SEGMENTS = np.array(["a", "b"], dtype=object)
SEGMENT_P = np.array([0.52, 0.48])
COLOURS = np.array(["red", "green", "blue", "black", "white"], dtype=object)
COLOUR_P = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
CITIES = np.array([f"city{i}" for i in range(20)], dtype=object)
CITY_P = 1.0 / np.arange(1, 21)
CITY_P /= CITY_P.sum()
DEVICES = np.array([f"dev{i}" for i in range(500)], dtype=object)
DEVICE_P = 1.0 / np.arange(1, 501) ** 1.1
DEVICE_P /= DEVICE_P.sum()
CLIENTS = np.array([f"key-{i}" for i in range(10)], dtype=object)
CLASSES = np.array(["no", "yes"], dtype=object)


@dataclass(frozen=True)
class Shift:
    """One change from event ``onset`` on (the others stay as they were)."""

    onset: int
    mean_shift: float = 0.0  # normal_0, in its standard deviations
    scale: float = 1.0  # normal_1's standard deviation multiplied
    colour_p: tuple[float, ...] | None = None  # new colour shares
    segment_a: float | None = None  # new share of segment "a"


def _categories(rng: np.random.Generator, labels: np.ndarray, p: np.ndarray, n: int) -> np.ndarray:
    return labels[np.searchsorted(np.cumsum(p), rng.random(n) * p.sum())]  # type: ignore[no-any-return]


def chunk(rng: np.random.Generator, n: int, first: int, shift: Shift | None) -> RowBatch:
    after = np.zeros(n, bool) if shift is None else np.arange(first, first + n) >= shift.onset
    num: dict[str, np.ndarray] = {}
    for i, name in enumerate(NORMAL):
        num[name] = 10.0 * i + (1.0 + i) * rng.standard_normal(n)
    for i, name in enumerate(LOGNORMAL):
        num[name] = rng.lognormal(i * 0.5, 0.5 + 0.25 * i, n)
    num["poisson_3"] = rng.poisson(3, n).astype(np.float64)
    num["poisson_20"] = rng.poisson(20, n).astype(np.float64)
    num["uniform_int"] = rng.integers(0, 10, n).astype(np.float64)
    num["binomial"] = rng.binomial(10, 0.3, n).astype(np.float64)
    cat = {
        "segment": _categories(rng, SEGMENTS, SEGMENT_P, n),
        "colour": _categories(rng, COLOURS, COLOUR_P, n),
        "city": _categories(rng, CITIES, CITY_P, n),
        "device": _categories(rng, DEVICES, DEVICE_P, n),
    }
    if shift is not None and after.any():
        num["normal_0"] = num["normal_0"] + np.where(after, shift.mean_shift, 0.0)
        centre = 10.0
        num["normal_1"] = np.where(
            after, centre + (num["normal_1"] - centre) * shift.scale, num["normal_1"]
        )
        if shift.colour_p is not None:
            new = _categories(rng, COLOURS, np.array(shift.colour_p), n)
            cat["colour"] = np.where(after, new, cat["colour"])
        if shift.segment_a is not None:
            new = _categories(rng, SEGMENTS, np.array([shift.segment_a, 1 - shift.segment_a]), n)
            cat["segment"] = np.where(after, new, cat["segment"])
    logit = 0.3 * rng.standard_normal(n) + (num["normal_2"] - 20.0) / 3.0 - 0.5
    score = 1.0 / (1.0 + np.exp(-logit))
    return RowBatch(
        ts=1.7e9 + np.arange(first, first + n) * 0.01,
        numeric=num,
        categorical=cat,
        score=score,
        prediction=CLASSES[(score > 0.5).astype(np.intp)],
        client=CLIENTS[rng.integers(0, CLIENTS.shape[0], n)],
    )


def stream(events: int, batch: int, seed: int, shift: Shift | None = None) -> Iterator[RowBatch]:
    """``events`` events in batches of ``batch``."""
    rng = np.random.default_rng(seed)
    for first in range(0, events, batch):
        yield chunk(rng, min(batch, events - first), first, shift)
