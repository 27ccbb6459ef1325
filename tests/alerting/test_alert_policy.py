"""Findings to incidents: grouping by event time; bursts stay few pages."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable

from detectors.base import Finding
from monitor.audit.chain import write_transaction
from monitor.incidents.grouping import AlertPolicy
from monitor.notify.delivery import DeliveryWorker, RetryPolicy
from monitor.notify.policy import NotificationPolicy
from monitor.notify.targets import WebhookTarget
from monitor.store.store import Store
from tests.webhook_receiver import WebhookReceiver

T0 = 1_800_000_000.0


def _incidents(store: Store) -> list[tuple[int, str, int]]:
    return store.db.execute("SELECT id, status, alert_count FROM incidents ORDER BY id").fetchall()


def test_findings_close_in_event_time_share_an_incident(
    store: Store, make_finding: Callable[..., Finding]
) -> None:
    policy = AlertPolicy(group_seconds=600)
    with write_transaction(store.db) as db:
        policy.record(db, "fraud", [make_finding(signal="amount", event_ts=T0)])
        policy.record(db, "fraud", [make_finding(signal="country", event_ts=T0 + 500)])
        policy.record(db, "churn", [make_finding(signal="score", event_ts=T0 + 500)])
        policy.record(db, "fraud", [make_finding(signal="amount", event_ts=T0 + 1200)])
    assert [(status, count) for _, status, count in _incidents(store)] == [
        ("open", 2),
        ("open", 1),
        ("open", 1),
    ]


def test_a_burst_of_500_findings_is_a_handful_of_pages_at_slacks_pace(
    store: Store,
    make_finding: Callable[..., Finding],
    record: Callable[..., int],
    start_receiver: Callable[..., WebhookReceiver],
) -> None:
    receiver = start_receiver()
    targets = [WebhookTarget(receiver.url("/slack"), "slack", "info")]
    notifier = NotificationPolicy(targets)
    rng = random.Random(5)
    signals = [f"x{i}" for i in range(25)]
    severities = ["warning"] * 450 + ["critical"] * 50
    for i, severity in enumerate(severities):
        finding = make_finding(signal=rng.choice(signals), event_ts=T0 + i * 2.0, severity=severity)
        record(store, "fraud", finding, policy=notifier)
    incidents = _incidents(store)
    assert len(incidents) == 1 and incidents[0][2] == 500
    retry = RetryPolicy(base_delay=0.2, max_delay=1.0, timeout=2.0, poll_seconds=0.2)
    worker = DeliveryWorker(store.path, targets, retry, rng=random.Random(7))
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pending = store.db.execute(
                "SELECT count(*) FROM outbox WHERE state = 'pending'"
            ).fetchone()[0]
            if pending == 0:
                break
            time.sleep(0.2)
    finally:
        worker.close()
    accepted = receiver.accepted()
    assert 1 <= len(accepted) <= 5, f"{len(accepted)} pages for one burst"
    gaps = [b.at - a.at for a, b in itertools.pairwise(receiver.received)]
    assert all(gap >= 0.95 for gap in gaps), gaps
