"""The report's "Reproduce" section: a replay command that re-finds an incident.

A store says where its events came from: a daemon or a Kafka replay records
the topics it read in ``offsets``; a file replay records none. The file replay
of the same events with the same config writes the same alerts, row for row.

A Kafka replay selects records by their Kafka record times (the producer's
timestamps), not by event times, which can be anything a producer wrote. So
the bounds come from the wall clock the store kept: every record of the
incident was produced before its last alert was written (``created_at``), and
the daemon (``auto_offset_reset = earliest``) learned its reference from the
start of the topic.
"""

from __future__ import annotations

import math
import shlex
import statistics
from html import escape

from monitor.cli.timefmt import iso, moment
from monitor.config import Config
from monitor.report.data import IncidentRow, ReportData, config_in_force

UNTIL_MARGIN = 60.0  # seconds of record time after the last alert was written


def reproduce(
    incident: IncidentRow, data: ReportData, config_path: str | None, config: Config | None
) -> str:
    load = config_in_force(data.config_loads, incident.opened_at)
    conf = shlex.quote(config_path or (load.source if load is not None else "CONFIG"))
    reference, reference_note = _reference(incident, data)
    if not data.topics:
        command = f"driftwarden replay --config {conf} --input EVENTS.jsonl --store NEW.db"
        notes = [
            "This store was written by a file replay (it records no Kafka offsets). Replay the "
            "same file of events with the same config: the alerts come back row for row. The "
            "store does not record the file's name: <code>EVENTS.jsonl</code> stands for it."
        ]
        if conf == "CONFIG":
            notes.append("<code>CONFIG</code> stands for the config the store was written with.")
        return _section([command + reference], notes + reference_note)
    return _kafka(incident, data, conf, reference, reference_note)


def _kafka(
    incident: IncidentRow, data: ReportData, conf: str, reference: str, reference_note: list[str]
) -> str:
    written = incident.last_created_at
    until = (written if written is not None else incident.opened_at) + UNTIL_MARGIN
    lines = [
        f"driftwarden replay --config {conf} --topic {shlex.quote(t)} --since 0 "
        f"--until {_time_arg(until)} --store NEW.db{reference}"
        for t in data.topics
    ]
    notes = [
        "<code>--since</code> and <code>--until</code> are Kafka record times (when the "
        "events were produced), not event times: the incident's event times are "
        f"{escape(iso(incident.first_event_ts))} to {escape(iso(incident.last_event_ts))}. "
        "The range starts at the topic's start, where the daemon learned its reference, and "
        f"ends {UNTIL_MARGIN:.0f} s after the incident's last alert was written "
        f"({escape(iso(until - UNTIL_MARGIN))} on the daemon's clock): every record of the "
        "incident was produced before then. Records the topic no longer retains cannot be "
        "replayed: then the reference is learned from what remains."
    ]
    shorter = _shorter_since(incident, data, until)
    if shorter is not None:
        since, why = shorter
        lines += [
            f"driftwarden replay --config {conf} --topic {shlex.quote(t)} --since "
            f"{_time_arg(since)} --until {_time_arg(until)} --store NEW.db{reference}"
            for t in data.topics
        ]
        notes.append(
            "The shorter range (second command) starts early enough, if record times run with "
            f"event times, for the detectors to learn a reference before the incident "
            f"({escape(why)}): it re-finds the drift, but against a reference learned from that "
            "range rather than the original one."
        )
    return _section(lines, notes + reference_note)


def _reference(incident: IncidentRow, data: ReportData) -> tuple[str, list[str]]:
    """``--reference FILE`` where the model's baseline came from a file, and what to give."""
    found = data.baseline_files.get(incident.model)
    if found is None:
        return "", []
    note = (
        f"The reference of <code>{escape(incident.model)}</code> was set from the file "
        f"<code>{escape(found.source)}</code> (sha256 <code>{escape(found.sha256)}</code>, "
        f"by <code>{escape(found.requested_by)}</code>): the replay needs it as "
        "<code>--reference</code>. The store records its name only: give its path."
    )
    return f" --reference {shlex.quote(found.source)}", [note]


def _section(lines: list[str], notes: list[str]) -> str:
    paragraphs = "".join(f'<p class="note">{n}</p>' for n in notes)
    return f'<pre class="reproduce">{escape(chr(10).join(lines))}</pre>{paragraphs}'


def _time_arg(ts: float) -> str:
    """A ``--since``/``--until`` value: RFC 3339, or epoch seconds past what a date shows."""
    return iso(ts) if moment(ts) is not None else shlex.quote(f"{ts:.17g}")


def _shorter_since(
    incident: IncidentRow, data: ReportData, until: float
) -> tuple[float, str] | None:
    """A start this many seconds before the incident: reference plus window at the alert rate."""
    spans = [
        a.event_ts - start
        for a in incident.alerts
        if isinstance(start := a.details.get("window_start_ts"), int | float)
        and not isinstance(start, bool)
        and a.event_ts > start
    ]
    ref = data.references.get(incident.model)
    written = incident.last_created_at
    if not spans or ref is None or not ref.window or ref.reference_size is None or not written:
        return None
    window_seconds = statistics.median(spans)
    seconds = window_seconds * (ref.reference_size + ref.window) / ref.window
    first_written = written - (incident.last_event_ts - incident.first_event_ts)
    since = first_written - seconds
    if not (math.isfinite(since) and since < until):
        return None
    return since, (
        f"reference {ref.reference_size:,} + window {ref.window:,} events ≈ {seconds:,.0f} s "
        "at the rate of the alert windows"
    )
