"""In-stream alert matching: many subscriptions against one article, through an inverted index.

Each subscription's query is compiled to a boolean tree and given an *anchor set*: index keys
``(scope, value)`` such that the query can only be true for an article having at least one of
them (scopes: ``text``, ``title``, ``entity``, ``event``, ``source``, ``lang``):

* a term anchors on its analysed form, a phrase (or multi-part word) on its longest word and on
  its compound (a phrase can match as a compound alone, "cease fire" ~ "ceasefire");
* a field anchors on its key (``entity`` on every id its name resolves to);
* OR anchors on the union of its children's anchors, AND on the cheapest child's (entity and
  event keys are preferred to long words, long words to short ones, ``source``/``lang`` last);
* NOT cannot anchor. The parser rejects queries that cannot anchor (only NOT, or an OR with an
  all-negative alternative); a compiled query without anchors would still be evaluated on
  every article.

Each subscription is matched at one of two points of the stream (:func:`match_stage`): on the
**clean** article (deduplicated, before the NER) when nothing it reads comes from the NER or
the story stage (its query has no ``entity:``/``event:`` field, it is neither per story nor
a digest, which groups by story), else on the **enriched** article. A keyword alert so never
waits for the NER.

The index maps key -> subscription ids; :meth:`SubscriptionIndex.match` looks up the article's
keys, evaluates only those candidates, and so costs in proportion to the subscriptions that
share a key with the article, not to all of them.

Matching semantics equal those of the Elasticsearch translation (``pipeline.query.es_query``):
a term matches when an article token or compound equals its analysed form; a phrase when its
analysed words are consecutive in title + body (or its compound is a token or compound); fields
compare entity ids, event types, source and language (the last two case-insensitively).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from functools import cached_property, lru_cache
from typing import Literal

from pipeline.query.analysis import (
    TokenSpan,
    body_token_spans,
    compounds_from_spans,
    stem,
    token_spans,
)
from pipeline.query.language import (
    And,
    Field,
    Node,
    Not,
    Phrase,
    Term,
    normalize_event_type,
    parse_query,
    text_terms,
)
from schemas import AlertMatch, CleanArticle, Subscription

__all__ = [
    "ArticleView",
    "CompiledQuery",
    "EntityResolver",
    "Stage",
    "SubscriptionIndex",
    "compile_query",
    "literal_entity_resolver",
    "match_stage",
    "snippet",
]

EntityResolver = Callable[[str], set[str]]
Stage = Literal["clean", "enriched"]
"""Where in the stream a subscription is matched (:func:`match_stage`)."""
Key = tuple[str, str]
Anchors = frozenset[Key] | None  # None: cannot anchor

_ID_RE = re.compile(r"(person|organization|location|group|misc):\S+")


def literal_entity_resolver(name: str) -> set[str]:
    """The default resolver: a name that is itself an entity id ("person:medinski") resolves
    to that id, anything else to nothing. Production injects the entity registry's resolver
    (``pipeline.stages.entities.entity_ids_for_name`` bound to a registry)."""
    name = name.strip()
    return {name} if _ID_RE.fullmatch(name) else set()


# --- the article side ----------------------------------------------------------------------


def _positions(spans: list[TokenSpan]) -> dict[str, set[int]]:
    positions: dict[str, set[int]] = {}
    for i, span in enumerate(spans):
        positions.setdefault(span.token, set()).add(i)
    return positions


def _keys(spans: list[TokenSpan]) -> frozenset[str]:
    """Index keys of analysed text: its tokens and its compounds."""
    return frozenset(s.token for s in spans) | frozenset(compounds_from_spans(spans))


class ArticleView:
    """What matching needs from one article, computed once per article, each part when first
    asked for: an enriched article's view is often matched by entity and event subscriptions
    only, which never read its words.

    ``text_*`` cover title + body analysed as one text (as ``search_text`` is), ``title_*`` the
    title alone; ``*_keys`` are tokens and compounds together; ``*_positions`` map a token to
    its positions (for phrases).
    """

    def __init__(
        self,
        text: str,
        title: str,
        entity_ids: frozenset[str],
        event_types: frozenset[str],
        source: str | None,
        language: str | None,
    ) -> None:
        self._text, self._title = text, title
        self.entity_ids = entity_ids
        self.event_types = event_types
        self.source = source
        self.language = language

    @classmethod
    def from_article(cls, article: CleanArticle) -> ArticleView:
        """The view of an enriched article, or of a clean one (no entities, no events)."""
        entities = getattr(article, "entities", ())
        events = getattr(article, "events", ())
        return cls(
            text=article.title + "\n" + article.body,
            title=article.title,
            entity_ids=frozenset(e.id for e in entities),
            event_types=frozenset(normalize_event_type(e.type) for e in events if e.alertable),
            source=article.source.casefold() if article.source else None,
            language=article.language.casefold() if article.language else None,
        )

    @cached_property
    def _text_spans(self) -> list[TokenSpan]:
        return token_spans(self._text)

    @cached_property
    def _title_spans(self) -> list[TokenSpan]:
        return token_spans(self._title)

    @cached_property
    def text_positions(self) -> dict[str, set[int]]:
        return _positions(self._text_spans)

    @cached_property
    def text_keys(self) -> frozenset[str]:
        return _keys(self._text_spans)

    @cached_property
    def title_positions(self) -> dict[str, set[int]]:
        return _positions(self._title_spans)

    @cached_property
    def title_keys(self) -> frozenset[str]:
        return _keys(self._title_spans)

    def keys(self, scope: str) -> Collection[str]:
        """The article's index keys of one scope."""
        if scope in ("source", "lang"):
            value = self.source if scope == "source" else self.language
            return (value,) if value else ()
        if scope == "text":
            return self.text_keys
        if scope == "title":
            return self.title_keys
        return {"entity": self.entity_ids, "event": self.event_types}[scope]


def _has_sequence(positions: dict[str, set[int]], words: tuple[str, ...]) -> bool:
    """Whether ``words`` occur consecutively, given each token's positions."""
    found = [positions.get(word, set()) for word in words]
    if not all(found):
        return False
    pivot = min(range(len(words)), key=lambda k: len(found[k]))  # the rarest word
    others = [k for k in range(len(words)) if k != pivot]
    return any(all(p - pivot + k in found[k] for k in others) for p in found[pivot])


# --- compiled queries ----------------------------------------------------------------------

#: anchor cost per scope: the AND child with the cheapest anchors is indexed
_SCOPE_COST = {
    "entity": 1.0,
    "event": 2.0,
    "title": 2.0,
    "text": 3.0,
    "source": 50.0,
    "lang": 200.0,
}


def _anchor_cost(anchors: frozenset[Key]) -> float:
    """Estimated share of articles an anchor set lets through (shorter words are commoner)."""
    return sum(
        _SCOPE_COST[scope] * (1 + 8 / len(value) if scope in ("text", "title") else 1)
        for scope, value in anchors
    )


class _Evidence:
    """What matched, gathered from the positive leaves of a matching query."""

    def __init__(self) -> None:
        self.terms: dict[str, None] = {}
        self.entities: set[str] = set()
        self.events: set[str] = set()

    def to_match(self) -> AlertMatch:
        return AlertMatch.model_construct(  # plain lists of str: nothing to validate
            terms=list(self.terms), entities=sorted(self.entities), events=sorted(self.events)
        )


class _Text:
    """A term or phrase against title + body (scope ``text``) or the title (``title``)."""

    __slots__ = ("compound", "label", "scope", "words")

    def __init__(self, scope: str, node: Term | Phrase):
        self.scope = scope
        self.words, self.compound = text_terms(node)
        self.label = node.text

    def matches(self, view: ArticleView) -> bool:
        keys = view.text_keys if self.scope == "text" else view.title_keys
        if self.compound in keys:
            return True
        if len(self.words) == 1:
            return False
        positions = view.text_positions if self.scope == "text" else view.title_positions
        return _has_sequence(positions, self.words)

    def anchors(self) -> Anchors:
        longest = max(self.words, key=len)
        return frozenset({(self.scope, longest), (self.scope, self.compound)})

    def collect(self, view: ArticleView, out: _Evidence) -> None:
        if self.matches(view):
            out.terms[self.label] = None


class _Entity:
    __slots__ = ("ids", "name")

    def __init__(self, name: str, resolver: EntityResolver):
        self.name = name
        self.ids = frozenset(resolver(name))

    def matches(self, view: ArticleView) -> bool:
        return not self.ids.isdisjoint(view.entity_ids)

    def anchors(self) -> Anchors:
        return frozenset(("entity", i) for i in self.ids)

    def collect(self, view: ArticleView, out: _Evidence) -> None:
        out.entities |= self.ids & view.entity_ids


class _Event:
    __slots__ = ("type",)

    def __init__(self, text: str):
        self.type = normalize_event_type(text)

    def matches(self, view: ArticleView) -> bool:
        return self.type in view.event_types

    def anchors(self) -> Anchors:
        return frozenset({("event", self.type)})

    def collect(self, view: ArticleView, out: _Evidence) -> None:
        if self.matches(view):
            out.events.add(self.type)


class _Equals:
    """``source:`` or ``lang:``: case-insensitive equality."""

    __slots__ = ("scope", "value")

    def __init__(self, scope: str, text: str):
        self.scope = scope
        self.value = text.strip().casefold()

    def matches(self, view: ArticleView) -> bool:
        return (view.source if self.scope == "source" else view.language) == self.value

    def anchors(self) -> Anchors:
        return frozenset({(self.scope, self.value)})

    def collect(self, view: ArticleView, out: _Evidence) -> None:
        """Source and language are not reported in an AlertMatch."""


class _And:
    __slots__ = ("children",)

    def __init__(self, children: list[_Matcher]):
        self.children = children

    def matches(self, view: ArticleView) -> bool:
        return all(child.matches(view) for child in self.children)

    def anchors(self) -> Anchors:
        options = [a for a in (child.anchors() for child in self.children) if a is not None]
        return min(options, key=_anchor_cost) if options else None

    def collect(self, view: ArticleView, out: _Evidence) -> None:
        if self.matches(view):
            for child in self.children:
                child.collect(view, out)


class _Or:
    __slots__ = ("children",)

    def __init__(self, children: list[_Matcher]):
        self.children = children

    def matches(self, view: ArticleView) -> bool:
        return any(child.matches(view) for child in self.children)

    def anchors(self) -> Anchors:
        options = [child.anchors() for child in self.children]
        if any(option is None for option in options):
            return None
        return frozenset[Key]().union(*(option for option in options if option is not None))

    def collect(self, view: ArticleView, out: _Evidence) -> None:
        for child in self.children:
            child.collect(view, out)


class _Not:
    __slots__ = ("child",)

    def __init__(self, child: _Matcher):
        self.child = child

    def matches(self, view: ArticleView) -> bool:
        return not self.child.matches(view)

    def anchors(self) -> Anchors:
        return None

    def collect(self, view: ArticleView, out: _Evidence) -> None:
        """What is absent is not evidence."""


_Matcher = _Text | _Entity | _Event | _Equals | _And | _Or | _Not


def _compile(node: Node, resolver: EntityResolver) -> _Matcher:
    if isinstance(node, (Term, Phrase)):
        return _Text("text", node)
    if isinstance(node, Field):
        if node.name == "title":
            return _Text("title", node.value)
        if node.name == "entity":
            return _Entity(node.value.text, resolver)
        if node.name == "event":
            return _Event(node.value.text)
        return _Equals(node.name, node.value.text)
    if isinstance(node, Not):
        return _Not(_compile(node.child, resolver))
    children = [_compile(child, resolver) for child in node.children]
    return _And(children) if isinstance(node, And) else _Or(children)


def _reads_enrichment(matcher: _Matcher) -> bool:
    """Whether evaluating ``matcher`` reads entities or events (what the NER stage adds)."""
    if isinstance(matcher, (_Entity, _Event)):
        return True
    if isinstance(matcher, _Not):
        return _reads_enrichment(matcher.child)
    if isinstance(matcher, (_And, _Or)):
        return any(_reads_enrichment(child) for child in matcher.children)
    return False


class CompiledQuery:
    """A parsed query ready to evaluate against :class:`ArticleView` objects."""

    def __init__(self, node: Node, entity_resolver: EntityResolver = literal_entity_resolver):
        self.node = node
        self._root = _compile(node, entity_resolver)
        self.anchors: Anchors = self._root.anchors()
        self.reads_enrichment = _reads_enrichment(self._root)
        """Whether the query has an ``entity:`` or ``event:`` field (anywhere, NOT included)."""

    def matches(self, view: ArticleView) -> bool:
        return self._root.matches(view)

    def evidence(self, view: ArticleView) -> AlertMatch:
        """The matched terms, entity ids and event types (call after :meth:`matches`)."""
        out = _Evidence()
        self._root.collect(view, out)
        return out.to_match()


def compile_query(
    query: str | Node, entity_resolver: EntityResolver = literal_entity_resolver
) -> CompiledQuery:
    """Parse (when given a string) and compile a query; raises ``QuerySyntaxError``."""
    return CompiledQuery(parse_query(query) if isinstance(query, str) else query, entity_resolver)


# --- the index -----------------------------------------------------------------------------


def match_stage(subscription: Subscription, compiled: CompiledQuery) -> Stage:
    """``clean`` when the subscription can be matched before the NER: its query reads only
    text, title, source and language, and its alerts need no story (it is not per story, and
    not a digest, which groups its alerts by story); else ``enriched``."""
    if compiled.reads_enrichment or subscription.per_story:
        return "enriched"
    return "clean" if subscription.digest == "as_it_happens" else "enriched"


class SubscriptionIndex:
    """Active subscriptions, indexed by anchor keys, matched against one article at a time.

    Entity names are resolved when a subscription is added; call :meth:`refresh_entities` after
    the entity registry changes so names resolve to the new ids.
    """

    def __init__(self, entity_resolver: EntityResolver = literal_entity_resolver):
        self._resolver = entity_resolver
        self._subscriptions: dict[str, tuple[Subscription, CompiledQuery]] = {}
        self._postings: dict[tuple[Stage, str], dict[str, set[str]]] = {}
        """(stage, scope) -> anchor key -> the ids of the subscriptions matched at that stage
        that it anchors: a stage looks up only its own, so the enriched stage never analyses
        an article's words when no subscription there reads them (:class:`ArticleView`)."""
        self._unanchored: set[str] = set()
        self._stages: dict[str, Stage] = {}
        self.version = 0
        """Counts the changes (add, remove): what is derived from the index can tell it is
        stale (pipeline.alerts.prefilter)."""

    def __len__(self) -> int:
        return len(self._subscriptions)

    def __contains__(self, subscription_id: str) -> bool:
        return subscription_id in self._subscriptions

    def add(self, subscription: Subscription) -> None:
        """Add or replace a subscription (an inactive one is only removed).

        Raises ``QuerySyntaxError`` for an invalid query, leaving the index unchanged.
        """
        compiled = compile_query(subscription.query, self._resolver)
        self.remove(subscription.id)
        self.version += 1
        if not subscription.active:
            return
        self._subscriptions[subscription.id] = (subscription, compiled)
        stage = self._stages[subscription.id] = match_stage(subscription, compiled)
        if compiled.anchors is None:
            self._unanchored.add(subscription.id)
            return
        for scope, value in compiled.anchors:
            postings = self._postings.setdefault((stage, scope), {})
            postings.setdefault(value, set()).add(subscription.id)

    def remove(self, subscription_id: str) -> bool:
        """Remove a subscription; returns whether it was there."""
        entry = self._subscriptions.pop(subscription_id, None)
        if entry is None:
            return False
        self.version += 1
        self._unanchored.discard(subscription_id)
        stage = self._stages.pop(subscription_id)
        for scope, value in entry[1].anchors or ():
            postings = self._postings[(stage, scope)]
            ids = postings[value]
            ids.discard(subscription_id)
            if not ids:
                del postings[value]
            if not postings:
                del self._postings[(stage, scope)]
        return True

    def get(self, subscription_id: str) -> Subscription | None:
        entry = self._subscriptions.get(subscription_id)
        return entry[0] if entry else None

    def stage_of(self, subscription_id: str) -> Stage | None:
        """Where the subscription is matched (:func:`match_stage`); None if it is not here."""
        return self._stages.get(subscription_id)

    def matched_at(self, stage: Stage) -> bool:
        """Whether any subscription here is matched at ``stage``."""
        return stage in self._stages.values()

    def immediate_anchors(self, stage: Stage) -> list[Anchors]:
        """The anchor sets of the subscriptions matched at ``stage`` whose alerts go out as
        they happen (not in a digest)."""
        return [
            compiled.anchors
            for sub_id, (subscription, compiled) in list(self._subscriptions.items())
            if self._stages.get(sub_id) == stage and subscription.digest == "as_it_happens"
        ]

    def refresh_entities(self) -> None:
        """Re-resolve entity names (after the entity registry changed)."""
        for subscription, _ in list(self._subscriptions.values()):
            self.add(subscription)

    def candidates(self, view: ArticleView, stage: Stage | None = None) -> set[str]:
        """Ids of the subscriptions sharing an anchor key with the article (plus unanchored);
        of those matched at ``stage`` only, when given (and the unanchored of every stage)."""
        found = set(self._unanchored)
        for (at, scope), postings in self._postings.items():
            if stage is not None and at != stage:
                continue
            keys = view.keys(scope)
            if len(postings) < len(keys):
                hits = (ids for key, ids in postings.items() if key in keys)
            else:
                hits = (postings[key] for key in keys if key in postings)
            found.update(*hits)
        return found

    def match(
        self, view: ArticleView, stage: Stage | None = None
    ) -> list[tuple[Subscription, AlertMatch]]:
        """The subscriptions the article matches, by subscription id, with what matched; only
        those matched at ``stage`` when given (:func:`match_stage`)."""
        matched = []
        for subscription_id in sorted(self.candidates(view, stage)):
            if stage is not None and self._stages[subscription_id] != stage:
                continue
            subscription, compiled = self._subscriptions[subscription_id]
            if compiled.matches(view):
                matched.append((subscription, compiled.evidence(view)))
        return matched


# --- snippets ------------------------------------------------------------------------------

SNIPPET_WIDTH = 200
HIGHLIGHT = ("«", "»")


def _term_hits(spans: list[TokenSpan], term: str) -> list[tuple[int, int]]:
    """Character ranges where ``term`` (a query term or phrase) occurs among ``spans``."""
    words, compound = text_terms(Term(term))
    n, hits = len(words), []
    for i, span in enumerate(spans):
        if tuple(s.token for s in spans[i : i + n]) == words:
            hits.append((span.start, spans[i + n - 1].end))
        elif span.token == compound:
            hits.append((span.start, span.end))
        elif (
            i + 1 < len(spans)
            and spans[i + 1].link
            and stem(span.raw + spans[i + 1].raw) == compound
        ):
            hits.append((span.start, spans[i + 1].end))
    return hits


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _window(text: str, hits: list[tuple[int, int]], width: int) -> str:
    """About ``width`` characters of ``text`` around the first hit, hits highlighted."""
    hits = _merge(hits)
    first_start, first_end = hits[0]
    start = max(0, first_start - width // 3)
    if start > 0:
        space = text.find(" ", start, first_start)
        start = space + 1 if space >= 0 else start
    end = min(len(text), max(start + width, first_end))
    if end < len(text):
        space = text.rfind(" ", first_end, end)
        end = space if space >= 0 else end
    pieces, cursor = [], start
    for hit_start, hit_end in hits:
        if hit_start < start or hit_end > end:
            continue
        pieces += [text[cursor:hit_start], HIGHLIGHT[0], text[hit_start:hit_end], HIGHLIGHT[1]]
        cursor = hit_end
    pieces.append(text[cursor:end])
    body = " ".join("".join(pieces).split())
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")


def _truncate(text: str, width: int) -> str:
    """``text`` with whitespace collapsed, cut at a word boundary near ``width``."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text.rfind(" ", 0, width)
    return text[: cut if cut > 0 else width] + "…"


@lru_cache(maxsize=64)
def _body_spans(title: str, body: str) -> list[TokenSpan]:
    """The body's token spans, for all the alerts of one article (read only): cut from those
    of its text, which the match analysed (:func:`body_token_spans`)."""
    return body_token_spans(title, body)


def snippet(article: CleanArticle, match: AlertMatch, width: int = SNIPPET_WIDTH) -> str:
    """A short excerpt showing why the article matched, matched words in «…».

    Around the first matched term in the body; else around the first mention of a matched
    entity; else the evidence sentence of a matched event; else the start of the body.
    """
    term_hits = []
    if match.terms:
        spans = _body_spans(article.title, article.body)
        term_hits = [hit for term in match.terms for hit in _term_hits(spans, term)]
    if term_hits:
        return _window(article.body, term_hits, width)
    mentions = [
        (m.start, m.end)
        for entity in getattr(article, "entities", ())
        if entity.id in match.entities
        for m in entity.offsets
    ]
    if mentions:
        return _window(article.body, mentions, width)
    for event in getattr(article, "events", ()):
        if normalize_event_type(event.type) in match.events and event.evidence:
            return _truncate(event.evidence[0], width)
    return _truncate(article.body, width)
