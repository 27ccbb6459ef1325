"""CBPE joins each label to the row the id map kept at every prediction would join it to.

The map of this test is kept as simply as it is meant: every kept scored prediction's
request id points at its place (the latest place wins; no id, no entry), a window's
entries leave it when the window is forgotten (the reference's at the fit), all of them
when the model is given up, and the rows of a reference given by ``set_reference`` are
never in it (their labels were joined in the sample). Random streams are fed to CBPE and
to that map side by side: labels for predictions of the same batch, of the reference
before and after the fit, of forgotten windows, for ids sent again, without an id or for
unknown ids; batches of every size through every way in; ``set_reference`` now and then;
the state round-tripped through JSON and ``load`` at random points, sometimes with the
map as checkpoints used to hold it; in some streams labels of other types too (bools,
ints, floats, many classes). The rows' labels (values and types) must be the map's after
every batch,
and when the reference is fitted and each window realized (the only moments they are
read); the findings, results and changes (but for how confirmations are merged, which
depends on when they are taken) must be those of the same stream fed in other batches
and never reloaded.
"""

from __future__ import annotations

import json
import math
from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from detectors.performance.calibration import Rows
from detectors.performance.estimated import (
    EstimatedPerformance,
    Scored,
    ScoredColumns,
    ScoredRow,
)

WINDOW = 100
SEEDS = range(12)
# Labels other than the classes, which JSON carries as they are: each must come back so.
ODD_LABELS: list[Any] = [True, False, 1, 0, 1.0, -0.0, 2.5, "yes ", ""]


def typed(values: list[Any]) -> list[tuple[type, str]]:
    """Values with their types (``True == 1 == 1.0`` and ``0.0 == -0.0``: not the same)."""
    return [(type(v), repr(v)) for v in values]


class Watched(EstimatedPerformance):
    """CBPE that notes the rows' labels where they are read: the reference's at the
    fit, each window's when it is realized."""

    seen: list[list[tuple[type, str]]]

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.seen = []

    def _fit(self) -> None:
        self.seen.append(typed(self.reference.truth.tolist()))
        super()._fit()

    def _realize(self, number: int, rows: Rows) -> None:
        self.seen.append(typed(rows.truth.tolist()))
        super()._realize(number, rows)


@dataclass
class EagerMap:
    """The labels of every kept prediction, joined through an id map kept eagerly."""

    window: int
    reference: int
    realized_after: int
    max_classes: int
    ids: dict[str, int] = field(default_factory=dict)  # id -> place
    requests: list[str | None] = field(default_factory=list)  # by place
    truth: list[Any] = field(default_factory=list)  # by place
    fitted: bool = False
    gave_up: bool = False
    forgotten: int = 0  # windows forgotten
    seen: list[list[tuple[type, str]]] = field(default_factory=list)
    landed: dict[str, int] = field(default_factory=dict)  # which paths were taken

    def keeps(self, row: ScoredRow) -> bool:
        _, _, _, predicted, score, probabilities, _ = row
        if predicted is None or self.gave_up:
            return False
        if probabilities is not None and len(probabilities) <= self.max_classes:
            return True
        return math.isfinite(score)

    def feed(self, rows: list[ScoredRow], gives_up: bool) -> None:
        """``gives_up``: whether CBPE gave the model up after these rows (at a fit)."""
        for row in rows:
            request, predicted, truth = row[2], row[3], row[6]
            if predicted is None:
                place = None if request is None else self.ids.get(request)
                if place is not None and self.truth[place] is None:
                    self.truth[place] = truth
                    where = "reference" if place < self.reference else "window"
                    self.note(f"{where} {'after' if self.fitted else 'before'} the fit")
                    if type(truth) is not str:
                        self.note("a label of another type")
                continue
            if not self.keeps(row):
                continue
            if request is not None:
                if request in self.ids:
                    self.note("id sent again")
                self.ids[request] = len(self.truth)
            self.requests.append(request)
            self.truth.append(None)
            after = len(self.truth) - self.reference
            if after > 0 and after % self.window == 0:
                self._close(after // self.window - 1, gives_up)

    def note(self, what: str) -> None:
        self.landed[what] = self.landed.get(what, 0) + 1

    def _close(self, number: int, gives_up: bool) -> None:
        if not self.fitted:
            self.seen.append(typed(self.truth[: self.reference]))
            self._forget(0, self.reference)
            if gives_up:
                self.gave_up = True
                self.ids.clear()
                return
            self.fitted = True
        while number - self.forgotten + 1 > self.realized_after:
            start = self.reference + self.forgotten * self.window
            self.seen.append(typed(self.truth[start : start + self.window]))
            self._forget(start, start + self.window)
            self.forgotten += 1

    def _forget(self, start: int, stop: int) -> None:
        for request in [k for k, place in self.ids.items() if start <= place < stop]:
            del self.ids[request]

    def set_reference(self, events: list[ScoredRow]) -> int:
        sample = EagerMap(self.window, 2**62, self.realized_after, self.max_classes)
        sample.feed(events, gives_up=False)
        taken = len(sample.truth)
        if taken < self.window:
            return 0
        self.reference, self.requests, self.truth = taken, sample.requests, sample.truth
        self.ids, self.fitted, self.gave_up, self.forgotten = {}, False, False, 0
        self.note("set_reference")
        return taken

    def as_checkpoints_held_it(self) -> dict[str, list[int]]:
        """The map as a checkpoint used to hold it: {id: [window, or -1; row]}."""
        return {
            request: [-1, place]
            if place < self.reference
            else list(divmod(place - self.reference, self.window))
            for request, place in self.ids.items()
        }

    def check(self, est: Watched) -> None:
        """CBPE's kept rows hold the labels this map joined."""
        assert est.count == len(self.truth)
        assert est.seen == self.seen
        kept = 0 if self.fitted or self.gave_up else min(est.count, self.reference)
        assert typed(est.reference.truth.tolist()) == typed(self.truth[:kept])
        if self.gave_up:
            assert est.windows == []
            return
        assert est.first_window == self.forgotten
        start = self.reference + self.forgotten * self.window
        for rows in est.windows:
            assert typed(rows.truth.tolist()) == typed(self.truth[start : start + len(rows.truth)])
            assert rows.kept_ids() == self.requests[start : start + rows.id_count()]
            start += rows.id_count()
        assert start == est.count or not est.windows


def make_stream(seed: int) -> tuple[dict[str, Any], list[ScoredRow], int | None, list[ScoredRow]]:
    """CBPE's parameters, a stream, where ``set_reference`` is called in it (None: never)
    and the sample it is given."""
    rng = np.random.default_rng(seed)
    dense = seed % 4 == 0  # every prediction labelled soon: windows are realized
    odd = seed % 4 == 3  # labels of other types among them
    params = {
        "window": WINDOW,
        "reference": int(rng.choice([200, 300])),
        "alpha": 0.05,
        "recover_windows": 2,
        "realized_after": int(rng.integers(1 if dense else 0, 4)),
        "min_labels": 30,
        "max_classes": 3,
    }
    kind = ["confidence", "mixed", "one_class"][seed % 3] if seed % 4 else "confidence"
    n = int(rng.integers(1500, 2500))
    events: list[ScoredRow] = []
    pending: list[tuple[int, str | None, Any]] = []  # (due at prediction, id, truth)
    sent: list[str] = []

    def label(request: str | None, truth: Any) -> None:
        events.append((len(events), 1.6e9 + len(events), request, None, math.nan, None, truth))

    sample: list[ScoredRow] = []
    given = int(rng.integers(100, n // 2)) if seed % 3 == 1 else None
    at = None
    for i in range(n):
        if i == given:
            at = len(events)
            sample = _sample(rng, i, pending, sent)
        p = rng.beta(3, 3) if n // 2 <= i < n // 2 + 500 else rng.beta(0.6, 0.6)  # a shift
        predicted = "yes" if p >= 0.5 else "no"
        if kind == "one_class":
            predicted = "yes"
        score = float(max(p, 1 - p))
        probabilities = None
        if kind == "mixed":
            roll = rng.random()
            if roll < 0.11:  # a row taken one by one (one in a window without a score)
                probabilities = {"yes": p, "no": 1 - p}
                score = math.nan if roll < 0.01 else score
            elif roll < 0.13:  # more classes than tracked: taken without them
                probabilities = {"yes": p, "no": 1 - p, "maybe": 0.0, "never": 0.0}
            elif roll < 0.16:
                score = math.nan  # not kept
        roll = rng.random()
        request: str | None
        if roll < 0.04 and not dense:
            request = None
        elif roll < 0.14 and sent and not dense:
            far = min(len(sent), 800 if rng.random() < 0.3 else 40)
            request = sent[-int(rng.integers(1, far + 1))]
        else:
            request = f"r{i}"
            sent.append(request)
        events.append(
            (len(events), 1.6e9 + len(events), request, predicted, score, probabilities, None)
        )
        if dense or rng.random() < 0.7:
            truth: Any = "yes" if rng.random() < p else "no"
            if odd and rng.random() < 0.2:
                truth = ODD_LABELS[int(rng.integers(len(ODD_LABELS)))]
            roll = rng.random()
            delay = 0 if roll < 0.2 else int(rng.integers(1, 40 if roll < 0.8 or dense else 700))
            pending.append((i + delay, request, truth))
        if rng.random() < 1 / 30:  # a clump of labels: those due, and strays
            due = [x for x in pending if x[0] <= i]
            pending = [x for x in pending if x[0] > i]
            due += [(i, f"unknown{i}", "no"), (i, None, "yes")]
            for k in rng.permutation(len(due)).tolist():  # not in prediction order
                label(due[k][1], due[k][2])
    return params, events, at, sample


def _sample(
    rng: np.random.Generator, i: int, pending: list[tuple[int, str | None, Any]], sent: list[str]
) -> list[ScoredRow]:
    """What ``set_reference`` is given at prediction ``i`` (fewer than a window at times:
    then nothing changes); some of its ids get labels later in the stream, a few are
    sent again."""
    sample: list[ScoredRow] = []
    for j in range(int(rng.choice([50, 150, 250]))):
        request = f"s{j}" if rng.random() < 0.9 else None
        p = rng.beta(0.6, 0.6)
        predicted = "yes" if p >= 0.5 else "no"
        sample.append((j, 1.5e9 + j, request, predicted, max(p, 1 - p), None, None))
        if rng.random() < 0.5:
            truth = "yes" if rng.random() < p else "no"
            sample.append((j, 1.5e9 + j, request, None, math.nan, None, truth))
        if request is not None and rng.random() < 0.3:
            pending.append((i + int(rng.integers(0, 200)), request, "yes"))
        if request is not None and rng.random() < 0.05:
            sent.append(request)
    return sample


def _cuts(start: int, stop: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    cuts, at = [], start
    while at < stop:
        roll = rng.random()
        size = 1 if roll < 0.2 else int(rng.integers(2, 80 if roll < 0.8 else 700))
        cuts.append((at, min(at + size, stop)))
        at += size
    return cuts


Outputs = tuple[list[Any], list[Any], list[Any]]


def _reloaded(est: Watched, eager: EagerMap, rng: np.random.Generator) -> Watched:
    """``est`` as after a restart: its state through JSON and ``load``; at random, as a
    checkpoint written when the map was dumped held it (the map, and the ids of a
    reference given by ``set_reference``)."""
    state = json.loads(json.dumps(est.dump()))
    if rng.random() < 0.5:
        state["ids"] = eager.as_checkpoints_held_it()
        ref = state["reference"]
        ref["ids"] = eager.requests[: len(ref["ids"])]
        eager.note("loaded with the map")
    loaded = Watched.load(state)
    assert isinstance(loaded, Watched)
    loaded.seen = est.seen
    eager.note("loaded")
    eager.check(loaded)
    return loaded


def feed(seed: int, cut_seed: int, reload: bool) -> tuple[Outputs, EagerMap]:
    """CBPE and the eager map fed a stream in random batches (checked after each);
    the findings, results and changes."""
    params, events, at, sample = make_stream(seed)
    rng = np.random.default_rng(cut_seed)
    est = Watched(**params)
    eager = EagerMap(WINDOW, params["reference"], params["realized_after"], params["max_classes"])
    found: list[Any] = []
    results: list[Any] = []
    changes: list[Any] = []
    stretches = [(0, len(events))] if at is None else [(0, at), (at, len(events))]
    for s, (begin, end) in enumerate(stretches):
        if s == 1:
            assert est.set_reference(sample) == eager.set_reference(sample)
            eager.check(est)
            if reload:  # before the fit: labels for the sample's ids come
                results += est.take_results()  # a restart loses what was not taken
                changes += est.take_changes()
                est = _reloaded(est, eager, rng)
        for start, stop in _cuts(begin, end, rng):
            part = events[start:stop]
            way = rng.random()
            if way < 0.5:
                found += est.observe_rows(part)
            elif way < 0.7:
                found += est.observe([Scored(*row) for row in part])
            else:
                found += est.observe_columns(ScoredColumns.of(part))
            eager.feed(part, gives_up=bool(est.unsupported))
            eager.check(est)
            if reload and rng.random() < 0.1:
                results += est.take_results()  # a restart loses what was not taken
                changes += est.take_changes()
                est = _reloaded(est, eager, rng)
    results += est.take_results()
    changes += est.take_changes()
    # A call's changes are its tests, then its state changes: in another order when taken
    # at other points; and a run of confirmations is one, the latest, per call.
    kept = sorted(repr(c) for c in changes if c.change != "confirmed")
    return (found, results, kept), eager


@pytest.mark.parametrize("seed", SEEDS)
def test_labels_land_where_the_eager_map_puts_them(seed: int) -> None:
    got, eager = feed(seed, cut_seed=100 + seed, reload=True)
    unloaded, _ = feed(seed, cut_seed=200 + seed, reload=False)
    assert got == unloaded
    assert sum(eager.landed.values()) > 0


def test_the_streams_take_every_path() -> None:
    landed: dict[str, int] = {}
    kinds = set()
    for seed in SEEDS:
        (_, results, _), eager = feed(seed, cut_seed=100 + seed, reload=True)
        for what, n in eager.landed.items():
            landed[what] = landed.get(what, 0) + n
        kinds |= {r.kind for r in results}
        if eager.gave_up:
            landed["given up"] = landed.get("given up", 0) + 1
    assert kinds == {"estimated", "realized"}
    assert set(landed) == {
        "reference before the fit",
        "window before the fit",
        "window after the fit",
        "id sent again",
        "set_reference",
        "loaded",
        "loaded with the map",
        "given up",
        "a label of another type",
    }


@pytest.mark.parametrize("held", [None, False, True])
def test_after_set_reference_the_reference_finds_no_label(held: bool | None) -> None:
    """The rows of a reference given by ``set_reference`` are not in the map: its ids
    find none of its rows, while the stream's do, before and after the fit; also after a
    checkpoint (``held``: one that held the map and the sample's ids; None: none)."""
    sample: list[ScoredRow] = []
    for j in range(150):
        predicted = "yes" if j % 3 else "no"
        sample.append((j, 1.5e9 + j, f"s{j}", predicted, 0.8, None, None))
    est = EstimatedPerformance(window=100, reference=300)
    assert est.set_reference(sample) == 150
    est.observe_rows([(j, 1.6e9 + j, f"r{j}", "yes", 0.9, None, None) for j in range(20)])
    if held is not None:
        state = json.loads(json.dumps(est.dump()))
        if held:
            state["ids"] = {f"r{j}": [0, j] for j in range(20)}
            state["reference"]["ids"] = [f"s{j}" for j in range(150)]
        est = EstimatedPerformance.load(state)
    labels: list[ScoredRow] = [
        (99, 1.6e9 + 99, f"s{j}", None, math.nan, None, "no") for j in range(5)
    ]
    labels.append((99, 1.6e9 + 99, "r3", None, math.nan, None, "no"))
    est.observe_rows(labels)
    assert est.reference.truth.tolist() == [None] * 150
    assert est.windows[0].truth.tolist() == [None] * 3 + ["no"] + [None] * 16
    # On through the fit (the reference forgotten) to the next window: ids all new.
    more: list[ScoredRow] = [
        (j, 1.6e9 + j, f"r{j}", "yes" if j % 2 else "no", 0.9, None, None) for j in range(20, 150)
    ]
    est.observe_rows([*more, (150, 1.6e9 + 150, "r120", None, math.nan, None, "yes")])
    assert est.calibration is not None and est.reference.truth.tolist() == []
    assert est.windows[1].truth.tolist() == [None] * 20 + ["yes"] + [None] * 29


def test_a_checkpoint_that_held_the_map_finds_the_references_rows() -> None:
    """Where the map pointed into the reference (one not given by ``set_reference``),
    its ids find its rows after the checkpoint."""
    rows: list[ScoredRow] = [(j, 1.6e9 + j, f"r{j}", "yes", 0.9, None, None) for j in range(150)]
    est = EstimatedPerformance(window=100, reference=300)
    est.observe_rows(rows)
    state = json.loads(json.dumps(est.dump()))
    state["ids"] = {f"r{j}": [-1, j] for j in range(150)}
    est = EstimatedPerformance.load(state)
    est.observe_rows([(150, 1.6e9 + 150, "r7", None, math.nan, None, "no")])
    assert est.reference.truth.tolist() == [None] * 7 + ["no"] + [None] * 142


@pytest.mark.parametrize(
    "ids",
    [
        [],
        [""],
        [None],
        ["a", None, "", "é\U0001f600", None],
        [f"req-{i}" for i in range(2000)],
    ],
)
def test_packed_ids_unpack_to_the_same_ids(ids: list[str | None]) -> None:
    rows = Rows(ids=list(ids))
    rows.seal()
    assert rows.kept_ids() == ids and rows.id_count() == len(ids)
    assert (rows.packed is not None) == bool(ids) and (not ids or rows.ids == [])


def test_an_id_holding_the_separator_stays_a_list() -> None:
    ids: list[str | None] = ["a\x00b", "c"]
    rows = Rows(ids=list(ids))
    rows.seal()
    assert rows.packed is None and rows.ids == ids


@pytest.mark.parametrize("seed", range(8))
def test_ids_added_by_batches_and_one_by_one_read_back(seed: int) -> None:
    """Rows hold the ids added in batches and one by one (appended, then ``settle``),
    packed by batches, with (odd seeds) ids holding the separator among them; read by
    any range, sealed, dumped through JSON and loaded, or let go: the ids of a list."""
    rng = np.random.default_rng(seed)
    rows = Rows()
    plain: list[str | None] = []
    for _ in range(int(rng.integers(20, 120))):
        n = int(rng.integers(0, 60))
        ids = [
            None
            if rng.random() < 0.1
            else ("a\x00b" if seed % 2 and rng.random() < 0.002 else f"r{len(plain) + k}")
            for k in range(n)
        ]
        if rng.random() < 0.5:
            rows.add_ids(tuple(ids) if rng.random() < 0.5 else ids)
        else:
            rows.ids.extend(ids)  # as predictions taken one by one append them
            rows.settle()
        plain += ids
        if "a\x00b" not in plain:
            assert len(rows.ids) < 256  # the rest packed
        assert rows.id_count() == len(plain)
        for _ in range(5):
            start, stop = sorted(int(x) for x in rng.integers(0, len(plain) + 1, 2))
            assert rows.kept_ids(start, stop) == plain[start:stop]
    assert rows.kept_ids() == plain and len(rows.chunks) <= 17
    rows.predicted = ["yes"] * len(plain)
    rows.truth.pad(len(plain))
    rows.score = array("d", [0.5] * len(plain))
    loaded = Rows.load(json.loads(json.dumps(rows.dump())))
    assert loaded.kept_ids() == plain and loaded.dump() == rows.dump()
    rows.seal()
    assert rows.kept_ids() == plain
    assert (rows.packed is not None) == (bool(plain) and "a\x00b" not in plain)
    rows.forget_ids()
    assert rows.kept_ids() == [None] * len(plain) and rows.chunks == []


def test_closed_windows_keep_their_ids_packed() -> None:
    est = EstimatedPerformance(window=WINDOW, reference=2 * WINDOW)
    rng = np.random.default_rng(0)
    rows: list[ScoredRow] = []
    for i in range(2 * WINDOW + 3 * WINDOW + 10):
        score = float(rng.random())
        label = "yes" if score > 0.5 else "no"
        label = label[:1] + label[1:]  # a string object of its own, as parsing makes
        rows.append((i, 1.7e9 + i, f"r{i}", label, score, None, None))
    est.observe_rows(rows)
    *closed, still_open = est.windows
    assert closed and all(w.packed is not None and w.ids == [] for w in closed)
    # Classes parsed one by one (a string each) are shared once the window closes.
    assert all(len({id(c) for c in w.predicted}) <= 2 for w in closed)
    assert still_open.kept_ids() == [r[2] for r in rows[-10:]] and still_open.id_count() == 10
    again = EstimatedPerformance.load(json.loads(json.dumps(est.dump())))
    assert [w.kept_ids() for w in again.windows] == [w.kept_ids() for w in est.windows]
    assert all(w.packed is not None for w in again.windows[:-1])


def test_without_labels_no_id_is_mapped_until_one_comes() -> None:
    """The map costs nothing while no label comes (most streams): the first label maps
    the kept predictions' ids, and joins the one it names."""
    est = EstimatedPerformance(window=WINDOW, reference=2 * WINDOW)
    rng = np.random.default_rng(1)
    rows: list[ScoredRow] = []
    for i in range(2 * WINDOW + 4 * WINDOW):
        score = float(rng.random())
        rows.append((i, 1.7e9 + i, f"r{i}", "yes" if score > 0.5 else "no", score, None, None))
    est.observe_rows(rows)
    assert est.ids == {}
    last = len(rows) - 1
    est.observe_rows([(last + 1, 1.7e9 + last + 1, f"r{last}", None, math.nan, None, "yes")])
    kept = sum(w.id_count() for w in est.windows)
    assert len(est.ids) == kept and est.ids[f"r{last}"] == last
    assert est.windows[-1].truth[-1] == "yes"
