"""Simulated traffic into Kafka: the simulator's events as records keyed by model.

Record values are the events' JSON, keys their model (CONTRACT §1), so each
model keeps its order on one partition. ``speed`` paces production against the
events' own time (1.0 = real time, 100 = a hundred times faster); without it
records go out as fast as the broker takes them. With ``event_time_stamps`` each
record carries its event's time as its Kafka timestamp, so a replay can select
a range of the simulated day with ``--since``/``--until``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.errors import DriftwardenError
from simulation.simulator import MALFORMED_KINDS, Truth, simulate

PROGRESS_EVERY = 5_000


def producer(bootstrap_servers: str | Sequence[str], timeout_ms: int = 15_000) -> Any:
    """A producer tuned for throughput; an unreachable broker is a one-line error."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    servers = [bootstrap_servers] if isinstance(bootstrap_servers, str) else bootstrap_servers
    try:
        return KafkaProducer(
            bootstrap_servers=list(servers),
            client_id="driftwarden-traffic",
            linger_ms=20,
            batch_size=256 * 1024,
            acks=1,
            bootstrap_timeout_ms=timeout_ms,
        )
    except KafkaError:
        raise DriftwardenError(
            f"no Kafka broker answers at {','.join(servers)}: start one (scripts/kafka start)"
        ) from None


def record_key(value: bytes) -> bytes | None:
    """The model of a record as its key; None for a record without one (it is malformed)."""
    try:
        model = orjson.loads(value).get("model")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return model.encode() if isinstance(model, str) else None


def produce_values(
    bootstrap_servers: str | Sequence[str],
    topic: str,
    values: Iterable[tuple[bytes, bytes | None, float | None]],
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Send (value, key, event time or None) records; returns how many, all acknowledged."""
    from kafka.errors import KafkaError

    out = producer(bootstrap_servers)
    count = 0
    stopped = False
    try:
        for value, key, ts in values:
            stamp = None if ts is None else round(ts * 1000)
            out.send(topic, key=key, value=value, timestamp_ms=stamp)
            count += 1
            if count % PROGRESS_EVERY == 0:
                if on_progress is not None:
                    on_progress(count)
                if should_stop is not None and should_stop():
                    stopped = True
                    break
        if not stopped:
            out.flush(timeout=120)
    except KafkaError as exc:
        raise DriftwardenError(f"producing to topic {topic} failed: {exc}") from None
    finally:
        out.close(timeout=2 if stopped else 10)
    if on_progress is not None:
        on_progress(count)
    return count


def produce_file(
    bootstrap_servers: str | Sequence[str],
    topic: str,
    path: Path,
    event_time_stamps: bool = False,
) -> int:
    """Every line of a JSONL file as one record keyed by its model.

    With ``event_time_stamps`` a record's timestamp is its event's ``ts`` (or, for
    a line without one, the previous line's), as a file replay would read it.
    """

    def lines() -> Iterable[tuple[bytes, bytes | None, float | None]]:
        last: float | None = None
        with path.open("rb") as handle:
            for line in handle:
                value = line.rstrip(b"\r\n")
                if not value.strip():
                    continue
                if event_time_stamps:
                    last = _event_ts(value, last)
                yield value, record_key(value), last

    return produce_values(bootstrap_servers, topic, lines())


def _event_ts(value: bytes, previous: float | None) -> float | None:
    try:
        ts = orjson.loads(value).get("ts")
    except (orjson.JSONDecodeError, AttributeError):
        return previous
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return float(ts)
    return previous


def produce_simulation(
    bootstrap_servers: str | Sequence[str],
    topic: str,
    events: int,
    seed: int = 7,
    *,
    malformed: int = 0,
    speed: float | None = None,
    event_time_stamps: bool = False,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[Truth, int]:
    """Produce ``events`` simulated events (plus ``malformed`` bad records) to ``topic``.

    Returns the truth (the injected incidents) and the number of records sent.
    ``speed``: event-time seconds per wall-clock second; None for as fast as possible.
    """
    if speed is not None and speed <= 0:
        raise ValueError("speed must be positive")
    stream, truth = simulate(events, seed)
    rng = np.random.default_rng(seed + 1)
    bad_at = set(rng.choice(events, size=min(malformed, events), replace=False).tolist())

    def records() -> Iterable[tuple[bytes, bytes | None, float | None]]:
        first_ts: float | None = None
        started = time.monotonic()
        for i, event in enumerate(stream):
            ts = float(event["ts"])
            stamp = ts if event_time_stamps else None
            if speed is not None:
                first_ts = ts if first_ts is None else first_ts
                ahead = (ts - first_ts) / speed - (time.monotonic() - started)
                if ahead > 0.002:
                    time.sleep(ahead)
            if i in bad_at:
                yield MALFORMED_KINDS[i % len(MALFORMED_KINDS)], None, stamp
            yield orjson.dumps(event), event["model"].encode(), stamp

    sent = produce_values(bootstrap_servers, topic, records(), on_progress, should_stop)
    return truth, sent
