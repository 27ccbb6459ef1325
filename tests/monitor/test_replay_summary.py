"""The replay summary names unlisted models, which producers choose: bounded and escaped."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from monitor.pipeline.pipeline import PipelineStats
from monitor.replay.file_replay import (
    UNLISTED_NAME_LIMIT,
    UNLISTED_SHOWN,
    print_summary,
    unlisted_models,
)

MODELS = 10_000
NAME_BYTES = 1024


def _name(i: int) -> str:
    """A distinct 1 KB model name, with an escape sequence and a bidi override in some."""
    hostile = "\x1b]8;;http://evil\x1b\\" if i % 2 else "\u202e[/]"
    head = f"{hostile}m{i:05d}-"
    return head + "x" * (NAME_BYTES - len(head.encode()))


def test_summary_line_is_bounded_with_many_long_names(capsys: pytest.CaptureFixture[str]) -> None:
    stats = PipelineStats(processed=5)
    stats.unlisted = Counter({_name(i): 1 + (i % 7) for i in range(MODELS)})
    print_summary("1 line", 1.0, stats, 0, "store.db")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert len(err) < UNLISTED_SHOWN * (UNLISTED_NAME_LIMIT + 20) + 200
    assert "\x1b" not in err and "\u202e" not in err
    assert f"and {MODELS - UNLISTED_SHOWN:,} more model(s)" in err
    # The most frequent first: every name shown has the top count (7).
    assert err.count("(7)") == UNLISTED_SHOWN


def test_few_unlisted_models_are_all_named() -> None:
    line = unlisted_models(Counter({"beta": 2, "alpha": 2, "gamma\x1b[2J": 5}))
    assert line.endswith(": gamma\\x1b[2J (5), alpha (2), beta (2)")


def test_replay_of_10000_unlisted_models_prints_a_bounded_line(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    with events.open("wb") as handle:
        for i in range(MODELS):
            handle.write(orjson.dumps({"model": _name(i), "ts": 1_764_140_000 + i}) + b"\n")
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "store.db"}"\n\n[[models]]\nname = "fraud"\n')
    argv = ["replay", "--config", str(config), "--input", str(events)]
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", *argv],
        capture_output=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert b"0 events processed" in result.stdout
    err = result.stderr.decode()
    assert err.count("\n") == 1, err[:500]
    assert len(err) < UNLISTED_SHOWN * (UNLISTED_NAME_LIMIT + 20) + 200
    assert "\x1b" not in err and "\u202e" not in err
    assert "\\x1b]8;;http://evil\\x1b\\m" in err or "\\u202e[/]m" in err
    # 1,000 names are tracked one by one (limits.max_unlisted_models), the rest together.
    assert f"and {1000 - UNLISTED_SHOWN:,}+ more models with {MODELS - UNLISTED_SHOWN:,}" in err
