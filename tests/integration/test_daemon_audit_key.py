"""A daemon with ``[audit] key_env``: every process it runs appends keyed rows."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.cli import main as cli
from simulation.simulator import write_simulation
from tests.integration.daemon_support import (
    ROOT,
    consumed,
    free_port,
    produce_file,
    readyz,
    start_daemon,
    stop,
    wait_until,
    write_config,
)
from tests.webhook_receiver import WebhookReceiver, start_receiver

__all__ = ["start_receiver"]

pytestmark = pytest.mark.kafka

KEY_ENV = "DRIFTWARDEN_TEST_AUDIT_KEY"
KEY = "9b0e2f4c6a8d1e3f5a7c9e0b2d4f6a8c"


def _run(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``driftwarden run`` with the key variable as ``env`` says, and nothing else of it."""
    clean = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **env},
    )


def test_workers_and_delivery_append_keyed_rows_and_a_keyless_daemon_refuses(
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    start_receiver: Callable[..., WebhookReceiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = start_receiver()
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=40_000, seed=11)
    store = tmp_path / "live.db"
    port = free_port()
    config = write_config(
        tmp_path / "live.toml",
        kafka_bootstrap,
        topic,
        store,
        port,
        "dw-audit-key",
        kafka_extra="consumer_processes = 2",
    )
    unkeyed_text = config.read_text() + (
        f'\n[[webhooks]]\nurl = "{receiver.url()}"\nformat = "generic"\nmin_severity = "info"\n'
    )
    config.write_text(unkeyed_text + f'\n[audit]\nkey_env = "{KEY_ENV}"\n')
    log = tmp_path / "daemon.log"
    process = start_daemon(config, log, env={KEY_ENV: KEY})
    try:
        wait_until(lambda: readyz(port)[0] == 200, 90, "both workers ready")
        total = produce_file(kafka_bootstrap, topic, events)
        wait_until(lambda: consumed(store) >= total, 240, "the whole stream checkpointed")
        wait_until(lambda: bool(receiver.accepted()), 60, "a notification delivered")
    finally:
        code = stop(process, timeout=60)
    assert code == 0, log.read_text()[-3000:]

    db = sqlite3.connect(store)
    try:
        kinds = dict(db.execute("SELECT kind, count(*) FROM audit GROUP BY kind").fetchall())
        schemes = {s for (s,) in db.execute("SELECT DISTINCT scheme FROM audit")}
    finally:
        db.close()
    assert {"config_load", "alert", "notification"} <= kinds.keys(), kinds
    assert schemes == {"hmac-sha256"}
    monkeypatch.setenv(KEY_ENV, KEY)
    assert cli.main(["audit", "verify", "--config", str(config)]) == 0
    for env, says in (
        ({}, f"names {KEY_ENV}, which is not set"),
        ({KEY_ENV: "some other key, long enough"}, "does not match audit row"),
    ):
        done = _run(config, env)
        assert done.returncode == 2, done.stderr[-2000:]
        assert says in done.stderr.strip().splitlines()[-1], done.stderr[-2000:]
    config.write_text(unkeyed_text)
    done = _run(config, {})
    assert done.returncode == 2 and "the audit log is keyed" in done.stderr, done.stderr[-2000:]
