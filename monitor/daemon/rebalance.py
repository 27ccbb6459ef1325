"""What the consumer loop shares with its callbacks: its status, and the rebalance listener.

kafka-python calls the listener on its IO thread; it hands over to the daemon,
which checkpoints before partitions go and seeks to stored offsets when they come.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

if TYPE_CHECKING:
    from monitor.daemon.daemon import Daemon

log = logging.getLogger("driftwarden.daemon")


@dataclass
class DaemonStatus:
    assigned: int = 0
    broker_up: bool = False
    outage_since: float | None = None
    started: bool = False


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        _reporting("revoking partitions failed", self.daemon.on_revoked, revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        _reporting("taking assigned partitions failed", self.daemon.on_assigned, assigned)


def _reporting(
    what: str, callback: Callable[[set[TopicPartition]], None], partitions: set[TopicPartition]
) -> None:
    """Run a rebalance callback, logging its exception once: kafka-python swallows it into
    "User rebalance callback throws an error" on every later poll. A store error is the
    daemon's to report (it stops on it, with one line)."""
    try:
        callback(partitions)
    except sqlite3.Error:
        raise
    except Exception:
        log.exception(what)
        raise


def partition_names(partitions: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)
