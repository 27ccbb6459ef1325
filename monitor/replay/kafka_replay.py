"""``driftwarden replay --topic``: the pipeline over a Kafka time range.

The replay reads a topic between two record timestamps without joining any
consumer group: it assigns the partitions itself, finds the range with
``offsets_for_times`` and reads each partition in offset order up to the end
offset fixed when the replay starts. It never commits, so the live group's
offsets stay exactly where the daemon left them.

Partitions are read one after the other in partition order. Records are keyed
by model, so one model's events live on one partition and reach its pipeline in
offset order: the alerts are the same as the live run's and the same on every
replay of the same range. Where it read to goes to the store's ``offsets``
under the group ``(replay)``, which no daemon reads.

``--compare DB`` is handled by ``monitor.replay.compare``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.cli.progress import Progress
from monitor.cli.timefmt import iso
from monitor.config import Config, load_config
from monitor.daemon import kafka_client
from monitor.daemon.kafka_client import open_consumer
from monitor.errors import DriftwardenError
from monitor.pipeline import baseline_set
from monitor.pipeline.checkpoint import Checkpoint
from monitor.pipeline.pipeline import Pipeline, PipelineStats, collect_garbage_rarely
from monitor.pipeline.routing import route
from monitor.replay.compare import check_compare_target, compare_stores, print_comparison
from monitor.replay.file_replay import print_summary
from monitor.store.errors import store_errors
from monitor.store.store import REPLAY_GROUP, Store

CHECKPOINT_RECORDS = 50_000
PROGRESS_RECORDS = 2_000
# A partition whose records stop arriving for this long is reported, not waited on forever.
STALL_SECONDS = 60.0
CONNECT_TIMEOUT_MS = kafka_client.CONNECT_TIMEOUT_MS


# --------------------------------------------------------------------------- options


def register_replay_options(replay: argparse.ArgumentParser) -> None:
    """The source options of ``driftwarden replay``: a file or a Kafka time range.

    Adds ``--input`` and ``--topic`` (exactly one is required), ``--since``,
    ``--until``, ``--reference`` and ``--compare``. ``--config``, ``--store`` and ``--overwrite``
    stay where the replay command defines them.
    """
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="events, one JSON object per line")
    source.add_argument("--topic", help="a Kafka topic to replay (with --since) instead of a file")
    replay.add_argument(
        "--since",
        metavar="TIME",
        help="with --topic: first record time, RFC 3339 with a zone or epoch seconds",
    )
    replay.add_argument(
        "--until",
        metavar="TIME",
        help="with --topic: records before this time (default: everything there at the start)",
    )
    replay.add_argument(
        "--reference",
        metavar="REFERENCE.jsonl",
        help="first set every configured model's reference from a sample of this file of events",
    )
    replay.add_argument(
        "--compare",
        metavar="DB",
        help="afterwards, list the alerts that appear or vanish against this other store",
    )


def check_replay_options(args: argparse.Namespace) -> None:
    """Refuse option combinations argparse cannot express; call before replaying a file."""
    if getattr(args, "topic", None) is None:
        for name in ("since", "until"):
            if getattr(args, name, None) is not None:
                raise DriftwardenError(f"--{name} goes with --topic, not with --input")
    elif getattr(args, "since", None) is None:
        raise DriftwardenError(
            "--topic needs --since TIME (RFC 3339 with a zone, or epoch seconds; 0 for the start)"
        )


def parse_time(text: str, option: str) -> float:
    """RFC 3339 with a zone, or epoch seconds, as epoch seconds."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if seconds < 0 or seconds != seconds or seconds in (float("inf"), float("-inf")):
            raise DriftwardenError(f"{option} {text!r}: epoch seconds must be 0 or more")
        return seconds
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise DriftwardenError(
            f"{option} {text!r} is neither RFC 3339 (2026-11-26T07:00:00Z) nor epoch seconds"
        ) from None
    if moment.tzinfo is None:
        raise DriftwardenError(
            f"{option} {text!r} has no time zone: add Z or an offset such as +01:00"
        )
    seconds = moment.timestamp()
    if seconds < 0:
        raise DriftwardenError(f"{option} {text!r} is before 1970")
    return seconds


# --------------------------------------------------------------------------- replay


@dataclass(frozen=True)
class PartitionRange:
    """Offsets [start, stop) of one partition: the records of the time range."""

    topic: str
    partition: int
    start: int
    stop: int

    @property
    def records(self) -> int:
        return max(0, self.stop - self.start)


@dataclass
class KafkaReplayResult:
    stats: PipelineStats
    records: int
    seconds: float
    ranges: list[PartitionRange] = field(default_factory=list)


def connect(bootstrap_servers: Sequence[str], timeout_ms: int | None = None) -> Any:
    """A consumer in no group: it assigns partitions itself and never commits."""
    return open_consumer(
        bootstrap_servers,
        timeout_ms if timeout_ms is not None else CONNECT_TIMEOUT_MS,
        group_id=None,
        client_id="driftwarden-replay",
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        max_poll_records=500,
        retry_backoff_ms=20,
        reconnect_backoff_max_ms=2000,
    )


def plan_ranges(
    consumer: Any, topic: str, since: float, until: float | None
) -> list[PartitionRange]:
    """Per partition, the offsets of the records with timestamps in [since, until).

    ``until`` absent: up to the end offsets as they are now, so records produced
    while the replay runs are not read.
    """
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise DriftwardenError(f"topic {topic!r} does not exist on the broker")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = consumer.end_offsets(tps)
        firsts = consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
        lasts = (
            consumer.offsets_for_times({tp: int(until * 1000) for tp in tps})
            if until is not None
            else {}
        )
    except KafkaError as exc:
        raise DriftwardenError(f"Kafka refused the offsets of topic {topic!r}: {exc}") from None
    ranges = []
    for tp in tps:
        first = firsts.get(tp)
        start = first.offset if first is not None else ends[tp]
        stop = ends[tp]
        if until is not None and lasts.get(tp) is not None:
            stop = min(stop, lasts[tp].offset)
        ranges.append(PartitionRange(topic, tp.partition, start, max(start, stop)))
    return ranges


def replay_topic(
    config: Config,
    store: Store,
    topic: str,
    since: float,
    until: float | None,
    progress: Progress,
    bootstrap_servers: Sequence[str] | None = None,
) -> KafkaReplayResult:
    """Run the pipeline over the records of ``topic`` with timestamps in [since, until)."""
    if until is not None and until <= since:
        raise DriftwardenError(f"--until ({iso(until)}) must be after --since ({iso(since)})")
    consumer = connect(bootstrap_servers or config.kafka.bootstrap_servers)
    try:
        ranges = plan_ranges(consumer, topic, since, until)
        return _replay_ranges(config, store, consumer, ranges, progress)
    finally:
        consumer.close(autocommit=False)


def _replay_ranges(
    config: Config,
    store: Store,
    consumer: Any,
    ranges: list[PartitionRange],
    progress: Progress,
) -> KafkaReplayResult:
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    # Where it read to is recorded under a group of its own: never a live group's offsets.
    pipeline = Pipeline(config, store, offsets_group=REPLAY_GROUP)
    collect_garbage_rarely()
    bounds = config.events.replay_bounds(time.time())
    started = time.perf_counter()
    due = Checkpoint(every_records=CHECKPOINT_RECORDS)
    count = 0
    progress.start(total=sum(r.records for r in ranges))
    try:
        for span in ranges:
            if span.records == 0:
                continue
            tp = TopicPartition(span.topic, span.partition)
            source = f"kafka:{span.topic}"
            consumer.assign([tp])
            consumer.seek(tp, span.start)
            position = span.start
            last_progress = time.monotonic()
            while position < span.stop:
                try:
                    polled = consumer.poll(timeout_ms=1000)
                except KafkaError as exc:
                    raise DriftwardenError(
                        f"reading {span.topic}[{span.partition}] at offset {position} failed: {exc}"
                    ) from None
                records = polled.get(tp, [])
                if not records:
                    # Offsets can have gaps (compaction, transaction markers).
                    position = max(position, consumer.position(tp) or position)
                    if time.monotonic() - last_progress > STALL_SECONDS:
                        raise DriftwardenError(
                            f"no records from {span.topic}[{span.partition}] for "
                            f"{STALL_SECONDS:.0f} s at offset {position} (range ends at "
                            f"{span.stop}): is the broker still up?"
                        )
                    continue
                last_progress = time.monotonic()
                for record in records:
                    if record.offset >= span.stop:
                        position = span.stop
                        break
                    route(
                        pipeline,
                        record.value,
                        record.timestamp / 1000.0,
                        bounds,
                        source,
                        span.topic,
                        span.partition,
                        record.offset,
                    )
                    position = record.offset + 1
                    due.advance(span.topic, span.partition, position)
                    due.count()
                    count += 1
                    if due.due(pipeline.quarantine_full):
                        pipeline.checkpoint(due.offsets)
                        due.taken()
                    if count % PROGRESS_RECORDS == 0:
                        progress.advance(count, pipeline.stats.processed)
        pipeline.checkpoint(due.offsets)
    finally:
        progress.finish()
    return KafkaReplayResult(pipeline.stats, count, time.perf_counter() - started, ranges)


def run_kafka_replay(args: argparse.Namespace) -> int:
    """``driftwarden replay --topic T --since TIME [--until TIME]``: the CLI's handler."""
    from monitor.replay.file_replay import open_replay_store

    check_replay_options(args)
    since = parse_time(args.since, "--since")
    until = parse_time(args.until, "--until") if args.until is not None else None
    if until is not None and until <= since:
        raise DriftwardenError(f"--until ({iso(until)}) must be after --since ({iso(since)})")
    config = load_config(args.config)
    store_path = args.store or config.store.path
    check_compare_target(args, store_path)
    reference = baseline_set.sample_for_replay(config, args.reference)
    consumer = connect(config.kafka.bootstrap_servers)
    try:
        # The topic and its range first: a replay that cannot run leaves no store behind.
        ranges = plan_ranges(consumer, args.topic, since, until)
        with store_errors(store_path):
            store = open_replay_store(store_path, args.overwrite)
            try:
                baseline_set.record_for_replay(config, store, reference)
                result = _replay_ranges(config, store, consumer, ranges, Progress("replay"))
                incidents = store.count("incidents")
            finally:
                store.close()
    finally:
        consumer.close(autocommit=False)
    stats = result.stats
    window = f"{iso(since)} .. {iso(until) if until is not None else 'end'}"
    spans = ", ".join(f"[{r.partition}] {r.start}-{r.stop}" for r in result.ranges)
    what = f"{result.records:,} records of topic {args.topic} ({window}; offsets {spans})"
    print_summary(what, result.seconds, stats, incidents, store_path)
    if args.compare:
        print_comparison(compare_stores(store_path, args.compare))
    return 0
