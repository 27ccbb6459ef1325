"""What the per-client detectors share: windows of requests, a level, learned baselines.

A per-client detector reads the stream in windows of ``window`` requests that
carry a client (and whatever else it needs), tests every client with at least
``min_events`` requests in the window against a baseline with a one-sided
binomial test, Bonferroni-corrected over the clients tested, and reports a
client only when its excess over the baseline is at least ``min_excess``. The
baselines are exponentially weighted over windows; a flagged client's baseline
is frozen while it stays flagged, so an attacker cannot teach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from detectors.base import DetectorBase, Severity
from detectors.client.callers import Callers
from detectors.codec import decode_float, encode_float


@dataclass(frozen=True)
class ClientOutcome:
    """A client flagged at the window closing at ``index`` (offset in the fed values).

    ``share`` is what was measured (a share of traffic, or of the client's own
    requests), ``baseline`` what was expected, ``count`` the client's requests.
    """

    index: int
    client: str
    count: int
    share: float
    baseline: float
    p_value: float
    level: float
    severity: Severity
    behaviour: str = ""  # which behaviour, for tests of several (client_inputs)


class ClientWindowTest(DetectorBase):
    """Base of the per-client tests: windows of requests, a level, learned baselines
    (see the module docstring). A subclass counts its window's requests
    (``_accumulate``) and tests the clients when the window closes (``_close``)."""

    def __init__(
        self,
        window: int,
        min_events: int,
        min_excess: float,
        critical_excess: float,
        warmup_windows: int,
        half_life_windows: float,
        max_clients: int,
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
        self._baseline: dict[str, float] = {}

    def calibrate(self, window_level: float) -> None:
        """The per-window false-alarm level granted by the suite's budget."""
        if not 0 < window_level < 1:
            raise ValueError(f"window_level must be in (0, 1), got {window_level}")
        self._alpha = window_level

    def update(self, clients: np.ndarray, scores: np.ndarray | None = None) -> list[ClientOutcome]:
        """Feed callers (None where an event has none) and, if given, scores, in stream order."""
        return self.feed(Callers.of(clients), scores)

    def feed(
        self,
        callers: Callers,
        scores: np.ndarray | None = None,
        inputs: dict[str, np.ndarray] | None = None,
    ) -> list[ClientOutcome]:
        """:meth:`update` with the callers coded (shared by the detectors of a watch);
        ``inputs`` for the detectors that read them, ignored by the others."""
        present = self._counted(callers, scores)
        out: list[ClientOutcome] = []
        start = 0
        while start < len(present):
            take = min(len(present) - start, self.window - self._fill)
            self._accumulate(callers, scores, present[start : start + take])
            self._fill += take
            start += take
            if self._fill == self.window:
                out += self._close(int(present[start - 1]))
                self._windows += 1
                self._fill = 0
        return out

    def _counted(self, callers: Callers, scores: np.ndarray | None) -> np.ndarray:
        """The rows this test counts (indices, ascending): those with a client."""
        return callers.rows()

    def _accumulate(self, callers: Callers, scores: np.ndarray | None, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _close(self, index: int) -> list[ClientOutcome]:
        raise NotImplementedError

    def _test(
        self, at: int, client: str, requests: int, hits: int, trials: int, base: float, level: float
    ) -> ClientOutcome | None:
        """``hits`` of ``trials`` against an expected rate ``base``; None if unremarkable."""
        share = hits / trials
        if share - base < self.min_excess:
            return None
        p = float(stats.binom.sf(hits - 1, trials, max(base, 1.0 / trials)))
        if p >= level:
            return None
        severity: Severity = "critical" if share - base >= self.critical_excess else "warning"
        return ClientOutcome(at, client, requests, share, base, p, level, severity)

    @property
    def decay(self) -> float:
        """Per-window weight of the past in the baselines' moving averages."""
        return float(0.5 ** (1.0 / self.half_life_windows))

    @property
    def warm(self) -> bool:
        """Past the warm-up windows, with baselines to test against."""
        return self._windows >= self.warmup_windows and bool(self._baseline)

    def _learn(
        self,
        observed: dict[str, float],
        frozen: set[str],
        absent_is_zero: bool,
        prior: float | None = None,
    ) -> None:
        """Move baselines towards this window's values; frozen clients keep theirs.

        With ``absent_is_zero``, a known client missing from ``observed`` decays
        towards zero (a share of traffic it did not send); otherwise it keeps
        its baseline (nothing was measured). A client seen for the first time
        starts from ``prior`` if given, so even during warm-up one window cannot
        make an unusual newcomer look normal; else from its first value.
        """
        self._baseline = learned(
            self._baseline,
            observed,
            frozen,
            absent_is_zero,
            prior,
            first=self._windows == 0,
            decay=self.decay,
            max_clients=self.max_clients,
        )

    def _dump_common(self) -> dict[str, Any]:
        return {
            "params": self.params(),
            "alpha": encode_float(self._alpha),
            "fill": self._fill,
            "windows": self._windows,
            "baseline": [[c, encode_float(s)] for c, s in sorted(self._baseline.items())],
        }

    def _load_common(self, state: dict[str, Any]) -> None:
        self._alpha = decode_float(state["alpha"])
        self._fill = int(state["fill"])
        self._windows = int(state["windows"])
        self._baseline = {c: decode_float(s) for c, s in state["baseline"]}


def learned(
    baseline: dict[str, float],
    observed: dict[str, float],
    frozen: set[str],
    absent_is_zero: bool,
    prior: float | None,
    first: bool,
    decay: float,
    max_clients: int,
) -> dict[str, float]:
    """``baseline`` moved towards ``observed`` (see :meth:`ClientWindowTest._learn`),
    kept to its ``max_clients`` largest values."""
    rest = 1 - decay
    out = dict(baseline)
    if absent_is_zero:  # known, unobserved clients: a new value of 0.0
        out.update(
            {
                c: decay * (old or 0.0) + rest * 0.0
                for c, old in baseline.items()
                if c not in observed and c not in frozen
            }
        )
    for client, new in observed.items():
        if client in frozen:
            continue
        old = baseline.get(client, prior)
        if old is None and (first or not absent_is_zero):
            out[client] = new
        else:
            out[client] = decay * (old or 0.0) + rest * new
    if len(out) > max_clients:
        kept = sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))
        out = dict(kept[:max_clients])
    return {c: s for c, s in out.items() if s >= 1e-6 or c in frozen}
