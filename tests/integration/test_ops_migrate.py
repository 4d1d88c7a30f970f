"""Mapping changes on the real node: an additive field reaches the existing index through
put_mapping; a field whose type changes is applied by migrate (next index, copy, alias swap)
while a writer keeps indexing through the alias, and nothing written is lost."""

from __future__ import annotations

import copy
import logging
import threading
import uuid

import pytest

from pipeline.infra.es import FAMILIES, ensure_indices, template_body
from pipeline.ops import migrate as mig
from pipeline.ops.retention import family_indices
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(es_client, es_url):
    run = f"mig{uuid.uuid4().hex[:8]}"
    s = Settings(_env_file=None, es_url=es_url, index_prefix=run)
    yield s
    for family in FAMILIES:
        names = [i.name for i in family_indices(es_client, s.index(family))]
        if names:
            es_client.indices.delete(index=",".join(names), ignore_unavailable=True)


def test_type_change_migrates_while_the_stream_writes(es_client, settings, caplog):
    alias = settings.index("articles")
    old_mapping = copy.deepcopy(template_body("articles")["mappings"])
    old_mapping["properties"]["source"] = {"type": "text"}  # the type the template changed
    del old_mapping["properties"]["story_id"]  # a field the template added since
    es_client.indices.create(
        index=f"{alias}-000001", mappings=old_mapping, aliases={alias: {"is_write_index": True}}
    )
    for n in range(300):
        es_client.index(
            index=alias,
            id=f"old{n}",
            document={"id": f"old{n}", "source": "Reuters", "story_id": "s"},
        )

    with caplog.at_level(logging.WARNING, logger="pipeline.infra.es"):
        ensure_indices(es_client, settings)  # additive path: story_id added; source cannot change
    assert "newspipe migrate" in caplog.text
    mapping = es_client.indices.get_mapping(index=alias)[f"{alias}-000001"]["mappings"][
        "properties"
    ]
    assert mapping["story_id"]["type"] == "keyword" and mapping["source"]["type"] == "text"
    assert mig.plan(es_client, settings) == {
        "articles": [f"{alias}-000001 source: type text -> keyword"]
    }

    written, stop = [], threading.Event()

    def writer():  # the stream: keeps indexing through the alias during the migration
        n = 0
        while not stop.is_set() or n < 50:
            es_client.index(index=alias, id=f"new{n}", document={"id": f"new{n}", "source": "AP"})
            written.append(f"new{n}")
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        report = mig.migrate(es_client, settings, "articles", page=50)
    finally:
        stop.set()
        thread.join()

    assert report.new_index == f"{alias}-000002" and report.deleted == [f"{alias}-000001"]
    assert report.copied + report.skipped >= 300
    assert list(es_client.indices.get_alias(name=alias)) == [f"{alias}-000002"]
    mapping = es_client.indices.get_mapping(index=alias)[f"{alias}-000002"]["mappings"][
        "properties"
    ]
    assert mapping["source"]["type"] == "keyword"
    es_client.indices.refresh(index=alias)
    assert es_client.count(index=alias)["count"] == 300 + len(written), "nothing written is lost"
    sources = es_client.search(index=alias, size=0, aggs={"s": {"terms": {"field": "source"}}})[
        "aggregations"
    ]["s"]["buckets"]
    assert {b["key"]: b["doc_count"] for b in sources} == {"Reuters": 300, "AP": len(written)}
    assert mig.plan(es_client, settings) == {}


def run_cli(settings, *args) -> str:
    import os

    from tests.integration.conftest import run_newspipe

    env = {**os.environ, "NEWS_ES_URL": settings.es_url, "NEWS_INDEX_PREFIX": settings.index_prefix}
    return run_newspipe(env, *args)


def test_newspipe_migrate_applies_a_type_change(es_client, settings):
    """The command a user runs: `--dry-run` names the conflict and changes nothing; then
    `newspipe migrate` (default: the families that need it) moves the alias to a new index
    with the template's type, documents copied."""
    alias = settings.index("articles")
    ensure_indices(es_client, settings)  # every family as the template says ...
    old_mapping = copy.deepcopy(template_body("articles")["mappings"])
    old_mapping["properties"]["source"] = {"type": "text"}  # ... but articles from an older one
    es_client.indices.delete(index=f"{alias}-000001")
    es_client.indices.create(
        index=f"{alias}-000001", mappings=old_mapping, aliases={alias: {"is_write_index": True}}
    )
    for n in range(20):
        es_client.index(index=alias, id=f"doc{n}", document={"id": f"doc{n}", "source": "Reuters"})

    dry = run_cli(settings, "migrate", "--dry-run")
    assert "articles needs a new index" in dry and "source: type text -> keyword" in dry
    assert "would migrate: articles" in dry
    assert list(es_client.indices.get_alias(name=alias)) == [f"{alias}-000001"], (
        "a dry run changes nothing"
    )

    done = run_cli(settings, "migrate")
    assert f"articles: {alias}-000001 -> {alias}-000002; copied 20" in done
    assert list(es_client.indices.get_alias(name=alias)) == [f"{alias}-000002"]
    mapping = es_client.indices.get_mapping(index=alias)[f"{alias}-000002"]["mappings"][
        "properties"
    ]
    assert mapping["source"]["type"] == "keyword"
    es_client.indices.refresh(index=alias)
    assert es_client.count(index=alias, query={"term": {"source": "Reuters"}})["count"] == 20
    assert "mappings up to date: nothing to migrate" in run_cli(settings, "migrate")


def test_state_indices_refresh_at_the_configured_interval_new_and_existing(es_client, settings):
    """The state families (fingerprints, alerts, stories, entities) take
    ``NEWS_STATE_REFRESH_S`` when created and when setup runs again with another value; the
    articles (what users search) take the backstop while the writers refresh after their
    writes (``NEWS_ARTICLES_REFRESH_ON_WRITE``, the default), else ``NEWS_ARTICLES_REFRESH_S``,
    likewise."""
    from pipeline.infra.es import STATE_FAMILIES

    def intervals() -> dict[str, str]:
        found = {}
        for family in (*STATE_FAMILIES, "articles"):
            alias = settings.index(family)
            got = es_client.indices.get_settings(index=alias, name="index.refresh_interval")
            (values,) = got.values()
            found[family] = values["settings"]["index"]["refresh_interval"]
        return found

    ensure_indices(es_client, settings)
    first = intervals()
    assert {first[f] for f in STATE_FAMILIES} == {"5000ms"} and first["articles"] == "2000ms"
    ensure_indices(es_client, settings.model_copy(update={"state_refresh_s": 2.5}))
    again = intervals()
    assert {again[f] for f in STATE_FAMILIES} == {"2500ms"} and again["articles"] == "2000ms"
    clock = {"articles_refresh_s": 0.25, "articles_refresh_on_write": False}
    ensure_indices(es_client, settings.model_copy(update=clock))
    assert intervals()["articles"] == "250ms"
