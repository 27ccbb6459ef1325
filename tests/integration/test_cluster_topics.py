"""`driftwarden cluster-topics` on the real broker: it finds, creates and judges cluster mode's
topics, and never changes one that exists."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from tests.integration.daemon_support import ROOT

pytestmark = pytest.mark.kafka


@pytest.fixture
def admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30_000)
    try:
        yield client
    finally:
        client.close()


def _config(path: Path, bootstrap: str, topic: str, group: str, cluster: bool = True) -> Path:
    path.write_text(
        f"""
[store]
path = "{path.parent / "store.db"}"

[kafka]
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
group_id = "{group}"

[cluster]
enabled = {"true" if cluster else "false"}

[[models]]
name = "fraud"
"""
    )
    return path


def _command(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "cluster-topics", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def _settings(admin: KafkaAdminClient, topic: str, *keys: str) -> dict[str, str]:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, dict.fromkeys(keys))
    described = admin.describe_configs([resource], config_filter="all")["topic"][topic]
    return {key: str(described[key]["value"]) for key in keys}


def _partitions(admin: KafkaAdminClient) -> dict[str, int]:
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics()}


def test_creates_the_missing_topics_as_cluster_mode_needs_them(
    kafka_bootstrap: str, admin: KafkaAdminClient, tmp_path: Path
) -> None:
    group = f"ct-{uuid.uuid4().hex[:8]}"
    events = f"{group}-events"
    admin.create_topics([NewTopic(events, num_partitions=5, replication_factor=1)])
    config = _config(tmp_path / "c.toml", kafka_bootstrap, events, group)

    checked = _command(config)
    assert checked.returncode == 1, checked.stderr
    assert checked.stdout.count(": missing") == 4
    assert "run again with --create" in checked.stdout
    assert not any(name.startswith(f"{group}-c") for name in _partitions(admin))

    created = _command(config, "--create")
    assert created.returncode == 0, created.stdout + created.stderr
    counts = _partitions(admin)
    assert counts[f"{group}-changelog"] == 5
    assert counts[f"{group}-alerts"] == 5
    assert counts[f"{group}-quarantine"] == 1
    assert counts[f"{group}-deliveries"] == 1
    changelog = _settings(
        admin, f"{group}-changelog", "cleanup.policy", "segment.ms", "min.cleanable.dirty.ratio"
    )
    assert changelog == {
        "cleanup.policy": "compact",
        "segment.ms": "3600000",
        "min.cleanable.dirty.ratio": "0.1",
    }
    assert _settings(admin, f"{group}-deliveries", "cleanup.policy") == {
        "cleanup.policy": "compact"
    }
    assert _settings(admin, f"{group}-alerts", "retention.ms") == {"retention.ms": "-1"}

    again = _command(config)
    assert again.returncode == 0, again.stdout
    assert again.stdout.count("as needed") == 4
    admin.delete_topics([events, *(f"{group}-{k}" for k in ("changelog", "alerts"))])
    admin.delete_topics([f"{group}-quarantine", f"{group}-deliveries"])


def test_says_what_is_wrong_with_a_topic_and_leaves_it_alone(
    kafka_bootstrap: str, admin: KafkaAdminClient, tmp_path: Path
) -> None:
    group = f"ct-{uuid.uuid4().hex[:8]}"
    events, changelog = f"{group}-events", f"{group}-changelog"
    admin.create_topics(
        [
            NewTopic(events, num_partitions=3, replication_factor=1),
            # Two partitions for three, and deleted by time: both lose state.
            NewTopic(changelog, num_partitions=2, replication_factor=1),
        ]
    )
    config = _config(tmp_path / "c.toml", kafka_bootstrap, events, group)

    result = _command(config, "--create")
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith("changelog"))
    assert "2 partitions, the input topic 3" in line
    assert "cleanup.policy is delete" in line
    assert "not as cluster mode needs" in result.stdout
    # The others were created; the wrong one was left as it was.
    counts = _partitions(admin)
    assert counts[changelog] == 2
    assert _settings(admin, changelog, "cleanup.policy") == {"cleanup.policy": "delete"}
    assert {f"{group}-alerts", f"{group}-quarantine", f"{group}-deliveries"} <= set(counts)
    admin.delete_topics([events, changelog, f"{group}-alerts"])
    admin.delete_topics([f"{group}-quarantine", f"{group}-deliveries"])


def test_creates_a_missing_input_topic_when_told_its_partition_count(
    kafka_bootstrap: str, admin: KafkaAdminClient, tmp_path: Path
) -> None:
    group = f"ct-{uuid.uuid4().hex[:8]}"
    events = f"{group}-events"
    config = _config(tmp_path / "c.toml", kafka_bootstrap, events, group)

    created = _command(config, "--create", "--input-partitions", "4")
    assert created.returncode == 0, created.stdout + created.stderr
    assert created.stdout.splitlines()[0].startswith(f"input      {events}: created: 4 partition")
    counts = _partitions(admin)
    assert counts[events] == 4
    assert counts[f"{group}-changelog"] == 4
    again = _command(config)
    assert again.returncode == 0 and f"{events}: present, 4 partition(s)" in again.stdout
    admin.delete_topics([events, *(f"{group}-{k}" for k in ("changelog", "alerts"))])
    admin.delete_topics([f"{group}-quarantine", f"{group}-deliveries"])


def test_refuses_in_one_line_without_cluster_mode_input_topic_or_broker(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    group = f"ct-{uuid.uuid4().hex[:8]}"
    single = _command(_config(tmp_path / "a.toml", kafka_bootstrap, "x", group, cluster=False))
    no_input = _command(_config(tmp_path / "b.toml", kafka_bootstrap, f"{group}-none", group))
    no_broker = _command(_config(tmp_path / "d.toml", "127.0.0.1:9", "x", group))
    no_create = _command(tmp_path / "b.toml", "--input-partitions", "3")
    for result, says in (
        (no_create, "--input-partitions needs --create"),
        (single, "set [cluster] enabled = true"),
        (no_input, "does not exist: create it first, or pass --create --input-partitions N"),
        (no_broker, "no Kafka broker answers at 127.0.0.1:9"),
    ):
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stdout == ""
        assert says in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
