"""Progress of long work on stderr: a bar on a terminal, nothing in a pipe.

The bar advances by whatever measures the work (bytes of a file, records of a
topic); the rate shown is always events per second, which is what a user
compares with the stream they monitor.
"""

from __future__ import annotations

import sys

from rich.progress import (
    BarColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text


class _EventRate(ProgressColumn):
    def render(self, task: Task) -> Text:
        elapsed = task.finished_time or task.elapsed
        events = task.fields.get("events", 0)
        if not elapsed:
            return Text("-- events/s")
        return Text(f"{events / elapsed:,.0f} events/s")


class Progress:
    def __init__(self, label: str, enabled: bool | None = None) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None

    def start(self, total: float) -> None:
        if not self.enabled:
            return
        self._bar = RichProgress(
            TextColumn(self.label),
            BarColumn(),
            TextColumn("{task.fields[events]:,} events"),
            _EventRate(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total, events=0)

    def advance(self, done: float, events: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, events=events)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
