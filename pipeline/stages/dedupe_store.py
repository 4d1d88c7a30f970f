"""Dedupe state: one record per distinct article text, keyed by its exact fingerprint.

A record remembers which article first had the text (``article_id``), whether that article has
been indexed yet (``status``), and its MinHash signature with the LSH band keys under which
near-duplicate candidates are looked up. Two stores implement :class:`FingerprintStore`:

- :class:`InMemoryFingerprintStore`: unit tests and batch runs without servers;
- :class:`ElasticsearchFingerprintStore`: the worker's store (index template
  ``deploy/elasticsearch/fingerprints.json``, ``_id`` = fingerprint).

First writer wins: :meth:`FingerprintStore.claim` creates a record only when its fingerprint is
unknown, atomically, and otherwise returns the record already stored.

Band lists (near duplicates across workers, see :mod:`pipeline.stages.dedupe`): beside the
records, the store keeps one list per *list key* of the texts claimed under it, in the order
their claims were made (a list key is one value of a text's signature, a band of one row: the
dedupe stage chooses how many, :func:`pipeline.stages.dedupe.list_key_count`).
:meth:`FingerprintStore.claim_bands` appends a text to the list of each of its keys, atomically
per key (Elasticsearch: one document ``_id = "band:<key>"``, written with
``if_seq_no``/``if_primary_term`` and retried on a conflict), and returns what stood before it
in each list. Appending twice is a no-op that returns the same answer, so a redelivery decides
as the first delivery did. A list keeps its ``BAND_LIST_MAX`` latest entries (older texts are
found by :meth:`FingerprintStore.candidates`). An entry names a text (fingerprint) and the
article that claimed it, not its signature: a text is listed only after its record was claimed,
and in the rare case a list names an earlier text, the dedupe stage reads that text's signature
from its record (:meth:`FingerprintStore.signatures`, one lookup for the batch, which also
tells which listed texts were forgotten). Lists written by earlier versions were keyed by the
four-row bands of the candidate search (32 lists a text); no key of this version names them,
and the dedupe window deletes them.

The dedupe window (``forget``, run by ``pipeline.ops.retention``) deletes the records first
seen before it and the band lists not written since; a list written since may still name a
forgotten text, which the dedupe stage then ignores (:meth:`FingerprintStore.known`), so a near
copy of an article older than the window is new again, like its exact copy.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from elasticsearch import Elasticsearch

from pipeline.infra.es import ServerBusy, is_transient_item

PENDING = "pending"
"""The article was claimed by the dedupe stage and is on its way to the index."""
INDEXED = "indexed"
"""The article was indexed (set by the index stage through ``mark_indexed``)."""

MAX_CANDIDATES = 50
"""Most candidate records one ``candidates`` call returns (those sharing the most bands)."""

BAND_LIST_MAX = 32
"""Most entries one band list keeps (the latest); the lists arbitrate concurrent claims only."""
BAND_DOC_PREFIX = "band:"
"""``_id`` prefix of the band-list documents in the fingerprints index (records have 40 hex)."""
BAND_UPDATED_FIELD = "updated_at"
"""When a band-list document was last written: retention deletes a list not written for the
dedupe window (every text it names was forgotten with its record)."""


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""One encoder for the band-list lines (``json.dumps`` with options builds one per call)."""


_TERM_CLAUSE = '{"constant_score":{"filter":{"term":{"bands":%s}}}}'
"""One band key's clause of a candidate search (its score counts the shared band keys)."""


class FingerprintStoreError(RuntimeError):
    """The store rejected an operation (other than a first-writer-wins conflict)."""


@dataclass(frozen=True)
class FingerprintEntry:
    """One distinct article text as the dedupe state records it."""

    fingerprint: str
    article_id: str
    status: str
    bands: tuple[str, ...]
    minhash: bytes
    source: str | None
    title: str | None
    first_seen: datetime


@dataclass(frozen=True)
class BandEntry:
    """One text in a band list: its fingerprint (its signature is in its record) and the
    article that claimed it."""

    fingerprint: str
    article_id: str


BandsBefore = dict[str, dict[str, tuple[BandEntry, ...]]]
"""fingerprint -> list key -> the entries that precede that text in the key's list."""


@dataclass(frozen=True)
class BandClaim:
    """A text to append to band lists: its entry and the keys of its lists."""

    entry: BandEntry
    keys: tuple[str, ...]


def _append(listing: list[BandEntry], entry: BandEntry) -> tuple[tuple[BandEntry, ...], bool]:
    """(what precedes ``entry`` in ``listing``, whether it had to be appended)."""
    for position, other in enumerate(listing):
        if other.fingerprint == entry.fingerprint:
            return tuple(listing[:position]), False
    before = tuple(listing)
    listing.append(entry)
    return before, True


class FingerprintStore(Protocol):
    """Where the dedupe stage keeps the texts it has seen."""

    def claim(self, entries: list[FingerprintEntry]) -> dict[str, FingerprintEntry]:
        """Create the record of each entry whose fingerprint is unknown; return, for every
        fingerprint, the record now stored (an earlier one when another article was first)."""
        ...

    def candidates(self, band_keys: list[str], min_shared: int = 1) -> list[FingerprintEntry]:
        """Records sharing at least ``min_shared`` of these band keys, most shared bands first,
        at most ``MAX_CANDIDATES``."""
        ...

    def candidates_many(
        self, band_key_lists: list[list[str]], min_shared: int = 1
    ) -> list[list[FingerprintEntry]]:
        """:meth:`candidates` for several texts at once (one round trip for a batch)."""
        ...

    def mark_indexed(self, fingerprints: list[str]) -> None:
        """Set the status of these records to ``indexed`` (unknown fingerprints are skipped)."""
        ...

    def claim_bands(self, claims: list[BandClaim]) -> BandsBefore:
        """Append each claim's entry (in order) to the list of each of its keys, atomically per
        key; return what preceded it in each list (an entry already listed keeps its place)."""
        ...

    def reassign(self, owners: dict[str, str]) -> None:
        """Point records (fingerprint -> article id) at another article: a text that yielded
        to a concurrent near copy belongs to that copy's article from then on."""
        ...

    def known(self, fingerprints: list[str]) -> set[str]:
        """The fingerprints of these that have a record. A band list may still name a text
        whose record the dedupe window forgot (``forget``): such a text is no original."""
        ...

    def signatures(self, fingerprints: list[str]) -> dict[str, bytes]:
        """The MinHash signature of each of these fingerprints that has a record (real-time:
        a record claimed a moment ago by another worker is there); a forgotten text is
        missing, as in :meth:`known`."""
        ...


class InMemoryFingerprintStore:
    """A :class:`FingerprintStore` in a dict; thread-safe, lost when the process ends."""

    def __init__(self) -> None:
        self._entries: dict[str, FingerprintEntry] = {}
        self._by_band: dict[str, list[str]] = {}
        self._band_lists: dict[str, list[BandEntry]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, fingerprint: str) -> FingerprintEntry | None:
        """The record of one fingerprint (for tests and tools)."""
        return self._entries.get(fingerprint)

    def claim(self, entries: list[FingerprintEntry]) -> dict[str, FingerprintEntry]:
        stored: dict[str, FingerprintEntry] = {}
        with self._lock:
            for entry in entries:
                if entry.fingerprint not in self._entries:
                    self._entries[entry.fingerprint] = entry
                    for key in entry.bands:
                        self._by_band.setdefault(key, []).append(entry.fingerprint)
                stored[entry.fingerprint] = self._entries[entry.fingerprint]
        return stored

    def candidates(self, band_keys: list[str], min_shared: int = 1) -> list[FingerprintEntry]:
        with self._lock:
            shared = Counter(fp for key in set(band_keys) for fp in self._by_band.get(key, ()))
            return [
                self._entries[fp]
                for fp, count in shared.most_common(MAX_CANDIDATES)
                if count >= min_shared
            ]

    def candidates_many(
        self, band_key_lists: list[list[str]], min_shared: int = 1
    ) -> list[list[FingerprintEntry]]:
        return [self.candidates(keys, min_shared) for keys in band_key_lists]

    def forget(self, before: datetime) -> int:
        """Drop the records first seen before ``before`` (the dedupe window); returns how many."""
        with self._lock:
            old = {fp for fp, e in self._entries.items() if e.first_seen < before}
            for fp in old:
                for key in self._entries.pop(fp).bands:
                    self._by_band[key] = [f for f in self._by_band.get(key, ()) if f != fp]
            return len(old)

    def known(self, fingerprints: list[str]) -> set[str]:
        with self._lock:
            return {fp for fp in fingerprints if fp in self._entries}

    def signatures(self, fingerprints: list[str]) -> dict[str, bytes]:
        with self._lock:
            return {fp: self._entries[fp].minhash for fp in fingerprints if fp in self._entries}

    def mark_indexed(self, fingerprints: list[str]) -> None:
        with self._lock:
            for fp in fingerprints:
                if fp in self._entries:
                    self._entries[fp] = replace(self._entries[fp], status=INDEXED)

    def claim_bands(self, claims: list[BandClaim]) -> BandsBefore:
        before: BandsBefore = {}
        with self._lock:
            for claim in claims:
                mine = before.setdefault(claim.entry.fingerprint, {})
                for key in claim.keys:
                    listing = self._band_lists.setdefault(key, [])
                    mine[key], _ = _append(listing, claim.entry)
                    del listing[:-BAND_LIST_MAX]
        return before

    def reassign(self, owners: dict[str, str]) -> None:
        with self._lock:
            for fp, article_id in owners.items():
                if fp in self._entries:
                    self._entries[fp] = replace(self._entries[fp], article_id=article_id)


class ElasticsearchFingerprintStore:
    """A :class:`FingerprintStore` in an Elasticsearch index (or write alias over one index).

    - ``claim``: bulk ``create`` with ``_id`` = fingerprint, so Elasticsearch arbitrates between
      workers; a 409 conflict means the text is known, and the stored records are read back
      with ``mget`` (real-time). The bulk does not refresh the index (no waiting on the hot
      path): a record becomes searchable within the index's refresh interval
      (``NEWS_STATE_REFRESH_S``), and a near copy arriving before that is caught by the band
      lists (``claim_bands``, real-time reads), as concurrent claims of two workers are; exact
      copies are caught by the create conflict.
    - ``candidates``: one search, a ``constant_score`` term clause per band key, so the score
      is the number of shared bands and the best candidates come first
      (``minimum_should_match``: ``min_shared``);
      ``candidates_many``: the searches of a whole batch in one ``msearch``.
    - ``mark_indexed``: bulk partial update of ``status``.
    - ``claim_bands``: one bulk that creates the list of every key the batch touches
      (most keys are new: no read first), then, for the keys whose list exists (a
      ``create`` conflict), one ``mget`` (real-time) of those lists and one bulk writing each
      changed list back with ``if_seq_no``/``if_primary_term``; keys that meet a conflict again
      (another worker wrote in between) are read and written again until none is left. A list
      the batch does not change (a redelivery: its texts are listed already) is not written.
      Every text of the batch under one key goes in one write, in batch order.
    - ``signatures``: one ``mget`` (real-time) of the records' ``minhash`` fields.
    - ``reassign``: bulk partial update of ``article_id``.
    """

    def __init__(self, es: Elasticsearch, index: str) -> None:
        self.es = es
        self.index = index

    def claim(self, entries: list[FingerprintEntry]) -> dict[str, FingerprintEntry]:
        if not entries:
            return {}
        operations: list[dict[str, Any]] = []
        for entry in entries:
            action = {"create": {"_index": self.index, "_id": entry.fingerprint}}
            operations += [action, _to_doc(entry)]
        response = self.es.bulk(operations=operations)  # no refresh: see the class docstring
        stored: dict[str, FingerprintEntry] = {}
        conflicts: list[str] = []
        for entry, item in zip(entries, response["items"], strict=True):
            result = item["create"]
            if result["status"] == 409:
                conflicts.append(entry.fingerprint)
            elif result["status"] in (200, 201):
                stored[entry.fingerprint] = entry
            elif is_transient_item(result):  # busy, read-only (flood stage): the caller retries
                raise ServerBusy(f"claim {entry.fingerprint}: {result.get('error')}")
            else:
                raise FingerprintStoreError(f"claim {entry.fingerprint}: {result.get('error')}")
        stored.update(self._get(conflicts))
        return stored

    def candidates(self, band_keys: list[str], min_shared: int = 1) -> list[FingerprintEntry]:
        if not band_keys:
            return []
        should = [
            {"constant_score": {"filter": {"term": {"bands": key}}}} for key in set(band_keys)
        ]
        response = self.es.search(
            index=self.index,
            query={"bool": {"should": should, "minimum_should_match": min_shared}},
            size=MAX_CANDIDATES,
        )
        return [_from_doc(hit["_source"]) for hit in response["hits"]["hits"]]

    def candidates_many(
        self, band_key_lists: list[list[str]], min_shared: int = 1
    ) -> list[list[FingerprintEntry]]:
        wanted = [i for i, keys in enumerate(band_key_lists) if keys]
        out: list[list[FingerprintEntry]] = [[] for _ in band_key_lists]
        if not wanted:
            return out
        # written here as NDJSON lines: 32 term clauses an article, ~2,000 a batch, cost more
        # as dicts for the client to build and encode than the search costs the node
        header = _JSON.encode({"index": self.index})
        searches: list[str] = []
        for i in wanted:
            should = ",".join(_TERM_CLAUSE % _JSON.encode(key) for key in set(band_key_lists[i]))
            searches += [
                header,
                f'{{"query":{{"bool":{{"should":[{should}],"minimum_should_match":{int(min_shared)}}}}},'
                f'"size":{MAX_CANDIDATES}}}',
            ]
        responses = self.es.msearch(searches=cast(Any, searches))["responses"]
        for i, response in zip(wanted, responses, strict=True):
            if "error" in response:
                error = response["error"]
                if is_transient_item(response):
                    raise ServerBusy(f"candidates: {error}")
                raise FingerprintStoreError(f"candidates: {error}")
            out[i] = [_from_doc(hit["_source"]) for hit in response["hits"]["hits"]]
        return out

    def mark_indexed(self, fingerprints: list[str]) -> None:
        if not fingerprints:
            return
        operations: list[dict[str, Any]] = []
        for fp in fingerprints:
            action = {"update": {"_index": self.index, "_id": fp}}
            operations += [action, {"doc": {"status": INDEXED}}]
        response = self.es.bulk(operations=operations)
        for fp, item in zip(fingerprints, response["items"], strict=True):
            result = item["update"]
            if is_transient_item(result):
                raise ServerBusy(f"mark_indexed {fp}: {result.get('error')}")
            if result["status"] not in (200, 201, 404):
                raise FingerprintStoreError(f"mark_indexed {fp}: {result.get('error')}")

    def claim_bands(self, claims: list[BandClaim]) -> BandsBefore:
        pending: dict[str, list[BandEntry]] = {}
        for claim in claims:
            for key in claim.keys:
                pending.setdefault(key, []).append(claim.entry)
        before: BandsBefore = {claim.entry.fingerprint: {} for claim in claims}
        # the bulk body is written here as NDJSON lines, each entry encoded once (not once per
        # key of its text, ~500 list writes a batch); list keys need no escaping
        encoded: dict[BandEntry, str] = {}
        written_at = _JSON.encode(datetime.now(UTC).isoformat())
        index = _JSON.encode(self.index)
        docs: dict[str, dict[str, Any]] = {}  # key -> its list as read; unread: try to create
        while pending:
            lines: list[str] = []
            written: list[str] = []
            for key, new in pending.items():
                doc = docs.get(key)
                if doc is not None and doc.get("found"):
                    listing = [_band_from_doc(e) for e in doc["_source"]["entries"]]
                    changed = False
                    for band in new:
                        before[band.fingerprint][key], appended = _append(listing, band)
                        changed |= appended
                    if not changed:
                        continue
                    lines.append(
                        f'{{"index":{{"_index":{index},"_id":"{BAND_DOC_PREFIX}{key}",'
                        f'"if_seq_no":{int(doc["_seq_no"])},'
                        f'"if_primary_term":{int(doc["_primary_term"])}}}}}'
                    )
                else:  # a new list (the common case): the batch's texts in batch order
                    listing = []
                    for band in new:
                        before[band.fingerprint][key], _ = _append(listing, band)
                    lines.append(
                        f'{{"create":{{"_index":{index},"_id":"{BAND_DOC_PREFIX}{key}"}}}}'
                    )
                for band in listing[-BAND_LIST_MAX:]:
                    if band not in encoded:
                        encoded[band] = _JSON.encode(_band_to_doc(band))
                listed = ",".join(encoded[band] for band in listing[-BAND_LIST_MAX:])
                lines.append(
                    f'{{"band":"{key}","entries":[{listed}],"{BAND_UPDATED_FIELD}":{written_at}}}'
                )
                written.append(key)
            if not lines:
                break
            # only what is read back: a created list's full result is ~200 bytes to write
            # out and parse, ~500 times a batch
            response = self.es.bulk(
                operations=cast(Any, lines),
                filter_path=["errors", "items.*.status", "items.*.error"],
            )
            conflicts: dict[str, list[BandEntry]] = {}
            if not response.get("errors"):
                break
            for key, item in zip(written, response["items"], strict=True):
                result = next(iter(item.values()))
                status = result["status"]
                if status in (200, 201):
                    continue
                if status == 409:  # the list exists, or another worker wrote it first
                    conflicts[key] = pending[key]
                elif is_transient_item(result):
                    raise ServerBusy(f"claim band {key}: {result.get('error')}")
                else:
                    raise FingerprintStoreError(f"claim band {key}: {result.get('error')}")
            pending = conflicts
            if pending:
                ids = [BAND_DOC_PREFIX + key for key in pending]
                read = self.es.mget(index=self.index, ids=ids)["docs"]
                docs = dict(zip(pending, read, strict=True))
        return before

    def reassign(self, owners: dict[str, str]) -> None:
        if not owners:
            return
        operations: list[dict[str, Any]] = []
        for fp, article_id in owners.items():
            operations += [
                {"update": {"_index": self.index, "_id": fp}},
                {"doc": {"article_id": article_id}},
            ]
        response = self.es.bulk(operations=operations)
        for fp, item in zip(owners, response["items"], strict=True):
            result = item["update"]
            if result["status"] not in (200, 201, 404):
                raise FingerprintStoreError(f"reassign {fp}: {result.get('error')}")

    def forget(self, before: datetime) -> int:
        """Delete the records first seen before ``before`` (the dedupe window; run by
        pipeline.ops.retention), and the band lists last written before it (they name only
        such texts); returns how many records."""
        from pipeline.ops.retention import forget_before

        forgotten = forget_before(self.es, self.index, "first_seen", before)
        forget_before(self.es, self.index, BAND_UPDATED_FIELD, before)
        return forgotten

    def known(self, fingerprints: list[str]) -> set[str]:
        if not fingerprints:
            return set()
        docs = self.es.mget(index=self.index, ids=list(dict.fromkeys(fingerprints)), source=False)[
            "docs"
        ]
        return {doc["_id"] for doc in docs if doc.get("found")}

    def signatures(self, fingerprints: list[str]) -> dict[str, bytes]:
        if not fingerprints:
            return {}
        docs = self.es.mget(
            index=self.index, ids=list(dict.fromkeys(fingerprints)), source_includes=["minhash"]
        )["docs"]
        return {
            doc["_id"]: base64.b64decode(doc["_source"]["minhash"])
            for doc in docs
            if doc.get("found")
        }

    def _get(self, fingerprints: list[str]) -> dict[str, FingerprintEntry]:
        """The stored records of these fingerprints (all must exist)."""
        if not fingerprints:
            return {}
        docs = self.es.mget(index=self.index, ids=list(dict.fromkeys(fingerprints)))["docs"]
        missing = [doc["_id"] for doc in docs if not doc.get("found")]
        if missing:
            raise FingerprintStoreError(f"records vanished after a conflict: {missing}")
        return {doc["_id"]: _from_doc(doc["_source"]) for doc in docs}


def _to_doc(entry: FingerprintEntry) -> dict[str, Any]:
    """The Elasticsearch document of a record (minhash as base64, date as ISO 8601)."""
    return {
        "fingerprint": entry.fingerprint,
        "article_id": entry.article_id,
        "status": entry.status,
        "bands": list(entry.bands),
        "minhash": base64.b64encode(entry.minhash).decode("ascii"),
        "source": entry.source,
        "title": entry.title,
        "first_seen": entry.first_seen.isoformat(),
    }


def _band_to_doc(entry: BandEntry) -> dict[str, str]:
    return {"fingerprint": entry.fingerprint, "article_id": entry.article_id}


def _band_from_doc(doc: dict[str, str]) -> BandEntry:
    """An entry of a band list."""
    return BandEntry(doc["fingerprint"], doc["article_id"])


def _from_doc(doc: dict[str, Any]) -> FingerprintEntry:
    """A record from its Elasticsearch document."""
    return FingerprintEntry(
        fingerprint=doc["fingerprint"],
        article_id=doc["article_id"],
        status=doc["status"],
        bands=tuple(doc.get("bands") or ()),
        minhash=base64.b64decode(doc["minhash"]),
        source=doc.get("source"),
        title=doc.get("title"),
        first_seen=datetime.fromisoformat(doc["first_seen"]),
    )
