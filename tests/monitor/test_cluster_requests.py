"""Cluster mode's baseline requests in a member's store: armed, carried out, withdrawn."""

from __future__ import annotations

from pathlib import Path

import orjson

from monitor.cluster import follow, requests
from monitor.cluster.capture import ChangeCapture
from monitor.cluster.records import row_key
from monitor.pipeline import baseline_reset, reference_file
from monitor.store.store import Store
from tests.monitor.test_cluster_changelog import _open


def _request(
    store: Store, capture: ChangeCapture, model: str, rid: str, kind: str, partition: int, at: float
) -> None:
    """A request as a restore or the follower writes it: a row of ``baseline_requests``,
    not to be published again."""
    sample = b"sample" if kind == "set" else b""
    with store.transaction() as db, capture.paused():
        db.execute(
            "INSERT INTO baseline_requests (model, request_id, kind, partition, requested_at, "
            "requested_by, source, sha256, rows_read, sample_size, sample) "
            "VALUES (?, ?, ?, ?, ?, 'ops', 'f.jsonl', 'ab', 9, 5, ?)",
            [model, rid, kind, partition, at, sample],
        )


def test_requests_are_armed_in_order_and_tombstoned_once_carried_out(tmp_path: Path) -> None:
    """A set then a reset of one model, and a request on a partition another worker holds:
    the held ones become the store's own requests in the order made (the reset supersedes
    the set, as on one machine), and each is tombstoned on its partition, in the checkpoint
    that finds it carried out, not before."""
    store, capture = _open(tmp_path / "s.db")
    _request(store, capture, "m", "r1", "set", 0, 10.0)
    _request(store, capture, "m", "r2", "reset", 0, 20.0)
    _request(store, capture, "other", "r3", "reset", 1, 30.0)
    with store.transaction() as db:
        assert requests.sync(db, [0]) == [("m", 0), ("m", 0)]
        assert requests.sync(db, [0]) == [], "armed once"
    assert baseline_reset.pending(store.db) == {"m"}
    assert reference_file.pending(store.db) == set(), "the later reset supersedes the set"

    with store.transaction() as db:
        records = requests.finish(db, capture, "changelog", [0])
    assert [(r.key, r.value, r.partition) for r in records] == [
        (row_key("baseline_requests", ["m", "r1"]), None, 0)
    ]
    with store.transaction() as db:
        baseline_reset.carry_out(db, "m", 99.0)
        records = requests.finish(db, capture, "changelog", [0])
        assert requests.finish(db, capture, "changelog", [0]) == []
    assert [r.key for r in records] == [row_key("baseline_requests", ["m", "r2"])]
    left = store.db.execute("SELECT model FROM baseline_requests").fetchall()
    assert left == [("other",)], "the other worker's request is its business"
    with store.transaction() as db:
        assert capture.changed() == [], "the tombstones are the finish's own, not captured"
    store.close()


def test_a_request_carried_out_elsewhere_is_withdrawn_not_carried_out_here(
    tmp_path: Path,
) -> None:
    store, capture = _open(tmp_path / "s.db")
    _request(store, capture, "m", "r1", "reset", 0, 10.0)
    _request(store, capture, "n", "r2", "set", 0, 11.0)
    with store.transaction() as db:
        requests.sync(db, [0])
    assert baseline_reset.pending(store.db) == {"m"} and reference_file.pending(store.db) == {"n"}
    with store.transaction() as db:  # their tombstones, read by a restore
        db.execute("DELETE FROM baseline_requests")
        assert requests.sync(db, [0]) == []
        assert requests.finish(db, capture, "changelog", [0]) == []
    assert baseline_reset.pending(store.db) == set() and reference_file.pending(store.db) == set()
    assert store.db.execute("SELECT count(*) FROM cluster_armed").fetchone() == (0,)
    log = store.db.execute("SELECT content FROM audit WHERE kind = 'baseline_change'")
    assert [orjson.loads(c)["source"] for (c,) in log.fetchall()] == [], "nothing carried out"
    store.close()


def test_a_request_carried_out_but_never_published_is_armed_again_after_a_restore(
    tmp_path: Path,
) -> None:
    """Carried out when its model loaded, then the daemon died (or its transaction failed)
    before the checkpoint that publishes it: the request is still on the changelog, and
    the restored state is the one before it. After the restore it is carried out again;
    while following, it waits for its checkpoint."""
    store, capture = _open(tmp_path / "s.db")
    _request(store, capture, "m", "r1", "reset", 0, 10.0)
    with store.transaction() as db:
        assert requests.sync(db, [0]) == [("m", 0)]
        baseline_reset.carry_out(db, "m", 11.0)  # at load, in a transaction of its own
    assert baseline_reset.pending(store.db) == set()
    with store.transaction() as db:
        assert requests.sync(db, [0]) == [], "following: its checkpoint will publish it"
        assert requests.sync(db, [0], restored=True) == [("m", 0)]
        assert requests.sync(db, [0], restored=True) == [], "armed again once"
    assert baseline_reset.pending(store.db) == {"m"}


def test_chunks_of_no_request_stop_waiting_once_a_later_row_key_is_read() -> None:
    """A request's chunks come just before its row's key; chunks older than a row key read
    since belong to no request (a writer that is no command), and are dropped."""
    waiting = {b"old": (3, b"x"), b"next": (11, b"y")}
    follow._drop_orphans(waiting, last_row=7, partition=0)
    assert list(waiting) == [b"next"], "a chunk after the row key may be the next request's"
    follow._drop_orphans(waiting, last_row=-1, partition=0)
    assert list(waiting) == [b"next"], "no row key read: nothing to judge by"
    huge = {b"big": (12, b"z" * (follow.WAITING_BYTES + 1))}
    follow._drop_orphans(huge, last_row=-1, partition=0)
    assert huge == {}
