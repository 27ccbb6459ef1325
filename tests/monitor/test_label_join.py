"""The durable label join: labels join whenever they come, counted, whatever the checkpoints."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from monitor.cli.main import main
from monitor.config import Config, parse_config
from monitor.ingest.events import Event, Row, Scalar
from monitor.pipeline.label_store import StoredPrediction, waiting_predictions
from monitor.pipeline.pipeline import Pipeline
from monitor.store.store import Store

T0 = 1.6e9  # in the past


def _config(store: Path, horizon: str = "30d", max_pending: int = 10_000_000) -> Config:
    raw: dict[str, Any] = {
        "store": {"path": str(store)},
        "models": [{"name": "m"}],
        "detection": {"reference_size": 500, "window": 200, "detectors": ["cusum"]},
        "labels": {"horizon": horizon, "max_pending": max_pending},
    }
    return parse_config(raw, "test")


def _counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT labels, joined, late, unmatched, duplicate, evicted, expired "
            "FROM label_counts WHERE model = 'm'"
        ).fetchone()
    names = ("labels", "joined", "late", "unmatched", "duplicate", "evicted", "expired")
    return dict(zip(names, row, strict=True))


def _run(events: list[Event], path: Path, every: int, config: Config | None = None) -> Pipeline:
    """Feed ``events`` with a checkpoint every ``every`` events (and at the end)."""
    store = Store(path)
    pipeline = Pipeline(config or _config(path), store)
    for k, event in enumerate(events, start=1):
        pipeline.feed(event)
        if k % every == 0:
            pipeline.checkpoint()
    pipeline.checkpoint()
    store.close()
    return pipeline


def _late_stream(n: int, delay: int, seed: int) -> list[Event]:
    """Predictions one second apart; each one's label ``delay`` events later (90% right)."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    truths: list[str] = []
    for i in range(n + delay):
        if i >= delay:
            j = i - delay
            events.append(Event("label", "m", T0 + i, id=f"r{j}", label=truths[j]))
        if i < n:
            predicted = "a" if rng.random() < 0.5 else "b"
            right = rng.random() < 0.9
            truths.append(predicted if right else ("b" if predicted == "a" else "a"))
            features: dict[str, Any] = {"x": float(rng.normal())}
            events.append(
                Event(
                    "prediction", "m", T0 + i, id=f"r{i}", prediction=predicted, features=features
                )
            )
    return events


def test_labels_50000_events_late_still_join(tmp_path: Path) -> None:
    events = _late_stream(60_000, delay=50_000, seed=1)
    _run(events, tmp_path / "s.db", every=7_000)
    counts = _counts(tmp_path / "s.db")
    assert counts["labels"] == 60_000 and counts["joined"] == 60_000
    assert counts["late"] == counts["unmatched"] == counts["duplicate"] == 0
    with sqlite3.connect(tmp_path / "s.db") as db:
        waiting = db.execute("SELECT pending FROM label_counts WHERE model = 'm'").fetchone()[0]
    assert waiting == 0
    assert not [p for p in _waiting(tmp_path / "s.db") if not p.joined]


def test_late_unmatched_duplicate_and_evicted_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    events = [
        Event("prediction", "m", T0, id="old", prediction="a"),
        Event("prediction", "m", T0 + 10, id="p1", prediction="a"),
        Event("prediction", "m", T0 + 11, id="p2", prediction=2.5),
        Event("label", "m", T0 + 20, id="p1", label="a"),  # joined
        Event("label", "m", T0 + 21, id="p1", label="b"),  # duplicate
        Event("label", "m", T0 + 22, id="nobody", label="a"),  # unmatched
        Event("label", "m", T0 + 23, id="p2", label=3.0),  # joined (a value)
        # The clock moves 90 s on: "old" is beyond the 60 s horizon, within twice it.
        Event("prediction", "m", T0 + 100, id="p3", prediction="b"),
        Event("label", "m", T0 + 101, id="old", label="a"),  # late
    ]
    _run(events, path, every=2, config=_config(path, horizon="60s"))
    assert _counts(path) == {
        "labels": 5,
        "joined": 2,
        "late": 1,
        "unmatched": 1,
        "duplicate": 1,
        "evicted": 0,
        "expired": 0,
    }
    # Beyond twice the horizon, predictions are gone: unlabelled ones count as expired.
    later = [
        Event("prediction", "m", T0 + 1000, id="p4", prediction="a"),
        Event("label", "m", T0 + 1001, id="p3", label="b"),  # gone: unmatched
    ]
    _run(later, path, every=100, config=_config(path, horizon="60s"))
    counts = _counts(path)
    assert counts["unmatched"] == 2 and counts["expired"] == 2  # "old" was late, never joined
    # max_pending: the oldest go first, counted as evicted.
    small = tmp_path / "small.db"
    predictions = [Event("prediction", "m", T0 + i, id=f"q{i}", prediction="a") for i in range(10)]
    labels = [Event("label", "m", T0 + 20, id="q0", label="a")]
    labels.append(Event("label", "m", T0 + 21, id="q9", label="a"))
    _run(predictions + labels, small, every=3, config=_config(small, max_pending=4))
    counts = _counts(small)
    assert (counts["unmatched"], counts["joined"], counts["evicted"]) == (1, 1, 6)


def _waiting(path: Path) -> list[StoredPrediction]:
    store = Store(path)
    try:
        return waiting_predictions(store.db, "m")
    finally:
        store.close()


def _joined_rows(path: Path) -> list[StoredPrediction]:
    """The stored predictions, but for those a later prediction with the same id replaced."""
    latest = {p.id: p for p in _waiting(path)}
    return sorted(latest.values(), key=lambda p: p.id)


def test_the_join_is_the_same_across_checkpoints_and_a_restart(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    events: list[Event] = []
    for i in range(20_000):  # ids repeat, labels come 0..3000 events late, some twice
        if i > 100 and rng.random() < 0.6:
            j = int(i - rng.integers(1, min(i, 3000)))
            events.append(Event("label", "m", T0 + j + 5, id=f"r{j % 4000}", label="a"))
        predicted = "a" if rng.random() < 0.8 else "b"
        events.append(Event("prediction", "m", T0 + i, id=f"r{i % 4000}", prediction=predicted))
    config_one = _config(tmp_path / "one.db", horizon="1000s", max_pending=2_500)
    one = _run(events, tmp_path / "one.db", every=10**9, config=config_one)
    config_two = _config(tmp_path / "two.db", horizon="1000s", max_pending=2_500)
    half = len(events) // 2
    _run(events[:half], tmp_path / "two.db", every=997, config=config_two)
    two = _run(events[half:], tmp_path / "two.db", every=1_301, config=config_two)  # a restart
    # Every label's outcome is the same, and so is the number of predictions that went
    # unlabelled (those replaced by a later one with their id too, whatever batch of the
    # store they sit in); whether one went as evicted or expired is decided at the
    # checkpoint that finds it gone.
    outcomes = ("labels", "joined", "late", "unmatched", "duplicate")
    counts_one, counts_two = _counts(tmp_path / "one.db"), _counts(tmp_path / "two.db")
    assert [counts_one[k] for k in outcomes] == [counts_two[k] for k in outcomes]
    gone_one = counts_one["evicted"] + counts_one["expired"]
    assert gone_one == counts_two["evicted"] + counts_two["expired"]
    assert counts_one["late"] > 0 and counts_one["duplicate"] > 0 and counts_one["unmatched"] > 0
    assert gone_one > 0
    assert _joined_rows(tmp_path / "one.db") == _joined_rows(tmp_path / "two.db")
    assert _waiting(tmp_path / "one.db") == _waiting(tmp_path / "two.db")
    findings_one = one.models["m"].detectors.dump()["errors"]
    assert findings_one == two.models["m"].detectors.dump()["errors"]


def test_the_labels_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.db"
    events = [
        Event("prediction", "m", T0, id="p1", prediction="a"),
        Event("prediction", "m", T0 + 1, id="p2", prediction="a"),
        Event("prediction", "m", T0 + 2, id="p3", prediction="a"),
        Event("label", "m", T0 + 3600, id="p1", label="a"),  # an hour late
        Event("label", "m", T0 + 3601, id="p1", label="a"),
        Event("label", "m", T0 + 3602, id="zz", label="a"),
    ]
    _run(events, path, every=100)
    assert main(["labels", "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("m: 2 predictions pending; 3 labels, 1 joined (33.3%); label delay ")
    assert "p50 ≤1.14h" in out  # 3600 s lies in the bin [2**(47/4), 2**12) s
    assert "not joined: 0 late, 1 unmatched, 1 duplicate" in out
    assert out.rstrip().endswith("; feedback test: waiting for the model's reference")
    assert main(["labels", "--store", str(path), "--model", "other"]) == 2
    assert capsys.readouterr().err.startswith("driftwarden: no labels recorded for model other")
    assert main(["labels", "--store", str(tmp_path / "missing.db")]) == 2
    assert "no such store" in capsys.readouterr().err


def test_the_labels_command_before_any_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model that only predicts (labels never come) says so, not that it waits."""
    path = tmp_path / "s.db"
    events = [Event("prediction", "m", T0 + i, id=f"p{i}", prediction="a") for i in range(3)]
    _run(events, path, every=100)
    assert main(["labels", "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("m: 3 predictions pending; 0 labels, 0 joined (0.0%)")
    assert out.rstrip().endswith("; feedback test: no labels yet")


def test_the_replay_summary_counts_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"type": "prediction", "model": "m", "ts": T0, "id": "p1", "prediction": "a"},
        {"type": "label", "model": "m", "ts": T0 + 5, "id": "p1", "label": "b"},
        {"type": "label", "model": "m", "ts": T0 + 6, "id": "p9", "label": "b"},
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "s.db"}"\n[[models]]\nname = "m"\n')
    assert main(["replay", "--config", str(config), "--input", str(events)]) == 0
    out = capsys.readouterr().out
    assert "labels of m: 2 labels, 1 joined (50.0%), 0 late, 1 unmatched, 0 duplicate" in out


def test_an_accuracy_drop_becomes_a_performance_alert(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    events: list[Event] = []
    for i in range(36_000):
        predicted = "fraud" if rng.random() < 0.3 else "ok"
        right = rng.random() < (0.944 if i < 18_000 else 0.915)
        truth = predicted if right else ("ok" if predicted == "fraud" else "fraud")
        events.append(Event("prediction", "m", T0 + i, id=f"r{i}", prediction=predicted))
        events.append(Event("label", "m", T0 + i + 0.5, id=f"r{i}", label=truth))
    path = tmp_path / "s.db"
    _run(events, path, every=5_000)
    with sqlite3.connect(path) as db:
        alerts = db.execute(
            "SELECT detector, event_ts, details FROM alerts WHERE signal = 'performance:accuracy'"
        ).fetchall()
        states = db.execute(
            "SELECT state FROM signal_state WHERE signal = 'performance:accuracy'"
        ).fetchall()
    assert alerts and alerts[0][0] == "performance"
    assert alerts[0][1] >= T0 + 18_000
    details = orjson.loads(alerts[0][2])
    assert details["reference_value"] > details["window_value"]
    assert states == [("firing",)]


def _featured(n: int, seed: int, start: float = T0) -> tuple[list[Event], list[str]]:
    """``n`` predictions ten seconds apart, each with a numeric and a categorical feature;
    and the label each one will get (90% right)."""
    rng = np.random.default_rng(seed)
    events: list[Event] = []
    truths: list[str] = []
    for i in range(n):
        predicted = "a" if rng.random() < 0.5 else "b"
        truths.append(predicted if rng.random() < 0.9 else ("b" if predicted == "a" else "a"))
        features: dict[str, Any] = {"x": float(rng.normal()), "c": f"k{rng.integers(0, 4)}"}
        events.append(
            Event(
                "prediction",
                "m",
                start + 10 * i,
                id=f"r{i}",
                prediction=predicted,
                features=features,
            )
        )
    return events, truths


def _feedback_state(path: Path) -> dict[str, Any]:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT feedback FROM label_counts WHERE model = 'm'").fetchone()
    return orjson.loads(row[0])  # type: ignore[no-any-return]


def test_labels_days_late_join_with_their_segments_across_a_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.db"
    predictions, truths = _featured(3_000, seed=4)
    # Two runs for the predictions (a restart mid-warm-up), checkpoints anywhere.
    _run(predictions[:300], path, every=77)
    _run(predictions[300:], path, every=337)
    waiting = _waiting(path)
    keyed = [p.ins for p in waiting if p.segments is not None]
    unkeyed = [p.ins for p in waiting if p.segments is None]
    # The model's reference is its first 500 rows: those have no key, the rest do.
    assert (len(keyed), min(keyed)) == (2_500, 500) and max(unkeyed) == 499
    # Three days later, after another restart, the labels come.
    late = T0 + 3 * 86_400
    labels = [
        Event("label", "m", late + i, id=f"r{i}", label=truth) for i, truth in enumerate(truths)
    ]
    _run(labels, path, every=1_000)
    assert _counts(path)["joined"] == 3_000
    state = _feedback_state(path)
    assert state["count"] == 2_500 and state["skipped"] == 500
    assert [f["name"] for f in state["layout"]] == ["c", "x"]
    assert state["classes"] == ["a", "b"] or state["classes"] == ["b", "a"]
    assert main(["labels", "--store", str(path)]) == 0
    assert (
        capsys.readouterr()
        .out.rstrip()
        .endswith(
            "; feedback test: reference 2,500 of 5,000 labels (2 features; 500 labels without "
            "segments)"
        )
    )
    # The same events in one run, without restarts or checkpoints: the same state.
    _run([*predictions, *labels], tmp_path / "one.db", every=10**9)
    assert _feedback_state(tmp_path / "one.db") == state


def test_poisoned_feedback_in_one_segment_becomes_an_alert_in_a_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(6)
    merchants = [f"m{i:02d}" for i in range(12)]
    shares = 1 / np.arange(1, 13)
    shares[7] = 0
    shares *= 0.97 / shares.sum()
    shares[7] = 0.03
    lines = []
    onset = 24_000
    for i in range(34_000):
        merchant = merchants[int(rng.choice(12, p=shares))]
        predicted = "approve" if rng.random() < 0.7 else "decline"
        poisoned = i >= onset and merchant == "m07" and predicted == "approve"
        wrong = rng.random() < (0.30 if poisoned else 0.05)
        truth = ("decline" if predicted == "approve" else "approve") if wrong else predicted
        features = {"merchant": merchant, "amount": float(rng.lognormal(3, 1))}
        ts = T0 + i
        lines.append(
            {"model": "m", "ts": ts, "id": f"r{i}", "prediction": predicted, "features": features}
        )
        lines.append({"type": "label", "model": "m", "ts": ts + 0.5, "id": f"r{i}", "label": truth})
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    config = tmp_path / "c.toml"
    store = tmp_path / "s.db"
    config.write_text(
        f'[store]\npath = "{store}"\n[detection]\nreference_size = 2000\n'
        'detectors = ["ks"]\n[labels]\nfeedback_reference = 8000\n[[models]]\nname = "m"\n'
    )
    assert main(["replay", "--config", str(config), "--input", str(events)]) == 0
    capsys.readouterr()
    with sqlite3.connect(store) as db:
        alerts = db.execute(
            "SELECT detector, signal, event_ts, details FROM alerts WHERE signal LIKE 'feedback:%'"
        ).fetchall()
        kinds = db.execute(
            "SELECT DISTINCT i.kind, i.title FROM incidents i "
            "JOIN alerts a ON a.incident_id = i.id WHERE a.signal LIKE 'feedback:%'"
        ).fetchall()
    assert alerts, "the poisoned segment raised no alert"
    detector, signal, event_ts, details = alerts[0]
    assert (detector, signal) == ("feedback", "feedback:merchant=m07")
    assert T0 + onset <= event_ts <= T0 + onset + 5_000
    facts = orjson.loads(details)
    assert facts["direction"] == "approve → decline"
    assert facts["current_rate"] > 2 * facts["reference_rate"]
    assert kinds == [("performance", "m: labels disagree in merchant=m07 (approve → decline)")]
    assert main(["labels", "--store", str(store)]) == 0
    # The first 2,000 predictions are the model's warm-up: their labels have no segments.
    assert (
        capsys.readouterr()
        .out.rstrip()
        .endswith(
            "feedback test: 24,000 labels tested on 2 features after a reference of 8,000 "
            "(2,000 labels without segments)"
        )
    )


def test_a_store_from_before_segments_gains_them_and_its_predictions_still_join(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the tables as the version before segment keys made them
        db.execute(
            "CREATE TABLE label_pending (model TEXT NOT NULL, id TEXT NOT NULL, "
            "ins INTEGER NOT NULL, ts REAL NOT NULL, predicted TEXT, value REAL, score REAL, "
            "joined INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (model, id)) WITHOUT ROWID"
        )
        db.execute(
            "CREATE TABLE label_counts (model TEXT PRIMARY KEY, inserted INTEGER NOT NULL, "
            "watermark REAL NOT NULL, labels INTEGER NOT NULL, joined INTEGER NOT NULL, "
            "late INTEGER NOT NULL, unmatched INTEGER NOT NULL, duplicate INTEGER NOT NULL, "
            "evicted INTEGER NOT NULL, expired INTEGER NOT NULL, delays TEXT NOT NULL, "
            "performance TEXT)"
        )
        db.execute("INSERT INTO label_pending VALUES ('m', 'old', 0, ?, 'a', NULL, NULL, 0)", [T0])
        db.execute(
            "INSERT INTO label_counts VALUES ('m', 1, ?, 0, 0, 0, 0, 0, 0, 0, ?, NULL)",
            [T0, orjson.dumps([0] * 162).decode()],
        )
    predictions, _ = _featured(600, seed=2, start=T0 + 1)
    _run([*predictions, Event("label", "m", T0 + 7_000, id="old", label="a")], path, every=250)
    assert _counts(path)["joined"] == 1
    assert _feedback_state(path)["skipped"] == 1  # no segments: the feedback test skips it
    keyed = [p for p in _waiting(path) if p.segments is not None]
    assert len(keyed) == 100  # of the 600 predictions, those after the warm-up


@pytest.mark.parametrize("seed", range(4))
def test_rows_handed_over_at_once_are_remembered_as_one_at_a_time(
    tmp_path: Path, seed: int
) -> None:
    """``predictions_of_rows`` (the pipeline's rows at a label or a flush) leaves the join
    as ``prediction`` row by row would: plain rows, and rows without an id, with a value,
    a bool, no prediction or a number as class, from any position."""
    from monitor.pipeline.label_join import ModelLabelJoin

    rng = np.random.default_rng(seed)
    odd: list[Scalar | None] = [None, 3, 2.5, True, float("nan"), "b"]
    rows: list[Row] = []
    for k in range(400):
        ident = None if rng.random() < 0.05 else f"r{int(rng.integers(0, 300))}"
        prediction = odd[int(rng.integers(0, len(odd)))] if rng.random() < 0.1 else "a"
        score = None if rng.random() < 0.2 else float(rng.random())
        rows.append(
            (
                "m",
                T0 + float(rng.normal(k, 20)),
                ident,
                None,
                None,
                prediction,
                score,
                "prediction",
                None,
            )
        )
    if seed % 2:  # plain rows only: the fast path
        rows = [r for r in rows if r[2] is not None and type(r[5]) is str]
    stores = [Store(tmp_path / f"{name}.db") for name in ("one", "all")]
    one, together = (ModelLabelJoin("m", s.db, 86_400.0, 1_000) for s in stores)
    for k, row in enumerate(rows[:250]):
        if row[2] is not None:
            one.prediction(row[2], row[1], row[5], row[6], k)
    together.predictions_of_rows(rows[:250], 0)
    for k, row in enumerate(rows[250:], 250):
        if row[2] is not None:
            one.prediction(row[2], row[1], row[5], row[6], k)
    together.predictions_of_rows(rows, 250)
    assert together.watermark == one.watermark
    for column in ("ids", "ts", "predicted", "scores", "batch_rows"):
        assert repr(getattr(together.recent, column)) == repr(getattr(one.recent, column))
    for s in stores:
        s.close()
