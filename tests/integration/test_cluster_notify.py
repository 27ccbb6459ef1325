"""``driftwarden notify`` on the real broker: the alerts topic into incidents and webhooks."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.store.store import Store
from simulation.simulator import write_simulation
from tests.integration.cluster_support import (
    add_webhook,
    all_delivered,
    cluster_topics,
    committed_total,
    notifier_caught_up,
    start_notifier,
    store_rows,
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
from tests.webhook_receiver import WebhookReceiver, start_receiver

__all__ = ["start_receiver"]
pytestmark = pytest.mark.kafka
INCIDENT_COLUMNS = (
    "model, kind, title, status, severity, first_event_ts, last_event_ts, alert_count, "
    "signals, resolved_event_ts"
)


def test_the_notifier_files_what_a_single_machine_would_and_rebuilds_from_the_topic(
    kafka_bootstrap: str, tmp_path: Path, start_receiver: Callable[..., WebhookReceiver]
) -> None:
    receiver = start_receiver()
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=40_000, seed=13)
    notify_store, notify_log = tmp_path / "notify.db", tmp_path / "notify.log"
    with cluster_topics(kafka_bootstrap, partitions=2) as topics:
        config = write_cluster_config(
            tmp_path / "c.toml", kafka_bootstrap, topics, tmp_path / "worker.db", free_port()
        )
        add_webhook(config, receiver.url())
        total = produce_file(kafka_bootstrap, topics.events, events)
        worker = start_daemon(config, tmp_path / "worker.log")
        notifier = start_notifier(config, notify_store, notify_log)
        try:
            wait_until(
                lambda: committed_total(kafka_bootstrap, topics.group) >= total, 240, "the stream"
            )
            assert stop(worker) == 0, (tmp_path / "worker.log").read_text()[-2000:]
            wait_until(
                lambda: notifier_caught_up(kafka_bootstrap, topics, notify_store), 60, "notify"
            )
            wait_until(lambda: all_delivered(notify_store), 60, "every notification delivered")
            first_ids = [r for (r,) in store_rows(notify_store, "SELECT webhook_id FROM outbox")]
            first_incidents = store_rows(notify_store, f"SELECT {INCIDENT_COLUMNS} FROM incidents")
            # Killed, its store lost: rebuilt from the alerts topic.
            notifier.send_signal(signal.SIGKILL)
            notifier.wait(timeout=30)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{notify_store}{suffix}").unlink(missing_ok=True)
            notifier = start_notifier(config, notify_store, notify_log)
            wait_until(
                lambda: notifier_caught_up(kafka_bootstrap, topics, notify_store), 60, "rebuilt"
            )
            wait_until(lambda: all_delivered(notify_store), 60, "the rebuilt outbox delivered")
        finally:
            worker.kill()
            code = stop(notifier)
    assert code == 0, notify_log.read_text()[-2000:]
    replay_store = tmp_path / "replay.db"
    expected = replay_alerts(config, events, replay_store)
    assert expected
    rebuilt = Store(notify_store)
    try:
        assert rebuilt.alerts() == expected
    finally:
        rebuilt.close()
    order = "ORDER BY model, first_event_ts, title"
    incidents = store_rows(notify_store, f"SELECT {INCIDENT_COLUMNS} FROM incidents {order}")
    assert incidents == store_rows(
        replay_store, f"SELECT {INCIDENT_COLUMNS} FROM incidents {order}"
    )
    assert sorted(first_incidents) == sorted(incidents), "the rebuild files the same incidents"
    ids = [r for (r,) in store_rows(notify_store, "SELECT webhook_id FROM outbox")]
    # A rebuild files again what is still news (the open incidents), under the ids the
    # first life used; the deliveries topic says the first life sent them: none is sent
    # twice, and nothing under a new id.
    assert ids and set(ids) <= set(first_ids)
    settled = store_rows(
        notify_store, "SELECT count(*) FROM outbox WHERE last_error LIKE 'finished before%'"
    )
    assert settled == [(len(ids),)], "every notification of the rebuilt store was settled"
    accepted = Counter(r.headers["webhook-id"] for r in receiver.accepted())
    assert set(accepted) == set(first_ids)
    assert max(accepted.values()) == 1, "each notification sent once, across the rebuild"
