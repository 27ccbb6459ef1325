"""The store has one owner: the running daemon, against replays, other groups and bad disks."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from functools import partial
from pathlib import Path

import orjson
import pytest

from monitor.store.lease import holders
from monitor.store.store import Store
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
from tests.monitor.fs_support import namespaces_work, on_small_fs, one_line_error

pytestmark = pytest.mark.kafka


def _cli(*args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _count(store: Path, sql: str) -> int:
    with sqlite3.connect(store) as db:
        return int(db.execute(sql).fetchone()[0])


def _group_offsets(store: Path, group: str) -> int:
    opened = Store(store)
    try:
        return sum(opened.stored_offsets(group).values())
    finally:
        opened.close()


def test_a_running_daemon_owns_its_store(kafka_bootstrap: str, topic: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=20_000, seed=5)
    store = tmp_path / "live.db"
    config = write_config(
        tmp_path / "live.toml", kafka_bootstrap, topic, store, free_port(), "dw-owner"
    )
    daemon = start_daemon(config, tmp_path / "daemon.log")
    try:
        total = produce_file(kafka_bootstrap, topic, events)
        wait_until(lambda: consumed(store) >= total, 180, "the stream checkpointed")
        alerts = _count(store, "SELECT count(*) FROM alerts")
        assert alerts > 0, "the stream holds drift"

        replay = ("replay", "--config", config, "--input", events, "--store", store)
        refused = _cli(*replay, "--overwrite")
        one_line_error(refused, f"is in use by driftwarden run (pid {daemon.pid})")

        other = write_config(
            tmp_path / "other.toml", kafka_bootstrap, topic, store, free_port(), "dw-other"
        )
        second = _cli("run", "--config", other, timeout=120)
        one_line_error(second, "belongs to consumer group 'dw-owner'")

        listed = _cli("incidents", "list", "--store", store)
        assert listed.returncode == 0, "readers are not blocked by the lease"
        assert daemon.poll() is None, "the daemon must live on"
        assert _count(store, "SELECT count(*) FROM alerts") == alerts
        assert _count(store, "SELECT count(*) FROM model_state") == 2
        more = produce_file(kafka_bootstrap, topic, events)
        wait_until(lambda: consumed(store) >= total + more, 180, "the daemon to go on")
    finally:
        code = stop(daemon)
    assert code == 0
    assert _cli(*replay, "--overwrite").returncode == 0, "a stopped daemon holds nothing"


def test_the_supervisor_and_workers_hold_the_lease_until_they_are_gone(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=10_000, seed=6)
    store = tmp_path / "live.db"
    port = free_port()
    config = write_config(
        tmp_path / "live.toml",
        kafka_bootstrap,
        topic,
        store,
        port,
        "dw-procs",
        kafka_extra="consumer_processes = 2",
    )
    supervisor = start_daemon(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: readyz(port)[0] == 200, 120, "every worker ready")
        commands = sorted(h.command for h in holders(store))
        assert commands == [
            "driftwarden run",
            "driftwarden run (worker 0)",
            "driftwarden run (worker 1)",
        ]
        replay = ("replay", "--config", config, "--input", events, "--store", store)
        refused = _cli(*replay, "--overwrite")
        line = one_line_error(refused, f"driftwarden run (pid {supervisor.pid})")
        assert "driftwarden run (worker " in line

        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(timeout=30)
        # The workers see the supervisor's pipe close, checkpoint and exit: then
        # no lock is left behind, although nobody released one politely.
        wait_until(lambda: not holders(store), 60, "the workers to end")
    finally:
        supervisor.kill()
        supervisor.wait(timeout=30)
    done = _cli(*replay, "--overwrite")
    assert done.returncode == 0, done.stderr


def test_a_second_group_reads_the_stream_from_its_own_offsets(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=5_000, seed=7)
    total = produce_file(kafka_bootstrap, topic, events)
    store = tmp_path / "shared.db"
    for group in ("dw-first", "dw-second"):
        config = write_config(
            tmp_path / f"{group}.toml", kafka_bootstrap, topic, store, free_port(), group
        )
        daemon = start_daemon(config, tmp_path / f"{group}.log")
        try:
            wait_until(partial(_read_all, store, group, total), 120, f"{group} to read it all")
        finally:
            assert stop(daemon) == 0
    # Before offsets had a group, the second group sought to the first's offsets
    # and read nothing.
    assert _group_offsets(store, "dw-first") == _group_offsets(store, "dw-second") == total


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


def test_a_lost_baseline_warms_up_again_without_a_restart_loop(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=30_000, seed=10)
    store = tmp_path / "live.db"
    config = write_config(tmp_path / "live.toml", kafka_bootstrap, topic, store, free_port())
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        total = produce_file(kafka_bootstrap, topic, events)
        wait_until(lambda: consumed(store) >= total, 180, "the stream checkpointed")
    finally:
        assert stop(daemon) == 0
    assert _count(store, "SELECT count(*) FROM state_blobs") > 0, "both baselines are formed"
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM state_blobs")  # a careless hand, a bad restore

    daemon = start_daemon(config, log)
    try:
        more = produce_file(kafka_bootstrap, topic, events)
        wait_until(lambda: consumed(store) >= total + more, 180, "the daemon to go on")
        assert daemon.poll() is None
    finally:
        code = stop(daemon)
    assert code == 0, log.read_text()[-3000:]
    lost = [line for line in log.read_text().splitlines() if "saved baseline is lost" in line]
    assert sorted(orjson.loads(line)["model"] for line in lost) == ["churn", "fraud"]
    rows = _count(
        store,
        "SELECT count(*) FROM audit WHERE kind = 'baseline_change' AND content LIKE '%state lost%'",
    )
    assert rows == 2
    assert _cli("audit", "verify", "--store", store).returncode == 0


def _read_all(store: Path, group: str, total: int) -> bool:
    return _group_offsets(store, group) >= total
