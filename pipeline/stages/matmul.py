"""Which library multiplies the matrices of a loaded spaCy pipeline: BLIS or NumPy's BLAS.

thinc's CPU backend (``NumpyOps``) does its matrix products with BLIS by default. BLIS picks
its kernels for the processor it runs on when it starts, and a processor it does not know gets
its *generic* kernels: plain C loops, several times slower. On this project's machine (an AMD
EPYC of family 19h, model 1, behind a hypervisor) the ``blis`` 1.3 wheel selects ``generic``
(``BLIS_ARCH_DEBUG=1`` prints it), and a product at the sizes of a spaCy ``tok2vec`` took 2.9
times as long as NumPy's (OpenBLAS, which picked its Haswell kernels). The CNN of
``en_core_web_sm``'s NER then took 9.3 ms per Reuters article instead of 5.1, with the same
entities (docs/performance.md, session 33).

:func:`use_fastest_matmul` measures both on the pipeline's own weight shapes, once per load,
and gives every layer of the pipeline the faster one (``NEWS_NLP_MATMUL``: ``auto``; ``blis``
or ``numpy`` to choose). The choice changes only which library computes each product: the
same float32 products, summed in another order, so a score can differ in its last bits.

NumPy's OpenBLAS may use a thread per core for a large product. A pipeline runs in one
thread by design (its own process in a worker: :mod:`pipeline.stages.nlp_process`), beside
the worker, Elasticsearch and Kafka on the same cores, so with NumPy the products are kept to
the calling thread (``threadpoolctl``).

The transition-based parsers (``ner``) also call BLIS directly from their compiled state loop
(``thinc.backends.cblas``), for a product of a few rows per step; that part is not reachable
from Python and stays on BLIS whatever the choice.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Literal

import numpy

if TYPE_CHECKING:
    from collections.abc import Iterator

    from spacy.language import Language
    from thinc.api import Model, Ops

log = logging.getLogger(__name__)

Matmul = Literal["auto", "blis", "numpy"]

PROBE_ROWS = 256
"""Rows of the probe products: the tokens of a few articles, as a batch's CNN multiplies them."""
PROBE_ROUNDS = 3
"""Alternating rounds of the probe; each library keeps its fastest round."""
NUMPY_MARGIN = 0.9
"""``auto`` takes NumPy only when it took at most this share of BLIS's time: where the two are
close, thinc's default stays."""


def use_fastest_matmul(nlp: Language, choice: Matmul = "auto") -> str:
    """Give every layer of ``nlp``'s components the matrix products of ``choice`` (``auto``:
    whichever :func:`probe` finds faster); returns what its layers multiply with now.
    A pipeline on another backend than thinc's CPU ``NumpyOps`` (a GPU's, Apple's
    Accelerate) keeps it."""
    from thinc.api import NumpyOps

    if any(type(node.ops) is not NumpyOps for node in _nodes(nlp)):
        return library_of(nlp)
    shapes = weight_shapes(nlp)
    if choice == "auto":
        if not shapes:
            return library_of(nlp)
        times = probe(shapes)
        choice = "numpy" if times["numpy"] <= NUMPY_MARGIN * times["blis"] else "blis"
        log.info(
            "matrix products of %s: %s (probe: blis %.2f ms, numpy %.2f ms)",
            f"{nlp.lang}_{nlp.meta.get('name', 'pipeline')}",
            choice,
            times["blis"] * 1000,
            times["numpy"] * 1000,
        )
    ops = NumpyOps(use_blis=choice == "blis")
    if choice == "numpy":
        one_blas_thread()
    for node in _nodes(nlp):
        node.ops = ops
    return choice


def library_of(nlp: Language) -> str:
    """What the pipeline's layers multiply with: ``blis`` or ``numpy`` on thinc's CPU backend,
    else the backend's name (``cupy``, ``apple``); ``mixed``, or ``none`` without layers."""
    uses = {_library(node.ops) for node in _nodes(nlp)}
    return uses.pop() if len(uses) == 1 else ("mixed" if uses else "none")


def weight_shapes(nlp: Language) -> list[tuple[int, int]]:
    """The distinct 2-d weight matrices (``W``, ``nO x nI``) of the pipeline's layers whose
    products go through ``Ops.gemm`` (dense, maxout and the parser's precomputed features)."""
    shapes: set[tuple[int, int]] = set()
    for node in _nodes(nlp):
        if node.has_param("W") and node.has_dim("nI") and node.get_dim("nI"):
            weights = node.get_param("W")
            if weights.ndim >= 2:
                shapes.add((int(numpy.prod(weights.shape[:-1])), int(weights.shape[-1])))
    return sorted(shapes)


def probe(shapes: list[tuple[int, int]], rows: int = PROBE_ROWS) -> dict[str, float]:
    """CPU seconds of one product ``(rows x nI) @ (nI x nO)`` per shape, summed, for BLIS and
    for NumPy; the fastest of :data:`PROBE_ROUNDS` alternating rounds each."""
    from thinc.api import NumpyOps
    from threadpoolctl import threadpool_limits

    rng = numpy.random.default_rng(0)
    pairs = [
        (
            rng.standard_normal((rows, n_in), dtype=numpy.float32),
            rng.standard_normal((n_out, n_in), dtype=numpy.float32),
        )
        for n_out, n_in in shapes
    ]
    libraries = {"blis": NumpyOps(use_blis=True), "numpy": NumpyOps(use_blis=False)}
    best = dict.fromkeys(libraries, float("inf"))
    # one thread, as the pipeline will multiply: the CPU time of a BLAS's threads waiting for
    # work would count against it
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(PROBE_ROUNDS):
            for name, ops in libraries.items():
                started = time.process_time()
                for inputs, weights in pairs:
                    ops.gemm(inputs, weights, trans2=True)
                best[name] = min(best[name], time.process_time() - started)
    return best


def one_blas_thread() -> None:
    """Keep NumPy's BLAS to the calling thread in this process (see the module's docstring)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _models(nlp: Language) -> Iterator[Model[Any, Any]]:
    from thinc.api import Model

    for _name, component in nlp.components:
        model = getattr(component, "model", None)
        if isinstance(model, Model):
            yield model


def _nodes(nlp: Language) -> Iterator[Model[Any, Any]]:
    for model in _models(nlp):
        yield from model.walk()


def _library(ops: Ops) -> str:
    from thinc.api import NumpyOps

    if type(ops) is not NumpyOps:  # a subclass (Apple's) or another backend: its own products
        return str(ops.name)
    return "blis" if getattr(ops, "use_blis", True) else "numpy"
