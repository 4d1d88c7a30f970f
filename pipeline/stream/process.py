"""The pipeline's batch steps: the one code path behind the Faust agents, ``newspipe backfill``
/ ``reprocess`` and the benchmarks.

Each step takes a batch and returns what passes on plus dead letters for what failed; one bad
message never fails its batch (:func:`isolate` retries a failed batch item by item to find it).
Transient server faults (Elasticsearch or Kafka unreachable, timeouts, 429/503, a leader
moving: :func:`is_transient`) are not a message's fault: they are retried with a backoff capped
at ``settings.retry_max_wait_s`` (so the stream resumes within a few seconds of the server
answering again) rather than dead-lettered; an outage stalls the stream instead of emptying it.
While it waits, the step says so in :data:`pipeline.runtime.health.HEALTH`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from pipeline.infra import es as _es
from pipeline.infra import kafka as _kafka
from pipeline.infra.deadletter import dead_letter
from pipeline.runtime.health import HEALTH
from pipeline.settings import Settings, get_settings
from pipeline.stream.timing import stamp
from schemas import (
    Alert,
    CleanArticle,
    DeadLetter,
    DuplicateRecord,
    EnrichedArticle,
    RawArticle,
)
from schemas.models import utcnow

if TYPE_CHECKING:
    from pipeline.alerts.matcher import Stage
    from pipeline.alerts.prefilter import Prefilter

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)

SUBSCRIPTIONS_END_WAIT_S = 2.0
"""Longest wait of the clean step for the subscriptions topic's end (its articles go unmarked
after it: their matching then reads the end itself)."""


def is_transient(exc: BaseException) -> bool:
    """A server fault, not the message's: retry, never dead-letter."""
    return _es.is_transient(exc) or _kafka.is_transient(exc)


def server_of(exc: BaseException) -> str:
    return "Elasticsearch" if _es.is_transient(exc) else "Kafka"


@dataclass(frozen=True)
class InMessage:
    """One input message with its Kafka coordinates (None outside Kafka)."""

    value: bytes
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    def dead(self, stage: str, error: BaseException | str) -> DeadLetter:
        return dead_letter(
            stage,
            error,
            self.value,
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            key=self.key,
        )


Prefetched = dict[tuple[str, tuple[str, ...]], Any]
"""(model, the texts of one nlp.pipe) -> its parse started in the parse process."""


@dataclass
class StepResult:
    passed: list = field(default_factory=list)
    duplicates: list[DuplicateRecord] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def retry_transient(fn: Callable[[], R], *, what: str, max_wait_s: float | None = None) -> R:
    """Call ``fn`` until it does not fail with a transient server error (:func:`is_transient`).

    The wait between attempts doubles from 0.2 s up to ``max_wait_s`` (default
    ``settings.retry_max_wait_s``): the call goes on at most that long after the server
    answers again. Other errors propagate at once.
    """
    if max_wait_s is None:
        max_wait_s = get_settings().retry_max_wait_s
    delay = 0.2
    waited = False
    try:
        while True:
            try:
                return fn()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                server = server_of(exc)
                HEALTH.waiting(what, server, exc)
                log.warning(
                    "%s: waiting for %s (%s); retrying in %.1fs",
                    what,
                    server,
                    " ".join(str(exc).split())[:200],
                    delay,
                )
                waited = True
                time.sleep(delay)
                delay = min(delay * 2, max_wait_s)
    finally:
        if waited:
            HEALTH.resumed(what)


def isolate(
    fn: Callable[[list[T]], list[R]], items: Sequence[T]
) -> tuple[list[tuple[T, R]], list[tuple[T, BaseException]]]:
    """Run a batch function; when it raises, run it item by item so that only the items that
    fail by themselves are reported as failed. ``fn`` returns one result per item."""
    if not items:
        return [], []
    try:
        return list(zip(items, fn(list(items)), strict=True)), []
    except Exception as exc:
        if is_transient(exc):
            raise
        if len(items) == 1:
            return [], [(items[0], exc)]
    ok, failed = [], []
    for item in items:
        good, bad = isolate(fn, [item])
        ok += good
        failed += bad
    return ok, failed


class Pipeline:
    """The stages with their resources (model, stores, clients), created on first use."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        es: Any = None,
        nlp: Any = None,
        deduper: Any = None,
        registry: Any = None,
        stories: Any = None,
        parse_process: bool = False,
        mark_subscriptions: bool = False,
    ):
        """Resources not given are made on first use from the settings (Elasticsearch-backed
        dedupe state and entity registry); benchmarks pass in-memory ones.

        ``parse_process``: run ``nlp.pipe`` in a child process
        (:class:`pipeline.stages.nlp_process.ParseProcess`), so that a worker's other steps
        keep the GIL while a batch is parsed (the Faust worker, with ``NEWS_NLP_PROCESS``).

        ``mark_subscriptions``: the clean step reads the subscriptions topic's end while it
        cleans each batch and marks the batch's articles with it (``subscriptions_offset``); the
        alert matching of those articles, in any worker, then asks Kafka nothing once its
        subscription index has applied that far (the Faust worker)."""
        self.settings = settings or get_settings()
        self._es = es
        self._nlp = nlp
        self._nlps: dict[str, Any] = {}  # other languages' pipelines by model setting
        self._deduper = deduper
        self._registry = registry
        self._stories = stories
        self._subscriptions = None
        self._prefilter: tuple[int, Prefilter | None] | None = None
        self._ledger = None
        self._parser: Any = None
        self.parse_process = parse_process and nlp is None
        self.mark_subscriptions = mark_subscriptions
        self._marker: ThreadPoolExecutor | None = None
        self._init_lock = threading.RLock()  # agents run steps in threads: build each resource once
        # other languages' pipelines load under a lock of their own: a load (seconds) must not
        # hold the clean agent's access to the stores
        self._nlps_lock = threading.Lock()

    # --- resources -----------------------------------------------------------------------
    @property
    def es(self):
        with self._init_lock:
            if self._es is None:
                from pipeline.infra.es import make_client

                self._es = make_client(self.settings)
        return self._es

    @property
    def nlp(self):
        with self._init_lock:
            if self._nlp is None:
                from pipeline.stages.nlp import load_nlp

                self._nlp = load_nlp(self.settings.spacy_model)
        return self._nlp

    @property
    def parser(self):
        """The parse process (None when the pipelines run in this process)."""
        if not self.parse_process:
            return None
        with self._init_lock:
            if self._parser is None:
                from pipeline.stages.nlp_process import ParseProcesses

                self._parser = ParseProcesses(
                    self.settings.nlp_processes,
                    self.settings.spacy_model,
                    list(self.settings.spacy_models.values()),
                    batch_size=self.settings.nlp_batch_size,
                    vocab_of=self._vocab_of,
                )
        return self._parser

    def _vocab_of(self, model: str) -> Any:
        """The vocabulary the parse process's documents are rebuilt over: the main pipeline's
        for every language. This process then never loads the other languages' pipelines
        (seconds each); what a vocabulary adds per language (stop words, number words) is
        read by no stage."""
        return self.nlp.vocab

    def pipeline_for(self, language: str | None) -> tuple[str | None, bool]:
        """(model setting, whether articles in ``language`` are parsed): (None, False) when
        the language has no pipeline configured, (model, False) when it cannot be loaded."""
        if self.parser is None:
            model, nlp = self.nlp_for(language)
            return model, nlp is not None
        from pipeline.stages.nlp import model_for_language

        model = model_for_language(language, self.settings)
        return model, model is not None and self.parser.available(model)

    def nlp_for(self, language: str | None) -> tuple[str | None, Any]:
        """(model setting, pipeline) for articles in ``language``; (None, None) when the
        language has no pipeline configured, (model, None) when it is not installed."""
        from pipeline.stages.nlp import ModelNotInstalledError, load_nlp, model_for_language

        model = model_for_language(language, self.settings)
        if model is None:
            return None, None
        if model == self.settings.spacy_model:
            return model, self.nlp
        with self._nlps_lock:
            if model not in self._nlps:
                try:
                    self._nlps[model] = load_nlp(model)
                except (ModelNotInstalledError, OSError) as exc:
                    log.warning("no entities for language %r: %s", language, exc)
                    self._nlps[model] = None
            return model, self._nlps[model]

    @property
    def deduper(self):
        with self._init_lock:
            if self._deduper is None:
                from pipeline.stages.dedupe import Deduper
                from pipeline.stages.dedupe_store import ElasticsearchFingerprintStore

                store = ElasticsearchFingerprintStore(self.es, self.settings.index("fingerprints"))
                self._deduper = Deduper(store, threshold=self.settings.dedupe_threshold)
        return self._deduper

    @property
    def registry(self):
        with self._init_lock:
            if self._registry is None:
                from pipeline.stages.entity_registry import ElasticsearchEntityRegistry

                self._registry = ElasticsearchEntityRegistry(
                    self.es, self.settings.index("entities")
                )
        return self._registry

    @property
    def stories(self):
        """The story assigner (pipeline.stages.stories), over the stories index."""
        with self._init_lock:
            if self._stories is None:
                from pipeline.stages.stories import story_assigner

                self._stories = story_assigner(self.settings, self.es)
        return self._stories

    @property
    def subscriptions(self):
        """The in-memory subscription index, following the subscriptions topic."""
        with self._init_lock:
            if self._subscriptions is None:
                from pipeline.alerts.matcher import SubscriptionIndex
                from pipeline.alerts.subscriptions import SubscriptionFollower

                index = SubscriptionIndex(entity_resolver=self.resolve_entity)
                self._subscriptions = SubscriptionFollower(self.settings, index)
        return self._subscriptions

    @property
    def ledger(self):
        with self._init_lock:
            if self._ledger is None:
                from pipeline.alerts.delivery import AlertLedger

                self._ledger = AlertLedger(self.es, self.settings.index("alerts"))
        return self._ledger

    @property
    def outbox(self):
        with self._init_lock:
            if getattr(self, "_outbox", None) is None:
                from pipeline.alerts.outbox import Outbox

                self._outbox = Outbox(self.es, self.settings)
        return self._outbox

    def resolve_entity(self, name: str) -> set[str]:
        from pipeline.stages.entities import entity_ids_for_name

        return entity_ids_for_name(name, self.registry)

    def warm_up(self) -> None:
        """Load the model and connect the stores now rather than on the first message."""
        from pipeline.stages.language import get_detector

        loading = self.parser.start() if self.parser is not None else None  # loads meanwhile
        _ = self.deduper, self.registry, self.subscriptions, self.ledger, self.stories
        get_detector()
        list(self.nlp.pipe(["Warm-up: the first batch should not pay for lazy initialisation."]))
        if loading is not None:
            # ready means every pipeline is loaded: a load (about 6 s for fr_core_news_sm)
            # would otherwise hold up the parse process's first batches
            loading.result()
            return
        # the other languages' pipelines (NEWS_SPACY_MODELS) load in the background: the first
        # article in such a language would otherwise stop its enrich step for the load (about
        # 6 s for fr_core_news_sm on an idle core); one arriving earlier waits for the load
        threading.Thread(target=self._load_languages, name="load-pipelines", daemon=True).start()

    def _load_languages(self) -> None:
        for language in self.settings.spacy_models:
            try:
                self.nlp_for(language)
            except Exception as exc:  # pragma: no cover - nlp_for logs what it cannot load
                log.warning("pipeline for language %r not loaded: %s", language, exc)

    # --- steps -------------------------------------------------------------------------------
    def clean_and_dedupe(
        self, messages: Sequence[InMessage], *, reprocess: bool = False
    ) -> StepResult:
        """raw bytes -> CleanArticle (new ones) / DuplicateRecord / DeadLetter.

        ``reprocess``: an article already fully processed under the same id is processed again
        (re-enrichment after a model or rule change) instead of being reported a duplicate.
        """
        from pipeline.stages.clean import clean_many

        taken = utcnow()
        # read after the batch was taken, so after each of its articles was produced; in a
        # thread of its own, while the batch is cleaned and checked (one request to the broker)
        reading = (
            self._marker_pool().submit(lambda: self.subscriptions.end(SUBSCRIPTIONS_END_WAIT_S))
            if self.mark_subscriptions
            else None
        )
        result = StepResult()
        raws, result.dead = decode(messages, RawArticle)
        cleaned: list[tuple[InMessage, CleanArticle]] = []
        # one clean_many per batch (one language detection call); an article that cannot be
        # cleaned (CleanError, or a bug) comes back as its exception and goes to the DLQ
        limit = self.settings.max_body_chars
        outcomes, failed_batch = isolate(
            lambda pairs: clean_many([raw for _, raw in pairs], max_body_chars=limit), raws
        )
        for (message, _), outcome in [*outcomes, *failed_batch]:
            if isinstance(outcome, CleanArticle):
                cleaned.append((message, outcome))
            elif is_transient(outcome):
                raise outcome  # a server fault is never the article's: the step retries
            else:
                result.dead.append(message.dead("clean", outcome))
        ok, failed = retry_transient(
            lambda: isolate(lambda pairs: self.deduper.check([a for _, a in pairs]), cleaned),
            what="dedupe",
        )
        result.dead += [message.dead("dedupe", exc) for (message, _), exc in failed]
        redelivered = 0
        for _, outcome in ok:  # outcome: DedupeResult
            if outcome.redelivered:  # already processed: not a duplicate of itself
                redelivered += 1
                if reprocess:
                    result.passed.append(outcome.article)
            elif outcome.record is not None:
                result.duplicates.append(outcome.record)
            else:
                result.passed.append(outcome.article)
        if redelivered and not reprocess:
            log.info("dedupe: %d redelivered article(s) already processed, skipped", redelivered)
        done = utcnow()
        offset = self._subscriptions_mark(reading)
        for article in result.passed:
            stamp(article, clean_taken=taken, deduped=done)
            article.subscriptions_offset = offset
        return result

    def _marker_pool(self) -> ThreadPoolExecutor:
        with self._init_lock:
            if self._marker is None:
                self._marker = ThreadPoolExecutor(1, thread_name_prefix="newspipe-marks")
        return self._marker

    def _subscriptions_mark(self, reading: Future[int] | None) -> int | None:
        """The subscriptions topic's end read for this batch, or None when it was not read (or
        not in time): the articles then go unmarked, and their matching catches up itself."""
        if reading is None:
            return None
        try:
            return reading.result(timeout=SUBSCRIPTIONS_END_WAIT_S)
        except Exception as exc:
            log.info("clean: subscriptions end not read (%r); matching will catch up itself", exc)
            return None

    def prefetch(self, messages: Sequence[InMessage]) -> Prefetched | None:
        """Start parsing the batch's articles in the parse process and return at once; pass
        the result to :meth:`enrich` of the same messages, which then waits only for what is
        not parsed yet. None without a parse process (or when nothing can be started)."""
        if self.parser is None:
            return None
        articles, _ = decode(messages, CleanArticle)
        groups = self._parse_groups([a for _, a in articles])
        started: Prefetched = {}
        for model, indices in groups.items():
            texts = tuple(articles[i][1].body for i in indices)
            started[(model, texts)] = self.parser.submit(model, texts)
        return started

    def enrich(
        self,
        messages: Sequence[InMessage],
        *,
        prefetched: Prefetched | None = None,
        taken: datetime | None = None,
    ) -> StepResult:
        """CleanArticle -> EnrichedArticle: entities and events, one nlp.pipe over the batch
        (``prefetched``: its parses started by :meth:`prefetch`; ``taken``: when the batch was
        taken, stamped as ``enrich_taken``, by default now)."""
        taken = taken or utcnow()
        result = StepResult()
        articles, result.dead = decode(messages, CleanArticle)
        ok, failed = retry_transient(
            lambda: isolate(
                lambda pairs: self.enrich_articles([a for _, a in pairs], prefetched=prefetched),
                articles,
            ),
            what="enrich",
        )
        result.dead += [message.dead("enrich", exc) for (message, _), exc in failed]
        done = utcnow()
        result.passed = [stamp(enriched, enrich_taken=taken, enriched=done) for _, enriched in ok]
        return result

    def _parse_groups(self, articles: Sequence[CleanArticle]) -> dict[str, list[int]]:
        """Model -> indices of the articles it parses (one nlp.pipe per language pipeline;
        articles in a language without one are left out)."""
        groups: dict[str, list[int]] = {}
        for i, article in enumerate(articles):
            model, parsed = self.pipeline_for(article.language)
            if model is not None and parsed:
                groups.setdefault(model, []).append(i)
        return groups

    def _parse(
        self, model: str, texts: list[str], prefetched: Prefetched | None = None
    ) -> list[Any]:
        from pipeline.stages.entities import parse

        # a started parse is used once: a retry of the same texts must parse them anew
        started = (prefetched or {}).pop((model, tuple(texts)), None)
        if self.parser is not None:
            from pipeline.stages.nlp_process import ParseProcessDied

            try:
                if started is not None:
                    return self.parser.docs(started)
                return self.parser.parse(model, texts)
            except ParseProcessDied:
                # killed from outside, or by one of these texts: once more in a new process.
                # Texts that kill it again fail their batch, which isolate then splits; a
                # batch of one article would otherwise be dead-lettered at the first death
                log.warning("enrich: the parse process died; parsing %d text(s) again", len(texts))
                return self.parser.parse(model, texts)
        nlp = self.nlp if model == self.settings.spacy_model else self._nlps[model]
        return parse(nlp, texts, batch_size=self.settings.nlp_batch_size)

    def enrich_articles(
        self, articles: list[CleanArticle], *, prefetched: Prefetched | None = None
    ) -> list[EnrichedArticle]:
        from pipeline.stages.entities import extract_entities
        from pipeline.stages.events import tag_events

        started = time.perf_counter()
        groups = self._parse_groups(articles)
        models: list[str | None] = [None] * len(articles)
        notes: list[str | None] = [None] * len(articles)
        docs: list[Any] = [None] * len(articles)
        for model, indices in groups.items():
            parsed_docs = self._parse(model, [articles[i].body for i in indices], prefetched)
            for i, doc in zip(indices, parsed_docs, strict=True):
                docs[i], models[i] = doc, model
        for i, article in enumerate(articles):
            if docs[i] is None:
                notes[i] = _no_pipeline_note(
                    article.language, self.pipeline_for(article.language)[0]
                )
        parsed = time.perf_counter()
        with_doc = [i for i, doc in enumerate(docs) if doc is not None]
        entities: list[list] = [[] for _ in articles]
        found = extract_entities(
            [articles[i] for i in with_doc], [docs[i] for i in with_doc], self.registry
        )
        for i, ents in zip(with_doc, found):
            entities[i] = ents
        extracted = time.perf_counter()
        events = [
            tag_events(doc, ents, a.title) if doc is not None else []
            for doc, ents, a in zip(docs, entities, articles)
        ]
        tagged = time.perf_counter()
        share = 1000 / max(len(articles), 1)  # per-article share of the batch's time, ms
        timings = {
            "nlp": (parsed - started) * share,
            "entities": (extracted - parsed) * share,
            "events": (tagged - extracted) * share,
        }
        enriched = [
            EnrichedArticle(
                **article.model_dump(exclude={"schema_version"}),
                entities=ents,
                events=evs,
                timings_ms=timings,
                nlp_model=model,
                nlp_note=note,
            )
            for article, ents, evs, model, note in zip(articles, entities, events, models, notes)
        ]
        self.stories.assign(enriched)  # sets story_id; one sync and one write per story per batch
        for article in enriched:
            article.timings_ms["stories"] = (time.perf_counter() - tagged) * share
        return enriched

    def decode_enriched(self, messages: Sequence[InMessage]) -> StepResult:
        return _decoded(messages, EnrichedArticle)

    def index(self, articles: list[EnrichedArticle]) -> list[tuple[EnrichedArticle, str]]:
        """Bulk-index; then the dedupe state records the articles as indexed. Returns the
        (article, error) pairs Elasticsearch rejected."""
        from pipeline.stages.index import index_articles

        if not articles:
            return []
        taken = utcnow()
        for article in articles:
            stamp(article, index_taken=taken)
        failures = retry_transient(
            lambda: index_articles(self.es, self.settings.index("articles"), articles),
            what="index",
        )
        done = [a.fingerprint for a in articles if a.id not in failures and a.fingerprint]
        retry_transient(lambda: self.deduper.store.mark_indexed(done), what="mark indexed")
        return [(a, failures[a.id]) for a in articles if a.id in failures]

    def refresh_articles(self) -> None:
        """Refresh the articles index (its alias: every index behind it) now, so that what
        was just written is found by searches (:class:`pipeline.stream.background.ArticlesRefresh`
        calls it after the writes, off the articles' path)."""
        self.es.indices.refresh(index=self.settings.index("articles"))

    def index_clean(self, articles: list[CleanArticle]) -> int:
        """Make new articles searchable by their text before their enrichment (one bulk of
        creates, :func:`pipeline.stages.index.index_clean_articles`); returns how many
        documents Elasticsearch rejected. One attempt: the enriched document is the one that
        must be written, and a server fault here is left to that write."""
        from pipeline.stages.index import index_clean_articles

        if not articles:
            return 0
        failures = index_clean_articles(self.es, self.settings.index("articles"), articles)
        for article_id, error in list(failures.items())[:3]:
            log.warning("index (before enrichment): %s rejected: %s", article_id, error[:200])
        return len(failures)

    def alert_prefilter(self) -> Prefilter | None:
        """Which clean articles could fire an alert of a subscription matched after the NER
        (every subscription with NEWS_ALERTS_ON_CLEAN=false), told from their words
        (pipeline.alerts.prefilter); None: any article could. Rebuilt when the subscriptions
        change; a subscription index being changed meanwhile (by a step thread) gives None
        this time."""
        if self._subscriptions is None:
            return None
        index = self._subscriptions.index
        cached = self._prefilter
        if cached is not None and cached[0] == index.version:
            return cached[1]
        from pipeline.alerts.prefilter import build_prefilter

        version = index.version
        stages: tuple[Stage, ...] = ("enriched",)
        if not self.settings.alerts_on_clean:
            stages = ("clean", "enriched")
        try:
            built = build_prefilter(a for s in stages for a in index.immediate_anchors(s))
        except RuntimeError:  # changed while read
            return None
        self._prefilter = (version, built)
        return built

    def could_alert_after_nlp(self, value: bytes | None) -> bool:
        """Whether the clean article in ``value`` (a clean topic message) could fire an alert
        after the NER (:meth:`alert_prefilter`): the enrich agent takes those first under
        backlog. A value that does not decode could: it goes its way in order."""
        prefilter = self.alert_prefilter()
        if prefilter is None:
            return True
        if not prefilter:
            return False
        try:
            data = json.loads(value or b"")
            return prefilter.could_match(str(data.get("title") or ""), str(data.get("body") or ""))
        except (ValueError, AttributeError):
            return True

    def decode_clean(self, messages: Sequence[InMessage]) -> StepResult:
        return _decoded(messages, CleanArticle)

    def match_alerts(
        self, articles: Sequence[CleanArticle], stage: Stage | None = None
    ) -> StepResult:
        """Match articles against the active subscriptions and claim the alerts in the ledger
        (never a second time for the same subscription and article); returns the alerts to
        publish now. ``stage``: only the subscriptions matched there
        (pipeline.alerts.matcher.match_stage): ``clean`` for clean articles, before the NER;
        ``enriched`` for enriched ones; None: every subscription. An alert the index rejects
        is a dead letter of its own (stage ``alerts``): the other subscriptions' alerts go on."""
        from pipeline.alerts.delivery import make_alert
        from pipeline.alerts.matcher import ArticleView, snippet

        if not articles:
            return StepResult()
        taken = utcnow()
        marks = [a.subscriptions_offset for a in articles]
        at_least = None if None in marks else max(cast(list[int], marks))
        retry_transient(
            lambda: self.subscriptions.catch_up(at_least=at_least), what="subscriptions"
        )
        index = self.subscriptions.index
        if stage is not None and not index.matched_at(stage):
            return StepResult()
        alerts = []
        for article in articles:
            view = ArticleView.from_article(article)
            for subscription, found in index.match(view, stage):
                alert = make_alert(subscription, article, found, snippet(article, found))
                alerts.append(
                    stamp(alert, **{**(article.stage_times or {}), "alerts_taken": taken})
                )
        fired, rejected = retry_transient(
            lambda: self.ledger.claim_isolated(alerts), what="alert ledger"
        )
        matched = utcnow()
        for alert in fired:
            stamp(alert, matched=matched)
        dead = [
            dead_letter(
                "alerts",
                f"subscription {a.subscription_id}: alerts index rejected the alert: {error}",
                a.model_dump_json().encode("utf-8"),
                key=a.id.encode(),
            )
            for a, error in rejected
        ]
        return StepResult(passed=fired, dead=dead)

    def enqueue_deliveries(self, alerts: list[Alert]) -> list[str]:
        """Put the alerts' webhook deliveries in the outbox and mark them published; returns
        the entries due now (the dispatcher's to send)."""
        if not alerts:
            return []
        known = self.ledger.created([a.id for a in alerts])  # as claimed: no read to mark them
        return retry_transient(
            lambda: self.outbox.enqueue(alerts, self.subscriptions.index.get, known=known),
            what="webhook outbox",
        )


def _no_pipeline_note(language: str | None, model: str | None) -> str:
    if model is None:
        return (
            f"no spaCy pipeline for language {language!r}: no entities or events "
            "(map one in NEWS_SPACY_MODELS)"
        )
    return f"spaCy pipeline {model!r} for language {language!r} is not installed: no entities or events"


def decode(
    messages: Sequence[InMessage], model: type[M]
) -> tuple[list[tuple[InMessage, M]], list[DeadLetter]]:
    """Parse each message as ``model``; one that does not parse becomes a dead letter."""
    decoded, dead = [], []
    for message in messages:
        try:
            decoded.append((message, model.model_validate_json(message.value)))
        except ValidationError as exc:
            dead.append(message.dead("decode", _validation_reason(exc)))
    return decoded, dead


def _decoded(messages: Sequence[InMessage], model: type[BaseModel]) -> StepResult:
    """:func:`decode` as a step result: the models, and dead letters for the rest."""
    decoded, dead = decode(messages, model)
    return StepResult(passed=[item for _, item in decoded], dead=dead)


def _validation_reason(exc: ValidationError) -> str:
    """A pydantic error as one short line a user can act on."""
    errors = exc.errors()
    # a record of a newer major version fails on more fields; its version is the reason
    errors = [e for e in errors if e["loc"] == ("schema_version",)] or errors
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "invalid article: " + "; ".join(parts)
