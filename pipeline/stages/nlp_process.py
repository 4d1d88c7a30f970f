"""``nlp.pipe`` in a process of its own.

A worker runs its agents' steps in threads of one process, and they share one GIL: while the
enrich step's ``nlp.pipe`` runs, the clean, index and alert steps wait for the interpreter, and
the other core of the machine idles. :class:`ParseProcess` runs the spaCy pipelines in a child
process (one, started with ``spawn``: forking a process with an event loop and threads is
unsafe) and hands back the parsed documents, so the parse of one batch overlaps the rest of
the worker's work.

The child loads the same pipelines as the parent (:func:`pipeline.stages.nlp.load_nlp`: the
same components, place typer and lemmas) and returns each batch as a :class:`DocBin` of the
token attributes the stages read (:data:`ATTRS`: text, lemmas, entities with their ids,
sentence starts); the parent rebuilds the ``Doc`` objects over its own copy of the pipeline's
vocabulary, so everything downstream sees the same documents as an in-process parse
(``tests/unit/test_nlp_process.py`` checks entities and events are identical).

A child that dies (killed, out of memory, a crash in a native library) is replaced on the
next call; the call that met the death raises :class:`ParseProcessDied`, which fails its batch
like any other error (the step then parses its articles one by one, so only an article that
kills the parser by itself is dead-lettered). The child exits when its parent does.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

ATTRS = [
    "ORTH",
    "SPACY",
    "NORM",
    "LEMMA",
    "ENT_IOB",
    "ENT_TYPE",
    "ENT_KB_ID",
    "ENT_ID",
    "SENT_START",
]
"""Token attributes carried back from the child: what the entity and event stages read (no
stage reads POS, tags, morphology or dependencies; see docs/performance.md)."""


class ParseProcessDied(RuntimeError):
    """The parse process ended while parsing a batch (it is restarted for the next one)."""


# --- the child -------------------------------------------------------------------------------
_CHILD: dict[str, Any] = {}
_CHILD_LOCK = threading.Lock()


def _watch_parent(parent: int) -> None:  # pragma: no cover - runs in the child
    """End the child when its parent is gone (a worker killed with SIGKILL leaves no one to
    shut the pool down)."""
    import time

    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _start_child(parent: int, model: str) -> None:  # pragma: no cover - runs in the child
    # the child's lines (its pipelines' loads, e.g. which library multiplies their matrices)
    # go to the worker's stderr, named as the parse process's
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s] [parse process %(process)d] %(message)s"
    )
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()
    _child_nlp(model)


def _load_in_child(models: list[str]) -> dict[str, str | None]:
    """Load ``models`` now; model -> None when loaded, else why not."""
    from pipeline.stages.nlp import ModelNotInstalledError

    loaded: dict[str, str | None] = {}
    for model in models:
        try:
            _child_nlp(model)
            loaded[model] = None
        except (ModelNotInstalledError, OSError) as exc:
            loaded[model] = str(exc)
    gc.collect()  # the pipelines live as long as the process: out of the collector's scans
    gc.freeze()
    return loaded


def _child_nlp(model: str) -> Any:
    with _CHILD_LOCK:
        if model not in _CHILD:
            from pipeline.stages.nlp import load_nlp

            _CHILD[model] = load_nlp(model)
        return _CHILD[model]


def _parse_in_child(model: str, texts: list[str], batch_size: int) -> bytes:
    from spacy.tokens import DocBin

    nlp = _child_nlp(model)
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    # user data (custom extension attributes) only when a component set some: each document's
    # is otherwise an empty dict that costs a msgpack encode here and a decode in the parent,
    # and srsly looks up its entry points on every one
    keep = any(doc.user_data for doc in docs)
    return DocBin(attrs=ATTRS, store_user_data=keep, docs=docs).to_bytes()


# --- the parent ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parsing:
    """A batch being parsed in the child (:meth:`ParseProcess.submit`)."""

    model: str
    future: Future[bytes]
    pool: ProcessPoolExecutor


class ParseProcess:
    """A child process that parses for this one. ``vocab_of(model)`` gives the parent's
    vocabulary of a pipeline (the documents are rebuilt over it)."""

    def __init__(
        self,
        main_model: str,
        other_models: Sequence[str] = (),
        *,
        batch_size: int = 64,
        vocab_of: Any,
    ) -> None:
        self.main_model = main_model
        self.other_models = [m for m in dict.fromkeys(other_models) if m != main_model]
        self.batch_size = batch_size
        self.vocab_of = vocab_of
        self._lock = threading.RLock()
        self._pool: ProcessPoolExecutor | None = None
        self._loading: Future[dict[str, str | None]] | None = None
        self._reported: set[str] = set()
        self.restarts = 0

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_child,
                    initargs=(os.getpid(), self.main_model),
                )
            return self._pool

    def start(self) -> Future[dict[str, str | None]]:
        """Start the child; it loads every pipeline (the main one first). The future tells
        which could not be loaded, and why (:meth:`available` waits for it)."""
        with self._lock:
            if self._loading is None:
                self._loading = self._executor().submit(
                    _load_in_child, [self.main_model, *self.other_models]
                )
            return self._loading

    def available(self, model: str) -> bool:
        """Whether the child parses with ``model`` (waits for :meth:`start`'s loads)."""
        if model == self.main_model:
            return True
        loading = self.start()
        try:
            failures = loading.result()
        except BrokenProcessPool:
            with self._lock:
                if self._loading is loading:
                    self._loading = None
            raise ParseProcessDied("the parse process ended while loading its pipelines") from None
        if model not in failures:
            return False
        if failures[model] is not None:
            with self._lock:
                if model not in self._reported:
                    self._reported.add(model)
                    log.warning("no entities with spaCy pipeline %r: %s", model, failures[model])
            return False
        return True

    def submit(self, model: str, texts: Sequence[str]) -> Parsing:
        """Start parsing ``texts`` with ``model`` in the child; :meth:`docs` waits for the
        documents."""
        for _ in range(3):
            pool = self._executor()
            try:
                future = pool.submit(_parse_in_child, model, list(texts), self.batch_size)
            except (BrokenProcessPool, RuntimeError):  # died, or replaced by another thread
                self._replace(pool)
                continue
            return Parsing(model, future, pool)
        raise ParseProcessDied("the parse process could not be started")

    def docs(self, parsing: Parsing) -> list[Any]:
        """The documents of a :meth:`submit`, in order (raises what the parse raised)."""
        from spacy.tokens import DocBin

        try:
            data = parsing.future.result()
        except (BrokenProcessPool, CancelledError) as exc:  # cancelled: its pool was replaced
            self._replace(parsing.pool)
            raise ParseProcessDied(
                f"the parse process ended while parsing ({exc or 'cancelled'}); a new one is started"
            ) from None
        return list(DocBin().from_bytes(data).get_docs(self.vocab_of(parsing.model)))

    def parse(self, model: str, texts: Sequence[str]) -> list[Any]:
        """Parse ``texts`` with ``model`` in the child; the documents in order."""
        if not texts:
            return []
        return self.docs(self.submit(model, texts))

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            pool = self._pool
            if pool is not None and pool is broken:
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                self.restarts += 1
                log.warning("parse process ended; starting a new one")

    def pid(self) -> int | None:
        """The child's pid (None before it started)."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return next(iter(processes), None)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


@dataclass(frozen=True)
class SplitParsing:
    """A batch being parsed in several processes (:meth:`ParseProcesses.submit`): its texts in
    consecutive parts, one per process."""

    parts: tuple[tuple[ParseProcess, Parsing], ...]


class ParseProcesses:
    """``count`` :class:`ParseProcess` children with the interface of one: a batch is cut into
    consecutive parts of about equal length (characters), one per child, and its documents come
    back in order. A batch of one text goes to the children in turn. A child that dies fails
    only the batch it was parsing and is replaced, as with one child."""

    def __init__(
        self,
        count: int,
        main_model: str,
        other_models: Sequence[str] = (),
        *,
        batch_size: int = 64,
        vocab_of: Any,
    ) -> None:
        self.lanes = [
            ParseProcess(main_model, other_models, batch_size=batch_size, vocab_of=vocab_of)
            for _ in range(max(1, count))
        ]
        self._next = 0
        self._lock = threading.Lock()

    @property
    def restarts(self) -> int:
        return sum(lane.restarts for lane in self.lanes)

    def start(self) -> Future[dict[str, str | None]]:
        """Start every child (each loads every pipeline); the future is done when all are, with
        the first child's answer (the children load the same pipelines)."""
        loads = [lane.start() for lane in self.lanes]
        if len(loads) == 1:
            return loads[0]
        done: Future[dict[str, str | None]] = Future()

        def settle() -> None:
            wait(loads)
            try:
                for load in loads[1:]:
                    load.result()
                done.set_result(loads[0].result())
            except Exception as exc:  # handed to whoever waits (a child that died loading)
                done.set_exception(exc)

        threading.Thread(target=settle, name="parse-processes-loaded", daemon=True).start()
        return done

    def available(self, model: str) -> bool:
        return all(lane.available(model) for lane in self.lanes)

    def submit(self, model: str, texts: Sequence[str]) -> SplitParsing:
        texts = list(texts)
        count = min(len(self.lanes), len(texts)) or 1
        with self._lock:
            first = self._next
            self._next = (self._next + count) % len(self.lanes)
        lanes = [self.lanes[(first + k) % len(self.lanes)] for k in range(count)]
        return SplitParsing(
            tuple(
                (lane, lane.submit(model, part))
                for lane, part in zip(lanes, _cut(texts, count), strict=True)
            )
        )

    def docs(self, parsing: SplitParsing) -> list[Any]:
        out: list[Any] = []
        for lane, part in parsing.parts:
            out += lane.docs(part)
        return out

    def parse(self, model: str, texts: Sequence[str]) -> list[Any]:
        if not texts:
            return []
        return self.docs(self.submit(model, texts))

    def pid(self) -> int | None:
        """The first child's pid (None before it started)."""
        return self.lanes[0].pid()

    def pids(self) -> list[int]:
        return [pid for lane in self.lanes if (pid := lane.pid()) is not None]

    def close(self) -> None:
        for lane in self.lanes:
            lane.close()


def _cut(texts: list[str], parts: int) -> list[list[str]]:
    """``texts`` in ``parts`` consecutive non-empty runs of about equal total length."""
    if parts <= 1:
        return [texts]
    total = sum(len(t) for t in texts) or 1
    runs: list[list[str]] = [[]]
    done = 0
    for i, text in enumerate(texts):
        left_texts, left_runs = len(texts) - i, parts - len(runs)
        # a new run when the texts left are just enough for the runs left, or when this text
        # lies mostly past the current run's share
        if runs[-1] and (
            left_texts == left_runs
            or (left_runs > 0 and done + len(text) / 2 > total * len(runs) / parts)
        ):
            runs.append([])
        runs[-1].append(text)
        done += len(text)
    return runs
