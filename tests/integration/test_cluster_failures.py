"""Cluster mode when members fail: killed, restarted without their store, stopped past the
session timeout and woken, the broker restarted. Effects stay exactly once, in Kafka, and
the notifier sends each notification once."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from monitor.store.store import Store
from simulation.simulator import write_simulation
from tests.integration import test_daemon_failover
from tests.integration.cluster_support import (
    ClusterTopics,
    add_webhook,
    all_delivered,
    cluster_topics,
    committed_total,
    notifier_caught_up,
    start_notifier,
    store_rows,
    topic_alerts,
    write_cluster_config,
)
from tests.integration.daemon_support import (
    ROOT,
    free_port,
    produce_file,
    replay_alerts,
    start_daemon,
    stop,
    wait_until,
)
from tests.webhook_receiver import WebhookReceiver, start_receiver

__all__ = ["start_receiver"]
pytestmark = pytest.mark.kafka
own_broker = test_daemon_failover.own_broker  # a broker of the test's own, which it restarts
MODELS = ("fraud", "churn", "fraud_eu", "churn_eu", "fraud_us", "churn_us")
PARTITIONS = 8
STARTED = '"msg":"started"'  # logged once the daemon handles its stop signals
SESSION_TIMEOUT_SECONDS = 6.0  # the configs' kafka.session_timeout_ms
# Where the producer's default partitioner puts each model's records (two share one).
MODEL_PARTITIONS = {(murmur2(m.encode()) & 0x7FFFFFFF) % PARTITIONS for m in MODELS}


def _six_models(path: Path, tmp: Path) -> None:
    """Three simulated streams, the second's and third's models renamed: six models with
    drift, 90,000 events and their labels (some 105,000 records)."""
    streams = []
    for seed, suffix in ((21, b""), (22, b"_eu"), (23, b"_us")):
        write_simulation(tmp / "part.jsonl", events=30_000, seed=seed, malformed=50)
        streams.append(
            (tmp / "part.jsonl")
            .read_bytes()
            .replace(b'"model":"fraud"', b'"model":"fraud' + suffix + b'"')
            .replace(b'"model":"churn"', b'"model":"churn' + suffix + b'"')
        )
    path.write_bytes(b"".join(streams))


def _wipe(store: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)


def test_killed_wiped_and_stopped_members_keep_the_alerts_exactly_once(
    kafka_bootstrap: str, tmp_path: Path, start_receiver: Callable[..., WebhookReceiver]
) -> None:
    """Three daemons and one notifier: the alerts equal a replay's row for row, and every
    notification reaches the receiver once per webhook-id."""
    receiver = start_receiver()
    events = tmp_path / "events.jsonl"
    _six_models(events, tmp_path)
    # Produced in three parts, each once the members are where the test needs them: a fast
    # machine would otherwise read the whole stream while a member starts or is stopped.
    lines = events.read_bytes().splitlines(keepends=True)
    cuts = [0, len(lines) // 2, len(lines) * 3 // 4, len(lines)]
    parts = [tmp_path / f"part{i}.jsonl" for i in range(3)]
    for part, begin, end in zip(parts, cuts, cuts[1:], strict=False):
        part.write_bytes(b"".join(lines[begin:end]))
    total = len(lines)
    rng = random.Random(18)
    with cluster_topics(kafka_bootstrap, partitions=PARTITIONS) as topics:
        stores = [tmp_path / f"m{i}.db" for i in range(3)]
        configs = [
            write_cluster_config(
                tmp_path / f"m{i}.toml", kafka_bootstrap, topics, stores[i], free_port(), MODELS
            )
            for i in range(3)
        ]
        for config in configs:  # the same config for the notifier: the daemons ignore it
            add_webhook(config, receiver.url())
        logs = [tmp_path / f"m{i}.log" for i in range(3)]
        members = [start_daemon(configs[i], logs[i]) for i in range(3)]
        notify_store, notify_log = tmp_path / "notify.db", tmp_path / "notify.log"
        notifier = start_notifier(configs[0], notify_store, notify_log)

        def progress() -> int:
            return committed_total(kafka_bootstrap, topics.group)

        try:
            wait_until(
                lambda: all("changelog restored" in _text(log) for log in logs),
                120,
                "every member ready",
            )
            produce_file(kafka_bootstrap, topics.events, parts[0])
            # 1. Killed anywhere (mid-transaction or not), and restarted without its store.
            wait_until(lambda: progress() >= total * 0.2, 180, "a fifth of the stream")
            time.sleep(rng.random())
            members[0].send_signal(signal.SIGKILL)
            members[0].wait(timeout=30)
            _wipe(stores[0])
            members[0] = start_daemon(configs[0], logs[0])
            wait_until(
                lambda: '"changelog restored"' in _life(logs[0], 2),
                120,
                "the wiped member to join again",
            )
            # 2. Stopped past the session timeout: a zombie, fenced when it wakes. It holds
            # partitions the second part writes to, and is stopped before that part is
            # written; it is woken once another member has committed on those partitions.
            wait_until(lambda: progress() >= cuts[1], 180, "the first part read")
            wait_until(lambda: _settled(logs), 60, "every partition assigned once")
            written = _partitions_of(parts[1])
            zombie = next(i for i in (1, 2, 0) if _assigned(logs[i]) & written)
            held = _assigned(logs[zombie]) & written
            before = _committed(kafka_bootstrap, topics, held)
            members[zombie].send_signal(signal.SIGSTOP)
            produce_file(kafka_bootstrap, topics.events, parts[1])
            time.sleep(SESSION_TIMEOUT_SECONDS)
            wait_until(
                lambda: _committed(kafka_bootstrap, topics, held) != before,
                240,
                "another member to commit on the stopped member's partitions",
            )
            members[zombie].send_signal(signal.SIGCONT)
            produce_file(kafka_bootstrap, topics.events, parts[2])
            # 3. Killed again, restarted with its store (a restore from its cache).
            wait_until(lambda: progress() >= total * 0.7, 180, "most of the stream")
            time.sleep(rng.random())
            killed = next(i for i in (2, 1, 0) if _assigned(logs[i]) & MODEL_PARTITIONS)
            members[killed].send_signal(signal.SIGKILL)
            members[killed].wait(timeout=30)
            starts = _text(logs[killed]).count(STARTED)
            members[killed] = start_daemon(configs[killed], logs[killed])
            # Started (its stop handled) before the stops below: the others may finish the
            # stream while it is still starting.
            wait_until(
                lambda: _text(logs[killed]).count(STARTED) > starts, 120, "the restart started"
            )
            wait_until(lambda: progress() >= total, 300, "the whole stream committed")
            codes = [_end(member) for member in members]
            wait_until(
                lambda: notifier_caught_up(kafka_bootstrap, topics, notify_store),
                120,
                "the notifier to read the alerts topic to its end",
            )
            wait_until(lambda: all_delivered(notify_store), 60, "every notification delivered")
        finally:
            codes = [_end(member) for member in members]
            notified = _end(notifier)
        assert codes == [0, 0, 0], [_text(log)[-2000:] for log in logs]
        assert notified == 0, _text(notify_log)[-2000:]
        alerts = topic_alerts(kafka_bootstrap, topics.alerts)
    assert {a["model"] for a in alerts} == set(MODELS)
    expected = replay_alerts(configs[0], events, tmp_path / "replay.db")
    assert alerts == expected
    notifier_store = Store(notify_store)
    try:
        assert notifier_store.alerts() == expected
    finally:
        notifier_store.close()
    ids = {
        webhook_id for (webhook_id,) in store_rows(notify_store, "SELECT webhook_id FROM outbox")
    }
    accepted = Counter(r.headers["webhook-id"] for r in receiver.accepted())
    assert ids and set(accepted) == ids
    assert set(accepted.values()) == {1}, "each notification once per webhook-id"
    # The wiped member's restores after its restart: models' state from the beginning.
    second_life = _life(logs[0], 2)
    restores = [orjson.loads(line) for line in second_life.splitlines() if "restored" in line]
    assert any(r["from_beginning"] and r["models"] for r in restores), second_life[-2000:]


def _text(log: Path) -> str:
    return log.read_text() if log.exists() else ""


def _life(log: Path, n: int) -> str:
    """A member's log from its ``n``-th start to the next ("" if it has not started so often)."""
    lives = _text(log).split('"msg":"cluster mode"')
    return lives[n] if n < len(lives) else ""


def _assigned(log: Path) -> set[int]:
    """The partitions of a member's latest assignment, from its log."""
    lines = [line for line in _text(log).splitlines() if '"partitions assigned"' in line]
    if not lines:
        return set()
    return {int(name.rsplit("[", 1)[1][:-1]) for name in orjson.loads(lines[-1])["partitions"]}


def _settled(logs: list[Path]) -> bool:
    """Whether the members' latest assignments, from their logs, hold each partition once."""
    held = [_assigned(log) for log in logs]
    return sum(map(len, held)) == PARTITIONS and set().union(*held) == set(range(PARTITIONS))


def _partitions_of(events: Path) -> set[int]:
    """The partitions the producer's default partitioner writes these events' models to."""
    models = {m.decode() for m in re.findall(rb'"model":"([a-z_]+)"', events.read_bytes())}
    return {(murmur2(m.encode()) & 0x7FFFFFFF) % PARTITIONS for m in models}


def _committed(bootstrap: str, topics: ClusterTopics, partitions: set[int]) -> list[int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        offsets = admin.list_group_offsets(topics.group)[topics.group]
    except KafkaError:
        return []
    finally:
        admin.close()
    return [offsets[tp].offset for tp in sorted(offsets) if tp.partition in partitions]


def _end(member: subprocess.Popen[bytes]) -> int:
    member.send_signal(signal.SIGCONT)  # never leave a stopped process behind
    if member.poll() is not None:
        return member.returncode
    return stop(member, timeout=60)


def test_a_broker_restart_during_commits_loses_and_doubles_nothing(
    own_broker: int, tmp_path: Path
) -> None:
    """The broker stops while the daemon checkpoints every second (so mid-transaction, or
    about to be): the transaction's waits end at their deadline, it is aborted or fenced,
    the partitions are restored and read again once the broker is back."""
    bootstrap = f"127.0.0.1:{own_broker}"
    script = str(ROOT / "scripts" / "kafka")
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=40_000, seed=4, malformed=20)
    with cluster_topics(bootstrap, partitions=2) as topics:
        total = produce_file(bootstrap, topics.events, events)
        config = write_cluster_config(
            tmp_path / "live.toml", bootstrap, topics, tmp_path / "live.db", free_port()
        )
        log = tmp_path / "daemon.log"
        daemon = start_daemon(config, log)
        try:
            wait_until(lambda: committed_total(bootstrap, topics.group) > 0, 120, "a first commit")
            subprocess.run(
                [script, "stop", "--port", str(own_broker), "--keep-data"], check=True, timeout=120
            )
            time.sleep(3)
            restarted = subprocess.run(
                [
                    script,
                    "start",
                    "--port",
                    str(own_broker),
                    "--keep-data",
                    "--owner-pid",
                    str(os.getpid()),
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert restarted.returncode == 0, restarted.stderr
            wait_until(
                lambda: committed_total(bootstrap, topics.group) >= total,
                300,
                "the stream after the restart",
            )
        finally:
            code = stop(daemon, timeout=60)
        assert code == 0, _text(log)[-3000:]
        alerts = topic_alerts(bootstrap, topics.alerts)
    assert alerts
    assert alerts == replay_alerts(config, events, tmp_path / "replay.db")
