"""``newspipe setup``: create what the pipeline needs on any cluster (idempotent).

Kafka topics with their partition counts and configs, Elasticsearch index templates and
aliases, and, when a Kibana URL is given, Kibana's saved objects. The docker-compose ``setup``
service runs this same code.
"""

from __future__ import annotations

import logging

from pipeline.settings import Settings, get_settings

log = logging.getLogger(__name__)


def setup(
    settings: Settings | None = None, *, kibana_url: str | None = None
) -> dict[str, list[str]]:
    from pipeline.infra.es import ensure_indices, make_client
    from pipeline.infra.kafka import ensure_topics

    settings = settings or get_settings()
    done = {"topics": ensure_topics(settings)}
    es = make_client(settings)
    try:
        done["indices"] = ensure_indices(es, settings)
    finally:
        es.close()
    if kibana_url:
        from pipeline.infra.kibana import dashboard_url, import_saved_objects

        import_saved_objects(kibana_url, settings=settings)
        done["kibana"] = [dashboard_url(kibana_url)]
    return done
