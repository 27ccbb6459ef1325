"""`driftwarden quarantine list | show N`: refused records, escaped, with their size and hash."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = (
    b'{"model": "fraud", "ts": 1793491200, "client": "\\u001b]8;;http://evil\\u0007x", '
    b'"score": "hi"}',
    b"\xff\xfe\x1b[2J not even JSON",
    b'{"model": "fraud", "ts": 1e18, "score": 0.5, "pad": "' + b"p" * 10_000 + b'"}',
)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "TERM": "xterm-256color", "FORCE_COLOR": "1"},
    )


def test_quarantined_records_are_listed_and_shown_escaped(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    good = b'{"model": "fraud", "ts": 1793491200, "score": 0.5}'
    events.write_bytes(b"\n".join([good, *HOSTILE, good]) + b"\n")
    config = tmp_path / "c.toml"
    config.write_text('[store]\npath = "x.db"\n\n[[models]]\nname = "fraud"\n')
    store = str(tmp_path / "q.db")
    replayed = _cli("replay", "--config", str(config), "--input", str(events), "--store", store)
    assert replayed.returncode == 0, replayed.stderr

    listed = _cli("quarantine", "list", "--store", store)
    assert listed.returncode == 0, listed.stderr
    assert "3 in all" in listed.stdout
    # Rich's own colour codes aside, no control character reaches the terminal.
    plain = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout)
    assert "\x1b" not in plain and "\x07" not in plain
    assert "line 3" in listed.stdout and "not valid UTF-8" in listed.stdout

    shown = _cli("quarantine", "show", "2", "--store", store)
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in re.sub(r"\x1b\[[0-9;]*m", "", shown.stdout)
    assert "\\xff\\xfe\\x1b[2J not even JSON" in shown.stdout
    big = _cli("quarantine", "show", "1", "--store", store)
    assert "'score' must be a number" in big.stdout and "\\u001b]8;;http://evil" in big.stdout
    last = _cli("quarantine", "show", "3", "--store", store)
    # The 1e18 record has no ts worth believing: quarantined, and described in full.
    digest = hashlib.sha256(HOSTILE[2]).hexdigest()
    assert f"{len(HOSTILE[2]):,} bytes" in last.stdout and digest in last.stdout

    missing = _cli("quarantine", "show", "99", "--store", store)
    assert missing.returncode == 2 and "no quarantined record 99" in missing.stderr
