"""Quality of the entity and event stages on the labelled sets, under each installed model.

    python -m benchmarks.quality [--models en_core_web_sm en_news_ner_conll] [--show-errors]

Labelled sets (tests/fixtures/, labelled by hand, see docs/events.md and docs/entities.md):

- ``event_sentences.jsonl``: sentences from the Reuters-21578 corpus (and a few written ones,
  source "written") with the set of event types each reports or discusses. A sentence is tagged
  with a type when ``tag_events`` gives an alertable tag of that type on the sentence alone.
  Prints precision and recall per event type and overall (micro).
- ``entity_pairs.jsonl``: pairs of mentions in two short texts, labelled same / different entity,
  with a pair kind (shared surname, transliteration, acronym, determiner/possessive, ...). A pair is
  predicted "same" when both mentions resolve to one entity id. Prints precision and recall of
  "same" (merges) per kind and overall; pairs that also label the mentions' types (``type_a``,
  ``type_b``: a type, or "!person" for any type but person) print the share of mentions typed
  right per kind (clubs and parties vs persons).

Nothing here is timed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.stages.entities import InMemoryEntityRegistry, extract_entities, parse
from pipeline.stages.events import tag_events, taxonomy
from pipeline.stages.nlp import ModelNotInstalledError, load_nlp, loadable_name
from schemas.models import CleanArticle

FIXTURES = REPO / "tests" / "fixtures"
EVENT_SET = FIXTURES / "event_sentences.jsonl"
PAIR_SET = FIXTURES / "entity_pairs.jsonl"
NOW = datetime.now(UTC)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def prf(tp: int, fp: int, fn: int) -> tuple[float, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall


def event_predictions(nlp, items: list[dict]) -> list[set[str]]:
    docs = parse(nlp, [item["text"] for item in items], batch_size=64)
    return [{t.type for t in tag_events(doc) if t.alertable} for doc in docs]


def score_events(items: list[dict], predicted: list[set[str]]) -> dict[str, Counter]:
    counts: dict[str, Counter] = {name: Counter() for name in taxonomy().types}
    for item, got in zip(items, predicted):
        want = set(item["events"])
        for name in counts:
            if name in want and name in got:
                counts[name]["tp"] += 1
            elif name in got:
                counts[name]["fp"] += 1
            elif name in want:
                counts[name]["fn"] += 1
    return counts


def _article(key: str, text: str) -> CleanArticle:
    return CleanArticle(id=key, title="", body=text, language="en", ingested_at=NOW)


def _entity_of(entities, mention: str):
    for entity in entities:
        if any(form.lower() == mention.lower() for form in entity.forms):
            return entity
    for entity in entities:  # the mention as part of a longer form ("EU" inside "the EU's")
        if any(mention.lower() in form.lower() for form in entity.forms):
            return entity
    return None


def _resolve_pair(nlp, pair: dict):
    """The entities of a pair's two mentions (None: not found), each pair in its own registry:
    article ``a`` then article ``b`` (cross-article resolution), or a single article when ``b``
    is absent (within-article resolution)."""
    texts = [pair["a"]] + ([pair["b"]] if pair.get("b") else [])
    articles = [_article(f"p{i}", t) for i, t in enumerate(texts)]
    docs = parse(nlp, texts, batch_size=2)
    registry = InMemoryEntityRegistry()
    entities = [extract_entities([a], [d], registry)[0] for a, d in zip(articles, docs)]
    return _entity_of(entities[0], pair["mention_a"]), _entity_of(entities[-1], pair["mention_b"])


def pair_predictions(nlp, pairs: list[dict]) -> list[bool | None]:
    """Whether each pair's two mentions resolve to one id (None: a mention was not found)."""
    out: list[bool | None] = []
    for pair in pairs:
        first, second = _resolve_pair(nlp, pair)
        out.append(None if first is None or second is None else first.id == second.id)
    return out


def type_predictions(nlp, pairs: list[dict]) -> list[tuple[str | None, str | None]]:
    """The entity type each pair's two mentions got (None: not found)."""
    out: list[tuple[str | None, str | None]] = []
    for pair in pairs:
        first, second = _resolve_pair(nlp, pair)
        out.append((first.type if first else None, second.type if second else None))
    return out


def _type_matches(want: str, got: str | None) -> bool:
    """``want`` is a type ("organization") or "!type" for any other type but that one (a party
    is a group under one label set and an organisation under the other, never a person)."""
    if want.startswith("!"):
        return got is not None and got != want[1:]
    return want == got


def score_types(pairs: list[dict], predicted: list[tuple[str | None, str | None]]) -> Counter:
    """Pairs that also label their mentions' types (``type_a``/``type_b``): per kind, how many
    labelled mentions got that type."""
    counts: Counter = Counter()
    for pair, (got_a, got_b) in zip(pairs, predicted):
        for want, got in ((pair.get("type_a"), got_a), (pair.get("type_b"), got_b)):
            if want:
                counts[(pair["kind"], "total")] += 1
                counts[(pair["kind"], "right")] += int(_type_matches(want, got))
    return counts


def score_pairs(pairs: list[dict], predicted: list[bool | None]) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    for pair, same in zip(pairs, predicted):
        c = counts.setdefault(pair["kind"], Counter())
        if same is None:
            c["missing"] += 1
        if pair["same"] and same:
            c["tp"] += 1
        elif not pair["same"] and same:
            c["fp"] += 1
        elif pair["same"]:
            c["fn"] += 1
        else:
            c["tn"] += 1
    return counts


def _print_table(title: str, counts: dict[str, Counter]) -> tuple[float, float]:
    print(f"  {title:<22} {'P':>6} {'R':>6}   tp  fp  fn")
    total = Counter()
    for name, c in counts.items():
        p, r = prf(c["tp"], c["fp"], c["fn"])
        extra = f"  ({c['missing']} mention(s) not found)" if c.get("missing") else ""
        print(f"  {name:<22} {p:6.3f} {r:6.3f}  {c['tp']:3d} {c['fp']:3d} {c['fn']:3d}{extra}")
        total.update(c)
    p, r = prf(total["tp"], total["fp"], total["fn"])
    print(
        f"  {'OVERALL':<22} {p:6.3f} {r:6.3f}  {total['tp']:3d} {total['fp']:3d} {total['fn']:3d}"
    )
    return p, r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["en_core_web_sm", "en_news_ner_conll"])
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args(argv)
    events = read_jsonl(EVENT_SET)
    pairs = read_jsonl(PAIR_SET) if PAIR_SET.exists() else []
    print(f"labelled sets: {len(events)} event sentences, {len(pairs)} entity pairs")
    for model in args.models:
        try:
            nlp = load_nlp(model)
        except ModelNotInstalledError as exc:
            print(f"\n== {model}: skipped ({exc})")
            continue
        print(f"\n== model {model} (loaded as {loadable_name(model)})")
        predicted = event_predictions(nlp, events)
        print(" events (sentence-level, alertable tags):")
        _print_table("type", score_events(events, predicted))
        if args.show_errors:
            for item, got in zip(events, predicted):
                want = set(item["events"])
                if want != got:
                    print(f"    want {sorted(want)} got {sorted(got)}: {item['text'][:160]}")
        if pairs:
            same = pair_predictions(nlp, pairs)
            print(" entity merges (pair predicted same = one id):")
            _print_table("pair kind", score_pairs(pairs, same))
            if args.show_errors:
                for pair, got in zip(pairs, same):
                    if got is None or got != pair["same"]:
                        print(
                            f"    {pair['kind']}: want same={pair['same']} got {got}: "
                            f"{pair['mention_a']!r} / {pair['mention_b']!r}"
                        )
            typed = [p for p in pairs if p.get("type_a") or p.get("type_b")]
            if typed:
                types = type_predictions(nlp, typed)
                counts = score_types(typed, types)
                print(" entity types (pairs that label them: mentions with the right type):")
                for kind in dict.fromkeys(p["kind"] for p in typed):
                    right, total = counts[(kind, "right")], counts[(kind, "total")]
                    print(f"  {kind:<22} {right / total:6.3f}  {right:3d}/{total}")
                if args.show_errors:
                    for pair, (got_a, got_b) in zip(typed, types):
                        for key, got in (("a", got_a), ("b", got_b)):
                            want = pair.get(f"type_{key}")
                            if want and not _type_matches(want, got):
                                print(
                                    f"    {pair['kind']}: {pair[f'mention_{key}']!r} "
                                    f"want {want} got {got}"
                                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
