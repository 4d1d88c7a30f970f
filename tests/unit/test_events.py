"""Event tagging: gold.json `events` over the five seeds, plus targeted sentences per type."""

from __future__ import annotations

import importlib.util
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.stages.entities import InMemoryEntityRegistry, extract_entities, parse
from pipeline.stages.events import DATE_RE, tag_events, taxonomy
from pipeline.stages.nlp import load_nlp, loadable_name
from schemas.models import CleanArticle

ROOT = Path(__file__).resolve().parents[2]
GOLD = json.loads((ROOT / "tests/fixtures/gold.json").read_text("utf-8"))["events"]
MODEL = loadable_name(os.environ.get("NEWS_SPACY_MODEL", "en_news_ner_conll"))

if not Path(MODEL).is_dir() and importlib.util.find_spec(MODEL) is None:
    pytest.skip(f"spaCy model {MODEL!r} is not installed", allow_module_level=True)

NOW = datetime.now(UTC)


def _article(key: str, body: str) -> CleanArticle:
    return CleanArticle(id=key, title=key, body=body, language="en", ingested_at=NOW)


@pytest.fixture(scope="module")
def nlp():
    return load_nlp(MODEL)


@pytest.fixture(scope="module")
def seed_tags(nlp):
    articles = [
        _article(p.name[:3], p.read_text("utf-8")) for p in sorted((ROOT / "seeds").glob("*.txt"))
    ]
    docs = parse(nlp, [a.body for a in articles], batch_size=8)
    entities = extract_entities(articles, docs, InMemoryEntityRegistry())
    return {a.id: tag_events(d, e) for a, d, e in zip(articles, docs, entities)}


def _tag_types(nlp, text: str) -> set[str]:
    doc = parse(nlp, [text], 1)[0]
    return {t.type for t in tag_events(doc)}


REQUIRED = [(etype, key) for etype, keys in GOLD["required"].items() for key in keys]
MUST_NOT = [(etype, key) for etype, keys in GOLD["must_not"].items() for key in keys]


@pytest.mark.parametrize("etype, key", REQUIRED)
def test_required(seed_tags, etype, key):
    assert etype in {t.type for t in seed_tags[key] if t.alertable}  # alertable: in event_types


@pytest.mark.parametrize("etype, key", MUST_NOT)
def test_must_not(seed_tags, etype, key):
    assert etype not in {t.type for t in seed_tags[key]}


def test_evidence_place_and_date(seed_tags):
    talks = next(t for t in seed_tags["001"] if t.type == "peace_talks")
    assert (talks.place, talks.date_text) == ("Istanbul", "June 2")  # gold stretch arguments
    assert 1 <= len(talks.evidence) <= 3 and len(set(talks.evidence)) == len(talks.evidence)
    assert "peace talks" in talks.evidence[0]
    swap = next(t for t in seed_tags["002"] if t.type == "prisoner_exchange")
    assert swap.evidence == [
        "The first round on May 16th received the exchange of the greatest "
        "prisoners of the war, but there were no signs of peace."
    ]
    assert swap.date_text == "May 16th"


@pytest.mark.parametrize(
    "etype, text",
    [
        ("peace_talks", "Talks resumed. The war goes on as a third round of negotiations opens."),
        ("peace_talks", "Both delegations will hold direct talks to end the war."),
        ("ceasefire", "The two warring sides agreed a truce on Friday."),
        ("ceasefire", "Rebels announced a cease fire."),
        ("prisoner_exchange", "Kyiv and Moscow carried out a prisoner swap."),
        ("prisoner_exchange", "They agreed on the exchange of 300 wounded prisoners."),
        ("sanctions", "Sanctions on Iran were extended."),
        ("military_strike", "Russian airstrikes hit Kharkiv overnight."),
        ("military_strike", "A drone attack damaged a refinery."),
        ("military_strike", "Moscow launched 90 drones and missiles at Ukraine."),
        ("military_strike", "Israeli air strikes killed ten people in Gaza."),
        ("election", "Voters go to the polls in a snap election on Sunday."),
        ("protest", "Thousands of protesters marched in Tbilisi."),
        ("arrest", "Police arrested the opposition leader."),
        ("natural_disaster", "A magnitude 7.1 earthquake struck off Japan."),
        ("humanitarian_aid", "The first humanitarian aid convoy reached Gaza."),
    ],
)
def test_positive_sentences(nlp, etype, text):
    assert etype in _tag_types(nlp, text)


@pytest.mark.parametrize(
    "etype, text",
    [
        ("military_strike", "There is no military solution to this conflict."),
        (
            "military_strike",
            "They want to resolve it through negotiation rather than military means.",
        ),
        ("military_strike", "The task is to cease attacks on civilian infrastructure."),
        ("military_strike", "Both sides agreed to stop missile attacks."),
        ("prisoner_exchange", "The exchange of views was constructive."),
        ("peace_talks", "The trade talks with Japan resumed in Tokyo."),
        ("sanctions", "The league sanctioned the club for crowd trouble."),
        ("natural_disaster", "A flood of cheap imports hit the market."),
    ],
)
def test_negative_sentences(nlp, etype, text):
    assert etype not in _tag_types(nlp, text)


@pytest.mark.parametrize(
    "text, date",
    [
        ("on June 2 in Istanbul", "June 2"),
        ("held on 2 June.", "2 June"),
        ("since May 16th,", "May 16th"),
        ("They meet on Monday.", "Monday"),
        ("On 16 May 2025, talks", "16 May 2025"),
    ],
)
def test_date_expressions(text, date):
    assert DATE_RE.search(text).group(0) == date


def test_taxonomy_is_documented():
    docs = (ROOT / "docs/events.md").read_text("utf-8")
    for name, event in taxonomy().types.items():
        assert event.definition and event.patterns
        assert f"`{name}`" in docs
