"""The one checkpoint owner: when a checkpoint is due, and offsets that never go backwards."""

from __future__ import annotations

import pytest

from monitor.pipeline.checkpoint import Checkpoint


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_due_by_records_by_seconds_with_records_and_at_once_for_a_full_quarantine() -> None:
    clock = _Clock()
    checkpoint = Checkpoint(every_records=10, every_seconds=5.0, clock=clock)
    assert checkpoint.due() is None
    clock.now += 60
    assert checkpoint.due() is None, "time alone, with nothing read, is no reason"
    checkpoint.count(9)
    assert checkpoint.due() == "seconds"
    checkpoint.taken()
    checkpoint.count(9)
    assert checkpoint.due() is None
    assert checkpoint.due(quarantine_full=True) == "quarantine"
    checkpoint.count()
    assert checkpoint.due() == "records"
    checkpoint.taken()
    assert checkpoint.due() is None


def test_offsets_are_kept_per_partition_and_never_go_backwards() -> None:
    checkpoint = Checkpoint(every_records=100)
    checkpoint.advance("t", 0, 10)
    checkpoint.advance("t", 1, 3)
    checkpoint.advance("t", 0, 12)
    assert checkpoint.offsets == {("t", 0): 12, ("t", 1): 3}
    with pytest.raises(ValueError, match=r"t\[0\] goes backwards: 11 after 12"):
        checkpoint.advance("t", 0, 11)
    checkpoint.taken()
    assert checkpoint.offsets == {}
    with pytest.raises(ValueError, match="goes backwards"):
        checkpoint.advance("t", 1, 2)  # behind what was checkpointed
    checkpoint.forget()  # partitions moved: another owner's positions may be anywhere
    checkpoint.advance("t", 1, 2)
    assert checkpoint.offsets == {("t", 1): 2}
    with pytest.raises(ValueError, match="every_records"):
        Checkpoint(every_records=0)
