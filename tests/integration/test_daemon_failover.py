"""The daemon when things fail: a member of the group dies, the broker goes away."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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

pytestmark = pytest.mark.kafka


def _assigned(log: Path) -> bool:
    return log.exists() and "partitions assigned" in log.read_text()


def test_two_members_share_partitions_and_one_takes_over(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=60_000, seed=21, malformed=100)
    store = tmp_path / "shared.db"
    config_a = write_config(
        tmp_path / "a.toml", kafka_bootstrap, topic, store, free_port(), "dw-pair"
    )
    config_b = write_config(
        tmp_path / "b.toml", kafka_bootstrap, topic, store, free_port(), "dw-pair"
    )
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = start_daemon(config_a, log_a)
    b = start_daemon(config_b, log_b)
    try:
        wait_until(lambda: _assigned(log_a) and _assigned(log_b), 90, "both members assigned")
        wait_until(lambda: _split(log_a, log_b), 90, "the partitions split between members")
        total = produce_file(kafka_bootstrap, topic, events)
        wait_until(lambda: consumed(store) >= total // 3, 120, "a third of the stream")
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=30)
        wait_until(lambda: consumed(store) >= total, 180, "the survivor to finish the stream")
    finally:
        a.kill()
        a.wait(timeout=30)
        code = stop(b)
    assert code == 0, log_b.read_text()[-2000:]
    live = Store(store)
    try:
        alerts = live.alerts()
    finally:
        live.close()
    assert alerts, "the stream holds drift; the pair found none"
    assert alerts == replay_alerts(config_a, events, tmp_path / "replay.db")


def _split(log_a: Path, log_b: Path) -> bool:
    """Each member's latest assignment is non-empty and the two are disjoint."""

    def latest(log: Path) -> set[str]:
        lines = [line for line in log.read_text().splitlines() if "partitions assigned" in line]
        if not lines:
            return set()
        start = lines[-1].index("[", lines[-1].index('"partitions"'))
        return set(lines[-1][start:].strip("[]}\n").split(","))

    a, b = latest(log_a), latest(log_b)
    return bool(a) and bool(b) and not (a & b)


@pytest.fixture
def own_broker() -> Iterator[int]:
    """A broker of this test's own, since the test stops and restarts it."""
    port = free_port()
    script = str(ROOT / "scripts" / "kafka")
    started = subprocess.run(
        [script, "start", "--port", str(port), "--owner-pid", str(os.getpid())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert started.returncode == 0, started.stderr
    yield port
    subprocess.run([script, "stop", "--port", str(port)], capture_output=True, timeout=120)


def test_broker_outage_is_reported_and_loses_nothing(own_broker: int, tmp_path: Path) -> None:
    port = own_broker
    bootstrap = f"127.0.0.1:{port}"
    script = str(ROOT / "scripts" / "kafka")
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("outage", num_partitions=2, replication_factor=1)])
    admin.close()
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=40_000, seed=4, malformed=0)
    total = produce_file(bootstrap, "outage", events)
    store = tmp_path / "live.db"
    ops = free_port()
    config = write_config(tmp_path / "live.toml", bootstrap, "outage", store, ops, "dw-outage")
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        wait_until(lambda: consumed(store) > 0, 90, "the first checkpoint")
        subprocess.run(
            [script, "stop", "--port", str(port), "--keep-data"], check=True, timeout=120
        )
        wait_until(lambda: readyz(ops)[0] == 503, 60, "/readyz to report the outage")
        assert "broker unreachable" in log.read_text()
        time.sleep(2)
        restarted = subprocess.run(
            [script, "start", "--port", str(port), "--keep-data", "--owner-pid", str(os.getpid())],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert restarted.returncode == 0, restarted.stderr
        wait_until(lambda: consumed(store) >= total, 240, "the stream after the outage")
        wait_until(lambda: readyz(ops)[0] == 200, 60, "/readyz to recover")
    finally:
        code = stop(daemon)
    assert code == 0
    assert "broker reachable again" in log.read_text()
    live = Store(store)
    try:
        alerts = live.alerts()
    finally:
        live.close()
    assert alerts == replay_alerts(config, events, tmp_path / "replay.db")
