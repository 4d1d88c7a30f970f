"""Stories, sources and web pages through the real pipeline (Kafka -> Faust worker ->
Elasticsearch): the seeds show their sources and dates and form one story with a story
document; a per-story subscription to "memorandum" fires once and lists the other seeds as
updates; ``newspipe ingest --url`` on a loopback article page indexes the text without the page
furniture."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.settings import get_settings
from tests.integration.conftest import GOLD, REPO, Stack, Worker, set_environment

pytestmark = pytest.mark.integration

PAGES = REPO / "tests" / "fixtures" / "pages"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def pages_url():
    """The page templates served from loopback (a port the OS picks)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(PAGES)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def story_stack(kafka_bootstrap, es_url, es_client, tmp_path_factory):
    """Fresh prefixes, a per-story subscription made before the seeds arrive, a worker."""
    from pipeline.alerts.subscriptions import SubscriptionStore
    from pipeline.infra.setup import setup
    from pipeline.sources.ingest import iter_inputs

    run = uuid.uuid4().hex[:8]
    data_dir = tmp_path_factory.mktemp("stories")
    overrides = {
        "NEWS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "NEWS_ES_URL": es_url,
        "NEWS_TOPIC_PREFIX": f"s{run}",
        "NEWS_INDEX_PREFIX": f"s{run}",
        "NEWS_APP_ID": f"newspipe-stories-{run}",
        "NEWS_DATA_DIR": str(data_dir),
        "NEWS_FETCH_HOST_DELAY_S": "0",
    }
    restore = set_environment(overrides)
    settings = get_settings()
    setup(settings)
    worker = Worker(env=os.environ.copy(), log_path=data_dir / "worker.log")
    stack = Stack(settings=settings, es=es_client, worker=worker)
    store = SubscriptionStore(settings, es_client)
    stack.subscriptions["memorandum"] = store.add("memorandum", owner="stories", per_story=True).id
    store.close()
    worker.start()
    worker.wait_ready(settings)
    for item in iter_inputs([REPO / "seeds"]):
        stack.seed_ids[Path(item.model_extra["path"]).name[:3]] = item.id
    report = stack.publish([REPO / "seeds"])
    assert report.sent == 5
    stack.wait_indexed(stack.seed_ids.values())
    yield stack
    worker.stop()
    restore()


def test_seeds_show_their_sources_and_dates(story_stack):
    reuters, alliance = story_stack.article("002"), story_stack.article("004")
    assert (reuters["source"], reuters["source_origin"]) == ("Reuters", "dateline")
    assert (alliance["source"], alliance["source_origin"]) == ("Alliance News", "dateline")
    assert reuters["published_at"][5:10] == "06-02" and reuters["published_at_origin"] == "dateline"
    assert (
        alliance["published_at"][5:10] == "05-29" and alliance["published_at_origin"] == "dateline"
    )
    for doc in (reuters, alliance):
        assert doc["published_at"] <= doc["ingested_at"]


def test_seeds_form_one_story_with_a_story_document(story_stack):
    for group in GOLD["duplicates"]["stretch"]["same_story"]:
        story_ids = {story_stack.article(key)["story_id"] for key in group}
        assert len(story_ids) == 1 and None not in story_ids
    (story_id,) = story_ids
    story_stack.es.indices.refresh(index=story_stack.settings.index("stories"))
    story = story_stack.es.get(index=story_stack.settings.index("stories"), id=story_id)["_source"]
    assert story["article_count"] == 5
    assert sorted(story["article_ids"]) == sorted(story_stack.seed_ids.values())
    assert {"Reuters", "Alliance News"} <= set(story["sources"])
    assert story["first_seen"] <= story["last_seen"] and story["title"]
    assert story["entity_names"] and story["event_types"]
    # searchable by facets, like any index
    found = story_stack.es.search(
        index=story_stack.settings.index("stories"), query={"term": {"sources": "Reuters"}}
    )["hits"]["hits"]
    assert [h["_id"] for h in found] == [story_id]


def test_per_story_subscription_fires_once_and_lists_updates(story_stack):
    index = story_stack.settings.index("alerts")
    sub = story_stack.subscriptions["memorandum"]
    deadline, hits = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        story_stack.es.indices.refresh(index=index)
        hits = story_stack.es.search(index=index, query={"term": {"subscription_id": sub}})["hits"][
            "hits"
        ]
        if hits and len(hits[0]["_source"].get("updates") or []) >= 4:
            break
        time.sleep(0.3)
    assert len(hits) == 1, "one alert for the story"
    alert = hits[0]["_source"]
    updates = [u["article_id"] for u in alert["updates"]]
    assert len(updates) == len(set(updates)) == 4
    assert {alert["article_id"], *updates} == set(story_stack.seed_ids.values())
    assert alert["story_id"] == story_stack.article("000")["story_id"]
    published = [a for a in story_stack.topic_values("alerts") if sub.encode() in a]
    assert len(published) == 1, "the updates are recorded, not alerted again"


def test_ingest_url_indexes_the_article_without_the_page_furniture(story_stack, pages_url):
    url = f"{pages_url}/news_site.html"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "ingest", "--url", url, "--quiet"],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    from pipeline.ids import normalise_url, stable_hash

    article_id = stable_hash("url", normalise_url(url))
    story_stack.wait_indexed([article_id])
    doc = story_stack.es.get(index=story_stack.settings.index("articles"), id=article_id)["_source"]
    assert doc["title"] == "Harbour authority approves new ferry terminal"
    assert (doc["source"], doc["source_origin"]) == ("The Coastal Ledger", "site_name")
    assert doc["published_at"].startswith("2024-03-12") and doc["published_at_origin"] == "page"
    assert doc["body"].startswith("The harbour authority of Port Elswick voted on Monday")
    for furniture in (
        "cookies",
        "Advertisement",
        "Related stories",
        "islandgirl77",
        "Subscribe",
        "All rights reserved",
        "Share on",
    ):
        assert furniture not in doc["body"]
    assert doc["story_id"] and doc["story_id"] != story_stack.article("000")["story_id"]
