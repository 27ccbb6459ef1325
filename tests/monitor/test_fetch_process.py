"""The loop's handle on its fetch process, when the process is gone.

``assign`` runs inside kafka-python's rebalance callbacks, where an exception
would become an error on every later poll (the consumer wedged): a fetch
process found gone there is reported by the next ``receive`` instead, which the
loop answers by starting another.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.daemon.fetch_process import FetchProcess, FetchProcessGone


def test_a_gone_fetch_process_is_reported_by_receive_not_by_assign(tmp_path: Path) -> None:
    config = parse_config(
        {"store": {"path": str(tmp_path / "s.db")}, "models": [{"name": "m"}]}, "test"
    )
    # No broker answers here: the process is killed long before it would say so.
    fetcher = FetchProcess(config, {"bootstrap_servers": ["127.0.0.1:9"]})
    try:
        os.kill(fetcher.pid, signal.SIGKILL)
        fetcher._process.wait(timeout=10)
        for epoch in range(1, 4):  # the socket's buffer may take the first ones
            fetcher.assign(epoch, {("events", 0): 5})
        with pytest.raises(FetchProcessGone, match=rf"pid {fetcher.pid}\) exited with -9"):
            fetcher.receive(timeout=1.0)
    finally:
        fetcher.close()
