"""The stories stage: every enriched article gets a ``story_id``; articles about the same story,
from any outlet, within a time window, share one.

Method (details and measurements: docs/stories.md):

- an article is a sparse unit vector of TF-IDF weighted words (title words count twice) and
  its canonical entities (weighted by mentions and by how rare their name's words are); IDF
  comes from a fixed table (``pipeline/data/idf.json``), so every worker weighs alike;
- a story is the sum of its articles' vectors (its centroid, pruned to its strongest features);
- candidates come from an inverted index over the stories' strongest features, probed with the
  article's strongest ones (a long posting list is read newest first, up to a cap), so the cost
  per article stays flat as stories accumulate;
- an article joins the most similar candidate (cosine) when the similarity reaches
  ``NEWS_STORY_THRESHOLD`` *and* they share a named entity (or the similarity is high), and
  their times fit: a dated article must lie within ``NEWS_STORY_WINDOW_HOURS`` of the story's
  dated articles; otherwise it founds a story whose id derives from its own id.

:class:`StoryIndex` is the in-memory index (plain Python, used by the benchmarks and tests);
:class:`StoryAssigner` puts it in front of Elasticsearch (``<prefix>-stories``) for several
workers: it syncs stories the other workers changed before each batch and writes changed
stories with optimistic concurrency (a conflict reloads the story and re-applies the batch's
articles), so no worker's additions are lost and a redelivered article keeps its story.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import re
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib.resources import files
from itertools import islice
from typing import Any, cast

from pipeline.ids import stable_hash
from schemas import EnrichedArticle

log = logging.getLogger(__name__)

ARTICLE_FEATURES = 48
"""strongest features kept per article"""
STORY_FEATURES = 96
"""strongest features kept per story centroid"""
PROBE_FEATURES = 12
"""article features used to look up candidate stories"""
POSTINGS_READ = 150
"""most stories read per probed feature (the most recently updated first)"""
CANDIDATES_SCORED = 40
"""candidates (those sharing the most probe weight) scored in full per article"""
ENTITY_BOOST = 1.0
TITLE_BOOST = 2.0
HIGH_SIMILARITY = 0.5
"""similarity that joins a story even without a shared named entity"""
TOP_LISTED = 20

_WORD = re.compile(r"[^\W\d_][\w'’-]*[^\W_]|[^\W\d_]{2}", re.UNICODE)
_STOPWORDS = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "although",
        "among",
        "and",
        "another",
        "any",
        "are",
        "around",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "can",
        "could",
        "did",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "either",
        "even",
        "ever",
        "every",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "however",
        "into",
        "its",
        "itself",
        "just",
        "last",
        "later",
        "least",
        "less",
        "like",
        "made",
        "make",
        "many",
        "may",
        "might",
        "more",
        "most",
        "much",
        "must",
        "near",
        "neither",
        "next",
        "nor",
        "not",
        "now",
        "off",
        "often",
        "once",
        "one",
        "only",
        "other",
        "others",
        "our",
        "out",
        "over",
        "own",
        "per",
        "said",
        "same",
        "says",
        "she",
        "should",
        "since",
        "some",
        "still",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "though",
        "three",
        "through",
        "thus",
        "too",
        "two",
        "under",
        "until",
        "upon",
        "very",
        "was",
        "were",
        "what",
        "when",
        "where",
        "whether",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "yet",
        "you",
        "your",
        "week",
        "weeks",
        "year",
        "years",
        "month",
        "months",
        "day",
        "days",
        "today",
        "yesterday",
        "tomorrow",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "new",
        "told",
        "say",
        "saying",
        "according",
        "reported",
        "report",
        "reports",
        "mln",
        "billion",
        "pct",
        "percent",
        "march",
        "april",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "january",
        "february",
    ]
)


# --- features --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _idf_table() -> tuple[int, dict[str, int]]:
    data = json.loads(files("pipeline").joinpath("data", "idf.json").read_text("utf-8"))
    return data["documents"], data["df"]


def idf(term: str) -> float:
    documents, df = _idf_table()
    return math.log((documents + 1) / (df.get(term, 0) + 1)) + 1.0


def terms(text: str) -> list[str]:
    """Lower-case content words (no stopwords, no numbers), a final plural 's' dropped."""
    out = []
    for word in _WORD.findall(text.casefold()):
        word = word.replace("’", "'").removesuffix("'s")
        if len(word) < 3 or word in _STOPWORDS:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def _prune(vector: dict[str, float], keep: int) -> dict[str, float]:
    if len(vector) > keep:
        vector = dict(sorted(vector.items(), key=lambda kv: (-kv[1], kv[0]))[:keep])
    return vector


def _unit(vector: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in vector.values())) or 1.0
    return {k: w / norm for k, w in vector.items()}


@dataclass
class ArticleFeatures:
    """What the stage needs of one article."""

    id: str
    title: str
    vector: dict[str, float]
    """unit vector: words and ``@entity-id`` features"""
    time: datetime | None
    """publication time, when known"""
    seen: datetime
    """publication time, else ingest time"""
    source: str | None = None
    entities: dict[str, tuple[str, str]] = field(default_factory=dict)
    """entity id -> (name, type)"""
    events: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, article: EnrichedArticle) -> ArticleFeatures:
        # a Counter (a missing word counts 0) that also takes float weights, hence the cast
        counts = cast(dict[str, float], Counter(terms(article.body)))
        for word in terms(article.title):
            counts[word] += TITLE_BOOST
        vector = {w: (1 + math.log(c)) * idf(w) for w, c in counts.items()}
        entities: dict[str, tuple[str, str]] = {}
        for entity in article.entities:
            words = terms(entity.name) or [entity.name.casefold()]
            rarity = max(idf(w) for w in words)
            vector["@" + entity.id] = (
                ENTITY_BOOST * (1 + math.log(max(entity.mentions, 1))) * rarity
            )
            entities[entity.id] = (entity.name, entity.type)
        return cls(
            id=article.id,
            title=article.title,
            vector=_unit(_prune(vector, ARTICLE_FEATURES)),
            time=_utc(article.published_at),
            seen=cast(datetime, _utc(article.published_at or article.ingested_at)),
            source=article.source,
            entities=entities,
            events=sorted({e.type for e in article.events}),
        )


def _utc(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


# --- stories ---------------------------------------------------------------------------------


def story_id(founding_article_id: str) -> str:
    """Deterministic: the same founding article always makes the same story."""
    return "story-" + stable_hash("story", founding_article_id)


@dataclass
class Story:
    id: str
    title: str
    first_seen: datetime
    last_seen: datetime
    dated_first: datetime | None = None
    dated_last: datetime | None = None
    article_ids: list[str] = field(default_factory=list)
    centroid: dict[str, float] = field(default_factory=dict)
    sources: Counter[str] = field(default_factory=Counter)
    entities: Counter[str] = field(default_factory=Counter)
    entity_info: dict[str, list[str]] = field(default_factory=dict)
    events: Counter[str] = field(default_factory=Counter)
    version: tuple[int, int] | None = None
    """(seq_no, primary_term) of the stored document this state was read from / written as"""

    _norm: float | None = field(default=None, repr=False, compare=False)

    @property
    def norm(self) -> float:
        if self._norm is None:
            self._norm = math.sqrt(sum(w * w for w in self.centroid.values())) or 1.0
        return self._norm

    def add(self, article: ArticleFeatures) -> None:
        if article.id in self.article_ids:
            return
        self.article_ids.append(article.id)
        for key, weight in article.vector.items():
            self.centroid[key] = self.centroid.get(key, 0.0) + weight
        self.centroid = _prune(self.centroid, STORY_FEATURES)
        self._norm = None
        self.first_seen = min(self.first_seen, article.seen)
        self.last_seen = max(self.last_seen, article.seen)
        if article.time is not None:
            self.dated_first = min(filter(None, (self.dated_first, article.time)))
            self.dated_last = max(filter(None, (self.dated_last, article.time)))
        if article.source:
            self.sources[article.source] += 1
        for entity_id, (name, kind) in article.entities.items():
            self.entities[entity_id] += 1
            self.entity_info[entity_id] = [name, kind]
        self.events.update(article.events)

    def similarity(self, article: ArticleFeatures) -> float:
        centroid = self.centroid
        dot = sum(w * centroid[k] for k, w in article.vector.items() if k in centroid)
        return dot / self.norm

    def shares_entity(self, article: ArticleFeatures) -> bool:
        return any(e in self.entities for e in article.entities)

    def fits_time(self, article: ArticleFeatures, window: timedelta) -> bool:
        """A dated article lies within ``window`` of the story's dated articles; an undated
        one (or an undated story) is not held to a time."""
        if article.time is None or self.dated_first is None:
            return True
        return self.dated_first - window <= article.time <= cast(datetime, self.dated_last) + window

    # --- Elasticsearch document ----------------------------------------------------------
    def document(self, now: datetime, writer: str | None = None) -> dict[str, Any]:
        """The story's document as written at ``now`` by ``writer`` (a story assigner's
        instance id: its own writes are left out of its syncs)."""
        top_entities = [
            {"id": e, "name": self.entity_info[e][0], "type": self.entity_info[e][1], "articles": n}
            for e, n in sorted(self.entities.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_LISTED]
        ]
        return {
            "id": self.id,
            "title": self.title,
            "@timestamp": self.first_seen.isoformat(),
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "updated_at": now.isoformat(),
            "writer": writer,
            "article_count": len(self.article_ids),
            "article_ids": self.article_ids,
            "sources": sorted(self.sources),
            "source_count": len(self.sources),
            "entities": top_entities,
            "entity_names": [e["name"] for e in top_entities],
            "event_types": [t for t, _ in self.events.most_common(TOP_LISTED)],
            "events": [{"type": t, "articles": n} for t, n in self.events.most_common(TOP_LISTED)],
            "state": {
                "centroid": self.centroid,
                "dated_first": self.dated_first.isoformat() if self.dated_first else None,
                "dated_last": self.dated_last.isoformat() if self.dated_last else None,
                "sources": dict(self.sources),
                "entities": dict(self.entities),
                "entity_info": self.entity_info,
                "events": dict(self.events),
            },
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any], version: tuple[int, int] | None = None) -> Story:
        state = doc.get("state") or {}
        parse = datetime.fromisoformat
        return cls(
            id=doc["id"],
            title=doc["title"],
            first_seen=parse(doc["first_seen"]),
            last_seen=parse(doc["last_seen"]),
            dated_first=parse(state["dated_first"]) if state.get("dated_first") else None,
            dated_last=parse(state["dated_last"]) if state.get("dated_last") else None,
            article_ids=list(doc.get("article_ids", [])),
            centroid=dict(state.get("centroid", {})),
            sources=Counter(state.get("sources", {})),
            entities=Counter(state.get("entities", {})),
            entity_info=dict(state.get("entity_info", {})),
            events=Counter(state.get("events", {})),
            version=version,
        )


class StoryIndex:
    """Stories in memory with an inverted index over their strongest features."""

    def __init__(self, *, threshold: float = 0.35, window: timedelta = timedelta(hours=120)):
        self.threshold = threshold
        self.window = window
        self.stories: OrderedDict[str, Story] = OrderedDict()  # least recently changed first
        self.by_article: dict[str, str] = {}
        self._postings: dict[str, OrderedDict[str, None]] = {}
        self._indexed: dict[str, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self.stories)

    def assign(self, article: ArticleFeatures) -> tuple[Story, bool]:
        """The story ``article`` joins (created when none fits); True when it is new."""
        known = self.by_article.get(article.id)
        if known in self.stories:
            return self.stories[cast(str, known)], False
        best, best_score = None, 0.0
        for story in self.candidates(article):
            if not story.fits_time(article, self.window):
                continue
            score = story.similarity(article)
            if score > best_score or (score == best_score and best and story.id < best.id):
                best, best_score = story, score
        if (
            best is not None
            and best_score >= self.threshold
            and (best_score >= HIGH_SIMILARITY or best.shares_entity(article))
        ):
            self.add(best, article)
            return best, False
        story = Story(
            id=story_id(article.id),
            title=article.title,
            first_seen=article.seen,
            last_seen=article.seen,
        )
        self.add(story, article)
        return story, True

    def candidates(self, article: ArticleFeatures) -> list[Story]:
        """Stories indexed under the article's strongest features, those sharing the most of
        their weight first, at most CANDIDATES_SCORED."""
        probes = sorted(article.vector.items(), key=lambda kv: (-kv[1], kv[0]))[:PROBE_FEATURES]
        shared: dict[str, float] = {}
        for key, weight in probes:
            postings = self._postings.get(key)
            if postings:
                for sid in islice(reversed(postings), POSTINGS_READ):
                    shared[sid] = shared.get(sid, 0.0) + weight
        if len(shared) > CANDIDATES_SCORED:
            return [
                self.stories[sid]
                for sid in heapq.nlargest(CANDIDATES_SCORED, shared, key=shared.__getitem__)
            ]
        return [self.stories[sid] for sid in shared]

    def add(self, story: Story, article: ArticleFeatures) -> None:
        story.add(article)
        self.put(story)
        self.by_article[article.id] = story.id

    def put(self, story: Story) -> None:
        """Insert or replace a story (and re-index its strongest features)."""
        self._unindex(story.id)
        self.stories[story.id] = story
        self.stories.move_to_end(story.id)
        keys = tuple(
            k
            for k, _ in sorted(story.centroid.items(), key=lambda kv: -kv[1])[: STORY_FEATURES // 2]
        )
        for key in keys:
            postings = self._postings.setdefault(key, OrderedDict())
            postings[story.id] = None
        self._indexed[story.id] = keys
        for aid in story.article_ids:
            self.by_article[aid] = story.id

    def _unindex(self, sid: str) -> None:
        for key in self._indexed.pop(sid, ()):
            postings = self._postings.get(key)
            if postings is not None:
                postings.pop(sid, None)
                if not postings:
                    del self._postings[key]

    def expire(self, before: datetime) -> int:
        """Forget stories last changed before ``before`` (kept in Elasticsearch); returns how
        many were forgotten."""
        gone = 0
        while self.stories:
            sid, story = next(iter(self.stories.items()))
            if story.last_seen >= before:
                break
            self._unindex(sid)
            del self.stories[sid]
            for aid in story.article_ids:
                self.by_article.pop(aid, None)
            gone += 1
        return gone


# --- the stage over Elasticsearch ------------------------------------------------------------


class StoryAssigner:
    """:class:`StoryIndex` shared by several workers through the ``<prefix>-stories`` index.

    ``es=None`` keeps everything in memory (benchmarks, tests without servers).
    """

    def __init__(
        self,
        es: Any = None,
        index: str | None = None,
        *,
        threshold: float = 0.35,
        window: timedelta = timedelta(hours=120),
        retries: int = 5,
        sync_overlap: timedelta = timedelta(seconds=5),
    ):
        self.es = es
        self.sync_overlap = sync_overlap
        """How far back each sync looks again: more than the stories index takes to make a
        write searchable (its refresh interval), so no other worker's change is missed."""
        self.index_name = index
        self.memory = StoryIndex(threshold=threshold, window=window)
        self.retries = retries
        self._synced_at: datetime | None = None
        self.writer = uuid.uuid4().hex
        """This assigner's id, written on its stories: a sync skips the stories it wrote last
        (it holds them at that version): most of what changed within the overlap."""

    def assign(self, articles: list[EnrichedArticle]) -> list[EnrichedArticle]:
        """Set ``story_id`` on every article (in place, and returned) and store the stories."""
        if not articles:
            return articles
        features = [ArticleFeatures.of(a) for a in articles]
        if self.es is not None:
            self._sync([f.id for f in features])
        changed: dict[str, list[ArticleFeatures]] = {}
        for article, feature in zip(articles, features):
            story, _ = self.memory.assign(feature)
            article.story_id = story.id
            changed.setdefault(story.id, []).append(feature)
        if self.es is not None:
            self._store(changed)
        newest = max(f.seen for f in features)
        self.memory.expire(newest - 4 * self.memory.window)
        return articles

    # --- Elasticsearch -----------------------------------------------------------------------
    def _sync(self, article_ids: list[str]) -> None:
        """Stories other workers changed since the last sync, and those already holding one of
        ``article_ids`` (a redelivered article keeps its story)."""
        now = datetime.now(UTC)
        clauses: list[dict[str, Any]] = [{"terms": {"article_ids": article_ids}}]
        if self._synced_at is None:  # a starting worker: the live stories (and those a
            horizon = (now - 2 * self.memory.window).isoformat()  # backfill touched lately)
            clauses.append({"range": {"last_seen": {"gte": horizon}}})
            clauses.append({"range": {"updated_at": {"gte": horizon}}})
        else:
            since = (self._synced_at - self.sync_overlap).isoformat()
            clauses.append(
                {
                    "bool": {
                        "filter": [{"range": {"updated_at": {"gte": since}}}],
                        # written last by this assigner: held in memory at that version (a
                        # write whose answer was lost meets a version conflict and is reread)
                        "must_not": [{"term": {"writer": self.writer}}],
                    }
                }
            )
        self._synced_at = now
        # versions first: a story's document is large to read, and a story may be held at
        # its version already
        stale = [
            hit
            for hit in self._search({"bool": {"should": clauses, "minimum_should_match": 1}})
            if self._stale(hit["_id"], (hit["_seq_no"], hit["_primary_term"]))
        ]
        for start in range(0, len(stale), 1000):
            wanted = [{"_index": h["_index"], "_id": h["_id"]} for h in stale[start : start + 1000]]
            for doc in self.es.mget(docs=wanted)["docs"]:  # real time: no older than the hit
                version = (doc.get("_seq_no", -1), doc.get("_primary_term", -1))
                if doc.get("found") and self._stale(doc["_id"], version):
                    self.memory.put(Story.from_document(doc["_source"], version))

    def _stale(self, story_id: str, version: tuple[int, int]) -> bool:
        """Whether the stored story at ``version`` is newer than the one in memory."""
        current = self.memory.stories.get(story_id)
        return current is None or current.version is None or current.version[0] < version[0]

    def _search(self, query: dict[str, Any], page: int = 1000) -> Iterable[dict[str, Any]]:
        """The ids and versions of the stories ``query`` finds (no documents)."""
        after = None
        while True:
            extra: dict[str, Any] = {"search_after": after} if after else {}
            result = self.es.search(
                index=self.index_name,
                query=query,
                size=page,
                sort=[{"updated_at": "asc"}, {"id": "asc"}],
                seq_no_primary_term=True,
                source=False,
                **extra,
            )
            hits = result["hits"]["hits"]
            yield from hits
            if len(hits) < page:
                return
            after = hits[-1]["sort"]

    def _store(self, changed: dict[str, list[ArticleFeatures]]) -> None:
        """Write changed stories, in one bulk request per round; a story another worker
        changed meanwhile (version conflict) is reloaded (one mget for all of them), this
        batch's articles are applied to it again, and it is written in the next round."""
        from pipeline.infra.es import ServerBusy, is_transient_item

        pending = dict(changed)
        for attempt in range(self.retries + 1):
            now = datetime.now(UTC)
            operations: list[dict[str, Any]] = []
            for sid in pending:
                story = self.memory.stories[sid]
                action: dict[str, Any] = {"_index": self.index_name, "_id": sid}
                if story.version is None:
                    operations += [{"create": action}, story.document(now, self.writer)]
                else:
                    action.update(if_seq_no=story.version[0], if_primary_term=story.version[1])
                    operations += [{"index": action}, story.document(now, self.writer)]
            items = self.es.bulk(operations=operations)["items"]
            conflicts: dict[str, list[ArticleFeatures]] = {}
            for sid, item in zip(pending, items, strict=True):
                result = next(iter(item.values()))
                if result["status"] in (200, 201):
                    self.memory.stories[sid].version = (result["_seq_no"], result["_primary_term"])
                elif result["status"] == 409:
                    conflicts[sid] = pending[sid]
                elif is_transient_item(result):
                    raise ServerBusy(f"story {sid}: {result.get('error')}")
                else:
                    raise StoryStoreError(f"story {sid}: {result.get('error')}")
            if not conflicts:
                return
            if attempt == self.retries:
                raise StoryStoreError(
                    f"stories {sorted(conflicts)} still changed by other workers after "
                    f"{self.retries + 1} attempts"
                )
            docs = self.es.mget(index=self.index_name, ids=list(conflicts))["docs"]
            for (sid, added), doc in zip(conflicts.items(), docs, strict=True):
                if doc.get("found"):
                    fresh = Story.from_document(
                        doc["_source"], (doc["_seq_no"], doc["_primary_term"])
                    )
                    for feature in added:
                        fresh.add(feature)
                    self.memory.put(fresh)
                else:  # deleted meanwhile (retention): written anew
                    self.memory.stories[sid].version = None
            pending = conflicts


class StoryStoreError(RuntimeError):
    """A story Elasticsearch refused to store (not a server fault)."""


def story_assigner(settings: Any, es: Any = None) -> StoryAssigner:
    """The assigner of these settings (``es=None``: in memory)."""
    return StoryAssigner(
        es,
        settings.index("stories"),
        threshold=settings.story_threshold,
        window=timedelta(hours=settings.story_window_hours),
        sync_overlap=timedelta(seconds=max(5.0, 2 * settings.state_refresh_s)),
    )


def build_idf_table(texts: Iterable[str], min_df: int = 3) -> dict[str, Any]:
    """The document-frequency table ``pipeline/data/idf.json`` is made of (see docs/stories.md):
    ``{"documents": N, "df": {term: documents containing it}}`` for terms in ``min_df`` or more."""
    df: Counter[str] = Counter()
    documents = 0
    for text in texts:
        documents += 1
        df.update(set(terms(text)))
    return {"documents": documents, "df": {t: n for t, n in sorted(df.items()) if n >= min_df}}


if (
    __name__ == "__main__"
):  # python -m pipeline.stages.stories CORPUS.jsonl > pipeline/data/idf.json
    import sys

    def _texts(path: str) -> Iterable[str]:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                doc = json.loads(line)
                yield f"{doc.get('title') or ''}\n{doc.get('body') or ''}"

    json.dump(
        build_idf_table(_texts(sys.argv[1])), sys.stdout, ensure_ascii=False, separators=(",", ":")
    )
