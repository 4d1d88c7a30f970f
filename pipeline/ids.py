"""Stable identifiers: the same input always gets the same short id, on any machine.

``article_id`` names an article: the producer's id when it sent one, else a hash of the
normalised url, else a hash of the source and the whitespace-normalised body, so that a
re-sent copy of the same article gets the same id (and is recognised downstream).
``stable_hash`` is the general helper (alert ids, fingerprints, ...).

Entity ids are built from :func:`slug` (and the name folding keys of
``pipeline.stages.names``), which work in every script: Latin letters lose their accents (ids of
Latin-script names are as they always were), Cyrillic and Greek are transliterated to Latin by
anyascii (so "Владимир Путин" and "Vladimir Putin" share a key), and letters of scripts whose
transliteration loses too much (CJK, Arabic, Hebrew, ...) are kept as they are, lowercased, so
distinct names keep distinct ids. A slug is never empty: text without a letter or digit gets a
hash.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from anyascii import anyascii

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


# --- names in any script -------------------------------------------------------------------

TRANSLITERATED_SCRIPTS = ("CYRILLIC", "GREEK")
"""Scripts folded to Latin letters (anyascii): their romanisations are what other news uses."""

_SLUG_SEP = re.compile(r"[^a-z0-9\U00000080-\U0010ffff]+")
_SCRIPT_RUN = re.compile(
    r"[\u0370-\u03ff\u1f00-\u1fff\u0400-\u052f\u1c80-\u1c8f\u2de0-\u2dff\ua640-\ua69f]+"
)


def _script(char: str) -> str:
    """The script of a letter by its Unicode name's first word ('LATIN', 'CYRILLIC', 'CJK' ...)."""
    return unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]


def transliterate(text: str) -> str:
    """Cyrillic and Greek runs transliterated to Latin (anyascii); everything else as is."""
    return _SCRIPT_RUN.sub(lambda m: anyascii(m.group()), text) if not text.isascii() else text


def ascii_fold(text: str) -> str:
    """Transliterate Cyrillic/Greek, NFKD-decompose and drop combining marks: 'Türkiye' -> 'Turkiye'."""
    decomposed = unicodedata.normalize("NFKD", transliterate(text))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def keep_name_chars(text: str, digits: bool = False) -> str:
    """Lowercase ASCII letters (and digits), plus letters of kept scripts (CJK, Arabic, Hebrew
    ...); Latin letters outside ASCII, punctuation and marks become spaces. Input is folded."""
    out = []
    for char in text:
        if (
            "a" <= char <= "z"
            or (digits and "0" <= char <= "9")
            or (
                not char.isascii()
                and (char.isalpha() or (digits and char.isdigit()))
                and _script(char) != "LATIN"
            )
        ):
            out.append(char)
        else:
            out.append(" ")
    return "".join(out)


def slug(text: str) -> str:
    """Id slug of a name in any script, never empty.

    'Côte d'Ivoire' -> 'cote-d-ivoire', 'Москва' -> 'moskva', '北京' -> '北京'; text with no
    letter or digit -> 'h' + a hash of it.
    """
    folded = keep_name_chars(ascii_fold(text).lower(), digits=True)
    result = _SLUG_SEP.sub("-", "-".join(folded.split())).strip("-")
    if result:
        return result
    return "h" + stable_hash("slug", unicodedata.normalize("NFC", text.strip()).casefold())
