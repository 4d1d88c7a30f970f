"""Casing statistics of English news words, for telling role nouns from names without a tagger.

A word that news text writes in lower case in the middle of sentences is a common word, not a
name; a common word that people *do* things with ("the aide said", "chairman John Smith") is a
role noun. These statistics come from a corpus (the Reuters-21578 wire, 19k articles) and are
stored in ``pipeline/data/casing.tsv`` (one word a line: lowercase count, capitalised count,
count before a capitalised word, count before a reporting verb — all mid-sentence). Rebuild with::

    python -m pipeline.stages.casing /path/to/corpus.jsonl [more.jsonl ...]

The stage code only reads the table (:func:`casing_table`); nothing here names a person or place.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CASING_PATH = Path(__file__).resolve().parents[1] / "data" / "casing.tsv"

_TOKEN = re.compile(r"[A-Za-z][A-Za-z'-]*|[.!?;:,\"()]")
_SENTENCE_OPENERS = frozenset('.!?:"(')
REPORTING_VERBS = frozenset(
    [
        "said",
        "says",
        "told",
        "added",
        "declined",
        "noted",
        "predicted",
        "estimated",
        "warned",
        "explained",
    ]
)
MIN_COUNT = 2
"""Words seen fewer times (in both cases together) are not stored."""


@dataclass(frozen=True, slots=True)
class WordCasing:
    """Mid-sentence counts of one word (lowercased) in the corpus."""

    lower: int = 0
    capitalised: int = 0
    before_capitalised: int = 0
    before_reporting_verb: int = 0

    @property
    def seen(self) -> bool:
        return self.lower + self.capitalised > 0


def count(texts: Iterable[str]) -> dict[str, WordCasing]:
    """Casing statistics of the words of ``texts`` (an iterable of article bodies)."""
    low: Counter[str] = Counter()
    cap: Counter[str] = Counter()
    pre: Counter[str] = Counter()
    said: Counter[str] = Counter()
    for text in texts:
        for line in text.split("\n"):
            tokens = _TOKEN.findall(line)
            for i, token in enumerate(tokens):
                if not token[0].isalpha() or i == 0 or tokens[i - 1] in _SENTENCE_OPENERS:
                    continue
                if token.isupper():
                    continue  # headlines, acronyms
                word = token.lower()
                nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
                if token.islower():
                    low[word] += 1
                    if nxt[:1].isupper() and not nxt.isupper():
                        pre[word] += 1
                    if nxt in REPORTING_VERBS:
                        said[word] += 1
                elif token[0].isupper() and token[1:].islower():
                    cap[word] += 1
    words = {w for w in low.keys() | cap.keys() if low[w] + cap[w] >= MIN_COUNT}
    return {w: WordCasing(low[w], cap[w], pre[w], said[w]) for w in words}


def write(table: dict[str, WordCasing], path: Path = CASING_PATH) -> None:
    lines = [
        f"{w}\t{c.lower}\t{c.capitalised}\t{c.before_capitalised}\t{c.before_reporting_verb}"
        for w, c in sorted(table.items())
    ]
    path.write_text("\n".join(lines) + "\n", "utf-8")


@lru_cache(maxsize=1)
def casing_table() -> dict[str, WordCasing]:
    """The stored statistics (empty when the table is missing)."""
    if not CASING_PATH.exists():
        return {}
    table = {}
    for line in CASING_PATH.read_text("utf-8").splitlines():
        word, *counts = line.split("\t")
        table[word] = WordCasing(*(int(c) for c in counts))
    return table


def word_casing(word: str) -> WordCasing:
    return casing_table().get(word.lower(), WordCasing())


def _bodies(paths: list[str]) -> Iterator[str]:
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line).get("body") or ""


if __name__ == "__main__":  # pragma: no cover - maintenance command
    if len(sys.argv) < 2:
        sys.exit("usage: python -m pipeline.stages.casing CORPUS.jsonl [...]")
    table = count(_bodies(sys.argv[1:]))
    write(table)
    print(f"{len(table):,} words -> {CASING_PATH}")
