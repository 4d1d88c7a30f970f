"""Which dead letters a replay selects, and where each goes (no server)."""

from datetime import UTC, datetime, timedelta

from pipeline.infra.deadletter import dead_letter
from pipeline.ops.replay import Filter, letter_id, select, target_topic
from pipeline.settings import Settings

SETTINGS = Settings(_env_file=None, topic_prefix="p", enrich_indexes=False)


def letters():
    a = dead_letter("clean", ValueError("body too long"), b'{"id": "a"}', topic="p.raw", key="a")
    b = dead_letter(
        "index", "mapper_parsing_exception: bad date", b'{"id": "b"}', topic="p.enriched", key="b"
    )
    c = dead_letter("ingest", "not JSON", b'{"id": "c", "title": "x"}')  # no topic, no key
    d = dead_letter("decode", "invalid", b"\xff\xfe binary", topic="p.clean")
    return a, b, c, d


def test_each_letter_goes_back_to_the_topic_its_stage_read():
    a, b, c, d = letters()
    assert [target_topic(x, SETTINGS) for x in (a, b, c, d)] == [
        "p.raw",
        "p.enriched",
        "p.raw",
        "p.clean",
    ]
    assert letter_id(c) == "c" and letter_id(d) is None


def test_a_letter_of_the_enriched_topic_goes_to_the_enrich_agent_when_it_indexes():
    """With NEWS_ENRICH_INDEXES (the default) nothing reads the enriched topic: the letter goes
    to the clean topic, where its enriched article reads as a clean one."""
    from schemas import CleanArticle, EnrichedArticle

    fused = Settings(_env_file=None, topic_prefix="p", enrich_indexes=True)
    article = EnrichedArticle(
        id="b",
        source="s",
        url="https://example.com/b",
        title="T",
        body="Body text.",
        language="en",
        ingested_at=datetime.now(UTC),
        entities=[],
        events=[],
    )
    payload = article.model_dump_json().encode()
    b = dead_letter("index", "mapper_parsing_exception", payload, topic="p.enriched", key="b")
    no_topic = dead_letter("alerts", "rejected", payload, key="b")
    assert target_topic(b, fused) == target_topic(no_topic, fused) == "p.clean"
    assert CleanArticle.model_validate_json(payload).id == "b"


def test_filters_combine():
    a, b, c, d = letters()
    everything = [a, b, c, d]

    def keys(keep):
        return [letter_id(x) for _, x in select(everything, keep, SETTINGS).selected]

    assert keys(Filter()) == ["a", "b", "c", None]
    assert keys(Filter(stages=("clean", "index"))) == ["a", "b"]
    assert keys(Filter(reason="MAPPER_parsing")) == ["b"]
    assert keys(Filter(reason="valueerror")) == ["a"]  # the error type counts too
    assert keys(Filter(ids=("c",))) == ["c"]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert keys(Filter(since=future)) == []
    assert keys(Filter(until=future.replace(tzinfo=None), stages=("ingest",))) == ["c"]
    assert select(everything, Filter(stages=("index",)), SETTINGS).by_topic() == {"p.enriched": 1}
