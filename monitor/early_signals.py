"""Stop signals that come while a long-running command is still starting.

``driftwarden run`` and ``notify`` take a few seconds to import and open their store
before their own SIGTERM/SIGINT handlers are in place; Python's default would end them
by the signal (exit -15) instead of a clean stop. From the first instant they note the
signal here instead, and their handlers act on it once installed. This module imports
nothing heavy: it runs before everything else.
"""

from __future__ import annotations

import signal
from types import FrameType

_noted: list[int] = []


def defer() -> None:
    """Note SIGTERM and SIGINT instead of dying, until ``handle_noted`` takes over."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _note)


def _note(signum: int, _frame: FrameType | None) -> None:
    _noted.append(signum)


def first_noted() -> signal.Signals | None:
    """The first stop signal noted before the command's handlers were installed."""
    return signal.Signals(_noted[0]) if _noted else None
