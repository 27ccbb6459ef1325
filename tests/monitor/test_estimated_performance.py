"""Performance estimated without labels, through the service: `estimated:*` alerts and the
estimated and realized windows reach the store, whatever the checkpoints, and show in
`driftwarden performance`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.cli.main import main
from monitor.config import parse_config
from monitor.ingest.events import Event
from monitor.pipeline.pipeline import Pipeline
from monitor.store.store import Store

T0 = 1.6e9  # in the past
DETECTION = {"reference_size": 10_000, "window": 2000, "detectors": ["ks"]}


def _lines(n: int, shift_at: int, seed: int, delay: int = 300) -> list[dict[str, Any]]:
    """A binary model with calibrated confidences; from ``shift_at`` on, scores toward 0.5.
    Each label comes ``delay`` predictions after its prediction."""
    rng = np.random.default_rng(seed)
    p = np.where(np.arange(n) < shift_at, rng.beta(0.6, 0.6, n), rng.beta(3, 3, n))
    fraud = rng.random(n) < p
    out: list[dict[str, Any]] = []
    for i in range(n + delay):
        if i < n:
            predicted = "fraud" if p[i] >= 0.5 else "ok"
            score = float(p[i] if predicted == "fraud" else 1 - p[i])
            out.append(
                {
                    "model": "m",
                    "ts": T0 + i,
                    "id": f"r{i}",
                    "prediction": predicted,
                    "score": score,
                    "features": {"x": float(rng.normal())},
                }
            )
        j = i - delay
        if j >= 0:
            label = "fraud" if fraud[j] else "ok"
            out.append(
                {"type": "label", "model": "m", "ts": T0 + i + 0.5, "id": f"r{j}", "label": label}
            )
    return out


def _event(line: dict[str, Any]) -> Event:
    kind = line.get("type", "prediction")
    fields = {k: v for k, v in line.items() if k not in ("type", "model", "ts")}
    return Event(kind, "m", line["ts"], **fields)


def _run(lines: list[dict[str, Any]], path: Path, every: int) -> tuple[list[Any], list[Any]]:
    config = parse_config(
        {"store": {"path": str(path)}, "models": [{"name": "m"}], "detection": DETECTION}, "t"
    )
    store = Store(path)
    pipeline = Pipeline(config, store)
    for k, line in enumerate(lines, start=1):
        pipeline.feed(_event(line))
        if k % every == 0:
            pipeline.checkpoint()
    pipeline.checkpoint()
    store.close()
    with sqlite3.connect(path) as db:
        alerts = db.execute(
            "SELECT signal, severity, event_ts, details FROM alerts WHERE detector = 'cbpe' "
            "ORDER BY event_ts, signal"
        ).fetchall()
        windows = db.execute(
            "SELECT window, end_ts, metric, kind, value, band_low, band_high, alarm_below, rows "
            "FROM performance_windows ORDER BY end_ts, kind, metric"
        ).fetchall()
    return alerts, windows


def test_estimated_alerts_and_windows_reach_the_store_whatever_the_checkpoints(
    tmp_path: Path,
) -> None:
    lines = _lines(30_000, shift_at=22_000, seed=1)
    alerts, windows = _run(lines, tmp_path / "a.db", every=5_000)
    assert (alerts, windows) == _run(lines, tmp_path / "b.db", every=1_777)
    signals = {a[0] for a in alerts}
    assert "estimated:accuracy" in signals
    first = orjson.loads(next(a[3] for a in alerts if a[0] == "estimated:accuracy"))
    assert first["event_index"] >= 2 * 22_000 - 300  # predictions and labels interleave
    assert first["reference_value"] > first["alarm_below"] > first["estimated_value"]
    # Windows 0-9 estimated (three metrics each); realized three windows later: 0-6.
    estimated = [w for w in windows if w[3] == "estimated"]
    realized = [w for w in windows if w[3] == "realized"]
    assert len(estimated) == 3 * 10 and len(realized) == 3 * 7
    before_shift = {(w[0], w[2]): w for w in estimated if w[0] < 6}
    inside = [
        before_shift[(r[0], r[2])][5] <= r[4] <= before_shift[(r[0], r[2])][6]
        for r in realized
        if (r[0], r[2]) in before_shift
    ]
    assert sum(inside) >= 0.8 * len(inside) and len(inside) == 18


def _replay(tmp_path: Path, lines: list[dict[str, Any]], detection: str) -> None:
    """`driftwarden replay` of ``lines`` into tmp_path/s.db (json: orjson refuses 10**400)."""
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(x) + "\n" for x in lines))
    config = tmp_path / "c.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "s.db"}"\n[detection]\n{detection}'
        'detectors = ["ks"]\n[[models]]\nname = "m"\n'
    )
    assert main(["replay", "--config", str(config), "--input", str(events)]) == 0


def test_replay_and_the_performance_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    detection = "reference_size = 10000\nwindow = 2000\nestimated_window = 1000\n"
    _replay(tmp_path, _lines(26_000, 20_000, 2), detection)
    with sqlite3.connect(tmp_path / "s.db") as db:
        fired = db.execute(
            "SELECT count(*) FROM alerts WHERE signal = 'estimated:accuracy'"
        ).fetchone()[0]
        state = db.execute(
            "SELECT state FROM signal_state WHERE signal = 'estimated:accuracy'"
        ).fetchone()
        tested = db.execute(
            "SELECT count(*) FROM signal_history WHERE signal = 'estimated:accuracy' "
            "AND change = 'tested'"
        ).fetchone()[0]
    assert fired >= 1 and state == ("firing",)
    assert tested == 16  # 16,000 predictions after the reference, windows of 1,000
    capsys.readouterr()
    assert (
        main(
            [
                "performance",
                "--store",
                str(tmp_path / "s.db"),
                "--metric",
                "accuracy",
                "--limit",
                "3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all("accuracy: estimated 0.6" in line for line in out)
    assert main(["performance", "--store", str(tmp_path / "s.db"), "--model", "other"]) == 2
    assert "no estimated performance recorded for model other" in capsys.readouterr().err


def test_hostile_probabilities_and_labels_do_not_stop_the_estimates(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    lines: list[dict[str, Any]] = []
    for i in range(700):
        p = float(rng.random())
        probabilities: dict[str, Any] = {"a": p, "b": 1 - p}
        if i % 7 == 0:
            probabilities = {f"c{k}": 1 for k in range(5000)}  # more classes than tracked
        elif i % 7 == 1:
            probabilities = {"a": 10**400, "b": -3}  # too large for a float; negative
        label = {"type": "label", "model": "m", "ts": T0 + i, "id": f"r{i}", "label": 10**400}
        lines += [
            {
                "model": "m",
                "ts": T0 + i,
                "id": f"r{i}",
                "prediction": 1 if p > 0.5 else 0,
                "probabilities": probabilities,
            },
            label,
        ]
    _replay(tmp_path, lines, "reference_size = 200\nwindow = 100\n")
    with sqlite3.connect(tmp_path / "s.db") as db:
        estimated = db.execute(
            "SELECT count(*) FROM performance_windows WHERE kind = 'estimated'"
        ).fetchone()[0]
        skipped = db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    assert estimated > 0  # windows of the usable rows were estimated
    assert skipped == 0  # nothing here is malformed: numbers too large are data
