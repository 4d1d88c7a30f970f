"""The query language shared by search and alerts: text analysis, parsing, translation to Elasticsearch, search."""
