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
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from detectors.base import Severity
from detectors.codec import decode_float, encode_float


@dataclass(frozen=True)
class ClientOutcome:
    """A client flagged at the window closing at ``index`` (offset in the fed values)."""

    index: int
    client: str
    count: int
    share: float
    baseline: float
    p_value: float
    level: float
    severity: Severity


class ClientVolume:
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
        if window < 100:
            raise ValueError(f"window must be at least 100 events, got {window}")
        if min_events < 1:
            raise ValueError(f"min_events must be at least 1, got {min_events}")
        if not 0 < min_excess < critical_excess <= 1:
            raise ValueError(
                "min_excess and critical_excess must satisfy 0 < min_excess < critical_excess <= 1"
            )
        if warmup_windows < 1:
            raise ValueError(f"warmup_windows must be at least 1, got {warmup_windows}")
        if half_life_windows <= 0:
            raise ValueError(f"half_life_windows must be positive, got {half_life_windows}")
        if max_clients < 2:
            raise ValueError(f"max_clients must be at least 2, got {max_clients}")
        self.window = window
        self.min_events = min_events
        self.min_excess = min_excess
        self.critical_excess = critical_excess
        self.warmup_windows = warmup_windows
        self.half_life_windows = half_life_windows
        self.max_clients = max_clients
        self._alpha = 1e-4
        self._fill = 0
        self._windows = 0
        self._counts: Counter[str] = Counter()
        self._baseline: dict[str, float] = {}

    def params(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "min_events": self.min_events,
            "min_excess": self.min_excess,
            "critical_excess": self.critical_excess,
            "warmup_windows": self.warmup_windows,
            "half_life_windows": self.half_life_windows,
            "max_clients": self.max_clients,
        }

    def calibrate(self, window_level: float) -> None:
        """The per-window false-alarm level granted by the suite's budget."""
        if not 0 < window_level < 1:
            raise ValueError(f"window_level must be in (0, 1), got {window_level}")
        self._alpha = window_level

    def update(self, clients: np.ndarray) -> list[ClientOutcome]:
        """Feed callers in stream order (None where an event has no client)."""
        present = [i for i, c in enumerate(clients.tolist()) if c is not None]
        values = clients[present].tolist() if present else []
        out: list[ClientOutcome] = []
        start = 0
        while start < len(values):
            take = min(len(values) - start, self.window - self._fill)
            self._counts.update(values[start : start + take])
            self._fill += take
            start += take
            if self._fill == self.window:
                out += self._close(present[start - 1])
        return out

    def _close(self, index: int) -> list[ClientOutcome]:
        counts, total = self._counts, self.window
        flagged: list[ClientOutcome] = []
        if self._windows >= self.warmup_windows and self._baseline:
            typical = float(np.median(list(self._baseline.values())))
            tested = [(c, n) for c, n in sorted(counts.items()) if n >= self.min_events]
            level = self._alpha / max(1, len(tested))
            for client, n in tested:
                base = self._baseline.get(client, typical)
                share = n / total
                if share - base < self.min_excess:
                    continue
                p = float(stats.binom.sf(n - 1, total, max(base, 1.0 / total)))
                if p < level:
                    severity: Severity = (
                        "critical" if share - base >= self.critical_excess else "warning"
                    )
                    flagged.append(ClientOutcome(index, client, n, share, base, p, level, severity))
        self._learn({f.client for f in flagged})
        self._windows += 1
        self._counts = Counter()
        self._fill = 0
        return flagged

    def _learn(self, frozen: set[str]) -> None:
        decay = 0.5 ** (1.0 / self.half_life_windows)
        shares = {c: n / self.window for c, n in self._counts.items()}
        first = self._windows == 0
        for client in set(self._baseline) | set(shares):
            if client in frozen:
                continue
            old = self._baseline.get(client)
            new = shares.get(client, 0.0)
            self._baseline[client] = (
                new if old is None and first else (decay * (old or 0.0) + (1 - decay) * new)
            )
        if len(self._baseline) > self.max_clients:
            kept = sorted(self._baseline.items(), key=lambda kv: (-kv[1], kv[0]))
            self._baseline = dict(kept[: self.max_clients])
        self._baseline = {c: s for c, s in self._baseline.items() if s >= 1e-6 or c in frozen}

    def dump(self) -> dict[str, Any]:
        return {
            "params": self.params(),
            "alpha": encode_float(self._alpha),
            "fill": self._fill,
            "windows": self._windows,
            "counts": [[c, n] for c, n in sorted(self._counts.items())],
            "baseline": [[c, encode_float(s)] for c, s in sorted(self._baseline.items())],
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> ClientVolume:
        det = cls(**state["params"])
        det._alpha = decode_float(state["alpha"])
        det._fill = int(state["fill"])
        det._windows = int(state["windows"])
        det._counts = Counter({c: int(n) for c, n in state["counts"]})
        det._baseline = {c: decode_float(s) for c, s in state["baseline"]}
        return det
