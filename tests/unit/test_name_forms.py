"""Name and place forms, exactly: the edges the mutation run found unguarded (docs/testing.md)."""

from pipeline.alerts.matcher import _anchor_cost
from pipeline.stages import names
from pipeline.stages.names import is_role_word, person_words, place_form, split_person


def test_place_form_takes_spacing_a_leading_the_and_capitals_off():
    assert place_form("Burkina   Faso") == "Burkina Faso"
    assert place_form("the Burkina Faso") == "Burkina Faso"
    assert place_form("THE BURKINA FASO") == "Burkina Faso"
    assert place_form("Burkina Faso's") == "Burkina Faso"
    assert place_form("burkina faso") is None  # lowercase is not a place span as written


def test_role_words_need_letters():
    assert is_role_word("Dr.") is True  # a title with its dot
    assert is_role_word("ab12") is False  # digits: never a role, even lowercase
    assert is_role_word("") is False


def test_bare_strips_apostrophes_and_dots():
    assert names._bare("’Aide’.") == "aide"
    assert names._bare("Jr.") == "jr"


def test_person_words_keep_a_one_letter_surname():
    assert person_words("Malcolm X") == ["Malcolm", "X"]
    assert person_words("Ann Lee,") == ["Ann", "Lee"]


def test_two_letter_surnames_are_names_one_letter_is_not():
    name = split_person("John Li")
    assert name is not None and (name.first, name.surname, name.display) == (
        "john",
        "li",
        "John Li",
    )
    assert split_person("John B") is None


def test_anchor_cost_prefers_long_words_and_cheap_scopes():
    assert _anchor_cost(frozenset({("text", "abcd")})) == 3.0 * (1 + 8 / 4)
    assert _anchor_cost(frozenset({("title", "abcdefgh")})) == 2.0 * (1 + 8 / 8)
    assert _anchor_cost(frozenset({("entity", "person:x"), ("event", "strike")})) == 1.0 + 2.0
