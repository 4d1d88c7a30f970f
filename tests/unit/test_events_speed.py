"""The event stage's trigger finder runs the Matcher only around anchor tokens
(pipeline.stages.events._matches): over corpus articles it gives exactly the matches, in the same
order, that the Matcher gives over the whole doc. The model is ``NEWS_SPACY_MODEL`` (default
en_news_ner_conll); the corpus ``NEWS_CORPUS`` (skipped when missing)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from pipeline.stages.entities import parse
from pipeline.stages.events import (
    _anchor_plan,
    _matcher,
    _matches,
    _whole_doc_matches,
    taxonomy,
)
from pipeline.stages.nlp import load_nlp, loadable_name

MODEL = loadable_name(os.environ.get("NEWS_SPACY_MODEL", "en_news_ner_conll"))
if not Path(MODEL).is_dir() and importlib.util.find_spec(MODEL) is None:
    pytest.skip(f"spaCy model {MODEL!r} is not installed", allow_module_level=True)

CORPUS = Path(os.environ.get("NEWS_CORPUS", "/work/shared/corpus/reuters21578.jsonl"))
ARTICLES = 300


@pytest.fixture(scope="module")
def nlp():
    return load_nlp(MODEL)


@pytest.fixture(scope="module")
def corpus_docs(nlp):
    if not CORPUS.exists():
        pytest.skip(f"corpus {CORPUS} not found (NEWS_CORPUS)")
    texts = []
    with CORPUS.open("rb") as lines:
        for line in lines:
            body = json.loads(line).get("body") or ""
            if len(body) > 200:
                texts.append(body)
            if len(texts) == ARTICLES:
                break
    return parse(nlp, texts, 64)


def test_anchored_matches_are_the_whole_doc_matches(corpus_docs):
    assert _anchor_plan() is not None  # else _matches is the whole-doc Matcher itself
    found = 0
    for doc in corpus_docs:
        expected = _whole_doc_matches(doc)
        assert _matches(doc) == expected, doc.text[:200]
        found += len(expected)
    assert found > 20  # the corpus has triggers: the comparison compared something


SENTENCES = [
    # patterns with optional tokens and bounded repeats, at the doc's edges and side by side
    "Prisoner exchange.",
    "The exchange of 40 captured government soldiers came as a prisoner-swap was agreed.",
    "They agreed an exchange of the prisoners and a cease - fire, and a cease fire.",
    "Rebels launched 12 Grad rockets and fired two more missiles; artillery strikes followed.",
    "Troops shelled the Donetsk region. Shells fell. Sanctions! Trade sanction",
    "Protesters took to the streets in protest, a mass rally; hunger strike",
    "Voters go to the polls",
    "Emergency food aid and aid convoys; humanitarian relief; disaster relief",
    "",
    "peace",
]


@pytest.mark.parametrize("text", SENTENCES)
def test_anchored_matches_on_edge_cases(nlp, text):
    doc = parse(nlp, [text], 1)[0]
    assert _matches(doc) == _whole_doc_matches(doc)


def test_windows_cover_the_longest_pattern(nlp):
    """The longest pattern (a bounded repeat in the middle) at its full length is found."""
    text = "The swap of two thousand captured prisoners was agreed."
    doc = parse(nlp, [text], 1)[0]
    names = {nlp.vocab.strings[key] for key, _, _ in _matches(doc)}
    assert "prisoner_exchange" in names
    assert _matches(doc) == _whole_doc_matches(doc)


def test_every_pattern_has_an_anchor_inside_its_window():
    """Each pattern's anchor values and extents make windows that hold the whole pattern."""
    plan = _anchor_plan()
    assert plan is not None
    longest = max(
        len(pattern) for t in taxonomy().types.values() for pattern in t.patterns + t.weak_patterns
    )
    reach = max(int(b.max()) + int(a.max()) + 1 for b, a in zip(plan.before, plan.after))
    assert reach >= longest


def test_matcher_positions_for_a_span_are_relative_to_the_span(nlp):
    """What _matches relies on: the Matcher gives a Span's matches relative to its start."""
    doc = parse(nlp, ["Nothing here. Then an earthquake struck."], 1)[0]
    quake = next(t.i for t in doc if t.lower_ == "earthquake")
    span = doc[3:]
    keys = [(s, e) for _, s, e in _matcher(doc.vocab)(span)]
    assert (quake - 3, quake - 2) in keys


@pytest.mark.parametrize(
    "op, expected",
    [
        (None, (1, 1)),
        ("1", (1, 1)),
        ("?", (0, 1)),
        ("{0,3}", (0, 3)),
        ("{2}", (2, 2)),
        ("{,2}", (0, 2)),
        ("{1,}", (1, float("inf"))),
        ("+", (1, float("inf"))),
        ("*", (0, float("inf"))),
    ],
)
def test_pattern_token_repeats(op, expected):
    from pipeline.stages.events import _repeats

    assert _repeats({"LOWER": "x"} if op is None else {"LOWER": "x", "OP": op}) == expected


def test_body_text_is_the_doc_text(nlp):
    """The entity stage reads the parsed body instead of rebuilding doc.text; a doc of another
    length than the body falls back to doc.text."""
    from pipeline.stages.entities import _body_text
    from schemas.models import CleanArticle

    body = "Officials in Paris said  the talks would resume.\n"
    doc = parse(nlp, [body], 1)[0]
    article = CleanArticle.model_construct(body=body)
    assert _body_text(article, doc) == doc.text == body
    other = parse(nlp, ["Something else."], 1)[0]
    assert _body_text(article, other) == other.text
