"""Cluster mode on the real broker: checkpoints as transactions, state that moves."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from simulation.simulator import write_simulation
from tests.integration.cluster_support import (
    cluster_topics,
    committed_total,
    read_topic,
    store_rows,
    topic_alerts,
    write_cluster_config,
)
from tests.integration.daemon_support import (
    free_port,
    produce_file,
    replay_alerts,
    start_daemon,
    stop,
    wait_until,
)

pytestmark = pytest.mark.kafka


def _restored(log: Path) -> list[dict[str, object]]:
    """The daemon's "changelog restored" log lines."""
    if not log.exists():
        return []
    lines = [line for line in log.read_text().splitlines() if '"changelog restored"' in line]
    return [orjson.loads(line) for line in lines]


def _owns_a_model(store: Path) -> bool:
    """Whether a member's store caches a model's state: it owns a partition holding one."""
    return bool(store_rows(store, "SELECT 1 FROM model_state LIMIT 1"))


def test_a_killed_members_partitions_move_with_their_state(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Two daemons in cluster mode, each with its own store, the second with two worker
    processes; a third of the way in, the one that owns a model is SIGKILLed (of three
    partitions, one holds no model: whoever owns it alone has nothing to hand over). The
    survivor's workers restore the dead one's models from the changelog and go on: the
    alerts topic holds exactly the alerts of a replay of the same events."""
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=60_000, seed=21, malformed=100)
    with cluster_topics(kafka_bootstrap) as topics:
        config_a = write_cluster_config(
            tmp_path / "a.toml", kafka_bootstrap, topics, tmp_path / "a.db", free_port()
        )
        config_b = write_cluster_config(  # two workers, each a member of the group
            tmp_path / "b.toml",
            kafka_bootstrap,
            topics,
            tmp_path / "b.db",
            free_port(),
            kafka_extra="consumer_processes = 2",
        )
        log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
        a = start_daemon(config_a, log_a)
        b = start_daemon(config_b, log_b)
        victim, survivor, survivor_log = a, b, log_b
        try:
            wait_until(
                lambda: bool(_restored(log_a) and _restored(log_b)), 90, "both members ready"
            )
            total = produce_file(kafka_bootstrap, topics.events, events)
            wait_until(
                lambda: committed_total(kafka_bootstrap, topics.group) >= total // 3,
                120,
                "a third of the stream committed",
            )
            if not _owns_a_model(tmp_path / "a.db"):
                victim, survivor, survivor_log = b, a, log_a
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            wait_until(
                lambda: committed_total(kafka_bootstrap, topics.group) >= total,
                180,
                "the survivor to finish the stream",
            )
        finally:
            victim.kill()
            victim.wait(timeout=30)
            code = stop(survivor)
        assert code == 0, survivor_log.read_text()[-3000:]
        alerts = topic_alerts(kafka_bootstrap, topics.alerts)
        quarantined = read_topic(kafka_bootstrap, topics.quarantine)
    # The survivor took over a model with state: restored rows, not a new warm-up.
    taken_over = [line for line in _restored(survivor_log) if line["models"]]
    assert taken_over, survivor_log.read_text()[-3000:]
    assert alerts, "the stream holds drift; the pair found none"
    assert alerts == replay_alerts(config_a, events, tmp_path / "replay.db")
    assert len(quarantined) == 100
