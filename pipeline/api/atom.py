"""An Atom feed (RFC 4287) of one subscription's alerts, newest first: the way news alert
services deliver to feed readers."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

from schemas import Alert, Subscription

ATOM = "http://www.w3.org/2005/Atom"


def _iso(moment: datetime | None) -> str:
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat()


def snippet_html(snippet: str) -> str:
    """The alert snippet (matches between « and ») as HTML with the matches in <b>."""
    return html.escape(snippet).replace("«", "<b>").replace("»", "</b>")


def render_feed(subscription: Subscription, alerts: list[Alert], *, self_url: str, page_url: str) -> bytes:
    ET.register_namespace("", ATOM)

    def sub(parent, tag, text=None, **attrs):
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", {k: v for k, v in attrs.items() if v is not None})
        if text is not None:
            element.text = text
        return element

    feed = ET.Element(f"{{{ATOM}}}feed")
    sub(feed, "id", f"urn:newspipe:subscription:{subscription.id}")
    sub(feed, "title", f"newspipe alerts: {subscription.query}")
    sub(feed, "subtitle", f"articles matching {subscription.query!r} (owner {subscription.owner})")
    updated = max((a.created_at for a in alerts), default=subscription.created_at)
    sub(feed, "updated", _iso(updated))
    author = sub(feed, "author")
    sub(author, "name", "newspipe")
    sub(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    sub(feed, "link", rel="alternate", href=page_url, type="text/html")
    sub(feed, "generator", "newspipe")
    for alert in alerts:
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:newspipe:alert:{alert.id}")
        sub(entry, "title", alert.title or alert.article_id)
        sub(entry, "updated", _iso(alert.created_at))
        if alert.published_at:
            sub(entry, "published", _iso(alert.published_at))
        sub(entry, "link", rel="alternate", href=alert.url or f"{page_url}#article={alert.article_id}")
        if alert.source:
            source = sub(entry, "source")
            sub(source, "title", alert.source)
        matched = alert.matched.terms + alert.matched.entities + alert.matched.events
        for term in matched:
            sub(entry, "category", term=term)
        sub(entry, "summary", snippet_html(alert.snippet), type="html")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
