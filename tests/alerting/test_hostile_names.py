"""Names that producers choose reach the operator's terminal escaped, inert and bounded.

A real store is written with the code's own functions, then the real
``driftwarden`` command runs in a subprocess with a terminal-like environment,
so rich emits colours and would emit hyperlinks if asked to.

A lone surrogate cannot reach the store as text: orjson refuses to write it in
an incident's signals and SQLite to encode it, so it is covered where it can
appear, in tests/monitor/test_safe_text.py and tests/monitor/test_json_logs.py.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from detectors.base import Finding
from monitor.audit.chain import write_transaction
from monitor.cli.safe_text import CELL_LIMIT
from monitor.notify.policy import Silence, add_silence
from monitor.replay.compare import compare_stores, print_comparison
from monitor.store.store import Store

SGR = re.compile(rb"\x1b\[[0-9;]*m")  # rich's own colours and styles
LONG = "L" * 10_000
SIGNALS = {  # as stored -> as shown
    "[/]": "[/]",
    "[link=http://x]y[/link]": "[link=http://x]y[/link]",
    "\x1b[31mred": "\\x1b[31mred",
    "\x1b[2J\x1b[Hcleared": "\\x1b[2J\\x1b[Hcleared",
    "\x1b]8;;http://evil\x1b\\click": "\\x1b]8;;http://evil\\x1b\\click",
    "\u202eevil": "\\u202eevil",
    "two\nlines": "two\\nlines",
    "\x9bc1-csi": "\\x9bc1-csi",
    LONG: "L" * (CELL_LIMIT - 1) + "…",
}
MODEL = "fraud[/]\x1b[5m\u202e"
WHO = "[link=http://x]ana[/link]\x1b[31m"


def _driftwarden(*argv: str) -> subprocess.CompletedProcess[bytes]:
    script = Path(sys.executable).parent / "driftwarden"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "monitor.cli"]
    env = {**os.environ, "FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "400"}
    env.pop("NO_COLOR", None)
    return subprocess.run([*command, *argv], capture_output=True, env=env, timeout=120)


def _checked(result: subprocess.CompletedProcess[bytes]) -> str:
    """The output as an operator sees it, after checking that only rich's styles are in it."""
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    raw = result.stdout + result.stderr
    assert b"\x1b]8;" not in raw, "no OSC 8 hyperlink"
    assert b"\x1b[31mred" not in raw and b"\x1b[2J" not in raw and b"\x1b[5m" not in raw
    plain = SGR.sub(b"", raw)
    assert b"\x1b" not in plain, "every escape sequence is rich's own styling"
    text = plain.decode("utf-8")
    assert all(ch.isprintable() or ch == "\n" for ch in text), "no raw control or bidi character"
    longest = max((len(run) for run in re.findall("L+", text)), default=0)
    assert longest <= CELL_LIMIT, longest
    return text


@pytest.fixture
def hostile_store(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> str:
    findings = [make_finding(signal, 1_764_140_000.0 + i) for i, signal in enumerate(SIGNALS)]
    record(store, MODEL, *findings)
    now = time.time()
    with write_transaction(store.db) as db:
        add_silence(
            db, Silence(now, now + 3600, WHO, MODEL, "\x1b[31mred", "[/]", "\u202ecomment"), now
        )
        add_silence(db, Silence(now, now + 3600, "ana", "*", LONG, "*", "long pattern"), now)
    return str(store.path)


def test_incidents_list_escapes_names(hostile_store: str) -> None:
    text = _checked(_driftwarden("incidents", "list", "--store", hostile_store))
    assert "fraud[/]\\x1b[5m\\u202e: drift in [/] (ks)" in text


def test_incidents_show_escapes_names_and_bounds_them(hostile_store: str) -> None:
    acked = _checked(_driftwarden("incidents", "ack", "1", "--by", WHO, "--store", hostile_store))
    assert "acknowledged by [link=http://x]ana[/link]\\x1b[31m" in acked
    text = _checked(_driftwarden("incidents", "show", "1", "--store", hostile_store))
    assert "Incident #1: fraud[/]\\x1b[5m\\u202e: drift in [/] (ks)" in text
    for shown in SIGNALS.values():
        assert shown in text, shown
    assert "ks:[/], ks:[link=http://x]y[/link], ks:\\x1b[31mred, ks:\\x1b[2J" in text
    assert f"{len(SIGNALS)} alert(s)" in text
    assert "by [link=http://x]ana[/link]\\x1b[31m" in text


def test_silence_list_escapes_patterns(hostile_store: str) -> None:
    text = _checked(_driftwarden("silence", "list", "--store", hostile_store))
    for shown in ("fraud[/]\\x1b[5m\\u202e", "\\x1b[31mred", "[/]", "\\u202ecomment"):
        assert shown in text, shown
    assert "[link=http://x]ana[/link]\\x1b[31m" in text
    assert "L" * (CELL_LIMIT - 1) + "…" in text


def test_error_messages_quoting_input_are_escaped(tmp_path: Path) -> None:
    missing = str(tmp_path / "\x1b[2J\u202enew\nline.db")
    result = _driftwarden("incidents", "list", "--store", missing)
    assert result.returncode == 2
    assert b"\x1b" not in result.stderr and "\u202e" not in result.stderr.decode()
    assert "no such store: " in result.stderr.decode()
    assert "\\x1b[2J\\u202enew\\nline.db" in result.stderr.decode()
    assert result.stderr.count(b"\n") == 1, "one line"


def test_replay_comparison_escapes_names(hostile_store: str, tmp_path: Path) -> None:
    other = Store(tmp_path / "other.db")
    other.close()
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, force_terminal=True, color_system="truecolor")
    print_comparison(compare_stores(hostile_store, tmp_path / "other.db"), console)
    raw = buffer.getvalue().encode()
    assert b"\x1b]8;" not in raw and b"\x1b" not in SGR.sub(b"", raw)
    text = SGR.sub(b"", raw).decode()
    assert "[link=http://x]y[/link]" in text and "\\u202eevil" in text
    assert "fraud[/]\\x1b[5m\\u202e" in text


def test_score_escapes_names(hostile_store: str, tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    incident = {
        "kind": "[link=http://x]drift[/link]",
        "model": MODEL,
        "signal": "\x1b[31mred",
        "start_event": 0,
        "start_ts": 0.0,
        "description": "",
    }
    truth.write_text(json.dumps({"events": 1, "seed": 1, "incidents": [incident]}))
    text = _checked(_driftwarden("score", "--store", hostile_store, "--truth", str(truth)))
    assert "[link=http://x]drift[/link]" in text
    assert "fraud[/]\\x1b[5m\\u202e/\\x1b[31mred" in text
    assert "caught 1 of 1" in text
