"""``driftwarden replay --compare DB``: the alerts that appear or vanish between two stores.

After a replay, the new store is compared against another store, for instance
one made with the previous config.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.cli.console import wide_console
from monitor.cli.safe_text import cell, markup_safe
from monitor.errors import DriftwardenError
from monitor.notify.payloads import iso
from monitor.store.store import connect_read_only

COMPARE_ROWS = 40


def check_compare_target(args: argparse.Namespace, store_path: str | Path) -> None:
    """Fail before the replay, not after it, when ``--compare`` cannot work."""
    compare = getattr(args, "compare", None)
    if not compare:
        return
    if not Path(compare).is_file():
        raise DriftwardenError(f"--compare {compare}: no such store")
    if Path(compare).resolve() == Path(store_path).resolve():
        raise DriftwardenError("--compare names the store being written: give another store")


AlertKey = tuple[str, str, str, str, float]


@dataclass(frozen=True)
class Comparison:
    """Alerts of ``current`` against ``baseline``, keyed by (model, detector, signal, severity,
    event time to the millisecond)."""

    current: str
    baseline: str
    common: int
    appeared: list[AlertKey]
    vanished: list[AlertKey]

    @property
    def identical(self) -> bool:
        return not self.appeared and not self.vanished


def _alert_keys(path: str | Path) -> Counter[AlertKey]:
    db = connect_read_only(path)
    try:
        rows = db.execute(
            "SELECT model, detector, signal, severity, event_ts FROM alerts"
        ).fetchall()
    except sqlite3.Error as exc:
        raise DriftwardenError(f"store {path} has no readable alerts table: {exc}") from None
    finally:
        db.close()
    return Counter((m, d, s, sev, round(float(ts), 3)) for m, d, s, sev, ts in rows)


def compare_stores(current: str | Path, baseline: str | Path) -> Comparison:
    """Which alerts of ``current`` are new (appear) and which of ``baseline`` are gone (vanish)."""
    now, before = _alert_keys(current), _alert_keys(baseline)
    order = _key_order
    return Comparison(
        current=str(current),
        baseline=str(baseline),
        common=sum((now & before).values()),
        appeared=sorted((now - before).elements(), key=order),
        vanished=sorted((before - now).elements(), key=order),
    )


def _key_order(key: AlertKey) -> tuple[float, str, str, str, str]:
    model, detector, signal, severity, ts = key
    return (ts, model, detector, signal, severity)


def print_comparison(comparison: Comparison, console: Console | None = None) -> None:
    """A readable table of appearing and vanishing alerts, then the counts."""
    console = console or wide_console(110)
    c = comparison
    current, baseline = markup_safe(c.current, None), markup_safe(c.baseline, None)
    if c.identical:
        console.print(
            f"compared with {baseline}: the same {c.common:,} alerts, none appear or vanish"
        )
        return
    changes = [("appears", key) for key in c.appeared] + [("vanishes", key) for key in c.vanished]
    changes.sort(key=lambda item: _key_order(item[1]))
    table = Table(title=f"Alerts of {current} against {baseline}")
    for column in ("change", "model", "detector", "signal", "severity", "event time"):
        table.add_column(column)
    for change, (model, detector, signal, severity, ts) in changes[:COMPARE_ROWS]:
        style = "green" if change == "appears" else "red"
        mark = "+ appears" if change == "appears" else "- vanishes"
        names = (cell(model), cell(detector), cell(signal), cell(severity))
        table.add_row(Text(mark, style=style), *names, iso(ts))
    console.print(table)
    if len(changes) > COMPARE_ROWS:
        console.print(f"... and {len(changes) - COMPARE_ROWS:,} more changes")
    console.print(
        f"compared with {baseline}: {c.common:,} alerts in both, "
        f"{len(c.appeared):,} appear, {len(c.vanished):,} vanish"
    )
