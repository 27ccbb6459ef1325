"""A reference sample drawn from a JSONL file of events, of any size, in bounded memory.

The file is read once, line by line, with the replay's parser and checks. Each
model asked for keeps a seeded reservoir (Algorithm R) of at most its
``reference_size`` prediction/input events, so memory depends on the reference
size, never on the file: every usable event has the same chance to be in the
sample, and the same file always gives the same sample. An event keeps at most
``max_features`` feature names, the first ones the file shows (as a warm-up
admits them), and only what a reference is built from: features, score,
prediction, client and time, and for CBPE the request id, the probabilities
and the first label that comes (after its prediction) for each prediction in
the sample: a label whose prediction left the reservoir goes with it, so the
labels kept are bounded by the sample too. Lines that do not parse are
counted, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import random
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from detectors.base import RowBatch
from detectors.suite.caps import NameCap
from detectors.suite.settings import SuiteSettings
from monitor.errors import DriftwardenError
from monitor.ingest.batching import row_batch
from monitor.ingest.events import ANY_TIME, Event, Malformed, TimeBounds, parse_event

# A longer line is refused unread: no event is that large, and reading it whole
# would put the file's size, not the sample's, in memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024
REFERENCE_TYPES = ("prediction", "input")


@dataclass
class ModelSample:
    """One model's reservoir: at most ``size`` events, each one kept as compact JSON."""

    model: str
    size: int
    max_features: int
    rows_read: int = 0
    events: list[bytes] = field(default_factory=list)
    labels: dict[int, bytes] = field(default_factory=dict)  # slot in events: its label

    def __post_init__(self) -> None:
        seed = hashlib.sha256(f"reference:{self.model}".encode()).digest()
        self._rng = random.Random(int.from_bytes(seed[:8], "big"))
        self._features = NameCap(self.max_features)
        self._slots: dict[str, int] = {}  # request id of a prediction in the sample: its slot
        self._ids: dict[int, str] = {}

    def offer(self, event: Event) -> None:
        self.rows_read += 1
        if len(self.events) < self.size:
            self._keep(len(self.events), event)
            return
        slot = self._rng.randrange(self.rows_read)
        if slot < self.size:
            self._keep(slot, event)

    def offer_label(self, event: Event) -> None:
        """A label: kept if its prediction is in the sample and has none yet."""
        slot = None if event.id is None else self._slots.get(event.id)
        if slot is not None and slot not in self.labels:
            obj = {"type": "label", "model": event.model, "ts": event.ts, "id": event.id}
            obj["label"] = event.label
            self.labels[slot] = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()

    def _keep(self, slot: int, event: Event) -> None:
        line = self._compact(event)
        if slot == len(self.events):
            self.events.append(line)
        else:  # the event it replaces leaves with its label
            self.events[slot] = line
            self.labels.pop(slot, None)
            gone = self._ids.pop(slot, None)
            if gone is not None and self._slots.get(gone) == slot:
                del self._slots[gone]
        if event.type == "prediction" and event.id is not None:
            self._slots[event.id] = slot  # a later prediction with the id takes its labels
            self._ids[slot] = event.id

    def _compact(self, event: Event) -> bytes:
        obj: dict[str, object] = {"type": event.type, "model": event.model, "ts": event.ts}
        if event.features is not None:
            features = self._features
            obj["features"] = {k: v for k, v in event.features.items() if features.admit(k)}
        for key, value in (
            ("client", event.client),
            ("prediction", event.prediction),
            ("score", event.score),
            ("id", event.id),
            ("probabilities", event.probabilities),
        ):
            if value is not None:
                obj[key] = value
        # NaN and infinities are data; the parser reads them back (its slow path).
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()

    def packed(self) -> bytes:
        """The sample as the store keeps it: zlib-compressed JSON lines, the events, then
        their labels."""
        labels = [self.labels[slot] for slot in sorted(self.labels)]
        return zlib.compress(b"\n".join(self.events + labels))


@dataclass
class ReferenceFile:
    """What reading a reference file found."""

    path: Path
    sha256: str = ""
    lines: int = 0
    bad_lines: int = 0
    first_bad: str = ""  # "line N: reason" of the first bad line
    samples: dict[str, ModelSample] = field(default_factory=dict)

    def describe_bad_lines(self) -> str:
        if not self.bad_lines:
            return "no bad lines"
        return f"{self.bad_lines:,} bad line(s) skipped (first: {self.first_bad})"


def read_reference(
    path: Path, settings: Mapping[str, SuiteSettings], bounds: TimeBounds = ANY_TIME
) -> ReferenceFile:
    """Sample the prediction/input events of each model of ``settings`` from ``path``."""
    found = ReferenceFile(path)
    for name, s in settings.items():
        found.samples[name] = ModelSample(name, s.reference_size, s.max_features)
    digest = hashlib.sha256()
    last_ts: float | None = None
    try:
        handle: BinaryIO = path.open("rb")
    except FileNotFoundError:
        raise DriftwardenError(f"no such reference file: {path}") from None
    except OSError as exc:
        raise DriftwardenError(f"cannot read reference file {path}: {exc.strerror}") from None
    with handle:
        for line_no, line in enumerate(_lines(handle, digest), start=1):
            found.lines = line_no
            if line is None:
                _bad(found, line_no, f"longer than {MAX_LINE_BYTES:,} bytes")
                continue
            if not line.strip():
                continue
            parsed = parse_event(line.rstrip(b"\r\n"), last_ts, bounds)
            if isinstance(parsed, Malformed):
                _bad(found, line_no, parsed.reason)
                continue
            last_ts = parsed.ts
            sample = found.samples.get(parsed.model)
            if sample is not None and parsed.type in REFERENCE_TYPES:
                sample.offer(parsed)
            elif sample is not None and parsed.type == "label":
                sample.offer_label(parsed)
    found.sha256 = digest.hexdigest()
    return found


def _bad(found: ReferenceFile, line_no: int, reason: str) -> None:
    found.bad_lines += 1
    if not found.first_bad:
        found.first_bad = f"line {line_no}: {reason[:200]}"


def _lines(handle: BinaryIO, digest: hashlib._Hash) -> Iterator[bytes | None]:
    """The file's lines (None for one too long to read), hashing every byte on the way."""
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        digest.update(line)
        if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        while not line.endswith(b"\n"):  # skip the rest of the overlong line
            line = handle.readline(_CHUNK)
            if not line:
                break
            digest.update(line)
        yield None


def unpack(sample: bytes, categorical: frozenset[str] = frozenset()) -> RowBatch:
    """The rows of a stored sample (``ModelSample.packed``), parsed as any event is;
    ``categorical`` as ``models[].categorical``."""
    events = [e for e in unpack_events(sample) if e.type in REFERENCE_TYPES]
    return row_batch(events, as_categories=categorical)


def unpack_events(sample: bytes) -> list[Event]:
    """Every event of a stored sample, its labels last (samples stored before labels were
    kept have none)."""
    return [
        parsed
        for line in zlib.decompress(sample).split(b"\n")
        if line and isinstance(parsed := parse_event(line), Event)
    ]
