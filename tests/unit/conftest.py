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
