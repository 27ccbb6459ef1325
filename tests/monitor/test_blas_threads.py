"""The ``driftwarden`` command runs numpy's BLAS on one thread unless told otherwise.

Several BLAS threads per process spin on the cores that the fetch process, the
other workers and the broker need (issue 16); the daemon's matrices are small.
"""

from __future__ import annotations

import os
import subprocess
import sys

from monitor.cli.entry import BLAS_THREADS

PROBE = (
    "import sys; sys.argv = ['driftwarden', '--version']\n"
    "from monitor.cli.entry import main\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    "import threadpoolctl\n"
    "print(sorted({p['num_threads'] for p in threadpoolctl.threadpool_info()}))\n"
)


def _threads(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def test_one_blas_thread_by_default_and_the_environment_wins() -> None:
    clean = {k: v for k, v in os.environ.items() if k not in BLAS_THREADS}
    assert _threads(clean) == "[1]"
    assert _threads({**clean, **dict.fromkeys(BLAS_THREADS, "2")}) == "[2]"
