"""Where in its season a series sits flat as a matter of course.

Daily counts that fall to exactly zero every night make a long run of one
value each night: improbable at the day's rate of repeats, yet the series'
own behaviour. Each half-hour bucket of event time that a long run covered
(from the run's first point on, once it is ``flat_run`` long) is remembered
by its phase in the week with the run's value. A flat-line is expected when
the same value sat flat in its bucket (or either neighbour, for a night
that starts a little early or late) a day or a week before: a flat run that
recurs at its phase is normal; a run where the series varied one period back
(a stuck sensor, a metric frozen during the busy day) is not.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.metric.season import BUCKET_SECONDS, DAY, WEEK

JITTER = 1  # buckets either side a recurring run may start early or late


class FlatPhases:
    def __init__(self) -> None:
        # week phase -> (absolute bucket, value) of the latest long run there
        self._seen: dict[int, tuple[int, float]] = {}
        self._onset = math.nan  # event time of the current run's first point
        self._marked = -1  # the newest absolute bucket marked for this run

    def see(self, t: float, x: float, run: int, flat_run: int) -> None:
        """One point at event time ``t``, ``run`` identical values long."""
        if run <= 1:
            self._onset, self._marked = t, -1
        if run < flat_run or not math.isfinite(self._onset):
            return
        last = _bucket(t)
        for b in range(max(_bucket(self._onset), self._marked + 1), last + 1):
            self._seen[b % WEEK] = (b, x)
        self._marked = last

    def recurs(self, t: float, x: float) -> bool:
        """Whether ``x`` sat flat at this phase a day or a week before, in an
        earlier run (at a slow cadence one run may last longer than a day:
        it does not make itself expected)."""
        now = _bucket(t)
        onset = _bucket(self._onset) if math.isfinite(self._onset) else now + 1
        for back in (DAY, WEEK):
            for b in range(now - back - JITTER, now - back + JITTER + 1):
                if b < onset and self._seen.get(b % WEEK) == (b, x):
                    return True
        return False

    def dump(self) -> dict[str, Any]:
        return {
            "seen": [[phase, b, x] for phase, (b, x) in sorted(self._seen.items())],
            "onset": self._onset if math.isfinite(self._onset) else None,
            "marked": self._marked,
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> FlatPhases:
        out = cls()
        out._seen = {int(p): (int(b), float(x)) for p, b, x in state["seen"]}
        onset = state["onset"]
        out._onset = math.nan if onset is None else float(onset)
        out._marked = int(state["marked"])
        return out


def _bucket(t: float) -> int:
    return math.floor(t / BUCKET_SECONDS)
