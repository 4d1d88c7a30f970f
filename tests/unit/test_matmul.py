"""The matrix products of a loaded pipeline (pipeline.stages.matmul): every layer gets the
library chosen, NumPy's products find the same entities as BLIS's, and ``auto`` takes the one
its probe measured faster. The model is ``NEWS_SPACY_MODEL`` (default en_news_ner_conll)."""

from __future__ import annotations

import json
import os
from itertools import islice
from pathlib import Path

import pytest
import spacy
from thinc.api import NumpyOps
from threadpoolctl import threadpool_info

from pipeline.stages import matmul
from pipeline.stages.nlp import UNUSED_PIPES, load_nlp, loadable_name, prepare
from tests.unit.test_nlp_process import TEXTS

MODEL = os.environ.get("NEWS_SPACY_MODEL", "en_news_ner_conll")
CORPUS = Path(
    os.environ.get("NEWS_CORPUS")
    or Path(__file__).resolve().parents[3] / "shared" / "corpus" / "reuters21578.jsonl"
)


def _texts(limit: int = 150) -> list[str]:
    """The parse process tests' texts and, when the shared corpus is beside the checkout,
    Reuters bodies."""
    if not CORPUS.exists():
        return TEXTS
    with CORPUS.open(encoding="utf-8") as lines:
        bodies = (json.loads(line).get("body") or "" for line in lines)
        return TEXTS + list(islice((b for b in bodies if len(b.split()) >= 40), limit))


def _load(choice: matmul.Matmul):
    nlp = prepare(spacy.load(loadable_name(MODEL), exclude=sorted(UNUSED_PIPES)))
    assert matmul.use_fastest_matmul(nlp, choice) == choice
    return nlp


def _entities(nlp, texts):
    return [
        [(e.start_char, e.end_char, e.label_, e.ent_id_) for e in doc.ents]
        for doc in nlp.pipe(texts, batch_size=16)
    ]


def _blank_ner():
    """A blank English pipeline with an initialised (untrained) NER: layers, no model to load."""
    nlp = spacy.blank("en")
    nlp.add_pipe("ner").add_label("ORG")
    nlp.initialize()
    return nlp


@pytest.fixture(scope="module")
def pipelines():
    return {choice: _load(choice) for choice in ("blis", "numpy")}


def test_every_layer_gets_the_library_chosen(pipelines):
    for choice, nlp in pipelines.items():
        assert matmul.library_of(nlp) == choice
        nodes = list(matmul._nodes(nlp))
        assert nodes, "the pipeline has layers"
        for node in nodes:
            assert type(node.ops) is NumpyOps
            assert node.ops.use_blis is (choice == "blis"), (choice, node.name)


def test_numpy_products_find_the_same_entities_as_blis(pipelines):
    texts = _texts()
    blis, numpy_ = (_entities(pipelines[c], texts) for c in ("blis", "numpy"))
    assert sum(map(len, blis)) > len(texts)  # the texts have entities to compare
    assert numpy_ == blis


def test_the_weight_shapes_are_the_pipelines_products(pipelines):
    shapes = matmul.weight_shapes(pipelines["blis"])
    assert shapes and all(rows > 0 and cols > 0 for rows, cols in shapes)
    times = matmul.probe(shapes[:2], rows=8)
    assert set(times) == {"blis", "numpy"} and all(t >= 0 for t in times.values())


@pytest.mark.parametrize(
    ("blis", "numpy_", "chosen"),
    [(1.0, 0.5, "numpy"), (1.0, 0.9, "numpy"), (1.0, 0.95, "blis"), (1.0, 2.0, "blis")],
)
def test_auto_takes_numpy_only_when_clearly_faster(monkeypatch, blis, numpy_, chosen):
    monkeypatch.setattr(matmul, "probe", lambda shapes: {"blis": blis, "numpy": numpy_})
    monkeypatch.setattr(matmul, "one_blas_thread", lambda: None)
    nlp = _blank_ner()
    assert matmul.use_fastest_matmul(nlp, "auto") == chosen
    assert all(node.ops.use_blis is (chosen == "blis") for node in nlp.get_pipe("ner").model.walk())


def test_a_pipeline_without_layers_is_left_as_it_is():
    assert matmul.use_fastest_matmul(spacy.blank("en"), "auto") == "none"


def test_a_pipeline_on_another_backend_keeps_it():
    class OtherOps(NumpyOps):  # as thinc-apple-ops' AppleOps: a NumpyOps of its own
        name = "other"

    nlp = _blank_ner()
    for node in nlp.get_pipe("ner").model.walk():
        node.ops = OtherOps()
    assert matmul.use_fastest_matmul(nlp, "numpy") == "other"
    assert all(type(node.ops) is OtherOps for node in nlp.get_pipe("ner").model.walk())


def test_numpy_keeps_its_blas_to_one_thread():
    matmul.one_blas_thread()
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


def test_load_nlp_applies_the_setting():
    # one library for the whole pipeline, whichever auto chose
    assert matmul.library_of(load_nlp(MODEL)) in {"blis", "numpy"}
    assert matmul.library_of(spacy.blank("en")) == "none"
