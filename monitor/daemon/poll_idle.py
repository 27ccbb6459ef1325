"""How long the consume loop waits idle for records while records are waiting for it.

The loop takes its records from its fetch process (``monitor.daemon.fetch_child``),
or, without one, from Kafka's ``poll``, whose fetches arrive on kafka-python's IO
thread and whose records the loop's own thread decodes. Either way the loop's
wait is the wall time of taking a batch less the loop thread's CPU time in it.
It counts only when, before the wait, a partition was behind its high-water mark
as the last fetch reported it: waiting for records nobody has produced yet is not
idle. ``waiting / behind`` is the
idle share of the loop while it has work; a fetch pipeline that keeps up holds
it near zero, one that lets the broker hold fetch requests brings it near one.
"""

from __future__ import annotations

import time

from kafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter


class PollIdle:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.waiting = Counter(
            "driftwarden_poll_waiting",
            "Seconds the consume loop waited for records (the fetch process's next batch, or "
            "inside Kafka poll) while a partition had records beyond its position (wall time "
            "less the loop thread's CPU time)",
            unit="seconds",
            registry=registry,
        )
        self.behind = Counter(
            "driftwarden_poll_behind",
            "Seconds of consume loop (poll, processing, checkpoints) begun while a partition "
            "had records beyond its position",
            unit="seconds",
            registry=registry,
        )
        # Replaced, never cleared in place: the rebalance callback runs on another thread.
        self._lag: dict[TopicPartition, int] = {}
        self._loop: tuple[float, float] | None = None

    def lag(self, tp: TopicPartition, records_behind: int) -> None:
        self._lag[tp] = records_behind

    def forget(self) -> None:
        self._lag = {}

    def poll_started(self) -> None:
        lag = self._lag
        was_behind = any(n > 0 for n in list(lag.values()))
        self._loop = (time.perf_counter(), time.thread_time()) if was_behind else None

    def poll_ended(self) -> None:
        if self._loop is not None:
            wall, cpu = self._loop
            waited = (time.perf_counter() - wall) - (time.thread_time() - cpu)
            self.waiting.inc(max(0.0, waited))

    def loop_ended(self) -> None:
        if self._loop is not None:
            self.behind.inc(time.perf_counter() - self._loop[0])
            self._loop = None
