"""Prometheus metrics: an extension fed by the lifecycle hooks, the HTTP edge and Azure.

    lifecycle hooks   runner_runs_submitted/started/finished_total, run duration
    status at scrape  runner_runs_queued, runner_runs_running, runner_ready
    HTTP edge         open streams, rate-limited requests, failed logins, webhook
                      deliveries by scheme and outcome (runner.web.access feeds these)
    Azure             ARM requests by operation and status, their latency, throttled
                      (429) answers, token acquisitions and failures (the Azure
                      extension's pipeline policy and credential call the observer methods)
    secrets           Key Vault reads by vault and outcome; references served from a
                      value whose refresh fails (runner.secrets.SecretSources)

Each runtime has its own registry (a test process runs many servers; the global one
would mix them). Served as ``GET /_metrics`` behind the API's auth, or on a separate
loopback listener (``metrics_listen``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runner.hooks import Extension
from runner.records import RunRecord

# Runs last from a second (a script) to hours (a VM fleet).
RUN_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))
# An ARM call answers in tens of milliseconds; a slow region or a throttled one in seconds.
ARM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))
WEBHOOK_OUTCOMES = ("accepted", "replayed", "forged", "stale", "answered", "refused")


class _Status(Collector):
    """Gauges read at scrape time from the Runs service: they cannot drift."""

    def __init__(self) -> None:
        self.read: Callable[[], Any] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.read is None:
            return
        status = self.read()
        yield GaugeMetricFamily("runner_runs_queued", "Runs waiting for a slot", status.queued)
        yield GaugeMetricFamily("runner_runs_running", "Runs executing now", status.running)
        yield GaugeMetricFamily(
            "runner_ready", "1 while taking runs, 0 while draining", int(status.ready)
        )


class Metrics(Extension):
    """The registry, the lifecycle hooks that count runs, and the observers of the edges."""

    name = "metrics"

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._status = _Status()
        r.register(self._status)
        self.submitted = Counter("runner_runs_submitted", "Runs accepted", ["job"], registry=r)
        self.started = Counter("runner_runs_started", "Runs that began", ["job"], registry=r)
        self.finished = Counter(
            "runner_runs_finished", "Runs that ended, by final state", ["job", "state"], registry=r
        )
        self.duration = Histogram(
            "runner_run_duration_seconds", "Run duration (start to end)", ["job"],
            buckets=RUN_BUCKETS, registry=r,
        )  # fmt: skip
        self.streams = Gauge(
            "runner_open_streams", "Responses following a run live (sse, text)", ["kind"],
            registry=r,
        )  # fmt: skip
        self.requests = Counter(
            "runner_http_requests", "HTTP requests answered, by status", ["status"], registry=r
        )
        self.rate_limited = Counter(
            "runner_rate_limited_requests", "Run starts refused by the rate limit (429)",
            registry=r,
        )  # fmt: skip
        self.failed_logins = Counter(
            "runner_failed_logins", "Requests with wrong credentials (401)", registry=r
        )
        self.webhooks = Counter(
            "runner_webhook_deliveries", "Webhook deliveries by scheme and outcome",
            ["scheme", "outcome"], registry=r,
        )  # fmt: skip
        self.arm_requests = Counter(
            "runner_arm_requests", "ARM requests (each try) by operation and status",
            ["operation", "status"], registry=r,
        )  # fmt: skip
        self.arm_latency = Histogram(
            "runner_arm_request_duration_seconds", "ARM request latency (each try)",
            ["operation"], buckets=ARM_BUCKETS, registry=r,
        )  # fmt: skip
        self.arm_throttled = Counter(
            "runner_arm_throttled", "ARM answers 429 (throttled)", ["operation"], registry=r
        )
        self.tokens = Counter(
            "runner_azure_token_acquisitions", "Azure tokens acquired, or failures to",
            ["result"], registry=r,
        )  # fmt: skip
        self.secret_reads = Counter(
            "runner_keyvault_reads", "Key Vault secret reads by vault and outcome (ok, failed)",
            ["vault", "outcome"], registry=r,
        )  # fmt: skip
        self.stale_secrets = Gauge(
            "runner_keyvault_stale_secrets",
            "Key Vault references served from their last good value: refreshing them fails",
            registry=r,
        )
        self._listener: Any = None
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _of(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, kept: prometheus_client checks and locks on every
        call, and every run and request takes a few. The children are the metric's own
        (it keeps each label set for ever too), so this holds nothing more."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def watch(self, status: Callable[[], Any]) -> None:
        """Read queue depth and running runs from ``status()`` (Runs.status) at scrape."""
        self._status.read = status

    # -- lifecycle hooks -------------------------------------------------------------

    def on_submitted(self, run: RunRecord) -> None:
        self._of(self.submitted, run.job).inc()

    def on_started(self, run: RunRecord) -> None:
        self._of(self.started, run.job).inc()

    def on_finished(self, run: RunRecord) -> None:
        self._of(self.finished, run.job, run.state).inc()
        if run.duration is not None:
            self._of(self.duration, run.job).observe(run.duration)

    # -- the HTTP edge (runner.web.access) ---------------------------------------------

    def stream(self, kind: str, delta: int) -> None:
        self._of(self.streams, kind).inc(delta)

    def answered(self, status: int) -> None:
        self._of(self.requests, str(status)).inc()

    def webhook(self, scheme: str, outcome: str) -> None:
        self._of(self.webhooks, scheme, outcome).inc()

    # -- Azure (runner.azure.telemetry.AzureObserver) ----------------------------------

    def arm_request(self, operation: str, status: str, seconds: float) -> None:
        self.arm_requests.labels(operation, status).inc()
        self.arm_latency.labels(operation).observe(seconds)
        if status == "429":
            self.arm_throttled.labels(operation).inc()

    def token(self, ok: bool) -> None:
        self.tokens.labels("acquired" if ok else "failed").inc()

    # -- secrets (runner.secrets.SecretObserver) ---------------------------------------

    def secret_read(self, vault: str, ok: bool) -> None:
        self.secret_reads.labels(vault, "ok" if ok else "failed").inc()

    def secrets_stale(self, count: int) -> None:
        self.stale_secrets.set(count)

    # -- a listener of its own ---------------------------------------------------------

    def listen(self, host: str, port: int) -> tuple[str, int]:
        """Serve the registry on ``host:port`` (loopback, checked by the settings) in a
        thread, without auth; returns the address bound (port 0 picks one)."""
        server, thread = start_http_server(port, host, registry=self.registry)
        self._listener = (server, thread)
        bound = server.server_address
        return str(bound[0]), int(bound[1])

    def stop_listening(self) -> None:
        if self._listener is not None:
            server, thread = self._listener
            self._listener = None
            # shutdown() waits for serve_forever's loop; close the socket after.
            stopper = threading.Thread(target=server.shutdown, daemon=True)
            stopper.start()
            stopper.join(5)
            server.server_close()
            thread.join(5)
