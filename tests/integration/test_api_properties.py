"""Property-based tests of the HTTP API (schemathesis): requests generated from the OpenAPI
document are sent to the real server over the real stack; every answer must be documented (status,
content type, schema) and none may be a server error. Bounded: a few examples per operation.

The SSE stream never ends, so it is left to tests/integration/test_api.py. One check is off:
"schema-valid request accepted". Some inputs are valid for the schema and still refused, on
purpose and documented: an opaque paging cursor the API did not hand out (400), a query that
the query language does not parse (422 with the position), a body with no article in it (422).
Nor "schema-violating request rejected": pydantic's lax mode takes a number as a date (Unix
time) in ``from``/``to``, and the article contract is the ingest contract, lenient on purpose.
Every answer, to valid and invalid requests alike, is still checked against the document.
"""

from __future__ import annotations

import tempfile

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from pipeline.api import create_api
from pipeline.settings import Settings

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 5


def _document() -> dict:
    """The document of the app as served (built offline: a token is given, nothing is written)."""
    offline = Settings(
        _env_file=None,
        api_token="schema-only",
        data_dir=tempfile.gettempdir(),
        kafka_bootstrap="127.0.0.1:1",
        es_url="http://127.0.0.1:1",
    )
    return create_api(offline).openapi()


# an NDJSON batch is text: send the generated string as it is
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

schema = schemathesis.openapi.from_dict(_document()).exclude(path="/alerts/stream")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, api_server):
    case.call_and_validate(
        base_url=api_server.url,
        headers=api_server.auth,
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
    )
