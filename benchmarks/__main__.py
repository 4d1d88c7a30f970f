"""Run every benchmark: ``python -m benchmarks --quick`` (``make bench``) or the full runs.

Each benchmark runs in its own process, one after the other (they share the cores), as
``python -m benchmarks.NAME ARGS`` with the quick or full arguments below; its output (the
figures and same-run ratios it prints) goes to the terminal and into one JSON summary,
``<NEWS_DATA_DIR or .newspipe>/bench/summary.json``: per benchmark the command, exit status,
seconds and the printed lines. Benchmarks that need Kafka and Elasticsearch use the servers of
NEWS_KAFKA_BOOTSTRAP / NEWS_ES_URL when set, else start the local runtime themselves.
docs/benchmarks.md lists what each measures and its full run.

    python -m benchmarks --quick [--only NAME ...] [--skip NAME ...]
    python -m benchmarks --full  [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks import DEFAULT_CORPUS

REPO = Path(__file__).resolve().parents[1]
CORPUS = str(DEFAULT_CORPUS)

#: name -> (quick arguments, full arguments, timeout of the quick run in seconds)
BENCHMARKS: dict[str, tuple[list[str], list[str], int]] = {
    "alert_matching": (["--articles", "60"], [], 120),
    "dedupe": (["--limit", "1500", "--samples", "3"], [], 90),
    "stages": (["--limit", "120"], ["--limit", "2000"], 150),
    "components": (["--articles", "60", "--rounds", "1"], ["--model", "en_core_web_sm"], 150),
    "enrich_cpu": (["--limit", "120", "--rounds", "1"], [], 150),
    "clean_step": (["--limit", "200", "--rounds", "1"], ["--es", "--ner"], 150),
    "ingest": (["--limit", "2000", "--kafka"], ["--kafka"], 90),
    "quality": (
        ["--models", "en_news_ner_conll"],
        ["--models", "en_core_web_sm", "en_news_ner_conll"],
        180,
    ),
    "alerts_first": (["--limit", "200", "--entities", "5"], [], 150),
    "rules": (["--family", "places", "--family", "roles"], [], 150),
    "stories": (["--cost-only", "--sizes", "1000"], [], 120),
    "stream": (["--rate", "5", "--seconds", "6", "--burst", "60"], [], 150),
    "webhooks": (["--rate", "3", "--seconds", "5"], [], 150),
    "scaling": (["--articles", "20", "--workers", "1,2", "--partitions", "2"], [], 300),
    "failover": (["--articles", "40", "--kill-at", "15"], [], 420),
}
#: its own 3-broker / 3-node cluster (six JVMs) does not fit the quick profile's ten minutes:
#: quick runs it only against a running cluster (NEWS_FAILOVER_DATA_DIR, see its docstring)
NEEDS_CLUSTER = {"failover"}
#: benchmarks/rule_sets.py builds the labelled sets of benchmarks.rules (it rewrites committed
#: fixtures): a data builder, not a benchmark, so it is not run here.


def run_one(name: str, args: list[str], timeout: int | None) -> dict[str, object]:
    command = [sys.executable, "-m", f"benchmarks.{name}", *args]
    print(f"\n=== {name}: {' '.join(['python', '-m', f'benchmarks.{name}', *args])}", flush=True)
    env = {**os.environ, "NEWS_CORPUS": CORPUS, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    lines: list[str] = []
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    timed_out = threading.Event()

    def stop() -> None:
        """Past the timeout: Ctrl-C first (the benchmark's finally blocks stop the servers and
        workers it started), then SIGTERM, then SIGKILL."""
        timed_out.set()
        for sig, grace in ((signal.SIGINT, 90), (signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return

    watchdog = threading.Timer(timeout, stop) if timeout else None
    if watchdog:
        watchdog.daemon = True
        watchdog.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line.rstrip("\n"))
    proc.wait()
    if watchdog:
        watchdog.cancel()
    status = "ok"
    if timed_out.is_set():
        status = f"timeout after {timeout} s"
    elif proc.returncode != 0:
        status = f"exit {proc.returncode}"
    seconds = round(time.monotonic() - started, 1)
    print(f"--- {name}: {status} in {seconds} s", flush=True)
    return {
        "command": " ".join(["python", "-m", f"benchmarks.{name}", *args]),
        "status": status,
        "seconds": seconds,
        "output": lines[-80:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the quick profile (default)")
    mode.add_argument(
        "--full", action="store_true", help="the full runs (hours on a small machine)"
    )
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=None)
    parser.add_argument("--skip", nargs="+", choices=sorted(BENCHMARKS), default=[])
    parser.add_argument("--out", type=Path, default=None, help="summary path")
    args = parser.parse_args()

    names = [n for n in (args.only or BENCHMARKS) if n not in args.skip]
    data_dir = Path(os.environ.get("NEWS_DATA_DIR") or REPO / ".newspipe")
    out = args.out or data_dir / "bench" / "summary.json"
    started = time.monotonic()
    results = {}
    for name in names:
        quick, full, timeout = BENCHMARKS[name]
        if not args.full and name in NEEDS_CLUSTER and not os.environ.get("NEWS_FAILOVER_DATA_DIR"):
            reason = (
                "skipped: needs a running 3x3 cluster in the quick profile (NEWS_FAILOVER_DATA_DIR)"
            )
            print(f"\n=== {name}: {reason}", flush=True)
            results[name] = {
                "command": f"python -m benchmarks.{name} {' '.join(quick)}",
                "status": reason,
                "seconds": 0,
                "output": [],
            }
            continue
        results[name] = run_one(name, full if args.full else quick, None if args.full else timeout)
    summary = {
        "profile": "full" if args.full else "quick",
        "started": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - (time.monotonic() - started))
        ),
        "seconds": round(time.monotonic() - started, 1),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "benchmarks": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n=== {len(results)} benchmarks in {summary['seconds']} s; summary: {out}")
    for name, result in results.items():
        print(f"{name:16} {result['status']:24} {result['seconds']:7.1f} s")
    return (
        0
        if all(
            r["status"] == "ok" or str(r["status"]).startswith("skipped") for r in results.values()
        )
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
