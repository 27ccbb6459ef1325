"""Structured JSON logs on stderr: one object per line, easy for journald and collectors.

Log records quote what producers sent (model and feature names, record
excerpts), so the formatter never raises and every line stays one valid JSON
object: lone surrogates, integers too large for JSON and unserialisable values
are repaired rather than dropped, and the characters that terminals act on or
that line-splitting tools take as line breaks (C1 controls, U+2028, bidi
overrides; orjson already escapes C0) are written as ``\\uXXXX`` escapes.
Python warnings, numpy's RuntimeWarnings among them, and exceptions that end a
thread become log lines too instead of free text on stderr.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import warnings
from typing import Any, TextIO

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}
_MAX_DEPTH = 32  # nesting kept when repairing a value; deeper is shown as its repr


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        try:
            line = orjson.dumps(entry, default=str).decode()
        except (TypeError, ValueError):  # lone surrogates, huge integers, odd keys or values
            line = orjson.dumps(_repaired(entry, 0)).decode()
        return line if line.isascii() else _escape_unprintable(line)


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # arguments that do not fit the format: keep both
        return f"{record.msg!r} (arguments {record.args!r} do not fit)"


def _repaired(value: Any, depth: int) -> Any:
    """``value`` made serialisable by orjson: the same where it already was."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if depth >= _MAX_DEPTH:
        return _repaired(repr(value), 0)
    if isinstance(value, dict):
        return {_repaired(str(k), 0): _repaired(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_repaired(v, depth + 1) for v in value]
    try:
        orjson.dumps(value)
    except (TypeError, ValueError):
        try:
            return _repaired(str(value), 0)
        except Exception:
            return f"<unprintable {type(value).__name__}>"
    return value


def _escape_unprintable(line: str) -> str:
    """JSON text with its non-printable non-ASCII characters as ``\\uXXXX`` escapes.

    Valid outside strings too: orjson writes nothing but ASCII there.
    """
    out = []
    for char in line:
        if char.isascii() or char.isprintable():
            out.append(char)
            continue
        code = ord(char)
        if code > 0xFFFF:  # a UTF-16 surrogate pair, as JSON spells it
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` for the JSON log: one line with the warning's place."""
    logging.getLogger("py.warnings").warning(
        str(message), extra={"category": category.__name__, "file": filename, "line": lineno}
    )


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("driftwarden").error(
        "a thread ended with an uncaught exception",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
        extra={"thread_name": name},
    )


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kafka-python reports every failed reconnect at ERROR; the daemon reports outages itself.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.Formatter.converter = time.gmtime
    # Warnings (numpy's RuntimeWarning on a log of a negative number, say) are log lines:
    # captureWarnings keeps its bookkeeping, our showwarning adds the warning's place.
    logging.captureWarnings(True)
    warnings.showwarning = _show_warning
    threading.excepthook = _log_thread_exception
