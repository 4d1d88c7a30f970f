"""Language routing: each article is parsed by the pipeline of its language, or by none.

Needs the English model (``NEWS_SPACY_MODEL``, default the CoNLL wheel) and ``fr_core_news_sm``.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.alerts.matcher import ArticleView, SubscriptionIndex
from pipeline.settings import Settings
from pipeline.stages.entities import InMemoryEntityRegistry, entity_ids_for_name
from pipeline.stages.nlp import loadable_name, model_for_language
from pipeline.stages.stories import StoryAssigner
from pipeline.stream.process import Pipeline
from schemas.models import CleanArticle, Subscription

MODEL = loadable_name(os.environ.get("NEWS_SPACY_MODEL", "en_news_ner_conll"))
for name in (MODEL, "fr_core_news_sm"):
    if not Path(name).is_dir() and importlib.util.find_spec(name) is None:
        pytest.skip(f"spaCy model {name!r} is not installed", allow_module_level=True)

NOW = datetime.now(UTC)
TEXTS = {
    "en": "Prime Minister Keir Starmer met Emmanuel Macron in London on Tuesday to discuss trade.",
    "fr": "Le président Emmanuel Macron a rencontré Olaf Scholz à Berlin mardi pour parler du commerce.",
    "ru": "Владимир Путин встретился с Си Цзиньпином в Москве, сообщил Кремль в среду.",
    "el": "Ο πρωθυπουργός Κυριάκος Μητσοτάκης συναντήθηκε με τον Έντι Ράμα στην Αθήνα την Τρίτη.",
    "zh": "习近平周二在北京会见了来访的法国总统马克龙，双方讨论了贸易问题。",
}


def _settings(**extra) -> Settings:
    return Settings(spacy_model=MODEL, **extra)


@pytest.fixture(scope="module")
def enriched():
    pipeline = Pipeline(_settings(), registry=InMemoryEntityRegistry(), stories=StoryAssigner())
    articles = [
        CleanArticle(id=lang, title=lang, body=text, language=lang, ingested_at=NOW)
        for lang, text in TEXTS.items()
    ]
    return {a.id: a for a in pipeline.enrich_articles(articles)}


def test_setting_maps_language_to_pipeline():
    settings = _settings(spacy_models={"fr": "fr_core_news_sm"})
    assert model_for_language("en", settings) == MODEL
    assert model_for_language("und", settings) == MODEL
    assert model_for_language("fr", settings) == "fr_core_news_sm"
    assert model_for_language("ru", settings) is None


def test_french_article_is_parsed_by_the_french_pipeline(enriched):
    article = enriched["fr"]
    assert article.nlp_model == "fr_core_news_sm" and article.nlp_note is None
    names = {e.name for e in article.entities}
    assert "Emmanuel Macron" in names and "Berlin" in names


def test_english_article_uses_the_english_pipeline(enriched):
    assert enriched["en"].nlp_model == MODEL
    assert any(e.type == "person" for e in enriched["en"].entities)


@pytest.mark.parametrize("language", ["ru", "el", "zh"])
def test_language_without_pipeline_gets_no_entities_and_says_so(enriched, language):
    article = enriched[language]
    assert article.entities == [] and article.events == []
    assert article.nlp_model is None
    assert repr(language) in article.nlp_note and "no entities" in article.nlp_note


def test_a_missing_pipeline_is_reported_not_raised():
    pipeline = Pipeline(
        _settings(spacy_models={"de": "de_not_installed_sm"}),
        registry=InMemoryEntityRegistry(),
        stories=StoryAssigner(),
    )
    article = CleanArticle(
        id="de",
        title="de",
        body="Olaf Scholz sprach am Dienstag in Berlin.",
        language="de",
        ingested_at=NOW,
    )
    (out,) = pipeline.enrich_articles([article])
    assert out.entities == [] and "not installed" in out.nlp_note


@pytest.mark.parametrize(
    "language, query",
    [
        ("ru", "Путин"),
        ("ru", '"встретился с Си"'),
        ("el", "Μητσοτάκης"),
        ("el", "Αθήνα"),
        ("zh", "北京"),
    ],
)
def test_keyword_subscriptions_match_articles_without_entities(enriched, language, query):
    index = SubscriptionIndex(lambda name: set())
    index.add(Subscription(id="s", query=query))
    assert index.match(ArticleView.from_article(enriched[language]))
    assert not index.match(ArticleView.from_article(enriched["en"]))


def test_cyrillic_and_latin_spellings_share_an_entity_id():
    registry = InMemoryEntityRegistry()
    assert entity_ids_for_name("Владимир Путин", registry) & entity_ids_for_name(
        "Vladimir Putin", registry
    )


def test_other_languages_load_in_the_background_without_holding_the_stores(monkeypatch):
    """Loading another language's pipeline (seconds) happens off the steps' path: under a lock
    of its own, so the clean step can reach the stores meanwhile, and only once per model."""
    import threading

    import pipeline.stages.nlp as nlp_module

    release, started, loads = threading.Event(), threading.Event(), []

    def slow_load(model):
        loads.append(model)
        started.set()
        release.wait(10)
        return f"pipeline of {model}"

    monkeypatch.setattr(nlp_module, "load_nlp", slow_load)
    pipeline = Pipeline(_settings(spacy_models={"fr": "fr_xx", "de": "de_xx"}))
    loader = threading.Thread(target=pipeline._load_languages)
    loader.start()
    assert started.wait(10)
    assert pipeline._init_lock.acquire(timeout=1)  # the stores' lock is free during the load
    pipeline._init_lock.release()
    release.set()
    loader.join(10)
    assert sorted(loads) == ["de_xx", "fr_xx"]
    assert pipeline.nlp_for("fr") == ("fr_xx", "pipeline of fr_xx")  # loaded, not loaded again
    assert sorted(loads) == ["de_xx", "fr_xx"]
