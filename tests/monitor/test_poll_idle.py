"""The daemon's own measure of waiting in Kafka's poll while records are pending."""

from __future__ import annotations

import time

from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from monitor.daemon.poll_idle import PollIdle

TP = TopicPartition("events", 0)


def _loop(idle: PollIdle, wait: float = 0.0, work: float = 0.0) -> None:
    """One turn of the consume loop: a poll that sleeps ``wait``, then ``work`` of CPU."""
    idle.poll_started()
    time.sleep(wait)
    idle.poll_ended()
    end = time.thread_time() + work
    while time.thread_time() < end:
        pass
    idle.loop_ended()


def _totals(registry: CollectorRegistry) -> tuple[float, float]:
    waiting = registry.get_sample_value("driftwarden_poll_waiting_seconds_total")
    behind = registry.get_sample_value("driftwarden_poll_behind_seconds_total")
    assert waiting is not None and behind is not None
    return waiting, behind


def test_a_wait_counts_only_while_a_partition_is_behind() -> None:
    registry = CollectorRegistry()
    idle = PollIdle(registry)
    _loop(idle, wait=0.05)  # nothing known to be pending: waiting for new records is not idle
    idle.lag(TP, 0)
    _loop(idle, wait=0.05)  # caught up
    assert _totals(registry) == (0.0, 0.0)
    idle.lag(TP, 1_000)
    _loop(idle, wait=0.05, work=0.05)
    waiting, behind = _totals(registry)
    # A sleep in poll is waiting; the CPU spent after it is loop time but not waiting.
    assert 0.04 <= waiting < behind
    assert behind >= waiting + 0.04
    idle.forget()  # partitions revoked: what they had pending is no longer ours
    _loop(idle, wait=0.05)
    assert _totals(registry) == (waiting, behind)
