"""Articles in languages without a spaCy pipeline, through Kafka, the worker and Elasticsearch:
no entities, a note saying why, and keyword subscriptions in their script still fire."""

from __future__ import annotations

import json
import time

import pytest

ARTICLES = {
    "lang-ru-1": (
        "ru",
        "Владимир Путин встретился с Си Цзиньпином в Москве. Стороны обсудили "
        "торговлю и энергетику, сообщил Кремль в среду вечером.",
    ),
    "lang-el-1": (
        "el",
        "Ο πρωθυπουργός Κυριάκος Μητσοτάκης συναντήθηκε με τον Έντι Ράμα στην "
        "Αθήνα την Τρίτη για να συζητήσουν το εμπόριο και την ενέργεια.",
    ),
}
QUERIES = {"Путин": "lang-ru-1", "Μητσοτάκης": "lang-el-1", '"στην Αθήνα"': "lang-el-1"}


def _alerted(stack, subscription_id: str) -> set[str]:
    stack.es.indices.refresh(index=stack.settings.index("alerts"))
    hits = stack.es.search(
        index=stack.settings.index("alerts"),
        query={"term": {"subscription_id": subscription_id}},
        size=50,
    )["hits"]["hits"]
    return {h["_source"]["article_id"] for h in hits}


@pytest.fixture(scope="module")
def languages(stack, tmp_path_factory):
    from pipeline.alerts.subscriptions import SubscriptionStore

    store = SubscriptionStore(stack.settings, stack.es)
    subscriptions = {query: store.add(query, owner="languages").id for query in QUERIES}
    store.close()
    path = tmp_path_factory.mktemp("languages") / "articles.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(
                {"id": key, "title": key, "body": body, "language": lang, "source": "test"},
                ensure_ascii=False,
            )
            for key, (lang, body) in ARTICLES.items()
        )
        + "\n",
        "utf-8",
    )
    report = stack.publish([path])
    assert report.sent == len(ARTICLES)
    stack.wait_indexed(ARTICLES)
    return subscriptions


@pytest.mark.parametrize("key", sorted(ARTICLES))
def test_no_pipeline_no_entities_and_the_document_says_so(stack, languages, key):
    doc = stack.es.get(index=stack.settings.index("articles"), id=key)["_source"]
    assert doc["entities"] == [] and doc["entity_ids"] == []
    assert doc["nlp_model"] is None and "no entities" in doc["nlp_note"]


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_keyword_subscriptions_in_other_scripts_fire(stack, languages, query):
    deadline = time.monotonic() + 30
    while (got := _alerted(stack, languages[query])) != {
        QUERIES[query]
    } and time.monotonic() < deadline:
        time.sleep(0.3)
    assert got == {QUERIES[query]}
