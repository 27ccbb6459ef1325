"""One log line per alert written: read back from the store, never one logged twice."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from monitor.daemon import alert_log
from monitor.daemon.alert_log import AlertLog
from monitor.daemon.logs import JsonFormatter
from monitor.store.store import Store
from tests.signal_support import fire


def test_each_new_alert_is_one_json_line_and_older_ones_are_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "store.db")
    fire(store, "fraud", "feature:before")  # written before the daemon started
    lines = AlertLog(str(store.path))
    monkeypatch.setattr(alert_log, "LINES_PER_PASS", 2)
    fire(store, "fraud", "feature:amount", severity="critical", event_ts=1_764_140_000.0)
    fire(store, "churn", "score", detector="cusum")
    fire(store, "churn", "feature:tenure")
    with caplog.at_level(logging.WARNING, logger="driftwarden.alerts"):
        assert lines.log_new() == 2  # bounded per pass; the rest on the next
        assert lines.log_new() == 1
        assert lines.log_new() == 0
    entries = [orjson.loads(JsonFormatter().format(r)) for r in caplog.records]
    stored = store.db.execute(
        "SELECT id, model, detector, signal, severity, incident_id FROM alerts WHERE id > 1"
    ).fetchall()
    assert [
        (e["alert_id"], e["model"], e["detector"], e["signal"], e["severity"], e["incident_id"])
        for e in entries
    ] == [tuple(row) for row in stored]
    assert entries[0]["msg"] == "alert"
    assert entries[0]["event_time"] == "2025-11-26T06:53:20.000Z"
    assert all(e["incident_id"] is not None for e in entries)
    lines.stop()
    store.close()
