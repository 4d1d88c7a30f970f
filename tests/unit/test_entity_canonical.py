"""Canonical entities: surface normalisation, acronyms, role words, gazetteer types, type
agreement, speaker slots, transliteration keys (each test fails when its mechanism is off)."""

from __future__ import annotations

import importlib.util
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.stages.entities import (
    InMemoryEntityRegistry,
    acronym_of,
    extract_entities,
    normalise_surface,
    parse,
    spelling_key,
)
from pipeline.stages.names import split_person
from pipeline.stages.nlp import load_nlp, loadable_name
from schemas.models import CleanArticle

ROOT = Path(__file__).resolve().parents[2]
MODEL = loadable_name(os.environ.get("NEWS_SPACY_MODEL", "en_news_ner_conll"))
if not Path(MODEL).is_dir() and importlib.util.find_spec(MODEL) is None:
    pytest.skip(f"spaCy model {MODEL!r} is not installed", allow_module_level=True)

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def nlp():
    return load_nlp(MODEL)


def _entities(nlp, *texts: str, registry=None):
    registry = registry if registry is not None else InMemoryEntityRegistry()
    out = []
    for i, text in enumerate(texts):
        article = CleanArticle(id=str(i), title="", body=text, language="en", ingested_at=NOW)
        out.append(extract_entities([article], parse(nlp, [text], 1), registry)[0])
    return out


def _by_form(entities, form):
    return next((e for e in entities if form in e.forms), None)


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("the European Union's", "European Union"),
        ("The Federal Reserve", "Federal Reserve"),
        ("ofNew Labour", "New Labour"),
        ("forThe Times", "The Times"),
        ("Theresa May", "Theresa May"),
        ("the", "the"),
    ],
)
def test_normalise_surface(raw, clean):
    assert normalise_surface(raw) == clean


def test_acronym_initials():
    assert acronym_of("Organization of Petroleum Exporting Countries") == "OPEC"
    assert acronym_of("Federal Deposit Insurance Corporation") == "FDIC"


def test_acronym_defined_in_article_links_to_expansion(nlp):
    (ents,) = _entities(
        nlp,
        "The Financial Conduct Authority (FCA) fined the bank on Monday. "
        "A spokesman for the FCA said more fines would follow.",
    )
    full, short = _by_form(ents, "Financial Conduct Authority"), _by_form(ents, "FCA")
    assert full is not None and (short is None or short.id == full.id)
    if short is not None:
        assert full.name == "Financial Conduct Authority"


def test_acronym_gazetteer_and_determiners_one_entity(nlp):
    a, b, c = _entities(
        nlp,
        "The European Union said it would act.",
        "The EU said it would act.",
        "Officials of the European Union met on Monday.",
    )
    ids = {e.id for ents in (a, b, c) for e in ents if {"European Union", "EU"} & set(e.forms)}
    assert len(ids) == 1
    assert all(e.name == "European Union" for ents in (a, b, c) for e in ents if e.id in ids)


def test_portfolio_words_in_roles_are_not_organisations(nlp):
    (ents,) = _entities(
        nlp, "Defense Minister Pete Hegseth met Secretary of State Marco Rubio in Paris."
    )
    names = {e.name for e in ents}
    assert not {"Defense", "State"} & names


def test_first_name_after_title_is_recovered(nlp):
    (ents,) = _entities(
        nlp,
        "Ukrainian Defence Minister Rustem Umerov stated that talks were useful. "
        "Umerov posted on X.",
    )
    person = _by_form(ents, "Umerov")
    assert person is not None and person.type == "person" and "Rustem Umerov" in person.forms


def test_gazetteer_type_is_the_same_under_any_label(nlp):
    (ents,) = _entities(nlp, "The Kremlin said on Friday that the proposal was unacceptable.")
    kremlin = _by_form(ents, "Kremlin")
    assert kremlin is not None and kremlin.type == "organization"


def test_registered_surname_in_speaker_slot_is_the_person(nlp):
    registry = InMemoryEntityRegistry()
    first, second = _entities(
        nlp,
        "Federal Reserve Board chairman Paul Volcker said the accord would hold.",
        "Volcker told a news conference that rates were likely to stay unchanged.",
        registry=registry,
    )
    assert _by_form(second, "Volcker").id == _by_form(first, "Paul Volcker").id


def test_spelling_key_links_transliterations_not_different_stems():
    def key(name):
        return spelling_key(split_person(name))

    assert key("Mikhail Gorbachev") == key("Mikhail Gorbachov")
    assert key("Eduard Shevardnadze") == key("Eduard Shevardnadse")
    assert key("Nikolai Ryzhkov") != key("Nikolai Rozhkov")
    assert key("Mikhail Gorbachev") != key("Raisa Gorbachev")


def test_transliterations_resolve_to_one_person(nlp):
    registry = InMemoryEntityRegistry()
    a, b = _entities(
        nlp,
        "Soviet sources said Mikhail Gorbachev would attend.",
        "Diplomats said Mikhail Gorbachov had approved the proposal.",
        registry=registry,
    )
    assert _by_form(a, "Mikhail Gorbachev").id == _by_form(b, "Mikhail Gorbachov").id


def test_entity_pairs_fixture_is_labelled():
    pairs = [
        json.loads(line)
        for line in (ROOT / "tests/fixtures/entity_pairs.jsonl").read_text("utf-8").splitlines()
    ]
    assert len(pairs) >= 100
    kinds = {p["kind"] for p in pairs}
    assert {"shared_surname", "transliteration", "acronym"} <= kinds
    assert any(not p["same"] for p in pairs) and any(p["same"] for p in pairs)


def test_institution_head_and_gazetteer_word_are_not_persons(nlp):
    (ents,) = _entities(
        nlp,
        "He led the Main Directorate of the army for years. "
        "Posters urged voters to Vote Tory at the election. "
        "Shops said Christmas sales were strong.",
    )
    for form in ("Main Directorate", "Vote Tory", "Christmas"):
        entity = _by_form(ents, form)
        assert entity is None or entity.type != "person", (form, entity)


def test_canonical_name_is_most_complete_well_attested():
    from pipeline.stages.entities import canonical_name

    assert (
        canonical_name({"J. Baker": 5, "James Baker": 2, "James A. Baker": 1}, "x") == "James Baker"
    )
    assert canonical_name({"Jim Baker": 1, "James Addison Baker": 1}, "x") == "James Addison Baker"
    assert canonical_name({}, "fallback") == "fallback"


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_canonical_person_name_does_not_depend_on_arrival_order(nlp, order):
    texts = [
        "Treasury Secretary James Addison Baker said the dollar was stable.",
        "Treasury Secretary James Baker said on Monday the talks went well.",
        "Treasury Secretary James Baker told reporters rates would stay unchanged.",
    ]
    registry = InMemoryEntityRegistry()
    results = _entities(nlp, *(texts[i] for i in order), registry=registry)
    last = results[-1]
    person = next(e for e in last if e.type == "person")
    assert person.name == "James Baker"


def test_untagged_speaker_is_a_known_person_and_nothing_else(nlp):
    """A capitalised word the NER left untagged before a speech verb is the registered person
    with that surname; when no person has that surname it is no entity at all."""
    registry = InMemoryEntityRegistry()
    first, second = _entities(
        nlp,
        "Finance Minister Oskar Brandvold said the budget would be balanced.",
        "Brandvold told a news conference that taxes would not rise. Lindgaard told reporters "
        "he disagreed.",
        registry=registry,
    )
    person = _by_form(first, "Oskar Brandvold")
    assert person is not None and person.type == "person"
    again = _by_form(second, "Brandvold")
    assert again is not None and again.id == person.id
    assert _by_form(second, "Lindgaard") is None or _by_form(second, "Lindgaard").type == "person"
    assert all(e.id != "misc:lindgaard" for e in second)


def test_acronym_defined_in_text_joins_pieces_the_ner_split(nlp):
    """The article defines the acronym: its expansion is one organisation even when the NER
    split or mislabelled it, and the acronym's later uses (tagged or not) share that id."""
    text = (
        "The Grain Storage Reserve Administration (GSRA) said on Friday it had approved the "
        "plan. The GSRA will meet again in June."
    )
    (entities,) = _entities(nlp, text)
    org = _by_form(entities, "Grain Storage Reserve Administration")
    assert org is not None and org.type == "organization"
    assert "GSRA" in org.forms and org.mentions >= 2
    assert not any(e.type == "person" for e in entities)


def test_pieces_of_a_known_expansion_are_one_entity(nlp):
    """Adjacent pieces whose joined text is an alias-table expansion become that entity."""
    (entities,) = _entities(
        nlp, "Delegates to the General Agreement on Tariffs and Trade met in Geneva."
    )
    gatt = [e for e in entities if e.id == "organization:general-agreement-on-tariffs-and-trade"]
    assert len(gatt) == 1 and gatt[0].forms == ["General Agreement on Tariffs and Trade"]
    assert not any(e.name in ("General Agreement", "Tariffs and Trade") for e in entities)


def test_misc_name_with_an_institution_head_is_an_organisation():
    """A MISC span ending in an institution's head noun ("... Bank") is typed as ORG spans are,
    so the same name gets one id whichever label the model gave it."""
    from spacy.tokens import Span

    from pipeline.stages.entities import _mention

    nlp = load_nlp(MODEL)
    doc = nlp.make_doc("Analysts said the Nordic Investment Bank stance was unchanged.")
    mention = _mention(Span(doc, 3, 6, label="MISC"))
    assert mention is not None and mention.type == "organization"


def test_word_completing_a_title_is_not_a_first_name(nlp):
    """'Chancellor of the [Exchequer Name Surname]': the word after "of the" ends the title."""
    from spacy.tokens import Span

    from pipeline.stages.entities import _mention

    nlp_ = load_nlp(MODEL)
    doc = nlp_.make_doc("Secretary of the Treasury Harold Quenby spoke.")
    mention = _mention(Span(doc, 3, 6, label="PER"))
    assert mention is not None and mention.person is not None
    assert mention.person.display == "Harold Quenby"


def test_role_words_then_a_name_labelled_org_is_a_person():
    """'Broadcaster Adrian Chiles' labelled ORG (small models do): role words and then exactly
    two name words make a person, role stripped; organisations with a role-like opener stay."""
    from spacy.tokens import Span

    from pipeline.stages.entities import _mention

    nlp_ = load_nlp(MODEL)
    doc = nlp_.make_doc("Broadcaster Helena Marwick said so. Director General Motors said so.")
    person = _mention(Span(doc, 0, 3, label="ORG"))
    assert person is not None and person.type == "person" and person.text == "Helena Marwick"
    org = _mention(Span(doc, 6, 9, label="ORG"))
    assert org is not None and org.type == "organization"
