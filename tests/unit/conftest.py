"""Unit tests see the settings' defaults: no NEWS_* variable of the shell or of an integration
fixture leaks in, except the model to test with and the corpus path."""

from __future__ import annotations

import os

import pytest

from pipeline.settings import reset_settings

KEEP = {"NEWS_SPACY_MODEL", "NEWS_CORPUS"}


@pytest.fixture(autouse=True)
def default_settings(monkeypatch):
    for name in list(os.environ):
        if name.startswith("NEWS_") and name not in KEEP:
            monkeypatch.delenv(name)
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(autouse=True)
def _fresh_memo_caches_under_mutation():
    """Under mutation testing (mutmut sets MUTANT_UNDER_TEST), every test starts with empty memo
    caches: a value the clean run cached would hide the mutant of the function that computed it."""
    if os.environ.get("MUTANT_UNDER_TEST"):
        from pipeline.alerts import matcher
        from pipeline.query import analysis
        from pipeline.stages import dedupe, entities, events, names

        for cached in (
            analysis.stem,
            analysis._fold_char,
            analysis._normalize_word,
            names.place_table,
            names.fold_word,
            names.is_role_word,
            names.split_person,
            names.place_plural,
            names.gazetteer_place,
            names.canonical_place,
            entities.normalise_surface,
            events._anchor_plan,
            matcher._body_spans,
        ):
            cached.cache_clear()
        dedupe._STRIP.clear()
    yield
