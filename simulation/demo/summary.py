"""The end of ``driftwarden demo``: which injected incident was caught, and what on-call got.

The table matches each injected incident to the daemon's first alert on its
model and signal, and to the notifications the demo's receiver took in.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.table import Table

from monitor.cli.console import wide_console
from simulation.demo.receiver import DemoReceiver, Notification
from simulation.simulator import Truth


def print_results(store_path: Path, truth: Truth, receiver: DemoReceiver | None, out: Path) -> int:
    """Print the results table and the counts, and write ``truth.json`` to ``out``.

    Returns the demo's exit code: 1 when an injected incident was missed or no
    notification reached the receiver.
    """
    from monitor.store.store import Store
    from simulation.scorecard import false_alarms, score

    store = Store(store_path)
    try:
        results = score(store, truth.incidents)
        false = false_alarms(store, truth.incidents)
        alerts = store.count("alerts")
        incidents = store.count("incidents")
        quarantined = store.count("quarantine")
        incident_of = {
            r.incident.kind: _incident_of(store, r.incident, r.alert_ts)
            for r in results
            if r.alert_ts is not None
        }
        at_end = {r.incident.kind: _state_at_end(store, r.incident) for r in results}
    finally:
        store.close()
    notes = receiver.received() if receiver else []
    table = Table(title="Injected incidents and what the daemon made of them")
    for column in (
        "injected incident",
        "on",
        "what was injected",
        "detected after",
        "by detector",
        "severity",
        "notifications received",
        "at the end",
    ):
        table.add_column(column)
    for r in results:
        i = r.incident
        table.add_row(
            i.kind,
            f"{i.model}/{i.signal}",
            i.description,
            "MISSED"
            if r.delay_events is None or r.delay_seconds is None
            else f"{r.delay_events:,} events, {r.delay_seconds:,.1f} s",
            r.detector or "-",
            r.severity or "-",
            _notified(notes, i.model, i.signal, incident_of.get(i.kind)),
            at_end[i.kind],
        )
    console = wide_console(150)
    console.print(table)
    caught = sum(r.caught for r in results)
    rejected = receiver.rejected if receiver else 0
    console.print(
        f"caught {caught} of {len(results)} injected incidents; {alerts} alerts in "
        f"{incidents} incidents; alerts before any injection: {false}; "
        f"{quarantined} records quarantined"
    )
    console.print(
        f"{len(notes)} notifications received, "
        f"{'all' if not rejected else f'{rejected} NOT'} signed correctly"
    )
    truth_path = out / "truth.json"
    truth_path.write_text(truth.to_json(), encoding="utf-8")
    console.print(
        f"store: {store_path}; injected incidents: {truth_path}\n"
        f"  driftwarden incidents list --store {store_path}\n"
        f"  driftwarden score --store {store_path} --truth {truth_path}"
    )
    missed = [r.incident.kind for r in results if not r.caught]
    if missed:
        print(
            f"driftwarden demo: {len(missed)} of {len(results)} injected incidents were not "
            f"detected: {', '.join(missed)}",
            file=sys.stderr,
        )
        return 1
    if not notes:
        print("driftwarden demo: no notification reached the receiver", file=sys.stderr)
        return 1
    return 0


def _incident_of(store: Any, injected: Any, alert_ts: float) -> int | None:
    """The incident that the detecting alert of an injected incident joined."""
    row = store.db.execute(
        "SELECT incident_id FROM alerts WHERE model = ? AND signal = ? AND event_ts = ? "
        "ORDER BY id LIMIT 1",
        [injected.model, injected.signal, alert_ts],
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _state_at_end(store: Any, injected: Any) -> str:
    """Whether the injected incident's signal still fires when the demo ends."""
    rows = store.db.execute(
        "SELECT detector, state FROM signal_state WHERE model = ? AND signal = ? ORDER BY detector",
        [injected.model, injected.signal],
    ).fetchall()
    firing = [detector for detector, state in rows if state == "firing"]
    if firing:
        return "still firing (" + ", ".join(firing) + ")"
    return "resolved" if rows else "-"


def _notified(notes: list[Notification], model: str, signal_name: str, incident: int | None) -> str:
    """The notifications that told on-call about this signal (one per incident change).

    A detection joining an incident that was already notified, at the same
    severity, is sent as a "new signals" update at most every group interval.
    """
    matching = [n for n in notes if n.mentions(model, signal_name)]
    if matching:
        kinds = ", ".join(f"{n.kind}/{n.reason}" for n in matching)
        return f"{len(matching)}: {kinds}"
    if incident is not None and any(n.incident_id == incident for n in notes):
        return f"0: joined incident #{incident}, already notified"
    return "0"
