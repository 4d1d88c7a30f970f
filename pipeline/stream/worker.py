r"""The Faust worker: thin agents that move models between topics; the work is
:class:`pipeline.stream.process.Pipeline`'s (the same code as backfill and the benchmarks).

    raw --[clean_and_dedupe]--> clean --[enrich]--> Elasticsearch (index) + alerts topic
                 |                |          \--> enriched topic (published for its readers)
                 |                \-[alerts_on_clean]--> alerts (keyword subscriptions)
                 +--> duplicates          deadletter <-- (every agent)

The enrich agent indexes each batch and matches it against the entity/event subscriptions
itself, while the next batch is enriched and the one after it parsed, and records the batch
before's webhook deliveries meanwhile (``NEWS_ENRICH_INDEXES``;
false: an ``index`` and an ``alerts`` agent read the articles back from the enriched topic, one
hop more on the way to search and to an entity alert).

Keyword subscriptions are matched on the clean topic, before the NER, so that their alerts
never wait for it; those that read entities, events or stories on the enriched article
(pipeline.alerts.matcher.match_stage, ``NEWS_ALERTS_ON_CLEAN``).

    outbox (index) --[dispatcher task]--> webhooks (concurrent, per-target limits, retries)

Under backlog the enrich agent takes first the articles that an entity/event subscription
could match (``NEWS_ALERTS_FIRST``; pipeline.alerts.prefilter, pipeline.stream.batching.Lookahead),
acking each partition's events in the order they were read.

The enrich agent's ``nlp.pipe`` runs in a child process (pipeline.stages.nlp_process,
``NEWS_NLP_PROCESS``): it parses the next batch while the agent finishes the last one, and the
other agents keep this process's GIL meanwhile.

Delivery is at-least-once: ``take_batches`` (adaptive batches, pipeline.stream.batching) acks a batch only after the agent body finished
with it, and the body finishes only when the broker acknowledged every message it produced
(:func:`send_acknowledged`; the producer is idempotent and lz4-compressed, see
:class:`IdempotentProducer`); commits flush the producer first, and every sink is idempotent (document ids are
article ids, alert ids derive from (subscription, article), dedupe state is keyed by
fingerprint). An agent body never raises: a failure it cannot attribute to one message
dead-letters the batch rather than acking it unprocessed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faust
from faust.transport.drivers.aiokafka import Producer as AIOKafkaDriverProducer

from pipeline.alerts.dispatcher import Dispatcher
from pipeline.ops import metrics
from pipeline.ops.worker import install as install_ops
from pipeline.runtime.health import HEALTH, status_path, write_status
from pipeline.settings import Settings, get_settings
from pipeline.stream.background import ArticlesRefresh, EarlyIndex
from pipeline.stream.batching import (
    FirstThings,
    Revocations,
    event_key,
    pipelined,
    take_batches,
    take_batches_unacked,
)
from pipeline.stream.process import InMessage, Pipeline, is_transient, server_of
from schemas import DeadLetter
from schemas.models import utcnow

log = logging.getLogger(__name__)

GC_THRESHOLDS = (7000, 10, 10)
"""The worker's garbage collector thresholds (CPython's are 700, 10, 10): a first-generation
pass after 7,000 new container objects rather than 700. A batch makes tens of thousands (models,
dicts, spans) that reference counting frees, and with CPython's thresholds the collector ran
about 11 times a second at 20 articles/s, promoting what a batch still held, so that a full pass
(about 0.1 s over the cached token spans, stories and registry entries, every agent waiting)
came every 9 s. With these, A/B runs at 20 articles/s took 0.4 s of collector CPU a run instead of
0.9 s and one full pass instead of five (docs/performance.md, session 35)."""


STEP_THREADS = 16
"""Threads of the worker's default executor (``asyncio.to_thread``)."""

PRODUCER_COMPRESSION = "lz4"
"""The worker producer's codec (aiokafka compresses lz4/zstd with ``cramjam``)."""


class IdempotentProducer(AIOKafkaDriverProducer):
    """Faust's aiokafka producer, idempotent outside transactions too (faust turns idempotence
    on only with ``processing_guarantee="exactly_once"``): the broker drops a batch it already
    has when the producer retries it, so a retry never writes a message twice."""

    def _settings_extra(self):
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


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
        producer_compression_type=PRODUCER_COMPRESSION,
        broker_commit_interval=1.0,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        stream_wait_empty=False,
        web_enabled=settings.worker_web_port > 0,
        web_port=settings.worker_web_port or 6066,
        web_bind=settings.worker_web_host,
    )
    app.transport.Producer = IdempotentProducer
    topics = {
        name: app.topic(settings.topic(name), key_type=bytes, value_type=bytes)
        for name in ("raw", "clean", "enriched", "duplicates", "deadletter", "alerts")
    }

    async def send_all(topic_name: str, models) -> None:
        metrics.record_sent(topic_name, models)
        await send_acknowledged(topics[topic_name], models, max_wait_s=settings.retry_max_wait_s)

    async def batches(
        stream,
        step: Callable[[list[InMessage]], Awaitable[None]],
        stage: str,
        max_: int | None = None,
        max_bytes: int | None = None,
    ):
        """Feed batches (of at most ``max_``, else ``batch_max``, messages and, with
        ``max_bytes``, about that many bytes) to ``step``; if it fails as a whole, dead-letter
        the batch, go on."""
        async for events in take_batches(
            stream,
            max_ or settings.batch_max,
            settings.batch_wait_s,
            settings.batch_linger_s,
            max_bytes,
        ):
            messages = [in_message(e) for e in events]
            metrics.STAGE_MESSAGES.labels(stage).inc(len(messages))
            await run_step(step, messages, stage)

    async def run_step(step, messages: list[InMessage], stage: str) -> None:
        """Run ``step`` until it succeeds. A transient server fault (Kafka or Elasticsearch
        away, timeouts, 429/503) is retried with a backoff capped at
        ``settings.retry_max_wait_s``: never the messages' fault. Any other failure
        dead-letters the batch (that send retried the same way); the agent never stops."""
        delay, waited, letters = 0.2, False, None
        while True:
            try:
                if letters is None:
                    await step(messages)
                else:
                    await send_all("deadletter", letters)
                break
            except Exception as exc:
                if is_transient(exc):
                    HEALTH.waiting(stage, server_of(exc), exc)
                    log.warning(
                        "%s: waiting for %s (%s); retrying the batch in %.1fs",
                        stage,
                        server_of(exc),
                        exc,
                        delay,
                    )
                    waited = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, settings.retry_max_wait_s)
                    continue
                HEALTH.error(stage, exc)
                if letters is not None:  # the dead letters themselves cannot be sent
                    log.exception("%s: could not dead-letter a batch of %d", stage, len(letters))
                    break
                log.exception("%s: batch of %d failed; dead-lettering it", stage, len(messages))
                letters = [m.dead(stage, exc) for m in messages]
        if waited:
            HEALTH.resumed(stage)

    async def two_steps(stream, stage: str, first, then) -> None:
        """Batches in two steps, each retried or dead-lettered like a step (:func:`run_step`):
        ``first(messages)`` returns what ``then`` needs, and ``then(result)`` runs while the
        next batch's ``first`` does (``pipelined``: in batch order, acked after ``then``). A
        batch whose ``first`` was dead-lettered has no ``then``."""

        async def start(events):
            messages = [in_message(e) for e in events]
            metrics.STAGE_MESSAGES.labels(stage).inc(len(messages))
            results: list = []

            async def step(batch):
                results[:] = [await first(batch)]

            await run_step(step, messages, stage)
            return messages, results

        async def finish(events, started):
            messages, results = started
            if results:
                await run_step(lambda _: then(results[0]), messages, stage)

        taken = take_batches_unacked(
            stream, settings.batch_max, settings.batch_wait_s, settings.batch_linger_s
        )
        await pipelined(taken, start, finish)

    refresh = (
        ArticlesRefresh(pipeline.refresh_articles, settings.articles_refresh_s)
        if settings.articles_refresh_on_write
        else None
    )

    def articles_written() -> None:
        if refresh is not None:
            refresh.written()

    @app.agent(topics["raw"], name="clean_and_dedupe")
    async def clean_and_dedupe(stream):
        """Clean and deduplicate a batch; its results are sent while the next batch is
        cleaned."""

        async def first(messages):
            return await asyncio.to_thread(pipeline.clean_and_dedupe, messages)

        early = EarlyIndex(pipeline, then=articles_written) if settings.index_clean else None

        async def then(result):
            if early is not None:
                early.offer(result.passed)  # in the background: off the keyword alerts' path
            await send_all("clean", result.passed)
            await send_all("duplicates", result.duplicates)
            await send_all("deadletter", result.dead)

        await two_steps(stream, "clean", first, then)

    dispatcher = make_dispatcher(settings, pipeline)
    # the subscriptions matched on the enriched article: pipeline.alerts.matcher's
    # ``enriched`` stage, or all of them with NEWS_ALERTS_ON_CLEAN=false
    entity_stage = "enriched" if settings.alerts_on_clean else None

    async def record_deliveries(fired) -> None:
        """The fired alerts' webhook deliveries into the outbox, off the alerts' path; the
        dispatcher sends them, never an agent."""
        if fired:
            due = await asyncio.to_thread(pipeline.enqueue_deliveries, fired)
            dispatcher.offer(due)

    revocations = Revocations()

    @app.on_partitions_revoked.connect
    async def drop_what_was_read_ahead(app, revoked, **kwargs) -> None:
        """A rebalance took partitions away: what the enrich agent read ahead of them goes,
        as Faust's own buffers do (their new owner reads them from the last commit)."""
        revocations.revoked(revoked)

    @app.agent(topics["clean"], name="enrich")
    async def enrich(stream):
        """The NER and what follows it; with NEWS_ENRICH_INDEXES (the default) the batch is
        then indexed and matched against the entity/event subscriptions here, while the next
        batch is enriched, instead of by agents on the enriched topic."""

        async def start(events):
            taken = utcnow()  # the batch's time in the stage includes its parse
            messages = [in_message(e) for e in events]
            metrics.STAGE_MESSAGES.labels("enrich").inc(len(messages))
            if pipeline.parser is None:  # NEWS_NLP_PROCESS=false: parsed in this process
                return messages, None, taken
            try:  # the parse process parses this batch while the one before is finished
                return messages, await asyncio.to_thread(pipeline.prefetch, messages), taken
            except Exception as exc:  # the batch is parsed when its turn comes instead
                log.warning("enrich: could not start parsing a batch ahead: %s", exc)
                return messages, None, taken

        async def finish(events, started):
            messages, prefetched, taken = started
            passed: list = []

            async def step(batch):
                result = await asyncio.to_thread(
                    pipeline.enrich, batch, prefetched=prefetched, taken=taken
                )
                if not settings.enrich_indexes:
                    await send_all("enriched", result.passed)
                passed[:] = result.passed
                await send_all("deadletter", result.dead)

            await run_step(step, messages, "enrich")
            return messages, passed

        async def index_and_match(events, finished):
            """Publish, index and match a batch's enriched articles, all three at once; each
            retried or dead-lettered on its own (a dead letter here holds the clean message:
            replayed, the article is enriched anew). Returns what :func:`record` needs."""
            messages, articles = finished
            fired: list = []
            if not articles:
                return messages, fired
            by_id = {m.key.decode(): m for m in messages if m.key}
            metrics.STAGE_MESSAGES.labels("index").inc(len(articles))
            metrics.STAGE_MESSAGES.labels("alerts").inc(len(articles))

            async def publish(_):
                await send_all("enriched", articles)

            async def index_step(_):
                rejected = await asyncio.to_thread(pipeline.index, articles)
                articles_written()
                letters = [_dead_for(by_id, article, "index", e) for article, e in rejected]
                await send_all("deadletter", letters)

            async def alerts_step(_):
                result = await asyncio.to_thread(pipeline.match_alerts, articles, entity_stage)
                await send_all("alerts", result.passed)
                await send_all("deadletter", result.dead)  # alerts the index rejected
                fired[:] = result.passed

            # publish first: its messages are encoded before the index step stamps the
            # articles' index_taken (the enriched topic keeps the stamps of the enrich step)
            await asyncio.gather(
                run_step(publish, messages, "enrich"),
                run_step(index_step, messages, "index"),
                run_step(alerts_step, messages, "alerts"),
            )
            return messages, fired

        async def record(events, matched):
            """The alerts' deliveries into the outbox while the next batch is matched: the
            outbox writes stay off the alerts' path."""
            messages, fired = matched
            if fired:
                await run_step(lambda _: record_deliveries(fired), messages, "alerts")

        # smaller than the other agents' batches, in articles and in text: each article
        # waits for its batch's parse, which takes time in proportion to the batch's text
        first = None
        if settings.alerts_first:  # under backlog, the articles that could fire an alert first
            first = FirstThings(
                lambda event: pipeline.could_alert_after_nlp(event.message.value),
                settings.alerts_first_max_defer_s,
                event_key,
            )
        batches_acked_by_us = take_batches_unacked(
            stream,
            settings.enrich_batch_max,
            settings.batch_wait_s,
            settings.batch_linger_s,
            settings.enrich_batch_bytes,
            first,
            settings.alerts_first_lookahead,
            settings.alerts_first_lookahead_bytes,
            revocations,
        )
        if settings.enrich_indexes:
            # three batches in flight: one parsed, one enriched, one indexed and matched (then
            # its deliveries recorded, while the next one is matched)
            await pipelined(batches_acked_by_us, start, finish, index_and_match, record, depth=3)
        else:
            await pipelined(batches_acked_by_us, start, finish)

    async def alert_batches(stream, decode, stage) -> None:
        """Match a batch's articles, claim and publish their alerts; then record the alerts'
        deliveries in the outbox while the next batch is matched: the outbox writes are off
        the alerts' path. A batch is acked once its deliveries are recorded."""

        async def first(messages):
            articles = decode(messages).passed
            result = await asyncio.to_thread(pipeline.match_alerts, articles, stage)
            await send_all("alerts", result.passed)
            await send_all("deadletter", result.dead)  # alerts the index rejected
            return result.passed

        await two_steps(stream, "alerts", first, record_deliveries)

    if not settings.enrich_indexes:

        @app.agent(topics["enriched"], name="index")
        async def index(stream):
            async def step(messages):
                decoded = pipeline.decode_enriched(messages)
                rejected = await asyncio.to_thread(pipeline.index, decoded.passed)
                if decoded.passed:
                    articles_written()
                by_id = {m.key.decode(): m for m in messages if m.key}
                letters: list[DeadLetter] = decoded.dead + [
                    _dead_for(by_id, article, "index", error) for article, error in rejected
                ]
                await send_all("deadletter", letters)

            await batches(stream, step, "index")

        @app.agent(topics["enriched"], name="alerts")
        async def alerts(stream):
            """The other subscriptions (all of them with NEWS_ALERTS_ON_CLEAN=false); decode
            errors are dead-lettered by the index agent, which reads the same topic."""
            await alert_batches(stream, pipeline.decode_enriched, entity_stage)

    if settings.alerts_on_clean:

        @app.agent(topics["clean"], name="alerts_on_clean")
        async def alerts_on_clean(stream):
            """Keyword subscriptions, before the NER (pipeline.alerts.matcher.match_stage);
            decode errors are dead-lettered by the enrich agent, which reads the same topic."""
            await alert_batches(stream, pipeline.decode_clean, "clean")

    status_file = status_path(settings.data_dir, os.getpid())

    def worker_status() -> dict:
        """What this worker waits for, its consumer lag per partition, its last error."""
        status = {"pid": os.getpid(), "app_id": settings.app_id, "written_at": time.time()}
        status.update(HEALTH.snapshot())
        status["lag"] = consumer_lag(app)
        return status

    @app.timer(interval=1.0)
    async def write_worker_status() -> None:
        # in the event loop, not in a step thread: a small local file, never queued behind
        # steps that retry while a server is away (when the status matters most)
        try:
            write_status(status_file, worker_status())
        except Exception as exc:
            log.warning("could not write %s: %s", status_file, exc)

    if settings.worker_web_port > 0:

        @app.page("/health/")
        async def health(web, request):
            status = worker_status()
            return web.json(status, status=503 if status["waiting_for"] else 200)

    @app.task
    async def threads_for_the_steps():
        """Steps, the dispatcher's lookups and the timers run in threads: more of them than
        asyncio's default (cores + 4), so that no step waits for a thread."""
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=STEP_THREADS, thread_name_prefix="newspipe-step")
        )

    @app.task
    async def deliver_webhooks():
        await dispatcher.run()

    install_ops(app, settings, pipeline)  # metrics server and lag, retention timer
    app.status_file = status_file  # removed by Worker.on_stop
    return app


def consumer_lag(app: faust.App) -> dict[str, int] | None:
    """``{"topic:partition": messages not yet committed}`` for the assigned partitions, None
    before the consumer has started."""
    try:
        consumer = app.consumer
        lag = {}
        for tp in sorted(consumer.assignment()):
            highwater = consumer.highwater(tp)
            committed = consumer._committed_offset.get(tp)  # faust keeps no public accessor
            if highwater is None:
                continue
            lag[f"{tp.topic}:{tp.partition}"] = max(0, highwater - (committed or 0))
        return lag
    except Exception:
        return None


def make_dispatcher(settings: Settings, pipeline: Pipeline) -> Dispatcher:
    from pipeline.alerts.subscriptions import SubscriptionStore

    store = SubscriptionStore(settings, pipeline.es)
    return Dispatcher(
        settings,
        pipeline.outbox,
        lambda sub_id: pipeline.subscriptions.index.get(sub_id),
        catch_up=lambda: pipeline.subscriptions.catch_up(),
        disable_channel=store.disable_channel,
    )


async def send_acknowledged(topic, models, *, max_wait_s: float = 30.0) -> None:
    """Send ``models`` (keyed by id) now and return only when the broker acknowledged every
    one of them (``acks=all``): an agent acks its batch, so its offset becomes committable,
    only after every message the batch produced is acknowledged. A send that fails (a broker
    away longer than the producer's own retries) is a transient fault, never the message's:
    it is sent again, same key and value, with backoff, until acknowledged (a message may so
    repeat on a topic, always with the same id; see docs/guarantees.md)."""
    pending = []
    for model in models:
        key = getattr(model, "id", None) or getattr(model, "article_id", None)
        pending.append((key.encode() if key else None, model.model_dump_json().encode("utf-8")))
    delay = min(0.5, max_wait_s)
    while pending:
        # force: publish now, not at commit time (alerts within a second)
        futures = [await topic.send(key=k, value=v, force=True) for k, v in pending]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [kv for kv, r in zip(pending, results, strict=True) if isinstance(r, Exception)]
        if failed:
            error = next(r for r in results if isinstance(r, Exception))
            log.warning(
                "%d of %d sends not acknowledged (%r); sending again in %.1fs",
                len(failed),
                len(pending),
                error,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_wait_s)
        pending = failed


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
        status_file = getattr(self.app, "status_file", None)
        if status_file is not None:
            status_file.unlink(missing_ok=True)
        await super().on_stop()


def run_worker(loglevel: str = "info") -> None:
    """Set up topics and indices, then run the worker until interrupted."""
    from pipeline.infra.setup import setup

    settings = get_settings()
    for noisy in ("elastic_transport", "kafka"):  # one line per request is not a worker log
        logging.getLogger(noisy).setLevel(logging.WARNING)
    setup(settings)
    (settings.data_dir / "worker").mkdir(parents=True, exist_ok=True)  # Faust's datadir
    pipeline = Pipeline(settings, parse_process=settings.nlp_process, mark_subscriptions=True)
    pipeline.warm_up()  # before any agent thread: spaCy's imports are not thread-safe
    # what is loaded by now (models, tables, clients) lives as long as the worker: keep it out
    # of the garbage collector's scans, which otherwise walk it again and again
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    metrics.watch_gc()
    log.info("newspipe worker ready: model %s", settings.spacy_model)
    app = create_app(settings, pipeline)
    worker = Worker(app, ready_path(settings, os.getpid()), loglevel=loglevel)
    worker.execute_from_commandline()
