"""The producer against the real broker: articles on the raw topic, rejections dead-lettered."""

from __future__ import annotations

import json
import random
import string
import uuid
from pathlib import Path

import pytest

from pipeline.ingest import iter_inputs, publish
from pipeline.settings import get_settings, reset_settings
from schemas import DeadLetter, RawArticle

pytestmark = pytest.mark.integration

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


@pytest.fixture
def settings(kafka_bootstrap, monkeypatch, tmp_path):
    from pipeline.kafka import ensure_topics

    monkeypatch.setenv("NEWS_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("NEWS_TOPIC_PREFIX", f"ingest{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("NEWS_DATA_DIR", str(tmp_path / "data"))
    reset_settings()
    ensure_topics(get_settings())
    yield get_settings()
    reset_settings()


def read_topic(settings, name: str, expected: int, timeout_ms: int = 15_000) -> list:
    """The records of a topic (all partitions), once ``expected`` arrived or the time is up."""
    from pipeline.kafka import make_consumer

    consumer = make_consumer(settings.topic(name), settings=settings, consumer_timeout_ms=timeout_ms)
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
        "\n".join([
            '{"title": "broken", "body": ',
            json.dumps({"title": "no body here"}),
            json.dumps({"title": 42, "body": "Wrong title type."}),
        ]) + "\n",
        encoding="utf-8",
    )
    (directory / "empty.txt").write_bytes(b"")
    (directory / "garbage.bin").write_bytes(bytes(random.Random(7).randrange(256) for _ in range(4096)))
    return directory


def test_seeds_and_malformed_input_reach_their_topics(settings, tmp_path):
    from pipeline.kafka import make_producer

    bad = malformed_inputs(tmp_path / "bad")
    rng = random.Random(3)  # random letters: a 10 MB body that gzip cannot shrink to nothing
    huge_body = "".join(rng.choices(string.ascii_lowercase + "     ", k=10_000_000))
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"id": "huge-1", "title": "huge", "body": huge_body}), encoding="utf-8")

    producer = make_producer(settings)
    try:
        report = publish(iter_inputs([SEEDS, bad, huge]), producer, settings, progress=False)
    finally:
        producer.close()

    seed_ids = [item.id for item in iter_inputs([SEEDS])]
    assert not report.failed and report.stopped is None
    assert report.sent == 6 and report.ids == [*seed_ids, "huge-1"]
    assert len(report.rejected) == 5

    raw = read_topic(settings, "raw", expected=6)
    articles = {record.key.decode(): RawArticle.model_validate_json(record.value) for record in raw}
    assert sorted(articles) == sorted(report.ids)
    assert all(article.id == key for key, article in articles.items())
    assert articles["huge-1"].body == huge_body

    letters = [DeadLetter.model_validate_json(r.value) for r in read_topic(settings, "deadletter", expected=5)]
    assert len(letters) == 5
    by_origin = {letter.key: letter for letter in letters}
    assert set(by_origin) == {r.origin for r in report.rejected}
    for rejected in report.rejected:
        letter = by_origin[rejected.origin]
        assert letter.stage == "ingest" and letter.error == f"{rejected.origin}: {rejected.reason}"
        assert letter.payload_encoding in ("utf-8", "base64")
    errors = " | ".join(letter.error for letter in letters)
    for reason in ("invalid JSON at line 1", "missing field 'body'",
                   "field 'title' must be a string, got int", "empty file", "not UTF-8 text"):
        assert reason in errors
    garbage = by_origin[str(bad / "garbage.bin")]
    assert garbage.payload_encoding == "base64"
