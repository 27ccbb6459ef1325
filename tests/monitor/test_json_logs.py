"""The daemon's stderr is JSON lines whatever records contain, warnings included."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

from monitor.daemon.logs import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import logging, threading, warnings
    import numpy as np
    from monitor.daemon.logs import setup_logging

    setup_logging("info")
    log = logging.getLogger("driftwarden.test")
    log.warning(
        "feature \\ud800 arrived",
        extra={
            "feature": "\\udcff\\x1b[31m\\u202e\\u2028x\\x85\\U000e0041",
            "big": 10**30,
            "nested": {1: ["\\ud800", object()], "deep": [[[[["x"]]]]]},
            "raw": b"\\xff\\x00",
        },
    )
    log.info("bad %d format", "x")
    np.log(np.array([-1.0]))
    warnings.warn("plain warning \\ud800")
    thread = threading.Thread(target=lambda: 1 / 0, name="w1")
    thread.start()
    thread.join()
    print("done")
    """
)


def test_stderr_is_json_lines_with_warnings_and_hostile_values() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"done\n"
    text = result.stderr.decode("utf-8")  # strict: no lone surrogate was written
    lines = text.splitlines()  # splits at U+2028 and U+0085 too: none may be raw
    assert len(lines) == 5, text
    entries = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) for e in entries)
    assert all(line.isascii() or line.isprintable() for line in lines)
    assert "\x1b" not in text and "\u202e" not in text

    hostile, bad_format, numpy_warning, plain_warning, thread = entries
    assert hostile["msg"] == "feature \\ud800 arrived"
    assert hostile["feature"] == "\\udcff\x1b[31m\u202e\u2028x\x85\U000e0041"
    assert hostile["big"] == str(10**30)
    assert hostile["nested"]["1"][0] == "\\ud800"
    assert "bad %d format" in bad_format["msg"]
    assert numpy_warning["logger"] == "py.warnings"
    assert numpy_warning["category"] == "RuntimeWarning"
    assert "invalid value encountered in log" in numpy_warning["msg"]
    assert plain_warning["category"] == "UserWarning"
    assert plain_warning["msg"] == "plain warning \\ud800"
    assert thread["level"] == "error" and thread["thread_name"] == "w1"
    assert "ZeroDivisionError" in thread["error"]


def test_formatter_never_raises() -> None:
    formatter = JsonFormatter()

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    nested: list[object] = []
    for _ in range(400):
        nested = [nested]
    for extra in (
        {"x": Unprintable()},
        {"x": nested},
        {"x": {("tuple", "key"): "\ud800"}},
        {"x": -(2**70)},
    ):
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "m \ud800", (), None)
        record.__dict__.update(extra)
        line = formatter.format(record)
        assert "\n" not in line
        assert json.loads(line)["msg"] == "m \\ud800"
