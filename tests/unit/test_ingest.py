"""Reading inputs into articles or rejections, and publishing them (with a fake producer)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, NotLeaderForPartitionError
from kafka.future import Future
from typer.testing import CliRunner

from pipeline.infra.deadletter import decode_payload
from pipeline.settings import Settings
from pipeline.sources import ingest
from pipeline.sources.ingest import NOT_TEXT, Rejected, iter_inputs, publish
from schemas import DeadLetter, RawArticle

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "seeds"


def articles(items) -> list[RawArticle]:
    return [item for item in items if isinstance(item, RawArticle)]


def rejections(items) -> list[Rejected]:
    return [item for item in items if isinstance(item, Rejected)]


def write_lines(path: Path, *lines: str | bytes) -> Path:
    path.write_bytes(
        b"\n".join(x if isinstance(x, bytes) else x.encode("utf-8") for x in lines) + b"\n"
    )
    return path


# --- seeds and plain text ------------------------------------------------------------------------


def test_seeds_are_five_articles_with_stable_ids():
    first = list(iter_inputs([SEEDS]))
    assert not rejections(first)
    assert len(first) == 5
    ids = [a.id for a in first]
    assert len(set(ids)) == 5 and all(ids)
    assert [a.id for a in iter_inputs([SEEDS])] == ids
    for article in first:
        path = Path(article.model_extra["path"])
        assert path.parent == SEEDS and path.suffix == ".txt"
        assert article.body == path.read_text(encoding="utf-8")
        assert article.source is None and article.url is None and article.title is None
    assert [Path(a.model_extra["path"]).name for a in first] == sorted(
        p.name for p in SEEDS.glob("*.txt")
    )


def test_a_byte_identical_copy_elsewhere_has_the_same_id(tmp_path):
    seed = sorted(SEEDS.glob("*.txt"))[2]
    copy = tmp_path / "elsewhere" / "renamed.txt"
    copy.parent.mkdir()
    shutil.copyfile(seed, copy)
    (original,) = iter_inputs([seed])
    (copied,) = iter_inputs([copy])
    assert copied.id == original.id
    assert copied.model_extra["path"] == str(copy)


def test_any_non_json_file_is_plain_text_and_a_bom_is_dropped(tmp_path):
    path = tmp_path / "story.md"
    path.write_bytes("\ufeffKyiv, June 2 — talks resumed.\n".encode("utf-8"))
    (article,) = iter_inputs([path])
    assert article.body == "Kyiv, June 2 — talks resumed.\n"


# --- directories ------------------------------------------------------------------------------


def test_directories_are_walked_recursively_in_order_skipping_hidden(tmp_path):
    (tmp_path / "b" / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a.txt").write_text("Alpha story.")
    (tmp_path / "b" / "deeper" / "c.txt").write_text("Charlie story.")
    (tmp_path / "b" / "b.jsonl").write_text(json.dumps({"body": "Bravo story."}) + "\n")
    (tmp_path / ".secret.txt").write_text("hidden file")
    (tmp_path / ".hidden" / "x.txt").write_text("hidden directory")
    items = list(iter_inputs([tmp_path]))
    assert not rejections(items)
    assert [a.body for a in items] == ["Alpha story.", "Bravo story.", "Charlie story."]


def test_a_missing_path_is_a_rejection(tmp_path):
    (item,) = iter_inputs([tmp_path / "nope.txt"])
    assert item == Rejected(str(tmp_path / "nope.txt"), "no such file or directory", b"")


# --- JSON and JSON lines --------------------------------------------------------------------


def test_jsonl_malformed_lines_are_rejected_with_reasons(tmp_path):
    path = write_lines(
        tmp_path / "mixed.jsonl",
        json.dumps({"id": "ok-1", "title": "Fine", "body": "A fine article."}),
        '{"title": "broken" "body": "x"}',
        "",
        json.dumps({"title": "no body here"}),
        json.dumps({"title": 42, "body": "Typed wrong."}),
        json.dumps({"body": ["not", "a", "string"]}),
        json.dumps({"body": "   "}),
        json.dumps(["an", "array"]),
        b"\xff\xfe\x00garbage",
        "   ",
        json.dumps({"id": 7, "body": "Integer id."}),
    )
    items = list(iter_inputs([path]))
    assert [a.id for a in articles(items)] == ["ok-1", "7"]
    reasons = {r.origin.rsplit(":", 1)[1]: r.reason for r in rejections(items)}
    assert reasons == {
        "2": "invalid JSON at line 2: Expecting ',' delimiter (char 19)",
        "4": "missing field 'body'",
        "5": "field 'title' must be a string, got int",
        "6": "field 'body' must be a string, got list",
        "7": "field 'body' is empty",
        "8": "expected a JSON object, got list",
        "9": NOT_TEXT,
    }
    payloads = {r.origin.rsplit(":", 1)[1]: r.payload for r in rejections(items)}
    assert payloads["2"] == b'{"title": "broken" "body": "x"}'
    assert payloads["9"] == b"\xff\xfe\x00garbage"
    assert all(r.origin.startswith(str(path) + ":") for r in rejections(items))


def test_several_validation_errors_make_one_line(tmp_path):
    path = write_lines(
        tmp_path / "a.jsonl", json.dumps({"title": 1, "url": 2, "published_at": [3]})
    )
    (item,) = iter_inputs([path])
    assert item.reason == (
        "field 'url' must be a string, got int; field 'title' must be a string, got int; "
        "missing field 'body'; field 'published_at' must be a date, got list"
    )


def test_json_object_list_and_invalid_document(tmp_path):
    (tmp_path / "one.json").write_text(json.dumps({"body": "Single."}))
    (tmp_path / "many.json").write_text(
        json.dumps([{"body": "First."}, {"title": "no body"}, "text"])
    )
    (tmp_path / "bad.json").write_text('{\n  "body": "x",\n  "title": }\n')
    (tmp_path / "none.json").write_text("[]")
    items = list(
        iter_inputs(
            [
                tmp_path / "one.json",
                tmp_path / "many.json",
                tmp_path / "bad.json",
                tmp_path / "none.json",
            ]
        )
    )
    assert [a.body for a in articles(items)] == ["Single.", "First."]
    assert [(r.origin, r.reason) for r in rejections(items)] == [
        (f"{tmp_path / 'many.json'}[1]", "missing field 'body'"),
        (f"{tmp_path / 'many.json'}[2]", "expected a JSON object, got str"),
        (str(tmp_path / "bad.json"), "invalid JSON at line 3: Expecting value (char 11)"),
        (str(tmp_path / "none.json"), "no articles (empty JSON list)"),
    ]
    assert json.loads(rejections(items)[0].payload) == {"title": "no body"}
    assert rejections(items)[2].payload == (tmp_path / "bad.json").read_bytes()


def test_binary_garbage_and_empty_files(tmp_path):
    garbage = bytes(range(256)) * 16
    (tmp_path / "garbage.bin").write_bytes(garbage)
    (tmp_path / "nul.txt").write_bytes(b"text\x00with a NUL")
    for name in ("empty.txt", "empty.json", "empty.jsonl"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "blank.txt").write_text("  \n\n ")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    reasons = {Path(r.origin).name: r.reason for r in iter_inputs([tmp_path])}
    assert reasons == {
        "garbage.bin": NOT_TEXT,
        "nul.txt": NOT_TEXT,
        "empty.txt": "empty file",
        "empty.json": "empty file",
        "empty.jsonl": "empty file",
        "blank.txt": "empty file",
        "blank.jsonl": "empty file",
    }
    (garbage_item,) = iter_inputs([tmp_path / "garbage.bin"])
    assert garbage_item.payload == garbage


def test_a_10_mb_body_is_refused_at_the_door(tmp_path):
    body = "word " * 2_100_000
    path = write_lines(tmp_path / "huge.jsonl", json.dumps({"title": "huge", "body": body}))
    (item,) = iter_inputs([path])
    assert isinstance(item, Rejected)
    assert "the limit" in item.reason and "NEWS_MAX_" in item.reason


# --- aliases and dates --------------------------------------------------------------------------


def test_field_aliases(tmp_path):
    path = write_lines(
        tmp_path / "aliases.jsonl",
        json.dumps(
            {
                "text": "From text.",
                "link": "https://example.com/a?utm_source=x",
                "date": "2025-06-02T10:00:00Z",
            }
        ),
        json.dumps({"content": "From content.", "published": "Mon, 02 Jun 2025 10:00:00 GMT"}),
        json.dumps({"body": "Body wins.", "text": "kept as extra", "published_at": "2025-06-02"}),
    )
    first, second, third = iter_inputs([path])
    june_2_10h = datetime(2025, 6, 2, 10, tzinfo=UTC)
    assert (first.body, first.url, first.published_at) == (
        "From text.",
        "https://example.com/a?utm_source=x",
        june_2_10h,
    )
    assert (second.body, second.published_at) == ("From content.", june_2_10h)
    assert third.body == "Body wins." and third.model_extra["text"] == "kept as extra"
    assert third.published_at == datetime(2025, 6, 2, tzinfo=UTC)
    assert "text" not in first.model_extra and "link" not in first.model_extra


def test_an_unparsable_date_keeps_the_article_and_the_text(tmp_path, caplog):
    path = write_lines(
        tmp_path / "d.jsonl", json.dumps({"body": "Dated badly.", "date": "the day after"})
    )
    with caplog.at_level(logging.WARNING, logger="pipeline.sources.ingest"):
        (article,) = iter_inputs([path])
    assert article.published_at is None
    assert article.model_extra["unparsed_published_at"] == "the day after"
    assert "unparsable date" in caplog.text


def test_ids_come_from_the_producer_then_the_url_then_the_text(tmp_path):
    path = write_lines(
        tmp_path / "ids.jsonl",
        json.dumps({"id": "given", "url": "https://example.com/x", "body": "One."}),
        json.dumps({"url": "https://EXAMPLE.com/x#frag", "body": "Two."}),
        json.dumps({"url": "https://example.com/x", "body": "Three."}),
        json.dumps({"source": "s", "body": "Same   text."}),
        json.dumps({"source": "s", "body": "Same text."}),
    )
    ids = [a.id for a in iter_inputs([path])]
    assert ids[0] == "given"
    assert ids[1] == ids[2] != ids[3]
    assert ids[3] == ids[4]


# --- publishing ------------------------------------------------------------------------------


class FakeProducer:
    """Records sends; ``flush`` acknowledges them, except the keys told to fail."""

    def __init__(self, fail_keys=(), raise_on_send=None):
        self.sent: list[tuple[str, str, object]] = []
        self.pending: list[tuple[str, Future]] = []
        self.fail_keys = set(fail_keys)
        self.raise_on_send = raise_on_send or {}
        self.flushed = False

    def send(self, topic, key=None, value=None):
        if key in self.raise_on_send:
            raise self.raise_on_send[key]
        future = Future()
        self.sent.append((topic, key, value))
        self.pending.append((key, future))
        return future

    def flush(self, timeout=None):
        for key, future in self.pending:
            if key in self.fail_keys:
                future.failure(NotLeaderForPartitionError("leader moved"))
            else:
                future.success(object())
        self.pending.clear()
        self.flushed = True

    def close(self, timeout=None):
        pass


class StuckProducer(FakeProducer):
    """A broker gone away: the first two sends are acknowledged, the rest never are."""

    def flush(self, timeout=None):
        for _key, future in self.pending[:2]:
            future.success(object())
        self.flush_timeout = timeout
        raise KafkaTimeoutError(f"Failed to flush buffered records within {timeout} secs")


@pytest.fixture
def settings():
    return Settings(topic_prefix="unit")


def test_publish_sends_articles_keyed_by_id_and_rejections_as_dead_letters(tmp_path, settings):
    bad = write_lines(tmp_path / "bad.jsonl", '{"body": ', json.dumps({"title": "no body"}))
    producer = FakeProducer()
    report = publish(iter_inputs([SEEDS, bad]), producer, settings, progress=False)
    seeds = list(iter_inputs([SEEDS]))
    assert producer.flushed
    assert report.sent == 5 and report.ids == [a.id for a in seeds] and not report.failed
    raw = [(key, value) for topic, key, value in producer.sent if topic == "unit.raw"]
    assert [key for key, _ in raw] == report.ids
    assert all(isinstance(value, RawArticle) and value.id == key for key, value in raw)
    letters = [(key, value) for topic, key, value in producer.sent if topic == "unit.deadletter"]
    assert [key for key, _ in letters] == [f"{bad}:1", f"{bad}:2"]
    first = letters[0][1]
    assert isinstance(first, DeadLetter)
    assert (first.stage, first.error_type, first.key) == ("ingest", "Rejected", f"{bad}:1")
    assert first.error == f"{bad}:1: invalid JSON at line 1: Expecting value (char 9)"
    assert first.payload == '{"body": ' and first.payload_encoding == "utf-8"
    assert [r.reason for r in report.rejected] == [
        "invalid JSON at line 1: Expecting value (char 9)",
        "missing field 'body'",
    ]


def test_binary_rejections_travel_base64_and_huge_payloads_are_cut(tmp_path):
    settings = Settings(topic_prefix="unit", max_message_bytes=1000)
    (tmp_path / "small.bin").write_bytes(b"\xff\xfe\x00" * 10)
    (tmp_path / "large.bin").write_bytes(b"\xff" * 5000)
    producer = FakeProducer()
    publish(iter_inputs([tmp_path]), producer, settings, progress=False)
    large, small = (value for _, _, value in producer.sent)
    assert small.payload_encoding == "base64"
    assert decode_payload(small) == b"\xff\xfe\x00" * 10
    cut = decode_payload(large)
    assert 0 < len(cut) < 5000 and cut == b"\xff" * len(cut)
    assert (large.payload_truncated, large.payload_size) == (True, 5000)
    assert large.payload_sha256 == hashlib.sha256(b"\xff" * 5000).hexdigest()
    assert f"payload cut to {len(cut)} of 5000 bytes" in large.error
    assert len(large.model_dump_json()) <= 1000


def test_delivery_failures_are_reported_and_not_counted_as_sent(settings):
    items = list(iter_inputs([SEEDS]))
    producer = FakeProducer(
        fail_keys={items[1].id}, raise_on_send={items[3].id: MessageSizeTooLargeError("big")}
    )
    report = publish(items, producer, settings, progress=False)
    assert report.sent == 3
    assert report.ids == [items[i].id for i in (0, 2, 4)]
    assert {f.key for f in report.failed} == {items[1].id, items[3].id}
    assert any("NotLeaderForPartitionError" in f.error for f in report.failed)
    assert report.stopped is None


def test_an_unreachable_broker_stops_the_publishing(settings):
    items = list(iter_inputs([SEEDS]))
    producer = FakeProducer(raise_on_send={items[2].id: KafkaTimeoutError("metadata")})
    report = publish(items, producer, settings, progress=False)
    assert report.ids == [items[0].id, items[1].id]
    assert "broker unreachable" in report.stopped
    assert [f.key for f in report.failed] == [items[2].id]


# --- CLI -------------------------------------------------------------------------------------


def run_cli(monkeypatch, producer, *args):
    monkeypatch.setattr(ingest, "_connect", lambda settings, console: producer)
    app = typer.Typer()
    app.command()(ingest.cmd_ingest)
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_prints_the_summary_with_reasons(monkeypatch, tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    result = run_cli(monkeypatch, FakeProducer(), SEEDS, tmp_path)
    assert result.exit_code == 0, result.output
    assert "sent" in result.output and "5" in result.output
    assert "empty file" in result.output


def test_cli_exits_non_zero_on_delivery_failures(monkeypatch):
    first = next(iter(iter_inputs([SEEDS])))
    result = run_cli(monkeypatch, FakeProducer(fail_keys={first.id}), SEEDS)
    assert result.exit_code == 1
    assert "failed deliveries" in result.output


def test_cli_needs_paths_or_feeds(monkeypatch):
    result = run_cli(monkeypatch, FakeProducer())
    assert result.exit_code == 2


def test_a_flush_past_its_deadline_reports_what_was_acknowledged(settings):
    items = list(iter_inputs([SEEDS]))
    producer = StuckProducer()
    report = publish(
        items, producer, settings.model_copy(update={"producer_deadline_s": 7}), progress=False
    )
    assert producer.flush_timeout == 7
    assert report.sent == 2 and report.ids == [items[0].id, items[1].id]
    assert f"2 of {len(items)} articles" in report.stopped
    assert "run the same command again to resume" in report.stopped
    assert "\n" not in report.stopped


def test_ingest_exits_non_zero_with_one_line_when_the_broker_never_acknowledges(monkeypatch):
    monkeypatch.setattr(ingest, "_connect", lambda settings, console: StuckProducer())
    app = typer.Typer()
    app.command()(ingest.cmd_ingest)
    result = CliRunner().invoke(app, [str(SEEDS), "--quiet"])
    assert result.exit_code == 1
    assert "stopped early" in result.output and "Traceback" not in result.output
