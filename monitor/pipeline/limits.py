"""Bounds on what a stream can make the pipeline hold (``[limits]`` and the
``[detection]`` caps): whatever a producer sends, memory stays bounded.

- Feature names and metric series per model: ``detectors.suite.caps`` admits the
  first ones; ``keep_features`` drops the others from an event before any
  column is built for it.
- Models not in the config: counted by name, at most ``max_unlisted_models``
  names of at most ``UNLISTED_NAME_CHARS`` characters, the rest together; the
  same for fields CONTRACT §1 does not name (at most ``MAX_UNKNOWN_FIELDS``).
- Quarantined records: at most ``quarantine_raw_bytes`` of each kept (with the
  whole record's length and SHA-256), and a checkpoint due early once those
  waiting for one reach ``quarantine_buffer_records`` or ``quarantine_buffer_bytes``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Set
from typing import Any

from detectors.suite.model_detectors import ModelDetectors
from monitor.config import LimitsConfig
from monitor.store.store import QuarantinedRecord

UNLISTED_NAME_CHARS = 100
# The key of ``PipelineStats.unlisted`` counting the events of every name beyond the cap.
UNLISTED_OTHER = "(other models)"
# The ``model`` label of /metrics series counting events of models not in the config.
UNLISTED_LABEL = "(unlisted)"
# Top-level field names that CONTRACT §1 does not name, counted one by one at most.
MAX_UNKNOWN_FIELDS = 100
UNKNOWN_OTHER = "(other fields)"
# What a buffered quarantined record costs besides its raw bytes, roughly (objects, reason).
RECORD_OVERHEAD_BYTES = 512


def keep_features(
    features: dict[str, Any],
    keep: Set[str],
    detectors: ModelDetectors,
    warm_up: bool,
) -> tuple[dict[str, Any], int]:
    """An event's features without those outside ``keep``; and how many of its names
    the model does not track (beyond the cap, or new after the warm-up).

    During the warm-up (``warm_up``), new names are admitted first, in the order of
    the event's keys, while the cap has room.
    """
    cap = detectors.caps.features
    if warm_up:
        cap.admit_all(features)
    admitted = cap.names
    untracked = sum(1 for name in features if name not in admitted)
    return {k: v for k, v in features.items() if k in keep}, untracked


def count_unlisted(unlisted: Counter[str], model: str, limit: int) -> None:
    """One event of a model not in the config, counted with at most ``limit`` names."""
    count_named(unlisted, model, limit, UNLISTED_OTHER)


def count_named(counts: Counter[str], name: str, limit: int, other: str) -> bool:
    """Count one ``name`` (cut to ``UNLISTED_NAME_CHARS``) among at most ``limit``
    names, the rest under ``other``; True when the name is counted for the first time."""
    if len(name) > UNLISTED_NAME_CHARS:
        name = name[:UNLISTED_NAME_CHARS] + "…"
    if name in counts:
        counts[name] += 1
        return False
    if len(counts) < limit:
        counts[name] += 1
        return True
    counts[other] += 1
    return False


class QuarantineBuffer:
    """Quarantined records waiting for the next checkpoint, each cut to the raw-byte limit."""

    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits
        self.records: list[QuarantinedRecord] = []
        self.bytes = 0
        self.truncated = 0  # records whose raw bytes were cut, ever

    def add(self, record: QuarantinedRecord) -> None:
        kept = record.bounded(self.limits.quarantine_raw_bytes)
        if kept.raw_length is not None and kept.raw_length > len(kept.raw):
            self.truncated += 1
        self.records.append(kept)
        self.bytes += len(kept.raw) + len(kept.reason) + RECORD_OVERHEAD_BYTES

    @property
    def full(self) -> bool:
        """True once a checkpoint should write the records out, before it is otherwise due."""
        limits = self.limits
        return (
            len(self.records) >= limits.quarantine_buffer_records
            or self.bytes >= limits.quarantine_buffer_bytes
        )

    def clear(self) -> None:
        """After a checkpoint wrote them (a new list: the checkpoint's stays whole)."""
        self.records, self.bytes = [], 0
