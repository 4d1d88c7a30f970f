"""Story assignment shared by several workers through the real Elasticsearch stories index:
a second worker joins the first one's story (once it is searchable, within the index's refresh
interval), concurrent writes to one story lose nothing, a redelivered article keeps its story."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.settings import Settings
from pipeline.stages.stories import StoryAssigner, story_assigner
from schemas import EnrichedArticle, Entity

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC) - timedelta(hours=1)
BODY = (
    "Norvale Shipping agreed to buy Kestrel Lines for 2.3 billion euros, creating the largest "
    "container operator in the Baltic. Chief executive Ilse Marquardt said the fleet of 140 "
    "vessels would serve Gdansk, Klaipeda and Riga; regulators in Brussels must approve the deal."
)
OTHER = (
    "Halvorsen Foods said quarterly profit rose 12 percent as sales of frozen fish grew in "
    "Germany and France; chief executive Bjorn Tallaksen will raise the dividend."
)


def entity(name: str, kind: str) -> Entity:
    return Entity(
        id=f"{kind}:{name.lower().replace(' ', '-')}",
        name=name,
        type=kind,
        mentions=2,
        forms=[name],
        offsets=[],
    )


def article(
    aid: str, body: str = BODY, hours: float = 0, source: str = "Baltic Wire"
) -> EnrichedArticle:
    ents = (
        [
            entity("Norvale Shipping", "organization"),
            entity("Kestrel Lines", "organization"),
            entity("Ilse Marquardt", "person"),
        ]
        if body is BODY
        else [entity("Halvorsen Foods", "organization")]
    )
    return EnrichedArticle(
        id=aid,
        title=body.split(",")[0],
        body=body,
        language="en",
        source=source,
        ingested_at=T0 + timedelta(hours=hours),
        published_at=T0 + timedelta(hours=hours),
        entities=ents,
    )


@pytest.fixture
def settings(es_url, es_client):
    from pipeline.infra.es import ensure_indices

    settings = Settings(_env_file=None, es_url=es_url, index_prefix=f"st{uuid.uuid4().hex[:8]}")
    ensure_indices(es_client, settings)
    yield settings
    # left behind, a test's indices are refreshed for as long as the servers run; by name: the
    # node refuses wildcard deletes (action.destructive_requires_name)
    names = list(es_client.indices.get(index=f"{settings.index_prefix}-*", expand_wildcards="all"))
    if names:
        es_client.indices.delete(index=",".join(names))


def stored(es_client, settings, story_id: str) -> dict:
    return es_client.get(index=settings.index("stories"), id=story_id)["_source"]


def test_a_second_worker_joins_the_first_workers_story(es_client, settings):
    one, two = story_assigner(settings, es_client), story_assigner(settings, es_client)
    [a] = one.assign([article("a1")])
    es_client.indices.refresh(index=settings.index("stories"))  # searchable (within a second)
    [b, c] = two.assign([article("b1", hours=2, source="Harbour Daily"), article("c1", OTHER)])
    assert b.story_id == a.story_id != c.story_id
    doc = stored(es_client, settings, a.story_id)
    assert doc["article_count"] == 2 and doc["sources"] == ["Baltic Wire", "Harbour Daily"]


def test_concurrent_writes_to_one_story_lose_nothing(es_client, settings):
    one, two = story_assigner(settings, es_client), story_assigner(settings, es_client)
    [a] = one.assign([article("a1")])
    es_client.indices.refresh(index=settings.index("stories"))
    [b] = two.assign([article("b1", hours=1)])  # two now holds the story too
    # no refresh: each worker's copy is stale when it writes next, a version conflict
    [c] = one.assign([article("c1", hours=2)])
    [d] = two.assign([article("d1", hours=3)])
    assert a.story_id == b.story_id == c.story_id == d.story_id
    doc = stored(es_client, settings, a.story_id)
    assert sorted(doc["article_ids"]) == ["a1", "b1", "c1", "d1"] and doc["article_count"] == 4


def test_a_redelivered_article_keeps_its_story_in_a_fresh_worker(es_client, settings):
    [a, other] = story_assigner(settings, es_client).assign([article("a1"), article("x1", OTHER)])
    es_client.indices.refresh(index=settings.index("stories"))
    restarted = story_assigner(settings, es_client)  # a new process: nothing in memory
    [again] = restarted.assign([article("x1", OTHER)])
    assert again.story_id == other.story_id
    assert stored(es_client, settings, other.story_id)["article_ids"] == ["x1"]
    assert isinstance(restarted, StoryAssigner)


class Recorded:
    """The real client, with a record of the searches and reads made through it."""

    def __init__(self, es) -> None:
        self._es = es
        self.calls: list[tuple[str, dict]] = []

    def __getattr__(self, name: str):
        attr = getattr(self._es, name)
        if name not in ("search", "mget"):
            return attr

        def call(*args, **kwargs):
            result = attr(*args, **kwargs)
            self.calls.append((name, result))
            return result

        return call

    def found(self, name: str) -> list[list[str]]:
        """The ids each ``name`` call (``search`` or ``mget``) returned, call by call."""
        return [
            [d["_id"] for d in (r["hits"]["hits"] if name == "search" else r["docs"])]
            for n, r in self.calls
            if n == name
        ]


def test_a_sync_reads_what_other_workers_wrote_and_skips_its_own_writes(es_client, settings):
    recorded = Recorded(es_client)
    one, two = story_assigner(settings, recorded), story_assigner(settings, es_client)
    [a] = one.assign([article("a1")])
    es_client.indices.refresh(index=settings.index("stories"))
    recorded.calls.clear()
    [x] = one.assign([article("x1", OTHER)])  # its sync: a1's story is its own write
    assert recorded.found("search") == [[]] and recorded.found("mget") == []
    [b] = two.assign([article("b1", hours=1, source="Harbour Daily")])  # two writes a's story
    es_client.indices.refresh(index=settings.index("stories"))
    recorded.calls.clear()
    [c] = one.assign([article("c1", hours=2)])
    # the story two wrote last is read again; x1's story, written by one, is not
    assert recorded.found("search") == [[a.story_id]]
    assert recorded.found("mget") == [[a.story_id]]
    assert a.story_id == b.story_id == c.story_id != x.story_id
    doc = stored(es_client, settings, a.story_id)
    assert sorted(doc["article_ids"]) == ["a1", "b1", "c1"] and doc["writer"] == one.writer
