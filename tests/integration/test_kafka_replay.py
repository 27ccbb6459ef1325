"""``driftwarden replay --topic``: a Kafka time range through the pipeline, as a file would be."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata

from monitor.cli import main as cli
from monitor.cli.progress import Progress
from monitor.config import load_config
from monitor.errors import DriftwardenError
from monitor.replay import kafka_replay
from monitor.replay.compare import compare_stores
from monitor.replay.file_replay import open_replay_store, replay_file
from monitor.replay.kafka_replay import parse_time, replay_topic
from monitor.store.store import REPLAY_GROUP, Store
from simulation.simulator import EVENT_SPACING, START_TS, write_simulation
from simulation.traffic import produce_file
from tests.integration.daemon_support import free_port

pytestmark = pytest.mark.kafka
EVENTS = 40_000
MALFORMED = 40
PARTITIONS = 3
LIVE_GROUP_OFFSET = 5


@dataclass(frozen=True)
class Recorded:
    bootstrap: str
    topic: str
    events: Path
    folder: Path
    live_group: str

    @property
    def records(self) -> int:
        """Lines of the file, one record each: events, their feedback labels, malformed lines."""
        return self.events.read_bytes().count(b"\n")


def _config(path: Path, bootstrap: str, extra: str = "") -> Path:
    path.write_text(
        f"""
[store]
path = "{path.with_suffix(".db")}"

[kafka]
bootstrap_servers = "{bootstrap}"
topics = ["unused"]
group_id = "unused"
{extra}
[[models]]
name = "fraud"

[[models]]
name = "churn"
"""
    )
    return path


@pytest.fixture(scope="module")
def recorded(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """A simulated day with malformed lines, in a file and in a fresh topic (record time =
    event time), and a live group that has committed offsets on it."""
    folder = tmp_path_factory.mktemp("kafka-replay")
    events = folder / "events.jsonl"
    write_simulation(events, EVENTS, seed=11, malformed=MALFORMED)
    topic = f"replay-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30_000)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    try:
        produced = produce_file(kafka_bootstrap, topic, events, event_time_stamps=True)
        assert produced == events.read_bytes().count(b"\n") > EVENTS + MALFORMED
        group = f"live-{uuid.uuid4().hex[:8]}"
        live = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            live.assign(tps)
            live.commit({tp: OffsetAndMetadata(LIVE_GROUP_OFFSET, "", -1) for tp in tps})
        finally:
            live.close(autocommit=False)
        yield Recorded(kafka_bootstrap, topic, events, folder, group)
    finally:
        admin.delete_topics([topic])
        admin.close()


def _file_alerts(config: Path, events: Path, store_path: Path) -> tuple[list[dict[str, Any]], int]:
    store = open_replay_store(store_path, overwrite=True)
    try:
        replay_file(load_config(config), store, events, Progress("file", enabled=False))
        return store.alerts(), store.count("quarantine")
    finally:
        store.close()


def _alerts(path: Path) -> list[dict[str, Any]]:
    store = Store(path)
    try:
        return store.alerts()
    finally:
        store.close()


def _committed(bootstrap: str, group: str, topic: str) -> list[int | None]:
    check = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    try:
        return [check.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
    finally:
        check.close(autocommit=False)


def test_whole_topic_gives_the_file_replays_alerts_and_leaves_the_live_group_alone(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(recorded.folder / "whole.toml", recorded.bootstrap)
    store = recorded.folder / "from-kafka.db"
    code = cli.main(
        [
            "replay",
            "--config",
            str(config),
            "--topic",
            recorded.topic,
            "--since",
            "0",
            "--store",
            str(store),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"replayed {recorded.records:,} records of topic {recorded.topic}" in out

    file_alerts, file_quarantined = _file_alerts(
        config, recorded.events, recorded.folder / "from-file.db"
    )
    kafka_alerts = _alerts(store)
    assert kafka_alerts, "the simulated incidents raised no alert at all"
    assert kafka_alerts == file_alerts

    replayed = Store(store)
    try:
        rows = replayed.db.execute(
            "SELECT source, topic, partition, offset FROM quarantine ORDER BY id"
        ).fetchall()
        offsets = replayed.stored_offsets(REPLAY_GROUP)
        groups = replayed.db.execute("SELECT DISTINCT group_id FROM offsets").fetchall()
    finally:
        replayed.close()
    assert len(rows) == file_quarantined == MALFORMED
    assert {r[0] for r in rows} == {f"kafka:{recorded.topic}"}
    assert all(r[1] == recorded.topic and r[2] in range(PARTITIONS) and r[3] >= 0 for r in rows)
    assert sum(offsets.values()) == recorded.records, "the store must hold where replay ended"
    assert groups == [(REPLAY_GROUP,)], "replay must record no consumer group's offsets"

    committed = _committed(recorded.bootstrap, recorded.live_group, recorded.topic)
    assert committed == [LIVE_GROUP_OFFSET] * PARTITIONS, "replay touched the live group"


def test_a_reference_file_gives_the_same_alerts_from_kafka_as_from_the_file(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = recorded.folder / "known-good.jsonl"
    write_simulation(reference, 6_000, seed=12)
    config = _config(recorded.folder / "reference.toml", recorded.bootstrap)
    stores = {name: recorded.folder / f"reference-{name}.db" for name in ("kafka", "file")}
    sources = {"kafka": ["--topic", recorded.topic, "--since", "0"]}
    sources["file"] = ["--input", str(recorded.events)]
    for name, source in sources.items():
        argv = ["replay", "--config", str(config), *source, "--store", str(stores[name])]
        assert cli.main([*argv, "--reference", str(reference)]) == 0
        out = capsys.readouterr().out
        assert "model fraud: reference set from known-good.jsonl" in out
        assert "model churn: reference set from known-good.jsonl" in out
    with_reference = _alerts(stores["kafka"])
    assert with_reference and with_reference == _alerts(stores["file"])
    warm_up, _ = _file_alerts(config, recorded.events, recorded.folder / "reference-none.db")
    assert with_reference != warm_up, "the reference made no difference"


def test_a_time_range_processes_only_its_records(recorded: Recorded) -> None:
    first, last = int(EVENTS * 0.3), int(EVENTS * 0.7)
    since = START_TS + first * EVENT_SPACING
    until = START_TS + last * EVENT_SPACING
    # The file lines whose record time (event time, or the previous line's) is in range.
    inside: list[bytes] = []
    previous: float | None = None
    for line in recorded.events.read_bytes().splitlines():
        try:
            ts = orjson.loads(line).get("ts")
        except (orjson.JSONDecodeError, AttributeError):
            ts = None
        previous = float(ts) if isinstance(ts, int | float) else previous
        if previous is not None and since <= previous < until:
            inside.append(line)
    assert inside

    config_path = _config(recorded.folder / "range.toml", recorded.bootstrap)
    store = open_replay_store(recorded.folder / "range.db", overwrite=True)
    try:
        result = replay_topic(
            load_config(config_path),
            store,
            recorded.topic,
            parse_time("2026-11-01T00:00:00Z", "--since") + first * EVENT_SPACING,
            parse_time(str(until), "--until"),
            Progress("range", enabled=False),
        )
        range_alerts = store.alerts()
    finally:
        store.close()
    assert 0 < result.records == len(inside) < recorded.records // 2
    assert result.stats.processed + result.stats.quarantined == len(inside)
    assert all(since <= a["event_ts"] < until for a in range_alerts)

    subset = recorded.folder / "range.jsonl"
    subset.write_bytes(b"\n".join(inside) + b"\n")
    file_alerts, _ = _file_alerts(config_path, subset, recorded.folder / "range-file.db")
    assert range_alerts == file_alerts


def test_compare_lists_alerts_that_appear_and_vanish_under_another_config(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    base_config = _config(recorded.folder / "base.toml", recorded.bootstrap)
    base = recorded.folder / "base.db"
    _file_alerts(base_config, recorded.events, base)
    ks_only = _config(
        recorded.folder / "ks-only.toml",
        recorded.bootstrap,
        '[detection]\ndetectors = ["ks"]\nfalse_alarm_events = 1e5\n',
    )
    new = recorded.folder / "ks-only.db"
    argv = ["--config", str(ks_only), "--topic", recorded.topic, "--since", "0"]
    code = cli.main(["replay", *argv, "--store", str(new), "--compare", str(base)])
    out = capsys.readouterr().out
    assert code == 0, out

    def keys(path: Path) -> Counter[tuple[str, str, str, str, float]]:
        return Counter(
            (a["model"], a["detector"], a["signal"], a["severity"], round(a["event_ts"], 3))
            for a in _alerts(path)
        )

    now, before = keys(new), keys(base)
    comparison = compare_stores(new, base)
    assert Counter(comparison.appeared) == now - before
    assert Counter(comparison.vanished) == before - now
    assert comparison.common == sum((now & before).values())
    assert comparison.vanished, "turning detectors off must make their alerts vanish"
    # Metric series, realized and estimated performance, the error rate and the
    # feedback test are not among [detection] detectors: they run whatever it lists.
    kept = ("ks", "metric_anomaly", "performance", "cbpe", "error_rate", "feedback")
    assert {k for k in before if k[1] not in kept} <= set(comparison.vanished)
    assert {k[1] for k in comparison.appeared} <= set(kept)
    assert (
        f"{comparison.common:,} alerts in both, {len(comparison.appeared):,} appear, "
        f"{len(comparison.vanished):,} vanish"
    ) in out
    assert "- vanishes" in out
    if comparison.appeared:
        assert "+ appears" in out

    # The same config over the same range again: nothing appears or vanishes.
    again = recorded.folder / "ks-only-again.db"
    code = cli.main(["replay", *argv, "--store", str(again), "--compare", str(new)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"the same {sum(now.values()):,} alerts, none appear or vanish" in out


def test_times_and_options_are_checked_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse_time("2026-11-01T00:00:00Z", "--since") == START_TS
    assert parse_time("2026-11-01T01:00:00+01:00", "--since") == START_TS
    assert parse_time(str(START_TS), "--since") == START_TS
    for bad in ("2026-11-01T00:00:00", "yesterday", "-5"):
        with pytest.raises(DriftwardenError):
            parse_time(bad, "--since")
    config = _config(tmp_path / "c.toml", "127.0.0.1:1")
    base = ["--config", str(config), "--topic", "t"]
    for argv in ([*base], [*base, "--since", "100", "--until", "50"]):
        assert cli.main(["replay", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("driftwarden: ") and err.count("\n") == 1, err
    assert not (tmp_path / "c.db").exists(), "a refused replay must not create its store"


def test_an_unreachable_broker_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_replay, "CONNECT_TIMEOUT_MS", 2000)
    config = _config(tmp_path / "c.toml", f"127.0.0.1:{free_port()}")
    argv = ["--config", str(config), "--topic", "t", "--since", "0"]
    assert cli.main(["replay", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("driftwarden: no Kafka broker answers at 127.0.0.1:"), err
    assert err.count("\n") == 1, err
