"""Stream matching over the seed articles: gold alerts, fields, the index, snippets, and
agreement with brute force and with the Elasticsearch translation."""

import json
import random
import re
from pathlib import Path

import pytest

from pipeline.alerts.matcher import (
    ArticleView,
    SubscriptionIndex,
    compile_query,
    match_stage,
    snippet,
)
from pipeline.query.analysis import search_fields, tokens
from pipeline.query.es_query import to_es_query
from pipeline.query.language import QuerySyntaxError, parse_query
from schemas import (
    AlertMatch,
    CleanArticle,
    EnrichedArticle,
    Entity,
    EventTag,
    Mention,
    Subscription,
)

ROOT = Path(__file__).resolve().parents[2]
GOLD = json.loads((ROOT / "tests/fixtures/gold.json").read_text())["alerts"]

#: entities and events as the pipeline would tag them (set by hand here)
PEOPLE = {
    "person:medinski": ("Vladimir Medinsky", r"Medinsky|Medynsky", {"001", "002", "003", "004"}),
    "person:zelenski": ("Volodymyr Zelensky", r"Zelensk\w*", {"000", "002", "003", "004"}),
}
PRISONER_EXCHANGE = {"001", "002", "003", "004"}
NAMES = {name.casefold(): {entity_id} for entity_id, (name, _, _) in PEOPLE.items()}


def resolver(name: str) -> set[str]:
    return NAMES.get(name.casefold(), set())


def _entities(key: str, body: str) -> list[Entity]:
    entities = []
    for entity_id, (name, pattern, keys) in PEOPLE.items():
        found = list(re.finditer(pattern, body))
        if key in keys and found:
            offsets = [Mention(text=m.group(), start=m.start(), end=m.end()) for m in found]
            forms = sorted({m.text for m in offsets})
            entities.append(
                Entity(
                    id=entity_id,
                    name=name,
                    type="person",
                    mentions=len(offsets),
                    forms=forms,
                    offsets=offsets,
                )
            )
    return entities


def _article(path: Path) -> EnrichedArticle:
    key = path.name[:3]
    title, _, body = path.read_text().partition("\n")
    events = (
        [EventTag(type="prisoner_exchange", evidence=["The sides agreed a prisoner swap."])]
        if key in PRISONER_EXCHANGE
        else []
    )
    return EnrichedArticle(
        id=key,
        source="Reuters" if key == "002" else "Kyiv Post",
        title=title,
        body=body,
        language="en",
        ingested_at="2025-06-01T00:00:00Z",
        fingerprint=key,
        entities=_entities(key, body),
        events=events,
    )


ARTICLES = {p.name[:3]: _article(p) for p in sorted((ROOT / "seeds").glob("*.txt"))}
VIEWS = {key: ArticleView.from_article(a) for key, a in ARTICLES.items()}


def _matching(query: str) -> set[str]:
    index = SubscriptionIndex(resolver)
    index.add(Subscription(id="s", query=query))
    return {key for key, view in VIEWS.items() if index.match(view)}


@pytest.mark.parametrize("case", GOLD["required"], ids=lambda c: c["query"])
def test_gold_alerts(case):
    assert _matching(case["query"]) == set(case["articles"])


@pytest.mark.parametrize(
    "query, expected",
    [
        ("Ceasefires", {"000", "001", "002", "003", "004"}),
        ('"cease fire"', {"000", "001", "002", "003", "004"}),
        ("sanction", {"001", "002", "004"}),
        ("SANCTIONS", {"001", "002", "004"}),
        ('"exchange of the greatest prisoners"', {"002"}),
        ("memorandum -Kellogg", {"001", "003", "004"}),
        ("event:prisoner-exchange", PRISONER_EXCHANGE),
        ('event:Prisoner_Exchange AND NOT entity:"Volodymyr Zelensky"', {"001"}),
        ('entity:"Nobody Known" OR sanctions', {"001", "002", "004"}),
        ("source:reuters", {"002"}),
        ("source:REUTERS memorandum", {"002"}),
        ('lang:EN AND "prisoner exchange"', {"001", "003", "004"}),
        ("lang:de AND memorandum", set()),
    ],
)
def test_queries(query, expected):
    assert _matching(query) == expected


def test_title_field_looks_at_the_title_only():
    titles = {key: set(tokens(a.title)) for key, a in ARTICLES.items()}
    assert _matching("title:round") == {k for k, t in titles.items() if "round" in t}
    assert _matching("title:memorandum") == set()


def test_match_reports_what_matched():
    index = SubscriptionIndex(resolver)
    index.add(
        Subscription(
            id="s",
            query='(memorandum OR nothingatall) entity:"Vladimir Medinsky" event:prisoner_exchange -Kellogg',
        )
    )
    [(subscription, match)] = index.match(VIEWS["001"])
    assert subscription.id == "s"
    assert match == AlertMatch(
        terms=["memorandum"], entities=["person:medinski"], events=["prisoner_exchange"]
    )


def test_add_replace_remove_and_inactive():
    index = SubscriptionIndex(resolver)
    index.add(Subscription(id="s", query="memorandum"))
    index.add(Subscription(id="s", query="sanctions"))
    assert len(index) == 1 and {k for k, v in VIEWS.items() if index.match(v)} == {
        "001",
        "002",
        "004",
    }
    assert index.remove("s") and not index.remove("s") and len(index) == 0
    index.add(Subscription(id="off", query="memorandum", active=False))
    assert "off" not in index


@pytest.mark.parametrize(
    ("query", "options", "stage"),
    [
        ("memorandum", {}, "clean"),
        ('title:Kellogg OR "prisoner swap"', {}, "clean"),
        ("source:reuters lang:en sanctions", {}, "clean"),
        ('entity:"Vladimir Medinsky"', {}, "enriched"),
        ("memorandum OR event:prisoner_exchange", {}, "enriched"),
        ("memorandum -entity:person:zelenski", {}, "enriched"),  # an absence needs the NER too
        ("memorandum", {"per_story": True}, "enriched"),  # its alert is the story's
        ("memorandum", {"digest": "daily"}, "enriched"),  # a digest groups alerts by story
    ],
)
def test_a_subscription_is_matched_where_what_it_reads_is_known(query, options, stage):
    subscription = Subscription(id="s", query=query, **options)
    assert match_stage(subscription, compile_query(query, resolver)) == stage
    index = SubscriptionIndex(resolver)
    index.add(subscription)
    assert index.stage_of("s") == stage
    assert index.matched_at(stage)
    assert not index.matched_at("enriched" if stage == "clean" else "clean")


def test_matching_at_a_stage_evaluates_only_that_stages_subscriptions():
    index = SubscriptionIndex(resolver)
    index.add(Subscription(id="words", query="memorandum"))
    index.add(Subscription(id="person", query='entity:"Vladimir Medinsky"'))
    index.add(Subscription(id="story", query="memorandum", per_story=True))
    view = VIEWS["001"]
    assert [s.id for s, _ in index.match(view)] == ["person", "story", "words"]
    assert [s.id for s, _ in index.match(view, "clean")] == ["words"]
    assert [s.id for s, _ in index.match(view, "enriched")] == ["person", "story"]
    index.remove("words")
    assert not index.matched_at("clean") and index.stage_of("words") is None


def test_entity_subscriptions_never_read_the_articles_words():
    """An article's words are analysed when a subscription reads them, not before: matching
    only entity subscriptions leaves them unanalysed (the enriched stage of a worker whose
    keyword subscriptions matched before the NER)."""
    index = SubscriptionIndex(resolver)
    index.add(Subscription(id="person", query='entity:"Vladimir Medinsky"'))
    index.add(Subscription(id="words", query="memorandum"))
    view = ArticleView.from_article(ARTICLES["001"])
    assert [s.id for s, _ in index.match(view, "enriched")] == ["person"]
    assert "_text_spans" not in vars(view) and "_title_spans" not in vars(view)
    assert [s.id for s, _ in index.match(view, "clean")] == ["words"]
    assert "_text_spans" in vars(view)


def test_a_clean_article_is_matched_and_its_snippet_made_without_entities_or_events():
    enriched = ARTICLES["001"]
    clean = CleanArticle(**enriched.model_dump(include=set(CleanArticle.model_fields)))
    view = ArticleView.from_article(clean)
    assert not view.entity_ids and not view.event_types
    assert view.text_keys == VIEWS["001"].text_keys
    index = SubscriptionIndex(resolver)
    index.add(Subscription(id="s", query="memorandum"))
    [(_, match)] = index.match(view, "clean")
    assert "«memorandum»" in snippet(clean, match).casefold()


def test_invalid_query_leaves_the_index_unchanged():
    index = SubscriptionIndex(resolver)
    index.add(Subscription(id="s", query="memorandum"))
    with pytest.raises(QuerySyntaxError):
        index.add(Subscription(id="s", query="memorandum AND"))
    assert len(index.match(VIEWS["000"])) == 1


def test_only_anchored_subscriptions_are_evaluated():
    index = SubscriptionIndex(resolver)
    index.add(Subscription(id="kellogg", query="Kellogg AND (peace OR war)"))
    index.add(Subscription(id="zzz", query='zzzunknownword OR "no such phrase"'))
    assert index.candidates(VIEWS["000"]) == {"kellogg"}
    assert index.candidates(VIEWS["001"]) == set()


def test_default_resolver_takes_entity_ids_literally():
    index = SubscriptionIndex()
    index.add(Subscription(id="s", query="entity:person:medinski"))
    index.add(Subscription(id="t", query='entity:"Vladimir Medinsky"'))
    matched = {key: [s.id for s, _ in index.match(view)] for key, view in VIEWS.items()}
    assert matched == {"000": [], "001": ["s"], "002": ["s"], "003": ["s"], "004": ["s"]}


def test_refresh_entities_follows_the_resolver():
    names: dict[str, set[str]] = {}
    index = SubscriptionIndex(lambda name: names.get(name, set()))
    index.add(Subscription(id="s", query='entity:"Vladimir Medinsky"'))
    assert not index.match(VIEWS["001"])
    names["Vladimir Medinsky"] = {"person:medinski"}
    index.refresh_entities()
    assert index.match(VIEWS["001"])


# --- snippets --------------------------------------------------------------------------------


def test_snippet_highlights_matched_words_in_the_body():
    text = snippet(ARTICLES["001"], AlertMatch(terms=["ceasefire"]))
    assert "«cease-fire»" in text and len(text) <= 210


def test_snippet_of_an_entity_match_shows_its_first_mention():
    text = snippet(ARTICLES["002"], AlertMatch(entities=["person:medinski"]))
    assert "«Medinsky»" in text


def test_snippet_of_an_event_match_is_the_evidence_sentence():
    assert (
        snippet(ARTICLES["002"], AlertMatch(events=["prisoner_exchange"]))
        == "The sides agreed a prisoner swap."
    )


# --- agreement: index vs brute force, stream vs Elasticsearch --------------------------------

VOCABULARY = [
    "memorandum",
    "ceasefire",
    "cease-fire",
    "sanctions",
    "Kellogg",
    "Istanbul",
    "talks",
    "Russia",
    "Ukraine",
    "Putin",
    "peace",
    "war",
    "Medinsky",
    "delegation",
    "June",
    "round",
    "nothingatall",
    "the",
    "Türkiye",
    "Russia's",
    "prisoners",
]
PHRASES = [
    '"prisoner exchange"',
    '"peace talks"',
    '"second round"',
    '"cease fire"',
    '"no such thing"',
]
FIELDS = [
    'entity:"Vladimir Medinsky"',
    'entity:"Volodymyr Zelensky"',
    "event:prisoner_exchange",
    "source:reuters",
    "lang:en",
    "title:talks",
    'title:"peace talks"',
    "event:sanctions",
]


def _random_query(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth >= 3 or roll < 0.45:
        return rng.choice(rng.choice([VOCABULARY, VOCABULARY, PHRASES, FIELDS]))
    if roll < 0.6:
        return "NOT " + _random_query(rng, depth + 1)
    operator = rng.choice([" AND ", " OR ", " "])
    parts = [_random_query(rng, depth + 1) for _ in range(rng.randint(2, 3))]
    return "(" + operator.join(parts) + ")"


def _random_queries(count: int) -> list[str]:
    rng, queries = random.Random(20250601), []
    while len(queries) < count:
        query = _random_query(rng)
        try:
            parse_query(query)
        except QuerySyntaxError:
            continue
        queries.append(query)
    return queries


QUERIES = _random_queries(300)


def test_index_agrees_with_brute_force():
    index = SubscriptionIndex(resolver)
    for i, query in enumerate(QUERIES):
        index.add(Subscription(id=f"{i:03}", query=query))
    for key, view in VIEWS.items():
        indexed = {s.query for s, _ in index.match(view)}
        brute = {q for q in QUERIES if compile_query(q, resolver).matches(view)}
        assert indexed == brute, key


def _es_document(article: EnrichedArticle) -> dict:
    document = search_fields(article.title, article.body)
    document["entity_ids"] = [e.id for e in article.entities]
    document["event_types"] = [e.type for e in article.events]
    document["source"], document["language"] = article.source, article.language
    return document


def _field_values(document: dict, field: str) -> list[str]:
    value = document.get(field)
    if field in ("search_text", "search_title"):
        return value.split()  # our tokens pass the standard analyzer unchanged
    return value if isinstance(value, list) else [value]


def _es_matches(query: dict, document: dict) -> bool:
    """A small evaluator of the query DSL subset that to_es_query produces."""
    ((kind, body),) = query.items()
    if kind == "bool":
        should = body.get("should", [])
        return (
            all(_es_matches(q, document) for q in body.get("must", []))
            and not any(_es_matches(q, document) for q in body.get("must_not", []))
            and (
                not should
                or sum(_es_matches(q, document) for q in should) >= body["minimum_should_match"]
            )
        )
    if kind == "match_none":
        return False
    ((field, value),) = body.items()
    values = _field_values(document, field)
    if kind == "match":
        return any(word in values for word in value.split())
    if kind == "match_phrase":
        words, n = value.split(), len(value.split())
        return any(values[i : i + n] == words for i in range(len(values)))
    if kind == "terms":
        return bool(set(value) & set(values))
    if isinstance(value, dict):
        return any(v is not None and v.casefold() == value["value"].casefold() for v in values)
    return value in values


def test_stream_matching_agrees_with_the_elasticsearch_translation():
    documents = {key: _es_document(a) for key, a in ARTICLES.items()}
    for query in QUERIES:
        node = parse_query(query)
        es_query = to_es_query(node, resolver)
        compiled = compile_query(node, resolver)
        for key, view in VIEWS.items():
            assert compiled.matches(view) == _es_matches(es_query, documents[key]), (query, key)
