"""Which clean articles could fire an alert after the NER, from their words alone.

The enrich agent reads ahead of its batches under backlog and takes first the articles that an
enriched-stage subscription (``entity:``/``event:`` queries, per-story alerts; see
:func:`pipeline.alerts.matcher.match_stage`) could match, so that their alerts do not wait
behind articles no one is waiting for (pipeline.stream.batching, ``NEWS_ALERTS_FIRST``).

:class:`Prefilter` answers that from the clean article's words, before the NER. It is built
from the anchors of those subscriptions (pipeline.alerts.matcher) and errs on the side of
"could": an article it passes over is only taken in its turn, never lost (passed over for
long, it gets at least half of each batch), while an article it wrongly takes first only costs
the others a place. So each anchor becomes
words that an article matched by the anchor must contain:

* an **entity id** the words of any form that resolves to it: the id's own name (its rarest
  word: "York" for "New York"), the place table's variants ("U.S." for the United States),
  acronyms of the entity gazetteer and the name's initials; a person id its surname. Acronyms
  compare case-sensitively ("US", not "us"), other words folded like entity names;
* an **event type** the words of its trigger patterns' anchors (pipeline.stages.events), a
  lemma expanded to its inflected forms (the lemma table backwards, and regular endings);
* a **word** (per-story keyword subscriptions) its analysed form, as the matcher compares it.

A subscription that anchors on ``source``/``lang`` only, or not at all, could match any
article: :func:`build_prefilter` returns None, and the batching takes articles in order.
Digest subscriptions are left out: their alerts wait for the digest period anyway.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable
from functools import lru_cache

from pipeline.alerts.matcher import Anchors, ArticleView
from pipeline.ids import ascii_fold

__all__ = ["Prefilter", "build_prefilter", "entity_words", "event_words"]

_WORD = re.compile(r"\w+(?:\.\w+)*\.?")
"""A word of the article's text; "U.S." is one word (its dots go: "US")."""

_MINOR = frozenset({"of", "and", "for", "the", "on", "in", "de", "la", "le", "du", "da", "von"})


def _acronym(word: str) -> bool:
    return len(word) <= 6 and word.isupper() and word.isalpha()


@lru_cache(maxsize=1 << 16)
def word_keys(word: str) -> tuple[str, ...]:
    """The keys an article's word is looked up by: folded as a name is ("Medinsky" and
    "Medinski" alike), lower-cased, and as written when it is an acronym ("=US")."""
    bare = word.replace(".", "")
    if not bare:
        return ()
    from pipeline.stages.names import fold_word

    keys = {ascii_fold(bare).lower(), fold_word(bare)}
    if _acronym(bare):
        keys.add("=" + bare)
    keys.discard("")
    return tuple(keys)


def article_keys(text: str) -> set[str]:
    """The keys of every word of ``text`` (:func:`word_keys`)."""
    out: set[str] = set()
    for word in set(_WORD.findall(text)):
        out.update(word_keys(word))
    return out


def _rarest(words: list[str]) -> str:
    """The word of ``words`` fewest articles have (the story stage's document frequencies);
    a stopword or a word of one or two letters only when there is nothing else (the table
    leaves them out, so they would look rare)."""
    from pipeline.stages.stories import _STOPWORDS, idf

    content = [w for w in words if len(w) >= 3 and w.lower() not in _STOPWORDS] or words
    return max(content, key=lambda w: (idf(w.lower()), len(w)))


def _form_key(form: str) -> str | None:
    """The key a mention of the name ``form`` must have: its rarest word's (a name of several
    words is there only with all of them), ``=`` and the letters for an acronym."""
    words: list[str] = [w.replace(".", "") for w in _WORD.findall(form)]
    words = [w for w in words if w and w.lower() not in _MINOR] or [w for w in words if w]
    if not words:
        return None
    if len(words) == 1 and _acronym(words[0]):
        return "=" + words[0]
    return ascii_fold(_rarest(words)).lower()


@lru_cache(maxsize=1)
def _place_forms() -> dict[str, list[str]]:
    """Canonical place slug -> every form of the place table (variants and ISO names)."""
    from pipeline.ids import slug
    from pipeline.stages.names import place_table

    forms: dict[str, list[str]] = {}
    for form, canonical in place_table().exact.items():
        forms.setdefault(slug(canonical), []).append(form)
    return forms


@lru_cache(maxsize=1)
def _acronyms() -> dict[str, list[str]]:
    """Slug of an expansion -> the gazetteer's acronyms of it ("european-union" -> ["EU"])."""
    from pipeline.ids import slug
    from pipeline.stages.entities import ALIASES_PATH
    from pipeline.stages.names import fold_name

    raw = json.loads(ALIASES_PATH.read_text("utf-8"))["acronyms"]
    out: dict[str, list[str]] = {}
    for acronym, expansion in raw.items():
        for key in {slug(expansion), slug(fold_name(expansion))}:
            out.setdefault(key, []).append(acronym)
    return out


@lru_cache(maxsize=4096)
def entity_words(entity_id: str) -> frozenset[str]:
    """Keys (:func:`word_keys`) one of which an article whose entities include ``entity_id``
    has among its words."""
    kind, _, name = entity_id.partition(":")
    if kind == "person":  # person:surname or person:surname:first; the surname is always there
        surname = name.split(":")[0]
        parts = [p for p in surname.split("-") if p]
        return frozenset({max(parts, key=len)}) if parts else frozenset()
    words = name.replace("-", " ")
    forms = [words, *_place_forms().get(name, ()), *_acronyms().get(name, ())]
    initials = "".join(w[0] for w in words.split() if w not in _MINOR).upper()
    if len(initials) >= 2:
        forms.append(initials)
    return frozenset(k for k in (_form_key(f) for f in forms) if k)


@lru_cache(maxsize=1)
def _inflections() -> dict[str, frozenset[str]]:
    """Lemma -> the words the English lemma table gives it (the table backwards)."""
    from pipeline.stages.nlp import LEMMA_TABLES

    with gzip.open(LEMMA_TABLES["en"], "rt", encoding="utf-8") as f:
        table = json.load(f)
    out: dict[str, set[str]] = {}
    for word, lemma in table.items():
        out.setdefault(lemma.lower(), set()).add(word.lower())
    return {lemma: frozenset(words) for lemma, words in out.items()}


def inflected(lemma: str) -> frozenset[str]:
    """Forms of an English lemma: the table's, and regular endings."""
    lemma = lemma.lower()
    forms = {lemma, lemma + "s", lemma + "es", lemma + "ed", lemma + "d", lemma + "ing"}
    if lemma.endswith("e"):
        forms.add(lemma[:-1] + "ing")
    if lemma.endswith("y"):
        forms |= {lemma[:-1] + "ies", lemma[:-1] + "ied"}
    if len(lemma) >= 3 and lemma[-1] not in "aeiouwxy":
        forms |= {lemma + lemma[-1] + "ed", lemma + lemma[-1] + "ing"}
    return frozenset(forms) | _inflections().get(lemma, frozenset())


@lru_cache(maxsize=256)
def event_words(event_type: str) -> frozenset[str] | None:
    """Lower-cased words one of which an article tagged ``event_type`` has; None when a
    trigger pattern of the type has no word to anchor on; none for a type the taxonomy does
    not have (no article is tagged with it)."""
    from pipeline.stages.events import trigger_anchors

    anchors = trigger_anchors(event_type)
    if anchors is None:
        return None
    words: set[str] = set()
    for attr, values in anchors:
        for value in values:
            words |= inflected(value) if attr == "LEMMA" else {value.lower()}
            parts = [part for part in re.split(r"[\W_]+", value.lower()) if part]
            if len(parts) > 1:  # "cease-fire": the article's words are split at the hyphen
                words.add(_rarest(parts))
    return frozenset(words)


class Prefilter:
    """Whether an article could match one of the subscriptions it was built from: keys of
    entity and event anchors looked up among the article's word keys, analysed words among
    its analysed words (only when some subscription needs them)."""

    def __init__(self, words: Iterable[str], text: Iterable[str] = (), title: Iterable[str] = ()):
        self.words = frozenset(words)
        self.text = frozenset(text)
        self.title = frozenset(title)

    def __bool__(self) -> bool:
        return bool(self.words or self.text or self.title)

    def could_match(self, title: str, body: str) -> bool:
        whole = title + "\n" + body
        if self.words and not self.words.isdisjoint(article_keys(whole)):
            return True
        if self.text or self.title:
            view = ArticleView(whole, title, frozenset(), frozenset(), None, None)
            if self.text and not self.text.isdisjoint(view.text_keys):
                return True
            if self.title and not self.title.isdisjoint(view.title_keys):
                return True
        return False


def build_prefilter(anchor_sets: Iterable[Anchors]) -> Prefilter | None:
    """The prefilter of subscriptions with these anchor sets (the matcher's), or None when one
    of them could match an article the prefilter cannot tell from its words."""
    words: set[str] = set()
    text: set[str] = set()
    title: set[str] = set()
    for anchors in anchor_sets:
        if anchors is None:
            return None
        for scope, value in anchors:
            if scope == "entity":
                words |= entity_words(value)
            elif scope == "event":
                found = event_words(value)
                if found is None:
                    return None
                words |= found
            elif scope == "text":
                text.add(value)
            elif scope == "title":
                title.add(value)
            else:  # source, lang: any article's words
                return None
    return Prefilter(words, text, title)
