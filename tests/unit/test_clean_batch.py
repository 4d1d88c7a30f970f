"""The clean stage per batch: ``clean_many`` (one language detection call) gives exactly what
``clean`` gives article by article, and the stream's clean step uses it once per batch."""

from __future__ import annotations

import json
import re
from itertools import islice
from pathlib import Path

import pytest

from pipeline.settings import Settings
from pipeline.stages import clean as clean_module
from pipeline.stages import language
from pipeline.stages.clean import CleanError, clean, clean_many
from pipeline.stages.dedupe import Deduper
from pipeline.stages.dedupe_store import InMemoryFingerprintStore
from pipeline.stages.language import detect_language, detect_languages
from pipeline.stream.process import InMessage, Pipeline
from schemas.models import RawArticle

ROOT = Path(__file__).resolve().parents[2]

TEXTS = {
    "en": "Russia has proposed a new round of peace talks with Ukraine to take place in "
    "Istanbul next week, officials in Moscow said on Monday.",
    "de": "Russland hat eine neue Runde von Friedensgesprächen mit der Ukraine in Istanbul "
    "vorgeschlagen, teilten Beamte in Moskau am Montag mit.",
    "fr": "Accueil | Monde\nLa Russie propose un nouveau cycle de pourparlers à Istanbul\n"
    "PARIS, 29 mai (AFP) - La Russie a proposé lundi un nouveau cycle de négociations.\n"
    "Les discussions doivent commencer la semaine prochaine.",
    "ru": "Россия предложила провести новый раунд мирных переговоров с Украиной в Стамбуле "
    "на следующей неделе, заявили в Москве.",
    "zh": "俄罗斯提议下周一在伊斯坦布尔与乌克兰举行新一轮和平谈判，乌克兰方面表示需要先看到书面方案。",
    "zh_short": "俄罗斯提议在伊斯坦布尔举行新一轮和谈。",
    "short": "Putin met Zelensky.",  # too few letters: "und"
    "numbers": "12,345 67.8 -- 9,999 1,000.5",
}


def raws() -> list[RawArticle]:
    """A mixed batch: detected and given languages (several spellings), short texts, seeds,
    and articles that cannot be cleaned, in between the others."""
    items = [RawArticle(body=text) for text in TEXTS.values()]
    items += [
        RawArticle(body=TEXTS["de"] + " Ende.", language="EN-gb"),  # given wins over detected
        RawArticle(body=TEXTS["en"] + " More.", language="deu"),  # ISO 639-3
        RawArticle(body=TEXTS["short"] + " Ok.", language="fr"),
        RawArticle(body=TEXTS["en"], language="not a code"),  # not recognised: detected; a copy
        RawArticle(body="x" * 600),  # over the limit given below
        RawArticle(body="\x00\x01\x02\x03 binary"),  # binary garbage
        RawArticle(body="Advertisement\nShare"),  # empty after cleaning
        RawArticle(body=TEXTS["fr"], title="Pourparlers à Istanbul"),
    ]
    items += [RawArticle(body=path.read_text("utf-8")) for path in sorted(ROOT.glob("seeds/*.txt"))]
    return items


def single(raw: RawArticle, limit: int) -> object:
    try:
        return clean(raw, max_body_chars=limit)
    except Exception as exc:
        return exc


def test_clean_many_gives_exactly_the_single_article_results():
    items = raws()
    limit = max(len(r.body) for r in items if not r.body.startswith("x")) + 1
    batch = clean_many(items, max_body_chars=limit)
    assert len(batch) == len(items)
    for raw, got in zip(items, batch, strict=True):
        want = single(raw, limit)
        if isinstance(want, Exception):
            assert type(got) is type(want) and str(got) == str(want)
        else:
            assert got == want
    languages = [a.language for a in batch if not isinstance(a, Exception)]
    # the set covers what it claims to: detected, given and undetermined languages
    assert {"en", "de", "fr", "ru", "zh", "und"} <= set(languages)
    assert sum(isinstance(a, CleanError) for a in batch) == 3


def test_clean_many_detects_languages_in_one_call(monkeypatch):
    calls = []

    def counting(texts):
        calls.append(list(texts))
        return detect_languages(texts)

    monkeypatch.setattr(clean_module, "detect_languages", counting)
    items = raws()
    clean_many(items, max_body_chars=100_000)
    assert len(calls) == 1
    # only the articles without a usable given language are detected
    given = sum(1 for r in items if r.language and r.language != "not a code")
    assert len(calls[0]) == len(items) - given - 3  # 3 cannot be cleaned


def test_clean_many_of_nothing():
    assert clean_many([]) == []


@pytest.mark.parametrize("text", [*TEXTS.values(), "", "   ", "x" * 2000])
def test_detect_languages_equals_detect_language(text):
    texts = [text, TEXTS["en"], text]
    assert detect_languages(texts) == [detect_language(t) for t in texts]
    assert detect_languages([]) == []


def test_short_texts_stay_undetermined_in_a_batch():
    assert detect_languages([TEXTS["short"], TEXTS["numbers"], TEXTS["zh_short"]]) == [
        "und",
        "und",
        "zh",
    ]


def message(raw: RawArticle, offset: int) -> InMessage:
    return InMessage(value=raw.model_dump_json().encode(), topic="raw", offset=offset)


def test_clean_step_calls_language_detection_once_per_batch(monkeypatch):
    calls = []
    real = language.get_detector()

    class CountingDetector:
        def detect_language_of(self, text):
            return real.detect_language_of(text)

        def detect_languages_in_parallel_of(self, texts):  # pragma: no cover - must not be used
            raise AssertionError("the parallel mode holds the GIL for the whole batch")

    def counting_detector():
        calls.append(1)
        return CountingDetector()

    monkeypatch.setattr(language, "get_detector", counting_detector)
    items = raws()
    pipeline = Pipeline(Settings(max_body_chars=1000), deduper=Deduper(InMemoryFingerprintStore()))
    result = pipeline.clean_and_dedupe([message(r, i) for i, r in enumerate(items)])
    assert len(calls) == 1
    expected = [single(r, 1000) for r in items]
    dead_offsets = [i for i, e in enumerate(expected) if isinstance(e, Exception)]
    assert sorted(d.offset for d in result.dead if d.stage == "clean") == dead_offsets
    languages = {e.id: e.language for e in expected if not isinstance(e, Exception)}
    assert {a.id: a.language for a in result.passed} == {
        a.id: languages[a.id] for a in result.passed
    }
    # every cleaned article went on, or was recorded a duplicate (the same body twice)
    seen = {a.id for a in result.passed} | {d.article_id for d in result.duplicates}
    assert seen == set(languages) and result.duplicates


def test_a_failing_batch_detection_is_isolated_per_article(monkeypatch):
    """A bug in the batch call does not lose the batch: each article is cleaned alone."""
    real = clean_module.detect_languages

    def fails_for_german(texts):
        if any("Friedensgesprächen" in t for t in texts):
            raise RuntimeError("detector bug")
        return real(texts)

    monkeypatch.setattr(clean_module, "detect_languages", fails_for_german)
    items = [
        RawArticle(body=TEXTS["en"]),
        RawArticle(body=TEXTS["de"]),
        RawArticle(body=TEXTS["fr"]),
    ]
    pipeline = Pipeline(Settings(), deduper=Deduper(InMemoryFingerprintStore()))
    result = pipeline.clean_and_dedupe([message(r, i) for i, r in enumerate(items)])
    assert [a.language for a in result.passed] == ["en", "fr"]
    (letter,) = result.dead
    assert (letter.stage, letter.offset) == ("clean", 1) and "detector bug" in letter.error
    assert json.loads(letter.payload)["body"] == TEXTS["de"]


# --- the boilerplate line regex ------------------------------------------------------------------

RULES = json.loads((ROOT / "pipeline" / "data" / "boilerplate.json").read_text("utf-8"))
PATTERNS = [p for patterns in RULES["line_patterns"].values() for p in patterns]
REFERENCE = re.compile("|".join(f"(?:{p})" for p in PATTERNS), re.IGNORECASE)
"""The patterns joined as they are, one alternative each: what the faster regex must equal."""

LINES = [
    "12°C",
    "-3.5 °",
    "+21 F",
    "© 2025 Example Media",
    "(c) 2024 Someone",
    "Copyright © 2023 News Ltd",
    "COPYRIGHT 2021",
    "Example Media. All rights reserved.",
    "All Rights Reserved",
    "allrights reserved",
    "nall rights reserved",
    "all rights reservedx",
    "Alle Rechte vorbehalten.",
    "Tous droits réservés",
    "Todos los derechos reservados",
    "Tutti i diritti riservati",
    "Wszelkie prawa zastrzeżone",
    "© Все права защищены",
    "Our standards: The Thomson Reuters Trust Principles.",
    "We use cookies to improve your experience",
    "This website uses cookies.",
    "this site use cookies",
    "Accept all cookies",
    "Manage cookies",
    "Reject cookies now",
    "The company said it uses cookies in its factories.",
    "Shr 25 cts vs 30 cts",
    "",
]


def corpus_lines() -> list[str]:
    lines = list(LINES)
    for path in sorted(ROOT.glob("seeds/*.txt")):
        lines += path.read_text("utf-8").splitlines()
    reuters = Path("/work/shared/corpus/reuters21578.jsonl")
    if reuters.exists():
        with reuters.open(encoding="utf-8") as rows:
            for row in islice(rows, 1000):
                lines += json.loads(row)["body"].splitlines()
    return [" ".join(line.split()) for line in lines]


def test_boilerplate_line_regex_finds_exactly_what_the_patterns_find():
    lines = corpus_lines()
    found = [clean_module._LINE_PATTERN.search(line) is not None for line in lines]
    assert found == [REFERENCE.search(line) is not None for line in lines]
    assert sum(found) >= 20  # the crafted lines above do exercise the patterns


@pytest.mark.parametrize(
    ("patterns", "line", "hit"),
    [
        ([r"\bfoo|bar"], "xbar", True),  # a top-level "|": \b belongs to "foo" only
        ([r"\bfoo|bar"], "xfoo", False),
        ([r"\b(?:foo|bar)\b", r"^baz"], "a bar here", True),
        ([r"\b(?:foo|bar)\b", r"^baz"], "abar", False),
        ([r"\b[|]x", r"\bq"], "a |x", False),  # "|" in a class: \b still needs a word before
        ([r"\b[^]|]x"], "-x", False),
        ([r"\ba\|b"], "a|b", True),
    ],
)
def test_line_pattern_keeps_each_pattern_meaning(patterns, line, hit):
    reference = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    assert (reference.search(line) is not None) is hit
    assert (clean_module.line_pattern(patterns).search(line) is not None) is hit
