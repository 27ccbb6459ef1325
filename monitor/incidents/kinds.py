"""What kind of problem a signal speaks of, and an incident title that says it.

Kinds (CONTRACT §7): ``drift`` (the inputs: features, the multivariate test),
``output`` (score, prediction), ``performance`` (labels: the error stream,
realized and estimated performance, feedback), ``client`` (one caller) and
``metric`` (serving metrics). Incidents group by model and kind by default
(``alerting.group_by``), and a caller's problem is always its own incident.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["drift", "output", "performance", "client", "metric"]
KINDS: tuple[Kind, ...] = ("drift", "output", "performance", "client", "metric")
GROUP_LABELS = ("model", "kind", "detector", "signal")
OUTPUT_SIGNALS = ("score", "prediction", "prediction_value")
PERFORMANCE_PREFIXES = ("performance:", "estimated:", "feedback:")


def kind_of(signal: str) -> Kind:
    """The kind of a detector-side signal name (``feature:amount``, ``metric:qps``,
    ``client:key-17``, ``score``, ``error``, ...)."""
    if signal.startswith("client:"):
        return "client"
    if signal.startswith("metric:"):
        return "metric"
    if signal == "error" or signal.startswith(PERFORMANCE_PREFIXES):
        return "performance"
    if signal in OUTPUT_SIGNALS:
        return "output"
    return "drift"


def group_key(labels: dict[str, str], group_by: tuple[str, ...]) -> str:
    """The incident group of an alert: its values of the ``group_by`` labels, and
    for a caller's alert always the caller."""
    names = list(group_by)
    if labels["kind"] == "client" and "signal" not in names:
        names.append("signal")
    return "\x1f".join(f"{name}={labels[name]}" for name in names)


# Realized metrics that are errors: they worsen by rising.
ERROR_METRICS = frozenset({"mae", "rmse", "log_loss", "brier"})


def title(
    model: str, kind: Kind, detector: str, signal: str, metric_kind: str = "", direction: str = ""
) -> str:
    """What happened, in words: the first alert of an incident names it (``direction``:
    a feedback finding's, ``approve → decline``)."""
    if kind == "client":
        caller = signal.removeprefix("client:")
        if detector == "client_boundary":
            return f"{model}: caller {caller} probing the decision boundary"
        if detector == "client_volume":
            return f"{model}: caller {caller} taking a surge of the traffic"
        return f"{model}: caller {caller} behaving unlike the rest ({detector})"
    if kind == "metric":
        what = metric_kind.replace("_", " ") if metric_kind else "anomaly"
        return f"{model}: {what} in {signal} ({detector})"
    if kind == "performance":
        if signal == "error":
            return f"{model}: errors against labels changing ({detector})"
        if signal.startswith("feedback:"):
            where = signal.removeprefix("feedback:")
            way = f" ({direction})" if direction else ""
            return f"{model}: labels disagree in {where}{way}"
        if signal.startswith("estimated:"):
            metric = signal.removeprefix("estimated:").replace("_", " ")
            return f"{model}: estimated {metric} falling, without labels ({detector})"
        if signal.startswith("performance:"):
            metric, _, of_class = signal.removeprefix("performance:").partition(":")
            worse = "rising" if metric in ERROR_METRICS else "falling"
            what = metric.replace("_", " ") + (f" of class {of_class}" if of_class else "")
            return f"{model}: {what} against labels {worse} ({detector})"
        return f"{model}: {signal} changing ({detector})"
    if kind == "output":
        return f"{model}: {signal} shifting ({detector})"
    if signal == "features":
        return f"{model}: joint drift of the inputs ({detector})"
    return f"{model}: drift in {signal} ({detector})"
