"""Shared fixtures: a real Apache Kafka broker for the session, fresh topics per test."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent


# CI explores the same examples on every run, so a result there is reproducible;
# elsewhere property tests keep drawing new examples.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` when set, else a broker started by ``scripts/kafka``."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    port = _free_port()
    started = subprocess.run(
        [
            str(ROOT / "scripts" / "kafka"),
            "start",
            "--port",
            str(port),
            "--owner-pid",
            str(os.getpid()),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if started.returncode != 0:
        pytest.fail(f"scripts/kafka start failed:\n{started.stderr}", pytrace=False)
    last = started.stdout.strip().splitlines()[-1]
    assert last == f"bootstrap=127.0.0.1:{port}", started.stdout
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(
            [str(ROOT / "scripts" / "kafka"), "stop", "--port", str(port)],
            capture_output=True,
            timeout=120,
        )


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh topic with 3 partitions, deleted afterwards."""
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"test-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
        yield name
        admin.delete_topics([name])
    finally:
        admin.close()
