"""``driftwarden report``: one self-contained HTML file per store (CONTRACT §2).

No scripts, fonts or images from anywhere: CSS is inline and the plots are
inline SVG, so the file opens offline and can be attached to a ticket. A
Content-Security-Policy forbids every load and every script, so even text
that escaped ``html.escape`` by mistake could not act.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from html import escape
from pathlib import Path
from typing import Any

import orjson

from monitor.cli.timefmt import clock, iso
from monitor.config import Config, load_config
from monitor.errors import DriftwardenError
from monitor.report.data import (
    AlertRow,
    IncidentRow,
    ReportData,
    config_in_force,
    load_report,
    shown_range,
    window_starts,
)
from monitor.report.history import SignalHistory, split_signal
from monitor.report.performance_plot import CSS as PERFORMANCE_CSS
from monitor.report.performance_plot import performance_section
from monitor.report.plots import CSS, cdf_svg, fmt_number, shares_svg
from monitor.report.reproduce import reproduce
from monitor.report.timeline import ChangeMark, LinePoint, Timeline, TimelinePoint, timeline_svg

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
MIN_LOG_P = 300.0  # -log10 of the smallest p-value drawn: p = 0 is drawn at 1e-300


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the ``report`` command to the top-level subparsers."""
    report = commands.add_parser("report", help="a self-contained HTML report of incidents")
    report.add_argument("--store", help="the SQLite store (default: the config's store.path)")
    report.add_argument("--out", required=True, help="the HTML file to write")
    report.add_argument("--incident", type=int, metavar="N", help="only incident N")
    report.add_argument("--config", help="the config the store was written with")
    report.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else None
    if args.store:
        store = Path(args.store)
    elif config is not None:
        store = Path(config.store.path)
    else:
        raise DriftwardenError("say which store: give --store DB or --config FILE")
    data = load_report(store, args.incident)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise DriftwardenError(f"cannot write {out}: folder {out.parent} does not exist")
    try:
        out.write_text(render(data, args.config, config), encoding="utf-8")
    except OSError as exc:
        raise DriftwardenError(f"cannot write {out}: {exc.strerror}") from None
    print(f"wrote {out} with {len(data.incidents)} incident(s)")
    return 0


def render(data: ReportData, config_path: str | None = None, config: Config | None = None) -> str:
    """The whole HTML document."""
    nav = "".join(
        f'<li><a href="#incident-{i.id}">#{i.id}</a> {_badge(i.severity)} {escape(i.title)}</li>'
        for i in data.incidents
    )
    sections = "".join(_incident(i, data, config_path, config) for i in data.incidents)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Driftwarden report: {escape(data.store.name)}</title>"
        f"<style>{CSS}{PERFORMANCE_CSS}</style>"
        "</head><body><header><h1>Driftwarden incident report</h1>"
        f"<p>Store <code>{escape(str(data.store))}</code>: {len(data.incidents)} incident(s). "
        "Times are event times in UTC.</p>"
        f'<ol class="toc">{nav}</ol></header>{sections}</body></html>\n'
    )


def _badge(severity: str) -> str:
    return f'<span class="badge sev-{escape(severity)}">{escape(severity)}</span>'


def _incident(
    incident: IncidentRow, data: ReportData, config_path: str | None, config: Config | None
) -> str:
    facts = (
        ("model", escape(incident.model)),
        ("kind", escape(incident.kind or "-")),
        ("status", escape(incident.status)),
        ("severity", _badge(incident.severity)),
        ("first alert", escape(iso(incident.first_event_ts))),
        ("last alert", escape(iso(incident.last_event_ts))),
        ("resolved (event time)", _resolved(incident)),
        ("alerts", str(incident.alert_count)),
        ("signals", ", ".join(f"<code>{escape(s)}</code>" for s in incident.signals)),
        ("firing now", _firing_now(incident)),
        ("key", f"<code>{escape(incident.key)}</code>"),
    )
    header = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    return (
        f'<section class="incident" id="incident-{incident.id}">'
        f"<h2>Incident #{incident.id}: {escape(incident.title)}</h2>"
        f'<table class="facts">{header}</table>'
        f"<h3>Timelines</h3>{_timelines(incident, data.reference_ends.get(incident.model))}"
        f"{_performance(incident)}"
        f"<h3>Reference against window</h3>{_distributions(incident)}"
        f"<h3>Statistics</h3>{_statistics(incident.alerts)}"
        f"<h3>Provenance</h3>{_provenance(incident, data, config_path)}"
        f"<h3>Reproduce</h3>{reproduce(incident, data, config_path, config)}"
        "</section>"
    )


def _performance(incident: IncidentRow) -> str:
    """Estimated beside realized performance, where the model's CBPE closed windows in
    the incident's span (or the incident is CBPE's own, to say why there are none)."""
    if not incident.performance and not any(s.startswith("cbpe:") for s in incident.signals):
        return ""
    return (
        "<h3>Performance, estimated and realized</h3>"
        f"{performance_section(incident.performance, incident.model, _x_range(incident))}"
    )


def _resolved(incident: IncidentRow) -> str:
    if incident.resolved_event_ts is None:
        return "-"
    return escape(iso(incident.resolved_event_ts))


def _firing_now(incident: IncidentRow) -> str:
    if not incident.firing:
        return "none: every signal is back within its baseline"
    names = ", ".join(f"<code>{escape(s)}</code>" for s in incident.firing)
    return f"{len(incident.firing)} of {len(incident.signals)}: {names}"


def _x_range(incident: IncidentRow) -> tuple[float, float]:
    shown = shown_range(incident)
    if shown is not None:
        return shown
    # Times beyond drawing (a hostile producer's): the alerts' own range, padded.
    lo = min([incident.first_event_ts, *window_starts(incident)])
    hi = incident.last_event_ts
    pad = max((hi - lo) * 0.05, 30.0)
    return lo - pad, hi + pad


def _is_p_test(alert: AlertRow) -> bool:
    return isinstance(alert.details.get("p_value"), int | float)


def _log_p(p: float | None) -> float | None:
    if p is None:
        return None
    return min(-math.log10(p), MIN_LOG_P) if p > 0 else MIN_LOG_P


def _timelines(incident: IncidentRow, reference_end: float | None) -> str:
    """One plot per (signal, detector), grouped by signal in the incident's order."""
    pairs: dict[str, dict[str, list[AlertRow]]] = {}
    for name in incident.signals:
        detector, signal = split_signal(name)
        pairs.setdefault(signal, {}).setdefault(detector, [])
    for a in incident.alerts:
        pairs.setdefault(a.signal, {}).setdefault(a.detector, []).append(a)
    x_range = _x_range(incident)
    out = []
    for signal, detectors in pairs.items():
        plots = [
            timeline_svg(
                _timeline(
                    signal,
                    detector,
                    alerts,
                    incident.history.get(f"{detector}:{signal}"),
                    x_range,
                    reference_end,
                )
            )
            for detector, alerts in detectors.items()
        ]
        out.append(f'<div class="signal"><h4>{escape(signal)}</h4>{"".join(plots)}</div>')
    if not incident.history:
        out.append(
            '<p class="note">This store keeps no signal history: the plots show the alerts '
            "only.</p>"
        )
    return "".join(out)


def _timeline(
    signal: str,
    detector: str,
    alerts: list[AlertRow],
    history: SignalHistory | None,
    x_range: tuple[float, float],
    reference_end: float | None,
) -> Timeline:
    tests = history.points if history is not None else []
    if tests:
        p_test = any(t.p_value is not None for t in tests)
    else:
        p_test = bool(alerts) and all(_is_p_test(a) for a in alerts)
    y_title = "−log10 p-value" if p_test else "statistic"
    # Callers are tested per window with a Bonferroni level, the rest under BH.
    cut = "Bonferroni level" if signal.startswith("client:") else "FDR cut-off"
    title = f"{detector} on {signal}" + (f" (p-value against its {cut})" if p_test else "")
    line = [
        LinePoint(t.ts, value, _log_p(t.threshold) if p_test else t.threshold)
        for t in tests
        if (value := (_log_p(t.p_value) if p_test else t.statistic)) is not None
    ]
    if history is not None and history.tested > len(tests):
        title += f" [{len(tests):,} of {history.tested:,} tests shown]"
    return Timeline(
        title=title,
        y_title=y_title,
        x_range=x_range,
        line=line,
        alerts=[_point(a, p_test) for a in alerts],
        firing=_firing_stretches(history, x_range) if history is not None else [],
        changes=[
            ChangeMark(c.ts, c.change, f"{c.change} ({c.severity}) at {iso(c.ts)}")
            for c in (history.changes if history is not None else [])
        ],
        reference_end=reference_end,
    )


def _firing_stretches(
    history: SignalHistory, x_range: tuple[float, float]
) -> list[tuple[float, float]]:
    """Where the signal fired: from each fired change to the resolved one after it."""
    out = []
    start = x_range[0] if history.firing_before else None
    for c in history.changes:
        if c.change == "resolved":
            if start is not None:
                out.append((start, c.ts))
            start = None
        elif start is None:
            start = c.ts
    if start is not None:
        out.append((start, x_range[1]))
    return out


def _point(alert: AlertRow, p_test: bool) -> TimelinePoint:
    d = alert.details
    threshold = _num(d.get("threshold"))
    if p_test:
        value = _log_p(_num(d.get("p_value"))) or 0.0
        threshold = _log_p(threshold)
    else:
        value = _num(d.get("statistic")) or 0.0
    start = _num(d.get("window_start_ts"))
    label = (
        f"alert #{alert.id} {alert.severity} at {iso(alert.event_ts)}: "
        f"statistic {_fmt(d.get('statistic'))}, p {_fmt(d.get('p_value'))}, "
        f"threshold {_fmt(d.get('threshold'))}"
    )
    return TimelinePoint(alert.event_ts, value, threshold, alert.severity, label, start)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _fmt(value: Any) -> str:
    number = _num(value)
    return "-" if number is None else fmt_number(number)


def _distributions(incident: IncidentRow) -> str:
    """Per signal, the drift alert with the largest effect: its reference and window."""
    best: dict[tuple[str, str], AlertRow] = {}
    for a in incident.alerts:
        d = a.details
        if not (
            _plain_list(d.get("reference_quantiles")) or _plain_list(d.get("reference_shares"))
        ):
            continue
        key = (a.signal, a.detector)
        held = best.get(key)
        if held is None or (_num(d.get("effect_size")) or 0) >= (
            _num(held.details.get("effect_size")) or 0
        ):
            best[key] = a
    plots = []
    for (signal, detector), a in best.items():
        d = a.details
        title = f"{signal}: window ending {clock(a.event_ts)} ({detector}, alert #{a.id})"
        if _plain_list(d.get("reference_quantiles")) and _plain_list(d.get("window_quantiles")):
            plots.append(
                cdf_svg(d["reference_quantiles"], d["window_quantiles"], title, f"a{a.id}")
            )
        elif _plain_list(d.get("window_shares")) and isinstance(d.get("share_labels"), list):
            labels = [str(x) for x in d["share_labels"]]
            plots.append(shares_svg(labels, d["reference_shares"], d["window_shares"], title))
    if not plots:
        return (
            '<p class="note">No alert of this incident carries distributions '
            "(ks and chi2 alerts do).</p>"
        )
    return f'<div class="plots">{"".join(plots)}</div>'


def _plain_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_num(v) is not None for v in value)


def _statistics(alerts: list[AlertRow]) -> str:
    head = "".join(
        f"<th>{c}</th>"
        for c in ("#", "event time", "detector", "signal", "severity", "statistic", "p-value",
                  "threshold", "effect size", "state")
    )  # fmt: skip
    rows = []
    for a in alerts:
        d = a.details
        cells = (
            str(a.id),
            escape(iso(a.event_ts)),
            escape(a.detector),
            f"<code>{escape(a.signal)}</code>",
            _badge(a.severity),
            _fmt(d.get("statistic")),
            _fmt(d.get("p_value")),
            _fmt(d.get("threshold")),
            _fmt(d.get("effect_size")),
            escape(str(d.get("state", "-"))),
        )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    raw = "\n".join(
        f"#{a.id}: {orjson.dumps(a.details, option=orjson.OPT_SORT_KEYS).decode()}" for a in alerts
    )
    return (
        f'<table class="stats"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
        f"</table><details><summary>Alert details as stored (JSON)</summary>"
        f"<pre>{escape(raw)}</pre></details>"
    )


def _provenance(incident: IncidentRow, data: ReportData, config_path: str | None) -> str:
    items = []
    load = config_in_force(data.config_loads, incident.opened_at)
    if load is not None:
        items.append(
            "Config in force (audit <code>config_load</code>): "
            f"<code>{escape(load.source)}</code>, "
            f"sha256 <code>{escape(load.sha256 or '-')}</code>, loaded {escape(iso(load.ts))}"
        )
    else:
        items.append("Config in force: the store's audit log records no daemon config load.")
    if config_path:
        digest = _file_sha256(Path(config_path))
        same = "" if load is None else (" (the same)" if digest == load.sha256 else " (differs)")
        items.append(
            f"Config given to this report: <code>{escape(config_path)}</code>, "
            f"sha256 <code>{escape(digest)}</code>{same}"
        )
    ref = data.references.get(incident.model)
    if ref is not None:
        items.append(
            f"Reference checksum of <code>{escape(ref.model)}</code> (sha256 of its stored "
            f"detector state, after {ref.events:,} events): <code>{ref.sha256}</code>"
        )
        if ref.baseline_sha256 is not None:
            items.append(
                f"Baseline checksum of <code>{escape(ref.model)}</code> (sha256 of the reference "
                f"samples stored apart from the state): <code>{ref.baseline_sha256}</code>"
            )
    else:
        items.append(f"No stored detector state for <code>{escape(incident.model)}</code>.")
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
