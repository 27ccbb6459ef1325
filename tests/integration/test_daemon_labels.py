"""Labels days late in event time join exactly across SIGKILLs of the daemon."""

from __future__ import annotations

import random
import signal
import time
from functools import partial
from pathlib import Path

import numpy as np
import orjson
import pytest

from monitor.store.store import Store
from tests.integration.daemon_support import (
    consumed,
    free_port,
    produce_file,
    readyz,
    replay_alerts,
    start_daemon,
    stop,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka
SPACING = 60.0  # a prediction a minute of event time
DELAY = 3 * 24 * 60  # each label comes 3 days (in event time) after its prediction
PREDICTIONS = 16_000


def _write_stream(path: Path) -> int:
    """Predictions of ``fraud`` a minute apart, 60% labelled 3 days later; the model's
    accuracy falls from 90% to 70% two thirds of the way. Returns the labels written."""
    rng = np.random.default_rng(11)
    start = time.time() - 20 * 86_400  # all in the past: ends ~9 days ago
    due: dict[int, list[dict[str, object]]] = {}
    labels = 0
    with path.open("wb") as out:
        for i in range(PREDICTIONS + DELAY + 1):
            ts = round(start + i * SPACING, 3)
            for label in due.pop(i, []):
                out.write(orjson.dumps({**label, "ts": ts}) + b"\n")
            if i >= PREDICTIONS:
                continue
            score = float(rng.beta(2, 5))
            predicted = "fraud" if score > 0.5 else "ok"
            event = {
                "type": "prediction",
                "model": "fraud",
                "id": f"p-{i}",
                "ts": ts,
                "features": {"amount": round(float(rng.lognormal(3, 1)), 2)},
                "prediction": predicted,
                "score": round(score, 4),
            }
            out.write(orjson.dumps(event) + b"\n")
            if rng.random() < 0.6:
                accuracy = 0.9 if i < 2 * PREDICTIONS // 3 else 0.7
                truth = predicted if rng.random() < accuracy else ("ok", "fraud")[predicted == "ok"]
                label = {"type": "label", "model": "fraud", "id": f"p-{i}", "label": truth}
                due.setdefault(i + DELAY, []).append(label)
                labels += 1
    return labels


def _reached(store: Path, records: int) -> bool:
    return consumed(store) >= records


def _label_counts(store_path: Path) -> list[tuple[object, ...]]:
    store = Store(store_path)
    try:
        return store.db.execute(
            "SELECT model, labels, joined, late, unmatched, duplicate, evicted, expired "
            "FROM label_counts ORDER BY model"
        ).fetchall()
    finally:
        store.close()


def test_labels_days_late_join_exactly_across_sigkills(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    labels = _write_stream(events)
    total = produce_file(kafka_bootstrap, topic, events)
    store = tmp_path / "live.db"
    port = free_port()
    config = write_config(tmp_path / "live.toml", kafka_bootstrap, topic, store, port)
    log = tmp_path / "daemon.log"

    rng = random.Random(5)
    for target in sorted(rng.sample(range(3_000, total - 3_000), 2)):
        process = start_daemon(config, log)
        try:
            wait_until(partial(_reached, store, target), 180, f"{target} records")
            time.sleep(rng.random() * 0.5)  # the kill lands anywhere between checkpoints
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    process = start_daemon(config, log)
    try:
        # Started, its stop handled, before the stop below: the killed daemons may have
        # read the whole stream already.
        wait_until(lambda: readyz(port)[0] != 0, 120, "the ops server")
        wait_until(lambda: consumed(store) >= total, 300, "the whole stream")
    finally:
        code = stop(process)
    assert code == 0, log.read_text()[-3000:]

    live = _label_counts(store)
    assert live == [("fraud", labels, labels, 0, 0, 0, 0, 0)], "every label 3 days late joins"
    opened = Store(store)
    try:
        live_alerts = opened.alerts()
    finally:
        opened.close()
    replayed = replay_alerts(config, events, tmp_path / "replay.db")
    assert live == _label_counts(tmp_path / "replay.db")
    assert live_alerts == replayed
    assert any(a["signal"] == "performance:accuracy" for a in live_alerts), (
        "the fall in accuracy, seen only through the late labels, is found"
    )
