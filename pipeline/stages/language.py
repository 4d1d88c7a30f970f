"""Language identification with lingua, restricted to common news languages.

The detector is built once per process, on first use. Choice, measured on Reuters bodies:

- low accuracy mode, the 36 :data:`NEWS_LANGUAGES`: +49 MiB RSS, 0.3 s to build, ~2 ms a text;
- low accuracy mode, all 75 languages: +77 MiB, half as fast, and more ways to be wrong;
- high accuracy mode: +0.9 GiB (36 languages) to +1.2 GiB (75) preloaded, ~0.6 GiB loaded
  lazily, ~17 ms a text; within 2% of the same answers on article-length text.

Low accuracy mode (trigrams only) is right on 100% of 400-char English snippets, 99% at 200,
92% at 50 and 74% at 30 chars, so only the first :data:`MAX_CHARS` characters are examined and
texts with fewer than :data:`MIN_LETTERS` letters are "und".

Obviously English text skips lingua (:func:`_obviously_english`): a sample whose letters are
all ASCII and of whose words at least :data:`ENGLISH_MARKER_SHARE` (and at least
:data:`ENGLISH_MARKER_MIN`) are :data:`ENGLISH_MARKERS`, function words no other news language
uses, is "en" without asking lingua. Lingua costs ~1-2.5 ms of the GIL per article sample, the
check ~0.03 ms; on Reuters articles it answers for ~3 in 4 and agrees with lingua on every one
(docs/performance.md, "What changed for speed"); the others (tables of figures, non-English or
accented text) go to lingua as before.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from lingua import IsoCode639_1, IsoCode639_3, Language, LanguageDetector, LanguageDetectorBuilder

UNDETERMINED = "und"

NEWS_LANGUAGES = [
    "en",
    "de",
    "fr",
    "es",
    "it",
    "pt",
    "nl",
    "ru",
    "uk",
    "pl",
    "tr",
    "ar",
    "zh",
    "ja",
    "ko",
    "sv",
    "da",
    "nb",
    "fi",
    "cs",
    "sk",
    "hu",
    "ro",
    "bg",
    "el",
    "he",
    "fa",
    "hi",
    "id",
    "vi",
    "hr",
    "sr",
    "sl",
    "lt",
    "lv",
    "et",
]
"""ISO 639-1 codes the detector chooses among."""

MAX_CHARS = 500
"""Only the start of a text is examined: more text does not change the answer, it costs time."""

MIN_LETTERS = 40
"""Texts with fewer letters are "und" (lingua took "Putin met Zelensky in Istanbul." for Slovak).
A Chinese, Japanese or Korean character counts as four: each carries about a word."""

ENGLISH_MARKERS = frozenset(
    [
        "the",
        "and",
        "that",
        "with",
        "from",
        "which",
        "would",
        "could",
        "should",
        "their",
        "there",
        "they",
        "them",
        "than",
        "what",
        "when",
        "where",
        "who",
        "this",
        "these",
        "those",
        "been",
        "were",
        "has",
        "its",
        "into",
        "about",
        "after",
        "said",
        "says",
        "not",
        "but",
        "while",
        "because",
        "other",
        "such",
    ]
)
"""English function words that are not (common) words of the other :data:`NEWS_LANGUAGES`
(so not "to", "in", "a", "on", "is", "was", "for", "at", "by", "will", "of", "also"...)."""

ENGLISH_MARKER_SHARE = 0.1
"""Share of a sample's words that must be :data:`ENGLISH_MARKERS` for it to be obviously
English (a Reuters story: 0.1-0.25; a table of figures or a foreign text: ~0)."""

ENGLISH_MARKER_MIN = 5
"""And at least this many marker words in the sample."""

_LETTER = re.compile(r"[^\W\d_]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_CODE_SPLIT = re.compile(r"[-_]")
_NON_ASCII_LETTER = re.compile(r"[^\W\d_a-zA-Z]")
_ASCII_WORD = re.compile(r"[a-z]+")

_detector: LanguageDetector | None = None
_lock = threading.Lock()


def _build_detector() -> LanguageDetector:
    """The lingua detector over NEWS_LANGUAGES, low accuracy mode, models loaded up front."""
    codes = [getattr(IsoCode639_1, code.upper()) for code in NEWS_LANGUAGES]
    return (
        LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
        .with_low_accuracy_mode()
        .with_preloaded_language_models()
        .build()
    )


def get_detector() -> LanguageDetector:
    """The process-wide detector, built on first call (thread-safe)."""
    global _detector
    if _detector is None:
        with _lock:
            if _detector is None:
                _detector = _build_detector()
    return _detector


def detect_language(text: str) -> str:
    """ISO 639-1 code of the language ``text`` is written in, or ``"und"``."""
    return detect_languages([text])[0]


def detect_languages(texts: Sequence[str]) -> list[str]:
    """:func:`detect_language` of each text, in order: one call for a batch.

    A plain loop over ``detect_language_of``, not lingua's ``detect_languages_in_parallel_of``
    (measured on the 2-core machine: docs/performance.md, "What changed for speed"): the
    parallel call costs the same CPU per text, is no faster when the other core is busy (as it
    is in a worker, with the enrich agent's NER), and holds the GIL for the whole call, so the
    worker's other agents and its event loop stop for the whole batch; between two
    ``detect_language_of`` calls the other threads get their turn.
    """
    detector = get_detector()
    languages = []
    for text in texts:
        sample = text[:MAX_CHARS]
        if not _enough_letters(sample):
            languages.append(UNDETERMINED)
        elif _obviously_english(sample):
            languages.append("en")
        else:
            language = detector.detect_language_of(sample)
            languages.append(_iso_639_1(language) if language is not None else UNDETERMINED)
    return languages


def _obviously_english(sample: str) -> bool:
    """All letters ASCII, and enough :data:`ENGLISH_MARKERS` among the words (see the module
    docstring): lingua's answer would be "en", at a fraction of its cost."""
    if not sample.isascii() and _NON_ASCII_LETTER.search(sample):
        return False
    words = _ASCII_WORD.findall(sample.lower())
    hits = sum(1 for word in words if word in ENGLISH_MARKERS)
    return hits >= ENGLISH_MARKER_MIN and hits >= ENGLISH_MARKER_SHARE * len(words)


def _enough_letters(sample: str) -> bool:
    """At least :data:`MIN_LETTERS` letters (a CJK character counts as four)."""
    return len(_LETTER.findall(sample)) + 3 * len(_CJK.findall(sample)) >= MIN_LETTERS


def normalise_language_code(code: str | None) -> str | None:
    """A producer's language tag as a lowercase ISO 639-1 code, or None when not recognised.

    Accepts "en", "EN", "en-US", "en_GB", and ISO 639-3 codes lingua knows ("eng", "deu").
    """
    if not code:
        return None
    primary = _CODE_SPLIT.split(code.strip(), maxsplit=1)[0].lower()
    if len(primary) == 2 and primary.isalpha():
        return primary
    if len(primary) == 3 and primary.isalpha():
        iso3 = getattr(IsoCode639_3, primary.upper(), None)
        if iso3 is not None:
            return _iso_639_1(Language.from_iso_code_639_3(iso3))
    return None


def _iso_639_1(language: Language) -> str:
    return language.iso_code_639_1.name.lower()
