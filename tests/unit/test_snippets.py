"""Alert snippets, exactly: hit ranges, merging, the window around the first hit, truncation,
and the fallbacks (entity mention, event evidence, start of the body). Also what an
ArticleView keeps of an article. Pins the behaviour the mutation run checks (docs/testing.md)."""

from pipeline.alerts.matcher import ArticleView, _merge, _term_hits, _truncate, _window, snippet
from pipeline.query.analysis import token_spans
from schemas import AlertMatch, EnrichedArticle, Entity, EventTag, Mention

TEXT = (
    "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon"
)
KAPPA = (TEXT.index("kappa"), TEXT.index("kappa") + 5)
MU = (TEXT.index(" mu ") + 1, TEXT.index(" mu ") + 3)


def test_merge_joins_overlapping_and_touching_ranges_in_order():
    assert _merge([(5, 8), (0, 3), (2, 4), (8, 9)]) == [(0, 4), (5, 9)]
    assert _merge([(0, 10), (2, 3)]) == [(0, 10)]
    assert _merge([(3, 4), (5, 6)]) == [(3, 4), (5, 6)]
    assert _merge([]) == []


def test_term_hits_find_words_phrases_and_split_compounds():
    spans = token_spans(
        "The cease-fire held; a ceasefire again, the cease fire too. Prisoner swap done."
    )
    assert _term_hits(spans, "ceasefire") == [(4, 14), (23, 32), (44, 54)]
    assert _term_hits(spans, "prisoner swap") == [(60, 73)]
    assert _term_hits(spans, "truce") == []


def test_window_starts_at_a_word_near_the_first_hit_and_marks_cuts():
    assert _window(TEXT, [KAPPA], 30) == "…iota «kappa» lambda mu nu xi…"
    assert _window(TEXT, [(0, 5)], 20) == "«Alpha» beta gamma…"
    # hits outside the window are not highlighted; hits inside all are
    assert _window(TEXT, [MU, KAPPA, (0, 5)], 40) == "«Alpha» beta gamma delta epsilon zeta eta…"
    assert (
        _window(TEXT, [MU, KAPPA], 60)
        == "…eta theta iota «kappa» lambda «mu» nu xi omicron pi rho sigma…"
    )


def test_window_without_spaces_cuts_inside_the_word():
    assert _window("x" * 50, [(20, 25)], 12) == "…xxxx«xxxxx»xxx…"


def test_window_covering_the_whole_text_has_no_ellipsis():
    assert _window("one two three", [(4, 7)], 100) == "one «two» three"


def test_truncate_collapses_whitespace_and_cuts_at_a_word():
    assert _truncate("  a  b   c ", 20) == "a b c"
    assert _truncate(TEXT, 20) == "Alpha beta gamma…"
    assert _truncate("x" * 50, 10) == "x" * 10 + "…"
    assert _truncate("abc def", 7) == "abc def"


def _article(**fields) -> EnrichedArticle:
    base = dict(
        id="a1",
        source="Wire Service",
        title="Harbour Cranes Idle",
        body=TEXT,
        language="EN",
        ingested_at="2025-06-01T00:00:00Z",
        fingerprint="a1",
    )
    return EnrichedArticle(**{**base, **fields})


def test_snippet_falls_back_to_entity_then_event_then_body():
    mention = Mention(text="kappa", start=KAPPA[0], end=KAPPA[1])
    entity = Entity(
        id="misc:kappa", name="Kappa", type="misc", mentions=1, forms=["kappa"], offsets=[mention]
    )
    event = EventTag(type="strike", evidence=["Dock workers   walked out on Monday."])
    article = _article(entities=[entity], events=[event])
    assert snippet(article, AlertMatch(terms=["lambda"]), 30) == "…kappa «lambda» mu nu xi omicron…"
    assert snippet(article, AlertMatch(terms=["absent"], entities=["misc:kappa"]), 30) == (
        "…iota «kappa» lambda mu nu xi…"
    )
    assert (
        snippet(article, AlertMatch(events=["strike"]), 200) == "Dock workers walked out on Monday."
    )
    assert snippet(article, AlertMatch(events=["other"]), 20) == "Alpha beta gamma…"
    assert snippet(article, AlertMatch(), 20) == "Alpha beta gamma…"


def test_article_view_keeps_keys_ids_and_casefolded_source_and_language():
    entity = Entity(
        id="organization:acme",
        name="Acme",
        type="organization",
        mentions=1,
        forms=["Acme"],
        offsets=[],
    )
    events = [
        EventTag(type="strike", evidence=["x"]),
        EventTag(type="Port Closure", evidence=["y"], salience=0.2),  # a passing reference
    ]
    view = ArticleView.from_article(
        _article(
            title="Cease-fire Talks", body="The cease-fire holds.", entities=[entity], events=events
        )
    )
    assert {"ceasefire", "talk"} <= view.title_keys and "hold" not in view.title_keys
    assert {"ceasefire", "hold", "talk"} <= view.text_keys
    assert view.title_positions["talk"] == {2} or view.title_positions["talk"] == {1}
    assert view.entity_ids == frozenset({"organization:acme"})
    assert view.event_types == frozenset({"strike"})
    assert (view.source, view.language) == ("wire service", "en")
    assert view.keys("source") == ("wire service",) and view.keys("lang") == ("en",)
    assert view.keys("entity") == view.entity_ids and view.keys("title") == view.title_keys
    bare = ArticleView.from_article(_article(source="", language=""))
    assert (bare.source, bare.language) == (None, None)
    assert bare.keys("source") == () and bare.keys("lang") == ()
