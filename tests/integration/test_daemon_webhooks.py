"""Notifications from the live daemon: durable through a receiver outage and a crash."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.notify.signing import verify_signature
from simulation.simulator import write_simulation
from tests.integration.daemon_support import (
    consumed,
    free_port,
    produce_file,
    start_daemon,
    stop,
    wait_until,
    write_config,
)
from tests.webhook_receiver import WebhookReceiver, start_receiver

__all__ = ["start_receiver"]
pytestmark = pytest.mark.kafka
SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtdGVzdC1yZWNlaXZlcg=="
UNAVAILABLE_SECONDS = 30.0


def _outbox(store: Path) -> list[tuple[str, str]]:
    """The outbox's rows; none while the daemon has not created its tables yet."""
    with sqlite3.connect(store) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone():
            return []
        return db.execute("SELECT webhook_id, state FROM outbox ORDER BY id").fetchall()


def test_every_notification_arrives_signed_despite_503s_and_a_kill(
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    start_receiver: Callable[..., WebhookReceiver],
) -> None:
    receiver = start_receiver(unavailable_seconds=UNAVAILABLE_SECONDS)
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=40_000, seed=13)
    store = tmp_path / "live.db"
    config = write_config(tmp_path / "live.toml", kafka_bootstrap, topic, store, free_port())
    config.write_text(
        config.read_text() + f'\n[[webhooks]]\nurl = "{receiver.url()}"\nformat = "generic"\n'
        'secret_env = "HOOK_SECRET"\nmin_severity = "info"\n'
    )
    env = {"HOOK_SECRET": SECRET}
    log = tmp_path / "daemon.log"
    total = produce_file(kafka_bootstrap, topic, events)
    daemon = start_daemon(config, log, env)
    try:
        wait_until(lambda: len(_outbox(store) if store.exists() else []) > 0, 120, "a notification")
        assert receiver.accepted() == [], "the receiver is still answering 503"
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)
        daemon = start_daemon(config, log, env)
        wait_until(lambda: consumed(store) >= total, 180, "the whole stream")
        wait_until(
            lambda: all(state == "delivered" for _, state in _outbox(store)),
            UNAVAILABLE_SECONDS + 120,
            "every notification delivered",
        )
    finally:
        code = stop(daemon)
    assert code == 0, log.read_text()[-2000:]
    assert time.monotonic() - receiver.started >= UNAVAILABLE_SECONDS
    outbox_ids = {webhook_id for webhook_id, _ in _outbox(store)}
    accepted = receiver.accepted()
    assert {r.headers["webhook-id"] for r in accepted} == outbox_ids
    assert any(r.status == 503 for r in receiver.received), "the outage was never exercised"
    bodies: dict[str, bytes] = {}
    for request in receiver.received:
        assert verify_signature(SECRET, request.headers, request.body, tolerance=600)
        seen = bodies.setdefault(request.headers["webhook-id"], request.body)
        assert seen == request.body, "a retry under one webhook-id must carry the same body"
