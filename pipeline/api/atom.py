"""An Atom feed (RFC 4287) of one subscription's alerts, newest first: the way news alert
services deliver to feed readers. An as-it-happens subscription has one entry per alert; an
hourly or daily one has one entry per closed digest period (:mod:`pipeline.alerts.digest`),
listing the period's alerts grouped by story, with a stable id per (subscription, period)."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from pipeline.alerts.digest import Digest, StoryGroup, story_groups
from schemas import Alert, Subscription

ATOM = "http://www.w3.org/2005/Atom"


def _iso(moment: datetime | None) -> str:
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def snippet_html(snippet: str) -> str:
    """The alert snippet (matches between « and ») as HTML with the matches in <b>."""
    return html.escape(snippet).replace("«", "<b>").replace("»", "</b>")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def digest_html(groups: list[StoryGroup], page_url: str) -> str:
    """A digest's alerts as HTML, one section per story (alerts without a story last)."""
    parts = []
    for group in groups:
        parts.append(f"<h3>{html.escape(group.title)}</h3><ul>")
        for alert in group.alerts:
            href = html.escape(alert.url or f"{page_url}#article={alert.article_id}", quote=True)
            source = f" ({html.escape(alert.source)})" if alert.source else ""
            parts.append(
                f'<li><a href="{href}">{html.escape(alert.title or alert.article_id)}</a>{source}: '
                f"{snippet_html(alert.snippet)}</li>"
            )
            for update in alert.updates:
                href = html.escape(
                    update.url or f"{page_url}#article={update.article_id}", quote=True
                )
                parts.append(
                    f'<li><a href="{href}">{html.escape(update.title or update.article_id)}</a></li>'
                )
        parts.append("</ul>")
    return "".join(parts)


def render_feed(
    subscription: Subscription,
    alerts: list[Alert],
    *,
    self_url: str,
    page_url: str,
    digests: list[Digest] | None = None,
    titles: dict[str, str] | None = None,
) -> bytes:
    """The feed: one entry per alert, or, when ``digests`` is given (hourly/daily
    subscriptions), one entry per digest (``titles``: story titles by story id)."""
    ET.register_namespace("", ATOM)

    def sub(parent, tag, text=None, **attrs):
        element = ET.SubElement(
            parent, f"{{{ATOM}}}{tag}", {k: v for k, v in attrs.items() if v is not None}
        )
        if text is not None:
            element.text = text
        return element

    feed = ET.Element(f"{{{ATOM}}}feed")
    sub(feed, "id", f"urn:newspipe:subscription:{subscription.id}")
    sub(feed, "title", f"newspipe alerts: {subscription.query}")
    sub(feed, "subtitle", f"articles matching {subscription.query!r} (owner {subscription.owner})")
    if digests is not None:
        updated = max((d.updated for d in digests), default=subscription.created_at)
    else:
        updated = max((a.created_at for a in alerts), default=subscription.created_at)
    sub(feed, "updated", _iso(updated))
    author = sub(feed, "author")
    sub(author, "name", "newspipe")
    sub(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    sub(feed, "link", rel="alternate", href=page_url, type="text/html")
    sub(feed, "generator", "newspipe")
    for digest in digests or []:
        groups = story_groups(digest.alerts, titles)
        entry = sub(feed, "entry")
        sub(entry, "id", digest.entry_id)
        count = len(digest.alerts)
        sub(
            entry,
            "title",
            f"{count} alert{'s' if count != 1 else ''} for {subscription.query}, "
            f"{_when(digest.period_start)} to {_when(digest.period_end)}",
        )
        sub(entry, "updated", _iso(digest.updated))
        sub(entry, "published", _iso(digest.period_end))
        sub(entry, "link", rel="alternate", href=page_url)
        terms = dict.fromkeys(
            t
            for a in digest.alerts
            for t in a.matched.terms + a.matched.entities + a.matched.events
        )
        for term in terms:
            sub(entry, "category", term=term)
        sub(entry, "content", digest_html(groups, page_url), type="html")
    for alert in alerts if digests is None else []:
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:newspipe:alert:{alert.id}")
        sub(entry, "title", alert.title or alert.article_id)
        sub(entry, "updated", _iso(alert.created_at))
        if alert.published_at:
            sub(entry, "published", _iso(alert.published_at))
        sub(
            entry,
            "link",
            rel="alternate",
            href=alert.url or f"{page_url}#article={alert.article_id}",
        )
        if alert.source:
            source = sub(entry, "source")
            sub(source, "title", alert.source)
        matched = alert.matched.terms + alert.matched.entities + alert.matched.events
        for term in matched:
            sub(entry, "category", term=term)
        sub(entry, "summary", snippet_html(alert.snippet), type="html")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
