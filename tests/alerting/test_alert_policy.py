"""Findings to incidents: grouped by model and kind, callers apart; bursts stay few pages."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections.abc import Callable

from detectors.base import Finding
from monitor.audit.chain import write_transaction
from monitor.incidents.grouping import AlertPolicy
from monitor.incidents.kinds import title
from monitor.notify.delivery import DeliveryWorker, RetryPolicy
from monitor.notify.policy import NotificationPolicy
from monitor.notify.targets import WebhookTarget
from monitor.store.store import Store
from tests.webhook_receiver import WebhookReceiver

T0 = 1_800_000_000.0


def _incidents(store: Store) -> list[tuple[int, str, int]]:
    return store.db.execute("SELECT id, status, alert_count FROM incidents ORDER BY id").fetchall()


def test_alerts_group_by_model_and_kind_and_callers_apart(
    store: Store, make_finding: Callable[..., Finding]
) -> None:
    policy = AlertPolicy()
    with write_transaction(store.db) as db:
        for signal, ts in (
            ("feature:amount", T0),
            ("feature:country", T0 + 500),
            ("score", T0 + 600),
            ("client:key-1", T0 + 700),
            ("client:key-2", T0 + 700),
            ("metric:latency_ms", T0 + 800),
            ("error", T0 + 900),
            ("feature:amount", T0 + 90_000),  # a day later: its incident is still open
        ):
            policy.record(db, "fraud", [make_finding(signal=signal, event_ts=ts)])
        policy.record(db, "churn", [make_finding(signal="feature:tenure", event_ts=T0)])
    rows = store.db.execute(
        "SELECT model, kind, title, alert_count FROM incidents ORDER BY id"
    ).fetchall()
    assert rows == [
        ("fraud", "drift", "fraud: drift in amount (ks)", 3),
        ("fraud", "output", "fraud: score shifting (ks)", 1),
        ("fraud", "client", "fraud: caller key-1 behaving unlike the rest (ks)", 1),
        ("fraud", "client", "fraud: caller key-2 behaving unlike the rest (ks)", 1),
        ("fraud", "metric", "fraud: anomaly in latency_ms (ks)", 1),
        ("fraud", "performance", "fraud: errors against labels changing (ks)", 1),
        ("churn", "drift", "churn: drift in tenure (ks)", 1),
    ]


def test_drift_a_flagged_caller_explains_joins_that_callers_incident(
    store: Store, make_finding: Callable[..., Finding]
) -> None:
    policy = AlertPolicy()
    blamed = {"attributed_to": ["client:searcher"], "attributed_behaviours": ["search"]}
    with write_transaction(store.db) as db:
        policy.record(db, "fraud", [make_finding(signal="client:searcher", event_ts=T0)])
        for i, feature in enumerate(("feature:amount", "feature:age", "features")):
            drift = make_finding(signal=feature, event_ts=T0 + i)
            drift = dataclasses.replace(drift, details=blamed)
            policy.record(db, "fraud", [drift])
        policy.record(db, "fraud", [make_finding(signal="feature:country", event_ts=T0 + 9)])
    rows = store.db.execute("SELECT kind, alert_count, signals FROM incidents ORDER BY id")
    (caller, caller_alerts, signals), (drift, drift_alerts, _) = rows.fetchall()
    assert (caller, caller_alerts, drift, drift_alerts) == ("client", 4, "drift", 1)
    assert b"ks:amount" in signals and b"ks:features" in signals


def test_group_by_model_alone_puts_every_kind_in_one_incident(
    store: Store, make_finding: Callable[..., Finding]
) -> None:
    policy = AlertPolicy(group_by=("model",))
    with write_transaction(store.db) as db:
        for signal in ("feature:amount", "score", "metric:qps", "client:key-1", "client:key-2"):
            policy.record(db, "fraud", [make_finding(signal=signal, event_ts=T0)])
    counts = store.db.execute("SELECT alert_count FROM incidents ORDER BY id").fetchall()
    assert counts == [(3,), (1,), (1,)]  # callers stay apart


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


def test_the_same_events_after_a_resolution_open_an_incident_with_a_new_key(
    store: Store, make_finding: Callable[..., Finding]
) -> None:
    policy = AlertPolicy()
    with write_transaction(store.db) as db:
        policy.record(db, "fraud", [make_finding(signal="feature:amount", event_ts=T0)])
        db.execute("UPDATE incidents SET status = 'resolved'")  # e.g. a baseline reset
        # The same stream again (a replay into the same store, or a producer's resend).
        policy.record(db, "fraud", [make_finding(signal="feature:amount", event_ts=T0)])
    keys = [k for (k,) in store.db.execute("SELECT key FROM incidents ORDER BY id")]
    assert len(keys) == 2 and len(set(keys)) == 2


def test_performance_incidents_say_which_metric_and_which_way() -> None:
    assert title("churn", "performance", "cbpe", "estimated:roc_auc") == (
        "churn: estimated roc auc falling, without labels (cbpe)"
    )
    assert title("fraud", "performance", "performance", "performance:accuracy") == (
        "fraud: accuracy against labels falling (performance)"
    )
    assert title("fraud", "performance", "performance", "performance:recall:fraud") == (
        "fraud: recall of class fraud against labels falling (performance)"
    )
    assert title("rent", "performance", "performance", "performance:mae") == (
        "rent: mae against labels rising (performance)"
    )
