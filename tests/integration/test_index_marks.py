"""The index step against the real Elasticsearch: the articles and their dedupe records'
``indexed`` marks go in one bulk request, and the mark of an article the index rejects is set
back to ``pending`` (a replay of it from the dead-letter topic is then processed, not
skipped as done)."""

from __future__ import annotations

import pytest

from pipeline.stages.dedupe_store import INDEXED, PENDING
from pipeline.stream.process import Pipeline
from schemas import EnrichedArticle
from tests.integration.conftest import own_indices
from tests.unit.test_dedupe import article, seed_text

pytestmark = pytest.mark.integration


class Counted:
    """The real client, counting the bulk requests made through it."""

    def __init__(self, es) -> None:
        self._es = es
        self.bulks = 0

    def __getattr__(self, name: str):
        if name == "bulk":
            self.bulks += 1
        return getattr(self._es, name)


@pytest.fixture
def pipeline(kafka_bootstrap, es_url, es_client):
    with own_indices(es_client, kafka_bootstrap, es_url, "marks") as settings:
        yield Pipeline(settings, es=Counted(es_client))


def status(pipeline: Pipeline, es_client, fingerprint: str) -> str:
    index = pipeline.settings.index("fingerprints")
    return es_client.get(index=index, id=fingerprint)["_source"]["status"]


def test_one_request_marks_the_indexed_and_a_rejected_article_stays_pending(
    pipeline, es_client
) -> None:
    good, bad = article("good-1", seed_text(0)), article("bad-1", seed_text(1))
    results = pipeline.deduper.check([good, bad])
    assert [r.status for r in results] == ["new", "new"]
    enriched = [
        EnrichedArticle(**r.article.model_dump(exclude={"schema_version"})) for r in results
    ]
    assert all(a.fingerprint for a in enriched)
    # a keyword over 32766 bytes: the index rejects this article's document only
    enriched[1].source = "x" * 40_000
    before = pipeline.es.bulks
    rejected = pipeline.index(enriched)
    assert [(a.id, bool(error)) for a, error in rejected] == [("bad-1", True)]
    assert pipeline.es.bulks - before == 2  # the articles with the marks; then the undo
    assert status(pipeline, es_client, enriched[0].fingerprint) == INDEXED
    assert status(pipeline, es_client, enriched[1].fingerprint) == PENDING
    # the indexed article's redelivery is skipped; the rejected one's replay is processed
    again_good, again_bad = pipeline.deduper.check([good, bad])
    assert again_good.redelivered and again_bad.is_new and not again_bad.redelivered

    before = pipeline.es.bulks
    assert pipeline.index(enriched[:1]) == []
    assert pipeline.es.bulks - before == 1  # nothing rejected: one request
