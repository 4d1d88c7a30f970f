"""Prometheus metrics of the worker and the API (``prometheus-client``).

One registry of the project's (:data:`REGISTRY`), so a process exposes only newspipe's series
(plus the process collector). The worker serves it on ``NEWS_METRICS_PORT`` (0 = off, see
:func:`serve`); the HTTP API serves it at ``/metrics`` (:func:`instrument_api`, ``pipeline/api/app.py``).

Series (all prefixed ``newspipe_``):

- ``stage_messages_total{stage}``: messages taken by each agent (rate() = messages/s per stage)
- ``topic_messages_total{topic}``: messages each agent sent on, by short topic name
- ``dead_letters_total{stage,reason}``: dead letters; reason = the error's type (bounded)
- ``dedupe_hits_total{kind}``: duplicates found, exact or near
- ``alert_latency_seconds``: histogram of ingest -> alert published
- ``webhook_deliveries_total{outcome}``: webhook attempts, delivered / refused / retrying / failed
- ``consumer_lag{topic,partition}``: end offset - committed offset of the worker group
- ``api_requests_total{method,route,status}``: the HTTP API (:func:`instrument_api`)
- ``retention_runs_total`` / ``retention_deleted_total{what}``: the retention timer
- ``gc_pause_seconds{generation}``: histogram of the garbage collector's passes (each one
  stops every agent of the process; :func:`watch_gc`)
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from pipeline.infra.topics import worker_reads

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

STAGE_MESSAGES = Counter(
    "newspipe_stage_messages", "Messages taken by a stage", ["stage"], registry=REGISTRY
)
TOPIC_MESSAGES = Counter(
    "newspipe_topic_messages", "Messages sent on a pipeline topic", ["topic"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "newspipe_dead_letters",
    "Dead letters by stage and reason",
    ["stage", "reason"],
    registry=REGISTRY,
)
DEDUPE_HITS = Counter("newspipe_dedupe_hits", "Duplicates found", ["kind"], registry=REGISTRY)
ALERT_LATENCY = Histogram(
    "newspipe_alert_latency_seconds",
    "From ingest to the alert's publication",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "newspipe_webhook_deliveries", "Webhook deliveries by outcome", ["outcome"], registry=REGISTRY
)
CONSUMER_LAG = Gauge(
    "newspipe_consumer_lag",
    "Messages not yet consumed by the worker group",
    ["topic", "partition"],
    registry=REGISTRY,
)
RETENTION_RUNS = Counter("newspipe_retention_runs", "Retention passes", registry=REGISTRY)
RETENTION_DELETED = Counter(
    "newspipe_retention_deleted", "What retention deleted", ["what"], registry=REGISTRY
)
GC_PAUSE = Histogram(
    "newspipe_gc_pause_seconds",
    "Passes of the garbage collector (every thread of the process waits for them)",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
    registry=REGISTRY,
)


API_REQUESTS = Counter(
    "newspipe_api_requests",
    "HTTP API requests by route and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)


def record_sent(topic: str, models) -> None:
    """Count what an agent sends on ``topic`` (short name): dead letters by stage and reason,
    duplicates by kind, alerts' latency."""
    models = list(models)
    if not models:
        return
    TOPIC_MESSAGES.labels(topic).inc(len(models))
    if topic == "deadletter":
        for letter in models:
            DEAD_LETTERS.labels(letter.stage, letter.error_type).inc()
    elif topic == "duplicates":
        for record in models:
            DEDUPE_HITS.labels(record.kind).inc()
    elif topic == "alerts":
        for alert in models:
            if alert.latency_ms is not None:
                ALERT_LATENCY.observe(alert.latency_ms / 1000)


class _GcTimer:
    """A ``gc.callbacks`` entry observing each pass's wall time in :data:`GC_PAUSE`."""

    def __init__(self) -> None:
        self.started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            GC_PAUSE.labels(str(info["generation"])).observe(time.perf_counter() - self.started)


def watch_gc() -> None:
    """Time the garbage collector's passes from now on (once per process)."""
    if not any(isinstance(callback, _GcTimer) for callback in gc.callbacks):
        gc.callbacks.append(_GcTimer())


def record_webhook(outcome: str | bool) -> None:
    """One webhook attempt's outcome: delivered / refused / retrying / failed (True/False)."""
    if isinstance(outcome, bool):
        outcome = "delivered" if outcome else "failed"
    WEBHOOKS.labels(outcome).inc()


def serve(port: int, host: str = "127.0.0.1") -> int:
    """Serve :data:`REGISTRY` over HTTP in a thread; returns the port (0 = off: nothing)."""
    if not port:
        return 0
    from prometheus_client import start_http_server

    server, _ = start_http_server(port, addr=host, registry=REGISTRY)
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return server.server_port


def metrics_app():
    """An ASGI app serving the metrics (mount it: ``api.mount("/metrics", metrics_app())``)."""
    from prometheus_client import make_asgi_app

    return make_asgi_app(registry=REGISTRY)


class RequestCounter:
    """ASGI middleware: counts each HTTP request in ``newspipe_api_requests_total`` by method,
    route template (``/subscriptions/{subscription_id}``, never the raw path: bounded label
    values; ``unmatched`` for a 404 of no route) and status. Counted when the answer starts, so
    a long-lived stream (SSE) counts at once; pure ASGI, so streams and disconnects pass
    through untouched. An exception that escapes the app counts as a 500."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        counted = False

        def count(status: int) -> None:
            nonlocal counted
            if not counted:
                counted = True
                route = getattr(scope.get("route"), "path", "unmatched")
                API_REQUESTS.labels(scope.get("method", "GET"), route, str(status)).inc()

        async def counting_send(message):
            if message["type"] == "http.response.start":
                count(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            count(500)
            raise


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The registry in the format the scraper asks for (``Accept``: OpenMetrics or text 0.0.4)
    and its content type."""
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept or "")
    return encoder(REGISTRY), content_type


def instrument_api(api, serve: bool = True) -> None:
    """Count an API's requests (:class:`RequestCounter`) and, with ``serve``, mount the metrics
    at ``/metrics`` without any check. The newspipe API (``pipeline.api.app.create_api``) passes
    ``serve=False`` and serves ``GET /metrics`` itself (open, or admin-only with
    ``NEWS_API_METRICS_AUTH``)."""
    api.add_middleware(RequestCounter)
    if serve:
        api.mount("/metrics", metrics_app())


class LagMonitor:
    """Measures the worker group's lag per partition (end offset - committed offset)."""

    def __init__(self, settings, topics: tuple[str, ...] | None = None):
        self.settings = settings
        self.topics = [settings.topic(t) for t in topics or worker_reads(settings)]
        self._admin = None
        self._consumer = None
        self._lock = threading.Lock()

    def measure(self) -> dict[tuple[str, int], int]:
        from kafka import KafkaAdminClient, TopicPartition

        from pipeline.infra.kafka import make_consumer

        with self._lock:
            if self._admin is None:
                self._admin = KafkaAdminClient(
                    bootstrap_servers=self.settings.kafka_bootstrap_list, client_id="newspipe-lag"
                )
                self._consumer = make_consumer(settings=self.settings, client_id="newspipe-lag")
            partitions = [
                TopicPartition(t, p)
                for t in self.topics
                for p in sorted(self._consumer.partitions_for_topic(t) or ())
            ]
            ends = self._consumer.end_offsets(partitions)
            group = self.settings.app_id
            if hasattr(self._admin, "list_group_offsets"):  # kafka-python >= 3
                committed = self._admin.list_group_offsets({group: partitions}).get(group, {})
            else:
                committed = self._admin.list_consumer_group_offsets(group, partitions=partitions)
        lag = {}
        for tp in partitions:
            done = committed.get(tp)
            offset = done.offset if done is not None and done.offset >= 0 else 0
            lag[(tp.topic, tp.partition)] = max(ends.get(tp, 0) - offset, 0)
            CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag[(tp.topic, tp.partition)])
        return lag

    def close(self) -> None:
        with self._lock:
            for client in (self._admin, self._consumer):
                if client is not None:
                    client.close()
            self._admin = self._consumer = None
