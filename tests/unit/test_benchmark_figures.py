"""The latency benchmark's figures of where the time goes: the threads' waits for a core
(``/proc``), and the lines it prints from them and from the articles' enrich timings; and
when the servers' warm-up ends (its rounds stood in for: the loop's rule is what is tested)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from benchmarks.cpu_split import wait_seconds
from benchmarks.performance import CPU_PARTS, cpu_snapshot, cpu_use, goal_lines, print_latency

pytestmark = pytest.mark.skipif(
    not os.path.exists(f"/proc/{os.getpid()}/task"), reason="needs Linux's /proc"
)


def test_wait_seconds_counts_a_process_threads_and_never_goes_back():
    before = wait_seconds(os.getpid())
    stop = time.monotonic() + 0.3

    def spin() -> None:  # more runnable threads than cores: some of them wait
        while time.monotonic() < stop:
            pass

    threads = [threading.Thread(target=spin) for _ in range((os.cpu_count() or 1) + 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wait_seconds(os.getpid()) >= before >= 0.0
    assert wait_seconds(2**22 + 7) == 0.0  # no such process


def test_a_snapshot_has_each_parts_cpu_and_wait():
    before = cpu_snapshot(os.getpid())
    assert before is not None
    for part in CPU_PARTS:
        assert part in before and f"{part} waiting" in before
    used = cpu_use(before, cpu_snapshot(os.getpid()))
    assert used["this benchmark waiting"] >= 0.0 and used["seconds"] > 0


def test_the_printed_waits_and_enrich_parts(capsys):
    cores = dict.fromkeys(CPU_PARTS, 0.5) | {f"{p} waiting": 0.1 for p in CPU_PARTS}
    cores |= {"Elasticsearch JIT": 0.05, "Kafka JIT": 0.0, "machine": 1.8, "seconds": 40.0}
    cores["parse processes waiting"] = 0.25
    print_latency(
        {
            "sent": 800,
            "actual_rate": 20.0,
            "to_alert": [300.0, 900.0],
            "to_search": [1000.0],
            "cores": cores,
            "enrich_parts": {"nlp": 15.0, "entities": 16.0, "events": 2.0, "stories": 12.0},
            "kinds": {},
        },
        "20 articles/s",
    )
    out = capsys.readouterr().out
    assert "waiting for a core, seconds per second of CPU" in out
    assert "parse processes 0.50" in out and "worker 0.20" in out
    assert (
        "parse (waiting for the parse process) 15.0, entities 16.0, events 2.0, stories 12.0; "
        "in all 45.0" in out
    )


def test_the_goal_lines_say_which_goals_a_run_met():
    loaded = {"rate": 50.5, "to_alert": [300.0] * 99 + [2500.0] * 2, "sent": 2400}
    steady = {"rate": 20.0, "to_alert": [200.0, 400.0], "to_search": [800.0] * 10, "sent": 10}
    lines = goal_lines({1: 1.41, 2: 0.70}, loaded, steady)
    assert lines == [
        "  1 worker(s) / nlp.pipe(n_process=1) as shipped: 1.41 (goal >= 0.85): met",
        "  2 worker(s) / nlp.pipe(n_process=2) as shipped: 0.70 (goal >= 0.75): NOT met",
        "  ingest -> alert p99 at 80% of capacity (50.5/s): 2500 ms (goal <= 2000 ms): NOT met",
        "  ingest -> alert p99 at 20/s: 400 ms (goal <= 1000 ms): met",
        "  ingest -> searchable p99 at 20/s: 800 ms (goal <= 1500 ms): met",
        "  3 of 5 goals met in this run",
    ]


def test_an_article_never_found_fails_the_searchable_goal():
    # the p99 of 200 articles is the 198th: two never found leave it fast, a third makes it
    # infinite
    found = {"rate": 20.0, "to_alert": [100.0], "to_search": [500.0] * 198, "sent": 200}
    assert goal_lines({}, None, found)[1].endswith("(goal <= 1500 ms): met")
    lost = found | {"to_search": [500.0] * 197}
    line = goal_lines({}, None, lost | {"rate": 10.0})[1]
    assert line.startswith("  ingest -> searchable p99 at 10/s; the goal is at 20/s: inf ms")
    assert line.endswith("NOT met")
    assert goal_lines({}, None, None) == []
    nothing = goal_lines({}, {"rate": 40.0, "to_alert": [], "sent": 0}, None)
    assert nothing[0] == (
        "  ingest -> alert p99 at 80% of capacity (40.0/s): not measured (goal <= 2000 ms)"
    )


class _Rounds:
    """Stands in for the warm-up's rounds: each round's workers, and the servers' CPU and JIT
    seconds that the round adds (``jit_per_round``; 0 CPU: the servers are elsewhere)."""

    def __init__(self, jit_per_round: list[float], cpu_per_round: float = 10.0) -> None:
        self.jit, self.cpu, self.workers = list(jit_per_round), cpu_per_round, []
        self.total = [0.0, 0.0]

    def one_run(self, workers, articles, partitions):
        self.workers.append(workers)
        if self.cpu:
            self.total = [self.total[0] + self.cpu, self.total[1] + self.jit.pop(0)]
        return {"indexed": len(articles), "rate": 50.0, "seconds": len(articles) / 50.0}

    def server_cpu(self, pattern):
        return (self.total[0], self.total[1]) if "elasticsearch" in pattern else (0.0, 0.0)


def _warm(monkeypatch, rounds: _Rounds, budget_s: float = 600.0) -> list[str]:
    import benchmarks.performance as perf

    monkeypatch.setattr(perf, "one_run", rounds.one_run)
    monkeypatch.setattr(perf, "_server_cpu", rounds.server_cpu)
    lines: list[str] = []
    perf.warm_servers(list(range(100)), 4, budget_s, log=lambda line, **_: lines.append(line))
    return lines


def test_the_warm_up_ends_once_the_jit_uses_few_cores_and_both_worker_counts_ran(monkeypatch):
    # 100 articles at 50/s: 2 s a round; 1 s of JIT in a round is 0.5 cores, 0.1 s is 0.05
    rounds = _Rounds([1.0, 1.0, 0.6, 0.1, 0.1, 0.1])
    lines = _warm(monkeypatch, rounds)
    assert rounds.workers == [1, 2, 1, 2]
    assert "through 2 worker(s)" in lines[-1] and "JIT 0.05 cores" in lines[-1]
    assert "JIT 0.50 cores" in lines[0]


def test_a_warm_stack_still_gets_a_round_of_each_worker_count(monkeypatch):
    rounds = _Rounds([0.0, 0.0, 0.0])
    _warm(monkeypatch, rounds)
    assert rounds.workers == [1, 2]


def test_servers_elsewhere_get_a_round_of_each_worker_count(monkeypatch):
    rounds = _Rounds([], cpu_per_round=0.0)
    lines = _warm(monkeypatch, rounds)
    assert rounds.workers == [1, 2]
    assert all("the servers are elsewhere" in line for line in lines)


def test_the_warm_up_stops_at_its_budget_while_the_jit_still_compiles(monkeypatch):
    rounds = _Rounds([1.0] * 10)
    _warm(monkeypatch, rounds, budget_s=0.0)
    assert rounds.workers == [1, 2]
