"""Parse and route: the one loop body of the daemon, the file replay and the Kafka replay.

A record is parsed against the time bounds of its source (the daemon's live
bounds, or a replay's); a malformed one goes to the pipeline's quarantine with
its position, any other is fed to its model's pipeline (``deliver``, also for
records parsed elsewhere: the daemon's fetch process). The caller then asks
its ``Checkpoint`` whether one is due.
"""

from __future__ import annotations

import math

from monitor.ingest.events import Event, Malformed, Row, TimeBounds, parse_record
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
) -> tuple[str | None, float, bool]:
    """Parse one record into ``pipeline``: quarantined, or fed to its model.

    Returns the event's model (None when the record is malformed and quarantined),
    its event time (NaN when malformed), and whether it was fed to a model in the
    config. ``raw`` is what a quarantine keeps (default: ``value``).
    """
    parsed = parse_record(value, default_ts, bounds)
    if type(parsed) is tuple:  # the usual prediction, before anything else is looked at
        return parsed[0], parsed[1], pipeline.feed_row(parsed)
    if raw is None:
        raw = value if isinstance(value, bytes) else b""
    return deliver(pipeline, parsed, source, topic, partition, offset, raw)


def deliver(
    pipeline: Pipeline,
    parsed: Row | Event | Malformed,
    source: str,
    topic: str | None,
    partition: int | None,
    offset: int | None,
    raw: bytes,
) -> tuple[str | None, float, bool]:
    """A parsed record into ``pipeline``, as ``route`` gives it: ``raw`` is what a
    quarantine keeps of a malformed one."""
    if type(parsed) is tuple:  # the usual prediction: fed as a row, no Event made
        return parsed[0], parsed[1], pipeline.feed_row(parsed)
    if isinstance(parsed, Malformed):
        pipeline.quarantine(QuarantinedRecord(source, parsed.reason, raw, topic, partition, offset))
        return None, math.nan, False
    assert isinstance(parsed, Event)
    return parsed.model, parsed.ts, pipeline.feed(parsed)
