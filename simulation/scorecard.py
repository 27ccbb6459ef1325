"""Score a run against the simulator's truth: was each injected incident caught, and how fast?"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from monitor.store.store import Store
from simulation.simulator import EVENT_SPACING, InjectedIncident


@dataclass(frozen=True)
class Detection:
    incident: InjectedIncident
    alert_ts: float | None
    detector: str | None
    severity: str | None

    @property
    def caught(self) -> bool:
        return self.alert_ts is not None

    @property
    def delay_seconds(self) -> float | None:
        return None if self.alert_ts is None else self.alert_ts - self.incident.start_ts

    @property
    def delay_events(self) -> int | None:
        delay = self.delay_seconds
        return None if delay is None else round(delay / EVENT_SPACING)


def load_truth(path: Path) -> list[InjectedIncident]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [InjectedIncident(**item) for item in raw["incidents"]]


def score(store: Store, truth: list[InjectedIncident]) -> list[Detection]:
    """The first alert on the injected model and signal at or after each onset."""
    results = []
    for incident in truth:
        row = store.db.execute(
            "SELECT event_ts, detector, severity FROM alerts WHERE model = ? AND event_ts >= ? "
            "AND signal = ? ORDER BY event_ts, id LIMIT 1",
            [incident.model, incident.start_ts, incident.signal],
        ).fetchone()
        if row is None:
            results.append(Detection(incident, None, None, None))
        else:
            results.append(Detection(incident, float(row[0]), row[1], row[2]))
    return results


def false_alarms(store: Store, truth: list[InjectedIncident]) -> int:
    """Alerts on a model before anything was injected into it: false by construction.

    Later alerts on other signals may be real consequences (a drifting input moves
    the score), so they are not counted either way.
    """
    count = 0
    for model, ts in store.db.execute("SELECT model, event_ts FROM alerts"):
        onsets = [i.start_ts for i in truth if i.model == model]
        if not onsets or ts < min(onsets):
            count += 1
    return count
