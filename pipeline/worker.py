"""The Faust worker: thin agents that move models between topics; the work is
:class:`pipeline.process.Pipeline`'s (the same code as backfill and the benchmarks).

    raw --[clean_and_dedupe]--> clean --[enrich]--> enriched --[index]--> Elasticsearch
                 |                          |                 \\-[alerts]--> alerts (+ index, webhooks)
                 +--> duplicates            +--> deadletter (from every agent)

Delivery is at-least-once: ``take_events`` acks a batch only after the agent body finished
with it, commits flush the producer first, and every sink is idempotent (document ids are
article ids, alert ids derive from (subscription, article), dedupe state is keyed by
fingerprint). An agent body never raises: a failure it cannot attribute to one message
dead-letters the batch rather than acking it unprocessed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from collections.abc import Awaitable, Callable

import faust
import httpx

from pipeline.alerts.webhook import post_alert, webhook_urls
from pipeline.ops import metrics
from pipeline.ops.worker import install as install_ops
from pipeline.process import InMessage, Pipeline, retry_transient
from pipeline.settings import Settings, get_settings
from schemas import DeadLetter

log = logging.getLogger(__name__)


def in_message(event) -> InMessage:
    message = event.message
    return InMessage(
        value=message.value if isinstance(message.value, bytes) else bytes(message.value or b""),
        key=message.key,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
    )


def create_app(settings: Settings | None = None, pipeline: Pipeline | None = None) -> faust.App:
    settings = settings or get_settings()
    pipeline = pipeline or Pipeline(settings)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_list],
        key_serializer="raw",
        value_serializer="raw",
        store=settings.worker_store,
        datadir=str(settings.data_dir / "worker"),
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=False,  # `newspipe setup` creates topics with their configs
        producer_max_request_size=settings.max_message_bytes,
        consumer_max_fetch_size=settings.max_message_bytes,
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        stream_wait_empty=False,
        web_enabled=settings.worker_web_port > 0,
        web_port=settings.worker_web_port or 6066,
        web_bind=settings.worker_web_host,
    )
    topics = {
        name: app.topic(settings.topic(name), key_type=bytes, value_type=bytes)
        for name in ("raw", "clean", "enriched", "duplicates", "deadletter", "alerts")
    }

    async def send_all(topic_name: str, models) -> None:
        metrics.record_sent(topic_name, models)
        for model in models:
            key = getattr(model, "id", None) or getattr(model, "article_id", None)
            await topics[topic_name].send(
                key=key.encode() if key else None,
                value=model.model_dump_json().encode("utf-8"),
                force=True,  # publish now, not at commit time: alerts within a second
            )

    async def batches(stream, step: Callable[[list[InMessage]], Awaitable[None]], stage: str):
        """Feed batches to ``step``; if it fails as a whole, dead-letter the batch, go on."""
        async for events in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
            messages = [in_message(e) for e in events]
            metrics.STAGE_MESSAGES.labels(stage).inc(len(messages))
            try:
                await step(messages)
            except Exception as exc:  # noqa: BLE001 - never crash the agent, never lose input
                log.exception("%s: batch of %d failed; dead-lettering it", stage, len(messages))
                await send_all("deadletter", [m.dead(stage, exc) for m in messages])

    @app.agent(topics["raw"], name="clean_and_dedupe")
    async def clean_and_dedupe(stream):
        async def step(messages):
            result = await asyncio.to_thread(pipeline.clean_and_dedupe, messages)
            await send_all("clean", result.passed)
            await send_all("duplicates", result.duplicates)
            await send_all("deadletter", result.dead)

        await batches(stream, step, "clean")

    @app.agent(topics["clean"], name="enrich")
    async def enrich(stream):
        async def step(messages):
            result = await asyncio.to_thread(pipeline.enrich, messages)
            await send_all("enriched", result.passed)
            await send_all("deadletter", result.dead)

        await batches(stream, step, "enrich")

    @app.agent(topics["enriched"], name="index")
    async def index(stream):
        async def step(messages):
            decoded = pipeline.decode_enriched(messages)
            rejected = await asyncio.to_thread(pipeline.index, decoded.passed)
            by_id = {m.key.decode(): m for m in messages if m.key}
            letters: list[DeadLetter] = decoded.dead + [
                _dead_for(by_id, article, "index", error) for article, error in rejected
            ]
            await send_all("deadletter", letters)

        await batches(stream, step, "index")

    webhooks = httpx.AsyncClient(timeout=settings.webhook_timeout_s)

    @app.agent(topics["enriched"], name="alerts")
    async def alerts(stream):
        async def step(messages):
            decoded = pipeline.decode_enriched(messages)
            fired = await asyncio.to_thread(pipeline.match, decoded.passed)
            await send_all("alerts", fired)
            for alert in fired:
                subscription = pipeline.subscriptions.index.get(alert.subscription_id)
                for url in webhook_urls(subscription.channels if subscription else []):
                    delivered = await post_alert(
                        webhooks,
                        url,
                        alert,
                        retries=settings.webhook_retries,
                        allow_private=settings.webhook_allow_private,
                    )
                    metrics.record_webhook(delivered)
            fired_ids = [a.id for a in fired]  # a blocked alerts index pauses here (retried)
            await asyncio.to_thread(
                retry_transient, lambda: pipeline.ledger.mark_delivered(fired_ids), what="mark delivered"
            )
            # decode errors are dead-lettered by the index agent, which reads the same topic

        await batches(stream, step, "alerts")

    install_ops(app, settings, pipeline)  # metrics server, lag and retention timers
    return app


def _dead_for(by_id: dict[str, InMessage], article, stage: str, error: str) -> DeadLetter:
    message = by_id.get(article.id) or InMessage(value=article.model_dump_json().encode())
    return message.dead(stage, error)


def ready_path(settings: Settings, pid: int) -> Path:
    """Exists while the worker with this pid has joined its group and is consuming."""
    return settings.data_dir / "run" / f"worker-{pid}.ready"


class Worker(faust.Worker):
    """A Faust worker that says when it is ready (a file per process, see :func:`ready_path`)."""

    def __init__(self, app: faust.App, ready_file: Path, **kwargs):
        super().__init__(app, **kwargs)
        self.ready_file = ready_file

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        self.ready_file.parent.mkdir(parents=True, exist_ok=True)
        self.ready_file.write_text(str(os.getpid()))

    async def on_stop(self) -> None:
        self.ready_file.unlink(missing_ok=True)
        await super().on_stop()


def run_worker(loglevel: str = "info") -> None:
    """Set up topics and indices, then run the worker until interrupted."""
    from pipeline.setup import setup

    settings = get_settings()
    for noisy in ("elastic_transport", "kafka"):  # one line per request is not a worker log
        logging.getLogger(noisy).setLevel(logging.WARNING)
    setup(settings)
    pipeline = Pipeline(settings)
    pipeline.warm_up()  # before any agent thread: spaCy's imports are not thread-safe
    log.info("newspipe worker ready: model %s", settings.spacy_model)
    app = create_app(settings, pipeline)
    worker = Worker(app, ready_path(settings, os.getpid()), loglevel=loglevel)
    worker.execute_from_commandline()
