"""The stories stage: same story across outlets joins, shared topic alone does not, the time
window holds, ids are deterministic (needs a spaCy model for the entity features)."""

from __future__ import annotations

import importlib.util
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.sources.ingest import iter_inputs
from pipeline.stages.clean import clean
from pipeline.stages.entities import InMemoryEntityRegistry
from pipeline.stages.nlp import loadable_name
from pipeline.stages.stories import ArticleFeatures, Story, StoryAssigner, StoryIndex, story_id
from pipeline.stream.process import Pipeline
from schemas import RawArticle

ROOT = Path(__file__).resolve().parents[2]
GOLD = json.loads((ROOT / "tests/fixtures/gold.json").read_text("utf-8"))
MODEL = loadable_name(os.environ.get("NEWS_SPACY_MODEL", "en_news_ner_conll"))

if not Path(MODEL).is_dir() and importlib.util.find_spec(MODEL) is None:
    pytest.skip(f"spaCy model {MODEL!r} is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def pipeline():
    from pipeline.settings import Settings

    return Pipeline(
        Settings(_env_file=None, spacy_model=MODEL),
        registry=InMemoryEntityRegistry(),
        stories=StoryAssigner(),
    )


def enrich(pipeline, raws: list[RawArticle]):
    pipeline._stories = StoryAssigner()  # a fresh, empty story index for each test
    return pipeline.enrich_articles([clean(raw) for raw in raws])


T0 = datetime(2031, 4, 14, 9, 0, tzinfo=UTC)

# one invented event told by three outlets in their own words, and two other events that only
# share its topic (a company's quarterly results; a strike) with each other
HARBOUR_A = """Norvale Shipping agreed on Tuesday to buy rival Kestrel Lines for 2.3 billion euros,
creating the largest container operator in the Baltic region. Norvale chief executive Ilse
Marquardt said the combined fleet of 140 vessels would serve the ports of Gdansk, Klaipeda and
Riga. Kestrel shareholders will receive 41 euros a share in cash. Competition authorities in
Brussels must approve the takeover, which Marquardt expects to close in the autumn."""
HARBOUR_B = """Kestrel Lines shares jumped 28 percent after Norvale Shipping's 2.3 billion euro
cash offer for the Baltic container carrier. Analysts said Norvale chief Ilse Marquardt was
paying a full price for Kestrel's routes between Gdansk, Klaipeda and Riga. The European
Commission is expected to examine whether the merged fleet of 140 ships would dominate
Baltic container traffic. Kestrel's board recommended the 41-euro-a-share offer."""
HARBOUR_C = """Dockworkers' unions in Riga and Gdansk asked for guarantees on jobs after Norvale
Shipping announced its takeover of Kestrel Lines. Ilse Marquardt, Norvale's chief executive,
told reporters no port terminals would close. The deal, worth 2.3 billion euros, still needs
the approval of competition regulators in Brussels."""
OTHER_TOPIC = """Halvorsen Foods said on Tuesday that quarterly profit rose 12 percent to 310 million
crowns as sales of frozen fish grew in Germany and France. Chief executive Bjorn Tallaksen said
the Oslo-based group would raise its dividend and open a factory near Bergen next year. Shares
in Halvorsen rose 4 percent in Oslo trading."""
OTHER_TOPIC_2 = """Brightwater Airlines said quarterly profit fell 8 percent to 95 million dollars
because fuel costs rose and a pilots' strike in Denver grounded flights for four days. Chief
executive Dana Okafor said bookings for the summer were strong and the carrier would take
delivery of six new jets. Brightwater shares slipped 2 percent in New York."""


def raw(body: str, title: str, source: str, when: datetime | None = T0) -> RawArticle:
    return RawArticle(
        body=body,
        title=title,
        source=source,
        published_at=when,
        url=f"https://{source.lower().replace(' ', '')}.example/{abs(hash(title))}",
    )


def test_the_seeds_form_one_story(pipeline):
    """gold.json stretch `same_story`: five outlets, one story, five articles."""
    seeds = {Path(a.model_extra["path"]).name[:3]: a for a in iter_inputs([ROOT / "seeds"])}
    enriched = enrich(pipeline, list(seeds.values()))
    by_key = dict(zip(seeds, enriched))
    for group in GOLD["duplicates"]["stretch"]["same_story"]:
        assert len({by_key[key].story_id for key in group}) == 1
    assert len({a.id for a in enriched}) == 5
    assert all(a.story_id for a in enriched)


def test_same_story_joins_and_shared_topic_does_not(pipeline):
    a, b, c, d, e = enrich(
        pipeline,
        [
            raw(HARBOUR_A, "Norvale to buy Kestrel Lines for 2.3 bln euros", "Baltic Wire"),
            raw(
                HARBOUR_B,
                "Kestrel shares soar on Norvale bid",
                "Harbour Daily",
                T0 + timedelta(hours=3),
            ),
            raw(OTHER_TOPIC, "Halvorsen Foods profit up 12 pct", "Nordic Markets"),
            raw(
                HARBOUR_C,
                "Unions seek job guarantees in Norvale-Kestrel deal",
                "Riga Times",
                T0 + timedelta(days=1),
            ),
            raw(OTHER_TOPIC_2, "Brightwater Airlines profit falls", "Air Business"),
        ],
    )
    assert a.story_id == b.story_id == d.story_id
    assert len({a.story_id, c.story_id, e.story_id}) == 3


def test_time_window_keeps_old_stories_apart(pipeline):
    window = timedelta(hours=pipeline.settings.story_window_hours)
    a, b = enrich(
        pipeline,
        [
            raw(HARBOUR_A, "Norvale to buy Kestrel Lines", "Baltic Wire"),
            raw(HARBOUR_B, "Kestrel shares soar on Norvale bid", "Harbour Daily", T0 + 3 * window),
        ],
    )
    assert a.story_id != b.story_id


def test_story_ids_are_deterministic_and_redelivery_keeps_the_story(pipeline):
    raws = [
        raw(HARBOUR_A, "Norvale to buy Kestrel Lines", "Baltic Wire"),
        raw(HARBOUR_B, "Kestrel shares soar on Norvale bid", "Harbour Daily"),
    ]
    first = [a.story_id for a in enrich(pipeline, raws)]
    again = [a.story_id for a in enrich(pipeline, raws)]
    assert first == again == [story_id(clean(raws[0]).id)] * 2
    # the same article delivered twice to one index: same story, counted once
    index = StoryIndex()
    features = ArticleFeatures.of(enrich(pipeline, raws[:1])[0])
    story, new = index.assign(features)
    again_story, again_new = index.assign(features)
    assert new and not again_new and again_story is story and story.article_ids == [features.id]


def test_story_document_round_trips(pipeline):
    a, b = enrich(
        pipeline,
        [
            raw(HARBOUR_A, "Norvale to buy Kestrel Lines", "Baltic Wire"),
            raw(
                HARBOUR_B,
                "Kestrel shares soar on Norvale bid",
                "Harbour Daily",
                T0 + timedelta(hours=5),
            ),
        ],
    )
    index = StoryIndex()
    for article in (a, b):
        story, _ = index.assign(ArticleFeatures.of(article))
    doc = story.document(T0)
    assert doc["article_count"] == 2 and doc["sources"] == ["Baltic Wire", "Harbour Daily"]
    assert (
        doc["first_seen"] == T0.isoformat()
        and doc["last_seen"] == (T0 + timedelta(hours=5)).isoformat()
    )
    assert any("Norvale" in name for name in doc["entity_names"])
    back = Story.from_document(json.loads(json.dumps(doc)))
    assert back.article_ids == story.article_ids and back.centroid == pytest.approx(story.centroid)
    assert back.dated_first == story.dated_first and back.sources == story.sources


def test_candidates_are_bounded_as_stories_grow():
    """However many stories share a feature, an article scores a bounded number of them."""
    from pipeline.stages.stories import CANDIDATES_SCORED

    index = StoryIndex()
    vector = {"harbour": 0.6, "takeover": 0.6, "@organization:norvale": 0.52}
    for n in range(5000):
        story = Story(id=f"s{n}", title="", first_seen=T0, last_seen=T0)
        story.add(ArticleFeatures(id=f"a{n}", title="", vector=vector, time=None, seen=T0))
        index.put(story)
    probe = ArticleFeatures(id="new", title="", vector=vector, time=None, seen=T0)
    assert len(index.candidates(probe)) == CANDIDATES_SCORED
    story, new = index.assign(probe)
    assert not new
