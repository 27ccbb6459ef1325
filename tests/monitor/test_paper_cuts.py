"""What a dataset brings as it is: times without a zone, float ids, codes that are
categories, and fields the event format does not name."""

from __future__ import annotations

import json
import logging
from datetime import UTC
from pathlib import Path

import pytest

from monitor.cli import main as cli
from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.ingest.events import Event, Malformed, TimeBounds, parse_event
from monitor.store.store import Store

WIDE = TimeBounds(0.0, 2e9)


def test_times_without_a_zone_take_the_configured_one() -> None:
    line = b'{"model": "m", "ts": "2018-01-01 00:00:00.000", "features": {"x": 1}}'
    refused = parse_event(line, bounds=WIDE)
    assert isinstance(refused, Malformed) and "default_time_zone" in refused.reason
    utc = parse_event(line, bounds=TimeBounds(0.0, 2e9, UTC))
    assert isinstance(utc, Event) and utc.ts == 1_514_764_800.0
    config = {"store": {"path": "x.db"}, "models": [{"name": "m"}]}
    berlin = parse_config({**config, "events": {"default_time_zone": "Europe/Berlin"}}, "t")
    shifted = parse_event(line, bounds=berlin.events.replay_bounds(2e9))
    assert isinstance(shifted, Event) and shifted.ts == 1_514_764_800.0 - 3600
    with pytest.raises(ConfigError, match=r"events\.default_time_zone"):
        parse_config({**config, "events": {"default_time_zone": "Mars/Olympus"}}, "t")


def test_integral_float_ids_are_their_integer() -> None:
    for raw, expected in ((3.0, "3"), (3, "3"), ("3.0", "3.0"), (-7.0, "-7")):
        event = parse_event(json.dumps({"model": "m", "ts": 1, "id": raw}), bounds=WIDE)
        assert isinstance(event, Event) and event.id == expected
    for bad in (3.5, float("inf"), 1e300):
        record = json.dumps({"model": "m", "ts": 1, "id": bad}).replace("Infinity", "1e999")
        assert isinstance(parse_event(record, bounds=WIDE), Malformed), bad


def _replay(tmp_path: Path, config: str, events: list[dict[str, object]]) -> Path:
    (tmp_path / "c.toml").write_text(config)
    lines = "\n".join(json.dumps(e) for e in events) + "\n"
    (tmp_path / "e.jsonl").write_text(lines)
    argv = ["replay", "--config", str(tmp_path / "c.toml"), "--input", str(tmp_path / "e.jsonl")]
    assert cli.main(argv) == 0
    return tmp_path / "s.db"


def test_unknown_fields_are_counted_and_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config = '[store]\npath = "%s"\n[[models]]\nname = "m"\n' % (tmp_path / "s.db")
    events: list[dict[str, object]] = [
        {"model": "m", "ts": 1_700_000_000 + i, "features": {"x": float(i)}, "y_pred": 1}
        for i in range(300)
    ]
    events[5]["\x1b[31mred"] = 2
    with caplog.at_level(logging.WARNING, logger="driftwarden.pipeline"):
        _replay(tmp_path, config, events)
    err = capsys.readouterr().err
    assert "ignored fields the event format does not name" in err
    assert "y_pred (300)" in err and "\\x1b[31mred (1)" in err
    said = [r for r in caplog.records if "does not know" in r.getMessage()]
    assert len(said) == 2  # once per name, not per event


def test_listed_numeric_codes_are_categories(tmp_path: Path) -> None:
    config = (
        f'[store]\npath = "{tmp_path / "s.db"}"\n[detection]\nwindow = 100\n'
        'reference_size = 200\n[[models]]\nname = "m"\ncategorical = ["code"]\n'
    )
    events: list[dict[str, object]] = [
        {"model": "m", "ts": 1_700_000_000 + i, "features": {"code": float(i % 3), "x": i % 7}}
        for i in range(600)
    ]
    store = Store(_replay(tmp_path, config, events))
    tested = dict(
        store.db.execute(
            "SELECT signal, group_concat(DISTINCT detector) FROM signal_history "
            "WHERE change = 'tested' GROUP BY signal"
        ).fetchall()
    )
    store.close()
    assert "chi2" in tested["code"] and "ks" not in tested["code"]
    assert "ks" in tested["x"]  # unlisted numbers stay numeric
