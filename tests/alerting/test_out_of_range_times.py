"""A store holding event times no date represents still lists, shows and reports.

``ts`` = 1e18 passes the parser as epoch seconds (it is finite) but is past the
year 9999; stores written before the parser refused such times must still open.
NaN cannot be stored (SQLite keeps it as NULL, refused by NOT NULL), so the
formatters' NaN case is covered in tests/monitor/test_timefmt.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from detectors.base import Finding
from monitor.report.data import load_report
from monitor.store.store import Store

WINDOWS = [
    ("far", 1e18, 1e18 - 600.0),
    ("before", -1e18, -1e18 - 600.0),
    ("edge", 1e308, -1e308),  # a window spanning every float
    ("mixed", 1e18, 1_764_140_000.0),  # a window from a real time to an absurd one
]


@pytest.fixture
def absurd_store(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> Store:
    for model, ts, start in WINDOWS:
        finding = make_finding("amount", ts)
        details = {
            **finding.details,
            "window_start_ts": start,
            "reference_quantiles": [0.0, 1.0, 2.0],
            "window_quantiles": [0.0, 1.5, 3.0],
        }
        record(store, model, type(finding)(**{**finding.__dict__, "details": details}))
    record(store, "fine", make_finding("amount", 1_764_140_000.0))
    return store


def test_list_and_show_render_out_of_range_times(
    absurd_store: Store, run_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(absurd_store.path)
    assert run_cli("incidents", "list", "--store", path) == 0
    out = capsys.readouterr().out
    assert "out of range (1e+18)" in out
    assert "out of range (-1e+18)" in out
    assert "out of range (1e+308)" in out
    assert "2025-11-26 06:53:20" in out
    for number in range(1, len(WINDOWS) + 2):
        assert run_cli("incidents", "show", str(number), "--store", path) == 0, number
        shown = capsys.readouterr().out
        assert f"Incident #{number}" in shown
    assert run_cli("incidents", "show", "1", "--store", path) == 0
    assert "out of range (1e+18)" in capsys.readouterr().out


def test_report_renders_out_of_range_times(
    absurd_store: Store,
    run_cli: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "report.html"
    assert run_cli("report", "--store", str(absurd_store.path), "--out", str(out)) == 0
    assert f"with {len(WINDOWS) + 1} incident(s)" in capsys.readouterr().out
    html = out.read_text(encoding="utf-8")
    assert "out of range (1e+18)" in html
    assert "2025-11-26T06:53:20.000Z" in html
    # A store from a file replay (no Kafka offsets) is reproduced by the file replay.
    assert "--input EVENTS.jsonl" in html and "--topic" not in html
    assert len(load_report(absurd_store.path).incidents) == len(WINDOWS) + 1
