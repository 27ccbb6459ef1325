"""The real daemon with a real Prometheus scraping it and a real Alertmanager it pushes to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.store.store import Store
from simulation.simulator import write_simulation
from tests.integration.daemon_support import (
    consumed,
    free_port,
    produce_file,
    readyz,
    start_daemon,
    stop,
    wait_until,
    write_config,
)
from tests.integration.prometheus_support import active_alerts, alertmanager, prometheus, query

pytestmark = [pytest.mark.kafka, pytest.mark.prometheus]


def _store_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    store = Store(path)
    try:
        return [tuple(row) for row in store.db.execute(sql).fetchall()]
    finally:
        store.close()


def _alert_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_bytes().splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("logger") == "driftwarden.alerts":
            lines.append(entry)
    return lines


def test_prometheus_scrapes_the_daemon_and_alertmanager_gets_its_firing_signals(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    write_simulation(events, events=40_000, seed=13)
    store = tmp_path / "live.db"
    port = free_port()
    config = write_config(tmp_path / "live.toml", kafka_bootstrap, topic, store, port, "dw-prom")
    log = tmp_path / "daemon.log"
    with alertmanager(tmp_path / "alertmanager") as am:
        config.write_text(
            config.read_text()
            + f'\n[[alertmanagers]]\nurl = "{am.url}"\nresend_seconds = 2\n'
            + '\n[notifications]\nexternal_url = "https://dw.example/report"\n'
        )
        daemon = start_daemon(config, log)
        try:
            wait_until(lambda: readyz(port)[0] == 200, 60, "/readyz")
            with prometheus(tmp_path / "prometheus", port) as prom:

                def target_up() -> bool:
                    targets = prom.get("/api/v1/targets")["data"]["activeTargets"]
                    return [t["health"] for t in targets] == ["up"]

                wait_until(target_up, 60, "Prometheus to scrape the daemon")
                # Present from the start: a zero per configured model before any alert.
                wait_until(lambda: query(prom, "driftwarden_alerts_total") != [], 30, "a sample")
                before = query(prom, 'driftwarden_alerts_total{severity="warning"}')
                assert {r["metric"]["model"]: r["value"][1] for r in before} == {
                    "fraud": "0",
                    "churn": "0",
                }
                total = produce_file(kafka_bootstrap, topic, events)
                wait_until(lambda: consumed(store) >= total, 180, "the whole stream")
                written = _store_rows(store, "SELECT count(*) FROM alerts")[0][0]
                assert written > 0, "the stream holds drift; the daemon found none"

                def alerts_in_prometheus() -> float:
                    result = query(prom, "sum(driftwarden_alerts_total)")
                    return float(result[0]["value"][1]) if result else -1.0

                wait_until(lambda: alerts_in_prometheus() == written, 60, "the alerts scraped")
                firing = set(
                    _store_rows(
                        store,
                        "SELECT model, detector, signal FROM signal_state WHERE state = 'firing'",
                    )
                )
                assert firing, "alerts were written, so signals fire"

                def in_alertmanager() -> set[tuple[str, str, str]]:
                    return {
                        (a["labels"]["model"], a["labels"]["detector"], a["labels"]["signal"])
                        for a in active_alerts(am)
                    }

                wait_until(lambda: in_alertmanager() == firing, 60, "the firing signals pushed")
                wait_until(
                    lambda: len(query(prom, "driftwarden_signal_firing == 1")) == len(firing),
                    30,
                    "the firing gauges scraped",
                )
                incidents = query(prom, 'sum(driftwarden_incidents{status!="resolved"})')
                assert float(incidents[0]["value"][1]) >= 1
        finally:
            code = stop(daemon)
    assert code == 0, log.read_text()[-3000:]
    stored = _store_rows(
        store, "SELECT id, model, detector, signal, severity, incident_id FROM alerts ORDER BY id"
    )
    lines = _alert_lines(log)
    assert [
        (e["alert_id"], e["model"], e["detector"], e["signal"], e["severity"], e["incident_id"])
        for e in lines
    ] == stored
    assert all(e["msg"] == "alert" and e["event_time"].endswith("Z") for e in lines)
