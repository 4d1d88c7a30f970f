"""Feed polling against a local HTTP server (127.0.0.1 only): conditional GETs, versions, HTML."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from kafka.errors import NotLeaderForPartitionError
from kafka.future import Future

from pipeline.settings import Settings
from pipeline.sources.feeds import FeedError, FeedState, html_to_text, make_client, poll_feed
from pipeline.sources.ingest import feed_cycle

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel>
  <title>Wire &amp; Co</title><link>http://127.0.0.1/</link><description>test</description>
  <item>
    <title>Talks resume in Istanbul</title>
    <link>http://news.example/istanbul</link>
    <guid isPermaLink="false">wire-1</guid>
    <author>desk@wire.example (Ana Diaz)</author>
    <pubDate>Mon, 02 Jun 2025 10:00:00 GMT</pubDate>
    <description><![CDATA[<p>Delegations met on <b>Monday</b> &amp; talked.</p><p>Second&nbsp;paragraph.</p>
      <script>alert(1)</script>]]></description>
  </item>
  <item>
    <title>Ceasefire {version}</title>
    <link>http://news.example/ceasefire</link>
    <guid isPermaLink="false">wire-2</guid>
    <pubDate>Tue, 03 Jun 2025 08:30:00 GMT</pubDate>
    <description>&lt;div&gt;Ceasefire text, {version}.&lt;br/&gt;Next line.&lt;/div&gt;</description>
  </item>
</channel></rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Atom Desk</title><id>urn:atom-desk</id><updated>2025-06-02T12:00:00Z</updated>
  <entry>
    <title type="html">Sanctions &lt;em&gt;widened&lt;/em&gt;</title>
    <id>urn:uuid:1111</id>
    <link href="http://news.example/sanctions"/>
    <updated>2025-06-02T12:00:00Z</updated>
    <author><name>Ben Ode</name></author><author><name>Cy Fox</name></author>
    <summary>Short summary.</summary>
    <content type="html">&lt;h2&gt;Full story&lt;/h2&gt;&lt;ul&gt;&lt;li&gt;one&lt;/li&gt;&lt;li&gt;two&lt;/li&gt;&lt;/ul&gt;</content>
  </entry>
  <entry>
    <title>No link here</title>
    <id>urn:uuid:2222</id>
    <updated>2025-06-02T13:00:00Z</updated>
    <content type="text">Plain &lt;text&gt; stays as is.</content>
  </entry>
</feed>
"""


@dataclass
class Document:
    body: bytes
    content_type: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass
class FeedServer:
    """Serves ``documents`` by path; answers 304 to a matching If-None-Match/If-Modified-Since."""

    base: str
    documents: dict[str, Document] = field(default_factory=dict)
    statuses: list[tuple[str, int]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path


def _handler(server: FeedServer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            server.headers.append(dict(self.headers))
            doc = server.documents.get(self.path)
            if doc is None:
                return self._reply(404, b"not found", "text/plain")
            unchanged = (doc.etag and self.headers.get("If-None-Match") == doc.etag) or (
                doc.last_modified and self.headers.get("If-Modified-Since") == doc.last_modified
            )
            if unchanged:
                return self._reply(304, b"", None, doc)
            return self._reply(200, doc.body, doc.content_type, doc)

        def _reply(self, status, body, content_type, doc=None):
            server.statuses.append((self.path, status))
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            if doc and doc.etag:
                self.send_header("ETag", doc.etag)
            if doc and doc.last_modified:
                self.send_header("Last-Modified", doc.last_modified)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def server():
    feed_server = FeedServer(base="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(feed_server))
    feed_server.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield feed_server
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def client():
    with make_client(timeout=5) as http:
        yield http


def rss(version: str = "v1", etag: str = '"rss-v1"') -> Document:
    return Document(RSS.format(version=version).encode("utf-8"), "application/rss+xml", etag=etag)


def test_rss_first_poll_returns_the_entries(server, client):
    server.documents["/rss"] = rss()
    url = server.url("/rss")
    first, second = poll_feed(url, FeedState(url), client)
    assert first.source == "Wire & Co"
    assert (first.url, first.title) == ("http://news.example/istanbul", "Talks resume in Istanbul")
    assert first.body == "Delegations met on Monday & talked.\n\nSecond paragraph."
    assert first.published_at == datetime(2025, 6, 2, 10, tzinfo=UTC)
    assert first.model_extra["feed_url"] == url
    assert first.model_extra["guid"] == "wire-1"
    assert first.model_extra["authors"] == ["Ana Diaz"]
    assert second.body == "Ceasefire text, v1.\nNext line."
    assert first.id != second.id


def test_second_poll_is_a_304_and_returns_nothing(server, client):
    server.documents["/rss"] = rss()
    url = server.url("/rss")
    state = FeedState(url)
    assert len(poll_feed(url, state, client)) == 2
    assert state.etag == '"rss-v1"'
    assert poll_feed(url, state, client) == []
    assert server.statuses == [("/rss", 200), ("/rss", 304)]
    assert server.headers[-1]["If-None-Match"] == '"rss-v1"'


def test_a_changed_entry_is_sent_again_with_the_same_id(server, client):
    server.documents["/rss"] = rss()
    url = server.url("/rss")
    state = FeedState(url)
    before = {a.model_extra["guid"]: a for a in poll_feed(url, state, client)}
    server.documents["/rss"] = rss(version="v2", etag='"rss-v2"')
    (changed,) = poll_feed(url, state, client)
    assert changed.model_extra["guid"] == "wire-2"
    assert changed.id == before["wire-2"].id
    assert changed.title == "Ceasefire v2" and changed.body == "Ceasefire text, v2.\nNext line."


def test_unchanged_content_under_a_new_etag_is_not_sent_again(server, client):
    server.documents["/rss"] = rss()
    url = server.url("/rss")
    state = FeedState(url)
    poll_feed(url, state, client)
    server.documents["/rss"] = rss(etag='"rss-v1-regenerated"')
    assert poll_feed(url, state, client) == []
    assert server.statuses[-1] == ("/rss", 200)


def test_atom_entries_html_and_text_constructs(server, client):
    server.documents["/atom"] = Document(ATOM.encode("utf-8"), "application/atom+xml", etag='"a1"')
    url = server.url("/atom")
    sanctions, no_link = poll_feed(url, FeedState(url), client)
    assert sanctions.source == "Atom Desk"
    assert sanctions.title == "Sanctions widened"
    assert sanctions.body == "Full story\n\none\ntwo"  # the content, not the summary
    assert sanctions.model_extra["authors"] == ["Ben Ode", "Cy Fox"]
    assert sanctions.published_at == datetime(2025, 6, 2, 12, tzinfo=UTC)
    assert no_link.url is None
    assert no_link.body == "Plain <text> stays as is."
    again = poll_feed(url, FeedState(url), client)[1]
    assert again.id == no_link.id  # named by feed and guid, not by its text


def test_last_modified_is_sent_back_as_if_modified_since(server, client):
    stamp = "Mon, 02 Jun 2025 10:00:00 GMT"
    server.documents["/rss"] = Document(
        RSS.format(version="v1").encode(), "application/rss+xml", last_modified=stamp
    )
    url = server.url("/rss")
    state = FeedState(url)
    poll_feed(url, state, client)
    assert poll_feed(url, state, client) == []
    assert server.headers[-1]["If-Modified-Since"] == stamp
    assert server.statuses[-1] == ("/rss", 304)


def test_state_is_saved_atomically_and_survives_a_restart(server, client, tmp_path):
    server.documents["/rss"] = rss()
    url = server.url("/rss")
    state = FeedState.load(url, tmp_path)
    assert poll_feed(url, state, client)
    path = state.save(tmp_path)
    assert path.parent == tmp_path / "feeds" and path.suffix == ".json"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    restored = FeedState.load(url, tmp_path)
    assert restored == state
    assert poll_feed(url, restored, client) == []


def test_an_unreadable_state_file_starts_afresh(tmp_path):
    url = "http://127.0.0.1:1/feed"
    path = FeedState.path_for(url, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert FeedState.load(url, tmp_path) == FeedState(url)


def test_http_errors_and_non_feeds_raise_and_leave_the_state_alone(server, client):
    server.documents["/page"] = Document(b"<html><body>not a feed", "text/html", etag='"p"')
    state = FeedState(server.url("/missing"), etag='"old"')
    with pytest.raises(httpx.HTTPStatusError):
        poll_feed(server.url("/missing"), state, client)
    assert state == FeedState(server.url("/missing"), etag='"old"')
    with pytest.raises(FeedError):
        poll_feed(server.url("/page"), FeedState(server.url("/page")), client)


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One &amp; two</p><p>Three</p>", "One & two\n\nThree"),
        ("line<br>break<br/>again", "line\nbreak\nagain"),
        ("<div>  spaced \n  out  </div>", "spaced out"),
        ("<style>p {color: red}</style><script>x()</script>Visible", "Visible"),
        ("<ul><li>a</li><li>b</li></ul>after", "a\nb\n\nafter"),
        ("plain text, no tags", "plain text, no tags"),
        ("<p></p><p></p>", ""),
    ],
)
def test_html_to_text(html, text):
    assert html_to_text(html) == text


# --- one polling cycle: publish, then save the state only when delivered -------------------


class FakeProducer:
    def __init__(self, fail: bool = False):
        self.fail, self.sent, self.pending = fail, [], []

    def send(self, topic, key=None, value=None):
        future = Future()
        self.sent.append((topic, key, value))
        self.pending.append(future)
        return future

    def flush(self, timeout=None):
        for future in self.pending:
            future.failure(NotLeaderForPartitionError("x")) if self.fail else future.success(None)
        self.pending.clear()

    def close(self, timeout=None):
        pass


def test_feed_cycle_saves_the_state_only_after_delivery(server, client, tmp_path):
    settings = Settings(topic_prefix="unit", data_dir=tmp_path)
    server.documents["/rss"] = rss()
    url, down = server.url("/rss"), server.url("/down")

    report, errors = feed_cycle([url, down], client, FakeProducer(fail=True), settings)
    assert len(report.failed) == 2 and report.sent == 0
    assert errors and errors[0][0] == down and "404" in errors[0][1]
    assert not FeedState.path_for(url, Path(tmp_path)).exists()

    producer = FakeProducer()
    report, _ = feed_cycle([url], client, producer, settings)
    assert report.sent == 2 and [t for t, _, _ in producer.sent] == ["unit.raw", "unit.raw"]
    assert FeedState.path_for(url, tmp_path).exists()

    report, _ = feed_cycle([url], client, FakeProducer(), settings)
    assert report.sent == 0 and server.statuses[-1] == ("/rss", 304)


def test_cli_polls_feeds_once(server, tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from pipeline.settings import reset_settings
    from pipeline.sources import ingest

    monkeypatch.setenv("NEWS_DATA_DIR", str(tmp_path))
    reset_settings()
    producer = FakeProducer()
    monkeypatch.setattr(ingest, "_connect", lambda settings, console: producer)
    app = typer.Typer()
    app.command()(ingest.cmd_ingest)
    server.documents["/rss"] = rss()
    try:
        ok = CliRunner().invoke(app, ["--feed", server.url("/rss"), "--once"])
        down = CliRunner().invoke(app, ["--feed", server.url("/down"), "--once"])
    finally:
        reset_settings()
    assert ok.exit_code == 0, ok.output
    assert len(producer.sent) == 2
    assert down.exit_code == 1 and "404" in down.output
