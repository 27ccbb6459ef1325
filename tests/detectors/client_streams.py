"""Seeded traffic of many callers, benign or not, for the per-client tests and benchmark.

Benign callers have heavy-tailed rates (log-normal weights) and each its own
input mix: one to three of its features shifted by up to about one standard
deviation (a merchant with larger amounts, a region with older customers).
The model's score is a fixed function of the inputs. Attackers:

- ``sweeper``: draws every input uniformly over the feature's range in the
  benign traffic (model extraction by sweeping the input space);
- ``searcher``: near-identical inputs on either side of the decision boundary,
  so its outputs flip (adversarial search);
- ``prober``: otherwise ordinary inputs tuned so that its scores sit within
  0.05 of the boundary (boundary probing).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import special

from detectors.base import RowBatch

FEATURES = (
    "age", "income", "tenure", "balance", "amount", "basket", "heavy_t",
    "visits", "share", "is_new", "spread", "rounded",
)  # fmt: skip
D = len(FEATURES)
# Benign features' range (0.01% and 99.99% quantiles of the population, z-space)
Z_RANGE = 3.7


def features_from_z(z: np.ndarray) -> np.ndarray:
    """Input features (columns of FEATURES) from standard-normal drivers."""
    x = np.empty_like(z)
    x[:, 0] = 40 + 12 * z[:, 0]
    x[:, 1] = 3e4 + 8e3 * z[:, 1]
    x[:, 2] = 5 + 2 * z[:, 2]
    x[:, 3] = 1e3 * z[:, 3]
    x[:, 4] = np.exp(3 + z[:, 4])
    x[:, 5] = 10 * np.exp(0.5 * z[:, 5])
    x[:, 6] = z[:, 6] ** 3
    x[:, 7] = np.floor(np.exp(1 + 0.4 * z[:, 7]))
    x[:, 8] = special.ndtr(z[:, 8])
    x[:, 9] = (z[:, 9] > 1.0).astype(np.float64)
    x[:, 10] = z[:, 10] ** 2
    x[:, 11] = np.round(50 + 2 * z[:, 11])
    return x


def model_score(x: np.ndarray) -> np.ndarray:
    """The model: a fixed logistic function of three inputs."""
    logit = 0.9 * (x[:, 0] - 40) / 12 - 0.6 * (x[:, 1] - 3e4) / 8e3
    logit += 0.5 * (np.log(np.maximum(x[:, 4], 1e-9)) - 3) - 1.0
    return np.asarray(special.expit(logit))


def _x0_for_score(x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The age that gives ``target`` scores, the other inputs as in ``x``."""
    rest = -0.6 * (x[:, 1] - 3e4) / 8e3 + 0.5 * (np.log(np.maximum(x[:, 4], 1e-9)) - 3) - 1.0
    return np.asarray(40 + 12 * (special.logit(target) - rest) / 0.9)


@dataclass(frozen=True)
class Attack:
    """An attacker ``kind`` sending ``share`` of the events from ``start`` to ``stop``."""

    kind: str  # "sweeper", "searcher" or "prober"
    share: float
    start: int
    stop: int


class Traffic:
    """Benign callers with heavy-tailed rates and their own input mixes."""

    def __init__(self, callers: int = 500, seed: int = 0) -> None:
        rng = np.random.default_rng([seed, 1])
        self.names = np.array([f"caller-{i}" for i in range(callers)], dtype=object)
        weights = rng.lognormal(0, 1.5, callers)
        self.rates = weights / weights.sum()
        self.shift = np.zeros((callers, D))
        for c in range(callers):
            which = rng.choice(D, rng.integers(1, 4), replace=False)
            self.shift[c, which] = rng.normal(0, 0.5, which.shape[0])
        z = rng.normal(size=(200_000, D))
        x = features_from_z(z)
        self.low, self.high = np.min(x, axis=0), np.max(x, axis=0)
        self.seed = seed

    def chunks(
        self, n: int, attacks: tuple[Attack, ...] = (), chunk: int = 50_000
    ) -> Iterator[RowBatch]:
        """``n`` events in chunks (the same events whatever the chunk size is not
        promised: pass the same ``chunk`` to compare runs)."""
        for k, first in enumerate(range(0, n, chunk)):
            rng = np.random.default_rng([self.seed, 2, k])
            yield self._chunk(rng, first, min(chunk, n - first), attacks)

    def _chunk(
        self, rng: np.random.Generator, first: int, n: int, attacks: tuple[Attack, ...]
    ) -> RowBatch:
        idx = np.arange(first, first + n)
        who = rng.choice(len(self.names), n, p=self.rates)
        z = rng.normal(size=(n, D)) + self.shift[who]
        x = features_from_z(z)
        clients = self.names[who]
        for attack in attacks:
            rows = np.flatnonzero(
                (idx >= attack.start) & (idx < attack.stop) & (rng.random(n) < attack.share)
            )
            clients[rows] = attack.kind
            x[rows] = self._attack_inputs(rng, attack.kind, x[rows])
        score = model_score(x)
        ts = 1.7e9 + idx * 0.01
        numeric = {name: x[:, j].copy() for j, name in enumerate(FEATURES)}
        pred = np.where(score >= 0.5, "yes", "no").astype(object)
        return RowBatch(ts=ts, numeric=numeric, score=score, prediction=pred, client=clients)

    def _attack_inputs(self, rng: np.random.Generator, kind: str, x: np.ndarray) -> np.ndarray:
        m = x.shape[0]
        if kind == "sweeper":
            return rng.uniform(self.low, self.high, size=(m, D))
        if kind == "prober":
            x = x.copy()
            x[:, 0] = _x0_for_score(x, np.asarray(0.5 + rng.uniform(-0.05, 0.05, m)))
            return x
        if kind == "searcher":  # one starting point, nudged across the boundary and back
            base = features_from_z(np.full((1, D), 0.3))
            out = np.repeat(base, m, axis=0)
            continuous = [1, 3, 4, 5]  # integer inputs stay as they are
            out[:, continuous] *= 1 + rng.normal(0, 1e-4, (m, len(continuous)))
            side = np.where(rng.random(m) < 0.5, 0.49, 0.51)
            out[:, 0] = _x0_for_score(out, side)
            return out
        raise ValueError(f"unknown attacker {kind!r}; use sweeper, searcher or prober")
