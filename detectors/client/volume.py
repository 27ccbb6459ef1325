"""Client volume: one caller suddenly sending far more than its share of traffic."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from detectors.client.base import ClientOutcome, ClientWindowTest
from detectors.client.callers import Callers, span

__all__ = ["ClientOutcome", "ClientVolume"]


def median(values: Iterable[float]) -> float:
    """``np.median`` of ``values`` (the middle one, or the mean of the middle two:
    the same floating-point steps), without building an array for a few dozen."""
    ordered = sorted(values)
    if any(v != v for v in ordered):  # NaN (a hand-edited state): numpy's answer
        return math.nan
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


class ClientVolume(ClientWindowTest):
    """One caller suddenly sending far more than its share of traffic.

    Model extraction and scraping show up first as volume: a client that
    queries the model systematically issues many more requests than it used
    to, or than a typical client does. Every ``window`` events that carry a
    client, each client with at least ``min_events`` requests in the window is
    tested against its own baseline share (an exponentially weighted average
    over past windows); a client without a baseline is tested against the
    median share of known clients. The test is binomial, Bonferroni-corrected
    across the clients tested in the window; the suite's false-alarm budget
    sets the level (:meth:`calibrate`). A flagged client's baseline is frozen
    while it stays flagged, so an attacker cannot teach the baseline that its
    volume is normal.

    Parameters
    ----------
    window
        Events carrying a client per window.
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
    >>> from detectors.client import ClientVolume
    >>> rng = np.random.default_rng(0)
    >>> keys = np.array(["a", "b", "c", "d"], dtype=object)
    >>> volume = ClientVolume(window=500, warmup_windows=2)
    >>> volume.calibrate(1e-4)
    >>> volume.update(rng.choice(keys, 5000))
    []

    A new key sends every other request:

    >>> callers = rng.choice(keys, 1000)
    >>> callers[::2] = "scraper"
    >>> [(o.client, o.index, round(o.share, 2), o.severity) for o in volume.update(callers)]
    [('scraper', 499, 0.5, 'critical'), ('scraper', 999, 0.5, 'critical')]

    References
    ----------
    .. [1] Tramèr, F., Zhang, F., Juels, A., Reiter, M. K., & Ristenpart, T.
       (2016). Stealing machine learning models via prediction APIs. In *25th
       USENIX Security Symposium* (pp. 601-618).
    .. [2] Dunn, O. J. (1961). Multiple comparisons among means. *Journal of the
       American Statistical Association*, 56(293), 52-64.
    """

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

    def _accumulate(self, callers: Callers, scores: np.ndarray | None, rows: np.ndarray) -> None:
        callers.count_into(self._counts, span(rows))

    def _close(self, index: int) -> list[ClientOutcome]:
        counts, total = self._counts, self.window
        flagged: list[ClientOutcome] = []
        if self.warm:
            typical = median(self._baseline.values())
            tested = sorted((c, n) for c, n in counts.items() if n >= self.min_events)
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

    def surging(self, callers: np.ndarray) -> dict[str, float]:
        """Callers whose share of ``callers`` (the requests so far of a window still
        open; None: no caller) fails this detector's test against their baselines:
        their shares. For a drift finding made before the window closes."""
        if not self.warm:
            return {}
        counts = Counter(c for c in callers.tolist() if c is not None)
        total = sum(counts.values())
        typical = median(self._baseline.values())
        tested = [(c, n) for c, n in sorted(counts.items()) if n >= self.min_events]
        level = self._alpha / max(1, len(tested))
        out = {}
        for client, n in tested:
            outcome = self._test(
                -1, client, n, n, total, self._baseline.get(client, typical), level
            )
            if outcome is not None:
                out[client] = outcome.share
        return out

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
