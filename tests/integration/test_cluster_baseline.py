"""`baseline reset` and `baseline set` in cluster mode, on the real broker: a request on the
changelog, carried out once by whoever holds the model's partition."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.integration.cluster_support import (
    ClusterTopics,
    cluster_topics,
    committed_total,
    notifier_caught_up,
    read_topic,
    start_notifier,
    store_rows,
    write_cluster_config,
)
from tests.integration.daemon_support import (
    ROOT,
    free_port,
    produce_file,
    start_daemon,
    stop,
    wait_until,
)

pytestmark = pytest.mark.kafka
# Event times a day and a half ago, a second apart: in the past, never quarantined.
BASE_TS = time.time() - 36 * 3600
REFERENCE = 400


class Stream:
    """Writes events to the input topic, each later than the last, keyed by model."""

    def __init__(self, bootstrap: str, topics: ClusterTopics, folder: Path) -> None:
        self.bootstrap, self.topics, self.folder = bootstrap, topics, folder
        self.next_ts = BASE_TS
        self.sent = 0

    def send(self, model: str, n: int, mean: float, seed: int) -> None:
        path = self.folder / f"batch-{self.sent}.jsonl"
        path.write_bytes(_lines(model, n, mean, seed, self.next_ts))
        self.next_ts += n
        self.sent += produce_file(self.bootstrap, self.topics.events, path)

    def all_committed(self) -> bool:
        return committed_total(self.bootstrap, self.topics.group) >= self.sent


def _lines(model: str, n: int, mean: float, seed: int, start: float) -> bytes:
    rng = np.random.default_rng(seed)
    return b"".join(
        orjson.dumps({"model": model, "ts": start + i, "features": {"x": float(x)}}) + b"\n"
        for i, x in enumerate(rng.normal(mean, 1.0, size=n))
    )


def _config(tmp_path: Path, name: str, bootstrap: str, topics: ClusterTopics) -> Path:
    config = write_cluster_config(
        tmp_path / f"{name}.toml", bootstrap, topics, tmp_path / f"{name}.db", free_port()
    )
    with config.open("a") as out:
        out.write(f"\n[detection]\nreference_size = {REFERENCE}\nwindow = 200\n")
    return config


def _baseline(config: Path, *argv: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "baseline", *argv, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def _baseline_log(store: Path, model: str = "fraud") -> list[dict[str, object]]:
    """The ``baseline_change`` rows of a store's audit log for a model, in order."""
    rows = store_rows(
        store,
        "SELECT content FROM audit WHERE kind = 'baseline_change' "
        f"AND subject = 'model:{model}' ORDER BY id",
    )
    return [orjson.loads(str(content)) for (content,) in rows]


def _sources(store: Path, model: str = "fraud") -> list[object]:
    return [row["source"] for row in _baseline_log(store, model)]


def _restored(log: Path) -> int:
    return log.read_text().count('"changelog restored"') if log.exists() else 0


def _pending_requests(bootstrap: str, topic: str) -> list[bytes]:
    """Request keys whose latest value on the changelog is not a tombstone."""
    latest: dict[bytes, bytes | None] = {}
    for key, value in read_topic(bootstrap, topic):
        if key is not None and key.startswith(b'["baseline_requests",'):
            latest[key] = value
    return [key for key, value in latest.items() if value is not None]


def test_a_reset_then_a_set_are_carried_out_by_the_member_holding_the_model(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A daemon and a notifier in cluster mode. `baseline reset` while the model runs: the
    member drops its state at its next checkpoint and the model warms up on the events
    after the request (a shifted stream that the old reference would alarm on gives no
    alert). Then `baseline set` with a file: the model's reference is the file's sample
    (the same stream now alarms against it). The notifier's audit log holds each step
    once, and no request stays on the changelog."""
    notify_store = tmp_path / "notify.db"
    with cluster_topics(kafka_bootstrap, partitions=2) as topics:
        config = _config(tmp_path, "a", kafka_bootstrap, topics)
        log = tmp_path / "a.log"
        daemon = start_daemon(config, log)
        notifier = start_notifier(config, notify_store, tmp_path / "notify.log")
        stream = Stream(kafka_bootstrap, topics, tmp_path)
        try:
            wait_until(lambda: _restored(log) > 0, 120, "the member to restore")
            stream.send("fraud", 1000, 0.0, seed=1)
            wait_until(lambda: "warm-up" in _sources(notify_store), 120, "the first warm-up")

            code, out, err = _baseline(config, "reset", "--model", "fraud", "--by", "ops")
            assert code == 0, err
            assert out.count("\n") == 1 and "reset requested by ops" in out, out
            assert f"{topics.changelog} partition" in out, out
            # Other models' records bring the checkpoints that carry it out.
            seed = 100
            deadline = time.monotonic() + 120
            while "reset carried out" not in _sources(notify_store):
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                stream.send("churn", 20, 0.0, seed=seed)
                seed += 1
                time.sleep(1.0)
            stream.send("fraud", 1000, 5.0, seed=2)  # would alarm against the old reference
            wait_until(stream.all_committed, 120, "the shifted stream")
            wait_until(
                lambda: _sources(notify_store).count("warm-up") == 2, 60, "the second warm-up"
            )
            wait_until(
                lambda: notifier_caught_up(kafka_bootstrap, topics, notify_store),
                60,
                "the notifier",
            )
            after_reset = store_rows(notify_store, "SELECT count(*) FROM alerts")[0][0]

            reference = tmp_path / "reference.jsonl"
            reference.write_bytes(_lines("fraud", 600, 10.0, 3, BASE_TS - 10_000))
            code, out, err = _baseline(
                config, "set", "--model", "fraud", "--input", str(reference), "--by", "ops"
            )
            assert code == 0, err
            assert out.count("\n") == 1 and "sample of 400 events of 600 read" in out, out
            wait_until(
                lambda: bool(store_rows(tmp_path / "a.db", "SELECT 1 FROM cluster_armed")),
                60,
                "the member to read the request",
            )
            shifted_from = stream.next_ts
            stream.send("fraud", 1600, 5.0, seed=4)
            wait_until(stream.all_committed, 120, "the stream after the set")
            # A reference set is built when its model next loads, after the checkpoint
            # that dropped it; when that checkpoint took the whole stream above, only
            # later events load it: send some (also tested against the new reference).
            stream.send("fraud", 200, 5.0, seed=5)
            wait_until(
                lambda: "reference carried out" in _sources(notify_store),
                60,
                "the reference built",
            )
            wait_until(
                lambda: notifier_caught_up(kafka_bootstrap, topics, notify_store),
                60,
                "the notifier",
            )
        finally:
            code = stop(daemon)
            stop(notifier)
        assert code == 0, log.read_text()[-3000:]
        pending = _pending_requests(kafka_bootstrap, topics.changelog)
    assert pending == []
    assert after_reset == 0  # the shifted stream was the new reference, not tested against it
    alerts = store_rows(notify_store, "SELECT model, event_ts FROM alerts")
    assert alerts and all(m == "fraud" and float(ts) >= shifted_from for m, ts in alerts), alerts  # type: ignore[arg-type]
    assert _sources(notify_store) == [
        "warm-up",
        "reset requested",
        "reset carried out",
        "warm-up",
        "reference set",
        "reference carried out",
    ]
    log_rows = _baseline_log(notify_store)
    digest = hashlib.sha256(reference.read_bytes()).hexdigest()
    assert log_rows[1]["by"] == "ops" and log_rows[4]["by"] == "ops"
    assert log_rows[4]["sha256"] == log_rows[5]["sha256"] == digest
    assert log_rows[5]["reference_events"] == REFERENCE


def test_a_request_pending_when_its_owner_dies_is_carried_out_once_by_the_next(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A reset read by the member holding the model, not yet carried out (the model has no
    events meanwhile), when that member is SIGKILLed: the member that takes the partition
    (another store, restored from the changelog) carries it out at the model's next event.
    The first member, started again with its store (which still holds the request as its
    own), learns from the changelog that it was carried out and does not do it again."""
    notify_store = tmp_path / "notify.db"
    with cluster_topics(kafka_bootstrap, partitions=1) as topics:
        config_a = _config(tmp_path, "a", kafka_bootstrap, topics)
        config_b = _config(tmp_path, "b", kafka_bootstrap, topics)
        log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
        a = start_daemon(config_a, log_a)
        notifier = start_notifier(config_a, notify_store, tmp_path / "notify.log")
        stream = Stream(kafka_bootstrap, topics, tmp_path)
        b = None
        try:
            wait_until(lambda: _restored(log_a) > 0, 120, "the first member to restore")
            stream.send("fraud", 1000, 0.0, seed=1)
            wait_until(lambda: "warm-up" in _sources(notify_store), 120, "the first warm-up")
            wait_until(stream.all_committed, 60, "the first events")

            code, _, err = _baseline(config_a, "reset", "--model", "fraud", "--by", "ops")
            assert code == 0, err
            wait_until(
                lambda: bool(store_rows(tmp_path / "a.db", "SELECT 1 FROM cluster_armed")),
                60,
                "the member to read the request",
            )
            a.send_signal(signal.SIGKILL)
            a.wait(timeout=30)
            assert store_rows(
                tmp_path / "a.db", "SELECT count(*) FROM baseline_resets WHERE done_at IS NULL"
            ) == [(1,)]

            b = start_daemon(config_b, log_b)
            wait_until(lambda: _restored(log_b) > 0, 120, "the next member to restore")
            stream.send("fraud", 1000, 5.0, seed=2)  # would alarm against the old reference
            wait_until(stream.all_committed, 120, "the shifted stream")
            wait_until(
                lambda: _sources(notify_store).count("warm-up") == 2, 60, "the second warm-up"
            )
            code_b = stop(b)
            assert code_b == 0, log_b.read_text()[-3000:]

            a = start_daemon(config_a, log_a)
            wait_until(lambda: _restored(log_a) > 1, 120, "the first member, again")
            stream.send("fraud", 600, 5.0, seed=3)
            wait_until(stream.all_committed, 120, "the last events")
            wait_until(
                lambda: notifier_caught_up(kafka_bootstrap, topics, notify_store),
                60,
                "the notifier",
            )
        finally:
            code_a = stop(a)
            if b is not None:
                b.kill()
                b.wait(timeout=30)
            stop(notifier)
        assert code_a == 0, log_a.read_text()[-3000:]
        pending = _pending_requests(kafka_bootstrap, topics.changelog)
    assert pending == []
    assert _sources(notify_store) == ["warm-up", "reset requested", "reset carried out", "warm-up"]
    assert store_rows(notify_store, "SELECT count(*) FROM alerts") == [(0,)]
    # The first member's own copy of the request was withdrawn, not carried out again.
    assert store_rows(tmp_path / "a.db", "SELECT count(*) FROM cluster_armed") == [(0,)]
    assert store_rows(tmp_path / "a.db", "SELECT count(*) FROM baseline_resets") == [(0,)]


def test_a_large_reference_request_goes_in_chunks_and_is_read_whole_across_polls(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A sample of 2 MB (incompressible) goes in chunks; a follower reading one record per
    poll holds the chunks until their row's key comes, never counts the store as holding
    more than it does meanwhile, and then writes the row whole and arms it."""
    import os

    from monitor.cluster import cache, requests
    from monitor.cluster.capture import ChangeCapture
    from monitor.cluster.follow import ChangelogFollower
    from monitor.cluster.request_command import send_reference
    from monitor.cluster.restore import Restored, apply
    from monitor.config import load_config
    from monitor.pipeline.reference_file import ReferenceRequest
    from monitor.store.store import Store

    sample = os.urandom(2_000_000)
    with cluster_topics(kafka_bootstrap, partitions=2) as topics:
        config = load_config(str(_config(tmp_path, "a", kafka_bootstrap, topics)))
        request = ReferenceRequest("fraud", "ops", "ref.jsonl", "ab" * 32, 900, 400, sample)
        sent = send_reference(config, request)
        store = Store(tmp_path / "s.db")
        with store.transaction() as db:
            cache.ensure_tables(db)
        capture = ChangeCapture(store.db)
        follower = ChangelogFollower(
            [kafka_bootstrap], topics.changelog, {0: 0, 1: 0}, "test", max_poll_records=1
        )
        held_back = False
        deadline = time.monotonic() + 60
        try:
            while not store_rows(tmp_path / "s.db", "SELECT 1 FROM baseline_requests"):
                assert time.monotonic() < deadline, "the request never came whole"
                found = follower.step()
                safe = follower.safe()
                position = follower.consumer.position(follower.tps[sent.partition])
                held_back = held_back or safe[sent.partition] < position
                if found:
                    apply(store, capture, topics.changelog, found, safe, Restored(sorted(found)))
            with store.transaction() as db:
                armed = requests.sync(db, [0, 1])
        finally:
            follower.close()
    row = store.db.execute(
        "SELECT request_id, partition, sample FROM baseline_requests WHERE model = 'fraud'"
    ).fetchone()
    kept = store.db.execute(
        "SELECT sample, sha256, done_at FROM baseline_references WHERE model = 'fraud'"
    ).fetchone()
    chunks = store.db.execute("SELECT chunks FROM cluster_chunks").fetchall()
    store.close()
    assert held_back, "the chunks read before their row's key were counted as held"
    assert row == (sent.request_id, sent.partition, sample)
    assert kept == (sample, "ab" * 32, None) and armed == [("fraud", sent.partition)]
    assert chunks == [(3,)]  # 2 MB in base64 is 2.67 MB: three chunks of 900 KiB


def test_a_request_to_a_topic_that_does_not_exist_is_one_line_and_sends_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with cluster_topics(kafka_bootstrap, partitions=2) as topics:
        config = _config(tmp_path, "a", kafka_bootstrap, topics)
        missing = f"{topics.changelog}-missing"
        config.write_text(
            config.read_text().replace(
                f'changelog_topic = "{topics.changelog}"', f'changelog_topic = "{missing}"'
            )
        )
        code, out, err = _baseline(config, "reset", "--model", "fraud", "--by", "ops")
        alerts = read_topic(kafka_bootstrap, topics.alerts)
    assert code == 2 and out == "", out
    assert f"topic {missing} does not exist" in err and err.count("\n") == 1, err
    assert alerts == [], "the audit row goes with the request, or not at all"
