"""The alert query language: parsing, errors with positions, and the Elasticsearch form."""

import pytest

from pipeline.query.es_query import to_es_query
from pipeline.query.language import (
    And,
    Field,
    Not,
    Or,
    Phrase,
    QuerySyntaxError,
    Term,
    caret,
    normalize_event_type,
    parse_query,
)


def test_terms_and_implicit_and():
    assert parse_query("memorandum Kellogg") == And((Term("memorandum"), Term("Kellogg")))


def test_precedence_not_and_or():
    assert parse_query("a OR b AND NOT c") == Or((Term("a"), And((Term("b"), Not(Term("c"))))))
    assert parse_query("(a OR b) c") == And((Or((Term("a"), Term("b"))), Term("c")))


def test_lowercase_keywords_are_plain_terms():
    assert parse_query("war and peace") == And((Term("war"), Term("and"), Term("peace")))


def test_minus_is_not():
    assert parse_query('memorandum -Kellogg -"peace talks"') == And(
        (Term("memorandum"), Not(Term("Kellogg")), Not(Phrase("peace talks")))
    )
    assert parse_query("cease-fire") == Term("cease-fire")


@pytest.mark.parametrize(
    "query, expected",
    [
        ('entity:"Vladimir Medinsky"', Field("entity", Phrase("Vladimir Medinsky"))),
        ('entity: "Vladimir Medinsky"', Field("entity", Phrase("Vladimir Medinsky"))),
        ("event:prisoner_exchange", Field("event", Term("prisoner_exchange"))),
        ("event: prisoner_exchange", Field("event", Term("prisoner_exchange"))),
        ("title:memorandum", Field("title", Term("memorandum"))),
        ("Source:Reuters", Field("source", Term("Reuters"))),
        ("lang:en", Field("lang", Term("en"))),
        ("entity:person:medinski", Field("entity", Term("person:medinski"))),
    ],
)
def test_fields(query, expected):
    assert parse_query(query) == expected


def test_smart_quotes_make_a_phrase():
    assert parse_query("“prisoner exchange”") == Phrase("prisoner exchange")


@pytest.mark.parametrize(
    "query, message",
    [
        ("", "empty query"),
        ("   ", "empty query"),
        ("(a OR b", "unbalanced parenthesis at column 1"),
        ("memorandum OR (talks", "unbalanced parenthesis at column 15"),
        ("a b) c", "unbalanced parenthesis at column 4"),
        ("foo:bar", "unknown field 'foo:' at column 1 (known: entity, event, source, lang, title)"),
        ("memorandum NOT", "NOT needs something to negate at column 12"),
        ('a "prisoner', "unterminated quote at column 3"),
        ("a AND", "AND needs a term on both sides at column 3"),
        ("OR a", "OR needs a term on both sides at column 1"),
        ("a AND OR b", "AND needs a term on both sides at column 3"),
        ("()", "empty parentheses at column 1"),
        ('""', "empty phrase at column 1"),
        ("entity:", "field 'entity:' needs a term or a quoted phrase at column 1"),
        ("a & b", "'&' has no letters or digits at column 3"),
    ],
)
def test_errors_point_at_the_problem(query, message):
    with pytest.raises(QuerySyntaxError) as error:
        parse_query(query)
    assert str(error.value) == message


@pytest.mark.parametrize("query", ["NOT Kellogg", "-Kellogg", "NOT a AND NOT b", "NOT NOT a"])
def test_pure_negative_queries_are_rejected(query):
    with pytest.raises(QuerySyntaxError, match="only NOT matches too much"):
        parse_query(query)


def test_or_with_a_negative_alternative_is_rejected_at_that_alternative():
    with pytest.raises(QuerySyntaxError) as error:
        parse_query("memorandum OR NOT Kellogg")
    assert error.value.position == 14


def test_deep_nesting_is_refused():
    with pytest.raises(QuerySyntaxError, match="nested deeper"):
        parse_query("(" * 100 + "a" + ")" * 100)


def test_caret_marks_the_column():
    with pytest.raises(QuerySyntaxError) as error:
        parse_query("memorandum NOT")
    assert caret("memorandum NOT", error.value.position) == "memorandum NOT\n           ^"


def test_event_type_normalisation():
    for text in ("prisoner exchange", "prisoner-exchange", "Prisoner_Exchange"):
        assert normalize_event_type(text) == "prisoner_exchange"


# --- Elasticsearch translation ---------------------------------------------------------------


def _any(*clauses):
    return {"bool": {"should": list(clauses), "minimum_should_match": 1}}


def test_es_term_uses_analysed_form():
    assert to_es_query(parse_query("Sanctions")) == _any(
        {"match": {"search_text": "sanction"}}, {"term": {"search_compounds": "sanction"}}
    )


def test_es_multi_part_word_and_phrase():
    expected = _any(
        {"match_phrase": {"search_text": "cease fire"}},
        {"term": {"search_text": "ceasefire"}},
        {"term": {"search_compounds": "ceasefire"}},
    )
    assert to_es_query(parse_query("cease-fire")) == expected
    assert to_es_query(parse_query('"cease fires"')) == expected


def test_es_boolean_structure():
    query = to_es_query(parse_query("memorandum AND NOT Kellogg"))
    assert query["bool"]["must"] == [to_es_query(Term("memorandum"))]
    assert query["bool"]["must_not"] == [to_es_query(Term("Kellogg"))]
    either = to_es_query(parse_query("a OR b"))
    assert either["bool"]["minimum_should_match"] == 1 and len(either["bool"]["should"]) == 2


def test_es_fields():
    resolver = {"vladimir medinsky": {"person:medinski"}}.get
    assert to_es_query(
        parse_query('entity:"Vladimir Medinsky"'), lambda n: resolver(n.lower(), set())
    ) == {"terms": {"entity_ids": ["person:medinski"]}}
    assert to_es_query(parse_query('entity:"Nobody"'), lambda n: set()) == {"match_none": {}}
    assert to_es_query(parse_query("event:Prisoner-Exchange")) == {
        "term": {"event_types": "prisoner_exchange"}
    }
    assert to_es_query(parse_query("source:Reuters")) == {
        "term": {"source": {"value": "Reuters", "case_insensitive": True}}
    }
    assert to_es_query(parse_query("lang:EN")) == {
        "term": {"language": {"value": "EN", "case_insensitive": True}}
    }
    assert to_es_query(parse_query("title:memorandum")) == _any(
        {"match": {"search_title": "memorandum"}},
        {"term": {"search_title_compounds": "memorandum"}},
    )
