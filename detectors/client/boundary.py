"""Boundary probing: one caller whose requests cluster at the model's decision boundary."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from detectors.client.base import ClientOutcome, ClientWindowTest
from detectors.client.callers import Callers, span
from detectors.codec import decode_float, encode_float


class ClientBoundary(ClientWindowTest):
    """Boundary probing: one caller whose requests cluster at the model's
    decision boundary.

    Model extraction does not need much volume. An attacker who learns where
    the model decides (active learning, equation solving on confidences) sends
    inputs the model is unsure about, far more often than real traffic does;
    each such query carries the most information about the boundary. Every
    ``window`` requests that carry a client and a score, each client with at
    least ``min_events`` of them is tested: is its share of scores within
    ``band`` of ``boundary`` far above its own baseline share, or, for a client
    without one, above the share in all traffic? The test is binomial,
    Bonferroni-corrected over the clients tested; the suite's false-alarm
    budget sets the level (:meth:`calibrate`). Volume is left to
    ``client_volume``: a prober can hide in 1% of the traffic and still be
    caught here. The expected share is never below what all other callers send
    in the same window, so a model whose scores drift towards the boundary for
    everyone is left to the drift detectors.

    Parameters
    ----------
    window
        Events carrying a client and a finite score per window.
    boundary
        The model's decision threshold on the score.
    band
        Half-width of the interval around ``boundary`` whose scores count as
        near it.
    min_events
        Fewest requests a client needs in a window to be tested.
    min_excess
        Smallest excess over the baseline share that is reported.
    critical_excess
        Excess at or above which a finding is critical rather than a warning.
    warmup_windows
        Windows that only teach the baselines before any client is tested.
    half_life_windows
        Windows after which a past window's weight in a baseline has halved.
    max_clients
        Most client baselines kept (the largest ones).

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.client import ClientBoundary
    >>> rng = np.random.default_rng(0)
    >>> keys = np.array(["a", "b", "c", "d"], dtype=object)
    >>> probing = ClientBoundary(window=500, warmup_windows=2)
    >>> probing.calibrate(1e-4)
    >>> probing.update(rng.choice(keys, 5000), rng.beta(2, 5, 5000))
    []

    A new key sends one request in ten, every one scoring near 0.5:

    >>> callers, scores = rng.choice(keys, 1000), rng.beta(2, 5, 1000)
    >>> callers[::10], scores[::10] = "prober", rng.uniform(0.45, 0.55, 100)
    >>> [(o.client, o.index, o.share, o.severity) for o in probing.update(callers, scores)]
    [('prober', 499, 1.0, 'critical'), ('prober', 999, 1.0, 'critical')]

    References
    ----------
    .. [1] Tramèr, F., Zhang, F., Juels, A., Reiter, M. K., & Ristenpart, T.
       (2016). Stealing machine learning models via prediction APIs. In *25th
       USENIX Security Symposium* (pp. 601-618).
    .. [2] Chandrasekaran, V., Chaudhuri, K., Giacomelli, I., Jha, S., & Yan, S.
       (2020). Exploring connections between active learning and model
       extraction. In *29th USENIX Security Symposium* (pp. 1309-1326).
    .. [3] Dunn, O. J. (1961). Multiple comparisons among means. *Journal of the
       American Statistical Association*, 56(293), 52-64.
    """

    name = "client_boundary"

    def __init__(
        self,
        window: int = 2000,
        boundary: float = 0.5,
        band: float = 0.1,
        min_events: int = 10,
        min_excess: float = 0.3,
        critical_excess: float = 0.6,
        warmup_windows: int = 5,
        half_life_windows: float = 20.0,
        max_clients: int = 1000,
    ) -> None:
        super().__init__(
            window,
            min_events,
            min_excess,
            critical_excess,
            warmup_windows,
            half_life_windows,
            max_clients,
        )
        if not math.isfinite(boundary):
            raise ValueError(f"boundary must be a finite number, got {boundary!r}")
        if not band > 0:
            raise ValueError(f"band must be positive, got {band!r}")
        self.boundary = boundary
        self.band = band
        self._requests: Counter[str] = Counter()
        self._near: Counter[str] = Counter()
        self._population = math.nan  # share near the boundary in all traffic, learned

    def _counted(self, callers: Callers, scores: np.ndarray | None) -> np.ndarray:
        if scores is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(callers.present & np.isfinite(scores))

    def _accumulate(self, callers: Callers, scores: np.ndarray | None, rows: np.ndarray) -> None:
        assert scores is not None  # _counted keeps no row without a score
        take = span(rows)
        near = np.abs(scores[take] - self.boundary) <= self.band
        callers.count_into(self._requests, take)
        callers.count_into(self._near, take, near)

    def _close(self, index: int) -> list[ClientOutcome]:
        flagged: list[ClientOutcome] = []
        tested = sorted(c for c, n in self._requests.items() if n >= self.min_events)
        if self.warm and not math.isnan(self._population):
            level = self._alpha / max(1, len(tested))
            all_requests, all_near = sum(self._requests.values()), sum(self._near.values())
            for client in tested:
                requests, near = self._requests[client], self._near[client]
                # Never below what everyone else sends now: when the whole model
                # drifts towards its boundary, that is drift, not one caller probing.
                others = all_requests - requests
                now = (all_near - near) / others if others else 0.0
                base = max(self._baseline.get(client, self._population), now)
                outcome = self._test(index, client, requests, near, requests, base, level)
                if outcome is not None:
                    flagged.append(outcome)
        frozen = {f.client for f in flagged}
        shares = {c: self._near[c] / self._requests[c] for c in tested}
        self._learn_population(frozen)
        self._learn(shares, frozen, absent_is_zero=False, prior=self._population)
        self._requests, self._near = Counter(), Counter()
        return flagged

    def _learn_population(self, frozen: set[str]) -> None:
        """The share near the boundary in this window's traffic, flagged callers left out."""
        requests = sum(self._requests.values()) - sum(self._requests[c] for c in frozen)
        if requests == 0:
            return
        share = (sum(self._near.values()) - sum(self._near[c] for c in frozen)) / requests
        decay = self.decay
        old = self._population
        self._population = share if math.isnan(old) else decay * old + (1 - decay) * share

    def dump(self) -> dict[str, Any]:
        return {
            **self._dump_common(),
            "requests": [[c, n] for c, n in sorted(self._requests.items())],
            "near": [[c, n] for c, n in sorted(self._near.items())],
            "population": encode_float(self._population),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> ClientBoundary:
        det = cls.build(**state["params"])
        det._load_common(state)
        det._requests = Counter({c: int(n) for c, n in state["requests"]})
        det._near = Counter({c: int(n) for c, n in state["near"]})
        det._population = decode_float(state["population"])
        return det
