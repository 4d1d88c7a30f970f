"""The HTTP API without servers: the OpenAPI document, the token rules, the Atom feed, SSE
positions, request bodies, search cursors. (Behaviour on the real stack: tests/integration.)"""

from __future__ import annotations

import stat
from datetime import UTC, datetime

import feedparser
import pytest
from fastapi.testclient import TestClient

from pipeline.api import create_api
from pipeline.api.atom import render_feed
from pipeline.api.auth import DEFAULT_TOKEN, resolve_token, token_matches
from pipeline.api.stream import BadEventId, format_event_id, parse_event_id, sse
from pipeline.query.search import CursorError, decode_cursor, encode_cursor
from pipeline.settings import Settings
from pipeline.sources.ingest import Rejected, iter_request
from schemas import Alert, AlertMatch, RawArticle, Subscription

# nothing listens here: building the app and its document must not need the servers
OFFLINE = dict(kafka_bootstrap="127.0.0.1:1", es_url="http://127.0.0.1:1")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    settings = Settings(
        _env_file=None,
        api_token="unit-test-token",
        data_dir=tmp_path_factory.mktemp("api"),
        **OFFLINE,
    )
    return create_api(settings)


@pytest.fixture(scope="module")
def document(app) -> dict:
    return TestClient(app).get("/openapi.json").json()


# --- the OpenAPI document ----------------------------------------------------------------------

ROUTES = {
    ("post", "/articles"),
    ("get", "/articles/{article_id}"),
    ("get", "/search"),
    ("post", "/subscriptions"),
    ("get", "/subscriptions"),
    ("get", "/subscriptions/{subscription_id}"),
    ("delete", "/subscriptions/{subscription_id}"),
    ("get", "/alerts"),
    ("get", "/alerts/stream"),
    ("get", "/subscriptions/{subscription_id}/feed.atom"),
    ("get", "/health"),
    ("get", "/me"),
}


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_openapi_lists_every_route(document):
    assert document["openapi"].startswith("3.")
    assert {(m, p) for m, p, _ in operations(document)} == ROUTES


def test_every_route_but_health_needs_the_bearer_token(document):
    schemes = document["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    for method, path, operation in operations(document):
        if path == "/health":
            assert "security" not in operation
        else:
            assert operation.get("security"), (method, path)
            assert "401" in operation["responses"], (method, path)


def test_responses_are_typed_with_the_schemas_models(document):
    def ref(operation, code, kind="application/json"):
        return operation["responses"][code]["content"][kind]["schema"]

    ops = {(m, p): o for m, p, o in operations(document)}
    assert ref(ops["post", "/articles"], "202")["$ref"].endswith("/IngestResponse")
    assert ref(ops["get", "/search"], "200")["$ref"].endswith("/SearchResponse")
    assert ref(ops["get", "/articles/{article_id}"], "200")["$ref"].endswith("/EnrichedArticle")
    assert ref(ops["post", "/subscriptions"], "201")["$ref"].endswith("/SubscriptionCreated")
    assert ref(ops["get", "/alerts"], "200")["items"]["$ref"].endswith("/Alert")
    assert "text/event-stream" in ops["get", "/alerts/stream"]["responses"]["200"]["content"]
    assert (
        "application/atom+xml"
        in ops["get", "/subscriptions/{subscription_id}/feed.atom"]["responses"]["200"]["content"]
    )
    body = ops["post", "/articles"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-ndjson"}
    components = document["components"]["schemas"]
    for name in (
        "RawArticle",
        "IngestResponse",
        "SearchResponse",
        "Facets",
        "Alert",
        "Subscription",
    ):
        assert name in components, name
    assert set(components["RawArticle"]["required"]) == set(
        RawArticle.model_json_schema()["required"]
    )


def test_every_reference_resolves(document):
    components = document["components"]["schemas"]

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                assert node["$ref"].removeprefix("#/components/schemas/") in components, node[
                    "$ref"
                ]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)


def test_the_page_and_its_files_are_served_without_a_token(app):
    client = TestClient(app)
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script type="module" src="/static/app.js">' in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"], name
    assert 'name="viewport"' in page.text  # phone width


def test_wrong_or_missing_tokens_are_refused(app):
    client = TestClient(app)
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        {"Authorization": "Bearer "},
    ):
        for path in ("/search", "/subscriptions", "/alerts", "/alerts/stream", "/articles/x"):
            assert client.get(path, headers=headers).status_code == 401, (path, headers)
    assert client.post("/articles", json={"body": "x"}).status_code == 401
    assert client.get("/alerts/stream", params={"access_token": "nope"}).status_code == 401


def test_unavailable_servers_are_a_503_not_a_traceback(app):
    client = TestClient(app, raise_server_exceptions=False)
    response = client.get(
        "/search", params={"q": "x"}, headers={"Authorization": "Bearer unit-test-token"}
    )
    assert response.status_code == 503
    assert "retry" in response.json()["detail"]


# --- the token ---------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["", "   ", DEFAULT_TOKEN])
def test_an_empty_or_default_token_is_replaced_by_a_generated_one(tmp_path, given, caplog):
    settings = Settings(_env_file=None, api_token=given, data_dir=tmp_path / "data", **OFFLINE)
    with caplog.at_level("WARNING", logger="newspipe.api"):
        token, path = resolve_token(settings)
    assert path == tmp_path / "data" / "api-token"
    assert token not in ("", DEFAULT_TOKEN) and len(token) >= 32
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [line] = [r.getMessage() for r in caplog.records]
    assert str(path) in line and "\n" not in line
    again, _ = resolve_token(settings)  # the next start keeps it
    assert again == token


def test_a_set_token_is_used_as_is(tmp_path):
    settings = Settings(_env_file=None, api_token="s3cret-value", data_dir=tmp_path, **OFFLINE)
    assert resolve_token(settings) == ("s3cret-value", None)
    assert not (tmp_path / "api-token").exists()
    assert token_matches("s3cret-value", "s3cret-value")
    assert not token_matches(DEFAULT_TOKEN, DEFAULT_TOKEN)
    assert not token_matches("", "")


def test_the_api_binds_to_loopback_by_default():
    assert Settings(_env_file=None).api_host == "127.0.0.1"
    assert Settings(_env_file=None).api_token == ""


# --- Atom, SSE, request bodies, cursors --------------------------------------------------------


def _alert(n: int) -> Alert:
    return Alert(
        id=f"a{n}",
        subscription_id="sub-1",
        query="memorandum",
        owner="o",
        article_id=f"art{n}",
        title=f"Title <{n}> & more",
        source="Wire",
        url=None if n else "https://example.org/x?a=1&b=2",
        published_at=datetime(2025, 6, 1, tzinfo=UTC),
        matched=AlertMatch(terms=["memorandum"]),
        snippet="a «memorandum» was <signed>",
        created_at=datetime(2025, 6, 2, n, tzinfo=UTC),
    )


def test_atom_feed_is_valid_for_feedparser():
    subscription = Subscription(id="sub-1", query='memorandum AND "peace talks"', owner="o")
    body = render_feed(
        subscription,
        [_alert(2), _alert(1), _alert(0)],
        self_url="http://h/subscriptions/sub-1/feed.atom",
        page_url="http://h/",
    )
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    assert feed.feed.id == "urn:newspipe:subscription:sub-1"
    assert 'memorandum AND "peace talks"' in feed.feed.title
    assert [e.id for e in feed.entries] == [f"urn:newspipe:alert:a{n}" for n in (2, 1, 0)]
    assert feed.entries[0].title == "Title <2> & more"
    assert feed.entries[2].link == "https://example.org/x?a=1&b=2"
    assert feed.entries[1].link == "http://h/#article=art1"
    assert (
        "<b>memorandum</b>" in feed.entries[0].summary and "<signed>" not in feed.entries[0].summary
    )
    assert feed.feed.updated.startswith("2025-06-02T02:00")


def test_an_empty_feed_is_valid():
    feed = feedparser.parse(
        render_feed(
            Subscription(id="s", query="q"), [], self_url="http://h/f", page_url="http://h/"
        )
    )
    assert not feed.bozo and feed.entries == []


def test_event_ids_are_positions():
    assert parse_event_id("0:17,1:4, 3:0") == {0: 17, 1: 4, 3: 0}
    assert format_event_id({1: 4, 0: 17}) == "0:17,1:4"
    for bad in ("", "x", "0:", "0:-1", "a:1"):
        with pytest.raises(BadEventId):
            parse_event_id(bad)
    assert sse("alert", '{"a": 1}', "0:1") == 'id: 0:1\nevent: alert\ndata: {"a": 1}\n\n'
    assert sse("x", "two\nlines") == "event: x\ndata: two\ndata: lines\n\n"


def test_request_bodies_use_the_ingest_contract(tmp_path):
    [one] = list(iter_request(b'{"title": "T", "text": "Body text"}'))
    assert isinstance(one, RawArticle) and one.body == "Body text" and one.id
    many = list(iter_request(b'[{"body": "a"}, 3]'))
    assert isinstance(many[0], RawArticle) and many[1] == Rejected(
        "request[1]", "expected a JSON object, got int", b"3"
    )
    batch = b'{"body": "x"}\r\n\n{"body": 5}\n\x00\x01\x02\n{"a":\n{"title": "no body"}\n'
    lines = list(iter_request(batch, lines=True))
    assert isinstance(lines[0], RawArticle)
    reasons = [(r.origin, r.reason) for r in lines[1:]]
    assert [origin for origin, _ in reasons] == ["request:3", "request:4", "request:5", "request:6"]
    assert reasons[0][1] == "field 'body' must be a string, got int"
    assert reasons[2][1].startswith("invalid JSON at line 5")
    assert reasons[3][1] == "missing field 'body'"
    # the very reader of .jsonl files: the same items and reasons, only the origin differs
    path = tmp_path / "batch.jsonl"
    path.write_bytes(batch)
    from pipeline.sources.ingest import iter_inputs

    from_file = [
        (r.origin.replace(str(path), "request"), r.reason)
        for r in iter_inputs([path])
        if isinstance(r, Rejected)
    ]
    assert from_file == reasons
    assert [r.reason for r in iter_request(b"", lines=True)] == ["empty file"]
    deep = b"[" * 100_000 + b"]" * 100_000
    [rejected] = list(iter_request(b'{"body": ' + deep + b"}"))
    assert isinstance(rejected, Rejected) and "deep" in rejected.reason


def test_cursors_round_trip_and_junk_is_refused():
    values = [1.25, 1717200000000, "abc"]
    assert decode_cursor(encode_cursor(values)) == values
    for junk in ("!!", "e30", encode_cursor({"a": 1}), "W3t9XQ"):
        with pytest.raises(CursorError):
            decode_cursor(junk)


def test_the_page_is_package_data():
    """A wheel carries the page: pyproject's package-data covers every file of static/."""
    import fnmatch
    import tomllib
    from pathlib import Path

    import pipeline.api.app as app_module

    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    # patterns relative to pipeline/ (package "pipeline") or to pipeline/api/ ("pipeline.api")
    patterns = data.get("pipeline", []) + [f"api/{p}" for p in data.get("pipeline.api", [])]
    files = [
        p.relative_to(root / "pipeline").as_posix()
        for p in app_module.STATIC.iterdir()
        if p.is_file()
    ]
    assert {"api/static/index.html", "api/static/app.js", "api/static/style.css"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name


def test_a_bad_resume_position_is_refused_before_the_stream_opens(app):
    client = TestClient(app)
    for position in ("x", "0:-1", "1:2:3"):
        response = client.get(
            "/alerts/stream",
            params={"resume": position},
            headers={"Authorization": "Bearer unit-test-token"},
        )
        assert response.status_code == 400 and "Last-Event-ID" in response.json()["detail"], (
            position
        )
