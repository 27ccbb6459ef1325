"""``[cluster]``: cluster mode's switch, its topics and its transactions.

Kept apart from ``monitor.config`` (which builds and checks it like any other
table) so that single-machine mode never meets it. Topic names left empty
default from the consumer group: ``<group_id>-changelog``, ``-alerts``,
``-quarantine`` and ``-deliveries``.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass

# Kafka's own limits on transaction.timeout.ms (the broker caps it at 15 minutes).
MIN_TRANSACTION_TIMEOUT_MS = 1_000
MAX_TRANSACTION_TIMEOUT_MS = 900_000
# What a transactional id may hold without surprising a broker's ACLs or logs.
_INSTANCE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ClusterConfig:
    enabled: bool = False
    changelog_topic: str = ""
    alerts_topic: str = ""
    quarantine_topic: str = ""
    deliveries_topic: str = ""
    # How long the broker lets a transaction stay open before it aborts it: a
    # worker stopped mid-checkpoint (SIGSTOP, a long pause) loses it this soon.
    transaction_timeout_ms: int = 10_000
    # Names this daemon's workers among the group's, for their transactional ids.
    instance_id: str = ""


@dataclass(frozen=True)
class ClusterTopics:
    changelog: str
    alerts: str
    quarantine: str
    deliveries: str = ""


def topics(cluster: ClusterConfig, group_id: str) -> ClusterTopics:
    """The topics of a group, each the configured name or ``<group_id>-<kind>``."""
    return ClusterTopics(
        changelog=cluster.changelog_topic or f"{group_id}-changelog",
        alerts=cluster.alerts_topic or f"{group_id}-alerts",
        quarantine=cluster.quarantine_topic or f"{group_id}-quarantine",
        deliveries=cluster.deliveries_topic or f"{group_id}-deliveries",
    )


def transactional_id(cluster: ClusterConfig, group_id: str, store_path: str, slot: int) -> str:
    """The same id for the same worker slot of the same daemon, at every start.

    Stable, so that a restarted worker's ``init_transactions`` fences the
    transaction its previous life left open; unique, so that two daemons of
    the group never fence each other. Without ``instance_id`` a daemon is its
    host and its store file (in cluster mode each daemon has its own).
    """
    instance = cluster.instance_id
    if not instance:
        where = hashlib.sha256(os.path.abspath(store_path).encode()).hexdigest()[:10]
        instance = f"{socket.gethostname()}-{where}"
    return f"driftwarden-{group_id}-{_INSTANCE_CHARS.sub('_', instance)}-{slot}"


def problems(
    cluster: ClusterConfig, kafka_topics: list[str], group_id: str
) -> tuple[str, str] | None:
    """What is wrong with ``[cluster]`` in this config, as (key, why); None when nothing."""
    timeout = cluster.transaction_timeout_ms
    if not MIN_TRANSACTION_TIMEOUT_MS <= timeout <= MAX_TRANSACTION_TIMEOUT_MS:
        return (
            "cluster.transaction_timeout_ms",
            f"must be between {MIN_TRANSACTION_TIMEOUT_MS} and {MAX_TRANSACTION_TIMEOUT_MS} "
            "(milliseconds)",
        )
    if not cluster.enabled:
        return None
    if len(kafka_topics) != 1:
        # A model's state lives on the changelog partition of its records' partition:
        # partition p of two input topics could go to two different workers.
        return "kafka.topics", "must name exactly one topic in cluster mode"
    return _shared_topic(topics(cluster, group_id), kafka_topics[0])


def _shared_topic(names: ClusterTopics, input_topic: str) -> tuple[str, str] | None:
    """Two of cluster mode's topics, or one and the input topic, under one
    name: checkpoints, alerts and deliveries would be read as one another's
    records (or as events)."""
    seen = {input_topic: "the input topic (kafka.topics)"}
    for kind in ("changelog", "alerts", "quarantine", "deliveries"):
        name = getattr(names, kind)
        if name in seen:
            return (
                f"cluster.{kind}_topic",
                f"names {name!r}, which is already {seen[name]}: give each topic its own name",
            )
        seen[name] = f"the {kind} topic"
    return None
