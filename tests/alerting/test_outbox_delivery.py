"""The outbox against a real local receiver: retries, restarts, refusals, rate limits."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from email.utils import formatdate

import orjson
import pytest

from detectors.base import Finding
from monitor.audit.chain import AuditLog, write_transaction
from monitor.incidents.grouping import AlertPolicy
from monitor.notify.delivery import DeliveryWorker, RetryPolicy, parse_retry_after
from monitor.notify.outbox import WebhookOutbox
from monitor.notify.policy import NotificationPolicy
from monitor.notify.signing import decode_secret, verify_signature
from monitor.notify.targets import WebhookTarget
from monitor.store.store import Store
from tests.webhook_receiver import WebhookReceiver

SECRET = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="


def _worker(store: Store, targets: list[WebhookTarget], **options: float) -> DeliveryWorker:
    settings = {"base_delay": 0.2, "max_delay": 1.0, "timeout": 2.0, "poll_seconds": 0.2}
    retry = RetryPolicy(**{**settings, **options})
    return DeliveryWorker(store.path, targets, retry, rng=random.Random(7))


def _states(store: Store) -> dict[str, str]:
    return dict(store.db.execute("SELECT webhook_id, state FROM outbox").fetchall())


def _wait_until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("unavailable_seconds", [3.0])
def test_retries_through_an_outage_and_a_restart_delivering_each_once_or_more(
    store: Store,
    record: Callable[..., int],
    make_finding: Callable[..., Finding],
    start_receiver: Callable[..., WebhookReceiver],
    unavailable_seconds: float,
) -> None:
    receiver = start_receiver(unavailable_seconds=unavailable_seconds)
    # The first answer comes after the worker's timeout: the receiver got it, the
    # worker does not know, so it sends it again under the same webhook-id.
    receiver.script.append((200, {}, 1.0))
    key = decode_secret(SECRET)
    targets = [
        WebhookTarget(receiver.url("/generic"), "generic", "info", key),
        WebhookTarget(receiver.url("/pd"), "pagerduty", "warning", key, "routing"),
    ]
    policy = NotificationPolicy(targets)
    for i, model in enumerate(("fraud", "churn", "ranker")):
        severity = "critical" if i == 0 else "warning"
        record(store, model, make_finding(event_ts=1e9 + i, severity=severity), policy=policy)
    assert WebhookOutbox.depth(store.db) == 6

    first = _worker(store, targets, timeout=0.5)
    first.start()
    time.sleep(1.5)
    first.close()  # a restart mid-way, with rows still undelivered
    assert "pending" in _states(store).values()

    with store.transaction() as db:
        db.execute("UPDATE incidents SET status = 'resolved', resolved_at = 2e9 WHERE id = 1")
        assert policy.enqueue_changes(db, time.time()) == 2
    second = _worker(store, targets)
    second.start()
    try:
        _wait_until(lambda: set(_states(store).values()) == {"delivered"}, 20)
    finally:
        second.close()

    assert any(r.status == 503 for r in receiver.received)
    expected = set(_states(store))
    assert len(expected) == 8
    assert {r.headers["webhook-id"] for r in receiver.accepted()} == expected
    assert len(receiver.accepted()) > len(expected)  # the timed-out one came twice
    body_of: dict[str, bytes] = {}
    for request in receiver.received:
        assert verify_signature(SECRET, request.headers, request.body)
        # A webhook-id always comes with the same body: duplicates are recognisable.
        assert body_of.setdefault(request.headers["webhook-id"], request.body) == request.body
    assert len(set(body_of.values())) == len(body_of)
    pd = [orjson.loads(r.body) for r in receiver.accepted() if r.path == "/pd"]
    key = store.db.execute("SELECT key FROM incidents WHERE id = 1").fetchone()[0]
    fraud = [p["event_action"] for p in pd if p["dedup_key"] == key]
    assert fraud[0] == "trigger" and fraud[-1] == "resolve"  # the resolve never overtakes
    assert all(p["routing_key"] == "routing" for p in pd)


@pytest.mark.parametrize("status", [400, 404, 410, 302])
def test_client_errors_and_redirects_are_not_retried(
    store: Store,
    record: Callable[..., int],
    make_finding: Callable[..., Finding],
    start_receiver: Callable[..., WebhookReceiver],
    status: int,
) -> None:
    receiver = start_receiver(script=[(status, {"Location": "/elsewhere"}, 0.0)])
    targets = [WebhookTarget(receiver.url(), "generic")]
    record(store, "fraud", make_finding(), policy=NotificationPolicy(targets))
    worker = _worker(store, targets)
    try:
        assert worker.deliver_due() == 0
        assert worker.deliver_due(time.time() + 3600) == 0
    finally:
        worker.close()
    assert len(receiver.received) == 1
    state, last_status, failed_at = store.db.execute(
        "SELECT state, last_status, failed_at FROM outbox"
    ).fetchone()
    assert (state, last_status) == ("failed", status)
    assert failed_at is not None


def test_too_many_requests_waits_as_retry_after_says(
    store: Store,
    record: Callable[..., int],
    make_finding: Callable[..., Finding],
    start_receiver: Callable[..., WebhookReceiver],
) -> None:
    receiver = start_receiver(script=[(429, {"Retry-After": "1"}, 0.0)])
    targets = [WebhookTarget(receiver.url(), "generic")]
    record(store, "fraud", make_finding(), policy=NotificationPolicy(targets))
    worker = _worker(store, targets, base_delay=0.01, max_delay=0.01)
    worker.start()
    try:
        _wait_until(lambda: len(receiver.accepted()) == 1, 10)
    finally:
        worker.close()
    first, second = receiver.received
    assert first.status == 429
    assert 0.9 <= second.at - first.at <= 2.0


def test_retry_after_as_http_date() -> None:
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30, abs=1)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("soon", now) is None


def test_gives_up_after_max_age_and_records_it(
    store: Store,
    record: Callable[..., int],
    make_finding: Callable[..., Finding],
    start_receiver: Callable[..., WebhookReceiver],
) -> None:
    receiver = start_receiver(unavailable_seconds=3600)
    targets = [WebhookTarget(receiver.url(), "generic")]
    record(store, "fraud", make_finding(), policy=NotificationPolicy(targets))
    worker = _worker(store, targets, max_age=1.0, base_delay=0.1, max_delay=0.2)
    worker.start()
    try:
        _wait_until(lambda: set(_states(store).values()) == {"gave_up"}, 10)
    finally:
        worker.close()
    attempts, status, gave_up_at, error = store.db.execute(
        "SELECT attempts, last_status, gave_up_at, last_error FROM outbox"
    ).fetchone()
    assert attempts >= 2
    assert status == 503
    assert gave_up_at is not None
    assert "503" in error
    events = [
        orjson.loads(c)["event"]
        for (c,) in store.db.execute("SELECT content FROM audit WHERE kind = 'notification'")
    ]
    assert events == ["enqueued", "gave_up"]


def test_slack_gets_at_most_one_message_per_second(
    store: Store,
    record: Callable[..., int],
    make_finding: Callable[..., Finding],
    start_receiver: Callable[..., WebhookReceiver],
) -> None:
    receiver = start_receiver()
    targets = [WebhookTarget(receiver.url("/slack"), "slack", "info")]
    policy = NotificationPolicy(targets)
    for i in range(4):
        record(store, f"model{i}", make_finding(event_ts=1e9 + i), policy=policy)
    worker = _worker(store, targets)
    worker.start()
    try:
        _wait_until(lambda: len(receiver.accepted()) == 4, 10)
    finally:
        worker.close()
    times = [r.at for r in receiver.received]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(receiver.received) == 4
    assert min(gaps) >= 0.95, gaps


def test_rows_to_a_url_no_longer_configured_wait_then_give_up(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> None:
    configured = [WebhookTarget("http://127.0.0.1:9/gone", "generic")]
    record(store, "fraud", make_finding(), policy=NotificationPolicy(configured))
    worker = _worker(store, [], max_age=60)
    try:
        assert worker.deliver_due() == 0
        assert set(_states(store).values()) == {"pending"}
        worker.deliver_due(time.time() + 61)
    finally:
        worker.close()
    assert set(_states(store).values()) == {"gave_up"}


def test_checkpoints_and_deliveries_interleave_and_the_audit_chain_holds(
    store: Store,
    make_finding: Callable[..., Finding],
    start_receiver: Callable[..., WebhookReceiver],
) -> None:
    receiver = start_receiver()
    targets = [WebhookTarget(receiver.url(), "generic", "info")]
    policy = NotificationPolicy(targets)
    worker = _worker(store, targets, poll_seconds=0.01)
    worker.start()
    try:
        for i in range(30):
            # What Pipeline.checkpoint does: alerts, their audit rows and outbox rows at once.
            with write_transaction(store.db) as db:
                caller = make_finding(signal=f"client:c{i}", event_ts=1e9 + i * 7200)
                AlertPolicy().record(db, f"m{i % 5}", [caller])  # a caller: its own incident
                AuditLog.append_new_alerts(db)
                policy.enqueue_changes(db, time.time())
            worker.wake()
        _wait_until(lambda: set(_states(store).values()) == {"delivered"}, 20)
    finally:
        worker.close()
    assert len(receiver.accepted()) == 30
    assert AuditLog.verify(store.db) is None
    kinds = dict(store.db.execute("SELECT kind, count(*) FROM audit GROUP BY kind").fetchall())
    assert kinds == {"alert": 30, "incident_transition": 30, "notification": 60}


def test_a_hanging_receiver_delays_only_its_own_notifications(
    store: Store,
    record: Callable[..., int],
    make_finding: Callable[..., Finding],
    start_receiver: Callable[..., WebhookReceiver],
) -> None:
    # The first request to the hanging receiver gets no answer before the
    # worker's timeout; the other receiver answers at once.
    hanging = start_receiver(script=[(200, {}, 6.0)])
    quick = start_receiver()
    targets = [
        WebhookTarget(hanging.url("/slow"), "generic", "info"),
        WebhookTarget(quick.url("/fast"), "generic", "info"),
    ]
    policy = NotificationPolicy(targets)
    for i in range(3):
        record(store, f"model{i}", make_finding(event_ts=1e9 + i), policy=policy)
    worker = _worker(store, targets, timeout=5.0)
    worker.start()
    try:
        # Every notification to the quick receiver arrives while the hanging one
        # still holds the first request it got (its rows come first in the outbox).
        _wait_until(lambda: len(quick.accepted()) == 3, 4.0)
        assert len(hanging.received) == 1
    finally:
        worker.close()
