"""`driftwarden report` over a store written by the real replay: structure and safety."""

from __future__ import annotations

import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from monitor.report.data import load_report, shown_range
from monitor.store.store import Store

HOSTILE = "<script>alert(1)</script>"


class Outline(HTMLParser):
    """The parts of the report the tests look at, from a real HTML parse."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.svgs = 0
        self.markers: list[str] = []
        self.thresholds = 0
        self.cdfs = 0
        self.bars = 0
        self.scripts = 0
        self.loads: list[str] = []
        self.stats_rows = 0
        self._in_stats = False
        self.performance_svgs = 0
        self._in_performance = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "section" and "incident" in classes:
            self.sections.append(a.get("id", ""))
        self.svgs += tag == "svg"
        if tag == "svg" and "estimated without labels and realized" in a.get("aria-label", ""):
            self.performance_svgs += 1
            self._in_performance = True
        self.scripts += tag == "script"
        if tag == "circle" and "marker" in classes:
            self.markers.append(a.get("fill", ""))
        self.thresholds += tag == "polyline" and "threshold" in classes and not self._in_performance
        self.cdfs += tag == "polyline" and "cdf" in classes
        self.bars += tag == "rect" and "bar" in classes
        self._in_stats |= tag == "table" and "stats" in classes
        self.stats_rows += self._in_stats and tag == "tr"
        for key in ("src", "href", "action", "data", "poster"):
            value = a.get(key, "").strip()
            if value and not value.startswith("#"):
                self.loads.append(f"{tag} {key}={value}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_stats = False
        if tag == "svg":
            self._in_performance = False


def _incidents(store: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(store) as db:
        return [
            (int(i), str(m)) for i, m in db.execute("SELECT id, model FROM incidents ORDER BY id")
        ]


@pytest.fixture(scope="module")
def report(drift_store: Path, driftwarden: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("html") / "report.html"
    done = driftwarden("report", "--store", str(drift_store), "--out", str(out))
    assert done.returncode == 0, done.stderr
    incidents = _incidents(drift_store)
    assert done.stdout.strip() == f"wrote {out} with {len(incidents)} incident(s)"
    return out.read_text(encoding="utf-8")


def test_one_section_per_incident_with_timelines_distributions_and_statistics(
    report: str, drift_store: Path
) -> None:
    incidents = _incidents(drift_store)
    assert len(incidents) >= 3, "the simulated drift should open incidents for both models"
    page = Outline()
    page.feed(report)
    assert page.sections == [f"incident-{i}" for i, _ in incidents]
    with sqlite3.connect(drift_store) as db:
        alerts = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
        pairs = db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT incident_id, detector, signal FROM alerts)"
        ).fetchone()[0]
        drift = db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT incident_id, detector, signal FROM alerts "
            "WHERE detector IN ('ks', 'chi2'))"
        ).fetchone()[0]
    assert len(page.markers) == alerts, "one marker per alert"
    assert set(page.markers) <= {"#4a78b5", "#e0a100", "#c62828"}
    assert {"#e0a100", "#c62828"} <= set(page.markers), "warning and critical colours"
    assert page.svgs == pairs + drift + page.performance_svgs, (
        "a timeline per (detector, signal), a distribution plot each, and the performance plots"
    )
    assert page.performance_svgs == _performance_plots(drift_store)
    assert page.thresholds == pairs
    assert page.cdfs >= 2 * 2, "reference and window CDFs of the numeric drift (amount, score...)"
    assert page.bars >= 2 * 8, "reference and window shares of the country mix"
    assert page.stats_rows == alerts + len(incidents), "a header row and a row per alert"
    for needle in ("p-value", "effect size", "threshold", "−log10 p-value", "event time (UTC)"):
        assert needle in report
    assert "2026-11-01T00:" in report, "event times in ISO UTC"
    assert "driftwarden replay --config" in report and "--input EVENTS.jsonl" in report
    assert "--topic" not in report, "a store from a file replay: no Kafka topic to name"
    assert re.search(r"stored detector state.*<code>[0-9a-f]{64}</code>", report)


def _performance_plots(store: Path) -> int:
    """Plots the report should draw: each incident's model's metrics with CBPE windows in
    the span it shows."""
    total = 0
    with sqlite3.connect(store) as db:
        for incident in load_report(store).incidents:
            span = shown_range(incident)
            assert span is not None
            total += db.execute(
                "SELECT count(DISTINCT metric) FROM performance_windows "
                "WHERE model = ? AND end_ts BETWEEN ? AND ?",
                [incident.model, *span],
            ).fetchone()[0]
    return total


def test_estimated_and_realized_performance_side_by_side(report: str, drift_store: Path) -> None:
    """Each incident of a model CBPE estimates shows, per metric, every window in its span:
    the estimate and its band and limit, and the realized value where labels came."""
    incidents = load_report(drift_store).incidents
    estimated = [i for i in incidents if any(s.startswith("cbpe:") for s in i.signals)]
    assert estimated, "the simulated churn decay opens a CBPE incident"
    checked_realized = False
    for incident in incidents:
        span = shown_range(incident)
        assert span is not None
        start = report.index(f'id="incident-{incident.id}"')
        section = report[start : report.index("</section>", start)]
        with sqlite3.connect(drift_store) as db:
            counts = dict(
                db.execute(
                    "SELECT kind, count(*) FROM performance_windows "
                    "WHERE model = ? AND end_ts BETWEEN ? AND ? GROUP BY kind",
                    [incident.model, *span],
                ).fetchall()
            )
            first = db.execute(
                "SELECT window, value FROM performance_windows WHERE model = ? AND "
                "kind = 'estimated' AND metric = 'accuracy' AND end_ts BETWEEN ? AND ? "
                "ORDER BY end_ts LIMIT 1",
                [incident.model, *span],
            ).fetchone()
        if not counts:
            assert "Performance, estimated and realized" not in section
            continue
        assert "Performance, estimated and realized" in section
        assert section.count('class="perf-point estimated"') == counts["estimated"]
        assert section.count('class="perf-point realized"') == counts.get("realized", 0)
        assert section.count('class="perf-band"') == 3, "accuracy, f1 and roc_auc each"
        assert f"window {first[0]} closed" in section
        assert f"estimated {first[1]:.4g} from" in section
        checked_realized |= counts.get("realized", 0) > 0
    assert checked_realized, "fraud's labels give some windows their realized value"


def test_text_from_the_store_is_escaped(report: str) -> None:
    assert HOSTILE not in report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    page = Outline()
    page.feed(report)
    assert page.scripts == 0, "the report runs no script at all"


def test_nothing_is_loaded_from_the_network(report: str) -> None:
    page = Outline()
    page.feed(report)
    assert page.loads == [], "only in-page links (#incident-N)"
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", report, re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", report, re.IGNORECASE)
    assert "default-src 'none'" in report, "a Content-Security-Policy forbids every load"


def test_one_incident_only(drift_store: Path, driftwarden: Any, tmp_path: Path) -> None:
    number, _ = _incidents(drift_store)[1]
    out = tmp_path / "one.html"
    done = driftwarden(
        "report", "--store", str(drift_store), "--out", str(out), "--incident", str(number)
    )
    assert done.returncode == 0, done.stderr
    assert "with 1 incident(s)" in done.stdout
    page = Outline()
    page.feed(out.read_text(encoding="utf-8"))
    assert page.sections == [f"incident-{number}"]


def test_user_errors_are_one_line_with_exit_2(
    drift_store: Path, driftwarden: Any, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.db"
    Store(empty).close()
    out = str(tmp_path / "r.html")
    cases = {
        "no such store": ("--store", str(tmp_path / "missing.db")),
        "holds no incidents": ("--store", str(empty)),
        "no incident 9999": ("--store", str(drift_store), "--incident", "9999"),
    }
    for expected, args in cases.items():
        done = driftwarden("report", *args, "--out", out)
        assert done.returncode == 2, (expected, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("driftwarden: "), done.stderr
        assert expected in lines[0]
    assert not Path(out).exists()
