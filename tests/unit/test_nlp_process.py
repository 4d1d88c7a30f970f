"""nlp.pipe in a process of its own (pipeline.stages.nlp_process): the documents it hands back
are the ones an in-process parse makes, a dead parse process is replaced, and it ends with
its parent. The model is ``NEWS_SPACY_MODEL`` (default en_news_ner_conll)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.settings import Settings
from pipeline.sources.ingest import Rejected, iter_inputs
from pipeline.stages.clean import clean
from pipeline.stages.dedupe import Deduper
from pipeline.stages.dedupe_store import InMemoryFingerprintStore
from pipeline.stages.entities import InMemoryEntityRegistry
from pipeline.stages.nlp import load_nlp, loadable_name
from pipeline.stages.nlp_process import ParseProcess, ParseProcessDied, ParseProcesses, _cut
from pipeline.stages.stories import StoryAssigner
from pipeline.stream.process import InMessage, Pipeline
from schemas import RawArticle

MODEL = os.environ.get("NEWS_SPACY_MODEL", "en_news_ner_conll")
MISSING = "xx_not_installed_sm"
SEEDS = Path(__file__).resolve().parents[2] / "seeds"
TEXTS = [
    "Chancellor Olaf Scholz met President Emmanuel Macron in Paris on Tuesday, and protesters "
    "marched outside the Elysee Palace. Kyiv said the talks were useful.",
    "Apple Inc. shares rose 3 percent after the company said it would buy back stock. "
    "Tim Cook told analysts in Cupertino, California, that demand was strong.",
    "An earthquake of magnitude 6.1 struck off the coast of Japan, the Japan Meteorological "
    "Agency said. No tsunami warning was issued.",
    "Police arrested two men in Manchester on Friday. Manchester United said the match "
    "would go ahead.",
    "",
]


def _seed_texts() -> list[str]:
    """The seed articles' cleaned bodies."""
    return [clean(item).body for item in iter_inputs([SEEDS]) if not isinstance(item, Rejected)]


@pytest.fixture(scope="module")
def nlp():
    return load_nlp(MODEL)


@pytest.fixture(scope="module")
def parser(nlp):
    process = ParseProcess(MODEL, [MISSING, MODEL], batch_size=4, vocab_of=lambda model: nlp.vocab)
    process.start()
    yield process
    process.close()


def _signature(doc) -> tuple:
    return (
        doc.text,
        [(e.start_char, e.end_char, e.label_, e.ent_id_, e.kb_id_) for e in doc.ents],
        [(s.start_char, s.end_char) for s in doc.sents],
        [(t.lemma_, t.norm_, t.is_sent_start, t.ent_iob_, t.whitespace_) for t in doc],
    )


def test_the_parse_process_hands_back_the_documents_an_in_process_parse_makes(nlp, parser) -> None:
    texts = TEXTS + _seed_texts()
    ours = parser.parse(MODEL, texts)
    theirs = list(nlp.pipe(texts))
    assert len(ours) == len(texts)
    assert [_signature(d) for d in ours] == [_signature(d) for d in theirs]
    assert all(d.vocab is nlp.vocab for d in ours)  # rebuilt over this process's vocabulary
    assert any(d.ents for d in ours)


def test_a_pipeline_the_parse_process_cannot_load_is_not_available(parser) -> None:
    assert parser.start().result() == {MODEL: None, MISSING: parser.start().result()[MISSING]}
    assert "not installed" in parser.start().result()[MISSING]
    assert parser.available(MODEL) and not parser.available(MISSING)


def test_a_dead_parse_process_fails_its_batch_and_is_replaced(parser) -> None:
    pid = parser.pid()
    assert pid is not None and pid != os.getpid()
    parsing = parser.submit(
        MODEL, ["A batch that is being parsed when its process is killed."] * 200
    )
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ParseProcessDied, match="parse process ended"):
        parser.docs(parsing)
    restarts = parser.restarts
    docs = parser.parse(MODEL, ["The next batch goes to a new parse process in Berlin."])
    assert [t.text for t in docs[0]][:3] == ["The", "next", "batch"]
    assert parser.pid() not in (None, pid)
    assert parser.restarts == restarts == 1


def _articles(texts: list[str]) -> list[InMessage]:
    messages = []
    for i, body in enumerate(texts):
        raw = RawArticle(id=f"article-{i}", title=f"Report {i}", body=body, source="test")
        messages.append(InMessage(value=raw.model_dump_json().encode(), key=raw.id.encode()))
    return messages


def _pipeline(parse_process: bool, processes: int = 1) -> Pipeline:
    settings = Settings(spacy_model=MODEL, spacy_models={}, nlp_processes=processes)
    return Pipeline(
        settings,
        deduper=Deduper(InMemoryFingerprintStore()),
        registry=InMemoryEntityRegistry(),
        stories=StoryAssigner(),
        parse_process=parse_process,
    )


def _enriched(pipeline: Pipeline, messages: list[InMessage], prefetch: bool) -> list[tuple]:
    cleaned = pipeline.clean_and_dedupe(messages)
    clean = [InMessage(value=a.model_dump_json().encode()) for a in cleaned.passed]
    prefetched = pipeline.prefetch(clean) if prefetch else None
    result = pipeline.enrich(clean, prefetched=prefetched)
    assert not result.dead
    return [
        (
            a.id,
            [e.model_dump() for e in a.entities],
            [e.model_dump() for e in a.events],
            a.nlp_model,
        )
        for a in result.passed
    ]


@pytest.mark.parametrize("processes", [1, 2])
def test_the_enrich_step_makes_the_same_articles_with_parse_processes(processes: int) -> None:
    messages = _articles([t for t in TEXTS if t] + _seed_texts())
    here = _enriched(_pipeline(False), messages, prefetch=False)
    elsewhere = _pipeline(True, processes)
    try:
        assert elsewhere.parser is not None
        started_ahead = _enriched(elsewhere, messages, prefetch=True)
        assert elsewhere.parser.restarts == 0
        assert len(elsewhere.parser.pids()) == processes  # the batch was split among them
    finally:
        elsewhere.parser.close()
    assert started_ahead == here
    assert any(entities for _, entities, _, _ in here)


def test_a_batch_is_cut_into_consecutive_parts_of_about_equal_length() -> None:
    texts = ["a" * n for n in (10, 10, 10, 10, 40, 5, 5, 5, 5)]
    for parts in (1, 2, 3, 4, 9):
        runs = _cut(texts, parts)
        assert [t for run in runs for t in run] == texts and all(runs) and len(runs) == parts
    first, second = _cut(texts, 2)
    assert abs(sum(map(len, first)) - sum(map(len, second))) <= 40
    assert _cut(["x"], 1) == [["x"]]


def test_a_dead_child_of_several_fails_its_batch_only_and_is_replaced(nlp) -> None:
    processes = ParseProcesses(2, MODEL, batch_size=4, vocab_of=lambda model: nlp.vocab)
    try:
        assert processes.start().result() == {MODEL: None}
        assert len(processes.pids()) == 2
        expected = [_signature(d) for d in nlp.pipe(TEXTS)]
        assert [_signature(d) for d in processes.parse(MODEL, TEXTS)] == expected
        victim = processes.pids()[1]
        parsing = processes.submit(MODEL, ["A batch parsed when one process is killed."] * 400)
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(ParseProcessDied, match="parse process ended"):
            processes.docs(parsing)
        assert [_signature(d) for d in processes.parse(MODEL, TEXTS)] == expected
        assert processes.restarts == 1 and victim not in processes.pids()
        assert len(processes.pids()) == 2
    finally:
        processes.close()


def test_a_pipeline_given_its_model_parses_in_process() -> None:
    pipeline = Pipeline(Settings(spacy_model=MODEL), nlp=object(), parse_process=True)
    assert pipeline.parser is None and pipeline.prefetch([]) is None


CHILD_OF_A_DYING_PARENT = """
import os, sys
from pipeline.stages.nlp import load_nlp
from pipeline.stages.nlp_process import ParseProcess
if __name__ == "__main__":
    nlp = load_nlp(sys.argv[1])
    process = ParseProcess(sys.argv[1], vocab_of=lambda model: nlp.vocab)
    process.start()
    print(process.pid(), flush=True)
    os._exit(0)  # no shutdown of the pool: as if the worker had been killed
"""


def test_the_parse_process_ends_when_its_parent_is_gone(tmp_path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(CHILD_OF_A_DYING_PARENT)
    done = subprocess.run(
        [sys.executable, str(script), loadable_name(MODEL)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    child = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 30  # it checks for its parent every second
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


FRENCH = (
    "Le gouvernement a annoncé mardi une nouvelle réforme des retraites, qui sera présentée "
    "au Parlement le mois prochain. Les syndicats ont appelé à une grève nationale jeudi."
)


def test_an_article_whose_pipeline_is_not_installed_gets_a_note_not_a_dead_letter() -> None:
    settings = Settings(spacy_model=MODEL, spacy_models={"fr": MISSING})
    pipeline = Pipeline(
        settings,
        deduper=Deduper(InMemoryFingerprintStore()),
        registry=InMemoryEntityRegistry(),
        stories=StoryAssigner(),
        parse_process=True,
    )
    try:
        cleaned = pipeline.clean_and_dedupe(_articles([FRENCH, TEXTS[0]]))
        clean_messages = [InMessage(value=a.model_dump_json().encode()) for a in cleaned.passed]
        result = pipeline.enrich(clean_messages, prefetched=pipeline.prefetch(clean_messages))
    finally:
        pipeline.parser.close()
    assert not result.dead
    french, english = sorted(result.passed, key=lambda a: a.id)
    assert french.language == "fr" and french.nlp_model is None and not french.entities
    assert "not installed" in (french.nlp_note or "")
    assert english.nlp_model == MODEL and english.entities


FRENCH_NEWS = [
    "Le président Emmanuel Macron a rencontré mardi à Paris le chancelier allemand Olaf Scholz. "
    "Les deux dirigeants ont discuté de la guerre en Ukraine et des sanctions contre la Russie.",
    "La police a arrêté trois hommes à Marseille jeudi après une manifestation contre la réforme "
    "des retraites. Le ministre de l'Intérieur a salué le travail des forces de l'ordre.",
]


def test_another_languages_documents_rebuilt_over_the_main_vocabulary_give_the_same_entities():
    """The worker rebuilds every language's documents over its main pipeline's vocabulary
    (it never loads the other pipelines itself): same entities and events as in process."""
    pytest.importorskip("fr_core_news_sm")
    settings = Settings(spacy_model=MODEL, spacy_models={"fr": "fr_core_news_sm"})

    def enriched(parse_process: bool) -> list[tuple]:
        pipeline = Pipeline(
            settings,
            deduper=Deduper(InMemoryFingerprintStore()),
            registry=InMemoryEntityRegistry(),
            stories=StoryAssigner(),
            parse_process=parse_process,
        )
        try:
            return _enriched(pipeline, _articles(FRENCH_NEWS), prefetch=parse_process)
        finally:
            if pipeline.parser is not None:
                pipeline.parser.close()

    here = enriched(False)
    assert {model for *_, model in here} == {"fr_core_news_sm"}
    assert enriched(True) == here


def test_a_one_article_batch_whose_parse_died_is_parsed_anew_not_dead_lettered() -> None:
    """The parse started ahead for a batch of one article dies: the step's retry of that same
    article must parse it in a new process, not meet the dead parse again (it was looked up by
    its texts, the same for the batch and for the article alone, and dead-lettered)."""
    long_body = " ".join(
        f"Officials in Paris said on day {n} that talks with Berlin would go on."
        for n in range(300)
    )
    messages = _articles([long_body])
    pipeline = _pipeline(True)
    try:
        cleaned = pipeline.clean_and_dedupe(messages)
        clean = [InMessage(value=a.model_dump_json().encode()) for a in cleaned.passed]
        assert pipeline.parser.start().result() is not None
        prefetched = pipeline.prefetch(clean)
        os.kill(pipeline.parser.pid(), signal.SIGKILL)  # while it parses the batch
        result = pipeline.enrich(clean, prefetched=prefetched)
        assert not result.dead and len(result.passed) == 1
        assert pipeline.parser.restarts == 1
    finally:
        pipeline.parser.close()


def test_user_data_crosses_only_when_a_component_set_some(monkeypatch) -> None:
    """The child ships documents' user data (custom extension attributes) when a component
    set some, and leaves the empty dicts out otherwise."""
    import spacy
    from spacy.language import Language
    from spacy.tokens import DocBin

    from pipeline.stages import nlp_process

    if not Language.has_factory("test_user_data_marker"):

        @Language.component("test_user_data_marker")
        def marker(doc):
            if "mark" in doc.text:
                doc.user_data["marked"] = len(doc)
            return doc

    plain, marking = spacy.blank("en"), spacy.blank("en")
    marking.add_pipe("test_user_data_marker")
    monkeypatch.setitem(nlp_process._CHILD, "plain", plain)
    monkeypatch.setitem(nlp_process._CHILD, "marking", marking)
    texts = ["no data here", "mark this one", "nor here"]
    shipped = DocBin().from_bytes(nlp_process._parse_in_child("plain", texts, 8))
    assert shipped.user_data == [None, None, None]  # none stored: nothing to decode
    assert [d.user_data for d in shipped.get_docs(plain.vocab)] == [{}, {}, {}]
    shipped = DocBin().from_bytes(nlp_process._parse_in_child("marking", texts, 8))
    assert all(data is not None for data in shipped.user_data)
    assert [d.user_data for d in shipped.get_docs(marking.vocab)] == [{}, {"marked": 3}, {}]
