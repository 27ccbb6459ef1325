"""Client volume: one caller suddenly sending far more than its share of traffic.

Model extraction and scraping show up first as volume: a client that queries
the model systematically issues many more requests than it used to, or than a
typical client does. Every ``window`` events that carry a client, each client
with at least ``min_events`` requests in the window is tested against its own
baseline share (an exponentially weighted average over past windows); a client
without a baseline is tested against the median share of known clients. The
test is binomial, Bonferroni-corrected across the clients tested in the window;
the suite's false-alarm budget sets the level. A flagged client's baseline is
frozen while it stays flagged, so an attacker cannot teach the baseline that
its volume is normal.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from detectors.client.base import ClientOutcome, ClientWindowTest

__all__ = ["ClientOutcome", "ClientVolume"]


class ClientVolume(ClientWindowTest):
    name = "client_volume"

    def __init__(
        self,
        window: int = 2000,
        min_events: int = 50,
        min_excess: float = 0.05,
        critical_excess: float = 0.25,
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
        self._counts: Counter[str] = Counter()

    def _accumulate(self, clients: np.ndarray, scores: np.ndarray | None, rows: list[int]) -> None:
        self._counts.update(clients[rows].tolist())

    def _close(self, index: int) -> list[ClientOutcome]:
        counts, total = self._counts, self.window
        flagged: list[ClientOutcome] = []
        if self.warm:
            typical = float(np.median(list(self._baseline.values())))
            tested = [(c, n) for c, n in sorted(counts.items()) if n >= self.min_events]
            level = self._alpha / max(1, len(tested))
            for client, n in tested:
                base = self._baseline.get(client, typical)
                outcome = self._test(index, client, n, n, total, base, level)
                if outcome is not None:
                    flagged.append(outcome)
        shares = {c: n / total for c, n in counts.items()}
        self._learn(shares, {f.client for f in flagged}, absent_is_zero=True)
        self._counts = Counter()
        return flagged

    def dump(self) -> dict[str, Any]:
        return {
            **self._dump_common(),
            "counts": [[c, n] for c, n in sorted(self._counts.items())],
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> ClientVolume:
        det = cls.build(**state["params"])
        det._load_common(state)
        det._counts = Counter({c: int(n) for c, n in state["counts"]})
        return det
