"""Alarm state per (detector, signal): raise on a new alarm or an escalation only.

A drift that persists keeps its signal in alarm; repeating the same alert every
window would be noise. A signal recovers after ``recover_after`` events with no
violation, and a later violation is a new alarm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detectors.base import SEVERITIES, Severity


@dataclass
class AlarmTracker:
    recover_after: int
    _active: dict[str, tuple[Severity, int]] | None = None

    def __post_init__(self) -> None:
        if self._active is None:
            self._active = {}

    def report(self, key: str, severity: Severity, event_index: int) -> str | None:
        """Record a violation; return "alarm" or "escalated" when it must be raised."""
        assert self._active is not None
        current = self._active.get(key)
        if current is None or event_index - current[1] > self.recover_after:
            self._active[key] = (severity, event_index)
            return "alarm"
        worst = current[0]
        if SEVERITIES.index(severity) > SEVERITIES.index(worst):
            self._active[key] = (severity, event_index)
            return "escalated"
        self._active[key] = (worst, event_index)
        return None

    def expire(self, event_index: int) -> None:
        """Forget recovered signals, so state stays small."""
        assert self._active is not None
        gone = [
            k for k, (_, last) in self._active.items() if event_index - last > self.recover_after
        ]
        for k in gone:
            del self._active[k]

    def dump(self) -> dict[str, Any]:
        assert self._active is not None
        return {
            "recover_after": self.recover_after,
            "active": [[k, s, i] for k, (s, i) in sorted(self._active.items())],
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> AlarmTracker:
        active: dict[str, tuple[Severity, int]] = {k: (s, int(i)) for k, s, i in state["active"]}
        return cls(recover_after=state["recover_after"], _active=active)
