"""Settings of one model's detector suite: every knob, each with a default."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from detectors import registry


def _names(field_name: str, value: Any, kinds: tuple[str, ...]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field_name} must be a list of detector names, got {value!r}")
    names = tuple(value)
    for name in names:
        spec = registry.get(name)
        if spec.kind not in kinds:
            raise ValueError(
                f"{field_name}: {name!r} is a {spec.kind} detector; use one of: "
                + ", ".join(n for n in registry.names() if registry.get(n).kind in kinds)
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{field_name} lists a detector twice: {names!r}; list each once")
    return names


@dataclass(frozen=True)
class SuiteSettings:
    """How one model's streams are tested.

    ``false_alarm_events`` is the one knob that matters: the expected number of
    events between false alarms for the model. It is shared as a rate (a
    detector granted a quarter of it may alarm falsely once in four times as
    many events). Half of it goes to the windowed
    tests (Benjamini-Hochberg over every signal of a window at level
    ``0.5 * window / false_alarm_events``; all of it when nothing else runs),
    half to the sequential detectors: the change detectors (split evenly
    between the streams they watch) and the per-feature evidence (split evenly
    between its charts) a quarter each when both run. The per-client tests get
    a tenth more. Metric series get the same budget counted in metric points.
    """

    window: int = 2000
    reference_size: int = 10_000
    false_alarm_events: float = 1e7
    detectors: tuple[str, ...] | None = None
    metric_detectors: tuple[str, ...] | None = None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    max_categories: int = 1000
    recover_windows: int = 3
    metric_recover_points: int = 120
    max_features: int = 500
    max_metric_series: int = 100
    estimated_window: int = 2000  # predictions per window of performance estimated without labels

    def __post_init__(self) -> None:
        if not isinstance(self.window, int) or self.window < 50:
            raise ValueError(f"window must be an integer >= 50, got {self.window!r}")
        if not isinstance(self.reference_size, int) or self.reference_size < 100:
            raise ValueError(
                f"reference_size must be an integer >= 100, got {self.reference_size!r}"
            )
        fa = self.false_alarm_events
        if not isinstance(fa, int | float) or not math.isfinite(fa) or fa < 10 * self.window:
            raise ValueError(
                f"false_alarm_events must be a number >= 10 * window, got {fa!r}; pass e.g. 1e7"
            )
        win_kinds = ("window", "change", "multivariate", "client", "sequential")
        object.__setattr__(self, "detectors", _names("detectors", self.detectors, win_kinds))
        metric_names = _names("metric_detectors", self.metric_detectors, ("change", "metric"))
        object.__setattr__(self, "metric_detectors", metric_names)
        if not isinstance(self.options, Mapping):
            raise ValueError(f"options must map detector names to argument tables, got {fa!r}")
        for name, kwargs in self.options.items():
            spec = registry.get(name)
            try:
                spec.factory(**dict(kwargs))
            except TypeError as exc:
                raise ValueError(f"options: bad arguments for {name!r}: {exc}") from None
        if not isinstance(self.max_categories, int) or self.max_categories < 2:
            raise ValueError(f"max_categories must be an integer >= 2, got {self.max_categories!r}")
        if not isinstance(self.recover_windows, int) or self.recover_windows < 1:
            raise ValueError(
                f"recover_windows must be an integer >= 1, got {self.recover_windows!r}"
            )
        if not isinstance(self.metric_recover_points, int) or self.metric_recover_points < 1:
            raise ValueError(
                f"metric_recover_points must be an integer >= 1, got {self.metric_recover_points!r}"
            )
        estimated = self.estimated_window
        if not isinstance(estimated, int) or isinstance(estimated, bool) or estimated < 100:
            raise ValueError(f"estimated_window must be an integer >= 100, got {estimated!r}")
        for name in ("max_features", "max_metric_series"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    @property
    def row_detectors(self) -> tuple[str, ...]:
        return self.detectors if self.detectors is not None else registry.DEFAULT_DETECTORS

    @property
    def series_detectors(self) -> tuple[str, ...]:
        if self.metric_detectors is not None:
            return self.metric_detectors
        return registry.DEFAULT_METRIC_DETECTORS

    def build(self, name: str) -> Any:
        """A detector built with its defaults overridden by ``options[name]``."""
        return registry.get(name).factory(**dict(self.options.get(name, {})))

    def dump(self) -> dict[str, Any]:
        data = asdict(self)
        data["detectors"] = None if self.detectors is None else list(self.detectors)
        data["metric_detectors"] = (
            None if self.metric_detectors is None else list(self.metric_detectors)
        )
        data["options"] = {k: dict(v) for k, v in self.options.items()}
        data["false_alarm_events"] = float(self.false_alarm_events)
        return data

    @classmethod
    def load(cls, state: dict[str, Any]) -> SuiteSettings:
        return cls(**state)
