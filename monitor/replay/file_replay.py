"""Replay: the pipeline over a JSONL file, deterministically and as fast as it can."""

from __future__ import annotations

import heapq
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from monitor.cli.progress import Progress
from monitor.cli.safe_text import printable
from monitor.config import Config
from monitor.errors import DriftwardenError
from monitor.pipeline import reference_file
from monitor.pipeline.checkpoint import Checkpoint
from monitor.pipeline.label_join import LabelCounts
from monitor.pipeline.limits import UNLISTED_OTHER
from monitor.pipeline.pipeline import Pipeline, PipelineStats, collect_garbage_rarely
from monitor.pipeline.routing import route
from monitor.store.lease import StoreLease
from monitor.store.store import Store

CHECKPOINT_LINES = 50_000
UNLISTED_SHOWN = 20  # unlisted models named in the summary, the most frequent first
UNLISTED_NAME_LIMIT = 100  # characters of each of their names


@dataclass
class ReplayResult:
    stats: PipelineStats
    lines: int
    seconds: float


def open_replay_store(path: str | Path, overwrite: bool) -> Store:
    """The store a replay writes, owned by the replay until ``close``.

    Refused while a daemon (or another replay) holds the store: a replay's
    alerts must not mix into a live store, and ``--overwrite`` must not empty
    it under a running daemon. ``--overwrite`` keeps the references set with
    ``driftwarden baseline set``: the replay builds its models' baselines from them.
    """
    advice = "stop it first, or replay into another --store"
    lease = StoreLease.exclusive(path, "driftwarden replay", advice)
    try:
        store = Store(path)
    except BaseException:
        lease.release()
        raise
    store.lease = lease
    try:
        if store.count("alerts") or store.count("model_state"):
            if not overwrite:
                raise DriftwardenError(
                    f"store {path} already holds alerts or detector state: "
                    "give another --store or pass --overwrite to start it afresh"
                )
            with store.transaction() as db:
                tables = (
                    "alerts",
                    "incidents",
                    "quarantine",
                    "model_state",
                    "state_blobs",
                    "label_batches",
                    "label_chunks",
                    "label_index",
                    "label_joined",
                    "label_counts",
                    "performance_windows",
                    "signal_history",
                    "signal_state",
                )
                for table in (*tables, "offsets", "outbox", "incident_notifications", "audit"):
                    db.execute(f"DELETE FROM [{table}]")
                reference_file.rearm(db)  # a reference set in the store is built again
    except BaseException:
        store.close()
        raise
    return store


def print_summary(
    what: str, seconds: float, stats: PipelineStats, incidents: int, store_path: str | Path
) -> None:
    """The closing lines of a replay, from a file or from Kafka."""
    rate = stats.processed / seconds if seconds > 0 else 0.0
    line = (
        f"replayed {what} in {seconds:.1f} s ({rate:,.0f} events/s): "
        f"{stats.processed:,} events processed, {stats.quarantined:,} quarantined, "
        f"{stats.alerts:,} alerts in {incidents:,} incidents; store {store_path}"
    )
    print(printable(line, limit=None))
    for model, counts in sorted(stats.labels.items()):
        print(printable(label_line(model, counts), limit=None))
    if stats.unlisted:
        print(unlisted_models(stats.unlisted), file=sys.stderr)
    if stats.unknown_fields:
        print(unknown_fields(stats.unknown_fields), file=sys.stderr)


def label_line(model: str, counts: LabelCounts) -> str:
    """One model's label join in a line: how many labels joined, and what became of the rest."""
    rate = counts.joined / counts.labels if counts.labels else 0.0
    return (
        f"labels of {printable(model, UNLISTED_NAME_LIMIT)}: {counts.labels:,} labels, "
        f"{counts.joined:,} joined ({rate:.1%}), {counts.late:,} late, "
        f"{counts.unmatched:,} unmatched, {counts.duplicate:,} duplicate; predictions "
        f"unlabelled: {counts.evicted:,} evicted, {counts.expired:,} expired"
    )


def unknown_fields(counts: Counter[str]) -> str:
    """The fields the detectors ignored, the most frequent first (bounded, escaped)."""
    top = heapq.nsmallest(UNLISTED_SHOWN, counts.items(), key=lambda item: (-item[1], item[0]))
    names = ", ".join(f"{printable(name, UNLISTED_NAME_LIMIT)} ({n:,})" for name, n in top)
    line = f"ignored fields the event format does not name (see README, Events): {names}"
    if len(counts) > len(top):
        line += f" and {len(counts) - len(top):,} more"
    return line


def unlisted_models(counts: Counter[str]) -> str:
    """The models skipped for want of a config entry: producers name them, so the line is
    bounded: the most frequent few, each name shortened, and how many more."""
    named = ((m, n) for m, n in counts.items() if m != UNLISTED_OTHER)
    top = heapq.nsmallest(UNLISTED_SHOWN, named, key=lambda item: (-item[1], item[0]))
    names = ", ".join(f"{printable(m, UNLISTED_NAME_LIMIT)} ({n:,})" for m, n in top)
    line = f"skipped events of models not listed in the config: {names}"
    rest = len(counts) - len(top) - (UNLISTED_OTHER in counts)
    events = counts.total() - sum(n for _, n in top)
    if UNLISTED_OTHER in counts:
        # Past the tracked names, models are counted together, not one by one.
        line += f" and {rest:,}+ more models with {events:,} event(s)"
    elif rest:
        line += f" and {rest:,} more model(s) with {events:,} event(s)"
    return line


def replay_file(config: Config, store: Store, input_path: Path, progress: Progress) -> ReplayResult:
    try:
        handle: BinaryIO = input_path.open("rb")
    except OSError as exc:
        raise DriftwardenError(f"cannot read input {input_path}: {exc.strerror}") from None
    pipeline = Pipeline(config, store)
    collect_garbage_rarely()
    source = f"file:{input_path.name}"
    bounds = config.events.replay_bounds(time.time())
    started = time.perf_counter()
    last_ts: float | None = None
    line_no = 0
    due = Checkpoint(every_records=CHECKPOINT_LINES)  # lines, blank ones included
    with handle:
        progress.start(total=input_path.stat().st_size)
        for line_no, line in enumerate(handle, start=1):
            due.count()
            if line.strip():
                raw = line.rstrip(b"\r\n")
                model, ts, _ = route(
                    pipeline, line, last_ts, bounds, source, offset=line_no, raw=raw
                )
                if model is not None:
                    last_ts = ts
            why = due.due(pipeline.quarantine_full)
            if why is not None:
                pipeline.checkpoint()
                due.taken()
                if why == "records":
                    progress.advance(handle.tell(), pipeline.stats.processed)
        pipeline.checkpoint()
        progress.finish()
    return ReplayResult(pipeline.stats, line_no, time.perf_counter() - started)
