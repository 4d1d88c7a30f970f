"""The web page in a real browser: Debian's headless Chromium driven by Playwright, against the
real API server over the real stack (the seeds went through Kafka and a Faust worker).

Screenshots go to ``tmp/artifacts/web/`` (not committed).
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tmp" / "artifacts" / "web"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(30_000)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_search_facets_article_subscription_and_live_alert(page, api_server, stack):
    page.goto(f"{api_server.url}/#token={api_server.token}")
    page.wait_for_selector("body[data-ready=true]")
    assert "token=" not in page.url  # taken from the address, kept in localStorage

    # search "memorandum" with the query language: every seed, highlighted snippets
    page.fill("#q", "memorandum")
    page.press("#q", "Enter")
    page.wait_for_function(
        "document.querySelector('#status').textContent.includes('match memorandum')"
    )
    page.wait_for_selector("#hits li.hit mark")
    shown = page.eval_on_selector_all("#hits li.hit", "els => els.map(e => e.dataset.id)")
    assert set(stack.seed_ids.values()) & set(shown)
    marks = page.eval_on_selector_all(
        "#hits mark", "els => els.map(e => e.textContent.toLowerCase())"
    )
    assert "memorandum" in marks
    assert "memorandum" in page.url  # the search is in the address (shareable)
    shot(page, "1-search")

    # click a facet: a filter chip appears and every hit carries that place
    facet = page.locator("[data-facet=locations] button").first
    place = facet.locator("span").first.inner_text()
    expected = int(facet.locator(".count").inner_text())
    facet.click()
    page.wait_for_selector(f"#filters .chip:has-text('{place}')")
    page.wait_for_function(
        f"document.querySelector('#status').textContent.startsWith('{expected} article')"
    )
    tags = page.eval_on_selector_all("#hits li.hit", "els => els.map(e => e.textContent)")
    assert tags and all(place in t for t in tags)
    shot(page, "2-facet")

    # the article view: entities and events of the first hit
    page.locator("#hits li.hit h3 button").first.click()
    page.wait_for_selector("#article:not([hidden]) #article-entities .tag")
    assert page.locator("#article-body .ent").count() > 0
    shot(page, "3-article")

    # subscribe from the page, then an article arrives: its alert shows up live
    word = uuid.uuid4().hex[:8]
    query = f"memorandum AND {word}"
    page.fill("#subscribe-query", query)
    page.press("#subscribe-query", "Enter")
    page.wait_for_selector(f"#subscription-list li:has-text('{word}')")
    page.wait_for_selector("#live.on")
    article = {
        "title": f"Customs memorandum {word}",
        "source": "browser-test",
        "body": f"Customs services of four neighbouring countries signed a memorandum on shared "
        f"border checks (file {word}); it covers trucks and rail freight from June.",
    }
    posted = httpx.post(
        f"{api_server.url}/articles", json=article, headers=api_server.auth, timeout=60
    )
    assert posted.status_code == 202 and posted.json()["accepted"] == 1, posted.text
    alert = page.locator("#alert-list li.alert").filter(has=page.locator(".query", has_text=query))
    alert.wait_for(timeout=TIMEOUT_MS)  # the worker matched it, the SSE stream brought it
    assert word in alert.inner_text()
    assert "memorandum" in [m.lower() for m in alert.locator("mark").all_inner_texts()]
    shot(page, "4-live-alert")

    # the subscription's Atom link carries the token; removing the subscription works
    feed_href = page.locator(f"#subscription-list li:has-text('{word}') a").get_attribute("href")
    feed = httpx.get(api_server.url + feed_href, timeout=30)
    assert feed.status_code == 200 and word in feed.text
    page.locator(f"#subscription-list li:has-text('{word}') button").click()
    page.wait_for_selector(f"#subscription-list li:has-text('{word}')", state="detached")
    listed = httpx.get(f"{api_server.url}/subscriptions", headers=api_server.auth).json()
    assert query not in {s["query"] for s in listed}

    # readable at phone width: nothing wider than the screen
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{api_server.url}/?q=memorandum")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#hits li.hit")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"page is {overflow}px wider than a phone screen"
    shot(page, "5-phone")


def test_page_asks_for_the_token_and_refuses_a_wrong_one(page, api_server):
    page.goto(api_server.url)
    page.wait_for_selector("#login[open]")
    page.fill("#token", "wrong")
    page.press("#token", "Enter")
    page.wait_for_selector("#login[open]")  # 401: asked again, saying why
    assert "refused" in page.locator("#login-error").inner_text()
    page.fill("#token", api_server.token)
    page.press("#token", "Enter")
    page.wait_for_selector("body[data-ready=true]")
    assert (
        json.loads(page.evaluate("JSON.stringify(localStorage.getItem('newspipe-token'))"))
        == api_server.token
    )


def test_an_owner_key_on_the_page_shows_only_that_owners_subscriptions(page, api_server, stack):
    from pipeline.ops.keys import KeyStore

    keys = KeyStore(stack.es, stack.settings.index("apikeys"))
    owner = f"desk-{uuid.uuid4().hex[:6]}"
    info, key = keys.add(owner)
    page.goto(api_server.url)
    page.wait_for_selector("#login[open]")
    assert page.locator("#login-error").is_hidden(), "a first visit is asked, not told off"
    page.fill("#token", key)
    page.press("#token", "Enter")
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#who-owner").inner_text() == owner
    page.wait_for_selector("#subscription-list li:has-text('No subscriptions yet.')")  # not gold's

    word = uuid.uuid4().hex[:8]
    page.fill("#subscribe-query", f"memorandum AND {word}")
    page.press("#subscribe-query", "Enter")
    page.wait_for_selector(f"#subscription-list li:has-text('{word}')")
    assert owner in page.locator(f"#subscription-list li:has-text('{word}')").inner_text()
    assert page.locator("#subscription-list li").count() == 1
    shot(page, "6-owner-key")

    keys.revoke(info.key_id)  # the next request is refused: the page asks for another key
    page.reload()
    page.wait_for_selector("#login[open]")
    assert "refused" in page.locator("#login-error").inner_text()
    assert page.evaluate("localStorage.getItem('newspipe-token')") is None
