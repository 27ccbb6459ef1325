"""The model's event clock (which ages its signal history) moves with the bulk of
the stream, not its maximum; no clock resolves an incident."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.base import SignalChange
from monitor.config import parse_config
from monitor.incidents import signal_states
from monitor.ingest.events import Event
from monitor.pipeline.event_clock import EventClock
from monitor.pipeline.pipeline import Pipeline
from monitor.store.store import Store
from tests.alerting.conftest import finding

T0 = 1_793_491_200.0


def test_one_record_far_ahead_does_not_move_the_clock() -> None:
    clock = EventClock(recent=100, quorum=10)
    assert clock.observe([T0 + i for i in range(50)]) == T0 + 40
    assert clock.observe([T0 + 365 * 86_400]) == T0 + 41  # the bulk moved one event on
    assert clock.observe([T0 + 51 + i for i in range(5)]) == T0 + 46
    # Nine future-dated events among a hundred still do not; the tenth does.
    clock.observe([T0 + 365 * 86_400] * 8)
    assert clock.now < T0 + 100
    assert clock.observe([T0 + 365 * 86_400]) == T0 + 365 * 86_400


def test_the_clock_never_goes_back_and_waits_for_a_quorum() -> None:
    clock = EventClock(recent=100, quorum=10)
    assert clock.observe([T0] * 9) == float("-inf")
    assert clock.observe([T0 + 5]) == T0
    assert clock.observe([T0 - 1000] * 200) == T0
    with pytest.raises(ValueError, match="quorum"):
        EventClock(recent=5, quorum=6)


def _prediction(ts: float) -> Event:
    return Event("prediction", "fraud", ts, features={"amount": 1.0}, score=0.5)


def test_an_open_incident_stays_open_when_one_future_dated_record_arrives(tmp_path: Path) -> None:
    config = parse_config({"store": {"path": "x.db"}, "models": [{"name": "fraud"}]}, "test")
    store = Store(tmp_path / "clock.db")
    pipeline = Pipeline(config, store)
    alert = finding(event_ts=T0, severity="critical")
    fired = SignalChange("fired", alert.detector, alert.signal, T0, "critical", firing=True)
    with store.transaction() as db:
        pipeline.policy.record(db, "fraud", [alert])
        signal_states.apply(db, "fraud", [fired], [alert], pipeline.policy, T0)
    for i in range(200):
        pipeline.feed(_prediction(T0 + i))
    pipeline.feed(_prediction(T0 + 300 * 86_400))  # a year-ahead record, within bounds
    for i in range(200, 220):
        pipeline.feed(_prediction(T0 + i))
    pipeline.checkpoint()
    status = store.db.execute("SELECT status FROM incidents").fetchone()[0]
    history = store.db.execute("SELECT count(*) FROM signal_history").fetchone()[0]
    assert (status, history) == ("open", 1)  # nor is its history pruned by the far clock
    # Time alone never resolves it, however far the bulk of the stream moves:
    # only its signal testing within its baseline again does.
    for i in range(100):
        pipeline.feed(_prediction(T0 + 40 * 86_400 + i))
    pipeline.checkpoint()
    status = store.db.execute("SELECT status FROM incidents").fetchone()[0]
    history = store.db.execute("SELECT count(*) FROM signal_history").fetchone()[0]
    store.close()
    assert (status, history) == ("open", 0)  # older than [history] retention_days
