"""What the worker does for operations besides its agents: serve metrics, measure consumer
lag, run retention on a timer (every worker: a pass is idempotent, and rollover is
conditional on the master, so two workers never roll over twice). Installed by :func:`install` from
``pipeline.stream.worker.create_app``."""

from __future__ import annotations

import asyncio
import logging

from pipeline.ops import metrics

log = logging.getLogger(__name__)


def install(app, settings, pipeline) -> None:
    """Add the metrics server, the lag timer and the retention timer to a Faust app."""
    lag = metrics.LagMonitor(settings)

    @app.task
    async def start_metrics() -> None:
        if settings.metrics_port:
            try:
                await asyncio.to_thread(metrics.serve, settings.metrics_port, settings.metrics_host)
            except OSError as exc:  # port taken (a second worker on this host): run without
                log.warning(
                    "metrics: cannot serve on %s:%d: %s",
                    settings.metrics_host,
                    settings.metrics_port,
                    exc,
                )

    if settings.metrics_port:

        @app.timer(interval=settings.metrics_lag_interval_s)
        async def measure_lag() -> None:
            try:
                await asyncio.to_thread(lag.measure)
            except Exception as exc:
                log.warning("consumer lag: %s", exc)

    if settings.retention_interval_s > 0:

        @app.timer(interval=settings.retention_interval_s)
        async def retention() -> None:
            await asyncio.to_thread(run_retention_once, settings, pipeline)


def run_retention_once(settings, pipeline) -> None:
    from pipeline.ops.retention import run_retention

    try:
        report = run_retention(pipeline.es, settings)
    except Exception as exc:
        log.warning("retention: %s", exc)
        return
    metrics.RETENTION_RUNS.inc()
    metrics.RETENTION_DELETED.labels("indices").inc(len(report.deleted_indices))
    for family, n in report.deleted_documents.items():
        metrics.RETENTION_DELETED.labels(family).inc(n)
    log.info("retention: %s", report.summary())
