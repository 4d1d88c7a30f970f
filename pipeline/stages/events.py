"""The `tag events` stage: rule-based event tags over the Docs the entity stage parsed.

The taxonomy and its rules live in ``pipeline/data/events.json`` (documented in docs/events.md).
Rules are spaCy ``Matcher`` patterns over lowercased lemmas; a type may require conflict context
in the document and may ignore negated/cessation matches ("cease attacks"). Each tag carries the
triggering sentences as evidence, and where the sentences give them a place (a location entity,
preferably after "in"/"at") and a date expression.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from spacy.matcher import Matcher
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from schemas.models import Entity, EventTag

EVENTS_PATH = Path(__file__).resolve().parents[1] / "data" / "events.json"
MAX_EVIDENCE = 3

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
DATE_RE = re.compile(
    rf"\b(?:{_MONTH}\.?\s+{_DAY}\b(?:,?\s+\d{{4}})?|{_DAY}\s+{_MONTH}\b(?:\s+\d{{4}})?"
    rf"|(?:(?<=[Oo]n )|(?<=next )|(?<=last )|(?<=this )){_WEEKDAY})"
)
"""Date expressions in a sentence: 'June 2', '2 June', 'May 16th', '(on) Monday'."""

_LOCATIVE = frozenset({"in", "at", "near", "from"})


@dataclass(frozen=True)
class EventType:
    """One taxonomy entry, as loaded from events.json."""

    name: str
    definition: str
    patterns: list
    context: frozenset[str]
    negation_guard: bool


@dataclass(frozen=True)
class Taxonomy:
    types: dict[str, EventType]
    negators: frozenset[str]
    guard_window: int


def _lemma_spec(value: str | list | dict) -> dict:
    """``{"lemma": ...}`` -> a case-insensitive LEMMA spec (value, Capitalised value)."""
    if isinstance(value, dict):
        return value
    values = [value] if isinstance(value, str) else value
    return {"IN": sorted({form for v in values for form in (v, v.capitalize())})}


def _compile_token(spec: dict) -> dict:
    compiled = {k: v for k, v in spec.items() if k != "lemma"}
    if "lemma" in spec:
        compiled["LEMMA"] = _lemma_spec(spec["lemma"])
    return compiled


@lru_cache(maxsize=1)
def taxonomy() -> Taxonomy:
    """The event taxonomy, loaded once from events.json with patterns compiled to Matcher form."""
    raw = json.loads(EVENTS_PATH.read_text("utf-8"))
    types = {
        name: EventType(
            name=name,
            definition=spec["definition"],
            patterns=[[_compile_token(t) for t in pattern] for pattern in spec["patterns"]],
            context=frozenset(spec.get("context", ())),
            negation_guard=spec.get("negation_guard", False),
        )
        for name, spec in raw["types"].items()
    }
    return Taxonomy(types, frozenset(raw["negators"]), raw["guard_window"])


_MATCHERS: dict[int, Matcher] = {}


def _matcher(vocab: Vocab) -> Matcher:
    """One compiled Matcher per Vocab (i.e. per loaded pipeline)."""
    matcher = _MATCHERS.get(id(vocab))
    if matcher is None:
        matcher = Matcher(vocab)
        for event in taxonomy().types.values():
            matcher.add(event.name, event.patterns)
        _MATCHERS[id(vocab)] = matcher
    return matcher


def _negated(span: Span, window: int, negators: frozenset[str]) -> bool:
    """Whether a negating/cessation lemma precedes the match within its sentence."""
    sent_start = span.sent.start
    before = span.doc[max(sent_start, span.start - window): span.start]
    return any(t.lemma_.lower() in negators for t in before)


def _has_context(doc: Doc, lemmas: frozenset[str]) -> bool:
    return not lemmas or any(t.lemma_.lower() in lemmas for t in doc)


def _trigger_sentences(doc: Doc) -> dict[str, list[Span]]:
    """Event type -> sentences with an accepted match, in document order, without repeats."""
    tax = taxonomy()
    found: dict[str, dict[int, Span]] = {}
    context_ok: dict[str, bool] = {}
    for match_id, start, end in _matcher(doc.vocab)(doc):
        name = doc.vocab.strings[match_id]
        event = tax.types[name]
        span = doc[start:end]
        if event.negation_guard and _negated(span, tax.guard_window, tax.negators):
            continue
        if name not in context_ok:
            context_ok[name] = _has_context(doc, event.context)
        if context_ok[name]:
            found.setdefault(name, {}).setdefault(span.sent.start, span.sent)
    return {name: [sents[k] for k in sorted(sents)] for name, sents in found.items()}


def _location_spans(entities: list[Entity]) -> list[tuple[int, int, str]]:
    return [(m.start, m.end, e.name) for e in entities if e.type == "location" for m in e.offsets]


def _sentence_place(sent: Span, locations: list[tuple[int, int, str]]) -> str | None:
    """A location in the sentence: the first one after "in"/"at"/..., else the first one."""
    inside = sorted(loc for loc in locations if sent.start_char <= loc[0] and loc[1] <= sent.end_char)
    for start, _, name in inside:
        previous = sent.doc.text[sent.start_char:start].split()
        if previous and previous[-1].lower() in _LOCATIVE:
            return name
    return inside[0][2] if inside else None


def _most_common(values: list[str | None]) -> str | None:
    counted = Counter(v for v in values if v)
    return counted.most_common(1)[0][0] if counted else None


def _tag(name: str, sents: list[Span], locations: list[tuple[int, int, str]]) -> EventTag:
    evidence = list(dict.fromkeys(" ".join(s.text.split()) for s in sents))[:MAX_EVIDENCE]
    dates = [m.group(0) for s in sents for m in DATE_RE.finditer(s.text)]
    return EventTag(
        type=name,
        evidence=evidence,
        place=_most_common([_sentence_place(s, locations) for s in sents]),
        date_text=_most_common(dates),
    )


def tag_events(doc: Doc, entities: list[Entity] | None = None) -> list[EventTag]:
    """Event tags of one parsed body, in taxonomy order.

    ``entities`` (from the entity stage, same body) supply the tag's place; without them the
    tags carry no place. Place and date are the most frequent ones over the triggering sentences.
    """
    locations = _location_spans(entities or [])
    triggers = _trigger_sentences(doc)
    return [_tag(name, triggers[name], locations) for name in taxonomy().types if name in triggers]
