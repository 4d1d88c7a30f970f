"""Event senses and salience: the mechanisms of pipeline.stages.events (each test can fail when
its mechanism is switched off), and the labelled sentence set's precision/recall targets."""

from __future__ import annotations

import importlib.util
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.stages.entities import parse
from pipeline.stages.events import salience, story_salience, tag_events, taxonomy
from pipeline.stages.index import article_document
from pipeline.stages.nlp import load_nlp, loadable_name
from schemas.models import EVENT_ALERT_SALIENCE, EnrichedArticle, EventTag

ROOT = Path(__file__).resolve().parents[2]
MODEL = loadable_name(os.environ.get("NEWS_SPACY_MODEL", "en_news_ner_conll"))
if not Path(MODEL).is_dir() and importlib.util.find_spec(MODEL) is None:
    pytest.skip(f"spaCy model {MODEL!r} is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def nlp():
    return load_nlp(MODEL)


def _types(nlp, text: str, title: str | None = None, alertable: bool = True) -> set[str]:
    doc = parse(nlp, [text], 1)[0]
    return {t.type for t in tag_events(doc, title=title) if t.alertable or not alertable}


@pytest.mark.parametrize(
    "etype, yes, no",
    [
        # reporting verb: a complaint, not a public protest
        (
            "protest",
            "Workers protested against the plan outside the ministry.",
            "The union protested that the plan was unfair to workers.",
        ),
        # figurative frame right after the trigger
        (
            "natural_disaster",
            "The storm brought heavy rain to the coast.",
            "A storm of criticism hit the minister.",
        ),
        # sense cues: markets vs armed forces
        (
            "military_strike",
            "Rebel forces launched an attack on the army base.",
            "Speculators launched an attack on the currency.",
        ),
        # sense cues next to a strong trigger: a company's election of directors
        (
            "election",
            "The party won the general election.",
            "Shareholders approved the election of directors.",
        ),
        # the 'arrest the decline' sense
        (
            "arrest",
            "Police arrested three suspects on fraud charges.",
            "The measures aim to arrest the decline in the currency.",
        ),
        # a truce in a price war is not a ceasefire
        (
            "ceasefire",
            "The warring factions agreed a truce along the front line.",
            "The two retailers agreed a truce in their discount battle.",
        ),
    ],
)
def test_senses(nlp, etype, yes, no):
    assert etype in _types(nlp, yes)
    assert etype not in _types(nlp, no)


def test_weak_trigger_counts_when_the_article_reports_a_related_event(nlp):
    alone = "The delegations met again for a second round of talks on Monday."
    assert "peace_talks" not in _types(nlp, alone)
    assert "peace_talks" in _types(nlp, "The ceasefire held overnight in the east. " + alone)


def test_passing_reference_has_low_salience(nlp):
    filler = " ".join(
        f"The company reported sales of {n} mln dlrs in its unit number {n}." for n in range(30)
    )
    text = (
        "The chart topped the sales list this week. "
        + filler
        + " The single raised money after the earthquake."
    )
    doc = parse(nlp, [text], 1)[0]
    tag = next(t for t in tag_events(doc) if t.type == "natural_disaster")
    assert tag.salience < EVENT_ALERT_SALIENCE and not tag.alertable
    assert tag.evidence  # kept with its evidence
    # the same sentence in the lead, or a title that repeats the trigger, is salient
    assert "natural_disaster" in _types(
        nlp, "The single raised money after the earthquake. " + filler
    )
    assert "natural_disaster" in _types(nlp, text, title="Earthquake charity single tops chart")


def test_salience_formula():
    class Sent:
        def __init__(self, start):
            self.start = start
            self.doc = type("D", (), {"user_data": {}})()

    assert salience([Sent(0)], 40, False) == 1.0
    assert salience([Sent(200)], 40, True) == 1.0
    assert salience([Sent(200)], 40, False) < EVENT_ALERT_SALIENCE
    assert salience([Sent(200), Sent(300), Sent(400), Sent(500)], 40, False) >= EVENT_ALERT_SALIENCE


def test_low_salience_tags_are_not_indexed_as_event_types():
    article = EnrichedArticle(
        id="a",
        title="t",
        body="b",
        language="en",
        ingested_at=datetime.now(UTC),
        events=[
            EventTag(type="protest", evidence=["x"], salience=0.3),
            EventTag(type="election", evidence=["y"], salience=1.0),
        ],
    )
    assert article_document(article)["event_types"] == ["election"]


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def test_labelled_sentences_meet_targets(nlp):
    """tests/fixtures/event_sentences.jsonl: overall precision >= 0.9 and recall >= 0.8."""
    items = _read(ROOT / "tests/fixtures/event_sentences.jsonl")
    assert len(items) >= 300
    names = set(taxonomy().types)
    for name in names:  # positives and negatives for every type
        assert sum(name in i["events"] for i in items) >= 10, name
    docs = parse(nlp, [i["text"] for i in items], 64)
    tp = fp = fn = 0
    for item, doc in zip(items, docs):
        got = {t.type for t in tag_events(doc) if t.alertable}
        want = set(item["events"])
        tp, fp, fn = tp + len(got & want), fp + len(got - want), fn + len(want - got)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.9 and recall >= 0.8, (precision, recall)


def test_story_domain_raises_single_mentions_of_related_types():
    low = EVENT_ALERT_SALIENCE - 0.2
    raised = story_salience({"peace_talks": 1.0, "sanctions": low, "natural_disaster": low})
    assert raised["sanctions"] >= EVENT_ALERT_SALIENCE  # same (conflict) domain as peace talks
    assert raised["natural_disaster"] == low  # a passing reference in a conflict story
    assert story_salience({"sanctions": low})["sanctions"] == low
