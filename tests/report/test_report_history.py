"""The report's timelines from ``signal_history``, its time axis, and its Reproduce section."""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import sqlite3
from datetime import UTC, datetime
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from detectors.base import Finding
from monitor.incidents.grouping import AlertPolicy
from monitor.replay.kafka_replay import parse_time
from monitor.report.history import MAX_POINTS
from monitor.report.plots import time_labels
from monitor.store.store import Store
from simulation.simulator import write_simulation

HOSTILE = "<script>alert(1)</script>"
T0 = 1_780_000_000.0  # 2026-05-28, in the past


class Plots(HTMLParser):
    """Each timeline's parts, keyed by the plot's label (its title)."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: list[tuple[str, dict[str, Any]]] = []
        self._current: dict[str, Any] | None = None
        self._in_tick = False
        self.reproduce: list[str] = []
        self._in_reproduce = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "svg":
            self._current = {"lines": [], "ticks": [], "rects": [], "changes": [], "markers": 0}
            self.plots.append((a.get("aria-label", ""), self._current))
        self._in_reproduce = tag == "pre" and "reproduce" in classes
        if self._current is None:
            return
        if "swatch" in classes:  # the legend's
            return
        if tag == "polyline" and "history" in classes:
            self._current["lines"].append(len(a.get("points", "").split()))
        if tag == "rect" and classes:
            self._current["rects"].append(classes[0])
        if tag == "line" and "change" in classes:
            self._current["changes"].append(classes[1])
        self._current["markers"] += tag == "circle" and "marker" in classes
        self._in_tick = tag == "text" and "time-tick" in classes

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._current = None
        self._in_tick = False
        self._in_reproduce = False

    def handle_data(self, data: str) -> None:
        if self._in_tick and self._current is not None:
            self._current["ticks"].append(data)
        if self._in_reproduce:
            self.reproduce.append(data)


def _finding(signal: str, ts: float, severity: str = "warning") -> Finding:
    return Finding(
        detector="ks",
        signal=signal,
        event_ts=ts,
        severity=severity,  # type: ignore[arg-type]
        statistic=0.3,
        threshold=1e-4,
        p_value=1e-12,
        effect_size=0.3,
    )


def _history_store(
    path: Path, tests: int, step: float, fired: float, resolved: float, signal: str = "amount"
) -> Path:
    """An incident on ks:``signal`` and ``tests`` tested rows every ``step`` s from T0."""
    store = Store(path)
    try:
        with store.transaction() as db:
            AlertPolicy().record(db, "fraud", [_finding(f"feature:{signal}", fired)])
            rows: list[tuple[Any, ...]] = [
                (
                    "fraud",
                    "ks",
                    signal,
                    T0 + i * step,
                    "tested",
                    "firing" if fired <= T0 + i * step < resolved else "ok",
                    "info",
                    0.1,
                    10.0 ** -(1 + i % 7),
                    1e-4,
                    0.1,
                )
                for i in range(tests)
            ]
            rows += [
                ("fraud", "ks", signal, ts, change, state, "warning", None, None, None, None)
                for ts, change, state in ((fired, "fired", "firing"), (resolved, "resolved", "ok"))
            ]
            db.conn.executemany(
                "INSERT INTO signal_history (model, detector, signal, event_ts, change, state, "
                "severity, statistic, p_value, threshold, effect_size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.execute(
                "UPDATE incidents SET status = 'resolved', resolved_event_ts = ?", [resolved]
            )
    finally:
        store.close()
    return path


def _render(driftwarden: Any, store: Path, out: Path, *extra: str) -> str:
    done = driftwarden("report", "--store", str(store), "--out", str(out), *extra)
    assert done.returncode == 0, done.stderr
    return out.read_text(encoding="utf-8")


def _plots(html: str) -> Plots:
    page = Plots()
    page.feed(html)
    return page


def test_a_long_history_is_drawn_with_at_most_max_points(driftwarden: Any, tmp_path: Path) -> None:
    # 12,000 tests every 10 s (33 h) around an incident of 4 h: the range is the
    # incident with 4 h either side, 4,321 tests, drawn with an even stride of 3.
    fired, resolved = T0 + 60_000.0, T0 + 60_000.0 + 4 * 3600
    store = _history_store(tmp_path / "long.db", 12_000, 10.0, fired, resolved)
    page = _plots(_render(driftwarden, store, tmp_path / "long.html"))
    ((label, plot),) = page.plots
    in_range = sum(
        1 for i in range(12_000) if fired - 4 * 3600 <= T0 + i * 10 <= resolved + 4 * 3600
    )
    assert in_range == 4321
    assert plot["lines"] == [-(-in_range // 3)] and plot["lines"][0] <= MAX_POINTS
    assert plot["rects"].count("firing-span") == 1
    assert plot["changes"] == ["change-fired", "change-resolved"]
    assert plot["markers"] == 1
    assert f"[{plot['lines'][0]:,} of {in_range:,} tests shown]" in label


def test_a_short_history_is_drawn_whole(driftwarden: Any, tmp_path: Path) -> None:
    # 100 tests every 30 s; the incident (fired at test 40, resolved at test 45)
    # shows with 10 min (its minimum margin) either side: tests 20 to 65.
    fired, resolved = T0 + 40 * 30, T0 + 45 * 30
    store = _history_store(tmp_path / "short.db", 100, 30.0, fired, resolved)
    html = _render(driftwarden, store, tmp_path / "short.html")
    page = _plots(html)
    shown = datetime.fromtimestamp(resolved, tz=UTC).isoformat(timespec="milliseconds")
    assert f"<th>resolved (event time)</th><td>{shown.replace('+00:00', 'Z')}</td>" in html
    assert "<th>kind</th><td>drift</td>" in html
    ((_, plot),) = page.plots
    assert plot["lines"] == [46]


@pytest.mark.parametrize(
    ("span", "pattern"),
    [
        (60.0, r"\d\d:\d\d:\d\d"),
        (86_400.0, r"(\d\d-\d\d )?\d\d:\d\d"),
        (60 * 86_400.0, r"\d{4}-\d\d-\d\d"),
    ],
    ids=["1-minute", "1-day", "60-days"],
)
@pytest.mark.parametrize("start", [T0, T0 + 37_123.4, T0 + 86_399.0])
def test_time_ticks_are_distinct_and_readable(span: float, pattern: str, start: float) -> None:
    ticks = time_labels(start, start + span)
    labels = [label for _, label in ticks]
    assert 3 <= len(labels) <= 8, labels
    assert len(set(labels)) == len(labels), labels
    for t, label in ticks:
        assert re.fullmatch(pattern, label), label
        assert start <= t <= start + span
        shown = datetime.fromtimestamp(t, tz=UTC)
        assert label in (
            shown.strftime("%H:%M:%S"),
            shown.strftime("%H:%M"),
            shown.strftime("%m-%d %H:%M"),
            shown.strftime("%Y-%m-%d"),
        )


@pytest.mark.parametrize(
    ("step", "fired", "resolved", "pattern"),
    [
        (0.1, 4000, 4020, r"\d\d:\d\d"),  # 20 minutes shown
        (60.0, 3000, 4000, r"\d\d-\d\d \d\d:\d\d"),  # 50 hours
        (500.0, 3456, 6912, r"\d{4}-\d\d-\d\d"),  # 60 days
    ],
)
def test_rendered_axes_read_at_their_span(
    step: float, fired: int, resolved: int, pattern: str, driftwarden: Any, tmp_path: Path
) -> None:
    store = _history_store(
        tmp_path / "span.db", 10_000, step, T0 + fired * step, T0 + resolved * step
    )
    ((_, plot),) = _plots(_render(driftwarden, store, tmp_path / "span.html")).plots
    assert len(set(plot["ticks"])) == len(plot["ticks"]) >= 3, plot["ticks"]
    assert all(re.fullmatch(pattern, t) for t in plot["ticks"]), plot["ticks"]


def test_hostile_names_in_the_history_are_escaped(driftwarden: Any, tmp_path: Path) -> None:
    store = _history_store(tmp_path / "hostile.db", 50, 30.0, T0 + 600, T0 + 900, HOSTILE)
    html = _render(driftwarden, store, tmp_path / "hostile.html")
    assert HOSTILE not in html and "&lt;script&gt;" in html
    ((_, plot),) = _plots(html).plots
    assert plot["lines"] == [50]


def test_a_store_without_history_renders_read_only(
    drift_store: Path, driftwarden: Any, tmp_path: Path
) -> None:
    old = tmp_path / "old.db"
    shutil.copy(drift_store, old)
    with sqlite3.connect(old) as db:
        db.execute("DROP TABLE signal_history")
        db.execute("DROP TABLE signal_state")
        markers = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
    before = hashlib.sha256(old.read_bytes()).hexdigest()
    html = _render(driftwarden, old, tmp_path / "old.html")
    assert hashlib.sha256(old.read_bytes()).hexdigest() == before, "the store is not changed"
    page = _plots(html)
    assert sum(p["markers"] for _, p in page.plots) == markers
    assert all(p["lines"] == [] for _, p in page.plots)
    assert "keeps no signal history" in html


def test_the_drift_store_shows_lines_changes_and_the_reference(
    drift_store: Path, driftwarden: Any, tmp_path: Path
) -> None:
    page = _plots(_render(driftwarden, drift_store, tmp_path / "drift.html"))
    timelines = [(k, p) for k, p in page.plots if " on " in k and "window ending" not in k]
    with_lines = [p for _, p in timelines if p["lines"]]
    drawn = [n for p in with_lines for n in p["lines"] if n >= 3]
    assert len(drawn) >= 5, "ks, chi2 and pca_drift signals have their tests drawn"
    cusum = [p for k, p in timelines if k.startswith("cusum on")]
    assert cusum and all(p["lines"] == [] and "change-fired" in p["changes"] for p in cusum)
    assert any("reference-span" in p["rects"] for _, p in timelines)
    assert any("firing-span" in p["rects"] for _, p in timelines)


def _alerts(store: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as db:
        return db.execute(
            "SELECT model, detector, signal, severity, event_ts, details, incident_id "
            "FROM alerts ORDER BY id"
        ).fetchall()


def test_the_reproduce_command_of_a_file_store_replays_the_same_alerts(
    drift_store: Path, driftwarden: Any, tmp_path: Path
) -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"
    # the hostile incident the fixture adds by hand is not in the events: report the others
    with sqlite3.connect(drift_store) as db:
        number = db.execute("SELECT min(id) FROM incidents").fetchone()[0]
    html = _render(
        driftwarden,
        drift_store,
        tmp_path / "r.html",
        "--config",
        str(config),
        "--incident",
        str(number),
    )
    (command,) = _plots(html).reproduce
    assert "--topic" not in command and "--since" not in command
    args = shlex.split(unescape(command))
    assert args[:2] == ["driftwarden", "replay"]
    new = tmp_path / "new.db"
    events = drift_store.parent / "events.jsonl"
    args = [str(events) if a == "EVENTS.jsonl" else str(new) if a == "NEW.db" else a for a in args]
    done = driftwarden(*args[1:])
    assert done.returncode == 0, done.stderr
    original = [a for a in _alerts(drift_store) if HOSTILE not in a[0]]
    assert _alerts(new) == original and len(original) >= 10


def test_the_reproduce_command_of_a_kafka_store(driftwarden: Any, tmp_path: Path) -> None:
    store = _history_store(tmp_path / "kafka.db", 100, 30.0, T0 + 1200, T0 + 1500)
    topic = "fraud events; rm -rf /"
    with sqlite3.connect(store) as db:
        db.execute(
            "INSERT INTO offsets (group_id, topic, partition, next_offset, updated_at) "
            "VALUES ('driftwarden', ?, 0, 1234, ?)",
            [topic, T0],
        )
        db.execute(
            "INSERT INTO baseline_references (model, requested_at, requested_by, source, sha256, "
            "rows_read, sample_size, sample) VALUES ('fraud', ?, 'baseline set', "
            "'good week.jsonl', 'abc', 10, 10, x'00')",
            [T0],
        )
    html = _render(driftwarden, store, tmp_path / "k.html")
    (block,) = _plots(html).reproduce
    lines = unescape(block).splitlines()
    assert lines
    for line in lines:
        args = shlex.split(line)
        assert args[args.index("--topic") + 1] == topic
        assert args[args.index("--reference") + 1] == "good week.jsonl"
        since = parse_time(args[args.index("--since") + 1], "--since")
        until = parse_time(args[args.index("--until") + 1], "--until")
        assert since < until
    assert "Kafka record times" in html and "give its path" in html


def test_the_reproduce_command_carries_a_reference_set_from_a_file(
    driftwarden: Any, tmp_path: Path
) -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"
    events, reference = tmp_path / "events.jsonl", tmp_path / "good week.jsonl"
    write_simulation(events, events=30_000, seed=5)
    write_simulation(reference, events=6_000, seed=9)
    original = tmp_path / "original.db"
    done = driftwarden(
        "replay", "--config", str(config), "--input", str(events), "--reference", str(reference),
        "--store", str(original),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = _render(driftwarden, original, tmp_path / "r.html", "--config", str(config))
    commands = set(_plots(html).reproduce)
    assert len(commands) == 1, "every incident: the same file replay"
    args = shlex.split(unescape(commands.pop()))
    assert args[args.index("--reference") + 1] == "good week.jsonl", "the name the store recorded"
    assert "give its path" in html
    new = tmp_path / "new.db"
    swap = {"EVENTS.jsonl": str(events), "NEW.db": str(new), "good week.jsonl": str(reference)}
    done = driftwarden(*[swap.get(a, a) for a in args[1:]])
    assert done.returncode == 0, done.stderr
    replayed = _alerts(new)
    assert replayed == _alerts(original) and replayed
