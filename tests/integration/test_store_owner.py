"""The store has one owner: the running daemon, against replays, other groups and bad disks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from monitor.simulator import write_simulation
from tests.integration.daemon_support import (
    ROOT,
    free_port,
    produce_file,
    readyz,
    start_daemon,
    wait_until,
    write_config,
)
from tests.monitor.fs_support import namespaces_work, on_small_fs

pytestmark = pytest.mark.kafka


def test_a_store_locked_past_the_busy_timeout_stops_the_daemon_with_exit_2(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=3_000, seed=8)
    store = tmp_path / "live.db"
    port = free_port()
    config = write_config(tmp_path / "live.toml", kafka_bootstrap, topic, store, port, "dw-lock")
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log, env={"DRIFTWARDEN_BUSY_TIMEOUT_MS": "500"})
    try:
        wait_until(lambda: readyz(port)[0] == 200, 60, "/readyz")
        holder = sqlite3.connect(store, isolation_level=None, timeout=30)
        holder.execute("BEGIN IMMEDIATE")  # e.g. an operator's sqlite3 shell, mid-transaction
        try:
            produce_file(kafka_bootstrap, topic, events)
            code = daemon.wait(timeout=90)
        finally:
            holder.close()
    finally:
        daemon.kill()
    lines = log.read_text().splitlines()
    assert code == 2, lines[-5:]
    assert lines[-1] == (
        f"driftwarden: store {store} is locked: another process held its write lock for more "
        "than 0.5 s (DRIFTWARDEN_BUSY_TIMEOUT_MS); find it with `fuser` or `lsof` on the store "
        "(an open sqlite3 shell, a stuck command) and try again when it is done"
    )
    logged = [orjson.loads(line) for line in lines if line.startswith("{")]
    errors = [entry for entry in logged if entry.get("level") == "error"]
    assert len(errors) == 1 and "stopping on a store error" in errors[0]["msg"], errors
    assert not [entry for entry in logged if entry.get("level") == "warning"], "a quiet stop"
    assert "Traceback" not in log.read_text()


@pytest.mark.skipif(not namespaces_work(), reason="needs unprivileged user and mount namespaces")
def test_a_full_disk_stops_the_daemon_with_exit_2(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=30_000, seed=9)
    small = tmp_path / "small"
    small.mkdir()
    config = write_config(
        tmp_path / "live.toml", kafka_bootstrap, topic, small / "live.db", free_port(), "dw-full"
    )
    log = tmp_path / "daemon.log"
    run = [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)]
    with log.open("ab") as handle:
        daemon = subprocess.Popen(
            on_small_fs(small, "1m", run),
            cwd=ROOT,
            stdout=handle,
            stderr=handle,
        )
    try:
        produce_file(kafka_bootstrap, topic, events)
        code = daemon.wait(timeout=180)
    finally:
        daemon.kill()
    lines = log.read_text().splitlines()
    assert code == 2, lines[-5:]
    assert lines[-1] == (
        f"driftwarden: store {small / 'live.db'}: the disk is full; free space on {small} "
        "and try again"
    )
    assert "Traceback" not in log.read_text()
