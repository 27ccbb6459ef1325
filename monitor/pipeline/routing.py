"""Parse and route: the one loop body of the daemon, the file replay and the Kafka replay.

A record is parsed against the time bounds of its source (the daemon's live
bounds, or a replay's); a malformed one goes to the pipeline's quarantine with
its position, any other is fed to its model's pipeline. The caller then asks
its ``Checkpoint`` whether one is due.
"""

from __future__ import annotations

from monitor.ingest.events import Event, Malformed, TimeBounds, parse_event
from monitor.pipeline.pipeline import Pipeline
from monitor.store.store import QuarantinedRecord


def route(
    pipeline: Pipeline,
    value: bytes | str,
    default_ts: float | None,
    bounds: TimeBounds,
    source: str,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    raw: bytes | None = None,
) -> tuple[Event | Malformed, bool]:
    """Parse one record into ``pipeline``: quarantined, or fed to its model.

    Returns the parsed event (or why it is malformed) and whether it was fed to
    a model in the config. ``raw`` is what a quarantine keeps (default: ``value``).
    """
    parsed = parse_event(value, default_ts, bounds)
    if isinstance(parsed, Malformed):
        if raw is None:
            raw = value if isinstance(value, bytes) else b""
        pipeline.quarantine(QuarantinedRecord(source, parsed.reason, raw, topic, partition, offset))
        return parsed, False
    return parsed, pipeline.feed(parsed)
