"""A poll's records parsed straight into runs, checked by column: the fetch process's path.

``parse_records`` then ``group_runs`` check each usual row by a dozen tests of
its own, then take the rows apart again into columns. Here the usual rows of a
configured model are only decoded and set aside; when their run is handed over,
``make_run`` checks every field by column, in C (a set of types, a comparison of
arrays). That is about a quarter of what parsing a record cost, and for a record
over ``MAX_NAME_CHARS`` bytes (a wide table) several times more, since its names
had to be measured one row at a time.

Exactness comes first: the result is what ``parse_records`` and ``group_runs``
make of the same records. Rows whose run fails a check, or that are too few to
make a run, are checked one by one as ``parse_record`` checks them. If one of them
is not a usual row after all (a time outside the bounds, a feature that is a list),
its place in the grouping would differ, so the whole poll is parsed again the
record-by-record way: hostile records cost what they cost before, no more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from monitor.ingest.events import (
    MAX_NAME_CHARS,
    Event,
    Row,
    TimeBounds,
    parse_decoded,
    parse_record,
    unchecked_usual_row,
)
from monitor.ingest.fetched import BadRecord, Fetched, KafkaRecord, parse_records
from monitor.ingest.row_runs import MIN_RUN, Item, group_runs, make_run

_loads = orjson.loads


class _NotUsual(Exception):
    """A row set aside unchecked is not a usual row: parse the poll record by record."""


@dataclass(slots=True)
class _Waiting:
    """A model's rows set aside, and for each unchecked one its record (None: checked)."""

    rows: list[Row] = field(default_factory=list)
    records: list[KafkaRecord | None] = field(default_factory=list)
    # Whether a record is longer than a name may be: if none is, no text in them can be.
    long: bool = False


def parse_runs(
    epoch: int,
    topic: str,
    partition: int,
    records: Sequence[KafkaRecord],
    bounds: TimeBounds,
    highwater: int | None,
    models: frozenset[str],
    min_run: int = MIN_RUN,
) -> Fetched:
    """``parse_records`` of a poll's records of one partition, its ``parsed`` then
    grouped by ``group_runs``: the same batch, for less."""
    try:
        parsed, bad = _parse_grouped(records, bounds, models, min_run)
    except _NotUsual:
        fetched = parse_records(epoch, topic, partition, records, bounds, highwater)
        fetched.parsed = group_runs(fetched.parsed, models, min_run)
        return fetched
    last = records[-1].offset if records else -1
    return Fetched(epoch, topic, partition, last, highwater, parsed, bad, len(records))


def _parse_grouped(
    records: Sequence[KafkaRecord], bounds: TimeBounds, models: frozenset[str], min_run: int
) -> tuple[list[Item], list[BadRecord]]:
    out: list[Item] = []
    bad: list[BadRecord] = []
    waiting: dict[str, _Waiting] = {}  # in the order their first rows came
    for record in records:
        raw = record.value
        default_ts = record.timestamp / 1000.0
        try:
            obj = _loads(raw)  # type: ignore[arg-type]
        except Exception:  # not JSON, or None: parse_record says why
            item = parse_record(raw, default_ts, bounds)  # type: ignore[arg-type]
        else:
            row = unchecked_usual_row(obj, default_ts, models)
            if row is not None:  # set aside unchecked
                waits = waiting.get(row[0])
                if waits is None:
                    waiting[row[0]] = waits = _Waiting()
                waits.rows.append(row)
                waits.records.append(record)
                if len(raw) > MAX_NAME_CHARS:  # type: ignore[arg-type]
                    waits.long = True
                continue
            item = parse_decoded(raw, obj, default_ts, bounds)  # type: ignore[arg-type]
        # From here on, group_runs's steps, in the same pass: a second pass over the
        # poll (group_runs with a hand-over of its own) cost ~0.4 us a record here.
        if type(item) is tuple and item[0] in models:  # a row checked already
            waits = waiting.get(item[0])
            if waits is None:
                waiting[item[0]] = waits = _Waiting()
            waits.rows.append(item)
            waits.records.append(None)
            continue
        if type(item) is tuple or type(item) is Event:
            model = item[0] if type(item) is tuple else item.model  # type: ignore[union-attr]
            while model in waiting:  # those begun up to this model's run, the last
                name = next(iter(waiting))
                _hand_over(out, waiting.pop(name), bounds, min_run)
        else:  # a malformed record: every run first
            for waits in waiting.values():
                _hand_over(out, waits, bounds, min_run)
            waiting.clear()
            bad.append(BadRecord.of(record))
        out.append(item)
    for waits in waiting.values():
        _hand_over(out, waits, bounds, min_run)
    return out, bad


def _hand_over(out: list[Item], waits: _Waiting, bounds: TimeBounds, min_run: int) -> None:
    rows = waits.rows
    if any(waits.records):  # some set aside unchecked
        run = make_run(rows, bounds, waits.long) if len(rows) >= min_run else None
        if run is not None:
            out.append(run)
            return
        rows = [_checked(*pair, bounds) for pair in zip(rows, waits.records, strict=True)]
    run = make_run(rows) if len(rows) >= min_run else None  # as group_runs hands them over
    if run is None:
        out.extend(rows)
    else:
        out.append(run)


def _checked(row: Row, record: KafkaRecord | None, bounds: TimeBounds) -> Row:
    """The row as ``parse_record`` makes it (a time given as an integer becomes a float)."""
    if record is None:
        return row
    checked = parse_record(record.value, record.timestamp / 1000.0, bounds)  # type: ignore[arg-type]
    if type(checked) is not tuple:
        raise _NotUsual
    return checked
