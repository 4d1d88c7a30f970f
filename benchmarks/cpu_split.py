"""Where one worker's CPU goes: CPU time per article of each process (the worker, its parse
processes, Elasticsearch, Kafka) while one worker clears a backlog, and Elasticsearch's own
time per index family (indexing, refresh, merges, search, get).

    python -m benchmarks.cpu_split                      # 900 Reuters articles
    NEWS_STATE_REFRESH_S=1 python -m benchmarks.cpu_split --articles 600

It needs servers on this machine (``NEWS_KAFKA_BOOTSTRAP`` / ``NEWS_ES_URL``, e.g. the local
runtime of ``newspipe up``): CPU is read from ``/proc/<pid>/stat`` of the processes that run
``kafka.Kafka`` and ``org.elasticsearch.bootstrap``, before and after the run. The run uses
fresh topics and indices (``cpu<run>`` prefixes), so other users of the servers count too:
run it on a quiet machine. Figures only (docs/performance.md quotes them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.scaling import all_indexed, distinct_articles, fresh_run, ops_per_article
from pipeline.stages.index import enriched_ids

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "reuters21578.jsonl"
TICKS = os.sysconf("SC_CLK_TCK")
STATS = ("docs", "indexing", "refresh", "merges", "search", "get")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        return _stat_seconds(Path(f"/proc/{pid}/stat"))
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def _stat_seconds(stat: Path) -> float:
    """User + system CPU seconds in a ``/proc`` ``stat`` file (a process's or a thread's)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")
"""A HotSpot JVM's JIT compiler threads (``C2 CompilerThread0``: Linux keeps 15 characters)."""


def _per_thread(pid: int, read: Callable[[Path], float]) -> float:
    """The sum of ``read(/proc/<pid>/task/<tid>)`` over a process's threads (0 when it is
    gone; a thread that ended meanwhile, or whose figure cannot be read, is missed)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    total = 0.0
    for task in tasks:
        try:
            total += read(task)
        except (OSError, IndexError, ValueError):
            continue
    return total


def jit_seconds(pid: int) -> float:
    """User + system CPU seconds of a JVM's JIT compiler threads so far."""
    return _per_thread(
        pid,
        lambda task: (
            _stat_seconds(task / "stat")
            if (task / "comm").read_text().startswith(JIT_THREADS)
            else 0.0
        ),
    )


def wait_seconds(pid: int) -> float:
    """Seconds the threads of a process spent so far ready to run but waiting for a core (the
    second field of each thread's ``schedstat``, in ns; 0 where the kernel keeps no scheduler
    statistics)."""
    return _per_thread(pid, lambda task: int((task / "schedstat").read_text().split()[1]) / 1e9)


def pids_of(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


def index_times(es: Any, settings: Any) -> dict[str, tuple[float, ...]]:
    """Per index family: documents indexed and milliseconds of each kind of work."""
    out = {}
    stats = es.indices.stats(index=settings.index("*"))["indices"]
    for name, stat in stats.items():
        p = stat["primaries"]
        family = name.removeprefix(settings.index_prefix + "-").rsplit("-", 1)[0]
        out[family] = (
            p["indexing"]["index_total"],
            p["indexing"]["index_time_in_millis"],
            p["refresh"]["total_time_in_millis"],
            p["merges"]["total_time_in_millis"],
            p["search"]["query_time_in_millis"] + p["search"]["fetch_time_in_millis"],
            p["get"]["time_in_millis"],
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--articles", type=int, default=900)
    args = parser.parse_args()

    from pipeline.cli.demo import start_worker, stop_worker, wait_ready
    from pipeline.infra.kafka import make_producer
    from schemas.models import utcnow

    n = args.articles
    articles = distinct_articles(n, args.corpus, "cpu")
    run, settings, es = fresh_run("cpu", 4)
    log_path = settings.data_dir / "logs" / f"cpu-{run}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    worker = start_worker(log_path)
    try:
        wait_ready(worker, log_path, timeout_s=400)
        processes = {
            "worker": [worker.pid],
            "parse processes": children_of(worker.pid),
            "elasticsearch": pids_of("org.elasticsearch.bootstrap"),
            "kafka": pids_of("kafka.Kafka"),
        }
        before = {k: sum(map(cpu_seconds, v)) for k, v in processes.items()}
        stats_before = index_times(es, settings)
        producer = make_producer(settings)
        started = time.monotonic()
        for article in articles:
            stamped = article.model_copy(update={"ingested_at": utcnow()})
            producer.send(settings.topic("raw"), key=article.id, value=stamped)
        producer.flush()
        producer.close()
        index = settings.index("articles")
        expected, state, pending = n * ops_per_article(settings), {}, {a.id for a in articles}
        while pending and time.monotonic() - started < 900:
            if all_indexed(es, index, expected, state):
                pending -= enriched_ids(es, index, pending)
            time.sleep(0.1)
        took = time.monotonic() - started
        after = {k: sum(map(cpu_seconds, v)) for k, v in processes.items()}
        stats_after = index_times(es, settings)
    finally:
        stop_worker(worker)
    print(f"one worker, {n} articles in {took:.1f} s = {n / took:.1f} articles/s")
    print("CPU per article, by process:")
    for name in processes:
        spent = after[name] - before[name]
        print(f"  {name:16s} {spent:6.1f} s   {1000 * spent / n:6.1f} ms/article")
    print("Elasticsearch per article, by index family (documents; ms of each kind of work):")
    print(f"  {'':14s} " + " ".join(f"{s:>9s}" for s in STATS))
    for family in sorted(stats_after):
        moved = [a - b for a, b in zip(stats_after[family], stats_before.get(family, (0,) * 6))]
        if any(moved):
            print(f"  {family:14s} " + " ".join(f"{m / n:9.2f}" for m in moved))


if __name__ == "__main__":
    main()
