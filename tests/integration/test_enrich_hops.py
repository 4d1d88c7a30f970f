"""Where the worker indexes and matches the enriched articles: in the enrich agent, right after
the NER (``NEWS_ENRICH_INDEXES``, the default: the session's ``stack``), or in an index agent
and an alerts agent reading them back from the enriched topic (a worker of its own here, which
also indexes each article's text before its NER: ``NEWS_INDEX_CLEAN``)."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from schemas import Alert, EnrichedArticle
from tests.integration.conftest import GOLD, REPO, Stack, Worker, own_indices

pytestmark = pytest.mark.integration

ENTITY_ALERT = next(i for i in GOLD["alerts"]["required"] if "entity:" in i["query"])
KEYWORD_ALERT = next(i for i in GOLD["alerts"]["required"] if ":" not in i["query"])


def test_the_enrich_agent_publishes_the_articles_it_indexes(stack):
    """The enriched topic still carries every enriched article, with the enrich step's stamps;
    the indexed document adds the index step's."""
    published = {
        a.id: a for a in map(EnrichedArticle.model_validate_json, stack.topic_values("enriched"))
    }
    assert set(stack.seed_ids.values()) <= set(published)
    for key, article_id in stack.seed_ids.items():
        doc, article = stack.article(key), published[article_id]
        assert {e["id"] for e in doc["entities"]} == {e.id for e in article.entities}
        assert {"enrich_taken", "enriched"} <= set(article.stage_times)
        assert "index_taken" not in article.stage_times
        assert "index_taken" in doc["stage_times"]


@pytest.fixture(scope="module")
def hopping(kafka_bootstrap, es_url, es_client, tmp_path_factory):
    """A worker with NEWS_ENRICH_INDEXES=false on prefixes of its own, the gold entity and
    keyword subscriptions made before the seeds arrive."""
    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.infra.setup import setup

    data_dir = tmp_path_factory.mktemp("hopping")
    app_id = f"newspipe-test-h{uuid.uuid4().hex[:8]}"
    with own_indices(
        es_client,
        kafka_bootstrap,
        es_url,
        "h",
        app_id=app_id,
        data_dir=data_dir,
        enrich_indexes=False,
        index_clean=True,
    ) as settings:
        setup(settings)
        env = {
            **os.environ,
            "NEWS_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "NEWS_ES_URL": es_url,
            "NEWS_TOPIC_PREFIX": settings.topic_prefix,
            "NEWS_INDEX_PREFIX": settings.index_prefix,
            "NEWS_APP_ID": app_id,
            "NEWS_DATA_DIR": str(data_dir),
            "NEWS_ENRICH_INDEXES": "false",
            "NEWS_INDEX_CLEAN": "true",
        }
        worker = Worker(env=env, log_path=data_dir / "worker.log")
        stack = Stack(settings=settings, es=es_client, worker=worker)
        store = SubscriptionStore(settings, es_client)
        for item in (ENTITY_ALERT, KEYWORD_ALERT):
            stack.subscriptions[item["query"]] = store.add(item["query"], owner="gold").id
        store.close()
        worker.start()
        try:
            worker.wait_ready(settings)
            report = stack.publish([REPO / "seeds"])
            assert report.sent == 5 and not report.rejected
            stack.sent_ids = list(report.ids)
            yield stack
        finally:
            worker.stop()


def _alerts(stack: Stack, subscription_id: str, want: int, timeout_s: float = 120) -> list[Alert]:
    deadline = time.monotonic() + timeout_s
    while True:
        alerts = [
            a
            for a in map(Alert.model_validate_json, stack.topic_values("alerts"))
            if a.subscription_id == subscription_id
        ]
        if len({a.article_id for a in alerts}) >= want or time.monotonic() > deadline:
            return alerts
        if stack.worker.process.poll() is not None:
            pytest.fail("worker died:\n" + stack.worker.log_tail())
        time.sleep(0.5)


def test_index_and_alerts_agents_on_the_enriched_topic(hopping):
    """NEWS_ENRICH_INDEXES=false: the articles reach the index and the entity subscriptions
    through the enriched topic, which the worker group reads (and commits) to its end."""
    from kafka.admin import KafkaAdminClient

    from pipeline.infra.topics import worker_reads

    settings = hopping.settings
    assert worker_reads(settings) == ("raw", "clean", "enriched")
    for item in (ENTITY_ALERT, KEYWORD_ALERT):
        alerts = _alerts(hopping, hopping.subscriptions[item["query"]], len(item["articles"]))
        assert len({a.article_id for a in alerts}) == len(item["articles"]), item["query"]
        hopping.wait_indexed({a.article_id for a in alerts})
        for alert in alerts:
            stages = set(alert.stage_times)
            if item is ENTITY_ALERT:  # matched by the alerts agent on the enriched topic
                assert {"enriched", "alerts_taken"} <= stages
                assert alert.stage_times["alerts_taken"] >= alert.stage_times["enriched"]
            else:  # keyword: on the clean topic, before the NER
                assert not stages & {"enrich_taken", "enriched"}

    enriched = settings.topic("enriched")
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_list)
    try:
        deadline = time.monotonic() + 60
        while True:
            offsets = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
            done = sum(o.offset for tp, o in offsets.items() if tp.topic == enriched)
            if done >= 5 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        admin.close()
    assert done >= 5, offsets  # the five seeds, committed by the enriched topic's agents


def test_each_text_is_indexed_before_its_enriched_document(hopping):
    """NEWS_INDEX_CLEAN: the clean step creates each new article's document (its text), and
    the enriched document replaces it: two writes of each seed, and the enriched one stays."""
    ids = set(hopping.sent_ids)
    hopping.wait_indexed(ids)
    index = hopping.settings.index("articles")
    stats = hopping.es.indices.stats(index=index, metric="indexing")
    assert stats["_all"]["primaries"]["indexing"]["index_total"] >= 2 * len(ids)
    hopping.es.indices.refresh(index=index)
    docs = hopping.es.search(index=index, query={"ids": {"values": sorted(ids)}}, size=10)
    assert {h["_source"]["enriched"] for h in docs["hits"]["hits"]} == {True}
    assert all(h["_source"]["entity_ids"] for h in docs["hits"]["hits"])
