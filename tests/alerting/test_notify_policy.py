"""Which incident changes notify: trigger, escalation, repeat, resolve, filters, silences."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from detectors.base import Finding
from monitor.notify.outbox import WebhookOutbox, message_id, url_key
from monitor.notify.policy import NotificationPolicy, Silence, add_silence
from monitor.notify.targets import WebhookTarget
from monitor.store.store import Store

HOUR = 3600.0


def _outbox(store: Store) -> list[tuple[str, str, str]]:
    """(url, kind, reason) of each row, the URL found again from its key."""
    urls = {url_key(u): u for u in ("http://h", "http://h/all", "http://h/critical")}
    rows = store.db.execute("SELECT url_key, kind, reason FROM outbox ORDER BY id").fetchall()
    return [(urls[key], kind, reason) for key, kind, reason in rows]


def _tick(store: Store, policy: NotificationPolicy, now: float) -> int:
    with store.transaction() as db:
        return int(policy.enqueue_changes(db, now))


def test_new_escalated_repeated_and_resolved(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> None:
    targets = [
        WebhookTarget("http://h/all", "generic", "info"),
        WebhookTarget("http://h/critical", "pagerduty", "critical"),
    ]
    policy = NotificationPolicy(targets, repeat_seconds=HOUR)
    now = time.time()
    record(store, "fraud", make_finding(severity="warning"))
    assert _tick(store, policy, now) == 1
    assert _tick(store, policy, now + 1) == 0  # nothing changed
    record(store, "fraud", make_finding("country", 1_764_140_100.0, "critical"))
    assert _tick(store, policy, now + 2) == 2
    assert _tick(store, policy, now + HOUR) == 0  # not yet a full interval
    assert _tick(store, policy, now + 2 + HOUR) == 2  # repeat
    store.db.execute("UPDATE incidents SET status = 'resolved' WHERE id = 1")
    assert _tick(store, policy, now + 3 + HOUR) == 2
    assert _tick(store, policy, now + 10 * HOUR) == 0  # resolved: no more repeats
    assert _outbox(store) == [
        ("http://h/all", "trigger", "new"),
        ("http://h/all", "update", "escalated"),
        ("http://h/critical", "update", "escalated"),
        ("http://h/all", "update", "repeat"),
        ("http://h/critical", "update", "repeat"),
        ("http://h/all", "resolve", "resolved"),
        ("http://h/critical", "resolve", "resolved"),
    ]
    transitions = store.db.execute(
        "SELECT count(*) FROM audit WHERE kind = 'incident_transition'"
    ).fetchone()[0]
    assert transitions == 3  # opened, escalated, resolved


def test_resolve_goes_only_where_firing_went(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> None:
    targets = [
        WebhookTarget("http://h/all", "generic", "info"),
        WebhookTarget("http://h/critical", "pagerduty", "critical"),
    ]
    policy = NotificationPolicy(targets)
    record(store, "fraud", make_finding(severity="warning"))
    _tick(store, policy, time.time())
    store.db.execute("UPDATE incidents SET status = 'resolved' WHERE id = 1")
    _tick(store, policy, time.time())
    assert [row[:2] for row in _outbox(store)] == [
        ("http://h/all", "trigger"),
        ("http://h/all", "resolve"),
    ]


def test_acknowledged_incidents_do_not_repeat(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> None:
    policy = NotificationPolicy([WebhookTarget("http://h", "generic")], repeat_seconds=HOUR)
    now = time.time()
    record(store, "fraud", make_finding())
    _tick(store, policy, now)
    store.db.execute("UPDATE incidents SET status = 'acknowledged' WHERE id = 1")
    assert _tick(store, policy, now + 5 * HOUR) == 0


def test_a_silence_mutes_but_keeps_alerts_and_notifies_after_it_ends(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> None:
    policy = NotificationPolicy([WebhookTarget("http://h", "generic")], repeat_seconds=HOUR)
    now = time.time()
    with store.transaction() as db:
        silence = Silence(now - 1, now + 600, "ana", model="fr*", detector="ks", comment="deploy")
        add_silence(db, silence, now)
    record(store, "fraud", make_finding())
    record(store, "churn", make_finding())
    assert _tick(store, policy, now) == 1  # churn only
    assert store.count("alerts") == 2
    assert _tick(store, policy, now + 60) == 0
    assert _tick(store, policy, now + 601) == 1  # the silence is over, fraud still firing
    assert _outbox(store) == [("http://h", "trigger", "new"), ("http://h", "update", "repeat")]


def test_a_silence_must_match_every_signal(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> None:
    policy = NotificationPolicy([WebhookTarget("http://h", "generic")])
    now = time.time()
    with store.transaction() as db:
        add_silence(db, Silence(now - 1, now + 600, "ana", signal="amount"), now)
    record(store, "fraud", make_finding("amount"), make_finding("country", 1_764_140_001.0))
    assert _tick(store, policy, now) == 1


def test_webhook_ids_are_stable_and_distinct() -> None:
    first = message_id("k1", "trigger", 1, "generic", "http://h")
    assert first == message_id("k1", "trigger", 1, "generic", "http://h")
    assert first.startswith("msg_")
    others = {
        message_id("k2", "trigger", 1, "generic", "http://h"),
        message_id("k1", "update", 1, "generic", "http://h"),
        message_id("k1", "trigger", 2, "generic", "http://h"),
        message_id("k1", "trigger", 1, "slack", "http://h"),
    }
    assert first not in others and len(others) == 4


def test_a_replay_recomputes_the_same_rows(
    tmp_path: Path, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> None:
    from monitor.store import schema
    from monitor.store.store import Store

    rows = []
    for name in ("a.db", "b.db"):
        store = Store(tmp_path / name)
        schema.ensure_schema(store.db)
        policy = NotificationPolicy([WebhookTarget("http://h", "pagerduty")])
        record(store, "fraud", make_finding(), policy=policy)
        record(store, "fraud", make_finding("x", 1_764_140_030.0, "critical"), policy=policy)
        rows.append(store.db.execute("SELECT webhook_id, body FROM outbox ORDER BY id").fetchall())
        store.close()
    assert rows[0] == rows[1]


def test_a_new_signal_joining_a_notified_incident_is_an_update_once_per_interval(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> None:
    policy = NotificationPolicy([WebhookTarget("http://h/all", "generic", "info")])
    now = time.time()
    record(store, "fraud", make_finding("amount", 1_764_140_000.0))
    assert _tick(store, policy, now) == 1
    record(store, "fraud", make_finding("amount", 1_764_140_060.0))  # same signal again
    record(store, "fraud", make_finding("country", 1_764_140_120.0))
    assert _tick(store, policy, now + 10) == 0  # within the group interval
    assert _tick(store, policy, now + 300) == 1
    assert _tick(store, policy, now + 900) == 0  # nothing new since
    assert [row[2] for row in _outbox(store)] == ["new", "new_signals"]


def test_the_store_never_holds_a_webhook_url(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> None:
    secret_url = "https://hooks.slack.example/services/T000/B000/XSECRETTOKENX"
    policy = NotificationPolicy([WebhookTarget(secret_url, "slack", "info")])
    record(store, "fraud", make_finding(), policy=policy)
    assert store.count("outbox") == 1
    store.db.execute("PRAGMA wal_checkpoint(FULL)")
    stored = b"".join(p.read_bytes() for p in store.path.parent.glob(store.path.name + "*"))
    assert b"XSECRETTOKENX" not in stored
    assert WebhookOutbox.sent_firing(store.db, 1, secret_url, "slack")
