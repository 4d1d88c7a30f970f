"""Alert queries as Elasticsearch queries over the articles index (backfill and search).

The translation has the same semantics as the stream matcher (``pipeline.alerts.matcher``),
because the index holds our own analysis (``pipeline.query.analysis.search_fields``):

* term -> its analysed word is a ``search_text`` token or a ``search_compounds`` value;
* phrase (or multi-part word such as "cease-fire") -> ``match_phrase`` on ``search_text``, or
  its compound is a token or a compound;
* ``title:`` -> the same on ``search_title`` / ``search_title_compounds``;
* ``entity:`` -> ``terms`` on ``entity_ids`` (the ids the resolver gives; none: ``match_none``);
* ``event:`` -> ``term`` on ``event_types``; ``source:`` / ``lang:`` -> ``term`` on ``source`` /
  ``language`` with ``case_insensitive``;
* AND / OR / NOT -> ``bool`` must (+ must_not for negated children) / should with
  ``minimum_should_match: 1`` / must_not.
"""

from __future__ import annotations

from pipeline.alerts.matcher import EntityResolver, literal_entity_resolver
from pipeline.query.language import (
    And,
    Field,
    Node,
    Not,
    Phrase,
    Term,
    normalize_event_type,
    text_terms,
)

__all__ = ["TEXT_FIELDS", "to_es_query"]

#: scope -> (analysed text field, compounds keyword field)
TEXT_FIELDS = {
    "text": ("search_text", "search_compounds"),
    "title": ("search_title", "search_title_compounds"),
}
_EQUALS_FIELDS = {"source": "source", "lang": "language"}
MAX_ENTITY_IDS = 1024
"""most entity ids one ``entity:`` clause sends (a name shared by more entities is capped)"""


def _any_of(clauses: list[dict]) -> dict:
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def _text(scope: str, node: Term | Phrase) -> dict:
    text_field, compound_field = TEXT_FIELDS[scope]
    words, compound = text_terms(node)
    if len(words) == 1:
        return _any_of([{"match": {text_field: compound}}, {"term": {compound_field: compound}}])
    return _any_of(
        [
            {"match_phrase": {text_field: " ".join(words)}},
            {"term": {text_field: compound}},
            {"term": {compound_field: compound}},
        ]
    )


def _field(node: Field, entity_resolver: EntityResolver) -> dict:
    value = node.value.text
    if node.name == "title":
        return _text("title", node.value)
    if node.name == "entity":
        ids = sorted(entity_resolver(value))[:MAX_ENTITY_IDS]  # a bounded terms list
        return {"terms": {"entity_ids": ids}} if ids else {"match_none": {}}
    if node.name == "event":
        return {"term": {"event_types": normalize_event_type(value)}}
    field = _EQUALS_FIELDS[node.name]
    return {"term": {field: {"value": value.strip(), "case_insensitive": True}}}


def _and(node: And, entity_resolver: EntityResolver) -> dict:
    must = [to_es_query(c, entity_resolver) for c in node.children if not isinstance(c, Not)]
    must_not = [to_es_query(c.child, entity_resolver) for c in node.children if isinstance(c, Not)]
    query: dict = {}
    if must:
        query["must"] = must
    if must_not:
        query["must_not"] = must_not
    return {"bool": query}


def to_es_query(node: Node, entity_resolver: EntityResolver = literal_entity_resolver) -> dict:
    """The Elasticsearch query (the value of a search request's ``query``) for ``node``."""
    if isinstance(node, (Term, Phrase)):
        return _text("text", node)
    if isinstance(node, Field):
        return _field(node, entity_resolver)
    if isinstance(node, Not):
        return {"bool": {"must_not": [to_es_query(node.child, entity_resolver)]}}
    if isinstance(node, And):
        return _and(node, entity_resolver)
    return _any_of([to_es_query(child, entity_resolver) for child in node.children])
