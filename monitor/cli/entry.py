"""The ``driftwarden`` command's entry point.

A long-running command (``run``, ``notify``) notes a stop signal from its first instant,
before the imports of the command line (seconds on a busy machine): a SIGTERM during
start-up then stops it cleanly (exit 0) once it has started, as a later one would.
"""

from __future__ import annotations

import os
import sys

from monitor import early_signals

LONG_RUNNING = frozenset({"run", "notify"})
# Threads of the BLAS under numpy, unless the environment says otherwise. The detectors'
# matrices are small (a window, a reference sample): one thread computes them as fast,
# and more spin, waiting for work, on the cores that the fetch process, the other
# workers and the broker need. With two OpenBLAS threads the PCA fits of 8 models took ~10
# times the CPU of one on a busy 2-core machine.
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def main() -> int:
    for name in BLAS_THREADS:  # before numpy is imported, or it has started its threads
        os.environ.setdefault(name, "1")
    if sys.argv[1:2] and sys.argv[1] in LONG_RUNNING:
        early_signals.defer()
    from monitor.cli.main import main as command_main

    return command_main()
