"""Prometheus metrics and the health check of the daemon (`metrics.port`; off by default).

`/metrics` is the Prometheus text exposition of a private `CollectorRegistry` (one per daemon, so
several can run in one process, as the tests do); `/healthz` answers 200 with a small JSON (mode, last
success, pending actions, failed cycles in a row) and 503 once `health.max_failed_cycles` cycles in a
row have failed. The server binds `metrics.host` (127.0.0.1 unless the config says otherwise).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
DRIFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class Metrics:
    """The daemon's counters; `cycle_ok`/`cycle_failed` are called once per cycle."""

    def __init__(self, mode: str, max_failed_cycles: int = 3):
        self.mode, self.max_failed_cycles = mode, max_failed_cycles
        self.registry = r = CollectorRegistry()
        self.cycles = Counter("btsbot_cycles", "Cycles run, by result (ok, failed)", ["result"], registry=r)
        self.alerts = Counter("btsbot_alerts", "Alerts by status (polled, new, scored, unscorable)", ["status"],
                              registry=r)
        self.decisions = Counter("btsbot_decisions", "Policy decisions (sources selected), by policy", ["policy"],
                                 registry=r)
        self.actions = Counter("btsbot_actions", "Actions run, by action and outcome (pending: resumed later)",
                               ["action", "outcome"], registry=r)
        self.pending = Gauge("btsbot_pending_actions", "Actions journaled and not finished", registry=r)
        self.last_success = Gauge("btsbot_last_cycle_success_timestamp_seconds",
                                  "Unix time the last successful cycle ended", registry=r)
        self.duration = Histogram("btsbot_cycle_duration_seconds", "Duration of a cycle", buckets=DURATION_BUCKETS,
                                  registry=r)
        self.drift = Histogram("btsbot_score_drift", "|our BTSbot score - the broker's own| per alert both scored",
                               buckets=DRIFT_BUCKETS, registry=r)
        self.drift_over = Counter("btsbot_score_drift_over_tolerance",
                                  "Alerts whose broker score differs from ours by more than drift.tolerance", registry=r)
        self.guard = Gauge("btsbot_guard_tripped", "1 while the runaway guard holds every Fritz write "
                           "(limits.max_sources_per_cycle; btsbot release-guard)", registry=r)
        self.guard_tripped = False
        self.ops = Gauge("btsbot_ops_event", "1 while an operational event holds (bot/ops.py: failed_cycles, guard, "
                         "budget, pending, quiet)", ["event"], registry=r)
        for result in ("ok", "failed"):
            self.cycles.labels(result)
        for status in ("polled", "new", "scored", "unscorable"):
            self.alerts.labels(status)
        self._lock = threading.Lock()
        self.failed_in_a_row = 0
        self.last_success_time: float | None = None
        self.pending_count = 0

    def set_pending(self, n: int) -> None:
        with self._lock:
            self.pending_count = n
        self.pending.set(n)

    def cycle_ok(self, report, pending: int) -> None:
        c = report.counts()
        self.cycles.labels("ok").inc()
        for status in ("polled", "new", "scored", "unscorable"):
            self.alerts.labels(status).inc(c[status])
        for d in report.decisions:
            self.decisions.labels(d["policy"]).inc()
        for a in report.actions:
            self.actions.labels(a.action, a.outcome or "pending").inc()
        for diff in report.drift:
            self.drift.observe(diff)
        self.drift_over.inc(len(report.drifted))
        self.duration.observe(report.seconds)
        guard = getattr(report, "guard", None)
        with self._lock:
            self.guard_tripped = bool(guard is not None and guard.tripped)
        self.guard.set(1 if self.guard_tripped else 0)
        now = time.time()
        self.last_success.set(now)
        with self._lock:
            self.failed_in_a_row, self.last_success_time = 0, now
        self.set_pending(pending)

    def set_ops(self, found) -> None:
        """The operational events after a cycle (event -> phrase or None)."""
        for event, what in found.items():
            self.ops.labels(event).set(1 if what else 0)

    def cycle_failed(self, seconds: float) -> None:
        self.cycles.labels("failed").inc()
        self.duration.observe(seconds)
        with self._lock:
            self.failed_in_a_row += 1

    def health(self) -> tuple[int, dict]:
        with self._lock:
            failing = self.failed_in_a_row >= self.max_failed_cycles
            last = self.last_success_time
            body = {
                "status": "failing" if failing else ("guard tripped" if self.guard_tripped else "ok"), "mode": self.mode,
                "last_success": (datetime.fromtimestamp(last, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                                 if last is not None else None),
                "pending_actions": self.pending_count, "failed_cycles_in_a_row": self.failed_in_a_row,
                "guard_tripped": self.guard_tripped,
            }
        return (503 if failing or self.guard_tripped else 200), body

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002 - scrapes are not worth a log line
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            status, body, ctype = 200, self.server.metrics.exposition(), CONTENT_TYPE_LATEST
        elif path == "/healthz":
            status, data = self.server.metrics.health()
            body, ctype = json.dumps(data).encode(), "application/json"
        else:
            status, body, ctype = 404, b"not found: try /metrics or /healthz\n", "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, metrics: Metrics):
        self.metrics = metrics
        super().__init__(address, _Handler)


class MetricsServer:
    """`/metrics` and `/healthz` of `metrics` on host:port (port 0: any free port), in a daemon thread."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 0):
        self._server = _Server((host, port), metrics)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="btsbot-metrics", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "MetricsServer":
        self._thread.start()
        log.info("metrics on %s/metrics, health on %s/healthz", self.url, self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
