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
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np
from spacy.attrs import IDS
from spacy.matcher import Matcher
from spacy.strings import get_string_id
from spacy.tokens import Doc, Span, Token
from spacy.vocab import Vocab

from schemas.models import EVENT_ALERT_SALIENCE, Entity, EventTag

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
    patterns: list[Any]
    weak_patterns: list[Any]
    support: frozenset[str]
    against: frozenset[str]
    reject_after: frozenset[str]
    reject_before: tuple[tuple[str, ...], ...]
    negation_guard: bool
    reporting_guard: bool
    related: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Taxonomy:
    types: dict[str, EventType]
    negators: frozenset[str]
    guard_window: int
    window: int


def _lemma_spec(value: str | list[Any] | dict[str, Any]) -> dict[str, Any]:
    """``{"lemma": ...}`` -> a case-insensitive LEMMA spec (value, Capitalised value)."""
    if isinstance(value, dict):
        return value
    values = [value] if isinstance(value, str) else value
    return {"IN": sorted({form for v in values for form in (v, v.capitalize())})}


def _compile_token(spec: dict[str, Any]) -> dict[str, Any]:
    compiled = {k: v for k, v in spec.items() if k != "lemma"}
    if "lemma" in spec:
        compiled["LEMMA"] = _lemma_spec(spec["lemma"])
    return compiled


def _compile(patterns: list[Any]) -> list[Any]:
    return [[_compile_token(t) for t in pattern] for pattern in patterns]


def _lowercase_or_initial(patterns: list[Any]) -> list[Any]:
    """Weak patterns whose first token is lowercase, or capitalised only as a sentence's first
    word: a capitalised ambiguous word inside a sentence is a name ("Shell", "Storm", "Rally")."""
    out = []
    for pattern in patterns:
        first, rest = pattern[0], pattern[1:]
        out.append([{**first, "IS_TITLE": False}, *rest])
        out.append([{**first, "IS_SENT_START": True}, *rest])
    return out


@lru_cache(maxsize=1)
def taxonomy() -> Taxonomy:
    """The event taxonomy, loaded once from events.json with patterns compiled to Matcher form."""
    raw = json.loads(EVENTS_PATH.read_text("utf-8"))
    types = {
        name: EventType(
            name=name,
            definition=spec["definition"],
            patterns=_compile(spec["patterns"]),
            weak_patterns=_lowercase_or_initial(_compile(spec.get("weak_patterns", []))),
            support=frozenset(spec.get("support", ())),
            against=frozenset(spec.get("against", ())),
            reject_after=frozenset(spec.get("reject_after", ())),
            reject_before=tuple(tuple(seq) for seq in spec.get("reject_before", ())),
            negation_guard=spec.get("negation_guard", False),
            reporting_guard=spec.get("reporting_guard", False),
            related=frozenset(spec.get("related", ())),
        )
        for name, spec in raw["types"].items()
    }
    return Taxonomy(types, frozenset(raw["negators"]), raw["guard_window"], raw.get("window", 12))


WEAK = "#weak"

_MATCHERS: dict[int, Matcher] = {}


def _matcher(vocab: Vocab) -> Matcher:
    """One compiled Matcher per Vocab (i.e. per loaded pipeline); weak rules under '<type>#weak'."""
    matcher = _MATCHERS.get(id(vocab))
    if matcher is None:
        matcher = Matcher(vocab)
        for event in taxonomy().types.values():
            matcher.add(event.name, event.patterns)
            if event.weak_patterns:
                matcher.add(event.name + WEAK, event.weak_patterns)
        _MATCHERS[id(vocab)] = matcher
    return matcher


_ANCHOR_ATTRS = ("ORTH", "TEXT", "LOWER", "LEMMA", "NORM")
"""Token attributes whose required values can anchor a pattern (read with ``Doc.to_array``)."""


@dataclass(frozen=True)
class _AnchorPlan:
    """Where the Matcher can match at all. Every match of a pattern contains the pattern's anchor:
    a token it requires whose attribute ``attrs[j]`` has one of a few values. ``values[j]`` are
    those values' ids (sorted uint64), and ``before[j]``/``after[j]`` the most tokens any pattern
    anchored on that value can match before/after its anchor token."""

    attrs: tuple[int, ...]
    values: tuple[Any, ...]
    before: tuple[Any, ...]
    after: tuple[Any, ...]


def _op(spec: dict[str, Any]) -> str | None:
    return next((v for k, v in spec.items() if k.upper() == "OP"), None)


def _repeats(spec: dict[str, Any]) -> tuple[int, float]:
    """(min, max) tokens one pattern token takes, from its OP ('!' counted as one token)."""
    op = _op(spec)
    if op is None or op in ("1", "!"):
        return 1, 1
    if op in ("?", "*", "+"):
        return (0 if op != "+" else 1), (1 if op == "?" else float("inf"))
    low, _, high = op[1:-1].partition(",") if "," in op else (op[1:-1], "", op[1:-1])
    return int(low or 0), (int(high) if high else float("inf"))


def _required_values(spec: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """(attribute, values) pairs one of which a token matching ``spec`` must have."""
    out = []
    for key, value in spec.items():
        attr = key.upper()
        if attr not in _ANCHOR_ATTRS:
            continue
        if isinstance(value, dict) and isinstance(value.get("IN"), list):
            value = value["IN"]
        values = [value] if isinstance(value, str) else value
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            out.append(("ORTH" if attr == "TEXT" else attr, tuple(values)))
    return out


def _anchor_score(values: tuple[str, ...]) -> tuple[int, int]:
    """Lower is likely a rarer anchor: few values, short ones (function words) counting ten,
    then long values."""
    return sum(10 if len(v) <= 3 else 1 for v in values), -min(len(v) for v in values)


def _pattern_anchor(pattern: list[dict[str, Any]]) -> tuple[int, str, tuple[str, ...]] | None:
    """(token index, attribute, values) of the likely rarest token one of whose values every
    match of ``pattern`` has; None when no token must have a value."""
    reps = [_repeats(spec) for spec in pattern]
    choices = [
        (_anchor_score(values), k, attr, values)
        for k, spec in enumerate(pattern)
        if reps[k][0] >= 1 and _op(spec) != "!"
        for attr, values in _required_values(spec)
    ]
    if not choices:
        return None
    _, k, attr, values = min(choices, key=lambda c: c[0])
    return k, attr, values


@lru_cache(maxsize=256)
def trigger_anchors(name: str) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """(attribute, values) per trigger pattern of event type ``name``: an article tagged with
    the type has, for one of them, a token with one of the values (pipeline.alerts.prefilter);
    None when a pattern has no such token; none for a type the taxonomy does not have."""
    event = taxonomy().types.get(name)
    if event is None:
        return ()
    out = []
    for pattern in event.patterns + event.weak_patterns:
        anchor = _pattern_anchor(pattern)
        if anchor is None:
            return None
        out.append(anchor[1:])
    return tuple(out)


@lru_cache(maxsize=1)
def _anchor_plan() -> _AnchorPlan | None:
    """The anchors of the taxonomy's patterns, or None when some pattern has no anchor or no
    bounded length (then only a whole-doc match is sure to find everything)."""
    extents: dict[str, dict[str, tuple[int, int]]] = {}  # attr -> value -> (before, after)
    for event in taxonomy().types.values():
        for pattern in event.patterns + event.weak_patterns:
            reps = [_repeats(spec) for spec in pattern]
            anchor = _pattern_anchor(pattern)
            if anchor is None or any(high == float("inf") for _, high in reps):
                return None
            k, attr, values = anchor
            before = int(sum(high for _, high in reps[:k]))
            after = int(sum(high for _, high in reps[k + 1 :]))
            for value in values:
                old = extents.setdefault(attr, {}).get(value, (0, 0))
                extents[attr][value] = (max(old[0], before), max(old[1], after))
    attrs = sorted(extents)
    by_id = [sorted((get_string_id(v), ext) for v, ext in extents[a].items()) for a in attrs]
    return _AnchorPlan(
        attrs=tuple(IDS[a] for a in attrs),
        values=tuple(np.array([i for i, _ in ids], dtype=np.uint64) for ids in by_id),
        before=tuple(np.array([e[0] for _, e in ids], dtype=np.int64) for ids in by_id),
        after=tuple(np.array([e[1] for _, e in ids], dtype=np.int64) for ids in by_id),
    )


def _whole_doc_matches(doc: Doc) -> list[tuple[int, int, int]]:
    """The taxonomy Matcher's matches over the whole doc: (match_id, start, end)."""
    return _matcher(doc.vocab)(doc)


def _matches(doc: Doc) -> list[tuple[int, int, int]]:
    """Exactly :func:`_whole_doc_matches` (same matches, same order), from the Matcher run only on
    the stretches of the doc around anchor tokens (see :class:`_AnchorPlan`).

    Every match lies in the window [anchor - before, anchor + after] of its pattern's anchor, so
    the merged (disjoint) windows hold all matches, each in one window. Positions the Matcher gives for a
    Span are relative to the Span. It reports matches in the order its states complete them,
    and a state's fate depends only on the tokens it has read, so a window's matches come in
    the whole-doc order, and windows in document order keep it across windows. Each window ends
    one token past its last possible match, so a match that ends a window is reported as it is
    in the whole doc (when the next token is read, not by the end-of-doc pass)."""
    plan = _anchor_plan()
    matcher = _matcher(doc.vocab)
    n = len(doc)
    if plan is None:
        return _whole_doc_matches(doc)
    columns = doc.to_array(list(plan.attrs)).reshape(n, len(plan.attrs))
    lo = np.full(n, n, dtype=np.int64)  # window of each token: [lo, hi), empty if not an anchor
    hi = np.zeros(n, dtype=np.int64)
    positions = np.arange(n, dtype=np.int64)
    for j, values in enumerate(plan.values):
        column = columns[:, j]
        found = np.minimum(np.searchsorted(values, column), len(values) - 1)
        hit = values[found] == column
        lo = np.where(hit, np.minimum(lo, positions - plan.before[j][found]), lo)
        hi = np.where(hit, np.maximum(hi, positions + plan.after[j][found] + 2), hi)
    anchors = np.flatnonzero(hi)
    windows: list[list[int]] = []
    for start, end in sorted(zip(lo[anchors].tolist(), hi[anchors].tolist())):
        start, end = max(0, start), min(n, end)
        if windows and start <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], end)
        else:
            windows.append([start, end])
    if not windows:
        # nothing to match; the Matcher still checks the annotation it needs (an empty Span)
        return matcher(doc[0:0])
    if windows == [[0, n]]:
        return _whole_doc_matches(doc)
    out: list[tuple[int, int, int]] = []
    for start, end in windows:
        out.extend((key, start + s, start + e) for key, s, e in matcher(doc[start:end]))
    return out


def _negated(span: Span, window: int, negators: frozenset[str]) -> bool:
    """Whether a negating/cessation lemma precedes the match within its sentence."""
    sent_start = span.sent.start
    before = span.doc[max(sent_start, span.start - window) : span.start]
    return any(t.lemma_.lower() in negators for t in before)


def _keys(token: Token) -> tuple[str, str]:
    return token.lemma_.lower(), token.lower_


ADJACENT = 2
"""Tokens either side of a trigger where a single other-sense cue decides ("election of directors")."""


def sense_cues(span: Span, event: EventType, window: int) -> tuple[int, int, bool]:
    """(event-sense cues, other-sense cues, an other-sense cue adjacent to the trigger) within
    ``window`` tokens of the trigger, same sentence. Each cue lemma counts once; the trigger's own
    tokens are not cues."""
    sent = span.sent
    lo, hi = max(sent.start, span.start - window), min(sent.end, span.end + window)
    seen_for, seen_against, adjacent = set(), set(), False
    for token in span.doc[lo:hi]:
        if span.start <= token.i < span.end:
            continue
        lemma, lower = _keys(token)
        if lemma in event.support or lower in event.support:
            seen_for.add(lemma)
        if lemma in event.against or lower in event.against:
            seen_against.add(lemma)
            if span.start - ADJACENT <= token.i < span.end + ADJACENT:
                adjacent = True
    return len(seen_for), len(seen_against), adjacent


_REPORTING_NEXT = frozenset(
    {"that", "he", "she", "they", "it", "we", "i", "you", '"', "'", "“", "‘"}
)


def _reporting_use(span: Span) -> bool:
    """A verb trigger introducing a clause ("protested that ...", "protested they had ..."):
    the verb reports a complaint, not a public protest. Needs no tagger: the verb form (bare or
    -ed/-ing) and the next token ("that", a pronoun, a quote)."""
    if span.end >= span.sent.end:
        return False
    last = span.doc[span.end - 1]
    verb_form = last.lower_.endswith(("ed", "ing")) or last.lower_ == last.lemma_.lower()
    return verb_form and span.doc[span.end].lower_ in _REPORTING_NEXT


def _figurative(span: Span, event: EventType) -> bool:
    """'flood of offers', 'storm of protest': an idiomatic frame right around the trigger."""
    if event.reject_after and span.end < span.sent.end:
        if span.doc[span.end].lemma_.lower() in event.reject_after:
            return True
    for seq in event.reject_before:
        start = span.start - len(seq)
        if (
            start >= span.sent.start
            and tuple(t.lemma_.lower() for t in span.doc[start : span.start]) == seq
        ):
            return True
    return False


ACCEPT, REJECT, IF_REPORTED = "accept", "reject", "if_reported"


def judge_match(span: Span, event: EventType, weak: bool, tax: Taxonomy | None = None) -> str:
    """Whether a trigger match means an event of its type here (see docs/events.md, "Senses").

    Guards first (negation, figurative frames, reporting verbs: reject). Then the sense cues:
    a strong trigger stands unless other-sense cues outnumber event cues by two or more, or
    outnumber them with one right next to the trigger; a weak (ambiguous) trigger needs more event
    cues than other-sense cues, and with neither kind of cue it counts only when the article
    reports the event elsewhere, or a related event with a strong trigger (``IF_REPORTED``: "the
    attack" in a story about air strikes, "the talks" in a story about a ceasefire)."""
    tax = tax or taxonomy()
    if event.negation_guard and _negated(span, tax.guard_window, tax.negators):
        return REJECT
    if _figurative(span, event):
        return REJECT
    if event.reporting_guard and _reporting_use(span):
        return REJECT
    support, against, adjacent = sense_cues(span, event, tax.window)
    story_against = _story_leans_against(span.doc, event) and support <= 1
    if weak:
        if support > against and not story_against:
            return ACCEPT
        return IF_REPORTED if support == against == 0 and not story_against else REJECT
    if (
        against >= support + 2
        or (adjacent and against > support)
        or (story_against and support == 0)
    ):
        return REJECT
    return ACCEPT


STORY_MARGIN = 3
"""Other-sense cues must outnumber event cues in the whole article by this much for the article
to lean to the other sense (a strike-bound port in a labour story, a 'battle' over rates)."""


def _story_leans_against(doc: Doc, event: EventType) -> bool:
    """Whether the article's vocabulary as a whole favours the trigger's other senses: distinct
    other-sense cue lemmas exceed distinct event cue lemmas by ``STORY_MARGIN`` or more."""
    cache: dict[str, bool] = doc.user_data.setdefault(_STORY_CUES, {})
    if event.name not in cache:
        lemmas = {t.lemma_.lower() for t in doc} | {t.lower_ for t in doc}
        cache[event.name] = (
            len(lemmas & event.against) - len(lemmas & event.support) >= STORY_MARGIN
        )
    return cache[event.name]


_STORY_CUES = "newspipe_story_cues"


def accept_match(span: Span, event: EventType, weak: bool, tax: Taxonomy | None = None) -> bool:
    """:func:`judge_match` for a match on its own (no article context)."""
    return judge_match(span, event, weak, tax) == ACCEPT


def _trigger_sentences(doc: Doc) -> dict[str, list[Span]]:
    """Event type -> sentences with an accepted match, in document order, without repeats."""
    tax = taxonomy()
    found: dict[str, dict[int, Span]] = {}
    pending: dict[str, dict[int, Span]] = {}
    strong: set[str] = set()
    for match_id, start, end in _matches(doc):
        key = doc.vocab.strings[match_id]
        weak = key.endswith(WEAK)
        name = key[: -len(WEAK)] if weak else key
        span = doc[start:end]
        if span.sent.start in found.get(name, {}):
            continue
        verdict = judge_match(span, tax.types[name], weak, tax)
        if verdict == ACCEPT:
            found.setdefault(name, {})[span.sent.start] = span.sent
            if not weak:
                strong.add(name)
        elif verdict == IF_REPORTED:
            pending.setdefault(name, {})[span.sent.start] = span.sent
    reported = set(found)
    for name, sents in pending.items():
        if name in reported or tax.types[name].related & strong:
            found.setdefault(name, {})
            for start, sent in sents.items():
                found[name].setdefault(start, sent)
    return {name: [sents[k] for k in sorted(sents)] for name, sents in found.items()}


LEAD_SENTENCES = 2
"""Sentences of the body that count as the lead (with the title)."""


def salience(sents: list[Span], n_sentences: int, in_title: bool) -> float:
    """How central an event is to its article, from where and how often it is reported.

    1.0 when the title or the lead (first two sentences) reports it; otherwise the number of
    reporting sentences relative to a tenth of the article (at least 2), capped at 0.9: a single
    mention deep in a long unrelated story is a passing reference (< 0.5, not alerted)."""
    if in_title or any(s.start == 0 or _sentence_index(s) < LEAD_SENTENCES for s in sents):
        return 1.0
    return round(min(0.9, len(sents) / max(2.0, n_sentences / 10)), 2)


def _sentence_index(sent: Span) -> int:
    return cast(int, sent.doc.user_data.get(_SENT_INDEX, {}).get(sent.start, 10**6))


_SENT_INDEX = "newspipe_sent_index"


def _index_sentences(doc: Doc) -> int:
    starts = {s.start: i for i, s in enumerate(doc.sents)}
    doc.user_data[_SENT_INDEX] = starts
    return len(starts)


def _title_reports(title: str | None, sents: list[Span], event: EventType) -> bool:
    """Whether the title repeats an accepted trigger word of the event (case-insensitively)."""
    if not title:
        return False
    words = set(re.findall(r"[a-z][a-z-]+", title.lower()))
    lemmas = _trigger_lemmas(event.name)
    triggers = {
        t.lower_ for s in sents for t in s if t.lemma_.lower() in lemmas or t.lower_ in lemmas
    }
    return bool(words & triggers)


@lru_cache(maxsize=32)
def _trigger_lemmas(name: str) -> frozenset[str]:
    raw = json.loads(EVENTS_PATH.read_text("utf-8"))["types"][name]
    lemmas: set[str] = set()
    for pattern in raw["patterns"] + raw.get("weak_patterns", []):
        for spec in pattern:
            for value in (spec.get("lemma"), spec.get("LOWER")):
                if isinstance(value, dict):
                    value = value.get("IN")
                if isinstance(value, str):
                    lemmas.add(value)
                elif isinstance(value, list):
                    lemmas.update(value)
    return frozenset(lemmas - {"the", "a", "of", "to", "in", "into"})


def _location_spans(entities: list[Entity]) -> list[tuple[int, int, str]]:
    return [(m.start, m.end, e.name) for e in entities if e.type == "location" for m in e.offsets]


def _sentence_place(sent: Span, locations: list[tuple[int, int, str]]) -> str | None:
    """A location in the sentence: the first one after "in"/"at"/..., else the first one."""
    inside = sorted(
        loc for loc in locations if sent.start_char <= loc[0] and loc[1] <= sent.end_char
    )
    for start, _, name in inside:
        previous = sent.text[: start - sent.start_char].split()
        if previous and previous[-1].lower() in _LOCATIVE:
            return name
    return inside[0][2] if inside else None


def _most_common(values: Sequence[str | None]) -> str | None:
    counted = Counter(v for v in values if v)
    return counted.most_common(1)[0][0] if counted else None


def _tag(
    name: str, sents: list[Span], locations: list[tuple[int, int, str]], score: float = 1.0
) -> EventTag:
    evidence = list(dict.fromkeys(" ".join(s.text.split()) for s in sents))[:MAX_EVIDENCE]
    dates = [m.group(0) for s in sents for m in DATE_RE.finditer(s.text)]
    return EventTag(
        type=name,
        evidence=evidence,
        place=_most_common([_sentence_place(s, locations) for s in sents]),
        date_text=_most_common(dates),
        salience=score,
    )


def tag_events(
    doc: Doc, entities: list[Entity] | None = None, title: str | None = None
) -> list[EventTag]:
    """Event tags of one parsed body, in taxonomy order.

    ``entities`` (from the entity stage, same body) supply the tag's place; without them the
    tags carry no place. Place and date are the most frequent ones over the triggering sentences.
    ``title`` (not parsed) raises a tag's salience when it repeats the trigger.
    """
    locations = _location_spans(entities or [])
    n_sentences = _index_sentences(doc)
    triggers = _trigger_sentences(doc)
    types = taxonomy().types
    scores = {
        name: salience(
            triggers[name], n_sentences, _title_reports(title, triggers[name], types[name])
        )
        for name in types
        if name in triggers
    }
    scores = story_salience(scores)
    return [
        _tag(name, triggers[name], locations, scores[name]) for name in types if name in triggers
    ]


@lru_cache(maxsize=1)
def _domains() -> tuple[dict[str, frozenset[str]], float]:
    raw = json.loads(EVENTS_PATH.read_text("utf-8"))
    members: dict[str, set[str]] = {}
    for types in raw.get("domains", {}).values():
        for name in types:
            members.setdefault(name, set()).update(t for t in types if t != name)
    return {k: frozenset(v) for k, v in members.items()}, raw.get("domain_salience", 0.6)


def story_salience(scores: dict[str, float]) -> dict[str, float]:
    """A low-salience tag whose article saliently reports another type of the same domain
    (conflict, civil unrest, disaster) belongs to the story: a sanction threatened in a story
    about peace talks is not a passing reference; a tsunami in a music-chart story still is."""
    peers, raised = _domains()
    salient = {name for name, score in scores.items() if score >= EVENT_ALERT_SALIENCE}
    return {
        name: max(score, raised)
        if score < EVENT_ALERT_SALIENCE and peers.get(name, frozenset()) & salient
        else score
        for name, score in scores.items()
    }
