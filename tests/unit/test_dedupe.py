"""The dedupe stage over the in-memory store: exact and near duplicates, the five seeds,
redelivery semantics, batches, and signatures that do not depend on the process."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.stages.dedupe import (
    BANDS,
    NUM_PERM,
    Deduper,
    fingerprint,
    normalise,
    signature,
)
from pipeline.stages.dedupe_store import INDEXED, PENDING, InMemoryFingerprintStore
from schemas.models import CleanArticle

REPO = Path(__file__).resolve().parents[2]
SEEDS = sorted((REPO / "seeds").glob("*.txt"))


def article(article_id: str, body: str, source: str = "test") -> CleanArticle:
    return CleanArticle(
        id=article_id,
        source=source,
        title=f"title of {article_id}",
        body=body,
        language="en",
        ingested_at=datetime(2025, 6, 1, tzinfo=UTC),
    )


def seed_text(index: int) -> str:
    return SEEDS[index].read_text(encoding="utf-8")


def seeds() -> list[CleanArticle]:
    return [
        article(path.name[:3], path.read_text(encoding="utf-8"), f"outlet-{i}")
        for i, path in enumerate(SEEDS)
    ]


@pytest.fixture
def store() -> InMemoryFingerprintStore:
    return InMemoryFingerprintStore()


@pytest.fixture
def deduper(store: InMemoryFingerprintStore) -> Deduper:
    return Deduper(store, threshold=0.8)


def only(deduper: Deduper, a: CleanArticle):
    """Check one article on its own."""
    [result] = deduper.check([a])
    return result


def reformat(text: str) -> str:
    """Whitespace, boilerplate-like blank lines and punctuation changes, one sentence recased."""
    paragraphs = [p for p in text.split("\n") if p.strip()]
    text = "\n\n\n   \n".join("  " + p.replace(" ", "  ") + "\t" for p in paragraphs)
    text = text.replace(",", "").replace('"', "\u201c").replace("\u2019", "'")
    first_stop = text.index(". ")
    return text[:first_stop].upper() + text[first_stop:] + "\n\n"


def edit_words(text: str, share: float, runs: int, rng: random.Random) -> str:
    """Replace about ``share`` of the words, in ``runs`` contiguous places (as corrections and
    re-sends do), with made-up words."""
    words = text.split()
    per_run = max(1, round(len(words) * share / runs))
    starts = rng.sample(range(0, len(words) - per_run, per_run * 2), runs)
    for start in starts:
        for i in range(start, start + per_run):
            words[i] = f"edited{i}"
    return " ".join(words)


# --- normalisation and fingerprints ------------------------------------------------------------
def test_normalise_folds_case_punctuation_symbols_and_whitespace() -> None:
    text = "  The  \u201cEnvoy\u201d\u2014said:\n\tIt\u2019s \uff21\u00adOK! \u20ac5 #talks  "
    assert normalise(text) == "the envoy said it s aok 5 talks"


def test_normalise_keeps_a_text_of_only_symbols() -> None:
    assert normalise(" \u2764\ufe0f  !! ") != ""
    assert fingerprint("\u2764") != fingerprint("\u2605")


def test_fingerprint_is_sha1_hex_of_normalised_text() -> None:
    assert re.fullmatch(r"[0-9a-f]{40}", fingerprint("Hello, world"))
    assert fingerprint("Hello, world") == fingerprint("hello   WORLD!")


def test_signature_has_one_key_per_band() -> None:
    sig = signature(seed_text(0))
    assert len(sig.minhash) == NUM_PERM
    assert len(sig.bands) == BANDS == len(set(sig.bands))
    assert all(re.fullmatch(r"b\d\d:[0-9a-f]{16}", key) for key in sig.bands)


# --- the seeds ----------------------------------------------------------------------------------
def test_the_five_seeds_are_distinct(deduper: Deduper, store: InMemoryFingerprintStore) -> None:
    results = deduper.check(seeds())
    assert [r.status for r in results] == ["new"] * 5
    assert len(store) == 5


def test_the_five_seeds_are_distinct_one_by_one(deduper: Deduper) -> None:
    assert [only(deduper, a).status for a in seeds()] == ["new"] * 5


@pytest.mark.parametrize("index", range(5))
def test_a_seed_resent_under_another_id_is_an_exact_duplicate(deduper: Deduper, index: int) -> None:
    deduper.check(seeds())
    result = only(deduper, article("copy", seed_text(index)))
    assert result.record is not None
    assert (result.record.duplicate_of, result.record.kind) == (SEEDS[index].name[:3], "exact")
    assert result.record.similarity == 1.0
    assert result.article.fingerprint == fingerprint(seed_text(index))


@pytest.mark.parametrize("index", range(5))
def test_whitespace_boilerplate_and_punctuation_changes_are_duplicates(
    deduper: Deduper, index: int
) -> None:
    deduper.check(seeds())
    result = only(deduper, article("reformatted", reformat(seed_text(index))))
    assert result.status == "duplicate"
    assert result.record.duplicate_of == SEEDS[index].name[:3]


@pytest.mark.parametrize("index", range(5))
def test_five_percent_of_words_edited_is_a_near_duplicate(deduper: Deduper, index: int) -> None:
    deduper.check(seeds())
    edited = edit_words(seed_text(index), share=0.05, runs=3, rng=random.Random(index))
    result = only(deduper, article("edited", edited))
    assert result.record is not None
    assert (result.record.duplicate_of, result.record.kind) == (SEEDS[index].name[:3], "near")
    assert 0.8 <= result.record.similarity < 1.0


def test_heavily_edited_text_is_new(deduper: Deduper) -> None:
    deduper.check(seeds())
    edited = edit_words(seed_text(0), share=0.3, runs=10, rng=random.Random(1))
    assert only(deduper, article("rewritten", edited)).status == "new"


def test_short_templated_texts_are_compared_exactly_only(deduper: Deduper) -> None:
    notice = "Qtly div 15 cts vs 15 cts prior Pay April 30 Record April {}"
    results = deduper.check(
        [
            article("bic", notice.format(15)),
            article("varlen", notice.format(14)),
            article("bic2", notice.format(15)),
        ]
    )
    assert [r.status for r in results] == ["new", "new", "duplicate"]
    assert signature(notice.format(15)).bands == ()


def test_another_article_of_the_same_story_is_not_a_duplicate(deduper: Deduper) -> None:
    deduper.check(seeds()[:4])
    assert only(deduper, article("004", seed_text(4))).status == "new"


# --- at-least-once delivery --------------------------------------------------------------------
def test_redelivery_while_pending_is_new_again(
    deduper: Deduper, store: InMemoryFingerprintStore
) -> None:
    first = only(deduper, article("a1", seed_text(0)))
    again = only(deduper, article("a1", seed_text(0)))
    assert first.is_new and again.is_new
    assert store.get(first.article.fingerprint).status == PENDING


def test_redelivery_after_indexing_is_not_a_duplicate_of_itself(
    deduper: Deduper, store: InMemoryFingerprintStore
) -> None:
    first = only(deduper, article("a1", seed_text(0)))
    store.mark_indexed([first.article.fingerprint])
    assert store.get(first.article.fingerprint).status == INDEXED
    again = only(deduper, article("a1", seed_text(0)))
    assert again.record is None and again.redelivered and again.status == "redelivered"
    assert not again.is_new


def test_the_same_message_twice_in_one_batch_is_one_article(deduper: Deduper) -> None:
    results = deduper.check([article("a1", seed_text(0)), article("a1", seed_text(0))])
    assert [r.status for r in results] == ["new", "redelivered"]
    assert all(r.record is None for r in results)


def test_no_duplicate_record_ever_names_itself(deduper: Deduper, store) -> None:
    batch = [article(f"x{i % 3}", seed_text(i % 3)) for i in range(9)]
    for _ in range(2):
        results = deduper.check(batch)
        store.mark_indexed([r.article.fingerprint for r in results if r.is_new])
        assert all(r.record.duplicate_of != r.record.article_id for r in results if r.record)


def test_a_corrected_version_under_the_same_id_is_new(deduper: Deduper) -> None:
    only(deduper, article("a1", seed_text(1)))
    corrected = edit_words(seed_text(1), share=0.03, runs=2, rng=random.Random(7))
    assert only(deduper, article("a1", corrected)).is_new


def test_a_near_duplicate_is_not_stored(deduper: Deduper, store: InMemoryFingerprintStore) -> None:
    only(deduper, article("a1", seed_text(2)))
    edited = edit_words(seed_text(2), share=0.03, runs=2, rng=random.Random(3))
    assert only(deduper, article("a2", edited)).record.kind == "near"
    assert len(store) == 1
    assert only(deduper, article("a3", edited)).record.duplicate_of == "a1"


# --- batches ------------------------------------------------------------------------------------
def test_the_first_article_of_a_batch_wins(deduper: Deduper) -> None:
    edited = edit_words(seed_text(3), share=0.04, runs=2, rng=random.Random(5))
    results = deduper.check(
        [
            article("x1", seed_text(3)),
            article("x2", seed_text(3)),
            article("x3", edited),
            article("y1", seed_text(4)),
            article("x1", seed_text(3)),
        ]
    )
    assert [r.status for r in results] == ["new", "duplicate", "duplicate", "new", "redelivered"]
    assert [(r.record.duplicate_of, r.record.kind) for r in results if r.record] == [
        ("x1", "exact"),
        ("x1", "near"),
    ]


def test_in_batch_duplicates_point_to_the_stored_first_copy(deduper: Deduper) -> None:
    only(deduper, article("first", seed_text(0)))
    edited = edit_words(seed_text(0), share=0.03, runs=2, rng=random.Random(2))
    results = deduper.check(
        [article("c1", seed_text(0)), article("c2", seed_text(0)), article("c3", edited)]
    )
    assert [(r.record.duplicate_of, r.record.kind) for r in results] == [
        ("first", "exact"),
        ("first", "exact"),
        ("first", "near"),
    ]


def test_every_result_carries_the_fingerprint(deduper: Deduper) -> None:
    results = deduper.check([article("a", seed_text(0)), article("b", seed_text(0))])
    assert [r.article.fingerprint for r in results] == [fingerprint(seed_text(0))] * 2


def test_an_empty_batch_gives_nothing(deduper: Deduper) -> None:
    assert deduper.check([]) == []


# --- stability ----------------------------------------------------------------------------------
def test_signatures_agree_across_deduper_instances() -> None:
    one, two = Deduper(InMemoryFingerprintStore()), Deduper(InMemoryFingerprintStore())
    a = one.check([article("a", seed_text(2))])[0].article
    b = two.check([article("a", seed_text(2))])[0].article
    assert a.fingerprint == b.fingerprint
    assert signature(seed_text(2)).bands == signature(seed_text(2)).bands


def test_signatures_agree_across_processes() -> None:
    """A fresh interpreter (another hash seed) computes the same band keys and values."""
    code = (
        "import json, sys; from pipeline.stages.dedupe import signature;"
        "s = signature(sys.stdin.read());"
        "print(json.dumps([s.fingerprint, list(s.bands), s.minhash.tolist()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=seed_text(1),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout
    here = signature(seed_text(1))
    assert json.loads(out) == [here.fingerprint, list(here.bands), here.minhash.tolist()]


def test_signature_values_are_pinned() -> None:
    """Known values: a change here means the dedupe state must be rebuilt."""
    sig = signature(PINNED_TEXT)
    assert sig.fingerprint == PINNED_FINGERPRINT
    assert sig.minhash[:4].tolist() == PINNED_VALUES
    assert sig.bands[0] == PINNED_BAND


PINNED_TEXT = (
    "The quick brown fox jumps over the lazy dog near the river bank, "
    "while the farmer watches from the old wooden gate at dawn."
)
PINNED_FINGERPRINT = "cbfb22a7a56d6f15011b95c573bf41a7ca23c673"
PINNED_VALUES = [525945524, 43808967, 134496638, 269171523]
PINNED_BAND = "b00:ffe84750d7c63371"


def test_redelivered_owner_after_its_copy_in_one_batch_goes_on(deduper: Deduper) -> None:
    """A worker claimed "a" and died before passing it on; the redelivery arrives in one batch
    after "b", an exact copy under another id: "b" is the duplicate, "a" still goes on."""
    text = seed_text(0)
    assert only(deduper, article("a", text)).is_new  # claimed, pending
    copy, owner = deduper.check([article("b", text), article("a", text)])
    assert (copy.record.duplicate_of, copy.record.kind) == ("a", "exact")
    assert owner.is_new and owner.record is None and not owner.redelivered
    again = deduper.check([article("a", text), article("a", text)])  # same message twice
    assert again[0].is_new and again[1].redelivered


def test_candidates_many_answers_as_one_search_per_text(
    store: InMemoryFingerprintStore, deduper: Deduper
) -> None:
    deduper.check(seeds())
    keys = [list(signature(seed_text(i)).bands) for i in range(3)] + [[]]
    assert store.candidates_many(keys) == [store.candidates(k) for k in keys[:3]] + [[]]


# --- the MinHash against datasketch -------------------------------------------------------------
def datasketch_minhash(normalised: str):
    """The signature as datasketch computes it (how dedupe computed it before its own code)."""
    from datasketch import MinHash

    from pipeline.stages.dedupe import MINHASH_SCHEME, MINHASH_SEED, shingles

    sketch = MinHash(num_perm=NUM_PERM, seed=MINHASH_SEED, scheme=MINHASH_SCHEME)
    sketch.update_batch(shingles(normalised))
    return sketch.hashvalues.astype("<u4")


def reference_band_keys(values) -> tuple[str, ...]:
    """The band keys as dedupe computed them before (one ``tobytes`` per band)."""
    import hashlib

    from pipeline.stages.dedupe import ROWS

    rows = values.astype("<u4").reshape(BANDS, ROWS)
    return tuple(
        f"b{band:02d}:{hashlib.blake2b(rows[band].tobytes(), digest_size=8).hexdigest()}"
        for band in range(BANDS)
    )


def random_texts(count: int, seed: int) -> list[str]:
    """Texts of 0 to 600 words drawn from a small vocabulary (so shingles repeat), with
    accents, CJK, digits and punctuation; some near copies of each other."""
    rng = random.Random(seed)
    vocabulary = [
        "the",
        "a",
        "of",
        "bank",
        "said",
        "rates",
        "rose",
        "fell",
        "1,000",
        "1000",
        "Zürich",
        "café",
        "Ελλάδα",
        "東京",
        "—",
        "«quoted»",
        "don't",
        "U.S.",
        "e-mail",
        "12.5%",
        "profit",
        "loss",
        "shr",
        "cts",
        "vs",
        "net",
        "revs",
        "year",
        "quarter",
    ]
    texts = []
    for i in range(count):
        if texts and i % 5 == 0:
            words = rng.choice(texts).split()
            for _ in range(rng.randint(1, 4)):
                if words:
                    words[rng.randrange(len(words))] = rng.choice(vocabulary)
        else:
            words = [
                rng.choice(vocabulary) for _ in range(rng.choice([0, 1, 3, 5, 6, 25, 140, 600]))
            ]
        texts.append(" ".join(words))
    return texts


def test_minhash_is_bit_identical_to_datasketch() -> None:
    """dedupe's own MinHash gives datasketch's values bit for bit (stored band keys and
    signatures depend on them), text by text and for a whole batch at once."""
    from pipeline.stages.dedupe import band_keys, minhash, minhashes

    texts = [normalise(t) for t in random_texts(400, seed=8)]
    texts += [normalise(path.read_text(encoding="utf-8")) for path in SEEDS]
    texts += ["", "one", "two words", " ".join(f"w{i}" for i in range(20_000))]  # > one chunk
    expected = [datasketch_minhash(t) for t in texts]
    batch = minhashes(texts)
    assert len(batch) == len(texts)
    for text, want, got in zip(texts, expected, batch, strict=True):
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), text[:80]
        assert band_keys(got) == band_keys(want) == reference_band_keys(want)
    for text, want in zip(texts[:50], expected[:50], strict=True):
        assert minhash(text).tobytes() == want.tobytes()


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.85, 0.9, 1.0])
def test_min_shared_bands_is_the_tight_bound(threshold: float) -> None:
    """A signature with m values changed, each in another band, shares BANDS - m band keys:
    the most changes that still reach the threshold leave exactly ``min_shared_bands`` (7 at
    0.8); a text sharing fewer can never be a near duplicate."""
    import numpy as np

    from pipeline.stages.dedupe import ROWS, band_keys, min_shared_bands, similarity

    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**32, NUM_PERM, dtype=np.uint32)
    reaching = []
    for changed in range(BANDS + 1):
        other = base.copy()
        other[[band * ROWS for band in range(changed)]] ^= np.uint32(1)  # one value per band
        shared = len(set(band_keys(base)) & set(band_keys(other)))
        assert shared == BANDS - changed
        if similarity(base, other) >= threshold:
            reaching.append(shared)
    assert max(1, min(reaching)) == min_shared_bands(threshold)  # at least 1 band: a candidate


@pytest.mark.parametrize(("threshold", "count"), [(0.5, 18), (0.8, 8), (0.9, 6), (1.0, 1)])
def test_list_keys_are_the_first_signature_values(threshold: float, count: int) -> None:
    """A text is listed under its first ``list_key_count`` values; two signatures at the
    threshold whose differing values avoid one of those positions share its key, and only
    such positions give shared keys (a sampled check of the bound: over many random sets of
    the most differing values the threshold allows, the share of pairs with no list key in
    common stays far below 1 in 10,000)."""
    import numpy as np

    from pipeline.stages.dedupe import list_key_count, list_keys, similarity

    assert list_key_count(threshold) == count
    rng = np.random.default_rng(5)
    base = rng.integers(0, 2**32, NUM_PERM, dtype=np.uint32)
    keys = list_keys(base, count)
    assert len(keys) == count and all(re.fullmatch(r"v\d{3}:[0-9a-f]{8}", k) for k in keys)
    differ = NUM_PERM - next(k for k in range(NUM_PERM + 1) if k / NUM_PERM >= threshold)
    none_shared = 0
    for _ in range(10_000):
        other = base.copy()
        positions = rng.choice(NUM_PERM, differ, replace=False)
        other[positions] ^= np.uint32(1)
        assert similarity(base, other) >= threshold
        shared = set(keys) & set(list_keys(other, count))
        assert shared == {k for i, k in enumerate(keys) if i not in set(positions.tolist())}
        none_shared += not shared
    assert none_shared <= 1


def test_candidates_leave_out_texts_sharing_too_few_bands(store: InMemoryFingerprintStore) -> None:
    deduper = Deduper(store)
    deduper.check(seeds())
    keys = list(signature(seed_text(0)).bands)
    few = keys[:3] + [f"b{band:02d}:{'0' * 16}" for band in range(3, BANDS)]
    assert [e.article_id for e in store.candidates(few)] == [SEEDS[0].name[:3]]
    assert store.candidates(few, min_shared=4) == []
    assert store.candidates(keys, min_shared=BANDS)[0].article_id == SEEDS[0].name[:3]
