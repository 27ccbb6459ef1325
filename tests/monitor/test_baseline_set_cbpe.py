"""`baseline set` gives CBPE its reference too: scored predictions of the file and their labels."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import orjson

from monitor.cli.main import main
from monitor.ingest.events import Event
from monitor.pipeline.reference_sample import ModelSample, unpack_events

BASE_TS = 1.7e9  # in the past, as test events must be
REFERENCE = 4000
WINDOW = 500
CONFIG = f"""
[store]
path = "{{store}}"

[detection]
reference_size = {REFERENCE}
window = 500
estimated_window = {WINDOW}

[[models]]
name = "m"
"""


def _predictions(n: int, seed: int, sure: float, start: int, prefix: str) -> list[bytes]:
    """A binary classifier's predictions and, right after each, its label. Scores near
    ``sure`` on average; the labels agree with the predictions less often than the scores
    say (overconfident), so the file's labels change the calibration."""
    rng = np.random.default_rng(seed)
    lines: list[bytes] = []
    for i in range(n):
        score = float(np.clip(rng.normal(sure, 0.08), 0.5, 0.999))
        fraud = bool(rng.random() < 0.5)
        right = bool(rng.random() < 0.5 + 0.8 * (score - 0.5))
        ts = BASE_TS + start + i
        x = float(rng.normal())
        lines.append(
            orjson.dumps(
                {
                    "model": "m",
                    "ts": ts,
                    "id": f"{prefix}{i}",
                    "features": {"x": x},
                    "prediction": "fraud" if fraud else "ok",
                    "score": score,
                }
            )
        )
        truth = ("fraud" if fraud else "ok") if right else ("ok" if fraud else "fraud")
        lines.append(
            orjson.dumps(
                {
                    "type": "label",
                    "model": "m",
                    "ts": ts + 0.5,
                    "id": f"{prefix}{i}",
                    "label": truth,
                }
            )
        )
    return lines


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _stream(seed: int) -> list[bytes]:
    """Predictions without labels: 1,000 as sure as the reference, then 1,000 unsure."""
    lines = _predictions(1000, seed, 0.9, 10**6, "s")[::2]
    return lines + _predictions(1000, seed + 1, 0.62, 10**6 + 1000, "u")[::2]


def _windows(store: Path) -> list[tuple[int, str, float]]:
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT window, metric, value FROM performance_windows "
            "WHERE kind = 'estimated' ORDER BY window, metric"
        ).fetchall()
    return [(int(w), str(m), float(v)) for w, m, v in rows]


def test_the_sample_keeps_the_labels_of_its_predictions_only() -> None:
    sample = ModelSample("m", size=100, max_features=10)
    sample.offer_label(Event("label", "m", BASE_TS, id="p-early", label="a"))  # before its pred
    for i in range(1000):
        sample.offer(Event("prediction", "m", BASE_TS + i, id=f"p{i}", prediction="a", score=0.9))
        sample.offer_label(Event("label", "m", BASE_TS + i, id=f"p{i}", label="b"))
        sample.offer_label(Event("label", "m", BASE_TS + i, id=f"p{i}", label="c"))  # 2nd: no
    sample.offer(Event("prediction", "m", BASE_TS + 2000, id="p-early", prediction="a", score=0.9))
    events = unpack_events(sample.packed())
    predictions = [e for e in events if e.type == "prediction"]
    labels = [e for e in events if e.type == "label"]
    assert len(predictions) == 100 and sample.rows_read == 1001
    # every prediction still in the sample has its first label; no other label is kept
    sampled = {e.id for e in predictions} - {"p-early"}
    assert {e.id for e in labels} == sampled
    assert {e.label for e in labels} == {"b"}
    assert all(e.score == 0.9 and e.id is not None for e in predictions)


def test_cbpe_takes_its_reference_and_calibration_from_the_file(tmp_path: Path) -> None:
    reference = _write(tmp_path / "validation.jsonl", _predictions(REFERENCE, 1, 0.9, 0, "r"))
    stream = _write(tmp_path / "stream.jsonl", _stream(2))
    stores = {}
    for chosen in (True, False):
        store = tmp_path / f"{chosen}.db"
        config = tmp_path / f"{chosen}.toml"
        config.write_text(CONFIG.format(store=store), encoding="utf-8")
        if chosen:
            argv = ["baseline", "set", "--model", "m", "--input", str(reference)]
            assert main([*argv, "--config", str(config)]) == 0
        assert main(["replay", "--config", str(config), "--input", str(stream)]) == 0
        stores[chosen] = store
    # Warming up on the stream, CBPE has no reference yet after 2,000 predictions;
    # from the file, it estimates every window of the stream.
    assert _windows(stores[False]) == []
    windows = _windows(stores[True])
    assert sorted({w for w, _, _ in windows}) == [0, 1, 2, 3]
    accuracy = [v for _, m, v in windows if m == "accuracy"]
    # The file's labels calibrate the overconfident scores: the estimate is the accuracy
    # the labels gave (about 0.5 + 0.8 * 0.4 = 0.82), not the scores' mean (0.9).
    assert abs(accuracy[0] - 0.82) < 0.03 and abs(accuracy[1] - 0.82) < 0.03
    assert accuracy[3] < accuracy[1] - 0.1, "unsure predictions lower the estimate"
    with sqlite3.connect(stores[True]) as db:
        alerts = db.execute(
            "SELECT signal, details FROM alerts WHERE detector = 'cbpe' ORDER BY id"
        ).fetchall()
        audit = [
            orjson.loads(r[0])
            for r in db.execute("SELECT content FROM audit WHERE kind = 'baseline_change'")
        ]
    assert alerts and alerts[0][0] == "estimated:accuracy"
    assert orjson.loads(alerts[0][1])["calibrated"] is True
    carried = [a for a in audit if a.get("source") == "reference carried out"]
    assert carried and carried[0]["estimated_reference"] == REFERENCE
