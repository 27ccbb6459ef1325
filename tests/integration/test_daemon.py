"""The daemon against the real broker: crash-exact checkpoints, metrics, clean stops."""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from monitor.store.store import Store
from simulation.simulator import write_simulation
from tests.integration.daemon_support import (
    ROOT,
    consumed,
    free_port,
    metric_totals,
    produce_file,
    readyz,
    replay_alerts,
    signal_states,
    start_daemon,
    stop,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka


def test_sigkill_restarts_give_the_alerts_of_a_replay(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=100_000, seed=5, malformed=1000)
    total = produce_file(kafka_bootstrap, topic, events)
    store = tmp_path / "live.db"
    port = free_port()
    config = write_config(tmp_path / "live.toml", kafka_bootstrap, topic, store, port)
    log = tmp_path / "daemon.log"

    rng = random.Random(3)
    kills = 0
    for target in sorted(rng.sample(range(10_000, total - 10_000), 3)):
        process = start_daemon(config, log)
        try:
            wait_until(partial(_reached, store, target), 180, f"{target} records checkpointed")
            time.sleep(rng.random() * 0.5)  # land the kill anywhere between checkpoints
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        kills += 1
    process = start_daemon(config, log)
    try:
        wait_until(lambda: consumed(store) >= total, 300, "the whole stream")
        metrics = metric_totals(port)
        assert metrics["driftwarden_records_quarantined_total"] >= 0
        assert metrics["driftwarden_broker_up"] == 1
    finally:
        code = stop(process)
    assert kills == 3 and code == 0, log.read_text()[-3000:]

    live = Store(store)
    try:
        live_alerts = live.alerts()
        quarantined = live.count("quarantine")
    finally:
        live.close()
    replayed = replay_alerts(config, events, tmp_path / "replay.db")
    assert live_alerts, "the stream holds drift; the daemon found none"
    assert live_alerts == replayed
    assert quarantined == 1000
    states = signal_states(store)
    assert any(row[3] == "firing" for row in states) or any(row[8] for row in states)
    assert states == signal_states(tmp_path / "replay.db")  # firing or ok, exactly alike


def test_metrics_move_with_the_stream_and_sigterm_checkpoints(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=20_000, seed=9, malformed=200)
    store = tmp_path / "live.db"
    port = free_port()
    config = write_config(tmp_path / "live.toml", kafka_bootstrap, topic, store, port, "dw-metrics")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.1)
    process = start_daemon(
        config, tmp_path / "daemon.log", env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    )
    try:
        wait_until(lambda: readyz(port)[0] == 200, 60, "/readyz")
        before = metric_totals(port).get("driftwarden_records_consumed_total", 0.0)
        total = produce_file(kafka_bootstrap, topic, events)
        wait_until(
            lambda: metric_totals(port).get("driftwarden_records_consumed_total", 0) >= total - 200,
            120,
            "the consumed counter to reach the stream",
        )
        after = metric_totals(port)
        assert before == 0.0
        assert after["driftwarden_records_quarantined_total"] == 200
        assert after["driftwarden_checkpoint_age_seconds"] < 60
        assert "driftwarden_incidents" in after
        assert "driftwarden_incident_time_to_detect_seconds_count" in after
    finally:
        code = stop(process)
    assert code == 0
    assert consumed(store) == total, "SIGTERM must leave a final checkpoint of every record"
    said = []
    with contextlib.suppress(TimeoutError):
        while True:
            said.append(notify.recv(4096).decode())
    notify.close()
    assert said[0].startswith("READY=1"), said
    assert "WATCHDOG=1" in said and said[-1] == "STOPPING=1", said


def test_the_daemon_stops_with_a_checkpoint_when_its_owner_process_dies(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=5_000, seed=4)
    total = produce_file(kafka_bootstrap, topic, events)
    store = tmp_path / "owned.db"
    port = free_port()
    config = write_config(tmp_path / "owned.toml", kafka_bootstrap, topic, store, port, "dw-owned")
    owner = subprocess.Popen(["sleep", "300"])
    log = tmp_path / "daemon.log"
    handle = log.open("ab")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "monitor.cli", "run", "--config", str(config)),
            *("--owner-pid", str(owner.pid)),
        ],
        cwd=ROOT,
        stdout=handle,
        stderr=handle,
    )
    try:
        wait_until(lambda: readyz(port)[0] == 200, 60, "/readyz")
        wait_until(
            lambda: metric_totals(port).get("driftwarden_records_consumed_total", 0) >= total,
            120,
            "the stream consumed",
        )
        owner.kill()
        owner.wait(timeout=10)
        code = process.wait(timeout=60)
    finally:
        process.kill()
        handle.close()
    assert code == 0, log.read_text()[-2000:]
    assert "the owner process is gone" in log.read_text()
    assert consumed(store) == total, "the stop must leave a final checkpoint of every record"


def _reached(store: Path, target: int) -> bool:
    return consumed(store) >= target
