"""The shared text analysis: tokens, stemming, compounds, query words, index fields."""

import itertools
import json
import os
from pathlib import Path

import pytest

from pipeline.query.analysis import (
    body_token_spans,
    compounds,
    normalize_term,
    search_fields,
    stem,
    token_spans,
    tokens,
)


def test_words_are_lowercased_and_possessives_dropped():
    assert tokens("Russia’s talks, RUSSIA's Talks") == ["russia", "talk", "russia", "talk"]


def test_hyphenated_words_split_into_parts():
    assert tokens("a cease-fire deal") == ["a", "cease", "fire", "deal"]


def test_latin_diacritics_folded_other_scripts_kept():
    assert tokens("Türkiye Zürich") == ["turkiye", "zurich"]
    assert tokens("Москва й") == ["москва", "й"]
    assert tokens("हिन्दी भाषा") == ["हिन्दी", "भाषा"]  # vowel signs (marks) stay in the word


def test_nfkc_and_casefold():
    assert tokens("ＡＢＣ ﬁre Straße") == ["abc", "fire", "strasse"]


def test_han_ideographs_are_single_tokens_like_the_standard_tokenizer():
    assert tokens("北京大学") == ["北", "京", "大", "学"]


def test_underscore_and_punctuation_separate_words():
    assert tokens("prisoner_exchange 3.5%") == ["prisoner", "exchange", "3", "5"]


@pytest.mark.parametrize(
    "word, stemmed",
    [
        ("sanctions", "sanction"),
        ("talks", "talk"),
        ("ceasefires", "ceasefire"),
        ("cities", "city"),
        ("ties", "tie"),
        ("losses", "loss"),
        ("taxes", "tax"),
        ("toes", "toe"),
        ("virus", "virus"),
        ("press", "press"),
        ("analysis", "analysis"),
        ("news", "news"),
        ("gas", "gas"),
        ("its", "its"),
    ],
)
def test_s_stemmer(word, stemmed):
    assert stem(word) == stemmed


def test_spelling_variants_meet_in_one_compound():
    for text in (
        "ceasefire",
        "cease-fire",
        "cease fire",
        "ceasefires",
        "Cease-Fires",
        "cease fires",
    ):
        forms = set(tokens(text)) | set(compounds(text))
        assert "ceasefire" in forms, text


def test_compounds_join_unstemmed_parts_then_stem():
    assert "newspaper" in compounds("news paper")
    assert "russiaukrainebelarus" in compounds("Russia-Ukraine-Belarus")


def test_no_compound_across_punctuation():
    assert compounds("cease. Fire") == []


def test_normalize_term():
    assert normalize_term("cease-fire") == "ceasefire"
    assert normalize_term("Ceasefires") == "ceasefire"
    assert normalize_term("Sanctions") == "sanction"
    assert normalize_term("&") == ""


def test_token_offsets_point_into_the_original_text():
    text = "The Türkiye cease-fire"
    assert [text[s.start : s.end] for s in token_spans(text)] == ["The", "Türkiye", "cease", "fire"]


def test_search_fields():
    fields = search_fields("Cease-fire talks", "Sanctions news.")
    assert fields["search_text"] == "cease fire talk sanction news"
    assert "ceasefire" in fields["search_compounds"]
    assert fields["search_compounds"] == sorted(set(fields["search_compounds"]))
    assert fields["search_title"] == "cease fire talk"
    assert fields["search_title_compounds"] == ["ceasefire", "firetalk"]


CORPUS = Path(os.environ.get("NEWS_CORPUS", "/work/shared/corpus/reuters21578.jsonl"))
EDGES = [
    ("", "Body only."),
    ("Title", ""),
    ("", ""),
    ("Investors'", "s shares rose"),  # an apostrophe before the newline, "s" after it
    ("Oil prices rise-", "-based output"),  # hyphens on both sides of the newline
    ("Prices rise ", " 'Hot' oil"),  # spaces and quotes at the boundary
    ("東京", "大阪 markets"),  # ideographs: linked by "space" when nothing separates them
    ("Café crème", "Éclair sales at Zürich's shops"),
    ("Title\nwith a newline", "Body\nwith more lines\n"),
]


def _articles():
    yield from EDGES
    if CORPUS.exists():
        with CORPUS.open(encoding="utf-8") as lines:
            for line in itertools.islice(lines, 500):
                article = json.loads(line)
                yield article.get("title") or "", article.get("body") or ""


def test_body_spans_cut_from_the_texts_are_the_bodys_own():
    checked = 0
    for title, body in _articles():
        assert body_token_spans(title, body) == token_spans(body), (title, body[:80])
        checked += 1
    assert checked >= len(EDGES)
