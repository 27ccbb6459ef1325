"""Operations endpoints: /healthz, /readyz and /metrics on 127.0.0.1 (or a configured host)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from monitor.daemon.store_figures import MAX_SIGNAL_SERIES, StoreFigures


class DaemonMetrics:
    """The daemon's Prometheus metrics, in a registry of their own so tests build theirs."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        store_path: str | None = None,
        models: Sequence[str] = (),
        max_signal_series: int = MAX_SIGNAL_SERIES,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        if store_path is not None:
            r.register(StoreFigures(store_path, models, max_signal_series))
        self.records = Counter(
            "driftwarden_records_consumed", "Records consumed, by model", ["model"], registry=r
        )
        self.quarantined = Counter(
            "driftwarden_records_quarantined", "Malformed records quarantined", registry=r
        )
        # This process's own count; driftwarden_alerts_total is the store's (StoreFigures).
        self.alerts = Counter(
            "driftwarden_alerts_written",
            "Alerts this process wrote since it started, by model",
            ["model"],
            registry=r,
        )
        self.lag = Gauge(
            "driftwarden_consumer_lag", "Records behind the end", ["topic", "partition"], registry=r
        )
        self.checkpoint_ts = Gauge(
            "driftwarden_last_checkpoint_timestamp_seconds",
            "When the last checkpoint landed",
            registry=r,
        )
        self.checkpoint_age = Gauge(
            "driftwarden_checkpoint_age_seconds", "Seconds since the last checkpoint", registry=r
        )
        self.checkpoint_age.set_function(self._checkpoint_age)
        self.outbox_depth = Gauge(
            "driftwarden_outbox_depth", "Notifications waiting for delivery", registry=r
        )
        self.broker_up = Gauge("driftwarden_broker_up", "1 while the broker answers", registry=r)
        self.latency = Histogram(
            "driftwarden_processing_seconds",
            "Processing time of one polled batch",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.features_dropped = Counter(
            "driftwarden_features_dropped",
            "Feature values dropped: names beyond [detection] max_features or new after the "
            "warm-up, by model",
            ["model"],
            registry=r,
        )
        self.metric_points_dropped = Counter(
            "driftwarden_metric_points_dropped",
            "Metric points of series beyond [detection] max_metric_series, by model",
            ["model"],
            registry=r,
        )
        self.unlisted_other = Counter(
            "driftwarden_unlisted_other_events",
            "Events of unlisted models beyond [limits] max_unlisted_models names, counted together",
            registry=r,
        )
        self.unknown_fields = Counter(
            "driftwarden_unknown_fields",
            "Events carrying a top-level field the event format does not name, by field "
            '(at most 100 names, the rest as "(other fields)")',
            ["field"],
            registry=r,
        )
        self.quarantine_truncated = Counter(
            "driftwarden_quarantine_truncated",
            "Quarantined records whose raw bytes were cut to [limits] quarantine_raw_bytes",
            registry=r,
        )
        self.quarantine_checkpoints = Counter(
            "driftwarden_quarantine_checkpoints",
            "Checkpoints made early because the quarantined records waiting reached their limit",
            registry=r,
        )
        self.labels = Counter(
            "driftwarden_labels",
            "Labels by model and outcome (joined, late, unmatched, duplicate; labels: all), and "
            "predictions that went unlabelled (evicted by [labels] max_pending, expired)",
            ["model", "outcome"],
            registry=r,
        )
        self._last_checkpoint = time.time()
        self._totals: dict[tuple[int, tuple[str, ...]], float] = {}

    def advance(self, counter: Counter, total: float, *labels: str) -> None:
        """Increment ``counter`` (its ``labels`` child) up to a running total kept elsewhere."""
        key = (id(counter), labels)
        new = total - self._totals.get(key, 0.0)
        if new > 0:
            (counter.labels(*labels) if labels else counter).inc(new)
            self._totals[key] = total

    def checkpointed(self) -> None:
        self._last_checkpoint = time.time()
        self.checkpoint_ts.set(self._last_checkpoint)

    def _checkpoint_age(self) -> float:
        return time.time() - self._last_checkpoint


class OpsServer:
    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        ready: Callable[[], tuple[bool, str]],
    ) -> None:
        handler = _handler(registry, ready)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="ops-http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(
    registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            elif self.path == "/readyz":
                ok, why = ready()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain")
            elif self.path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"try /healthz, /readyz or /metrics\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the daemon's own log

    return Handler
