"""Performance in one run: NER speed, end-to-end throughput and latency, with same-run ratios.

    python -m benchmarks.performance [--corpus FILE.jsonl] [--quick] [--articles N]
                                     [--rate 20] [--seconds 60] [--warmup 5] [--partitions 4]
                                     [--warm-servers 900]

Uses the servers of NEWS_KAFKA_BOOTSTRAP / NEWS_ES_URL, else starts the local runtime
(``newspipe up``'s servers). The model is NEWS_SPACY_MODEL. Any JSON-lines corpus of articles
(``{"title", "body", ...}`` per line) works; distinct articles are picked from it (exact and
near copies skipped; ``--min-words`` 40 to ``--max-words`` 400, 0 for no limit). Printed:

1. once the servers are warm (:func:`warm_servers`: untimed rounds through 1 and 2 workers
   in turn until the servers' JIT compilers use at most ``WARM_JIT_CORES``, or for
   ``--warm-servers`` seconds), ``nlp.pipe`` over the cleaned bodies with 1 and 2 processes:
   of the pipeline the stages load (:func:`pipeline.stages.nlp.load_nlp`), then of the model
   as shipped (every component; the goals' reference, measured right before the runs
   compared with it);
2. end-to-end throughput with 1 and 2 workers (``benchmarks.scaling.one_run``: all articles
   sent at once, until all are indexed; two workers are measured first) and the ratios to
   ``nlp.pipe`` with 1 and 2 processes;
3. latency at 80% of the measured one-worker capacity (right after it was measured), then at
   ``--rate`` articles/s, for ``--seconds`` each with one worker, each after ``--warmup``
   seconds of other articles at the same rate (not counted; their ingest -> alert printed
   apart): ingest -> alert received on the alerts topic, ingest -> searchable (a search finds
   it; polled every 100 ms) as p50/p90/p99/max, and where the time goes (the alerts'
   ``stage_times``, see pipeline.stream.timing), the CPU the worker, its parse processes,
   the servers (when on this machine; and of it their JIT compilers) and the machine used
   meanwhile, how long each of them waited for a core per second of its CPU, the enrich
   step's parts per article (:func:`enrich_timings`, from the indexed articles'
   ``timings_ms``), the Elasticsearch requests per article by route (:func:`es_requests`),
   and the machine's speed before the run beside its speed right after the capacity was
   measured (:class:`SpeedProbe`).

Figures only, no asserts; the machine may be shared, so compare the ratios of one run.
``--quick`` (development): 300 articles, 15 s at each rate.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cpu_split import children_of, cpu_seconds, jit_seconds, pids_of, wait_seconds
from benchmarks.scaling import distinct_articles, drop_run, fresh_run, one_run
from pipeline.stream.timing import ALERT_PATH, STEP_NAMES, percentile, step_durations

MATCHED_ON = {
    "clean": "keyword subscriptions (matched on the clean article)",
    "enriched": "entity/event subscriptions (matched on the enriched article)",
}
"""How the alerts are grouped: where their subscription is matched (alerts.matcher.match_stage)."""

MAX_WARMUP_RATE = 50.0
"""Warm-up articles are drawn for rates up to this (80% of a fast machine's capacity is 35/s);
a faster run's warm-up is shorter."""

PROBE_TEXTS = 100
"""Texts of the machine-speed probe (:class:`SpeedProbe`; about 2 s of one core)."""

DEFAULT_CORPUS = os.environ.get("NEWS_CORPUS") or "/work/shared/corpus/reuters21578.jsonl"


# --- 1. nlp.pipe ---------------------------------------------------------------------------
def nlp_pipe_rate(
    texts: list[str], model: str, *, staged: bool, n_process: int, batch_size: int = 64
) -> float:
    """Articles/s of ``nlp.pipe`` over ``texts`` (after a warm-up outside the timing)."""
    import spacy

    from pipeline.stages.nlp import load_nlp, loadable_name

    nlp = load_nlp(model) if staged else spacy.load(loadable_name(model))
    list(nlp.pipe(texts[:10]))
    return pipe_rate(nlp, texts, batch_size=batch_size, n_process=n_process)


def pipe_rate(nlp, texts: list[str], *, batch_size: int = 64, n_process: int = 1) -> float:
    """Articles/s of one timed ``nlp.pipe`` over ``texts``."""
    started = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=batch_size, n_process=n_process):
        pass
    return len(texts) / (time.perf_counter() - started)


class SpeedProbe:
    """The machine's speed now: ``nlp.pipe`` of the stage pipeline over the same few texts, in
    this process, each time it is called. The machine is shared and its speed moves between
    the parts of a run; "80% of capacity" holds only while it runs as fast as when the
    capacity was measured, so each latency run prints the probe's rate beside the one taken
    right after the capacity measurement."""

    def __init__(self, model: str, texts: list[str]) -> None:
        from pipeline.stages.nlp import load_nlp

        self.nlp = load_nlp(model)
        self.texts = texts
        list(self.nlp.pipe(texts[:10]))

    def rate(self) -> float:
        return pipe_rate(self.nlp, self.texts)


def components(model: str, staged: bool) -> list[str]:
    """The pipeline's components, and the library of its matrix products (the stage pipeline
    takes the faster one, pipeline.stages.matmul; the shipped model keeps thinc's default)."""
    import spacy

    from pipeline.stages.matmul import library_of
    from pipeline.stages.nlp import load_nlp, loadable_name

    nlp = load_nlp(model) if staged else spacy.load(loadable_name(model))
    return [*nlp.pipe_names, f"(matrix products: {library_of(nlp)})"]


# --- 2. the servers warmed first --------------------------------------------------------
WARM_JIT_CORES = 0.1
"""The servers count as warm when their JIT compilers used at most this many cores while a
warm-up round's articles went through (their CPU in the round over the time the articles
took). A core count, not a share of the servers' CPU: session 40 saw a node's JIT settle at
0.07-0.12 cores after ten minutes of load while still 12-27% of the node's CPU, its work per
article having become small."""

WARM_ROUND_ARTICLES = 1200
"""Articles of one warm-up round (all sent at once). Each round also starts its workers and
makes and drops its topics and indices (about 18 s with little load on the servers), so a
round of 600 loaded them for 12 of its 30 s."""

WARM_ROUND_WORKERS = (1, 2)
"""Workers of the warm-up rounds, in turn: the two-worker run is measured first after the
warm-up, and its paths (two members of one group, story syncs reading another worker's
writes, concurrent registry writes) get compiled too."""

SERVERS = {"Elasticsearch": "org.elasticsearch.bootstrap", "Kafka": "kafka.Kafka"}
"""The servers' processes on this machine, by a pattern of their command lines (JVMs both)."""


def warm_servers(articles: list, partitions: int, budget_s: float, log=print) -> None:
    """Run untimed end-to-end rounds (:func:`benchmarks.scaling.one_run` over ``articles``,
    fresh topics and indices each time, with ``WARM_ROUND_WORKERS`` workers in turn) until
    the JIT compilers of the servers on this machine used at most ``WARM_JIT_CORES`` in a
    round, every worker count has had a round, or ``budget_s`` is spent; one round of each
    when the servers are elsewhere (their JIT cannot be seen from here).

    A JVM compiles its hot code during its first minutes of load: a freshly started
    Elasticsearch spent a third to three fifths of its CPU in its JIT compiler threads for
    15 minutes and more (docs/performance.md, session 30), and on two cores that CPU is taken
    from the worker. The goals are for a running stack, so the figures are measured after."""
    deadline = time.monotonic() + budget_s
    articles = articles[:WARM_ROUND_ARTICLES]
    for round_, workers in enumerate(itertools.cycle(WARM_ROUND_WORKERS), 1):
        before = {name: _server_cpu(pattern) for name, pattern in SERVERS.items()}
        result = one_run(workers, articles, partitions)
        after = {name: _server_cpu(pattern) for name, pattern in SERVERS.items()}
        used = {
            name: (after[name][0] - before[name][0], after[name][1] - before[name][1])
            for name in SERVERS
            if after[name][0] > before[name][0]
        }
        per_article = 1 / max(result["indexed"], 1)
        shares = ", ".join(
            f"{name} {cpu * 1000 * per_article:.1f} ms per article, "
            f"{jit / cpu:.0%} of it JIT compilation"
            for name, (cpu, jit) in used.items()
        )
        jit_cores = sum(j for _, j in used.values()) / max(result["seconds"], 1e-9)
        log(
            f"  round {round_}: {result['indexed']} articles through {workers} worker(s) at "
            f"{result['rate']:.1f}/s"
            + (
                f"; {shares}; JIT {jit_cores:.2f} cores"
                if shares
                else "; the servers are elsewhere"
            ),
            flush=True,
        )
        # servers elsewhere: nothing seen, 0 cores
        if round_ >= len(WARM_ROUND_WORKERS) and (
            jit_cores <= WARM_JIT_CORES or time.monotonic() >= deadline
        ):
            return


def _server_cpu(pattern: str) -> tuple[float, float]:
    """CPU seconds so far of the processes matching ``pattern``, and of their JIT compilers."""
    pids = pids_of(pattern)
    return sum(cpu_seconds(p) for p in pids), sum(jit_seconds(p) for p in pids)


# --- 3. paced latency ----------------------------------------------------------------------
ALERT_POLL_MS = 500
"""The alerts watcher's longest wait in one poll. A poll returns as soon as alerts arrive, so
this does not delay them (session 32: 5-6 ms from send to receipt, p50, with 50 or 500); it
sets how often the consumer wakes with nothing to read: every 50 ms cost this process 0.036
cores, every 500 ms 0.010, on a machine that the stack at 20 articles/s keeps 90% busy."""


class AlertWatcher(threading.Thread):
    """Reads the alerts topic from the start; records each alert and when it arrived."""

    def __init__(self, settings) -> None:
        super().__init__(daemon=True)
        from kafka import TopicPartition

        from pipeline.infra.kafka import make_consumer

        topic = settings.topic("alerts")
        self.consumer = make_consumer(settings=settings)
        parts = [
            TopicPartition(topic, p)
            for p in self.consumer.partitions_for_topic(topic) or range(settings.topic_partitions)
        ]
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning(*parts)
        self.received: dict[str, tuple[float, dict]] = {}  # alert id -> (wall time, alert)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=ALERT_POLL_MS).values():
                now = time.time()
                for record in records:
                    alert = json.loads(record.value)
                    self.received.setdefault(alert["id"], (now, alert))
        self.consumer.close()


class SearchableWatcher(threading.Thread):
    """Polls a search for the sent articles every 100 ms; records when each became findable
    (``seen``: by its text, maybe before its enrichment) and when its enriched document was
    (``enriched``: ``enriched`` true, or a document without the field, of older versions)."""

    def __init__(self, es, index: str) -> None:
        super().__init__(daemon=True)
        self.es, self.index = es, index
        self.pending: set[str] = set()
        self.seen: dict[str, float] = {}
        self.enriched: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def add(self, article_id: str) -> None:
        with self.lock:
            self.pending.add(article_id)

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                ids = sorted(self.pending)[:1000]
            if ids:
                try:
                    hits = self.es.search(
                        index=self.index,
                        query={"ids": {"values": ids}},
                        size=len(ids),
                        source_includes=["enriched"],
                    )["hits"]["hits"]
                except Exception:
                    hits = []
                now = time.time()
                with self.lock:
                    for hit in hits:
                        self.seen.setdefault(hit["_id"], now)
                        if hit.get("_source", {}).get("enriched", True):
                            self.pending.discard(hit["_id"])
                            self.enriched.setdefault(hit["_id"], now)
            self.stop.wait(0.1)


CPU_PARTS = ("worker", "parse processes", "Elasticsearch", "Kafka", "this benchmark")


def cpu_snapshot(worker_pid: int) -> dict[str, float] | None:
    """CPU seconds used so far by the worker, its parse processes, the Elasticsearch and Kafka
    processes on this machine (none when the servers are elsewhere) and of their JIT
    compilers (``"Elasticsearch JIT"``: part of the server's figure), this benchmark and the
    machine as a whole (``/proc``; None where there is none); and, as ``"<part> waiting"``,
    the seconds each part's threads waited for a core (:func:`wait_seconds`)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    pids = {
        "worker": [worker_pid],
        "parse processes": children_of(worker_pid),
        **{name: pids_of(pattern) for name, pattern in SERVERS.items()},
        "this benchmark": [os.getpid()],
    }
    return {
        **{part: sum(cpu_seconds(p) for p in found) for part, found in pids.items()},
        **{f"{name} JIT": sum(jit_seconds(p) for p in pids[name]) for name in SERVERS},
        **{f"{part} waiting": sum(wait_seconds(p) for p in found) for part, found in pids.items()},
        "machine": (sum(fields) - fields[3] - fields[4]) / ticks,  # all but idle and iowait
        "at": time.monotonic(),
    }


def es_requests(es) -> dict[str, int] | None:
    """HTTP requests Elasticsearch has answered so far, by route (``/_bulk``, ``/{index}/_mget``,
    ...), summed over its nodes and all their clients; None when the node does not count them
    by route (before 8.x) or cannot say."""
    try:
        nodes = es.nodes.stats(metric="http")["nodes"].values()
    except Exception:
        return None
    counts: dict[str, int] = {}
    for node in nodes:
        for route, figures in (node.get("http", {}).get("routes") or {}).items():
            if not route.startswith("/_nodes"):  # this function's own
                counts[route] = counts.get(route, 0) + figures["requests"]["count"]
    return counts or None


def free_port() -> int:
    """A port free now, drawn below the kernel's ephemeral range (where an outgoing
    connection may take a port before the worker binds it)."""
    import random

    from pipeline.runtime.process import port_in_use

    rng = random.SystemRandom()
    while True:
        port = rng.randrange(20000, 32000)
        if not port_in_use(port):
            return port


GC_LONG_S = 0.05
"""A garbage collector's pass at least this long is counted apart: it held every agent up."""


def gc_pauses(port: int) -> dict[str, dict[str, float]] | None:
    """The worker's garbage collector passes so far (``newspipe_gc_pause_seconds``, from its
    metrics endpoint): generation -> count, seconds, passes of :data:`GC_LONG_S` or more.
    None when the endpoint does not answer."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode("utf-8")
    except OSError:
        return None
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "newspipe_gc_pause_seconds":
            continue
        for sample in family.samples:
            figures = out.setdefault(
                sample.labels["generation"], {"count": 0.0, "seconds": 0.0, "long": 0.0}
            )
            if sample.name.endswith("_count"):
                figures["count"] = sample.value
            elif sample.name.endswith("_sum"):
                figures["seconds"] = sample.value
            elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == GC_LONG_S:
                figures["long"] = -sample.value  # + count below: the passes above the bucket
    for figures in out.values():
        figures["long"] += figures["count"]
    return out


def gc_difference(
    before: dict[str, dict[str, float]] | None, after: dict[str, dict[str, float]] | None
) -> dict[str, dict[str, float]]:
    """The passes between two :func:`gc_pauses` readings, by generation."""
    if before is None or after is None:
        return {}
    return {
        generation: {
            key: value - before.get(generation, {}).get(key, 0.0) for key, value in figures.items()
        }
        for generation, figures in sorted(after.items())
    }


def cpu_use(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float]:
    """Cores used by each part between two snapshots (a parse process that died in between
    is missed)."""
    if not before or not after:
        return {}
    seconds = max(after["at"] - before["at"], 1e-9)
    used = {k: max(0.0, after[k] - before[k]) / seconds for k in before if k != "at"}
    return {**used, "seconds": seconds}


def paced_run(
    articles: list,
    rate: float,
    seconds: float,
    partitions: int,
    log=print,
    warmup: list | None = None,
) -> dict:
    """One worker on fresh topics/indices; ``rate`` articles/s for ``seconds``; latencies.

    ``warmup``: articles sent first at the same rate, right before the measured ones and not
    counted in their figures (the stream is steady when the measurement starts: a fresh
    worker's first seconds, its first requests and batches, are shown apart as
    ``warmup_to_alert``)."""

    from pipeline.cli.demo import start_worker, stop_worker, wait_ready
    from pipeline.infra.kafka import make_producer
    from schemas.models import utcnow

    run, settings, es = fresh_run("perf", partitions)
    log_path = settings.data_dir / "logs" / f"performance-{run}.log"
    metrics_port = free_port()  # its garbage collector's pauses; the lag timer all but off
    worker = start_worker(
        log_path,
        env={"NEWS_METRICS_PORT": str(metrics_port), "NEWS_METRICS_LAG_INTERVAL_S": "86400"},
    )
    alerts = AlertWatcher(settings)
    searchable = SearchableWatcher(es, settings.index("articles"))
    try:
        wait_ready(worker, log_path, timeout_s=400)
        alerts.start()
        searchable.start()
        producer = make_producer(settings)
        count = min(len(articles), max(1, int(rate * seconds)))
        warmup = warmup or []
        sent_at: dict[str, float] = {}
        cpu_before = requests_before = gc_before = None
        started = time.monotonic()
        for n, article in enumerate(warmup + articles[:count]):
            if n == len(warmup):  # the measured articles start here
                cpu_before, measured_from = cpu_snapshot(worker.pid), time.monotonic()
                requests_before = es_requests(es)
                gc_before = gc_pauses(metrics_port)
            stamped = article.model_copy(update={"ingested_at": utcnow()})
            producer.send(settings.topic("raw"), key=article.id, value=stamped)
            producer.flush()
            if n >= len(warmup):
                sent_at[article.id] = stamped.ingested_at.timestamp()
                searchable.add(article.id)
            time.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
        actual_rate = count / (time.monotonic() - measured_from)
        producer.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(searchable.enriched) < count:
            time.sleep(0.2)
        cores = cpu_use(cpu_before, cpu_snapshot(worker.pid))  # sending until all searchable
        requests_after = es_requests(es)
        gc_after = gc_pauses(metrics_port)
        enrich_parts = enrich_timings(es, settings.index("articles"), list(sent_at))
        time.sleep(2.0)  # the alerts agent runs beside the index agent
    finally:
        alerts.stop.set()
        searchable.stop.set()
        stop_worker(worker)
        drop_run(settings, es)
        es.close()
    alerts.join(5)
    searchable.join(5)
    to_alert: list[float] = []
    warmup_to_alert: list[float] = []
    kinds: dict[str, dict] = {}  # where the alert was matched -> its figures
    timeline: list[tuple[float, float, dict[str, float]]] = []  # (ingested, ms, steps)
    for received, alert in alerts.received.values():
        if alert.get("ingested_at") is None:
            continue
        produced = _ts(alert["ingested_at"])
        if alert.get("article_id") not in sent_at:
            warmup_to_alert.append((received - produced) * 1000)
            continue
        to_alert.append((received - produced) * 1000)
        stage_times = alert.get("stage_times") or {}
        kind = kinds.setdefault(
            MATCHED_ON["enriched" if "enriched" in stage_times else "clean"],
            {"to_alert": [], "steps": {name: [] for name in ALERT_PATH}, "publish": []},
        )
        kind["to_alert"].append(to_alert[-1])
        durations = step_durations(alert["ingested_at"], stage_times)
        for name, ms in durations.items():
            kind["steps"][name].append(ms)
        timeline.append((produced, to_alert[-1], durations))
        matched = stage_times.get("matched")
        if matched is not None:
            kind["publish"].append((received - _ts(matched)) * 1000)
    to_search = [(seen - sent_at[i]) * 1000 for i, seen in searchable.seen.items() if i in sent_at]
    to_enriched = [
        (seen - sent_at[i]) * 1000 for i, seen in searchable.enriched.items() if i in sent_at
    ]
    return {
        "rate": rate,
        "actual_rate": actual_rate,
        "seconds": seconds,
        "sent": count,
        "searchable": len(to_search),
        "alerts": len(to_alert),
        "to_alert": to_alert,
        "to_search": to_search,
        "to_enriched": to_enriched,
        "warmup": len(warmup),
        "warmup_to_alert": warmup_to_alert,
        "kinds": dict(sorted(kinds.items())),
        "timeline": sorted(timeline, key=lambda t: t[0]),
        "cores": cores,
        "gc": gc_difference(gc_before, gc_after),
        "enrich_parts": enrich_parts,
        "es_requests": {
            route: n - (requests_before or {}).get(route, 0)
            for route, n in (requests_after or {}).items()
            if n > (requests_before or {}).get(route, 0)
        },
    }


ENRICH_PARTS = {
    "nlp": "parse (waiting for the parse process)",
    "entities": "entities",
    "events": "events",
    "stories": "stories",
}
"""The enrich step's parts, as the articles' ``timings_ms`` name them."""


def enrich_timings(es, index: str, ids: list[str]) -> dict[str, float]:
    """The enrich step's parts (``ENRICH_PARTS``), ms per article: the mean of the indexed
    articles' ``timings_ms``, where each part's time in a batch is shared by its articles (so
    the mean is the part's time per article, however the batches were cut)."""
    sums: dict[str, float] = {}
    found = 0
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        try:
            hits = es.search(
                index=index,
                query={"ids": {"values": chunk}},
                size=len(chunk),
                source_includes=["timings_ms"],
            )["hits"]["hits"]
        except Exception:
            return {}
        for hit in hits:
            timings = hit.get("_source", {}).get("timings_ms") or {}
            found += 1
            for part in ENRICH_PARTS:
                sums[part] = sums.get(part, 0.0) + float(timings.get(part, 0.0))
    return {part: total / found for part, total in sums.items()} if found else {}


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def summary(values: list[float]) -> str:
    if not values:
        return "no values"
    return (
        f"p50 {percentile(values, 0.5):.0f}, p90 {percentile(values, 0.9):.0f}, "
        f"p99 {percentile(values, 0.99):.0f}, max {max(values):.0f} ms (n={len(values)})"
    )


GOAL_RATIOS = {1: 0.85, 2: 0.75}
"""Issue #8's throughput goals: workers -> least ratio to ``nlp.pipe(n_process=workers)`` of
the model as shipped."""
GOAL_LOADED_ALERT_MS = 2000.0
"""p99 ingest -> alert at 80% of the one-worker capacity."""
GOAL_STEADY_RATE = 20.0
GOAL_STEADY_ALERT_MS = 1000.0
GOAL_STEADY_SEARCHABLE_MS = 1500.0
"""p99 ingest -> alert and ingest -> searchable at a steady 20 articles/s."""


def _p99_of_all(values: list[float], expected: int | None = None) -> float | None:
    """p99 of ``values``, counting the ``expected`` ones that never came as infinitely late;
    None when there is nothing to measure."""
    if not values and not expected:
        return None
    missing = max(0, (expected or 0) - len(values))
    return percentile(list(values) + [float("inf")] * missing, 0.99)


def goal_lines(ratios: dict[int, float], loaded: dict | None, steady: dict | None) -> list[str]:
    """One line per goal of issue #8 that this run measured (its figure, the goal, whether it
    was met), then how many were met. ``ratios``: workers -> end-to-end rate / ``nlp.pipe``
    as shipped; ``loaded`` / ``steady``: :func:`paced_run`'s results at 80% of capacity and
    at ``--rate``. An article never found by a search counts as infinitely late."""
    checks: list[tuple[str, float | None, str, float]] = []  # label, figure, ">=" or "<=", goal
    for workers, least in GOAL_RATIOS.items():
        if workers in ratios:
            label = f"{workers} worker(s) / nlp.pipe(n_process={workers}) as shipped"
            checks.append((label, ratios[workers], ">=", least))
    if loaded is not None:
        label = f"ingest -> alert p99 at 80% of capacity ({loaded['rate']:.1f}/s)"
        checks.append((label, _p99_of_all(loaded["to_alert"]), "<=", GOAL_LOADED_ALERT_MS))
    if steady is not None:
        at = f"{steady['rate']:g}/s"
        if steady["rate"] != GOAL_STEADY_RATE:
            at += f"; the goal is at {GOAL_STEADY_RATE:g}/s"
        alert = _p99_of_all(steady["to_alert"])
        searchable = _p99_of_all(steady["to_search"], steady["sent"])
        checks.append((f"ingest -> alert p99 at {at}", alert, "<=", GOAL_STEADY_ALERT_MS))
        checks.append(
            (f"ingest -> searchable p99 at {at}", searchable, "<=", GOAL_STEADY_SEARCHABLE_MS)
        )
    lines, met = [], 0
    for label, figure, sense, goal in checks:
        unit = " ms" if sense == "<=" else ""
        if figure is None:
            lines.append(f"  {label}: not measured (goal {sense} {goal:g}{unit})")
            continue
        ok = figure <= goal if sense == "<=" else figure >= goal
        met += ok
        shown = f"{figure:.0f}" if unit else f"{figure:.2f}"
        verdict = "met" if ok else "NOT met"
        lines.append(f"  {label}: {shown}{unit} (goal {sense} {goal:g}{unit}): {verdict}")
    if checks:
        lines.append(f"  {met} of {len(checks)} goals met in this run")
    return lines


def print_latency(result: dict, label: str) -> None:
    print(
        f"latency at {label}: {result['sent']} articles sent at {result['actual_rate']:.1f}/s "
        f"over {result['sent'] / max(result['actual_rate'], 1e-9):.0f} s, one worker"
    )
    if result.get("warmup"):
        print(
            f"  first, {result['warmup']} other articles at the same rate, not counted: the "
            f"fresh worker's start (their ingest -> alert: {summary(result['warmup_to_alert'])})"
        )
    print(f"  ingest -> alert (received on the alerts topic): {summary(result['to_alert'])}")
    print(
        f"  ingest -> searchable (found by a search, 100 ms polls): {summary(result['to_search'])}"
    )
    if result.get("to_enriched") and result["to_enriched"] != result["to_search"]:
        print(
            "  ingest -> searchable with its entities, events and story (the enriched "
            f"document): {summary(result['to_enriched'])}"
        )
    cores = result.get("cores")
    if cores:  # a latency that grows with a saturated machine is a capacity limit, not a wait
        parts = ", ".join(f"{name} {cores[name]:.2f}" for name in CPU_PARTS)
        print(
            f"  CPU while sending until all were searchable (cores): {parts}; "
            f"machine {cores['machine']:.2f} of {os.cpu_count() or 1}"
        )
        # the same as work per article: comparable between runs however long the queues got
        per_article = cores["seconds"] * 1000 / max(result["sent"], 1)
        parts = ", ".join(f"{name} {cores[name] * per_article:.1f}" for name in CPU_PARTS)
        print(f"  CPU per article (ms): {parts}; machine {cores['machine'] * per_article:.1f}")
        jit = {name: cores[f"{name} JIT"] for name in SERVERS if cores.get(name)}
        if jit:  # high on servers started minutes ago: their JVMs still compile (warm_servers)
            parts = ", ".join(f"{name} {jit[name]:.2f} of its {cores[name]:.2f}" for name in jit)
            print(f"  of which the servers' JIT compilers (cores): {parts}")
        waits = {n: cores[f"{n} waiting"] / cores[n] for n in CPU_PARTS if cores.get(n)}
        if any(waits.values()):  # a step on a full machine takes its CPU time and this more
            parts = ", ".join(f"{name} {share:.2f}" for name, share in waits.items())
            print(
                "  waiting for a core, seconds per second of CPU (summed over each part's "
                f"threads): {parts}"
            )
    collections = result.get("gc")
    if collections:  # each pass stops every agent of the worker
        parts = ", ".join(
            f"generation {generation} {figures['count']:.0f} ({figures['seconds'] * 1000:.0f} ms)"
            for generation, figures in collections.items()
        )
        long_ = sum(figures["long"] for figures in collections.values())
        print(
            f"  the worker's garbage collector, passes (time): {parts}; "
            f"{long_:.0f} of {GC_LONG_S * 1000:.0f} ms or more"
        )
    parts_ms = result.get("enrich_parts")
    if parts_ms:  # the enrich step's own time (an entity alert's longest step), by part
        parts = ", ".join(f"{ENRICH_PARTS[part]} {ms:.1f}" for part, ms in parts_ms.items())
        print(
            f"  the enrich step per article (ms; a batch's time shared by its articles): {parts}; "
            f"in all {sum(parts_ms.values()):.1f}"
        )
    requests = result.get("es_requests")
    if requests:  # each request costs the worker and Elasticsearch a fixed share, however small
        sent = max(result["sent"], 1)
        parts = ", ".join(
            f"{route} {n / sent:.2f}"
            for route, n in sorted(requests.items(), key=lambda kv: -kv[1])
        )
        print(
            f"  Elasticsearch requests per article, by route ({sum(requests.values()) / sent:.2f} "
            f"in all; this benchmark's searches included): {parts}"
        )
    for kind, figures in result["kinds"].items():
        print(f"  {kind}: ingest -> alert {summary(figures['to_alert'])}")
        print("    where the time goes (per alert, ms: mean / p99):")
        for name in ALERT_PATH:
            values = figures["steps"][name]
            if values:
                print(
                    f"      {STEP_NAMES[name]:40s} {statistics.fmean(values):7.0f} / {percentile(values, 0.99):6.0f}"
                )
        if figures["publish"]:
            print(
                f"      {'publish (ledger done -> alert received)':40s} {statistics.fmean(figures['publish']):7.0f} "
                f"/ {percentile(figures['publish'], 0.99):6.0f}"
            )
    timeline = result.get("timeline") or []
    if timeline:  # when the slow ones came: a start-up effect, a stall, or a growing queue
        start = timeline[0][0]
        print("  slowest alerts (s after the first article: ms, then ms per step):")
        for produced, ms, durations in sorted(timeline, key=lambda t: -t[1])[:3]:
            steps = " ".join(f"{name}={value:.0f}" for name, value in durations.items())
            print(f"    +{produced - start:5.1f} s: {ms:6.0f}  ({steps})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=DEFAULT_CORPUS, help="JSON-lines articles")
    parser.add_argument("--quick", action="store_true", help="300 articles, 15 s per rate")
    parser.add_argument(
        "--articles",
        type=int,
        default=None,
        help="distinct articles (2400); a paced run sends at most these",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="steady rate, articles/s")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per rate (60)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        help="seconds of other articles sent at each rate before the measured ones (5; 0: none)",
    )
    parser.add_argument(
        "--warm-servers",
        type=float,
        default=None,
        help="seconds at most of untimed rounds that warm the servers' JIT first (900; "
        "--quick 120; 0: none)",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--min-words", type=int, default=40)
    parser.add_argument("--max-words", type=int, default=400, help="0: no limit (long articles)")
    parser.add_argument(
        "--skip", default="", help="comma list of parts to skip: nlp,throughput,latency"
    )
    args = parser.parse_args()
    n = args.articles or (300 if args.quick else 2400)
    seconds = args.seconds or (15.0 if args.quick else 60.0)
    if args.warm_servers is None:
        args.warm_servers = 120.0 if args.quick else 900.0
    skip = set(filter(None, args.skip.split(",")))

    from pipeline.runtime.local import LocalRuntime
    from pipeline.settings import get_settings
    from pipeline.stages.clean import clean

    settings = get_settings()
    if "NEWS_KAFKA_BOOTSTRAP" not in os.environ:
        LocalRuntime(settings).up()
    model = settings.spacy_model
    corpus = Path(args.corpus)
    if not corpus.is_file():
        sys.exit(f"error: no corpus file {corpus}")
    # the warm-up articles are others than the measured ones (the same ones would be duplicates)
    spare = 0 if "latency" in skip else int(args.warmup * max(args.rate, MAX_WARMUP_RATE))
    try:
        articles = distinct_articles(
            n + spare,
            corpus,
            uuid.uuid4().hex[:6],
            min_words=args.min_words,
            max_words=args.max_words or sys.maxsize,
        )
    except RuntimeError as exc:
        sys.exit(f"error: {exc} (ask for fewer with --articles)")
    articles, extra = articles[:n], articles[n:]
    texts = [clean(a).body for a in articles]
    words = statistics.fmean(len(t.split()) for t in texts)
    cores = os.cpu_count() or 1
    print(
        f"newspipe performance: model {model}, corpus {corpus.name}, {len(articles)} distinct "
        f"articles of {words:.0f} words on average; {cores} cores (shared machine: compare ratios)"
    )

    if args.warm_servers > 0 and not {"throughput", "latency"} <= skip:
        print(
            f"warming the servers (untimed rounds of {min(len(articles), WARM_ROUND_ARTICLES)} "
            f"articles through {' and '.join(map(str, WARM_ROUND_WORKERS))} worker(s) in turn, "
            f"until their JIT compilers use at most {WARM_JIT_CORES:g} cores or "
            f"{args.warm_servers:g} s have passed):",
            flush=True,
        )
        warm_servers(articles, args.partitions, args.warm_servers)

    # nlp.pipe after the warm-up, the shipped model's (the goals' reference) right before the
    # runs compared with it: the machine's speed moves from minute to minute, and the warm-up
    # can take ten
    pipe: dict[tuple[bool, int], float] = {}
    if "nlp" not in skip:
        for staged in (True, False):
            print(
                f"nlp.pipe, {'stage pipeline' if staged else 'model as shipped'}: "
                f"{' '.join(components(model, staged))}"
            )
            for n_process in (1, 2):
                pipe[staged, n_process] = nlp_pipe_rate(
                    texts, model, staged=staged, n_process=n_process
                )
                print(
                    f"  {n_process} process(es): {pipe[staged, n_process]:.1f} articles/s",
                    flush=True,
                )

    probe = SpeedProbe(model, texts[:PROBE_TEXTS]) if "latency" not in skip else None
    speed_at_capacity = None
    e2e: dict[int, float] = {}
    if "throughput" not in skip:
        # two workers first: the one-worker capacity is measured right before the run at 80%
        # of it, so that the machine's speed has the least time to move in between
        results = {workers: one_run(workers, articles, args.partitions) for workers in (2, 1)}
        if probe is not None:
            speed_at_capacity = probe.rate()
        for workers in (1, 2):
            result = results[workers]
            e2e[workers] = result["rate"]
            print(
                f"end to end, {workers} worker(s): {result['indexed']} articles in {result['seconds']:.1f} s "
                f"= {result['rate']:.1f} articles/s",
                flush=True,
            )
        for workers in (1, 2):
            ref = pipe.get((False, workers))
            if ref:
                goal = GOAL_RATIOS[workers]
                print(
                    f"  ratio {workers} worker(s) / nlp.pipe(n_process={workers}) as shipped: "
                    f"{e2e[workers] / ref:.2f} (goal >= {goal}); to the stage pipeline: "
                    f"{e2e[workers] / pipe[True, workers]:.2f}"
                )
        print(f"  2 workers / 1 worker: {e2e[2] / e2e[1]:.2f}x")

    at_load = steady = None  # the latency runs' results
    if "latency" not in skip:

        def warmup(rate: float) -> list:
            return extra[: int(args.warmup * rate)]

        def speed() -> str:
            now = probe.rate()
            line = f"machine speed before this run: nlp.pipe {now:.1f} articles/s"
            if speed_at_capacity:
                line += (
                    f", {now / speed_at_capacity:.2f} of its {speed_at_capacity:.1f}/s right "
                    "after the capacity was measured"
                )
            return line

        if e2e.get(1):  # first, right after the capacity was measured
            loaded = 0.8 * e2e[1]
            line = speed()
            at_load = paced_run(articles, loaded, seconds, args.partitions, warmup=warmup(loaded))
            print_latency(
                at_load,
                f"80% of one-worker capacity, {loaded:.1f} articles/s "
                f"(goal: p99 alert <= {GOAL_LOADED_ALERT_MS:g} ms)",
            )
            print(f"  {line}")
        line = speed()
        steady = paced_run(articles, args.rate, seconds, args.partitions, warmup=warmup(args.rate))
        print_latency(
            steady,
            f"{args.rate:g} articles/s (goal: p99 alert <= {GOAL_STEADY_ALERT_MS:g} ms, "
            f"searchable <= {GOAL_STEADY_SEARCHABLE_MS:g} ms)",
        )
        print(f"  {line}")

    ratios = {w: e2e[w] / pipe[False, w] for w in e2e if pipe.get((False, w))}
    lines = goal_lines(ratios, at_load, steady)
    if lines:
        print("goals (issue #8) in this run:")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
