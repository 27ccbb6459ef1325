"""Signals are states: a shift that stays keeps its incident open to the end of the
stream; one that ends resolves it after the recovery windows; replays agree."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from monitor.cli import main as cli
from monitor.config import parse_config
from monitor.ingest.events import Event
from monitor.pipeline.pipeline import Pipeline
from monitor.report.data import load_report
from monitor.report.report import render
from monitor.store.store import Store

T0 = 1_790_000_000.0
WINDOW = 200
CONFIG = {
    "store": {"path": "x.db"},
    "detection": {"window": WINDOW, "reference_size": 1000, "recover_windows": 3},
    "models": [{"name": "fraud"}],
}


def _stream(n: int, shift: tuple[int, int], seed: int = 3, spacing: float = 1.0) -> list[Event]:
    """``x`` normal, moved by 3 standard deviations over events [start, stop)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    x[shift[0] : shift[1]] += 3.0
    country = rng.choice(["DE", "FR", "US"], n, p=[0.5, 0.3, 0.2])
    score = rng.beta(2, 5, n)
    return [
        Event(
            "prediction",
            "fraud",
            T0 + i * spacing,
            features={"x": float(x[i]), "country": str(country[i])},
            score=float(score[i]),
        )
        for i in range(n)
    ]


def _run(store: Store, events: list[Event], checkpoint_every: int = 1000) -> None:
    pipeline = Pipeline(parse_config(CONFIG, "test"), store)
    for i, event in enumerate(events, 1):
        pipeline.feed(event)
        if i % checkpoint_every == 0:
            pipeline.checkpoint()
    pipeline.checkpoint()


def _states(store: Store) -> list[tuple[object, ...]]:
    return store.db.execute(
        "SELECT detector, signal, state, severity, since_ts, last_tested_ts, last_violation_ts, "
        "resolved_ts, statistic, p_value, threshold, effect_size FROM signal_state "
        "ORDER BY detector, signal"
    ).fetchall()


def test_a_shift_that_stays_keeps_its_incident_open_to_the_end(tmp_path: Path) -> None:
    store = Store(tmp_path / "stays.db")
    _run(store, _stream(8000, (3000, 8000)))
    incidents = store.db.execute("SELECT status, resolved_by FROM incidents").fetchall()
    assert incidents and all(status == "open" for status, _ in incidents), incidents
    ks = store.db.execute(
        "SELECT state, since_ts, last_tested_ts FROM signal_state WHERE detector = 'ks' "
        "AND signal = 'x'"
    ).fetchone()
    assert ks[0] == "firing"
    assert T0 + 3000 <= ks[1] < T0 + 3000 + 2 * WINDOW  # fired soon after the onset
    assert ks[2] == T0 + 7999  # still firing when last tested: the stream's last window
    alerts = store.db.execute("SELECT count(*) FROM alerts WHERE signal = 'x'").fetchone()[0]
    windows = store.db.execute(
        "SELECT count(*) FROM signal_history WHERE detector = 'ks' AND signal = 'x' "
        "AND change = 'tested' AND state = 'firing'"
    ).fetchone()[0]
    # Re-confirmed every window without a new alert each time.
    assert windows >= (8000 - 3000) // WINDOW - 2 and alerts <= 10
    store.close()


def test_a_shift_that_ends_resolves_after_the_recovery_windows(tmp_path: Path) -> None:
    store = Store(tmp_path / "ends.db")
    _run(store, _stream(8000, (3000, 4000)))
    rows = store.db.execute(
        "SELECT status, resolved_by, resolved_event_ts FROM incidents ORDER BY id"
    ).fetchall()
    assert rows and all(status == "resolved" for status, _, _ in rows), rows
    assert {by for _, by, _ in rows} == {"driftwarden (signals ok)"}
    last = max(ts for *_, ts in rows)
    # Three clean windows after the last one that saw the shift, and no later.
    assert T0 + 4000 + 2 * WINDOW <= last <= T0 + 4000 + 5 * WINDOW, last - T0
    firing = store.db.execute("SELECT count(*) FROM signal_state WHERE state = 'firing'")
    assert firing.fetchone()[0] == 0
    resolved = store.db.execute(
        "SELECT count(*) FROM signal_history WHERE change = 'resolved' AND signal = 'x'"
    ).fetchone()[0]
    assert resolved >= 1
    store.close()


def test_states_do_not_depend_on_checkpoints_or_restarts(tmp_path: Path) -> None:
    events = _stream(7000, (3000, 4200), seed=8)
    one = Store(tmp_path / "one.db")
    _run(one, events, checkpoint_every=10_000)
    two = Store(tmp_path / "two.db")
    _run(two, events[:3333], checkpoint_every=517)  # a restart mid-stream
    _run(two, events[3333:], checkpoint_every=1234)
    assert _states(one) == _states(two)
    history = "SELECT detector, signal, event_ts, change, state, statistic FROM signal_history "
    history += "WHERE change != 'confirmed' ORDER BY event_ts, detector, signal, change"
    assert one.db.execute(history).fetchall() == two.db.execute(history).fetchall()
    one.close()
    two.close()


def test_the_commands_say_what_fires_now_and_what_it_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich would wrap tables at 80 columns
    store = Store(tmp_path / "cli.db")
    _run(store, _stream(6000, (3000, 6000)))
    path = str(store.path)
    store.close()
    assert cli.main(["signals", "--store", path, "--now", "--firing"]) == 0
    out = capsys.readouterr().out
    assert "firing" in out and " x " in out and "country" not in out
    assert cli.main(["incidents", "show", "1", "--store", path]) == 0
    out = capsys.readouterr().out
    assert "firing now" in out and "Its signals now" in out and "ks:x" in out
    since = f"{T0 + 4000:.0f}"
    argv = ["signals", "--store", path, "--signal", "x", "--detector", "ks"]
    assert cli.main([*argv, "--since", since, "--format", "json"]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    tested = [r for r in rows if r["change"] == "tested"]
    assert len(tested) == (6000 - 4000) // WINDOW  # one line per window since --since
    assert all(r["state"] == "firing" and r["event_ts"] >= T0 + 4000 for r in tested)
    assert cli.main(["signals", "--store", path, "--now", "--since", since]) == 2
    assert "drop --now" in capsys.readouterr().err


def test_the_report_says_which_signals_fire_now(tmp_path: Path) -> None:
    for name, shift in (("stays", (3000, 6000)), ("ends", (3000, 3600))):
        store = Store(tmp_path / f"{name}.db")
        _run(store, _stream(6000, shift))
        store.close()
        html = render(load_report(tmp_path / f"{name}.db"))
        if name == "stays":
            now = re.search(r"<th>firing now</th><td>(\d+) of \d+: (.*?)</td>", html)
            assert now is not None and int(now[1]) >= 1 and "<code>ks:x</code>" in now[2]
        else:
            assert "none: every signal is back within its baseline" in html


def test_a_sparse_stream_keeps_one_incident_per_problem(tmp_path: Path) -> None:
    store = Store(tmp_path / "sparse.db")
    _run(store, _stream(8000, (3000, 8000), spacing=500.0))  # one event every 500 s
    rows = store.db.execute("SELECT kind, status, alert_count FROM incidents").fetchall()
    store.close()
    drift = [r for r in rows if r[0] == "drift"]
    assert len(drift) == 1 and drift[0][1] == "open", rows
