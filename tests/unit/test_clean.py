"""The clean stage: acceptance (tests/fixtures/gold.json over seeds/) and each mechanism."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest

from pipeline.stages.clean import (
    CleanError,
    clean,
    first_sentence,
    parse_credit_line,
    parse_dateline,
)
from schemas.models import RawArticle

ROOT = Path(__file__).resolve().parents[2]
GOLD = json.loads((ROOT / "tests" / "fixtures" / "gold.json").read_text("utf-8"))
REUTERS = Path("/work/shared/corpus/reuters21578.jsonl")


def seed_text(key: str) -> str:
    (path,) = (ROOT / "seeds").glob(f"{key}_*.txt")
    return path.read_text("utf-8")


def clean_text(body: str, **fields):
    return clean(RawArticle(body=body, **fields))


@pytest.fixture(scope="module")
def seeds() -> dict:
    keys = sorted(set(GOLD["cleaning"]["required"]) | set(GOLD["language"]["required"]))
    return {key: clean_text(seed_text(key)) for key in keys}


# --- acceptance: gold.json ---------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(GOLD["cleaning"]["required"]))
def test_gold_cleaning_required(seeds, key):
    expected = GOLD["cleaning"]["required"][key]
    article = seeds[key]
    if "text_starts_with" in expected:
        assert article.body.startswith(expected["text_starts_with"])
    if "text_must_not_start_with" in expected:
        assert not article.body.startswith(expected["text_must_not_start_with"])
    if "dateline" in expected:
        assert article.dateline is not None
        assert article.dateline.model_dump() == expected["dateline"]
    if "title" in expected:
        assert article.title == expected["title"]
    for fragment in expected.get("must_not_contain", []):
        assert fragment not in article.title
        assert fragment not in article.body


@pytest.mark.parametrize("key", sorted(GOLD["language"]["required"]))
def test_gold_language_required(seeds, key):
    assert seeds[key].language == GOLD["language"]["required"][key]


def test_gold_cleaning_stretch_authors(seeds):
    expected = GOLD["cleaning"]["stretch"]["002"]["authors"]
    article = seeds["002"]
    assert article.authors == expected
    assert len(article.credits) == 1 and article.credits[0].startswith("(Written by")
    assert "Written by" not in article.body
    assert article.body.endswith("impose severe sanctions on Russia.")


def test_seed_titles_and_paragraphs(seeds):
    assert seeds["003"].title_origin == "page"
    assert seeds["003"].body.startswith("The Russian Foreign Ministry has said")
    assert seeds["003"].body.endswith("a condition for starting discussions on a ceasefire.")
    assert "Europe" not in seeds["003"].body.split("\n\n")[0]
    assert seeds["000"].title_origin == "first_sentence"
    assert seeds["000"].title.startswith("The chief U.S. envoy") and len(seeds["000"].title) <= 120
    assert seeds["000"].title.endswith("…")
    # 001 has one sentence-ending line per paragraph: 17 lines, 17 paragraphs
    assert seeds["001"].body.count("\n\n") == 16
    assert "Türkiye" in seeds["001"].body and "“leave”" in seeds["002"].body  # no ASCII folding


# --- producer fields ---------------------------------------------------------------------------


def test_given_fields_are_kept():
    raw = RawArticle(
        body="Russia proposed new talks in Istanbul on Monday, officials said.",
        title="Talks in Istanbul",
        source="wire",
        url="https://example.com/a",
        language="EN-gb",
        feed_rank=3,
    )
    article = clean(raw)
    assert (article.title, article.title_origin) == ("Talks in Istanbul", "given")
    assert article.language == "en"
    assert article.extra == {"feed_rank": 3}
    assert (article.source, article.url, article.ingested_at) == ("wire", raw.url, raw.ingested_at)
    assert len(article.id) == 16


def test_given_title_repeated_at_top_of_body_is_removed():
    article = clean_text(
        "Talks resume in Istanbul\n\nRussia and Ukraine met again on Monday.",
        title="Talks resume in Istanbul",
    )
    assert article.body == "Russia and Ukraine met again on Monday."


def test_first_sentence_title_keeps_abbreviations():
    body = "Mr. Smith met U.S. officials in Geneva. They talked for an hour."
    article = clean_text(body)
    assert article.title == "Mr. Smith met U.S. officials in Geneva"
    assert article.body == body
    assert first_sentence("No end here") == "No end here"


# --- unicode -----------------------------------------------------------------------------------


def test_unicode_repair():
    body = "Itâ€™s a caf\u0065\u0301 in\u200b Kyiv,\r\nsaid    the\u00a0owner. “Quoted” — dash."
    article = clean_text(body)
    assert article.body == "It’s a café in Kyiv, said the owner. “Quoted” — dash."


# --- boilerplate -------------------------------------------------------------------------------


PAGE = """Skip to content
Menu
12°C
World News
24.09.2025
Russia and Ukraine agree to a new round of talks in Istanbul

Russia and Ukraine agreed on Monday to meet again in Istanbul.
Advertisement
The talks are due to start next week.
Share
© 2025 Example Media. All rights reserved.
"""


def test_short_page_is_not_taken_for_hard_wrapped_text():
    article = clean_text(
        "Accueil | Monde | Europe\n"
        "La Russie propose un nouveau cycle de pourparlers à Istanbul\n"
        "PARIS, 29 mai (AFP) - La Russie a proposé lundi un nouveau cycle de négociations.\n"
        "Publicité\n"
        "Les discussions doivent commencer la semaine prochaine."
    )
    assert article.title == "La Russie propose un nouveau cycle de pourparlers à Istanbul"
    assert article.dateline.agency == "AFP"
    assert article.language == "fr"
    assert article.body == (
        "La Russie a proposé lundi un nouveau cycle de négociations.\n\n"
        "Les discussions doivent commencer la semaine prochaine."
    )


def test_page_chrome_title_and_trailing_boilerplate():
    article = clean_text(PAGE)
    assert article.title == "Russia and Ukraine agree to a new round of talks in Istanbul"
    assert article.title_origin == "page"
    assert article.body == (
        "Russia and Ukraine agreed on Monday to meet again in Istanbul.\n\n"
        "The talks are due to start next week."
    )


@pytest.mark.parametrize(
    "marker",
    [
        "Advertisement",
        "- Реклама -",
        "Anzeige",
        "[Publicité]",
        "— Publicidad —",
        "Pubblicità",
        "Reklama",
        "SPONSORED",
        "广告",
        "(Werbung)",
    ],
)
def test_ad_markers_on_their_own_line_are_dropped(marker):
    article = clean_text(f"The first paragraph ends here.\n{marker}\nThe second one ends here.")
    assert article.body == "The first paragraph ends here.\n\nThe second one ends here."


def test_wrapped_ad_marker_inside_a_line_is_dropped():
    article = clean_text("The minister spoke. - Реклама - The talks went on.")
    assert article.body == "The minister spoke. The talks went on."


def test_short_real_lines_in_the_body_are_kept():
    body = (
        "The minister was asked whether talks would resume.\n"
        "“No.”\n"
        "He left the room.\n"
        "Share price data fell.\n"
        "Home.\n"
        "Copyright law was not discussed."
    )
    assert clean_text(body).body == body.replace("\n", "\n\n")


def test_weather_and_dates_only_as_whole_lines():
    body = "54 °F\nTemperatures reached 12°C on 24.09.2025 in Kyiv."
    assert clean_text(body).body == "Temperatures reached 12°C on 24.09.2025 in Kyiv."


# --- broken lines ------------------------------------------------------------------------------


def test_abbreviation_broken_across_lines():
    assert clean_text("The chief U\nS. envoy arrived.").body == "The chief U.S. envoy arrived."
    assert clean_text("The U.\nN. envoy arrived.").body == "The U.N. envoy arrived."


def test_hyphenation_across_lines():
    body = "The negoti-\nations resumed after the Brown-\nForman deal and a 1,000-\nfor-1,000 swap."
    assert clean_text(body).body == (
        "The negotiations resumed after the Brown-Forman deal and a 1,000-for-1,000 swap."
    )


def test_hard_wrapped_paragraphs():
    body = (
        "The talks resumed on Monday in\n"  # wrapped before a capital: joined (hard-wrapped text)
        "Istanbul after a long pause.\n"  # ends a sentence: the paragraph ends
        "A second paragraph starts here\n"
        "and continues."  # starts lowercase: joined
    )
    assert clean_text(body).body == (
        "The talks resumed on Monday in Istanbul after a long pause.\n\n"
        "A second paragraph starts here and continues."
    )


def test_long_lines_are_not_taken_for_hard_wrapping():
    line = (
        "Officials met in Istanbul on Monday to discuss the memoranda of the two sides "
        "and a ceasefire in the air"
    )
    body = f"{line}.\n{line}\n{line}.\n{line}."
    assert clean_text(body).body.count("\n\n") == 3


def test_hard_wrapped_text_with_indented_paragraphs():
    body = (
        "LONDON, March 3 - The central bank said it would keep rates\n"
        "unchanged this month, citing weaker growth in Europe and\n"
        "Asia over the winter.\n"
        "    The decision was expected by most analysts polled by\n"
        "Reuters last week.\n"
        "    Shr 34 cts vs 1.19 dlrs\n"
        "    Net 807,000 vs 2,858,000\n"
    )
    article = clean_text(body)
    assert article.body.split("\n\n") == [
        "The central bank said it would keep rates unchanged this month, citing weaker growth in "
        "Europe and Asia over the winter.",
        "The decision was expected by most analysts polled by Reuters last week.",
        "Shr 34 cts vs 1.19 dlrs",
        "Net 807,000 vs 2,858,000",
    ]


# --- datelines ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "place", "date_text", "agency"),
    [
        ("ISTANBUL, June 2 (Reuters) – Talks began.", "Istanbul", "June 2", "Reuters"),
        ("MOSCOW, May 29 (Alliance News): Talks began.", "Moscow", "May 29", "Alliance News"),
        ("SALVADOR, Feb 26 - Showers continued.", "Salvador", "Feb 26", None),
        ("WASHINGTON (AP) — Talks began.", "Washington", None, "AP"),
        ("LONDON, 3 June (Reuters) - Talks began.", "London", "3 June", "Reuters"),
        ("NEW YORK, March 3 - Talks began.", "New York", "March 3", None),
        ("KYIV, Ukraine, June 2 (Reuters) - Talks began.", "Kyiv", "June 2", "Reuters"),
        ("ROCHESTER, N.Y., Feb 26 - Talks began.", "Rochester", "Feb 26", None),
        ("Toronto, Feb 26 - Talks began.", "Toronto", "Feb 26", None),
        ("WASHINGTON — Talks began.", "Washington", None, None),
        ("BERLIN, 29. Mai (dpa) - Talks began.", "Berlin", "29. Mai", "dpa"),
        ("PARIS, 29 mai (AFP) - Talks began.", "Paris", "29 mai", "AFP"),
        ("МОСКВА, 29 мая (Рейтер) - Talks began.", "Москва", "29 мая", "Рейтер"),
    ],
)
def test_dateline_variants(text, place, date_text, agency):
    dateline, rest = parse_dateline(text)
    assert dateline is not None
    assert (dateline.place, dateline.date_text, dateline.agency) == (place, date_text, agency)
    assert rest in ("Talks began.", "Showers continued.")


@pytest.mark.parametrize(
    "text",
    [
        "Kellogg said: talks will resume.",
        "BREAKING - Talks resume in Istanbul.",
        "Russia-Ukraine peace talks are expected to resume.",
        "Apple, Google and Microsoft - the giants - fell.",
    ],
)
def test_not_a_dateline(text):
    assert parse_dateline(text) == (None, text)


def test_dateline_is_removed_from_body():
    article = clean_text("KYIV, Ukraine, June 2 (Reuters) - Talks began on Monday.")
    assert article.body == "Talks began on Monday."
    assert article.dateline.place == "Kyiv"


# --- credits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "authors"),
    [
        (
            "(Written by Guy Faulconbridge, Additional reporting by Lidia Kelly, Edited by Jane "
            "Merriman and Lincoln Feast.)",
            ["Guy Faulconbridge"],
        ),
        ("Reporting by Jane Doe; Editing by John Roe", ["Jane Doe"]),
        (
            "(Reporting by Anna Smith and Olena Harmash in Moscow; Writing by Mark Trevelyan)",
            ["Anna Smith", "Olena Harmash", "Mark Trevelyan"],
        ),
        ("(Editing by Jane Merriman)", []),
    ],
)
def test_credit_lines(line, authors):
    assert parse_credit_line(line) == authors


def test_not_a_credit_line():
    assert parse_credit_line("Reporting by the ministry was patchy at best.") is None
    assert parse_credit_line("The talks were reported by state media.") is None


def test_byline_and_trailing_credit_leave_the_body():
    body = (
        "By Jane Doe and JOHN ROE, Reuters\n"
        "Talks resumed in Istanbul on Monday.\n"
        "(Reporting by Olena Harmash in Kyiv; Editing by Mark Heinrich)"
    )
    article = clean_text(body)
    assert article.body == "Talks resumed in Istanbul on Monday."
    assert article.authors == ["Jane Doe", "John Roe", "Olena Harmash"]
    assert len(article.credits) == 2


def test_reuters_signoff_is_removed():
    article = clean_text("NEW YORK, March 3 - Shares rose.\nREUTER\n Reuter\n&#3;")
    assert article.body == "Shares rose."
    assert clean_text("Shares rose, Reuters said.").body == "Shares rose, Reuters said."


# --- rejected input ----------------------------------------------------------------------------


def test_empty_after_cleaning():
    with pytest.raises(CleanError, match="body is empty after cleaning"):
        clean_text(" \n\u200b\n Advertisement \n")


def test_oversized_body_names_the_limit():
    with pytest.raises(CleanError) as error:
        clean_text("x" * 10_485_760, source="big")
    assert "10,485,760" in str(error.value)
    assert "1,000,000" in str(error.value) and "NEWS_MAX_BODY_CHARS" in str(error.value)
    with pytest.raises(CleanError, match="more than the limit of 100"):
        clean(RawArticle(body="word " * 30), max_body_chars=100)


def test_binary_garbage():
    garbage = bytes(range(256)).decode("latin-1") * 4
    with pytest.raises(CleanError, match="binary"):
        clean_text(garbage)
    with pytest.raises(CleanError, match="binary"):
        clean_text("PK\x03\x04\x14\x00\x08\x00" + "\ufffd" * 50 + "abc")


# --- Reuters corpus ----------------------------------------------------------------------------


@pytest.mark.skipif(not REUTERS.exists(), reason="Reuters corpus not present")
def test_reuters_corpus_sample():
    with REUTERS.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in islice(lines, 50)]
    articles = [clean(RawArticle(**row)) for row in rows]
    with_dateline = [a for a in articles if a.dateline is not None]
    assert len(with_dateline) >= 48
    assert with_dateline[0].dateline.place == "Salvador"
    for row, article in zip(rows, articles):
        assert not article.body.rstrip().endswith(("Reuter", "REUTER"))
        assert not article.body.startswith(row["body"][:15])
        assert "&#3;" not in article.body and "\x03" not in article.body
        assert article.language == "en" or article.body.startswith(("Shr", "Qtly", "Oper"))
