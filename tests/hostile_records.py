"""Structure-aware mutations of event records, as a hostile producer would send them.

Each mutation starts from a well-formed event and breaks one thing the way an
attacker or a broken producer does: its bytes, its text (lone surrogates,
control characters, markup), its types, its sizes, its nesting, its times or
its keys. Seeded, so a failing record can be produced again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

Record = dict[str, Any]
HOSTILE_TEXT = (
    "\ud800",
    "\udfff",
    "a\udc80b",
    "\ud83d\ude00",  # a valid pair: must pass
    "[/]",
    "[link=http://evil.example]x[/link]",
    "\x1b[2J\x1b[31mred",
    "\u202eevil",
    "\x00nul",
    "",
    "x" * 5000,
)
HOSTILE_NUMBERS: tuple[Any, ...] = (
    1e308,
    -1.7e308,
    5e-324,
    float("nan"),
    float("inf"),
    float("-inf"),
    10**30,
    -(10**19),
    0,
    True,
)
HOSTILE_TIMES: tuple[Any, ...] = (
    1e18,
    -1e18,
    0,
    -1,
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00+14:00",
    "yesterday",
    "2026-11-26T07:44:15",
    True,
    [],
    float("nan"),
    2e9,
)
FIELDS = ("model", "type", "id", "client", "version", "prediction", "score", "label", "name")


def mutations(rng: np.random.Generator) -> list[Callable[[Record], bytes]]:
    def text(record: Record) -> bytes:
        """A hostile string in a name, a value or a key."""
        bad = HOSTILE_TEXT[rng.integers(len(HOSTILE_TEXT))]
        where = rng.integers(4)
        features = record.setdefault("features", {})
        if where == 0:
            features[bad] = float(rng.normal())
        elif where == 1 and features:
            features[sorted(features)[0]] = bad
        elif where == 2:
            record[FIELDS[rng.integers(len(FIELDS))]] = bad
        else:
            record["probabilities"] = {bad: 0.5, "ok": 0.5}
        return _dumps(record)

    def number(record: Record) -> bytes:
        bad = HOSTILE_NUMBERS[rng.integers(len(HOSTILE_NUMBERS))]
        features = record.setdefault("features", {})
        for name in list(features)[: rng.integers(1, 4)]:
            features[name] = bad
        if rng.random() < 0.5:
            record["score"] = bad
        return _dumps(record)

    def kind(record: Record) -> bytes:
        """The wrong JSON type somewhere."""
        bad = ([1, 2], {"a": 1}, None, "s", 3, False, {"nested": [{"x": 1}]})[rng.integers(7)]
        key = (*FIELDS, "features", "probabilities", "ts", "value")[rng.integers(13)]
        record[key] = bad
        return _dumps(record)

    def time(record: Record) -> bytes:
        record["ts"] = HOSTILE_TIMES[rng.integers(len(HOSTILE_TIMES))]
        return _dumps(record)

    def size(record: Record) -> bytes:
        """Many features, or a long value."""
        many = int(rng.choice([50, 300, 2000]))
        record["features"] = {f"f{rng.integers(10**9)}_{i}": float(i) for i in range(many)}
        return _dumps(record)

    def nesting(record: Record) -> bytes:
        depth = int(rng.choice([100, 1000, 100_000]))
        return _dumps(record)[:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"

    def bytes_(record: Record) -> bytes:
        """Flipped, cut or inserted bytes."""
        raw = bytearray(_dumps(record))
        choice = rng.integers(4)
        if choice == 0:
            for _ in range(rng.integers(1, 4)):
                raw[rng.integers(len(raw))] = int(rng.integers(256))
        elif choice == 1:
            raw = raw[: rng.integers(len(raw))]
        elif choice == 2:
            at = int(rng.integers(len(raw)))
            raw[at:at] = (b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x00")[rng.integers(4)]
        else:
            raw = bytearray(rng.integers(0, 256, size=rng.integers(1, 200), dtype=np.uint8))
        return bytes(raw).replace(b"\n", b" ")

    def keys(record: Record) -> bytes:
        """Duplicate keys, or the model of a model nobody listed."""
        if rng.random() < 0.5:
            return _dumps(record)[:-1] + b', "model": "other", "model": "fraud"}'
        record["model"] = f"unlisted-{rng.integers(10**6)}"
        return _dumps(record)

    def metric(record: Record) -> bytes:
        name = (f"m{rng.integers(10**6)}", "latency_ms", "\ud800", "[/]")[rng.integers(4)]
        value = HOSTILE_NUMBERS[rng.integers(len(HOSTILE_NUMBERS))]
        return _dumps(
            {
                "type": "metric",
                "model": record.get("model"),
                "name": name,
                "value": value,
                "ts": record.get("ts"),
            }
        )

    return [text, number, kind, time, size, nesting, bytes_, keys, metric]


def hostile_lines(base: list[bytes], count: int, seed: int) -> Iterator[bytes]:
    """``count`` mutated records, each from a random well-formed ``base`` line."""
    rng = np.random.default_rng(seed)
    kinds = mutations(rng)
    for _ in range(count):
        record = json.loads(base[rng.integers(len(base))])
        yield kinds[rng.integers(len(kinds))](record)


def _dumps(record: Record) -> bytes:
    # ensure_ascii writes lone surrogates as \\udXXX escapes, as a hostile producer can.
    return json.dumps(record, ensure_ascii=True).encode()
