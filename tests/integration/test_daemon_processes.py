"""``kafka.consumer_processes``: one supervisor, worker processes sharing the partitions."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.store.store import Store
from simulation.simulator import write_simulation
from tests.integration.daemon_support import (
    ROOT,
    consumed,
    free_port,
    produce_file,
    readyz,
    replay_alerts,
    start_daemon,
    stop,
    wait_until,
    write_config,
)
from tests.webhook_receiver import WebhookReceiver, start_receiver

__all__ = ["start_receiver"]

pytestmark = pytest.mark.kafka


def _families(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _worker_pids(log: Path) -> dict[int, int]:
    """The latest pid of each worker, from the supervisor's "worker started" lines."""
    pids: dict[int, int] = {}
    for line in log.read_text().splitlines():
        if '"worker started"' in line:
            entry = orjson.loads(line)
            pids[entry["worker"]] = entry["pid"]
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_share_the_stream_survive_a_kill_and_match_a_replay(
    kafka_bootstrap: str,
    topic: str,
    tmp_path: Path,
    start_receiver: Callable[..., WebhookReceiver],
) -> None:
    receiver = start_receiver()
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=60_000, seed=23, malformed=600)
    store = tmp_path / "live.db"
    port = free_port()
    config = write_config(
        tmp_path / "live.toml",
        kafka_bootstrap,
        topic,
        store,
        port,
        "dw-processes",
        kafka_extra="consumer_processes = 2",
    )
    config.write_text(
        config.read_text() + f'\n[[webhooks]]\nurl = "{receiver.url()}"\nformat = "generic"\n'
        'min_severity = "info"\n'
    )
    log = tmp_path / "daemon.log"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.1)
    # Read as they come: the kernel queues few datagrams (net.unix.max_dgram_qlen,
    # often 10), and a watchdog ping every few seconds would crowd out STOPPING=1.
    said: list[str] = []
    listening = threading.Event()
    listening.set()

    def listen() -> None:
        while listening.is_set():
            with contextlib.suppress(TimeoutError):
                said.append(notify.recv(4096).decode())

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    process = start_daemon(config, log, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        wait_until(lambda: readyz(port)[0] == 200, 90, "both workers ready")
        _, text = readyz(port)
        assert "2 workers" in text and "worker 1:" in text, text
        total = produce_file(kafka_bootstrap, topic, events)
        wait_until(lambda: consumed(store) >= total // 3, 180, "a third of the stream")
        first = _worker_pids(log)
        assert sorted(first) == [0, 1], first
        os.kill(first[1], signal.SIGKILL)
        wait_until(lambda: _worker_pids(log)[1] != first[1], 60, "worker 1 started again")
        wait_until(lambda: consumed(store) >= total, 240, "the whole stream checkpointed")
        wait_until(lambda: readyz(port)[0] == 200, 60, "ready again")
        wait_until(lambda: _undelivered(store) == 0, 60, "every notification delivered")
        families = _families(port)
        assert families["driftwarden_worker_restarts_total"][0][1] == 1
        assert families["driftwarden_workers_alive"][0][1] == 2
        consumed_samples = families["driftwarden_records_consumed_total"]
        assert {labels["worker"] for labels, _ in consumed_samples} <= {"0", "1"}
        assert sum(value for _, value in consumed_samples) > 0
        lag_partitions = {labels["partition"] for labels, _ in families["driftwarden_consumer_lag"]}
        # A partition drained before the kill may have no owner that polled it since.
        assert lag_partitions and lag_partitions <= {"0", "1", "2"}
        assert "driftwarden_incidents" in families
        workers = _worker_pids(log)
    finally:
        code = stop(process, timeout=60)
    assert code == 0, log.read_text()[-3000:]
    assert not any(_alive(pid) for pid in workers.values()), "workers outlived the supervisor"
    time.sleep(0.5)  # the last datagrams in flight
    listening.clear()
    listener.join(timeout=5)
    notify.close()
    assert said[0].startswith("READY=1") and "2 workers" in said[0], said
    assert "WATCHDOG=1" in said and said[-1] == "STOPPING=1", said

    live = Store(store)
    try:
        live_alerts = live.alerts()
        quarantined = live.count("quarantine")
    finally:
        live.close()
    assert consumed(store) == total
    assert quarantined == 600
    assert live_alerts, "the stream holds drift; the workers found none"
    assert live_alerts == replay_alerts(config, events, tmp_path / "replay.db")
    # The supervisor alone delivers: every notification the workers enqueued, once.
    outbox = sqlite3.connect(store)
    try:
        ids = [row[0] for row in outbox.execute("SELECT webhook_id FROM outbox")]
    finally:
        outbox.close()
    accepted = [r.headers["webhook-id"] for r in receiver.accepted()]
    assert ids and sorted(accepted) == sorted(ids)


def _undelivered(store: Path) -> int:
    db = sqlite3.connect(store)
    try:
        return int(
            db.execute("SELECT count(*) FROM outbox WHERE state != 'delivered'").fetchone()[0]
        )
    finally:
        db.close()


def test_workers_that_cannot_reach_a_broker_stop_the_daemon_with_one_line(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path / "nobroker.toml",
        f"127.0.0.1:{free_port()}",
        "nowhere",
        tmp_path / "store.db",
        free_port(),
        kafka_extra="consumer_processes = 2",
    )
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("driftwarden: no Kafka broker answers at 127.0.0.1:"), last
