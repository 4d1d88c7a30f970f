"""Language detection and producer language codes."""

from __future__ import annotations

import pytest

from pipeline.stages import language
from pipeline.stages.language import detect_language, normalise_language_code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (
            "Russia has proposed a new round of peace talks with Ukraine to take place in Istanbul.",
            "en",
        ),
        (
            "Russland hat eine neue Runde von Friedensgesprächen mit der Ukraine in Istanbul vorgeschlagen.",
            "de",
        ),
        (
            "La Russie a proposé un nouveau cycle de pourparlers de paix avec l'Ukraine à Istanbul.",
            "fr",
        ),
        (
            "Rusia ha propuesto una nueva ronda de conversaciones de paz con Ucrania en Estambul.",
            "es",
        ),
        ("Россия предложила провести новый раунд мирных переговоров с Украиной в Стамбуле.", "ru"),
        (
            "Росія запропонувала провести новий раунд мирних переговорів з Україною в Стамбулі.",
            "uk",
        ),
        (
            "Rosja zaproponowała nową rundę rozmów pokojowych z Ukrainą, które mają się odbyć w Stambule.",
            "pl",
        ),
        (
            "俄罗斯提议下周一在伊斯坦布尔与乌克兰举行新一轮和平谈判，乌克兰方面表示需要先看到书面方案。",
            "zh",
        ),
    ],
)
def test_detects_common_news_languages(text, code):
    assert detect_language(text) == code


def test_short_cjk_text_is_still_detected():
    assert detect_language("俄罗斯提议在伊斯坦布尔举行新一轮和谈。") == "zh"


@pytest.mark.parametrize("text", ["", "   ", "12,345 67.8", "Putin met Zelensky."])
def test_too_little_text_is_undetermined(text):
    assert detect_language(text) == "und"


def test_detector_is_built_once():
    detect_language("The detector is built on the first call and then reused by every later call.")
    first = language.get_detector()
    assert language.get_detector() is first


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("en-US", "en"),
        ("pt_BR", "pt"),
        ("deu", "de"),
        ("eng", "en"),
        (" fr ", "fr"),
        ("", None),
        (None, None),
        ("english", None),
        ("x1", None),
    ],
)
def test_normalise_language_code(given, code):
    assert normalise_language_code(given) == code


ENGLISH_STORY = (
    "The central bank said on Tuesday that it would keep interest rates unchanged, after "
    "inflation slowed for a third month, and that its board was not yet ready to cut them "
    "while wages were still rising faster than prices in most of the country."
)


def test_obviously_english_text_skips_lingua_with_lingua_answer():
    sample = ENGLISH_STORY[: language.MAX_CHARS]
    assert language._obviously_english(sample)
    assert language._iso_639_1(language.get_detector().detect_language_of(sample)) == "en"
    assert detect_language(ENGLISH_STORY) == "en"


@pytest.mark.parametrize(
    "text",
    [
        # a table of figures: no function words, lingua decides (whatever it says)
        "ACME CORP 4TH QTR NET\nShr 45 cts vs 58 cts\n\nNet 1.1 mln vs 829,000\n\nSales 7.9 mln",
        # English function words, but an accented letter: lingua decides
        "The café said that it would open again after the summer, and that their staff were "
        "not told about the plan, which they said was the worst they had seen.",
        # a French text
        "La Russie a proposé un nouveau cycle de pourparlers de paix avec l'Ukraine à Istanbul.",
        # German without umlauts: none of the markers
        "Die Regierung hat am Dienstag gesagt, dass sie die Steuern im kommenden Jahr senken will.",
    ],
)
def test_other_texts_go_to_lingua(text):
    assert not language._obviously_english(text[: language.MAX_CHARS])
