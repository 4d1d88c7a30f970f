"""Alert subscriptions: the query language, in-stream matching, and its Elasticsearch form.

* :mod:`pipeline.query.language` parses queries (syntax: docs/alerts.md);
* :mod:`pipeline.alerts.matcher` matches articles against many subscriptions through an index;
* :mod:`pipeline.query.es_query` translates the same queries to Elasticsearch (backfill, search).
"""

from pipeline.query.language import QuerySyntaxError, caret, parse_query

__all__ = ["QuerySyntaxError", "caret", "parse_query"]
