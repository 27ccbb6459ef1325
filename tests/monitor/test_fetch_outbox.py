"""The fetch process's outbox: batches reach the loop whole and in order, and no more
than its byte budget waits (one batch whatever its size), over a real socket pair."""

from __future__ import annotations

import pickle
import socket
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from monitor.daemon.fetch_child import Outbox
from monitor.ingest.fetched import BadRecord, Fetched

MB = 2**20


def _batch(n: int, size: int = 10) -> Fetched:
    """A batch standing out by ``n``, its pickle a little over ``size`` bytes."""
    return Fetched(n, "events", 0, n, None, [], [BadRecord(n, b"x" * size, None)], 1)


@pytest.fixture
def ends() -> Iterator[tuple[Connection, Connection]]:
    ours, theirs = socket.socketpair()
    sender, receiver = Connection(ours.detach()), Connection(theirs.detach())
    yield sender, receiver
    sender.close()
    receiver.close()


def _received(receiver: Connection, count: int) -> list[Fetched]:
    return [pickle.loads(receiver.recv_bytes()) for _ in range(count)]


def test_batches_arrive_whole_and_in_order(ends: tuple[Connection, Connection]) -> None:
    sender, receiver = ends
    outbox = Outbox(sender, limit=MB)
    sent = [_batch(n, size=1000 * n) for n in range(40)]
    for batch in sent:
        outbox.put(batch)
    assert _received(receiver, 40) == sent
    outbox.close()


def test_no_more_than_the_budget_waits(ends: tuple[Connection, Connection]) -> None:
    """Batches larger than the socket's buffer: the first is being written while the
    loop reads nothing, the second waits, and the third would pass the budget."""
    sender, receiver = ends
    outbox = Outbox(sender, limit=int(2.5 * MB))
    outbox.put(_batch(0, MB))
    outbox.put(_batch(1, MB))
    third = threading.Thread(target=outbox.put, args=(_batch(2, MB),), daemon=True)
    third.start()
    third.join(timeout=1.0)
    assert third.is_alive(), "a third batch went past the budget"
    assert [b.epoch for b in _received(receiver, 1)] == [0]  # the first written: room again
    third.join(timeout=10)
    assert not third.is_alive()
    assert [b.epoch for b in _received(receiver, 2)] == [1, 2]
    outbox.close()


def test_one_batch_goes_whatever_its_size(ends: tuple[Connection, Connection]) -> None:
    sender, receiver = ends
    outbox = Outbox(sender, limit=100)
    outbox.put(_batch(7, 3 * MB))  # returns, though over the budget alone
    assert [b.epoch for b in _received(receiver, 1)] == [7]
    outbox.put(_batch(8))
    assert [b.epoch for b in _received(receiver, 1)] == [8]
    outbox.close()


def test_close_writes_what_waits_and_takes_nothing_more(
    ends: tuple[Connection, Connection],
) -> None:
    sender, receiver = ends
    outbox = Outbox(sender, limit=8 * MB)
    for n in range(3):
        outbox.put(_batch(n, MB))
    outbox.close()
    outbox.put(_batch(99))
    assert [b.epoch for b in _received(receiver, 3)] == [0, 1, 2]
    assert not receiver.poll(0.5)


def test_a_loop_that_is_gone_takes_nothing_more(ends: tuple[Connection, Connection]) -> None:
    sender, receiver = ends
    outbox = Outbox(sender, limit=int(1.5 * MB))
    receiver.close()
    for n in range(5):  # returns: the writer finds the socket closed
        outbox.put(_batch(n, MB))
    assert not outbox.open
