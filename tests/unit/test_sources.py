"""Web sources against pages served from loopback (a port the OS picks): extraction without the
page furniture, polite bounded fetching (robots.txt, User-Agent, size cap, redirects, timeout,
per-host concurrency and delay, conditional GET), HTML files, WARC archives, feed teasers."""

from __future__ import annotations

import gzip
import io
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.settings import Settings
from pipeline.sources.extract import ExtractError, extract_page
from pipeline.sources.fetch import Fetcher, FetchError
from pipeline.sources.ingest import Rejected, iter_inputs
from pipeline.sources.pages import expand_teasers, iter_urls
from pipeline.stages.clean import clean
from schemas import RawArticle

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"

# page -> (title, site name, authors, date, sentences that must be there, furniture that must not)
EXPECTED = {
    "news_site.html": (
        "Harbour authority approves new ferry terminal",
        "The Coastal Ledger",
        ["Marta Lindqvist"],
        "2024-03-12",
        [
            "voted on Monday to build a new ferry terminal",
            "public meetings before the final design",
        ],
        [
            "cookies",
            "Subscribe",
            "Advertisement",
            "Book your island holiday",
            "Related stories",
            "Ferry fares to rise",
            "islandgirl77",
            "fix the roads first",
            "morning briefing",
            "Share on Facebook",
            "All rights reserved",
            "Business",
        ],
    ),
    "paywall.html": (
        "Grain co-operative posts record harvest revenue",
        "Prairie Business Review",
        ["Daniel Okoye", "Rosa Ferrante"],
        "2023-10-05",
        ["reported record revenue of 1.2 billion dollars", "spend part of the year's surplus"],
        [
            "Subscribe to keep reading",
            "Cancel anytime",
            "Log in",
            "cookie policy",
            "Most read",
            "Fertiliser prices",
            "Tractors at dealer prices",
            "Copyright",
        ],
    ),
    "blog_style.html": (
        "City council delays vote on tram extension",
        "Metro Chronicle",
        [],
        "2022-06-21",
        ["postponed on Tuesday its vote", "Vesterås", "served by buses"],
        ["Sections", "cloudy", "Tags:", "Share this", "Previous:", "Leave a reply", "Powered by"],
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_extractor_keeps_the_article_and_drops_the_furniture(name):
    title, site, authors, date, present, absent = EXPECTED[name]
    page = extract_page((PAGES / name).read_bytes())
    assert page.title == title and page.site_name == site and page.authors == authors
    assert page.published_at is not None and page.published_at.date().isoformat() == date
    for text in present:
        assert text in page.text
    for text in absent:
        assert text not in page.text, text
    assert not page.text.startswith(title)  # the headline is the title, not body text


def test_a_page_without_article_text_is_refused():
    with pytest.raises(ExtractError, match="too few|no article text"):
        extract_page(b"<html><body><nav><a href='/'>Home</a></nav><p>Sign in</p></body></html>")


# --- a loopback web server ---------------------------------------------------------------------


@dataclass
class Site:
    base: str = ""
    routes: dict = field(default_factory=dict)
    """path -> (status, headers, body) or a callable(handler) -> that tuple"""
    requests: list = field(default_factory=list)
    """(path, start time, request headers)"""
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list:
        return [r for r in self.requests if r[0] == path]


def _handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            with site.lock:
                site.requests.append((self.path, time.monotonic(), dict(self.headers)))
                site.in_flight += 1
                site.max_in_flight = max(site.max_in_flight, site.in_flight)
            try:
                route = site.routes.get(self.path, (404, {}, b"not found"))
                status, headers, body = route(self) if callable(route) else route
                self.send_response(status)
                for key, value in headers.items():
                    if value is not None:  # None: no such header (a body read until close)
                        self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                with site.lock:
                    site.in_flight -= 1

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def site():
    state = Site()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    for name in EXPECTED:
        state.routes[f"/news/{name}"] = (
            200,
            {"Content-Type": "text/html; charset=utf-8"},
            (PAGES / name).read_bytes(),
        )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def settings_for(tmp_path, **overrides) -> Settings:
    values = dict(
        data_dir=tmp_path,
        fetch_host_delay_s=0.0,
        fetch_timeout_s=5.0,
        user_agent="newspipe-test/1.0 (+https://newspipe.example/bot)",
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


def test_ingest_url_extracts_the_article_with_source_and_date(site, tmp_path):
    settings = settings_for(tmp_path)
    with Fetcher(settings) as fetcher:
        [article] = list(iter_urls([site.url("/news/news_site.html")], fetcher))
    assert isinstance(article, RawArticle) and article.id
    assert article.source == "The Coastal Ledger" and article.source_origin == "site_name"
    assert article.published_at.date().isoformat() == "2024-03-12"
    assert article.published_at_origin == "page"
    assert article.model_extra["authors"] == ["Marta Lindqvist"]
    cleaned = clean(article)
    assert cleaned.title == "Harbour authority approves new ferry terminal"
    assert cleaned.source == "The Coastal Ledger" and cleaned.source_origin == "site_name"
    assert cleaned.published_at_origin == "page"
    assert "cookies" not in cleaned.body and "islandgirl77" not in cleaned.body
    assert cleaned.body.startswith("The harbour authority of Port Elswick voted")
    # robots.txt was asked first, with the configured User-Agent
    assert [r[0] for r in site.requests] == ["/robots.txt", "/news/news_site.html"]
    assert {r[2]["User-Agent"] for r in site.requests} == {settings.user_agent}


def test_robots_txt_is_honoured(site, tmp_path):
    site.routes["/robots.txt"] = (
        200,
        {"Content-Type": "text/plain"},
        b"User-agent: *\nDisallow: /news/paywall\n",
    )
    with Fetcher(settings_for(tmp_path)) as fetcher:
        items = list(
            iter_urls([site.url("/news/paywall.html"), site.url("/news/blog_style.html")], fetcher)
        )
    assert isinstance(items[0], Rejected) and "disallowed by robots.txt" in items[0].reason
    assert isinstance(items[1], RawArticle)
    assert not site.hits("/news/paywall.html")
    with Fetcher(settings_for(tmp_path, fetch_robots=False)) as fetcher:
        assert isinstance(fetcher.fetch(site.url("/news/paywall.html")).content, bytes)


def test_unreachable_robots_txt_means_not_now(site, tmp_path):
    site.routes["/robots.txt"] = (503, {}, b"down")
    with (
        Fetcher(settings_for(tmp_path)) as fetcher,
        pytest.raises(FetchError, match="robots.txt unreachable"),
    ):
        fetcher.fetch(site.url("/news/news_site.html"))
    assert not site.hits("/news/news_site.html")


def test_size_cap_refuses_large_pages(site, tmp_path):
    big = b"<html><body>" + b"<p>word </p>" * 20_000 + b"</body></html>"
    site.routes["/big"] = (200, {"Content-Type": "text/html"}, big)
    site.routes["/big-unsized"] = lambda handler: (
        200,
        {"Content-Type": "text/html", "Content-Length": None},
        big,
    )
    with Fetcher(settings_for(tmp_path, fetch_max_bytes=50_000)) as fetcher:
        for path in ("/big", "/big-unsized"):
            with pytest.raises(FetchError, match="NEWS_FETCH_MAX_BYTES"):
                fetcher.fetch(site.url(path))


def test_redirects_are_followed_up_to_the_limit(site, tmp_path):
    for n in range(3):
        site.routes[f"/r{n}"] = (301, {"Location": f"/r{n + 1}"}, b"")
    site.routes["/r3"] = site.routes["/news/news_site.html"]
    with Fetcher(settings_for(tmp_path, fetch_max_redirects=3)) as fetcher:
        result = fetcher.fetch(site.url("/r0"))
        assert result.status == 200 and result.final_url == site.url("/r3")
    with Fetcher(settings_for(tmp_path, fetch_max_redirects=2)) as fetcher:
        with pytest.raises(FetchError, match="more than 2 redirects"):
            fetcher.fetch(site.url("/r0"))


def test_a_slow_page_times_out(site, tmp_path):
    release = threading.Event()

    def slow(handler):
        release.wait(5)
        return 200, {"Content-Type": "text/html"}, b"<html></html>"

    site.routes["/slow"] = slow
    try:
        with Fetcher(settings_for(tmp_path, fetch_timeout_s=0.3)) as fetcher:
            with pytest.raises(FetchError, match="NEWS_FETCH_TIMEOUT_S"):
                fetcher.fetch(site.url("/slow"))
    finally:
        release.set()


def test_conditional_get_skips_an_unchanged_page(site, tmp_path):
    page = (PAGES / "blog_style.html").read_bytes()

    def etagged(handler):
        if handler.headers.get("If-None-Match") == '"v1"':
            return 304, {"ETag": '"v1"'}, b""
        return 200, {"Content-Type": "text/html", "ETag": '"v1"'}, page

    site.routes["/etag"] = etagged
    settings = settings_for(tmp_path)
    with Fetcher(settings) as fetcher:
        assert len(list(iter_urls([site.url("/etag")], fetcher))) == 1
        fetcher.commit()  # delivered: remember the validators
    with Fetcher(settings) as fetcher:
        assert list(iter_urls([site.url("/etag")], fetcher)) == []
    assert site.hits("/etag")[-1][2].get("If-None-Match") == '"v1"'


def test_per_host_concurrency_and_delay(site, tmp_path):
    release = threading.Event()

    def held(handler):  # held until a second request is in flight (or 2 s): shows the overlap
        deadline = time.monotonic() + 2
        while site.in_flight < 2 and time.monotonic() < deadline and not release.is_set():
            time.sleep(0.01)
        release.wait(0.1)
        return site.routes["/news/news_site.html"]

    for n in range(6):
        site.routes[f"/p{n}"] = held
    urls = [site.url(f"/p{n}") for n in range(6)]
    with Fetcher(settings_for(tmp_path, fetch_per_host=2, fetch_concurrency=6)) as fetcher:
        results = list(fetcher.fetch_many(urls))
    assert all(r.status == 200 for _, r in results) and site.max_in_flight == 2

    site.requests.clear()
    release.set()
    with Fetcher(settings_for(tmp_path, fetch_per_host=4, fetch_host_delay_s=0.2)) as fetcher:
        started = time.monotonic()
        list(fetcher.fetch_many(urls[:3]))
        elapsed = time.monotonic() - started
    assert len(site.requests) == 4  # robots.txt, then three pages
    # four request starts to one host, each at least the delay after the previous one: a lower
    # bound the fetcher guarantees however busy the machine is (not a speed measurement)
    assert elapsed >= 3 * 0.2


def test_html_files_go_through_the_extractor(tmp_path):
    items = list(iter_inputs([PAGES]))
    assert [type(i) for i in items] == [RawArticle] * 3
    by_title = {i.title: i for i in items}
    article = by_title["Grain co-operative posts record harvest revenue"]
    assert article.source == "Prairie Business Review" and "Subscribe" not in article.body
    assert article.model_extra["path"].endswith("paywall.html")


# --- WARC ------------------------------------------------------------------------------------


def write_warc(path: Path, compress: bool) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=compress)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "newspipe-test"}))
        for n, name in enumerate(sorted(EXPECTED)):
            url = f"https://news{n}.example/{name}"
            request = writer.create_warc_record(
                url,
                "request",
                payload=io.BytesIO(b""),
                http_headers=StatusAndHeaders("GET / HTTP/1.1", [], is_http_request=True),
            )
            writer.write_record(request)
            headers = StatusAndHeaders(
                "200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1"
            )
            writer.write_record(
                writer.create_warc_record(
                    url,
                    "response",
                    payload=io.BytesIO((PAGES / name).read_bytes()),
                    http_headers=headers,
                )
            )
        image = StatusAndHeaders("200 OK", [("Content-Type", "image/png")], protocol="HTTP/1.1")
        writer.write_record(
            writer.create_warc_record(
                "https://news0.example/logo.png",
                "response",
                payload=io.BytesIO(b"\x89PNG..."),
                http_headers=image,
            )
        )
        missing = StatusAndHeaders(
            "404 Not Found", [("Content-Type", "text/html")], protocol="HTTP/1.1"
        )
        writer.write_record(
            writer.create_warc_record(
                "https://news0.example/gone",
                "response",
                payload=io.BytesIO(b"<html>gone</html>"),
                http_headers=missing,
            )
        )
        stub = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        writer.write_record(
            writer.create_warc_record(
                "https://news0.example/index",
                "response",
                http_headers=stub,
                payload=io.BytesIO(b"<html><body><nav><a href='/'>Home</a></nav></body></html>"),
            )
        )


@pytest.mark.parametrize("name,compress", [("cc-news.warc.gz", True), ("cc-news.warc", False)])
def test_warc_records_go_through_the_extractor(tmp_path, name, compress):
    path = tmp_path / name
    write_warc(path, compress)
    items = list(iter_inputs([path]))
    articles = [i for i in items if isinstance(i, RawArticle)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [a.url for a in articles] == [
        f"https://news{n}.example/{p}" for n, p in enumerate(sorted(EXPECTED))
    ]
    assert {a.title for a in articles} == {e[0] for e in EXPECTED.values()}
    assert {a.source for a in articles} == {e[1] for e in EXPECTED.values()}
    assert all(a.model_extra["crawled_at"] and a.id for a in articles)
    assert "islandgirl77" not in " ".join(a.body for a in articles)
    assert len(rejected) == 1 and "news0.example/index" in rejected[0].reason
    assert rejected[0].origin.startswith(f"{path}#")


def test_a_broken_warc_is_one_rejection(tmp_path):
    path = tmp_path / "broken.warc.gz"
    path.write_bytes(gzip.compress(b"this is not a warc file at all\r\n\r\n"))
    [item] = list(iter_inputs([path]))
    assert isinstance(item, Rejected) and "not a readable WARC archive" in item.reason


# --- feed teasers ----------------------------------------------------------------------------


def test_feed_teasers_are_expanded_to_the_linked_page(site, tmp_path):
    site.routes["/gone.html"] = (404, {}, b"")
    teaser = RawArticle(
        id="t1",
        source="Ledger feed",
        title="Ferry terminal approved",
        url=site.url("/news/news_site.html"),
        body="The harbour authority voted to build a new ferry terminal.",
    )
    missing = RawArticle(
        id="t2",
        source="Ledger feed",
        title="Gone",
        url=site.url("/gone.html"),
        body="A short teaser whose page has gone.",
    )
    long_entry = RawArticle(
        id="t3",
        source="Ledger feed",
        title="Full",
        url=site.url("/news/paywall.html"),
        body=" ".join(["word"] * 200),
    )
    with Fetcher(settings_for(tmp_path)) as fetcher:
        out = expand_teasers([teaser, missing, long_entry], fetcher, min_words=120)
    assert out[0].body.startswith("The harbour authority of Port Elswick voted on Monday")
    assert (
        out[0].model_extra["teaser"] == "The harbour authority voted to build a new ferry terminal."
    )
    assert out[0].title == "Ferry terminal approved" and out[0].source == "Ledger feed"
    assert out[0].model_extra["authors"] == ["Marta Lindqvist"]
    assert out[1].body == "A short teaser whose page has gone."
    assert out[2].body == " ".join(["word"] * 200) and not site.hits("/news/paywall.html")
