"""The producer against the real broker: articles on the raw topic, rejections dead-lettered."""

from __future__ import annotations

import json
import random
import string
import uuid
from pathlib import Path

import pytest

from pipeline.settings import get_settings, reset_settings
from pipeline.sources.ingest import iter_inputs, publish
from schemas import DeadLetter, RawArticle

pytestmark = pytest.mark.integration

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


@pytest.fixture
def settings(kafka_bootstrap, monkeypatch, tmp_path):
    from pipeline.infra.kafka import ensure_topics

    monkeypatch.setenv("NEWS_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("NEWS_TOPIC_PREFIX", f"ingest{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("NEWS_DATA_DIR", str(tmp_path / "data"))
    reset_settings()
    ensure_topics(get_settings())
    yield get_settings()
    reset_settings()


def read_topic(settings, name: str, expected: int, timeout_ms: int = 15_000) -> list:
    """The records of a topic (all partitions), once ``expected`` arrived or the time is up."""
    from pipeline.infra.kafka import make_consumer

    consumer = make_consumer(
        settings.topic(name), settings=settings, consumer_timeout_ms=timeout_ms
    )
    records = []
    try:
        for record in consumer:
            records.append(record)
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


def malformed_inputs(directory: Path) -> Path:
    directory.mkdir()
    (directory / "bad.jsonl").write_text(
        "\n".join(
            [
                '{"title": "broken", "body": ',
                json.dumps({"title": "no body here"}),
                json.dumps({"title": 42, "body": "Wrong title type."}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    (directory / "empty.txt").write_bytes(b"")
    (directory / "garbage.bin").write_bytes(
        bytes(random.Random(7).randrange(256) for _ in range(4096))
    )
    return directory


def test_seeds_and_malformed_input_reach_their_topics(settings, tmp_path):
    from pipeline.infra.kafka import make_producer

    bad = malformed_inputs(tmp_path / "bad")
    rng = random.Random(3)  # random letters: a 10 MB body that gzip cannot shrink to nothing
    huge_body = "".join(rng.choices(string.ascii_lowercase + "     ", k=10_000_000))
    huge = tmp_path / "huge.json"
    huge.write_text(
        json.dumps({"id": "huge-1", "title": "huge", "body": huge_body}), encoding="utf-8"
    )

    producer = make_producer(settings)
    try:
        report = publish(iter_inputs([SEEDS, bad, huge]), producer, settings, progress=False)
    finally:
        producer.close()

    seed_ids = [item.id for item in iter_inputs([SEEDS])]
    assert not report.failed and report.stopped is None
    # a 10 MB article is over NEWS_MAX_ARTICLE_BYTES: refused at the door, its 10 MB payload travels
    # to the dead-letter topic (docs/bad-input.md, S02)
    assert report.sent == 5 and report.ids == seed_ids
    assert len(report.rejected) == 6

    raw = read_topic(settings, "raw", expected=5)
    articles = {record.key.decode(): RawArticle.model_validate_json(record.value) for record in raw}
    assert sorted(articles) == sorted(report.ids)
    assert all(article.id == key for key, article in articles.items())

    letters = [
        DeadLetter.model_validate_json(r.value)
        for r in read_topic(settings, "deadletter", expected=6)
    ]
    assert len(letters) == 6
    by_origin = {letter.key: letter for letter in letters}
    assert set(by_origin) == {r.origin for r in report.rejected}
    for rejected in report.rejected:
        letter = by_origin[rejected.origin]
        assert letter.stage == "ingest" and letter.error == f"{rejected.origin}: {rejected.reason}"
        assert letter.payload_encoding in ("utf-8", "base64")
    errors = " | ".join(letter.error for letter in letters)
    for reason in (
        "invalid JSON at line 1",
        "missing field 'body'",
        "field 'title' must be a string, got int",
        "empty file",
        "not text in any known encoding",
        "(NEWS_MAX_ARTICLE_BYTES)",
    ):
        assert reason in errors
    garbage = by_origin[str(bad / "garbage.bin")]
    assert garbage.payload_encoding == "base64"
    huge_letter = by_origin[str(huge)]
    assert (
        json.loads(huge_letter.payload)["body"] == huge_body and not huge_letter.payload_truncated
    )
