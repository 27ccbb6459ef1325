"""Opening a Kafka consumer, with the one error a user can act on when no broker answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from monitor.errors import DriftwardenError

# How long start-up waits for a broker before saying so; later outages are waited out.
CONNECT_TIMEOUT_MS = 10_000


def open_consumer(
    bootstrap_servers: Sequence[str], timeout_ms: int | None = None, **settings: Any
) -> KafkaConsumer:
    timeout_ms = CONNECT_TIMEOUT_MS if timeout_ms is None else timeout_ms
    try:
        return KafkaConsumer(
            bootstrap_servers=list(bootstrap_servers),
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=max(timeout_ms, 15_000),
            **settings,
        )
    except KafkaError:
        servers = ",".join(bootstrap_servers)
        raise DriftwardenError(
            f"no Kafka broker answers at {servers}: start one (scripts/kafka start) "
            "or fix kafka.bootstrap_servers in the config"
        ) from None
