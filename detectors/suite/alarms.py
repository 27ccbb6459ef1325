"""The state of each (detector, signal): ``ok`` or ``firing``, and when it changes.

A signal starts firing at its first violation (an alert: ``alarm``) and
escalates when a violation is more severe than any before (an alert:
``escalated``). Further violations while it fires confirm it (no alert: a
``confirmed`` change, so the store knows it was still firing when last tested).
It returns to ``ok`` once ``recover_after`` events (or metric points) pass
with no violation: for a windowed test, ``recover_windows`` consecutive windows
tested within the baseline. That is a ``resolved`` change. A later violation
is a new alarm.

Keys are ``detector|signal``, or ``detector|signal|kind`` where one detector
watches several kinds of anomaly on one signal (metric series): such a signal
resolves when its last kind does. Detector names never hold ``|``; signal
names may (they come from producers), so keys are split on the first ``|``
and, for kinded keys, the last.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from detectors.base import SEVERITIES, Severity, SignalChange, SignalChangeKind


@dataclass
class Firing:
    """A firing signal: its worst severity and the event index of its last violation."""

    severity: Severity
    last_index: int


@dataclass
class AlarmTracker:
    recover_after: int
    kinded: bool = False  # keys end in ``|kind`` (metric series)
    _active: dict[str, Firing] = field(default_factory=dict)
    # Changes since the last take_changes(), in order; a run of confirmations of
    # one key is kept as its latest. Drained at every flush, so never in a dump.
    _changes: list[SignalChange] = field(default_factory=list)
    _last_change: dict[str, int] = field(default_factory=dict)  # key -> position

    def report(
        self, key: str, severity: Severity, event_index: int, event_ts: float = math.nan
    ) -> str | None:
        """Record a violation; return "alarm" or "escalated" when it must be raised."""
        current = self._active.get(key)
        if current is not None and event_index - current.last_index >= self.recover_after:
            self._note(key, "resolved", current.severity, event_ts)  # and at once fires again
            current = None
        if current is None:
            self._active[key] = Firing(severity, event_index)
            self._note(key, "fired", severity, event_ts)
            return "alarm"
        if SEVERITIES.index(severity) > SEVERITIES.index(current.severity):
            self._active[key] = Firing(severity, event_index)
            self._note(key, "escalated", severity, event_ts)
            return "escalated"
        self._active[key] = Firing(current.severity, event_index)
        self._note(key, "confirmed", current.severity, event_ts)
        return None

    def _note(self, key: str, change: SignalChangeKind, severity: Severity, ts: float) -> None:
        detector, signal = self.split(key)
        firing = change != "resolved"
        noted = SignalChange(change, detector, signal, ts, severity, firing=firing)
        last = self._last_change.get(key)
        if change == "confirmed" and last is not None and self._changes[last].change == change:
            self._changes[last] = noted
            return
        self._last_change[key] = len(self._changes)
        self._changes.append(noted)

    def is_firing(self, key: str) -> bool:
        return key in self._active

    def firing_keys(self) -> list[str]:
        """The firing keys."""
        return list(self._active)

    def release(self, key: str) -> Firing:
        """Stop tracking a firing key (it moves to another tracker); no change is noted."""
        return self._active.pop(key)

    def adopt(self, key: str, firing: Firing) -> None:
        """Track a firing key released by another tracker."""
        self._active[key] = firing

    def expire(self, event_index: int, event_ts: float = math.nan) -> None:
        """Resolve the signals whose last violation is ``recover_after`` or more events back."""
        self.resolve_due(event_index, lambda _: event_ts)

    def resolve_due(self, upto: int, moment: Callable[[int], float]) -> None:
        """Resolve, in order, the signals whose recovery point (their last
        violation + ``recover_after``) is at most ``upto``; ``moment(point)``
        is the event time of the first evaluation at or after that point. Call it
        before each report and at the end of each batch: states then never depend
        on how the stream was cut."""
        due = sorted(
            (f.last_index + self.recover_after, k)
            for k, f in self._active.items()
            if f.last_index + self.recover_after <= upto
        )
        for point, key in due:
            was = self._active.pop(key)
            detector, signal = self.split(key)
            if self.kinded and any(self.split(k) == (detector, signal) for k in self._active):
                continue  # another kind of anomaly on this signal still fires
            self._note(key, "resolved", was.severity, moment(point))

    def split(self, key: str) -> tuple[str, str]:
        """(detector, signal) of a key."""
        detector, _, signal = key.partition("|")
        if self.kinded:
            signal = signal.rpartition("|")[0]
        return detector, signal

    def take_changes(self) -> list[SignalChange]:
        """The state changes since the last call, in order; then forget them."""
        changes, self._changes, self._last_change = self._changes, [], {}
        return changes

    def dump(self) -> dict[str, Any]:
        return {
            "recover_after": self.recover_after,
            "active": [[k, f.severity, f.last_index] for k, f in sorted(self._active.items())],
        }

    @classmethod
    def load(cls, state: dict[str, Any], kinded: bool = False) -> AlarmTracker:
        active = {k: Firing(severity, int(index)) for k, severity, index in state["active"]}
        return cls(recover_after=state["recover_after"], kinded=kinded, _active=active)
