"""Name normalisation helpers: folding keys, title stripping, place aliases.

Everything here is deterministic and model-free, so the entity stage, alert subscriptions and
search filters compute the same keys for the same name.

- :func:`fold_word` / :func:`fold_name`: a *folding key* for person names that is equal for the
  usual transliteration variants (Zelensky = Zelenskiy = Zelenskyy, Medinsky = Medynsky,
  Sergey = Sergei, Mikhail = Mihail).
- :func:`person_words`: the words of a person mention without leading titles/roles
  ("Defense Minister", "Kremlin aide", "Mr.") and without a trailing possessive.
- :func:`canonical_place`: the canonical name of a place from the alias table
  ``pipeline/data/places.json`` (Kiev -> Kyiv, Turkey's -> Türkiye, U.S. -> United States).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rapidfuzz.fuzz import ratio

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
_NON_LETTER = re.compile(r"[^a-z]+")
_SLUG_SEP = re.compile(r"[^a-z0-9]+")


def ascii_fold(text: str) -> str:
    """NFKD-decompose and drop combining marks: 'Türkiye' -> 'Turkiye'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def strip_possessive(text: str) -> str:
    """Drop a trailing possessive: "Turkey’s" -> "Turkey", "Umerovs'" -> "Umerovs"."""
    return _POSSESSIVE.sub("", text.strip())


def fold_word(word: str) -> str:
    """Folding key of one name word: accents off, lowercase, transliteration variants merged."""
    folded = _NON_LETTER.sub("", ascii_fold(strip_possessive(word)).lower())
    for source, target in _TRANSLIT:
        folded = folded.replace(source, target)
    return _DOUBLED.sub(r"\1", folded)


def fold_name(name: str) -> str:
    """Folding key of a multi-word name: its folded words joined by one space."""
    return " ".join(w for w in (fold_word(part) for part in name.split()) if w)


def slug(text: str) -> str:
    """ASCII, lowercase, runs of other characters -> '-': 'Côte d'Ivoire' -> 'cote-d-ivoire'."""
    return _SLUG_SEP.sub("-", ascii_fold(text).lower()).strip("-")


# --- person names ----------------------------------------------------------------------------

TITLE_WORDS = frozenset(
    """
    mr mrs ms miss dr prof sir dame lord lady rev fr gen lt col maj capt cmdr adm sgt sen rep gov
    president presidential vice prime minister ministers deputy first foreign defense defence
    interior finance economy justice health energy trade agriculture culture education chief head
    secretary press spokesperson spokesman spokeswoman aide adviser advisor envoy special
    ambassador chancellor premier governor mayor senator congressman congresswoman representative
    general admiral commander colonel major captain king queen prince princess emperor pope
    sheikh crown former ex acting interim opposition leader kremlin white house state of the
    u.s. us un u.n. eu nato russian ukrainian american british french german turkish chinese
    executive ceo chairman chairwoman director negotiator top senior
    """.split()
)
"""Words stripped from the *front* of a person mention (case-insensitive, dots ignored)."""

NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})
_SPLIT_WORDS = re.compile(r"[\s\u00a0]+")


def _bare(word: str) -> str:
    return word.lower().rstrip(".").strip(_APOSTROPHES)


def person_words(text: str) -> list[str]:
    """Words of a person name without leading titles, trailing suffixes or possessive.

    >>> person_words("Defense Minister Rassmuumerov")
    ['Rassmuumerov']
    >>> person_words("Zelenskiy’s")
    ['Zelenskiy']
    """
    words = [w for w in _SPLIT_WORDS.split(text.strip()) if w]
    while len(words) > 1 and _bare(words[0]) in TITLE_WORDS:
        words.pop(0)
    if words:
        words[-1] = strip_possessive(words[-1])
    while len(words) > 1 and _bare(words[-1]).strip(",") in NAME_SUFFIXES:
        words.pop()
    return [w.rstrip(",") for w in words if w.rstrip(",")]


def leading_title_count(words: list[str]) -> int:
    """How many leading words of ``words`` are titles (always leaves at least one word)."""
    count = 0
    while count < len(words) - 1 and _bare(words[count]) in TITLE_WORDS:
        count += 1
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


def first_names_compatible(a: str, b: str) -> bool:
    """Folded first names that may denote the same person: equal, or same initial.

    Same initial covers initials ("J." / "John") and mistranslated first names
    ("Kit" / "Keith"); it is deliberately lenient because the surname already matched.
    """
    return bool(a) and bool(b) and (a == b or a[0] == b[0])


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
    """The alias table, compiled: exact forms, case-insensitive forms, ruler patterns."""

    exact: dict[str, str]
    casefolded: dict[str, str]
    ruler_forms: dict[str, str]


def _is_acronym(form: str) -> bool:
    letters = form.replace(".", "")
    return letters.isupper() and len(letters) <= 4


def _ruler_forms(canonical: str, variants: list[str], single_country: bool) -> dict[str, str]:
    forms: dict[str, str] = {}
    for form in (canonical, *variants):
        forms[form] = canonical
        forms[form.upper()] = canonical
        if single_country and " " not in form and not form.endswith("s") and not _is_acronym(form):
            forms[form + "s"] = canonical  # MT noise: "both Turkeys"
    return forms


@lru_cache(maxsize=1)
def place_table() -> PlaceTable:
    """Load and compile ``pipeline/data/places.json`` once."""
    raw = json.loads(PLACES_PATH.read_text("utf-8"))
    no_ruler = set(raw["no_ruler"])
    exact: dict[str, str] = {}
    casefolded: dict[str, str] = {}
    ruler: dict[str, str] = {}
    for section in ("countries", "cities", "regions"):
        for canonical, variants in raw[section].items():
            for form in (canonical, *variants):
                exact[form] = canonical
                if not _is_acronym(form):
                    casefolded[ascii_fold(form).casefold()] = canonical
            if canonical not in no_ruler:
                kept = [v for v in variants if v not in no_ruler]
                ruler.update(_ruler_forms(canonical, kept, section == "countries"))
    return PlaceTable(exact=exact, casefolded=casefolded, ruler_forms=ruler)


def canonical_place(text: str) -> str | None:
    """Canonical place for a surface form, or None when the table does not know it.

    Acronyms match case-sensitively ("US" yes, "us" no); other forms case- and
    accent-insensitively; a possessive ("Turkey’s") and an MT plural ("Turkeys") are tolerated.
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
    if key.endswith("s") and key[:-1] in table.casefolded and " " not in key:
        return table.casefolded[key[:-1]]
    return None
