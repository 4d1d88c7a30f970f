"""Stable identifiers: the same input always gets the same short id, on any machine.

``article_id`` names an article: the producer's id when it sent one, else a hash of the
normalised url, else a hash of the source and the whitespace-normalised body, so that a
re-sent copy of the same article gets the same id (and is recognised downstream).
``stable_hash`` is the general helper (alert ids, fingerprints, ...).
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from schemas.models import RawArticle

SEPARATOR = "\x1f"
"""ASCII unit separator between hashed parts: ("ab", "c") and ("a", "bc") hash differently."""

DEFAULT_LENGTH = 16
_DEFAULT_PORTS = {"http": 80, "https": 443}


def stable_hash(*parts: object, length: int = DEFAULT_LENGTH) -> str:
    """SHA-1 hex digest of ``parts`` joined with ``\\x1f``, truncated to ``length`` hex chars.

    ``None`` parts hash as the empty string; other parts as ``str(part)``.
    ``length`` is 16 to 40 (16 hex chars = 64 bits: collisions are negligible below billions).
    """
    if not DEFAULT_LENGTH <= length <= 40:
        raise ValueError(f"length must be between {DEFAULT_LENGTH} and 40, not {length}")
    text = SEPARATOR.join("" if part is None else str(part) for part in parts)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


def normalise_url(url: str) -> str:
    """The url without what does not change the page it names.

    Lowercases scheme and host, drops the default port, the fragment and ``utm_*`` tracking
    parameters; keeps the path and the other parameters (in their order) as given.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: keep the netloc as given
        port = None
        host = parts.netloc.lower()
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    if parts.username or parts.password:
        host = f"{parts.netloc.rsplit('@', 1)[0]}@{host}"
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not key.lower().startswith("utm_")
    ]
    return urlunsplit((scheme, host, parts.path, urlencode(query, doseq=True), ""))


MAX_ID_BYTES = 512
"""Elasticsearch's limit for a document id (UTF-8 bytes)."""


def article_id(raw: RawArticle) -> str:
    """The article's id: given by the producer, else derived from its url, else from its text.

    A given id longer than :data:`MAX_ID_BYTES` is replaced by ``"id-" + sha1`` of it (40 hex
    chars): still stable, and accepted by Elasticsearch.
    """
    if raw.id and raw.id.strip():
        given = raw.id.strip()
        if len(given.encode("utf-8", errors="surrogatepass")) > MAX_ID_BYTES:
            return "id-" + stable_hash("id", given, length=40)
        return given
    if raw.url and raw.url.strip():
        return stable_hash("url", normalise_url(raw.url))
    return stable_hash("text", raw.source or "", " ".join(raw.body.split()))
