"""The dedupe stage: exact duplicates by fingerprint, near duplicates by MinHash LSH.

Text compared
    The clean body (the clean stage already removed page chrome, datelines and credit lines; the
    title is left out because outlets retitle). :func:`normalise` applies NFKC, casefolds,
    turns every punctuation or symbol character (Unicode categories P* and S*) into a space,
    drops invisible format characters (Cf: soft hyphens, zero-width spaces) and collapses
    whitespace. So whitespace, quotes, dashes, commas and case never make an article new.
    (Punctuation becomes a space rather than nothing so that "officials—who" and "officials
    — who" agree; the cost is "1,000" vs "1000", which only the near-duplicate check matches.)

Exact duplicates
    :func:`fingerprint` is the SHA-1 of the normalised text; it is the key of the dedupe state.

Near duplicates
    A MinHash signature (``NUM_PERM`` = 128 permutations, fixed seed and permutation scheme, so
    every process computes the same signature) over the word 5-shingles of the normalised text
    (a text shorter than 5 words is one shingle). The signature is cut into ``BANDS`` = 32 bands
    of ``ROWS`` = 4 rows; each band gives a key ``"b07:<hash of its rows>"``. Two texts of
    Jaccard similarity s share at least one band key with probability ``1 - (1 - s**4)**32``:

        s      0.3    0.4    0.5    0.6    0.7    0.8    0.9
        P      0.23   0.57   0.87   0.98   >0.999 ~1     ~1

    (the S-curve's midpoint is (1/32)**(1/4) = 0.42). Banding only selects candidates; a
    candidate is a near duplicate when the similarity estimated over all 128 values reaches the
    threshold (0.8 by default). 32x4 is chosen over 16x8 because 16x8 would miss 5% of pairs at
    s = 0.8 and 0.6% at s = 0.85, i.e. the banding, not the threshold, would decide borderline
    pairs; the price, more candidates between s = 0.4 and 0.7, is one 128-value comparison each,
    and the stores rank candidates by the number of shared bands, so the bounded candidate list
    keeps the close ones. Estimation error: the standard deviation of the estimate is
    sqrt(s(1-s)/128), 0.035 at s = 0.8.

    Texts under ``MIN_NEAR_WORDS`` = 20 words are exact duplicates or nothing: in short
    templated items the one differing token is the news (on Reuters-21578, nearly all near
    pairs under 20 words were dividend notices of different companies: "Qtly div 15 cts vs 15
    cts prior Pay April 30 Record April 15" / "... April 14", company names being in the
    titles only).

Changing ``NUM_PERM``, ``BANDS``, ``ROWS``, ``MINHASH_SEED``, ``MINHASH_SCHEME``,
``SHINGLE_WORDS``, ``MIN_NEAR_WORDS`` or :func:`normalise` changes fingerprints or band keys:
the dedupe state must then be rebuilt.

Semantics (at-least-once delivery: a message may be processed twice after a crash)
    - an unknown text is NEW; it is claimed in the store (first writer wins);
    - the same text, known under another article id: DUPLICATE (exact) of that article;
    - the same text under the same id: still ``pending`` -> a redelivery of an article in
      flight -> NEW again (the sinks are idempotent); ``indexed`` -> DUPLICATE of itself;
    - a near duplicate of a known text of another article: DUPLICATE (near), not stored;
      of the same article (a corrected version, same url): NEW;
    - within one batch, the first article wins over later ones.

Across workers (concurrent claims)
    The store search and the claim above are not one atomic step: two near copies that reach
    two workers at about the same moment both search, find nothing, and claim different
    fingerprints. So, after its fingerprint claim, every new text with band keys is appended
    to the store's *band list* of each of its *list keys* (atomic per key: first writer first;
    see :meth:`FingerprintStore.claim_bands`), and learns which texts stood before it. A list
    key is one value of the signature (a band of one row, ``"v005:<value>"``), one of its
    first :func:`list_key_count` values. Two texts estimated similar at the threshold or more
    differ in at most u values of the 128 (u = 25 at 0.8); the positions are alike (random
    permutations), so the chance that the first n values all differ is at most
    C(u, n) / C(128, n), and n is the fewest that make it at most ``LIST_MISS`` = 1e-6 (at
    0.8: n = 8, 7.6e-7; at 0.9: n = 6). Eight lists a text cost a quarter of what lists keyed
    by the 32 bands of the candidate search cost. Two near copies X and Y share a set S of list
    keys; each key of S orders them, so each sees the other in the keys where the other came
    first, and knows S from the other's signature (read from the other's record, claimed
    before its band lists). Then:

    - the other came first in every key of S: I came second everywhere and yield (I am its
      near duplicate); the other does not see me at all and stays new;
    - each came first in some keys of S: both see this, and the smaller fingerprint is the
      original, the larger one yields;
    - I came first in every key of S: I do not see the other; it yields.

    Both sides compute the same answer from what the lists say, whatever the timing, so a near
    pair is never both new and never both a duplicate; a text that yields has its record
    pointed at the winner's article (:meth:`FingerprintStore.reassign`), so later copies and a
    redelivery name the article that was indexed. Why band lists rather than routing near
    candidates to one owner: routing needs a second hop through Kafka keyed by a band (and a
    text has 32 of them), while the lists cost one ``mget`` and one bulk per batch on the store
    the stage already uses, and keep the single-worker behaviour unchanged (one worker never
    meets a concurrent claim). Limits: three or more mutually near copies claimed at the same
    moment are decided pair by pair, so a copy may name as its original a copy that itself
    yielded (and in theory all of a three-way tie could yield); copies a few milliseconds
    apart are found by the band lists as concurrent claims are (the store search sees records
    once the index refreshed, within ``NEWS_STATE_REFRESH_S``; claims do not wait for it); a
    concurrent near pair sharing no list key (at most ``LIST_MISS``) is both new.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from itertools import accumulate
from math import comb
from typing import Literal

import numpy as np
from datasketch import MinHash

from pipeline.stages.dedupe_store import (
    INDEXED,
    PENDING,
    BandClaim,
    BandEntry,
    BandsBefore,
    FingerprintEntry,
    FingerprintStore,
)
from schemas.models import CleanArticle, DuplicateRecord, utcnow

NUM_PERM = 128
BANDS = 32
ROWS = 4
SHINGLE_WORDS = 5
MIN_NEAR_WORDS = 20
"""Shorter texts get no band keys: they are only compared exactly."""
MINHASH_SEED = 1
MINHASH_SCHEME = "affine32"
"""datasketch's permutation scheme, named so a library default change cannot alter signatures."""

_HASH_DTYPE = np.dtype("<u4")
"""Signature values as stored: 32-bit little-endian (the affine32 scheme's width)."""


# --- text -------------------------------------------------------------------------------------
class _StripTable(dict[int, str | int | None]):
    """``str.translate`` table filled on first sight of each character: punctuation and symbols
    -> space, format characters -> removed, anything else -> itself."""

    def __missing__(self, code: int) -> str | int | None:
        category = unicodedata.category(chr(code))
        if category[0] in "PS":
            value: str | int | None = " "
        elif category == "Cf":
            value = None
        else:
            value = code
        self[code] = value
        return value


_STRIP = _StripTable()


def normalise(text: str) -> str:
    """NFKC, casefold, punctuation and symbols removed, whitespace collapsed to single spaces.

    A text made only of punctuation and symbols keeps them (so that two such texts are not
    all the same empty text).
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    words = folded.translate(_STRIP).split()
    return " ".join(words or folded.split())


def fingerprint(text: str) -> str:
    """SHA-1 hex digest of the normalised text: equal for exact duplicates."""
    return _sha1(normalise(text))


def _sha1(normalised: str) -> str:
    return hashlib.sha1(normalised.encode("utf-8")).hexdigest()


def shingles(normalised: str) -> set[bytes]:
    """Word ``SHINGLE_WORDS``-shingles of a normalised text (one shingle when it is shorter)."""
    words = normalised.split()
    size = min(SHINGLE_WORDS, len(words))
    if size == 0:
        return set()
    return {" ".join(words[i : i + size]).encode("utf-8") for i in range(len(words) - size + 1)}


# --- signatures -------------------------------------------------------------------------------
@cache
def _permutations() -> np.ndarray:
    """The permutation parameters of the fixed seed, computed once per process."""
    permutations: np.ndarray = MinHash(
        num_perm=NUM_PERM, seed=MINHASH_SEED, scheme=MINHASH_SCHEME
    ).permutations
    return permutations


def minhash(normalised: str) -> np.ndarray:
    """The MinHash signature (``NUM_PERM`` uint32 values) of a normalised text's shingles."""
    return minhashes([normalised])[0]


def minhashes(normalised: Sequence[str]) -> list[np.ndarray]:
    """:func:`minhash` of each normalised text: bit for bit what datasketch's
    ``MinHash(scheme="affine32").update_batch(shingles(text))`` gives (tests/unit/test_dedupe.py
    compares them on many texts), in a fraction of its time.

    The same computation as datasketch's: each shingle's hash is the first 4 bytes of its SHA-1
    (little-endian, ``datasketch.hashfunc.sha1_hash32``), pre-mixed with the MurmurHash3 32-bit
    finalizer, then ``a * h + b`` in uint32 for each permutation ``(a, b)``; a value of the
    signature is the smallest over the shingles. What is saved: the set of shingles (a repeated
    shingle does not change a minimum), ``struct.unpack`` and a Python int per shingle (the
    digests are joined and read as one array), and a ``MinHash`` object and the numpy calls per
    text (the texts of a batch go through the numpy steps together, in chunks of at most
    :data:`_MAX_ROWS` shingles).
    """
    out: list[np.ndarray] = []
    chunk: list[bytes] = []
    rows = 0
    for text in normalised:
        hashes = _shingle_hashes(text)
        if chunk and rows + len(hashes) // 4 > _MAX_ROWS:
            out += _min_hashes(chunk)
            chunk, rows = [], 0
        chunk.append(hashes)
        rows += len(hashes) // 4
    if chunk:
        out += _min_hashes(chunk)
    return out


_MAX_ROWS = 8192
"""Most shingles one numpy step of :func:`minhashes` takes (8192 x 128 x 4 bytes = 4 MiB)."""

_EMPTY = np.uint32(0xFFFFFFFF)
"""datasketch's value of a signature position no shingle reached."""

_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35))


def _shingle_hashes(normalised: str) -> bytes:
    """The 32-bit SHA-1 hashes of the text's shingles (:func:`shingles`, repeats included),
    joined: 4 little-endian bytes each. A shingle is a slice of the UTF-8 text (the words
    joined by one space are the text between the first word's start and the last one's end)."""
    words = " ".join(normalised.split()).encode("utf-8").split(b" ")
    if words == [b""]:
        return b""
    data = b" ".join(words)
    size = min(SHINGLE_WORDS, len(words))
    starts = list(accumulate([len(word) + 1 for word in words], initial=0))
    sha1 = hashlib.sha1
    return b"".join(
        [sha1(data[start : end - 1]).digest()[:4] for start, end in zip(starts, starts[size:])]
    )


def _min_hashes(texts: list[bytes]) -> list[np.ndarray]:
    """The signatures of texts given by their joined shingle hashes (one numpy pass)."""
    hv = np.frombuffer(b"".join(texts), dtype=_HASH_DTYPE).astype(np.uint32)
    s1, m1, s2, m2 = _FMIX32
    hv ^= hv >> s1
    hv *= m1
    hv ^= hv >> s2
    hv *= m2
    hv ^= hv >> s1
    a, b = _permutations()
    values = np.multiply.outer(a, hv)  # (NUM_PERM, shingles), wrapping in uint32 as datasketch
    values += b[:, None]
    out, start = [], 0
    for hashes in texts:
        end = start + len(hashes) // 4
        if end > start:
            out.append(values[:, start:end].min(axis=1).astype(_HASH_DTYPE))
        else:
            out.append(np.full(NUM_PERM, _EMPTY, dtype=_HASH_DTYPE))
        start = end
    return out


def band_keys(signature: np.ndarray) -> tuple[str, ...]:
    """LSH band keys ``"b07:<16 hex>"``: the band number and a hash of the band's rows."""
    data = signature.astype(_HASH_DTYPE).tobytes()
    step = ROWS * _HASH_DTYPE.itemsize
    blake2b = hashlib.blake2b
    return tuple(
        f"b{band:02d}:{blake2b(data[band * step : (band + 1) * step], digest_size=8).hexdigest()}"
        for band in range(BANDS)
    )


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures: the share of equal values."""
    return float(np.count_nonzero(a == b)) / len(a)


def min_shared_bands(threshold: float) -> int:
    """The fewest band keys a text shares with any text similar to it at ``threshold`` or
    more (as :func:`similarity` estimates it): it has at most ``NUM_PERM - k`` unequal values,
    ``k`` the fewest equal values reaching the threshold, and each spoils at most one band.
    So a stored text sharing fewer bands can never be a near duplicate, and the candidate
    search leaves it out (at 0.8: 103 equal values, at most 25 unequal, at least 7 bands)."""
    equal = next(k for k in range(NUM_PERM + 1) if k / NUM_PERM >= threshold)
    return max(1, BANDS - (NUM_PERM - equal))


LIST_MISS = 1e-6
"""Most probability that two texts at the threshold share none of their list keys (see the
module docstring: arbitration of concurrent claims)."""


def list_key_count(threshold: float) -> int:
    """How many list keys (first values of the signature) a text is listed under, so that two
    texts similar at ``threshold`` or more (as :func:`similarity` estimates it) share none of
    them with probability at most ``LIST_MISS``: 8 at 0.8."""
    equal = next(k for k in range(NUM_PERM + 1) if k / NUM_PERM >= threshold)
    differ = NUM_PERM - equal
    return next(
        n for n in range(1, NUM_PERM + 1) if comb(differ, n) / comb(NUM_PERM, n) <= LIST_MISS
    )


def list_keys(signature: np.ndarray, count: int) -> tuple[str, ...]:
    """The keys of a text's band lists: its first ``count`` signature values,
    ``"v005:<8 hex>"`` (position and value)."""
    return tuple(f"v{i:03d}:{value:08x}" for i, value in enumerate(signature[:count].tolist()))


@dataclass(frozen=True)
class Signature:
    """What dedupe computes for one text."""

    fingerprint: str
    minhash: np.ndarray
    bands: tuple[str, ...]
    """Empty (and ``minhash`` too) for a text under ``MIN_NEAR_WORDS`` words, which can only be
    an exact duplicate."""


def signature(text: str) -> Signature:
    """Fingerprint, MinHash and band keys of an article body."""
    return signatures([text])[0]


def signatures(texts: Sequence[str]) -> list[Signature]:
    """:func:`signature` of each article body, the MinHash of the batch in one
    :func:`minhashes` call."""
    normalised = [normalise(text) for text in texts]
    near = [i for i, n in enumerate(normalised) if len(n.split()) >= MIN_NEAR_WORDS]
    values = dict(zip(near, minhashes([normalised[i] for i in near]), strict=True))
    out = []
    for i, text in enumerate(normalised):
        if i in values:
            out.append(Signature(_sha1(text), values[i], band_keys(values[i])))
        else:
            out.append(Signature(_sha1(text), np.empty(0, _HASH_DTYPE), ()))
    return out


# --- the stage --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DedupeResult:
    """The verdict on one article: new (``record`` is None) or a duplicate (``record`` set).

    ``article`` always carries its ``fingerprint``; the index stage passes it to
    ``mark_indexed`` once the article is indexed.
    """

    article: CleanArticle
    record: DuplicateRecord | None = None
    redelivered: bool = False
    """The same article (same id, same text) was already indexed: a redelivery, which is not a
    duplicate of itself. The pipeline drops it (``reprocess`` runs process it again)."""

    @property
    def status(self) -> Literal["new", "duplicate", "redelivered"]:
        if self.redelivered:
            return "redelivered"
        return "new" if self.record is None else "duplicate"

    @property
    def is_new(self) -> bool:
        return self.record is None and not self.redelivered


@dataclass
class _Item:
    """An article of the batch being checked, with its signature."""

    article: CleanArticle
    sig: Signature

    def entry(self) -> FingerprintEntry:
        """The record to claim for this article."""
        return FingerprintEntry(
            fingerprint=self.sig.fingerprint,
            article_id=self.article.id,
            status=PENDING,
            bands=self.sig.bands,
            minhash=self.sig.minhash.tobytes(),
            source=self.article.source,
            title=self.article.title,
            first_seen=utcnow(),
        )


@dataclass
class _Verdict:
    """A provisional verdict, final once the batch's claims are answered.

    ``claim``: decided by the stored record of the article's own fingerprint;
    ``exact``/``near`` with ``of_fingerprint``: a duplicate of an earlier article of the batch,
    i.e. of whoever owns that fingerprint once claimed; ``near`` with ``of_article``: a near
    duplicate of a stored record.
    """

    item: _Item
    kind: Literal["claim", "exact", "near"]
    similarity: float = 1.0
    of_fingerprint: str | None = None
    of_article: str | None = None
    claimer: str | None = None
    """``exact`` in the batch: the id of the earlier article of the batch that claims the text."""


class Deduper:
    """Checks batches of clean articles against a :class:`FingerprintStore`."""

    def __init__(self, store: FingerprintStore, threshold: float = 0.8) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], not {threshold}")
        self.store = store
        self.threshold = threshold
        self.min_shared = min_shared_bands(threshold)
        self.list_count = list_key_count(threshold)

    def check(self, articles: list[CleanArticle]) -> list[DedupeResult]:
        """One result per article, in order. New articles are claimed in the store."""
        batch = _Batch()
        items = [
            _Item(article.model_copy(update={"fingerprint": sig.fingerprint}), sig)
            for article, sig in zip(articles, signatures([a.body for a in articles]), strict=True)
        ]
        found = self._candidates([list(item.sig.bands) for item in items])
        verdicts = [self._judge(item, batch, stored) for item, stored in zip(items, found)]
        claimed = self.store.claim([v.item.entry() for v in verdicts if v.kind == "claim"])
        self._arbitrate(verdicts, claimed)
        return [_result(v, claimed) for v in verdicts]

    def _arbitrate(self, verdicts: list[_Verdict], claimed: dict[str, FingerprintEntry]) -> None:
        """Settle the claims that won their fingerprint against near copies claimed at the
        same time by other workers (see the module docstring): a text that yields becomes a
        near duplicate, and its record (and so its in-batch duplicates) names the winner."""
        new = [
            v
            for v in verdicts
            if v.kind == "claim" and v.item.sig.bands and _is_new(v.item, claimed)
        ]
        if not new:
            return
        claims = [
            BandClaim(
                BandEntry(v.item.sig.fingerprint, v.item.article.id),
                list_keys(v.item.sig.minhash, self.list_count),
            )
            for v in new
        ]
        before, listed = self._listed(self.store.claim_bands(claims))
        owners: dict[str, str] = {}
        for verdict in new:
            fp = verdict.item.sig.fingerprint
            winner = self._yields_to(verdict.item, before.get(fp, {}), listed)
            if winner is not None:
                entry, score = winner
                verdict.kind, verdict.similarity, verdict.of_article = (
                    "near",
                    score,
                    entry.article_id,
                )
                claimed[fp] = replace(claimed[fp], article_id=entry.article_id)
                owners[fp] = entry.article_id
        self.store.reassign(owners)

    def _listed(self, before: BandsBefore) -> tuple[BandsBefore, dict[str, bytes]]:
        """``before`` without the texts whose record is gone, and the signatures of the texts
        it names (read from their records: band lists name texts, not signatures). Band lists
        outlive the records the dedupe window forgets, and a forgotten text is nobody's
        original. One lookup, only when some text stood before another in a list (near copies;
        rare)."""
        listed = {
            e.fingerprint for keys in before.values() for entries in keys.values() for e in entries
        }
        if not listed:
            return before, {}
        signatures = self.store.signatures(sorted(listed))
        if signatures.keys() >= listed:
            return before, signatures
        alive = {
            fp: {
                key: tuple(e for e in entries if e.fingerprint in signatures)
                for key, entries in keys.items()
            }
            for fp, keys in before.items()
        }
        return alive, signatures

    def _yields_to(
        self, item: _Item, before: dict[str, tuple[BandEntry, ...]], signatures: dict[str, bytes]
    ) -> tuple[BandEntry, float] | None:
        """The most similar near copy this text yields to, with the similarity, or None
        (``signatures``: of the texts the band lists name)."""
        own_id, own_fp = item.article.id, item.sig.fingerprint
        seen: dict[str, tuple[BandEntry, set[str]]] = {}  # fingerprint -> (entry, keys it led)
        for key, entries in before.items():
            for entry in entries:
                if entry.article_id != own_id and entry.fingerprint != own_fp:
                    seen.setdefault(entry.fingerprint, (entry, set()))[1].add(key)
        best: tuple[BandEntry, float] | None = None
        for fp, (entry, led) in seen.items():
            other = np.frombuffer(signatures[fp], _HASH_DTYPE)
            if len(other) != NUM_PERM:  # not a signature: not a near copy
                continue
            score = similarity(item.sig.minhash, other)
            if score < self.threshold:
                continue
            shared = set(list_keys(item.sig.minhash, self.list_count)) & set(
                list_keys(other, self.list_count)
            )
            if (led >= shared or fp < own_fp) and (best is None or score > best[1]):
                best = (entry, score)
        return best

    def _candidates(self, band_key_lists: list[list[str]]) -> list[list[FingerprintEntry]]:
        """The stored candidates of every text of the batch, in one round trip."""
        return self.store.candidates_many(band_key_lists, self.min_shared)

    def _judge(self, item: _Item, batch: _Batch, stored: list[FingerprintEntry]) -> _Verdict:
        """Provisional verdict on one article against the store (its candidates ``stored``)
        and the batch so far."""
        fp = item.sig.fingerprint
        if fp in batch.by_fingerprint:
            return _Verdict(
                item, "exact", of_fingerprint=fp, claimer=batch.by_fingerprint[fp].article.id
            )
        if not any(entry.fingerprint == fp for entry in stored):
            verdict = self._near(item, stored, batch)
            if verdict is not None:
                return verdict
        batch.add(item)
        return _Verdict(item, "claim")

    def _near(self, item: _Item, stored: list[FingerprintEntry], batch: _Batch) -> _Verdict | None:
        """Near-duplicate verdict against the most similar text of another article, if any
        reaches the threshold; stored texts win ties over texts of the batch."""
        own_id = item.article.id
        best: _Verdict | None = None
        for entry in stored:
            if entry.article_id != own_id:
                score = similarity(item.sig.minhash, np.frombuffer(entry.minhash, _HASH_DTYPE))
                if score >= self.threshold and (best is None or score > best.similarity):
                    best = _Verdict(item, "near", score, of_article=entry.article_id)
        for other in batch.sharing_bands(item):
            if other.article.id != own_id:
                score = similarity(item.sig.minhash, other.sig.minhash)
                if score >= self.threshold and (best is None or score > best.similarity):
                    best = _Verdict(item, "near", score, of_fingerprint=other.sig.fingerprint)
        return best


class _Batch:
    """The articles of the batch that will be claimed, by fingerprint and by band key."""

    def __init__(self) -> None:
        self.by_fingerprint: dict[str, _Item] = {}
        self._by_band: dict[str, list[_Item]] = {}

    def add(self, item: _Item) -> None:
        self.by_fingerprint[item.sig.fingerprint] = item
        for key in item.sig.bands:
            self._by_band.setdefault(key, []).append(item)

    def sharing_bands(self, item: _Item) -> list[_Item]:
        """Earlier articles of the batch sharing a band key with ``item``, each once."""
        found = {id(o): o for key in item.sig.bands for o in self._by_band.get(key, ())}
        return list(found.values())


def _is_new(item: _Item, claimed: dict[str, FingerprintEntry]) -> bool:
    """Whether the fingerprint claim made this article new (see :func:`_result`)."""
    stored = claimed[item.sig.fingerprint]
    return stored.article_id == item.article.id and stored.status != INDEXED


def _result(verdict: _Verdict, claimed: dict[str, FingerprintEntry]) -> DedupeResult:
    """Final result of a provisional verdict, given the records the claims returned."""
    article = verdict.item.article
    if verdict.kind == "claim":
        stored = claimed[verdict.item.sig.fingerprint]
        if stored.article_id == article.id:
            # our own record: pending means an earlier attempt did not finish (go on again),
            # indexed means this is a redelivery of an article already processed
            return DedupeResult(article, redelivered=stored.status == INDEXED)
        return DedupeResult(article, _record(article, stored.article_id, "exact", 1.0))
    original = verdict.of_article
    if verdict.of_fingerprint is not None:
        original = claimed[verdict.of_fingerprint].article_id
    if original == article.id:
        if verdict.kind == "exact" and verdict.claimer not in (None, article.id):
            # the text's record is this article's own (an earlier delivery claimed it) and the
            # earlier copy of the batch, under another id, lost to it: this one goes on
            assert verdict.of_fingerprint is not None, "an exact in-batch verdict names its text"
            stored = claimed[verdict.of_fingerprint]
            return DedupeResult(article, redelivered=stored.status == INDEXED)
        return DedupeResult(article, redelivered=True)  # the same message twice in one batch
    assert original is not None, "a near/exact verdict names its original"
    return DedupeResult(article, _record(article, original, verdict.kind, verdict.similarity))


def _record(article: CleanArticle, original: str, kind: str, score: float) -> DuplicateRecord:
    return DuplicateRecord(
        article_id=article.id,
        duplicate_of=original,
        kind=kind,
        similarity=round(score, 4),
        source=article.source,
        title=article.title,
    )
