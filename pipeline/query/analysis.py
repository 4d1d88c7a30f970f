"""The one text analysis of newspipe: indexing, search and alerts all use it, so they agree.

Elasticsearch only sees the output of this module (``search_text`` holds our tokens joined by
spaces, and the mapping's standard analyzer leaves such tokens unchanged), and alert matching
analyses articles and query words with the same functions.

Tokens (:func:`tokens`)
    1. Words are runs of letters, digits and combining marks of any script (``_`` is not a word
       character). Each Han ideograph and each Hiragana character is a token of its own, as the
       Elasticsearch standard tokenizer does.
    2. Each word is NFKC-normalised and case-folded; diacritics are removed from Latin letters
       only ("Türkiye" -> "turkiye"), other scripts keep their marks ("й" stays "й").
    3. Apostrophes split words, and a possessive "'s" is dropped ("Russia's" -> "russia",
       "O'Neill" -> "o", "neill"). Hyphens split words ("cease-fire" -> "cease", "fire").
    4. A light English plural stemmer (an S-stemmer) is applied to each token, see :func:`stem`.

Compounds (:func:`compounds`)
    Spelling variants of one word ("ceasefire", "cease-fire", "cease fire", "ceasefires") must
    meet. A compound is the *unstemmed* normalised parts joined, then stemmed as one word:

    * every pair of adjacent words separated only by whitespace, a hyphen or an apostrophe
      ("cease fire" / "cease-fire" -> "ceasefire", "cease fires" -> "ceasefire");
    * every hyphenated word of three or more parts, whole ("Russia-Ukraine-Belarus" ->
      "russiaukrainebelarus").

    Joining before stemming makes "news paper" meet "newspaper" (stemming the left part first
    would give "newpaper"). A query word is matched against both the tokens and the compounds,
    so "ceasefire" finds "cease-fire" and "cease-fire" (normalised to "ceasefire") finds
    "ceasefire".
"""

from __future__ import annotations

import re
import sys
import unicodedata
from bisect import bisect_left
from functools import lru_cache
from typing import NamedTuple

__all__ = [
    "TokenSpan",
    "body_token_spans",
    "compounds",
    "compounds_from_spans",
    "normalize_term",
    "search_fields",
    "stem",
    "token_spans",
    "tokens",
]

#: plural-looking words the stemmer leaves alone ("news" must not become "new")
STEM_EXCEPTIONS = frozenset({"news", "series", "species"})

_HYPHENS = "-\u2010\u2011"
_APOSTROPHES = "'\u2019\u02bc\u2018"
_IDEOGRAPHS = (
    "\u3040-\u309f"  # Hiragana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs, extension A, compatibility
    "\U00020000-\U0002ebef\U00030000-\U0003134f"  # CJK ideographs, extensions B-H
)


def _mark_class(first: int, last: int) -> str:
    """A regex character-class body of the combining marks (Mn, Mc, Me) in [first, last].

    Python's ``\\w`` excludes marks, which would cut Devanagari, Thai or Arabic words apart.
    """
    ranges: list[list[int]] = []
    for code in range(first, min(sys.maxunicode, last) + 1):
        if unicodedata.category(chr(code)).startswith("M"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return "".join(f"{chr(a)}-{chr(b)}" if a != b else chr(a) for a, b in ranges)


# Marks beyond the BMP sit behind a cheap one-range lookahead: a class with astral ranges is
# much slower to test, and it is tested after every word.
_WORD_RE = re.compile(
    f"[{_IDEOGRAPHS}]"
    f"|(?:[^\\W_{_IDEOGRAPHS}]+|[{_mark_class(0x300, 0xFFFF)}]"
    f"|(?=[\U00010000-\U0010ffff])[{_mark_class(0x10000, 0x2FFFF)}])+"
)


class TokenSpan(NamedTuple):
    """One token of a text, with where it came from.

    ``raw`` is the normalised, unstemmed form (compounds are built from it); ``start``/``end``
    are offsets in the analysed text; ``link`` says how the token attaches to the previous one:
    ``"word"`` (hyphen or apostrophe: same written word), ``"space"`` (whitespace only, or
    nothing, as between two ideographs) or ``""`` (punctuation, or first token).
    """

    token: str
    raw: str
    start: int
    end: int
    link: str


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Light English plural stemmer (Harman's S-stemmer, slightly refined).

    Tokens of three characters or fewer and :data:`STEM_EXCEPTIONS` are left alone. Otherwise,
    first rule that applies: "sses" -> "ss" (losses); "xes" -> "x" (taxes); "ies" -> "y" when
    the word has five or more characters and does not end in "eies"/"aies" (cities; "ties"
    becomes "tie" by the next rule); "es" -> "e" unless "aes"/"ees"/"oes" (ceasefires);
    a final "s" is dropped unless "us"/"ss"/"is" (sanctions, talks).
    """
    if len(word) <= 3 or word in STEM_EXCEPTIONS:
        return word
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("xes"):
        return word[:-2]
    if word.endswith("ies") and len(word) >= 5 and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss", "is")):
        return word[:-1]
    return word


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    """Remove the diacritics of one Latin letter; any other character is returned unchanged."""
    if char.isascii() or "LATIN" not in unicodedata.name(char, ""):
        return char
    decomposed = unicodedata.normalize("NFD", char)
    return "".join(c for c in decomposed if not unicodedata.combining(c)) or char


@lru_cache(maxsize=65536)
def _normalize_word(word: str) -> tuple[str, ...]:
    """NFKC, case fold and Latin diacritic folding of one word; it may split (e.g. "¼")."""
    folded = unicodedata.normalize("NFKC", word).casefold()
    if not folded.isascii():
        folded = unicodedata.normalize("NFC", "".join(map(_fold_char, folded)))
    if _WORD_RE.fullmatch(folded):
        return (folded,)
    return tuple(m.group() for m in _WORD_RE.finditer(folded))


def _link(gap: str) -> str:
    """How a token attaches to the previous one, given the text between them."""
    if len(gap) == 1 and (gap in _HYPHENS or gap in _APOSTROPHES):
        return "word"
    if gap == "" or gap.isspace():
        return "space"
    return ""


SPANS_CACHE = 512
"""Texts whose spans are kept (:func:`token_spans`): an article's title and body are analysed
by the alert matching before and after the NER, its snippets and the index stage, in one
worker within seconds; 512 texts hold those of the articles in flight."""


def token_spans(text: str) -> list[TokenSpan]:
    """The analysed tokens of ``text`` with offsets and links (see the module docstring)."""
    return list(_token_spans(text))


@lru_cache(maxsize=SPANS_CACHE)
def _token_spans(text: str) -> tuple[TokenSpan, ...]:
    spans: list[TokenSpan] = []
    previous_end = None
    for match in _WORD_RE.finditer(text):
        start, end = match.span()
        gap = text[previous_end:start] if previous_end is not None else None
        previous_end = end
        link = "" if gap is None else _link(gap)
        parts = _normalize_word(match.group())
        if parts == ("s",) and spans and gap and gap in _APOSTROPHES:
            continue  # possessive 's
        for i, raw in enumerate(parts):
            spans.append(TokenSpan(stem(raw), raw, start, end, link if i == 0 else "word"))
    return tuple(spans)


def body_token_spans(title: str, body: str) -> list[TokenSpan]:
    """``token_spans(body)``, cut from the spans of the article's text ``title + "\\n" + body``
    (analysed once already for matching and indexing, and kept: :data:`SPANS_CACHE`) instead of
    analysing the body a second time. No token spans the newline, so the body's tokens are
    those after it: shifted by the title's length + 1, the first one without a link (nothing
    precedes it in the body)."""
    offset = len(title) + 1
    spans = _token_spans(title + "\n" + body)
    first = bisect_left(spans, offset, key=lambda span: span.start)
    out = [
        TokenSpan(s.token, s.raw, s.start - offset, s.end - offset, s.link) for s in spans[first:]
    ]
    if out:
        out[0] = out[0]._replace(link="")
    return out


def tokens(text: str) -> list[str]:
    """The analysed tokens of ``text``, in order (see the module docstring)."""
    return [span.token for span in token_spans(text)]


def compounds_from_spans(spans: list[TokenSpan]) -> list[str]:
    """Compounds of analysed spans: adjacent pairs, and whole hyphenated words of 3+ parts."""
    joined = []
    run: list[str] = []
    for previous, span in zip([None, *spans], spans):
        if previous is not None and span.link:
            joined.append(stem(previous.raw + span.raw))
        if span.link == "word":
            run.append(span.raw)
        else:
            if len(run) >= 3:
                joined.append(stem("".join(run)))
            run = [span.raw]
    if len(run) >= 3:
        joined.append(stem("".join(run)))
    return joined


def compounds(text: str) -> list[str]:
    """The joined forms of ``text`` (see the module docstring), in order, with repeats."""
    return compounds_from_spans(token_spans(text))


def normalize_term(word: str) -> str:
    """The analysed form of one query word: its token, or its parts joined and stemmed.

    "Sanctions" -> "sanction", "cease-fire" -> "ceasefire", "Ceasefires" -> "ceasefire".
    Returns "" when the word has no letters or digits.
    """
    spans = token_spans(word)
    if len(spans) == 1:
        return spans[0].token
    return stem("".join(span.raw for span in spans))


def search_fields(title: str, body: str) -> dict:
    """The analysed fields of one article document, merged into it by the index stage.

    ``search_text``/``search_compounds`` cover title and body; ``search_title`` and
    ``search_title_compounds`` cover the title alone (the alert ``title:`` field).
    """
    title = title or ""
    spans = token_spans(title + "\n" + (body or ""))
    title_spans = token_spans(title)
    return {
        "search_text": " ".join(span.token for span in spans),
        "search_compounds": sorted(set(compounds_from_spans(spans))),
        "search_title": " ".join(span.token for span in title_spans),
        "search_title_compounds": sorted(set(compounds_from_spans(title_spans))),
    }
