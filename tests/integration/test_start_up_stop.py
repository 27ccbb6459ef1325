"""A stop signal while a long-running command is still starting stops it cleanly."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.integration.cluster_support import (
    cluster_topics,
    start_notifier,
    write_cluster_config,
)
from tests.integration.daemon_support import free_port, start_daemon, write_config

pytestmark = pytest.mark.kafka

# Well inside the seconds a command takes to import and open its store.
SOON = 0.3


def _stopped_during_start_up(log: Path) -> bool:
    lines = log.read_text().splitlines()
    return any('"msg":"stopping"' in line and '"during":"start-up"' in line for line in lines)


def test_a_sigterm_while_the_daemon_starts_ends_it_with_exit_0(
    kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "live.toml", kafka_bootstrap, topic, tmp_path / "live.db", free_port()
    )
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    time.sleep(SOON)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert _stopped_during_start_up(log), log.read_text()[-3000:]
    assert '"msg":"started"' in log.read_text()  # it started, then stopped at once


def test_a_sigterm_while_the_notifier_starts_ends_it_with_exit_0(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with cluster_topics(kafka_bootstrap) as topics:
        config = write_cluster_config(
            tmp_path / "c.toml", kafka_bootstrap, topics, tmp_path / "worker.db", free_port()
        )
        log = tmp_path / "notify.log"
        notifier = start_notifier(config, tmp_path / "notify.db", log)
        time.sleep(SOON)
        notifier.send_signal(signal.SIGTERM)
        assert notifier.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert '"signal":"SIGTERM"' in log.read_text(), log.read_text()[-3000:]
