"""The event-time clock of one model: a watermark over the bulk of its stream.

Event time comes from producers, so no single record may move the clock that
resolves incidents. The clock is the ``quorum``-th latest time among the last
``recent`` events seen: to move it to some time, at least ``quorum`` of any
``recent`` consecutive events must be dated that late. An ordinary stream moves
it along, a few events behind its newest; one record dated hours ahead (or a
handful among many) does not move it at all. It never goes backwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RECENT_EVENTS = 100
QUORUM = 10


class EventClock:
    def __init__(self, recent: int = RECENT_EVENTS, quorum: int = QUORUM) -> None:
        if not 1 <= quorum <= recent:
            raise ValueError(f"quorum must be between 1 and recent ({recent}), got {quorum}")
        self.recent = recent
        self.quorum = quorum
        self._times = np.zeros(0)
        self.now = float("-inf")

    def observe(self, times: Sequence[float]) -> float:
        """Take the event times that followed, in stream order; returns the clock."""
        if len(times) == 0:
            return self.now
        tail = np.asarray(times[-self.recent :], dtype=np.float64)
        self._times = np.concatenate((self._times, tail))[-self.recent :]
        if self._times.shape[0] >= self.quorum:
            candidate = float(np.partition(self._times, -self.quorum)[-self.quorum])
            if candidate > self.now:
                self.now = candidate
        return self.now
