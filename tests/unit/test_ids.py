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


# --- entity ids in every script (issue #19) ----------------------------------------------------

from pipeline.ids import slug as _slug  # noqa: E402
from pipeline.stages.entities import InMemoryEntityRegistry, entity_ids_for_name  # noqa: E402
from pipeline.stages.names import fold_name, split_person  # noqa: E402

FIVE_SCRIPTS = {
    "latin": ["Vladimir Putin", "Olaf Scholz", "Côte d'Ivoire"],
    "cyrillic": ["Владимир Путин", "Сергей Лавров", "Москва"],
    "greek": ["Κυριάκος Μητσοτάκης", "Αθήνα", "Αλέξης Τσίπρας"],
    "cjk": ["习近平", "李强", "北京", "東京", "서울"],
    "arabic": ["محمد بن سلمان", "الرياض", "بشار الأسد"],
    "hebrew": ["בנימין נתניהו", "ירושלים", "יצחק הרצוג"],
}


@pytest.mark.parametrize("script", sorted(FIVE_SCRIPTS))
def test_slugs_are_never_empty_and_distinct(script):
    names = FIVE_SCRIPTS[script]
    slugs = [_slug(name) for name in names]
    assert all(slugs) and len(set(slugs)) == len(names)


def test_slugs_of_all_scripts_are_distinct_from_each_other():
    # (Cyrillic/Greek names fold to their Latin spelling on purpose: not mixed in here)
    everything = [
        name
        for script, names in FIVE_SCRIPTS.items()
        if script not in ("cyrillic", "greek")
        for name in names
    ] + ["Сергей Лавров", "Αλέξης Τσίπρας"]
    assert len({_slug(name) for name in everything}) == len(everything)


def test_slugs_are_stable():
    assert _slug("习近平") == "习近平"
    assert (
        _slug("بشار الأسد") == _slug("بشار الاسد") == "بشار-الاسد"
    )  # hamza seat folded like accents
    assert _slug("ירושלים") == "ירושלים"


def test_text_without_letters_gets_a_hash_not_an_empty_id():
    assert _slug("!!!") and _slug("!!!") == _slug("!!!") and _slug("!!!") != _slug("???")


def test_latin_slugs_are_unchanged():
    assert _slug("Côte d'Ivoire") == "cote-d-ivoire"
    assert _slug("Türkiye") == "turkiye"
    assert _slug("U.S.") == "u-s"


@pytest.mark.parametrize(
    "native, latin",
    [
        ("Владимир Путин", "Vladimir Putin"),
        ("Сергей Лавров", "Sergei Lavrov"),
        ("Москва", "Moskva"),
        ("Κυριάκος Μητσοτάκης", "Kyriakos Mitsotakis"),
        ("Αθήνα", "Athina"),
    ],
)
def test_cyrillic_and_greek_fold_to_their_latin_transliteration(native, latin):
    assert fold_name(native) == fold_name(latin)
    registry = InMemoryEntityRegistry()

    def folded_ids(name):  # person and location ids use the folding key
        return {
            i for i in entity_ids_for_name(name, registry) if i.startswith(("person:", "location:"))
        }

    assert folded_ids(native) == folded_ids(latin)


def test_person_names_in_other_scripts_keep_their_letters():
    assert split_person("بشار الأسد").surname == "الاسد"
    assert split_person("יצחק הרצוג").surname == "הרצוג"
    assert split_person("习近平").surname == "习近平"
    registry = InMemoryEntityRegistry()
    assert entity_ids_for_name("习近平", registry) != entity_ids_for_name("李强", registry)
    assert all(not i.endswith(":") for i in entity_ids_for_name("בנימין נתניהו", registry))
