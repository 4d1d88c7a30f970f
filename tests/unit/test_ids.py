"""Stable ids for articles (and anything else hashed with stable_hash)."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.ids import article_id, normalise_url, stable_hash
from schemas.models import RawArticle


def test_stable_hash_is_sha1_of_parts_joined_by_unit_separator():
    assert stable_hash("a", "b") == hashlib.sha1(b"a\x1fb").hexdigest()[:16]
    assert stable_hash("ab", "c") != stable_hash("a", "bc")
    assert stable_hash("a", None, 3) == hashlib.sha1(b"a\x1f\x1f3").hexdigest()[:16]
    assert len(stable_hash("x", length=40)) == 40
    with pytest.raises(ValueError):
        stable_hash("x", length=8)


def test_producer_id_wins():
    raw = RawArticle(id="reuters-1", url="https://example.com/a", body="text")
    assert article_id(raw) == "reuters-1"


@pytest.mark.parametrize(
    "variant",
    [
        "https://example.com/news/a?id=7",
        "HTTPS://Example.COM/news/a?id=7",
        "https://example.com:443/news/a?id=7#comments",
        "https://example.com/news/a?utm_source=x&id=7&utm_medium=rss",
    ],
)
def test_url_ids_ignore_case_fragment_and_tracking(variant):
    expected = article_id(RawArticle(url="https://example.com/news/a?id=7", body="one"))
    assert article_id(RawArticle(url=variant, body="another body")) == expected
    assert len(expected) == 16 and int(expected, 16) >= 0


def test_url_path_and_other_params_matter():
    base = article_id(RawArticle(url="https://example.com/news/a?id=7", body="b"))
    assert article_id(RawArticle(url="https://example.com/news/A?id=7", body="b")) != base
    assert article_id(RawArticle(url="https://example.com/news/a?id=8", body="b")) != base
    assert normalise_url("http://Example.com:8080/x?b=2&a=1") == "http://example.com:8080/x?b=2&a=1"


def test_text_ids_ignore_whitespace_but_not_source_or_words():
    one = article_id(RawArticle(source="wire", body="Talks  resume\nin Istanbul. "))
    assert article_id(RawArticle(source="wire", body="Talks resume in Istanbul.")) == one
    assert article_id(RawArticle(source="other", body="Talks resume in Istanbul.")) != one
    assert article_id(RawArticle(source="wire", body="Talks resumed in Istanbul.")) != one
