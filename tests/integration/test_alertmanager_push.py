"""Firing signals pushed to a real Alertmanager: shown, grouped, silenced, resolved, durable."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.notify.alertmanager import AlertmanagerPusher, AlertmanagerTarget, PushPolicy
from monitor.store.store import Store
from tests.integration.daemon_support import free_port, wait_until
from tests.integration.prometheus_support import Service, active_alerts, alertmanager
from tests.signal_support import fire, resolve

pytestmark = pytest.mark.prometheus

FAST = PushPolicy(timeout=5.0, base_delay=0.2, max_delay=1.0, poll_seconds=0.2)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "store.db")
    yield store
    store.close()


@pytest.fixture
def am(tmp_path: Path) -> Iterator[Service]:
    with alertmanager(tmp_path / "alertmanager") as service:
        yield service


@pytest.fixture
def pusher(store: Store, am: Service) -> Iterator[AlertmanagerPusher]:
    pusher = _pusher(store, am.url)
    pusher.start()
    yield pusher
    pusher.stop(timeout=10)


def _pusher(store: Store, url: str) -> AlertmanagerPusher:
    target = AlertmanagerTarget(url, resend_seconds=2.0)
    return AlertmanagerPusher(store.path, [target], "https://dw.example/report", policy=FAST)


def _by_signal(alerts: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(a["labels"]["model"], a["labels"]["signal"]): a for a in alerts}


def test_firing_signals_show_in_alertmanager_grouped_by_model_and_kind(
    store: Store, am: Service, pusher: AlertmanagerPusher
) -> None:
    fire(store, "fraud", "feature:amount", severity="critical")
    fire(store, "fraud", "feature:age")
    fire(store, "fraud", "score", detector="psi")
    fire(store, "churn", "feature:tenure")
    wait_until(lambda: len(active_alerts(am)) == 4, 30, "four alerts in Alertmanager")
    alerts = _by_signal(active_alerts(am))
    amount = alerts[("fraud", "amount")]
    assert amount["labels"] == {
        "alertname": "DriftwardenDrift",
        "model": "fraud",
        "detector": "ks",
        "signal": "amount",
        "kind": "drift",
        "severity": "critical",
    }
    assert amount["annotations"]["summary"] == "fraud: drift in amount (ks)"
    assert "p-value 1e-06" in amount["annotations"]["description"]
    assert amount["annotations"]["report"] == "https://dw.example/report"
    assert amount["startsAt"].startswith("2025-11-26")  # the signal's event time
    assert alerts[("fraud", "score")]["labels"]["kind"] == "output"
    assert all(a["status"]["state"] == "active" for a in alerts.values())

    def groups() -> dict[tuple[str, str], set[str]]:
        return {
            (g["labels"]["model"], g["labels"]["kind"]): {
                a["labels"]["signal"] for a in g["alerts"]
            }
            for g in am.get("/api/v2/alerts/groups")
        }

    wait_until(lambda: len(groups()) == 3, 30, "three groups")
    assert groups() == {
        ("fraud", "drift"): {"amount", "age"},
        ("fraud", "output"): {"score"},
        ("churn", "drift"): {"tenure"},
    }


def test_a_silence_made_in_alertmanager_suppresses_the_alert(
    store: Store, am: Service, pusher: AlertmanagerPusher
) -> None:
    fire(store, "fraud", "feature:amount")
    fire(store, "churn", "feature:tenure")
    wait_until(lambda: len(active_alerts(am)) == 2, 30, "two alerts")
    now = time.time()
    created = am.post(
        "/api/v2/silences",
        {
            "matchers": [{"name": "model", "value": "fraud", "isRegex": False, "isEqual": True}],
            "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 5)),
            "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
            "createdBy": "test",
            "comment": "known retraining",
        },
    )
    silence = created["silenceID"]

    def states() -> dict[tuple[str, str], tuple[str, list[str]]]:
        return {
            k: (a["status"]["state"], a["status"]["silencedBy"])
            for k, a in _by_signal(active_alerts(am)).items()
        }

    wait_until(lambda: states()[("fraud", "amount")][0] == "suppressed", 30, "the silence")
    assert states() == {
        ("fraud", "amount"): ("suppressed", [silence]),
        ("churn", "tenure"): ("active", []),
    }
    unsilenced = _by_signal(active_alerts(am, silenced="false"))
    assert set(unsilenced) == {("churn", "tenure")}
    ends = _by_signal(active_alerts(am))[("fraud", "amount")]["endsAt"]
    time.sleep(3)  # a resend later, the pushed alert is still the silenced one
    assert states()[("fraud", "amount")] == ("suppressed", [silence])
    # Re-sent while firing: its endsAt moved on (four resends ahead of the last push).
    assert _by_signal(active_alerts(am))[("fraud", "amount")]["endsAt"] > ends


def test_signals_back_to_ok_are_resolved_in_alertmanager(
    store: Store, am: Service, pusher: AlertmanagerPusher
) -> None:
    fire(store, "fraud", "feature:amount")
    fire(store, "fraud", "feature:age")
    wait_until(lambda: len(active_alerts(am)) == 2, 30, "two alerts")
    resolve(store, "fraud", "feature:amount")
    wait_until(lambda: len(active_alerts(am)) == 1, 30, "the resolved alert to leave")
    assert set(_by_signal(active_alerts(am))) == {("fraud", "age")}
    assert store.db.execute("SELECT count(*) FROM alertmanager_pushes").fetchone()[0] == 1


def test_a_resolve_missed_while_stopped_is_sent_after_a_restart(store: Store, am: Service) -> None:
    first = _pusher(store, am.url)
    first.start()
    fire(store, "fraud", "feature:amount")
    wait_until(lambda: len(active_alerts(am)) == 1, 30, "the alert")
    first.stop(timeout=10)
    resolve(store, "fraud", "feature:amount")  # while no pusher runs
    time.sleep(1)
    assert len(active_alerts(am)) == 1  # nobody told Alertmanager yet
    second = _pusher(store, am.url)
    second.start()
    try:
        wait_until(lambda: not active_alerts(am), 30, "the resolve after the restart")
    finally:
        second.stop(timeout=10)


def test_pushes_are_retried_until_alertmanager_answers(store: Store, tmp_path: Path) -> None:
    port = free_port()
    pusher = _pusher(store, f"http://127.0.0.1:{port}")
    pusher.start()
    try:
        fire(store, "fraud", "feature:amount")
        time.sleep(1.5)  # a few failed pushes against the closed port
        told = store.db.execute("SELECT count(*) FROM alertmanager_pushes").fetchone()[0]
        assert told == 0  # a failed push is not taken as told
        with alertmanager(tmp_path / "late", port) as am:
            wait_until(lambda: len(active_alerts(am)) == 1, 30, "the alert after the retries")
    finally:
        pusher.stop(timeout=10)
