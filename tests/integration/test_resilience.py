"""Duplicates, bad input and a killed worker, on the real broker, worker and node.

These run after test_gold (pytest keeps file order), on the same stack and seeds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pipeline.stages.index import enriched_ids, enriched_only
from schemas import DeadLetter, DuplicateRecord
from tests.integration.conftest import REPO, corpus_sample, group_consumed, wait_until

pytestmark = pytest.mark.integration


def _duplicates(stack) -> list[DuplicateRecord]:
    return [DuplicateRecord.model_validate_json(v) for v in stack.topic_values("duplicates")]


def _dead_letters(stack) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(v) for v in stack.topic_values("deadletter")]


def _alert_count(stack) -> int:
    return stack.count("alerts")


def test_resending_the_seeds_adds_nothing(stack):
    articles, alerts = stack.count("articles"), _alert_count(stack)
    records = len(_duplicates(stack))
    report = stack.publish([REPO / "seeds"])
    assert report.sent == 5
    wait_until(lambda: group_consumed(stack), what="the resent seeds consumed")
    # a redelivery of an article already processed is not a duplicate of itself: no record
    assert all(d.duplicate_of != d.article_id for d in _duplicates(stack))
    assert len(_duplicates(stack)) == records
    assert stack.count("articles") == articles
    assert _alert_count(stack) == alerts


def test_copy_with_boilerplate_and_punctuation_changes_is_a_duplicate(stack, tmp_path):
    original = (REPO / "seeds").glob("001_*.txt").__next__()
    text = original.read_text(encoding="utf-8")
    noisy = "Skip to content\nAdvertisement\n\n" + text.replace(",", "").replace(
        ". ", ".  "
    ).replace("\n", "\n\n")
    noisy += "\n\nAll rights reserved.\n"
    copy = tmp_path / "copy_of_001.txt"
    copy.write_text(noisy, encoding="utf-8")
    articles = stack.count("articles")
    report = stack.publish([copy])
    (copy_id,) = report.ids
    assert copy_id != stack.seed_ids["001"]
    record = wait_until(
        lambda: next((d for d in _duplicates(stack) if d.article_id == copy_id), None),
        what="dup record",
    )
    assert record.duplicate_of == stack.seed_ids["001"]
    assert stack.count("articles") == articles


def test_malformed_input_reaches_the_dead_letter_topic_and_the_stream_goes_on(stack, tmp_path):
    from pipeline.infra.kafka import make_producer

    bad = tmp_path / "bad.jsonl"
    good_body = (
        "Trade ministers of 12 countries met in Geneva on Tuesday to discuss tariffs on steel. " * 5
    )
    lines = [
        '{"title": "broken", "body": ',  # invalid JSON
        json.dumps({"title": "no body here"}),  # missing body
        json.dumps({"title": 42, "body": ["not", "a", "string"]}),  # wrong types
        json.dumps({"title": "Steel tariffs talks", "body": good_body, "source": "test"}),  # fine
    ]
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "garbage.bin").write_bytes(
        bytes(random.Random(7).randrange(256) for _ in range(4096))
    )
    huge = tmp_path / "huge.json"
    huge.write_text(
        json.dumps({"title": "huge", "body": "word " * 2_100_000, "source": "test"}),
        encoding="utf-8",
    )
    report = stack.publish([tmp_path])
    # garbage straight onto the raw topic, as a foreign producer might send it
    producer = make_producer(stack.settings)
    producer.send(
        stack.settings.topic("raw"), key="garbage", value=b"\xff\xfe\x00binary\x00garbage"
    ).get(30)
    producer.send(stack.settings.topic("raw"), key="nobody", value=b'{"title": "no body"}').get(30)
    producer.close()
    after = stack.publish([REPO / "tests" / "fixtures" / "after_bad_input.json"])

    stack.wait_indexed(after.ids)  # the stream went on
    good = report.ids  # the fine line of bad.jsonl (the huge article is refused at the door)
    letters = wait_until(
        lambda: (lambda ls: ls if len(ls) >= len(report.rejected) + 2 else None)(
            _dead_letters(stack)
        ),
        what="dead letters",
    )
    reasons = " | ".join(f"{l.stage}: {l.error}" for l in letters)
    assert len(report.rejected) >= 5, (
        report.rejected
    )  # invalid json, missing body, wrong types, empty, garbage
    assert any("JSON" in l.error for l in letters), reasons
    assert any("body" in l.error for l in letters), reasons
    assert any(l.payload_encoding == "base64" for l in letters), reasons
    assert any("NEWS_MAX_ARTICLE_BYTES" in l.error for l in letters), reasons
    assert all(l.payload or l.error for l in letters)
    assert len(good) >= 1


def test_worker_killed_mid_stream_loses_nothing_and_indexes_nothing_twice(stack, tmp_path):
    sample = corpus_sample(tmp_path, 0, 300)
    index = stack.settings.index("articles")
    stack.es.indices.refresh(index=index)
    before = stack.es.count(index=index, query=enriched_only())["count"]
    report = stack.publish([sample])
    sent = set(report.ids)

    def indexed() -> set[str]:
        return enriched_ids(stack.es, index, sent)

    wait_until(lambda: len(indexed()) >= 20 or None, timeout_s=120, what="some articles indexed")
    parser = _parse_process(stack.worker.process.pid)
    stack.worker.kill()
    killed_at = len(indexed())
    stack.worker.start()
    # the killed worker's parse process ends by itself (nobody shut its pool down)
    if parser is not None:
        wait_until(lambda: not _alive(parser), timeout_s=30, what=f"parse process {parser} to end")

    def settled():
        done = indexed() | {d.article_id for d in _duplicates(stack) if d.article_id in sent}
        dead = {l.key for l in _dead_letters(stack) if l.key in sent}
        return (done | dead) >= sent or None

    def progress() -> str:
        dups = {d.article_id for d in _duplicates(stack)} & sent
        dead = {l.key for l in _dead_letters(stack)} & sent
        return (
            f"{len(indexed())} indexed, {len(dups)} duplicates, {len(dead)} dead of {len(sent)} sent\n"
            + stack.worker.log_tail()
        )

    wait_until(
        settled, timeout_s=300, what="every sent article indexed or recorded", describe=progress
    )
    assert killed_at < len(sent), "the worker finished before it was killed: nothing was tested"
    stack.es.indices.refresh(index=index)
    # an article dead-lettered after its clean step keeps the document of its text
    assert stack.es.count(index=index, query=enriched_only())["count"] == before + len(indexed())
    # one alert per (subscription, article) of this test's articles in the index (other tests of
    # the session store alerts of their own), and each of them reached the topic
    stack.es.indices.refresh(index=stack.settings.index("alerts"))
    hits = stack.es.search(
        index=stack.settings.index("alerts"),
        size=1000,
        query={"terms": {"article_id": sorted(sent)}},
        source=["subscription_id", "article_id"],
    )
    pairs = [
        (h["_source"]["subscription_id"], h["_source"]["article_id"]) for h in hits["hits"]["hits"]
    ]
    assert len(pairs) == len(set(pairs))
    published = {json.loads(v)["id"] for v in stack.topic_values("alerts")}
    assert {h["_id"] for h in hits["hits"]["hits"]} <= published


def _parse_process(worker_pid: int) -> int | None:
    """The worker's parse process (pipeline.stages.nlp_process): its multiprocessing child."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if parent == worker_pid and b"spawn_main" in cmdline:
            return int(stat.parent.name)
    return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_parse_process_killed_mid_stream_is_replaced_and_nothing_is_lost(stack, tmp_path):
    """The worker's NER runs in a child process; killing it fails the batch being parsed, whose
    articles are parsed again by a new child: every article indexed, none dead-lettered."""
    sample = corpus_sample(tmp_path, 400, 600)  # not the articles of the test above
    parser = _parse_process(stack.worker.process.pid)
    assert parser is not None, "the worker has no parse process (NEWS_NLP_PROCESS off?)"
    report = stack.publish([sample])
    sent = set(report.ids)
    index = stack.settings.index("articles")

    def indexed() -> set[str]:
        return enriched_ids(stack.es, index, sent)

    wait_until(lambda: len(indexed()) >= 10 or None, timeout_s=120, what="some articles indexed")
    __import__("os").kill(parser, 9)
    killed_at = len(indexed())

    def settled():
        done = indexed() | {d.article_id for d in _duplicates(stack) if d.article_id in sent}
        return done >= sent or None

    def progress() -> str:
        dead = [l for l in _dead_letters(stack) if l.key in sent]
        return (
            f"{len(indexed())} indexed, {len(dead)} dead of {len(sent)}\n" + stack.worker.log_tail()
        )

    wait_until(settled, timeout_s=300, what="every sent article indexed", describe=progress)
    assert killed_at < len(sent), "the worker finished before its parser was killed"
    assert not [l for l in _dead_letters(stack) if l.key in sent]
    assert "parse process ended; starting a new one" in stack.worker.log_tail(400)
    replacement = _parse_process(stack.worker.process.pid)
    assert replacement is not None and replacement != parser
