"""Parse CONTRACT §1 event records into typed events.

Every malformation becomes a ``Malformed`` with a reason; nothing raises. orjson
is the fast path; the standard library parses what orjson refuses only to let
NaN and Infinity through, since those are data (a missing/invalid value), not
errors. Producers are hostile by assumption, so what the record says is bounded
here, before it reaches memory, the store or a clock:

- text must be valid Unicode: bytes that are not UTF-8, and escapes of lone
  surrogates (``"\\ud800"``, which JSON allows and no encoder can write back),
  quarantine the record with that reason; nothing is repaired silently;
- names (feature, category, client, request id, metric, model) are at most
  ``MAX_NAME_CHARS`` characters;
- event time lies within ``TimeBounds``: a record dated decades ago or a year
  ahead is quarantined instead of moving any clock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import orjson

EVENT_TYPES = ("prediction", "input", "label", "metric")
Scalar = str | int | float | bool
# Exact types, looked up in a set: the decoders return plain builtins, and a set
# lookup per feature value is several times cheaper than isinstance on a union.
FEATURE_TYPES = frozenset({str, int, float, bool, type(None)})
_NUMBER_TYPES = frozenset({int, float})
_INT_LIMIT = 2**63
# Feature values the fast paths take as they are; an integer too, once its range is checked.
_PLAIN_FEATURE_TYPES = frozenset({str, float, bool, type(None)})
# The fields of the usual prediction or input (``parse_record``'s first pass).
_USUAL_FIELDS = frozenset(
    {"type", "model", "ts", "id", "client", "version", "features", "prediction", "score"}
)
_loads = orjson.loads
# isinstance(value, str), callable from C (``filter``); the decoders make no str subclass.
is_text = str.__instancecheck__
# ``parse_checked`` without a record decoded already (None is a record: JSON null).
_NOT_DECODED = object()
# Names longer than this are not names but payloads: the record is quarantined.
MAX_NAME_CHARS = 1024


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """The event times accepted, in epoch seconds, both ends included, and the zone
    of a time written without one (``[events] default_time_zone``; None refuses it)."""

    earliest: float
    latest: float
    default_zone: tzinfo | None = None

    def describe(self) -> str:
        return f"{_iso(self.earliest)} .. {_iso(self.latest)}"


# What a datetime can represent (years 1 to 9999): the widest bounds there are.
ANY_TIME = TimeBounds(-62_135_596_800.0, 253_402_300_799.0)


# Not frozen: a frozen dataclass's __init__ costs microseconds per event on the hot path.
@dataclass(slots=True)
class Event:
    type: str
    model: str
    ts: float
    id: str | None = None
    client: str | None = None
    version: str | None = None
    features: dict[str, Scalar | None] | None = None
    prediction: Scalar | None = None
    score: float | None = None
    probabilities: dict[str, float] | None = None
    label: Scalar | None = None
    name: str | None = None
    value: float | None = None
    # Top-level fields CONTRACT §1 does not name (``y_pred`` for ``prediction``):
    # ignored by the detectors, counted by the pipeline.
    unknown: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


class _Invalid(Exception):
    pass


# The usual prediction or input, already checked, as a plain tuple rather than an
# ``Event``: the pipeline buffers these and transposes them into columns in C, so
# the hot path makes no object of its own per event. Fields by position:
# model, ts, id, client, features, prediction, score, type, version.
Row = tuple[
    str,
    float,
    str | None,
    str | None,
    dict[str, Scalar | None] | None,
    Scalar | None,
    float | None,
    str,
    str | None,
]


def parse_record(
    raw: bytes | str, default_ts: float | None = None, bounds: TimeBounds = ANY_TIME
) -> Row | Event | Malformed:
    """One record value to a ``Row`` (the usual prediction or input), an ``Event``
    (anything else that is valid), or a ``Malformed`` saying why not.

    Both accepted forms have passed the same checks as ``parse_event``; a ``Row``
    is what ``parse_event`` would give, without the object (``row_event`` makes it).
    """
    # The usual prediction or input, checked in one pass of exact-type tests without
    # a function call per step: it takes only what ``parse_checked`` takes unchanged
    # (a float time within the bounds or none, string ids, a float score, plain
    # feature values, no name longer than a name may be, no field beyond these);
    # anything else, valid or not, goes ``parse_checked``, which names what is wrong.
    try:
        obj = _loads(raw)
    except Exception:  # NaN, text that is not Unicode, anything: the checks say which
        return parse_checked(raw, default_ts, bounds)
    return parse_decoded(raw, obj, default_ts, bounds)


def parse_decoded(
    raw: bytes | str, obj: Any, default_ts: float | None, bounds: TimeBounds
) -> Row | Event | Malformed:
    """``parse_record`` of a record orjson has decoded already into ``obj``."""
    if type(obj) is not dict or not obj.keys() <= _USUAL_FIELDS:
        return parse_checked(raw, default_ts, bounds, obj)  # labels, metrics, ...
    get = obj.get
    model, etype, ts = get("model"), get("type", "prediction"), get("ts")
    ident, client, version = get("id"), get("client"), get("version")
    features, prediction, score = get("features"), get("prediction"), get("score")
    if ts is None:
        ts = default_ts
    if not (
        type(model) is str
        and model
        and (etype == "prediction" or etype == "input")
        and type(ts) is float
        and bounds.earliest <= ts <= bounds.latest  # NaN and infinities fail it
        and (ident is None or type(ident) is str)
        and (client is None or type(client) is str)
        and (version is None or type(version) is str)
        and (score is None or type(score) is float)
        and (prediction is None or type(prediction) in FEATURE_TYPES)
        and (features is None or (type(features) is dict and _plain_values(features)))
    ):
        return parse_checked(raw, default_ts, bounds, obj)
    # Every character takes a byte at least: no name in a record this short is too long.
    if len(raw) > MAX_NAME_CHARS and _texts_too_long(
        model, features, ident, client, version, prediction
    ):
        return parse_checked(raw, default_ts, bounds, obj)
    return (model, ts, ident, client, features, prediction, score, etype, version)


def unchecked_usual_row(obj: Any, default_ts: float, models: Container[str]) -> Row | None:
    """The row a decoded record makes if it is a prediction or input of one of ``models``
    with only the usual fields, its values not checked yet (``make_run`` checks them by
    column); None for any other record."""
    if type(obj) is not dict or not obj.keys() <= _USUAL_FIELDS:
        return None
    get = obj.get
    model, etype = get("model"), get("type", "prediction")
    if type(model) is not str or model not in models:
        return None
    if etype != "prediction" and etype != "input":
        return None
    ts = get("ts")
    return (
        model,
        default_ts if ts is None else ts,
        get("id"),
        get("client"),
        get("features"),
        get("prediction"),
        get("score"),
        etype,
        get("version"),
    )


def parse_checked(
    raw: bytes | str,
    default_ts: float | None = None,
    bounds: TimeBounds = ANY_TIME,
    decoded: Any = _NOT_DECODED,
) -> Row | Event | Malformed:
    """``parse_record`` field by field: each checked by its rule, naming what is wrong.
    The same results, for any record. ``decoded``: what orjson made of ``raw``, when
    the caller has it already."""
    try:
        obj = _decode(raw) if decoded is _NOT_DECODED else decoded
        # Every character takes at least one byte of the record (an escape more),
        # so no string in a record this short can be longer than a name may be.
        return _build(obj, default_ts, bounds, short=len(raw) <= MAX_NAME_CHARS)
    except _Invalid as exc:
        return Malformed(str(exc))
    except Exception as exc:  # a bad record never stops the stream
        return Malformed(f"unreadable record: {type(exc).__name__}: {exc}")


def parse_event(
    raw: bytes | str, default_ts: float | None = None, bounds: TimeBounds = ANY_TIME
) -> Event | Malformed:
    """One record value to an ``Event``, or a ``Malformed`` saying why not.

    ``default_ts`` is the event time used when the record has no ``ts``: the Kafka
    record timestamp, or in a file the previous event's time. An event time
    outside ``bounds`` makes the record malformed.
    """
    parsed = parse_record(raw, default_ts, bounds)
    return row_event(parsed) if type(parsed) is tuple else parsed  # type: ignore[return-value]


def row_event(row: Row) -> Event:
    """The ``Event`` a ``Row`` stands for."""
    model, ts, ident, client, features, prediction, score, etype, version = row
    return Event(etype, model, ts, ident, client, version, features, prediction, score)


def event_row(event: Event) -> Row:
    """A prediction or input ``Event`` as a ``Row`` (its other fields dropped)."""
    return (
        event.model,
        event.ts,
        event.id,
        event.client,
        event.features,
        event.prediction,
        event.score,
        event.type,
        event.version,
    )


def _decode(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as fast_error:
        # orjson refuses NaN and Infinity (data here) but also text that is not
        # Unicode; find out which, so the reason given is the true one.
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _Invalid(
                    f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}"
                ) from None
        else:
            text = raw
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise _Invalid(f"invalid JSON: {fast_error}") from None
        _require_unicode(obj)
        return obj


def _require_unicode(obj: Any) -> None:
    """Refuse strings holding lone surrogates, which JSON escapes can spell but
    which are not Unicode text: no store, log or terminal could take them."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        escaped = "".join(f"\\u{ord(c):04x}" for c in bad[:4])
        raise _Invalid(
            f"a string holds a lone surrogate ({escaped}), which is not valid Unicode"
        ) from None
    except (ValueError, RecursionError):
        raise _Invalid("the record nests too deeply to check") from None


def _build(
    obj: Any, default_ts: float | None, bounds: TimeBounds, short: bool = False
) -> Row | Event:
    if not isinstance(obj, dict):
        raise _Invalid(f"not a JSON object but {_kind(obj)}")
    model = obj.get("model")
    if model is None:
        raise _Invalid("missing 'model'")
    if not isinstance(model, str) or not model:
        raise _Invalid(f"'model' must be a non-empty string, got {_kind(model)}")
    if len(model) > MAX_NAME_CHARS:
        raise _Invalid(f"'model' is longer than {MAX_NAME_CHARS} characters")
    etype = obj.get("type", "prediction")
    if etype not in EVENT_TYPES:
        raise _Invalid(f"'type' must be one of {', '.join(EVENT_TYPES)}, got {etype!r:.60}")
    ts = _event_time(obj.get("ts"), default_ts, bounds)
    if etype == "prediction" or etype == "input":
        row = _common_prediction(obj, etype, model, ts, short)
        if row is not None:
            return row
    return _check_by_keys(obj, etype, model, ts)


def _check_by_keys(obj: dict[str, Any], etype: str, model: str, ts: float) -> Event:
    """Every optional field checked and converted by its own rule, naming what is wrong."""
    event = Event(etype, model, ts)
    # Walk the keys the record has rather than asking for every optional one:
    # a prediction carries about half of them.
    for key, value in obj.items():
        try:
            check = _OPTIONAL_FIELDS[key]
        except KeyError:  # rare: a field the contract does not name
            if event.unknown is None:
                event.unknown = []
            event.unknown.append(key)
            continue
        if check is not None and value is not None:
            setattr(event, key, check(key, value))
    if etype == "metric":
        if not event.name:
            raise _Invalid("a metric event needs a non-empty string 'name'")
        if event.value is None:
            raise _Invalid("a metric event needs a numeric 'value'")
    elif etype == "label":
        if event.id is None:
            raise _Invalid("a label event needs the 'id' of its prediction")
        if event.label is None:
            raise _Invalid("a label event needs a 'label'")
    return event


def _common_prediction(
    obj: dict[str, Any], etype: str, model: str, ts: float, short: bool
) -> Row | None:
    """The usual prediction, accepted in a few exact-type tests, or None for the full check.

    Takes only what the full path would take unchanged (string ids, a float score,
    plain feature values), so both give the same event; anything else, valid or not,
    goes the full way, which also names what is wrong.
    """
    if not obj.keys() <= _OPTIONAL_FIELDS.keys():
        return None  # a field the contract does not name: counted on the full path
    get = obj.get
    ident, client, version = get("id"), get("client"), get("version")
    features, prediction, score = get("features"), get("prediction"), get("score")
    if not (
        (ident is None or type(ident) is str)
        and (client is None or type(client) is str)
        and (version is None or type(version) is str)
        and (score is None or type(score) is float)
        and (prediction is None or type(prediction) in FEATURE_TYPES)
        and get("probabilities") is None
        and get("label") is None
        and get("name") is None
        and get("value") is None
    ):
        return None
    if features is not None:
        if type(features) is not dict or not _plain_values(features):
            return None
        if not short and features and _names_too_long(features):
            return None
    if not short:
        texts = (ident, client, version, prediction)
        if max(len(t) if type(t) is str else 0 for t in texts) > MAX_NAME_CHARS:
            return None
    return (model, ts, ident, client, features, prediction, score, etype, version)


def _plain_values(features: dict[str, Any]) -> bool:
    """Whether every feature value is one the full check takes unchanged: a float, a
    label, a bool, None, or an integer within ``_INT_LIMIT``."""
    types = set(map(type, features.values()))
    return types <= _PLAIN_FEATURE_TYPES or (types <= FEATURE_TYPES and _ints_fit(features))


def _texts_too_long(model: str, features: dict[str, Any] | None, *texts: object) -> bool:
    """Whether the model's name, a feature's name or label, or one of ``texts`` (ids,
    version, a predicted label) is longer than ``MAX_NAME_CHARS``."""
    if len(model) > MAX_NAME_CHARS or (features and _names_too_long(features)):
        return True
    return max(len(t) if type(t) is str else 0 for t in texts) > MAX_NAME_CHARS


def _names_too_long(features: dict[str, Any]) -> bool:
    if max(map(len, features)) > MAX_NAME_CHARS:
        return True
    # In C, without a Python step per value: wide records (a hundred features) are common.
    return max(map(len, filter(is_text, features.values())), default=0) > MAX_NAME_CHARS


def _event_time(value: Any, default_ts: float | None, bounds: TimeBounds) -> float:
    if value is None:
        if default_ts is None:
            raise _Invalid("no 'ts' and no record timestamp or earlier event to take it from")
        if not bounds.earliest <= default_ts <= bounds.latest:
            raise _Invalid(
                f"no 'ts', and the record timestamp {default_ts!r:.30} is outside the accepted "
                f"event times ({bounds.describe()})"
            )
        return default_ts
    if type(value) in _NUMBER_TYPES:
        try:
            ts = float(value)
        except OverflowError:
            raise _Invalid("'ts' is a number too large to be a time") from None
    elif isinstance(value, str):
        ts = _rfc3339(value, bounds.default_zone)
    else:
        raise _Invalid(f"'ts' must be an RFC 3339 string or epoch seconds, got {_kind(value)}")
    if not math.isfinite(ts):
        raise _Invalid("'ts' is not a finite number")
    if not bounds.earliest <= ts <= bounds.latest:
        raise _Invalid(
            f"'ts' {value!r:.40} is outside the accepted event times ({bounds.describe()})"
        )
    return ts


def rfc3339_seconds(text: str, default_zone: tzinfo | None = None) -> float:
    """An RFC 3339 time with a zone, in epoch seconds; ValueError saying why not.

    A time without a zone (``2018-01-01 00:00:00.000``, as datasets write them)
    is read in ``default_zone``, and refused when there is none.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"is not an RFC 3339 time: {text!r:.60}") from None
    if parsed.tzinfo is None:
        if default_zone is None:
            raise ValueError(
                f"has no time zone (add Z or an offset, or set [events] default_time_zone): "
                f"{text!r:.60}"
            )
        parsed = parsed.replace(tzinfo=default_zone)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError, OSError):
        raise ValueError(f"is outside the times a clock can show: {text!r:.60}") from None


def _rfc3339(value: str, default_zone: tzinfo | None) -> float:
    try:
        return rfc3339_seconds(value, default_zone)
    except ValueError as exc:
        raise _Invalid(f"'ts' {exc}") from None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _features(key: str, value: Any) -> dict[str, Scalar | None]:
    if not isinstance(value, dict):
        raise _Invalid(f"'{key}' must be an object, got {_kind(value)}")
    # One pass in C over the value types; the per-item loop runs only to name a culprit.
    types = set(map(type, value.values()))
    if not types <= FEATURE_TYPES or (int in types and not _ints_fit(value)):
        for name, item in value.items():
            if type(item) not in FEATURE_TYPES:
                raise _Invalid(
                    f"feature {name!r:.60} must be a number, string or bool, got {_kind(item)}"
                )
            if type(item) is int and not -_INT_LIMIT <= item <= _INT_LIMIT:
                raise _Invalid(f"feature {name!r:.60} is an integer too large to be a number")
    if value and max(map(len, value)) > MAX_NAME_CHARS:
        raise _Invalid(f"a feature name is longer than {MAX_NAME_CHARS} characters")
    if str in types and max(len(v) for v in value.values() if type(v) is str) > MAX_NAME_CHARS:
        raise _Invalid(f"a category is longer than {MAX_NAME_CHARS} characters")
    return value


def _ints_fit(features: dict[str, Any]) -> bool:
    ints = [v for v in features.values() if type(v) is int]
    return min(ints) >= -_INT_LIMIT and max(ints) <= _INT_LIMIT


def _probabilities(key: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise _Invalid(f"'{key}' must be an object, got {_kind(value)}")
    for name, item in value.items():
        if type(item) not in _NUMBER_TYPES:
            raise _Invalid(f"probability of {name!r:.60} must be a number, got {_kind(item)}")
        if len(name) > MAX_NAME_CHARS:
            raise _Invalid(f"a class name is longer than {MAX_NAME_CHARS} characters")
    return value


def _number(key: str, value: Any) -> float:
    if type(value) not in _NUMBER_TYPES:
        raise _Invalid(f"'{key}' must be a number, got {_kind(value)}")
    try:
        return float(value)
    except OverflowError:
        raise _Invalid(f"'{key}' is a number too large to represent") from None


def _scalar(key: str, value: Any) -> Scalar:
    if type(value) not in FEATURE_TYPES:
        raise _Invalid(f"'{key}' must be a string, number or bool, got {_kind(value)}")
    if type(value) is str:
        return _bounded(key, value)
    return value  # type: ignore[no-any-return]


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"'{key}' must be a string, got {_kind(value)}")
    return _bounded(key, value)


def _identifier(key: str, value: Any) -> str:
    """Identifiers may be written as strings or integers, both becoming strings; an
    integral float (``3.0``: pandas writes integer ids with gaps so) is its integer."""
    if type(value) is str:
        return _bounded(key, value)
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        raise _Invalid(f"'{key}' must be a string, got {_kind(value)}")
    if not -_INT_LIMIT <= value <= _INT_LIMIT:
        raise _Invalid(f"'{key}' is an integer too large to be an identifier")
    return str(value)


def _bounded(key: str, value: str) -> str:
    if len(value) > MAX_NAME_CHARS:
        raise _Invalid(f"'{key}' is longer than {MAX_NAME_CHARS} characters")
    return value


# The optional fields of CONTRACT §1 and how each is checked; absent or null means
# unset. The required ones map to None: already read.
_OPTIONAL_FIELDS: dict[str, Callable[[str, Any], Any] | None] = {
    "type": None,
    "model": None,
    "ts": None,
    "id": _identifier,
    "client": _identifier,
    "version": _identifier,
    "features": _features,
    "prediction": _scalar,
    "score": _number,
    "probabilities": _probabilities,
    "label": _scalar,
    "name": _string,
    "value": _number,
}


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "bool", int: "integer"}
    names.update({float: "number", type(None): "null"})
    return names.get(type(value), type(value).__name__)
