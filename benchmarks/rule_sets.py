"""Build the labelled sets of the entity/cleaning rule families (tests/fixtures/rules/*.jsonl).

Run once (the files are committed; re-running rewrites them identically)::

    python -m benchmarks.rule_sets /path/to/reuters21578.jsonl

Two sources, marked in each item's ``source``:

- ``written``: sentences written for these sets from templates and lists of names below
  (homographs of places among people's names, shared surnames, headings before bylines ...);
- ``reuters``: sentences and line pairs drawn from the Reuters-21578 corpus (the first N
  matches in file order, so the draw is deterministic), labelled by how they were selected.

The rules under test never see these lists: they are evaluation data only.
"""

from __future__ import annotations

import json
import re
import sys
from itertools import cycle
from pathlib import Path

from pipeline.stages.clean import parse_dateline

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "rules"

# --- word lists (evaluation data) --------------------------------------------------------------

FIRST = [
    "Anna",
    "Peter",
    "Maria",
    "David",
    "Laura",
    "Michael",
    "Sofia",
    "Daniel",
    "Elena",
    "James",
    "Olivia",
    "Thomas",
    "Hannah",
    "Robert",
    "Clara",
    "Samuel",
    "Nadia",
    "Lucas",
    "Irene",
    "Oscar",
    "Marta",
    "Felix",
    "Julia",
    "Victor",
    "Alice",
    "Martin",
    "Helen",
    "Oliver",
    "Greta",
    "Hugo",
    "Lena",
    "Simon",
    "Ruth",
    "Adam",
    "Nina",
    "Paul",
    "Eva",
    "Leon",
    "Carmen",
]
SURNAMES = [
    "Kowalski",
    "Brennan",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Haddad",
    "Novak",
    "Castellano",
    "Whitfield",
    "Tanaka",
    "Fischer",
    "Olsen",
    "Petrov",
    "Gallagher",
    "Mendes",
    "Varga",
    "Schulz",
    "Kaplan",
    "Doyle",
    "Ferreira",
    "Lambert",
    "Nakamura",
    "Horvat",
    "Quinn",
    "Barros",
    "Keller",
    "Sandoval",
    "Ivanova",
    "Ashworth",
    "Demir",
]
ROLES = [
    "Broadcaster",
    "Striker",
    "Coach",
    "Chairman",
    "Spokeswoman",
    "Analyst",
    "Economist",
    "Midfielder",
    "Defender",
    "Goalkeeper",
    "Lawyer",
    "Senator",
    "Governor",
    "Judge",
    "Director",
    "Manager",
    "Novelist",
    "Singer",
    "Actor",
    "Chef",
    "Professor",
    "Ambassador",
    "Mayor",
    "Treasurer",
    "Spokesman",
    "Historian",
    "Photographer",
    "Columnist",
    "Negotiator",
    "Prosecutor",
]
ROLE_PHRASES = (
    "Liverpool striker",
    "Former chairman",
    "Veteran broadcaster",
    "Chief economist",
    "Defence lawyer",
    "Head coach",
    "Opposition leader",
    "Finance director",
    "Labour politician",
    "Award-winning novelist",
    "Club captain",
    "Senior analyst",
    "Deputy mayor",
    "Film director",
    "Union negotiator",
)
# first names that are ordinary English words (not roles): must never be stripped
WORD_FIRST_NAMES = [
    "Bill",
    "Mark",
    "Will",
    "Grant",
    "Rich",
    "Hope",
    "Summer",
    "Drew",
    "Chase",
    "Frank",
    "Rose",
    "May",
    "Miles",
    "Dean",
    "Earl",
    "Major",
    "Joy",
    "Faith",
    "Guy",
    "Pat",
    "Sterling",
    "Price",
    "Young",
    "Stone",
    "Art",
    "Gene",
    "Sue",
    "Jack",
    "Ray",
    "Dawn",
    "Iris",
    "Rusty",
    "Sandy",
    "Bud",
    "Hunter",
    "Carter",
    "Mason",
    "Cooper",
    "Parker",
    "Tucker",
    "Spencer",
    "Baker",
    "Taylor",
    "Fletcher",
]
# people whose first name or surname is also a place of the alias table
PLACE_NAMED_PEOPLE = (
    "Paris Hilton",
    "Georgia Harrison",
    "Jordan Henderson",
    "Chad Johnson",
    "Victoria Beckham",
    "Sydney Sweeney",
    "Adrian Chiles",
    "Denzel Washington",
    "Jack London",
    "Tom Holland",
    "Florence Pugh",
    "Chelsea Clinton",
    "Austin Butler",
    "Brooklyn Beckham",
    "India Hicks",
    "Jordan Peterson",
    "Chad Michael",
    "Paris Jackson",
    "Georgia May",
    "Sydney Leroux",
    "Lima Sopoaga",
    "Israel Adesanya",
    "Kenya Moore",
    "Dakota Johnson",
    "Madison Keys",
    "Cairo Santos",
    "Milan Kundera",
    "Sofia Coppola",
    "Santiago Bernabeu",
    "Lagos Kunga",
)
SENTENCES_PERSON = (
    "{p} opened a new shop on Tuesday, drawing a crowd of fans.",
    "{p} said on Monday the decision had been difficult.",
    "The award went to {p}, who thanked the organisers.",
    "Fans cheered as {p} arrived at the premiere.",
    "{p} told reporters the season had been a long one.",
    "A spokesperson for {p} declined to comment.",
    "In an interview, {p} spoke about family and work.",
    "{p} scored twice in the second half.",
)
PLACE_SENTENCES = (
    "Officials in {x} said the talks would resume next week.",
    "Trade between {x} and its neighbours rose by 4 percent.",
    "The delegation flew to {x} on Thursday for a summit.",
    "Exports from {x} fell sharply in the third quarter.",
    "Protesters gathered in central {x} on Saturday.",
)
ALIASES = {
    "Kiev": "Kyiv",
    "Peking": "Beijing",
    "Burma": "Myanmar",
    "Bombay": "Mumbai",
    "Holland": "Netherlands",
    "Persia": "Iran",
    "Ceylon": "Sri Lanka",
    "Zaire": "Democratic Republic of the Congo",
    "Rangoon": "Yangon",
    "Calcutta": "Kolkata",
    "Madras": "Chennai",
    "Saigon": "Ho Chi Minh City",
    "Leningrad": "Saint Petersburg",
    "Kharkov": "Kharkiv",
    "Odessa": "Odesa",
    "Turkey": "Türkiye",
    "Britain": "United Kingdom",
    "Czech Republic": "Czechia",
    "Ivory Coast": "Côte d'Ivoire",
    "Swaziland": "Eswatini",
    "Moldavia": "Moldova",
    "Lvov": "Lviv",
    "Canton": "Guangzhou",
    "Alma-Ata": "Almaty",
    "Teheran": "Tehran",
    "Byelorussia": "Belarus",
}
PLURAL_PLACES = {
    "Turkey": "Türkiye",
    "Chile": "Chile",
    "Jordan": "Jordan",
    "Georgia": "Georgia",
    "Cuba": "Cuba",
    "Guinea": "Guinea",
    "Sudan": "Sudan",
    "Yemen": "Yemen",
    "Germany": "Germany",
    "China": "China",
}
COMMON_PLURALS = (  # capitalised words that look like a place's plural and are not places
    ("Turkeys", "Shoppers bought fewer Turkeys than in 2023, the retailer said."),
    ("Turkeys", "Farmers said Turkeys were selling at record prices before the holidays."),
    ("Chiles", "Chiles, 58, has hosted the programme since 2010."),
    ("Chiles", "Roasted Chiles and beans were on the menu at the festival."),
    ("Jordans", "The new Jordans sold out within minutes of the release."),
    ("Georgias", "Both Georgias in the squad were named in the starting line-up."),
    ("Cubas", "The twins, known as the Cubas, ran the family bakery."),
    ("Guineas", "The horse won the 2,000 Guineas at Newmarket."),
    ("Guineas", "Breeders said Guineas and ducks were hit by the outbreak."),
    ("Chinas", "The Chinas in the cabinet were inherited from her grandmother."),
)


def _write(name: str, items: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / f"{name}.jsonl", "w", encoding="utf-8") as handle:
        for i, item in enumerate(items):
            handle.write(json.dumps({"id": f"{name}-{i:03d}", **item}, ensure_ascii=False) + "\n")
    positives = sum(1 for item in items if item["label"])
    print(f"{name}: {len(items)} items, {positives} positive, {len(items) - positives} negative")


def _reuters(path: str):
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def _sentence_around(text: str, start: int, end: int) -> tuple[str, int]:
    """The sentence of ``text`` around [start, end), one line, and the match's offset in it."""
    flat = " ".join(text.split())
    # map the offset into the flattened text
    prefix = " ".join(text[:start].split())
    offset = len(prefix) + (1 if prefix and text[:start][-1:].isspace() else 0)
    left = max(flat.rfind(". ", 0, offset), -1) + 2 if flat.rfind(". ", 0, offset) >= 0 else 0
    right = flat.find(". ", offset + (end - start))
    right = len(flat) if right < 0 else right + 1
    sentence = flat[left:right].strip()
    offset = offset - left - (len(flat[left:right]) - len(flat[left:right].lstrip()))
    dateline, rest = parse_dateline(sentence)  # the clean stage takes wire datelines off
    if dateline is not None:
        offset -= len(sentence) - len(rest)
        sentence = rest
    return sentence, offset


# --- places: aliases and plurals ---------------------------------------------------------------


def places(corpus: str) -> list[dict]:
    items = []
    for (form, canonical), template in zip(ALIASES.items(), cycle(PLACE_SENTENCES)):
        text = template.format(x=form)
        items.append(
            dict(
                family="places",
                source="written",
                text=text,
                form=form,
                start=text.index(form),
                place=canonical,
                label=True,
            )
        )
    for (form, canonical), template in zip(PLURAL_PLACES.items(), cycle(PLACE_SENTENCES)):
        text = f"Both {form}s were represented: " + template.format(x=form)
        items.append(
            dict(
                family="places",
                source="written",
                text=text,
                form=form + "s",
                start=text.index(form + "s"),
                place=canonical,
                label=True,
            )
        )
    for person, template in zip(PLACE_NAMED_PEOPLE, cycle(SENTENCES_PERSON)):
        text = template.format(p=person)
        for word in person.split():
            items.append(
                dict(
                    family="places",
                    source="written",
                    text=text,
                    form=word,
                    start=text.index(person) + person.index(word),
                    place=None,
                    label=False,
                )
            )
    for form, text in COMMON_PLURALS:
        items.append(
            dict(
                family="places",
                source="written",
                text=text,
                form=form,
                start=text.index(form),
                place=None,
                label=False,
            )
        )
    # Reuters: place words at the head of company names (not places by themselves) ...
    single = "|".join(
        [
            "Georgia",
            "Toronto",
            "Canada",
            "Chicago",
            "Japan",
            "Tokyo",
            "Singapore",
            "Cyprus",
            "Washington",
            "France",
            "Australia",
            "London",
            "America",
            "Taiwan",
            "Montreal",
            "Zurich",
            "China",
            "Scandinavia",
            "Canton",
        ]
    )
    company = re.compile(
        rf"\b({single})((?: [A-Z][a-z]+){{1,3}}) (?:Corp|Inc|Co|Ltd|Bank|Fund|Group)\b"
    )
    alias = re.compile(
        r"(?<!of\s)\b(Peking|Burma|Bombay|Zaire|Ceylon|Kampuchea|Madras|Calcutta|Leningrad)\b(?! [A-Z])"
    )
    seen, neg, pos = set(), 0, 0
    for article in _reuters(corpus):
        body = article.get("body") or ""
        for match in company.finditer(body):
            sentence, offset = _sentence_around(body, match.start(), match.end())
            if neg < 60 and sentence not in seen and sentence[offset:].startswith(match.group(1)):
                seen.add(sentence)
                neg += 1
                items.append(
                    dict(
                        family="places",
                        source="reuters",
                        text=sentence,
                        form=match.group(1),
                        start=offset,
                        place=None,
                        label=False,
                    )
                )
        for match in alias.finditer(body):
            sentence, offset = _sentence_around(body, match.start(), match.end())
            if (
                pos < 40
                and sentence not in seen
                and len(sentence) < 400
                and sentence[offset:].startswith(match.group(1))
            ):
                seen.add(sentence)
                pos += 1
                canonical = {
                    "Peking": "Beijing",
                    "Burma": "Myanmar",
                    "Bombay": "Mumbai",
                    "Zaire": "Democratic Republic of the Congo",
                    "Ceylon": "Sri Lanka",
                    "Kampuchea": "Cambodia",
                    "Madras": "Chennai",
                    "Calcutta": "Kolkata",
                    "Leningrad": "Saint Petersburg",
                }[match.group(1)]
                items.append(
                    dict(
                        family="places",
                        source="reuters",
                        text=sentence,
                        form=match.group(1),
                        start=offset,
                        place=canonical,
                        label=True,
                    )
                )
    return items


# --- possessives -------------------------------------------------------------------------------


def possessives(corpus: str) -> list[dict]:
    items = []
    places = [
        "Turkey",
        "Britain",
        "Kiev",
        "Burma",
        "Holland",
        "Japan",
        "Brazil",
        "Chile",
        "Jordan",
        "Georgia",
        "Paris",
        "Moscow",
        "Germany",
        "Ivory Coast",
        "China",
    ]
    canon = {
        "Turkey": "Türkiye",
        "Britain": "United Kingdom",
        "Kiev": "Kyiv",
        "Burma": "Myanmar",
        "Holland": "Netherlands",
        "Ivory Coast": "Côte d'Ivoire",
    }
    templates = (
        "{x}'s economy grew faster than expected last year.",
        "Officials said {x}'s foreign ministry would respond on Friday.",
        "The report criticised {x}’s handling of the crisis.",
    )
    for place, template in zip(places * 2, cycle(templates)):
        text = template.format(x=place)
        items.append(
            dict(
                family="possessives",
                source="written",
                text=text,
                form=place + text[text.index(place) + len(place) :][:2],
                start=text.index(place),
                place=canon.get(place, place),
                label=True,
            )
        )
    people = [p for p in PLACE_NAMED_PEOPLE]
    templates = (
        "{f} {s}'s new film opens on Friday. {f}'s fans queued overnight.",
        "Fans praised {f} {s}. Later {s}'s agent confirmed the deal.",
        "{f} {s} spoke after the match. {f}'s goal decided it.",
    )
    for person, template in zip(people, cycle(templates)):
        first, surname = person.split(" ", 1)
        text = template.format(f=first, s=surname)
        word = first if "{f}'s" in template else surname
        form = word + "'s"
        start = text.index(form)
        items.append(
            dict(
                family="possessives",
                source="written",
                text=text,
                form=form,
                start=start,
                place=None,
                label=False,
            )
        )
    poss = re.compile(
        r"(?<!of\s)\b(Japan|Brazil|Canada|China|Taiwan|Britain|Australia|Italy|Mexico|Iran|Norway|Peru)'s\b"
    )
    canon_reuters = {"Britain": "United Kingdom"}
    count, seen = 0, set()
    for article in _reuters(corpus):
        body = article.get("body") or ""
        for match in poss.finditer(body):
            sentence, offset = _sentence_around(body, match.start(), match.end())
            if (
                count < 40
                and len(sentence) < 300
                and sentence not in seen
                and sentence[offset:].startswith(match.group())
            ):
                count += 1
                seen.add(sentence)
                items.append(
                    dict(
                        family="possessives",
                        source="reuters",
                        text=sentence,
                        form=match.group(),
                        start=offset,
                        place=canon_reuters.get(match.group(1), match.group(1)),
                        label=True,
                    )
                )
                break
    return items


# --- run-together names ------------------------------------------------------------------------


def _fuse(first: str, surname: str, i: int) -> str:
    """A machine-translation fusion: the first name slightly garbled, then the surname."""
    garbled = first[:-1] + "a" if i % 2 else first
    return garbled + surname.lower()


def run_together() -> list[dict]:
    items = []
    for i, (first, surname) in enumerate(zip(FIRST, SURNAMES)):
        full = f"{first} {surname}"
        fused = _fuse(first, surname, i)
        text = (
            f"{full} arrived in the capital on Monday for the talks. "
            f"Later, {fused} said the sides had made progress."
        )
        items.append(
            dict(
                family="run_together",
                source="written",
                text=text,
                full=full,
                word=fused,
                label=True,
            )
        )
    # hard negatives: another person's surname that ends with the first person's surname
    pairs = [
        ("Mike Donald", "Macdonald"),
        ("Carl Sen", "Christensen"),
        ("Paul Son", "Peterson"),
        ("Tom Kins", "Tomkins"),
        ("Ann Derson", "Anderson"),
        ("Rob Inson", "Robinson"),
        ("Dan Iels", "Daniels"),
        ("Will Iams", "Williams"),
        ("Rick Ards", "Richards"),
        ("Ed Wards", "Edwards"),
        ("Steve Enson", "Stevenson"),
        ("Jack Son", "Jackson"),
        ("Fred Ericks", "Fredericks"),
        ("Herb Ert", "Herbert"),
        ("Nick Olson", "Nickolson"),
        ("Mar Tinez", "Martinez"),
        ("Gil Bert", "Gilbert"),
        ("Al Bertson", "Albertson"),
        ("Mat Thews", "Matthews"),
        ("Pat Terson", "Patterson"),
        ("Hal Vorsen", "Halvorsen"),
        ("Kim Berley", "Kimberley"),
        ("Don Aldson", "Donaldson"),
        ("Sam Uelson", "Samuelson"),
        ("Han Sen", "Hansen"),
        ("Ger Aldine", "Geraldine"),
        ("Mac Kenzie", "Mackenzie"),
        ("Fitz Gerald", "Fitzgerald"),
        ("Van Dyke", "Vandyke"),
        ("Mal Colm", "Malcolm"),
    ]
    others = ["Maria", "Jonas", "Chloe", "Pedro", "Ines", "Viktor", "Lisa", "Omar", "Nora", "Ivan"]
    for (full, compound), other in zip(pairs, cycle(others)):
        text = (
            f"{full} told the committee the plan was ready. "
            f"{other} {compound}, an independent expert, disagreed. {compound} said more work was needed."
        )
        items.append(
            dict(
                family="run_together",
                source="written",
                text=text,
                full=full,
                word=compound,
                label=False,
            )
        )
    return items


# --- role stripping ----------------------------------------------------------------------------


def roles() -> list[dict]:
    items = []
    templates = (
        "{m} said on Monday the plan would go ahead.",
        "The statement was read out by {m} at the end of the meeting.",
        "{m}, who joined in 2019, declined to comment.",
    )
    people = [f"{f} {s}" for f, s in zip(FIRST, SURNAMES)]
    for i, (role, person) in enumerate(zip(ROLES + list(ROLE_PHRASES), cycle(people))):
        mention = f"{role} {person}"
        text = templates[i % 3].format(m=mention)
        if text[0].islower():
            text = text[0].upper() + text[1:]
        items.append(
            dict(
                family="roles",
                source="written",
                text=text,
                mention=mention,
                start=text.index(mention),
                name=person,
                label=True,
            )
        )
    for i, (first, surname) in enumerate(zip(WORD_FIRST_NAMES, cycle(SURNAMES[::-1]))):
        person = f"{first} {surname}"
        text = templates[i % 3].format(m=person)
        items.append(
            dict(
                family="roles",
                source="written",
                text=text,
                mention=person,
                start=text.index(person),
                name=person,
                label=False,
            )
        )
    for person in (
        "Ursula von der Leyen",
        "Charles de Gaulle",
        "Ludwig van Beethoven",
        "Martin Luther King",
        "Mary Ann Evans",
        "Jean Claude Juncker",
        "Anna Maria Horvat",
        "John Paul Jones",
        "Sarah Jessica Parker",
        "Mark Anthony Brennan",
        "Billy Bob Thornton",
        "Bill de Blasio",
        "Lee Hsien Loong",
        "Kim Jong Un",
        "Juan Carlos Ferreira",
        "Luis Inacio Barros",
        "Jose Maria Aznar",
        "Mary Kate Olsen",
        "Hans Peter Keller",
        "Ana Sofia Mendes",
    ):
        text = f"{person} spoke at the conference on Wednesday."
        items.append(
            dict(
                family="roles",
                source="written",
                text=text,
                mention=person,
                start=0,
                name=person,
                label=False,
            )
        )
    return items


# --- first-name compatibility ----------------------------------------------------------------


def first_names() -> list[dict]:
    items = []
    pairs = list(zip(FIRST, FIRST[1:] + FIRST[:1], SURNAMES * 2))
    roles_a = (
        "the finance director",
        "a lawyer for the company",
        "the club's coach",
        "an economist at the bank",
        "the union leader",
    )
    for i, (a, b, surname) in enumerate(pairs[:30]):
        if a[0] == b[0]:
            continue
        text_a = f"{a} {surname}, {roles_a[i % 5]}, resigned on Friday."
        text_b = f"{b} {surname}, {roles_a[(i + 1) % 5]}, said the board would meet."
        # same article
        items.append(
            dict(
                family="first_names",
                source="written",
                texts=[f"{text_a} {text_b}"],
                a=[0, f"{a} {surname}"],
                b=[0, f"{b} {surname}"],
                label=False,
            )
        )
        # different articles
        items.append(
            dict(
                family="first_names",
                source="written",
                texts=[text_a, text_b],
                a=[0, f"{a} {surname}"],
                b=[1, f"{b} {surname}"],
                label=False,
            )
        )
    same_initial = [
        ("John", "Jane"),
        ("Matt", "Martyn"),
        ("Daniel", "Diana"),
        ("Peter", "Paula"),
        ("Simon", "Sarah"),
        ("Mark", "Maria"),
        ("Alan", "Alice"),
        ("Chris", "Claire"),
        ("Kit", "Keith"),
        ("Tom", "Tina"),
        ("Robert", "Rosa"),
        ("Greg", "Greta"),
    ]
    for (a, b), surname in zip(same_initial, cycle(SURNAMES)):
        text = f"{a} {surname} won the first race. {b} {surname} finished second."
        items.append(
            dict(
                family="first_names",
                source="written",
                texts=[text],
                a=[0, f"{a} {surname}"],
                b=[0, f"{b} {surname}"],
                label=False,
            )
        )
        # an initial with two candidates in its article: ambiguous, must not link
        text = (
            f"{a} {surname} and {b} {surname} both ran. {a[0]}. {surname} said the course was hard."
        )
        items.append(
            dict(
                family="first_names",
                source="written",
                texts=[text],
                a=[0, f"{a} {surname}"],
                b=[0, f"{a[0]}. {surname}"],
                label=False,
            )
        )
        # an initial with one candidate: links
        text = f"{a} {surname} won the race on Sunday. {a[0]}. {surname} said the course was hard."
        items.append(
            dict(
                family="first_names",
                source="written",
                texts=[text],
                a=[0, f"{a} {surname}"],
                b=[0, f"{a[0]}. {surname}"],
                label=True,
            )
        )
    variants = [
        ("Sergey", "Sergei"),
        ("Aleksandr", "Alexandr"),
        ("Mikhail", "Mihail"),
        ("Yuri", "Yury"),
        ("Dmitry", "Dmitriy"),
        ("Andrei", "Andrey"),
        ("Alexey", "Alexei"),
        ("Nikolay", "Nikolai"),
        ("Grigory", "Grigoriy"),
        ("Anatoly", "Anatoliy"),
    ]
    for (a, b), surname in zip(
        variants, cycle(["Petrov", "Ivanov", "Sokolov", "Volkov", "Morozov"])
    ):
        items.append(
            dict(
                family="first_names",
                source="written",
                texts=[
                    f"{a} {surname} arrived in Geneva on Monday.",
                    f"{b} {surname} said the talks were useful.",
                ],
                a=[0, f"{a} {surname}"],
                b=[1, f"{b} {surname}"],
                label=True,
            )
        )
    # different first names that may be spellings of one name: one person only on evidence
    # beyond the surname (the same role next to both, no competing candidate; issue #19)
    # (pairs whose folding keys differ: "Mohamed" / "Mohammed" fold alike and are one name anyway)
    spellings = [
        ("Jon", "John"),
        ("Sara", "Sarah"),
        ("Teresa", "Theresa"),
        ("Jeffrey", "Jeffery"),
        ("Katarina", "Katharina"),
        ("Hana", "Hannah"),
        ("Ahmad", "Ahmed"),
        ("Yusuf", "Yousef"),
        ("Deborah", "Debora"),
        ("Tomas", "Thomas"),
    ]
    roles = ("envoy", "coach", "spokesman", "ambassador", "chairman")
    for i, ((a, b), surname) in enumerate(zip(spellings, cycle(SURNAMES[10:]))):
        role, other_role = roles[i % 5], roles[(i + 2) % 5]
        first_text = f"The {role}, {a} {surname}, said the talks would resume in June."
        # same role in both mentions, no other person with that surname: one person
        items.append(
            dict(
                family="first_names",
                source="written",
                texts=[first_text, f"According to {role} {b} {surname}, both sides met."],
                a=[0, f"{a} {surname}"],
                b=[1, f"{b} {surname}"],
                label=True,
            )
        )
        # different roles: no evidence beyond the surname, two people
        items.append(
            dict(
                family="first_names",
                source="written",
                texts=[first_text, f"{b} {surname}, the {other_role}, said the plan had support."],
                a=[0, f"{a} {surname}"],
                b=[1, f"{b} {surname}"],
                label=False,
            )
        )
        # the same role, but a competing candidate with that surname: no merge
        rival = FIRST[(i * 3) % len(FIRST)]
        items.append(
            dict(
                family="first_names",
                source="written",
                texts=[
                    first_text,
                    f"{rival} {surname}, a lawyer, declined to comment.",
                    f"According to {role} {b} {surname}, both sides met.",
                ],
                a=[0, f"{a} {surname}"],
                b=[2, f"{b} {surname}"],
                label=False,
            )
        )
    # the same role, different names that are not spellings of one name (another gender's
    # form, another name with the same consonants): two people
    others = [
        ("Dan", "Dana"),
        ("Paul", "Paula"),
        ("Mario", "Maria"),
        ("Louis", "Louise"),
        ("John", "Jane"),
        ("Mark", "Maria"),
        ("Eric", "Erica"),
        ("Robert", "Roberta"),
        ("Carl", "Carla"),
        ("Greg", "Greta"),
    ]
    for i, ((a, b), surname) in enumerate(zip(others, cycle(SURNAMES[3:]))):
        role = roles[i % 5]
        items.append(
            dict(
                family="first_names",
                source="written",
                texts=[
                    f"The {role}, {a} {surname}, said the talks would resume in June.",
                    f"According to {role} {b} {surname}, both sides met.",
                ],
                a=[0, f"{a} {surname}"],
                b=[1, f"{b} {surname}"],
                label=False,
            )
        )
    for first, surname in zip(FIRST[:20], cycle(SURNAMES[5:])):
        items.append(
            dict(
                family="first_names",
                source="written",
                texts=[
                    f"{first} {surname} opened the meeting on Monday.",
                    f"On Tuesday {first} {surname} closed it.",
                ],
                a=[0, f"{first} {surname}"],
                b=[1, f"{first} {surname}"],
                label=True,
            )
        )
    return items


# --- line repair -------------------------------------------------------------------------------


def line_repair(corpus: str) -> list[dict]:
    """Items are texts with a line boundary ``after`` (index of the line before it) that must be
    kept (label True: a heading before a byline, a name or a sentence) or joined (False)."""
    items = []
    before = [
        "The committee met for three hours on Tuesday and discussed the budget,",
        "the new rules for drivers and the plans for the port, officials said",
        "after the meeting ended late in the evening.",
    ]
    after = [
        "the talks would continue next week, according to an agenda seen by",
        "reporters, and that a final decision was expected before the summer.",
    ]
    headings = (
        "Ministers agreed Plan B",
        "Board backs Option A",
        "Talks move to Phase C",
        "Council picks Route D",
        "Union rejects Offer E",
        "Regional Ministers Agree New Plan For Port Expansion",
        "Central Bank Holds Rates Steady As Inflation Eases",
        "Rail Operators Announce Timetable Changes For Winter",
        "Farm Ministers Meet Again Over Grain Export Quotas",
        "Opposition Leaders Call For Inquiry Into Contracts",
    )
    starts = (
        "A. Smith, a spokesman for the ministry, said",
        "J. R. Moreau, a senior official, told reporters",
        "E. Novak, who chairs the committee, said",
        "By Jane Okafor and Tom Brennan",
        "Maria Lindqvist, the chief executive, said",
        "The government said on Monday that",
    )
    for heading in headings:
        for start in starts:
            items.append(
                dict(
                    family="line_repair",
                    source="written",
                    lines=before + [heading, start] + after,
                    after=3,
                    label=True,
                )
            )
    for first, rest in (
        ("The chief U", "S. envoy arrived in the capital."),
        ("Talks between the U", "K. and the EU resumed."),
        ("The company said third-quarter profit at its U", "S. unit rose."),
        ("Officials from the U", "N. agency visited the camp."),
    ):
        items.append(
            dict(family="line_repair", source="written", lines=[first, rest], after=0, label=False)
        )
    # wrapped lines that end in the middle of a name or an abbreviation: joined
    wrapped_ends = (
        ("the ministry said on Tuesday that its spokeswoman, Anna", "Kowalski, would"),
        ("the agreement was signed in the presence of the U", "S. ambassador and"),
        ("the report was written by a panel chaired by Professor", "Helen Whitfield and"),
        ("officials said the new terminal would be opened by Peter", "Gallagher, the"),
        ("the deal, which needs approval from the E", "U. competition"),
        ("the company's chief executive, who took over from Simon", "Doyle last year,"),
        ("a statement issued late on Monday by the Finance Ministry", "said the"),
        ("shares of the company rose 4 percent after the New York", "Stock Exchange"),
        ("the talks were attended by delegations from Britain, France", "and Germany"),
        ("the minister, who spoke to reporters after meeting Maria", "Lindqvist and"),
    )
    for end, start in wrapped_ends:
        lines = [
            before[0],
            before[1],
            end,
            start + " other officials in the capital on Monday,",
            after[0],
            after[1],
        ]
        items.append(
            dict(family="line_repair", source="written", lines=lines, after=2, label=False)
        )
    # Reuters: wrapped lines inside an indented paragraph whose next line starts with a capital
    # letter (a name, an abbreviation, a proper noun): they must be joined ...
    joined = kept = 0
    for article in _reuters(corpus):
        lines = (article.get("body") or "").split("\n")
        if len(lines) < 6:
            continue
        for k in range(1, len(lines) - 1):
            a, b = lines[k], lines[k + 1]
            if (
                joined < 90
                and a.strip()
                and b[:1].isupper()
                and not b.startswith(" ")
                and len(a) >= 55
                and not re.search(r"[.!?:;]\"?$", a.strip())
            ):
                joined += 1
                items.append(
                    dict(family="line_repair", source="reuters", lines=lines, after=k, label=False)
                )
                break
        # ... and a title line put on top of the body (a heading before a sentence) is kept
        title = (article.get("title") or "").strip()
        if kept < 50 and title and lines[0][:1].isupper() and len(title.split()) >= 2:
            kept += 1
            items.append(
                dict(
                    family="line_repair",
                    source="reuters",
                    lines=[title.title()] + lines,
                    after=0,
                    label=True,
                )
            )
        if joined >= 90 and kept >= 50:
            break
    return items


def main(corpus: str) -> None:
    _write("places", places(corpus))
    _write("possessives", possessives(corpus))
    _write("run_together", run_together())
    _write("roles", roles())
    _write("first_names", first_names())
    _write("line_repair", line_repair(corpus))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m benchmarks.rule_sets REUTERS.jsonl")
    main(sys.argv[1])
