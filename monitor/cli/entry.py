"""The ``driftwarden`` command's entry point.

A long-running command (``run``, ``notify``) notes a stop signal from its first instant,
before the imports of the command line (seconds on a busy machine): a SIGTERM during
start-up then stops it cleanly (exit 0) once it has started, as a later one would.
"""

from __future__ import annotations

import sys

from monitor import early_signals

LONG_RUNNING = frozenset({"run", "notify"})


def main() -> int:
    if sys.argv[1:2] and sys.argv[1] in LONG_RUNNING:
        early_signals.defer()
    from monitor.cli.main import main as command_main

    return command_main()
