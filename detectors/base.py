"""The types shared by every detector and by the service that drives them."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import numpy as np

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """One detection: a signal of one model broke with its baseline.

    ``details`` holds plain JSON-able data only (str, int, float, bool, None,
    lists and dicts of those): window sizes, reference summary, onset estimate.
    """

    detector: str
    signal: str
    event_ts: float
    severity: Severity
    statistic: float
    threshold: float | None = None
    p_value: float | None = None
    effect_size: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


SignalChangeKind = Literal["fired", "escalated", "confirmed", "resolved", "tested"]


@dataclass(frozen=True)
class SignalChange:
    """What became of a signal at one evaluation.

    - ``fired``, ``escalated``: it started firing, or broke worse than before
      (each comes with an alert: a finding);
    - ``confirmed``: a firing signal broke with its baseline again; it stays
      firing and no alert is raised;
    - ``resolved``: a firing signal tested within its baseline long enough
      (``recover_windows`` windows) and is ``ok`` again;
    - ``tested``: one evaluation of a windowed test, with its statistic: the
      signal's history. ``firing`` says whether it fires after this window's
      test; a resolution, if due, follows as its own change.

    ``signal`` is the detectors' own name (``feature:amount``, ``metric:qps``).
    """

    change: SignalChangeKind
    detector: str
    signal: str
    event_ts: float
    severity: Severity = "info"
    firing: bool = False
    statistic: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    effect_size: float | None = None


@dataclass
class RowBatch:
    """Consecutive prediction/input events of one model, in stream order, as columns.

    Every array has one entry per event (length ``n``).

    - ``ts``: event times, epoch seconds (float64).
    - ``numeric``: feature name -> float64 values; NaN where the event lacks the
      feature or its value is NaN/inf (both count as missing/invalid).
    - ``categorical``: feature name -> object array of str; None where missing.
      Booleans arrive as "true"/"false".
    - ``score``: float64, NaN where the event has no score.
    - ``prediction``: object array of class labels as str, None where absent or
      where the prediction is a number (that goes in ``prediction_value``).
    - ``prediction_value``: float64 regression outputs, NaN where absent.
    - ``client``: object array of caller identities as str, None where absent.
    - ``ids``: object array of request ids as str, None where absent; with
      ``seq`` it lets later labels find their prediction.
    - ``seq``: int64 positions of the events in the model's stream (labels
      included), increasing.

    - ``has_features``: bool, False for events that carried no ``features``
      object at all (a prediction logged apart from its inputs); those events
      say nothing about feature values and never count as missing. None means
      every event carried features.

    A feature the suite has seen before but that is absent from ``numeric`` and
    ``categorical`` here is missing in every event whose ``has_features`` is True.
    """

    ts: np.ndarray
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, np.ndarray] = field(default_factory=dict)
    score: np.ndarray | None = None
    prediction: np.ndarray | None = None
    prediction_value: np.ndarray | None = None
    client: np.ndarray | None = None
    has_features: np.ndarray | None = None
    ids: np.ndarray | None = None
    seq: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ts.shape[0])


# Parameters renamed since states were first saved: earlier name -> current name.
RENAMED_PARAMS = {"arl_events": "false_alarm_events"}


class DetectorBase:
    """The base of every detector: its parameters are its constructor's arguments.

    As River's ``base.Base``: :meth:`params` reads each argument of
    ``__init__`` back from the attribute of the same name, so a detector is
    saved, and rebuilt with ``type(d)(**d.params())``, without a hand-written
    list. A subclass stores every constructor argument under its own name.
    """

    name: ClassVar[str] = ""

    @classmethod
    def build(cls, **kwargs: Any) -> Self:
        """``cls(**kwargs)``, taking parameters under their earlier names too
        (:data:`RENAMED_PARAMS`), as saved states and configs may hold them."""
        own = _param_names(cls)
        for old, new in RENAMED_PARAMS.items():
            if old in kwargs and new in own:
                if new in kwargs:
                    raise TypeError(f"got {old!r} and {new!r}, two names of one argument")
                kwargs[new] = kwargs.pop(old)
        return cls(**kwargs)

    def params(self) -> dict[str, Any]:
        """Constructor arguments by name, as stored on the detector.

        Keys come in the order the class hierarchy declares them: a base
        class's arguments first, then each subclass's own in signature order
        (the order of the keys of saved states).
        """
        return {key: getattr(self, key) for key in _param_names(type(self))}

    def dump(self) -> dict[str, Any]:
        """The state as plain JSON-able data; here only the parameters."""
        return {"params": self.params()}

    @classmethod
    def load(cls, state: dict[str, Any]) -> Self:
        """Rebuild from :meth:`dump` output."""
        return cls.build(**state["params"])


_PARAM_NAMES: dict[type, tuple[str, ...]] = {}


def _param_names(cls: type) -> tuple[str, ...]:
    """The constructor arguments of ``cls`` in declaration order (computed once per class)."""
    names = _PARAM_NAMES.get(cls)
    if names is not None:
        return names
    own = inspect.signature(cls).parameters
    for p in own.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{cls.__name__}.__init__ takes *{p.name}: parameters must be named")
    order: list[str] = []
    for klass in reversed(cls.__mro__):
        init = vars(klass).get("__init__")
        if klass is object or init is None:
            continue
        for key in inspect.signature(init).parameters:
            if key in own and key not in order:
                order.append(key)
    names = _PARAM_NAMES[cls] = tuple(order)
    return names
